"""Health monitors (family ``health``, evalstore.monitors.health_series) on hand-built
data: a latency regression fires on the window it starts, throughput judges only ended
windows, the error rate is errors / predictions, a stream's staleness fires when it
stops and resolves when it resumes (at run time and replayed from commit times), and a
dependency change fires once per changed version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError

T0 = datetime(2024, 3, 1, tzinfo=UTC)
PER_DAY = 200
#: Day the latency of ``v1`` triples in :func:`serving`.
SLOW_FROM = 15


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def latencies(d: int) -> np.ndarray:
    """Day ``d``'s latencies: lognormal around 50 ms, three times slower from SLOW_FROM."""
    rng = np.random.default_rng(d)
    base = rng.lognormal(np.log(50.0), 0.1, PER_DAY)
    return base * (3.0 if d >= SLOW_FROM else 1.0)


def _serving(store: evalstore.Store) -> None:
    store.register_model("m", "v1", "regression")
    for d in range(20):
        count = 50 if d == 9 else PER_DAY
        prediction: list[float | None] = [1.0] * count
        if d == 12:
            prediction[:10] = [None] * 10
        store.log_predictions(
            "m",
            pa.table({"example_id": [f"d{d}_{i}" for i in range(count)],
                      "ts": [day(d) + timedelta(minutes=7 * i) for i in range(count)],
                      "prediction": pa.array(prediction, pa.float64()),
                      "latency_ms": latencies(d)[:count]}),
            version="v1", latency_column="latency_ms",
        )  # fmt: skip


@pytest.fixture
def serving(copy_of: Callable[..., evalstore.Store]) -> evalstore.Store:
    """Model ``m`` (regression, v1): 20 days of PER_DAY predictions (every 7 minutes);
    day 9 has 50 predictions only and day 12 ten failed calls (NULL predictions)."""
    return copy_of("monitors-health-serving", _serving)


def _fixed(value: float, **extra: Any) -> dict[str, Any]:
    return {"type": "fixed", "direction": "above", "value": value, **extra}


def test_a_latency_regression_fires_on_the_window_it_starts(serving: evalstore.Store) -> None:
    rule = {"type": "trailing", "n": 7, "k": 3.0, "direction": "above", "min_rows": 40}
    serving.add_monitor("lat", "m", "health", "latency_p99", rule)
    episodes = serving.backtest_monitor("lat").to_pylist()
    assert len(episodes) == 1
    (episode,) = episodes
    assert episode["subject"] == "v1"
    assert episode["first_window_start"] == episode["fired_window_start"] == day(SLOW_FROM)
    assert episode["fired_at"] == day(SLOW_FROM + 1)  # when the daily window closed
    # the trailing baseline takes the slow days in: the band catches up and it resolves
    assert episode["resolved_at"] is not None
    assert episode["resolved_at"] > day(SLOW_FROM + 1)
    # the judged value is numpy's linear p99 of that day's latencies
    first = serving.backtest_monitor("lat", until=day(SLOW_FROM + 1)).to_pylist()[0]
    expected = float(np.quantile(latencies(SLOW_FROM), 0.99))
    assert first["value"] == pytest.approx(expected, rel=1e-9)
    assert first["state"] == "firing"


def test_the_default_latency_rule_waits_for_a_second_window(serving: evalstore.Store) -> None:
    serving.add_default_monitors("m")
    (episode,) = serving.backtest_monitor("m.health.latency_p99").to_pylist()
    # opened by the window the regression starts, fired by the next one
    assert episode["first_window_start"] == day(SLOW_FROM)
    assert episode["fired_window_start"] == day(SLOW_FROM + 1)
    assert episode["breaching_windows"] >= 2


