"""The ``summary`` command: summary-statistics series per window and feature, with alert
ranges learned on reference chunks (``Store.summary_stats``)."""

from __future__ import annotations

import click

from evalstore.cli.common import (
    emit,
    output_options,
    parse_names,
    reference_option,
    run_analysis,
    window_option,
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
@reference_option(
    "training, validation, dataset:TAG or START..END (alert ranges are learned on it)."
)
@window_option()
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
    table = run_analysis(
        ctx, "summary_stats", model, reference, window, features, stats=parse_names(stats),
        version=version, where=where, learn_chunks=learn_chunks, **options,
    )  # fmt: skip
    if alerts_only:
        table = table.filter(table.column("alert").fill_null(False))
    emit(table, fmt, limit, columns=SUMMARY_VIEW, drop_empty=True)
