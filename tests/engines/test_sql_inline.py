"""Golden tests of the macro inliner (evalstore.engines.sql_inline): a family's macro call
inlined into one SELECT without macros gives, on DuckDB, the rows of the macro call itself;
the ASOF-join rewrite (used for Spark) too. Data: tests/engines/conftest.py (ties, NULL,
NaN, an unseen category, two versions, late labels and corrections)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import sqlglot

import evalstore
from evalstore.engines import sql_inline
from evalstore.errors import InvalidParameterError
from tests.engines.conftest import assert_rows_close

SELECTION = "'training', NULL, NULL, NULL, 'serving', NULL, NULL, NULL"
CALLS = {
    "drift_numeric 1 day quantile": (
        "drift_numeric",
        f"'m.numeric_values', {SELECTION}, '1 day', NULL, NULL, 0, 'quantile', 10, "
        "CAST(NULL AS DOUBLE[]), false, 'epsilon', 1e-4, exp(1), 'distance'",
    ),
    "drift_numeric chunks doane pooled leftover": (
        "drift_numeric",
        f"'m.numeric_values', {SELECTION}, NULL, NULL, 4, 0, 'doane', 10, "
        "CAST(NULL AS DOUBLE[]), true, 'leftover', 1e-4, 2, 'divergence'",
    ),
    "drift_numeric previous 2": (
        "drift_numeric",
        "'m.numeric_values', NULL, NULL, NULL, NULL, 'serving', NULL, NULL, NULL, '1 day', "
        "NULL, NULL, 2, 'sturges', 10, CAST(NULL AS DOUBLE[]), false, 'epsilon', 1e-4, "
        "exp(1), 'distance'",
    ),
    "drift_categorical 1 day": (
        "drift_categorical",
        f"'m.category_values', {SELECTION}, '1 day', NULL, NULL, 0, 'epsilon', 1e-4, exp(1), "
        "'distance', true",
    ),
    "drift_categorical 3 chunks leftover": (
        "drift_categorical",
        f"'m.category_values', {SELECTION}, NULL, NULL, 3, 0, 'leftover', 1e-4, 2, "
        "'divergence', false",
    ),
}


def _key(row: dict[str, Any]) -> tuple:
    return tuple((v is None, repr(v)) for k, v in row.items() if not isinstance(v, float))


def assert_same_rows(got: list[dict], want: list[dict]) -> None:
    """Same rows (in any order); floats equal to 1e-12 relative (sums may be reordered)."""
    assert len(got) == len(want) > 0
    assert_rows_close(sorted(got, key=_key), sorted(want, key=_key), 1e-12)


@pytest.mark.parametrize("name", list(CALLS))
def test_inlined_call_gives_the_macro_rows(lake_store: evalstore.Store, name: str) -> None:
    macro, args = CALLS[name]
    call = f"SELECT * FROM evalstore.{macro}({args})"
    tree = sql_inline.inline(call)
    inlined = tree.sql(dialect="duckdb")
    assert "evalstore." not in inlined  # no macro left
    want = lake_store.sql(call).to_pylist()
    assert_same_rows(lake_store.sql(inlined).to_pylist(), want)
    # the ASOF joins rewritten as range joins (what Spark runs) give the same rows
    rewrite = functools.partial(sql_inline.rewrite_asof_joins, dialect="duckdb")
    rewritten = sql_inline.transpile(tree, "duckdb", [rewrite])
    assert "ASOF" not in rewritten.upper()
    assert_same_rows(lake_store.sql(rewritten).to_pylist(), want)


def test_split_runs_the_per_cell_helpers_on_the_driver(lake_store: evalstore.Store) -> None:
    """split: the CTEs before the first per-cell helper computed apart (as an engine would)
    and the rest run on them give the macro's rows."""
    macro, args = CALLS["drift_numeric 1 day quantile"]
    call = sqlglot.parse_one(f"SELECT * FROM evalstore.{macro}({args})", read="duckdb")
    parts = sql_inline.split(macro, call.find(sqlglot.exp.Anonymous).expressions,
                             ["binned_scores", "numeric_methods"])  # fmt: skip
    computed = {name.split("_", 3)[-1] for name in parts.engine}
    assert {"cells", "exact", "histograms"} <= computed  # the heavy part, on the engine
    assert not computed & {"binned", "methods"}  # the per-cell helpers, on the driver
    assert sql_inline.shared_ctes(parts)  # what an engine computes, with its readers
    con = lake_store.connection
    for name, query in parts.engine.items():
        con.register(name, con.sql(sql_inline.inline(query).sql(dialect="duckdb")).to_arrow_table())
    try:
        got = con.sql(parts.driver.sql(dialect="duckdb")).to_arrow_table().to_pylist()
    finally:
        for name in parts.engine:
            con.unregister(name)
    assert_same_rows(got, lake_store.sql(call.sql(dialect="duckdb")).to_pylist())


