"""PCA reconstruction drift says nothing rather than alert on rounding noise (issue 25,
point 3): with 2 numeric features it kept both components, its error was ~1e-16 against a
learned threshold of ~2e-16, and every window was flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.metrics.drift.kernels import PCAReconstruction
from evalstore.metrics.drift.multivariate import PCA_NOISE_FLOOR
from tests.conftest import blank_store

START = datetime(2026, 6, 1, tzinfo=UTC)


def _store(train: np.ndarray, serve: np.ndarray) -> evalstore.Store:
    store = blank_store()
    store.register_model("m", "v1", "binary")
    for env, rows in (("training", train), ("serving", serve)):
        n = len(rows)
        table = {
            "example_id": [f"{env[0]}{i}" for i in range(n)],
            "ts": [START + timedelta(hours=int(h)) for h in np.arange(n) * 72 // n],
        }
        table |= {f"x{j + 1}": rows[:, j] for j in range(rows.shape[1])}
        store.log_features("m", pa.table(table), env=env)
    return store


def test_two_features_keep_every_component_and_say_so():
    rng = np.random.default_rng(11)
    train, serve = rng.normal(size=(600, 2)), rng.normal(size=(600, 2))
    fitted = PCAReconstruction.fit(train, variance=0.65)
    assert fitted.n_components == 2 and fitted.keeps_everything
    assert fitted.error(serve) < 1e-12  # exact up to rounding, whatever the data
    with _store(train, serve) as store:
        rows = store.multivariate_drift("m", window="1 day", methods=("pca",)).to_pylist()
    assert len(rows) == 3
    for row in rows:
        assert row["value"] is None and row["drifted"] is None and row["threshold"] is None
        assert row["reason"].startswith("PCA keeps all 2 components")
        assert "use more features, a lower variance= or method 'mmd'" in row["reason"]


def _numpy_error(reference: np.ndarray, rows: np.ndarray, k: int) -> float:
    """Mean reconstruction error with k components, from its definition."""
    mean, scale = reference.mean(axis=0), reference.std(axis=0)
    z_ref, z = (reference - mean) / scale, (rows - mean) / scale
    _, _, vt = np.linalg.svd(z_ref, full_matrices=False)
    w = vt[:k]
    return float(np.linalg.norm(z - z @ w.T @ w, axis=1).mean())


def test_a_noise_free_reference_alerts_only_on_real_departures():
    """x3 = x1 + x2 exactly: 2 of 3 components hold all the reference's variance, its
    chunks' errors are rounding noise; serving that keeps the relation is not drifted,
    serving that breaks it (last day) is, by an error far above the noise floor."""
    rng = np.random.default_rng(12)

    def rows(n: int, broken: bool = False) -> np.ndarray:
        x = rng.normal(size=(n, 2))
        third = x.sum(axis=1) + (rng.normal(0, 1, n) if broken else 0.0)
        return np.column_stack([x, third])

    train = rows(600)
    serve = np.vstack([rows(400), rows(200, broken=True)])  # days 0-1 kept, day 2 broken
    with _store(train, serve) as store:
        got = store.multivariate_drift(
            "m", window="1 day", methods=("pca",), variance=0.99
        ).to_pylist()
    assert [r["drifted"] for r in got] == [False, False, True]
    assert all(r["threshold"] == pytest.approx(PCA_NOISE_FLOOR) for r in got)
    assert all(f"high at least {PCA_NOISE_FLOOR:g}" in r["threshold_source"] for r in got)
    assert got[0]["value"] < PCA_NOISE_FLOOR and got[1]["value"] < PCA_NOISE_FLOOR
    assert got[2]["value"] == pytest.approx(_numpy_error(train, serve[400:], 2), rel=1e-9)
    assert got[2]["value"] > 0.1
