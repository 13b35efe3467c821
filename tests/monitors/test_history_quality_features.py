"""Quality over some features (``features=``, what a persisted call per feature group and
``bench_history --feature-groups`` run) reads only those features' values plus the rows
that keep the window list (``values.covering_rows``), and answers exactly the rows of
the call over every feature: on random stores with windows holding only predictions,
only features, labels, empty windows between them, NULLs, and a model with no
categorical feature column."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from tests.conftest import blank_store

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
NUMERIC = ["x", "y"]
CATEGORICAL = ["c", "d"]


def build(store: evalstore.Store, seed: int, days: list[tuple[int, bool, bool]], cats: bool):
    """Day ``d`` with (features?, predictions?) of 6 examples each, half of them labelled."""
    rng = np.random.default_rng(seed)
    store.register_model("m", "v1", "binary")
    columns = NUMERIC + (CATEGORICAL if cats else [])

    def table(ids: list[str], ts: list[dt.datetime]) -> pa.Table:
        data: dict = {"example_id": ids, "ts": ts}
        for name in NUMERIC:
            values = rng.normal(size=len(ids))
            values[rng.random(len(ids)) < 0.2] = np.nan
            data[name] = pa.array(values, from_pandas=False)
        for name in columns[len(NUMERIC) :]:
            values = rng.choice(["a", "b", "z"], len(ids)).tolist()
            data[name] = [None if rng.random() < 0.2 else v for v in values]
        return pa.table(data)

    training = [f"t{i}" for i in range(10)]
    store.log_features("m", table(training, [T0 - 9 * DAY] * 10), env="training")
    for k, (day, with_features, with_predictions) in enumerate(days):
        ids = [f"s{k}_{i}" for i in range(6)]
        ts = [T0 + day * DAY + dt.timedelta(hours=int(h)) for h in rng.integers(0, 24, 6)]
        if with_features:
            store.log_features("m", table(ids, ts))
        if with_predictions:
            scores = rng.random(6)
            store.log_predictions(
                "m", pa.table({"example_id": ids, "score": scores, "ts": ts}), "v1"
            )
        store.log_labels("m", pa.table({"example_id": ids[:3], "label": [0, 1, 1]}))


def restricted(table: pa.Table, features: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column("feature"), pa.array(features)))


subsets = st.sampled_from(
    [["x"], ["c"], ["x", "d"], ["score"], ["label"], ["prediction", "y"], ["c", "label"]]
)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(
        st.tuples(st.integers(0, 6), st.booleans(), st.booleans()), min_size=1, max_size=5
    ),
    features=subsets,
    cats=st.booleans(),
    where=st.sampled_from([None, "x > -0.5"]),
    seed=st.integers(0, 999),
)
def test_some_features_equal_those_rows_of_every_feature(days, features, cats, where, seed):
    if not cats:
        features = [f for f in features if f not in CATEGORICAL] or ["x"]
    with blank_store() as store:
        build(store, seed, days, cats)
        whole = store.quality("m", where=where)
        some = store.quality("m", features=features, where=where)
        assert some.equals(restricted(whole, features)), (features, days)
        since, until = T0 + DAY, T0 + 5 * DAY  # empty windows inside [since, until) too
        whole = store.quality("m", where=where, since=since, until=until)
        some = store.quality("m", features=features, where=where, since=since, until=until)
        assert some.equals(restricted(whole, features)), (features, days)


def test_a_window_of_predictions_alone_is_listed_for_a_feature(empty_store):
    """Day 1 holds only predictions: with every feature it is a non-empty window (no row
    of x there, no gap row); with x alone it must stay so, not become a gap."""
    store = empty_store
    build(store, 0, [(0, True, True), (1, False, True), (2, True, True)], cats=True)
    whole = store.quality("m")
    some = store.quality("m", features=["x"])
    assert some.equals(restricted(whole, ["x"]))
    assert sorted({(w - T0).days for w in some.column("window_start").to_pylist()}) == [0, 2]