def test_throughput_judges_ended_windows_and_sees_a_drop(serving: evalstore.Store) -> None:
    rule = {"type": "trailing", "n": 5, "k": 3.0, "direction": "both", "min_rows": 0}
    serving.add_monitor("thr", "m", "health", "throughput", rule)
    (episode,) = serving.backtest_monitor("thr").to_pylist()
    assert episode["fired_window_start"] == day(9)
    assert episode["value"] == pytest.approx(50 / 86_400)
    assert episode["resolved_at"] == day(11)
    # a run in the middle of day 19 judges day 18, the last window that has ended
    (row,) = serving.run_monitors("m", now=day(19.25)).to_pylist()
    assert row["window_start"] == day(18)
    assert row["value"] == pytest.approx(PER_DAY / 86_400)
    # once day 19 has ended, it is judged
    (row,) = serving.run_monitors("m", now=day(20)).to_pylist()
    assert row["window_start"] == day(19)


def test_the_error_rate_is_failed_calls_over_predictions(serving: evalstore.Store) -> None:
    serving.add_monitor("err", "m", "health", "error_rate", _fixed(0.01, min_rows=100))
    (episode,) = serving.backtest_monitor("err").to_pylist()
    assert episode["fired_window_start"] == day(12)
    assert episode["value"] == pytest.approx(10 / PER_DAY)
    assert episode["resolved_at"] == day(14)


def _streams(store: evalstore.Store) -> None:
    store.register_model("m", "v1", "binary", classes=[0, 1])
    commits = [T0, T0 + timedelta(hours=6), T0 + timedelta(hours=12), T0 + timedelta(hours=60)]
    for i, _ in enumerate(commits):
        store.log_features("m", pa.table({"example_id": [f"e{i}"], "ts": [T0], "x": [float(i)]}))
    store.log_labels("m", pa.table({"example_id": ["e0"], "ts": [T0], "label": [1]}))
    con = store._con
    ids = [r[0] for r in con.execute(
        "SELECT batch_id FROM evalstore.batches WHERE kind = 'features' ORDER BY batch_id"
    ).fetchall()]  # fmt: skip
    for batch, at in zip(ids, commits, strict=True):
        con.execute("UPDATE evalstore.batches SET committed_at = ? WHERE batch_id = ?", [at, batch])
    con.execute("UPDATE evalstore.batches SET committed_at = ? WHERE kind = 'labels'", [T0])


@pytest.fixture
def streams(copy_of: Callable[..., evalstore.Store]) -> evalstore.Store:
    """Model ``m`` with serving feature batches committed (as the audit trail says) at
    T0, T0 + 6 h and T0 + 12 h, then nothing until T0 + 60 h; one label batch at T0."""
    return copy_of("monitors-health-streams", _streams)


def test_staleness_fires_when_a_stream_stops_and_resolves_when_it_resumes(
    streams: evalstore.Store,
) -> None:
    streams.add_monitor(
        "stale", "m", "health", "freshness", _fixed(24.0), subjects=["features/serving"]
    )

    def run(hours: float) -> dict[str, Any]:
        (row,) = streams.run_monitors("m", now=T0 + timedelta(hours=hours)).to_pylist()
        return row

    first = run(20)  # 8 h since the batch of T0 + 12 h
    assert (first["value"], first["verdict"], first["transitions"]) == (8.0, "ok", [])
    assert (first["window_start"], first["window_end"]) == (day(0), day(1))
    stopped = run(40)  # 28 h: the window holding now (day 1) breaches
    assert (stopped["value"], stopped["transitions"], stopped["state"]) == (
        28.0,
        ["fired"],
        "firing",
    )
    assert stopped["window_start"] == day(1)
    again = run(47)  # same window, still stale: not raised twice
    assert again["transitions"] == ["updated"]
    resumed = run(61)  # the batch of T0 + 60 h
    assert (resumed["value"], resumed["transitions"]) == (1.0, ["resolved"])
    alerts = streams.alerts(model="m").to_pylist()
    assert [(a["subject"], a["state"]) for a in alerts] == [("features/serving", "resolved")]


