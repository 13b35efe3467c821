"""Freshness benchmark (issue 26 point 8): from an injected event to its alert and webhook.

    python benchmarks/bench_freshness.py                      # 250,000 requests at 1,000/s
    python benchmarks/bench_freshness.py --requests 60000     # a quick run (1 minute)

A real ``evalstore serve`` subprocess (127.0.0.1, a new store file, group commit on, the
monitor loop on; ``--webhook-allow 127.0.0.1`` so that a webhook may point at this
process) receives ``--requests`` prediction requests sent as a service sends them: through
one ``evalstore.Client`` (background mode, ``flush_interval`` ``--flush-interval``), one
``log_prediction`` per request, paced at ``--rate`` requests/s, event time = send time
(``ts`` is the instant of the call). ``--mode http`` sends each request as the
single-example JSON pair of ``bench_streaming.py`` instead (``POST .../features`` then
``POST .../predictions`` on a keep-alive connection, ``--senders`` threads sharing the
rate), which sustains far lower rates on this machine.

Each request carries the features ``amount``, ``utilization``, ``age``, ``hour``,
``channel`` and ``served_latency_ms``, a score and a latency. Three kinds of event are
injected, each ``--events`` times, at known requests, one kind every ``--period`` seconds
of send time, staggered by a third of a period:

``outlier`` (the *per-request outlier* class)
    ``--burst`` consecutive requests carry ``utilization`` outside the training range
    (1.5 and more; training covers [0, 0.999]). Monitor: quality ``out_of_range`` on
    ``utilization``, rule ``unsupervised`` ``share`` above 0 (one such value breaches).
``latency`` (the *windowed statistics* class)
    For ``--duration`` seconds, the prediction's ``latency_ms`` (and the feature
    ``served_latency_ms`` that repeats it) is 8 ms higher (base 20-29.9 ms). Monitor: the
    health family's ``latency_p95`` of version ``v1`` above 31.5 ms when the server takes
    health monitors; otherwise drift ``zscore`` (the window mean against training's, in
    standard errors) of the feature ``served_latency_ms`` above 10. The run says which.
``drift`` (*distribution drift*)
    For ``--duration`` seconds, ``amount`` is multiplied by 0.6 (still inside its training
    range: a distribution change, not outliers). Monitor: drift ``wasserstein`` (normed by
    the training sd) of ``amount`` above 0.1.

Every monitor has 15-second windows (``--window``), the training rows as reference,
``min_rows`` 300 (the latency and drift monitors; the outlier monitor 1) and alerts after
one breaching window, resolved after one clean one. A webhook channel points at a receiver
(``http.server`` on 127.0.0.1 in this process) that records each notification's arrival.
A poller reads ``GET /v1/alerts`` every ``--poll`` seconds.

For each event, from the send time of its first request to:

- **alert row**: the first poll of ``/v1/alerts`` that shows the firing episode (an upper
  bound by at most one poll interval plus the poll's duration); the episode's
  ``fired_at`` (the monitor run's clock, taken when the run starts) is printed too;
- **webhook**: the arrival of its ``fired`` notification at the receiver.

An event is matched to the first episode of its monitor that fired at or after its first
request and before the next event of its kind; an episode matched to no event is a false
alert. The benchmark asserts nothing about time: it exits with status 1 if an injected
event is never alerted (or never delivered) within ``--grace`` seconds after the last
request. The table sits beside the published figures (a 7-node cluster, 250,000 requests,
15-s windows: 75% of events detected within 5.9 s, 29.9 s and 30.9 s) and the targets of
issue 26 (p75 within 1 s for invalid values; window + 2 s for windowed statistics and
drift).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from bench_streaming import Connection, encode, free_port, start_server, stop_server
from harness import host_busy_seconds, load_average, machine, process_cpu_seconds, table, versions

MODEL = "fresh"
FEATURES_PATH = f"/v1/models/{MODEL}/features"
PREDICTIONS_PATH = f"/v1/models/{MODEL}/predictions?version=v1&latency_column=latency_ms"
CHANNELS = ("web", "app", "pos")
KINDS = ("outlier", "latency", "drift")
#: The published figures (75% of events detected within), per class of event.
PUBLISHED = {"outlier": 5.9, "latency": 29.9, "drift": 30.9}
CLASS = {
    "outlier": "per-request outliers",
    "latency": "windowed statistics",
    "drift": "distribution drift",
}
LATENCY_SHIFT = 8.0
DRIFT_FACTOR = 0.6


# ---------------------------------------------------------------- the replayed requests


@dataclass(frozen=True)
class Event:
    """An injected event: requests ``first`` to ``first + count - 1`` are affected."""

    kind: str
    number: int
    first: int
    count: int

    def covers(self, i: int) -> bool:
        return self.first <= i < self.first + self.count


def schedule(args: argparse.Namespace) -> list[Event]:
    """The events: kind k's n-th at ``warmup + n * period + k * period / 3`` seconds of
    send time, as many as end at least 5 s before the last request (at most ``--events``
    per kind)."""
    events = []
    last = args.requests / args.rate - args.duration - 5
    for k, kind in enumerate(KINDS):
        for n in range(args.events):
            at = args.warmup + n * args.period + k * args.period / 3
            if at > last:
                break
            count = args.burst if kind == "outlier" else round(args.duration * args.rate)
            events.append(Event(kind, n, round(at * args.rate), count))
    return sorted(events, key=lambda e: e.first)


def request(i: int, active: dict[str, bool]) -> tuple[dict[str, Any], float, float]:
    """Request ``i``'s features, score and latency (ms); ``active``: the events it is in."""
    latency = 20 + (i * 31 % 100) / 10 + (LATENCY_SHIFT if active["latency"] else 0.0)
    amount = (i * 7919 % 100_000) / 100
    features = {
        "amount": amount * DRIFT_FACTOR if active["drift"] else amount,
        "utilization": 1.5 + i % 7 if active["outlier"] else (i * 37 % 1000) / 1000,
        "age": 18 + i % 62,
        "hour": i % 24,
        "channel": CHANNELS[i % 3],
        "served_latency_ms": latency,
    }
    return features, (i * 2654435761 % 1000) / 1000, latency


