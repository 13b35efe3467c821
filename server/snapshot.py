"""The BI snapshot: a read-only copy of the store, refreshed atomically on an interval.

BI tools that embed DuckDB (Metabase, Superset via duckdb-engine, DBeaver, Tableau) cannot
open the live file while the server owns it, and their bundled DuckDB is often older. So the
server writes a copy for them:

1. ``ATTACH '<dir>/.<name>.tmp-<pid>' AS evalstore_bi_snapshot (STORAGE_VERSION 'v1.4.0')``:
   a new file in the storage format DuckDB 1.4 (and later) reads;
2. ``COPY FROM DATABASE <store> TO evalstore_bi_snapshot``: tables, views, sequences and the
   SQL macros, from one consistent MVCC snapshot of the store (ingest goes on meanwhile);
3. re-create the copy's views (:func:`rebind_views`) so DuckDB 1.4 binds them;
4. ``DETACH``, then ``os.replace`` onto the target: readers see the old copy or the new one,
   never a half-written file.

The copy runs on a cursor of its own, so it does not hold the store's write lock. Macros that
call evalstore's Python UDFs (drift p-values) need evalstore; everything else works in a
plain DuckDB.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from evalstore.identifiers import quote, quote_literal
from server.background import BackgroundLoop

log = logging.getLogger("evalstore.server")

#: The storage version of the copy: the oldest DuckDB line BI drivers commonly bundle.
STORAGE_VERSION = "v1.4.0"
ALIAS = "evalstore_bi_snapshot"


def rebind_views(cursor: Any, catalog: str) -> None:
    """Re-create the copy's views so their stored column types are current.

    DuckDB 2.0 re-binds a view whose tables gained columns (``features`` grows as new
    features arrive); DuckDB 1.4 refuses it ("Contents of view were altered"). Re-creating
    each view from its SQL in the copy stores the current types. Views depending on views
    are retried until all bind.
    """
    pending = [
        re.sub(r"^\s*CREATE\s+VIEW", "CREATE OR REPLACE VIEW", sql, flags=re.IGNORECASE)
        for (sql,) in cursor.execute(
            "SELECT sql FROM duckdb_views() WHERE database_name = ? AND NOT internal "
            "ORDER BY view_oid",
            [catalog],
        ).fetchall()
    ]
    while pending:
        failed, last_error = [], None
        for statement in pending:
            try:
                cursor.execute(statement)
            except duckdb.Error as error:
                failed.append(statement)
                last_error = error
        if len(failed) == len(pending):
            raise last_error  # type: ignore[misc]
        pending = failed


class SnapshotWriter(BackgroundLoop):
    """Writes ``target`` from ``store`` now (:meth:`refresh`) or every ``every`` seconds
    (:meth:`start` refreshes now and then every ``every`` seconds on a daemon thread)."""

    thread_name = "evalstore-snapshot"

    def __init__(self, store: Any, target: str | os.PathLike[str], every: float = 60.0) -> None:
        self.store = store
        self.target = Path(target).resolve()
        self.every = float(every)
        self.last: dict[str, Any] | None = None
        self.error: str | None = None
        super().__init__()
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, Any]:
        """Write a fresh copy and swap it in; return what was written."""
        with self._lock:
            started_at = datetime.now(UTC)
            started = time.perf_counter()
            self.target.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.target.with_name(f".{self.target.name}.tmp-{os.getpid()}")
            for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
                leftover.unlink(missing_ok=True)
            cursor = self.store.connection.cursor()
            try:
                (database,) = cursor.execute("SELECT current_database()").fetchone()
                cursor.execute(
                    f"ATTACH {quote_literal(str(temporary))} AS {ALIAS} "
                    f"(STORAGE_VERSION '{STORAGE_VERSION}')"
                )
                try:
                    cursor.execute(f"COPY FROM DATABASE {quote(database)} TO {ALIAS}")
                    cursor.execute(f"USE {ALIAS}")
                    try:
                        rebind_views(cursor, ALIAS)
                    finally:
                        cursor.execute(f"USE {quote(database)}")
                finally:
                    cursor.execute(f"DETACH {ALIAS}")
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            finally:
                cursor.close()
            os.replace(temporary, self.target)
            self.last = {
                "path": str(self.target),
                "started_at": started_at.isoformat(),
                "refreshed_at": datetime.now(UTC).isoformat(),
                "seconds": round(time.perf_counter() - started, 3),
                "bytes": self.target.stat().st_size,
                "storage_version": STORAGE_VERSION,
            }
            self.error = None
            return self.last

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as error:  # keep serving; report it on /healthz
                self.error = f"{type(error).__name__}: {error}"
                log.exception("BI snapshot refresh failed")
            with contextlib.suppress(Exception):
                self._stop.wait(self.every)

    def status(self) -> dict[str, Any]:
        return {"every_seconds": self.every, "last": self.last, "error": self.error}
