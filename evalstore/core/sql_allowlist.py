"""The allow-list of user SQL: which functions, table functions, system views and macro
relation arguments a user's SQL may use.

Literal data only (lower-case names as DuckDB's parser reports them), grouped and commented,
plus the few words that say why a well-known function is refused. The checker that walks
DuckDB's parse against these lists is :mod:`evalstore.core.sql_policy`; a test asserts that
every listed name exists in the running DuckDB.
"""

from __future__ import annotations

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
STORE_UDFS = frozenset(
    {
        "evalstore_ks_pvalue", "evalstore_chi2_pvalue", "evalstore_normal_pvalue",
        "evalstore_welch_pvalue", "evalstore_fisher_pvalue", "evalstore_mannwhitney_pvalue",
        "evalstore_cvm_pvalue",
    }
)  # fmt: skip

#: Parameters of the store's macros that name a relation the macro reads through
#: ``query_table``; a call must pass each as a string literal naming an allowed table.
RELATION_PARAMETERS = frozenset(
    {
        "model", "name", "source", "source_numeric", "source_category", "numeric_source",
        "category_source", "schemas", "counts", "slice_source", "calibration", "estimates",
        "estimated", "realized", "scored", "checks",
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
#: of the other macros, refused when called directly (query the table itself instead;
#: ``quality_fill`` reads the checks CTE of ``evalstore.quality``: call that).
HELPER_MACROS = frozenset({"relation", "model_table", "system_table", "quality_fill"})

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


def refusal_reason(name: str) -> str:
    """Why function ``name`` is refused, in a few words."""
    for names, reason in _REASONS:
        if any(name == n or (n.endswith("_") and name.startswith(n)) for n in names):
            return reason
    return "it is not on evalstore's allow-list of read-only functions"
