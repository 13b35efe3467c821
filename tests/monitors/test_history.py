"""The metric history (issue 26, point 1): what a persisted call stores, which windows a
later call recomputes, and ``store.history``'s filters, bounds and errors.

Every test opens a copy of one template: model ``m`` with 2,000 training rows and four
serving days (0-3, 240 rows each, labels for days 0 and 1). ``computed`` records each
call a persisted call makes to a family (its ``since``/``until``), so a test asserts
which windows were recomputed, not only that the answer is right.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.core.macros import install_macros
from evalstore.errors import (
    InvalidParameterError,
    ReadOnlyError,
    UnknownModelError,
)
from evalstore.monitors import history
from tests.monitors.conftest import Days, day_start, training_rows
from tests.monitors.test_history_equivalence import same

HISTORY_TABLES = ("metric_history", "metric_history_calls", "metric_history_windows")


@pytest.fixture(scope="module")
def four_days(template: Callable[..., Path]) -> Path:
    def build(store: evalstore.Store) -> None:
        training_rows(store)
        days = Days(store)
        for d in range(4):
            days.add(d, labels=d < 2)

    return template("history-unit", build)


@pytest.fixture
def store(open_copy, four_days: Path) -> Iterator[evalstore.Store]:
    with open_copy(four_days) as opened:
        yield opened


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Any]]:
    """``(family, since, until)`` of every family call persisted calls make."""
    seen: list[tuple[str, Any, Any]] = []
    for family, compute in list(history.FAMILIES.items()):

        @functools.wraps(compute)
        def counted(ctx, model, *args, _compute=compute, _family=family, **kwargs):
            seen.append((_family, kwargs.get("since"), kwargs.get("until")))
            return _compute(ctx, model, *args, **kwargs)

        monkeypatch.setitem(history.FAMILIES, family, counted)
    return seen


def windows_computed_at(store: evalstore.Store) -> dict[datetime, datetime]:
    """``{window_start: computed_at}`` of the stored windows (one persisted call)."""
    rows = store.sql(
        "SELECT window_start, computed_at FROM evalstore.metric_history_windows"
    ).to_pylist()
    return {r["window_start"]: r["computed_at"] for r in rows}


def stored_tables(store: evalstore.Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of the three history tables, in a fixed order."""
    return {
        name: store.sql(f"SELECT * FROM evalstore.{name} ORDER BY ALL").to_pylist()
        for name in HISTORY_TABLES
    }


DRIFT = {"features": ["x", "c"], "methods": ["psi", "ks"]}
PERFORMANCE = {"metrics": ["accuracy", "log_loss"], "n_boot": 0}


# ---------------------------------------------------------------------- what is stored


def test_a_persisted_call_stores_its_rows_windows_and_watermark(store, computed):
    table = store.drift("m", persist=True, **DRIFT)
    assert computed == [("drift", None, None)]
    assert same(table, store.drift("m", **DRIFT))
    batches = {
        r["kind"]: r["top"]
        for r in store.sql(
            "SELECT kind, max(batch_id) AS top FROM evalstore.batches GROUP BY kind"
        ).to_pylist()
    }
    call = store.sql("SELECT * FROM evalstore.metric_history_calls").to_pylist()
    assert len(call) == 1 and call[0]["family"] == "drift" and not call[0]["coupled"]
    assert (call[0]["features_batch"], call[0]["predictions_batch"], call[0]["labels_batch"]) == (
        batches["features"],
        batches["predictions"],
        batches["labels"],
    )
    assert call[0]["width"] == "1 day"
    windows = store.sql(
        "SELECT window_start, feature_rows, prediction_rows FROM evalstore.metric_history_windows "
        "ORDER BY window_start"
    ).to_pylist()
    assert windows == [
        {"window_start": day_start(d), "feature_rows": 240, "prediction_rows": 240}
        for d in range(4)
    ]
    rows = store.history("m")
    assert rows.num_rows == table.num_rows
    assert set(rows.column("features_batch").to_pylist()) == {batches["features"]}
    assert set(rows.column("labels_batch").to_pylist()) == {batches["labels"]}
    # the series is the result: same subjects, methods and values in the same order
    assert rows.column("subject").to_pylist() == table.column("feature").to_pylist()
    assert rows.column("metric").to_pylist() == table.column("method").to_pylist()
    assert rows.column("value").to_pylist() == table.column("value").to_pylist()
    assert rows.column("flagged").to_pylist() == table.column("drifted").to_pylist()


