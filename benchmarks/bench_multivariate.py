"""Multivariate drift benchmark: evalstore's domain classifier (and PCA with categorical
features) vs NannyML 0.13's ``DomainClassifierCalculator`` and
``DataReconstructionDriftCalculator`` on the same rows.

Workload (issue 23, point 7): a reference of ``--rows`` training rows (default 100,000)
and as many serving rows, 10 features: 8 correlated numeric ones and 2 string ones (5 and
20 categories). The serving rows drift mildly: feature x0's mean moves by 0.1 sd, x1's sd
grows by 10%, and the shares of c0 move. The serving rows are one window.

Cases (each timed once, the machine being shared; CPU seconds of all threads beside wall):

* ``evalstore domain_classifier``: ``store.multivariate_drift(methods=['domain_classifier'],
  features=<all 10>, window={'chunks': 1})`` end to end (pivot in DuckDB, encoding, 10
  reference chunks for the learned range, the window), at the default
  ``classifier_rows=2000`` and at ``classifier_rows=100000`` (every row, as NannyML).
* ``NannyML DomainClassifierCalculator``: ``fit(reference)`` with ``chunk_number=10`` (its
  10 reference-chunk AUCs, what evalstore learns its range from) plus ``calculate`` of
  the serving rows as one chunk (its chunker switched to one chunk after ``fit``); LightGBM
  with NannyML's default hyper-parameters but ``n_jobs=1``, 5 folds.
* ``evalstore pca`` / ``NannyML DataReconstructionDriftCalculator``: PCA reconstruction
  error with count-encoded categoricals, the window's value side by side.

The NannyML side runs in ``--peer-python`` (default ``/work/peers-venv/bin/python``: the
peers are not evalstore dependencies) as ``bench_multivariate.py --peer DIR``, reading the
same rows from Parquet. Data generation is deterministic (``numpy.random.default_rng(0)``).
Both sides run on one thread (``OPENBLAS_NUM_THREADS=1``, LightGBM ``n_jobs=1``): on the
shared 2-core machine the multithreaded runs spent most of their CPU time spinning (at
5,000 rows NannyML took 526 s wall with ``n_jobs=-1``).

Usage::

    .venv/bin/python benchmarks/bench_multivariate.py [--rows N] [--peer-python PATH]
    /work/peers-venv/bin/python benchmarks/bench_multivariate.py \
        --golden tests/metrics/goldens/multivariate_nannyml.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one BLAS thread (set before numpy loads): on a shared machine, idle BLAS threads spinning
# for a core cost more than they bring to these small products
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

NUMERIC = [f"x{i}" for i in range(8)]
CATEGORICAL = ["c0", "c1"]


def make_data(rows: int) -> tuple[dict, dict]:
    """(reference, serving) as dicts of numpy columns (see the module docstring)."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8)) / np.sqrt(8)

    def side(drift: bool) -> dict:
        z = rng.normal(size=(rows, 8)) @ mixing
        if drift:
            z[:, 0] += 0.1 * z[:, 0].std()
            z[:, 1] *= 1.1
        shares = [0.4, 0.25, 0.15, 0.12, 0.08]
        if drift:
            shares = [0.36, 0.25, 0.17, 0.13, 0.09]
        columns = {name: z[:, i] for i, name in enumerate(NUMERIC)}
        columns["c0"] = rng.choice([f"a{i}" for i in range(5)], size=rows, p=shares)
        columns["c1"] = rng.choice([f"b{i:02d}" for i in range(20)], size=rows)
        return columns

    return side(False), side(True)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_evalstore(reference: dict, serving: dict) -> list[dict]:
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa

    import evalstore

    rows = len(reference["x0"])
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def table(columns: dict, prefix: str, offset: int) -> pa.Table:
        ts = [start + timedelta(seconds=offset + i) for i in range(rows)]
        ids = [f"{prefix}{i:07d}" for i in range(rows)]
        return pa.table({"example_id": ids, "ts": ts, **columns})

    store = evalstore.open()
    store.register_model("m", "v1", "binary")
    store.log_features("m", table(reference, "r", 0), env="training")
    store.log_features("m", table(serving, "s", 10 * rows))
    out = []
    features = NUMERIC + CATEGORICAL
    for label, method, options in [
        ("evalstore domain_classifier, classifier_rows=2000 (default)", "domain_classifier", {}),
        ("evalstore domain_classifier, classifier_rows=100000", "domain_classifier",
         {"classifier_rows": 100_000}),
        ("evalstore pca, count-encoded categoricals", "pca", {}),
    ]:  # fmt: skip
        cpu, wall = _cpu(), time.perf_counter()
        result = store.multivariate_drift(
            "m", window={"chunks": 1}, features=features, methods=[method], **options
        ).to_pylist()[0]
        out.append({
            "case": label, "wall": time.perf_counter() - wall, "cpu": _cpu() - cpu,
            "value": result["value"], "low": result["threshold_low"],
            "high": result["threshold"],
        })  # fmt: skip
    store.close()
    return out


