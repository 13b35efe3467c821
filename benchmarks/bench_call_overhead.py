"""The fixed cost of a metric call on a small store (issue 20): CPU per call, per family.

    python benchmarks/bench_call_overhead.py                 # 300 rows a side, 5 x 10 calls
    python benchmarks/bench_call_overhead.py --rows 3000 --repeat 3

A store file with one binary model ``m`` (versions ``v1`` and ``v2``) holds ``--rows``
training rows and ``--rows`` serving rows over ``--rows / 72`` days (a row every 20
minutes), with a normal ``x`` (shifted by 0.3 sd in serving), a normal ``y`` and a
categorical ``c``; both versions score every serving row, every serving row is labelled
an hour later, and 50 training examples are served again (skew). On it, each family's
call (defaults but the window, ``1 day``) is timed four ways, CPU seconds of this
process (DuckDB's threads included) per call, the median of ``--repeat`` rounds of
``--calls`` calls, the four taking turns within a round:

``store``
    the call as a user makes it (``store.performance("m", window="1 day")``, ...);
``bound twice``
    the same call with every macro statement run as ``con.sql(q, params=...)
    .to_arrow_table()``, which binds the statement once to describe the relation and
    again to run it (the code before :func:`evalstore.core.macros.call`);
``main SQL``
    the call's costliest statement alone (the family's macro over the model's views),
    run again through ``evalstore.core.macros.call`` with the call's parameters: what a
    SQL user of the macro pays;
``numpy``
    the user's baseline where one is simple to state: the same figures computed with
    numpy / scipy / scikit-learn from arrays already in memory (performance: accuracy,
    precision, recall, f1, ROC AUC, average precision, log loss and Brier per day and
    version, scikit-learn; drift ``ks``: ``scipy.stats.ks_2samp`` of ``x`` per day
    against training; summary: mean and sd of ``x`` and ``y`` per day). Reading the rows
    out of DuckDB is not counted.

The ratios are store / numpy and store / main SQL (the Python front door's share). The
benchmark asserts nothing about time.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from harness import load_average, setting, table, versions

import evalstore
import evalstore.core.macros as macros

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def build(path: Path, rows: int) -> None:
    """The store described in the module docstring, at ``path``."""
    rng = np.random.default_rng(0)
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.register_model("m", "v2", "binary")

        def features(ids: list[str], shift: float, **options: Any) -> pa.Table:
            n = len(ids)
            return pa.table(
                {"example_id": ids, "x": rng.normal(shift, 1, n), "y": rng.normal(0, 1, n),
                 "c": rng.choice(["a", "b", "c"], n), **options}
            )  # fmt: skip

        store.log_features("m", features([f"t{i}" for i in range(rows)], 0.0), env="training")
        ids = [f"s{i}" for i in range(rows)]
        ts = [T0 + timedelta(minutes=20 * i) for i in range(rows)]
        store.log_features("m", features(ids, 0.3, ts=ts))
        again = min(50, rows)
        store.log_features("m", features([f"t{i}" for i in range(again)], 0.0, ts=ts[:again]))
        truth = rng.integers(0, 2, rows)
        for version in ("v1", "v2"):
            score = np.clip(truth * 0.6 + rng.uniform(0, 0.5, rows), 0, 1)
            batch = pa.table({"example_id": ids, "ts": ts, "score": score})
            store.log_predictions("m", batch, version=version)
        late = [t + timedelta(hours=1) for t in ts]
        store.log_labels("m", pa.table({"example_id": ids, "ts": late, "label": truth}))


def family_calls(store: evalstore.Store) -> dict[str, Callable[[], pa.Table]]:
    """One call per family, as a user makes it."""
    return {
        "performance": lambda: store.performance("m", window="1 day"),
        "drift (ks, x)": lambda: store.drift("m", window="1 day", methods=["ks"], features=["x"]),
        "drift (defaults)": lambda: store.drift("m", window="1 day"),
        "quality": lambda: store.quality("m", window="1 day"),
        "summary_stats": lambda: store.summary_stats("m", window="1 day"),
        "skew": lambda: store.skew("m"),
        "compare": lambda: store.compare("m", "v1", "v2", window="1 day"),
        "health": lambda: store.health("m", window="1 day"),
    }


def baselines(store: evalstore.Store) -> dict[str, Callable[[], object]]:
    """numpy / scipy / scikit-learn computations of the same figures, on arrays in memory."""
    from scipy import stats
    from sklearn import metrics

    rows = store.sql(
        "SELECT CAST(epoch(ts) // 86400 AS BIGINT) AS day, version, label, score "
        "FROM m.evaluations ORDER BY day, version"
    ).to_pydict()
    day, version = np.asarray(rows["day"]), np.asarray(rows["version"])
    label, score = np.asarray(rows["label"], dtype=int), np.asarray(rows["score"])
    cells = [
        np.flatnonzero((day == d) & (version == v)) for d in np.unique(day) for v in ("v1", "v2")
    ]

    def performance() -> None:
        for cell in cells:
            y, s = label[cell], score[cell]
            yhat = (s >= 0.5).astype(int)
            metrics.accuracy_score(y, yhat)
            metrics.precision_score(y, yhat, zero_division=np.nan)
            metrics.recall_score(y, yhat, zero_division=np.nan)
            metrics.f1_score(y, yhat, zero_division=np.nan)
            if len(set(y)) == 2:
                metrics.roc_auc_score(y, s)
            metrics.average_precision_score(y, s)
            metrics.log_loss(y, s, labels=[0, 1])
            metrics.brier_score_loss(y, s)

    values = store.sql(
        "SELECT env, CAST(epoch(ts) // 86400 AS BIGINT) AS day, x, y FROM m.features "
        "WHERE env = 'training' OR example_id LIKE 's%'"
    ).to_pydict()
    env, vday = np.asarray(values["env"]), np.asarray(values["day"], dtype=float)
    x, y = np.asarray(values["x"]), np.asarray(values["y"])
    reference = x[env == "training"]
    windows = [
        np.flatnonzero((env == "serving") & (vday == d)) for d in np.unique(vday[env == "serving"])
    ]

    def drift() -> None:
        for window in windows:
            stats.ks_2samp(reference, x[window])

    def summary() -> None:
        for window in windows:
            for column in (x, y):
                column[window].mean()
                column[window].std(ddof=1)

    return {"performance": performance, "drift (ks, x)": drift, "summary_stats": summary}


def cpu_per_call(
    variants: dict[str, Callable[[], object]], calls: int, repeat: int
) -> dict[str, float]:
    """Per variant, the median over ``repeat`` rounds of the CPU seconds per call of
    ``calls`` calls; the variants take turns within each round, so a change in the
    machine's load falls on all of them alike."""
    for function in variants.values():
        function()  # warm: imports, first-call caches
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, function in variants.items():
            start = time.process_time()
            for _ in range(calls):
                function()
            rounds[name].append((time.process_time() - start) / calls)
    return {name: statistics.median(times) for name, times in rounds.items()}


