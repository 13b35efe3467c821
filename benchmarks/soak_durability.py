"""Soak: ``kill -9`` during ingest and checkpoints; every acknowledged batch survives whole.

A child process opens a file store and logs batches in a loop (features, predictions
and labels in turn, with an explicit ``CHECKPOINT`` every few batches), printing
``ACK <batch_id> <rows>`` only after each ``log_*`` call has returned (committed). The
parent SIGKILLs it at a random moment, reopens the store and checks it:

* every acknowledged batch is in ``evalstore.batches`` with its row count, and the
  model's tables hold exactly that many rows with its ``batch_id`` (none lost);
* every batch of ``evalstore.batches`` has as many rows in the tables as it records,
  and no table row carries a ``batch_id`` that ``evalstore.batches`` lacks (none
  half-written);
* the store opens (a failure is a *reopen failure*).

It then starts the next child on the same file, so later kills land on a store that has
already been recovered. Prints a table (kills, batches acknowledged, lost, half-written,
rows, reopen failures) and exits 1 if anything was lost, half-written or failed to open::

    .venv/bin/python benchmarks/soak_durability.py                  # 20 kills
    .venv/bin/python benchmarks/soak_durability.py --kills 40 --max-delay 10 --rows 20000

``tests/core/test_durability.py`` runs the same loop with a handful of kills.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

MODEL = "soak"
KINDS = ("features", "predictions", "labels")


# ---------------------------------------------------------------- the child


def child(path: str, run: int, rows: int, checkpoint_every: int) -> None:
    """Ingest batches into ``path`` until killed, acknowledging each after its commit."""
    import numpy as np
    import pyarrow as pa

    import evalstore

    rng = np.random.default_rng(run)
    with evalstore.open(path) as store:
        base = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=run)
        for batch in range(10**9):
            ids = [f"r{run}-b{batch // 3}-{i}" for i in range(rows)]
            ts = pa.array([base + timedelta(seconds=i) for i in range(rows)])
            kind = KINDS[batch % 3]
            if kind == "features":
                data = pa.table({"example_id": ids, "ts": ts, "x": rng.normal(size=rows),
                                 "c": rng.choice(["a", "b", "c"], rows)})  # fmt: skip
                receipt = store.log_features(MODEL, data)
            elif kind == "predictions":
                data = pa.table({"example_id": ids, "ts": ts, "score": rng.random(rows)})
                receipt = store.log_predictions(MODEL, data, version="v1")
            else:
                data = pa.table({"example_id": ids, "ts": ts, "label": rng.integers(0, 2, rows)})
                receipt = store.log_labels(MODEL, data)
            print(f"ACK {receipt.batch_id} {receipt.rows}", flush=True)
            if checkpoint_every and batch % checkpoint_every == checkpoint_every - 1:
                store.sql("CHECKPOINT")


# ---------------------------------------------------------------- the parent


@dataclass
class Totals:
    """What the kills did, summed."""

    kills: int = 0
    acknowledged: dict[int, int] = field(default_factory=dict)  # batch id -> rows
    lost: int = 0
    half_written: int = 0
    reopen_failures: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)


def prepare(path: Path) -> None:
    """Create the store and register the model the children log into."""
    import evalstore

    with evalstore.open(path) as store:
        store.register_model(MODEL, "v1", "binary")


def kill_once(
    path: Path, run: int, rng: random.Random, rows: int, max_delay: float, checkpoint_every: int
) -> dict[int, int]:
    """Start a child, SIGKILL it at a random moment after its first acknowledged batch;
    return ``{batch id: rows}`` of every batch it acknowledged."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", str(path), "--run", str(run),
        "--rows", str(rows), "--checkpoint-every", str(checkpoint_every),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    acknowledged: dict[int, int] = {}
    first = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if line.startswith("ACK "):
                _, batch_id, n = line.split()
                acknowledged[int(batch_id)] = int(n)
                first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started = time.monotonic()
    while not first.wait(0.05):
        if process.poll() is not None:
            raise RuntimeError(f"the ingest child exited early: {process.stderr.read()[-2000:]}")
        if time.monotonic() - started > 120:
            process.kill()
            raise RuntimeError("the ingest child acknowledged nothing within 120 s")
    time.sleep(rng.uniform(0.0, max_delay))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    reader.join(timeout=10)  # lines printed before the kill are still in the pipe
    process.stderr.close()
    return acknowledged


