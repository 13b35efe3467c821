"""``GET /v1/models/{model}/history`` (server/routes_monitors.py), in-process: filters,
JSON and Arrow, bounds and refusals; and ``persist`` refused on the family route, so a
read token never writes the history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import evalstore
from server import create_app
from tests.monitors.conftest import Days, day_start, training_rows

READ = "history-reader-0123456789"
WRITE = "history-writer-0123456789"
ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture(scope="module")
def persisted(template: Callable[..., Path]) -> Path:
    """Model m, three labelled serving days, drift (psi, ks of x and c) and performance
    (accuracy) persisted."""

    def build(store: evalstore.Store) -> None:
        training_rows(store, seed=4, n=500)
        days = Days(store)
        for d in range(3):
            days.add(d, labels=True)
        store.drift("m", features=["x", "c"], methods=["psi", "ks"], persist=True)
        store.performance("m", metrics=["accuracy"], n_boot=0, persist=True)

    return template("history-http", build)


@pytest.fixture
def store(open_copy, persisted: Path) -> Iterator[evalstore.Store]:
    with open_copy(persisted) as opened:
        yield opened


@pytest.fixture
def reader(store: evalstore.Store, tmp_path: Path) -> Iterator[TestClient]:
    """A client of the app (no background monitor pass) sending the read token."""
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{READ} read\n{WRITE} write\n")
    app = create_app(store, tokens=tokens, monitor_every=0)
    with TestClient(app, headers={"Authorization": f"Bearer {READ}"}) as client:
        yield client


def test_history_route_answers_the_library_series(store, reader):
    response = reader.get("/v1/models/m/history")
    assert response.status_code == 200, response.text
    rows = response.json()
    expected = store.history("m").to_pylist()
    # drift: 3 days x (psi of x and c, ks of x); performance: 3 days of accuracy
    assert len(rows) == len(expected) == 3 * 3 + 3
    assert [r["value"] for r in rows] == [r["value"] for r in expected]
    assert [r["subject"] for r in rows] == [r["subject"] for r in expected]


def test_history_route_filters(reader):
    def get(**params) -> list[dict]:
        response = reader.get("/v1/models/m/history", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    psi = get(family="drift", metric="psi", feature="x")
    assert [(r["family"], r["subject"], r["metric"]) for r in psi] == [("drift", "x", "psi")] * 3
    both = get(metric=["ks", "accuracy"])
    assert {r["metric"] for r in both} == {"ks", "accuracy"} and len(both) == 3 + 3
    window = get(since=day_start(1).isoformat(), until=day_start(2).isoformat())
    assert {r["window_start"][:10] for r in window} == {"2024-03-02"}
    assert {r["metric"] for r in get(version="v1")} == {"accuracy"}


def test_history_route_answers_arrow(store, reader):
    response = reader.get("/v1/models/m/history", params={"family": "performance"}, headers={
        "Accept": ARROW})  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(ARROW)
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.column_names == store.history("m").column_names
    assert table.column("value").to_pylist() == (
        store.history("m", family="performance").column("value").to_pylist()
    )


def test_history_route_refusals(reader):
    too_many = reader.get("/v1/models/m/history", params={"limit": 2})
    assert too_many.status_code == 422
    assert too_many.json()["error"] == "invalid_parameter"
    assert "more than limit=2 rows" in too_many.json()["detail"]
    for model in ("nope", "main"):  # unregistered; reserved, so never registered
        unknown = reader.get(f"/v1/models/{model}/history")
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_model"
    assert reader.get("/v1/models/Not-a-name/history").status_code == 422
    for params in ({"limit": 0}, {"limit": 1_000_001}, {"family": "health"},
                   {"since": "yesterday"}, {"metric": ""}):  # fmt: skip
        refused = reader.get("/v1/models/m/history", params=params)
        assert refused.status_code == 422, (params, refused.text)


def test_a_read_token_cannot_persist_through_the_family_route(store, reader):
    before = store.sql("SELECT count(*) AS n FROM evalstore.metric_history_calls").to_pylist()
    refused = reader.get("/v1/models/m/drift", params={"persist": "true", "features": "x"})
    assert refused.status_code == 422
    assert "persist is not accepted over HTTP" in refused.json()["detail"]
    assert "/v1/models/m/history" in refused.json()["detail"]
    after = store.sql("SELECT count(*) AS n FROM evalstore.metric_history_calls").to_pylist()
    assert after == before == [{"n": 2}]
