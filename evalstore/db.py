"""Small DuckDB helpers shared by the modules that write: transactions and single rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: commit if it ends normally, else roll back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def one(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> tuple[Any, ...]:
    """The first row of ``sql``'s result, with the result fully consumed.

    DuckDB 2.0 streams results and an unfinished one blocks the connection's next
    ``con.sql()``; reading the whole (small) result releases it.
    """
    rows = con.execute(sql, params).fetchall()
    if not rows:
        raise LookupError(f"query returned no rows: {sql}")
    return rows[0]


def utc_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new connection to ``con``'s database (``con.cursor()``) showing times in UTC.

    ``TimeZone`` is a per-connection setting. It is only SET when it differs: a served
    store's configuration is locked, and then the cursor keeps the server's zone (the
    server sets UTC itself; times are the same instants, only their display differs).
    """
    cursor = con.cursor()
    zone = cursor.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    if zone != "UTC":
        with suppress(duckdb.Error):
            cursor.execute("SET TimeZone = 'UTC'")
    return cursor
