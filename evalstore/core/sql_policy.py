"""What SQL a user may run: one allow-list, checked on the text exactly as DuckDB will run it.

Everything a request or a caller can send as SQL (``POST /v1/sql``, ``where=`` and ``by=``
predicates, slice predicates) is untrusted. sqlglot parses the caller's dialect and
renders DuckDB SQL; this module then checks *that DuckDB text*, as parsed by DuckDB itself
(``json_serialize_sql`` on a private in-memory connection, the SQL bound as a parameter),
by walking DuckDB's own syntax tree:

- every function call (scalar, aggregate, window) must be on :data:`ALLOWED_FUNCTIONS`, a
  Python UDF of the store (:data:`STORE_UDFS`) or a macro of the store's ``evalstore`` schema;
- every table function must be on :data:`ALLOWED_TABLE_FUNCTIONS` or a store macro;
- every table reference must be a plain name (nothing DuckDB could read as a file or URL
  through a replacement scan), in the store's catalog, and not a system view outside
  :data:`SAFE_SYSTEM_VIEWS` (``pg_settings`` and ``duckdb_databases`` show settings and
  paths);
- the arguments of store macros that name a relation (``model``, ``source``, …, see
  :data:`RELATION_PARAMETERS`) must be a model name (literal or bound parameter) or a
  literal ``<model>.<relation>`` of :data:`MODEL_RELATIONS` / ``evalstore.<system table>``,
  because the macros reach them through ``query_table`` (which reads ``'x.csv'`` as a
  file); the helpers that take any relation name (:data:`HELPER_MACROS`) are refused;
- every statement, query node, table reference kind and expression class must be one the
  module knows to be read-only.

Anything not listed is refused: sequences (``nextval``, ``setval``), ``checkpoint``,
``sleep_ms``, file readers, ``glob``, ``query``/``query_table``, serialized-SQL execution,
settings, ``getenv``, pragmas, extension loaders and every function DuckDB adds later.
The lists are literal data in :mod:`evalstore.core.sql_allowlist`; this module holds the
checker, the parser connection and the store's macros.

>>> check_sql("SELECT abs(-1) AS one")
>>> check_sql("SELECT nextval('evalstore.batch_ids')")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
evalstore.core.sql_policy.UnsafeSqlError: function nextval() is not allowed: it changes a...
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import duckdb

from evalstore.core.sql_allowlist import (
    ALLOWED_FUNCTIONS,
    ALLOWED_TABLE_FUNCTIONS,
    HELPER_MACROS,
    MODEL_RELATIONS,
    RELATION_PARAMETERS,
    SAFE_SYSTEM_VIEWS,
    STORE_UDFS,
    SYSTEM_TABLES,
    refusal_reason,
)
from evalstore.errors import InvalidParameterError

# --------------------------------------------------------------------------------------------
# What the checker knows of DuckDB's syntax tree (the allow-list itself: sql_allowlist)
# --------------------------------------------------------------------------------------------

#: Names the builtin functions may be qualified with.
_BUILTIN_SCHEMAS = frozenset({"", "main", "pg_catalog"})
_BUILTIN_CATALOGS = frozenset({"", "system"})
#: Schemas and catalogs of DuckDB itself, never the store's.
_SYSTEM_NAMES = frozenset({"system", "temp", "pg_catalog", "information_schema"})

#: Query nodes, table references and expression classes of a read-only SELECT.
_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "CTE_NODE", "RECURSIVE_CTE_NODE"})
_TABLE_REFS = frozenset(
    {"BASE_TABLE", "SUBQUERY", "JOIN", "TABLE_FUNCTION", "EXPRESSION_LIST", "EMPTY", "PIVOT"}
)
#: Every table reference kind DuckDB has (the ones above are the allowed subset).
_ALL_TABLE_REFS = _TABLE_REFS | {
    "SHOW_REF", "COLUMN_DATA", "DELIM_GET", "CTE", "BOUND_TABLE_REF", "INVALID",
}  # fmt: skip
_EXPRESSIONS = frozenset(
    {
        "BETWEEN", "CASE", "CAST", "COLLATE", "COLUMN_REF", "COMPARISON", "CONJUNCTION",
        "CONSTANT", "FUNCTION", "LAMBDA", "LAMBDA_REF", "OPERATOR", "PARAMETER",
        "POSITIONAL_REFERENCE", "STAR", "SUBQUERY", "TYPE", "WINDOW",
    }
)  # fmt: skip

#: A name DuckDB could resolve through a replacement scan (a file, a glob or a URL).
_PATH_LIKE = re.compile(r"[./\\:~*?\[\]{}$%]|^(?:https?|s3|gs|gcs|az|hf|file)$", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Deepest bracket nesting accepted in user SQL (deeper input is refused before parsing:
#: sqlglot's recursive descent would exhaust Python's stack around 40 levels).
MAX_NESTING = 32


class UnsafeSqlError(InvalidParameterError):
    """SQL sent by a user does something the allow-list does not permit.

    ``code`` says what kind of refusal it is: ``function_not_allowed``,
    ``file_access_not_allowed``, ``table_not_allowed``, ``statement_not_allowed``,
    ``too_complex`` or ``parse_error``.
    """

    def __init__(
        self, code: str, message: str, function: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        #: the refused function (qualified as written) and why, when a function is the cause
        self.function = function
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    """What one store allows: its macros (name -> parameter lists) and its catalog name."""

    macros: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    catalog: str | None = None

    @classmethod
    def for_store(cls, con: duckdb.DuckDBPyConnection | None = None) -> Policy:
        """The policy of the store open on ``con`` (its installed macros and catalog).

        The macros are read once per catalog name (``duckdb_functions()`` takes tens of
        milliseconds) and kept for the process: they are installed when a store is opened.
        Without a connection: the macros of the installed ``sql/`` files, no catalog name
        (table references must then be unqualified by catalog).
        """
        if con is None:
            return Policy(macros=installed_macros())
        cursor = con.cursor()  # the connection may be serving other threads
        try:
            catalog = cursor.execute("SELECT current_database()").fetchone()[0]
            macros = _macros.get(catalog)
            if macros is None:
                macros = _read_macros(cursor)
                if macros:  # a connection without the store's macros is not remembered
                    _macros[catalog] = macros
        finally:
            cursor.close()
        return Policy(macros=macros, catalog=catalog)


def _read_macros(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[tuple[str, ...], ...]]:
    rows = con.execute(
        "SELECT function_name, parameters FROM duckdb_functions() "
        "WHERE schema_name = 'evalstore' AND database_name = current_database() "
        "AND function_type IN ('macro', 'table_macro')"
    ).fetchall()
    return _group(rows)


def _group(rows: Iterable[tuple[str, Iterable[str]]]) -> dict[str, tuple[tuple[str, ...], ...]]:
    macros: dict[str, list[tuple[str, ...]]] = {}
    for name, params in rows:
        macros.setdefault(name.lower(), []).append(tuple(p.lower() for p in params or ()))
    return {name: tuple(overloads) for name, overloads in macros.items()}


@lru_cache(maxsize=1)
def installed_macros() -> dict[str, tuple[tuple[str, ...], ...]]:
    """``{macro name: (parameter names, …)}`` of every ``evalstore.*`` macro in ``sql/``."""
    from evalstore.core.macros import sql_sources

    header = re.compile(r"CREATE\s+OR\s+REPLACE\s+MACRO\s+evalstore\.(\w+)\s*\(([^)]*)\)", re.I)
    rows = []
    for text in sql_sources().values():
        for name, params in header.findall(text):
            rows.append((name, [p.strip() for p in params.split(",") if p.strip()]))
    return _group(rows)


# --------------------------------------------------------------------------------------------
# DuckDB's parse of the text that will run
# --------------------------------------------------------------------------------------------

#: Macros read from stores, by catalog name.
_macros: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {}
_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _duckdb_parse(sql: str) -> dict[str, Any]:
    """DuckDB's syntax tree of ``sql`` as JSON, from a private, locked in-memory instance."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(
                ":memory:",
                config={"enable_external_access": False, "autoload_known_extensions": False},
            )
            _parser.execute("SET lock_configuration = true")
        text = _parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    try:
        return json.loads(text)
    except RecursionError:
        raise _too_deep() from None


