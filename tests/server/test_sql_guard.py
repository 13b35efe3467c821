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


# ---------------------------------------------------------------------------------------------
# The hostile-SQL campaign (issue 19): every probe refused with a 400, nothing leaks
# ---------------------------------------------------------------------------------------------

SECRET = "es-secret-9f2c41"
FILE_CODES = {"file_access_not_allowed", "function_not_allowed", "table_not_allowed"}
FUNCTION = {"function_not_allowed"}
STATEMENT = {"statement_not_allowed"}
TABLE = {"table_not_allowed", "file_access_not_allowed"}
ANY_REFUSAL = FILE_CODES | STATEMENT | {"parse_error", "too_complex"}

#: (kind, dialect, SQL with {dir} for the one directory the lockdown allows, refusal codes).
HOSTILE = [
    *[
        ("file reader", None, sql, FUNCTION)
        for sql in (
            "SELECT * FROM read_text('{dir}/tokens.txt')",
            "SELECT content FROM read_text('{dir}/tokens.txt')",
            "SELECT * FROM read_blob('{dir}/tokens.txt')",
            "SELECT * FROM read_csv('{dir}/x.csv')",
            "SELECT * FROM read_csv_auto('{dir}/x.csv')",
            "SELECT * FROM read_csv('{dir}/x.csv', header = false)",
            "SELECT * FROM read_json('{dir}/x.csv')",
            "SELECT * FROM read_json_auto('{dir}/x.csv')",
            "SELECT * FROM read_ndjson_objects('{dir}/x.csv')",
            "SELECT * FROM read_json_objects('{dir}/x.csv')",
            "SELECT * FROM read_parquet('{dir}/x.parquet')",
            "SELECT * FROM parquet_scan('{dir}/x.parquet')",
            "SELECT * FROM parquet_metadata('{dir}/x.parquet')",
            "SELECT * FROM read_duckdb('{dir}/x.duckdb')",
            "SELECT * FROM \"read_text\"('{dir}/tokens.txt')",
            "SELECT * FROM READ_TEXT('{dir}/tokens.txt')",
            "SELECT * FROM main.read_text('{dir}/tokens.txt')",
            "SELECT read_text('{dir}/tokens.txt')",
            "WITH t AS (SELECT * FROM read_text('{dir}/tokens.txt')) SELECT * FROM t",
            "SELECT (SELECT content FROM read_text('{dir}/tokens.txt')) AS c",
            "SELECT 1 WHERE EXISTS (SELECT * FROM read_text('{dir}/tokens.txt'))",
            "SELECT * FROM evalstore.models, LATERAL (SELECT * FROM read_text('{dir}/tokens.txt'))",
            "SELECT 1 ORDER BY (SELECT content FROM read_text('{dir}/tokens.txt'))",
            "SELECT list_transform([1], x -> (SELECT content FROM read_text('{dir}/tokens.txt')))",
        )
    ],
    *[
        ("globbing", None, sql, FUNCTION | {"file_access_not_allowed"})
        for sql in (
            "SELECT * FROM glob('*')",
            "SELECT * FROM glob('{dir}/*')",
            "SELECT file FROM glob('{dir}/**')",
            "SELECT * FROM '{dir}/*.csv'",
            "SELECT * FROM read_text('{dir}/*')",
        )
    ],
    *[
        ("replacement scan", None, sql, TABLE)
        for sql in (
            "SELECT * FROM '{dir}/x.csv'",
            'SELECT * FROM "{dir}/x.csv"',
            "SELECT * FROM 'x.csv'",
            "SELECT * FROM '{dir}/tokens.txt'",
            "SELECT * FROM '~/x.csv'",
            "SELECT * FROM 'https://example.com/x.csv'",
            "SELECT * FROM 's3://bucket/x.parquet'",
            "SELECT * FROM evalstore.models JOIN '{dir}/x.csv' ON true",
            "SELECT * FROM (FROM '{dir}/x.csv')",
            "SELECT * FROM '{dir}/x.csv' AS t(a, b)",
        )
    ],
    *[
        ("sequence", None, sql, FUNCTION)
        for sql in (
            "SELECT nextval('evalstore.batch_ids')",
            "SELECT setval('evalstore.batch_ids', 1)",
            "SELECT setval('evalstore.batch_ids', 1, false)",
            "SELECT currval('evalstore.batch_ids')",
            "SELECT * FROM (SELECT nextval('evalstore.batch_ids'))",
            "SELECT 1 WHERE setval('evalstore.batch_ids', 1) > 0",
            "SELECT * FROM range(3) WHERE nextval('evalstore.batch_ids') > 0",
        )
    ],
    *[
        # duckdb_settings without parentheses is no table: DuckDB's binder refuses it
        ("settings", None, sql, FUNCTION | {"table_not_allowed", "query_error"})
        for sql in (
            "SELECT current_setting('allowed_directories')",
            "SELECT current_setting('enable_external_access')",
            "SELECT * FROM duckdb_settings()",
            "SELECT * FROM duckdb_settings",
            "SELECT * FROM pg_settings",
            "SELECT * FROM pg_catalog.pg_settings",
            "SELECT getenv('HOME')",
            "SELECT * FROM duckdb_databases()",
            "SELECT * FROM duckdb_databases",
            "SELECT * FROM pragma_database_list",
            "SELECT * FROM duckdb_extensions()",
            "SELECT * FROM duckdb_secrets()",
            "SELECT * FROM which_secret('s3://x', 's3')",
            "SELECT * FROM duckdb_temporary_files()",
            "SELECT getvariable('x')",
            "SELECT * FROM evalstore.relation('pg_settings')",
            "SELECT * FROM evalstore.model_table('pg_catalog', 'pg_settings')",
        )
    ],
    *[
        ("sleep or checkpoint", None, sql, FUNCTION | STATEMENT)
        for sql in (
            "SELECT sleep_ms(1000)",
            "SELECT pg_sleep(1)",
            "SELECT 1 WHERE sleep_ms(1000) IS NULL",
            "SELECT checkpoint()",
            "SELECT * FROM checkpoint()",
            "SELECT * FROM force_checkpoint()",
            "CALL checkpoint()",
            "CHECKPOINT",
            "FORCE CHECKPOINT",
        )
    ],
    *[
        ("serialized SQL", None, sql, FILE_CODES)
        for sql in (
            "SELECT * FROM json_execute_serialized_sql(json_serialize_sql("
            "'SELECT content FROM read_text(''{dir}/tokens.txt'')'))",
            "SELECT * FROM json_execute_serialized_sql('{{\"error\": false}}')",
            "SELECT json_serialize_sql('SELECT 1')",
            "SELECT json_deserialize_sql(json_serialize_sql('SELECT 1'))",
            "SELECT json_serialize_plan('SELECT 1')",
            "SELECT * FROM query('SELECT content FROM read_text(''{dir}/tokens.txt'')')",
            "SELECT * FROM query_table('{dir}/x.csv')",
            "SELECT * FROM query_table(['evalstore.models'])",
        )
    ],
    *[
        ("store macro misuse", None, sql, TABLE | FUNCTION)
        for sql in (
            "SELECT * FROM evalstore.relation('{dir}/x.csv')",
            "SELECT * FROM evalstore.model_table('{dir}/tokens', 'txt')",
            "SELECT * FROM evalstore.system_table(NULL, 'models/../x.csv')",
            "SELECT * FROM evalstore.volume((SELECT 'fraud'), '1 day')",
            "SELECT * FROM evalstore.volume('x.csv', '1 day')",
            "SELECT * FROM evalstore.relation('duckdb_databases')",
        )
    ],
    *[
        ("statement", None, sql, STATEMENT)
        for sql in (
            "ATTACH '{dir}/other.duckdb' AS other",
            "DETACH other",
            "COPY (SELECT 1) TO '{dir}/out.csv'",
            "COPY evalstore.models TO '{dir}/models.csv'",
            "COPY evalstore.meta FROM '{dir}/x.csv'",
            "PRAGMA version",
            "SET enable_external_access = true",
            "SET VARIABLE x = 1",
            "RESET lock_configuration",
            "INSTALL httpfs",
            "LOAD httpfs",
            "EXPORT DATABASE '{dir}/dump'",
            "IMPORT DATABASE '{dir}/dump'",
            "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
            "CREATE MACRO m(x) AS x",
            "CREATE TABLE t AS SELECT * FROM read_text('{dir}/tokens.txt')",
            "CREATE VIEW v AS SELECT * FROM '{dir}/x.csv'",
            "INSERT INTO evalstore.meta VALUES ('a', 'b')",
            "UPDATE evalstore.models SET stage = 'x'",
            "DELETE FROM evalstore.batches",
            "DROP TABLE fraud.features",
            "ALTER TABLE evalstore.models RENAME TO m",
            "USE memory",
            "VACUUM",
            "BEGIN TRANSACTION",
            "DESCRIBE evalstore.models",
            "SUMMARIZE evalstore.models",
            "EXPLAIN SELECT 1",
            "PIVOT evalstore.models ON stage USING count(*)",
        )
    ],
    *[
        ("multi-statement or comment", None, sql, ANY_REFUSAL)
        for sql in (
            "SELECT 1; SELECT * FROM read_text('{dir}/tokens.txt')",
            "SELECT 1;ATTACH '{dir}/o.duckdb'",
            "SELECT 1 /* hidden */; COPY (SELECT 1) TO '{dir}/o.csv'",
            "SELECT 1 -- c\n; SELECT setval('evalstore.batch_ids', 1)",
            "/* a comment */ SELECT * FROM read_text('{dir}/tokens.txt')",
            "SELECT/**/*/**/FROM/**/read_text('{dir}/tokens.txt')",
            "SELECT 1 /* */ UNION ALL SELECT content FROM read_text('{dir}/tokens.txt')",
            "SELECT '*/' AS a, content FROM read_text('{dir}/tokens.txt') -- '",
        )
    ],
    *[
        # odd characters split a name (``read`` becomes a table the binder does not know)
        ("unicode", None, sql, ANY_REFUSAL | {"query_error"})
        for sql in (
            "SELECT * FROM r\u0435ad_text('{dir}/tokens.txt')",  # Cyrillic e
            "SELECT * FROM read\u200b_text('{dir}/tokens.txt')",  # zero-width space
            "SELECT * FROM \uff52\uff45\uff41\uff44_text('{dir}/tokens.txt')",  # full width
            "SELECT\u00a0*\u00a0FROM\u00a0read_text('{dir}/tokens.txt')",  # no-break spaces
            "SELECT * FROM read_text('{dir}/tokens.txt')\u202e",  # right-to-left override
            "SELECT * FROM U&'{dir}/x\\002ecsv'",
            'SELECT * FROM "{dir}/x\u002ecsv"',
        )
    ],
    *[
        ("dialect", dialect, sql, ANY_REFUSAL)
        for dialect, sql in (
            ("mysql", "SELECT * FROM CONCAT('{dir}/x.csv')"),
            ("mysql", "SELECT * FROM `{dir}/x.csv`"),
            ("mysql", "SELECT LOAD_FILE('{dir}/tokens.txt')"),
            ("bigquery", "SELECT * FROM `{dir}/x.csv`"),
            ("bigquery", "SELECT DATE_ADD('x')"),
            ("bigquery", "SELECT REGEXP_EXTRACT('x')"),
            ("spark", "SELECT * FROM csv.`{dir}/x.csv`"),
            ("spark", "SELECT * FROM parquet.`{dir}/x.parquet`"),
            ("spark", "SELECT * FROM text.`{dir}/tokens.txt`"),
            ("hive", "LOAD DATA INPATH '{dir}/x.csv' INTO TABLE t"),
            ("postgres", "SELECT pg_read_file('{dir}/tokens.txt')"),
            ("postgres", "COPY t FROM '{dir}/x.csv'"),
            ("postgres", "SELECT * FROM read_text('{dir}/tokens.txt')"),
            ("clickhouse", "SELECT * FROM file('{dir}/x.csv')"),
            ("clickhouse", "SELECT * FROM url('http://127.0.0.1:9/x')"),
            ("snowflake", "SELECT * FROM @stage/x.csv"),
            ("tsql", "SELECT * FROM OPENROWSET(BULK '{dir}/x.csv', SINGLE_CLOB) AS x"),
            ("tsql", "EXEC('SELECT 1')"),
            ("trino", "SELECT * FROM TABLE(read_text('{dir}/tokens.txt'))"),
            ("duckdb", "SELECT VAR_MAP('x')"),
            ("duckdb", "SELECT DATETIME('x')"),
            ("sqlite", "ATTACH DATABASE '{dir}/x.duckdb' AS x"),
        )
    ],
    *[
        ("nesting", None, sql, {"too_complex", "parse_error"})
        for sql in (
            "SELECT " + "(" * 50 + "1" + ")" * 50,
            "SELECT " + "abs(" * 45 + "1" + ")" * 45,
            "SELECT " + "[" * 40 + "1" + "]" * 40,
            "SELECT " + "NOT " * 3000 + "true",
            "SELECT " + "- " * 3000 + "1",
        )
    ],
]