def run_nannyml(directory: Path) -> list[dict]:
    """The peer side, run under --peer-python."""
    import logging

    import nannyml as nml
    import pandas as pd
    from nannyml.chunk import SizeBasedChunker
    from nannyml.drift.multivariate.domain_classifier.calculator import DEFAULT_LGBM_HYPERPARAMS

    logging.disable(logging.WARNING)
    reference = pd.read_parquet(directory / "reference.parquet")
    serving = pd.read_parquet(directory / "serving.parquet")
    features = NUMERIC + CATEGORICAL
    out = []
    for label, calculator, column in [
        ("NannyML DomainClassifierCalculator (LightGBM)", nml.DomainClassifierCalculator,
         "domain_classifier_auroc"),
        ("NannyML DataReconstructionDriftCalculator", nml.DataReconstructionDriftCalculator,
         "reconstruction_error"),
    ]:  # fmt: skip
        argument = "feature_column_names" if "Domain" in label else "column_names"
        options = {}
        if "Domain" in label:  # LightGBM on one thread, as evalstore runs (see the docstring)
            hyperparameters = {**DEFAULT_LGBM_HYPERPARAMS, "n_jobs": 1, "verbose": -1}
            options = {"hyperparameters": hyperparameters}
        calc = calculator(**{argument: features}, chunk_number=10, **options)
        cpu, wall = _cpu(), time.perf_counter()
        calc.fit(reference)
        calc.chunker = SizeBasedChunker(chunk_size=len(serving))
        result = calc.calculate(serving).filter(period="analysis").to_df()
        values = calc.result.filter(period="reference").to_df()[(column, "value")].to_numpy()
        out.append({
            "case": label, "wall": time.perf_counter() - wall, "cpu": _cpu() - cpu,
            "value": float(result[(column, "value")].iloc[0]),
            "low": float(values.mean() - 3 * values.std()) if "Domain" in label
            else float(result[(column, "lower_threshold")].iloc[0]),
            "high": float(values.mean() + 3 * values.std()) if "Domain" in label
            else float(result[(column, "upper_threshold")].iloc[0]),
        })  # fmt: skip
    return out


