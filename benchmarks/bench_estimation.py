"""Performance estimated before labels (CBPE, DLE): evalstore beside NannyML 0.13.

    python benchmarks/bench_estimation.py [--peers /work/peers-venv/bin/python] [--days 60]

Three scenarios, weekly windows (Monday to Monday, NannyML's ``chunk_period="W"``):

* **demo**: the credit-default demo (:mod:`evalstore.demo.scenario`), version v1; the
  reference is its first three serving weeks' labeled predictions; concept drift on
  ``debt_to_income`` from day 45 (2026-10-16) breaks the score-label relationship;
* **covariate shift** (generated): two features drift (their means move by 1.5 sd over 16
  weeks) while P(y | x) stays, the score a monotone, miscalibrated function of it;
  reference the first 4 weeks; every prediction labeled;
* **regression** (DLE, generated): heteroscedastic noise, the feature drifts into the noisy
  region; reference the first 4 weeks.

For each window: the estimate, the realized value over the labeled rows and its 95%
interval (``store.performance``'s: DeLong for ROC AUC, delta method for F1, normal for
MAE), and NannyML's estimate on the same rows (run in its own environment, ``--peers``,
through a subprocess; not a dependency). "within" is the share of windows whose estimate
lies in the realized 95% interval, over the windows where the relationship holds (all but
the demo's windows ending after day 45); "flagged" the share of the demo's drifted windows
evalstore marks ``diverged``. Times: the estimate call (fit included), NannyML's
``fit`` + ``estimate`` (imports and data loading excluded on both sides).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import evalstore
from evalstore.demo.run import build_store
from evalstore.demo.scenario import credit_default_scenario

PEER_SCRIPT = r"""
import json, sys, time, warnings
import pandas as pd
import nannyml as nml
warnings.filterwarnings("ignore")
spec = json.loads(sys.argv[1])
reference = pd.read_parquet(spec["reference"])
analysis = pd.read_parquet(spec["analysis"])
for frame in (reference, analysis):
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize(None)
start = time.perf_counter()
if spec["method"] == "cbpe":
    estimator = nml.CBPE(
        y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
        timestamp_column_name="timestamp", metrics=spec["metrics"], chunk_period="W",
        problem_type="classification_binary",
    )
else:
    estimator = nml.DLE(
        feature_column_names=spec["features"], y_pred="y_pred", y_true="y_true",
        timestamp_column_name="timestamp", metrics=spec["metrics"], chunk_period="W",
    )
estimator.fit(reference)
result = estimator.estimate(analysis)
elapsed = time.perf_counter() - start
frame = result.filter(period="analysis").to_df()
rows = []
for _, row in frame.iterrows():
    out = {"start": str(row[("chunk", "start_date")])[:10]}
    for metric in spec["metrics"]:
        out[metric] = float(row[(metric, "value")])
        out[metric + "_se"] = float(row[(metric, "sampling_error")])
    rows.append(out)
