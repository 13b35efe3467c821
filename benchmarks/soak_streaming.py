"""Soak: ``kill -9`` of ``evalstore serve`` while services stream; nothing acknowledged lost.

    .venv/bin/python benchmarks/soak_streaming.py                 # 20 kills
    .venv/bin/python benchmarks/soak_streaming.py --kills 40 --max-down 5

One server process (a real ``evalstore serve`` on a fixed 127.0.0.1 port, over one store
file) is killed with SIGKILL at random moments and restarted on the same file and port
after a random time down, while this process streams into it:

* ``--senders`` threads send single-example JSON requests (a features request, then a
  predictions request, each with its own ``Idempotency-Key``) and, when a request fails
  (connection refused or cut, 5xx), send the same bytes (same key) again until they get a
  receipt. A request is *acknowledged* when its 200 answer arrives;
* two ``evalstore.Client`` objects (background mode, ``on_full="drop_oldest"``) are fed
  ``--client-rate`` predictions with features a second each: ``large`` with a buffer
  (``--large-buffer``) that holds everything logged while the server is down, ``small``
  with one (``--small-buffer``) that overflows during an outage, so it drops its oldest
  records and counts them.

At the end the streams stop, the clients flush (the server is up) and close, the server
stops, and the store is opened in this process and checked:

* **lost**: an acknowledged HTTP request whose row is missing, or stored under another
  batch id than its receipt's; a client whose stored records are fewer than it counts
  acknowledged;
* **twice**: an example id with more than one row in ``features`` or in ``predictions``
  (every id is logged once, so a second row is a retry written twice);
* **half-written**: a batch of ``evalstore.batches`` whose table rows are not exactly the
  rows it records, a table row whose batch id ``evalstore.batches`` lacks, or a client
  record with a predictions row and no features row (or the reverse);
* **clients**: ``logged == acknowledged + dropped + failed`` with ``failed == 0`` and
  nothing pending; the large client dropped nothing.

Prints a table (kills, acknowledged requests, replays answered ``duplicate``, client
records logged/acknowledged/dropped, lost, twice, half-written) and exits 1 on any problem.
``tests/server/test_streaming_durability.py`` runs the same soak with 2 kills.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_streaming import Connection, encode, free_port, now_iso, start_server, stop_server

MODEL = "soak"
FEATURES_PATH = f"/v1/models/{MODEL}/features"
PREDICTIONS_PATH = f"/v1/models/{MODEL}/predictions?version=v1"
#: How long a sender keeps retrying one request (the server is restarted well before).
RETRY_DEADLINE = 300.0


@dataclass
class Totals:
    """What the soak did and what the check found."""

    kills: int = 0
    acknowledged: dict[tuple[str, str], int] = field(default_factory=dict)  # (id, kind) -> batch
    duplicates: int = 0  # HTTP replays answered duplicate=true
    unanswered: int = 0  # HTTP requests given up on (none unless the server never came back)
    clients: dict[str, Any] = field(default_factory=dict)  # name -> final ClientStats
    client_duplicates: int = 0
    lost: int = 0
    twice: int = 0
    half_written: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


# ---------------------------------------------------------------- the streams


def features(i: int) -> dict[str, Any]:
    return {
        "amount": (i * 7919 % 10_000) / 100,
        "age": 18 + i % 60,
        "country": ("FR", "DE", "IT")[i % 3],
    }


def send_until_answered(port: int, holder: list[Connection | None], data: bytes,
                        totals: Totals) -> dict[str, Any] | None:  # fmt: skip
    """Send ``data`` (same bytes, same key) until a 200 answer; its receipt, or None after
    :data:`RETRY_DEADLINE` seconds. ``holder[0]`` is the sender's connection."""
    deadline = time.monotonic() + RETRY_DEADLINE
    while time.monotonic() < deadline:
        try:
            if holder[0] is None:
                holder[0] = Connection(port, timeout=30)
            status, body = holder[0].send(data)
        except OSError:  # refused, reset, closed: the server is down or was killed
            if holder[0] is not None:
                holder[0].close()
                holder[0] = None
            time.sleep(random.uniform(0.02, 0.1))
            continue
        if status == 200:
            return json.loads(body)
        if status < 500:
            with totals.lock:
                totals.problems.append(f"refused with HTTP {status}: {body[:300]!r}")
            return None
        time.sleep(random.uniform(0.02, 0.1))  # 503 while starting or stopping
    return None


