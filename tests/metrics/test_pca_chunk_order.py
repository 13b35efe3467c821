"""PCA reconstruction learns its alert range from reference chunks cut in time order
(issue 23, point 2): ``ts``, then ``example_id``, as every other learned threshold, not the
text order of the ids ("0", "1", "10", "11", "2", ...)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from tests.conftest import blank_store

START = datetime(2026, 6, 1, tzinfo=UTC)
N_REFERENCE = 12  # ids "0".."11": text order 0, 1, 10, 11, 2, ..., 9 differs from time order
LEARN_CHUNKS = 4
LEARN_K = 3.0


def _reference() -> np.ndarray:
    """Three correlated features whose rows drift along time, so the chunks' errors depend
    on which rows share a chunk."""
    rng = np.random.default_rng(23)
    base = rng.normal(size=(N_REFERENCE, 1))
    trend = np.linspace(0.0, 3.0, N_REFERENCE)[:, None]
    noise = rng.normal(scale=[0.2, 0.6, 1.5], size=(N_REFERENCE, 3))
    return base + trend * np.array([0.0, 1.0, -1.0]) + noise


def _range(reference: np.ndarray, order: np.ndarray) -> tuple[float, float]:
    """The learned (low, high) from the definition: standardise on the reference, keep the
    fewest components explaining >= 65% of the variance, mean Euclidean reconstruction
    error per contiguous chunk of the rows in ``order`` (numpy.array_split), mean ± 3 sd
    (ddof=0), low clipped at 0."""
    mean, scale = reference.mean(axis=0), reference.std(axis=0)
    z = (reference - mean) / scale
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    ratios = np.cumsum(s**2) / np.sum(s**2)
    w = vt[: int(np.argmax(ratios >= 0.65)) + 1]
    errors = np.linalg.norm(z - z @ w.T @ w, axis=1)
    values = np.array([c.mean() for c in np.array_split(errors[order], LEARN_CHUNKS)])
    return max(0.0, values.mean() - LEARN_K * values.std()), values.mean() + LEARN_K * values.std()


def test_reference_chunks_are_cut_in_time_order_not_id_text_order():
    reference = _reference()
    serving = _reference()[:6] + 0.5
    store: evalstore.Store = blank_store()
    store.register_model("m", "v1", "binary")
    ids = [str(i) for i in range(N_REFERENCE)]
    store.log_features(
        "m",
        pa.table({
            "example_id": ids,
            "ts": [START + timedelta(hours=i) for i in range(N_REFERENCE)],
            **{f"x{j}": reference[:, j] for j in range(3)},
        }),
        env="training",
    )  # fmt: skip
    store.log_features(
        "m",
        pa.table({
            "example_id": [f"s{i}" for i in range(6)],
            "ts": [START + timedelta(days=3, hours=i) for i in range(6)],
            **{f"x{j}": serving[:, j] for j in range(3)},
        }),
        env="serving",
    )  # fmt: skip
    with store:
        rows = store.multivariate_drift(
            "m", window={"chunks": 1}, methods=("pca",), learn_chunks=LEARN_CHUNKS,
            learn_k=LEARN_K,
        ).to_pylist()  # fmt: skip
    assert len(rows) == 1
    low, high = _range(reference, np.arange(N_REFERENCE))
    text_low, text_high = _range(reference, np.argsort(ids))  # "0", "1", "10", "11", "2", ...
    assert (low, high) != pytest.approx((text_low, text_high), rel=1e-3)  # the test can fail
    assert rows[0]["threshold_low"] == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert rows[0]["threshold"] == pytest.approx(high, rel=1e-9)