class Replay:
    """Which events request ``i`` is in, and the send time of each event's first request."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.starts: dict[Event, float] = {}
        self._firsts = {e.first: e for e in events}

    def active(self, i: int) -> dict[str, bool]:
        flags = dict.fromkeys(KINDS, False)
        for event in self.events:
            if event.covers(i):
                flags[event.kind] = True
        return flags

    def sent(self, i: int, at: float) -> None:
        event = self._firsts.get(i)
        if event is not None:
            self.starts[event] = at


def pace(rate: float, index: int, start: float) -> float:
    """Sleep until request ``index``'s slot; how late (s) the slot already was."""
    late = time.perf_counter() - (start + index / rate)
    if late < 0:
        time.sleep(-late)
    return max(late, 0.0)


def send_client(port: int, args: argparse.Namespace, replay: Replay) -> tuple[float, float]:
    """One background Client, one ``log_prediction`` per request at ``args.rate``;
    returns (seconds until everything was acknowledged, largest pacing lag)."""
    import evalstore

    client = evalstore.Client(
        f"http://127.0.0.1:{port}", flush_interval=args.flush_interval, on_full="block"
    )
    lag = 0.0
    start = time.perf_counter()
    for i in range(args.requests):
        lag = max(lag, pace(args.rate, i, start))
        features, score, latency = request(i, replay.active(i))
        at = time.time()
        replay.sent(i, at)
        client.log_prediction(MODEL, "v1", f"q{i}", features, int(score >= 0.5), score,
                              latency, ts=at)  # fmt: skip
    if not client.flush(600):
        raise RuntimeError("the client did not deliver within 600 s")
    elapsed = time.perf_counter() - start
    stats = client.close()
    if stats.logged != stats.acknowledged:
        raise RuntimeError(f"the client lost records: {stats}")
    return elapsed, lag


