"""evalstore.Client: what logging a prediction costs a service, and predictions/s end to end.

Two measurements against a real ``evalstore serve`` subprocess (on a new store in a temporary
directory, model ``svc`` with 5 features):

1. **Caller-side overhead** of one ``client.log_prediction(...)`` in background mode: each
   call timed alone with ``perf_counter_ns`` on the calling thread, in a loop paced at
   ``--rate`` calls/s (a busy service; the flusher thread sends meanwhile), p50/p99/p99.9.
   Beside it, the same loop calling ``logging.info`` on a logger with a NullHandler (the
   cheapest thing a service already does per request) and one JSON ``POST`` per prediction
   on a keep-alive connection (what a service does today without the client).
2. **End to end**: ``--n`` predictions logged from one thread as fast as it can, until
   ``flush()`` returns (all committed); predictions/s, beside single-example JSON requests/s.

    python benchmarks/bench_client.py            # --n 200000 --rate 20000 --posts 300
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import machine, table, versions

import evalstore

FEATURES = ("amount", "age", "utilization", "channel", "country")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(path: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from evalstore.cli import main; main()",
            "serve",
            str(path),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def features(i: int) -> dict:
    return {
        "amount": i * 0.37 % 500,
        "age": 18 + i % 60,
        "utilization": (i % 100) / 100,
        "channel": ("web", "app", "store")[i % 3],
        "country": ("FR", "DE", "IT")[i % 3],
    }


def paced(call, n: int, rate: float) -> np.ndarray:
    """Nanoseconds of each of ``n`` calls ``call(i)``, started ``1/rate`` s apart."""
    spent = np.empty(n, dtype=np.int64)
    period = 1e9 / rate
    start = time.perf_counter_ns()
    clock = time.perf_counter_ns
    for i in range(n):
        while clock() - start < i * period:
            pass
        t = clock()
        call(i)
        spent[i] = clock() - t
    return spent


def percentiles(ns: np.ndarray) -> tuple[float, float, float]:
    p50, p99, p999 = np.percentile(ns, [50, 99, 99.9]) / 1000
    return p50, p99, p999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="predictions end to end")
    parser.add_argument("--rate", type=float, default=20_000, help="paced calls per second")
    parser.add_argument("--calls", type=int, default=100_000, help="paced calls measured")
    parser.add_argument("--posts", type=int, default=300, help="single JSON POSTs measured")
    parser.add_argument("--flush-rows", type=int, default=20_000, help="the client's flush_rows")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="bench_client_"))
    port = free_port()
    server = start_server(directory / "bench.duckdb", port)
    url = f"http://127.0.0.1:{port}"
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request(
            "POST",
            "/v1/models/svc/versions",
            body=json.dumps({"version": "v1", "task": "binary", "classes": [0, 1]}),
            headers={"content-type": "application/json"},
        )
        assert connection.getresponse().read() and True

        # 1. caller-side overhead
        logger = logging.getLogger("bench_client.null")
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logged = paced(
            lambda i: logger.info("prediction %s %s", i, features(i)), args.calls, args.rate
        )
        client = evalstore.Client(url)
        overhead = paced(
            lambda i: client.log_prediction(
                "svc", "v1", f"o{i}", features(i), i % 2, score=(i % 100) / 100, latency_ms=1.5
            ),
            args.calls,
            args.rate,
        )
        client.flush(600)
        paced_stats = client.close()

        connection.close()  # idle past the server's keep-alive: open a new one
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post(i: int) -> None:
            row = {"example_id": f"j{i}", "score": (i % 100) / 100, "prediction": i % 2}
            connection.request(
                "POST",
                "/v1/models/svc/predictions?version=v1",
                body=json.dumps([row]),
                headers={"content-type": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            assert response.status == 200

        posts = paced(post, args.posts, 1e9)  # back to back

        # 2. end to end
        client = evalstore.Client(
            url, flush_rows=args.flush_rows, max_buffer_rows=max(100_000, args.n)
        )
        start = time.perf_counter()
        for i in range(args.n):
            client.log_prediction(
                "svc", "v1", f"e{i}", features(i), i % 2, score=(i % 100) / 100, latency_ms=1.5
            )
        logged_at = time.perf_counter() - start
        assert client.flush(600)
        elapsed = time.perf_counter() - start
        stats = client.close()
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request(
            "POST",
            "/v1/sql",
            body=json.dumps(
                {"sql": "SELECT count(*) AS n FROM svc.predictions WHERE example_id LIKE 'e%'"}
            ),
            headers={"content-type": "application/json"},
        )
        stored = json.loads(connection.getresponse().read())[0]["n"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)

    base = percentiles(logged)
    rows = []
    for name, ns in (
        ("client.log_prediction (background)", overhead),
        ("logging.info to a NullHandler", logged),
        ("one JSON POST per prediction", posts),
    ):
        p = percentiles(ns)
        rows.append(
            [
                name,
                *(f"{v:,.1f}" for v in p),
                " / ".join(f"{v / b:,.1f}x" for v, b in zip(p, base, strict=True)),
            ]
        )
    print(f"\n{machine()}; {versions('duckdb', 'pyarrow')}")
    print(
        f"caller-side cost per call, µs (paced at {args.rate:,.0f}/s, {args.calls:,} calls; "
        f"POSTs back to back, {args.posts}); ratio to logging.info"
    )
    print("\n".join(table(["call", "p50", "p99", "p99.9", "p50 / p99 / p99.9 vs logging"], rows)))
    print(f"paced run: {paced_stats.acknowledged:,} acknowledged, {paced_stats.dropped} dropped")
    posts_per_s = 1e9 / posts.mean()
    rate = args.n / elapsed
    print(f"\nend to end, {args.n:,} predictions with {len(FEATURES)} features, one thread:")
    print(
        "\n".join(
            table(
                ["path", "predictions/s", "vs single JSON requests"],
                [
                    [
                        f"evalstore.Client (background, flush_rows {args.flush_rows:,})",
                        f"{rate:,.0f}",
                        f"{rate / posts_per_s:,.0f}x",
                    ],
                    ["one JSON POST per prediction (keep-alive)", f"{posts_per_s:,.0f}", "1x"],
                ],
            )
        )
    )
    print(
        f"logging loop {logged_at:.2f} s, until flush() {elapsed:.2f} s; stored {stored:,}; "
        f"{stats.batches} batches, {stats.dropped} dropped, {stats.failed} failed"
    )


if __name__ == "__main__":
    main()