@lru_cache(maxsize=1)
def system_views() -> frozenset[str]:
    """``schema.view`` of every internal view of DuckDB (``main.duckdb_databases``, …)."""
    with duckdb.connect(":memory:") as con:
        rows = con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() WHERE internal"
        ).fetchall()
    return frozenset(f"{schema}.{view}".lower() for schema, view in rows)


def _too_deep() -> UnsafeSqlError:
    return UnsafeSqlError(
        "too_complex",
        f"the SQL is nested too deeply (more than {MAX_NESTING} levels); flatten it, e.g. "
        "with a WITH clause",
    )


def check_nesting(tokens: Iterable[str], what: str = "the SQL") -> None:
    """Refuse ``tokens`` (token texts) whose brackets nest deeper than :data:`MAX_NESTING`."""
    depth = 0
    for token in tokens:
        if token in ("(", "[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                raise UnsafeSqlError(
                    "too_complex",
                    f"{what} nests brackets more than {MAX_NESTING} deep; flatten it (fewer "
                    "nested calls or parentheses; in a query, a WITH clause can help)",
                )
        elif token in (")", "]", "}"):
            depth -= 1


def check_sql(sql: str, policy: Policy | None = None) -> None:
    """Refuse (:class:`UnsafeSqlError`) unless ``sql`` is one read-only SELECT the policy allows.

    ``sql`` is DuckDB SQL, exactly the text that will run.
    """
    statement = _one_statement(sql)
    _walk(statement, policy or Policy.for_store(), expression_only=False)


