"""The gate of ``POST /v1/sql``: one read-only SELECT, nothing that touches files or the network.

:func:`check_query` parses the text with sqlglot (in the caller's ``dialect``, transpiled to
DuckDB) and accepts exactly one ``SELECT`` (including ``WITH … SELECT`` and set operations
such as ``UNION``). It rejects:

- every other statement kind: DDL (CREATE, ALTER, DROP), DML (INSERT, UPDATE, DELETE, MERGE,
  also inside a CTE), COPY, ATTACH/DETACH, INSTALL/LOAD, PRAGMA, SET/RESET, CALL,
  EXPORT/IMPORT DATABASE, USE, CHECKPOINT, VACUUM, transactions, DESCRIBE/SUMMARIZE/EXPLAIN;
- functions that read files or reach the network (``read_csv``, ``read_parquet``,
  ``read_json``, ``read_text``, ``read_blob``, ``glob``, ``parquet_scan``, ``sqlite_scan``,
  ``query``/``query_table`` which run SQL given as text, ``getenv`` …);
- table references that look like file paths or URLs (``FROM 'data.csv'``), which DuckDB
  would otherwise read through a replacement scan.

The statement that runs is sqlglot's re-generation of the checked tree (comments dropped),
confirmed by DuckDB's own parser to be a single SELECT, so what was checked is what runs.
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
"""

from __future__ import annotations

import re

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from server.errors import ApiError

#: sqlglot dialect names accepted for ``dialect`` (DuckDB itself when omitted).
DIALECTS = tuple(sorted(d.value for d in sqlglot.Dialects if d.value))

#: Functions refused by name (lower case), whether called as table or scalar functions.
DENIED_FUNCTIONS = frozenset(
    {
        "read_csv",
        "read_csv_auto",
        "sniff_csv",
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
        "parquet_bloom_probe",
        "read_json",
        "read_json_auto",
        "read_json_objects",
        "read_json_objects_auto",
        "read_ndjson",
        "read_ndjson_auto",
        "read_ndjson_objects",
        "read_text",
        "read_blob",
        "read_xlsx",
        "glob",
        "st_read",
        "st_read_meta",
        "sqlite_scan",
        "sqlite_attach",
        "postgres_scan",
        "postgres_attach",
        "postgres_query",
        "mysql_scan",
        "mysql_query",
        "iceberg_scan",
        "iceberg_metadata",
        "iceberg_snapshots",
        "delta_scan",
        "query",
        "query_table",
        "getenv",
        "duckdb_secrets",
        "which_secret",
        "load_aws_credentials",
        "ducklake_snapshots",
    }
)
#: Function name prefixes refused (readers, scanners and network clients of extensions).
DENIED_PREFIXES = (
    "read_",
    "parquet_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "iceberg_",
    "delta_",
    "http_",
    "ducklake_",
    "pragma_",
    "azure_",
    "gcs_",
    "s3_",
    "st_read",
)

#: Statement node types refused wherever they appear in the tree (e.g. DELETE inside a CTE).
_DENIED_NAMES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Copy",
    "Attach", "Detach", "Pragma", "Set", "Use", "Transaction", "Commit", "Rollback",
    "Install", "Describe", "Summarize", "Export", "Grant", "Revoke", "Kill", "Refresh",
    "Cache", "Uncache", "LoadData", "TruncateTable", "Analyze",
)  # fmt: skip
DENIED_NODES = tuple(getattr(exp, name) for name in _DENIED_NAMES if hasattr(exp, name))

#: A table name that DuckDB would resolve as a file or URL through a replacement scan.
PATH_LIKE = re.compile(r"[./\\:~*?]|^(?:https?|s3|gs|gcs|az|hf|file)$", re.IGNORECASE)

ONLY_SELECT = "only a single read-only SELECT (or WITH … SELECT) statement is accepted"


def reject(code: str, detail: str) -> ApiError:
    return ApiError(400, code, detail)


def check_query(sql: str, dialect: str | None = None) -> str:
    """Return the DuckDB SQL to run for ``sql`` or raise :class:`ApiError` (400) saying why.

    ``dialect`` (postgres, mysql, bigquery, snowflake, spark, trino, …) is the dialect the
    text is written in; it is transpiled to DuckDB. Parameters stay placeholders (``?`` or
    ``$1``/``$name``); bind values separately.
    """
    read = (dialect or "duckdb").lower()
    if read not in DIALECTS:
        raise reject(
            "unknown_dialect",
            f"dialect {dialect!r} is not known to sqlglot; use one of: {', '.join(DIALECTS)}",
        )
    if not sql or not sql.strip():
        raise reject("empty_query", "the 'sql' field is empty; send one SELECT statement")
    first = _first_keyword(sql, read)
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except SqlglotError as error:
        if first and first not in ("SELECT", "WITH", "FROM", "(", "VALUES", "TABLE"):
            raise reject(
                "statement_not_allowed", f"{ONLY_SELECT}; this is a {first} statement"
            ) from None
        message = str(error).splitlines()[0]
        raise reject("parse_error", f"cannot parse the query as {read} SQL: {message}") from None
    if len(statements) != 1:
        raise reject("statement_not_allowed", f"{ONLY_SELECT}; got {len(statements)} statements")
    tree = statements[0]
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
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
                raise reject(
                    "function_not_allowed",
                    f"function {name}() reads files, the network or SQL text and is not allowed "
                    "through /v1/sql; query the store's tables, views and macros instead",
                )
        if (
            isinstance(node, exp.Table)
            and isinstance(node.this, exp.Identifier)
            and PATH_LIKE.search(node.name)
        ):
            raise reject(
                "file_access_not_allowed",
                f"table {node.name!r} looks like a file path or URL; only the store's "
                "tables and views can be queried (e.g. evalstore.models, <model>.evaluations)",
            )
    duck = tree.sql(dialect="duckdb", comments=False)
    _confirm_with_duckdb(duck)
    return duck


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    names = type(node).sql_names()
    return names[0].lower() if names else node.key.lower()


def _first_keyword(sql: str, read: str) -> str | None:
    try:
        tokens = sqlglot.tokenize(sql, read=read)
    except SqlglotError:
        return None
    return tokens[0].text.upper() if tokens else None


def _confirm_with_duckdb(sql: str) -> None:
    """DuckDB's parser must also see exactly one SELECT in the text that will run."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise reject("parse_error", f"DuckDB cannot parse the query: {error}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise reject("statement_not_allowed", ONLY_SELECT)
