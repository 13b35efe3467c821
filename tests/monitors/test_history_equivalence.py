"""Persisted metric calls equal fresh ones on random histories (issue 26, point 1).

Each example replays random operations on a store: new days of serving features and
predictions, late labels and label corrections, feature rows replaced with
``on_conflict='replace'`` (moved to another day), new training rows (the reference),
and after each step that can change a stored window compares ``persist=True`` with a
fresh call. One test per family; each example draws one of the family's configurations
(window-by-window ones and coupled ones), so an example costs a few family calls per
step. The store of every example is a copy of one session template (the training rows).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
#: The configurations compared, per family: window-by-window ones (fixed reference, with
#: and without version/where/since/until) and coupled ones (rolling reference, quality,
#: performance by= with a bootstrap).
CALLS: dict[str, list[dict[str, Any]]] = {
    "drift": [
        {"methods": ["psi", "ks", "wasserstein", "chi2", "unseen"]},
        {"version": "v1", "where": "x > -1.5", "thresholds": {"psi": (0.0, 0.3)}},
        {"methods": ["wasserstein", "js"], "since": T0 + dt.timedelta(days=1),
         "until": T0 + dt.timedelta(days=4)},
        {"reference": {"previous": 1}, "methods": ["psi", "ks"]},
    ],
    "quality": [
        {},
        {"where": "c <> 'b'", "since": T0, "until": T0 + dt.timedelta(days=6)},
    ],
    "performance": [
        {"metrics": ["accuracy", "roc_auc", "log_loss"], "n_boot": 0},
        {"metrics": ["precision", "brier"], "where": "c = 'a'", "n_boot": 0,
         "since": T0 + dt.timedelta(days=1), "until": T0 + dt.timedelta(days=4)},
        {"by": "c", "metrics": ["accuracy", "ece"], "n_boot": 20},
    ],
}  # fmt: skip


def same(a: pa.Table, b: pa.Table) -> bool:
    """Same schema and rows; floats equal up to 1e-12 relative (NaN equals NaN).

    The families' sums run in DuckDB's parallel order, which follows the rows' physical
    order: a replaced feature row moves an example and the last bit of a mean can move
    with it, in a fresh call as much as in a persisted one.
    """
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        for key, u in x.items():
            v = y[key]
            if isinstance(u, float) and isinstance(v, float):
                if not (math.isnan(u) and math.isnan(v)) and not math.isclose(
                    u, v, rel_tol=1e-12, abs_tol=1e-15
                ):
                    return False
            elif u != v:
                return False
    return True


@pytest.fixture(scope="module")
def base(template) -> Path:
    def build(store: evalstore.Store) -> None:
        store.register_model("m", "v1", "binary")
        rng = np.random.default_rng(1)
        n = 120
        store.log_features(
            "m",
            pa.table(
                {
                    "example_id": [f"t{i}" for i in range(n)],
                    "x": rng.normal(size=n),
                    "c": rng.choice(["a", "b"], n),
                    "ts": [T0 - dt.timedelta(days=30, minutes=i) for i in range(n)],
                }
            ),
            env="training",
        )

    return template("history-equivalence", build)


class Replay:
    """Applies operations to a store, remembering the serving examples it logged."""

    def __init__(self, store: evalstore.Store, seed: int) -> None:
        self.store, self.rng, self.ids, self.batch = store, np.random.default_rng(seed), [], 0

    def stamp(self, day: int) -> list[dt.datetime]:
        return [T0 + dt.timedelta(days=day, minutes=int(m)) for m in self.rng.integers(0, 1440, 1)]

    def features(self, ids: list[str], day: int, on_conflict: str = "error") -> None:
        k = len(ids)
        ts = [T0 + dt.timedelta(days=day, minutes=int(m)) for m in self.rng.integers(0, 1440, k)]
        self.store.log_features(
            "m",
            pa.table(
                {
                    "example_id": ids,
                    "x": self.rng.normal(size=k) + day * 0.3,
                    "c": self.rng.choice(["a", "b", "z"], k),
                    "ts": ts,
                }
            ),
            on_conflict=on_conflict,
        )
        return ts

    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "day":
            _, day, k = op
            self.batch += 1
            ids = [f"s{self.batch}_{i}" for i in range(k)]
            ts = self.features(ids, day)
            scores = self.rng.random(k)
            self.store.log_predictions(
                "m", pa.table({"example_id": ids, "score": scores, "ts": ts}), version="v1"
            )
            self.ids += ids
        elif kind == "labels" and self.ids:
            _, share = op
            k = max(1, int(len(self.ids) * share))
            ids = list(self.rng.choice(self.ids, k, replace=False))
            labels = self.rng.integers(0, 2, k)
            self.store.log_labels(
                "m", pa.table({"example_id": ids, "label": labels}), labeled_at=T0
            )
        elif kind == "replace" and self.ids:
            _, k, day = op
            ids = list(self.rng.choice(self.ids, min(k, len(self.ids)), replace=False))
            self.features(ids, day, on_conflict="replace")
        elif kind == "training":
            _, k = op
            self.batch += 1
            self.store.log_features(
                "m",
                pa.table(
                    {
                        "example_id": [f"u{self.batch}_{i}" for i in range(k)],
                        "x": self.rng.normal(size=k),
                        "c": self.rng.choice(["a", "b"], k),
                        "ts": [T0 - dt.timedelta(days=20)] * k,
                    }
                ),
                env="training",
            )


operations = st.lists(
    st.one_of(
        st.tuples(st.just("day"), st.integers(0, 5), st.integers(3, 25)),
        st.tuples(st.just("labels"), st.sampled_from([0.1, 0.3, 0.8])),
        st.tuples(st.just("replace"), st.integers(1, 4), st.integers(0, 5)),
        st.tuples(st.just("training"), st.integers(1, 10)),
    ),
    min_size=1,
    max_size=4,
)


def check(store: evalstore.Store, family: str, arguments: dict[str, Any]) -> pa.Table:
    """``persist=True`` (stored, refreshed or read back) equals a fresh call; returns it."""
    kept = getattr(store, family)("m", persist=True, **arguments)
    fresh = getattr(store, family)("m", **arguments)
    assert same(kept, fresh), (family, arguments, kept.to_pylist(), fresh.to_pylist())
    return kept


@pytest.mark.parametrize(
    "family",
    # drift's calls cost the most (about 7 s of CPU for the four examples)
    [pytest.param("drift", marks=pytest.mark.slow), "performance", "quality"],
)
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=st.data(),
    first=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    ops=operations,
    seed=st.integers(0, 99),
)
def test_persisted_equals_fresh_on_random_histories(
    open_copy, base, family, data, first, ops, seed
):
    arguments = data.draw(st.sampled_from(CALLS[family]), label="arguments")
    with open_copy(base) as store:
        replay = Replay(store, seed)
        for day in first:
            replay.apply(("day", day, 10))
        kept = check(store, family, arguments)
        for op in ops:
            replay.apply(op)
            kept = check(store, family, arguments)
        # nothing changed since the last call: read back whole, the same table exactly
        assert getattr(store, family)("m", persist=True, **arguments).equals(kept)