def golden_reconstruction() -> dict:
    """NannyML's ``DataReconstructionDriftCalculator`` on small data with categorical
    features, ties and missing values, inputs included (``tests/metrics/
    test_domain_classifier.py`` replays them into a store and compares with
    ``preset="nannyml"``-equivalent options: ``pca``, count encoding, chunks).

    600 reference rows cut into 10 chunks (NannyML's ``chunk_number=10``; 60 rows each),
    400 analysis rows into 4 chunks of 100 (``window={"chunks": 4, "split": "nannyml"}``);
    numeric ``x0`` rounded to 1 decimal (ties) with 5% missing, ``x1``, ``x2`` correlated with
    it, categorical ``c0`` (4 levels, 5% missing) and ``c1`` (3 levels); the analysis
    drifts in its last two chunks.
    """
    import logging

    import nannyml as nml
    import pandas as pd

    logging.disable(logging.WARNING)
    rng = np.random.default_rng(23)

    def frame(n: int, shift: np.ndarray) -> pd.DataFrame:
        x0 = np.round(rng.normal(size=n) + shift, 1)
        x0[rng.uniform(size=n) < 0.05] = np.nan
        base = np.nan_to_num(x0)
        c0 = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1]).astype(object)
        c0[(shift > 0) & (rng.uniform(size=n) < 0.4)] = "d"
        c0[rng.uniform(size=n) < 0.05] = np.nan
        return pd.DataFrame({
            "x0": x0, "x1": 0.7 * base + rng.normal(scale=0.7, size=n),
            "x2": -0.5 * base + rng.normal(size=n), "c0": c0,
            "c1": rng.choice(["p", "q", "r"], size=n),
        })  # fmt: skip

    reference = frame(600, np.zeros(600))
    analysis = frame(400, np.repeat([0.0, 0.0, 1.0, 1.0], 100))
    features = ["x0", "x1", "x2", "c0", "c1"]
    calc = nml.DataReconstructionDriftCalculator(column_names=features, chunk_number=10)
    calc.fit(reference)
    calc.chunker = nml.chunk.CountBasedChunker(chunk_number=4)
    result = calc.calculate(analysis).filter(period="analysis").to_df()
    column = "reconstruction_error"

    def records(df: pd.DataFrame) -> list[dict]:
        return [
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")
        ]

    return {
        "peer": f"NannyML {nml.__version__} DataReconstructionDriftCalculator",
        "features": features,
        "reference": records(reference),
        "analysis": records(analysis),
        "values": result[(column, "value")].tolist(),
        "lower_threshold": float(result[(column, "lower_threshold")].iloc[0]),
        "upper_threshold": float(result[(column, "upper_threshold")].iloc[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--peer-python", default="/work/peers-venv/bin/python")
    parser.add_argument("--peer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--golden",
        type=Path,
        help="write NannyML's data-reconstruction drift on small mixed data (inputs and "
        "outputs) to this JSON file and exit; run with --peer-python's interpreter",
    )
    args = parser.parse_args()
    if args.golden is not None:
        args.golden.write_text(json.dumps(golden_reconstruction(), indent=1) + "\n")
        return
    if args.peer is not None:
        print(json.dumps(run_nannyml(args.peer)))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    reference, serving = make_data(args.rows)
    results = run_evalstore(reference, serving)
    with tempfile.TemporaryDirectory() as tmp:
        pq.write_table(pa.table(reference), Path(tmp) / "reference.parquet")
        pq.write_table(pa.table(serving), Path(tmp) / "serving.parquet")
        if Path(args.peer_python).exists():
            peer = subprocess.run(
                [args.peer_python, __file__, "--peer", tmp], capture_output=True, text=True
            )
            if peer.returncode == 0:
                results += json.loads(peer.stdout.strip().splitlines()[-1])
            else:
                print(peer.stderr[-2000:], file=sys.stderr)
    base = {"domain": None, "pca": None}
    for r in results:
        kind = "pca" if ("pca" in r["case"] or "Reconstruction" in r["case"]) else "domain"
        if "NannyML" in r["case"]:
            base[kind] = r["wall"]
    load = os.getloadavg()[0]
    print(
        f"{args.rows:,} reference rows x {args.rows:,} window rows x 10 features "
        f"(8 numeric, 2 categorical), {os.cpu_count()} cores, load {load:.1f}"
    )
    print()
    print("| case | wall s | CPU s | wall vs NannyML | window value | learned range |")
    print("|:-----|-------:|------:|----------------:|-------------:|:--------------|")
    for r in results:
        kind = "pca" if ("pca" in r["case"] or "Reconstruction" in r["case"]) else "domain"
        ratio = f"{r['wall'] / base[kind]:.2f}x" if base[kind] else "n/a"
        print(
            f"| {r['case']} | {r['wall']:.2f} | {r['cpu']:.2f} | {ratio} | {r['value']:.4f} | "
            f"[{r['low']:.4f}, {r['high']:.4f}] |"
        )


if __name__ == "__main__":
    main()
