"""Monitor definitions: every refused definition names what is wrong and stores nothing;
versions go up on change; deleting closes open alerts; a learned rule takes its band from
the windows of its learn_period."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from evalstore.errors import InvalidParameterError, UnknownModelError

FIXED = {"type": "fixed", "direction": "above", "value": 0.5}


def _tables(store: Any) -> tuple:
    return tuple(
        store.sql(f"SELECT count(*) AS n FROM evalstore.{t}").column("n")[0].as_py()
        for t in ("monitors", "alerts", "alert_cursors", "metric_history", "metric_history_calls")
    )


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"model": "nope"}, UnknownModelError, "model 'nope' is not registered"),
        ({"family": "compare"}, InvalidParameterError, "family='compare' cannot be monitored"),
        ({"metric": "psx"}, InvalidParameterError, "metric='psx' is not a drift method"),
        (
            {"family": "performance", "metric": "rmse"},
            InvalidParameterError,
            "metric='rmse' is not a performance metric of a binary model",
        ),
        (
            {"family": "quality", "metric": "nan", "subjects": ["c"]},
            InvalidParameterError,
            "metric 'nan' applies to numeric features only",
        ),
        ({"subjects": ["y"]}, InvalidParameterError, "subjects: 'y' is not a feature of model"),
        (
            {"family": "performance", "metric": "accuracy", "subjects": ["v9"]},
            InvalidParameterError,
            "subjects: 'v9' is not a version of model 'm'",
        ),
        (
            {"rule": {"type": "trailing", "k": 0}},
            InvalidParameterError,
            "rule 'trailing': parameter 'k' must be > 0",
        ),
        ({"window": 5000}, InvalidParameterError, "a monitor needs a time interval"),
        ({"window": "banana"}, InvalidParameterError, "window='banana' is not an interval"),
        ({"options": {"colour": 1}}, InvalidParameterError, "drift takes no parameter 'colour'"),
        ({"options": {"window": "1 hour"}}, InvalidParameterError, "'window' is a monitor field"),
        (
            {"rule": {"type": "learned"}},
            InvalidParameterError,
            "rule 'learned' needs learn_period=(start, end)",
        ),
        (
            {"learn_period": ("2024-03-01", "2024-03-05")},
            InvalidParameterError,
            "learn_period is for rule 'learned' only",
        ),
        (
            {"rule": {"type": "seasonal"}, "window": "5 days"},
            InvalidParameterError,
            "window='5 days' must divide the period at least twice",
        ),
        (
            {"rule": {"type": "unsupervised", "method": "share"}},
            InvalidParameterError,
            "'wasserstein' is not one",
        ),
        ({"where": "nosuchcolumn > 1"}, InvalidParameterError, "nosuchcolumn"),
        ({"reference": "yesterday"}, InvalidParameterError, "reference='yesterday'"),
        ({"name": "1st monitor"}, InvalidParameterError, "must start with a letter"),
    ],
)
def test_refused_definitions_name_the_problem_and_store_nothing(
    daily: Any, arguments: dict[str, Any], error: type, message: str
) -> None:
    daily.add(0)
    store = daily.store
    before = _tables(store)
    call = {"name": "mon", "model": "m", "family": "drift", "metric": "wasserstein",
            "rule": FIXED, "subjects": ["x"], **arguments}  # fmt: skip
    with pytest.raises(error, match=_escape(message)):
        store.add_monitor(
            call.pop("name"), call.pop("model"), call.pop("family"), call.pop("metric"),
            call.pop("rule"), **call,
        )  # fmt: skip
    assert _tables(store) == before
    assert store.monitors().num_rows == 0


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_a_name_in_use_is_refused_and_the_first_definition_kept(daily: Any) -> None:
    daily.add(0)
    store = daily.store
    store.add_monitor("mon", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    with pytest.raises(InvalidParameterError, match="monitor 'mon' exists"):
        store.add_monitor("mon", "m", "quality", "nan", FIXED)
    (row,) = store.monitors().to_pylist()
    assert (row["family"], row["metric"], row["subjects"]) == ("drift", "wasserstein", ["x"])


def test_stored_definition_lists_every_rule_default_and_the_call(daily: Any) -> None:
    daily.add(0)
    store = daily.store
    store.add_monitor(
        "q", "m", "quality", "out_of_range", {"type": "trailing"}, window="12 hours",
        where="c = 'a'", options={"max_out_of_range": 0.1},
    )  # fmt: skip
    (row,) = store.monitors("m").to_pylist()
    assert json.loads(row["rule"]) == {
        "type": "trailing", "n": 7, "k": 3.0, "direction": "both", "min_rows": 1,
        "wait_for_labels": True, "fire_after": 1, "resolve_after": 1,
    }  # fmt: skip
    options = json.loads(row["options"])
    assert options["window"] == "12 hours"
    assert options["where"] == "c = 'a'"
    assert options["options"] == {"max_out_of_range": 0.1}
    assert row["subjects"] is None  # '*'
    assert store.monitors("other").num_rows == 0


def test_update_bumps_the_version_unless_only_enabled_changes(daily: Any) -> None:
    daily.add(0)
    store = daily.store
    store.add_monitor("mon", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    assert store.update_monitor("mon", enabled=False)["definition_version"] == 1
    assert store.update_monitor("mon", rule={**FIXED, "value": 0.7})["definition_version"] == 2
    same = store.update_monitor("mon", rule={**FIXED, "value": 0.7})
    assert same["definition_version"] == 2
    (row,) = store.monitors().to_pylist()
    assert (row["definition_version"], row["enabled"]) == (2, False)
    assert json.loads(row["rule"])["value"] == 0.7


def test_a_refused_update_keeps_the_stored_definition(daily: Any) -> None:
    daily.add(0)
    store = daily.store
    store.add_monitor("mon", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    with pytest.raises(InvalidParameterError, match="metric 'chi2' applies to categorical"):
        store.update_monitor("mon", metric="chi2")
    with pytest.raises(InvalidParameterError, match="update_monitor takes no field 'colour'"):
        store.update_monitor("mon", colour="red")
    with pytest.raises(InvalidParameterError, match="monitor 'other' does not exist"):
        store.update_monitor("other", enabled=False)
    (row,) = store.monitors().to_pylist()
    assert (row["metric"], row["definition_version"]) == ("wasserstein", 1)


def test_alerts_record_the_definition_version_that_opened_them(daily: Any) -> None:
    store = daily.store
    daily.add(0, shift=2.0)
    store.add_monitor("mon", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    store.run_monitors(now=daily.start(1))
    store.update_monitor("mon", rule={**FIXED, "value": 0.6})
    daily.add(1)
    store.run_monitors(now=daily.start(2))  # resolves the version-1 episode
    daily.add(2, shift=2.0)
    store.run_monitors(now=daily.start(3))
    rows = store.alerts(monitor="mon").to_pylist()
    assert [(r["state"], r["definition_version"]) for r in rows] == [
        ("firing", 2),
        ("resolved", 1),
    ]


def test_delete_closes_open_alerts_without_notifying_and_forgets_cursors(daily: Any) -> None:
    store = daily.store
    store.add_channel("ops", "webhook", {"url": "http://127.0.0.1:9/hook"})
    daily.add(0, shift=2.0)
    store.add_monitor("mon", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    store.run_monitors(now=daily.start(1))
    assert store.outbox().num_rows == 1  # the firing
    store.delete_monitor("mon")
    (alert,) = store.alerts().to_pylist()
    assert alert["state"] == "resolved"
    assert alert["reason"].endswith("(closed: monitor deleted)")
    assert store.outbox().num_rows == 1
    assert store.sql("SELECT count(*) AS n FROM evalstore.alert_cursors").to_pylist() == [{"n": 0}]
    assert store.monitors().num_rows == 0
    with pytest.raises(InvalidParameterError, match="monitor 'mon' does not exist"):
        store.delete_monitor("mon")


def test_learned_rule_band_is_mean_and_population_sd_of_the_learn_period(daily: Any) -> None:
    store = daily.store
    for d in range(5):
        daily.add(d)
    daily.add(5, shift=0.4)
    store.add_monitor(
        "learned", "m", "drift", "wasserstein", {"type": "learned", "k": 2}, subjects=["x"],
        learn_period=(daily.start(0), daily.start(4)),
    )  # fmt: skip
    fresh = store.drift("m", features=["x"], methods=["wasserstein"])
    values = np.array(fresh.column("value").to_pylist())
    mean, sd = values[:4].mean(), values[:4].std()
    (row,) = store.run_monitors(now=daily.start(6)).to_pylist()
    assert row["lower"] == pytest.approx(mean - 2 * sd)
    assert row["upper"] == pytest.approx(mean + 2 * sd)
    assert row["value"] == pytest.approx(values[5])
    assert row["verdict"] == ("breach" if abs(values[5] - mean) > 2 * sd else "ok")
    assert row["window_start"] == daily.start(5)
    assert row["window_end"] == daily.start(5) + timedelta(days=1)
