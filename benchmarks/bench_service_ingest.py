"""Service ingest benchmark: single-example JSON requests and Arrow batches over HTTP.

    python benchmarks/bench_service_ingest.py                  # predictions + labels,
                                                               # 1, 8, 32 clients, 5 s each
    python benchmarks/bench_service_ingest.py --quick          # 2 s per case
    python benchmarks/bench_service_ingest.py --stored 1000000 --kinds predictions --clients 32
    python benchmarks/bench_service_ingest.py --source /tmp/old-checkout   # another version

A model server logs each prediction (and later each label) as it makes it: one example per
HTTP request. This starts a real ``evalstore serve`` process (uvicorn with httptools and
uvloop when installed; ``--http h11 --loop asyncio`` for the pure-Python stack) on a free
127.0.0.1 port over a fresh store file, registers model ``svc`` (binary), optionally fills
it with ``--stored`` predictions of version v1 first (the duplicate-id check then has them
to check against), and for each kind (``predictions``: example_id, ts, score; ``labels``:
example_id, ts, label) and each number of concurrent clients (``--clients``, default 1, 8,
32) sends single-example JSON requests for ``--seconds`` after a one-second warm-up; every
example id is new. The server's monitor loop is off (``--monitor-every 0``) unless asked
for. ``--writers`` picks the servers measured, side by side: ``journal`` (``journal=True``:
requests answered once in the durable journal, applied to DuckDB in large transactions,
:mod:`server.journal`), ``group`` (the group commit alone) and ``each``
(``--no-group-commit``: one transaction per request; ``--baseline`` adds it).

The load generator is ``wrk`` (C, ``benchmarks/wrk_ingest.lua``) when it is on the PATH
(``apt-get install wrk``), else (or with ``--load python``) threads of raw keep-alive
sockets (bench_streaming's ``Connection``). Either way it shares the machine's cores with
the server: the table shows its CPU per 1,000 requests beside the server's.

Then ``--arrow-rows`` (default 1,000 and 20,000): Arrow IPC batches of that many
prediction rows posted back to back by 4 clients for ``--seconds`` (rows/s): a batch of at
most 10,000 rows is grouped with others by the group commit, a larger one is written alone.

The tables: requests/s, p50 and p99 latency (send to full response), the server process's
CPU per 1,000 requests and its main thread's (uvicorn's event loop), the load generator's,
the mean group size and the writer thread's busy time per request (``/healthz``), the load
average when the case ran; the Arrow batches' rows/s; and the writer's cost of one
single-example request, statement by statement, in-process (:func:`breakdown`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_streaming import Connection, encode, free_port
from harness import machine, process_cpu_seconds, table, versions

KINDS = ("predictions", "labels")
HERE = Path(__file__).resolve().parent
PATHS = {
    "predictions": "/v1/models/svc/predictions?version=v1",
    "labels": "/v1/models/svc/labels",
}


def load_average() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------------- the server


def start_server(
    path: Path,
    mode: str,
    http: str,
    loop: str,
    source: Path | None,
    monitor_every: float = 0,
    http_workers: int = 1,
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    stack = "".join(f", {k}={v!r}" for k, v in (("http", http), ("loop", loop)) if v != "auto")
    if http_workers != 1:  # (an older checkout's run() does not take it)
        stack += f", http_workers={http_workers!r}"
    code = (  # (an older checkout's run() may not take http/loop: only passed when set)
        "from server.serve import run; "
        f"run({str(path)!r}, port={port}, log_level='warning', "
        f"group_commit={mode != 'each'!r}, monitor_every={monitor_every!r}{stack}"
        f"{', journal=True' if mode == 'journal' else ''})"
    )
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = f"{source}{os.pathsep}{env.get('PYTHONPATH', '')}"
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=source or HERE.parent)
    deadline = time.monotonic() + 300
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
    connection = Connection(port, timeout=300)
    try:
        data = b"" if body is None else json.dumps(body).encode()
        status, payload = connection.send(encode(method, path, data))
    finally:
        connection.close()
    return status, json.loads(payload) if payload else None


def prepare(path: Path, stored: int, source: Path | None) -> None:
    """Register ``svc`` in a new store at ``path``; log ``stored`` predictions of v1."""
    code = f"""
