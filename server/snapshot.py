"""The BI snapshot: a read-only copy of the store, refreshed atomically on an interval.

BI tools that embed DuckDB (Metabase, Superset via duckdb-engine, DBeaver, Tableau) cannot
open the live file while the server owns it, and their bundled DuckDB is often older. So the
server writes a copy for them, without giving the serving DuckDB instance any access to the
file system (its ``allowed_directories`` stay empty, see :mod:`server.lockdown`):

1. a cursor of the store opens **one read transaction**: every statement below sees the same
   committed state while ingest goes on;
2. a fingerprint of that state (the last batch id, the system tables' contents, the
   catalog) is compared with the one of the last copy: when nothing changed the refresh is
   skipped (``status()["unchanged"]`` counts the skips);
3. a **separate DuckDB instance** in this process creates ``<dir>/.<name>.tmp-<pid>`` with
   ``storage_compatibility_version = 'v1.4.0'`` (a file DuckDB 1.4 and later reads). Only
   that instance touches the file system, and it never runs a user's SQL;
4. schemas, sequences (at their current value) and tables are created from the store's
   catalog, and every table streams from the store's cursor into the copy as Arrow record
   batches;
5. views are re-created from their SQL (bound by the copy, so DuckDB 1.4 reads their
   current column types), the SQL macros from ``sql/`` (:func:`evalstore.core.macros.sql_sources`,
   the files the served store was installed from), and table, view and column comments;
6. the copy is checkpointed and closed, then ``os.replace``-d onto the target: readers see
   the old copy or the new one, never a half-written file.

Macros that call evalstore's Python UDFs (drift p-values) need evalstore; everything else
works in a plain DuckDB.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from evalstore.core.identifiers import quote, quote_literal
from evalstore.core.macros import sql_sources
from server.background import BackgroundLoop

log = logging.getLogger("evalstore.server")

#: The storage version of the copy: the oldest DuckDB line BI drivers commonly bundle.
STORAGE_VERSION = "v1.4.0"
#: Rows per Arrow record batch streamed from the store into the copy.
BATCH_ROWS = 100_000


def rebind_views(con: Any, views: list[str]) -> None:
    """Create ``views`` (``CREATE VIEW`` statements) on ``con``, in an order that binds.

    A view that depends on a view not created yet fails; the failures are retried until
    all bind (or a round creates none, whose last error is raised).
    """
    pending = [
        re.sub(r"^\s*CREATE\s+VIEW", "CREATE OR REPLACE VIEW", sql, flags=re.IGNORECASE)
        for sql in views
    ]
    while pending:
        failed, last_error = [], None
        for statement in pending:
            try:
                con.execute(statement)
            except duckdb.Error as error:
                failed.append(statement)
                last_error = error
        if len(failed) == len(pending):
            raise last_error  # type: ignore[misc]
        pending = failed


def _rows(cursor: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return cursor.sql(sql, params=params).fetchall()


def fingerprint(cursor: Any, database: str) -> tuple[Any, ...]:
    """What a copy would contain, cheaply: the last batch id and the rows of every other
    system table (count and XOR of row digests), and the catalog's DDL.

    Model tables change only through batches (ingest, label corrections, replacements all
    commit one), so the last batch id stands for them.
    """
    tables = [
        name
        for (name,) in _rows(
            cursor,
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
            "AND schema_name = 'evalstore' AND table_name <> 'batches' ORDER BY table_name",
            [database],
        )
    ]
    parts = ["(SELECT max(batch_id) FROM evalstore.batches)"]
    parts += [
        f"(SELECT (count(*), bit_xor(md5_number(CAST(t AS VARCHAR)))) "
        f"FROM evalstore.{quote(name)} AS t)"
        for name in tables
    ]
    parts.append(
        "(SELECT bit_xor(md5_number(sql)) FROM (SELECT sql FROM duckdb_tables() "
        f"WHERE database_name = {quote_literal(database)} UNION ALL SELECT sql "
        f"FROM duckdb_views() WHERE database_name = {quote_literal(database)} "
        "AND NOT internal))"
    )
    (row,) = _rows(cursor, f"SELECT {', '.join(parts)}")
    return (tuple(tables), *row)


def _catalog(cursor: Any, database: str) -> dict[str, list[Any]]:
    """The store's schemas, sequences, tables, views and comments (one transaction)."""
    where = "WHERE database_name = ? AND NOT internal"
    return {
        "schemas": _rows(
            cursor,
            f"SELECT schema_name FROM duckdb_schemas() {where} ORDER BY oid",
            [database],
        ),
        "sequences": _rows(
            cursor,
            "SELECT schema_name, sequence_name, start_value, increment_by, min_value, "
            "max_value, cycle, last_value FROM duckdb_sequences() WHERE database_name = ? "
            "AND NOT temporary ORDER BY sequence_oid",
            [database],
        ),
        "tables": _rows(
            cursor,
            f"SELECT schema_name, table_name, sql, comment FROM duckdb_tables() {where} "
            "ORDER BY table_oid",
            [database],
        ),
        "views": _rows(
            cursor,
            f"SELECT schema_name, view_name, sql, comment FROM duckdb_views() {where} "
            "ORDER BY view_oid",
            [database],
        ),
        "columns": _rows(
            cursor,
            "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
            f"{where} AND comment IS NOT NULL",
            [database],
        ),
    }