def check_expression(sql: str, policy: Policy | None = None) -> None:
    """Refuse unless ``sql`` is one scalar expression of allowed functions (no subquery).

    ``sql`` is DuckDB SQL, exactly the text that will be placed in a ``WHERE``.
    """
    statement = _one_statement(f"SELECT {sql}")
    node = statement["node"]
    if (
        node.get("type") != "SELECT_NODE"
        or len(node.get("select_list", ())) != 1
        or node.get("from_table", {}).get("type") != "EMPTY"
        or any(node.get(k) for k in ("where_clause", "having", "qualify", "group_expressions"))
        or node.get("cte_map", {}).get("map")
        or node.get("modifiers")
    ):
        raise UnsafeSqlError("statement_not_allowed", "must be a single expression")
    _walk(node["select_list"][0], policy or Policy.for_store(), expression_only=True)


def _one_statement(sql: str) -> dict[str, Any]:
    parsed = _duckdb_parse(sql)
    if parsed.get("error"):
        message = str(parsed.get("error_message", "")).strip()
        if parsed.get("error_type") == "not implemented":
            raise UnsafeSqlError(
                "statement_not_allowed",
                "only a single read-only SELECT (or WITH … SELECT) statement is accepted",
            )
        if "depth" in message.lower():
            raise _too_deep()
        raise UnsafeSqlError("parse_error", f"DuckDB cannot parse the SQL: {message}")
    statements = parsed.get("statements", [])
    if len(statements) != 1:
        raise UnsafeSqlError(
            "statement_not_allowed",
            "only a single read-only SELECT (or WITH … SELECT) statement is accepted; "
            f"got {len(statements)} statements",
        )
    return statements[0]


