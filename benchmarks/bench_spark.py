"""Spark benchmark: ``SparkEngine`` on Spark ``local[2]`` vs the embedded store, per family.

Workload: N serving rows over 10 days (10 daily windows) against N training rows of the same
examples (ids ``e0`` ... in both envs), 5 float64 features (two drift, one with heavy ties)
and 2 string features (one with a category the training rows never have). ``x3`` is uniform
on [1, 2), not [0, 1), as in the runs of 2026-12-07: quality's ``out_of_range`` text
then cast the reference's [min, max] to text on Spark, which writes a double below 1e-3 as
``8.5E-4`` where DuckDB writes ``0.00085`` (fixed since: the texts are built on the
driver). With performance or quality, the serving rows have predictions of a
binary model (version v1: a score, the prediction at 0.5); with performance, 90% of them
have a label, known 0 to 48 hours after the prediction. The rows are ingested into a DuckDB
store file (5M rows at a time) and exported with ``store.export_lake`` (ingest and export
times are in the header, not in the table).

Families (``--families``, default ``drift``), each the store's call with its defaults:

* ``drift``: ``drift("m")`` (training reference, daily windows, KS, PSI, JS, Wasserstein,
  chi2, unseen), 2N rows read (reference + analysis);
* ``performance``: ``performance("m")`` (the binary model's default metrics, daily
  windows), N predictions read, each joined to its latest label;
* ``quality``: ``quality("m")`` (every check of the features and the outputs), 2N rows;
* ``skew``: ``skew("m")`` (the training and serving rows of each example side by side, and
  the JS distance, which is a drift call), 2N rows.

Cases, for each size of ``--sizes`` and each family:

* ``duckdb store``: the embedded store, end to end (the baseline: ratio 1).
* ``spark SparkEngine``: the same call on a Spark session (``local[2]``, UTC, 2 shuffle
  partitions, started before timing): Spark runs the relational part of the macros over the
  lake, the driver the per-cell helpers and p-values. ``first`` includes the JVM's warm-up
  (class loading, JIT, code generation) when it is the session's first call; ``second``
  (with ``--calls 2``) is the same call again.

Wall and CPU seconds are both measured: the store's CPU is this process's (DuckDB's
threads); Spark's is the JVM's (driver and the ``local[2]`` executor threads, read from
/proc) plus this process's (the driver's Python). The machine is shared, so CPU seconds are
the figure to scale from; ``rows/CPU-s`` is rows read per CPU second. With two sizes or
more, each family's last two sizes' Spark CPU seconds are fitted to ``fixed + per_row *
rows read`` (the fixed per-call cost and the per-row cost apart), the numbers
docs/scaling.md's model uses.

Each Spark row is checked equal to the store's (1e-9) before the table is printed.

Usage::

    python benchmarks/bench_spark.py [--sizes 1M,10M] [--calls 1] [--families drift,performance]
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))
from harness import Timed, load_average, parse_size, setting, table, versions

import evalstore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY_SECONDS = 86_400


def make_rows(n: int, serving: bool, seed: int, first: int = 0) -> pa.Table:
    """``n`` rows of 5 numeric and 2 string features; serving rows drift (see docstring).
    Example ids ``e<first>`` to ``e<first + n - 1>`` in both envs (skew pairs them)."""
    rng = np.random.default_rng([seed, first])
    shift = 0.3 if serving else 0.0
    start = np.datetime64(T0.replace(tzinfo=None), "us") + np.timedelta64(
        30 * DAY_SECONDS if serving else 0, "s"
    )
    seconds = rng.integers(0, 10 * DAY_SECONDS, n)
    cats = np.array(["a", "b", "c", "d"] if serving else ["a", "b", "c"])
    ids = pc.binary_join_element_wise(
        "e", pc.cast(pa.array(np.arange(first, first + n)), pa.string()), ""
    )
    return pa.table({
        "example_id": ids,
        "ts": pa.array(start + seconds.astype("timedelta64[s]"), pa.timestamp("us", tz="UTC")),
        "x0": rng.normal(shift, 1.0, n),
        "x1": rng.normal(0.0, 1.0 + shift, n),
        "x2": np.round(rng.exponential(1.0, n), 1),
        "x3": rng.uniform(1, 2, n),  # not (0, 1): see the module docstring
        "x4": rng.integers(0, 20, n).astype(float),
        "c0": cats[rng.integers(0, len(cats), n)],
        "c1": np.array(["x", "y"])[(rng.random(n) < (0.3 + shift / 3)).astype(int)],
    })  # fmt: skip


def make_outputs(features: pa.Table, seed: int) -> tuple[pa.Table, pa.Table]:
    """Predictions (score, 0/1 prediction at 0.5) of the serving ``features`` rows, and
    labels for 90% of them, each known 0 to 48 hours after its prediction."""
    n = features.num_rows
    rng = np.random.default_rng([seed, 7])
    x0 = features.column("x0").to_numpy()
    z = 0.8 * x0 + 0.5 * features.column("x3").to_numpy() + rng.normal(0.0, 1.0, n) - 1.5
    score = 1 / (1 + np.exp(-(z + rng.normal(0.0, 0.7, n))))
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    ts = features.column("ts")
    predictions = pa.table(
        {
            "example_id": features.column("example_id"),
            "ts": ts,
            "prediction": (score >= 0.5).astype(np.int64),
            "score": score,
        }
    )
    keep = rng.random(n) < 0.9
    delay = rng.integers(0, 48 * 3600 * 10**6, n).astype("timedelta64[us]")
    label_ts = ts.to_numpy().astype("datetime64[us]") + delay
    labels = pa.table({
        "example_id": features.column("example_id"),
        "ts": pa.array(label_ts, pa.timestamp("us", tz="UTC")),
        "label": y,
    }).filter(pa.array(keep))  # fmt: skip
    return predictions, labels


#: rows generated and ingested at a time (50M rows at once would need tens of GB)
CHUNK = 5_000_000


def limit_memory(store: evalstore.Store, memory: str | None) -> None:
    """DuckDB's ``memory_limit`` for ``store`` (``4GB``, ``512MB``; None: DuckDB's default,
    80% of the RAM, too much on a machine shared with Spark JVMs)."""
    if memory is None:
        return
    store.connection.execute("SET memory_limit = ?", [memory])


def build(
    directory: Path, n: int, families: Sequence[str], memory: str | None = None
) -> tuple[Path, Path, float, float]:
    """A store file with the rows the families read and its lake; returns paths and
    ingest/export seconds. Features (training and serving) unless performance is the only
    family; predictions of version v1 when performance or quality is measured, labels
    when performance is."""
    path, lake = directory / f"bench{n}.duckdb", directory / f"lake{n}"
    started = time.perf_counter()
    features = set(families) != {"performance"}
    outputs = bool({"performance", "quality"} & set(families))
    with evalstore.open(path) as store:
        limit_memory(store, memory)
        store.register_model("m", "v1", "binary", positive_class=1, threshold=0.5)
        for first in range(0, n, CHUNK):
            size = min(CHUNK, n - first)
            if features:
                store.log_features("m", make_rows(size, False, 1, first), env="training")
            serving = make_rows(size, True, 2, first)
            if features:
                store.log_features("m", serving)
            if outputs:
                predictions, labels = make_outputs(serving, first)
                store.log_predictions("m", predictions, version="v1")
                if "performance" in families:
                    store.log_labels("m", labels)
            del serving
        ingest = time.perf_counter() - started
        started = time.perf_counter()
        store.export_lake("m", lake)
        export = time.perf_counter() - started
    return path, lake, ingest, export


def difference(a: pa.Table, b: pa.Table) -> str | None:
    """None when ``a`` equals ``b`` (same columns and rows in order, floats to 1e-9),
    else what differs first."""
    if a.column_names != b.column_names or a.num_rows != b.num_rows:
        return f"columns {a.column_names} / {b.column_names}, rows {a.num_rows} / {b.num_rows}"
    for i, (x, y) in enumerate(zip(a.to_pylist(), b.to_pylist(), strict=True)):
        for k, v in x.items():
            w = y[k]
            if isinstance(v, float) and isinstance(w, float):
                if not (math.isnan(v) and math.isnan(w)) and abs(v - w) > 1e-9 * max(1, abs(w)):
                    return f"row {i}, {k}: Spark {x}\nstore {y}"
            elif v != w:
                return f"row {i}, {k}: Spark {x}\nstore {y}"
    return None


def session(memory: str = "3g"):  # type: ignore[no-untyped-def]
    """The ``local[2]`` session (UTC, 2 shuffle partitions, ``memory`` for the driver, 3 GB
    by default) and its JVM's pid."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]").appName("evalstore-bench")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", memory)
        .getOrCreate()
    )  # fmt: skip
    spark.sparkContext.setLogLevel("ERROR")
    return spark, int(spark._jvm.ProcessHandle.current().pid())