def send_http(port: int, args: argparse.Namespace, replay: Replay) -> tuple[float, float]:
    """``args.senders`` threads, each sending its share of the requests as JSON
    (features, predictions) pairs, together at ``args.rate`` pairs/s."""
    senders = args.senders
    lags = [0.0] * senders
    failures: list[str] = []
    start = time.perf_counter() + 0.1

    def sender(s: int) -> None:
        connection = Connection(port)
        try:
            for k, i in enumerate(range(s, args.requests, senders)):
                lags[s] = max(lags[s], pace(args.rate / senders, k, start + s / args.rate))
                features, score, latency = request(i, replay.active(i))
                at = time.time()
                replay.sent(i, at)
                ts = datetime.fromtimestamp(at, UTC).isoformat()
                first = json.dumps([{"example_id": f"q{i}", "ts": ts, **features}]).encode()
                second = json.dumps([{"example_id": f"q{i}", "ts": ts, "latency_ms": latency,
                                      "prediction": int(score >= 0.5),
                                      "score": score}]).encode()  # fmt: skip
                for path, body in ((FEATURES_PATH, first), (PREDICTIONS_PATH, second)):
                    status, answer = connection.send(encode("POST", path, body))
                    if status != 200:
                        raise RuntimeError(f"HTTP {status}: {answer[:300]!r}")
        except Exception as error:
            failures.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"a sender failed: {failures[0]}")
    return time.perf_counter() - start, max(lags)


# ---------------------------------------------------------------- set up


def prepare(port: int, args: argparse.Namespace, receiver_port: int) -> str:
    """Register ``fresh`` v1, log 5,000 training rows, create the webhook channel and the
    three monitors; returns how latency is monitored."""
    import pyarrow as pa

    import evalstore

    connection = Connection(port)
    connection.json("POST", f"/v1/models/{MODEL}/versions",
                    {"version": "v1", "task": "binary", "classes": [0, 1]})  # fmt: skip
    quiet = dict.fromkeys(KINDS, False)
    rows = [request(i, quiet)[0] for i in range(5000)]
    data = pa.table({name: [r[name] for r in rows] for name in rows[0]})
    data = data.append_column("example_id", pa.array([f"train-{i}" for i in range(len(rows))]))
    client = evalstore.Client(f"http://127.0.0.1:{port}", mode="sync")
    client.log_features_batch(MODEL, data, env="training")
    client.close()
    connection.json("POST", "/v1/channels", {
        "name": "bench", "kind": "webhook",
        "config": {"url": f"http://127.0.0.1:{receiver_port}/hook"},
    })  # fmt: skip
    window = args.window
    monitors = {
        "outlier": {"family": "quality", "metric": "out_of_range", "subjects": ["utilization"],
                    "rule": {"type": "unsupervised", "method": "share", "threshold": 0.0}},
        "drift": {"family": "drift", "metric": "wasserstein", "subjects": ["amount"],
                  "rule": {"type": "fixed", "direction": "above", "value": 0.1,
                           "min_rows": 300}},
    }  # fmt: skip
    for kind, fields in monitors.items():
        connection.json("POST", f"/v1/models/{MODEL}/monitors",
                        {"name": kind, "window": window, **fields})  # fmt: skip
    health = {"name": "latency", "window": window, "family": "health", "metric": "latency_p95",
              "subjects": ["v1"], "rule": {"type": "fixed", "direction": "above",
                                           "value": 31.5, "min_rows": 300}}  # fmt: skip
    feature = {"name": "latency", "window": window, "family": "drift", "metric": "zscore",
               "subjects": ["served_latency_ms"],
               "rule": {"type": "fixed", "direction": "above", "value": 10.0,
                        "min_rows": 300}}  # fmt: skip
    how = "health latency_p95 of v1 above 31.5 ms"
    if args.latency in ("auto", "health"):
        status, answer = connection.send(
            encode("POST", f"/v1/models/{MODEL}/monitors", json.dumps(health).encode())
        )
        if status != 201:
            if args.latency == "health":
                raise RuntimeError(f"the server refused a health monitor: {answer[:300]!r}")
            connection.json("POST", f"/v1/models/{MODEL}/monitors", feature)
            how = "drift zscore of the feature served_latency_ms above 10 (no health monitors)"
    else:
        connection.json("POST", f"/v1/models/{MODEL}/monitors", feature)
        how = "drift zscore of the feature served_latency_ms above 10"
    connection.close()
    return how


