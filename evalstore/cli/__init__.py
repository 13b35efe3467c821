"""The ``evalstore`` command line: create a store, register models, ingest files, query.

Every command takes the store file from ``--store`` (or ``$EVALSTORE_STORE``,
default ``monitoring.duckdb``). Errors, usage errors included, print one line and exit
with status 1 (:mod:`evalstore.cli.errors`). Tables fit the terminal
(:mod:`evalstore.cli.render`).

This module holds the group ``main`` (the entry point ``evalstore.cli:main``) and its
global options; the commands live in one module per area, and what they share (opening
the store, ``--format``/``--limit``, printing tables, parsing option values) in
:mod:`evalstore.cli.common`:

- :mod:`~evalstore.cli.store_commands`: init, register, models, ingest, sql
- :mod:`~evalstore.cli.monitor_commands`: drift, quality, validate, schema
- :mod:`~evalstore.cli.multivariate_commands`: multivariate-drift
- :mod:`~evalstore.cli.summary_commands`: summary (summary statistics)
- :mod:`~evalstore.cli.metric_commands`: performance, slices, skew, compare, health
- :mod:`~evalstore.cli.flywheel_commands`: suggest, requests, select, snapshot
- :mod:`~evalstore.cli.server_commands`: serve, demo
- :mod:`~evalstore.cli.alert_commands`: monitor (add, list, run, delete, backtest, apply),
  alerts, channel
- :mod:`~evalstore.cli.prometheus_rules`: monitor prometheus-rules
- :mod:`~evalstore.cli.history_commands`: history (the stored metric series)
- :mod:`~evalstore.cli.estimate_commands`: estimate (performance before labels)
- :mod:`~evalstore.cli.lake_commands`: lake export (Parquet for Spark)
- :mod:`~evalstore.cli.report_commands`: report (offline HTML), ui (the dashboard on a file)

Importing this package loads neither DuckDB nor Arrow: ``evalstore --help`` starts fast,
and each command imports what it needs when it runs.

Import rule: the CLI sits at the top with ``store`` and ``demo`` and may import any layer
(and ``server`` for ``evalstore serve``); nothing in evalstore imports the CLI.
"""

from __future__ import annotations

import click

from evalstore import __version__
from evalstore.cli.alert_commands import alerts, channel, monitor
from evalstore.cli.errors import OneLineErrors
from evalstore.cli.estimate_commands import estimate
from evalstore.cli.flywheel_commands import requests, select_rows, snapshot, suggest
from evalstore.cli.history_commands import history
from evalstore.cli.lake_commands import lake
from evalstore.cli.metric_commands import compare, health, performance, skew, slices
from evalstore.cli.monitor_commands import drift, quality, schema, validate
from evalstore.cli.multivariate_commands import multivariate_drift
from evalstore.cli.prometheus_rules import prometheus_rules
from evalstore.cli.report_commands import report, ui
from evalstore.cli.server_commands import demo, serve
from evalstore.cli.store_commands import ingest, init, models, register, sql
from evalstore.cli.summary_commands import summary

#: The store file when neither --store nor $EVALSTORE_STORE names one. Not
#: "evalstore.duckdb": a file opens as the DuckDB catalog of its stem, and "evalstore"
#: would clash with the system schema of that name (the library refuses it).
DEFAULT_STORE = "monitoring.duckdb"


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalstore")
@click.option(
    "--store",
    "-s",
    "store_path",
    envvar="EVALSTORE_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The store's DuckDB file (or set EVALSTORE_STORE).",
)
@click.pass_context
def main(ctx: click.Context, store_path: str) -> None:
    """An evaluation store for ML models in production.

    \b
    Example:
      evalstore init monitoring.duckdb
      evalstore -s monitoring.duckdb register --model fraud --version v1 --task binary
    """
    ctx.obj = {"store": store_path}


for _command in (
    # store_commands
    init, register, models, ingest, sql,
    # monitor_commands
    drift, quality, validate, schema,
    # multivariate_commands
    multivariate_drift,
    # summary_commands
    summary,
    # metric_commands
    performance, slices, skew, compare, health,
    # estimate_commands
    estimate,
    # flywheel_commands
    suggest, requests, select_rows, snapshot,
    # server_commands
    serve, demo,
    # alert_commands
    monitor, alerts, channel,
    # history_commands
    history,
    # lake_commands
    lake,
    # report_commands
    report, ui,
):  # fmt: skip
    main.add_command(_command)
monitor.add_command(prometheus_rules)

__all__ = ["DEFAULT_STORE", "main"]
