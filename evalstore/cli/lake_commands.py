"""The ``lake`` command group: a model's rows as hive-partitioned Parquet.

``evalstore lake export MODEL PATH`` writes the layout of :mod:`evalstore.core.lake`
(docs/scaling.md), which :mod:`evalstore.engines.spark` reads on a Spark cluster.
"""

from __future__ import annotations

import click

from evalstore.cli.common import emit, open_store, output_options


@click.group()
def lake() -> None:
    """A model's rows as a Parquet lake, for engines past one machine (Spark).

    \b
    Example:
      evalstore -s monitoring.duckdb lake export fraud /data/lake/fraud
    """


@lake.command("export")
@click.argument("model")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace a lake already at PATH.")
@output_options()
@click.pass_context
def export(
    ctx: click.Context, model: str, path: str, overwrite: bool, fmt: str, limit: int | None
) -> None:
    """Write MODEL's features, predictions, labels and registry rows to the directory PATH
    as Parquet, hive-partitioned: kind=features/env=ENV/day=DAY, kind=predictions/day=DAY,
    kind=labels/day=DAY (append-only: a correction is a later row with a larger batch_id)
    and kind=models. PATH must be new or empty unless --overwrite. Prints the rows and
    files written per kind.

    \b
    Example:
      evalstore -s monitoring.duckdb lake export fraud /data/lake/fraud
    """
    store = open_store(ctx, read_only=True)
    try:
        emit(store.export_lake(model, path, overwrite=overwrite), fmt, limit)
    finally:
        store.close()