def _walk(root: Any, policy: Policy, expression_only: bool) -> None:
    """Check every node under ``root`` (iteratively: no recursion limit to hit)."""
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, as_table = stack.pop()
        if isinstance(node, list):
            stack.extend((item, False) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("class")
        if kind is not None:
            _check_expression_node(node, kind, policy, expression_only, as_table)
        else:
            _check_other_node(node, policy, expression_only)
        for key, value in node.items():
            as_table_function = node.get("type") == "TABLE_FUNCTION" and key == "function"
            stack.append((value, as_table_function))


def _check_expression_node(
    node: dict[str, Any], kind: str, policy: Policy, expression_only: bool, as_table: bool
) -> None:
    if kind not in _EXPRESSIONS or (expression_only and kind == "SUBQUERY"):
        raise UnsafeSqlError(
            "statement_not_allowed",
            "subqueries are not allowed here" if kind == "SUBQUERY" else
            f"the SQL contains a {kind.lower()} expression, which is not allowed",
        )  # fmt: skip
    if kind in ("FUNCTION", "WINDOW"):
        _check_function(node, policy, as_table)


def _check_function(node: dict[str, Any], policy: Policy, as_table: bool) -> None:
    name = str(node.get("function_name", "")).lower()
    schema = str(node.get("schema", "")).lower()
    catalog = str(node.get("catalog", "")).lower()
    if schema == "evalstore" and catalog in ("", (policy.catalog or "").lower()):
        if name not in policy.macros:
            raise UnsafeSqlError(
                "function_not_allowed",
                f"evalstore.{name}() is not a macro of this store; list them with "
                "SELECT function_name FROM duckdb_functions() WHERE schema_name = 'evalstore'",
                function=f"evalstore.{name}",
                reason="it is not a macro of this store",
            )
        _check_relation_arguments(name, node, policy)
        return
    allowed = ALLOWED_TABLE_FUNCTIONS if as_table else ALLOWED_FUNCTIONS | STORE_UDFS
    if schema in _BUILTIN_SCHEMAS and catalog in _BUILTIN_CATALOGS and name in allowed:
        return
    qualified = ".".join(p for p in (catalog, schema, name) if p)
    kind = "table function" if as_table else "function"
    reason = refusal_reason(name)
    raise UnsafeSqlError(
        "function_not_allowed",
        f"{kind} {qualified}() is not allowed: {reason}; use the store's tables, views and "
        "evalstore.* macros with read-only functions (see evalstore.core.sql_policy)",
        function=qualified,
        reason=reason,
    )


def _check_relation_arguments(name: str, node: dict[str, Any], policy: Policy) -> None:
    """Arguments a macro passes to ``query_table`` must be literal names of the store's tables.

    ``query_table('x.csv')`` reads a file through a replacement scan, so a relation argument
    is refused unless it is a model name (``model``: one identifier or a bound parameter;
    the macros only append a fixed table name to it, see ``evalstore.model_table``) or
    ``<model>.<relation>`` / ``evalstore.<system table>``, the relation one of
    :data:`MODEL_RELATIONS` / :data:`SYSTEM_TABLES`.
    """
    if name in HELPER_MACROS:
        raise UnsafeSqlError(
            "function_not_allowed",
            f"evalstore.{name}() is an internal helper of the macros; query the table or view "
            "directly (e.g. FROM fraud.features)",
            function=f"evalstore.{name}",
            reason="it is an internal helper that reads any relation by name",
        )
    arguments = node.get("arguments", [])
    overloads = [p for p in policy.macros[name] if len(p) >= len(arguments)] or list(
        policy.macros[name]
    )
    for position, argument in enumerate(arguments):
        named = str(argument.get("name") or "").lower()
        params = {named} if named else {p[position] for p in overloads if position < len(p)}
        relation_params = sorted(params & RELATION_PARAMETERS)
        if not relation_params:
            continue
        expression = argument.get("expression") or {}
        literal = expression.get("literal") or {}
        if expression.get("class") == "CONSTANT" and literal.get("kind") in (
            "NULL",
            "NULL_LITERAL",
        ):
            continue
        what = f"argument {relation_params[0]!r} of evalstore.{name}()"
        if relation_params == ["model"] and expression.get("class") == "PARAMETER":
            # a bound model name: the macros only read '<model>.<fixed table>' with it
            continue
        text = literal.get("text") if literal.get("kind") == "STRING" else None
        if expression.get("class") != "CONSTANT" or text is None:
            raise UnsafeSqlError(
                "table_not_allowed", f"{what} must be a string literal naming a model or table"
            )
        _check_relation_name(text, relation_params == ["model"], what, policy)


def _check_relation_name(text: str, model: bool, what: str, policy: Policy) -> None:
    parts = text.split(".")
    if not all(_IDENTIFIER.fullmatch(p) for p in parts) or len(parts) > 3:
        raise UnsafeSqlError(
            "table_not_allowed",
            f"{what} is {text!r}; it must be a model name or <model>.<table> (letters, digits "
            "and underscores)",
        )
    lowered = [p.lower() for p in parts]
    if model:
        if len(parts) != 1 or lowered[0] in _SYSTEM_NAMES | {"evalstore", "main"}:
            raise UnsafeSqlError(
                "table_not_allowed", f"{what} is {text!r}; it must be the name of a model"
            )
        return
    if len(parts) == 3:
        if lowered[0] != (policy.catalog or "").lower():
            raise UnsafeSqlError(
                "table_not_allowed", f"{what} is {text!r}; only the store's catalog can be read"
            )
        lowered = lowered[1:]
    if len(lowered) != 2 or lowered[0] in _SYSTEM_NAMES | {"main"}:
        raise UnsafeSqlError(
            "table_not_allowed", f"{what} is {text!r}; it must name <model>.<table>"
        )
    schema, relation = lowered
    allowed = SYSTEM_TABLES if schema == "evalstore" else MODEL_RELATIONS
    if relation not in allowed:
        raise UnsafeSqlError(
            "table_not_allowed",
            f"{what} is {text!r}; the table must be one of: {', '.join(sorted(allowed))}",
        )


def _check_other_node(node: dict[str, Any], policy: Policy, expression_only: bool) -> None:
    kind = node.get("type")
    if not isinstance(kind, str):
        return
    if kind.endswith("_NODE") and kind not in _QUERY_NODES:
        raise UnsafeSqlError(
            "statement_not_allowed", f"a {kind.removesuffix('_NODE').lower()} is not allowed"
        )
    if kind in _ALL_TABLE_REFS:
        if expression_only and kind != "EMPTY":
            raise UnsafeSqlError("statement_not_allowed", "tables are not allowed here")
        if kind not in _TABLE_REFS:
            raise UnsafeSqlError(
                "statement_not_allowed",
                "only a single read-only SELECT (or WITH … SELECT) statement is accepted; "
                f"{kind.lower().replace('_', ' ')} is not",
            )
        if kind == "BASE_TABLE":
            _check_table(
                str(node.get("catalog_name") or ""),
                str(node.get("schema_name") or ""),
                str(node.get("table_name") or ""),
                policy,
            )


def _check_table(catalog: str, schema: str, table: str, policy: Policy) -> None:
    """A table reference must name a table or view of the store, never a file or URL."""
    shown = ".".join(p for p in (catalog, schema, table) if p)
    if any(_PATH_LIKE.search(part) for part in (catalog, schema, table) if part):
        raise UnsafeSqlError(
            "file_access_not_allowed",
            f"table {shown!r} looks like a file path or URL; only the store's tables and "
            "views can be queried (e.g. evalstore.models, <model>.evaluations)",
        )
    if catalog and catalog.lower() != (policy.catalog or "").lower():
        raise UnsafeSqlError(
            "table_not_allowed",
            f"table {shown!r} is in catalog {catalog!r}; only the store's own catalog can be "
            "queried (leave the catalog out)",
        )
    schema_l, table_l = schema.lower(), table.lower()
    if schema_l in ("system", "temp"):
        raise UnsafeSqlError(
            "table_not_allowed", f"table {shown!r} is not one of the store's tables or views"
        )
    if schema_l == "pg_catalog":
        raise UnsafeSqlError("table_not_allowed", f"table {shown!r} is in DuckDB's pg_catalog")
    views = system_views()
    if schema_l:
        refused = f"{schema_l}.{table_l}" in views - SAFE_SYSTEM_VIEWS
    else:  # an unqualified name may resolve to a system view of any schema on the path
        refused = any(v.split(".")[1] == table_l for v in views - SAFE_SYSTEM_VIEWS)
    if refused:
        raise UnsafeSqlError(
            "table_not_allowed",
            f"system view {shown!r} shows settings or paths and is not allowed; browse the "
            "catalog through information_schema.tables and information_schema.columns",
        )
