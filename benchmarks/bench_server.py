"""HTTP server benchmark: ingest rows/s and dashboard-query latency, side by side in-process.

    python benchmarks/bench_server.py [--rows 1000000] [--quick]

1. Ingest: a real ``evalstore serve`` process on a free 127.0.0.1 port, one client posting
   feature batches (10 float64 features + ``example_id`` + ``ts``) as JSON records at batch
   sizes 1, 100 and 10,000 and as Arrow IPC streams at 10,000 and 100,000 rows. Bodies are
   encoded before the clock starts (the server's decoding, validation, commit and the HTTP
   round trip are timed; the client's ``json.dumps`` is not). Side by side: the same batches
   through ``store.log_features`` in-process (Arrow tables) into a fresh store. Each case
   writes to its own model so no case pays for another's rows in the duplicate-id check.
2. Dashboard query: ``--rows`` predictions (default 1M) over 30 days with labels for 80% of
   them, loaded through the server as Arrow; then ``POST /v1/sql`` with daily volume and
   accuracy from ``<model>.evaluations`` at 1, 8 and 32 concurrent clients (httpx, one
   client per thread), p50/p99 per request. Side by side: the same SQL in-process at the same
   concurrency (one DuckDB cursor per thread) on the same file after the server stopped.

The table shows medians; ``server CPU s`` is the server process's CPU over the case and
``other CPU s`` the rest of the machine's (minus the benchmark and the server): > 0 means the
run shared the 2 cores with something else.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from harness import Timed, machine, versions

import evalstore
from server.settings import Settings

ARROW = "application/vnd.apache.arrow.stream"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DASHBOARD_SQL = """
SELECT date_trunc('day', ts) AS day,
       count(*) AS predictions,
       count(label) AS labeled,
       avg(CASE WHEN label IS NULL THEN NULL WHEN prediction = label THEN 1.0 ELSE 0.0 END)
           AS accuracy
FROM dash.evaluations
GROUP BY ALL
ORDER BY day
"""
#: (case, format, batch rows, batches)
INGEST_CASES = [
    ("json", 1, 400),
    ("json", 100, 100),
    ("json", 10_000, 10),
    ("arrow", 10_000, 30),
    ("arrow", 100_000, 10),
]
CONCURRENCY = (1, 8, 32)


def features(rows: int, offset: int) -> pa.Table:
    rng = np.random.default_rng(offset)
    columns: dict[str, Any] = {
        "example_id": pa.array([f"e{offset + i}" for i in range(rows)]),
        "ts": pa.array(
            [T0 + timedelta(seconds=offset + i) for i in range(rows)], pa.timestamp("us", "UTC")
        ),
    }
    for j in range(10):
        columns[f"f{j}"] = rng.normal(size=rows)
    return pa.table(columns)


def arrow_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def json_body(table: pa.Table) -> bytes:
    records = table.to_pylist()
    for record in records:
        record["ts"] = record["ts"].isoformat()
    return json.dumps(records).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from evalstore.cli import main; main()", "serve", str(path),
         "--port", str(port), "--log-level", "warning", "--time-limit", "300"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)


def ingest_cases(url: str, pid: int, workdir: Path, quick: bool) -> list[dict[str, Any]]:
    results = []
    client = httpx.Client(base_url=url, timeout=600)
    local = evalstore.open(workdir / "inprocess.duckdb")
    # The server raises DuckDB's checkpoint threshold and checkpoints in the background
    # when ingest pauses (server.checkpointer); give the in-process store the same threshold
    # so the comparison isolates HTTP. Its deferred checkpoint is reported separately.
    local.connection.execute(f"SET checkpoint_threshold = '{Settings.wal_limit}'")
    for fmt, size, batches in INGEST_CASES:
        if quick:
            batches = max(2, batches // 5)
        model = f"{fmt}_{size}"
        client.post(f"/v1/models/{model}/versions", json={"version": "v1", "task": "binary"})
        local.register_model(model, "v1", "binary")
        tables = [features(size, b * size) for b in range(batches)]
        encode = arrow_body if fmt == "arrow" else json_body
        headers = {"content-type": ARROW if fmt == "arrow" else "application/json"}
        bodies = [encode(t) for t in tables]
        checkpoints(client)  # no case pays for folding in the previous case's log
        with Timed(pid) as http:
            for body in bodies:
                response = client.post(
                    f"/v1/models/{model}/features", content=body, headers=headers
                )
                response.raise_for_status()
        checkpoints(client)  # the server's fold of this case's log must not share the CPU
        with Timed() as inproc:
            for table in tables:
                local.log_features(model, table)
        rows = size * batches
        results.append(
            {
                "case": f"HTTP {fmt} batch {size:,}",
                "rows": rows,
                "requests": batches,
                "seconds": http.seconds,
                "rows_s": rows / http.seconds,
                "inproc_rows_s": rows / inproc.seconds,
                "body_mb": sum(map(len, bodies)) / 1e6,
                "server_cpu": http.pid_cpu_seconds,
                "other_cpu": http.other_cpu_seconds,
            }
        )
        print(f"  ingest {results[-1]['case']}: {results[-1]['rows_s']:,.0f} rows/s", flush=True)
    with Timed() as deferred:
        local.connection.execute("CHECKPOINT")
    local.close()
    server = checkpoints(client)
    client.close()
    results.append({"server": server, "inproc_seconds": deferred.seconds})
    return results


def checkpoints(client: httpx.Client) -> dict[str, Any]:
    """The server's background checkpoints, once the log of earlier batches is folded in."""
    deadline = time.monotonic() + 120
    status = client.get("/healthz").json()["checkpoints"]
    while status["wal_bytes"] and time.monotonic() < deadline:
        time.sleep(0.2)
        status = client.get("/healthz").json()["checkpoints"]
    return status