def binding_twice(function: Callable[[], object]) -> Callable[[], object]:
    """``function`` run with :func:`evalstore.core.macros.call` falling back to
    ``con.sql(...).to_arrow_table()`` (every statement bound twice, as before it)."""

    def run() -> object:
        submit, macros._submit = macros._submit, None
        try:
            return function()
        finally:
            macros._submit = submit

    return run


def main_statement(
    con: duckdb.DuckDBPyConnection, function: Callable[[], object]
) -> tuple[str, Any] | None:
    """The costliest statement a call runs through :func:`evalstore.core.macros.call`,
    with its parameters, if it can run again on its own (one over a temporary view or a
    registered table the call dropped does not)."""
    seen: list[tuple[float, str, Any]] = []
    submit = macros._submit

    def timed(con: Any, query: str, values: Any, *args: Any) -> Any:
        start = time.process_time()
        result = submit(con, query, values, *args)
        seen.append((time.process_time() - start, query, values))
        return result

    macros._submit = timed
    try:
        function()
    finally:
        macros._submit = submit
    for _, query, values in sorted(seen, key=lambda item: -item[0]):
        try:  # a statement over the call's temporary views or registered tables fails now
            macros.call(con, query, values)
        except duckdb.Error:
            continue
        return query, values
    return None


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300, help="training and serving rows")
    parser.add_argument("--calls", type=int, default=10, help="calls per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (the median is shown)")
    parser.add_argument("--only", nargs="*", help="families to time (default: all)")
    args = parser.parse_args()
    if macros._submit is None:
        sys.exit("this DuckDB has no duckdb._seam.submit: every call binds twice already")
    loads = [load_average()]
    directory = Path(tempfile.mkdtemp(prefix="bench-call-overhead-"))
    try:
        build(directory / "store.duckdb", args.rows)
        with evalstore.open(directory / "store.duckdb") as store:
            con = store.connection
            numpy_side = baselines(store)
            rows = []
            for name, function in family_calls(store).items():
                if args.only and name.split(" ")[0] not in args.only and name not in args.only:
                    continue
                variants = {"store": function, "twice": binding_twice(function)}
                statement = main_statement(con, function)
                if statement is not None:
                    variants["sql"] = functools.partial(macros.call, con, *statement)
                if name in numpy_side:
                    variants["numpy"] = numpy_side[name]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # scikit-learn on one-class cells
                    got = cpu_per_call(variants, args.calls, args.repeat)
                now, twice = got["store"], got["twice"]
                sql, baseline = got.get("sql"), got.get("numpy")
                saved = f"{(twice - now) / twice:.0%}"
                rows.append(
                    [name, ms(now), ms(twice), saved, ms(sql), ms(baseline),
                     ratio(now, baseline), ratio(now, sql)]
                )  # fmt: skip
                print(f"  {name}: {ms(now)} ms", file=sys.stderr, flush=True)
        loads.append(load_average())
        software = versions("duckdb", "numpy", "scipy", "sklearn")
        title = f"bench_call_overhead: CPU ms per call, {args.rows} rows a side"
        lines = setting(title, software, loads)
        lines.append(f"rounds: median of {args.repeat} x {args.calls} calls")
        lines.append("")
        header = ["family call", "store", "bound twice", "saved", "main SQL", "numpy",
                  "store / numpy", "store / SQL"]  # fmt: skip
        lines += table(header, rows)
        print("\n".join(lines))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
