"""The HTTP server in-process (FastAPI TestClient): every route, its errors and its limits."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from arrow_bodies import arrow_body
from fastapi import Request
from fastapi.testclient import TestClient

import evalstore
from evalstore.core.formats import to_records
from evalstore.errors import InvalidParameterError
from server import create_app
from server.auth import Tokens
from server.checkpointer import Checkpointer
from server.routes_query import FAMILIES

ARROW = "application/vnd.apache.arrow.stream"
JSON_TYPE = "application/json"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def read_arrow(content: bytes) -> pa.Table:
    return ipc.open_stream(pa.py_buffer(content)).read_all()


def populate(store: evalstore.Store, serving: int = 300) -> None:
    """A binary model with training and serving features, predictions and half the labels."""
    rng = np.random.default_rng(3)
    store.register_model("fraud", "v1", "binary", threshold=0.5, stage="production")
    n = 200
    store.log_features(
        "fraud",
        pa.table(
            {
                "example_id": [f"t{i}" for i in range(n)],
                "ts": [datetime(2024, 1, 1, tzinfo=UTC)] * n,
                "amount": rng.normal(100, 10, n),
                "channel": rng.choice(["web", "app", "pos"], n),
            }
        ),
        env="training",
    )
    ids = [f"s{i}" for i in range(serving)]
    ts = [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 72, serving)]
    store.log_features(
        "fraud",
        pa.table(
            {
                "example_id": ids,
                "ts": ts,
                "amount": rng.normal(110, 12, serving),
                "channel": rng.choice(["web", "app", "pos"], serving, p=[0.6, 0.3, 0.1]),
            }
        ),
    )
    scores = rng.uniform(0, 1, serving)
    store.log_predictions(
        "fraud",
        pa.table(
            {
                "example_id": ids,
                "ts": ts,
                "score": scores,
                "latency_ms": rng.uniform(1, 300, serving),
            }
        ),
        version="v1",
        latency_column="latency_ms",
    )
    labelled = serving // 2
    store.log_labels(
        "fraud",
        pa.table(
            {
                "example_id": ids[:labelled],
                "label": (rng.uniform(0, 1, labelled) < scores[:labelled]).astype(int),
            }
        ),
    )


def register(store: evalstore.Store) -> None:
    """Two versions of a binary model ``fraud`` and a multiclass ``iris``, no data."""
    store.register_model(
        "fraud",
        "v1",
        "binary",
        threshold=0.3,
        deployed_at="2024-05-01T12:00:00Z",
        stage="production",
        dependencies={"xgboost": "2.1.0"},
    )
    store.register_model("fraud", "v2", "binary", stage="shadow")
    store.register_model("iris", "v1", "multiclass", classes=["setosa", "versicolor"])


@pytest.fixture
def store_file(template, copy_template, tmp_path):
    """A fresh copy of a store made by :func:`register` (built once per session)."""
    built = template("server-registered", register, "served.duckdb")
    return copy_template(built, tmp_path, "served.duckdb")


@pytest.fixture
def client(store_file):
    with evalstore.open(store_file) as store, TestClient(create_app(store)) as client:
        yield client


@pytest.fixture
def data_file(template, copy_template, tmp_path):
    """A fresh copy of a store made by :func:`populate` (built once per session)."""
    return copy_template(
        template("server-populated", populate, "data.duckdb"), tmp_path, "data.duckdb"
    )


@pytest.fixture
def populated(data_file):
    """(store, client) over a store holding data for every family."""
    with evalstore.open(data_file) as store, TestClient(create_app(store)) as client:
        yield store, client


@pytest.fixture(params=[True, False], ids=["locked", "unlocked"])
def flywheel(request, data_file):
    """``populated`` with and without the locked DuckDB configuration."""
    with (
        evalstore.open(data_file) as store,
        TestClient(create_app(store, lockdown=request.param)) as client,
    ):
        yield store, client


@pytest.fixture(scope="module")
def shared(template, copy_template, tmp_path_factory):
    """Like ``populated``, shared by the tests that only read (one store for the module, a
    copy of the session's :func:`populate` template)."""
    built = template("server-populated", populate, "data.duckdb")
    path = copy_template(built, tmp_path_factory.mktemp("shared"), "data.duckdb")
    with evalstore.open(path) as store, TestClient(create_app(store)) as client:
        yield store, client


def locked_out(response) -> bool:
    """The library call tried to SET a setting on the server's locked DuckDB instance."""
    return response.status_code == 400 and "configuration has been locked" in response.text


def rows_of(store: evalstore.Store, table: str) -> int:
    return store.sql(f"SELECT count(*) AS n FROM {table}").column(0)[0].as_py()


# ----------------------------------------------------------------------------- health, registry


def test_healthz_reports_the_store(client, store_file):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["store"]) == ("ok", str(store_file))
    assert body["checkpoints"]["idle_seconds"] == 1.0
    assert body["checkpoints"]["wal_limit"] == "1GiB"
    assert body["checkpoints"]["error"] is None


def test_commits_are_checkpointed_in_the_background_once_ingest_pauses(tmp_path):
    path = tmp_path / "ckpt.duckdb"
    wal = tmp_path / "ckpt.duckdb.wal"
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.connection.execute("CHECKPOINT")
        app = create_app(store, checkpoint_idle=0.2, wal_limit="256MB")
        with TestClient(app) as client:
            threshold = store.sql("SELECT current_setting('checkpoint_threshold') AS t")
            assert threshold.column("t")[0].as_py() == "244.1 MiB"
            rows = pa.table({"example_id": [f"e{i}" for i in range(5000)], "x": [1.0] * 5000})
            response = client.post("/v1/models/m/features?env=serving", json=rows.to_pylist())
            assert response.json()["rows"] == 5000
            assert wal.stat().st_size > 0  # committed, still in the log
            deadline = time.monotonic() + 30
            while wal.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not wal.exists()  # folded into the file after the pause
            status = client.get("/healthz").json()["checkpoints"]
            assert status["checkpoints"] == 1
            assert status["last"]["wal_bytes_before"] > 0
            assert status["last"]["wal_bytes_after"] == 0
            assert status["wal_bytes"] == 0
    with evalstore.open(path, read_only=True) as reopened:
        assert reopened.sql("SELECT count(*) AS n FROM m.features").column("n")[0].as_py() == 5000


