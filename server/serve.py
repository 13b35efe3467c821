"""Run the server: ``evalstore serve PATH`` (or :func:`run` from Python).

The server process opens the store for writing and is the file's single writer; other
processes reach the store over HTTP or read the BI snapshot. On SIGINT/SIGTERM uvicorn stops
accepting connections, running reads are interrupted (DuckDB's interrupt on each read's own
connection, :meth:`server.workers.ReadPool.shutdown`; they answer 503) and in-flight ingest
is let finish (a batch is committed or rolled back whole; the group commit writes every
request already queued, :mod:`server.group_commit`); then the snapshot thread stops
and the store is closed, which waits for any write still holding the store's lock. A
server busy with long queries so stops within a few seconds.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import uvicorn

import evalstore
from server.app import create_app
from server.auth import Tokens


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("192.168.1.10")
    (False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, tokens: object) -> None:
    """Refuse to listen beyond loopback without authentication."""
    if tokens is None and not is_loopback(host):
        raise evalstore.errors.InvalidParameterError(
            f"refusing to listen on {host!r} without authentication: pass --tokens FILE "
            "(lines 'TOKEN read|write [NAME]') or bind to 127.0.0.1"
        )


def run(
    path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens: str | os.PathLike[str] | None = None,
    snapshot: str | os.PathLike[str] | None = None,
    snapshot_every: float = 60.0,
    log_level: str = "info",
    time_range: tuple[Any, Any] | None = None,
    max_windows: int | None = None,
    http: str = "auto",
    loop: str = "auto",
    **options: Any,
) -> None:
    """Open the store at ``path`` and serve it until interrupted.

    ``time_range`` and ``max_windows`` are :func:`evalstore.open`'s (the times ingest
    accepts, the most windows one metric request builds); ``http`` and ``loop`` are
    uvicorn's (``auto``: httptools and uvloop, dependencies of evalstore, else h11 and
    asyncio); ``options`` go to :func:`server.app.create_app`.
    """
    accepted = Tokens.load(tokens) if tokens is not None else None
    check_binding(host, accepted)
    store = evalstore.open(path, time_range=time_range, max_windows=max_windows)
    try:
        app = create_app(
            store, tokens=accepted, snapshot=snapshot, snapshot_every=snapshot_every, **options
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=http,
            loop=loop,
            log_level=log_level,
            timeout_graceful_shutdown=60,
            access_log=log_level == "debug",
        )
        GracefulServer(config).run()
    finally:
        store.close()


class GracefulServer(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGINT/SIGTERM after its graceful shutdown.

    uvicorn re-raises the captured signal once it has drained the connections, which would
    kill the process before the store is closed (and its WAL checkpointed); here the
    shutdown returns normally, :func:`run` closes the store and the process exits 0. The
    signal also shuts the app's read pool down, interrupting running queries, so the
    drain does not wait for them.
    """

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if sig in self._captured_signals:
            self._captured_signals.remove(sig)
        reads = getattr(getattr(self.config.app, "state", None), "reads", None)
        if reads is not None:
            reads.shutdown()  # interrupt running queries: uvicorn waits for their requests
