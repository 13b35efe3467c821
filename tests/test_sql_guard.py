"""The SQL gate of POST /v1/sql and the locked DuckDB configuration behind it."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import evalstore
from server import create_app
from server.errors import ApiError
from server.sql_guard import check_query

ACCEPTED = [
    "SELECT 1",
    "select model, count(*) from evalstore.models group by model",
    "WITH v AS (SELECT * FROM evalstore.models) SELECT count(*) FROM v",
    "SELECT 1 UNION ALL SELECT 2",
    "(SELECT 1)",
    "FROM evalstore.models",
    "SELECT * FROM evalstore.volume('fraud', '1 day')",
    "SELECT * FROM fraud.evaluations WHERE ts > now() - INTERVAL 7 DAY LIMIT 10",
    "SELECT list_transform([1, 2], x -> x + 1) AS l",
    "SELECT $1 + 1 AS two",
    "SELECT * FROM range(10) t(i) QUALIFY row_number() OVER (ORDER BY i) < 3",
    "SELECT 'read_csv(''/etc/passwd'')' AS harmless_text",
    "SELECT 1; ",
]

#: (statement kind, SQL) for every statement kind the gate refuses.
REJECTED_STATEMENTS = [
    ("create table", "CREATE TABLE t AS SELECT 1"),
    ("create view", "CREATE VIEW v AS SELECT 1"),
    ("create macro", "CREATE MACRO m(x) AS x"),
    ("create secret", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')"),
    ("alter", "ALTER TABLE evalstore.models ADD COLUMN x INT"),
    ("drop", "DROP TABLE evalstore.models"),
    ("insert", "INSERT INTO evalstore.meta VALUES ('a', 'b')"),
    ("update", "UPDATE evalstore.models SET stage = 'x'"),
    ("delete", "DELETE FROM evalstore.models"),
    ("truncate", "TRUNCATE evalstore.models"),
    ("dml in a cte", "WITH d AS (DELETE FROM evalstore.models RETURNING *) SELECT * FROM d"),
    ("insert select", "INSERT INTO evalstore.meta SELECT 'a', 'b'"),
    ("copy to", "COPY evalstore.models TO '/tmp/models.csv'"),
    ("copy from", "COPY evalstore.meta FROM '/etc/passwd'"),
    ("copy query", "COPY (SELECT 1) TO '/tmp/x.parquet' (FORMAT parquet)"),
    ("attach", "ATTACH '/tmp/other.duckdb' AS other"),
    ("detach", "DETACH other"),
    ("install", "INSTALL httpfs"),
    ("load", "LOAD httpfs"),
    ("pragma", "PRAGMA version"),
    ("pragma set", "PRAGMA enable_external_access=true"),
    ("set", "SET enable_external_access = true"),
    ("set global", "SET GLOBAL lock_configuration = false"),
    ("reset", "RESET enable_external_access"),
    ("call", "CALL pragma_version()"),
    ("export", "EXPORT DATABASE '/tmp/dump'"),
    ("import", "IMPORT DATABASE '/tmp/dump'"),
    ("use", "USE memory"),
    ("checkpoint", "CHECKPOINT"),
    ("vacuum", "VACUUM"),
    ("begin", "BEGIN TRANSACTION"),
    ("describe", "DESCRIBE evalstore.models"),
    ("summarize", "SUMMARIZE evalstore.models"),
    ("explain", "EXPLAIN SELECT 1"),
    ("pivot statement", "PIVOT evalstore.models ON stage USING count(*)"),
    ("two statements", "SELECT 1; DROP TABLE evalstore.models"),
    ("after a line comment", "SELECT 1 -- c\n; DROP TABLE evalstore.models"),
    ("block comment", "SELECT 1 /* x */; ATTACH 'x.db'"),
]

#: Every way of reading a file or the network the gate refuses.
REJECTED_FILE_ACCESS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "SELECT * FROM read_parquet(['/tmp/a.parquet', '/tmp/b.parquet'])",
    "SELECT * FROM parquet_scan('/tmp/x.parquet')",
    "SELECT * FROM parquet_metadata('/tmp/x.parquet')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_json_auto('/etc/passwd')",
    "SELECT * FROM read_ndjson('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT content FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "SELECT * FROM postgres_scan('host=x', 'public', 't')",
    "SELECT * FROM iceberg_scan('s3://bucket/t')",
    "SELECT * FROM delta_scan('/tmp/delta')",
    "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
    "SELECT * FROM query_table('/etc/passwd')",
    "SELECT getenv('HOME')",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'data.csv'",
    'SELECT * FROM "data.parquet"',
    "SELECT * FROM 'https://example.com/data.csv'",
    "SELECT * FROM 's3://bucket/key.parquet'",
    "SELECT * FROM evalstore.models m JOIN read_csv('/etc/passwd') p ON true",
    "WITH p AS (SELECT * FROM read_text('/etc/passwd')) SELECT * FROM p",
    "SELECT (SELECT content FROM read_text('/etc/passwd')) AS c",
    "SELECT * FROM main.read_csv('/etc/passwd')",
    "SELECT * FROM READ_CSV('/etc/passwd')",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_accepts_read_only_selects(sql):
    checked = check_query(sql)
    assert duckdb.extract_statements(checked)[0].type == duckdb.StatementType.SELECT


@pytest.mark.parametrize(
    ("kind", "sql"), REJECTED_STATEMENTS, ids=[k for k, _ in REJECTED_STATEMENTS]
)
def test_rejects_every_other_statement_kind(kind, sql):
    with pytest.raises(ApiError) as raised:
        check_query(sql)
    assert raised.value.status == 400
    assert raised.value.code == "statement_not_allowed", (kind, raised.value.detail)
    assert "only a single read-only SELECT" in raised.value.detail


@pytest.mark.parametrize("sql", REJECTED_FILE_ACCESS)
def test_rejects_file_and_network_access(sql):
    with pytest.raises(ApiError) as raised:
        check_query(sql)
    assert raised.value.status == 400
    assert raised.value.code in ("function_not_allowed", "file_access_not_allowed"), sql


def test_rejects_in_other_dialects_too():
    with pytest.raises(ApiError, match="statement"):
        check_query("DELETE FROM models", dialect="postgres")
    with pytest.raises(ApiError, match="reads files"):
        check_query("SELECT read_text('/etc/passwd')", dialect="postgres")
    assert check_query("SELECT `a` FROM `t`", dialect="bigquery") == 'SELECT "a" FROM "t"'


def test_what_runs_is_what_was_checked():
    """Comments are dropped from the statement that runs, so none can hide a second one."""
    checked = check_query("SELECT 1 AS x /* ; DROP TABLE evalstore.models */")
    assert checked == "SELECT 1 AS x"
    assert check_query("SELECT 1 AS x -- */ ; DROP TABLE evalstore.models") == "SELECT 1 AS x"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One locked, served store for the module (the rejected statements change nothing)."""
    tmp_path = tmp_path_factory.mktemp("locked")
    with evalstore.open(tmp_path / "locked.duckdb") as store:
        store.register_model("fraud", "v1", "binary")
        store.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
        allowed = tmp_path / "exports"
        allowed.mkdir()
        with TestClient(create_app(store, allowed_directories=(str(allowed),))) as client:
            yield store, client, tmp_path