def test_a_second_identical_call_reads_back_without_computing(store, computed):
    first = store.drift("m", persist=True, **DRIFT)
    before = windows_computed_at(store)
    rows_before = store.history("m").column("computed_at").to_pylist()
    again = store.drift("m", persist=True, methods=("psi", "ks"), features=("x", "c"))
    assert computed == [("drift", None, None)]  # the first call only
    assert again.equals(first)
    assert windows_computed_at(store) == before
    assert store.history("m").column("computed_at").to_pylist() == rows_before


def test_parameters_are_normalised_before_hashing(store, computed):
    since = day_start(1)
    store.performance("m", persist=True, since=since, **PERFORMANCE)
    store.performance("m", persist=True, since=since.isoformat(), **PERFORMANCE)
    store.performance("m", PERFORMANCE["metrics"], "1 day", None, since=since, n_boot=0,
                      persist=True)  # fmt: skip
    assert computed == [("performance", since, None)]
    assert store.sql("SELECT count(*) AS n FROM evalstore.metric_history_calls").to_pylist() == [
        {"n": 1}
    ]


# ---------------------------------------------------------------------- what is recomputed


@pytest.mark.parametrize(("family", "arguments"), [("drift", DRIFT), ("performance", PERFORMANCE)])
def test_a_new_day_is_computed_alone(store, computed, family, arguments):
    call = getattr(store, family)
    call("m", persist=True, **arguments)
    before = windows_computed_at(store)
    Days(store).add(4)
    table = call("m", persist=True, **arguments)
    assert computed[1:] == [(family, day_start(4), day_start(5))]
    after = windows_computed_at(store)
    assert {s: after[s] for s in before} == before
    assert set(after) - set(before) == {day_start(4)}
    assert same(table, call("m", **arguments))


@pytest.mark.parametrize(("family", "arguments"), [("drift", DRIFT), ("performance", PERFORMANCE)])
def test_a_late_label_recomputes_exactly_the_window_it_touches(store, computed, family, arguments):
    call = getattr(store, family)
    call("m", persist=True, **arguments)
    before = windows_computed_at(store)
    Days(store).label(2)
    table = call("m", persist=True, **arguments)
    assert computed[1:] == [(family, day_start(2), day_start(3))]
    after = windows_computed_at(store)
    changed = {s for s in after if after[s] != before[s]}
    assert changed == {day_start(2)}
    assert same(table, call("m", **arguments))


def test_a_label_correction_recomputes_its_window(store, computed):
    store.performance("m", persist=True, **PERFORMANCE)
    ids = [f"d1_{i}" for i in range(10)]
    store.log_labels("m", pa.table({"example_id": ids, "label": [1] * 5 + [0] * 5}))
    table = store.performance("m", persist=True, **PERFORMANCE)
    assert computed[1:] == [("performance", day_start(1), day_start(2))]
    fresh = store.performance("m", **PERFORMANCE)
    assert same(table, fresh)
    accuracy = [r for r in table.to_pylist() if r["metric"] == "accuracy"]
    assert accuracy[1]["value"] < 1.0  # the corrections made some predictions wrong


def test_replaced_features_recompute_the_windows_they_leave_and_enter(store, computed):
    store.drift("m", persist=True, **DRIFT)
    before = windows_computed_at(store)
    ids = [f"d1_{i}" for i in range(5)]
    moved = [day_start(3) + timedelta(hours=i) for i in range(5)]
    store.log_features(
        "m",
        pa.table({"example_id": ids, "ts": moved, "x": [9.0] * 5, "c": ["a"] * 5}),
        on_conflict="replace",
    )
    table = store.drift("m", persist=True, **DRIFT)
    assert computed[1:] == [
        ("drift", day_start(1), day_start(2)),
        ("drift", day_start(3), day_start(4)),
    ]
    after = windows_computed_at(store)
    assert {s for s in after if after[s] != before[s]} == {day_start(1), day_start(3)}
    assert same(table, store.drift("m", **DRIFT))


def test_a_window_emptied_by_replaced_rows_is_dropped(store, computed):
    """Rows of a window without predictions move outside ``[since, until)``: no stored
    window is touched or changes its count, and the emptied window must still go."""
    ids = [f"f5_{i}" for i in range(30)]
    rng = np.random.default_rng(5)
    store.log_features(
        "m",
        pa.table({"example_id": ids, "ts": [day_start(5)] * 30, "x": rng.normal(3, 1, 30),
                  "c": ["b"] * 30}),
    )  # fmt: skip
    arguments = {**DRIFT, "since": day_start(0), "until": day_start(6)}
    first = store.drift("m", persist=True, **arguments)
    assert day_start(5) in first.column("window_start").to_pylist()
    store.log_features(
        "m",
        pa.table({"example_id": ids, "ts": [day_start(8)] * 30, "x": [0.0] * 30,
                  "c": ["a"] * 30}),
        on_conflict="replace",
    )  # fmt: skip
    table = store.drift("m", persist=True, **arguments)
    assert computed[1:] == []  # nothing to recompute, one window to delete
    assert day_start(5) not in table.column("window_start").to_pylist()
    assert same(table, store.drift("m", **arguments))
    assert day_start(5) not in windows_computed_at(store)


