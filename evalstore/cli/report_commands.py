"""The ``report`` and ``ui`` commands: a model's offline HTML report, and the dashboard on a
store file (:mod:`evalstore.dashboard`).
"""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

import click

from evalstore.cli.common import open_store

WINDOWS = ("1 hour", "6 hours", "1 day", "7 days")


@click.command()
@click.option("--model", "-m", required=True, help="The model to report on.")
@click.option("--since", help="Windows starting at or after this ISO-8601 date or time.")
@click.option("--until", help="Windows starting before this ISO-8601 date or time.")
@click.option("--window", type=click.Choice(WINDOWS), default="1 day", show_default=True)
@click.option("--metric", help="Performance metric (default: the task's headline metric).")
@click.option("--method", default="js", show_default=True, help="The drift heatmap's method.")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="The HTML file to write.",
)
@click.pass_context
def report(
    ctx: click.Context,
    model: str,
    since: str | None,
    until: str | None,
    window: str,
    metric: str | None,
    method: str,
    out: str,
) -> None:
    """Write a model's report: one HTML file with the dashboard's panels for the period
    (performance, drift heatmap and distributions, data quality, label coverage, latency,
    throughput, alerts), every script and all data inlined: it opens offline.

    Drift, quality and performance windows are stored in the metric history on the way
    (the first report of a model computes them, later ones read them).

    \b
    Example:
      evalstore -s monitoring.duckdb report --model fraud --since 2026-10-01 --out fraud.html
    """
    with open_store(ctx) as store:
        click.echo(
            f"{model}: reading the metric history (windows not stored yet are computed "
            "and stored first)...",
            err=True,
        )
        made = store.report(
            model, since, until, window=window, metric=metric, method=method, out=out
        )
    size = Path(out).stat().st_size
    click.echo(f"wrote {out} ({size / 1e6:.2f} MB): {made.view.model}, windows of {window}")


def free_port(host: str) -> int:
    """A TCP port nobody listens on at ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Default: a free port.")
@click.option("--no-browser", is_flag=True, help="Print the address; open no browser.")
def ui(path: str, port: int, no_browser: bool) -> None:
    """Open the dashboard on the store file PATH: read-only, on 127.0.0.1 only, until
    Ctrl-C. (To share a dashboard, run `evalstore serve` with --tokens.)

    The store is opened read-only, so its metric history is not extended: panels whose
    windows are not stored yet are computed once and kept in memory.

    \b
    Example:
      evalstore ui monitoring.duckdb
    """
    import uvicorn

    import evalstore
    from server.app import create_app

    host = "127.0.0.1"
    port = port or free_port(host)
    store = evalstore.open(path, read_only=True)
    try:
        app = create_app(store, checkpoint_idle=None, monitor_every=0, group_commit=False)
        url = f"http://{host}:{port}/"
        click.echo(f"evalstore dashboard of {path} (read-only): {url}  (Ctrl-C to stop)")
        if not no_browser:
            threading.Timer(1.0, webbrowser.open, [url]).start()
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        store.close()