print(json.dumps({"seconds": elapsed, "rows": rows}))
"""


def _peer(python: str, spec: dict) -> dict | None:
    if not Path(python).exists():
        return None
    done = subprocess.run(
        [python, "-c", PEER_SCRIPT, json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"NannyML run failed: {done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def _timestamps(days: float, n: int, start: str) -> pa.Array:
    offsets = (np.arange(n) * (days * 86400 / n)).astype("timedelta64[s]")
    return pa.array(np.datetime64(start) + offsets, pa.timestamp("s", "UTC"))


# ---------------------------------------------------------------------- scenarios


def demo_store(days: int) -> evalstore.Store:
    store = evalstore.open()
    build_store(store, credit_default_scenario(days=days))
    return store


def covariate_store(weeks: int = 16, per_day: int = 1000, seed: int = 0) -> evalstore.Store:
    rng = np.random.default_rng(seed)
    n = weeks * 7 * per_day
    t = np.arange(n) / n
    x1 = rng.normal(size=n) + 1.5 * t
    x2 = rng.normal(size=n) - 1.5 * t
    logit = -1.0 + 1.2 * x1 + 0.8 * x2
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    score = 1 / (1 + np.exp(-0.6 * logit - 0.3))  # monotone in P(y | x), miscalibrated
    ids = [f"c{i}" for i in range(n)]
    ts = _timestamps(weeks * 7, n, "2026-01-05T00:00:00")  # a Monday
    store = evalstore.open()
    store.register_model("shift", "v1", "binary")
    store.log_features("shift", pa.table({"example_id": ids, "x1": x1, "x2": x2, "ts": ts}))
    store.log_predictions(
        "shift",
        pa.table({"example_id": ids, "score": score, "prediction": (score >= 0.5).astype(int),
                  "ts": ts}),
        "v1",
    )  # fmt: skip
    store.log_labels("shift", pa.table({"example_id": ids, "label": y}))
    return store


def regression_store(weeks: int = 12, per_day: int = 600, seed: int = 1) -> evalstore.Store:
    rng = np.random.default_rng(seed)
    n = weeks * 7 * per_day
    t = np.arange(n) / n
    x = rng.normal(size=n) + 1.5 * t
    group = rng.choice(np.array(["a", "b"]), size=n, p=[0.7, 0.3])
    prediction = 3 * x
    noise = (0.5 + np.abs(x)) * np.where(group == "b", 2.0, 1.0)
    y = prediction + rng.normal(size=n) * noise
    ids = [f"r{i}" for i in range(n)]
    ts = _timestamps(weeks * 7, n, "2026-01-05T00:00:00")
    store = evalstore.open()
    store.register_model("reg", "v1", "regression")
    store.log_features("reg", pa.table({"example_id": ids, "x": x, "group": group, "ts": ts}))
    store.log_predictions("reg", pa.table({"example_id": ids, "prediction": prediction,
                                           "ts": ts}), "v1")  # fmt: skip
    store.log_labels("reg", pa.table({"example_id": ids, "label": y}))
    return store


# ---------------------------------------------------------------------- runs


def run_case(store, model, reference, metrics, python, workdir, holds_until=None):
    """evalstore's and NannyML's weekly estimates of ``metrics`` on ``model``'s v1."""
    start = time.perf_counter()
    table = store.estimate_performance(
        model, metrics=metrics, window="7 days", version="v1", reference=reference
    )
    seconds = time.perf_counter() - start
    rows = table.to_pylist()
    task = store.models().to_pylist()
    task = next(r["task"] for r in task if r["model"] == model)
    system = ("example_id", "env", "dataset", "ts", "batch_id", "example_key")
    names = store.sql(f"SELECT * FROM {model}.features LIMIT 0").column_names
    features = [c for c in names if c not in system]
    columns = ", ".join(f'e."{c}"' for c in features) if task == "regression" else ""
    select = f"""
        SELECT e.ts AS timestamp, e.score AS y_pred_proba,
               {"CAST(e.prediction AS DOUBLE)" if task == "regression" else
                "CAST(e.prediction AS INTEGER)"} AS y_pred,
               {"CAST(e.label AS DOUBLE)" if task == "regression" else
                "CAST(e.label AS INTEGER)"} AS y_true{", " + columns if columns else ""}
        FROM {model}.evaluations AS e WHERE e.version = 'v1'
    """  # fmt: skip
    ref = store.sql(
        select + " AND e.label IS NOT NULL AND e.ts >= ? AND e.ts < ? ORDER BY e.ts",
        [reference[0], reference[1]],
    )
    analysis = store.sql(select + " ORDER BY e.ts")
    pq.write_table(ref, workdir / f"{model}_reference.parquet")
    pq.write_table(analysis, workdir / f"{model}_analysis.parquet")
    peer = _peer(python, {
        "reference": str(workdir / f"{model}_reference.parquet"),
        "analysis": str(workdir / f"{model}_analysis.parquet"),
        "method": "dle" if task == "regression" else "cbpe",
        "metrics": metrics, "features": features,
    })  # fmt: skip
    peer_rows = {r["start"]: r for r in (peer or {}).get("rows", [])}
    windows = []
    for metric in metrics:
        for r in (x for x in rows if x["metric"] == metric):
            start_day = str(r["window_start"])[:10]
            nanny = peer_rows.get(start_day, {}).get(metric)
            holds = holds_until is None or str(r["window_end"]) <= holds_until
            windows.append({**r, "start": start_day, "nannyml": nanny, "holds": holds})
    return windows, seconds, (peer or {}).get("seconds")


