"""The ``history`` command: the stored metric series of a model.

It prints the rows persisted calls (``persist=True`` in Python, monitors run by
``evalstore monitor run`` or the server) stored in the metric history, read-only: it
computes nothing (:func:`evalstore.monitors.history.history`).
"""

from __future__ import annotations

import click

from evalstore.cli.common import emit, open_store, output_options, parse_names

#: Columns of ``history`` worth reading in a terminal (the other formats carry all).
TERMINAL_COLUMNS = [
    "family", "window_start", "version", "subject", "metric", "class", "value", "threshold",
    "flagged", "n_analysis", "n", "labels_complete", "computed_at",
]  # fmt: skip


@click.command()
@click.argument("model")
@click.option(
    "--family", type=click.Choice(["drift", "quality", "performance"]), help="Only this family."
)
@click.option("--metric", help="Comma-separated methods, checks or metrics, e.g. psi,ks.")
@click.option(
    "--feature",
    "features",
    multiple=True,
    help="A subject: feature, output or slice text (may hold commas); repeat for several.",
)
@click.option("--version", "-v", "version", help="Only rows of this model version.")
@click.option("--since", help="Only windows starting at or after this ISO-8601 time.")
@click.option("--until", help="Only windows starting before this ISO-8601 time.")
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Refuse more rows than this (at most 1,000,000): narrow the filters instead.",
)
@output_options()
@click.pass_context
def history(
    ctx: click.Context,
    model: str,
    family: str | None,
    metric: str | None,
    features: tuple[str, ...],
    version: str | None,
    since: str | None,
    until: str | None,
    max_rows: int,
    fmt: str,
    limit: int | None,
) -> None:
    """The metric history of MODEL: rows stored by persisted drift, quality and
    performance calls and by monitors, one per window, subject and metric, with the
    batch ids each row saw and when it was computed. Computes nothing.

    \b
    Example:
      evalstore history fraud --family drift --metric psi,ks --feature income \\
        --feature age --since 2026-10-01 --format csv
    """
    with open_store(ctx, read_only=True) as store:
        table = store.history(
            model,
            family=family,
            metric=parse_names(metric),
            feature=list(features) or None,
            since=since,
            until=until,
            version=version,
            limit=max_rows,
        )
    emit(table, fmt, limit, columns=TERMINAL_COLUMNS, drop_empty=True)