def http_sender(port: int, index: int, stop: threading.Event, totals: Totals) -> None:
    """Send (features, predictions) request pairs until ``stop``; record each receipt."""
    holder: list[Connection | None] = [None]
    i = 0
    while not stop.is_set():
        example = f"h{index}-{i}"
        ts = now_iso()
        pairs = (
            ("features", FEATURES_PATH, {"example_id": example, "ts": ts, **features(i)}),
            ("predictions", PREDICTIONS_PATH,
             {"example_id": example, "ts": ts, "prediction": i % 2, "score": i % 100 / 100}),
        )  # fmt: skip
        for kind, path, row in pairs:
            data = encode("POST", path, json.dumps([row]).encode(), uuid.uuid4().hex)
            receipt = send_until_answered(port, holder, data, totals)
            with totals.lock:
                if receipt is None:
                    totals.unanswered += 1
                else:
                    totals.acknowledged[(example, kind)] = receipt["batch_id"]
                    totals.duplicates += bool(receipt.get("duplicate"))
        i += 1
    if holder[0] is not None:
        holder[0].close()


def client_feeder(client: Any, prefix: str, rate: float, stop: threading.Event) -> None:
    """Log ``rate`` predictions with features a second through ``client`` until ``stop``."""
    began = time.monotonic()
    i = 0
    while not stop.is_set():
        due = began + i / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        client.log_prediction(MODEL, "v1", f"{prefix}{i}", features(i), i % 2, i % 100 / 100)
        i += 1


# ---------------------------------------------------------------- the soak


def prepare(path: Path) -> None:
    """Create the store and register the model."""
    import evalstore

    with evalstore.open(path) as store:
        store.register_model(MODEL, "v1", "binary", classes=[0, 1])


def soak(
    path: Path,
    kills: int,
    seed: int = 0,
    senders: int = 4,
    client_rate: float = 200.0,
    large_buffer: int = 100_000,
    small_buffer: int = 100,
    max_delay: float = 3.0,
    max_down: float = 2.0,
    port: int | None = None,
    progress: bool = False,
) -> Totals:
    """Stream into a server over a new store at ``path`` and kill it ``kills`` times
    (each after 0.3..``max_delay`` s up, then down for 0..``max_down`` s plus the restart);
    then check the store (see the module). ``port``: default a free one."""
    import evalstore

    rng = random.Random(seed)
    totals = Totals()
    prepare(path)
    port = port or free_port()
    server = start_server(path, port)
    url = f"http://127.0.0.1:{port}"
    retry = {"backoff": 0.05, "max_backoff": 0.5, "flush_interval": 0.2}
    clients = {
        "large": evalstore.Client(url, max_buffer_rows=large_buffer, **retry),
        "small": evalstore.Client(url, max_buffer_rows=small_buffer, flush_rows=small_buffer,
                                  **retry),
    }  # fmt: skip
    stop = threading.Event()
    threads = [threading.Thread(target=http_sender, args=(port, s, stop, totals))
               for s in range(senders)]  # fmt: skip
    for name, client in clients.items():
        arguments = (client, f"c{name}-", client_rate, stop)
        threads.append(threading.Thread(target=client_feeder, args=arguments))
    for thread in threads:
        thread.start()
    try:
        for run in range(kills):
            time.sleep(rng.uniform(0.3, max_delay))
            server.send_signal(signal.SIGKILL)
            server.wait()
            server.output.close()  # type: ignore[attr-defined]
            totals.kills += 1
            time.sleep(rng.uniform(0.0, max_down))
            server = start_server(path, port)
            if progress:
                with totals.lock:
                    done = len(totals.acknowledged)
                print(f"kill {run + 1}/{kills}: {done:,} requests acknowledged so far; "
                      f"client drops so far {clients['small'].stats().dropped}",
                      file=sys.stderr, flush=True)  # fmt: skip
        time.sleep(rng.uniform(0.3, max_delay))  # stream a while after the last restart
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=RETRY_DEADLINE + 30)
        for name, client in clients.items():
            client.flush(timeout=120)
            totals.clients[name] = client.close()
        stop_server(server)
    totals.client_duplicates = sum(stats.duplicates for stats in totals.clients.values())
    verify(path, totals)
    return totals