@pytest.fixture(scope="module")
def secret_dir(served):
    """The allowed directory, holding a token file, a CSV and a Parquet file with a secret."""
    _, _, tmp_path = served
    folder = tmp_path / "exports"
    (folder / "tokens.txt").write_text(f"write-token {SECRET}\n")
    (folder / "x.csv").write_text(f"a,b\n{SECRET},1\n")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [SECRET]}), folder / "x.parquet")
    return folder


def _batch_ids(store) -> list:
    return store.connection.execute(
        "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'batch_ids'"
    ).fetchall()


@pytest.mark.parametrize(
    ("kind", "dialect", "sql", "codes"),
    HOSTILE,
    ids=[f"{kind}-{i}" for i, (kind, *_rest) in enumerate(HOSTILE)],
)
def test_hostile_sql_is_refused_and_nothing_leaks(served, secret_dir, kind, dialect, sql, codes):
    store, client, _ = served
    text = sql.format(dir=secret_dir)
    before = _batch_ids(store)
    response = client.post("/v1/sql", json={"sql": text, "dialect": dialect})
    assert response.status_code == 400, (kind, text, response.text)
    body = response.json()
    assert body["error"] in codes, (kind, text, body)
    assert len(body["detail"]) > 20
    assert SECRET not in response.text
    assert _batch_ids(store) == before
    assert not (secret_dir / "out.csv").exists() and not (secret_dir / "models.csv").exists()
    assert client.get("/healthz").status_code == 200  # the next request is served normally


