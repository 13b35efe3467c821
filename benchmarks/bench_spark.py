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
  lake, the driver the per-cell helpers and p-values. ``first`` includes the session's
  warm-up (class loading, code generation); ``second`` is the same call again.

Each Spark row is checked equal to the store's (1e-9) before the table is printed. The
per-core throughput (rows read per second per core: 2N rows over 2 cores for Spark) feeds
the scaling model of docs/scaling.md.

Usage::

    python benchmarks/bench_spark.py [--sizes 100k,1M]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from harness import Timed, load_average, parse_size, setting, table, versions

import evalstore

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_rows(n: int, serving: bool, seed: int) -> pa.Table:
    """``n`` rows of 5 numeric and 2 string features; serving rows drift (see docstring)."""
    rng = np.random.default_rng(seed)
    shift = 0.3 if serving else 0.0
    start = T0 + timedelta(days=30) if serving else T0
    seconds = rng.integers(0, 10 * 86_400, n)
    cats = np.array(["a", "b", "c", "d"] if serving else ["a", "b", "c"])
    return pa.table({
        "example_id": [f"{'s' if serving else 't'}{i}" for i in range(n)],
        "ts": pa.array([start + timedelta(seconds=int(s)) for s in seconds],
                       pa.timestamp("us", tz="UTC")),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1M", help="serving rows per case, e.g. 1M,10M")
    args = parser.parse_args()
    from pyspark.sql import SparkSession

    from evalstore.engines.spark import SparkEngine

    spark = (
        SparkSession.builder.master("local[2]").appName("evalstore-bench")
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "3g")
        .getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    load = [load_average()]
    rows, notes = [], []
    directory = Path(tempfile.mkdtemp(prefix="evalstore-bench-spark-"))
    try:
        for n in map(parse_size, args.sizes.split(",")):
            path, lake, ingest, export = build(directory, n)
            notes.append(f"{n:,} rows: ingest {ingest:.1f} s, export_lake {export:.1f} s")
            with evalstore.open(path, read_only=True) as store, Timed() as duck:
                want = store.drift("m")
            engine = SparkEngine(spark, lake)
            timings = []
            for _ in ("first", "second"):
                with Timed() as run:
                    got = engine.drift("m")
                timings.append(run)
                if not same(got, want):
                    raise SystemExit(f"{n} rows: Spark rows differ from the store's")
            engine.close()
            load.append(load_average())
            rows.append([f"{n:,}", "duckdb store.drift", f"{duck.seconds:.2f}",
                         f"{duck.cpu_seconds:.2f}", "1.0",
                         f"{2 * n / duck.seconds / 2:,.0f}"])  # fmt: skip
            for label, run in zip(("first", "second"), timings, strict=True):
                rows.append([f"{n:,}", f"spark SparkEngine.drift ({label})",
                             f"{run.seconds:.2f}", f"{run.cpu_seconds:.2f}",
                             f"{run.seconds / duck.seconds:.1f}",
                             f"{2 * n / run.seconds / 2:,.0f}"])  # fmt: skip
            # each size's lines as soon as they are measured (a long run may be stopped)
            print(" | ".join(rows[-3][:3]), "|", " | ".join(r[2] for r in rows[-2:]),
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        spark.stop()
        shutil.rmtree(directory, ignore_errors=True)
    header = ["serving rows", "case", "wall s", "driver CPU s", "x duckdb", "rows/s/core"]
    software = versions("duckdb", "pyspark", "sqlglot")
    lines = setting("bench_spark: drift on Spark local[2] vs the embedded store", software, load)
    print("\n".join([*lines, *notes, "", *table(header, rows)]))
    print(
        "\nrows/s/core: 2N rows read (reference + analysis) / wall / 2 cores. driver CPU s is"
        " this process's CPU (DuckDB's threads; for Spark the driver's Python, not the JVM)."
    )


if __name__ == "__main__":
    main()