def _inside(value, row):
    if value is None or row["realized_ci_low"] is None:
        return None
    return row["realized_ci_low"] <= value <= row["realized_ci_high"]


def summarise(name, windows, seconds, peer_seconds, metrics):
    lines = []
    for metric in metrics:
        chosen = [w for w in windows if w["metric"] == metric and w["realized"] is not None]
        holding = [w for w in chosen if w["holds"]]
        drifted = [w for w in chosen if not w["holds"]]
        ours = [_inside(w["value"], w) for w in holding]
        theirs = [_inside(w["nannyml"], w) for w in holding if w["nannyml"] is not None]
        err = np.mean([abs(w["value"] - w["realized"]) for w in holding])
        peer_err = [abs(w["nannyml"] - w["realized"]) for w in holding if w["nannyml"] is not None]
        flagged = (f"{np.mean([bool(w['diverged']) for w in drifted]):.0%} of {len(drifted)}"
                   if drifted else "-")  # fmt: skip
        gap = [abs(w["value"] - w["nannyml"]) for w in chosen if w["nannyml"] is not None]
        lines.append((
            name, metric, len(holding),
            f"{np.mean(ours):.0%}", f"{np.mean(theirs):.0%}" if theirs else "n/a",
            f"{err:.4f}", f"{np.mean(peer_err):.4f}" if peer_err else "n/a",
            f"{max(gap):.1e}" if gap else "n/a", flagged,
        ))  # fmt: skip
    time_line = (name, f"{seconds:.2f}", f"{peer_seconds:.2f}" if peer_seconds else "n/a",
                 f"{peer_seconds / seconds:.2f}x" if peer_seconds else "n/a")  # fmt: skip
    return lines, time_line


def _print(headers, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    print(" | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", default="/work/peers-venv/bin/python")
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    summary, times, detail = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        cases = [
            ("demo (CBPE)", lambda: demo_store(args.days), "credit_default",
             ("2026-09-01", "2026-09-22"), ["roc_auc", "f1"], "2026-10-16"),
            ("covariate shift (CBPE)", covariate_store, "shift",
             ("2026-01-05", "2026-02-02"), ["roc_auc", "f1"], None),
            ("regression (DLE)", regression_store, "reg",
             ("2026-01-05", "2026-02-02"), ["mae", "rmse"], None),
        ]  # fmt: skip
        for name, build, model, reference, metrics, holds in cases:
            store = build()
            windows, seconds, peer_seconds = run_case(
                store, model, reference, metrics, args.peers, workdir, holds
            )
            store.close()
            lines, time_line = summarise(name, windows, seconds, peer_seconds, metrics)
            summary += lines
            times.append(time_line)
            if model == "credit_default":
                detail = windows
    print("Estimated vs realized per weekly window (95% interval of the realized value)\n")
    _print(["scenario", "metric", "windows", "evalstore within", "NannyML within",
            "evalstore mean |est-real|", "NannyML mean |est-real|",
            "max |evalstore-NannyML|", "flagged after drift"], summary)  # fmt: skip
    print("\nTime (s): estimate with fit, NannyML fit + estimate\n")
    _print(["scenario", "evalstore", "NannyML", "NannyML / evalstore"], times)
    print("\nDemo, per week (v1; concept drift from 2026-10-16)\n")
    rows = []
    for w in detail:
        real = (f"{w['realized']:.3f} [{w['realized_ci_low']:.3f}, {w['realized_ci_high']:.3f}]"
                if w["realized"] is not None else "-")  # fmt: skip
        rows.append((w["start"], w["metric"], real, f"{w['value']:.3f}",
                     f"{w['nannyml']:.3f}" if w["nannyml"] is not None else "-",
                     f"{w['label_coverage']:.2f}", w["diverged"]))  # fmt: skip
    _print(["week", "metric", "realized [95%]", "evalstore", "NannyML", "coverage",
            "diverged"], rows)  # fmt: skip


if __name__ == "__main__":
    main()
