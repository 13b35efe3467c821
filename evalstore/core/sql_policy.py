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
The lists are literal data below, grouped and commented; a test asserts that every listed
name exists in the running DuckDB.

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

from evalstore.errors import InvalidParameterError

# --------------------------------------------------------------------------------------------
# The allow-list (lower-case names as DuckDB's parser reports them)
# --------------------------------------------------------------------------------------------

#: Operators: DuckDB's parser turns them into function calls with these names.
OPERATORS = frozenset(
    {
        "+", "-", "*", "/", "//", "%", "**", "^", "&", "|", "<<", ">>", "~", "!__postfix",
        "||", "=", "!=", "<", "<=", ">", ">=", "<=>", "<->", "@", "@>", "<@", "&&", "^@",
        "->>", "~~", "!~~", "~~*", "!~~*", "~~~",
    }
)  # fmt: skip

#: Arithmetic, rounding, trigonometry, bit operations, random numbers.
MATH = frozenset(
    {
        "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "bit_count",
        "cbrt", "ceil", "ceiling", "cos", "cosh", "cot", "degrees", "divide", "even", "exp",
        "factorial", "floor", "fmod", "gamma", "gcd", "greatest", "greatest_common_divisor",
        "isfinite", "isinf", "isnan", "lcm", "least", "least_common_multiple", "lgamma", "ln",
        "log", "log10", "log2", "mod", "multiply", "nextafter", "pi", "pow", "power",
        "radians", "round", "round_even", "roundbankers", "sign", "signbit", "sin", "sinh",
        "sqrt", "subtract", "tan", "tanh", "trunc", "xor", "bin", "to_base", "equi_width_bins",
        "bar", "fdiv",
        # random numbers and ids: no state beyond the call (setseed is refused)
        "random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_timestamp",
        "uuid_extract_version",
    }
)  # fmt: skip

#: Text: case, padding, search, split, similarity, encodings, hashes, formatting.
STRING = frozenset(
    {
        "ascii", "bit_length", "char_length", "character_length", "chr", "concat",
        "concat_ws", "contains", "ends_with", "format", "format_bytes", "formatreadabledecimalsize",
        "formatreadablesize", "hamming", "ilike_escape", "instr", "jaccard",
        "jaro_similarity", "jaro_winkler_similarity", "lcase", "left", "left_grapheme",
        "len", "length", "length_grapheme", "levenshtein", "damerau_levenshtein", "like_escape",
        "lower", "lpad", "ltrim", "md5", "md5_number", "md5_number_lower", "md5_number_upper",
        "mismatches", "nfc_normalize", "not_ilike_escape", "not_like_escape", "octet_length",
        "ord", "overlay", "parse_formatted_bytes", "position", "prefix", "printf", "repeat",
        "replace", "reverse", "right", "right_grapheme", "rpad", "rtrim", "sha1", "sha256",
        "split", "split_part", "starts_with", "str_split", "strip_accents", "strlen",
        "strpos", "string_split", "string_to_array", "substr", "substring",
        "substring_grapheme", "suffix", "translate", "trim", "ucase", "unicode", "upper",
        "url_decode", "url_encode", "hash", "base64", "to_base64", "from_base64", "hex",
        "unhex", "to_hex", "from_hex", "to_binary", "from_binary", "encode", "decode",
        "bitstring", "get_bit", "set_bit", "bit_position",
    }
)  # fmt: skip

#: Regular expressions (RE2: linear time, no backtracking blow-up).
REGEX = frozenset(
    {
        "regexp_escape", "regexp_extract", "regexp_extract_all", "regexp_full_match",
        "regexp_matches", "regexp_replace", "regexp_split_to_array", "str_split_regex",
        "string_split_regex",
    }
)  # fmt: skip

#: Dates, times, intervals and time zones (ICU included).
DATETIME = frozenset(
    {
        "age", "century", "current_date", "current_localtime", "current_localtimestamp",
        "date_add", "date_diff", "date_part", "date_sub", "date_trunc", "datediff", "datepart",
        "datesub", "datetrunc", "day", "dayname", "dayofmonth", "dayofweek", "dayofyear",
        "days_in_month", "decade", "epoch", "epoch_ms", "epoch_ns", "epoch_us", "era",
        "get_current_time", "get_current_timestamp", "hour", "isodow", "isoyear", "julian",
        "last_day", "make_date", "make_time", "make_timestamp", "make_timestamp_ms",
        "make_timestamp_ns", "make_timestamptz", "microsecond", "millennium", "millisecond",
        "minute", "month", "monthname", "nanosecond", "normalized_interval", "now", "quarter",
        "second", "strftime", "strptime", "time_bucket", "timezone", "timezone_hour",
        "timezone_minute", "to_centuries", "to_days", "to_decades", "to_hours",
        "to_microseconds", "to_millennia", "to_milliseconds", "to_minutes", "to_months",
        "to_quarters", "to_seconds", "to_timestamp", "to_weeks", "to_years", "today",
        "transaction_timestamp", "try_strptime", "week", "weekday", "weekofyear", "year",
        "yearweek", "ago",
    }
)  # fmt: skip

