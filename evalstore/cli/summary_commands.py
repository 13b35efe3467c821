"""The ``summary`` command: summary-statistics series per window and feature, with alert
ranges learned on reference chunks (``Store.summary_stats``)."""

from __future__ import annotations

import click

from evalstore.cli.common import (
    emit,
    open_store,
    output_options,
    parse_names,
    parse_reference,
    parse_window,
)
from evalstore.metrics.specs import SUMMARY_STATS

#: Columns shown with --format table.
SUMMARY_VIEW = ["window_start", "feature", "version", "stat", "value", "threshold_low",
                "threshold_high", "alert", "n", "reason"]  # fmt: skip


def _levels(text: str | None) -> list[float] | None:
    """--quantiles 0.05,0.95 as floats (None when not given)."""
    if not text:
        return None
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            "comma-separated levels in [0, 1], e.g. 0.05,0.5,0.95", param_hint="'--quantiles'"
        ) from None


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option(
    "--reference",
    "-r",
    default="training",
    show_default=True,
    help="training, validation, dataset:TAG or START..END (alert ranges are learned on it).",
)
@click.option(
    "--window",
    "-w",
    default="1 day",
    show_default=True,
    help="An interval ('1 day'), rows per chunk (5000), chunks:N or chunks:N:nannyml.",
)
@click.option("--features", help="Comma-separated features (default: all, and the outputs).")
@click.option("--stats", help=f"Comma-separated: {', '.join(SUMMARY_STATS)} (default: all).")
@click.option("--quantiles", help="Levels of the quantile stat (default: 0.05,0.95).")
@click.option(
    "--learn-chunks",
    type=click.IntRange(min=2),
    help="Cut the reference into N chunks in time order (default: by --window, as NannyML).",
)
@click.option("--version", "-v", "version", help="Only examples this version predicted.")
@click.option("--where", help="SQL predicate over feature columns.")
@click.option("--alerts", "alerts_only", is_flag=True, help="Only the rows that alert.")
@output_options()
@click.pass_context
def summary(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    stats: str | None,
    quantiles: str | None,
    learn_chunks: int | None,
    version: str | None,
    where: str | None,
    alerts_only: bool,
    fmt: str,
    limit: int | None,
) -> None:
    """Summary statistics per window and feature (count, mean, median, sd, min, max, sum,
    quantiles), alerting outside mean +- 3 sd of the statistic over reference chunks.

    \b
    Example:
      evalstore summary --model fraud --window "7 days" --stats mean,sd --features amount
    """
    options = {} if quantiles is None else {"quantiles": _levels(quantiles)}
    with open_store(ctx, read_only=True) as store:
        table = store.summary_stats(
            model,
            reference=parse_reference(reference),
            window=parse_window(window),
            features=parse_names(features),
            stats=parse_names(stats),
            version=version,
            where=where,
            learn_chunks=learn_chunks,
            **options,
        )
    if alerts_only:
        table = table.filter(table.column("alert").fill_null(False))
    emit(table, fmt, limit, columns=SUMMARY_VIEW, drop_empty=True)