import duckdb, evalstore
store = evalstore.open({str(path)!r})
store.register_model("svc", "v1", "binary", classes=[0, 1], positive_class=1)
for start in range(0, {stored}, 1_000_000):
    n = min(1_000_000, {stored} - start)
    data = duckdb.sql(f"SELECT 'stored-' || (i + {{start}}) AS example_id, "
                      f"TIMESTAMPTZ '2026-01-01' AS ts, 0.5 AS score FROM range({{n}}) t(i)")
    store.log_predictions("svc", data.to_arrow_table(), "v1")
store.close()
"""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = f"{source}{os.pathsep}{env.get('PYTHONPATH', '')}"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=source or HERE.parent)


# ---------------------------------------------------------------------- load generators


def body(kind: str, example: str, second: int) -> bytes:
    ts = f"2026-01-01T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
    if kind == "predictions":
        record = {"example_id": example, "ts": ts, "score": second % 1000 / 1000}
    else:
        record = {"example_id": example, "ts": ts, "label": second % 2}
    return json.dumps([record]).encode()


def run_wrk(port: int, kind: str, clients: int, seconds: float, tag: str) -> dict[str, Any]:
    """``clients`` wrk connections for ``seconds`` (after 1 s of warm-up)."""

    def wrk(duration: float, prefix: str) -> tuple[dict[str, Any], float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{duration:g}s", "--timeout",
             "30s", "-s", str(HERE / "wrk_ingest.lua"), f"http://127.0.0.1:{port}", "--",
             kind, PATHS[kind], prefix],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return json.loads(done.stdout.strip().splitlines()[-1]), cpu

    wrk(1, f"{tag}w")
    cpu_before, loop_before, fronts_before = SERVER_CPU(), LOOP_CPU(), FRONTS_CPU()
    threads_before = THREADS_CPU()
    result, load_cpu = wrk(seconds, tag)
    cpu, loop_cpu = SERVER_CPU() - cpu_before, LOOP_CPU() - loop_before
    fronts_cpu = FRONTS_CPU() - fronts_before
    threads = per_request(threads_before, THREADS_CPU(), result["requests"])
    cpu += fronts_cpu
    n = result["requests"]
    return {
        "threads_ms": threads,
        "requests_per_s": n / result["seconds"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "server_cpu_per_1000": cpu / n * 1000 if n else float("nan"),
        "loop_cpu_per_1000": loop_cpu / n * 1000 if n else float("nan"),
        "fronts_cpu_per_1000": fronts_cpu / n * 1000 if n else float("nan"),
        "load_cpu_per_1000": load_cpu / n * 1000 if n else float("nan"),
        "failures": result["errors"],
        "requests": n,
    }


def run_python(port: int, kind: str, clients: int, seconds: float, tag: str) -> dict[str, Any]:
    """``clients`` threads sending single-example requests for ``seconds`` (after 1 s)."""
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
                data = encode("POST", PATHS[kind], body(kind, f"{tag}-{index}-{i}", i))
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
    cpu_before, load_before, loop_before = SERVER_CPU(), time.process_time(), LOOP_CPU()
    fronts_before, threads_before = FRONTS_CPU(), THREADS_CPU()
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - began
    cpu, load_cpu = SERVER_CPU() - cpu_before, time.process_time() - load_before
    loop_cpu = LOOP_CPU() - loop_before
    fronts_cpu = FRONTS_CPU() - fronts_before
    threads_after = THREADS_CPU()
    cpu += fronts_cpu
    stop.set()
    for thread in threads:
        thread.join()
    every = sorted(t for per in latencies for t in per)
    n = len(every)
    return {
        "threads_ms": per_request(threads_before, threads_after, n),
        "requests_per_s": n / elapsed,
        "p50_ms": every[n // 2] * 1e3 if n else float("nan"),
        "p99_ms": every[min(n - 1, int(n * 0.99))] * 1e3 if n else float("nan"),
        "server_cpu_per_1000": cpu / n * 1000 if n else float("nan"),
        "loop_cpu_per_1000": loop_cpu / n * 1000 if n else float("nan"),
        "fronts_cpu_per_1000": fronts_cpu / n * 1000 if n else float("nan"),
        "load_cpu_per_1000": load_cpu / n * 1000 if n else float("nan"),
        "failures": sum(failures),
        "requests": n,
    }


def arrow_body(rows: int, start: int) -> bytes:
    """An Arrow IPC stream of ``rows`` predictions with ids ``arrow<rows>-<start>``, ..."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.ipc as ipc

    numbers = np.arange(start, start + rows)
    data = pa.table(
        {
            "example_id": pc.binary_join_element_wise(
                f"arrow{rows}-", pa.array(numbers).cast(pa.string()), ""
            ),
            "ts": pa.array(1_767_225_600_000_000 + numbers, pa.timestamp("us", "UTC")),
            "score": pa.array(numbers % 1000 / 1000),
        }
    )
    sink = io.BytesIO()
    with ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    return sink.getvalue()


