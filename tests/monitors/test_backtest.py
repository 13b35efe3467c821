"""backtest_monitor: the episodes a run after each window would have recorded, from the
stored data, writing nothing; saved or unsaved definitions; since/until."""

from __future__ import annotations

from typing import Any

import pytest

from evalstore.errors import InvalidParameterError

#: day -> shift of x: two episodes (days 3-4 and 7) among clean days.
SHIFTS = {3: 2.0, 4: 2.0, 7: 2.0}
RULES = [
    {"type": "fixed", "direction": "above", "value": 0.5},
    {"type": "fixed", "direction": "above", "value": 0.5, "fire_after": 2, "resolve_after": 2},
    {"type": "trailing", "n": 3, "k": 3, "direction": "above"},
]
TABLES = ("monitors", "alerts", "alert_cursors", "outbox", "metric_history",
          "metric_history_calls", "metric_history_windows")  # fmt: skip


def _counts(store: Any) -> dict[str, int]:
    return {
        t: store.sql(f"SELECT count(*) AS n FROM evalstore.{t}").column("n")[0].as_py()
        for t in TABLES
    }


@pytest.mark.parametrize("rule", RULES, ids=["fixed", "hysteresis", "trailing"])
def test_backtest_equals_a_run_after_each_window(daily: Any, rule: dict[str, Any]) -> None:
    store = daily.store
    store.add_monitor("x_w", "m", "drift", "wasserstein", rule, subjects=["x"])
    for d in range(10):
        daily.add(d, shift=SHIFTS.get(d, 0.0))
        store.run_monitors(now=daily.start(d + 1))  # each window judged when it ends
    before = _counts(store)
    episodes = store.backtest_monitor("x_w").to_pylist()
    assert _counts(store) == before  # writes nothing
    recorded = sorted(store.alerts().to_pylist(), key=lambda a: a["first_window_start"])
    assert len(episodes) == len(recorded) > 0
    for episode, alert in zip(episodes, recorded, strict=True):
        assert episode["subject"] == alert["subject"] == "x"
        assert episode["state"] == alert["state"]
        assert episode["first_window_start"] == alert["first_window_start"]
        assert episode["last_window_start"] == alert["window_start"]
        assert episode["fired_at"] == alert["fired_at"]
        assert episode["resolved_at"] == alert["resolved_at"]
        assert episode["value"] == pytest.approx(alert["value"])
        assert episode["reason"] == alert["reason"]


def test_fixed_rule_episodes_are_the_shifted_days(daily: Any) -> None:
    store = daily.store
    for d in range(10):
        daily.add(d, shift=SHIFTS.get(d, 0.0))
    definition = {"model": "m", "family": "drift", "metric": "wasserstein",
                  "rule": RULES[0], "subjects": ["x"]}  # fmt: skip
    episodes = store.backtest_monitor(definition).to_pylist()  # unsaved
    assert [
        (e["first_window_start"], e["fired_at"], e["resolved_at"], e["breaching_windows"])
        for e in episodes
    ] == [
        (daily.start(3), daily.start(4), daily.start(6), 2),
        (daily.start(7), daily.start(8), daily.start(9), 1),
    ]
    assert store.monitors().num_rows == 0
    # windows of days 5 to 7: the second episode has not resolved by the end
    late = store.backtest_monitor(definition, since=daily.start(5), until=daily.start(8))
    assert late.column("first_window_start").to_pylist() == [daily.start(7)]
    assert late.column("state").to_pylist() == ["firing"]
    assert late.column("resolved_at").to_pylist() == [None]


def test_backtest_refuses_bad_input(daily: Any) -> None:
    store = daily.store
    daily.add(0)
    with pytest.raises(InvalidParameterError, match="monitor 'nope' does not exist"):
        store.backtest_monitor("nope")
    with pytest.raises(InvalidParameterError, match="needs family, metric, rule"):
        store.backtest_monitor({"model": "m"})
    with pytest.raises(InvalidParameterError, match="metric='psx' is not a drift method"):
        store.backtest_monitor({"model": "m", "family": "drift", "metric": "psx", "rule": RULES[0]})
    store.add_monitor("x_w", "m", "drift", "wasserstein", RULES[0], subjects=["x"])
    with pytest.raises(InvalidParameterError, match="must be earlier than until"):
        store.backtest_monitor("x_w", since=daily.start(3), until=daily.start(2))
