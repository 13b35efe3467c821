"""Parity of summary statistics, confusion cells and business value with NannyML 0.13.

Generates reference and analysis data (a numeric feature rounded to 0.1, so values tie,
with 8% NaN; binary labels, scores rounded to 0.01 and decisions at 0.6), runs NannyML's
``SummaryStats{Avg,Median,Std,Sum,RowCount}Calculator`` and its ``PerformanceCalculator``
(``confusion_matrix`` with every ``normalize_confusion_matrix``, ``business_value`` with
both normalisations) with ``chunk_number=5`` in a Python environment of its own (NannyML
is not a dependency: ``--venv``), runs ``store.summary_stats`` and ``store.performance``
with ``window={"chunks": 5, "split": "nannyml"}`` on the same rows, and prints the largest
absolute difference per figure.

    python benchmarks/parity_nannyml_stats.py --venv /work/peers-venv

``business_value[per_prediction]`` is expected to differ: NannyML 0.13's realized
calculator divides each confusion-matrix column by its predicted-class count, evalstore by
the number of predictions (NannyML's documented definition; docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import evalstore

MATRIX = [[1.5, -4.0], [-20.0, 30.0]]
CELLS = {"tp": "true_positive", "fp": "false_positive", "fn": "false_negative",
         "tn": "true_negative"}  # fmt: skip
STATS = ("count", "mean", "median", "sd", "sum")

PEER_SCRIPT = """
import json, sys, warnings
import pandas as pd, nannyml as nml
warnings.filterwarnings("ignore")
folder = sys.argv[1]
ref = pd.read_parquet(f"{folder}/ref.parquet"); ana = pd.read_parquet(f"{folder}/ana.parquet")
for d in (ref, ana):
    d["timestamp"] = d["ts"].dt.tz_localize(None)
out = {}
calculators = [("mean", nml.SummaryStatsAvgCalculator),
               ("median", nml.SummaryStatsMedianCalculator),
               ("sd", nml.SummaryStatsStdCalculator), ("sum", nml.SummaryStatsSumCalculator)]
FIELDS = ("value", "lower_threshold", "upper_threshold", "alert")
for name, cls in calculators:
    calc = cls(column_names=["x"], chunk_number=5, timestamp_column_name="timestamp").fit(ref)
    df = calc.calculate(ana).filter(period="analysis").to_df()
    out[name] = {k: df[("x", k)].tolist() for k in FIELDS}
calc = nml.SummaryStatsRowCountCalculator(chunk_number=5, timestamp_column_name="timestamp")
calc = calc.fit(ref)
df = calc.calculate(ana).filter(period="analysis").to_df()
out["count"] = {k: df[("rows_count", k)].tolist() for k in FIELDS}
common = dict(y_true="y", y_pred="pred", y_pred_proba="p", problem_type="classification_binary",
              chunk_number=5, timestamp_column_name="timestamp")
for norm in (None, "all", "true", "pred"):
    calc = nml.PerformanceCalculator(metrics=["confusion_matrix"], normalize_confusion_matrix=norm,
                                     **common).fit(ref)
    df = calc.calculate(ana).filter(period="analysis").to_df()
    out[f"cm_{norm}"] = {c: df[(c, "value")].tolist() for c in
                         ("true_positive", "false_positive", "false_negative", "true_negative")}
for norm in (None, "per_prediction"):
    calc = nml.PerformanceCalculator(metrics=["business_value"], business_value_matrix=MATRIX,
                                     normalize_business_value=norm, **common).fit(ref)
    df = calc.calculate(ana).filter(period="analysis").to_df()
    out[f"bv_{norm}"] = df[("business_value", "value")].tolist()
