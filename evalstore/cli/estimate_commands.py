"""The ``estimate`` command: performance estimated before labels arrive (CBPE, DLE)."""

from __future__ import annotations

import click

from evalstore.cli.common import (
    cell_arguments,
    emit,
    open_store,
    output_options,
    parse_reference,
    performance_options,
    prediction_time_options,
    slice_columns,
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
@click.option(
    "--reference-chunks",
    type=int,
    default=10,
    show_default=True,
    help="Chunks of the reference (time order) whose estimates learn the alert thresholds "
    "(mean -+ 3 sd); at least 2 reference rows per chunk.",
)
@click.option(
    "--confidence",
    type=float,
    default=0.95,
    show_default=True,
    help="Level of the estimate's band and the realized interval.",
)
@click.option("--as-of", help="Clock for labels due/complete (default: the latest prediction ts).")
@click.option(
    "--delay-quantile",
    type=float,
    default=0.9,
    show_default=True,
    help="Quantile of the label delay that dates labels_due.",
)
@click.option(
    "--bins",
    type=int,
    default=4,
    show_default=True,
    help="Quantile bins of a numeric --by feature (on the reference).",
)
@click.option(
    "--edges",
    "edges",
    multiple=True,
    help="NAME=E1,E2,...: bin edges of a numeric --by feature instead of quantiles.",
)
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
    reference_chunks: int,
    confidence: float,
    as_of: str | None,
    delay_quantile: float,
    bins: int,
    edges: tuple[str, ...],
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
    cells = cell_arguments(metrics, window, by, slices, version, where)
    with open_store(ctx, read_only=True) as store:
        table = store.estimate_performance(
            model,
            **cells,
            since=since,
            until=until,
            threshold=threshold,
            reference=parse_reference(reference),
            method=method,
            calibration=calibration,
            reference_chunks=reference_chunks,
            confidence=confidence,
            as_of=as_of,
            delay_quantile=delay_quantile,
            bins=bins,
            edges=parse_edges(edges),
        )
    columns = ["window_start", *slice_columns(table), "version", "metric", "class", "value",
               "ci_low", "ci_high", "realized", "diverged", "alert", "n", "label_coverage",
               "reason"]  # fmt: skip
    emit(table, fmt, limit, columns=columns, drop_empty=True)


def parse_edges(texts: tuple[str, ...]) -> dict[str, list[float]] | None:
    """``--edges NAME=E1,E2,...`` (repeatable) as ``{NAME: [E1, E2, ...]}``."""
    if not texts:
        return None
    out: dict[str, list[float]] = {}
    for text in texts:
        name, sep, values = text.partition("=")
        try:
            edges = [float(v) for v in values.split(",")] if sep and name.strip() else None
        except ValueError:
            edges = None
        if edges is None:
            raise click.BadParameter(
                f"{text!r} is not NAME=E1,E2,...: give a --by feature and its numeric bin "
                "edges, e.g. --edges income=20000,50000",
                param_hint="--edges",
            )
        out[name.strip()] = edges
    return out