def test_quality_recomputes_the_touched_window_when_its_subjects_stay(store, computed):
    store.quality("m", persist=True)
    store.quality("m", persist=True)
    assert computed == [("quality", None, None)]  # the second call read back
    Days(store).label(3)  # 'label' is listed in every window already (rows = 0 on day 3)
    table = store.quality("m", persist=True)
    assert computed[1:] == [("quality", day_start(3), day_start(4))]
    assert same(table, store.quality("m"))


def test_a_new_subject_in_one_window_stays_in_that_window(store, computed):
    """A window with rows lists its own subjects: 'label' appearing on day 3 only
    recomputes day 3."""
    arguments = {"since": day_start(2)}  # days 2 and 3: no label yet
    first = store.quality("m", persist=True, **arguments)
    assert "label" not in first.column("feature").to_pylist()
    Days(store).label(3)
    table = store.quality("m", persist=True, **arguments)
    assert computed[1:] == [("quality", day_start(3), day_start(4))]
    labelled = {w for w, f in zip(table.column("window_start").to_pylist(),
                                  table.column("feature").to_pylist(), strict=True)
                if f == "label"}  # fmt: skip
    assert labelled == {day_start(3)}
    assert same(table, store.quality("m", **arguments))


def test_quality_with_an_empty_window_recomputes_whole(store, computed):
    """A window without rows (day 4, between days 3 and 5) lists every subject of the
    whole analysis, so its rows depend on every other window."""
    store.quality("m", persist=True)
    Days(store).add(5)
    table = store.quality("m", persist=True)
    # days 4 (empty) and 5 are tried alone, hold a gap: the call is recomputed whole
    assert computed[1:] == [("quality", day_start(4), day_start(6)), ("quality", None, None)]
    gap = [r for r in table.to_pylist() if r["window_start"] == day_start(4)]
    assert gap and all(r["n_analysis"] == 0 for r in gap)
    assert same(table, store.quality("m"))
    Days(store).label(5)  # the stored call holds a gap now: whole again
    store.quality("m", persist=True)
    assert computed[3:] == [("quality", day_start(5), day_start(6)), ("quality", None, None)]


def test_a_rolling_reference_recomputes_whole(store, computed):
    arguments = {**DRIFT, "reference": {"previous": 1}}
    store.drift("m", persist=True, **arguments)
    Days(store).add(4)
    table = store.drift("m", persist=True, **arguments)
    assert computed == [("drift", None, None)] * 2
    assert store.sql("SELECT coupled FROM evalstore.metric_history_calls").to_pylist() == [
        {"coupled": True}
    ]
    assert same(table, store.drift("m", **arguments))


def change_reference(store: evalstore.Store) -> None:
    store.log_features(
        "m",
        pa.table({"example_id": ["t-new"], "x": [50.0], "c": ["zz"]}),
        env="training",
    )


def change_registry(store: evalstore.Store) -> None:
    store.register_model("m", "v2", "binary")


def change_macros(store: evalstore.Store) -> None:
    store._context().connection.execute(
        "UPDATE evalstore.meta SET value = 'edited' WHERE key = 'macros_hash'"
    )


@pytest.mark.parametrize("change", [change_reference, change_registry, change_macros])
def test_a_changed_context_recomputes_every_window(store, computed, change):
    store.drift("m", persist=True, **DRIFT)
    before = windows_computed_at(store)
    change(store)
    table = store.drift("m", persist=True, **DRIFT)
    assert computed == [("drift", None, None)] * 2
    after = windows_computed_at(store)
    assert set(after) == set(before)
    assert all(after[s] > before[s] for s in before)
    assert same(table, store.drift("m", **DRIFT))


def test_reinstalling_the_same_macros_changes_nothing(store, computed):
    store.drift("m", persist=True, **DRIFT)
    assert install_macros(store._context().connection, force=True)
    store.drift("m", persist=True, **DRIFT)
    assert computed == [("drift", None, None)]


# ---------------------------------------------------------------------- refusals


