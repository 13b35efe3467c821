"""binning='values' with thousands of distinct values (sql/drift_numeric.sql).

One bin per distinct value makes ``evalstore.binned_scores`` take lists of thousands of
shares; the macro is built from list functions so that this stays linear in the bins. Its
scores must be numpy/scipy's on the same histogram, in the SQL macro
``evalstore.drift_numeric`` and in ``store.drift``'s sorted-array path alike.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

import evalstore
import evalstore.core.windows
from tests.conftest import blank_store

BINNED = ["psi", "kl", "js", "hellinger", "d1", "tvd"]
START = datetime(2026, 3, 2, tzinfo=UTC)


def oracle(p: np.ndarray, q: np.ndarray, zero_bins: str, eps: float = 1e-4) -> dict[str, float]:
    """The scores of evalstore.binned_scores from two aligned share arrays, in numpy."""
    inner = np.zeros(len(p), dtype=bool)
    inner[1:-1] = True
    keep = (p > 0) | (q > 0) | (inner if zero_bins == "smallest" else False)
    p, q = p[keep], q[keep]
    if zero_bins == "leftover":
        both = (p > 0) & (q > 0)
        gp, gq = p[both], q[both]
        if (~both).any():
            gp, gq = np.append(gp, p[~both].sum()), np.append(gq, q[~both].sum())
    else:
        gp, gq = p.copy(), q.copy()
    if zero_bins == "smallest":
        p_min, q_min = gp[gp > 0].min(), gq[gq > 0].min()
        gp = np.where(gp > 0, gp, p_min / 1e6 if p_min <= eps else eps)
        gq = np.where(gq > 0, gq, q_min / 1e6 if q_min <= eps else eps)
        np_, nq = gp / gp.sum(), gq / gq.sum()
    else:
        gp, gq = np.where(gp > 0, gp, eps), np.where(gq > 0, gq, eps)
        np_, nq = gp, gq
    return {
        "psi": float(np.sum((gq - gp) * np.log(gq / gp))),
        "kl": float(np.sum(rel_entr(np_, nq))),
        "js": float(jensenshannon(p, q)),
        "hellinger": float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / math.sqrt(2)),
        "d1": float(np.sum(np.abs(p - q))),
        "tvd": float(np.sum(np.abs(p - q)) / 2),
    }


@pytest.fixture(scope="module")
def many_values():
    """A reference and one day of serving values, ~3,000 distinct values each (2,000
    shared), with NaN and NULL rows (not counted)."""
    rng = np.random.default_rng(26)
    store = blank_store()
    store.register_model("m", "v1", "binary")
    sides = {}
    for env, low, ids in (("training", 0, "r"), ("serving", 1000, "s")):
        values = (rng.integers(low, low + 3000, 9000) / 4).tolist()
        values[:40] = [math.nan] * 20 + [None] * 20
        ts = [START + timedelta(minutes=int(m)) for m in rng.integers(0, 1440, len(values))]
        store.log_features("m", pa.table({
            "example_id": [f"{ids}{i}" for i in range(len(values))],
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "x": pa.array(values, pa.float64()),
        }), env=env)  # fmt: skip
        sides[env] = np.asarray(values[40:])
    yield store, sides["training"], sides["serving"]
    store.close()


def expected_scores(ref: np.ndarray, ana: np.ndarray, zero_bins: str) -> dict[str, float]:
    values = np.union1d(ref, ana)
    # bins: below the smallest value, one per distinct value, above the largest (empty)
    r = np.concatenate([[0], np.bincount(np.searchsorted(values, ref), minlength=len(values)), [0]])
    a = np.concatenate([[0], np.bincount(np.searchsorted(values, ana), minlength=len(values)), [0]])
    return oracle(r / len(ref), a / len(ana), zero_bins)


def sql_rows(store: evalstore.Store, zero_bins: str) -> dict[str, float]:
    selection = evalstore.core.windows.resolve(store.connection, "training", "1 day")
    placeholders = ", ".join("?" for _ in selection.args())
    rows = store.sql(
        f"SELECT method, value FROM evalstore.drift_numeric('m.numeric_values', {placeholders}, "
        "'values', 10, NULL, false, ?, 1e-4, exp(1), 'distance') WHERE list_contains(?, method)",
        [*selection.args(), zero_bins, BINNED],
    )
    return dict(
        zip(rows.column("method").to_pylist(), rows.column("value").to_pylist(), strict=True)
    )


@pytest.mark.parametrize("zero_bins", ["epsilon", "smallest", "leftover"])
def test_thousands_of_distinct_values_score_as_numpy(many_values, zero_bins):
    store, ref, ana = many_values
    expected = expected_scores(ref, ana, zero_bins)
    assert len(np.union1d(ref, ana)) > 3500
    in_sql = sql_rows(store, zero_bins)
    fast = store.drift("m", window="1 day", features=["x"], methods=BINNED, binning="values",
                       zero_bins=zero_bins)  # fmt: skip
    in_numpy = dict(zip(fast.column("method").to_pylist(), fast.column("value").to_pylist(),
                        strict=True))  # fmt: skip
    assert set(in_sql) == set(in_numpy) == set(BINNED)
    for method in BINNED:
        assert in_sql[method] == pytest.approx(expected[method], rel=1e-9), method
        assert in_numpy[method] == pytest.approx(in_sql[method], rel=1e-12, abs=0), method


@pytest.mark.parametrize("most", [3, 20])  # 'smallest': shares of 1 above / below epsilon
def test_binned_scores_of_long_lists_with_empty_bins(most):
    rng = np.random.default_rng(3)
    r = rng.integers(1, most, 5000) * (rng.random(5000) < 0.5)
    a = rng.integers(1, most, 5000) * (rng.random(5000) < 0.5)
    assert (1 / r.sum() <= 1e-4) == (most == 20)
    r[[0, -1]], a[[0, -1]] = 0, 0  # open end bins empty on both sides
    p, q = r / r.sum(), a / a.sum()
    store = blank_store()
    try:
        for zero_bins in ("epsilon", "smallest", "leftover"):
            got = (
                store.sql(
                    "SELECT evalstore.binned_scores(?::DOUBLE[], ?::DOUBLE[], ?, 1e-4, exp(1), "
                    "'distance') AS s",
                    [p.tolist(), q.tolist(), zero_bins],
                )
                .column("s")[0]
                .as_py()
            )
            want = oracle(p, q, zero_bins)
            for method in ("psi", "kl", "js", "hellinger", "d1"):
                assert got[method] == pytest.approx(want[method], rel=1e-9), (zero_bins, method)
    finally:
        store.close()
