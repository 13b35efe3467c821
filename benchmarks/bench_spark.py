"""Spark benchmark: ``SparkEngine.drift`` on Spark ``local[2]`` vs ``store.drift`` on DuckDB.

Workload: N serving rows over 10 days (10 daily windows) against N training rows, 5 float64
features (two drift, one with heavy ties) and 2 string features (one with a category the
training rows never have); numeric methods KS, PSI, JS, Wasserstein, categorical chi2, PSI,
JS, unseen: ``drift(model, reference='training', window='1 day')`` with the store's default
methods. The same rows are ingested into a DuckDB store file and exported with
``store.export_lake`` (ingest and export times are in the header, not in the table).

Cases, for each size of ``--sizes``:

* ``duckdb store.drift``: the embedded store, end to end (the baseline: ratio 1).
* ``spark SparkEngine.drift``: the same call on a Spark session (``local[2]``, UTC, 2 shuffle
  partitions, started before timing): Spark runs the relational part of the macros over the
  lake, the driver the per-cell helpers and p-values. ``first`` includes the JVM's warm-up
  (class loading, JIT, code generation); ``second`` (with ``--calls 2``) is the same call
  again.

Wall and CPU seconds are both measured: the store's CPU is this process's (DuckDB's
threads); Spark's is the JVM's (driver and the ``local[2]`` executor threads, read from
/proc) plus this process's (the driver's Python). The machine is shared, so CPU seconds are
the figure to scale from; ``rows/CPU-s`` is 2N rows read (reference + analysis) per CPU
second. With two sizes or more, the last two sizes' Spark CPU seconds are fitted to
``fixed + per_row * 2N`` (the fixed per-call cost and the per-row cost apart), the numbers
docs/scaling.md's model uses.

Each Spark row is checked equal to the store's (1e-9) before the table is printed.

Usage::

    python benchmarks/bench_spark.py [--sizes 1M,10M] [--calls 1]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))
from harness import Timed, load_average, parse_size, setting, table, versions

import evalstore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY_SECONDS = 86_400


def make_rows(n: int, serving: bool, seed: int) -> pa.Table:
    """``n`` rows of 5 numeric and 2 string features; serving rows drift (see docstring)."""
    rng = np.random.default_rng(seed)
    shift = 0.3 if serving else 0.0
    start = np.datetime64(T0.replace(tzinfo=None), "us") + np.timedelta64(
        30 * DAY_SECONDS if serving else 0, "s"
    )
    seconds = rng.integers(0, 10 * DAY_SECONDS, n)
    cats = np.array(["a", "b", "c", "d"] if serving else ["a", "b", "c"])
    ids = pc.binary_join_element_wise(
        "s" if serving else "t", pc.cast(pa.array(np.arange(n)), pa.string()), ""
    )
    return pa.table({
        "example_id": ids,
        "ts": pa.array(start + seconds.astype("timedelta64[s]"), pa.timestamp("us", tz="UTC")),
        "x0": rng.normal(shift, 1.0, n),
        "x1": rng.normal(0.0, 1.0 + shift, n),
        "x2": np.round(rng.exponential(1.0, n), 1),
        "x3": rng.uniform(0, 1, n),
        "x4": rng.integers(0, 20, n).astype(float),
        "c0": cats[rng.integers(0, len(cats), n)],
        "c1": np.array(["x", "y"])[(rng.random(n) < (0.3 + shift / 3)).astype(int)],
    })  # fmt: skip


def build(directory: Path, n: int) -> tuple[Path, Path, float, float]:
    """A store file with the rows and its lake; returns paths and ingest/export seconds."""
    path, lake = directory / f"bench{n}.duckdb", directory / f"lake{n}"
    started = time.perf_counter()
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", make_rows(n, False, 1), env="training")
        store.log_features("m", make_rows(n, True, 2))
        ingest = time.perf_counter() - started
        started = time.perf_counter()
        store.export_lake("m", lake)
        export = time.perf_counter() - started
    return path, lake, ingest, export


def same(a: pa.Table, b: pa.Table) -> bool:
    if a.column_names != b.column_names or a.num_rows != b.num_rows:
        return False
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        for k, v in x.items():
            w = y[k]
            if isinstance(v, float) and isinstance(w, float):
                if not (math.isnan(v) and math.isnan(w)) and abs(v - w) > 1e-9 * max(1, abs(w)):
                    return False
            elif v != w:
                return False
    return True


def session():  # type: ignore[no-untyped-def]
    """The ``local[2]`` session (UTC, 2 shuffle partitions, 3 GB driver) and its JVM's pid."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]").appName("evalstore-bench")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "3g")
        .getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    return spark, int(spark._jvm.ProcessHandle.current().pid())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="serving rows per case, e.g. 1M,10M")
    parser.add_argument("--calls", type=int, default=2, help="Spark calls per size (first, second)")
    args = parser.parse_args()
    from evalstore.engines.spark import SparkEngine

    spark, jvm = session()
    load = [load_average()]
    rows, notes, fits = [], [], []
    directory = Path(tempfile.mkdtemp(prefix="evalstore-bench-spark-"))
    try:
        for n in map(parse_size, args.sizes.split(",")):
            path, lake, ingest, export = build(directory, n)
            notes.append(f"{n:,} rows: ingest {ingest:.1f} s, export_lake {export:.1f} s")
            before = load_average()
            with evalstore.open(path, read_only=True) as store, Timed() as duck:
                want = store.drift("m")
            rows.append([f"{n:,}", "duckdb store.drift", f"{duck.seconds:.2f}",
                         f"{duck.cpu_seconds:.2f}", "1.0", "1.0",
                         f"{2 * n / duck.cpu_seconds:,.0f}", f"{before:.1f}"])  # fmt: skip
            engine = SparkEngine(spark, lake)
            for label in ("first", "second", "third")[: args.calls]:
                before = load_average()
                with Timed(pid=jvm) as run:
                    got = engine.drift("m")
                if not same(got, want):
                    raise SystemExit(f"{n} rows: Spark rows differ from the store's")
                cpu = run.cpu_seconds + run.pid_cpu_seconds
                fits.append((n, label, cpu, run.seconds))
                rows.append([f"{n:,}", f"spark SparkEngine.drift ({label})",
                             f"{run.seconds:.2f}", f"{cpu:.2f}",
                             f"{run.seconds / duck.seconds:.1f}",
                             f"{cpu / duck.cpu_seconds:.1f}", f"{2 * n / cpu:,.0f}",
                             f"{before:.1f}"])  # fmt: skip
                # each call's line as soon as it is measured (a long run may be stopped)
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
            engine.close()
            load.append(load_average())
            shutil.rmtree(lake, ignore_errors=True)
            path.unlink(missing_ok=True)
    finally:
        spark.stop()
        shutil.rmtree(directory, ignore_errors=True)
    header = ["serving rows", "case", "wall s", "CPU s", "x duckdb wall", "x duckdb CPU",
              "rows/CPU-s", "load"]  # fmt: skip
    software = versions("duckdb", "pyspark", "sqlglot")
    lines = setting("bench_spark: drift on Spark local[2] vs the embedded store", software, load)
    print("\n".join([*lines, *notes, "", *table(header, rows)]))
    print(
        "\nCPU s: the store's is this process's (DuckDB's threads); Spark's the JVM's (driver"
        " and executor threads) plus the driver's Python. rows/CPU-s: 2N rows read (reference"
        " + analysis) per CPU second. load: 1-minute load average before the case."
    )
    last = {}
    for n, _label, cpu, wall in fits:
        last[n] = (cpu, wall)  # the last (warmest) call of each size
    if len(last) >= 2:
        (n1, (c1, w1)), (n2, (c2, w2)) = sorted(last.items())[-2:]
        per_row = (c2 - c1) / (2 * n2 - 2 * n1)
        fixed = c1 - per_row * 2 * n1
        print(
            f"\nfit of the last Spark call of {n1:,} and {n2:,} rows, CPU = fixed + per_row *"
            f" 2N: fixed {fixed:.1f} CPU s, per_row {per_row * 1e6:.2f} CPU s per million"
            f" rows read ({1 / per_row:,.0f} rows per CPU second past the fixed cost);"
            f" wall: fixed {w1 - (w2 - w1) / (n2 - n1) * n1:.1f} s,"
            f" {(w2 - w1) / (2 * n2 - 2 * n1) * 1e6:.2f} s per million rows on local[2]"
        )


if __name__ == "__main__":
    main()
