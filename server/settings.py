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
    ``time_limit``: seconds a ``POST /v1/sql`` statement may run before it is interrupted (408).
    ``lockdown``: disable DuckDB's external access on the store's database instance and lock
    its configuration (defence in depth for ``/v1/sql``); only ``allowed_directories``
    (the snapshot's directory) stay reachable, for the server's own writes.
    ``snapshot``: path of the read-only BI copy, refreshed every ``snapshot_every`` seconds.
    ``checkpoint_idle``: seconds without a commit after which the write-ahead log is folded
    into the store file on a background thread (``None``: leave it to DuckDB, which does it
    inside the commit that passes 16 MiB); ``wal_limit``: the log size at which DuckDB
    checkpoints inside a commit anyway (see :mod:`server.checkpointer`).
    """

    tokens: Tokens | None = None
    max_body_bytes: int = 512 * MiB
    max_sql_chars: int = 100_000
    row_limit: int = 1_000_000
    time_limit: float = 30.0
    lockdown: bool = True
    snapshot: Path | None = None
    snapshot_every: float = 60.0
    checkpoint_idle: float | None = 1.0
    wal_limit: str = "1GiB"
    allowed_directories: tuple[str, ...] = field(default_factory=tuple)
