"""The HTTP ceiling of one Python server process on this machine, for single-example ingest.

    python benchmarks/bench_service_ceiling.py                 # 32 connections, 5 s per case
    python benchmarks/bench_service_ceiling.py --clients 1,32 --seconds 10
    python benchmarks/bench_service_ceiling.py --apps fast --http-workers 2,3  # + N fronts

How many ~200-byte JSON POSTs per second can one uvicorn process (httptools, uvloop, the
server's stack) answer at all, before evalstore does any work? ``wrk``
(``benchmarks/wrk_ingest.lua``, the single-example predictions body of
``bench_service_ingest.py``) drives, one server process per case, each app answering every
POST with a fixed ~80-byte JSON receipt:

- ``raw ASGI``: a bare ASGI callable that reads the body and sends the answer;
- ``server middlewares``: the same answer from the innermost place of the server's app,
  behind every middleware :func:`server.app.create_app` installs (request metrics, body
  limit, JSON 500, FastAPI's exception middlewares);
- ``fast path, no writer``: the server's app itself (:func:`server.app.create_app` on an
  in-memory store), the ingest fast path parsing the JSON body into an Arrow table and
  rendering the receipt, with a committer that answers at once instead of writing: the
  whole HTTP side of a request, nothing of the writer's;
- ``N fronts, no writer`` (``--http-workers N``, N > 1): ``evalstore serve --http-workers
  N``'s processes (:mod:`server.front`): N front processes running that fast path and
  forwarding the parsed requests in groups over the Unix-socket link
  (:mod:`server.front_link`) to a writer process whose group commit answers at once: the
  HTTP side spread over N processes, plus the link's cost on both ends. The server's CPU
  is the writer's and the fronts' together.

Columns: requests/s, p50/p99 latency, the server process's CPU per request (user +
system, from /proc: the figure that depends least on what else runs), wrk's CPU per
request, the load average. The server's CPU per request bounds the single-process rate:
1 / (CPU per request) requests/s with a whole core, whatever the rest costs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_service_ingest import PATHS, request
from bench_streaming import free_port
from harness import machine, process_cpu_seconds, table, versions

HERE = Path(__file__).resolve().parent
ANSWER = (
    b'{"batch_id":1,"model":"svc","kind":"predictions","rows":1,"columns_ignored":[],"warnings":[]}'
)
APPS = {
    "raw": "raw ASGI",
    "stack": "server middlewares",
    "fast": "fast path, no writer",
    "fronts": "N fronts, no writer",
}


async def raw_app(scope: dict, receive: Any, send: Any) -> None:
    """Read the body, answer :data:`ANSWER`."""
    if scope["type"] != "http":
        while scope["type"] == "lifespan":
            if (await receive())["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ANSWER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


class _Answer:
    """Innermost middleware: POSTs get :data:`ANSWER`, the rest goes on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            await raw_app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def stack_app() -> Any:
    """The server's middlewares (as :func:`server.app.create_app` adds them) around
    :class:`_Answer`."""
    from fastapi import FastAPI

    import evalstore
    from server import errors
    from server.app import RequestMetrics
    from server.limits import BodyLimit
    from server.prom import Monitor
    from server.settings import Settings

    store = evalstore.open()
    app = FastAPI()
    app.add_middleware(_Answer)
    errors.install(app)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {}

    app.add_middleware(BodyLimit, max_body_bytes=Settings().max_body_bytes)
    app.add_middleware(RequestMetrics, monitor=Monitor(store))
    return app


class _Instant:
    """A committer answering every item at once with a receipt (nothing written)."""

    async def submit(self, item: Any) -> Any:
        from evalstore.core.ingest_write import Receipt

        return Receipt(batch_id=1, model=item.call.model, kind=item.call.kind,
                       rows=item.data.num_rows)  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {}

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def fast_app() -> Any:
    """The server's app on an in-memory store, its committer answering at once."""
    import evalstore
    from server.app import create_app

    store = evalstore.open()
    store.register_model("svc", "v1", "binary", classes=[0, 1], positive_class=1)
    app = create_app(store, lockdown=False, monitor_every=0, checkpoint_idle=None)
    app.state.committer = _Instant()
    return app


class _InstantQueue:
    """The writer's committer for the link (``enqueue_waiters``, as
    :class:`server.group_commit.GroupCommitter`), answering every item at once."""

    def enqueue_waiters(self, pairs: list[tuple[Any, Any]]) -> list[None]:
        from evalstore.core.ingest_write import Receipt
        from server.group_commit import answer

        answer(
            (waiter, Receipt(batch_id=1, model=item.call.model, kind=item.call.kind,
                             rows=item.data.num_rows))
            for item, waiter in pairs
        )  # fmt: skip
        return [None] * len(pairs)