def test_checkpoint_settings_are_checked():
    with evalstore.open() as store:
        with pytest.raises(InvalidParameterError, match=r"wal_limit='lots' is not a size"):
            Checkpointer(store, wal_limit="lots")
        with pytest.raises(InvalidParameterError, match=r"idle=0 must be a positive"):
            Checkpointer(store, idle=0)
        assert "checkpoints" not in TestClient(create_app(store)).get("/healthz").json()


def test_healthz_in_memory():
    with evalstore.open() as store, TestClient(create_app(store)) as client:
        assert client.get("/healthz").json() == {
            "status": "ok",
            "store": ":memory:",
            "ingest": {
                "group_commit": True,
                "groups": 0,
                "requests": 0,
                "rejected": 0,
                "largest": 0,
                "queued": 0,
                "writing": 0,
                "busy_seconds": 0.0,
            },
        }


def test_models_lists_the_registry_as_json_records(client):
    response = client.get("/v1/models")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    records = response.json()
    assert [(r["model"], r["version"], r["task"]) for r in records] == [
        ("fraud", "v1", "binary"),
        ("fraud", "v2", "binary"),
        ("iris", "v1", "multiclass"),
    ]
    v1 = records[0]
    assert v1["classes"] == ["0", "1"]
    assert v1["positive_class"] == "1"
    assert v1["threshold"] == 0.3
    assert v1["stage"] == "production"
    assert v1["retired_at"] is None
    assert json.loads(v1["dependencies"]) == {"xgboost": "2.1.0"}
    assert records[2]["classes"] == ["setosa", "versicolor"]


def test_models_times_are_iso_8601(client):
    records = client.get("/v1/models").json()
    assert records[0]["deployed_at"] == "2024-05-01T12:00:00+00:00"
    for record in records:
        created = datetime.fromisoformat(record["created_at"])
        assert created.tzinfo is not None and created.utcoffset().total_seconds() == 0
    assert records[1]["deployed_at"] is None


def test_models_of_one_model(client):
    response = client.get("/v1/models", params={"model": "iris"})
    assert [(r["model"], r["version"]) for r in response.json()] == [("iris", "v1")]


@pytest.mark.parametrize("name", ["unknown", "Not-A-Name"])
def test_unknown_model_is_404(client, name):
    response = client.get("/v1/models", params={"model": name})
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown_model",
        "detail": f"model {name!r} is not registered",
    }


def test_serves_a_read_only_store(store_file):
    with (
        evalstore.open(store_file, read_only=True) as store,
        TestClient(create_app(store)) as client,
    ):
        assert client.get("/healthz").json()["status"] == "ok"
        assert len(client.get("/v1/models").json()) == 3
        refused = client.post("/v1/models/fraud/labels", json=[{"example_id": "a", "label": 1}])
        assert refused.status_code == 409
        assert refused.json()["error"] == "read_only"


def test_openapi_describes_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/healthz",
        "/metrics",
        "/v1/models",
        "/v1/models/{model}/versions",
        "/v1/models/{model}/features",
        "/v1/models/{model}/predictions",
        "/v1/models/{model}/labels",
        "/v1/sql",
        "/v1/models/{model}/{family}",
        "/v1/models/{model}/suggestions",
        "/v1/models/{model}/requests",
        "/v1/models/{model}/requests/cancel",
        "/v1/models/{model}/selections",
        "/v1/models/{model}/snapshots",
        "/v1/snapshots",
        "/v1/snapshots/{name}",
    } <= set(paths)
    ingest = paths["/v1/models/{model}/features"]["post"]
    assert set(ingest["requestBody"]["content"]) == {"application/json", ARROW}
    assert {p["name"] for p in ingest["parameters"]} >= {"model", "env", "dataset"}
    sql = paths["/v1/sql"]["post"]
    assert "text/csv" in sql["responses"]["200"]["content"]


