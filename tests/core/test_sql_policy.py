"""evalstore.core.sql_policy and sql_allowlist: listed names exist, the rest is refused."""

from __future__ import annotations

import json
import re

import duckdb
import pyarrow as pa
import pytest

import evalstore
from evalstore.core import sql_policy, udfs
from evalstore.core.sql_allowlist import (
    ALLOWED_FUNCTIONS,
    ALLOWED_TABLE_FUNCTIONS,
    RELATION_PARAMETERS,
    SAFE_SYSTEM_VIEWS,
    STORE_UDFS,
)
from evalstore.core.sql_policy import (
    Policy,
    UnsafeSqlError,
    check_expression,
    check_sql,
    installed_macros,
    system_views,
)
from evalstore.core.windows import check_predicate
from evalstore.errors import InvalidParameterError

COLUMNS = ["x", "region", "ts", "example_id", "env", "dataset"]


@pytest.fixture(scope="module")
def duck_functions() -> dict[str, set[str]]:
    """``{lower-case name: {function types}}`` of this DuckDB build."""
    with duckdb.connect() as con:
        rows = con.execute("SELECT function_name, function_type FROM duckdb_functions()").fetchall()
    names: dict[str, set[str]] = {}
    for name, kind in rows:
        names.setdefault(name.lower(), set()).add(kind)
    return names


@pytest.fixture(scope="module")
def store():
    with evalstore.open(":memory:") as opened:
        opened.register_model("fraud", "v1", "binary")
        opened.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
        yield opened


def test_every_allowed_name_exists_in_this_duckdb(duck_functions):
    assert sorted(ALLOWED_FUNCTIONS - set(duck_functions)) == []
    table_kinds = {"table", "table_macro"}
    assert (
        sorted(n for n in ALLOWED_TABLE_FUNCTIONS if not duck_functions.get(n, set()) & table_kinds)
        == []
    )
    assert system_views() >= SAFE_SYSTEM_VIEWS


def test_store_udfs_are_the_ones_registered():
    with duckdb.connect() as con:
        udfs.register(con)
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_name LIKE 'evalstore%'"
        ).fetchall()
    assert {r[0] for r in rows} == STORE_UDFS


def test_every_function_not_listed_is_refused(duck_functions):
    """All of DuckDB's functions outside the lists, called as scalar and as table function."""
    refused = 0
    for name in sorted(duck_functions):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            continue
        if name not in ALLOWED_FUNCTIONS | STORE_UDFS:
            with pytest.raises(UnsafeSqlError, match=rf"function {name}\(\) is not allowed"):
                check_sql(f"SELECT \"{name}\"('x')")
            refused += 1
        if name not in ALLOWED_TABLE_FUNCTIONS:
            with pytest.raises(UnsafeSqlError, match=rf"table function {name}\(\) is not allowed"):
                check_sql(f"SELECT * FROM \"{name}\"('x')")
    assert refused > 300  # pragmas, readers, sequences, settings, internals, collations …