json.dump(out, open(f"{folder}/nannyml.json", "w"), default=float)
""".replace("MATRIX", repr(MATRIX))


def generate(folder: Path, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(n: int, shift: float, start: str) -> pd.DataFrame:
        x = np.round(rng.normal(shift, 1, n), 1)
        x[rng.random(n) < 0.08] = np.nan
        y = (rng.random(n) < 0.4).astype(int)
        p = np.round(np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1), 2)
        seconds = np.sort(rng.integers(0, 86_400 * 20, n))
        ts = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s")
        return pd.DataFrame({"id": [f"{start}-{i}" for i in range(n)], "ts": ts, "x": x,
                             "y": y, "p": p, "pred": (p >= 0.6).astype(int)})  # fmt: skip

    ref, ana = frame(1003, 0.0, "2026-01-01"), frame(1210, 0.3, "2026-02-01")
    ref.to_parquet(folder / "ref.parquet")
    ana.to_parquet(folder / "ana.parquet")
    return ref, ana


def evalstore_figures(ref: pd.DataFrame, ana: pd.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {}
    window = {"chunks": 5, "split": "nannyml"}
    with evalstore.open() as store:
        store.register_model("m", "v1", "binary", classes=[0, 1])
        for env, d in (("training", ref), ("serving", ana)):
            x = pa.array(d["x"], from_pandas=False)
            store.log_features("m", pa.table({"example_id": d["id"], "ts": d["ts"], "x": x}),
                               env=env)  # fmt: skip
        store.log_predictions(
            "m", pa.table({"example_id": ana["id"], "ts": ana["ts"], "score": ana["p"],
                           "prediction": ana["pred"]}), version="v1",
        )  # fmt: skip
        store.log_labels("m", pa.table({"example_id": ana["id"], "label": ana["y"]}))
        table = store.summary_stats("m", window=window, features="x", stats=list(STATS))
        rows = table.to_pandas()
        for stat in STATS:
            part = rows[rows["stat"] == stat]
            out[stat] = {c: part[c].tolist() for c in
                         ("value", "threshold_low", "threshold_high", "alert")}  # fmt: skip
        for norm in (None, "all", "true", "pred"):
            perf = store.performance("m", metrics=list(CELLS), window=window,
                                     normalize_confusion_matrix=norm).to_pandas()  # fmt: skip
            out[f"cm_{norm}"] = {m: perf[perf["metric"] == m]["value"].tolist() for m in CELLS}
        for norm in (None, "per_prediction"):
            perf = store.performance("m", metrics="business_value", window=window,
                                     business_value_matrix=MATRIX,
                                     normalize_business_value=norm).to_pandas()  # fmt: skip
            out[f"bv_{norm}"] = perf["value"].tolist()
    return out


def largest(a: list[object], b: list[object]) -> float:
    left = np.array([np.nan if v is None else v for v in a], dtype=float)
    right = np.array([np.nan if v is None else v for v in b], dtype=float)
    both = ~np.isnan(left) & ~np.isnan(right)
    return float(np.max(np.abs(left[both] - right[both]))) if both.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--venv", required=True, help="A Python environment with nannyml 0.13")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        ref, ana = generate(folder)
        (folder / "peer.py").write_text(PEER_SCRIPT)
        subprocess.run(
            [f"{args.venv}/bin/python", str(folder / "peer.py"), str(folder)], check=True,
            env={"NML_DISABLE_USAGE_LOGGING": "1", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        peer = json.loads((folder / "nannyml.json").read_text())
    ours = evalstore_figures(ref, ana)
    print("| figure | evalstore vs NannyML 0.13: max abs difference |")
    print("| --- | --- |")
    for stat in STATS:
        for mine, theirs in (("value", "value"), ("threshold_low", "lower_threshold"),
                             ("threshold_high", "upper_threshold")):  # fmt: skip
            diff = largest(ours[stat][mine], peer[stat][theirs])  # type: ignore[index]
            note = " (NannyML: None where evalstore floors at 0)" if np.isnan(diff) else ""
            print(f"| {stat} {mine} | {diff:.3g}{note} |")
        alerts = sum(
            bool(a) != bool(b)
            for a, b in zip(ours[stat]["alert"], peer[stat]["alert"], strict=True)  # type: ignore[index]
        )
        print(f"| {stat} alerts differing | {alerts} |")
    for norm in (None, "all", "true", "pred"):
        diff = max(largest(ours[f"cm_{norm}"][m], peer[f"cm_{norm}"][n])  # type: ignore[index]
                   for m, n in CELLS.items())  # fmt: skip
        print(f"| tp, fp, fn, tn (normalize_confusion_matrix={norm}) | {diff:.3g} |")
    for norm in (None, "per_prediction"):
        diff = largest(ours[f"bv_{norm}"], peer[f"bv_{norm}"])  # type: ignore[arg-type]
        print(f"| business_value (normalize_business_value={norm}) | {diff:.3g} |")


if __name__ == "__main__":
    main()