#: Lists, arrays, structs, maps, unions and enums (lambdas included).
NESTED = frozenset(
    {
        "aggregate", "apply", "array_aggr", "array_aggregate", "array_append", "array_apply",
        "array_cat", "array_concat", "array_contains", "array_cosine_distance",
        "array_cosine_similarity", "array_cross_product", "array_distance", "array_distinct",
        "array_dot_product", "array_extract", "array_filter", "array_grade_up", "array_has",
        "array_has_all", "array_has_any", "array_indexof", "array_inner_product",
        "array_intersect", "array_length", "array_negative_dot_product",
        "array_negative_inner_product", "array_pop_back", "array_pop_front", "array_position",
        "array_prepend", "array_push_back", "array_push_front", "array_reduce", "array_resize",
        "array_reverse", "array_reverse_sort", "array_select", "array_slice", "array_sort",
        "array_to_string", "array_transform", "array_unique", "array_value", "array_where",
        "array_zip", "cardinality", "element_at", "filter", "flatten", "generate_series",
        "grade_up", "list_aggr", "list_aggregate", "list_any_value", "list_append",
        "list_apply", "list_approx_count_distinct", "list_avg", "list_bit_and", "list_bit_or",
        "list_bit_xor", "list_bool_and", "list_bool_or", "list_cat", "list_concat",
        "list_contains", "list_cosine_distance", "list_cosine_similarity", "list_count",
        "list_distance", "list_distinct", "list_dot_product", "list_element", "list_entropy",
        "list_extract", "list_filter", "list_first", "list_grade_up", "list_has",
        "list_has_all", "list_has_any", "list_histogram", "list_indexof",
        "list_inner_product", "list_intersect", "list_kurtosis", "list_kurtosis_pop",
        "list_last", "list_mad", "list_max", "list_median", "list_min", "list_mode",
        "list_negative_dot_product", "list_negative_inner_product", "list_pack",
        "list_position", "list_prepend", "list_product", "list_reduce", "list_resize",
        "list_reverse", "list_reverse_sort", "list_select", "list_sem", "list_skewness",
        "list_slice", "list_sort", "list_stddev_pop", "list_stddev_samp", "list_string_agg",
        "list_sum", "list_transform", "list_unique", "list_value", "list_var_pop",
        "list_var_samp", "list_where", "list_zip", "range", "reduce", "unnest",
        "generate_subscripts", "map", "map_concat", "map_contains", "map_contains_entry",
        "map_contains_value", "map_entries", "map_extract", "map_extract_value",
        "map_from_entries", "map_keys", "map_values", "row", "struct_concat",
        "struct_contains", "struct_extract", "struct_extract_at", "struct_has",
        "struct_indexof", "struct_insert", "struct_keys", "struct_pack", "struct_position",
        "struct_update", "struct_values", "union_extract", "union_tag", "union_value",
        "enum_code", "enum_first", "enum_last", "enum_range", "enum_range_boundary",
    }
)  # fmt: skip

#: JSON extraction and construction (json_execute_serialized_sql, json_serialize_sql,
#: json_deserialize_sql and json_serialize_plan are *not* here: they run or expose SQL).
JSON = frozenset(
    {
        "array_to_json", "from_json", "from_json_strict", "json", "json_array",
        "json_array_length", "json_contains", "json_exists", "json_extract",
        "json_extract_path", "json_extract_path_text", "json_extract_string", "json_keys",
        "json_merge_patch", "json_object", "json_pretty", "json_quote", "json_structure",
        "json_transform", "json_transform_strict", "json_type", "json_valid", "json_value",
        "row_to_json", "to_json", "json_group_array", "json_group_object",
        "json_group_structure",
    }
)  # fmt: skip

#: Conditionals and types: the parser's own rewrites (CASE, COALESCE are nodes, not calls).
GENERAL = frozenset(
    {"if", "nullif", "constant_or_null", "typeof", "pg_typeof", "error", "current_database",
     "current_schema", "current_catalog", "alias"}
)  # fmt: skip

#: Aggregates (also usable as window functions).
AGGREGATES = frozenset(
    {
        "any_value", "approx_count_distinct", "approx_quantile", "approx_top_k", "arbitrary",
        "arg_max", "arg_max_null", "arg_max_nulls_last", "arg_min", "arg_min_null",
        "arg_min_nulls_last", "argmax", "argmin", "array_agg", "avg", "bit_and", "bit_or",
        "bit_xor", "bitstring_agg", "bool_and", "bool_or", "corr", "count", "count_if",
        "count_star", "countif", "covar_pop", "covar_samp", "entropy", "favg", "first", "fsum",
        "geomean", "geometric_mean", "group_concat", "histogram", "histogram_exact",
        "kahan_sum", "kurtosis", "kurtosis_pop", "last", "list", "listagg", "lttb", "mad",
        "max", "max_by", "mean", "median", "min", "min_by", "mode", "product", "quantile",
        "quantile_cont", "quantile_disc", "regr_avgx", "regr_avgy", "regr_count",
        "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy",
        "reservoir_quantile", "sem", "skewness", "stddev", "stddev_pop", "stddev_samp",
        "string_agg", "sum", "sum_no_overflow", "sumkahan", "var_pop", "var_samp",
        "variance", "wavg", "weighted_avg",
    }
)  # fmt: skip