def test_refused_calls_leave_the_history_as_it_was(store):
    store.drift("m", persist=True, **DRIFT)
    kept = stored_tables(store)
    with pytest.raises(InvalidParameterError, match="methods"):
        store.drift("m", persist=True, methods=["nope"])
    with pytest.raises(InvalidParameterError, match="unexpected keyword argument 'bogus'"):
        store.drift("m", persist=True, bogus=1)
    with pytest.raises(InvalidParameterError, match="persist=True cannot record thresholds"):
        store.drift("m", persist=True, thresholds={"psi": object()})
    with pytest.raises(UnknownModelError, match="'nope' is not registered"):
        store.drift("nope", persist=True)
    with pytest.raises(UnknownModelError, match="no version 'v9'"):
        store.performance("m", persist=True, version="v9")
    with pytest.raises(InvalidParameterError, match="family='health' cannot be persisted"):
        history.persisted(store._context(), "health", "m", {})
    assert stored_tables(store) == kept


def test_a_failing_refresh_stores_nothing(store, monkeypatch):
    store.drift("m", persist=True, **DRIFT)
    kept = stored_tables(store)
    Days(store).add(4)
    compute = history.FAMILIES["drift"]

    @functools.wraps(compute)
    def failing(ctx, model, *args, **kwargs):
        if kwargs.get("since") is not None:
            raise RuntimeError("disk on fire")
        return compute(ctx, model, *args, **kwargs)

    monkeypatch.setitem(history.FAMILIES, "drift", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.drift("m", persist=True, **DRIFT)
    assert stored_tables(store) == kept


def test_a_read_only_store_refuses_to_persist_and_reads_the_history(open_copy, four_days):
    with open_copy(four_days) as writable:
        stored = writable.drift("m", persist=True, **DRIFT)
        path = writable.path
    with evalstore.open(path, read_only=True) as read_only:
        with pytest.raises(ReadOnlyError, match="read-only"):
            read_only.drift("m", persist=True, **DRIFT)
        assert read_only.history("m").column("value").to_pylist() == (
            stored.column("value").to_pylist()
        )


# ---------------------------------------------------------------------- store.history


@pytest.fixture
def series(store: evalstore.Store) -> dict[str, pa.Table]:
    """Three persisted calls (drift, quality, performance) and their results."""
    return {
        "drift": store.drift("m", persist=True, **DRIFT),
        "quality": store.quality("m", persist=True, features=["x"]),
        "performance": store.performance("m", persist=True, **PERFORMANCE),
    }


def test_history_holds_every_family(store, series):
    rows = store.history("m")
    counts = {f: rows.column("family").to_pylist().count(f) for f in series}
    assert counts == {f: t.num_rows for f, t in series.items()}
    assert rows.column_names == list(history.HISTORY_COLUMNS)


def test_history_filters(store, series):
    drift = store.history("m", family="drift")
    assert drift.num_rows == series["drift"].num_rows
    ks = store.history("m", metric="ks")
    assert set(ks.column("metric").to_pylist()) == {"ks"}
    assert ks.num_rows == series["drift"].column("method").to_pylist().count("ks")
    both = store.history("m", metric=["ks", "accuracy"])
    assert set(both.column("metric").to_pylist()) == {"ks", "accuracy"}
    x = store.history("m", feature="x", family="drift")
    assert set(x.column("subject").to_pylist()) == {"x"}
    assert x.num_rows == series["drift"].column("feature").to_pylist().count("x")
    window = store.history("m", since=day_start(1), until=day_start(3))
    assert set(window.column("window_start").to_pylist()) == {day_start(1), day_start(2)}
    everything = store.history("m")
    v1 = store.history("m", version="v1")
    assert set(v1.column("version").to_pylist()) == {"v1"}
    assert v1.num_rows == everything.column("version").to_pylist().count("v1")
    performance = store.history("m", family="performance", metric="accuracy")
    fresh = [r for r in series["performance"].to_pylist() if r["metric"] == "accuracy"]
    assert performance.column("value").to_pylist() == [r["value"] for r in fresh]
    assert performance.column("labels_complete").to_pylist() == [
        r["labels_complete"] for r in fresh
    ]


def test_history_bounds_and_errors(store, series):
    with pytest.raises(InvalidParameterError, match="more than limit=3 rows"):
        store.history("m", limit=3)
    assert store.history("m", family="performance", limit=8).num_rows == 8
    with pytest.raises(InvalidParameterError, match="limit"):
        store.history("m", limit=history.MAX_HISTORY_ROWS + 1)
    with pytest.raises(InvalidParameterError, match="limit"):
        store.history("m", limit=0)
    with pytest.raises(InvalidParameterError, match="family='health' cannot be persisted"):
        store.history("m", family="health")
    with pytest.raises(InvalidParameterError, match="metric must be a non-empty string"):
        store.history("m", metric=[])
    with pytest.raises(InvalidParameterError, match="since"):
        store.history("m", since="not a time")
    with pytest.raises(UnknownModelError, match="'nope' is not registered"):
        store.history("nope")
    with pytest.raises(UnknownModelError, match="no version 'v9'"):
        store.history("m", version="v9")
