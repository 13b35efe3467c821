"""Peak memory of multivariate drift with one-hot categorical features: encoding after the
subsample / by block (now) against encoding every row first (the code before commit
4230766, loaded from git), side by side.

Both run the scoring step of ``store.multivariate_drift`` (``multivariate._score``) on the
same wide rows (what ``_wide_rows`` reads from the store): ``--rows`` reference rows and as
many window rows in ``--windows`` windows, 2 numeric features and ``--features``
categorical ones of ``--levels`` levels each, one-hot encoded. Peak memory is Python's
``tracemalloc`` peak (numpy and pyarrow's Python-visible buffers), measured around the call
alone; the values of both are compared (equal up to rounding).

    .venv/bin/python benchmarks/bench_multivariate_memory.py [--rows 100000] [--methods mmd,pca]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa

from evalstore.metrics.drift import multivariate

BASELINE_COMMIT = "39f6d37"  # the parent of 4230766 (bounded memory)
ROOT = Path(__file__).resolve().parent.parent


def _baseline_module():
    """multivariate.py as it was at BASELINE_COMMIT (its imports are still importable)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show",
         f"{BASELINE_COMMIT}:evalstore/metrics/drift/multivariate.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "multivariate_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("multivariate_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(n: int, windows: int, features: int, levels: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    total = 2 * n
    side = np.array(["reference"] * n + ["analysis"] * n)
    window = np.r_[np.full(n, -1), np.repeat(np.arange(windows), -(-n // windows))[:n]]
    start = 1_700_000_000_000_000 + window * 86_400_000_000
    columns = {
        "side": pa.array(side),
        "window_index": pa.array(np.where(window < 0, None, window).tolist(), pa.int64()),
        "window_start": pa.array(start, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "window_end": pa.array(start + 86_400_000_000, pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
    }
    shift = np.r_[np.zeros(n), np.linspace(0, 0.5, n)]
    for i in range(2):
        columns[f"f{i}"] = pa.array(rng.normal(size=total) + shift)
    names = [f"level{j:02d}" for j in range(levels)]
    for i in range(features):
        codes = rng.integers(0, levels, size=total)
        columns[f"c{i}"] = pa.array(np.array(names, dtype=object)[codes], pa.string())
    columns["time_order"] = pa.array(np.r_[np.arange(n), np.arange(n)], pa.int64())
    return pa.table(columns)


def _run(module, rows: pa.Table, features: int, methods: list[str]) -> tuple[float, float, list]:
    options = dict(
        alpha=0.05, max_rows=1000, n_permutations=50, variance=0.65, learn_chunks=10,
        learn_k=3.0, seed=0, categorical_encoding="onehot", classifier_rows=2000,
        classifier_folds=5, classifier_c=1.0, classifier_terms="linear",
        classifier_range=None,
    )  # fmt: skip
    names = [f"c{i}" for i in range(features)]
    tracemalloc.start()
    began = time.perf_counter()
    result = module._score(rows, 2, names, methods, options)
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, seconds, result.column("value").to_pylist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per side")
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--features", type=int, default=10, help="categorical features")
    parser.add_argument("--levels", type=int, default=50)
    parser.add_argument("--methods", default="mmd,pca")
    args = parser.parse_args()
    methods = args.methods.split(",")
    rows = _rows(args.rows, args.windows, args.features, args.levels)
    width = 2 + args.features * args.levels
    print(
        f"{args.rows:,} reference + {args.rows:,} window rows ({args.windows} windows), "
        f"2 numeric + {args.features} categorical features x {args.levels} levels one-hot "
        f"= {width} columns; methods {', '.join(methods)}; input table "
        f"{rows.nbytes / 2**20:.0f} MiB"
    )
    baseline = _run(_baseline_module(), rows, args.features, methods)
    now = _run(multivariate, rows, args.features, methods)
    worst = max(
        (abs(a - b) for a, b in zip(now[2], baseline[2], strict=True) if a is not None),
        default=0.0,
    )
    print()
    print("| code | peak memory (MiB) | time (s) |")
    print("| --- | ---: | ---: |")
    before = f"encode every row first ({BASELINE_COMMIT})"
    print(f"| {before} | {baseline[0]:,.0f} | {baseline[1]:.1f} |")
    print(f"| encode after the subsample / by block (now) | {now[0]:,.0f} | {now[1]:.1f} |")
    print(f"| ratio now / before | {now[0] / baseline[0]:.2f} | {now[1] / baseline[1]:.2f} |")
    print(f"\nlargest difference of the values: {worst:.2e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
