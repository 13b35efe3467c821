"""Soak: ``kill -9`` of a journaled ``evalstore serve`` while services stream.

Each run starts the server (``journal=True``: requests answered once in
``<store>.journal``, applied to DuckDB later, :mod:`server.journal`) on the same store
file, streams single-example requests from several threads (predictions of new ids, and
every third request a label of an id predicted before), and SIGKILLs the server at a
random moment: during appends, fsyncs, applies or the journal's truncation. Every 200
answer is recorded with its batch id. Optionally (``--torn``) garbage is appended to the
journal after the kill, as a write cut short would leave it. The next run starts on the
same file (the server's open replays the journal). At the end the store is opened and
checked:

* every acknowledged request is stored with the batch id of its receipt, its row once
  (none lost, none twice);
* every ``evalstore.batches`` row of the model has exactly its rows in the tables, and no
  table row has a batch id ``evalstore.batches`` lacks (none half-written);
* no id has two predictions of one version;
* the journal is empty once the store is open, and the store opens (replay works).

Prints a table and exits 1 on any problem::

    .venv/bin/python benchmarks/soak_journal.py              # 20 kills
    .venv/bin/python benchmarks/soak_journal.py --kills 40 --senders 8 --torn

``tests/server/test_journal_durability.py`` runs the same loop with a few kills.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MODEL = "soak"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Totals:
    kills: int = 0
    acknowledged: int = 0
    labels_acknowledged: int = 0
    lost: int = 0
    twice: int = 0
    half_written: int = 0
    torn_tails: int = 0
    #: acknowledged requests not yet applied at a restart (replayed by it), torn bytes
    journaled_at_restart: int = 0
    torn_bytes: int = 0
    problems: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(path: Path, port: int) -> subprocess.Popen:
    code = (
        "from server.serve import run; "
        f"run({str(path)!r}, port={port}, log_level='error', journal=True, monitor_every=0)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start in 120 s")


def prepare(path: Path) -> None:
    import evalstore

    with evalstore.open(path) as store:
        store.register_model(MODEL, "v1", "binary", classes=[0, 1], positive_class=1)


def sender(
    port: int,
    name: str,
    stop: threading.Event,
    acked: dict[tuple[str, str], int],
    lock: threading.Lock,
) -> None:
    """Send requests until ``stop`` or the server dies; record each 200 answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    n = 0
    predicted: list[str] = []
    try:
        while not stop.is_set():
            n += 1
            if n % 3 == 0 and predicted:
                example = predicted[len(predicted) // 2]
                kind, path = "labels", f"/v1/models/{MODEL}/labels"
                body = [{"example_id": example, "ts": "2026-01-01T00:00:00Z", "label": n % 2}]
            else:
                example = f"{name}-{n}"
                kind, path = "predictions", f"/v1/models/{MODEL}/predictions?version=v1"
                body = [{"example_id": example, "ts": "2026-01-01T00:00:00Z", "score": 0.5}]
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise RuntimeError(f"{response.status}: {payload[:200]!r}")
            with lock:
                acked[kind, f"{example}#{n}" if kind == "labels" else example] = json.loads(
                    payload
                )["batch_id"]
            if kind == "predictions":
                predicted.append(example)
    except (OSError, http.client.HTTPException):
        pass  # the server was killed
    finally:
        connection.close()


def one_run(
    path: Path, port: int, senders: int, delay: float, acked: dict, torn: bool, rng: random.Random
) -> bool:
    """Start, stream, kill -9; return whether a torn tail was appended."""
    process = start(path, port)
    stop = threading.Event()
    lock = threading.Lock()
    names = [f"r{rng.randrange(10**9)}s{i}" for i in range(senders)]
    threads = [
        threading.Thread(target=sender, args=(port, name, stop, acked, lock)) for name in names
    ]
    labels_before = sum(kind == "labels" for kind, _ in list(acked))
    for thread in threads:
        thread.start()
    # the random delay runs from the first acknowledged label of this run, so every run kills
    # a server that is streaming both kinds, however long its first requests take on a busy
    # machine (its first group of each shape is converted twice, see journal_prepare)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and all(t.is_alive() for t in threads):
        with lock:
            if sum(kind == "labels" for kind, _ in acked) > labels_before:
                break
        time.sleep(0.02)
    time.sleep(delay)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stop.set()
    for thread in threads:
        thread.join(60)
    if torn:
        with open(f"{path}.journal", "ab") as journal:
            journal.write(b"ESJ1" + os.urandom(rng.randrange(1, 64)))
    return torn


def check(path: Path, acked: dict[tuple[str, str], int], totals: Totals) -> None:
    import evalstore

    with evalstore.open(path) as store:  # replays what the last server left
        journal = Path(f"{path}.journal")
        if journal.exists() and journal.stat().st_size:
            totals.problems.append(f"the journal holds {journal.stat().st_size} bytes after open")
        predictions = {
            row["example_id"]: row
            for row in store.sql(
                f"SELECT example_id, count(*) AS n, min(batch_id) AS batch_id "
                f"FROM {MODEL}.predictions GROUP BY example_id"
            ).to_pylist()
        }
        labels = {
            row["batch_id"]: row["n"]
            for row in store.sql(
                f"SELECT batch_id, count(*) AS n FROM {MODEL}.labels GROUP BY batch_id"
            ).to_pylist()
        }
        for (kind, key), batch_id in acked.items():
            if kind == "predictions":
                row = predictions.get(key)
                if row is None:
                    totals.lost += 1
                elif row["batch_id"] != batch_id:
                    totals.problems.append(f"{key}: batch {row['batch_id']} != receipt {batch_id}")
            elif labels.get(batch_id) != 1:
                totals.lost += labels.get(batch_id) is None
                totals.twice += (labels.get(batch_id) or 0) > 1
        totals.twice += sum(row["n"] > 1 for row in predictions.values())  # acked or not
        # batches and rows agree, both ways
        bad = store.sql(
            f"""
            WITH stored AS (
                SELECT batch_id, count(*) AS n FROM {MODEL}.predictions GROUP BY batch_id
                UNION ALL
                SELECT batch_id, count(*) FROM {MODEL}.labels GROUP BY batch_id
            )
            SELECT count(*) AS n FROM evalstore.batches AS b
            FULL JOIN stored AS s USING (batch_id)
            WHERE (b.model = '{MODEL}' OR b.model IS NULL)
              AND (b.rows IS DISTINCT FROM s.n)
            """
        ).to_pylist()[0]["n"]
        totals.half_written += bad


def unapplied(path: Path, totals: Totals) -> int:
    """Requests in the journal not yet in DuckDB (what the next start replays); count the
    torn tail's bytes."""
    import duckdb

    from evalstore.core.journal import read, unapplied

    entries, valid, size = read(f"{path}.journal")
    totals.torn_bytes += size - valid
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sum(len(e.requests) for e in unapplied(con, entries))
    finally:
        con.close()


def soak(
    path: Path,
    kills: int = 20,
    seed: int = 0,
    senders: int = 4,
    max_delay: float = 2.0,
    torn: bool = True,
    port: int | None = None,
) -> Totals:
    rng = random.Random(seed)
    totals = Totals()
    prepare(path)
    acked: dict[tuple[str, str], int] = {}
    for run in range(kills):
        with_torn = torn and run % 2 == 1
        if run:
            totals.journaled_at_restart += unapplied(path, totals)
        one_run(
            path, port or free_port(), senders, rng.uniform(0.3, max_delay), acked, with_torn, rng
        )
        totals.kills += 1
        totals.torn_tails += with_torn
    totals.journaled_at_restart += unapplied(path, totals)  # what check()'s open replays
    totals.acknowledged = sum(kind == "predictions" for kind, _ in acked)
    totals.labels_acknowledged = sum(kind == "labels" for kind, _ in acked)
    check(path, acked, totals)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument(
        "--max-delay",
        type=float,
        default=3.0,
        help="seconds from the run's first acknowledged label to the kill",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torn", action="store_true", help="no garbage after kills")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        began = time.perf_counter()
        totals = soak(
            Path(workdir) / "store.duckdb",
            args.kills,
            args.seed,
            args.senders,
            args.max_delay,
            not args.no_torn,
        )
        elapsed = time.perf_counter() - began
    header = ["kills", "torn tails", "requests replayed at restarts", "torn bytes dropped",
              "predictions acked", "labels acked", "lost", "twice",
              "half-written", "other problems", "seconds"]  # fmt: skip
    row = [totals.kills, totals.torn_tails, totals.journaled_at_restart, totals.torn_bytes,
           totals.acknowledged, totals.labels_acknowledged,
           totals.lost, totals.twice, totals.half_written, len(totals.problems),
           f"{elapsed:.0f}"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    print("| " + " | ".join(str(v) for v in row) + " |")
    for problem in totals.problems[:20]:
        print(f"  problem: {problem}")
    bad = totals.lost or totals.twice or totals.half_written or totals.problems
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