def serve_fronts(port: int, workers: int) -> None:
    """``evalstore serve --http-workers N``'s processes (server.serve.run's arrangement)
    around :func:`fast_app`, the link's committer answering at once."""
    import shutil
    import tempfile

    import uvicorn

    from server.front import Fronts
    from server.front_link import LinkServer
    from server.serve import GracefulServer

    app = fast_app()
    private = tempfile.mkdtemp(prefix="evalstore-ceiling-")
    link = LinkServer(_InstantQueue(), None, os.path.join(private, "link.sock"))
    fronts = Fronts(workers, "127.0.0.1", port, {
        "link": os.path.join(private, "link.sock"),
        "http_socket": os.path.join(private, "http.sock"), "group_commit": True,
        "tokens": None, "max_body_bytes": app.state.settings.max_body_bytes,
        "http": "httptools", "loop": "uvloop", "log_level": "warning",
    })  # fmt: skip
    config = uvicorn.Config(app, uds=os.path.join(private, "http.sock"), log_level="warning",
                            access_log=False, http="httptools", loop="uvloop")  # fmt: skip
    try:
        GracefulServer(config, fronts=fronts).run()
    finally:
        fronts.stop()
        link.close()
        shutil.rmtree(private, ignore_errors=True)


def serve(kind: str, port: int, workers: int = 2) -> None:
    import uvicorn

    if kind == "fronts":
        serve_fronts(port, workers)
        return
    app = {"raw": lambda: raw_app, "stack": stack_app, "fast": fast_app}[kind]()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop")  # fmt: skip


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid`` and of its children alive now (the fronts)."""
    from bench_service_ingest import fronts_cpu_seconds

    return process_cpu_seconds(pid) + fronts_cpu_seconds(pid)


def measure(kind: str, clients: int, seconds: float, workers: int = 2) -> dict[str, Any]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--http-workers",
         str(workers)],
        cwd=HERE.parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if request(port, "GET", "/healthz")[0] in (200, 404):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        def wrk(duration: float, tag: str) -> tuple[dict[str, Any], float]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{duration:g}s",
                 "--timeout", "30s", "-s", str(HERE / "wrk_ingest.lua"),
                 f"http://127.0.0.1:{port}", "--", "predictions", PATHS["predictions"], tag],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            return json.loads(done.stdout.strip().splitlines()[-1]), cpu

        wrk(1, "warm")
        load = os.getloadavg()[0]
        before = server_cpu_seconds(process.pid)
        result, load_cpu = wrk(seconds, "run")
        cpu = server_cpu_seconds(process.pid) - before
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    n = result["requests"]
    return {
        "app": APPS[kind].replace("N fronts", f"{workers} fronts"),
        "clients": clients,
        "requests_per_s": n / result["seconds"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "server_cpu_ms": cpu / n * 1e3,
        "load_cpu_ms": load_cpu / n * 1e3,
        "errors": result["errors"],
        "load": max(load, os.getloadavg()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="32", help="comma-separated (default 32)")
    parser.add_argument("--apps", default="raw,stack,fast", help="raw,stack,fast")
    parser.add_argument("--serve", choices=tuple(APPS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--http-workers",
        default="",
        help="comma-separated front counts (> 1) to measure as 'N fronts, no writer' too",
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, int(args.http_workers or 2))
        return
    cases = [(kind, 2) for kind in args.apps.split(",") if kind != "fronts"]
    cases += [("fronts", int(n)) for n in args.http_workers.split(",") if n]
    results = []
    for clients in [int(c) for c in args.clients.split(",") if c]:
        for kind, workers in cases:
            results.append(measure(kind, clients, args.seconds, workers))
            print(results[-1], file=sys.stderr)
    print(f"machine: {machine()}; {versions('uvicorn', 'fastapi', 'starlette')}")
    print()
    raw = {r["clients"]: r for r in results if r["app"] == APPS["raw"]}
    header = ["app", "clients", "req/s", "p50 ms", "p99 ms", "server CPU ms / req",
              "wrk CPU ms / req", "req/s vs raw ASGI", "errors", "load avg"]  # fmt: skip
    rows = [
        [r["app"], str(r["clients"]), f"{r['requests_per_s']:,.0f}", f"{r['p50_ms']:.2f}",
         f"{r['p99_ms']:.2f}", f"{r['server_cpu_ms']:.3f}", f"{r['load_cpu_ms']:.3f}",
         f"{r['requests_per_s'] / raw[r['clients']]['requests_per_s']:.2f}x"
         if r["clients"] in raw else "-", str(r["errors"]), f"{r['load']:.1f}"]
        for r in results
    ]  # fmt: skip
    print("\n".join(table(header, rows)))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
