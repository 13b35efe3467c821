"""Suggest and select benchmark: store.suggest / store.export vs the pandas a user would write.

Workload (the issue's):

* **suggest**: a binary model with ``--rows`` (default 10M) serving predictions and
  features (4 numeric + 1 categorical), a 200k-row training reference, and 1% of the
  examples labeled; ``store.suggest(k=1000)`` with ``entropy`` and with ``mix`` (entropy,
  novelty, slices, diversity; committee drops out: one version), ``record=False`` so every
  run sees the same candidates. Target: ``mix`` under 3 s.
  Baseline: **pandas**, the same uncertainty ranking (normalised binary entropy, labeled
  examples removed with ``isin``, ``nlargest(k)``) on DataFrames already in memory (their
  load time from the store is shown on its own line). The top-k ids of evalstore's
  ``entropy`` and of pandas are compared (same set up to ties at the k-th score).
* **select + export**: a second model with ``--export-rows`` (default 5M) serving rows,
  all labeled and predicted; ``store.export(store.selection(...), path)`` writes features
  + latest label + prediction to one Parquet file. Target: at least 1M rows/s.
  Baseline: **pandas**, ``merge`` of the same three DataFrames (in memory) + ``to_parquet``
  (pyarrow), and raw DuckDB ``COPY (join) TO`` on the same tables.

Each case runs ``--repeat`` times (default 3); the table shows the median wall time, the
run's CPU time (all threads) and the CPU other processes took meanwhile (the machine is
shared), and the ratio to the baseline. The store is built once into ``--store`` (reused
when it exists with the same sizes; building 10M rows takes about a minute).

Usage::

    python benchmarks/bench_suggest.py [--rows 10000000] [--export-rows 5000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from harness import Timed, machine, median, versions

import evalstore

MODEL = "clicks"
EXPORT_MODEL = "retrain"
K = 1000
SUGGEST_TARGET_S = 3.0
EXPORT_TARGET_ROWS_PER_S = 1_000_000


def timed(fn: Any) -> dict[str, float]:
    """Call ``fn``: its wall and CPU seconds, the CPU others used meanwhile, its value."""
    with Timed() as t:
        value = fn()
    return {
        "seconds": t.seconds,
        "cpu": t.cpu_seconds,
        "other": t.other_cpu_seconds,
        "value": value,
    }


# ---------------------------------------------------------------- data


def _features(con: duckdb.DuckDBPyConnection, n: int, prefix: str, seed: int) -> pa.Table:
    con.execute(f"SELECT setseed({seed / 1000})").fetchall()
    return con.sql(
        f"""
        SELECT '{prefix}' || i AS example_id,
               TIMESTAMPTZ '2026-11-01' + to_microseconds(i * 1000) AS ts,
               sqrt(-2 * ln(random())) * cos(2 * pi() * random()) AS amount,
               sqrt(-2 * ln(random())) * cos(2 * pi() * random()) * 3 + 10 AS age,
               random() AS ratio,
               floor(random() * 20)::INTEGER AS visits,
               ['north', 'south', 'east', 'west', 'central'][1 + floor(random() * 5)::INTEGER]
                   AS region
        FROM range({n}) AS t(i)
        """
    ).to_arrow_table()


def build(path: Path, rows: int, export_rows: int) -> None:
    rng = np.random.default_rng(0)
    con = duckdb.connect()
    with evalstore.open(path) as store:
        store.register_model(MODEL, "v1", "binary")
        store.log_features(MODEL, _features(con, 200_000, "t", 1), env="training")
        features = _features(con, rows, "e", 2)
        store.log_features(MODEL, features)
        score = rng.beta(0.6, 0.6, rows)
        store.log_predictions(
            MODEL,
            pa.table(
                {
                    "example_id": features.column("example_id"),
                    "score": score,
                    "ts": features.column("ts"),
                }
            ),
            version="v1",
        )
        labeled = rng.choice(rows, rows // 100, replace=False)
        store.log_labels(
            MODEL,
            pa.table(
                {
                    "example_id": features.column("example_id").take(labeled),
                    "label": (rng.uniform(size=len(labeled)) < score[labeled]).astype(int),
                }
            ),
        )
        del features
        store.register_model(EXPORT_MODEL, "v1", "binary")
        features = _features(con, export_rows, "x", 3)
        store.log_features(EXPORT_MODEL, features)
        score = rng.uniform(size=export_rows)
        store.log_predictions(
            EXPORT_MODEL,
            pa.table({"example_id": features.column("example_id"), "score": score}),
            version="v1",
        )
        store.log_labels(
            EXPORT_MODEL,
            pa.table(
                {
                    "example_id": features.column("example_id"),
                    "label": (rng.uniform(size=export_rows) < score).astype(int),
                }
            ),
        )
    con.close()


# ---------------------------------------------------------------- cases


def pandas_entropy_topk(predictions: pd.DataFrame, labels: pd.DataFrame, k: int) -> pd.Series:
    """The pandas a user would write: binary entropy, drop labeled, nlargest."""
    unlabeled = predictions[~predictions["example_id"].isin(labels["example_id"])]
    s = unlabeled["score"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(s * np.log(s) + (1 - s) * np.log(1 - s)) / np.log(2)
    h = np.nan_to_num(h, nan=0.0)
    return unlabeled.assign(entropy=h).nlargest(k, "entropy")["example_id"]


def pandas_export(
    features: pd.DataFrame, labels: pd.DataFrame, predictions: pd.DataFrame, path: Path
) -> int:
    latest = labels.sort_values("batch_id").drop_duplicates("example_id", keep="last")
    joined = features.merge(latest[["example_id", "label"]], on="example_id", how="inner")
    joined = joined.merge(
        predictions[["example_id", "prediction", "score"]], on="example_id", how="left"
    )
    joined.to_parquet(path, engine="pyarrow", index=False)
    return len(joined)


def run(args: argparse.Namespace) -> None:
    path = Path(args.store)
    stamp = path.with_suffix(".sizes")
    sizes = f"{args.rows},{args.export_rows}"
    if not path.exists() or not stamp.exists() or stamp.read_text() != sizes:
        for p in (path, Path(f"{path}.wal")):
            p.unlink(missing_ok=True)
        t = timed(lambda: build(path, args.rows, args.export_rows))
        stamp.write_text(sizes)
        print(f"built store {path} in {t['seconds']:.1f} s")
    load = [os.getloadavg()[0]]
    results: dict[str, list[dict[str, float]]] = {}
    out = Path(tempfile.mkdtemp(prefix="bench_suggest_"))

    def record(name: str, fn: Any) -> Any:
        r = timed(fn)
        results.setdefault(name, []).append(r)
        return r["value"]

    with evalstore.open(path) as store:
        con = store.connection
        t = timed(
            lambda: (
                con.sql(f"SELECT example_id, score FROM {MODEL}.predictions").df(),
                con.sql(f"SELECT example_id FROM {MODEL}.labels").df(),
            )
        )
        predictions, labels = t["value"]
        results["pandas-load"] = [t]
        ftab = con.sql(f"SELECT * EXCLUDE (example_key) FROM {EXPORT_MODEL}.features").df()
        ltab = con.sql(f"SELECT example_id, label, batch_id FROM {EXPORT_MODEL}.labels").df()
        ptab = con.sql(f"SELECT example_id, prediction, score FROM {EXPORT_MODEL}.predictions").df()
        selection = store.selection(EXPORT_MODEL, env="serving")
        for i in range(args.repeat):
            ours = record(
                "entropy", lambda: store.suggest(MODEL, k=K, strategy="entropy", record=False)
            )
            mixed = record("mix", lambda: store.suggest(MODEL, k=K, strategy="mix", record=False))
            theirs = record("pandas-entropy", lambda: pandas_entropy_topk(predictions, labels, K))
            target = out / f"evalstore_{i}.parquet"
            record("export", lambda target=target: store.export(selection, target)["rows"])
            target = out / f"pandas_{i}.parquet"
            record("pandas-export", lambda target=target: pandas_export(ftab, ltab, ptab, target))
            target = out / f"duckdb_{i}.parquet"
            record(
                "duckdb-export",
                lambda target=target: con.execute(
                    f"COPY (SELECT f.* EXCLUDE (example_key), l.label, p.prediction, p.score "
                    f"FROM {EXPORT_MODEL}.features f JOIN {EXPORT_MODEL}.labels_latest l USING "
                    f"(example_id) LEFT JOIN {EXPORT_MODEL}.predictions p USING (example_id)) "
                    f"TO '{target}' (FORMAT parquet)"
                ).fetchall(),
            )
    load.append(os.getloadavg()[0])

    ours_ids = set(ours.column("example_id").to_pylist())
    theirs_ids = set(theirs.tolist())
    kth = min(ours.column("entropy").to_pylist())
    mix_by = pd.Series(mixed.column("picked_by").to_pylist()).value_counts().to_dict()

    def med(name: str, key: str = "seconds") -> float:
        return median(results[name], key)

    lines = [
        f"machine: {machine(memory=False)}; "
        f"{versions('duckdb', 'pandas', 'evalstore', python=False)}",
        f"suggest: {args.rows:,} predictions (1% labeled), k={K}; export: {args.export_rows:,} "
        f"labeled rows; median of {args.repeat} runs",
        "",
        "| case | wall s | CPU s | other CPU s | vs baseline | rows/s |",
        "|:-----|-------:|------:|------------:|------------:|-------:|",
    ]
    rows_of = {
        "export": args.export_rows,
        "pandas-export": args.export_rows,
        "duckdb-export": args.export_rows,
    }
    labels_ = {
        "entropy": ("evalstore suggest entropy", "pandas-entropy"),
        "mix": ("evalstore suggest mix", "pandas-entropy"),
        "pandas-entropy": ("pandas entropy top-k (DataFrames in memory)", None),
        "pandas-load": ("(pandas: load predictions + labels from the store, once)", None),
        "export": ("evalstore select + export to Parquet", "pandas-export"),
        "pandas-export": ("pandas merge + to_parquet (DataFrames in memory)", None),
        "duckdb-export": ("raw DuckDB COPY (join) TO parquet", None),
    }
    for name, (text, base) in labels_.items():
        ratio = (
            f"{med(name) / med(base):.2f}x"
            if base
            else "baseline"
            if name.startswith("pandas-e") or name == "pandas-export"
            else ""
        )
        n = rows_of.get(name)
        rate = f"{n / med(name):,.0f}" if n else ""
        lines.append(
            f"| {text} | {med(name):.2f} | {med(name, 'cpu'):.2f} | {med(name, 'other'):.2f} "
            f"| {ratio} | {rate} |"
        )
    lines += [
        "",
        f"load average (1 min) at start / end: {load[0]:.2f} / {load[-1]:.2f}",
        f"entropy top-{K}: evalstore and pandas share {len(ours_ids & theirs_ids)} ids "
        f"(k-th entropy {kth:.6f}; differences are ties at the k-th score)",
        f"mix picks by strategy: {mix_by}",
        f"targets: mix under {SUGGEST_TARGET_S:.0f} s: {med('mix'):.2f} s "
        f"({'met' if med('mix') < SUGGEST_TARGET_S else 'MISSED'}); export at least "
        f"{EXPORT_TARGET_ROWS_PER_S:,} rows/s: {args.export_rows / med('export'):,.0f} rows/s "
        f"({'met' if args.export_rows / med('export') >= EXPORT_TARGET_ROWS_PER_S else 'MISSED'})",
    ]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--export-rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--store", default=str(Path(tempfile.gettempdir()) / "evalstore_bench_suggest.duckdb")
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
