"""Performance benchmark: ``store.performance`` vs a pandas groupby + scikit-learn loop.

Workload (issue 4, point 10): N labeled binary predictions (N / 2 examples, each scored
by 2 versions, a champion and a challenger), spread over 60 days (60 daily windows), 3
slice columns (``segment``: 5 categories, ``device``: 3 categories, ``amount``: numeric,
binned into 4 quantile bins of the training rows), every binary metric (accuracy,
precision, recall, f1, specificity, roc_auc, average_precision, log_loss, brier, ece)
per window x version x slice (the combinations of the three columns: 60 x 2 x 5 x 3 x 4
= 7,200 cells). Scores are continuous float64 (almost all distinct), the realistic worst
case for ROC AUC and average precision, which need the scores' order.

For each size in ``--sizes`` (default 1M and 10M) it prints one line per case:

* ``evalstore store.performance(by=[segment, device, amount])``: the call a user makes
  with the default settings (every metric, 95% intervals: Wilson, DeLong, logit, normal,
  and the seeded bootstrap of f1 and ece; late-label columns), end to end from a DuckDB
  *file* store (the join of predictions, latest labels and serving features; binning;
  Arrow result). The store is built beforehand by ingesting the rows (ingest time is in
  the header, not in the table).
* ``pandas groupby + scikit-learn loop (yardstick)``: the same rows already joined in one
  in-memory pandas DataFrame (the join and the label-latest logic are free for it), the
  amount bins from ``numpy.quantile`` of the training amounts and ``np.searchsorted``,
  then ``DataFrame.groupby([day, version, segment, device, amount_bin])`` and per group
  scikit-learn's ``accuracy_score``, ``precision_score``, ``recall_score``, ``f1_score``,
  ``confusion_matrix`` (specificity), ``roc_auc_score``, ``average_precision_score``,
  ``log_loss``, ``brier_score_loss`` and a numpy ECE. Point estimates only (no intervals,
  no coverage). The ratio column divides by this line.

Every case runs ``--repeat`` times (default 3; ``--baseline-repeat``, default 1, for the
slow loop) in a fresh subprocess (``bench_performance.py --case NAME`` re-invoking this
file), interleaved; the table shows medians. Peak RSS is the process's high-water mark
(``VmHWM``) reset with ``/proc/self/clear_refs`` once the inputs are built, so it covers
the timed region; the baseline is the RSS at that point. ``other procs CPU s`` is the CPU
time the rest of the machine used during the run: the machine is shared, trust a line only
when that is near 0. The report checks that every metric of every cell agrees between
evalstore and scikit-learn.

Usage::

    python benchmarks/bench_performance.py [--sizes 1M,10M] [--repeat R] [--cases a,b]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from harness import (
    Timed,
    bench_parser,
    child_mode,
    growth,
    load_average,
    median,
    run_cases,
    run_child,
    setting,
    sizes_and_cases,
    start_measuring,
    table,
    versions,
)

MODEL = "bench"
VERSIONS = ("champion", "challenger")
DAYS = 60
SEGMENTS = ("consumer", "enterprise", "partner", "public", "smb")
DEVICES = ("android", "ios", "web")
AMOUNT_BINS = 4
TRAINING_ROWS = 100_000
ECE_BINS = 10
BY = ["segment", "device", "amount"]
METRICS = (
    "accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "average_precision",
    "log_loss", "brier", "ece",
)  # fmt: skip
START = np.datetime64("2026-01-01T00:00:00", "us")
DAY_US = 86_400 * 10**6
STORE_FILE = "performance-{rows}.duckdb"
YARDSTICK = "sklearn"
TARGET_CASE = "evalstore"
TARGET_SECONDS = 5.0
TARGET_SPEEDUP = 10.0


# ---------------------------------------------------------------- data


def make_data(rows: int) -> dict[str, pa.Table]:
    """features (training + serving), predictions (2 versions) and labels for N = rows.

    Deterministic (numpy ``default_rng(0)``). rows / 2 serving examples with ts uniform
    over 60 days from 2026-01-01 (in time order), segment (5 values, unequal shares),
    device (3), amount (lognormal); a latent risk z = 0.8 * logit-ish signal of the
    features + noise gives the label y ~ Bernoulli(sigmoid(z - 1.5)) (~25% positives);
    each version scores sigmoid(z - 1.5 + its own noise) (the challenger less noisy) at
    full float64 precision. Labels arrive 1 to 5 days after the prediction. Training rows
    (100,000, amount only matters) give the amount bins.
    """
    rng = np.random.default_rng(0)
    examples = rows // len(VERSIONS)
    us = np.sort(rng.integers(0, DAYS * DAY_US, examples))
    ts = START + us.astype("timedelta64[us]")
    ids = pa.array(np.arange(examples)).cast(pa.string())
    example_id = pc.binary_join_element_wise("ex-", pc.utf8_lpad(ids, 10, "0"), "")
    segment_code = rng.choice(len(SEGMENTS), examples, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    device_code = rng.choice(len(DEVICES), examples, p=[0.45, 0.35, 0.2])
    amount = rng.lognormal(3.0, 1.0, examples)
    day = us / DAY_US
    z = (
        0.8 * rng.standard_normal(examples)
        + 0.3 * (segment_code == 4)
        + 0.2 * np.log(amount)
        + 0.01 * day
    )
    y = (rng.random(examples) < 1 / (1 + np.exp(-(z - 1.5)))).astype(np.int64)
    features = pa.table(
        {
            "example_id": example_id,
            "ts": pa.array(ts),
            "segment": pa.array(np.array(SEGMENTS)[segment_code]),
            "device": pa.array(np.array(DEVICES)[device_code]),
            "amount": pa.array(amount),
        }
    )
    training = pa.table(
        {
            "example_id": pc.binary_join_element_wise(
                "train-", pa.array(np.arange(TRAINING_ROWS)).cast(pa.string()), ""
            ),
            "ts": pa.array(START - (np.arange(TRAINING_ROWS) + 1).astype("timedelta64[s]")),
            "segment": pa.array(np.array(SEGMENTS)[rng.choice(5, TRAINING_ROWS)]),
            "device": pa.array(np.array(DEVICES)[rng.choice(3, TRAINING_ROWS)]),
            "amount": pa.array(rng.lognormal(3.0, 1.0, TRAINING_ROWS)),
        }
    )
    predictions = {}
    for i, version in enumerate(VERSIONS):
        noise = (0.9 - 0.3 * i) * rng.standard_normal(examples)
        score = 1 / (1 + np.exp(-(z - 1.5 + noise)))
        predictions[version] = pa.table(
            {
                "example_id": example_id,
                "ts": pa.array(ts),
                "prediction": pa.array((score >= 0.5).astype(np.int64)),
                "score": pa.array(score),
            }
        )
    delay = rng.integers(DAY_US, 5 * DAY_US, examples).astype("timedelta64[us]")
    labels = pa.table({"example_id": example_id, "ts": pa.array(ts + delay), "label": y})
    return {"features": features, "training": training, "labels": labels, **predictions}


def frame(data: dict[str, pa.Table]) -> Any:
    """The joined rows as the pandas baseline gets them: one row per prediction."""
    import pandas as pd

    features = data["features"].to_pandas()
    labels = data["labels"].column("label").to_numpy()
    parts = []
    for version in VERSIONS:
        part = features[["ts", "segment", "device", "amount"]].copy()
        part["version"] = version
        part["score"] = data[version].column("score").to_numpy()
        part["label"] = labels
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _key(day: int, version: str, segment: str, device: str, amount_bin: int, metric: str) -> str:
    return f"{day}|{version}|{segment}|{device}|{amount_bin}|{metric}"


# ---------------------------------------------------------------- cases (child side)


def case_evalstore(workdir: Path, rows: int) -> dict:
    import evalstore

    store = evalstore.open(workdir / STORE_FILE.format(rows=rows), read_only=True)
    measured = start_measuring()
    with Timed() as timed:
        result = store.performance(MODEL, window="1 day", by=BY)
    store.close()
    labels = sorted(
        set(result.column("amount").drop_null().to_pylist()),
        key=lambda text: float(text.split(",")[0].strip("[(")),
    )
    amount_bin = {label: i for i, label in enumerate(labels)}
    starts = sorted(set(result.column("window_start").to_pylist()))
    day = {start: i for i, start in enumerate(starts)}
    columns = ["window_start", "version", "segment", "device", "amount", "metric", "value"]
    values = {
        _key(day[r["window_start"]], r["version"], r["segment"], r["device"],
             amount_bin[r["amount"]], r["metric"]): r["value"]
        for r in result.select(columns).to_pylist()
        if r["amount"] is not None and r["value"] is not None
    }  # fmt: skip
    return timed.result(measured, values=values, result_rows=result.num_rows, windows=len(starts))


def _ece(y: np.ndarray, s: np.ndarray) -> float:
    b = np.minimum(np.floor(s * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    return float(np.abs(np.bincount(b, weights=y - s, minlength=ECE_BINS)).sum() / len(y))


def case_sklearn(workdir: Path, rows: int) -> dict:
    import warnings

    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        brier_score_loss,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    data = make_data(rows)
    df = frame(data)
    training_amount = data["training"].column("amount").to_numpy()
    del data
    measured = start_measuring()
    values = {}
    warnings.filterwarnings("ignore")
    with Timed() as timed:
        edges = np.quantile(training_amount, np.arange(1, AMOUNT_BINS) / AMOUNT_BINS)
        df["amount_bin"] = np.searchsorted(edges, df["amount"].to_numpy(), side="right")
        df["day"] = (df["ts"] - np.datetime64(START, "us")) // np.timedelta64(1, "D")
        keys = ["day", "version", "segment", "device", "amount_bin"]
        for key, group in df.groupby(keys, sort=True, observed=True):
            y = group["label"].to_numpy()
            s = group["score"].to_numpy()
            yhat = (s >= 0.5).astype(np.int64)
            both = len(np.unique(y)) == 2
            tn, fp, _, _ = confusion_matrix(y, yhat, labels=[0, 1]).ravel()
            row = {
                "accuracy": accuracy_score(y, yhat),
                "precision": precision_score(y, yhat, zero_division=np.nan),
                "recall": recall_score(y, yhat, zero_division=np.nan),
                "f1": f1_score(y, yhat, zero_division=np.nan),
                "specificity": tn / (tn + fp) if tn + fp else np.nan,
                "roc_auc": roc_auc_score(y, s) if both else np.nan,
                "average_precision": average_precision_score(y, s) if y.any() else np.nan,
                "log_loss": log_loss(y, s, labels=[0, 1]),
                "brier": brier_score_loss(y, s, pos_label=1),
                "ece": _ece(y, s),
            }
            day, version, segment, device, amount_bin = key
            for metric, value in row.items():
                if not np.isnan(value):
                    cell = (int(day), version, segment, device, int(amount_bin), metric)
                    values[_key(*cell)] = float(value)
    return timed.result(measured, values=values, groups=len(values) // len(METRICS))


def prepare(workdir: Path, rows: int) -> dict:
    """The store the evalstore case reads (ingest timed, reported apart)."""
    import evalstore

    data = make_data(rows)
    path = workdir / STORE_FILE.format(rows=rows)
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    store = evalstore.open(path)
    for version in VERSIONS:
        store.register_model(MODEL, version, "binary", positive_class=1, threshold=0.5)
    start = time.perf_counter()
    store.log_features(MODEL, data["training"], env="training")
    store.log_features(MODEL, data["features"], env="serving")
    for version in VERSIONS:
        store.log_predictions(MODEL, data[version], version=version)
    store.log_labels(MODEL, data["labels"])
    store.close()
    return {
        "ingest_seconds": time.perf_counter() - start,
        "store_mb": path.stat().st_size / 1e6,
        "data_bytes": sum(t.nbytes for t in data.values()),
    }


#: key -> (label, function); the table follows this order.
CASES: dict[str, tuple[str, Callable[[Path, int], dict]]] = {
    TARGET_CASE: ("evalstore store.performance(by=[segment, device, amount])", case_evalstore),
    YARDSTICK: ("pandas groupby + scikit-learn loop (yardstick)", case_sklearn),
}
SLOW = (YARDSTICK,)


# ---------------------------------------------------------------- driver (parent side)


def _versions() -> str:
    return versions("duckdb", "sklearn", "pandas", "numpy", "pyarrow", "evalstore")


def _agreement(by_case: dict[str, list[dict]]) -> list[str]:
    """Largest |evalstore - scikit-learn| per metric over the cells both define."""
    ours = by_case.get(TARGET_CASE, [{}])[0].get("values")
    theirs = by_case.get(YARDSTICK, [{}])[0].get("values")
    if not ours or not theirs:
        return []
    lines = []
    for metric in METRICS:
        keys = [k for k in theirs if k.endswith(f"|{metric}")]
        missing = [k for k in keys if k not in ours]
        extra = [k for k in ours if k.endswith(f"|{metric}") and k not in theirs]
        worst = max((abs(ours[k] - theirs[k]) for k in keys if k in ours), default=0.0)
        lines.append(
            f"{metric}: {len(keys)} cells, max |evalstore - scikit-learn| = {worst:.1e}"
            + (f", {len(missing)} missing in evalstore" if missing else "")
            + (f", {len(extra)} only in evalstore" if extra else "")
        )
    return lines


def report(
    sizes: list[int],
    results: dict[int, dict[str, list[dict]]],
    inputs: dict[int, dict],
    repeat: int,
    baseline_repeat: int,
    load: list[float],
) -> str:
    header = (
        "case", "rows", "seconds", "ratio vs loop", "peak RSS MB", "baseline RSS MB",
        "CPU s", "other procs CPU s", "runs (s)",
    )  # fmt: skip
    lines = []
    for rows in sizes:
        by_case = results[rows]
        yard = by_case.get(YARDSTICK)
        yard_s = median(yard, "seconds") if yard and not yard[0].get("timed_out") else None
        for key, (label, _) in CASES.items():
            runs = by_case.get(key)
            if not runs:
                continue
            if any(run.get("timed_out") for run in runs):
                lines.append((label, f"{rows:,}", "timed out", *[""] * 6))
                continue
            seconds = median(runs, "seconds")
            lines.append(
                (
                    label,
                    f"{rows:,}",
                    f"{seconds:.3f}",
                    f"{seconds / yard_s:.3f}x" if yard_s else "",
                    f"{median(runs, 'peak_mb'):.0f}",
                    f"{median(runs, 'baseline_mb'):.0f}",
                    f"{median(runs, 'cpu_seconds'):.2f}",
                    f"{median(runs, 'other_cpu_seconds'):.2f}",
                    " ".join(f"{run['seconds']:.2f}" for run in runs),
                )
            )
    cells = DAYS * len(VERSIONS) * len(SEGMENTS) * len(DEVICES) * AMOUNT_BINS
    header_lines = setting(
        f"evalstore performance benchmark: N labeled binary predictions ({len(VERSIONS)} "
        f"versions x N/2 examples) over {DAYS} daily windows, sliced by segment x device x "
        f"amount ({len(SEGMENTS)} x {len(DEVICES)} x {AMOUNT_BINS} quantile bins): {cells:,} "
        f"cells x {len(METRICS)} metrics ({', '.join(METRICS)})",
        _versions(),
        load,
    )
    for rows in sizes:
        info = inputs[rows]
        header_lines.append(
            f"N = {rows:,}: data size (Arrow tables) {info['data_bytes'] / 1e6:.0f} MB; store "
            f"file {info['store_mb']:.0f} MB, ingest {info['ingest_seconds']:.1f} s (not in "
            "the table)"
        )
    header_lines += [
        f"median of {repeat} run(s) ({baseline_repeat} for the loop), each in a fresh process; "
        "seconds: the call or loop only (inputs built before); CPU s: user + system, all "
        "threads;",
        "peak RSS: high-water mark over the timed region; baseline RSS: at its start (inputs "
        "built, store open); other procs CPU s: CPU time the rest of the machine used "
        "meanwhile (> 0: the run shared the cores)",
    ]
    out = [*header_lines, "", *table(header, lines), ""]
    rows = sizes[-1]
    target, yard = results[rows].get(TARGET_CASE), results[rows].get(YARDSTICK)
    out.append(f"targets at N = {rows:,} for '{CASES[TARGET_CASE][0]}':")
    if target and not target[0].get("timed_out"):
        seconds = median(target, "seconds")
        ratio = median(yard, "seconds") / seconds if yard and not yard[0].get("timed_out") else 0
        for text, met in (
            (f"under {TARGET_SECONDS:.0f} s: {seconds:.2f} s", seconds < TARGET_SECONDS),
            (
                f">= {TARGET_SPEEDUP:.0f}x faster than the loop: {ratio:.1f}x",
                ratio >= TARGET_SPEEDUP,
            ),
        ):
            out.append(f"  {text}  -> {'MET' if met else 'MISSED'}")
    if len(sizes) > 1:
        out += ["", "growth of time with N:"]
        for key in CASES:
            times = [
                median(results[r][key], "seconds")
                for r in sizes
                if results[r].get(key) and not results[r][key][0].get("timed_out")
            ]
            if len(times) == len(sizes):
                out.append(f"  {CASES[key][0]}: {growth(sizes, times)}")
    for rows in sizes:
        agreement = _agreement(results[rows])
        if agreement:
            out += ["", f"agreement at N = {rows:,} (evalstore vs scikit-learn, per cell):"]
            out += [f"  {line}" for line in agreement]
    return "\n".join(out)


def main() -> None:
    parser = bench_parser(__doc__, CASES, "1M,10M", 3600)
    parser.add_argument(
        "--baseline-repeat", type=int, default=1, help="runs of the slow pandas loop (default 1)"
    )
    args = parser.parse_args()
    if child_mode(parser, args, lambda name: prepare if name == "prepare" else CASES[name][1]):
        return
    sizes, chosen = sizes_and_cases(parser, args, CASES, 1000, [args.repeat, args.baseline_repeat])
    load = [load_average()]
    results: dict[int, dict[str, list[dict]]] = {}
    inputs: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="evalstore-bench-performance-") as tmp:
        for rows in sizes:
            common = ["--rows", str(rows), "--workdir", tmp]
            print(f"N = {rows:,}: preparing the store in {tmp} ...", file=sys.stderr, flush=True)
            inputs[rows] = run_child(__file__, ["--case", "prepare", *common], args.timeout)
            results[rows] = run_cases(
                __file__,
                chosen,
                common,
                args.repeat,
                runs={key: args.baseline_repeat for key in SLOW},
                timeout=args.timeout,
                prefix=f"N = {rows:,} ",
            )
            (Path(tmp) / STORE_FILE.format(rows=rows)).unlink(missing_ok=True)
    load.append(load_average())
    print(report(sizes, results, inputs, args.repeat, args.baseline_repeat, load))


if __name__ == "__main__":
    main()
