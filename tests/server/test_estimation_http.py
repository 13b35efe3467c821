"""GET /v1/models/{model}/estimated_performance: the same call as the Store's, the same
parameter checks and error shapes as the metric families."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from server import create_app
from tests.conftest import blank_store

ARROW = "application/vnd.apache.arrow.stream"
REFERENCE = ["2026-03-02", "2026-03-04"]


@pytest.fixture(scope="module")
def served():
    rng = np.random.default_rng(3)
    n = 1200
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < score).astype(int)
    ids = [f"r{i}" for i in range(n)]
    offsets = (np.arange(n) * (6 * 86400 // n)).astype("timedelta64[s]")
    ts = pa.array(np.datetime64("2026-03-02T00:00:00") + offsets, pa.timestamp("s", "UTC"))
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.log_predictions("m", pa.table({"example_id": ids, "score": score, "ts": ts}), "v1")
    store.log_labels("m", pa.table({"example_id": ids[:900], "label": y[:900]}))
    with TestClient(create_app(store)) as client:
        yield store, client
    store.close()


def test_same_table_as_the_store(served):
    store, client = served
    query = {"window": "1 day", "metrics": "roc_auc,f1", "reference": json.dumps(REFERENCE)}
    response = client.get("/v1/models/m/estimated_performance", params=query,
                          headers={"accept": ARROW})  # fmt: skip
    assert response.status_code == 200, response.text
    got = pa.ipc.open_stream(response.content).read_all()
    expected = store.estimate_performance(
        "m", metrics=["roc_auc", "f1"], window="1 day", reference=tuple(REFERENCE)
    )
    # the same table, floats to 1e-12 relative: DuckDB's parallel sums (the expected
    # confusion counts, the calibrated probabilities' totals) add in thread order, so two
    # calls of the same estimate can differ in the last bit
    assert got.schema == expected.schema and got.num_rows == expected.num_rows > 0
    for name in expected.column_names:
        a, b = got.column(name).to_pylist(), expected.column(name).to_pylist()
        if pa.types.is_floating(expected.schema.field(name).type):
            assert [x is None for x in a] == [y is None for y in b], name
            np.testing.assert_allclose(
                [np.nan if x is None else x for x in a],
                [np.nan if y is None else y for y in b],
                rtol=1e-12, atol=0, equal_nan=True, err_msg=name,
            )  # fmt: skip
        else:
            assert a == b, name
    records = client.get("/v1/models/m/estimated_performance", params=query).json()
    assert len(records) == expected.num_rows and records[0]["estimated"] is True
    assert records[-1]["realized"] is None and records[0]["realized"] is not None


@pytest.mark.parametrize(
    ("query", "status", "code", "detail"),
    [
        ({"method": "dle"}, 422, "invalid_parameter", "method='dle' estimates regression"),
        ({"reference": "training"}, 422, "invalid_parameter", "holds no labeled predictions"),
        ({"metrics": "mae"}, 422, "invalid_parameter", "not estimated for a binary model"),
        ({"version": ["v1", "v2"]}, 422, "invalid_parameter", "takes one value"),
    ],
)
def test_errors(served, query, status, code, detail):
    _, client = served
    params = {"reference": json.dumps(REFERENCE), **query}
    response = client.get("/v1/models/m/estimated_performance", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert detail in response.json()["detail"]


def test_unknown_model(served):
    _, client = served
    response = client.get("/v1/models/nobody/estimated_performance")
    assert response.status_code == 404 and response.json()["error"] == "unknown_model"