# ---------------------------------------------------------------- observers


@dataclass
class Observed:
    """What the alert poller and the webhook receiver saw (wall-clock seconds)."""

    alerts: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> latest row
    visible: dict[int, float] = field(default_factory=dict)  # id -> first poll showing it fired
    delivered: dict[int, float] = field(default_factory=dict)  # id -> 'fired' webhook arrival
    notifications: int = 0
    polls: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def start_receiver(observed: Observed) -> ThreadingHTTPServer:
    """A webhook receiver on 127.0.0.1 recording each ``fired`` notification's arrival."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived = time.time()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with observed.lock:
                observed.notifications += 1
                alert_id = body["alert"]["alert_id"]
                if body["change"] == "fired" and alert_id not in observed.delivered:
                    observed.delivered[alert_id] = arrived
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def poll_alerts(port: int, every: float, observed: Observed, stop: threading.Event) -> None:
    """Read ``/v1/alerts`` of the model every ``every`` seconds until ``stop``."""
    connection = Connection(port)
    try:
        while not stop.is_set():
            began = time.perf_counter()
            try:
                rows = connection.json("GET", f"/v1/alerts?model={MODEL}")
            except OSError:  # a keep-alive connection the server closed: reopen
                connection.close()
                connection = Connection(port)
                continue
            seen = time.time()
            with observed.lock:
                observed.polls.append(time.perf_counter() - began)
                for row in rows:
                    observed.alerts[row["alert_id"]] = row
                    if row["fired_at"] is not None:
                        observed.visible.setdefault(row["alert_id"], seen)
            stop.wait(max(0.0, every - (time.perf_counter() - began)))
    finally:
        connection.close()


def seconds(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


# ---------------------------------------------------------------- matching


@dataclass
class Detection:
    event: Event
    start: float  # send time of the event's first request
    alert_id: int | None = None
    to_fired_at: float | None = None
    to_visible: float | None = None
    to_webhook: float | None = None


def match(events: list[Event], replay: Replay, observed: Observed) -> tuple[list[Detection], int]:
    """Each event's first episode of its monitor fired at or after its first request and
    before the next event of its kind; returns the detections and the false alerts."""
    detections, used = [], set()
    with observed.lock:
        alerts = [row for row in observed.alerts.values() if row["fired_at"] is not None]
        visible, delivered = dict(observed.visible), dict(observed.delivered)
    for kind in KINDS:
        mine = sorted((e for e in events if e.kind == kind), key=lambda e: e.first)
        fired = sorted((seconds(a["fired_at"]), a["alert_id"]) for a in alerts
                       if a["monitor"] == kind)  # fmt: skip
        for n, event in enumerate(mine):
            start = replay.starts[event]
            later = mine[n + 1] if n + 1 < len(mine) else None
            end = replay.starts.get(later, float("inf")) if later else float("inf")
            detection = Detection(event, start)
            for at, alert_id in fired:
                if alert_id not in used and start <= at < end:
                    used.add(alert_id)
                    detection.alert_id = alert_id
                    detection.to_fired_at = at - start
                    detection.to_visible = visible[alert_id] - start
                    if alert_id in delivered:
                        detection.to_webhook = delivered[alert_id] - start
                    break
            detections.append(detection)
    return detections, len(alerts) - len(used)


def complete(detections: list[Detection]) -> bool:
    return all(d.to_visible is not None and d.to_webhook is not None for d in detections)


# ---------------------------------------------------------------- report


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    p50, p75, p95 = np.percentile(values, [50, 75, 95])
    return f"{p50:.1f} / {p75:.1f} / {p95:.1f}"


def report(detections: list[Detection], window: float) -> list[str]:
    targets = {"outlier": 1.0, "latency": window + 2, "drift": window + 2}
    header = ["event class (monitor)", "events", "alerted", "alert row p50 / p75 / p95 s",
              "webhook p50 / p75 / p95 s", "fired_at p75 s", "target p75",
              "published p75 (7 nodes)"]  # fmt: skip
    rows = []
    for kind in KINDS:
        mine = [d for d in detections if d.event.kind == kind]
        visible = [d.to_visible for d in mine if d.to_visible is not None]
        webhook = [d.to_webhook for d in mine if d.to_webhook is not None]
        fired = [d.to_fired_at for d in mine if d.to_fired_at is not None]
        rows.append([
            f"{CLASS[kind]} ({kind})", str(len(mine)), str(len(visible)), quantiles(visible),
            quantiles(webhook), "-" if not fired else f"{np.percentile(fired, 75):.1f}",
            f"{targets[kind]:.0f} s", f"{PUBLISHED[kind]} s",
        ])  # fmt: skip
    return table(header, rows)


def window_seconds(window: str) -> float:
    number, unit = window.split()
    return float(number) * {"second": 1, "seconds": 1, "minute": 60, "minutes": 60}[unit]


def healthz(port: int) -> dict[str, Any]:
    connection = Connection(port)
    try:
        return connection.json("GET", "/healthz")
    finally:
        connection.close()


def monitor_passes(port: int) -> float:
    """``evalstore_monitor_loop_passes_total`` from ``/metrics``."""
    connection = Connection(port)
    try:
        _, body = connection.send(encode("GET", "/metrics"))
    finally:
        connection.close()
    for line in body.decode().splitlines():
        if line.startswith("evalstore_monitor_loop_passes_total"):
            return float(line.split()[-1])
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=250_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s (1000)")
    parser.add_argument("--mode", choices=("client", "http"), default="client")
    parser.add_argument("--senders", type=int, default=8, help="http mode: sender threads")
    parser.add_argument("--flush-interval", type=float, default=0.25,
                        help="client mode: the Client's flush_interval, s (0.25)")  # fmt: skip
    parser.add_argument("--window", default="15 seconds", help="monitor windows (15 seconds)")
    parser.add_argument("--events", type=int, default=20, help="most events per kind (20)")
    parser.add_argument("--period", type=float, default=30.0,
                        help="seconds between two events of a kind (30)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds a latency or drift event lasts (5)")  # fmt: skip
    parser.add_argument("--burst", type=int, default=3, help="outlier requests per event (3)")
    parser.add_argument("--warmup", type=float, default=10.0,
                        help="seconds before the first event (10)")  # fmt: skip
    parser.add_argument("--latency", choices=("auto", "health", "feature"), default="auto",
                        help="latency monitor: health latency_p95, or drift zscore of a "
                        "feature (auto: health if the server takes it)")  # fmt: skip
    parser.add_argument("--poll", type=float, default=0.1, help="/v1/alerts poll interval, s")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds to wait after the last request for missing "
                        "alerts (60)")  # fmt: skip
    parser.add_argument("--serve", dest="serve_options", action="append", default=[],
                        help="an option for evalstore serve, e.g. --serve=--monitor-every=5 "
                        "(repeat it)")  # fmt: skip
    args = parser.parse_args()
    events = schedule(args)
    if not events:
        parser.error("no event fits: give more --requests or a shorter --period/--warmup")
    replay = Replay(events)
    observed = Observed()
    receiver = start_receiver(observed)
    load = [load_average()]
    serve = ["--webhook-allow", "127.0.0.1", *args.serve_options]
    with tempfile.TemporaryDirectory(prefix="bench_freshness_") as folder:
        port = free_port()
        server = start_server(Path(folder) / "bench.duckdb", port, *serve)
        stop = threading.Event()
        poller = threading.Thread(target=poll_alerts, args=(port, args.poll, observed, stop))
        try:
            how = prepare(port, args, receiver.server_address[1])
            passes_before = monitor_passes(port)
            server_before, host_before = process_cpu_seconds(server.pid), host_busy_seconds()
            poller.start()
            sender = send_client if args.mode == "client" else send_http
            elapsed, lag = sender(port, args, replay)
            server_cpu = (process_cpu_seconds(server.pid) - server_before) / elapsed
            host = (host_busy_seconds() - host_before) / elapsed
            passes = monitor_passes(port) - passes_before
            print(f"sent {args.requests:,} requests in {elapsed:.1f} s "
                  f"({args.requests / elapsed:,.0f}/s); waiting for the last alerts",
                  file=sys.stderr)  # fmt: skip
            deadline = time.monotonic() + args.grace
            while time.monotonic() < deadline:
                if complete(match(events, replay, observed)[0]):
                    break
                time.sleep(0.5)
            time.sleep(2 * args.poll)
            ingest = healthz(port).get("ingest", {})
        finally:
            stop.set()
            if poller.is_alive():
                poller.join(30)
            stop_server(server)
            receiver.shutdown()
    load.append(load_average())
    detections, false_alerts = match(events, replay, observed)

    window = window_seconds(args.window)
    print(f"\n{machine()}; {versions('duckdb', 'pyarrow', 'fastapi', 'uvicorn')}")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average (1 min) {load[0]:.1f} at start, "
          f"{load[1]:.1f} at end; evalstore serve options: {' '.join(serve)}")  # fmt: skip
    via = (f"one evalstore.Client (flush_interval {args.flush_interval} s)"
           if args.mode == "client" else
           f"JSON request pairs from {args.senders} senders")  # fmt: skip
    print(f"{args.requests:,} prediction requests through {via}, paced at {args.rate:,.0f}/s "
          f"(reached {args.requests / elapsed:,.0f}/s, largest lag {lag:.2f} s); "
          f"{args.window} windows; an event of each kind every {args.period:.0f} s "
          f"(latency and drift last {args.duration:.0f} s, outliers are {args.burst} requests); "
          f"latency monitor: {how}")  # fmt: skip
    groups = ingest.get("groups", 0)
    requests = ingest.get("requests", 0)
    print(
        f"server CPU {server_cpu:.0%} of a core, whole machine {host:.0%}; {passes:.0f} "
        f"monitor-loop passes ({passes / elapsed:.2f}/s); {requests / max(groups, 1):.1f} "
        f"ingest requests per commit; poll p50 {np.median(observed.polls) * 1e3:.0f} ms\n"
    )
    print("\n".join(report(detections, window)))
    missed = [d for d in detections if d.to_visible is None or d.to_webhook is None]
    print(f"\nfalse alerts: {false_alerts}; notifications received: {observed.notifications}")
    for d in detections:
        print(f"  {d.event.kind} #{d.event.number} at request {d.event.first:,}: alert "
              f"{d.alert_id}, fired_at +{_s(d.to_fired_at)}, row +{_s(d.to_visible)}, "
              f"webhook +{_s(d.to_webhook)}")  # fmt: skip
    if missed:
        print(f"\n{len(missed)} injected events never alerted or never delivered", file=sys.stderr)
        return 1
    return 0


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
