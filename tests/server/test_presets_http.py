"""preset= over HTTP: GET /v1/models/{model}/{drift,quality,multivariate_drift,performance}
?preset=... return the Store's tables (the same call), and a preset's errors keep the
families' error shape."""

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
    rng = np.random.default_rng(23)
    store = blank_store()
    store.register_model("m", "v1", "binary")
    for env, shift, n in (("training", 0.0, 400), ("serving", 0.4, 300)):
        x = np.round(rng.normal(shift, 1, n), 1)
        x[rng.uniform(size=n) < 0.05] = np.nan
        c = rng.choice(["a", "b", "c"], n).astype(object)
        c[rng.uniform(size=n) < 0.05] = None
        ids = [f"{env[0]}{i}" for i in range(n)]
        # distinct times: chunks of rows are told apart (and ordered) by their start
        minutes = 60 * np.arange(n).astype("timedelta64[s]")
        ts = pa.array(np.datetime64("2026-03-01T00:00:00") + minutes, pa.timestamp("s", "UTC"))
        columns = {"x": pa.array(x, from_pandas=True), "y": rng.normal(size=n),
                   "c": pa.array(list(c), pa.string())}  # fmt: skip
        table = pa.table({"example_id": ids, "ts": ts, **columns})
        store.log_features("m", table, env=env)
    score = rng.uniform(size=300)
    ids = [f"s{i}" for i in range(300)]
    decisions = (score >= 0.5).astype(int)
    labels = (rng.uniform(size=300) < score).astype(int)
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": score, "prediction": decisions}), "v1"
    )
    store.log_labels("m", pa.table({"example_id": ids, "label": labels}))
    with TestClient(create_app(store)) as client:
        yield store, client
    store.close()


@pytest.mark.parametrize(
    ("family", "preset", "features"),
    [
        ("drift", "nannyml", ["x", "c"]),
        ("drift", "evidently", ["x", "c"]),
        ("quality", "nannyml", ["x", "c"]),
        ("multivariate_drift", "nannyml", ["x", "y"]),
        ("performance", "nannyml", None),
    ],
)
def test_same_table_as_the_store(served, family, preset, features):  # type: ignore[no-untyped-def]
    store, client = served
    query = {"window": "100", "preset": preset}
    options = {}
    if features is not None:
        query["features"] = ",".join(features)
        options["features"] = features
    response = client.get(f"/v1/models/m/{family}", params=query, headers={"accept": ARROW})
    assert response.status_code == 200, response.text
    got = pa.ipc.open_stream(response.content).read_all()
    expected = getattr(store, family)("m", window=100, preset=preset, **options)
    assert got.equals(expected)
    assert all(v.startswith(f"preset={preset}; ") for v in got.column("variant").to_pylist())


def test_errors_keep_the_shape(served):  # type: ignore[no-untyped-def]
    _, client = served
    response = client.get("/v1/models/m/drift", params={"preset": "nannyml", "methods": "psi"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_parameter"
    assert "['psi'] has no NannyML 0.13 counterpart" in response.json()["detail"]
    response = client.get("/v1/models/m/quality", params={"preset": "evidently"})
    assert response.status_code == 422 and response.json()["error"] == "invalid_parameter"
    assert "Evidently 0.7 has no counterpart of quality" in response.json()["detail"]