def test_the_campaign_is_large_enough():
    assert len(HOSTILE) >= 100
    assert len({kind for kind, *_ in HOSTILE}) >= 12


@pytest.mark.parametrize(
    ("sql", "dialect", "message"),
    [
        ("SELECT VAR_MAP('x')", None, "cannot"),
        ("SELECT DATETIME('x')", None, "cannot"),
        ("SELECT DATE_ADD('x')", "bigquery", "cannot"),
        ("SELECT REGEXP_EXTRACT('x')", "bigquery", "cannot"),
        ("SELECT " + "(" * 50 + "1" + ")" * 50, None, "nests brackets more than 32 deep"),
        ("SELECT " + "abs(" * 45 + "1" + ")" * 45, None, "nests brackets more than 32 deep"),
    ],
)
def test_odd_input_is_a_400_with_a_clear_message(sql, dialect, message):
    with pytest.raises(ApiError) as raised:
        check_query(sql, dialect)
    assert raised.value.status == 400
    assert raised.value.code in ("parse_error", "too_complex", "function_not_allowed")
    assert message in raised.value.detail


def test_nesting_up_to_the_bound_is_accepted():
    assert check_query("SELECT " + "abs(" * 30 + "-1" + ")" * 30 + " AS v").startswith(
        "SELECT ABS("
    )


