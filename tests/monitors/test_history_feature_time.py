"""The windows a drift or quality refresh recomputes (``history_windows.feature_time_windows``):
exactly those later batches touched, found without a pass over every serving key when new
labels arrive with their own features; and persisted calls equal fresh ones on random
histories where labels come with their day, late, before their features, corrected, and
where rows are replaced or skipped and other versions predict old examples."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.monitors import fingerprints, history_params, history_windows
from tests.conftest import blank_store
from tests.monitors.test_history_equivalence import same

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def at(day: int, hour: int = 12) -> dt.datetime:
    return T0 + day * DAY + dt.timedelta(hours=hour)


def features(store: evalstore.Store, ids: list[str], day: int, **kw: Any) -> None:
    x = np.linspace(-1, 1, len(ids)) + day
    store.log_features("m", pa.table({"example_id": ids, "x": x, "ts": [at(day)] * len(ids)}), **kw)


def predict(store: evalstore.Store, ids: list[str], day: int, version: str = "v1") -> None:
    scores = np.linspace(0.1, 0.9, len(ids))
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": scores, "ts": [at(day, 6)] * len(ids)}), version
    )


def label(store: evalstore.Store, ids: list[str], value: int = 1) -> None:
    store.log_labels("m", pa.table({"example_id": ids, "label": [value] * len(ids)}))


def touched(store: evalstore.Store, mark: fingerprints.Watermark, **arguments: Any) -> set[int]:
    """Days of the windows :func:`feature_time_windows` finds touched since ``mark``."""
    ctx = store._context()
    con = ctx.connection
    registration = ctx.registration("m", arguments.get("version"))
    plan = history_params.plan(con, "drift", "m", arguments, registration)
    starts = history_windows.feature_time_windows(con, "m", plan, mark)
    return {(s - T0).days for s in starts}


def build(store: evalstore.Store) -> None:
    """Two versions, two training rows, days 0-2 with four examples each, no labels."""
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    store.log_features(
        "m",
        pa.table({"example_id": ["t0", "t1"], "x": [0.0, 1.0], "ts": [at(-9)] * 2}),
        env="training",
    )
    for day in range(3):
        ids = [f"d{day}_{i}" for i in range(4)]
        features(store, ids, day)
        predict(store, ids, day)


@pytest.fixture
def store():
    with blank_store() as store:
        build(store)
        yield store


def test_labels_with_their_day_touch_that_day_alone(store):
    mark = fingerprints.watermark(store._context().connection, "m")
    ids = ["d3_0", "d3_1"]
    features(store, ids, 3)
    predict(store, ids, 3)
    label(store, ids)
    assert touched(store, mark) == {3}


def test_a_late_label_touches_the_day_of_its_features(store):
    mark = fingerprints.watermark(store._context().connection, "m")
    label(store, ["d1_2"])  # features at day 1; its prediction is also day 1, at 06:00
    features(store, ["d4_0"], 4)
    label(store, ["d4_0"])
    assert touched(store, mark) == {1, 4}
    # a label before its example's features: nothing to touch until they arrive
    mark = fingerprints.watermark(store._context().connection, "m")
    label(store, ["later"])
    assert touched(store, mark) == set()
    mark = fingerprints.watermark(store._context().connection, "m")
    features(store, ["later"], 2)
    assert touched(store, mark) == {2}


def test_a_label_on_a_skipped_row_touches_the_stored_rows_day(store):
    mark = fingerprints.watermark(store._context().connection, "m")
    features(store, ["d0_1", "d5_0"], 5, on_conflict="ignore")  # d0_1 stays at day 0
    label(store, ["d0_1"])
    assert touched(store, mark) == {0, 5}


def test_version_and_where_read_new_predictions_and_replaced_features(store):
    mark = fingerprints.watermark(store._context().connection, "m")
    predict(store, ["d0_3"], 2, version="v2")  # an old example predicted by v2 on day 2
    assert touched(store, mark) == {2}
    assert touched(store, mark, version="v2") == {0, 2}
    mark = fingerprints.watermark(store._context().connection, "m")
    features(store, ["d1_0"], 1, on_conflict="replace")  # same day, new values
    assert touched(store, mark) == {1}
    # its prediction is on day 1 as well; predicted by v2 on day 2, the predicate moves
    # that score row in or out too
    predict(store, ["d1_0"], 2, version="v2")
    mark = fingerprints.watermark(store._context().connection, "m")
    features(store, ["d1_0"], 0, on_conflict="replace")
    assert touched(store, mark) == {0}
    assert touched(store, mark, where="x > 0") == {0, 1, 2}


#: drift and quality calls compared: plain, a version with a predicate, a time range
CALLS: dict[str, list[dict[str, Any]]] = {
    "drift": [
        {"methods": ["psi", "ks", "chi2"]},
        {"version": "v2", "where": "x > 0.5", "methods": ["wasserstein", "unseen"]},
    ],
    "quality": [{}, {"version": "v1", "since": T0, "until": T0 + 5 * DAY}],
}

steps = st.lists(
    st.one_of(
        # a new day: features, predictions and (a share of) its labels together
        st.tuples(st.just("day"), st.integers(0, 4), st.sampled_from([0.0, 0.5, 1.0])),
        st.tuples(st.just("late"), st.sampled_from([0.1, 0.5])),  # late labels, corrections
        st.tuples(st.just("early"), st.integers(0, 4)),  # labels, then their features
        st.tuples(st.just("replace"), st.integers(0, 4), st.sampled_from(["replace", "ignore"])),
        st.tuples(st.just("v2"), st.integers(0, 4)),  # v2 predicts old examples
    ),
    min_size=1,
    max_size=4,
)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["drift", "quality"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), ops=steps, seed=st.integers(0, 999))
def test_persisted_equals_fresh_when_labels_come_with_their_day(family, data, ops, seed):
    arguments = data.draw(st.sampled_from(CALLS[family]), label="arguments")
    with blank_store() as store:
        build(store)
        replay(store, getattr(store, family), arguments, ops, np.random.default_rng(seed))


def replay(
    store: evalstore.Store, call: Any, arguments: dict[str, Any], ops: list, rng: Any
) -> None:
    """Apply ``ops``; after each, the persisted call equals a fresh one."""
    counter = iter(range(10_000))
    ids = [f"d{day}_{i}" for day in range(3) for i in range(4)]
    by_v2: set[str] = set()
    kept = call("m", persist=True, **arguments)
    for op in ops:
        if op[0] == "day":
            new = [f"n{next(counter)}" for _ in range(int(rng.integers(3, 9)))]
            features(store, new, op[1])
            predict(store, new, op[1])
            if op[2]:
                label(store, new[: max(1, int(len(new) * op[2]))], int(rng.integers(2)))
            ids += new
        elif op[0] == "late":
            chosen = list(rng.choice(ids, max(1, int(len(ids) * op[1])), replace=False))
            label(store, chosen, int(rng.integers(2)))
        elif op[0] == "early":
            new = [f"n{next(counter)}" for _ in range(3)]
            label(store, new, int(rng.integers(2)))
            features(store, new, op[1])
            ids += new
        elif op[0] == "replace":
            chosen = list(rng.choice(ids, 2, replace=False))
            features(store, chosen, op[1], on_conflict=op[2])
        else:  # a version predicts an example once
            chosen = [i for i in rng.choice(ids, 2, replace=False) if i not in by_v2]
            if chosen:
                predict(store, chosen, op[1], version="v2")
                by_v2.update(chosen)
        kept = call("m", persist=True, **arguments)
        fresh = call("m", **arguments)
        assert same(kept, fresh), (arguments, op)
    assert call("m", persist=True, **arguments).equals(kept)


def test_quality_feature_moved_to_a_day_without_predictions():
    """Found by the property above: the refresh recomputes days 1-3 with since/until, and
    until= made the outputs' macro list day 3 as empty (rows = 0) though x has rows there."""
    with blank_store() as store:
        build(store)
        store.quality("m", persist=True)
        features(store, ["d2_1", "d1_3"], 3, on_conflict="replace")  # into day 3: no predictions
        kept = store.quality("m", persist=True)
        fresh = store.quality("m")
        assert same(kept, fresh)
        day3 = [r for r in kept.to_pylist() if r["window_start"] == at(3, 0)]
        assert {r["feature"] for r in day3} == {"x"}
        assert {r["n_analysis"] for r in day3} == {2}