def test_scalar_macros_and_let_binding(lake_store: evalstore.Store) -> None:
    """Scalar helpers inline with their arguments in place; an argument used several
    times is bound once (a lambda) and the value does not change."""
    query = (
        "SELECT evalstore.wilson_low(x + 1, m * 2, 1.96) AS lo, "
        "evalstore.wilson_high(x + 1, m * 2, 1.96) AS hi, "
        "evalstore.clip_probability(x / 10.0) AS p "
        "FROM (VALUES (3, 10), (0, 4), (5, 0)) AS t(x, m)"
    )
    inlined = sql_inline.inline(query).sql(dialect="duckdb")
    assert "evalstore." not in inlined and "LIST_TRANSFORM" in inlined.upper()
    assert_same_rows(lake_store.sql(inlined).to_pylist(), lake_store.sql(query).to_pylist())


def test_relations_map_to_tables(lake_store: evalstore.Store) -> None:
    query = "SELECT count(*) AS n FROM evalstore.model_table('m', 'labels')"
    inlined = sql_inline.inline(query, tables={"m.labels": '"m"."labels_latest"'})
    assert lake_store.sql(inlined.sql(dialect="duckdb")).to_pylist() == [{"n": 300}]


def test_errors_name_the_macro() -> None:
    with pytest.raises(
        InvalidParameterError,
        match=r"evalstore.relation: argument 1 must be a "
        r"constant text naming a relation when the query is inlined, got x",
    ):
        sql_inline.inline("SELECT * FROM evalstore.relation(x)")
    with pytest.raises(
        InvalidParameterError,
        match=r"evalstore.at_least takes 2 arguments "
        r"\(x, bound\), got 1",
    ):
        sql_inline.inline("SELECT evalstore.at_least(1)")
    with pytest.raises(InvalidParameterError, match=r"evalstore.nope is not a macro of sql/"):
        sql_inline.inline("SELECT * FROM evalstore.nope(1)")
    with pytest.raises(InvalidParameterError, match=r"evalstore.at_least is not a table macro"):
        sql_inline.split("at_least", [], [])


def test_split_at_a_named_cte(lake_store: evalstore.Store) -> None:
    """split(at=...): the performance macro cut where its per-cell tail starts (as the
    Spark engine runs it): the CTEs before computed apart, the tail on them, the macro's
    rows; an unknown CTE name is refused."""
    call = sqlglot.parse_one(
        "SELECT * FROM evalstore.performance_binary('m.evaluations', 'm', NULL, '1 day', NULL, "
        "NULL, NULL, NULL, 10, 1.959963984540054, NULL, 0.9, NULL, NULL, NULL, NULL)",
        read="duckdb",
    )
    args = call.find(sqlglot.exp.Anonymous).expressions
    parts = sql_inline.split("performance_binary", args, [], at="worth")
    computed = {name.split("_", 3)[-1] for name in parts.engine}
    assert {"cells", "ranking", "ece", "horizon", "registry"} <= computed
    assert not computed & {"worth", "scored", "valued"}
    con = lake_store.connection
    for name, query in parts.engine.items():
        con.register(name, con.sql(sql_inline.inline(query).sql(dialect="duckdb")).to_arrow_table())
    try:
        got = con.sql(parts.driver.sql(dialect="duckdb")).to_arrow_table().to_pylist()
    finally:
        for name in parts.engine:
            con.unregister(name)
    assert_same_rows(got, lake_store.sql(call.sql(dialect="duckdb")).to_pylist())
    with pytest.raises(InvalidParameterError, match=r"has no CTE named 'nope' to cut at"):
        sql_inline.split("performance_binary", args, [], at="nope")