def test_store_macros_and_views_stay_queryable(served):
    _, client, _ = served
    for sql in (
        "SELECT * FROM evalstore.volume('fraud', '1 day')",
        "SELECT count(*) AS n FROM fraud.features",
        "SELECT * FROM fraud.evaluations LIMIT 1",
        "SELECT * FROM evalstore.label_coverage('fraud', '1 day')",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'fraud'",
        "SELECT function_name FROM duckdb_functions() WHERE schema_name = 'evalstore' LIMIT 1",
        "SELECT evalstore_normal_pvalue(0.0) AS p",
        "SELECT count(*) AS n FROM locked.fraud.features",
    ):
        response = client.post("/v1/sql", json={"sql": sql})
        assert response.status_code == 200, (sql, response.text)
    volume = client.post(
        "/v1/sql",
        json={
            "sql": "SELECT sum(rows) AS n FROM evalstore.volume('fraud', '1 day') "
            "WHERE kind = 'features'"
        },
    )
    assert volume.json() == [{"n": 2}]


def test_dialect_by_function_fuzz_sample(load_benchmark):
    """A seeded sample of dialect x function probes: each refused with a 400, or accepted
    with only allow-listed functions and no path-like table (never another exception)."""
    import random

    soak = load_benchmark("soak_sql_fuzz")
    cases = random.Random(19).sample(soak.probes(soak.function_names()), 600)
    counts, errors = soak.run(cases)
    assert errors == []
    refused = sum(c["refused"] for c in counts.values())
    accepted = sum(c["accepted"] for c in counts.values())
    assert refused + accepted == 600
    assert refused > 300 and accepted > 50  # most names are not allow-listed; many are
