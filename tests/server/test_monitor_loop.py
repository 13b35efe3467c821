"""The monitor loop end to end: a real `evalstore serve`, a real webhook receiver, ingest over HTTP.

A monitor (NaN count of feature ``x`` above 0, daily windows) and a webhook channel pointing
to an ``http.server`` on 127.0.0.1 are created over HTTP; a batch with a NaN fires the alert
and the loop (run by the ingest, not by a request) delivers the notification; a clean later
day resolves it and the resolution is delivered; ``/metrics`` shows the alert, the monitor's
value and the feature histogram with the values the data implies; after a restart, the
scheduled first pass recounts the histogram and fills the invalid-value counters, and
nothing is notified again. Every wait polls with a deadline (no fixed sleeps). Then the
loop itself, in-process: a failing monitor does not stop the others, and the debounce
groups commits.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow as pa
import pytest
from arrow_bodies import arrow_body
from prometheus_client.parser import text_string_to_metric_families

import evalstore
from server.monitor_loop import MonitorLoop

ARROW = "application/vnd.apache.arrow.stream"
START_TIMEOUT = 90.0
WAIT = 60.0
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def receiver(webhook_receiver):
    return webhook_receiver()


def start_server(store_path, port: int) -> tuple[str, subprocess.Popen]:
    process = subprocess.Popen(
        [sys.executable, "-c", "from evalstore.cli import main; main()", "serve",
         str(store_path), "--port", str(port), "--monitor-every", "3600",
         "--webhook-allow", "127.0.0.1", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read().decode()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("the server to start", up, START_TIMEOUT)
    return url, process


def samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_ingest_fires_delivers_and_resolves_through_a_real_webhook(tmp_path, free_port, receiver):
    store_path = tmp_path / "served.duckdb"
    with evalstore.open(store_path) as store:
        store.register_model("m", "v1", "binary")
        store.log_features(
            "m",
            pa.table({"example_id": [f"t{i}" for i in range(100)],
                      "ts": [T0 - timedelta(days=10)] * 100,
                      "x": [float(i) for i in range(100)]}),
            env="training",
        )  # fmt: skip
    url, process = start_server(store_path, free_port())
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            channel = client.post(
                "/v1/channels", json={"name": "ops", "config": {"url": receiver.url}}
            )
            assert channel.status_code == 201, channel.text
            monitor = client.post(
                "/v1/models/m/monitors",
                json={"name": "x_nan", "family": "quality", "metric": "nan", "subjects": ["x"],
                      "rule": {"type": "fixed", "direction": "above", "value": 0}},
            )  # fmt: skip
            assert monitor.status_code == 201, monitor.text

            breaching = pa.table({"example_id": ["a1", "a2", "a3"], "ts": [T0] * 3,
                                  "x": [1.0, math.nan, 2.0]})  # fmt: skip
            response = client.post(
                "/v1/models/m/features", content=arrow_body(breaching),
                headers={"Content-Type": ARROW},
            )  # fmt: skip
            assert response.status_code == 200, response.text

            firing = wait_for(
                "the alert to fire",
                lambda: client.get("/v1/alerts", params={"state": "firing"}).json(),
            )
            assert [(a["monitor"], a["subject"], a["value"]) for a in firing] == [
                ("x_nan", "x", 1.0)
            ]
            wait_for("the fired notification", lambda: "fired" in receiver.changes())
            fired = json.loads(receiver.received[0][1])
            assert fired["alert"]["monitor"] == "x_nan"
            assert fired["alert"]["alert_id"] == firing[0]["alert_id"]
            assert "x_nan" in fired["text"]
            found = wait_for(
                "the firing gauge",
                lambda: (
                    (f := samples(client))
                    and sample(f, "evalstore_alert_firing", model="m", monitor="x_nan", subject="x")
                    == 1.0
                    and f
                ),
            )
            assert sample(found, "evalstore_monitor_value", model="m", monitor="x_nan",
                          subject="x") == 1.0  # fmt: skip

            clean = pa.table({"example_id": ["b1", "b2"], "ts": [T0 + timedelta(days=1)] * 2,
                              "x": [3.0, 4.0]})  # fmt: skip
            response = client.post(
                "/v1/models/m/features", content=arrow_body(clean), headers={"Content-Type": ARROW}
            )
            assert response.status_code == 200, response.text
            wait_for("the resolved notification", lambda: "resolved" in receiver.changes())
            assert receiver.changes() == ["fired", "resolved"]  # each change sent once
            [resolved] = client.get("/v1/alerts", params={"state": "resolved"}).json()
            assert resolved["alert_id"] == firing[0]["alert_id"]
            delivered = client.post(
                "/v1/sql",
                json={"sql": "SELECT change, state, attempts FROM evalstore.outbox "
                             "ORDER BY outbox_id"},
            ).json()  # fmt: skip
            assert delivered == [
                {"change": "fired", "state": "delivered", "attempts": 1},
                {"change": "resolved", "state": "delivered", "attempts": 1},
            ]

            def settled() -> dict | None:
                f = samples(client)
                done = sample(f, "evalstore_feature_count", model="m", feature="x") == 4.0
                return f if done else None

            found = wait_for("the histogram of both batches", settled)
            key = {"model": "m", "monitor": "x_nan", "subject": "x"}
            assert sample(found, "evalstore_alert_firing", **key) == 0.0
            assert sample(found, "evalstore_monitor_value", **key) == 0.0  # day 2: no NaN
            # training x = 0..99: edges min 0, 9.9, ..., 89.1, max 99; serving 1, 2, 3, 4
            bucket = {"model": "m", "feature": "x"}
            assert sample(found, "evalstore_feature_bucket", le="0.0", **bucket) == 0.0
            assert sample(found, "evalstore_feature_bucket", le="9.9", **bucket) == 4.0
            assert sample(found, "evalstore_feature_bucket", le="99.0", **bucket) == 4.0
            assert sample(found, "evalstore_feature_bucket", le="+Inf", **bucket) == 4.0
            assert sample(found, "evalstore_feature_sum", **bucket) == 10.0
            assert sample(found, "evalstore_monitor_loop_errors_total") == 0.0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0  # the loop stops cleanly on SIGTERM

    # a restart: its first (scheduled) pass recounts the histogram from the stored rows
    # and refreshes the default quality call behind the invalid-value counters
    url, process = start_server(store_path, free_port())
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            invalid = wait_for(
                "the invalid-value counters",
                lambda: sample(
                    samples(client), "evalstore_invalid_values_total", check="nan", **bucket
                ),
            )
            assert invalid == 1.0
            found = samples(client)
            assert sample(found, "evalstore_invalid_values_total", check="posinf", **bucket) == 0
            assert sample(found, "evalstore_feature_count", **bucket) == 4.0
            assert sample(found, "evalstore_feature_bucket", le="9.9", **bucket) == 4.0
            assert sample(found, "evalstore_alert_firing", **key) == 0.0
            assert receiver.changes() == ["fired", "resolved"]  # nothing sent again
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


# ---------------------------------------------------------------------- in process


@pytest.fixture
def two_monitors(tmp_path):
    """A store with a working monitor and one whose feature was dropped from its view."""
    store = evalstore.open(tmp_path / "loop.duckdb")
    store.register_model("m", "v1", "binary")
    store.log_features("m", pa.table({"example_id": [f"t{i}" for i in range(20)],
                                      "ts": [T0 - timedelta(days=3)] * 20,
                                      "x": [float(i) for i in range(20)],
                                      "y": [float(i) for i in range(20)]}),
                       env="training")  # fmt: skip
    store.log_features("m", pa.table({"example_id": ["a", "b"], "ts": [T0] * 2,
                                      "x": [math.nan, 1.0], "y": [1.0, 2.0]}))  # fmt: skip
    rule = {"type": "fixed", "direction": "above", "value": 0}
    store.add_monitor("x_nan", "m", "quality", "nan", rule, subjects=["x"])
    store.add_monitor("y_nan", "m", "quality", "nan", rule, subjects=["y"])
    yield store
    store.close()


def test_a_failing_monitor_does_not_stop_the_others(two_monitors):
    store = two_monitors
    # make y_nan fail at run time: a definition whose subject no longer exists
    store.sql("UPDATE evalstore.monitors SET subjects = ['gone'] WHERE name = 'y_nan'")
    loop = MonitorLoop(store, every=3600)
    loop.start()
    try:
        wait_for("the first pass", lambda: loop.status()["passes"] >= 1)
    finally:
        loop.stop()
    monitors = {r["name"]: r for r in store.monitors("m").to_pylist()}
    assert monitors["x_nan"]["last_error"] is None and monitors["x_nan"]["last_run"] is not None
    assert "gone" in monitors["y_nan"]["last_error"]
    [alert] = store.alerts("m").to_pylist()
    assert (alert["monitor"], alert["state"]) == ("x_nan", "firing")
    assert loop.status()["running"] is False


def test_commits_are_debounced_per_model(two_monitors):
    loop = MonitorLoop(two_monitors, every=3600, debounce=0.3, max_delay=0.6)
    base = time.monotonic()
    loop.notify(["m"])
    first, last = loop._dirty["m"]
    loop.notify(["m", "n"])
    first_again, last_again = loop._dirty["m"]
    assert first_again == first and last_again >= last  # the first commit is kept
    assert loop._due(loop._dirty["m"]) <= first + 0.6
    assert loop._due((base, base)) == pytest.approx(base + 0.3)
    assert loop._due((base, base + 0.5)) == pytest.approx(base + 0.6)  # max_delay caps it
    off = MonitorLoop(two_monitors, every=0)
    off.notify(["m"])
    off.start()
    assert off._dirty == {} and off.status()["running"] is False


def test_invalid_values_run_their_monitors_at_once_and_notify(tmp_path, webhook_receiver):
    """The fast path: an out-of-range row fires its monitor and reaches the webhook while
    the debounced pass is minutes away; the drift monitor waits for that pass."""
    store = evalstore.open(tmp_path / "fast.duckdb")
    store.register_model("m", "v1", "binary")
    store.log_features("m", pa.table({"example_id": [f"t{i}" for i in range(20)],
                                      "ts": [T0 - timedelta(days=3)] * 20,
                                      "x": [float(i) for i in range(20)]}),
                       env="training")  # fmt: skip
    store.log_features("m", pa.table({"example_id": ["a"], "ts": [T0], "x": [3.0]}))
    share = {"type": "unsupervised", "method": "share", "threshold": 0.0}
    store.add_monitor("x_range", "m", "quality", "out_of_range", share, subjects=["x"])
    store.add_monitor("x_psi", "m", "drift", "psi", {"type": "fixed", "direction": "above",
                                                      "value": 100.0}, subjects=["x"])  # fmt: skip
    receiver = webhook_receiver()
    store.add_channel("hook", "webhook", {"url": receiver.url})
    loop = MonitorLoop(store, every=3600, debounce=600, max_delay=600)
    loop.start()
    try:
        wait_for("the first pass", lambda: loop.status()["passes"] >= 1)
        runs = {r["name"]: r["last_run"] for r in store.monitors("m").to_pylist()}
        assert store.alerts("m").num_rows == 0
        store.log_features(
            "m", pa.table({"example_id": ["b"], "ts": [T0 + timedelta(minutes=1)], "x": [18.5]})
        )  # in range: triggers nothing
        loop.notify(["m"])
        store.log_features("m", pa.table({"example_id": ["c"], "ts": [T0 + timedelta(minutes=2)],
                                          "x": [25.0]}))  # fmt: skip
        loop.notify(["m"])
        wait_for("the fired notification", lambda: receiver.changes() == ["fired"])
        [alert] = store.alerts("m").to_pylist()
        assert (alert["monitor"], alert["state"], alert["value"]) == ("x_range", "firing", 1 / 3)
        after = {r["name"]: r["last_run"] for r in store.monitors("m").to_pylist()}
        assert after["x_psi"] == runs["x_psi"]  # not run: its debounced pass is far away
        assert after["x_range"] > runs["x_range"]
        status = loop.status()
        assert (status["passes"], status["fast_runs"], status["waiting"]) == (1, 1, ["m"])
    finally:
        loop.stop()
        store.close()


def test_the_fast_path_can_be_turned_off(two_monitors):
    loop = MonitorLoop(two_monitors, every=3600, fast=False)
    loop.notify(["m"])
    assert loop._fresh == set() and list(loop._dirty) == ["m"]
    on = MonitorLoop(two_monitors, every=3600)
    on.notify(["m"])
    assert on._fresh == {"m"}


def test_a_pass_runs_fast_monitors_first_and_notifies_before_the_next(tmp_path, webhook_receiver):
    """``z_nan`` (an invalid-value check) runs before ``b_psi`` although its name sorts
    after, and its notification is delivered before ``b_psi``'s run starts."""
    store = evalstore.open(tmp_path / "order.duckdb")
    store.register_model("m", "v1", "binary")
    store.log_features("m", pa.table({"example_id": [f"t{i}" for i in range(20)],
                                      "ts": [T0 - timedelta(days=3)] * 20,
                                      "x": [float(i) for i in range(20)]}),
                       env="training")  # fmt: skip
    store.log_features("m", pa.table({"example_id": ["a", "b"], "ts": [T0] * 2,
                                      "x": [math.nan, 1.0]}))  # fmt: skip
    above = {"type": "fixed", "direction": "above"}
    store.add_monitor("b_psi", "m", "drift", "psi", {**above, "value": 100.0}, subjects=["x"])
    store.add_monitor("z_nan", "m", "quality", "nan", {**above, "value": 0}, subjects=["x"])
    receiver = webhook_receiver()
    store.add_channel("hook", "webhook", {"url": receiver.url})
    loop = MonitorLoop(store, every=3600)
    loop.start()
    try:
        wait_for("the first pass", lambda: loop.status()["passes"] >= 1)
    finally:
        loop.stop()
    runs = {r["name"]: r["last_run"] for r in store.monitors("m").to_pylist()}
    [row] = store.sql(
        "SELECT o.delivered_at, o.state FROM evalstore.outbox o "
        "JOIN evalstore.alerts a USING (alert_id) WHERE a.monitor = 'z_nan'"
    ).to_pylist()
    assert row["state"] == "delivered" and receiver.changes() == ["fired"]
    assert runs["z_nan"] < row["delivered_at"] <= runs["b_psi"]
    store.close()
