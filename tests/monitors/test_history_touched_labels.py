"""The touched examples' labels (``history_touched``) and the refresh's restricted label
join (``performance.labels_from``): which label rows the table holds, when a range of
predictions is covered by it, and that performance over a covered range joined with those
labels alone equals performance joined with every label, on random histories with late
labels, corrections, two versions and repeated predictions."""

from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.metrics import performance as perf
from evalstore.monitors import fingerprints, history
from evalstore.monitors.history_touched import LABELS, TouchedPredictions
from tests.conftest import blank_store

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def same(a: pa.Table, b: pa.Table) -> bool:
    """Same schema and rows; floats equal up to 1e-12 relative (sums may run in another
    order when the join plan differs)."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        for key, u in x.items():
            v = y[key]
            if isinstance(u, float) and isinstance(v, float):
                if not math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-15):
                    return False
            elif u != v:
                return False
    return True


def predict(store: evalstore.Store, ids: list[str], day: int, version: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ts = [T0 + day * DAY + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 1440, len(ids))]
    scores = rng.random(len(ids))
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": scores, "ts": ts}), version=version
    )


def label(store: evalstore.Store, ids: list[str], values: list[int], day: int) -> None:
    ts = [T0 + day * DAY] * len(ids)
    store.log_labels("m", pa.table({"example_id": ids, "label": values, "ts": ts}))


def test_touched_labels_and_covered_ranges(empty_store):
    store = empty_store
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    predict(store, ["a", "b", "c"], 0, "v1", 1)
    label(store, ["a", "b"], [1, 0], 1)
    con = store._context().connection
    before = fingerprints.watermark(con, "m")
    label(store, ["a", "x"], [0, 1], 2)  # a corrected, x labeled before its prediction
    predict(store, ["d", "e"], 3, "v1", 2)
    predict(store, ["b"], 3, "v2", 3)  # b predicted again, by v2
    touched = TouchedPredictions(con, "m")
    with pytest.raises(RuntimeError, match=r"needs tables\(\) first"):
        touched.labels()
    assert not touched.covers(T0, T0 + 9 * DAY)  # nothing built yet
    touched.tables(before.labels, before.predictions)
    assert touched.labels() == LABELS
    rows = con.execute(
        f"SELECT l.example_id, t.label, t.superseded_by IS NULL FROM {LABELS} AS t "
        "JOIN m.labels AS l ON l.example_key = t.example_key AND l.batch_id = t.batch_id "
        "ORDER BY 1, t.batch_id"
    ).fetchall()
    # every label row of the touched examples (a, b, d, e, x), superseded ones too
    assert rows == [("a", "1", False), ("a", "0", True), ("b", "0", True), ("x", "1", True)]
    # day 3 holds only new predictions (d, e, b by v2); day 0 also c, which nothing touched
    assert touched.covers(T0 + 3 * DAY, T0 + 4 * DAY)
    assert not touched.covers(T0, T0 + DAY)
    assert touched.covers(T0 + 5 * DAY, T0 + 6 * DAY)  # no prediction at all
    touched.drop()
    assert not touched.covers(T0 + 3 * DAY, T0 + 4 * DAY)


#: performance calls compared with and without the restricted labels: the plain call
#: (no features joined), a version, a predicate (features joined) and slices by feature
CALLS: list[dict[str, Any]] = [
    {"metrics": ["accuracy", "roc_auc", "log_loss", "brier"], "n_boot": 0},
    {"metrics": ["precision", "recall"], "version": "v2", "n_boot": 0},
    {"metrics": ["accuracy", "f1"], "where": "x > 0 OR score < 0.5", "n_boot": 0},
    {"metrics": ["accuracy", "roc_auc"], "by": "x", "edges": {"x": [0.0]}, "n_boot": 0},
]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("predict"), st.integers(0, 3), st.sampled_from(["v1", "v2"])),
        st.tuples(st.just("label"), st.sampled_from([0.2, 0.6, 1.0])),
        st.tuples(st.just("features"), st.integers(0, 3)),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=steps, after=steps, seed=st.integers(0, 999), call=st.sampled_from(CALLS))
def test_restricted_labels_equal_every_label(before, after, seed, call):
    rng = np.random.default_rng(seed)
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.register_model("m", "v2", "binary")
        # the column the calls' predicates and slices read exists from the start
        store.log_features("m", pa.table({"example_id": ["f"], "x": [0.0], "ts": [T0]}))
        ids: list[str] = []
        featured: set[str] = set()
        counter = iter(range(10_000))

        def apply(step: tuple) -> None:
            if step[0] == "predict":  # new examples, and some predicted again
                _, day, version = step
                new = [f"e{next(counter)}" for _ in range(int(rng.integers(3, 12)))]
                again = [i for i in ids if rng.random() < 0.2]
                chosen = new + [i for i in again if i not in new]
                # a version predicts an example once: repeat only across versions
                stored = store.sql(
                    "SELECT example_id FROM m.predictions WHERE version = ?", params=[version]
                ).column(0)
                taken = set(stored.to_pylist())
                chosen = [i for i in chosen if i not in taken]
                if chosen:
                    predict(store, chosen, day, version, int(rng.integers(1 << 30)))
                ids.extend(i for i in new if i not in ids)
            elif step[0] == "label" and ids:  # late labels, corrections, unseen ids
                k = max(1, int(len(ids) * step[1]))
                chosen = [*rng.choice(ids, k, replace=False), f"u{next(counter)}"]
                label(store, chosen, list(rng.integers(0, 2, len(chosen))), 4)
            elif step[0] == "features" and ids:
                fresh = [i for i in ids if i not in featured]
                if fresh:
                    x = rng.normal(size=len(fresh))
                    ts = [T0 + step[1] * DAY] * len(fresh)
                    store.log_features("m", pa.table({"example_id": fresh, "x": x, "ts": ts}))
                    featured.update(fresh)

        for step in before:
            apply(step)
        con = store._context().connection
        mark = fingerprints.watermark(con, "m")
        for step in after:
            apply(step)
        ctx = store._context()
        touched = TouchedPredictions(con, "m")
        touched.tables(
            -1 if mark.labels is None else mark.labels,
            -1 if mark.predictions is None else mark.predictions,
        )
        try:
            for day in range(4):
                since, until = T0 + day * DAY, T0 + (day + 1) * DAY
                if not touched.covers(since, until):
                    continue
                arguments = {**call, "since": since, "until": until}
                full = perf.performance(ctx, "m", **arguments)
                with perf.labels_from(touched.labels()):
                    restricted = perf.performance(ctx, "m", **arguments)
                assert same(restricted, full), (call, day)
        finally:
            touched.drop()


def test_refresh_joins_touched_labels_only_where_they_cover(empty_store, monkeypatch):
    """A refresh recomputes the new day with the touched labels alone, and a day with a
    late label (some of its predictions untouched) with every label; both equal a fresh
    call."""
    store = empty_store
    store.register_model("m", "v1", "binary")
    for day in range(3):
        ids = [f"d{day}_{i}" for i in range(20)]
        predict(store, ids, day, "v1", day)
        label(store, ids[:15], [i % 2 for i in range(15)], day + 1)
    arguments = {"metrics": ["accuracy", "roc_auc", "log_loss"], "n_boot": 0}
    store.performance("m", persist=True, **arguments)
    restricted: list[str] = []
    original = perf.labels_from

    def spy(relation: str) -> Any:
        restricted.append(relation)
        return original(relation)

    monkeypatch.setattr(history._performance, "labels_from", spy)
    ids = [f"d3_{i}" for i in range(20)]
    predict(store, ids, 3, "v1", 3)
    label(store, [*ids[:10], "d1_17"], [*[1, 0] * 5, 1], 4)  # day 3's labels, a late one
    label(store, ["d0_0"], [1], 4)  # a correction on day 0
    calls: list[tuple[Any, Any]] = []
    compute = perf.performance

    @functools.wraps(compute)  # the same signature: the call's parameters are unchanged
    def recorded(ctx: Any, model: str, **kw: Any) -> pa.Table:
        calls.append((kw.get("since"), perf._LABELS.get()))
        return compute(ctx, model, **kw)

    monkeypatch.setitem(history.FAMILIES, "performance", recorded)
    kept = store.performance("m", persist=True, **arguments)
    fresh = compute(store._context(), "m", **arguments)
    assert same(kept, fresh)
    assert restricted == [LABELS]
    # stale: days 0 (a correction) and 1 (a late label), one run, and the new day 3
    assert calls == [(T0, None), (T0 + 3 * DAY, LABELS)]
