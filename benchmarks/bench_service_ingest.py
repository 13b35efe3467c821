"""Service ingest benchmark: single-example JSON requests, group commit on vs off.

    python benchmarks/bench_service_ingest.py [--seconds 5] [--clients 1,8,32] [--quick]

A model server logs each prediction (and later each label) as it makes it: one example per
HTTP request. This starts a real ``evalstore serve`` process on a free 127.0.0.1 port, into a
fresh store file, once with ``--no-group-commit`` (each request its own transaction: the
behaviour before issue 21) and once with group commit (the default), and for each kind
(``predictions``: example_id, ts, score; ``labels``: example_id, ts, label) and each number of
concurrent clients (1, 8, 32) sends single-example JSON requests for ``--seconds`` seconds
(after a one-second warm-up). Each client is a thread with one keep-alive connection and
pre-encoded requests (raw sockets, no HTTP library on the client side, so the client costs
little of the 2 cores it shares with the server); every example id is new.

The table shows requests/s, p50 and p99 latency (send to full response), the server
process's CPU seconds per 1,000 requests, the mean group size and the writer thread's busy
time per request (``/healthz``: the serial cost that bounds requests/s), and the after
(group commit) / before ratio of requests/s. Then the per-request breakdown of one
single-example request, in-process on a store file: JSON parse, plan (registry lookup and
schema), insert + checks, the ``evalstore.batches`` row, COMMIT (fsync), against the HTTP
latency at 1 client; and ``Store.log_predictions`` whole (the library path).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_streaming import Connection, encode, free_port
from harness import machine, process_cpu_seconds, table, versions

KINDS = ("predictions", "labels")


def start_server(path: Path, group_commit: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    flag = "--group-commit" if group_commit else "--no-group-commit"
    process = subprocess.Popen(
        [sys.executable, "-c", "from evalstore.cli import main; main()", "serve", str(path),
         "--port", str(port), "--log-level", "warning", flag],
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, _ = request(port, "GET", "/healthz")
            if status == 200:
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on a new connection (setup and status only)."""
    connection = Connection(port, timeout=30)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        status, payload = connection.send(encode(method, path, data))
    finally:
        connection.close()
    return status, json.loads(payload) if payload else None


def body(kind: str, example: str, second: int) -> bytes:
    ts = f"2026-01-01T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
    if kind == "predictions":
        record = {"example_id": example, "ts": ts, "score": second % 1000 / 1000}
    else:
        record = {"example_id": example, "ts": ts, "label": second % 2}
    return json.dumps([record]).encode()


