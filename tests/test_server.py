"""The HTTP server: a thin FastAPI mapping onto the store."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

import evalstore
from server import create_app


@pytest.fixture
def store_file(tmp_path):
    path = tmp_path / "served.duckdb"
    with evalstore.open(path) as store:
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
    return path


@pytest.fixture
def client(store_file):
    with evalstore.open(store_file) as store, TestClient(create_app(store)) as client:
        yield client


def test_healthz_reports_the_store(client, store_file):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": str(store_file)}


def test_healthz_in_memory():
    with evalstore.open() as store, TestClient(create_app(store)) as client:
        assert client.get("/healthz").json() == {"status": "ok", "store": ":memory:"}


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
    v1 = records[0]
    assert v1["deployed_at"] == "2024-05-01T12:00:00+00:00"
    for record in records:
        created = datetime.fromisoformat(record["created_at"])
        assert created.tzinfo is not None and created.utcoffset().total_seconds() == 0
    assert records[1]["deployed_at"] is None


def test_models_of_one_model(client):
    response = client.get("/v1/models", params={"model": "iris"})
    assert response.status_code == 200
    assert [(r["model"], r["version"]) for r in response.json()] == [("iris", "v1")]


@pytest.mark.parametrize("name", ["unknown", "Not-A-Name"])
def test_unknown_model_is_404(client, name):
    response = client.get("/v1/models", params={"model": name})
    assert response.status_code == 404
    assert response.json() == {"detail": f"model {name!r} is not registered"}


def test_serves_a_read_only_store(store_file):
    with (
        evalstore.open(store_file, read_only=True) as store,
        TestClient(create_app(store)) as client,
    ):
        assert client.get("/healthz").json()["status"] == "ok"
        assert len(client.get("/v1/models").json()) == 3


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/healthz", "/v1/models"}
    assert paths["/v1/models"]["get"]["parameters"][0]["name"] == "model"