@pytest.mark.parametrize(
    ("sql", "code", "reason"),
    [
        ("SELECT nextval('evalstore.batch_ids')", "function_not_allowed", "changes a sequence"),
        ("SELECT setval('evalstore.batch_ids', 1)", "function_not_allowed", "changes a sequence"),
        ("SELECT currval('evalstore.batch_ids')", "function_not_allowed", "changes a sequence"),
        ("SELECT checkpoint()", "function_not_allowed", "writes the database file"),
        ("SELECT * FROM checkpoint()", "function_not_allowed", "writes the database file"),
        ("SELECT * FROM force_checkpoint()", "function_not_allowed", "writes the database"),
        ("SELECT sleep_ms(1000)", "function_not_allowed", "it waits"),
        ("SELECT pg_sleep(1)", "function_not_allowed", "it waits"),
        ("SELECT * FROM duckdb_settings()", "function_not_allowed", "settings"),
        ("SELECT current_setting('allowed_directories')", "function_not_allowed", "settings"),
        ("SELECT getenv('HOME')", "function_not_allowed", "settings"),
        ("SELECT * FROM duckdb_databases()", "function_not_allowed", "paths"),
        ("SELECT * FROM duckdb_secrets()", "function_not_allowed", "secrets"),
        ("SELECT json_serialize_sql('SELECT 1')", "function_not_allowed", "runs or exposes SQL"),
        (
            "SELECT * FROM json_execute_serialized_sql(json_serialize_sql("
            "'SELECT content FROM read_text(''x'')'))",
            "function_not_allowed",
            "runs or exposes SQL",
        ),
        ("SELECT * FROM query('SELECT 1')", "function_not_allowed", "runs or exposes SQL"),
        ("SELECT * FROM read_text('x')", "function_not_allowed", "reads files"),
        ("SELECT * FROM glob('*')", "function_not_allowed", "reads files"),
        ("SELECT * FROM pragma_version()", "function_not_allowed", "changes the instance"),
        ("SELECT setseed(0.5)", "function_not_allowed", "changes the instance"),
        ("SELECT write_log('x')", "function_not_allowed", "changes the instance"),
        ("SELECT * FROM '/tmp/x.csv'", "file_access_not_allowed", "looks like a file path"),
        ("SELECT * FROM 'https://example.com/x'", "file_access_not_allowed", "file path or URL"),
        ("SELECT * FROM pg_settings", "table_not_allowed", "shows settings or paths"),
        ("SELECT * FROM pg_catalog.pg_settings", "table_not_allowed", "pg_catalog"),
        ("SELECT * FROM duckdb_databases", "table_not_allowed", "shows settings or paths"),
        ("SELECT * FROM pragma_database_list", "table_not_allowed", "shows settings or paths"),
        ("SELECT * FROM system.main.duckdb_tables", "table_not_allowed", "catalog 'system'"),
        ("SELECT * FROM other.main.t", "table_not_allowed", "catalog 'other'"),
        ("SELECT * FROM temp.t", "table_not_allowed", "not one of the store's tables"),
        ("SELECT * FROM evalstore.relation('pg_settings')", "function_not_allowed", "helper"),
        (
            "SELECT * FROM evalstore.model_table('tokens', 'csv')",
            "function_not_allowed",
            "internal helper",
        ),
        (
            "SELECT * FROM evalstore.quality_fill('/tmp/x.csv', NULL, NULL, '1 day')",
            "function_not_allowed",
            "internal helper",
        ),
        (
            "SELECT * FROM evalstore.volume('pg_catalog', '1 day')",
            "table_not_allowed",
            "must be the name of a model",
        ),
        (
            "SELECT * FROM evalstore.drift_windows('tokens.csv', 'serving', NULL, NULL, NULL, "
            "'1 day', NULL, NULL)",
            "table_not_allowed",
            "the table must be one of: category_values",
        ),
        (
            "SELECT * FROM evalstore.drift_windows('/tmp/x.csv', 'serving', NULL, NULL, NULL, "
            "'1 day', NULL, NULL)",
            "table_not_allowed",
            "letters, digits",
        ),
        (
            "SELECT * FROM evalstore.estimation_regression('reg.evaluations', '/tmp/x.csv', "
            "'reg', '1 day', NULL, NULL, NULL, NULL, 1.96, NULL, 0.9, NULL)",
            "table_not_allowed",
            "argument 'estimates' of evalstore.estimation_regression() is '/tmp/x.csv'",
        ),
        (
            "SELECT * FROM evalstore.estimation_binary('bin.evaluations', 'x.parquet', 'bin', "
            "NULL, '1 day', NULL, NULL, NULL, NULL, 1.96, NULL, 0.9, NULL)",
            "table_not_allowed",
            "argument 'calibration' of evalstore.estimation_binary()",
        ),
        (
            "SELECT * FROM evalstore.estimation_result('/tmp/x.csv', 'reg.evaluations', 'reg', "
            "1.96, NULL, 0.9)",
            "table_not_allowed",
            "argument 'estimated' of evalstore.estimation_result()",
        ),
        (
            "SELECT * FROM evalstore.expected_roc_areas('/tmp/x.csv')",
            "table_not_allowed",
            "argument 'scored' of evalstore.expected_roc_areas()",
        ),
        (
            "SELECT * FROM evalstore.volume(lower('FRAUD'), '1 day')",
            "table_not_allowed",
            "must be a string literal",
        ),
        (
            "SELECT * FROM evalstore.drift_windows(?, 'serving', NULL, NULL, NULL, '1 day', "
            "NULL, NULL)",
            "table_not_allowed",
            "argument 'source' of evalstore.drift_windows() must be a string literal",
        ),
        (
            "SELECT * FROM evalstore.volume(width := '1 day', model := 'a/b')",
            "table_not_allowed",
            "argument 'model'",
        ),
        ("SELECT evalstore.no_such_macro(1)", "function_not_allowed", "not a macro"),
        ("SELECT main.read_text('x')", "function_not_allowed", "reads files"),
        ("SELECT fraud.something(1)", "function_not_allowed", "not on evalstore's allow-list"),
        ("DESCRIBE evalstore.models", "statement_not_allowed", "show ref is not"),
        ("CALL checkpoint()", "statement_not_allowed", "single read-only SELECT"),
        ("SELECT 1; SELECT 2", "statement_not_allowed", "got 2 statements"),
        ("SELECT (", "parse_error", "DuckDB cannot parse"),
    ],
)
def test_refusals(sql, code, reason):
    with pytest.raises(UnsafeSqlError, match=re.escape(reason)) as raised:
        check_sql(sql)
    assert raised.value.code == code
    assert isinstance(raised.value, InvalidParameterError)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT abs(-1), lower('A'), regexp_extract('ab', 'a'), now() - INTERVAL 1 DAY",
        "SELECT list_transform([1, 2], x -> x + 1), {'a': 1}.a, [1, 2][1], map {'k': 1}",
        "SELECT json_extract_string('{\"a\": 1}', '$.a'), CAST('1' AS INTEGER), random()",
        "SELECT count(*), quantile_cont(x, 0.5), row_number() OVER (ORDER BY x) FROM t GROUP BY x",
        "SELECT * FROM range(3) r(i), generate_series(1, 2) g(j), unnest([1, 2]) u(k)",
        "WITH v AS (SELECT 1 AS a) SELECT * FROM v UNION ALL SELECT 2",
        "SELECT * FROM information_schema.tables, duckdb_tables(), duckdb_columns",
        "SELECT * FROM evalstore.volume('fraud', '1 day')",
        "SELECT * FROM evalstore.volume(model := 'fraud', width := '1 day')",
        "SELECT * FROM evalstore.volume(?, '1 day')",
        "SELECT * FROM evalstore.label_coverage($model, $width)",
        "SELECT * FROM evalstore.drift_windows('fraud.numeric_values', 'serving', NULL, NULL, "
        "NULL, '1 day', NULL, NULL, NULL)",
        "SELECT evalstore.window_start(TIMESTAMP '2024-01-01', '1 day')",
        "SELECT evalstore_normal_pvalue(0.0)",
        "SELECT x FROM fraud.features WHERE x > $1 AND region LIKE 'n%' AND ts BETWEEN ? AND ?",
        "SELECT * FROM (SELECT 1 AS a, 'b' AS b) PIVOT (sum(a) FOR b IN ('b'))",
    ],
)
def test_accepted(sql):
    assert check_sql(sql) is None


