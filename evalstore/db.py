"""Small DuckDB helpers shared by the modules that write: transactions and single rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
