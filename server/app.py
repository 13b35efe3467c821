"""The FastAPI application: a thin HTTP mapping onto :class:`evalstore.Store`.

``create_app(store)`` wires the routes (:mod:`server.routes_store`,
:mod:`server.routes_flywheel`, :mod:`server.routes_query`), JSON errors
(:mod:`server.errors`, each status declared in ``/openapi.json`` by :mod:`server.openapi`),
body size limits (:mod:`server.limits`), bearer tokens (:mod:`server.auth`), Prometheus
(:mod:`server.prom`), the ingest routes' fast path (:mod:`server.fast_ingest`), the locked
DuckDB configuration (:mod:`server.lockdown`), the BI
snapshot (:mod:`server.snapshot`) and the monitor loop (:mod:`server.monitor_loop`, with the
monitor, alert and channel routes of :mod:`server.routes_monitors`).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI

import evalstore
from server import errors, openapi
from server.auth import Tokens
from server.checkpointer import Checkpointer
from server.docs_ui import install as install_docs_ui
from server.fast_ingest import FastIngest
from server.group_commit import GroupCommitter
from server.journal import JournaledCommitter
from server.limits import BodyLimit, apply_memory_limit
from server.lockdown import lock_down
from server.monitor_loop import MonitorLoop
from server.prom import Monitor
from server.routes_dashboard import router as dashboard_router
from server.routes_estimation import router as estimation_router
from server.routes_flywheel import router as flywheel_router
from server.routes_monitors import router as monitors_router
from server.routes_query import router as query_router
from server.routes_store import router as store_router
from server.settings import Settings
from server.snapshot import SnapshotWriter
from server.workers import ReadPool

DESCRIPTION = """\
An evaluation store over HTTP. Ingest features, predictions and labels (JSON records or
Arrow IPC streams); query with read-only SQL (`POST /v1/sql`); read the metric families
(`GET /v1/models/{model}/{family}`), label suggestions, selections and snapshots; scrape
`/metrics`. Results are JSON records (ISO-8601 times), CSV or Arrow IPC by `Accept`.
Errors are JSON: `{"error": code, "detail": message}`.
"""


def create_app(
    store: evalstore.Store,
    settings: Settings | None = None,
    *,
    tokens: Tokens | str | os.PathLike[str] | None = None,
    **options: Any,
) -> FastAPI:
    """Return the HTTP app serving ``store`` (the process that runs it owns the file).

    ``settings`` (or keyword ``options`` overriding its fields: ``row_limit``,
    ``time_limit``, ``max_result_bytes``, ``read_workers``, ``read_queue``,
    ``memory_limit``, ``max_body_bytes``, ``max_sql_chars``, ``lockdown``, ``snapshot``,
    ``snapshot_every``, ``checkpoint_idle``, ``wal_limit``, ``group_commit``,
    ``group_max_requests``, ``group_max_rows``, ``ingest_queue``, ``journal``,
    ``journal_apply_every``, ``monitor_every``,
    ``monitor_debounce``, ``monitor_max_delay``, ``webhook_allow``) fix the limits; ``tokens``
    (a :class:`server.auth.Tokens` or a token file path) turn on bearer authentication.
    Unless ``lockdown=False`` the store's DuckDB instance gets external access disabled
    and its configuration locked (see :mod:`server.lockdown`): do this only for a store the
    server owns. A store in a file gets background checkpoints (:mod:`server.checkpointer`).
    """
    settings = settings or Settings()
    if tokens is not None and not isinstance(tokens, Tokens):
        tokens = Tokens.load(tokens)
    if tokens is not None:
        options["tokens"] = tokens
    if options.get("snapshot") is not None:
        options["snapshot"] = Path(options["snapshot"]).resolve()
    settings = replace(settings, **options)
    snapshot = None
    if settings.snapshot is not None:
        snapshot = SnapshotWriter(store, settings.snapshot, settings.snapshot_every)
    committer = None
    if settings.group_commit and not store.read_only:  # read-only: log_* says why not
        kind: Any = GroupCommitter
        extra: dict[str, Any] = {}
        if settings.journal and store.path is not None:
            kind, extra = JournaledCommitter, {"apply_every": settings.journal_apply_every}
        committer = kind(
            store,
            max_requests=settings.group_max_requests,
            max_rows=settings.group_max_rows,
            queue=settings.ingest_queue,
            retry_after=settings.retry_after,
            **extra,
        )
    # the loop's object serves POST …/monitors/run even when its thread is off
    monitors = MonitorLoop(
        store,
        0 if store.read_only else settings.monitor_every,
        debounce=settings.monitor_debounce,
        max_delay=settings.monitor_max_delay,
    )
    if committer is not None and monitors.every > 0:
        committer.on_commit = monitors.notify
    checkpointer = None
    if settings.checkpoint_idle is not None and store.path is not None:
        checkpointer = Checkpointer(store, settings.checkpoint_idle, settings.wal_limit)
        checkpointer.configure()
    apply_memory_limit(store.connection, settings.memory_limit)
    if settings.lockdown:
        # the BI snapshot is written by a DuckDB instance of its own (server.snapshot):
        # the serving instance needs no directory for it
        lock_down(store.connection, list(settings.allowed_directories))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if snapshot is not None:
            snapshot.start()
        if checkpointer is not None:
            checkpointer.start()
        if committer is not None:
            committer.start()
        monitors.start()
        try:
            yield
        finally:
            monitors.stop()  # after the running monitor; before the store closes
            reads.close()
            if committer is not None:
                committer.close()  # queued ingest is written before the store closes
            if checkpointer is not None:
                checkpointer.stop()
            if snapshot is not None:
                snapshot.stop()

    app = FastAPI(
        title="evalstore",
        version=evalstore.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI from local files: server.docs_ui
        redoc_url=None,
    )
    reads = ReadPool(
        settings.read_workers, settings.read_queue, settings.time_limit, settings.retry_after
    )
    app.state.store = store
    app.state.settings = settings
    app.state.reads = reads
    app.state.snapshot = snapshot
    app.state.checkpointer = checkpointer
    app.state.committer = committer
    app.state.monitor = Monitor(store)
    app.state.monitor.loop = monitors
    app.state.monitor.histograms = monitors.histograms
    app.state.monitor_loop = monitors
    app.add_middleware(FastIngest)  # innermost: the middlewares below apply to it too
    errors.install(app)
    install_docs_ui(app)
    openapi.install(app)
    app.include_router(store_router)
    app.include_router(flywheel_router)
    app.include_router(monitors_router)  # before GET /v1/models/{model}/{family}
    app.include_router(estimation_router)  # before GET /v1/models/{model}/{family}
    app.include_router(query_router)
    app.include_router(dashboard_router)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, monitor=app.state.monitor)
    return app


class RequestMetrics:
    """ASGI middleware timing each request by method, route template and status."""

    def __init__(self, app: Any, monitor: Monitor) -> None:
        self.app = app
        self.monitor = monitor

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.monitor.observe_request(
                scope["method"], template, status, time.perf_counter() - started
            )