def test_staleness_is_replayed_from_commit_times(streams: evalstore.Store) -> None:
    monitor = {"name": "stale", "model": "m", "family": "health", "metric": "freshness",
               "rule": _fixed(24.0), "subjects": "*"}  # fmt: skip
    episodes = streams.backtest_monitor(monitor, until=day(3)).to_pylist()
    # each window measured at its end: day 0 12 h, day 1 36 h (breach), day 2 12 h;
    # labels, committed once at T0, are stale from day 1 on
    found = {e["subject"]: e for e in episodes}
    assert set(found) == {"features/serving", "labels"}
    serving = found["features/serving"]
    assert serving["fired_window_start"] == day(1)
    assert serving["value"] == 36.0
    assert serving["resolved_at"] == day(3)
    labels = found["labels"]
    assert (labels["fired_window_start"], labels["resolved_at"]) == (day(1), None)
    assert labels["value"] == 72.0


def test_a_dependency_change_fires_once_per_version(empty_store: evalstore.Store) -> None:
    with empty_store as store:
        for version, deployed, dependencies in (
            ("v1", 0, {"numpy": "1.26"}),
            ("v2", 5, {"numpy": "2.0"}),  # changed
            ("v3", 8, {"numpy": "2.0"}),  # same as v2
            ("v4", 12, {"numpy": "2.0", "scipy": "1.13"}),  # added a package
        ):
            store.register_model(
                "m", version, "binary", classes=[0, 1], deployed_at=day(deployed),
                dependencies=dependencies,
            )  # fmt: skip
        store.add_monitor("deps", "m", "health", "dependency_changed", _fixed(0.0))
        episodes = store.backtest_monitor("deps", until=day(20)).to_pylist()
        assert [(e["subject"], e["fired_window_start"], e["resolved_at"]) for e in episodes] == [
            ("v2", day(5), day(7)),
            ("v4", day(12), day(14)),
        ]
        # at run time: the change of v4 fires once, resolves the next day; v2's old
        # change is not raised by a first run (it is not current), v3 never
        rows = {r["subject"]: r for r in store.run_monitors("m", now=day(12.5)).to_pylist()}
        assert rows["v4"]["transitions"] == ["fired"]
        assert rows["v2"]["transitions"] == rows["v3"]["transitions"] == []
        assert (rows["v2"]["value"], rows["v3"]["value"]) == (0.0, 0.0)
        later = {r["subject"]: r for r in store.run_monitors("m", now=day(12.8)).to_pylist()}
        assert later["v4"]["transitions"] == ["updated"]
        next_day = {r["subject"]: r for r in store.run_monitors("m", now=day(13.2)).to_pylist()}
        # (the cursor's window, day 12, is re-judged first: still a breach, no new alert)
        assert next_day["v4"]["transitions"] == ["updated", "resolved"]
        alerts = store.alerts(model="m").to_pylist()
        assert [(a["subject"], a["state"]) for a in alerts] == [("v4", "resolved")]


def _binary(store: evalstore.Store) -> None:
    store.register_model("m", "v1", "binary", classes=[0, 1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "latency_p42"}, "metric='latency_p42' is not a health metric"),
        ({"metric": "freshness", "subjects": ["features/live"]},
         "'features/live' is not an ingest stream"),
        ({"subjects": ["v9"]}, "'v9' is not a version of this model"),
        ({"reference": "training"}, "health monitors take no reference"),
        ({"where": "x > 1"}, "health monitors take no where"),
        ({"metric": "freshness", "version": "v1"}, "freshness is per ingest stream"),
        ({"options": {"as_of": "2024-01-01"}}, "health monitors take none"),
    ],
)  # fmt: skip
def test_refused_health_definitions_store_nothing(
    copy_of: Callable[..., evalstore.Store], fields: dict[str, Any], message: str
) -> None:
    with copy_of("monitors-health-binary", _binary) as store:
        arguments = {"metric": "latency_p99", "rule": _fixed(100.0), **fields}
        metric, rule = arguments.pop("metric"), arguments.pop("rule")
        with pytest.raises(InvalidParameterError, match=message):
            store.add_monitor("bad", "m", "health", metric, rule, **arguments)
        assert store.monitors().num_rows == 0
