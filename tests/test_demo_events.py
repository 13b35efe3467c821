"""The demo's default monitors, backtested, find the scenario's injected events
(evalstore.demo.events): first-alert days, delays and false-alert counts as the README's
table shows them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import evalstore
from evalstore.demo.events import EVENTS, backtest_defaults, event_table, false_alerts
from evalstore.demo.run import build_store
from evalstore.demo.scenario import credit_default_scenario
from tests.conftest import copy_store

START = credit_default_scenario(days=1, rows_per_day=10, training_rows=10).start


def _build(store: evalstore.Store) -> None:
    build_store(store, credit_default_scenario())


@pytest.fixture(scope="module")
def backtest(template: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = template("demo-scenario", _build)
    directory = tmp_path_factory.mktemp("demo-events")
    with evalstore.open(copy_store(path, directory)) as store:
        made = store.add_default_monitors("credit_default")
        episodes = backtest_defaults(store, made.column("name").to_pylist(), START)
        yield made, episodes


@pytest.mark.slow  # the module fixture builds the 60-day demo and backtests it
def test_every_event_is_found_in_time(backtest: Any) -> None:
    _, episodes = backtest
    rows = {(r["event"], r["subject"]): r for r in event_table(episodes, START).to_pylist()}
    assert len(rows) == sum(len(e.subjects) for e in EVENTS) == 11
    dependency = rows.pop(("dependency change", "v2"))
    found = {key[1]: (r["first_alert"], r["monitor"]) for key, r in rows.items()}
    # v2 is deployed on day 30 with other numpy and scikit-learn versions: one alert
    assert (dependency["first_alert"], dependency["monitor"]) == (30, "health.dependency_changed")
    assert (dependency["episodes"], dependency["false_before"]) == (1, 0)
    # abrupt events and corrupted values: the day they start, by the expected family
    assert found["utilization"] == (35, "drift.wasserstein")
    assert found["channel"] == (40, "drift.js")
    assert found["v1"] == found["v2"] == (45, "performance.roc_auc")
    assert found["debt_to_income"] == (50, "quality.nan")
    assert found["age"][0] == 52
    assert found["credit_limit"] == (53, "quality.posinf")
    assert found["employment"][0] == 55
    # the gradual drift crosses the normed Wasserstein threshold 0.1 after a week
    assert 25 <= found["income"][0] <= 32
    assert found["income"][1] == "drift.wasserstein"
    assert found["transaction_amount"][0] <= 2
    for row in rows.values():
        assert row["delay"] == row["first_alert"] - row["injected"]
        assert row["false_before"] == 0
    # hysteresis (resolve_after 3) keeps the gradual drift one episode
    assert rows[("income gradual drift", "income")]["episodes"] == 1


@pytest.mark.slow  # the module fixture builds the 60-day demo and backtests it
def test_no_false_alerts(backtest: Any) -> None:
    _, episodes = backtest
    false = false_alerts(episodes, START)
    assert false == {"total": 0, "clean_period": 0, "clean_until": 20, "examples": []}


@pytest.mark.slow  # the module fixture builds the 60-day demo and backtests it
def test_the_quality_monitors_see_each_corruption_once(backtest: Any) -> None:
    _, episodes = backtest
    fired = {
        (r["monitor"].split(".", 1)[1], r["subject"], (r["fired_window_start"] - START).days)
        for r in episodes.to_pylist()
        if r["monitor"].startswith("credit_default.quality.")
    }
    assert fired == {
        ("quality.nan", "debt_to_income", 50),
        ("quality.out_of_range", "age", 52),
        ("quality.posinf", "credit_limit", 53),
        ("quality.unseen", "employment", 55),
    }


def test_false_alerts_are_counted() -> None:
    """A hand-made episode on a subject without an event, and one before its subject's
    event, are false alerts; one after its event is not."""
    import pyarrow as pa

    from evalstore.monitors.backtest import _SCHEMA

    def episode(subject: str, day: int) -> dict[str, Any]:
        from datetime import timedelta

        at = START + timedelta(days=day)
        return {"monitor": "m.drift.js", "subject": subject, "state": "resolved",
                "first_window_start": at, "fired_window_start": at}  # fmt: skip

    table = pa.Table.from_pylist(
        [episode("region", 3), episode("income", 10), episode("income", 30)], schema=_SCHEMA
    )
    assert false_alerts(table, START)["total"] == 2
    assert false_alerts(table, START)["clean_period"] == 2
    income = next(r for r in event_table(table, START).to_pylist() if r["subject"] == "income")
    assert (income["first_alert"], income["delay"], income["false_before"]) == (30, 10, 1)