#: What each family's call is, and the rows it reads per serving row N (the rows/CPU-s
#: column): drift, quality and skew read the serving and the training features (2N);
#: performance reads the predictions (N), each joined to its latest label.
FAMILIES: dict[str, tuple[Callable[[Any], pa.Table], int]] = {
    "drift": (lambda e: e.drift("m"), 2),
    "performance": (lambda e: e.performance("m"), 1),
    "quality": (lambda e: e.quality("m"), 2),
    "skew": (lambda e: e.skew("m"), 2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="serving rows per case, e.g. 1M,10M")
    parser.add_argument("--calls", type=int, default=2, help="Spark calls per size (first, second)")
    parser.add_argument(
        "--families",
        default="drift",
        help=f"comma-separated, of {', '.join(FAMILIES)} (default drift)",
    )
    parser.add_argument("--driver-memory", default="3g", help="the local session's memory")
    parser.add_argument(
        "--duckdb-memory",
        default=None,
        help="DuckDB's memory_limit for ingest and the store's calls (4GB)",
    )
    args = parser.parse_args()  # fmt: skip
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        parser.error(f"unknown families {unknown}: choose among {', '.join(FAMILIES)}")
    from evalstore.engines.spark import SparkEngine

    spark, jvm = session(args.driver_memory)
    load = [load_average()]
    rows, notes, fits = [], [], []
    directory = Path(tempfile.mkdtemp(prefix="evalstore-bench-spark-"))
    try:
        for n in map(parse_size, args.sizes.split(",")):
            path, lake, ingest, export = build(directory, n, families, args.duckdb_memory)
            notes.append(f"{n:,} rows: ingest {ingest:.1f} s, export_lake {export:.1f} s")
            print(notes[-1], file=sys.stderr, flush=True)
            for family in families:
                call, per_row = FAMILIES[family]
                read = per_row * n
                before = load_average()
                with evalstore.open(path, read_only=True) as store:
                    limit_memory(store, args.duckdb_memory)
                    with Timed() as duck:
                        want = call(store)
                rows.append([f"{n:,}", family, "duckdb store", f"{duck.seconds:.2f}",
                             f"{duck.cpu_seconds:.2f}", "1.0", "1.0",
                             f"{read / duck.cpu_seconds:,.0f}", f"{before:.1f}"])  # fmt: skip
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
                engine = SparkEngine(spark, lake)
                for label in ("first", "second", "third")[: args.calls]:
                    before = load_average()
                    with Timed(pid=jvm) as run:
                        got = call(engine)
                    cpu = run.cpu_seconds + run.pid_cpu_seconds
                    print(
                        f"{n:,} | {family} | spark ({label}) | {run.seconds:.2f} wall s |"
                        f" {cpu:.2f} CPU s (not yet checked)",
                        file=sys.stderr,
                        flush=True,
                    )
                    differs = difference(got, want)
                    if differs is not None:
                        raise SystemExit(
                            f"{n} rows, {family}: Spark rows differ from the store's: {differs}"
                        )
                    fits.append((family, n, per_row, cpu, run.seconds))
                    rows.append([f"{n:,}", family, f"spark SparkEngine ({label})",
                                 f"{run.seconds:.2f}", f"{cpu:.2f}",
                                 f"{run.seconds / duck.seconds:.1f}",
                                 f"{cpu / duck.cpu_seconds:.1f}", f"{read / cpu:,.0f}",
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
    header = ["serving rows", "family", "case", "wall s", "CPU s", "x duckdb wall",
              "x duckdb CPU", "rows/CPU-s", "load"]  # fmt: skip
    software = versions("duckdb", "pyspark", "sqlglot")
    title = f"bench_spark: {', '.join(families)} on Spark local[2] vs the embedded store"
    lines = setting(title, software, load)
    print("\n".join([*lines, *notes, "", *table(header, rows)]))
    print(
        "\nCPU s: the store's is this process's (DuckDB's threads); Spark's the JVM's (driver"
        " and executor threads) plus the driver's Python. rows/CPU-s: rows read per CPU"
        " second (drift, quality, skew: 2N feature rows, reference + analysis; performance:"
        " N predictions, each joined to its label). load: 1-minute load average before the"
        " case."
    )
    for family in families:
        last = {}
        for f, n, per_row, cpu, wall in fits:
            if f == family:
                last[n] = (per_row, cpu, wall)  # the last (warmest) call of each size
        if len(last) < 2:
            continue
        (n1, (k, c1, w1)), (n2, (_, c2, w2)) = sorted(last.items())[-2:]
        per = (c2 - c1) / (k * (n2 - n1))
        fixed = c1 - per * k * n1
        print(
            f"\n{family}: fit of the last Spark call of {n1:,} and {n2:,} rows, CPU = fixed +"
            f" per_row * rows read: fixed {fixed:.1f} CPU s, per_row {per * 1e6:.2f} CPU s per"
            f" million rows read ({1 / per:,.0f} rows per CPU second past the fixed cost);"
            f" wall: fixed {w1 - (w2 - w1) / (n2 - n1) * n1:.1f} s,"
            f" {(w2 - w1) / (k * (n2 - n1)) * 1e6:.2f} s per million rows on local[2]"
        )


if __name__ == "__main__":
    main()