def test_installed_macros_are_the_store_macros(store):
    """The static list (no connection) is what a store's duckdb_functions() lists."""
    policy = Policy.for_store(store.connection)
    assert policy.catalog == store.connection.execute("SELECT current_database()").fetchone()[0]
    assert dict(policy.macros) == installed_macros()
    assert {"volume", "drift", "relation", "model_table", "window_start"} <= set(policy.macros)


def test_a_store_catalog_qualifier_is_allowed_only_with_its_connection(store):
    catalog = Policy.for_store(store.connection).catalog
    sql = f"SELECT count(*) FROM {catalog}.fraud.features"
    check_sql(sql, Policy.for_store(store.connection))
    with pytest.raises(UnsafeSqlError, match=f"is in catalog '{catalog}'"):
        check_sql(sql)


def test_relation_parameters_cover_every_query_table_flow(store):
    """Inside the macros, only RELATION_PARAMETERS reach query_table (and the macros that do).

    For every call inside a macro body to ``query_table`` or to an evalstore macro, the
    macro's own parameters used in a relation argument of the callee are relation
    parameters; so by induction no other parameter of any macro reaches ``query_table``.
    """
    rows = store.connection.execute(
        "SELECT function_name, parameters, macro_definition, function_type FROM duckdb_functions() "
        "WHERE schema_name = 'evalstore' AND function_type IN ('macro', 'table_macro')"
    ).fetchall()
    params = {name: [p.lower() for p in ps] for name, ps, _, _ in rows}
    checked = 0
    with duckdb.connect() as con:
        for name, own, definition, kind in rows:
            body = definition if kind == "table_macro" else f"SELECT {definition}"
            tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [body]).fetchone()[0])
            assert not tree["error"], (name, tree)
            for call in _calls(tree):
                callee, schema = call["function_name"].lower(), call.get("schema", "")
                if callee == "query_table" and not schema:
                    relation = {0}
                elif schema == "evalstore" and callee in params:
                    relation = {i for i, p in enumerate(params[callee]) if p in RELATION_PARAMETERS}
                else:
                    continue
                for position, argument in enumerate(call["arguments"]):
                    if position in relation:
                        used = _column_names(argument["expression"]) & {p.lower() for p in own}
                        assert used <= RELATION_PARAMETERS, (name, callee, position, used)
                        # a model name reaches another macro's relation parameter only as
                        # its model, or with a literal '.<table>' appended (model_table does
                        # that with its literal name; system_table's model picks '' or '')
                        if "model" in used and name not in ("model_table", "system_table"):
                            target = params.get(callee, ["query_table"])[position]
                            assert target == "model" or _appends_a_table(argument["expression"]), (
                                name,
                                callee,
                                position,
                            )
                        if callee in ("model_table", "system_table") and position == 1:
                            assert argument["expression"]["class"] == "CONSTANT", name
                        checked += 1
    assert checked > 20


