"""Streaming benchmark (issue 21, point 3): 250,000 prediction requests with features.

    python benchmarks/bench_streaming.py                      # 250,000 requests per case
    python benchmarks/bench_streaming.py --requests 20000     # a quick run

Each case starts a real ``evalstore serve`` subprocess on a free 127.0.0.1 port over a new
store file (group commit on, the default), registers the binary model ``stream`` and logs
5,000 training rows (the reference of the windowed query). Then ``--senders`` threads (8 and
32) of this process send the ``--requests`` prediction requests, each with 10 features
(``amount``, ``utilization``, ``age``, ``txn_24h``, ``account_days``, ``hour``: numbers;
``channel``, ``country``, ``device``, ``merchant``: text), a prediction, a score and a
latency, every example id new:

``http``
    Single-example JSON requests. A prediction request is **two** HTTP requests, one after
    the other on the sender's keep-alive connection: ``POST .../features`` (the 10 features)
    then ``POST .../predictions`` (prediction, score, latency_ms): the server has no route
    taking both, and a service logging them separately is what the routes offer. Each HTTP
    request carries an ``Idempotency-Key`` (what makes a retry safe; ``--no-keys`` leaves
    it out). The client side is raw sockets, bodies encoded per request with ``json``:
    little CPU per request (shown in the table). Request latency is the pair's: from
    sending the features to the predictions' response (the acknowledgement).
``client``
    One ``evalstore.Client`` (background mode, defaults: ``flush_rows`` 20,000,
    ``flush_interval`` 1 s, ``max_buffer_rows`` 100,000; ``on_full="block"`` so that
    nothing is dropped) shared by the sender threads, as a service's worker threads would
    share it; each thread calls ``log_prediction`` as fast as it can. Requests/s counts
    until ``flush()`` returns (everything committed). Caller latency is one
    ``log_prediction`` call, on the caller's thread (it includes the waits for room when the
    buffer is full: the senders log faster than the server commits). Time to
    acknowledgement is from the call to the receipt of the later of its two
    batches (features, predictions), recorded by wrapping the client's transport.
    ``--rate R`` paces the senders at R predictions/s in all instead (a service below the
    store's capacity: the time to acknowledgement is then the batching delay).

Visibility. About ``--markers`` requests of each case, spread evenly, are markers
(``--markers 0``: none, and no polling load on the server). Once a
marker is acknowledged, two poller threads (each its own keep-alive connection) look for
it, back to back: ``POST /v1/sql`` (its predictions row joined to its features row) and a
windowed ``GET /v1/models/stream/quality`` (``--family``; the last 5 minutes in windows of
5 minutes, ``where`` = the training reference or the pending markers' ids; visible when
the windows' ``n_analysis`` adds up to the markers asked about). A marker's visibility time
is from its acknowledgement to the answer of the first poll that was sent after the
acknowledgement and shows it: an upper bound that includes the poll's own duration and
the wait for the poll in progress (the poll durations are printed below the table).

CPU: the server process's CPU, this process's CPU without the pollers' (the senders, and
for ``client`` the client's flusher thread), and the CPU other processes of the machine
used meanwhile, each as a share of the run's wall time (100% = one core; the machine has
the number of cores printed above the table).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from harness import (
    cpu_seconds,
    host_busy_seconds,
    load_average,
    machine,
    process_cpu_seconds,
    table,
    versions,
)

MODEL = "stream"
FEATURES_PATH = f"/v1/models/{MODEL}/features"
PREDICTIONS_PATH = f"/v1/models/{MODEL}/predictions?version=v1&latency_column=latency_ms"
CHANNELS = ("web", "app", "pos")
COUNTRIES = ("FR", "DE", "IT", "ES", "NL")
DEVICES = ("ios", "android", "desktop", "other")
START_TIMEOUT = 120.0


# ---------------------------------------------------------------- data


def features(i: int) -> dict[str, Any]:
    """The 10 features of request ``i`` (deterministic, varied)."""
    return {
        "amount": (i * 7919 % 100_000) / 100,
        "utilization": (i * 37 % 1000) / 1000,
        "age": 18 + i % 62,
        "txn_24h": i % 17,
        "account_days": i * 13 % 3650,
        "hour": i % 24,
        "channel": CHANNELS[i % 3],
        "country": COUNTRIES[i % 5],
        "device": DEVICES[i % 4],
        "merchant": f"mcc{i % 40}",
    }


def score(i: int) -> float:
    return (i * 2654435761 % 1000) / 1000


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# ---------------------------------------------------------------- server and HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(path: Path, port: int, *extra: str) -> subprocess.Popen:
    """``evalstore serve path`` on 127.0.0.1:``port``; returns once ``/healthz`` answers.
    The server's output goes to a temporary file (read back if it fails to start)."""
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop_server)
    process = subprocess.Popen(
        [sys.executable, "-c", "from evalstore.cli import main; main()", "serve", str(path),
         "--port", str(port), "--log-level", "warning", *extra],
        stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process.output = output  # type: ignore[attr-defined]
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)
            raise RuntimeError(f"the server exited: {output.read().decode()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError("the server did not start")


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (the server finishes queued requests and closes the store); wait for it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    process.output.close()  # type: ignore[attr-defined]


def encode(method: str, path: str, body: bytes = b"", key: str | None = None) -> bytes:
    """An HTTP/1.1 request (JSON body; ``key``: its ``Idempotency-Key`` header)."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if key is not None:
        head += f"Idempotency-Key: {key}\r\n"
    return (head + "\r\n").encode() + body


class Connection:
    """A keep-alive HTTP/1.1 connection on a raw socket, one response per request."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, data: bytes) -> tuple[int, bytes]:
        """Send one request; its (status, body)."""
        self.sock.sendall(data)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return status, rest[:length]

    def json(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; its decoded answer (raises on a status other than 2xx)."""
        status, data = self.send(
            encode(method, path, b"" if body is None else json.dumps(body).encode())
        )
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: HTTP {status} {data[:500]!r}")
        return json.loads(data)

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def _more(self) -> None:
        self.buffer += self._recv()

    def close(self) -> None:
        self.sock.close()


def prepare(port: int, training_rows: int = 5000) -> None:
    """Register ``stream`` v1 (binary) and log its training reference (one Arrow batch)."""
    import pyarrow as pa

    import evalstore

    connection = Connection(port)
    connection.json("POST", f"/v1/models/{MODEL}/versions",
                    {"version": "v1", "task": "binary", "classes": [0, 1]})  # fmt: skip
    connection.close()
    rows = [features(i + 10**9) for i in range(training_rows)]
    data = pa.table({name: [r[name] for r in rows] for name in rows[0]})
    data = data.append_column("example_id", pa.array([f"train-{i}" for i in range(training_rows)]))
    client = evalstore.Client(f"http://127.0.0.1:{port}", mode="sync")
    client.log_features_batch(MODEL, data, env="training")
    client.close()


# ---------------------------------------------------------------- visibility


@dataclass
class Visibility:
    """Acknowledged markers waiting to be seen, and the times it took to see them."""

    pending: dict[str, dict[str, float]] = field(default_factory=dict)  # poller -> {id: ack}
    seen: dict[str, list[float]] = field(default_factory=dict)  # poller -> seconds
    polls: dict[str, list[float]] = field(default_factory=dict)  # poller -> poll seconds
    cpu: dict[str, float] = field(default_factory=dict)  # poller -> thread CPU seconds
    failures: list[str] = field(default_factory=list)  # a poller's error ends the case
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_poller(self, name: str) -> None:
        self.pending[name], self.seen[name], self.polls[name] = {}, [], []

    def acknowledged(self, example_id: str, at: float) -> None:
        with self.lock:
            for waiting in self.pending.values():
                waiting[example_id] = at


def poller(
    port: int,
    name: str,
    visibility: Visibility,
    stop: threading.Event,
    query: Callable[[Connection, list[str]], set[str]],
) -> None:
    """Poll ``query`` (the marker ids it sees among those asked) back to back until
    ``stop`` is set and nothing is pending."""
    connection = Connection(port)
    waiting = visibility.pending[name]
    cpu = time.thread_time()
    try:
        while True:
            began = time.perf_counter()
            with visibility.lock:
                asked = {i: t for i, t in waiting.items() if t <= began}
            if not asked:
                if stop.is_set():
                    break
                time.sleep(0.002)
                continue
            try:
                try:
                    shown = query(connection, list(asked))
                except OSError:  # an idle keep-alive connection the server closed: reopen
                    connection.close()
                    connection = Connection(port)
                    began = time.perf_counter()
                    shown = query(connection, list(asked))
            except Exception as error:
                visibility.failures.append(f"{name}: {error!r}")
                raise
            answered = time.perf_counter()
            visibility.polls[name].append(answered - began)
            with visibility.lock:
                for example_id in shown:
                    visibility.seen[name].append(answered - asked[example_id])
                    del waiting[example_id]
    finally:
        visibility.cpu[name] = time.thread_time() - cpu
        connection.close()


def sql_query(connection: Connection, ids: list[str]) -> set[str]:
    """The markers whose predictions and features rows ``store.sql`` (``/v1/sql``) shows."""
    sql = (
        f"SELECT p.example_id FROM {MODEL}.predictions AS p JOIN {MODEL}.features AS f "
        "USING (example_id) WHERE list_contains(?, p.example_id)"
    )
    rows = connection.json("POST", "/v1/sql", {"sql": sql, "params": [ids]})
    return {row["example_id"] for row in rows}


def window_query(family: str) -> Callable[[Connection, list[str]], set[str]]:
    """A poll of the windowed ``family`` query over the last 5 minutes, restricted to the
    reference and the markers: all of them are visible when the windows' ``n_analysis``
    adds up to their number (none counted otherwise: a conservative reading)."""

    def query(connection: Connection, ids: list[str]) -> set[str]:
        since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        where = "env = 'training' OR example_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
        params = {"window": "5 minutes", "since": since, "features": "amount", "where": where}
        if family == "drift":
            params["methods"] = "psi"
        rows = connection.json("GET", f"/v1/models/{MODEL}/{family}?{urlencode(params)}")
        windows = {row["window_start"]: row["n_analysis"] or 0 for row in rows}
        return set(ids) if sum(windows.values()) >= len(ids) else set()

    return query


# ---------------------------------------------------------------- the two modes


@dataclass
class Result:
    """One case's measurements (seconds unless named otherwise)."""

    mode: str
    senders: int
    requests: int
    elapsed: float
    caller: np.ndarray  # caller-side latency of each request
    to_ack: np.ndarray  # request (or log call) to acknowledgement, markers only for client
    visible: dict[str, list[float]]
    polls: dict[str, list[float]]
    server_cpu: float
    sender_cpu: float
    other_cpu: float
    errors: int
    stored: int
    group: float = 0.0  # mean ingest requests per commit (/healthz)
    writer_busy: float = 0.0  # share of the wall time the server's writer thread wrote


def ingest_counters(port: int) -> dict[str, float]:
    """The group commit's counters of ``/healthz`` (groups, requests, busy_seconds)."""
    connection = Connection(port)
    ingest = connection.json("GET", "/healthz").get("ingest", {})
    connection.close()
    return {key: ingest.get(key, 0) for key in ("groups", "requests", "busy_seconds")}


def split(n: int, senders: int) -> list[range]:
    return [range(s, n, senders) for s in range(senders)]


def run_senders(
    sender: Callable[[int, range], None], n: int, senders: int, barrier: threading.Barrier
) -> float:
    """Run ``sender(index, share)`` on a thread per share of :func:`split`, release them
    together through ``barrier`` (``senders + 1`` parties: each sender waits on it once)
    and wait for all; returns the ``time.perf_counter()`` of the release."""
    threads = [threading.Thread(target=sender, args=(s, share))
               for s, share in enumerate(split(n, senders))]  # fmt: skip
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return began


def markers(n: int, count: int) -> set[int]:
    """About ``count`` request numbers spread evenly over ``n`` (none for 0)."""
    if count <= 0:
        return set()
    step = max(1, n // count)
    return set(range(step // 2, n, step))


def run_http(port: int, senders: int, n: int, marked: set[int], visibility: Visibility,
             keys: bool) -> tuple[float, np.ndarray, int]:  # fmt: skip
    """Each sender sends its share as (features, predictions) JSON request pairs."""
    latencies = [np.empty(len(share)) for share in split(n, senders)]
    errors = [0] * senders
    barrier = threading.Barrier(senders + 1)

    def sender(index: int, share: range) -> None:
        connection = Connection(port)
        spent = latencies[index]
        barrier.wait()
        for k, i in enumerate(share):
            example = f"r{i}"
            ts = now_iso()
            first = json.dumps([{"example_id": example, "ts": ts, **features(i)}]).encode()
            s = score(i)
            second = json.dumps([{"example_id": example, "ts": ts, "prediction": int(s >= 0.5),
                                  "score": s, "latency_ms": 1 + i % 20 / 10}]).encode()  # fmt: skip
            began = time.perf_counter()
            status_f, _ = connection.send(encode("POST", FEATURES_PATH, first,
                                                 uuid.uuid4().hex if keys else None))  # fmt: skip
            status_p, _ = connection.send(encode("POST", PREDICTIONS_PATH, second,
                                                 uuid.uuid4().hex if keys else None))  # fmt: skip
            acknowledged = time.perf_counter()
            spent[k] = acknowledged - began
            if status_f != 200 or status_p != 200:
                errors[index] += 1
            elif i in marked:
                visibility.acknowledged(example, acknowledged)
        connection.close()

    began = run_senders(sender, n, senders, barrier)
    return time.perf_counter() - began, np.concatenate(latencies), sum(errors)


def run_client(port: int, senders: int, n: int, marked: set[int], visibility: Visibility,
               rate: float | None = None) -> tuple[float, np.ndarray, np.ndarray, int]:  # fmt: skip
    """The senders share one background Client; returns (elapsed until flush() returned,
    caller latencies, marker times to acknowledgement, records not acknowledged). With
    ``rate``, the senders together log ``rate`` predictions a second (each paced at its
    share) instead of as fast as they can."""
    import pyarrow as pa
    import pyarrow.compute as pc

    import evalstore

    client = evalstore.Client(f"http://127.0.0.1:{port}", on_full="block")
    marker_ids = pa.array([f"c{i}" for i in sorted(marked)])
    logged_at: dict[str, float] = {}
    acks: dict[str, set[str]] = {}
    to_ack: list[float] = []
    # the client's transport (private, read-only use): the receipt time of each batch, to
    # time each marker's acknowledgement exactly; the send itself is unchanged
    transport = client._transport
    send = transport.send

    def timed_send(batch: Any) -> Any:
        receipt = send(batch)
        at = time.perf_counter()
        column = batch.table.column("example_id")
        for example in column.filter(pc.is_in(column, value_set=marker_ids)).to_pylist():
            kinds = acks.setdefault(example, set())
            kinds.add(batch.kind)
            if len(kinds) == 2:  # features and predictions both committed
                to_ack.append(at - logged_at[example])
                visibility.acknowledged(example, at)
        return receipt

    transport.send = timed_send
    latencies = [np.empty(len(share)) for share in split(n, senders)]
    barrier = threading.Barrier(senders + 1)

    def sender(index: int, share: range) -> None:
        spent = latencies[index]
        log = client.log_prediction
        clock = time.perf_counter
        period = senders / rate if rate else 0.0
        barrier.wait()
        start = clock()
        for k, i in enumerate(share):
            if period and (pause := start + k * period - clock()) > 0:
                time.sleep(pause)
            s = score(i)
            example = f"c{i}"
            began = clock()
            if i in marked:
                logged_at[example] = began
            log(MODEL, "v1", example, features(i), int(s >= 0.5), s, 1 + i % 20 / 10)
            spent[k] = clock() - began

    began = run_senders(sender, n, senders, barrier)
    if not client.flush(600):
        raise RuntimeError("the client did not deliver within 600 s")
    elapsed = time.perf_counter() - began
    stats = client.close()
    return elapsed, np.concatenate(latencies), np.array(to_ack), stats.logged - stats.acknowledged


def run_case(mode: str, senders: int, n: int, args: argparse.Namespace) -> Result:
    """One case on a new server and store."""
    with tempfile.TemporaryDirectory(prefix="bench_streaming_") as folder:
        port = free_port()
        # not named after the model: "stream" would be both a catalog and a schema
        server = start_server(Path(folder) / "bench.duckdb", port, *args.serve_options)
        try:
            prepare(port)
            visibility = Visibility()
            stop = threading.Event()
            pollers = []
            queries = (("sql", sql_query), (args.family, window_query(args.family)))
            for name, query in queries if args.markers > 0 else ():
                visibility.add_poller(name)
                arguments = (port, name, visibility, stop, query)
                pollers.append(threading.Thread(target=poller, args=arguments))
            for thread in pollers:
                thread.start()
            marked = markers(n, args.markers)
            ingest_before = ingest_counters(port)
            cpu_before, server_before, host_before = (
                cpu_seconds(),
                process_cpu_seconds(server.pid),
                host_busy_seconds(),
            )
            if mode == "http":
                elapsed, caller, errors = run_http(port, senders, n, marked, visibility, args.keys)
                to_ack = caller
            else:
                elapsed, caller, to_ack, errors = run_client(
                    port, senders, n, marked, visibility, args.rate
                )
            cpu = cpu_seconds() - cpu_before
            server_cpu = process_cpu_seconds(server.pid) - server_before
            host = host_busy_seconds() - host_before
            ingest = ingest_counters(port)
            stop.set()
            for thread in pollers:
                thread.join(timeout=120)
            if visibility.failures or any(thread.is_alive() for thread in pollers):
                raise RuntimeError(f"a visibility poller failed: {visibility.failures}")
            poller_cpu = sum(visibility.cpu.values())  # approximately: to the pollers' end
            prefix = "r" if mode == "http" else "c"
            connection = Connection(port)
            count = (
                f"SELECT count(*) AS n FROM {MODEL}.predictions AS p JOIN {MODEL}.features "
                "AS f USING (example_id) WHERE starts_with(p.example_id, ?)"
            )
            stored = connection.json("POST", "/v1/sql", {"sql": count, "params": [prefix]})
            stored = stored[0]["n"]
            connection.close()
        finally:
            stop_server(server)
    sender_cpu = max(0.0, cpu - poller_cpu)
    return Result(
        mode=mode, senders=senders, requests=n, elapsed=elapsed, caller=caller, to_ack=to_ack,
        visible=visibility.seen, polls=visibility.polls, server_cpu=server_cpu / elapsed,
        sender_cpu=sender_cpu / elapsed, other_cpu=max(0.0, host - cpu - server_cpu) / elapsed,
        errors=errors, stored=stored,
        group=(ingest["requests"] - ingest_before["requests"])
        / max(1, ingest["groups"] - ingest_before["groups"]),
        writer_busy=(ingest["busy_seconds"] - ingest_before["busy_seconds"]) / elapsed,
    )  # fmt: skip


# ---------------------------------------------------------------- report


def ms(values: Any, q: float) -> str:
    values = np.asarray(values, dtype=float)
    return "-" if values.size == 0 else f"{np.percentile(values, q) * 1e3:,.1f}"


def us(values: Any, q: float) -> str:
    values = np.asarray(values, dtype=float)
    return "-" if values.size == 0 else f"{np.percentile(values, q) * 1e6:,.1f} µs"


def report(results: list[Result], family: str) -> list[str]:
    header = ["mode", "senders", "requests/s", "caller p50", "caller p99", "ack p50 ms",
              "ack p99 ms", "sql p50 / p95 ms", f"{family} p50 / p95 ms", "CPU: server / senders "
              "/ others", "errors", "stored"]  # fmt: skip
    rows = []
    for r in results:
        if r.mode == "http":
            caller = (f"{ms(r.caller, 50)} ms", f"{ms(r.caller, 99)} ms")
        else:
            caller = (us(r.caller, 50), us(r.caller, 99))
        rows.append([
            "JSON requests (2 per prediction)" if r.mode == "http" else "evalstore.Client (1)",
            str(r.senders), f"{r.requests / r.elapsed:,.0f}", *caller,
            ms(r.to_ack, 50), ms(r.to_ack, 99),
            f"{ms(r.visible.get('sql', []), 50)} / {ms(r.visible.get('sql', []), 95)}",
            f"{ms(r.visible.get(family, []), 50)} / {ms(r.visible.get(family, []), 95)}",
            f"{r.server_cpu:.0%} / {r.sender_cpu:.0%} / {r.other_cpu:.0%}",
            str(r.errors), f"{r.stored:,}",
        ])  # fmt: skip
    lines = table(header, rows)
    lines.append("")
    for r in results:
        polls = ", ".join(
            f"{name} {ms(values, 50)} ms ({len(values)} polls, {len(r.visible[name])} markers)"
            for name, values in r.polls.items()
        )
        lines.append(
            f"{r.mode} {r.senders} senders: {r.elapsed:.1f} s; {r.group:.1f} ingest requests per "
            f"commit, writer busy {r.writer_busy:.0%}; poll p50 {polls}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=250_000, help="requests per case")
    parser.add_argument("--senders", default="8,32", help="concurrent senders (8,32)")
    parser.add_argument("--modes", default="http,client", help="http, client or both")
    parser.add_argument("--markers", type=int, default=300,
                        help="marker requests per case (0: no visibility polling)")  # fmt: skip
    parser.add_argument("--family", choices=("quality", "drift"), default="quality",
                        help="the windowed query polled for visibility (quality)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=None,
                        help="client mode: predictions/s of all senders together, paced "
                        "(default: as fast as they can)")  # fmt: skip
    parser.add_argument("--serve", dest="serve_options", action="append", default=[],
                        help="an option for evalstore serve, e.g. --serve=--monitor-every=0 "
                        "(repeat it)")  # fmt: skip
    parser.add_argument("--no-keys", dest="keys", action="store_false",
                        help="JSON requests without Idempotency-Key")  # fmt: skip
    args = parser.parse_args()
    results = []
    load = [load_average()]
    for mode in args.modes.split(","):
        for senders in (int(s) for s in args.senders.split(",")):
            result = run_case(mode, senders, args.requests, args)
            print(f"{mode} {senders} senders: {args.requests / result.elapsed:,.0f}/s, "
                  f"{result.errors} errors, {result.stored:,} stored", file=sys.stderr)  # fmt: skip
            results.append(result)
    load.append(load_average())
    print(f"\n{machine()}; {versions('duckdb', 'pyarrow', 'fastapi', 'uvicorn')}")
    serve = " ".join(args.serve_options) or "(defaults)"
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average (1 min) {load[0]:.1f} at start, "
          f"{load[1]:.1f} at end; evalstore serve options: {serve}")  # fmt: skip
    pacing = f"paced at {args.rate:,.0f}/s in all" if args.rate else "unpaced"
    print(
        f"{args.requests:,} prediction requests with 10 features per case; requests/s are "
        f"predictions/s; client senders {pacing}; "
        f"Idempotency-Key {'on' if args.keys else 'off'}; visibility polled with "
        f"{args.markers} markers (sql: /v1/sql; {args.family}: windowed, last 5 min)\n"
    )
    print("\n".join(report(results, args.family)))


if __name__ == "__main__":
    main()
