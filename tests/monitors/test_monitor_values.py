"""The latest value of every monitor (``evalstore.monitor_values``), written by each run,
and ``evalstore_monitor_value`` on ``/metrics`` for every family, health included."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import evalstore
from server import create_app

T0 = datetime(2024, 3, 1, tzinfo=UTC)
#: Latencies (ms) of day 0 and day 1: p95 (linear) 48 and 290.
LATENCIES = ([10.0, 20.0, 30.0, 40.0, 50.0], [100.0, 200.0, 300.0])


def _monitored(store: evalstore.Store) -> None:
    store.register_model("m", "v1", "binary")
    training = {"example_id": ["t0", "t1"], "ts": [T0 - timedelta(days=5)] * 2, "x": [0.0, 1.0]}
    store.log_features("m", pa.table(training), env="training")
    for day, latencies in enumerate(LATENCIES):
        ids = [f"d{day}_{i}" for i in range(len(latencies))]
        ts = [T0 + timedelta(days=day, hours=i) for i in range(len(latencies))]
        x = [math.nan if day == 1 and i == 0 else 0.5 for i in range(len(latencies))]
        store.log_features("m", pa.table({"example_id": ids, "ts": ts, "x": x}))
        store.log_predictions(
            "m", pa.table({"example_id": ids, "ts": ts, "score": [0.5] * len(ids),
                           "latency_ms": latencies}),
            version="v1", latency_column="latency_ms",
        )  # fmt: skip
    store.add_monitor("slow", "m", "health", "latency_p95",
                      {"type": "fixed", "direction": "above", "value": 250.0})  # fmt: skip
    any_nan = {"type": "fixed", "direction": "above", "value": 0}
    store.add_monitor("x_nan", "m", "quality", "nan", any_nan, subjects=["x"])


@pytest.fixture
def store(copy_of: Callable[..., evalstore.Store]) -> evalstore.Store:
    """Model ``m``: two days of predictions with known latencies, features ``x`` with a
    NaN on day 1; a health monitor of latency p95 and a quality monitor of NaN counts."""
    return copy_of("monitors-values", _monitored)


def values(store: evalstore.Store) -> dict[tuple[str, str], dict]:
    rows = store.sql("SELECT * FROM evalstore.monitor_values ORDER BY monitor, subject")
    return {(r["monitor"], r["subject"]): r for r in rows.to_pylist()}


def test_a_run_records_each_subjects_latest_finite_value(store):
    assert values(store) == {}
    now = T0 + timedelta(days=1, hours=12)
    store.run_monitors("m", now=now)
    found = values(store)
    assert sorted(found) == [("slow", "v1"), ("x_nan", "x")]
    slow = found[("slow", "v1")]
    assert slow["value"] == pytest.approx(290.0)  # 200 + 0.9 * (300 - 200)
    assert (slow["window_start"], slow["window_end"]) == (T0 + timedelta(days=1),
                                                          T0 + timedelta(days=2))  # fmt: skip
    assert (slow["lower"], slow["upper"], slow["verdict"]) == (None, 250.0, "breach")
    assert slow["computed_at"] == now and slow["model"] == "m"
    nan = found[("x_nan", "x")]
    day_1 = T0 + timedelta(days=1)
    assert (nan["value"], nan["verdict"], nan["window_start"]) == (1.0, "breach", day_1)


def test_values_are_replaced_by_each_run_and_kept_by_a_failed_one(store):
    store.run_monitors("m", now=T0 + timedelta(days=1, hours=12))
    store.update_monitor("slow", rule={"type": "fixed", "direction": "above", "value": 400.0})
    later = T0 + timedelta(days=1, hours=13)
    store.run_monitors("m", names=["slow"], now=later)
    slow = values(store)[("slow", "v1")]
    assert (slow["upper"], slow["verdict"], slow["computed_at"]) == (400.0, "ok", later)
    # a run that fails is rolled back: the values of the last good run stay
    store.sql("UPDATE evalstore.monitors SET subjects = ['gone'] WHERE name = 'x_nan'")
    [row] = store.run_monitors("m", names=["x_nan"], now=later).to_pylist()
    assert row["verdict"] == "error"
    assert values(store)[("x_nan", "x")]["computed_at"] == T0 + timedelta(days=1, hours=12)
    store.delete_monitor("x_nan")
    assert sorted(values(store)) == [("slow", "v1")]


def test_metrics_exports_the_value_of_every_monitor_health_included(store):
    store.run_monitors("m", now=T0 + timedelta(days=1, hours=12))
    with TestClient(create_app(store, monitor_every=0)) as client:
        text = client.get("/metrics").text
    samples = {
        (s.labels["monitor"], s.labels["subject"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "evalstore_monitor_value"
    }
    assert samples == {("slow", "v1"): pytest.approx(290.0), ("x_nan", "x"): 1.0}