def test_register_a_version(client):
    body = {"version": "v3", "task": "binary", "threshold": 0.4, "params": {"depth": 6}}
    response = client.post("/v1/models/fraud/versions", json=body)
    assert response.status_code == 201
    row = response.json()
    assert (row["model"], row["version"], row["threshold"]) == ("fraud", "v3", 0.4)
    assert json.loads(row["params"]) == {"depth": 6}
    again = client.post("/v1/models/fraud/versions", json=body)
    assert again.status_code == 201 and again.json() == row
    conflict = client.post("/v1/models/fraud/versions", json={**body, "threshold": 0.9})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "model_conflict"
    assert "replace" in conflict.json()["detail"]
    new_model = client.post(
        "/v1/models/churn/versions", json={"version": "a", "task": "regression"}
    )
    assert new_model.status_code == 201
    assert [r["model"] for r in client.get("/v1/models", params={"model": "churn"}).json()] == [
        "churn"
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"version": "v9", "task": "ranking"}, "invalid_parameter"),
        ({"version": "v9"}, "invalid_request"),
        ({"version": "v9", "task": "binary", "colour": "red"}, "invalid_request"),
    ],
)
def test_register_rejections_say_why(client, body, code):
    response = client.post("/v1/models/fraud/versions", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == code
    assert response.json()["detail"]


# ----------------------------------------------------------------------------- ingest


def test_ingest_json_records_features_predictions_labels(client, store_file):
    features = [
        {"example_id": "a", "ts": "2024-03-01T10:00:00Z", "amount": 12.5, "channel": "web"},
        {"example_id": "b", "ts": "2024-03-01T11:00:00Z", "amount": 99.0, "channel": "app"},
    ]
    response = client.post("/v1/models/fraud/features", json=features)
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["kind"] == "features" and receipt["rows"] == 2
    assert receipt["columns_added"] == ["amount", "channel"]
    predictions = {"example_id": ["a", "b"], "score": [0.1, 0.8], "latency_ms": [3.0, 7.0]}
    response = client.post(
        "/v1/models/fraud/predictions",
        params={"version": "v1", "latency_column": "latency_ms"},
        json=predictions,
    )
    assert response.status_code == 200 and response.json()["rows"] == 2
    labels = {"records": [{"example_id": "a", "label": 1}]}
    response = client.post("/v1/models/fraud/labels", params={"source": "chargeback"}, json=labels)
    assert response.status_code == 200 and response.json()["kind"] == "labels"
    rows = client.post(
        "/v1/sql",
        json={"sql": "SELECT * FROM fraud.evaluations ORDER BY example_id"},
    ).json()
    assert [(r["example_id"], r["prediction"], r["label"]) for r in rows] == [
        ("a", "0", "1"),
        ("b", "1", None),
    ]
    assert rows[0]["latency_ms"] == 3.0 and rows[0]["label_source"] == "chargeback"
    assert rows[0]["amount"] == 12.5
    times = client.post("/v1/sql", json={"sql": "SELECT ts FROM fraud.features ORDER BY ts"})
    assert times.json() == [
        {"ts": "2024-03-01T10:00:00+00:00"},
        {"ts": "2024-03-01T11:00:00+00:00"},
    ]
    batches = client.post(
        "/v1/sql", json={"sql": "SELECT kind, rows, source FROM evalstore.batches ORDER BY 1"}
    ).json()
    assert batches == [
        {"kind": "features", "rows": 2, "source": "http:json"},
        {"kind": "labels", "rows": 1, "source": "http:json"},
        {"kind": "predictions", "rows": 2, "source": "http:json"},
    ]


def test_ingest_arrow_ipc_stream(client):
    n = 5000
    table = pa.table(
        {
            "example_id": [f"x{i}" for i in range(n)],
            "amount": np.arange(n, dtype=float),
            "ts": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    response = client.post(
        "/v1/models/fraud/features",
        params={"env": "training", "dataset": "train_1"},
        content=arrow_body(table),
        headers={"content-type": ARROW},
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == n
    counted = client.post(
        "/v1/sql",
        json={
            "sql": "SELECT count(*) AS n, sum(amount) AS s FROM fraud.features "
            "WHERE env = ? AND dataset = ?",
            "params": ["training", "train_1"],
        },
    ).json()
    assert counted == [{"n": n, "s": float(np.arange(n).sum())}]
    source = client.post("/v1/sql", json={"sql": "SELECT source FROM evalstore.batches"}).json()
    assert source == [{"source": "http:arrow"}]


def test_rejected_batch_writes_nothing_and_says_why(shared):
    store, client = shared
    before = rows_of(store, "fraud.features"), rows_of(store, "evalstore.batches")
    duplicate = client.post(
        "/v1/models/fraud/features",
        json=[{"example_id": "new1", "amount": 1.0}, {"example_id": "s0", "amount": 2.0}],
    )
    assert duplicate.status_code == 409
    body = duplicate.json()
    assert body["error"] == "duplicate_id" and body["column"] == "example_id"
    assert "s0" in body["examples"]
    wrong_type = client.post(
        "/v1/models/fraud/features", json=[{"example_id": "new2", "amount": "lots"}]
    )
    assert wrong_type.status_code == 409
    assert wrong_type.json()["error"] == "schema_conflict"
    assert wrong_type.json()["column"] == "amount"
    bad_label = client.post("/v1/models/fraud/labels", json=[{"example_id": "s1", "label": 7}])
    assert bad_label.status_code == 422
    assert bad_label.json()["error"] == "invalid_batch"
    assert (rows_of(store, "fraud.features"), rows_of(store, "evalstore.batches")) == before


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        ("/v1/models/nobody/features", {"json": [{"example_id": "a"}]}, 404, "unknown_model"),
        ("/v1/models/fraud/predictions", {"json": [{"example_id": "a"}]}, 422, "invalid_request"),
        (
            "/v1/models/fraud/predictions?version=v7",
            {"json": [{"example_id": "a", "score": 0.5}]},
            404,
            "unknown_model",
        ),
        ("/v1/models/fraud/features", {"content": b"{not json"}, 422, "invalid_json"),
        ("/v1/models/fraud/features", {"content": b""}, 422, "empty_body"),
        ("/v1/models/fraud/features", {"json": [1, 2]}, 422, "invalid_json"),
        ("/v1/models/fraud/features", {"json": "text"}, 422, "invalid_json"),
        (
            "/v1/models/fraud/features",
            {"json": [{"example_id": "a", "x": 1}, {"example_id": "b", "x": "y"}]},
            422,
            "invalid_json",
        ),
        (
            "/v1/models/fraud/features",
            {"content": b"not arrow", "headers": {"content-type": ARROW}},
            422,
            "invalid_arrow",
        ),
        (
            "/v1/models/fraud/features",
            {"content": b"a,b", "headers": {"content-type": "text/csv"}},
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/models/fraud/features?env=staging",
            {"json": [{"example_id": "a"}]},
            422,
            "invalid_parameter",
        ),
    ],
)
def test_ingest_errors_are_json_4xx(client, path, kwargs, status, code):
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str) and body["detail"]


def test_body_size_limits(store_file):
    with (
        evalstore.open(store_file) as store,
        TestClient(create_app(store, max_body_bytes=1000)) as client,
    ):
        rows = [{"example_id": f"id{i}", "amount": float(i)} for i in range(100)]
        response = client.post("/v1/models/fraud/features", json=rows)
        assert response.status_code == 413
        assert response.json()["error"] == "body_too_large"
        assert "1000 bytes" in response.json()["detail"]

        def chunks():
            for _ in range(10):
                yield b" " * 200

        chunked = client.post(
            "/v1/models/fraud/features",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413
        assert chunked.json()["error"] == "body_too_large"
        small = client.post("/v1/models/fraud/features", json=rows[:3])
        assert small.status_code == 200
        assert store.sql("SELECT count(*) FROM fraud.features").column(0)[0].as_py() == 3
        huge_sql = client.post("/v1/sql", json={"sql": "SELECT 1" + " " * (5 * 1024 * 1024)})
        assert huge_sql.status_code == 413


# ----------------------------------------------------------------------------- SQL


def test_sql_json_records_with_iso_times(shared):
    _, client = shared
    response = client.post(
        "/v1/sql",
        json={
            "sql": "SELECT date_trunc('day', ts) AS day, count(*) AS n FROM fraud.predictions "
            "GROUP BY 1 ORDER BY 1"
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    records = response.json()
    assert [r["day"] for r in records] == [
        "2024-03-01T00:00:00+00:00",
        "2024-03-02T00:00:00+00:00",
        "2024-03-03T00:00:00+00:00",
    ]
    assert sum(r["n"] for r in records) == 300
    assert response.headers["x-evalstore-rows"] == "3"


def test_sql_csv_and_arrow_by_accept_header(shared):
    store, client = shared
    query = {"sql": "SELECT example_id, score FROM fraud.predictions ORDER BY example_id"}
    expected = store.sql(query["sql"])
    csv = client.post("/v1/sql", json=query, headers={"accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == '"example_id","score"' and len(lines) == 301
    arrow = client.post("/v1/sql", json=query, headers={"accept": ARROW})
    assert arrow.headers["content-type"] == ARROW
    assert read_arrow(arrow.content).equals(expected)
    by_param = client.post("/v1/sql?format=arrow", json=query)
    assert read_arrow(by_param.content).equals(expected)
    refused = client.post("/v1/sql", json=query, headers={"accept": "image/png"})
    assert refused.status_code == 406 and refused.json()["error"] == "unsupported_format"


def test_sql_binds_parameters_and_transpiles_dialects(shared):
    _, client = shared
    positional = client.post(
        "/v1/sql",
        json={
            "sql": "SELECT count(*) AS n FROM fraud.features WHERE env = ?",
            "params": ["training"],
        },
    ).json()
    named = client.post(
        "/v1/sql",
        json={
            "sql": "SELECT count(*) AS n FROM fraud.features WHERE env = $env",
            "params": {"env": "training"},
        },
    ).json()
    assert positional == named == [{"n": 200}]
    injection = client.post(
        "/v1/sql",
        json={
            "sql": "SELECT count(*) AS n FROM fraud.features WHERE env = ?",
            "params": ["x' OR '1'='1"],
        },
    ).json()
    assert injection == [{"n": 0}]
    for dialect, sql in [
        (
            "postgres",
            "SELECT DATE_TRUNC('day', ts) AS d, COUNT(*) AS n FROM fraud.predictions "
            "GROUP BY 1 ORDER BY 1 LIMIT 1",
        ),
        (
            "bigquery",
            "SELECT TIMESTAMP_TRUNC(ts, DAY) AS d, COUNT(*) AS n FROM fraud.predictions "
            "GROUP BY 1 ORDER BY 1 LIMIT 1",
        ),
        (
            "tsql",
            "SELECT TOP 1 DATETRUNC(day, ts) AS d, COUNT(*) AS n FROM fraud.predictions "
            "GROUP BY DATETRUNC(day, ts) ORDER BY 1",
        ),
    ]:
        response = client.post("/v1/sql", json={"sql": sql, "dialect": dialect})
        assert response.status_code == 200, (dialect, response.text)
        assert response.json()[0]["d"].startswith("2024-03-01T00:00:00"), dialect
    unknown = client.post("/v1/sql", json={"sql": "SELECT 1", "dialect": "cobol"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_dialect"


def test_sql_macros_are_callable(shared):
    store, client = shared
    query = "SELECT * FROM evalstore.label_coverage(?, '1 day') ORDER BY window_start"
    response = client.post("/v1/sql", json={"sql": query, "params": ["fraud"]})
    assert response.json() == to_records(store.sql(query, ["fraud"]))


def test_sql_row_limit_and_time_limit(store_file):
    with (
        evalstore.open(store_file) as store,
        TestClient(create_app(store, row_limit=100, time_limit=0.3)) as client,
    ):
        ok = client.post("/v1/sql", json={"sql": "SELECT * FROM range(100)"})
        assert ok.status_code == 200 and len(ok.json()) == 100
        too_many = client.post("/v1/sql", json={"sql": "SELECT * FROM range(101)"})
        assert too_many.status_code == 422
        assert too_many.json()["error"] == "row_limit"
        assert "more than 100 rows" in too_many.json()["detail"]
        slow = client.post(
            "/v1/sql",
            json={"sql": "SELECT count(*) FROM range(1000000000000) t(a) WHERE a % 7 = 3"},
        )
        assert slow.status_code == 408
        assert slow.json()["error"] == "time_limit"
        assert "0.3 s" in slow.json()["detail"]
        assert client.post("/v1/sql", json={"sql": "SELECT 42 AS x"}).json() == [{"x": 42}]


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT * FROM no_such_table", "query_error"),
        ("SELECT nonsense(", "parse_error"),
        ("", "empty_query"),
        ("DROP TABLE evalstore.models", "statement_not_allowed"),
        ("SELECT * FROM read_csv('/etc/passwd')", "function_not_allowed"),
        ("SELECT * FROM '/etc/passwd'", "file_access_not_allowed"),
    ],
)
def test_sql_errors_are_json_4xx(client, sql, code):
    response = client.post("/v1/sql", json={"sql": sql})
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["detail"]


def test_sql_body_must_be_well_formed(client):
    assert client.post("/v1/sql", json={"query": "SELECT 1"}).status_code == 422
    assert client.post("/v1/sql", content=b"SELECT 1").json()["error"] == "invalid_request"


# ----------------------------------------------------------------------------- metric families


def expected(store, method, **kwargs):
    return to_records(getattr(store, method)("fraud", **kwargs))


@pytest.mark.slow
def test_families_are_thin_calls_of_the_store(shared):
    store, client = shared
    store.infer_schema("fraud")
    cases = [
        (
            "drift",
            {"window": "1 day", "methods": "ks,psi"},
            {"window": "1 day", "methods": ["ks", "psi"]},
        ),
        (
            "drift",
            {"window": "150", "features": ["amount"]},
            {"window": 150, "features": ["amount"]},
        ),
        ("quality", {"window": "2 days"}, {"window": "2 days"}),
        ("validate", {"window": "1 day"}, {"window": "1 day"}),
        ("schema", {}, {}),
        (
            "performance",
            {"metrics": "accuracy,roc_auc", "window": "1 day"},
            {"metrics": ["accuracy", "roc_auc"], "window": "1 day"},
        ),
        (
            "performance",
            {"by": "channel", "metrics": "accuracy"},
            {"by": "channel", "metrics": ["accuracy"]},
        ),
    ]
    if hasattr(store, "skew"):
        cases.append(("skew", {}, {}))
    for family, query, kwargs in cases:
        response = client.get(f"/v1/models/fraud/{family}", params=query)
        assert response.status_code == 200, (family, response.text)
        assert response.json() == expected(store, FAMILIES[family], **kwargs), family
    arrow = client.get("/v1/models/fraud/quality", headers={"accept": ARROW})
    assert read_arrow(arrow.content).equals(store.quality("fraud"))
    csv = client.get("/v1/models/fraud/performance?format=csv&metrics=accuracy")
    assert csv.headers["content-type"].startswith("text/csv")


def test_family_reference_as_json(shared):
    store, client = shared
    response = client.get(
        "/v1/models/fraud/drift",
        params={"reference": '{"previous": 1}', "methods": '["ks"]', "features": "amount"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == expected(
        store, "drift", reference={"previous": 1}, methods=["ks"], features=["amount"]
    )


def test_every_family_is_served_or_clearly_not_yet(shared):
    store, client = shared
    for family, method in FAMILIES.items():
        response = client.get(f"/v1/models/fraud/{family}")
        if hasattr(store, method):
            assert response.status_code != 404 or response.json()["error"] != "not_available"
        else:
            assert response.status_code == 404, family
            assert response.json()["error"] == "not_available"
            assert f"Store.{method}" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/models/fraud/horoscope", 404, "unknown_family"),
        ("/v1/models/nobody/drift", 404, "unknown_model"),
        ("/v1/models/fraud/drift?methods=astrology", 422, "invalid_parameter"),
        ("/v1/models/fraud/schema?window=1%20day", 422, "unknown_parameter"),
        ("/v1/models/fraud/drift?version=v1&version=v2", 422, "invalid_parameter"),
    ],
)
def test_family_errors(shared, path, status, code):
    _, client = shared
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


# ----------------------------------------------------------------------------- flywheel


def test_flywheel_routes_call_the_store_or_say_not_available(populated):
    store, client = populated
    routes = [
        ("get", "/v1/models/fraud/suggestions?k=5", "suggest"),
        ("get", "/v1/models/fraud/requests", "label_requests"),
        ("post", "/v1/models/fraud/requests/cancel", "cancel_requests"),
        ("post", "/v1/models/fraud/selections", "select"),
        ("post", "/v1/models/fraud/snapshots", "snapshot"),
        ("get", "/v1/snapshots", "snapshots"),
        ("get", "/v1/snapshots/nothing", "load_snapshot"),
    ]
    for verb, path, method in routes:
        response = getattr(client, verb)(path)
        if not hasattr(store, method):
            assert response.status_code == 404, path
            assert response.json()["error"] == "not_available"


@pytest.mark.skipif(not hasattr(evalstore.Store, "suggest"), reason="Store.suggest not built yet")
def test_suggestions_requests_and_fulfilling_labels(populated):
    _, client = populated
    response = client.get(
        "/v1/models/fraud/suggestions", params={"k": 4, "strategy": "least_confidence"}
    )
    assert response.status_code == 200, response.text
    suggested = [r["example_id"] for r in response.json()]
    assert len(suggested) == 4
    requests = client.get("/v1/models/fraud/requests", params={"status": "open"}).json()
    assert {r["example_id"] for r in requests} == set(suggested)
    cancelled = client.post(
        "/v1/models/fraud/requests/cancel", json={"example_ids": suggested[:1]}
    ).json()
    assert cancelled == {"model": "fraud", "cancelled": 1}
    labels = [{"example_id": e, "label": 1} for e in suggested[1:]]
    assert client.post("/v1/models/fraud/labels", json=labels).status_code == 200
    statuses = {
        r["example_id"]: r["status"] for r in client.get("/v1/models/fraud/requests").json()
    }
    assert statuses == {suggested[0]: "cancelled", **{e: "fulfilled" for e in suggested[1:]}}


@pytest.mark.skipif(not hasattr(evalstore.Store, "select"), reason="Store.select not built yet")
def test_selection_download_as_arrow_and_parquet(flywheel):
    _, client = flywheel
    arrow = client.post("/v1/models/fraud/selections", json={}, headers={"accept": ARROW})
    assert arrow.status_code == 200, arrow.text
    table = read_arrow(arrow.content)
    parquet = client.post("/v1/models/fraud/selections?format=parquet", json={})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(parquet.content)).equals(table)


# ----------------------------------------------------------------------------- prometheus


def test_prometheus_exposition(populated):
    store, client = populated
    client.get("/v1/models/fraud/drift", params={"methods": "ks", "features": "amount"})
    client.get("/v1/models/fraud/performance", params={"metrics": "accuracy"})
    client.get("/v1/models/fraud/horoscope")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'evalstore_ingested_rows_total{kind="features",model="fraud"} 500.0' in text
    assert 'evalstore_ingested_rows_total{kind="labels",model="fraud"} 150.0' in text
    assert 'evalstore_batches_total{kind="predictions",model="fraud"} 1.0' in text
    assert 'evalstore_label_coverage{model="fraud",version="v1"} 0.5' in text
    assert 'evalstore_staleness_seconds{kind="labels",model="fraud"}' in text
    assert 'evalstore_prediction_latency_ms_count{model="fraud"} 300.0' in text
    latency = store.sql("SELECT count(*) FILTER (WHERE latency_ms <= 100) FROM fraud.predictions")
    assert (
        f'evalstore_prediction_latency_ms_bucket{{le="100.0",model="fraud"}} '
        f"{float(latency.column(0)[0].as_py())}" in text
    )
    drift = store.drift("fraud", methods=["ks"], features=["amount"]).to_pylist()
    last = max(r["window_start"] for r in drift)
    value = next(r["value"] for r in drift if r["window_start"] == last)
    assert 'evalstore_drift_value{feature="amount",method="ks",model="fraud",variant=' in text
    assert repr(float(value)) in text
    assert 'evalstore_performance{class="",metric="accuracy",model="fraud",version="v1"}' in text
    assert (
        'evalstore_http_request_duration_seconds_count{method="GET",'
        'route="/v1/models/{model}/{family}",status="200"} 2.0' in text
    )
    assert (
        'evalstore_http_errors_total{method="GET",route="/v1/models/{model}/{family}",'
        'status="404"} 1.0' in text
    )


# ----------------------------------------------------------------------------- auth


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(
        "# scopes\nreader-0123456789abcdef read grafana\nwriter-0123456789abcdef write ingest\n"
    )
    return path


def test_bearer_tokens_and_scopes(store_file, token_file):
    with (
        evalstore.open(store_file) as store,
        TestClient(create_app(store, tokens=token_file)) as client,
    ):
        reader = {"authorization": "Bearer reader-0123456789abcdef"}
        writer = {"authorization": "Bearer writer-0123456789abcdef"}
        rows = [{"example_id": "a", "amount": 1.0}]
        assert client.get("/healthz").status_code == 200  # liveness stays open
        missing = client.post("/v1/sql", json={"sql": "SELECT 1"})
        assert missing.status_code == 401 and missing.json()["error"] == "unauthenticated"
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.get("/v1/models", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
        assert client.get("/metrics").status_code == 401
        assert client.post("/v1/sql", json={"sql": "SELECT 1"}, headers=reader).status_code == 200
        forbidden = client.post("/v1/models/fraud/features", json=rows, headers=reader)
        assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
        assert (
            client.post("/v1/models/fraud/features", json=rows, headers=writer).status_code == 200
        )
        assert client.get("/v1/models", headers=writer).status_code == 200
        version = {"version": "v5", "task": "binary"}
        assert (
            client.post("/v1/models/fraud/versions", json=version, headers=reader).status_code
            == 403
        )
        assert (
            client.post("/v1/models/fraud/versions", json=version, headers=writer).status_code
            == 201
        )


def test_token_file_errors(tmp_path):
    from server.auth import Tokens

    for text, message in [
        ("", "holds no token"),
        ("abcdefabcdefabcdef admin\n", "line 1"),
        ("short read\n", "at least 16"),
    ]:
        with pytest.raises(ValueError, match=message):
            Tokens.parse(text)


def test_refuses_to_listen_beyond_loopback_without_tokens():
    from server.serve import check_binding

    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", object())
    with pytest.raises(evalstore.errors.InvalidParameterError, match="--tokens"):
        check_binding("0.0.0.0", None)
    with pytest.raises(evalstore.errors.InvalidParameterError, match="without authentication"):
        check_binding("192.168.1.20", None)


@pytest.mark.skipif(not hasattr(evalstore.Store, "snapshot"), reason="Store.snapshot not built yet")
def test_snapshots_create_list_download(flywheel):
    store, client = flywheel
    created = client.post(
        "/v1/models/fraud/snapshots",
        json={"name": "train_march", "selection": {"env": "serving", "labeled_only": True}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["row_count"] == 150
    flat = client.post(
        "/v1/models/fraud/snapshots", json={"name": "all_serving", "labeled_only": False}
    )
    assert flat.status_code == 201, flat.text
    listing = client.get("/v1/snapshots", params={"model": "fraud"}).json()
    assert {r["name"] for r in listing} == {"train_march", "all_serving"}
    arrow = client.get("/v1/snapshots/train_march", headers={"accept": ARROW})
    assert arrow.status_code == 200
    assert read_arrow(arrow.content).equals(store.load_snapshot("train_march"))
    parquet = client.get("/v1/snapshots/train_march?format=parquet")
    assert parquet.headers["content-disposition"] == 'attachment; filename="train_march.parquet"'
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == 150
    unknown = client.get("/v1/snapshots/nope")
    assert unknown.status_code == 404 and unknown.json()["error"] == "snapshot"
    for body in [{"selection": {}}, {"name": "x", "selection": {"model": "iris"}}, ["x"]]:
        bad = client.post("/v1/models/fraud/snapshots", json=body)
        assert bad.status_code == 422, body
    again = client.post("/v1/models/fraud/snapshots", json={"name": "train_march"})
    assert 400 <= again.status_code < 500


def test_library_arguments_are_checked_before_the_call(shared):
    _, client = shared
    response = client.post("/v1/models/fraud/requests/cancel", json={"colour": "red"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameter"
    assert "colour" in response.json()["detail"]


def test_example_grafana_dashboard_queries_run(shared):
    """Every Infinity query of examples/grafana_dashboard.json is answered with records."""
    from pathlib import Path
    from urllib.parse import unquote

    _, client = shared
    path = Path(__file__).parents[2] / "examples" / "grafana_dashboard.json"
    dashboard = json.loads(path.read_text())
    targets = [t for p in dashboard["panels"] for t in p["targets"] if "url" in t]
    assert len(targets) >= 4
    for target in targets:
        url = unquote(target["url"].replace("${evalstore}", "").replace("${model}", "fraud"))
        url = url.replace("${version}", "v1")
        options = target["url_options"]
        if options["method"] == "POST":
            body = json.loads(
                options["data"].replace("${model}", "fraud").replace("${version}", "v1")
            )
            response = client.post(url, json=body)
        else:
            response = client.get(url)
        assert response.status_code == 200, (url, response.text)
        records = response.json()
        assert records and isinstance(records[0], dict), url
        selectors = {c["selector"] for c in target["columns"]}
        assert selectors <= set(records[0]), (url, selectors - set(records[0]))


def test_newer_families_are_thin_calls_too(populated):
    """slices, compare, health, skew_summary, multivariate_drift: the Store's own answers."""
    store, client = populated
    missing = [m for m in ("worst_slices", "compare", "health") if not hasattr(store, m)]
    if missing:
        pytest.skip(f"Store lacks {missing}")
    store.register_model("fraud", "v2", "binary")
    ids = [f"s{i}" for i in range(300)]
    scores = store.sql("SELECT score FROM fraud.predictions ORDER BY example_id")
    store.log_predictions(
        "fraud",
        pa.table({"example_id": sorted(ids), "score": scores.column(0).to_numpy()[::-1]}),
        version="v2",
    )
    cases = [
        ("slices", {"metric": "accuracy"}, {"metric": "accuracy"}),
        (
            "compare",
            {"a": "v1", "b": "v2", "window": "30 days"},
            {"a": "v1", "b": "v2", "window": "30 days"},
        ),
        ("skew_summary", {}, {}),
        (
            "multivariate_drift",
            {"methods": "pca", "window": "3 days"},
            {"methods": ["pca"], "window": "3 days"},
        ),
    ]
    for family, query, kwargs in cases:
        response = client.get(f"/v1/models/fraud/{family}", params=query)
        assert response.status_code == 200, (family, response.text)
        assert response.json() == expected(store, FAMILIES[family], **kwargs), family
    health = client.get("/v1/models/fraud/health", params={"window": "1 day"})
    assert health.status_code == 200, health.text
    direct = to_records(store.health("fraud", window="1 day"))

    def timeless(rows):  # rows measured against "now" differ by the seconds between calls
        return [r for r in rows if not any(w in r["metric"] for w in ("fresh", "stale"))]

    assert timeless(health.json()) == timeless(direct)
    missing_arg = client.get("/v1/models/fraud/compare")
    assert missing_arg.status_code == 422
    assert "'a'" in missing_arg.json()["detail"]


def test_families_run_beside_a_busy_store(populated):
    """A metric request does not wait for the store's lock (held here as a long ingest
    would): it runs on a session, a connection of its own, and sees committed data."""
    store, client = populated
    wanted = expected(store, "quality")
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(5)
        response = client.get("/v1/models/fraud/quality")
        assert holder.is_alive() and not release.is_set()  # answered while the lock was held
    finally:
        release.set()
        holder.join()
    assert response.status_code == 200, response.text
    assert response.json() == wanted


# ----------------------------------------------------------------------------- issue 19: statuses


def test_unknown_query_parameters_of_open_ended_methods_are_422(shared):
    """Store methods taking ``**options`` refuse an unknown keyword: 422, not a TypeError."""
    _, client = shared
    drift = client.get("/v1/models/fraud/drift?evil=1")
    assert drift.status_code == 422, drift.text
    assert drift.json()["error"] == "unknown_parameter"
    assert drift.json()["detail"].startswith("unknown parameter 'evil' for drift; accepted: ")
    assert "reference, window, features" in drift.json()["detail"]
    suggest = client.get("/v1/models/fraud/suggestions?record=false&evil=1")
    assert suggest.status_code == 422, suggest.text
    assert suggest.json()["error"] == "unknown_parameter"
    assert "unknown parameter 'evil' for suggest" in suggest.json()["detail"]
    odd = client.get("/v1/models/fraud/suggestions", params={"record": "false", "": "x"})
    assert odd.status_code == 422 and "unknown parameter '' for suggest" in odd.json()["detail"]


@pytest.mark.parametrize(
    ("path", "column"),
    [
        ("/v1/models/fraud/features", "amount"),
        ("/v1/models/fraud/predictions?version=v1", "score"),
        ("/v1/models/fraud/labels", "label"),
    ],
)
def test_integers_beyond_int64_are_422_naming_the_column(client, path, column):
    rows = [{"example_id": "big", column: 2**70}]
    response = client.post(path, json=rows)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_json"
    assert response.json()["column"] == column
    assert f"column {column!r} holds an integer outside the 64-bit range" in response.text


@pytest.mark.parametrize("body", [[], {"records": []}, {"example_id": [], "amount": []}])
def test_a_batch_without_rows_is_422_empty_batch(client, body):
    response = client.post("/v1/models/fraud/features", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "empty_batch"
    assert response.json()["detail"].startswith("the batch holds no rows; send at least one")


def test_an_arrow_stream_without_rows_is_422_empty_batch(client):
    table = pa.table(
        {"example_id": pa.array([], pa.string()), "amount": pa.array([], pa.float64())}
    )
    response = client.post(
        "/v1/models/fraud/features", content=arrow_body(table), headers={"content-type": ARROW}
    )
    assert response.status_code == 422 and response.json()["error"] == "empty_batch"


def test_a_truncated_arrow_stream_is_422_and_writes_nothing(client, store_file):
    table = pa.table({"example_id": [f"a{i}" for i in range(1000)], "amount": range(1000)})
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=100)
    body = sink.getvalue()
    response = client.post(
        "/v1/models/fraud/features",
        content=body[: len(body) // 2],
        headers={"content-type": ARROW},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_arrow"
    assert response.json()["detail"].startswith("the body is not a complete Arrow IPC stream")
    assert client.post(
        "/v1/sql", json={"sql": "SELECT count(*) AS n FROM fraud.features"}
    ).json() == [{"n": 0}]


@pytest.mark.parametrize("kind", ["features", "predictions?version=v1"])
def test_arrow_text_that_is_not_utf8_is_422_and_writes_nothing(client, kind):
    """Reading an IPC stream does not check its text: the body is validated before the
    write, and the answer names the cause (the insert would fail with an aborted transaction)."""
    bad = pa.array([b"\xffa", b"ok"], pa.binary()).view(pa.string())
    table = pa.table({"example_id": bad, "score": [0.1, 0.9]})
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    response = client.post(
        f"/v1/models/fraud/{kind}", content=sink.getvalue(), headers={"content-type": ARROW}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_arrow"
    detail = response.json()["detail"]
    assert detail.startswith("the body's values are not valid Arrow (") and "UTF-8" in detail
    name = kind.split("?")[0]
    assert client.post(
        "/v1/sql", json={"sql": f"SELECT count(*) AS n FROM fraud.{name} WHERE example_id = 'ok'"}
    ).json() == [{"n": 0}]


def test_an_all_null_id_column_is_422_naming_the_column(client):
    rows = [{"example_id": None, "amount": 1.0}, {"example_id": None, "amount": 2.0}]
    response = client.post("/v1/models/fraud/features", json=rows)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["column"], body["rows"]) == ("invalid_batch", "example_id", 2)
    assert body["detail"] == (
        "id column 'example_id' has 2 null values; every row needs an example id"
    )


def test_a_chunked_sql_body_over_4_mb_is_413(client):
    def chunks():
        yield b'{"sql": "SELECT 1", "pad": "'
        for _ in range(5):
            yield b" " * (1024 * 1024)
        yield b'"}'

    response = client.post("/v1/sql", content=chunks(), headers={"content-type": JSON_TYPE})
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "body_too_large"
    assert "exceeds this route's limit of 4194304 bytes" in response.json()["detail"]


def test_fastapi_validation_errors_have_the_store_error_shape(client):
    response = client.post("/v1/sql", json={"sql": 1})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"].startswith("body.sql: ")
    missing = client.post("/v1/models/fraud/predictions", json=[{"example_id": "a"}])
    assert missing.status_code == 422
    assert missing.json() == {"error": "invalid_request", "detail": "query.version: Field required"}


def test_openapi_declares_every_error_status_with_the_store_error_body(client):
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    ingest = spec["paths"]["/v1/models/{model}/features"]["post"]["responses"]
    assert set(ingest) == {"200", "400", "404", "409", "413", "415", "422"}  # no tokens: no 401
    family = spec["paths"]["/v1/models/{model}/{family}"]["get"]["responses"]
    assert {"404", "406", "408", "422", "503"} <= set(family)
    assert "Retry-After" in family["503"]["headers"]
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]
    assert set(metrics["content"]) == {"text/plain"}
    assert set(spec["paths"]["/healthz"]["get"]["responses"]) == {"200", "413"}
    too_big = client.request("GET", "/healthz", content=b" " * (4 * 1024 * 1024 + 1))
    assert too_big.status_code == 413 and too_big.json()["error"] == "body_too_large"


def test_openapi_declares_tokens_when_the_server_checks_them(store_file, token_file):
    with (
        evalstore.open(store_file) as store,
        TestClient(create_app(store, tokens=token_file)) as client,
    ):
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    paths = spec["paths"]
    assert "security" not in paths["/healthz"]["get"]
    assert paths["/v1/sql"]["post"]["security"] == [{"bearer": []}]
    read_only = paths["/v1/sql"]["post"]["responses"]
    assert "401" in read_only and "WWW-Authenticate" in read_only["401"]["headers"]
    ingest = paths["/v1/models/{model}/labels"]["post"]["responses"]
    assert {"401", "403"} <= set(ingest)
    suggestions = paths["/v1/models/{model}/suggestions"]["get"]["responses"]
    assert {"401", "403"} <= set(suggestions)  # recording suggestions need a write token


def test_healthz_shows_the_store_only_to_token_holders(store_file, token_file):
    with (
        evalstore.open(store_file) as store,
        TestClient(create_app(store, tokens=token_file)) as client,
    ):
        anonymous = client.get("/healthz")
        wrong = client.get("/healthz", headers={"authorization": "Bearer not-a-token-at-all"})
        reader = client.get("/healthz", headers={"authorization": "Bearer reader-0123456789abcdef"})
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    assert wrong.status_code == 200 and wrong.json() == {"status": "ok"}
    assert str(store_file) not in anonymous.text + wrong.text
    assert reader.json()["store"] == str(store_file)
    assert reader.json()["checkpoints"]["idle_seconds"] == 1.0


def test_a_short_token_is_one_line_from_the_cli(tmp_path):
    from click.testing import CliRunner

    from evalstore.cli import main

    tokens = tmp_path / "tokens.txt"
    tokens.write_text("short read\n")
    with pytest.raises(InvalidParameterError, match="line 1: a token needs at least 16"):
        Tokens.load(tokens)
    result = CliRunner().invoke(
        main, ["serve", str(tmp_path / "s.duckdb"), "--tokens", str(tokens)]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert (
        lines[0].startswith("Error: ")
        and "line 1: a token needs at least 16 characters" in lines[0]
    )
    assert "Traceback" not in result.output


def test_times_outside_pythons_range_are_served(shared):
    _, client = shared
    sql = "SELECT TIMESTAMP '20266-01-01 00:00:00' AS t, DATE '-2000-01-01' AS d"
    response = client.post("/v1/sql", json={"sql": sql})
    assert response.status_code == 200, response.text
    assert response.json() == [{"t": "20266-01-01T00:00:00.000000", "d": "-2000-01-01"}]
    csv = client.post("/v1/sql?format=csv", json={"sql": sql})
    assert csv.status_code == 200 and "20266-01-01T00:00:00" in csv.text


# ----------------------------------------------------------------------------- keep-alive


def test_an_error_leaves_the_keep_alive_connection_open(store_file):
    """A real uvicorn server on loopback: a 500 (and each input that was once a 500) is
    answered on the client's connection, which then serves the next request."""
    import uvicorn

    with evalstore.open(store_file) as store:  # binary model fraud, v1
        app = create_app(store)

        @app.get("/test/peer")
        def peer(request: Request) -> dict:
            return {"port": request.client.port}

        @app.get("/test/boom")
        def boom() -> dict:
            raise RuntimeError("a bug")

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            for _ in range(400):
                if server.started:
                    break
                time.sleep(0.05)
            assert server.started
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                first = http.get("/test/peer").json()["port"]
                answers = [
                    http.get("/test/boom"),
                    http.get("/v1/models/fraud/drift?evil=1"),
                    http.post("/v1/models/fraud/features", json=[{"example_id": "a", "x": 2**70}]),
                    http.post("/v1/sql", json={"sql": "SELECT " + "(" * 50 + "1" + ")" * 50}),
                ]
                models = http.get("/v1/models")
                last = http.get("/test/peer").json()["port"]
        finally:
            server.should_exit = True
            thread.join(30)
    assert answers[0].status_code == 500
    assert answers[0].json() == {"error": "internal_error", "detail": "RuntimeError: a bug"}
    assert [(a.status_code, a.json()["error"]) for a in answers[1:]] == [
        (422, "unknown_parameter"),
        (422, "invalid_json"),
        (400, "too_complex"),
    ]
    assert models.status_code == 200 and models.json()[0]["model"] == "fraud"
    assert last == first  # every answer came back on the one keep-alive connection


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ([None, None], "a JSON array holding only nulls (such as [null, null]) cannot be read"),
        ([{"example_id": "a", "x": [None, None]}], "a JSON array holding only nulls"),
        ({"records": [None]}, "a JSON array body must hold objects (one per row)"),
    ],
)
def test_json_nulls_where_rows_or_values_belong_are_422(client, body, detail):
    """Found by the OpenAPI fuzz: Arrow's JSON reader built an invalid array (500)."""
    for path in ("/v1/models/fraud/features", "/v1/models/fraud/labels"):
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_json"
        assert response.json()["detail"].startswith(detail)
