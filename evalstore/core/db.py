"""Small DuckDB helpers: transactions (also one snapshot for reads), cleanup and single rows."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import duckdb

#: Connections with a transaction opened by :func:`transaction` (for nesting).
_open_transactions: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: commit if it ends normally, else roll back.

    Reads use it too: every statement of the block sees the same snapshot (DuckDB's
    MVCC), so rows counted by one statement are the rows another one reads, whatever
    commits meanwhile. A block inside another ``transaction`` on the same connection
    joins the outer one (DuckDB has no nested transactions). A failing ROLLBACK never
    replaces the error that caused it.
    """
    if con in _open_transactions:
        yield
        return
    con.execute("BEGIN TRANSACTION")
    _open_transactions.add(con)
    try:
        yield
    except BaseException:
        _open_transactions.discard(con)
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    _open_transactions.discard(con)
    con.execute("COMMIT")


class Cleanup:
    """Undo actions (drop a temporary view, unregister a table) run when a block ends.

    Actions run last added first. When the block raised, their own errors are
    suppressed so the original error propagates (a failed statement aborts DuckDB's
    transaction, and every cleanup statement after it fails too); when it ended
    normally, every action runs and the first error is raised.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> with Cleanup() as later:
    ...     con.execute("CREATE TEMP VIEW v AS SELECT 1 AS x")  # doctest: +ELLIPSIS
    ...     later.add(con.execute, "DROP VIEW v")
    <...>
    >>> con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v'").fetchall()
    [(0,)]
    """

    def __init__(self) -> None:
        self._actions: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def add(self, action: Callable[..., object], *args: Any) -> None:
        """Run ``action(*args)`` when the block ends."""
        self._actions.append((action, args))

    def __enter__(self) -> Cleanup:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        actions, self._actions = self._actions[::-1], []
        if error is not None:
            for action, args in actions:
                with suppress(Exception):
                    action(*args)
            return
        with ExitStack() as stack:  # runs every action even if one fails
            for action, args in reversed(actions):
                stack.callback(action, *args)


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


#: A double-quoted identifier or a single-quoted string literal (doubled quotes escape).
_QUOTED = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'')


def used_params(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    r"""The named parameters (``$name``) that ``sql`` mentions: DuckDB rejects unused ones,
    so a query built from optional parts binds only the parameters of the parts it kept.

    A ``$name`` inside a quoted identifier (a column named ``"$received_at"``) or a string
    literal is not a parameter: quoted parts are removed before looking.

    >>> sorted(used_params('SELECT "$a", \'$b\', $c', {"a": 1, "b": 2, "c": 3}))
    ['c']
    """
    unquoted = _QUOTED.sub(" ", sql)
    mentioned = set(re.findall(r"\$(\w+)", unquoted))
    return {key: value for key, value in params.items() if key in mentioned}


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