#: Window functions.
WINDOWS = frozenset(
    {
        "cume_dist", "dense_rank", "fill", "first_value", "lag", "last_value", "lead",
        "nth_value", "ntile", "percent_rank", "rank", "rank_dense", "row_number",
    }
)  # fmt: skip

#: Every scalar, aggregate and window function a user's SQL may call.
ALLOWED_FUNCTIONS = (
    OPERATORS | MATH | STRING | REGEX | DATETIME | NESTED | JSON | GENERAL | AGGREGATES | WINDOWS
)

#: Table functions a user's SQL may call in FROM: number series, unnesting, JSON
#: shredding, and the catalog listings that show no path, setting or secret.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range", "generate_series", "unnest", "json_each", "json_tree",
        "duckdb_tables", "duckdb_views", "duckdb_columns", "duckdb_schemas", "duckdb_types",
        "duckdb_functions", "duckdb_constraints", "duckdb_indexes", "duckdb_keywords",
        "pg_timezone_names", "icu_calendar_names",
    }
)  # fmt: skip

#: System views that show only the catalog's structure (every other internal view, such as
#: ``pg_settings``, ``duckdb_databases`` or ``pragma_database_list``, shows settings or paths
#: and is refused).
SAFE_SYSTEM_VIEWS = frozenset(
    {
        "information_schema.schemata", "information_schema.tables", "information_schema.columns",
        "information_schema.views", "information_schema.table_constraints",
        "information_schema.key_column_usage", "information_schema.referential_constraints",
        "information_schema.check_constraints", "information_schema.constraint_column_usage",
        "information_schema.constraint_table_usage", "information_schema.character_sets",
        "main.duckdb_tables", "main.duckdb_views", "main.duckdb_columns", "main.duckdb_schemas",
        "main.duckdb_types", "main.duckdb_constraints", "main.duckdb_indexes",
    }
)  # fmt: skip

#: The store's Python UDFs (:func:`evalstore.core.udfs.register`): p-values from scipy.
STORE_UDFS = frozenset({"evalstore_ks_pvalue", "evalstore_chi2_pvalue", "evalstore_normal_pvalue"})

#: Parameters of the store's macros that name a relation the macro reads through
#: ``query_table``; a call must pass each as a string literal naming an allowed table.
RELATION_PARAMETERS = frozenset(
    {
        "model", "name", "source", "source_numeric", "source_category", "numeric_source",
        "category_source", "schemas", "counts", "slice_source",
    }
)  # fmt: skip

#: The relations of a model's schema (:mod:`evalstore.core.layout`,
#: :mod:`evalstore.core.values`) and the store's system tables: the only relations a macro
#: argument may name.
MODEL_RELATIONS = frozenset(
    {"features", "predictions", "labels", "labels_latest", "evaluations", "numeric_values",
     "category_values"}
)  # fmt: skip
SYSTEM_TABLES = frozenset(
    {"models", "batches", "label_requests", "snapshots", "schemas", "meta", "migrations"}
)

#: Store macros that take any relation name (they wrap ``query_table``): internal helpers
#: of the other macros, refused when called directly (query the table itself instead).
HELPER_MACROS = frozenset({"relation", "model_table", "system_table"})

#: Why some well-known functions are refused (the message says so; the rest are "not listed").
_REASONS = (
    (("nextval", "currval", "setval"), "it changes a sequence"),
    (("checkpoint", "force_checkpoint"), "it writes the database file"),
    (("sleep_ms", "pg_sleep"), "it waits"),
    (("json_execute_serialized_sql", "json_serialize_sql", "json_deserialize_sql",
      "json_serialize_plan", "query", "query_table"), "it runs or exposes SQL given as text"),
    (("current_setting", "duckdb_settings", "getvariable", "getenv", "duckdb_secrets",
      "which_secret", "duckdb_databases", "duckdb_extensions", "duckdb_memory",
      "duckdb_temporary_files"), "it shows settings, secrets or paths"),
    (("read_", "glob", "sniff_csv", "parquet_", "sqlite_", "postgres_", "mysql_", "iceberg_",
      "delta_", "st_read", "http_", "arrow_scan", "pandas_scan", "python_", "seq_scan"),
     "it reads files, the network or memory outside the store"),
    (("pragma_", "enable_", "disable_", "install", "load", "setseed", "write_log",
      "register_", "create_", "destroy_", "deregister_", "truncate_"),
     "it changes the instance's state"),
)  # fmt: skip

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


def refusal_reason(name: str) -> str:
    """Why function ``name`` is refused, in a few words."""
    for names, reason in _REASONS:
        if any(name == n or (n.endswith("_") and name.startswith(n)) for n in names):
            return reason
    return "it is not on evalstore's allow-list of read-only functions"


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