def run_case(port: int, kind: str, clients: int, seconds: float, tag: str) -> dict[str, Any]:
    """``clients`` threads sending single-example requests for ``seconds`` (after 1 s)."""
    path = (
        "/v1/models/svc/predictions?version=v1"
        if kind == "predictions"
        else ("/v1/models/svc/labels")
    )
    start = threading.Barrier(clients + 1)
    stop = threading.Event()
    measuring = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients

    def client(index: int) -> None:
        connection = Connection(port)  # keep-alive, TCP_NODELAY
        try:
            start.wait()
            i = 0
            while not stop.is_set():
                data = encode("POST", path, body(kind, f"{tag}-{index}-{i}", i))
                i += 1
                began = time.perf_counter()
                status, _ = connection.send(data)
                took = time.perf_counter() - began
                if measuring.is_set():
                    latencies[index].append(took)
                    if status != 200:
                        failures[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(1.0)  # warm-up
    cpu_before = SERVER_CPU()
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - began
    cpu = SERVER_CPU() - cpu_before
    stop.set()
    for thread in threads:
        thread.join()
    every = sorted(t for per in latencies for t in per)
    n = len(every)
    return {
        "requests_per_s": n / elapsed,
        "p50_ms": every[n // 2] * 1e3 if n else float("nan"),
        "p99_ms": every[min(n - 1, int(n * 0.99))] * 1e3 if n else float("nan"),
        "server_cpu_per_1000": cpu / n * 1000 if n else float("nan"),
        "failures": sum(failures),
        "requests": n,
    }


SERVER_CPU = lambda: 0.0  # noqa: E731  (set per server)


def serve_cases(
    group_commit: bool, clients: list[int], seconds: float, kinds: tuple[str, ...] = KINDS
) -> list[dict[str, Any]]:
    global SERVER_CPU
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        process, port = start_server(Path(workdir) / "svc.duckdb", group_commit)
        SERVER_CPU = lambda: process_cpu_seconds(process.pid)  # noqa: E731
        try:
            status, _ = request(
                port,
                "POST",
                "/v1/models/svc/versions",
                {"version": "v1", "task": "binary", "classes": [0, 1], "positive_class": 1},
            )
            assert status == 201, status
            for kind in kinds:
                for n in clients:
                    before = request(port, "GET", "/healthz")[1].get("ingest", {})
                    result = run_case(port, kind, n, seconds, f"{kind}{n}")
                    after = request(port, "GET", "/healthz")[1].get("ingest", {})
                    groups = after.get("groups", 0) - before.get("groups", 0)
                    calls = after.get("requests", 0) - before.get("requests", 0)
                    busy = after.get("busy_seconds", 0) - before.get("busy_seconds", 0)
                    result.update(
                        writer_ms=busy / calls * 1e3 if calls else float("nan"),
                        mode="group commit" if group_commit else "one commit each",
                        kind=kind,
                        clients=n,
                        group=calls / groups if groups else 1.0,
                    )
                    results.append(result)
                    print(
                        f"  {result['mode']:>15} {kind:<11} {n:>2} clients: "
                        f"{result['requests_per_s']:8.0f} req/s p50 {result['p50_ms']:6.1f} ms "
                        f"p99 {result['p99_ms']:7.1f} ms group {result['group']:5.1f} "
                        f"writer {result['writer_ms']:5.2f} ms/req "
                        f"server CPU {result['server_cpu_per_1000']:5.2f} s/1k",
                        file=sys.stderr,
                    )
        finally:
            stop_server(process)
    return results


def breakdown(repeat: int = 300) -> list[tuple[str, float]]:
    """Median milliseconds of each step of one single-example predictions request."""
    import evalstore
    from evalstore.core.ingest_call import LogCall, Lookups, plan_call
    from evalstore.core.ingest_group import Item, _write_item
    from evalstore.core.ingest_write import Written, record
    from server.formats import body_to_data
    from server.ingest_body import Body

    steps: dict[str, list[float]] = {
        k: [] for k in ("parse", "plan", "insert_checks", "batches_row", "commit", "library")
    }
    with tempfile.TemporaryDirectory() as workdir:
        store = evalstore.open(Path(workdir) / "b.duckdb")
        store.register_model("svc", "v1", "binary", classes=[0, 1], positive_class=1)
        con = store.connection
        call = LogCall("predictions", "svc", {"version": "v1"})
        for i in range(repeat + 20):
            raw = body("predictions", f"b{i}", i)
            t0 = time.perf_counter()
            data = body_to_data(Body.of(raw), "application/json")
            t1 = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            t2 = time.perf_counter()
            plan = plan_call(con, call, data.schema, Lookups(con))
            t3 = time.perf_counter()
            item = Item(call, data, "bench")
            written = _write_item(con, plan, item, 0)
            t4 = time.perf_counter()
            record(con, [Written(plan, written.receipt, item.received_at, "bench", None)])
            t5 = time.perf_counter()
            con.execute("COMMIT")
            t6 = time.perf_counter()
            library = body_to_data(Body.of(body("predictions", f"l{i}", i)), "application/json")
            t6 = time.perf_counter()
            store.log_predictions("svc", library, version="v1")
            t7 = time.perf_counter()
            if i >= 20:
                steps["parse"].append(t1 - t0)
                steps["plan"].append(t3 - t2)
                steps["insert_checks"].append(t4 - t3)
                steps["batches_row"].append(t5 - t4)
                steps["commit"].append(t6 - t5 + t2 - t1)
                steps["library"].append(t7 - t6)
        store.close()
    return [(name, statistics.median(v) * 1e3) for name, v in steps.items()]


#: What each step of :func:`breakdown` covers.
STEPS = {
    "parse": "parse the JSON body (server.json_body: small bodies by the standard library)",
    "plan": "plan (registry lookup, schema, checks to run)",
    "insert_checks": "insert + checks (one statement each)",
    "batches_row": "the evalstore.batches row",
    "commit": "BEGIN + COMMIT (fsync of the write-ahead log)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--only-group-commit", action="store_true", help="skip the one-commit-each server"
    )
    parser.add_argument("--quick", action="store_true", help="2 s per case")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    clients = [int(c) for c in args.clients.split(",")]
    print(f"machine: {machine()}", file=sys.stderr)
    kinds = tuple(args.kinds.split(","))
    after = serve_cases(True, clients, seconds, kinds)
    if args.only_group_commit:
        return
    before = serve_cases(False, clients, seconds, kinds)
    rows = []
    for b, a in zip(before, after, strict=True):
        for r in (b, a):
            ratio = f"{a['requests_per_s'] / b['requests_per_s']:.1f}x" if r is a else "1.0x"
            rows.append(
                [
                    f"{r['kind']}, {r['clients']} clients, {r['mode']}",
                    f"{r['requests_per_s']:,.0f}",
                    f"{r['p50_ms']:.1f}",
                    f"{r['p99_ms']:.1f}",
                    f"{r['server_cpu_per_1000']:.2f}",
                    f"{r['group']:.1f}",
                    f"{r['writer_ms']:.2f}" if r["mode"] == "group commit" else "-",
                    str(r["failures"]),
                    ratio,
                ]
            )
    print()
    print(f"Single-example JSON ingest requests, {seconds:g} s per case")
    print(f"machine: {machine()}; {versions('duckdb', 'pyarrow', 'fastapi', 'uvicorn')}")
    print()
    header = ["case", "req/s", "p50 ms", "p99 ms", "server CPU s / 1k req", "mean group",
              "writer ms / req", "errors", "req/s vs one commit each"]  # fmt: skip
    print("\n".join(table(header, rows)))
    print()
    steps = breakdown()
    http_p50 = next(
        r["p50_ms"] for r in after if r["kind"] == "predictions" and r["clients"] == min(clients)
    )
    total = sum(ms for name, ms in steps if name != "library")
    print("Per-request cost of one single-example predictions request (median ms, in-process)")
    print()
    rows = [[STEPS[name], f"{ms:.2f}"] for name, ms in steps if name != "library"]
    rows.append(["sum of the steps", f"{total:.2f}"])
    rows.append(
        [
            f"HTTP p50 at {min(clients)} client (group commit) minus the steps",
            f"{http_p50 - total:.2f}",
        ]
    )
    rows.append(["Store.log_predictions, whole (library path)", f"{dict(steps)['library']:.2f}"])
    print("\n".join(table(["step", "ms"], rows)))
    print(json.dumps({"before": before, "after": after, "breakdown": steps}), file=sys.stderr)


if __name__ == "__main__":
    main()
