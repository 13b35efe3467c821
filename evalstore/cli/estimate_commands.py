"""The ``estimate`` command: performance estimated before labels arrive (CBPE, DLE)."""

from __future__ import annotations

import click

from evalstore.cli.common import (
    emit,
    open_store,
    output_options,
    parse_names,
    parse_reference,
    parse_slice_keys,
    parse_window,
    performance_options,
    prediction_time_options,
    threshold_option,
)


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option(
    "--metrics",
    help="Comma-separated, e.g. roc_auc,f1 (default: every metric the method estimates).",
)
@performance_options()
@prediction_time_options()
@click.option(
    "--reference",
    default="training",
    show_default=True,
    help="Labeled predictions to learn from: training | validation | dataset:TAG | START..END "
    "(a labeled period of serving).",
)
@click.option(
    "--method",
    type=click.Choice(["cbpe", "dle"]),
    help="cbpe (classification) or dle (regression); default: the model task's.",
)
@click.option(
    "--calibration",
    type=click.Choice(["isotonic", "none"]),
    default="isotonic",
    show_default=True,
    help="CBPE: calibrate scores on the reference, or take them as probabilities.",
)
@threshold_option()
@output_options()
@click.pass_context
def estimate(
    ctx: click.Context,
    model: str,
    metrics: str | None,
    window: str,
    by: str | None,
    slices: tuple[str, ...],
    version: str | None,
    where: str | None,
    since: str | None,
    until: str | None,
    reference: str,
    method: str | None,
    calibration: str,
    threshold: float | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Performance per window, version and slice estimated before the labels arrive:
    CBPE from calibrated scores (binary, multiclass), DLE from a loss model (regression),
    beside the realized value where labels exist; `diverged` marks a realized value
    outside the estimate's band (the reference's relationship no longer holds).

    \b
    Example:
      evalstore estimate -m credit_default -w "7 days" --metrics roc_auc,f1 \\
          --reference 2026-09-01..2026-09-22
    """
    keys = parse_slice_keys(by, slices)
    with open_store(ctx, read_only=True) as store:
        table = store.estimate_performance(
            model,
            metrics=parse_names(metrics),
            window=parse_window(window),
            by=keys,
            version=version,
            where=where,
            since=since,
            until=until,
            threshold=threshold,
            reference=parse_reference(reference),
            method=method,
            calibration=calibration,
        )
    names = table.column_names
    slice_keys = names[names.index("version") + 1 : names.index("metric")]
    columns = ["window_start", *slice_keys, "version", "metric", "class", "value", "ci_low",
               "ci_high", "realized", "diverged", "alert", "n", "label_coverage",
               "reason"]  # fmt: skip
    emit(table, fmt, limit, columns=columns, drop_empty=True)
