"""The gate of ``POST /v1/sql``: one read-only SELECT of allowed functions, checked as it runs.

:func:`check_query` parses the text with sqlglot in the caller's ``dialect`` and renders it
as DuckDB SQL (comments dropped). sqlglot refuses early, with a clear message, every
statement that is not one ``SELECT`` (including ``WITH … SELECT`` and set operations):
DDL, DML (also inside a CTE), COPY, ATTACH/DETACH, INSTALL/LOAD, PRAGMA, SET/RESET, CALL,
EXPORT/IMPORT DATABASE, USE, CHECKPOINT, VACUUM, transactions, DESCRIBE/SUMMARIZE/EXPLAIN.

The authoritative check is then made on the DuckDB text that will run, as DuckDB itself
parses it (:mod:`evalstore.core.sql_policy`): an *allow-list* of read-only functions and table
functions, the store's own ``evalstore.*`` macros (with literal relation names), the
store's tables and views, and nothing DuckDB could read as a file or URL. Whatever a
dialect's transpilation produces (``CONCAT('x.csv')`` in MySQL becomes ``FROM 'x.csv'``),
it is what gets checked. Brackets nested deeper than
:data:`~evalstore.core.sql_policy.MAX_NESTING` are refused before parsing, and any failure of
sqlglot on odd input is a 400, never a server error.

This is the first line of defence; the second is the locked DuckDB configuration
(:mod:`server.lockdown`), under which a statement that slipped through still cannot reach
the file system.

>>> check_query("SELECT model, count(*) AS n FROM evalstore.models GROUP BY model")
'SELECT model, COUNT(*) AS n FROM evalstore.models GROUP BY model'
>>> check_query("SELECT DATE_TRUNC('day', ts) AS day FROM t LIMIT 5", dialect="postgres")
"SELECT DATE_TRUNC('DAY', ts) AS day FROM t LIMIT 5"
>>> check_query("DROP TABLE evalstore.models")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
server.errors.ApiError: only a single read-only SELECT ... this is a DROP statement
>>> check_query("SELECT setval('evalstore.batch_ids', 1)")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
server.errors.ApiError: function setval() is not allowed: it changes a sequence; ...
"""

from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from evalstore.core.sql_policy import MAX_NESTING, Policy, UnsafeSqlError, check_nesting, check_sql
from server.errors import ApiError

#: sqlglot dialect names accepted for ``dialect`` (DuckDB itself when omitted).
DIALECTS = tuple(sorted(d.value for d in sqlglot.Dialects if d.value))

#: Statement node types refused wherever they appear in the tree (e.g. DELETE inside a CTE).
_DENIED_NAMES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Copy",
    "Attach", "Detach", "Pragma", "Set", "Use", "Transaction", "Commit", "Rollback",
    "Install", "Describe", "Summarize", "Export", "Grant", "Revoke", "Kill", "Refresh",
    "Cache", "Uncache", "LoadData", "TruncateTable", "Analyze",
)  # fmt: skip
DENIED_NODES = tuple(getattr(exp, name) for name in _DENIED_NAMES if hasattr(exp, name))

ONLY_SELECT = "only a single read-only SELECT (or WITH … SELECT) statement is accepted"


def reject(code: str, detail: str) -> ApiError:
    return ApiError(400, code, detail)


def check_query(
    sql: str, dialect: str | None = None, con: duckdb.DuckDBPyConnection | None = None
) -> str:
    """Return the DuckDB SQL to run for ``sql`` or raise :class:`ApiError` (400) saying why.

    ``dialect`` (postgres, mysql, bigquery, snowflake, spark, trino, …) is the dialect the
    text is written in; it is transpiled to DuckDB. Parameters stay placeholders (``?`` or
    ``$1``/``$name``); bind values separately. ``con`` is the store's connection: its
    macros and catalog name are allowed (without it, the macros of the installed ``sql/``
    files, and no catalog qualifier).
    """
    read = (dialect or "duckdb").lower()
    if read not in DIALECTS:
        raise reject(
            "unknown_dialect",
            f"dialect {dialect!r} is not known to sqlglot; use one of: {', '.join(DIALECTS)}",
        )
    if not isinstance(sql, str) or not sql.strip():
        raise reject("empty_query", "the 'sql' field is empty; send one SELECT statement")
    tokens = _tokens(sql, read)
    try:
        check_nesting((token.text for token in tokens), "the query")
    except UnsafeSqlError as error:
        raise reject(error.code, str(error)) from None
    first = tokens[0].text.upper() if tokens else None
    tree = _parse(sql, read, first)
    root = tree.this if isinstance(tree, exp.Subquery) else tree
    if not isinstance(root, exp.Select | exp.SetOperation):
        raise reject(
            "statement_not_allowed",
            f"{ONLY_SELECT}; this is a {first or root.key.upper()} statement",
        )
    for node in tree.walk():
        if isinstance(node, DENIED_NODES):
            kind = node.key.upper()
            raise reject(
                "statement_not_allowed", f"{ONLY_SELECT}; the query contains a {kind} statement"
            )
    duck = _generate(tree, read)
    try:
        check_sql(duck, Policy.for_store(con))
    except UnsafeSqlError as error:
        raise reject(error.code, str(error)) from None
    return duck


def _tokens(sql: str, read: str) -> list:
    """sqlglot's tokens of ``sql``; any tokenizer failure is the caller's parse error."""
    try:
        return sqlglot.tokenize(sql, read=read)
    except RecursionError:
        raise _too_complex() from None
    except Exception as error:  # sqlglot raises more than SqlglotError on odd input
        raise reject(
            "parse_error", f"cannot tokenize the query as {read} SQL: {_first_line(error)}"
        ) from None


def _parse(sql: str, read: str, first: str | None) -> exp.Expression:
    """The one statement of ``sql``; every failure of sqlglot becomes a 400."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except SqlglotError as error:
        if first and first not in ("SELECT", "WITH", "FROM", "(", "VALUES", "TABLE"):
            raise reject(
                "statement_not_allowed", f"{ONLY_SELECT}; this is a {first} statement"
            ) from None
        raise reject(
            "parse_error", f"cannot parse the query as {read} SQL: {_first_line(error)}"
        ) from None
    except RecursionError:
        raise _too_complex() from None
    except Exception as error:  # internal errors of sqlglot's parsers (e.g. VAR_MAP('x'))
        raise reject(
            "parse_error",
            f"cannot parse the query as {read} SQL ({type(error).__name__}: "
            f"{_first_line(error)}); check the arguments of its functions",
        ) from None
    if len(statements) != 1:
        raise reject("statement_not_allowed", f"{ONLY_SELECT}; got {len(statements)} statements")
    return statements[0]


def _generate(tree: exp.Expression, read: str) -> str:
    """DuckDB SQL for ``tree``; a failure of sqlglot's transpiler becomes a 400."""
    try:
        return tree.sql(dialect="duckdb", comments=False, unsupported_level=ErrorLevel.RAISE)
    except RecursionError:
        raise _too_complex() from None
    except Exception as error:
        raise reject(
            "parse_error",
            f"cannot translate the query from {read} to DuckDB SQL: {_first_line(error)}; "
            "write it in DuckDB SQL (no dialect) or simplify it",
        ) from None


def _too_complex() -> ApiError:
    return reject(
        "too_complex",
        f"the query is nested too deeply to check (at most {MAX_NESTING} levels); flatten "
        "it, e.g. with a WITH clause",
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