@pytest.mark.parametrize("sql", [s for _, s in REJECTED_STATEMENTS] + REJECTED_FILE_ACCESS, ids=str)
def test_http_rejections_are_400_json(served, sql):
    _, client, _ = served
    response = client.post("/v1/sql", json={"sql": sql})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] in (
        "statement_not_allowed",
        "function_not_allowed",
        "file_access_not_allowed",
    )
    assert body["detail"]


def test_store_is_intact_after_every_rejection(served):
    store, client, _ = served
    for sql in [s for _, s in REJECTED_STATEMENTS]:
        client.post("/v1/sql", json={"sql": sql})
    assert store.sql("SELECT count(*) FROM evalstore.models").column(0)[0].as_py() == 1
    assert store.sql("SELECT count(*) FROM fraud.features").column(0)[0].as_py() == 2


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/evalstore_escape.csv'",
        "ATTACH '/tmp/evalstore_escape.duckdb' AS escape",
        "INSTALL httpfs",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET GLOBAL allowed_directories = ['/']",
    ],
)
def test_locked_configuration_stops_what_slips_past_the_parser(served, sql):
    """Defence in depth: on the server's DuckDB instance, even unchecked SQL cannot escape."""
    store, _, _ = served
    cursor = store.connection.cursor()
    try:
        with pytest.raises(duckdb.Error) as raised:
            cursor.execute(sql).fetchall()
        assert any(
            word in str(raised.value)
            for word in (
                "disabled by configuration",
                "locked",
                "Permission",
                "external access",
                "does not exist",  # no replacement scan reads the path as a file
            )
        ), str(raised.value)
    finally:
        cursor.close()


def test_locked_configuration_on_the_sql_route(served):
    """A statement the gate is told to pass still meets the locked instance (403)."""
    from server.query import run_query

    store, _, _ = served
    with pytest.raises(ApiError) as raised:
        run_query(store.connection, "SELECT * FROM read_text('/etc/passwd')", None, 10, 5.0)
    assert raised.value.status == 403
    assert raised.value.code == "file_access_not_allowed"


def test_evalstore_keeps_working_under_the_lock(served):
    """Ingest, macros, UDFs, Parquet export to an allowed directory, the BI snapshot."""
    store, client, tmp_path = served
    assert (
        client.post("/v1/models/fraud/labels", json=[{"example_id": "a", "label": 1}]).status_code
        == 200
    )
    pvalue = store.sql("SELECT evalstore_normal_pvalue(0.0) AS p").column(0)[0].as_py()
    assert pvalue == 1.0
    assert store.sql("SELECT * FROM evalstore.volume('fraud', '1 day')").num_rows == 2
    if hasattr(store, "export"):
        target = tmp_path / "exports" / "features.parquet"
        store.export(pa.table({"x": [1, 2]}), target)
        assert target.exists()
        with pytest.raises(duckdb.Error, match="disabled by configuration"):
            store.export(pa.table({"x": [1]}), tmp_path / "elsewhere.parquet")
    from server.snapshot import SnapshotWriter

    info = SnapshotWriter(store, tmp_path / "exports" / "bi.duckdb").refresh()
    assert info["bytes"] > 0
