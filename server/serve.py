"""Run the server: ``evalstore serve PATH`` (or :func:`run` from Python).

The server process opens the store for writing and is the file's single writer; other
processes reach the store over HTTP or read the BI snapshot. On SIGINT/SIGTERM uvicorn stops
accepting connections, running reads are interrupted (DuckDB's interrupt on each read's own
connection, :meth:`server.workers.ReadPool.shutdown`; they answer 503) and in-flight ingest
is let finish (a batch is committed or rolled back whole; the group commit writes every
request already queued, :mod:`server.group_commit`); then the snapshot thread stops
and the store is closed, which waits for any write still holding the store's lock. A
server busy with long queries so stops within a few seconds.

With ``http_workers`` > 1 (``evalstore serve --http-workers N``) this process is the writer
and N front processes take the HTTP requests on ``host:port`` (:mod:`server.front`): the
fronts parse single-example ingest requests and forward them in groups over a Unix socket
(:mod:`server.front_link`); every other request is passed through to this process's HTTP
server on another Unix socket. On SIGINT/SIGTERM the fronts are stopped first (they finish
their requests, which the writer still answers), then the writer as above.
"""

from __future__ import annotations

import asyncio
import glob
import ipaddress
import logging
import os
import shutil
import tempfile
from typing import Any

import uvicorn

import evalstore
from server.auth import Tokens

log = logging.getLogger("uvicorn.error")


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
    http_workers: int = 1,
    **options: Any,
) -> None:
    """Open the store at ``path`` and serve it until interrupted.

    ``time_range`` and ``max_windows`` are :func:`evalstore.open`'s (the times ingest
    accepts, the most windows one metric request builds); ``http`` and ``loop`` are
    uvicorn's (``auto``: httptools and uvloop, dependencies of evalstore, else h11 and
    asyncio); ``http_workers`` > 1 runs that many HTTP front processes in front of this
    one (see the module); ``options`` go to :func:`server.app.create_app`.
    """
    if http_workers < 1:
        raise evalstore.errors.InvalidParameterError(
            f"http_workers={http_workers!r}: give 1 (one process) or more"
        )
    from server.app import create_app  # here: a front imports this module, not the app

    accepted = Tokens.load(tokens) if tokens is not None else None
    check_binding(host, accepted)
    store = evalstore.open(path, time_range=time_range, max_windows=max_windows)
    private = fronts = link = None
    try:
        app = create_app(
            store, tokens=accepted, snapshot=snapshot, snapshot_every=snapshot_every, **options
        )
        where: dict[str, Any] = {"host": host, "port": port}
        if http_workers > 1:
            from server.front import Fronts
            from server.front_link import LinkServer

            private = _private_directory()
            committer = app.state.committer
            if committer is not None:
                link = LinkServer(
                    committer, store.limits.time_range, os.path.join(private, "link.sock")
                )
            where = {"uds": os.path.join(private, "http.sock")}
            fronts = Fronts(
                http_workers,
                host,
                port,
                {
                    "link": os.path.join(private, "link.sock"),
                    "http_socket": where["uds"],
                    "group_commit": committer is not None,
                    "tokens": None if tokens is None else os.path.abspath(tokens),
                    "max_body_bytes": app.state.settings.max_body_bytes,
                    "http": http,
                    "loop": loop,
                    "log_level": log_level,
                },
            )
        config = uvicorn.Config(
            app,
            **where,
            http=http,
            loop=loop,
            log_level=log_level,
            timeout_graceful_shutdown=60,
            access_log=log_level == "debug",
        )
        GracefulServer(config, fronts=fronts).run()
    finally:
        if fronts is not None:
            fronts.stop()
        if link is not None:
            link.close()
        store.close()
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _private_directory() -> str:
    """A new directory (mode 0700) for the writer's Unix sockets, named after this process;
    those of writers no longer running (killed before they could remove theirs) go."""
    base = tempfile.gettempdir()
    for stale in glob.glob(os.path.join(glob.escape(base), "evalstore-serve-*-*")):
        pid = os.path.basename(stale).split("-")[2]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"evalstore-serve-{os.getpid()}-")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


class GracefulServer(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGINT/SIGTERM after its graceful shutdown.

    uvicorn re-raises the captured signal once it has drained the connections, which would
    kill the process before the store is closed (and its WAL checkpointed); here the
    shutdown returns normally, :func:`run` closes the store and the process exits 0. The
    signal also shuts the app's read pool down, interrupting running queries, so the
    drain does not wait for them.

    With ``fronts`` (:class:`server.front.Fronts`) they are started once this server
    listens and stopped before it stops (they finish their requests first).
    """

    def __init__(self, config: uvicorn.Config, fronts: Any = None) -> None:
        super().__init__(config)
        self.fronts = fronts

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.fronts is not None and not self.should_exit:
            self.fronts.start()
            log.info(
                "%d HTTP front processes on http://%s:%d (pids %s)",
                self.fronts.count, self.fronts.host, self.fronts.port,
                ", ".join(map(str, self.fronts.pids())),
            )  # fmt: skip

    async def shutdown(self, sockets: Any = None) -> None:
        if self.fronts is not None:
            await asyncio.to_thread(self.fronts.stop)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if sig in self._captured_signals:
            self._captured_signals.remove(sig)
        reads = getattr(getattr(self.config.app, "state", None), "reads", None)
        if reads is not None:
            reads.shutdown()  # interrupt running queries: uvicorn waits for their requests
