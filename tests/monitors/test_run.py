"""run_monitors: an alert fires once, is not raised again, resolves; half-labelled
windows are pending; a failing monitor keeps the others running and leaves its own state
untouched; a real webhook receiver gets the notifications."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest

from evalstore.monitors import alerts

FIXED = {"type": "fixed", "direction": "above", "value": 0.5}


def _count(store: Any, table: str) -> int:
    return store.sql(f"SELECT count(*) AS n FROM evalstore.{table}").column("n")[0].as_py()


def test_fires_once_is_not_raised_again_and_resolves(daily: Any) -> None:
    store = daily.store
    store.add_channel("ops", "webhook", {"url": "http://127.0.0.1:9/hook"})
    store.add_monitor("x_w", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    daily.add(0)
    (row,) = store.run_monitors(now=daily.start(1)).to_pylist()
    assert (row["verdict"], row["transitions"], row["state"]) == ("ok", [], None)
    daily.add(1, shift=2.0)
    (row,) = store.run_monitors(now=daily.start(2)).to_pylist()
    assert (row["verdict"], row["transitions"], row["state"]) == ("breach", ["fired"], "firing")
    assert row["window_start"] == daily.start(1)
    assert row["upper"] == 0.5
    alert_id = row["alert_id"]
    # the same windows again, and one more breaching day: one episode, one notification
    (again,) = store.run_monitors(now=daily.start(2) + timedelta(minutes=5)).to_pylist()
    assert again["transitions"] == ["updated"]
    daily.add(2, shift=2.0)
    (row,) = store.run_monitors(now=daily.start(3)).to_pylist()
    assert (row["alert_id"], row["state"]) == (alert_id, "firing")
    assert row["transitions"] == ["updated", "updated"]
    assert _count(store, "alerts") == 1
    assert store.outbox().column("change").to_pylist() == ["fired"]
    daily.add(3)
    (row,) = store.run_monitors(now=daily.start(4)).to_pylist()
    # the cursor's window (day 2) is judged again, then day 3 resolves the episode
    assert row["transitions"] == ["updated", "resolved"]
    assert (row["verdict"], row["state"]) == ("ok", "resolved")
    (alert,) = store.alerts().to_pylist()
    assert alert["state"] == "resolved"
    assert alert["first_window_start"] == daily.start(1)
    assert alert["window_start"] == daily.start(2)  # the latest breaching window
    assert alert["fired_at"] == daily.start(2)
    assert alert["resolved_at"] == daily.start(4)
    assert store.outbox().column("change").to_pylist() == ["resolved", "fired"]
    (monitor,) = store.monitors().to_pylist()
    assert monitor["last_run"] == daily.start(4)
    assert monitor["last_error"] is None


def test_runs_reuse_the_metric_history(daily: Any) -> None:
    store = daily.store
    store.add_monitor("x_w", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    for d in range(3):
        daily.add(d)
    store.run_monitors(now=daily.start(3))
    computed = store.sql(
        "SELECT window_start, computed_at FROM evalstore.metric_history ORDER BY 1"
    ).to_pylist()
    assert len(computed) == 3
    daily.add(3)
    store.run_monitors(now=daily.start(4))
    after = store.sql(
        "SELECT window_start, computed_at FROM evalstore.metric_history ORDER BY 1"
    ).to_pylist()
    assert after[:3] == computed  # untouched windows read back, not recomputed
    assert after[3]["window_start"] == daily.start(3)


def test_a_new_monitor_starts_from_the_current_window_not_old_episodes(daily: Any) -> None:
    store = daily.store
    daily.add(0, shift=2.0)  # an old episode the new monitor does not raise
    daily.add(1)
    daily.add(2)
    store.add_monitor("x_w", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    (row,) = store.run_monitors(now=daily.start(3)).to_pylist()
    assert (row["verdict"], row["transitions"]) == ("ok", [])
    assert _count(store, "alerts") == 0
    assert len(store.backtest_monitor("x_w")) == 1  # the backtest shows it


def test_half_labelled_windows_are_pending_then_fire(daily: Any) -> None:
    store = daily.store
    store.add_channel("ops", "webhook", {"url": "http://127.0.0.1:9/hook"})
    rule = {"type": "fixed", "direction": "below", "value": 0.7}
    store.add_monitor("acc", "m", "performance", "accuracy", rule, subjects=["v1"])
    for d in range(3):
        daily.add(d, labels=True)  # labels a day after each prediction
    store.run_monitors(now=daily.start(4))
    daily.add(3, correct=False, labels=True)
    (row,) = store.run_monitors(now=daily.start(5)).to_pylist()
    # day 3's labels are due a day after it ends; the label clock is still before that
    assert row["window_start"] == daily.start(3)
    assert row["value"] == 0.0
    assert (row["verdict"], row["transitions"], row["state"]) == ("pending", ["opened"], "pending")
    assert store.outbox().num_rows == 0
    daily.add(4, labels=True)  # later labels move the clock past day 3's due time
    rows = store.run_monitors(now=daily.start(6)).to_pylist()
    assert rows[0]["transitions"] == ["fired"]
    assert rows[0]["verdict"] == "pending"  # day 4 itself waits for its labels
    (alert,) = store.alerts().to_pylist()
    assert (alert["state"], alert["window_start"], alert["value"]) == (
        "firing",
        daily.start(3),
        0.0,
    )
    assert store.outbox().column("change").to_pylist() == ["fired"]


def test_a_failing_monitor_records_its_error_and_the_others_run(daily: Any) -> None:
    store = daily.store
    daily.add(0, shift=2.0)
    store.add_monitor("broken", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    store.add_monitor("fine", "m", "drift", "wasserstein", FIXED, subjects=["x"])
    # a stored definition that no longer works (as if its column had been dropped)
    store.sql(
        "UPDATE evalstore.monitors SET options = json_merge_patch(options, "
        "'{\"where\": \"dropped_column > 1\"}') WHERE name = 'broken'"
    )
    rows = store.run_monitors(now=daily.start(1)).to_pylist()
    by_name = {r["monitor"]: r for r in rows}
    assert by_name["broken"]["verdict"] == "error"
    assert "dropped_column" in by_name["broken"]["error"]
    assert by_name["fine"]["transitions"] == ["fired"]
    monitors = {r["name"]: r for r in store.monitors().to_pylist()}
    assert "dropped_column" in monitors["broken"]["last_error"]
    assert monitors["broken"]["last_run"] == daily.start(1)
    assert monitors["fine"]["last_error"] is None
    assert store.alerts(monitor="broken").num_rows == 0
    store.update_monitor("broken", where=None)
    (row,) = store.run_monitors(now=daily.start(2), names=["broken"]).to_pylist()
    assert row["transitions"] == ["fired"]
    assert store.monitors().to_pylist()[0]["last_error"] is None


def test_a_monitor_failing_midway_writes_nothing_of_its_run(
    daily: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = daily.store
    daily.add(0, shift=2.0)
    store.add_monitor("two", "m", "quality", "rows", {"type": "fixed", "direction": "above",
                      "value": 10}, subjects=["x", "c"])  # fmt: skip
    real = alerts.record
    calls = []

    def record_then_die(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["subject"])
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # as if the process died midway
        return real(*args, **kwargs)

    monkeypatch.setattr(alerts, "record", record_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.run_monitors(now=daily.start(1))
    for table in ("alerts", "alert_cursors", "metric_history", "metric_history_calls"):
        assert _count(store, table) == 0, table
    monkeypatch.setattr(alerts, "record", real)
    rows = store.run_monitors(now=daily.start(1)).to_pylist()
    assert sorted((r["subject"], r["transitions"][0]) for r in rows) == [
        ("c", "fired"),
        ("x", "fired"),
    ]


def test_end_to_end_a_local_webhook_gets_fired_then_resolved(
    daily: Any, free_port: Any, monkeypatch: pytest.MonkeyPatch, webhook_receiver: Any
) -> None:
    store = daily.store
    monkeypatch.setenv("EVALSTORE_TEST_HOOK_SECRET", "hook-secret")
    port = free_port()
    receiver = webhook_receiver(port)
    try:
        store.add_channel(
            "hook", "webhook",
            {"url": f"http://127.0.0.1:{port}/alerts", "secret_env": "EVALSTORE_TEST_HOOK_SECRET"},
        )  # fmt: skip
        store.add_monitor("x_w", "m", "drift", "wasserstein", FIXED, subjects=["x"])
        daily.add(0, shift=2.0)
        store.run_monitors(now=daily.start(1))
        sent = store.deliver_notifications(now=daily.start(1)).to_pylist()
        assert [(s["change"], s["state"]) for s in sent] == [("fired", "delivered")]
        assert store.deliver_notifications(now=daily.start(1)).num_rows == 0  # sent once
        daily.add(1)
        store.run_monitors(now=daily.start(2))
        store.deliver_notifications(now=daily.start(2))
    finally:
        receiver.stop()
    changes = [json.loads(raw) for _, raw, _ in receiver.received]
    assert [c["change"] for c in changes] == ["fired", "resolved"]
    assert changes[0]["alert"]["monitor"] == "x_w"
    assert changes[0]["alert"]["subject"] == "x"
    assert changes[0]["text"].startswith("[FIRING] x_w on m/x: value ")
    for headers, raw, _ in receiver.received:
        digest = hmac.new(b"hook-secret", raw, hashlib.sha256).hexdigest()
        assert headers["X-Evalstore-Signature"] == f"sha256={digest}"
    assert store.outbox(state="delivered").num_rows == 2