def load_dashboard(url: str, rows: int) -> None:
    rng = np.random.default_rng(7)
    client = httpx.Client(base_url=url, timeout=600)
    client.post("/v1/models/dash/versions", json={"version": "v1", "task": "binary"})
    chunk = 100_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = [f"d{start + i}" for i in range(n)]
        seconds = rng.integers(0, 30 * 86400, n)
        ts = pa.array([T0 + timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", "UTC"))
        scores = rng.uniform(size=n)
        predictions = pa.table({"example_id": ids, "ts": ts, "score": scores})
        client.post(
            "/v1/models/dash/predictions?version=v1",
            content=arrow_body(predictions),
            headers={"content-type": ARROW},
        ).raise_for_status()
        labeled = rng.uniform(size=n) < 0.8
        truth = (rng.uniform(size=n) < scores).astype(np.int64)
        labels = pa.table(
            {"example_id": [i for i, k in zip(ids, labeled, strict=True) if k],
             "label": truth[labeled]}
        )  # fmt: skip
        client.post(
            "/v1/models/dash/labels", content=arrow_body(labels), headers={"content-type": ARROW}
        ).raise_for_status()
    client.close()


def latencies(run_one: Callable[[], None], clients: int, per_client: int) -> list[float]:
    """Per-request seconds with ``clients`` threads each running ``per_client`` requests."""
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_client):
            start = time.perf_counter()
            run_one()
            elapsed = time.perf_counter() - start
            with lock:
                times.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.quantile(np.array(values), q))


