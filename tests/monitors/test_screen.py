"""The invalid-value screen (the monitor loop's fast path): which monitors new serving rows
trigger, against hand-chosen training ranges and categories."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import evalstore
from evalstore.monitors import catalog
from evalstore.monitors.screen import Screen, is_fast

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ABOVE_0 = {"type": "fixed", "direction": "above", "value": 0}
SHARE = {"type": "unsupervised", "method": "share", "threshold": 0.0}


def _monitored(store: evalstore.Store) -> None:
    store.register_model("m", "v1", "binary")
    store.log_features(
        "m",
        pa.table({"example_id": ["t0", "t1", "t2", "t3"], "ts": [T0 - timedelta(days=2)] * 4,
                  "x": [0.0, 10.0, 5.0, math.nan], "c": ["a", "b", "a", None]}),
        env="training",
    )  # fmt: skip
    log(store, 0, x=5.0, c="a")
    store.add_monitor("x_range", "m", "quality", "out_of_range", SHARE, subjects=["x"])
    store.add_monitor("x_nan", "m", "quality", "nan", ABOVE_0, subjects=["x"])
    store.add_monitor("x_inf", "m", "quality", "posinf", ABOVE_0, subjects=["x"])
    store.add_monitor("x_neginf", "m", "quality", "neginf", ABOVE_0, subjects=["x"])
    store.add_monitor("c_unseen", "m", "quality", "unseen", SHARE, subjects=["c"])
    store.add_monitor("x_psi", "m", "drift", "psi", ABOVE_0, subjects=["x"])


@pytest.fixture
def store(copy_of: Callable[..., evalstore.Store]) -> evalstore.Store:
    """Model ``m``: training ``x`` in [0, 10] (and a NaN), ``c`` in {a, b}; one monitor of
    each invalid-value check and one drift monitor; one clean serving row."""
    return copy_of("monitors-screen", _monitored)


def log(store: evalstore.Store, i: int, **values: object) -> None:
    """One serving row ``s<i>`` at ``T0 + i`` minutes with ``values``."""
    x = values.get("x", 5.0)
    c = values.get("c", "a")
    store.log_features("m", pa.table({"example_id": [f"s{i}"], "ts": [T0 + timedelta(minutes=i)],
                                      "x": pa.array([x], pa.float64()),
                                      "c": pa.array([c], pa.string())}))  # fmt: skip


def check(screen: Screen, store: evalstore.Store) -> list[str]:
    return screen.check(store.connection, "m", catalog.stored(store.connection, "m"))


def test_only_invalid_value_quality_monitors_are_fast(store):
    fast = {m.name for m in catalog.stored(store.connection, "m") if is_fast(m)}
    assert fast == {"x_range", "x_nan", "x_inf", "x_neginf", "c_unseen"}
    store.update_monitor("x_nan", enabled=False)
    assert not is_fast(catalog.get(store.connection, "x_nan"))


def test_each_check_triggers_its_monitor_on_new_rows_only(store):
    screen = Screen()
    assert check(screen, store) == []  # the clean row of the fixture
    assert check(screen, store) == []  # nothing new
    log(store, 1, x=10.5)
    assert check(screen, store) == ["x_range"]
    assert check(screen, store) == []  # that batch was screened
    log(store, 2, x=math.nan)
    log(store, 3, x=-math.inf)
    assert check(screen, store) == ["x_nan", "x_neginf"]
    log(store, 4, x=math.inf, c="z")
    assert check(screen, store) == ["c_unseen", "x_inf"]  # in the order given (by name)
    log(store, 5, x=-0.5, c=None)  # below the range; a NULL category is not unseen
    assert check(screen, store) == ["x_range"]


def test_the_reference_bounds_are_inclusive_and_follow_new_training_rows(store):
    screen = Screen()
    check(screen, store)
    log(store, 1, x=0.0, c="b")
    log(store, 2, x=10.0)
    assert check(screen, store) == []  # the training min and max are in range
    log(store, 3, x=12.0, c="z")
    assert check(screen, store) == ["c_unseen", "x_range"]
    # new training rows widen the range and add the category: read again
    store.log_features("m", pa.table({"example_id": ["t9"], "ts": [T0 - timedelta(days=1)],
                                      "x": [20.0], "c": ["z"]}), env="training")  # fmt: skip
    log(store, 4, x=19.0, c="z")
    assert check(screen, store) == []
    log(store, 5, x=20.5)
    assert check(screen, store) == ["x_range"]


def test_monitors_the_screen_cannot_judge_exactly_run_on_any_new_row(store):
    store.add_monitor("x_range_where", "m", "quality", "out_of_range", SHARE,
                      subjects=["x"], where="x > 1")  # fmt: skip
    store.add_monitor("x_range_window", "m", "quality", "out_of_range", SHARE,
                      subjects=["x"], reference=(T0 - timedelta(days=3), T0))  # fmt: skip
    screen = Screen()
    assert check(screen, store) == ["x_range_where", "x_range_window"]
    log(store, 1, x=5.0)
    assert check(screen, store) == ["x_range_where", "x_range_window"]
    assert check(screen, store) == []


def test_a_forgotten_model_is_screened_again_from_its_first_row(store):
    screen = Screen()
    log(store, 1, x=11.0)
    assert check(screen, store) == ["x_range"]
    assert check(screen, store) == []
    screen.forget("m")
    assert check(screen, store) == ["x_range"]