def run_arrow(port: int, rows: int, seconds: float, clients: int = 4) -> dict[str, Any]:
    """``clients`` threads posting ``rows``-row Arrow batches back to back."""
    stop = threading.Event()
    written = [0] * clients
    failures = [0] * clients

    def client(index: int) -> None:
        connection = Connection(port, timeout=300)
        try:
            for batch in range(1_000_000):
                if stop.is_set():
                    break
                data = arrow_body(rows, (index * 1_000_000 + batch) * rows)
                head = (
                    f"POST {PATHS['predictions']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/vnd.apache.arrow.stream\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                ).encode()
                status, _ = connection.send(head + data)
                if status == 200:
                    written[index] += rows
                else:
                    failures[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return {"rows": rows, "rows_per_s": sum(written) / elapsed, "failures": sum(failures)}


SERVER_CPU = lambda: 0.0  # noqa: E731  (set per server)
LOOP_CPU = lambda: 0.0  # noqa: E731  (the server's main thread: uvicorn's event loop)
FRONTS_CPU = lambda: 0.0  # noqa: E731  (--http-workers N > 1: the N front processes)
THREADS_CPU = lambda: {}  # noqa: E731  (the server process's threads, by name)


def per_request(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """CPU milliseconds a request of each named thread between two readings."""
    return {
        name: (seconds - before.get(name, 0.0)) / n * 1e3 if n else float("nan")
        for name, seconds in sorted(after.items())
    }


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc; the HTTP fronts of a writer)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


def fronts_cpu_seconds(pid: int) -> float:
    """CPU seconds of the children of ``pid`` alive now (a front restarted meanwhile would
    lose its predecessor's seconds: none is, in a benchmark)."""
    total = 0.0
    for child in children(pid):
        with contextlib.suppress(OSError):  # exited meanwhile
            total += process_cpu_seconds(child)
    return total


def threads_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the threads of ``pid`` by name (``/proc/<pid>/task/*/comm``: the
    server names its own, ``es-writer``, ``es-applier``, ``es-link-*``); the main thread
    (uvicorn's event loop) as ``event loop``, unnamed ones (DuckDB's, Python's) as
    ``other``."""
    found: dict[str, float] = defaultdict(float)
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{task}/comm") as comm:
                name = comm.read().strip()
            tid = int(task)
            name = (
                "event loop"
                if tid == pid
                else name.removeprefix("es-")
                if name.startswith("es-")
                else "other"
            )
            found[name] += thread_cpu_seconds(pid, tid)
    return found


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU seconds of thread ``tid`` of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/task/{tid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MODES = {"journal": "journal", "group": "group commit", "each": "one commit each"}


def serve_cases(
    args: argparse.Namespace, kind_of_writer: str, http_workers: int = 1
) -> dict[str, Any]:
    global SERVER_CPU, LOOP_CPU, FRONTS_CPU, THREADS_CPU
    results: dict[str, Any] = {"requests": [], "arrow": []}
    run = run_wrk if args.load == "wrk" else run_python
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "svc.duckdb"
        prepare(path, args.stored, args.source)
        process, port = start_server(
            path, kind_of_writer, args.http, args.loop, args.source, args.monitor_every,
            http_workers,
        )  # fmt: skip
        SERVER_CPU = lambda: process_cpu_seconds(process.pid)  # noqa: E731
        LOOP_CPU = lambda: thread_cpu_seconds(process.pid, process.pid)  # noqa: E731
        FRONTS_CPU = lambda: fronts_cpu_seconds(process.pid)  # noqa: E731
        THREADS_CPU = lambda: threads_cpu_seconds(process.pid)  # noqa: E731
        mode = MODES[kind_of_writer]
        if http_workers > 1:
            mode = f"{mode}, {http_workers} HTTP workers"
        try:
            for kind in args.kinds:
                for n in args.clients:
                    before = request(port, "GET", "/healthz")[1].get("ingest", {})
                    load = load_average()
                    result = run(port, kind, n, args.seconds, f"{kind}{n}{kind_of_writer}")
                    after = request(port, "GET", "/healthz")[1].get("ingest", {})
                    groups = after.get("groups", 0) - before.get("groups", 0)
                    calls = after.get("requests", 0) - before.get("requests", 0)
                    busy = after.get("busy_seconds", 0) - before.get("busy_seconds", 0)
                    journal = after.get("journal") or {}
                    if journal:
                        busy += journal["apply_seconds"] - before["journal"]["apply_seconds"]
                        # the lag of this case's requests (the last 10,000 applied)
                        result["lag_ms"] = journal["lag_ms"]
                    result.update(
                        writer_ms=busy / calls * 1e3 if calls else float("nan"),
                        mode=mode,
                        kind=kind,
                        clients=n,
                        group=calls / groups if groups else 1.0,
                        load=max(load, load_average()),
                    )
                    results["requests"].append(result)
                    print(
                        f"  {mode:>15} {kind:<11} {n:>2} clients: "
                        f"{result['requests_per_s']:8.0f} req/s p50 {result['p50_ms']:6.1f} ms "
                        f"p99 {result['p99_ms']:7.1f} ms group {result['group']:5.1f} "
                        f"writer {result['writer_ms']:5.2f} ms/req server CPU "
                        f"{result['server_cpu_per_1000']:5.2f} s/1k, load "
                        f"{result['load']:.1f}",
                        file=sys.stderr,
                    )
            for rows in args.arrow_rows:
                result = run_arrow(port, rows, args.seconds)
                result.update(mode=mode, load=load_average())
                results["arrow"].append(result)
                print(f"  {mode:>15} Arrow {rows:>6}-row batches: {result}", file=sys.stderr)
        finally:
            stop_server(process)
    return results


# ---------------------------------------------------------------------- the writer's cost


def breakdown(repeat: int = 200) -> list[tuple[str, float, float]]:
    """Median wall and CPU milliseconds of each step of one single-example predictions
    request written as a group of one (what the writer does at 1 client), in-process on a
    store file: the statements by kind, and the Python around them."""
    import evalstore
    from evalstore.core.ingest_call import LogCall
    from evalstore.core.ingest_group import Item, execute_group
    from evalstore.core.ingest_keys import StoredKeys
    from server.formats import body_to_data
    from server.ingest_body import Body

    kinds = {
        "BEGIN": "BEGIN",
        "SELECT * FROM evalstore.models": "registry lookup (plan)",
        "SELECT current_database()": "catalog name",
        "SELECT nextval": "batch id",
        "SELECT c.n, new.*": "catch up the stored-key set",
        "SELECT count(*) FILTER": "row-wise checks (one count)",
        "INSERT INTO evalstore.batches": "the evalstore.batches row",
        "INSERT INTO": "insert ... RETURNING ids, key hashes",
        "COMMIT": "COMMIT (fsync of the write-ahead log)",
    }
    steps: dict[str, list[tuple[float, float]]] = defaultdict(list)

    class Timed:
        """The store's connection, timing each statement by kind."""

        def __init__(self, con: Any) -> None:
            self.con = con
            self.times: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

        def execute(self, sql: str, *args: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            result = self.con.execute(sql, *args)
            name = next((v for k, v in kinds.items() if sql.startswith(k)), "other statements")
            self.times[name][0] += time.perf_counter() - wall
            self.times[name][1] += time.process_time() - cpu
            return result

        def __getattr__(self, name: str) -> Any:
            return getattr(self.con, name)

    with tempfile.TemporaryDirectory() as workdir:
        store = evalstore.open(Path(workdir) / "b.duckdb")
        store.register_model("svc", "v1", "binary", classes=[0, 1], positive_class=1)
        keys = StoredKeys()
        for i in range(repeat + 20):
            raw = body("predictions", f"b{i}", i)
            wall, cpu = time.perf_counter(), time.process_time()
            data = body_to_data(Body.of(raw), "application/json")
            parse = (time.perf_counter() - wall, time.process_time() - cpu)
            item = Item(LogCall("predictions", "svc", {"version": "v1"}), data, "bench")
            con = Timed(store.connection)
            wall, cpu = time.perf_counter(), time.process_time()
            (result,) = execute_group(con, [item], stored_keys=keys)  # type: ignore[arg-type]
            total = (time.perf_counter() - wall, time.process_time() - cpu)
            assert not isinstance(result, BaseException), result
            if i < 20:
                continue
            steps["parse the JSON body (request handler)"].append(parse)
            for name, (w, c) in con.times.items():
                steps[name].append((w, c))
            statements = [sum(t[k] for t in con.times.values()) for k in (0, 1)]
            steps["Python: plan, Arrow, receipts"].append(
                (total[0] - statements[0], total[1] - statements[1])
            )
            steps["writer, whole (one group of one request)"].append(total)
        store.close()
    return [
        (
            name,
            statistics.median(w for w, _ in values) * 1e3,
            statistics.median(c for _, c in values) * 1e3,
        )
        for name, values in steps.items()
    ]


def journal_breakdown(repeat: int = 100) -> list[tuple[str, float, float]]:
    """Median wall and CPU milliseconds of the journaled writer's steps for a group of one
    and a group of 16 single-example predictions requests (and, for 16, the writer's
    decoding of a front's message holding them), and of the applier's apply of 160 such
    requests in one transaction (per request), in-process on a store file."""
    import evalstore
    from evalstore.core.ingest_call import LogCall
    from evalstore.core.ingest_group import Item
    from evalstore.core.journal import Entry, JournalFile, apply
    from evalstore.core.journal_prepare import WriterState, prepare_group
    from server.formats import body_to_data
    from server.front_link import HEADER, decode_group, encode_group
    from server.group_commit import LoopWaiter, answer
    from server.ingest_body import Body

    steps: dict[str, list[tuple[float, float]]] = defaultdict(list)
    loop = asyncio.new_event_loop()

    def timed(name: str, call: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        steps[name].append((time.perf_counter() - wall, time.process_time() - cpu))
        return result

    with tempfile.TemporaryDirectory() as workdir:
        store = evalstore.open(Path(workdir) / "j.duckdb")
        store.register_model("svc", "v1", "binary", classes=[0, 1], positive_class=1)
        cursor = store.connection.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        state = WriterState()
        ids = iter(range(1, 10**9))

        def take(k: int) -> list[int]:
            return [next(ids) for _ in range(k)]

        journal = JournalFile(Path(workdir) / "j.duckdb.journal")
        entries: list[Entry] = []
        n = 0
        # one call object for a model, kind and query string, as the fast path makes them
        call = LogCall("predictions", "svc", {"version": "v1"}, store.limits.time_range)
        for size in (1, 16):
            for i in range(repeat + 10):
                items = []
                for _ in range(size):
                    n += 1
                    data = body_to_data(
                        Body.of(body("predictions", f"j{n}", n)), "application/json"
                    )
                    items.append(Item(call, data, "b"))
                if size > 1:  # what the writer's link thread does with a front's message
                    message = bytes(encode_group(list(enumerate(items))))[HEADER.size :]
                    timed(
                        f"--http-workers: decode a front's message ({size})",
                        lambda m=message: decode_group(m, store.limits.time_range),
                    )
                prepared = timed(
                    f"validate: plan (cached), convert + check (Python), ids ({size})",
                    lambda items=items: prepare_group(
                        cursor, items, state, batch_ids=take, pending_keys=lambda *_: None
                    ),
                )  # fmt: skip
                assert len(prepared.accepted) == size, prepared
                requests = [prepared.accepted[k] for k in sorted(prepared.accepted)]
                entry = Entry(len(entries) + 1, requests, prepared.segments)
                data = timed(f"encode the journal record ({size})", entry.encode)
                timed(f"append + fdatasync ({size})", lambda data=data: journal.append([data]))
                loop_waiters = [LoopWaiter(loop) for _ in requests]
                timed(
                    f"answer the requests (one event-loop wake-up) ({size})",
                    lambda w=loop_waiters, r=requests: answer(
                        [(waiter, q.receipt()) for waiter, q in zip(w, r, strict=True)]
                    ),
                )  # fmt: skip
                entries.append(entry)
                if i < 10:
                    for name in [k for k in steps if k.endswith(f"({size})")]:
                        steps[name].pop()
        journal.close()
        loop.run_until_complete(asyncio.sleep(0))  # (the answers' callbacks)
        loop.close()
        apply(store.connection, entries[: repeat + 10])  # the groups of one
        sixteens = entries[repeat + 10 :]
        for k in range(0, len(sixteens) - 9, 10):  # 10 groups of 16 per transaction
            wall, cpu = time.perf_counter(), time.process_time()
            apply(store.connection, sixteens[k : k + 10])
            steps["apply, per request (160 requests a transaction)"].append(
                ((time.perf_counter() - wall) / 160, (time.process_time() - cpu) / 160)
            )
        cursor.close()
        store.close()
    return [
        (
            name,
            statistics.median(w for w, _ in values) * 1e3,
            statistics.median(c for _, c in values) * 1e3,
        )
        for name, values in steps.items()
    ]


# ---------------------------------------------------------------------- main


def print_threads(runs: list[dict[str, Any]], names: list[str]) -> None:
    """The table of the server process's CPU per request by thread."""
    print()
    print("The writer process's CPU per request by thread (ms; /proc/<pid>/task/*/stat;")
    print("with HTTP workers the fronts' is not in it)")
    print()
    rows = [
        [f"{r['kind']}, {r['clients']} clients, {r['mode']}",
         *(f"{r['threads_ms'].get(name, 0.0):.3f}" for name in names),
         f"{sum(r['threads_ms'].values()):.3f}", f"{r['load']:.1f}"]
        for run in runs
        for r in run["requests"]
    ]  # fmt: skip
    print("\n".join(table(["case", *names, "writer process", "load avg"], rows)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="per case (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 s per case")
    parser.add_argument(
        "--clients", default="1,8,32", help="comma-separated (default 1,8,32; '' for none)"
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="predictions,labels")
    parser.add_argument("--stored", type=int, default=0, help="predictions stored beforehand")
    parser.add_argument(
        "--arrow-rows", default="1000,20000", help="Arrow batch sizes ('' for none)"
    )
    parser.add_argument(
        "--writers",
        default="journal,group",
        help="servers to measure, in order: journal (journal=True), group (group commit "
        "alone), each (--no-group-commit); default journal,group",
    )
    parser.add_argument("--baseline", action="store_true", help="also --no-group-commit")
    parser.add_argument(
        "--http-workers",
        default="1",
        help="comma-separated numbers of HTTP front processes (evalstore serve "
        "--http-workers), each writer measured with each; default 1 (one process)",
    )
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--http", default="auto", help="uvicorn's: auto, httptools, h11")
    parser.add_argument("--loop", default="auto", help="uvicorn's: auto, uvloop, asyncio")
    parser.add_argument("--source", type=Path, help="run the server from this checkout")
    parser.add_argument(
        "--monitor-every",
        type=float,
        default=0,
        help="the server's monitor loop (default 0: off, ingest measured alone; its first "
        "pass over --stored rows would compete for the cores)",
    )
    parser.add_argument("--no-breakdown", action="store_true", help="skip the in-process table")
    args = parser.parse_args()
    args.seconds = 2.0 if args.quick else args.seconds
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.kinds = tuple(args.kinds.split(","))
    args.arrow_rows = [int(r) for r in args.arrow_rows.split(",") if r]
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "python"
    print(f"machine: {machine()}", file=sys.stderr)
    writers = [w for w in args.writers.split(",") if w] + (["each"] if args.baseline else [])
    workers = [int(w) for w in args.http_workers.split(",") if w]
    runs = [serve_cases(args, writer, n) for writer in writers for n in workers]
    group = {(r["kind"], r["clients"]): r["requests_per_s"] for run in runs
             for r in run["requests"] if r["mode"] == "group commit"}  # fmt: skip
    print()
    print(
        f"Single-example JSON ingest requests, {args.seconds:g} s per case, load generator "
        f"{args.load}, uvicorn http={args.http} loop={args.loop}, {args.stored:,} predictions "
        "stored beforehand"
    )
    print(f"machine: {machine()}; {versions('duckdb', 'pyarrow', 'fastapi', 'uvicorn')}")
    print()
    header = ["case", "req/s", "p50 ms", "p99 ms", "server CPU s / 1k req",
              "of which event loop", "of which fronts", "load gen. CPU s / 1k req", "mean group",
              "writer ms / req",
              "ack->visible p50/p95 ms", "req/s vs group commit", "errors",
              "load avg"]  # fmt: skip
    rows = [
        [
            f"{r['kind']}, {r['clients']} clients, {r['mode']}",
            f"{r['requests_per_s']:,.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['server_cpu_per_1000']:.2f}",
            f"{r['loop_cpu_per_1000']:.2f}",
            f"{r.get('fronts_cpu_per_1000', 0.0):.2f}",
            f"{r['load_cpu_per_1000']:.2f}",
            f"{r['group']:.1f}",
            f"{r['writer_ms']:.2f}" if r["mode"] != "one commit each" else "-",
            "{p50}/{p95}".format(**r["lag_ms"]) if "lag_ms" in r else "at ack",
            f"{r['requests_per_s'] / group[r['kind'], r['clients']]:.2f}x"
            if (r["kind"], r["clients"]) in group
            else "-",
            str(r["failures"]),
            f"{r['load']:.1f}",
        ]
        for run in runs
        for r in run["requests"]
    ]
    print("\n".join(table(header, rows)))
    names = sorted({name for run in runs for r in run["requests"] for name in r["threads_ms"]})
    if names:
        print_threads(runs, names)
    if args.arrow_rows:
        print()
        print(f"Arrow IPC batches of predictions, 4 clients back to back, {args.seconds:g} s")
        print()
        rows = [
            [f"{r['rows']:,}-row batches, {r['mode']}", f"{r['rows_per_s']:,.0f}",
             str(r["failures"]), f"{r['load']:.1f}"]
            for run in runs
            for r in run["arrow"]
        ]  # fmt: skip
        print("\n".join(table(["case", "rows/s", "errors", "load avg"], rows)))
    if not args.no_breakdown:
        steps = breakdown()
        print()
        print("The writer's cost of one single-example predictions request (a group of one;")
        print(f"median ms, in-process, load average {load_average():.1f})")
        print()
        rows = [[name, f"{wall:.2f}", f"{cpu:.2f}"] for name, wall, cpu in steps]
        print("\n".join(table(["step", "wall ms", "CPU ms"], rows)))
        steps = journal_breakdown()
        print()
        print("The journaled writer's cost of a group of 1 and of 16 single-example predictions")
        print("requests, and the applier's per request (median ms, in-process, process CPU,")
        print(f"load average {load_average():.1f})")
        print()
        rows = [[name, f"{wall:.3f}", f"{cpu:.3f}"] for name, wall, cpu in steps]
        print("\n".join(table(["step (requests in the group)", "wall ms", "CPU ms"], rows)))
    print(json.dumps({"runs": runs}), file=sys.stderr)


if __name__ == "__main__":
    main()