def test_spark_restrictions_are_checked_and_quoted() -> None:
    """The Spark engine's where= goes through the store's predicate checker and is written
    by sqlglot; a version is a quoted constant (Spark's backslash escapes), never SQL."""
    from sqlglot import exp

    from evalstore.core.sql_policy import UnsafeSqlError
    from evalstore.engines import spark_sql

    assert (
        spark_sql.checked_predicate("c IN ('a', 'd') AND isinf(x)", ["c", "x"])
        == "c IN ('a', 'd') AND ABS(x) = CAST('Infinity' AS DOUBLE)"
    )
    with pytest.raises(UnsafeSqlError, match=r"may not call read_csv\(\)"):
        spark_sql.checked_predicate("read_csv('f') IS NULL", ["x"])
    with pytest.raises(InvalidParameterError, match=r"refers to unknown column 'y'"):
        spark_sql.checked_predicate("y > 1", ["x"])
    hostile = "v' OR 1=1 --"
    (condition,) = spark_sql.restriction({"features": "f", "predictions": "p"}, None, hostile)
    constants = [c.this for c in sqlglot.parse_one(condition, read="spark").find_all(exp.Literal)]
    assert constants.count(hostile) == 2  # the whole text, twice, as a string constant


ASOF_ROWS = """
    CREATE TEMP TABLE lt_rows AS SELECT * FROM (VALUES
        (1, 'a', 0.5), (2, 'a', 1.0), (3, 'a', 2.5), (4, 'a', NULL), (5, NULL, 1.0),
        (6, 'b', -1.0), (7, 'b', 'NaN'::DOUBLE), (8, 'c', 3.0), (9, 'a', 1.0), (10, 'a', 9.0)
    ) AS t(id, k, v);
    CREATE TEMP TABLE rt_rows AS SELECT * FROM (VALUES
        ('a', 1.0, 10), ('a', 2.0, 20), ('a', NULL, 99), ('b', 0.0, 30), (NULL, 1.0, 40),
        ('b', 'NaN'::DOUBLE, 50), ('a', 3.0, NULL)
    ) AS t(k, v, w);
    CREATE TEMP TABLE ex_rows AS SELECT * FROM (VALUES (1, 'x'), (2, 'y'), (6, 'z')) AS t(id, tag)
"""
ASOF_QUERIES = {
    "at or before, a struct of named columns": (
        "SELECT l.id, l.v, r.v AS rv, r.w FROM lt_rows AS l "
        "ASOF LEFT JOIN rt_rows AS r ON r.k = l.k AND l.v >= r.v"
    ),
    "at or after, the whole left row, a join before and after": (
        "SELECT l.*, e.tag, r.w, x.tag AS again FROM lt_rows AS l "
        "LEFT JOIN ex_rows AS e ON e.id = l.id "
        "ASOF LEFT JOIN rt_rows AS r ON l.k = r.k AND r.v >= l.v * 1 "
        "LEFT JOIN ex_rows AS x ON x.id = l.id WHERE l.id > 1 ORDER BY l.id"
    ),
    "no keys, the right row whole": (
        "SELECT l.id, r.* FROM lt_rows AS l ASOF LEFT JOIN rt_rows AS r ON l.v <= r.v"
    ),
    "an unqualified column (the former rewrite)": (
        "SELECT id, r.w FROM lt_rows AS l ASOF LEFT JOIN rt_rows AS r ON r.k = l.k AND l.v >= r.v"
    ),
}


@pytest.mark.parametrize("name", list(ASOF_QUERIES))
def test_asof_rewrite_matches_duckdb(lake_store: evalstore.Store, name: str) -> None:
    """The ASOF rewrite gives DuckDB's ASOF join rows: NULL probes and NULL keys match
    nothing, right rows with a NULL value are never matched, NaN sorts last, ties among
    probes, a join before and after the ASOF join; a query reading an unqualified column
    takes the former rewrite (distinct probes, then equi-joins)."""
    con = lake_store.connection.cursor()
    con.execute(ASOF_ROWS)
    query = ASOF_QUERIES[name]
    rewrite = functools.partial(sql_inline.rewrite_asof_joins, dialect="duckdb")
    rewritten = sql_inline.transpile(sqlglot.parse_one(query, read="duckdb"), "duckdb", [rewrite])
    assert "ASOF" not in rewritten.upper()
    assert ("__match" in rewritten) == ("unqualified" in name)
    want = con.sql(query).to_arrow_table().to_pylist()
    got = con.sql(rewritten).to_arrow_table().to_pylist()
    assert_same_rows(got, want)
    con.close()