def _appends_a_table(expression) -> bool:
    """``<anything> || '.<identifier>'``: the last operand is a literal table suffix."""
    if expression.get("class") != "FUNCTION" or expression.get("function_name") != "||":
        return False
    last = expression["arguments"][-1]["expression"]
    text = (last.get("literal") or {}).get("text", "")
    return last.get("class") == "CONSTANT" and re.fullmatch(r"\.[a-z_]+", text) is not None


def _calls(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("class") == "FUNCTION":
                yield node
            stack.extend(node.values())


def _column_names(expression) -> set[str]:
    names, stack = set(), [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("class") == "COLUMN_REF":
                names.update(n.lower() for n in node["column_names"])
            stack.extend(node.values())
    return names


# ---------------------------------------------------------------------------------------------
# Predicates (where=, by=, slices) share the policy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "function", "reason"),
    [
        ("setval('evalstore.batch_ids', 1) > 0", "setval", "changes a sequence"),
        ("nextval('evalstore.batch_ids') > 0", "nextval", "changes a sequence"),
        ("sleep_ms(1000) IS NULL", "sleep_ms", "it waits"),
        ("checkpoint() IS NULL", "checkpoint", "writes the database file"),
        ("current_setting('allowed_directories') IS NULL", "current_setting", "settings"),
        ("length(getenv('HOME')) > 0", "getenv", "settings"),
        ("read_text('x') IS NULL", "read_text", "reads files"),
        ("json_serialize_sql('SELECT 1') IS NULL", "json_serialize_sql", "runs or exposes SQL"),
    ],
)
def test_predicates_refuse_what_the_allow_list_lacks(where, function, reason):
    with pytest.raises(InvalidParameterError) as raised:
        check_predicate(where, COLUMNS)
    message = str(raised.value)
    assert message.startswith(f"where={where!r} may not call {function}(): ")
    assert reason in message


def test_predicates_name_the_parameter_they_came_from():
    with pytest.raises(
        InvalidParameterError, match=r"^by='sleep_ms\(1\) > 0' may not call sleep_ms"
    ):
        check_predicate("sleep_ms(1) > 0", COLUMNS, name="by")


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("(" * 40 + "x" + ")" * 40 + " > 1", "nests brackets more than 32 deep"),
        ("abs(" * 45 + "x" + ")" * 45 + " > 1", "nests brackets more than 32 deep"),
        ("NOT " * 3000 + "x > 1", "nested too deeply|is not valid SQL"),
        ("x > 1 AND (SELECT 1) = 1", "may not contain statements or subqueries"),
        ("VAR_MAP('x') IS NULL", "is not valid SQL|may not call"),
    ],
)
def test_predicates_refuse_odd_input_with_a_clear_error(where, match):
    with pytest.raises(InvalidParameterError, match=match):
        check_predicate(where, COLUMNS)


@pytest.mark.parametrize(
    ("where", "rendered"),
    [
        ("x > 1 AND abs(x) < 3", "x > 1 AND ABS(x) < 3"),
        ("lower(region) = 'north' OR region IS NULL", "LOWER(region) = 'north' OR region IS NULL"),
        ("ts >= now() - INTERVAL 7 DAY", "ts >= NOW() - INTERVAL '7' DAY"),
        ("regexp_matches(region, '^n')", "REGEXP_MATCHES(region, '^n')"),
        ("evalstore.window_start(ts, '1 day') < ts", "evalstore.window_start(ts, '1 day') < ts"),
    ],
)
def test_predicates_of_allowed_functions_pass(where, rendered):
    assert check_predicate(where, COLUMNS) == rendered


def test_check_expression_refuses_tables_and_statements():
    with pytest.raises(UnsafeSqlError, match="subqueries are not allowed"):
        check_expression("(SELECT 1)")
    with pytest.raises(UnsafeSqlError, match="single expression"):
        check_expression("1 FROM evalstore.models")
    with pytest.raises(UnsafeSqlError, match=r"single expression|got 2 statements"):
        check_expression("1; SELECT 2")


def test_where_on_a_store_refuses_and_changes_nothing(store):
    """The issue's attack through the library: the sequence is not touched."""
    before = store.connection.execute(
        "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'batch_ids'"
    ).fetchall()
    with pytest.raises(InvalidParameterError, match=r"may not call setval\(\)"):
        store.drift("fraud", where="setval('evalstore.batch_ids', 1) > 0")
    with pytest.raises(InvalidParameterError, match=r"may not call sleep_ms\(\)"):
        store.drift("fraud", where="sleep_ms(1000) IS NULL")
    after = store.connection.execute(
        "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'batch_ids'"
    ).fetchall()
    assert after == before
    assert sql_policy.MAX_NESTING == 32