def per_client(clients: int, quick: bool) -> int:
    total = {1: 40, 8: 80, 32: 128}[clients]
    return max(2, (total // clients) // (4 if quick else 1))


def query_cases_http(url: str, pid: int, quick: bool) -> tuple[dict[int, dict], pa.Table]:
    local = threading.local()

    def run_one() -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=600)
        response = local.client.post("/v1/sql", json={"sql": DASHBOARD_SQL})
        response.raise_for_status()

    run_one()  # warm-up
    answer = httpx.post(
        f"{url}/v1/sql", json={"sql": DASHBOARD_SQL}, headers={"accept": ARROW}, timeout=600
    )
    table = ipc.open_stream(pa.py_buffer(answer.content)).read_all()
    results = {}
    for clients in CONCURRENCY:
        with Timed(pid) as meter:
            times = latencies(run_one, clients, per_client(clients, quick))
        results[clients] = summarize(times, meter)
        print(f"  HTTP  x{clients}: p50 {results[clients]['p50'] * 1000:.0f} ms", flush=True)
    return results, table


def query_cases_inprocess(path: Path, quick: bool) -> tuple[dict[int, dict], pa.Table]:
    store = evalstore.open(path, read_only=True)
    local = threading.local()

    def run_one() -> None:
        if not hasattr(local, "cursor"):
            local.cursor = store.connection.cursor()
        local.cursor.sql(DASHBOARD_SQL).to_arrow_table()

    run_one()
    table = store.sql(DASHBOARD_SQL)
    results = {}
    for clients in CONCURRENCY:
        with Timed() as meter:
            times = latencies(run_one, clients, per_client(clients, quick))
        results[clients] = summarize(times, meter)
        print(f"  local x{clients}: p50 {results[clients]['p50'] * 1000:.0f} ms", flush=True)
    store.close()
    return results, table


def summarize(times: list[float], meter: Timed) -> dict[str, float]:
    return {
        "requests": len(times),
        "p50": percentile(times, 0.5),
        "p99": percentile(times, 0.99),
        "throughput": len(times) / meter.seconds,
        "other_cpu": meter.other_cpu_seconds,
        "server_cpu": meter.pid_cpu_seconds,
    }


def report(ingest: list[dict], http: dict, local: dict, rows: int, load: tuple) -> str:
    lines = [
        "evalstore HTTP server benchmark",
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {machine(memory=False)}",
        "software: " + versions("duckdb", "pyarrow", "fastapi", "uvicorn", "httpx", "evalstore"),
        f"load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f}",
        "",
        "ingest: one client, sequential requests, 12 columns (example_id, ts, 10 float64); "
        "in-process = store.log_features(Arrow table) of the same batches",
        "",
        "| case | rows | requests | body MB | seconds | rows/s | in-process rows/s | "
        "HTTP / in-process | server CPU s | other CPU s |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    *ingest, folded = ingest
    for r in ingest:
        lines.append(
            f"| {r['case']} | {r['rows']:,} | {r['requests']} | {r['body_mb']:.1f} | "
            f"{r['seconds']:.2f} | {r['rows_s']:,.0f} | {r['inproc_rows_s']:,.0f} | "
            f"{r['rows_s'] / r['inproc_rows_s']:.2f}x | {r['server_cpu']:.2f} | "
            f"{r['other_cpu']:.2f} |"
        )
    server = folded["server"]
    lines += [
        "",
        f"checkpoints, off the ingest path: the server ran {server['checkpoints']} in the "
        f"background when ingest paused ({server['seconds_total']:.2f} s in all, WAL limit "
        f"{server['wal_limit']}); the in-process store's deferred CHECKPOINT took "
        f"{folded['inproc_seconds']:.2f} s",
    ]
    lines += [
        "",
        f"dashboard query (daily volume and accuracy from dash.evaluations, {rows:,} "
        "predictions, 80% labeled, 30 days -> 30 rows):",
        "",
        "| clients | requests | HTTP p50 ms | HTTP p99 ms | in-process p50 ms | "
        "in-process p99 ms | p50 ratio | HTTP req/s | in-process req/s | other CPU s (HTTP) |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for clients in CONCURRENCY:
        h, q = http[clients], local[clients]
        lines.append(
            f"| {clients} | {h['requests']} | {h['p50'] * 1000:.1f} | {h['p99'] * 1000:.1f} | "
            f"{q['p50'] * 1000:.1f} | {q['p99'] * 1000:.1f} | {h['p50'] / q['p50']:.2f}x | "
            f"{h['throughput']:.1f} | {q['throughput']:.1f} | {h['other_cpu']:.2f} |"
        )
    arrow = [r for r in ingest if r["case"].startswith("HTTP arrow")]
    best = max(r["rows_s"] for r in arrow)
    lines += [
        "",
        f"target: HTTP Arrow IPC ingest >= 500,000 rows/s: best {best:,.0f} rows/s -> "
        f"{'MET' if best >= 500_000 else 'NOT MET'}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="fewer batches and requests")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        workdir = Path(tmp)
        path = workdir / "served.duckdb"
        process, url = start_server(path)
        try:
            print("ingest cases", flush=True)
            ingest = ingest_cases(url, process.pid, workdir, args.quick)
            print(f"loading {args.rows:,} predictions for the dashboard query", flush=True)
            load_dashboard(url, args.rows)
            http, http_table = query_cases_http(url, process.pid, args.quick)
        finally:
            stop_server(process)
        local, local_table = query_cases_inprocess(path, args.quick)
        assert http_table.equals(local_table), "HTTP and in-process answers differ"
    print()
    print(report(ingest, http, local, args.rows, (load_start, os.getloadavg()[0])))


if __name__ == "__main__":
    main()
