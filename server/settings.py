"""Server settings: limits, authentication and the BI snapshot, fixed when the app is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from server.auth import Tokens

MiB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """What :func:`server.create_app` needs besides the store.

    ``tokens``: bearer tokens with their scopes (``None``: no authentication, which
    :func:`server.serve.run` allows on loopback addresses only).
    ``max_body_bytes``: largest ingest body (JSON or Arrow IPC); larger requests get 413.
    ``max_sql_chars``: longest SQL text accepted by ``POST /v1/sql``.
    ``row_limit``: most rows ``POST /v1/sql`` returns; a larger result is a 422 (add a LIMIT).
    ``time_limit``: seconds a read (``POST /v1/sql``, a metric family, suggestions without
    recording, a selection or snapshot download) may run before its DuckDB work is
    interrupted (408 ``time_limit``).
    ``max_result_bytes``: largest result (Arrow buffer bytes) of a read; a larger one is
    refused with 422 ``result_too_large`` (counted while ``/v1/sql`` streams).
    ``read_workers``: reads running at once, on threads of their own (:mod:`server.workers`),
    so ``/healthz``, ingest and the registry always have a thread; ``read_queue``: reads
    waiting for a worker beyond those; a read beyond both gets 503 with ``Retry-After:
    retry_after`` (seconds).
    ``memory_limit``: DuckDB's ``memory_limit`` for the whole database instance, set when
    the app is built (before the configuration is locked). DuckDB has no per-connection
    memory limit, so this one cap covers request queries and ingest alike; the default
    (half the machine's memory, DuckDB's own default being 80%) leaves the rest for the
    Arrow buffers of ingest bodies and the Python side of the metrics. A query that needs
    more spills to the temporary directory or fails with DuckDB's out-of-memory error.
    ``None`` leaves DuckDB's setting alone.
    ``lockdown``: disable DuckDB's external access on the store's database instance and lock
    its configuration (defence in depth for ``/v1/sql``); only ``allowed_directories``
    stay reachable (none by default: the BI snapshot is written by a DuckDB instance of
    its own, see :mod:`server.snapshot`).
    ``snapshot``: path of the read-only BI copy, refreshed every ``snapshot_every`` seconds.
    ``checkpoint_idle``: seconds without a commit after which the write-ahead log is folded
    into the store file on a background thread (``None``: leave it to DuckDB, which does it
    inside the commit that passes 16 MiB); ``wal_limit``: the log size at which DuckDB
    checkpoints inside a commit anyway (see :mod:`server.checkpointer`).
    ``group_commit``: write concurrent ingest requests together, one transaction and one
    fsync for all the requests queued while the writer was busy (:mod:`server.group_commit`;
    each still validated alone, with its own batch id and receipt after the commit);
    ``False`` writes each request in its own transaction. ``group_max_requests`` and
    ``group_max_rows`` bound a group; ``ingest_queue`` bounds the requests waiting for the
    writer (beyond it: 503 with ``Retry-After``).
    ``journal``: with ``group_commit``, answer small ingest requests once they are in the
    durable journal ``<store>.journal`` and apply them to DuckDB in large transactions
    every ``journal_apply_every`` seconds (:mod:`server.journal`; a store file only).
    ``monitor_every``: seconds between two passes of the monitor loop over every model's
    monitors (:mod:`server.monitor_loop`; it also runs a model's monitors about a second
    after its ingest, and sends the notifications); 0 turns the loop off (monitors then
    run on ``POST /v1/models/{model}/monitors/run`` or from cron).
    ``monitor_debounce`` and ``monitor_max_delay``: after ingest, a model's monitors run
    ``monitor_debounce`` seconds after its last commit, and at the latest
    ``monitor_max_delay`` seconds after the first commit not yet evaluated (so a steady
    stream is evaluated every ``monitor_max_delay`` seconds plus the pass's own time);
    ``monitor_max_delay`` must be at least ``monitor_debounce``.
    ``webhook_allow``: host patterns (shell-style, e.g. ``hooks.slack.com``,
    ``*.corp.example``) a webhook channel created over HTTP may point to; empty: any host
    but loopback, private, link-local and reserved IP addresses
    (:func:`server.routes_monitors.check_webhook_url`).
    """

    tokens: Tokens | None = None
    max_body_bytes: int = 512 * MiB
    max_sql_chars: int = 100_000
    row_limit: int = 1_000_000
    time_limit: float = 30.0
    max_result_bytes: int = 256 * MiB
    read_workers: int = 4
    read_queue: int = 8
    retry_after: int = 1
    memory_limit: str | None = "50%"
    lockdown: bool = True
    snapshot: Path | None = None
    snapshot_every: float = 60.0
    checkpoint_idle: float | None = 1.0
    wal_limit: str = "1GiB"
    allowed_directories: tuple[str, ...] = field(default_factory=tuple)
    group_commit: bool = True
    group_max_requests: int = 1_000
    group_max_rows: int = 100_000
    ingest_queue: int = 10_000
    journal: bool = False
    journal_apply_every: float = 0.1
    monitor_every: float = 60.0
    monitor_debounce: float = 1.0
    monitor_max_delay: float = 5.0
    webhook_allow: tuple[str, ...] = field(default_factory=tuple)
