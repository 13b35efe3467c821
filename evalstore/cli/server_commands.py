"""Commands that run something around a store: ``serve`` it over HTTP (the
:mod:`server` package) and build the ``demo`` store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("path", required=False, default="demo.duckdb", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True)
def demo(path: str, overwrite: bool, seed: int, days: int) -> None:
    """Build a demo store from a seeded credit-default scenario and show what it holds.

    \b
    Example:
      evalstore demo demo.duckdb --overwrite
    """
    from evalstore.demo.run import run_demo

    target = Path(path)
    if target.exists():
        if not overwrite:
            raise click.ClickException(f"{path} exists; pass --overwrite to replace it")
        target.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    run_demo(target, seed=seed, days=days, echo=click.echo)


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--tokens",
    type=click.Path(exists=True, dir_okay=False),
    help="Token file: lines 'TOKEN read|write [NAME]'. Required to listen beyond loopback.",
)
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Write a BI copy here.")
@click.option("--snapshot-every", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--row-limit", type=int, default=1_000_000, show_default=True, help="POST /v1/sql.")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a read (SQL, metric family, selection) may run before it is interrupted.",
)
@click.option(
    "--max-result-mb", type=float, default=256, show_default=True, help="Largest read result."
)
@click.option(
    "--read-workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Reads running at once (healthz and ingest keep threads of their own).",
)
@click.option(
    "--read-queue",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Reads waiting for a worker; beyond that, 503 with Retry-After.",
)
@click.option(
    "--memory-limit",
    default="50%",
    show_default=True,
    help="DuckDB memory_limit for the whole store ('4GiB', '50%'); 'none' keeps DuckDB's.",
)
@click.option("--max-body-mb", type=float, default=512, show_default=True, help="Ingest bodies.")
@click.option(
    "--checkpoint-idle",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Checkpoint the WAL after this many seconds without a commit.",
)
@click.option(
    "--wal-limit", default="1GiB", show_default=True, help="Checkpoint inside a commit past this."
)
@click.option(
    "--time-range",
    metavar="LO,HI",
    help="Times ingest accepts, ISO-8601 (default 1900-01-01,2200-01-01 UTC).",
)
@click.option(
    "--max-windows",
    type=click.IntRange(min=1),
    help="Most windows one metric request builds (default 10,000).",
)
@click.option(
    "--group-commit/--no-group-commit",
    default=True,
    show_default=True,
    help="Write concurrent ingest requests together (one commit); off: one commit each.",
)
@click.option(
    "--journal/--no-journal",
    default=False,
    show_default=True,
    help="Answer small ingest requests once they are in the fsynced <store>.journal and "
    "apply them to DuckDB in bulk (rows visible about --journal-apply-every later).",
)
@click.option(
    "--journal-apply-every",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="Seconds between two applies of the journal to DuckDB.",
)
@click.option(
    "--monitor-every",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds between passes over every model's monitors (also run about 1 s after a "
    "model's ingest; notifications sent); 0 turns the monitor loop off.",
)
@click.option(
    "--monitor-debounce",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds after a model's last commit before its monitors run.",
)
@click.option(
    "--monitor-max-delay",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Most seconds after a model's first unevaluated commit before its monitors run "
    "(a steady stream is evaluated this often); at least --monitor-debounce.",
)
@click.option(
    "--webhook-allow",
    multiple=True,
    metavar="HOST",
    help="Host pattern (e.g. hooks.slack.com, *.corp.example) webhooks created over HTTP "
    "may point to; repeat it. Default: any host but private/loopback IP addresses.",
)
@click.option(
    "--http-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="HTTP processes listening on --host/--port. 1: this process alone. N > 1: N front "
    "processes parse single-example ingest requests and forward them in groups to this "
    "process (the one writer), which answers every other route through them.",
)
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def serve(ctx: click.Context, path: str | None, **options: Any) -> None:
    """Serve the store over HTTP (ingest, safe SQL, metrics, Prometheus) until Ctrl-C.

    The server owns the file (its single writer). Without --tokens it only listens on
    loopback. With --snapshot it refreshes a read-only copy for BI tools every
    --snapshot-every seconds, readable by DuckDB 1.4 and later. Committed batches
    are folded from the write-ahead log into the file on a background thread once
    ingest pauses for --checkpoint-idle seconds, so commits do not pay for it.
    Monitors run about a second after each ingest and every --monitor-every seconds.

    With --http-workers N (N > 1) N front processes share the address and forward
    single-example ingest to this process in groups; the URL stays one.

    \b
    Example:
      evalstore serve monitoring.duckdb --port 8000 --snapshot bi/monitoring.duckdb
      evalstore serve monitoring.duckdb --journal --http-workers 2
    """
    from server.serve import run

    max_body = int(options.pop("max_body_mb") * 1024 * 1024)
    options["webhook_allow"] = tuple(options["webhook_allow"])
    if options["monitor_max_delay"] < options["monitor_debounce"]:
        raise click.BadParameter(
            f"{options['monitor_max_delay']} is below --monitor-debounce "
            f"{options['monitor_debounce']}; give a delay at least the debounce",
            param_hint="'--monitor-max-delay'",
        )
    options["max_result_bytes"] = int(options.pop("max_result_mb") * 1024 * 1024)
    if options["memory_limit"].lower() == "none":
        options["memory_limit"] = None
    if options["time_range"] is not None:
        bounds = [part.strip() for part in options["time_range"].split(",")]
        if len(bounds) != 2 or not all(bounds):
            raise click.BadParameter(
                "give two ISO-8601 times, e.g. 1800-01-01,2300-01-01", param_hint="'--time-range'"
            )
        options["time_range"] = tuple(bounds)
    run(path or ctx.obj["store"], max_body_bytes=max_body, **options)


# ---------------------------------------------------------------- flywheel: suggest, select
