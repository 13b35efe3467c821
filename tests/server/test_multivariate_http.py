"""GET /v1/models/{model}/multivariate_drift with the domain classifier and categorical
features: the Store's own table (the same call), options parsed from the query."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.conftest import blank_store

ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture(scope="module")
def served():
    rng = np.random.default_rng(5)
    store = blank_store()
    store.register_model("m", "v1", "binary")
    for env, shift, n in (("training", 0.0, 300), ("serving", 1.0, 200)):
        minutes = 60 * np.arange(n).astype("timedelta64[s]")
        ts = pa.array(np.datetime64("2026-03-01T00:00:00") + minutes, pa.timestamp("s", "UTC"))
        store.log_features("m", pa.table({
            "example_id": [f"{env[0]}{i}" for i in range(n)], "ts": ts,
            "x": rng.normal(shift, 1, n), "y": rng.normal(size=n),
            "c": pa.array(list(rng.choice(["a", "b", "c"], n)), pa.string()),
        }), env=env)  # fmt: skip
    with TestClient(create_app(store)) as client:
        yield store, client
    store.close()


def test_same_table_as_the_store(served):
    store, client = served
    query = {
        "window": "100", "features": "x,y,c", "methods": "domain_classifier,pca",
        "categorical_encoding": "onehot", "classifier_range": "[0.45, 0.65]",
        "classifier_rows": "150",
    }  # fmt: skip
    response = client.get("/v1/models/m/multivariate_drift", params=query,
                          headers={"accept": ARROW})  # fmt: skip
    assert response.status_code == 200, response.text
    got = pa.ipc.open_stream(response.content).read_all()
    expected = store.multivariate_drift(
        "m", window=100, features=["x", "y", "c"], methods=["domain_classifier", "pca"],
        categorical_encoding="onehot", classifier_range=(0.45, 0.65), classifier_rows=150,
    )  # fmt: skip
    assert got.equals(expected)
    dc = [r for r in got.to_pylist() if r["method"] == "domain_classifier"]
    assert [r["drifted"] for r in dc] == [True, True]  # every serving row is shifted


def test_a_bad_option_is_a_422_naming_it(served):
    _, client = served
    response = client.get("/v1/models/m/multivariate_drift",
                          params={"categorical_encoding": "ordinal"})  # fmt: skip
    assert response.status_code == 422 and response.json()["error"] == "invalid_parameter"
    assert "categorical_encoding='ordinal' is not an encoding" in response.json()["detail"]