def _sequence_sql(row: tuple[Any, ...]) -> str:
    schema, name, start, step, low, high, cycle, last = row
    following = start if last is None else last + step
    return (
        f"CREATE SEQUENCE {quote(schema)}.{quote(name)} INCREMENT BY {int(step)} "
        f"MINVALUE {int(low)} MAXVALUE {int(high)} START {int(following)}"
        + (" CYCLE" if cycle else "")
    )


def write_copy(cursor: Any, database: str, target: Path) -> None:
    """Write the state ``cursor`` sees (inside its open transaction) to a new file
    ``target`` readable by DuckDB 1.4, through a DuckDB instance of its own."""
    catalog = _catalog(cursor, database)
    copy = duckdb.connect(str(target), config={"storage_compatibility_version": STORAGE_VERSION})
    try:
        for (schema,) in catalog["schemas"]:
            copy.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        for row in catalog["sequences"]:
            copy.execute(_sequence_sql(row))
        for schema, table, ddl, _ in catalog["tables"]:
            copy.execute(ddl)
            name = quote(schema) + "." + quote(table)
            reader = cursor.sql(f"SELECT * FROM {name}").to_arrow_reader(BATCH_ROWS)
            copy.register("evalstore_snapshot_rows", reader)
            try:
                copy.execute(f"INSERT INTO {name} SELECT * FROM evalstore_snapshot_rows")
            finally:
                copy.unregister("evalstore_snapshot_rows")
        rebind_views(copy, [sql for _, _, sql, _ in catalog["views"]])
        for text in sql_sources().values():
            copy.execute(text)
        for kind, rows in (("TABLE", catalog["tables"]), ("VIEW", catalog["views"])):
            for schema, name, _, comment in rows:
                if comment:
                    copy.execute(
                        f"COMMENT ON {kind} {quote(schema)}.{quote(name)} "
                        f"IS {quote_literal(comment)}"
                    )
        for schema, table, column, comment in catalog["columns"]:
            copy.execute(
                f"COMMENT ON COLUMN {quote(schema)}.{quote(table)}.{quote(column)} "
                f"IS {quote_literal(comment)}"
            )
        copy.execute("CHECKPOINT")
    finally:
        copy.close()


@contextlib.contextmanager
def read_transaction(store: Any) -> Iterator[Any]:
    """A cursor of ``store`` inside one transaction (rolled back at the end: it only reads)."""
    cursor = store.connection.cursor()
    try:
        cursor.execute("BEGIN TRANSACTION")
        try:
            yield cursor
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
    finally:
        cursor.close()


class SnapshotWriter(BackgroundLoop):
    """Writes ``target`` from ``store`` now (:meth:`refresh`) or every ``every`` seconds
    (:meth:`start` refreshes now and then every ``every`` seconds on a daemon thread),
    skipping a refresh when nothing was committed since the last copy."""

    thread_name = "evalstore-snapshot"

    def __init__(self, store: Any, target: str | os.PathLike[str], every: float = 60.0) -> None:
        self.store = store
        self.target = Path(target).resolve()
        self.every = float(every)
        self.last: dict[str, Any] | None = None
        self.error: str | None = None
        self.checked_at: str | None = None
        self.unchanged = 0
        self._written: tuple[Any, ...] | None = None
        super().__init__()
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> dict[str, Any] | None:
        """Write a fresh copy and swap it in; return what was written.

        Returns ``None`` (and writes nothing) when the store holds the same committed state
        as the last copy and the copy is still in place, unless ``force``.
        """
        with self._lock:
            started_at = datetime.now(UTC)
            started = time.perf_counter()
            self.target.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.target.with_name(f".{self.target.name}.tmp-{os.getpid()}")
            with read_transaction(self.store) as cursor:
                ((database,),) = _rows(cursor, "SELECT current_database()")
                state = fingerprint(cursor, database)
                if not force and state == self._written and self.target.exists():
                    self.unchanged += 1
                    self.checked_at = started_at.isoformat()
                    return None
                for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
                    leftover.unlink(missing_ok=True)
                try:
                    write_copy(cursor, database, temporary)
                except BaseException:
                    temporary.unlink(missing_ok=True)
                    temporary.with_name(temporary.name + ".wal").unlink(missing_ok=True)
                    raise
            os.replace(temporary, self.target)
            self._written = state
            self.checked_at = started_at.isoformat()
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
        """``every_seconds``, the ``last`` copy written, the last ``error``, ``checked_at``
        (the start of the last completed refresh: the copy holds everything committed
        before it) and how many checks found the store ``unchanged`` (no copy written)."""
        return {
            "every_seconds": self.every,
            "last": self.last,
            "error": self.error,
            "checked_at": self.checked_at,
            "unchanged": self.unchanged,
        }
