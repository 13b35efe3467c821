"""Skew as a monitor family: skew_windows against hand-computed counts, runs, backtests,
definition errors and the default monitor."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError
from evalstore.metrics.skew import WINDOW_COLUMNS, skew_windows

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
ABOVE_HALF = {"type": "fixed", "direction": "above", "value": 0.5}


def _pairs(store: evalstore.Store) -> None:
    store.register_model("m", "v1", "binary")
    store.log_features(
        "m",
        pa.table({"example_id": [f"e{i}" for i in range(6)], "ts": [T0 - 5 * DAY] * 6,
                  "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "c": ["a", "a", "b", "b", "c", "c"]}),
        env="training",
    )  # fmt: skip
    hour = timedelta(hours=1)
    store.log_features(
        "m",
        pa.table({"example_id": ["e0", "e1", "e2", "e3", "e4", "e5", "u9"],
                  "ts": [T0 + hour, T0 + 2 * hour, T0 + 3 * hour, T0 + DAY + hour,
                         T0 + DAY + 2 * hour, T0 + DAY + 3 * hour, T0 + hour],
                  "x": pa.array([1.0, 2.5, None, 4.0, 5.0 + 1e-9, 9.0, 7.0], pa.float64()),
                  "c": ["a", "z", "b", "b", "c", "c", "q"]}),
    )  # fmt: skip


@pytest.fixture
def store(copy_of: Callable[..., evalstore.Store]) -> evalstore.Store:
    """Training e0..e5; serving e0..e2 on day 0 and e3..e5 on day 1 (and u9, never
    trained on). Day 0: x matches, differs by 0.5, is NULL online; c matches, differs,
    matches. Day 1: x matches, matches within the tolerance, differs by 3; c matches."""
    return copy_of("monitors-skew-pairs", _pairs)


def test_skew_windows_counts_pairs_by_serving_time(store):
    table = skew_windows(store._context(), "m")
    assert table.column_names == list(WINDOW_COLUMNS)
    rows = [
        (r["window_start"], r["feature"], r["n_compared"], r["n_mismatch"], r["n_null_mismatch"],
         r["share_mismatch"], r["max_abs_diff"])
        for r in table.to_pylist()
    ]  # fmt: skip
    assert rows == [
        (T0, "c", 3, 1, 0, pytest.approx(1 / 3), None),
        (T0, "x", 3, 2, 1, pytest.approx(2 / 3), 0.5),
        (T0 + DAY, "c", 3, 0, 0, 0.0, None),
        (T0 + DAY, "x", 3, 1, 0, pytest.approx(1 / 3), 3.0),
    ]
    assert table.column("window_end").to_pylist() == [T0 + DAY] * 2 + [T0 + 2 * DAY] * 2
    # the windows add up to store.skew's whole-period counts
    whole = {r["feature"]: r["n_mismatch"] for r in store.skew("m", method=None).to_pylist()}
    assert whole == {"x": 3, "c": 1}


def test_skew_windows_options(store):
    ctx = store._context()
    later = skew_windows(ctx, "m", since=T0 + DAY, features=["x"])
    assert later.column("n_mismatch").to_pylist() == [1]
    hourly = skew_windows(ctx, "m", window="1 hour", until=T0 + DAY, features=["x"])
    assert hourly.column("window_start").to_pylist() == [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    assert hourly.column("n_mismatch").to_pylist() == [0, 1, 1]
    loose = skew_windows(ctx, "m", tolerance=0.6, features=["x"])  # 0.5 now matches
    assert loose.column("n_mismatch").to_pylist() == [1, 1]
    with pytest.raises(InvalidParameterError, match="window='often' is not an interval"):
        skew_windows(ctx, "m", window="often")
    with pytest.raises(InvalidParameterError, match="skew windows are time intervals"):
        skew_windows(ctx, "m", window=100)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"since=.* must be earlier than until="):
        skew_windows(ctx, "m", since=T0 + DAY, until=T0)


def test_a_skew_monitor_runs_and_backtests_on_its_windows(store):
    store.add_monitor("skew", "m", "skew", "share_mismatch", ABOVE_HALF)
    run = store.run_monitors("m", now=T0 + DAY + timedelta(hours=12)).to_pylist()
    found = {r["subject"]: (r["window_start"], r["value"], r["verdict"]) for r in run}
    assert found == {"c": (T0 + DAY, 0.0, "ok"), "x": (T0 + DAY, pytest.approx(1 / 3), "ok")}
    [episode] = store.backtest_monitor("skew").to_pylist()
    assert (episode["subject"], episode["first_window_start"], episode["fired_at"],
            episode["resolved_at"]) == ("x", T0, T0 + DAY, T0 + 2 * DAY)  # fmt: skip
    assert episode["value"] == pytest.approx(2 / 3)
    above_1 = {"type": "fixed", "direction": "above", "value": 1.0}
    store.add_monitor("diff", "m", "skew", "max_abs_diff", above_1, subjects=["x"])
    [row] = store.run_monitors("m", names=["diff"], now=T0 + 2 * DAY).to_pylist()
    assert (row["value"], row["verdict"], row["transitions"]) == (3.0, "breach", ["fired"])
    store.add_monitor("share", "m", "skew", "share_mismatch",
                      {"type": "unsupervised", "method": "share", "threshold": 0.5},
                      subjects=["x"], options={"since": T0.isoformat()})  # fmt: skip
    [episode] = store.backtest_monitor("share").to_pylist()
    assert (episode["fired_window_start"], episode["resolved_at"]) == (T0, T0 + 2 * DAY)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "psi"}, "not a skew metric; choose from share_mismatch"),
        ({"metric": "max_abs_diff", "subjects": ["c"]}, "applies to numeric features only"),
        ({"subjects": ["nope"]}, "'nope' is not a feature of model 'm'"),
        ({"reference": "training"}, "skew monitors take no reference"),
        ({"options": {"bins": 3}}, "skew takes no parameter 'bins'"),
        ({"options": {"tolerance": -1}}, "tolerance=-1 must be a finite number >= 0"),
        ({"window": 5000}, "a monitor needs a time interval"),
        ({"metric": "n_mismatch",
          "rule": {"type": "unsupervised", "method": "share", "threshold": 0.1}},
         "'n_mismatch' is not one"),
    ],
)  # fmt: skip
def test_skew_definitions_are_checked(store, changes, message):
    fields = {"metric": "share_mismatch", "rule": ABOVE_HALF, **changes}
    metric, rule = fields.pop("metric"), fields.pop("rule")
    with pytest.raises(InvalidParameterError, match=message):
        store.add_monitor("bad", "m", "skew", metric, rule, **fields)
    assert store.monitors().num_rows == 0


def test_the_defaults_watch_skew_only_when_examples_are_in_both_envs(store, empty_store):
    created = {r["name"]: r for r in store.add_default_monitors("m").to_pylist()}
    skew = created["m.skew.share_mismatch"]
    assert (skew["family"], skew["subjects"], skew["change"]) == ("skew", None, "created")
    assert '"value": 0.0' in skew["rule"] and '"direction": "above"' in skew["rule"]
    alone = empty_store
    try:
        alone.register_model("n", "v1", "binary")
        alone.log_features("n", pa.table({"example_id": ["t"], "x": [1.0]}), env="training")
        alone.log_features("n", pa.table({"example_id": ["s"], "ts": [T0], "x": [math.pi]}))
        names = alone.add_default_monitors("n").column("name").to_pylist()
        assert not [n for n in names if ".skew." in n] and "n.drift.wasserstein" in names
    finally:
        alone.close()