def verify(path: Path, totals: Totals) -> None:
    """Open the store and fill ``totals``' lost, twice, half_written, rows and problems."""
    import evalstore

    problems = totals.problems
    with evalstore.open(path, read_only=True) as store:
        rows = {
            kind: {
                row["example_id"]: (row["n"], row["batch_id"])
                for row in store.sql(
                    f"SELECT example_id, count(*) AS n, min(batch_id) AS batch_id "
                    f"FROM {MODEL}.{kind} GROUP BY example_id"
                ).to_pylist()
            }
            for kind in ("features", "predictions")
        }
        batches = store.sql(
            "SELECT b.batch_id, b.rows, count(t.batch_id) AS found FROM evalstore.batches AS b "
            f"LEFT JOIN (SELECT batch_id FROM {MODEL}.features UNION ALL "
            f"SELECT batch_id FROM {MODEL}.predictions) AS t USING (batch_id) "
            "WHERE b.model = ? GROUP BY ALL",
            [MODEL],
        ).to_pylist()
        orphans = store.sql(
            f"SELECT count(*) AS n FROM (SELECT batch_id FROM {MODEL}.features UNION ALL "
            f"SELECT batch_id FROM {MODEL}.predictions) "
            "WHERE batch_id NOT IN (SELECT batch_id FROM evalstore.batches)"
        ).to_pylist()[0]["n"]
    for (example, kind), batch_id in totals.acknowledged.items():
        stored = rows[kind].get(example)
        if stored is None or stored[1] != batch_id:
            totals.lost += 1
            problems.append(f"acknowledged {kind} of {example} (batch {batch_id}): {stored}")
    for kind, by_id in rows.items():
        for example, (n, _) in by_id.items():
            if n > 1:
                totals.twice += 1
                problems.append(f"{kind} of {example}: {n} rows")
    for batch in batches:
        if batch["rows"] != batch["found"]:
            totals.half_written += 1
            problems.append(f"batch {batch['batch_id']} records {batch['rows']} rows, "
                            f"the tables hold {batch['found']}")  # fmt: skip
    if orphans:
        totals.half_written += 1
        problems.append(f"{orphans} table rows carry a batch id evalstore.batches lacks")
    for name, stats in totals.clients.items():
        prefix = f"c{name}-"
        ids = {k: {e for e in rows[k] if e.startswith(prefix)} for k in rows}
        if ids["features"] != ids["predictions"]:
            totals.half_written += 1
            problems.append(f"client {name}: {len(ids['features'] ^ ids['predictions'])} "
                            "records with features or predictions only")  # fmt: skip
        if len(ids["predictions"]) != stats.acknowledged:
            totals.lost += max(0, stats.acknowledged - len(ids["predictions"]))
            problems.append(f"client {name}: {stats.acknowledged} acknowledged, "
                            f"{len(ids['predictions'])} stored")  # fmt: skip
        if stats.logged != stats.acknowledged + stats.dropped + stats.failed or stats.pending:
            problems.append(f"client {name}: counts do not add up: {stats}")
        if stats.failed:
            problems.append(f"client {name}: {stats.failed} records failed: {stats.last_error}")
    if totals.clients.get("large") is not None and totals.clients["large"].dropped:
        problems.append(f"client large dropped {totals.clients['large'].dropped} records")
    totals.rows = sum(len(by_id) for by_id in rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kill/restart rounds (20)")
    parser.add_argument("--senders", type=int, default=4, help="HTTP sender threads (4)")
    parser.add_argument("--client-rate", type=float, default=200.0,
                        help="predictions/s each client is fed (200)")  # fmt: skip
    parser.add_argument("--large-buffer", type=int, default=100_000)
    parser.add_argument("--small-buffer", type=int, default=100)
    parser.add_argument("--max-delay", type=float, default=3.0,
                        help="kill 0.3..this many seconds after each start (3.0)")  # fmt: skip
    parser.add_argument("--max-down", type=float, default=2.0,
                        help="seconds down before the restart starts, at most (2.0)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", help="folder for the store file (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        began = time.monotonic()
        totals = soak(
            Path(folder) / "store.duckdb", args.kills, args.seed, args.senders,
            args.client_rate, args.large_buffer, args.small_buffer, args.max_delay,
            args.max_down, progress=True,
        )  # fmt: skip
        elapsed = time.monotonic() - began
    large, small = totals.clients["large"], totals.clients["small"]
    header = ["kills", "HTTP requests acknowledged", "replays answered duplicate",
              "client large: logged / acknowledged / dropped",
              "client small: logged / acknowledged / dropped", "lost", "twice", "half-written",
              "seconds"]  # fmt: skip
    values = [str(totals.kills), f"{len(totals.acknowledged):,}",
              f"{totals.duplicates} + {totals.client_duplicates} (client)",
              f"{large.logged:,} / {large.acknowledged:,} / {large.dropped:,}",
              f"{small.logged:,} / {small.acknowledged:,} / {small.dropped:,}",
              str(totals.lost), str(totals.twice), str(totals.half_written),
              f"{elapsed:.0f}"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 1) + ":" for h in header) + "|")
    print("| " + " | ".join(v.rjust(len(h)) for v, h in zip(values, header, strict=True)) + " |")
    print(
        f"\n{args.senders} HTTP senders, 2 clients at {args.client_rate:g} predictions/s each "
        f"(buffers {args.large_buffer:,} and {args.small_buffer:,}), kill 0.3-{args.max_delay} s "
        f"after each start, down 0-{args.max_down} s plus the restart, seed {args.seed}; "
        f"{totals.rows:,} rows stored; {totals.unanswered} HTTP requests never answered"
    )
    for problem in totals.problems:
        print(f"PROBLEM {problem}")
    return 1 if totals.problems or totals.unanswered else 0


if __name__ == "__main__":
    sys.exit(main())
