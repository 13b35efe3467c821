"""store.multivariate_drift: selection, pivoting and decisions around the numpy core."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError
from evalstore.metrics.drift.kernels import PCAReconstruction, chunk_thresholds, mmd_test

START = datetime(2026, 3, 1, tzinfo=UTC)


def _frame(rng: np.random.Generator, n: int, prefix: str, days: int, rotate: np.ndarray | None):
    base = rng.normal(size=(n, 3))
    x = np.column_stack([base[:, 0], base[:, 0] * 0.8 + base[:, 1] * 0.6, base[:, 2]])
    day = np.arange(n) * days // n
    if rotate is not None:
        late = day >= days // 2
        x[late] = x[late] @ rotate
    return pa.table(
        {
            "example_id": [f"{prefix}{i:05d}" for i in range(n)],
            "ts": [START + timedelta(days=int(d), minutes=i % 1000) for i, d in enumerate(day)],
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "kind": ["x"] * n,
        }
    )


def _rotated(store: evalstore.Store | None) -> pa.Table:
    """Model ``m``: 2000 training rows and 2000 serving rows over 4 days whose a-b plane is
    rotated; returns the training rows."""
    rng = np.random.default_rng(3)
    # A rotation keeps every marginal standard normal-ish but breaks the a-b correlation.
    theta = np.pi / 2
    rotate = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    training = _frame(rng, 2000, "t", 10, None)
    if store is not None:
        store.register_model("m", "v1", "binary")
        store.log_features("m", training, env="training")
        store.log_features("m", _frame(rng, 2000, "s", 4, rotate))
    return training


@pytest.fixture
def store(template, open_copy):
    """A fresh copy of a store made by :func:`_rotated` (built once per session), with the
    training rows as ``store.training``."""
    with open_copy(template("multivariate-rotated", _rotated)) as opened:
        opened.training = _rotated(None)  # type: ignore[attr-defined]
        yield opened


def _matrix(table: pa.Table) -> np.ndarray:
    return np.column_stack([table.column(c).to_numpy() for c in ("a", "b", "c")])


def test_pca_values_and_thresholds_match_the_numpy_core(store):
    result = store.multivariate_drift("m", window="1 day", methods=["pca"], learn_chunks=5)
    reference = _matrix(store.training)
    order = np.argsort(np.asarray(store.training.column("example_id").to_pylist()))
    model = PCAReconstruction.fit(reference[order], 0.65)
    low, high, _ = chunk_thresholds(reference[order], model.error, 5, 3.0)
    rows = result.to_pylist()
    assert [r["window_start"].day for r in rows] == [1, 2, 3, 4]
    serving = store.sql("SELECT a, b, c, ts FROM m.features WHERE env = 'serving' ORDER BY ts")
    x = np.column_stack([serving.column(c).to_numpy() for c in ("a", "b", "c")])
    day = np.array([t.day for t in serving.column("ts").to_pylist()])
    for row in rows:
        expected = model.error(x[day == row["window_start"].day])
        assert row["value"] == pytest.approx(expected, abs=1e-9)
        assert row["threshold"] == pytest.approx(high, abs=1e-9)
        assert row["threshold_low"] == pytest.approx(max(0.0, low), abs=1e-9)
        assert row["feature"] == "*" and row["kind"] == "multivariate"
    # The correlation break in the last two days is caught by PCA, not the first two.
    assert [r["drifted"] for r in rows] == [False, False, True, True]


def test_mmd_flags_the_rotated_windows_and_matches_mmd_test(store):
    result = store.multivariate_drift("m", window="1 day", methods=["mmd"], n_permutations=99)
    rows = result.to_pylist()
    assert [r["drifted"] for r in rows] == [False, False, True, True]
    assert all(r["p_value"] == pytest.approx(0.01) for r in rows[2:])
    reference = _matrix(store.training)
    center, scale = reference.mean(axis=0), reference.std(axis=0)
    serving = store.sql(
        "SELECT a, b, c FROM m.features WHERE env = 'serving' AND ts < ? ORDER BY example_id",
        [START + timedelta(days=1)],
    )
    order = np.argsort(np.asarray(store.training.column("example_id").to_pylist()))
    expected = mmd_test(
        (reference[order] - center) / scale,
        (_matrix(serving) - center) / scale,
        n_permutations=99,
        max_rows=1000,
        seed=0,
    )
    assert rows[0]["value"] == pytest.approx(expected.mmd2, abs=1e-12)
    assert rows[0]["p_value"] == pytest.approx(expected.p_value)


def test_too_few_rows_gives_null_with_a_reason(store):
    # a serving time range before any row: an empty reference (an unknown dataset tag is
    # an error since issue 25)
    empty = ("2000-01-01", "2000-01-02")
    result = store.multivariate_drift("m", reference=empty, window="1 day", methods=["mmd", "pca"])
    for row in result.to_pylist():
        assert row["value"] is None and row["drifted"] is None
        assert row["reason"]


def test_parameter_errors(store):
    with pytest.raises(InvalidParameterError, match="choose from mmd, pca"):
        store.multivariate_drift("m", methods=["ks"])
    # a categorical feature is accepted, encoded (tests/metrics/test_domain_classifier.py)
    with pytest.raises(InvalidParameterError, match=r"features \['nope'\] are not features"):
        store.multivariate_drift("m", features=["nope"])
    with pytest.raises(InvalidParameterError, match="fixed reference"):
        store.multivariate_drift("m", reference={"previous": 2})
    with pytest.raises(InvalidParameterError, match=r"variance=1.5 must be in \(0, 1\]"):
        store.multivariate_drift("m", variance=1.5)