def verify(path: Path, acknowledged: dict[int, int]) -> tuple[int, int, int, list[str]]:
    """Reopen the store: (lost, half-written, rows, problems) over every batch so far.

    Raises what :func:`evalstore.open` raises when the store does not reopen.
    """
    import evalstore

    problems = []
    with evalstore.open(path) as store:
        stored = {
            row["batch_id"]: (row["rows"], row["found"])
            for row in store.sql(
                "SELECT b.batch_id, b.rows, count(t.batch_id) AS found "
                "FROM evalstore.batches AS b LEFT JOIN ("
                f"SELECT batch_id FROM {MODEL}.features UNION ALL "
                f"SELECT batch_id FROM {MODEL}.predictions UNION ALL "
                f"SELECT batch_id FROM {MODEL}.labels) AS t USING (batch_id) "
                "WHERE b.model = ? GROUP BY ALL",
                [MODEL],
            ).to_pylist()
        }
        orphans = store.sql(
            "SELECT count(*) AS n FROM ("
            f"SELECT batch_id FROM {MODEL}.features UNION ALL "
            f"SELECT batch_id FROM {MODEL}.predictions UNION ALL "
            f"SELECT batch_id FROM {MODEL}.labels) "
            "WHERE batch_id NOT IN (SELECT batch_id FROM evalstore.batches)"
        ).to_pylist()[0]["n"]
    lost = 0
    for batch_id, n in acknowledged.items():
        if stored.get(batch_id) != (n, n):
            lost += 1
            problems.append(f"acknowledged batch {batch_id} ({n} rows): {stored.get(batch_id)}")
    half = sum(1 for recorded, found in stored.values() if recorded != found)
    if orphans:
        half += 1
        problems.append(f"{orphans} table rows carry a batch_id missing from evalstore.batches")
    problems += [
        f"batch {b} records {r} rows, the tables hold {f}" for b, (r, f) in stored.items() if r != f
    ]
    return lost, half, sum(found for _, found in stored.values()), problems


def soak(
    path: Path,
    kills: int,
    seed: int = 0,
    rows: int = 5000,
    max_delay: float = 3.0,
    checkpoint_every: int = 4,
    progress: bool = False,
) -> Totals:
    """Run ``kills`` kill/reopen rounds on a new store at ``path``."""
    rng = random.Random(seed)
    totals = Totals()
    prepare(path)
    for run in range(kills):
        totals.acknowledged.update(kill_once(path, run, rng, rows, max_delay, checkpoint_every))
        totals.kills += 1
        try:
            lost, half, rows_now, problems = verify(path, totals.acknowledged)
        except Exception as error:  # counted and reported: the point of the soak
            totals.reopen_failures += 1
            totals.problems.append(f"kill {run + 1}: reopen failed: {error!r}")
            break
        totals.lost, totals.half_written, totals.rows = lost, half, rows_now
        totals.problems += [f"kill {run + 1}: {p}" for p in problems]
        if progress:
            print(
                f"kill {run + 1}/{kills}: {len(totals.acknowledged)} batches acknowledged, "
                f"{rows_now:,} rows, lost {lost}, half-written {half}",
                file=sys.stderr,
                flush=True,
            )
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kill/reopen rounds (20)")
    parser.add_argument("--rows", type=int, default=5000, help="rows per batch (5000)")
    parser.add_argument(
        "--max-delay", type=float, default=3.0,
        help="the kill comes 0..this many seconds after the child's first batch (3.0)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-every", type=int, default=4, help="CHECKPOINT every n batches (4; 0: off)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", help="folder for the store file (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.run, args.rows, args.checkpoint_every)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = Path(folder) / "store.duckdb"  # not the model name: "soak" would be ambiguous
        began = time.monotonic()
        totals = soak(
            path, args.kills, args.seed, args.rows, args.max_delay, args.checkpoint_every, True
        )
        elapsed = time.monotonic() - began
        size = path.stat().st_size / 2**20 if path.exists() else 0.0
    header = ["kills", "batches acknowledged", "batches lost", "half-written", "rows",
              "reopen failures", "seconds"]  # fmt: skip
    values = [totals.kills, len(totals.acknowledged), totals.lost, totals.half_written,
              f"{totals.rows:,}", totals.reopen_failures, f"{elapsed:.0f}"]  # fmt: skip
    widths = [max(len(h), len(str(v))) for h, v in zip(header, values, strict=True)]
    print("| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    print("| " + " | ".join(str(v).rjust(w) for v, w in zip(values, widths, strict=True)) + " |")
    print(
        f"\n{args.rows} rows per batch, CHECKPOINT every {args.checkpoint_every} batches, kill "
        f"0-{args.max_delay} s after the first batch, seed {args.seed}; store {size:.0f} MiB"
    )
    for problem in totals.problems:
        print(f"PROBLEM {problem}")
    return 1 if totals.lost or totals.half_written or totals.reopen_failures else 0


if __name__ == "__main__":
    sys.exit(main())
