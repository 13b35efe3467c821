"""Drift benchmark: ``store.drift`` (KS + PSI + JS) vs a scipy loop, numpy, and peers.

Workload (the issue's): a reference of N training rows vs N serving rows spread over 10
days (10 daily windows), 20 float64 + 5 string features; KS, PSI and JS on every
feature and window. For each size in ``--sizes`` (default 100k and 1M) it prints one
line per case:

* ``evalstore store.drift(ks, psi, js)``: ``store.drift(model, reference='training',
  window='1 day', methods=['ks', 'psi', 'js'])`` on a DuckDB *file* store, end to end
  (macros, p-value UDF, multiple-testing correction, decisions, Arrow result). The
  store is built beforehand by ingesting the same rows (ingest time is reported in
  the header, not in the table).
* ``scipy ks_2samp loop (yardstick)``: ``scipy.stats.ks_2samp`` per window and numeric
  feature over numpy arrays already in memory. The ratio column divides by this line.
* ``scipy KS + numpy PSI/JS loop (same workload)``: the same loop plus PSI and JS on
  10 reference-quantile bins for numeric features (edges and reference histogram once
  per feature) and on category shares for string features (``pyarrow.compute
  .value_counts``, the reference's once per feature), with evalstore's definitions,
  Bonferroni-corrected KS p-values and threshold decisions.
* ``numpy, reference sorted once``: a sketch of the strategy the issue asks for, in
  plain numpy: each reference column sorted once, KS from binary searches of each
  sorted window into it, binned counts from the same sorted arrays. Shows what the
  hardware allows single-threaded; not a library.
* ``NannyML`` and ``Evidently``: only when importable (they are not dependencies of
  evalstore; install them yourself, ideally in a separate virtualenv, to get these
  lines). Otherwise the line says ``not installed``.

Every case runs ``--repeat`` times (default 3) in a fresh subprocess (``bench_drift.py
--case NAME`` re-invoking this file), interleaved across cases; the table shows medians.
Peak RSS is the process's high-water mark (``VmHWM``) reset with ``/proc/self/clear_refs``
once the inputs are built, so it covers the timed region; the baseline is the RSS at
that point. ``other procs CPU s`` is the CPU time the rest of the machine used during
the run: the machine is shared, trust a line only when that is near 0.

Data generation is deterministic (``numpy.random.default_rng(0)``); see
:func:`make_data` for the distributions (some features drift, five have heavy ties).
Every case returns its statistics, and the report checks that evalstore's KS, PSI and
JS agree with the numpy/scipy ones.

Usage::

    python benchmarks/bench_drift.py [--sizes 100k,1M,5M] [--repeat R] [--cases a,b]
"""

from __future__ import annotations

import math
import os
import subprocess
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
FLOAT_FEATURES = 20
STRING_FEATURES = 5
CARDINALITIES = (5, 20, 100, 1_000, 10_000)
TIED_FROM = 15  # f15..f19 are rounded to one decimal (heavy ties)
DAYS = 10
BINS = 10
EPSILON = 1e-4
ALPHA = 0.05
PSI_THRESHOLD = 0.2
JS_THRESHOLD = 0.1
METHODS = ("ks", "psi", "js")
#: Opt-outs of the peers' usage telemetry (NannyML posts usage events by default).
NO_TELEMETRY = {
    "NML_DISABLE_USAGE_LOGGING": "1",
    "DO_NOT_TRACK": "1",
    "EVIDENTLY_DISABLE_TELEMETRY": "1",
}
YARDSTICK = "scipy-ks"
TARGET_CASE = "evalstore"
TARGET_SECONDS = 2.0
TARGET_SPEEDUP = 3.0
TARGET_MEMORY = 2.0
REFERENCE_START = np.datetime64("2025-12-01T00:00:00", "us")
ANALYSIS_START = np.datetime64("2026-01-01T00:00:00", "us")
DAY_US = 86_400 * 10**6
STORE_FILE = "drift-{rows}.duckdb"

NUMERIC = [f"f{i:02d}" for i in range(FLOAT_FEATURES)]
CATEGORICAL = [f"s{i}" for i in range(STRING_FEATURES)]


# ---------------------------------------------------------------- data


def make_data(rows: int) -> tuple[pa.Table, pa.Table]:
    """(reference, analysis): ``rows`` training rows and ``rows`` serving rows.

    Columns example_id, ts, f00..f19 (float64), s0..s4 (string). Deterministic: numpy
    ``default_rng(0)``.

    * reference: ts uniform over the 30 days before 2026-01-01; analysis: ts uniform over
      the 10 days from 2026-01-01 (10 daily windows), rows in time order.
    * f00..f19 standard normal; every fourth one (f00, f04, ...) drifts in the analysis
      by a mean shift of 0.05 per day; f15..f19 are rounded to one decimal (about 80
      distinct values each, so ties matter).
    * s0..s4 draw from 5, 20, 100, 1,000 and 10,000 categories with Zipf-like shares
      (p ~ 1/rank); in the analysis s0's shares are reversed and flattened (drift).
    """
    rng = np.random.default_rng(0)
    tables = []
    for side in ("reference", "analysis"):
        if side == "reference":
            offset = 0
            us = rng.integers(0, 30 * DAY_US, rows)
            ts = REFERENCE_START + us.astype("timedelta64[us]")
            day = np.zeros(rows)
        else:
            offset = rows
            us = np.sort(rng.integers(0, DAYS * DAY_US, rows))
            ts = ANALYSIS_START + us.astype("timedelta64[us]")
            day = us / DAY_US
        ids = pa.array(np.arange(offset, offset + rows)).cast(pa.string())
        columns: dict[str, pa.Array] = {
            "example_id": pc.binary_join_element_wise("ex-", pc.utf8_lpad(ids, 10, "0"), ""),
            "ts": pa.array(ts),
        }
        for i, name in enumerate(NUMERIC):
            x = rng.standard_normal(rows)
            if i % 4 == 0:
                x += 0.05 * day
            if i >= TIED_FROM:
                x = np.round(x, 1)
            columns[name] = pa.array(x)
        for i, name in enumerate(CATEGORICAL):
            k = CARDINALITIES[i]
            shares = 1.0 / np.arange(1, k + 1)
            if side == "analysis" and i == 0:
                shares = shares[::-1] ** 0.2
            codes = rng.choice(k, rows, p=shares / shares.sum()).astype(np.int32)
            vocabulary = pa.array([f"{name}_{v:05d}" for v in range(k)])
            columns[name] = pa.DictionaryArray.from_arrays(codes, vocabulary).cast(pa.string())
        tables.append(pa.table(columns))
    return tables[0], tables[1]


def window_bounds(analysis: pa.Table) -> np.ndarray:
    """Row offsets of the daily windows of the (time-ordered) analysis rows."""
    us = analysis.column("ts").to_numpy().astype("datetime64[us]") - ANALYSIS_START
    day = us.astype(np.int64) // DAY_US
    return np.searchsorted(day, np.arange(DAYS + 1))


def _key(window: int, feature: str, method: str) -> str:
    return f"{window}|{feature}|{method}"


# ---------------------------------------------------------------- statistics in numpy


def quantile_edges(sorted_values: np.ndarray, bins: int = BINS) -> np.ndarray:
    """evalstore's 'quantile' edges: distinct [min, q(1/bins) .. q((bins-1)/bins), max]."""
    inner = np.quantile(sorted_values, np.arange(1, bins) / bins)
    return np.unique(np.concatenate([sorted_values[:1], inner, sorted_values[-1:]]))


def bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in evalstore's bins: below the first edge, [e_i, e_i+1) with the last inner
    bin closed, above the last edge (``sorted_values`` ascending)."""
    n = len(sorted_values)
    cuts = np.searchsorted(sorted_values, edges[:-1], side="left") if len(edges) > 1 else None
    last = np.searchsorted(sorted_values, edges[-1:], side="right")
    if cuts is None:  # a single edge: below, equal, above
        cuts = np.searchsorted(sorted_values, edges, side="left")
    cumulative = np.concatenate([cuts, last, [n]])
    return np.diff(cumulative, prepend=0)


def binned_scores(ref_counts: np.ndarray, ana_counts: np.ndarray) -> tuple[float, float]:
    """(PSI, JS distance) as evalstore.binned_scores: natural log, empty-on-both bins
    dropped, zero proportions replaced by epsilon for PSI only."""
    p = ref_counts / ref_counts.sum()
    q = ana_counts / ana_counts.sum()
    kept = (p > 0) | (q > 0)
    p, q = p[kept], q[kept]
    pe, qe = np.where(p > 0, p, EPSILON), np.where(q > 0, q, EPSILON)
    psi = float(np.sum((qe - pe) * np.log(qe / pe)))
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        jsd = (
            np.sum(np.where(p > 0, p * np.log(p / m), 0.0))
            + np.sum(np.where(q > 0, q * np.log(q / m), 0.0))
        ) / 2
    return psi, math.sqrt(max(float(jsd), 0.0))


def value_counts(values: pa.Array) -> dict[str, int]:
    """{category: count} of the non-NULL values (pyarrow's hash-based value_counts)."""
    counts = pc.value_counts(values.drop_null())
    return dict(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
    )


def category_counts(ref: dict[str, int], ana: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Aligned counts of the categories seen in either side."""
    categories = sorted(set(ref) | set(ana))
    return (
        np.array([ref.get(c, 0) for c in categories], dtype=np.float64),
        np.array([ana.get(c, 0) for c in categories], dtype=np.float64),
    )


def decide(stats: dict[str, float], p_values: dict[str, float]) -> dict[str, bool]:
    """Drift decisions as evalstore's defaults: Bonferroni-corrected KS p < alpha per
    window, PSI > 0.2, JS > 0.1."""
    tests_per_window: dict[str, int] = {}
    for key in p_values:
        window = key.split("|")[0]
        tests_per_window[window] = tests_per_window.get(window, 0) + 1
    decisions = {}
    for key, value in stats.items():
        window, _, method = key.split("|")
        if method == "ks":
            decisions[key] = min(1.0, p_values[key] * tests_per_window[window]) < ALPHA
        else:
            decisions[key] = value > (PSI_THRESHOLD if method == "psi" else JS_THRESHOLD)
    return decisions


# ---------------------------------------------------------------- cases (child side)


def _inputs(rows: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pa.Table, pa.Table]:
    """In-memory inputs of the Python baselines: numeric columns as numpy arrays."""
    reference, analysis = make_data(rows)
    ref = {f: reference.column(f).to_numpy() for f in NUMERIC}
    ana = {f: analysis.column(f).to_numpy() for f in NUMERIC}
    return ref, ana, reference, analysis


def case_evalstore(workdir: Path, rows: int) -> dict:
    import evalstore

    store = evalstore.open(workdir / STORE_FILE.format(rows=rows), read_only=True)
    measured = start_measuring()
    with Timed() as timed:
        result = store.drift(MODEL, reference="training", window="1 day", methods=list(METHODS))
    store.close()
    starts = sorted(set(result.column("window_start").to_pylist()))
    index = {start: i for i, start in enumerate(starts)}
    stats = {
        _key(index[r["window_start"]], r["feature"], r["method"]): r["value"]
        for r in result.select(["window_start", "feature", "method", "value"]).to_pylist()
    }
    return timed.result(measured, stats=stats, windows=len(starts), result_rows=result.num_rows)


def case_scipy_ks(workdir: Path, rows: int) -> dict:
    from scipy import stats as st

    ref, ana, _, analysis = _inputs(rows)
    measured = start_measuring()
    stats = {}
    with Timed() as timed:
        bounds = window_bounds(analysis)
        for feature in NUMERIC:
            for w in range(DAYS):
                window = ana[feature][bounds[w] : bounds[w + 1]]
                stats[_key(w, feature, "ks")] = float(st.ks_2samp(ref[feature], window).statistic)
    return timed.result(measured, stats=stats)


def case_numpy_same(workdir: Path, rows: int) -> dict:
    from scipy import stats as st

    ref, ana, reference, analysis = _inputs(rows)
    measured = start_measuring()
    stats, p_values = {}, {}
    with Timed() as timed:
        bounds = window_bounds(analysis)
        for feature in NUMERIC:
            ref_sorted = np.sort(ref[feature])
            edges = quantile_edges(ref_sorted)
            ref_counts = bin_counts(ref_sorted, edges)
            for w in range(DAYS):
                window = ana[feature][bounds[w] : bounds[w + 1]]
                ks = st.ks_2samp(ref[feature], window)
                psi, js = binned_scores(ref_counts, bin_counts(np.sort(window), edges))
                stats[_key(w, feature, "ks")] = float(ks.statistic)
                p_values[_key(w, feature, "ks")] = float(ks.pvalue)
                stats[_key(w, feature, "psi")], stats[_key(w, feature, "js")] = psi, js
        for feature in CATEGORICAL:
            ref_counts = value_counts(reference.column(feature))
            for w in range(DAYS):
                window = analysis.column(feature).slice(bounds[w], bounds[w + 1] - bounds[w])
                psi, js = binned_scores(*category_counts(ref_counts, value_counts(window)))
                stats[_key(w, feature, "psi")], stats[_key(w, feature, "js")] = psi, js
        decisions = decide(stats, p_values)
    return timed.result(measured, stats=stats, drifted=sum(decisions.values()))


def _ks_sorted(ref_sorted: np.ndarray, window_sorted: np.ndarray) -> float:
    """Two-sided KS D from sorted samples: F_R at and just below each window value."""
    n, m = len(ref_sorted), len(window_sorted)
    ref_le = np.searchsorted(ref_sorted, window_sorted, side="right")
    ref_lt = ref_le.copy()
    tied = ref_le > 0
    tied[tied] = ref_sorted[ref_le[tied] - 1] == window_sorted[tied]
    if tied.any():
        ref_lt[tied] = np.searchsorted(ref_sorted, window_sorted[tied], side="left")
    ana_le = np.searchsorted(window_sorted, window_sorted, side="right")
    ana_lt = np.searchsorted(window_sorted, window_sorted, side="left")
    return float(
        max(
            np.max(np.abs(ref_le / n - ana_le / m)),
            np.max(np.abs(ref_lt / n - ana_lt / m)),
        )
    )


def case_numpy_sorted(workdir: Path, rows: int) -> dict:
    from scipy import stats as st

    ref, ana, reference, analysis = _inputs(rows)
    measured = start_measuring()
    stats, p_values = {}, {}
    with Timed() as timed:
        bounds = window_bounds(analysis)
        for feature in NUMERIC:
            ref_sorted = np.sort(ref[feature])
            n = len(ref_sorted)
            edges = quantile_edges(ref_sorted)
            ref_counts = bin_counts(ref_sorted, edges)
            for w in range(DAYS):
                window = np.sort(ana[feature][bounds[w] : bounds[w + 1]])
                m = len(window)
                d = _ks_sorted(ref_sorted, window)
                psi, js = binned_scores(ref_counts, bin_counts(window, edges))
                stats[_key(w, feature, "ks")] = d
                # method='auto' of ks_2samp: asymptotic beyond 10,000 values per sample
                p_values[_key(w, feature, "ks")] = float(
                    st.kstwo.sf(d, round(n * m / (n + m)))
                    if max(n, m) > 10_000
                    else st.ks_2samp(ref_sorted, window).pvalue
                )
                stats[_key(w, feature, "psi")], stats[_key(w, feature, "js")] = psi, js
        for feature in CATEGORICAL:
            ref_counts = value_counts(reference.column(feature))
            for w in range(DAYS):
                window = analysis.column(feature).slice(bounds[w], bounds[w + 1] - bounds[w])
                psi, js = binned_scores(*category_counts(ref_counts, value_counts(window)))
                stats[_key(w, feature, "psi")], stats[_key(w, feature, "js")] = psi, js
        decisions = decide(stats, p_values)
    return timed.result(measured, stats=stats, drifted=sum(decisions.values()))


def _frames(rows: int) -> tuple[Any, Any]:
    reference, analysis = make_data(rows)
    return reference.to_pandas(), analysis.to_pandas()


def case_nannyml(workdir: Path, rows: int) -> dict:
    os.environ.update(NO_TELEMETRY)
    import nannyml

    reference, analysis = _frames(rows)
    measured = start_measuring()
    with Timed() as timed:
        calculator = nannyml.UnivariateDriftCalculator(
            column_names=[*NUMERIC, *CATEGORICAL],
            timestamp_column_name="ts",
            continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
            categorical_methods=["jensen_shannon"],
            chunk_period="D",
        )
        calculator.fit(reference)
        results = calculator.calculate(analysis).filter(period="analysis").to_df()
    return timed.result(measured, stats={}, result_rows=len(results), version=nannyml.__version__)


def case_evidently(workdir: Path, rows: int) -> dict:
    os.environ.update(NO_TELEMETRY)
    import evidently

    reference, analysis = _frames(rows)
    reference = reference[[*NUMERIC, *CATEGORICAL]]
    day = (analysis["ts"] - analysis["ts"].dt.normalize().min()).dt.days
    measured = start_measuring()
    with Timed() as timed:
        runs = 0
        for method in METHODS:
            for w in range(DAYS):
                current = analysis.loc[day == w, [*NUMERIC, *CATEGORICAL]]
                _evidently_report(reference, current, method)
                runs += 1
    return timed.result(measured, stats={}, result_rows=runs, version=evidently.__version__)


def _evidently_report(reference: Any, current: Any, method: str) -> Any:
    """One Evidently data-drift preset run with ``method`` on every column it applies to
    (KS on the numeric columns; PSI and Jensen-Shannon on all)."""
    stattest = {"ks": "ks", "psi": "psi", "js": "jensenshannon"}[method]
    columns = NUMERIC if method == "ks" else [*NUMERIC, *CATEGORICAL]
    try:  # Evidently >= 0.7
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
        report = Report([DataDriftPreset(columns=columns, method=stattest)])
        return report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    except ImportError:  # the legacy API (< 0.7)
        from evidently.metric_preset import DataDriftPreset
        from evidently.pipeline.column_mapping import ColumnMapping
        from evidently.report import Report

        mapping = ColumnMapping(numerical_features=NUMERIC, categorical_features=CATEGORICAL)
        report = Report(metrics=[DataDriftPreset(columns=columns, stattest=stattest)])
        report.run(reference_data=reference, current_data=current, column_mapping=mapping)
        return report


def prepare(workdir: Path, rows: int) -> dict:
    """The store the evalstore case reads: both sides ingested (timed, reported apart)."""
    import evalstore

    reference, analysis = make_data(rows)
    path = workdir / STORE_FILE.format(rows=rows)
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)
    store = evalstore.open(path)
    store.register_model(MODEL, "v1", "binary")
    start = time.perf_counter()
    store.log_features(MODEL, reference, env="training")
    store.log_features(MODEL, analysis, env="serving")
    store.close()
    return {
        "ingest_seconds": time.perf_counter() - start,
        "store_mb": path.stat().st_size / 1e6,
        "data_bytes": reference.nbytes + analysis.nbytes,
    }


PEERS = ("nannyml", "evidently")
#: key -> (label, function, module that must be importable); the table follows this order.
CASES: dict[str, tuple[str, Callable[[Path, int], dict], str | None]] = {
    "evalstore": ("evalstore store.drift(ks, psi, js)", case_evalstore, None),
    YARDSTICK: ("scipy ks_2samp loop, numeric only (yardstick)", case_scipy_ks, None),
    "numpy-same": ("scipy KS + numpy PSI/JS loop (same workload)", case_numpy_same, None),
    "numpy-sorted": ("numpy, reference sorted once (sketch)", case_numpy_sorted, None),
    "nannyml": ("NannyML univariate drift (KS + JS, JS)", case_nannyml, "nannyml"),
    "evidently": ("Evidently DataDriftPreset x (ks, psi, js)", case_evidently, "evidently"),
}


# ---------------------------------------------------------------- driver (parent side)


def _importable(module: str | None) -> str | None:
    """The module's version if a child process can import it, else None."""
    if module is None:
        return ""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
        env={**os.environ, **NO_TELEMETRY},
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _versions() -> str:
    return versions("duckdb", "scipy", "numpy", "pyarrow", "evalstore")


def _fmt_rows(rows: int) -> str:
    return f"{rows:,}"


def _agreement(results: dict[str, list[dict]]) -> list[str]:
    """Largest |evalstore - numpy| per method, and the scipy KS against both."""
    ours = results.get(TARGET_CASE, [{}])[0].get("stats")
    theirs = next(
        (results[k][0].get("stats") for k in ("numpy-same", "numpy-sorted") if k in results),
        None,
    )
    lines = []
    if ours and theirs:
        for method in METHODS:
            keys = [k for k in theirs if k.endswith(f"|{method}")]
            missing = [k for k in keys if ours.get(k) is None]
            worst = max((abs(ours[k] - theirs[k]) for k in keys if k not in missing), default=0)
            lines.append(
                f"{method}: {len(keys)} values, max |evalstore - numpy/scipy| = {worst:.2e}"
                + (f", {len(missing)} missing in evalstore" if missing else "")
            )
    return lines


def report(
    sizes: list[int],
    results: dict[int, dict[str, list[dict]]],
    inputs: dict[int, dict],
    skipped: dict[str, str],
    repeat: int,
    peer_repeat: int,
    load: list[float],
) -> str:
    header = (
        "case",
        "rows",
        "seconds",
        "ratio vs scipy KS loop",
        "peak RSS MB",
        "baseline RSS MB",
        "peak / data size",
        "CPU s",
        "other procs CPU s",
        "runs (s)",
    )
    lines = []
    for rows in sizes:
        by_case = results[rows]
        data_mb = inputs[rows]["data_bytes"] / 1e6
        yard = by_case.get(YARDSTICK)
        yard_s = median(yard, "seconds") if yard and not yard[0].get("timed_out") else None
        for key, (label, _, _) in CASES.items():
            if key in skipped:
                lines.append((label, _fmt_rows(rows), skipped[key], *[""] * 7))
                continue
            runs = by_case.get(key)
            if not runs:
                continue
            if any(run.get("timed_out") for run in runs):
                lines.append((label, _fmt_rows(rows), "timed out", *[""] * 7))
                continue
            seconds = median(runs, "seconds")
            peak = median(runs, "peak_mb")
            lines.append(
                (
                    label,
                    _fmt_rows(rows),
                    f"{seconds:.3f}",
                    f"{seconds / yard_s:.2f}x" if yard_s else "",
                    f"{peak:.0f}",
                    f"{median(runs, 'baseline_mb'):.0f}",
                    f"{peak / data_mb:.2f}x",
                    f"{median(runs, 'cpu_seconds'):.2f}",
                    f"{median(runs, 'other_cpu_seconds'):.2f}",
                    " ".join(f"{run['seconds']:.2f}" for run in runs),
                )
            )
    header_lines = setting(
        f"evalstore drift benchmark: N reference (training) rows vs N analysis (serving) rows "
        f"in {DAYS} daily windows, {FLOAT_FEATURES} float64 + {STRING_FEATURES} string "
        f"features; KS + PSI + JS on every feature and window",
        _versions(),
        load,
    )
    for rows in sizes:
        info = inputs[rows]
        header_lines.append(
            f"N = {_fmt_rows(rows)}: data size (Arrow tables, both sides) "
            f"{info['data_bytes'] / 1e6:.0f} MB; store file {info['store_mb']:.0f} MB, "
            f"ingest of both sides {info['ingest_seconds']:.2f} s (not in the table)"
        )
    header_lines += [
        f"median of {repeat} run(s) ({peer_repeat} for NannyML and Evidently), each in a fresh "
        "process; seconds: the call or loop only "
        "(inputs built before); CPU s: user + system, all threads;",
        "peak RSS: high-water mark over the timed region; baseline RSS: at its start (inputs "
        "built, store open); peak / data size: peak RSS over the data size; other procs CPU s: "
        "CPU time the rest of the machine used meanwhile (> 0: the run shared the cores)",
    ]
    out = [*header_lines, "", *table(header, lines), ""]

    rows = max((r for r in sizes if r <= 1_000_000), default=sizes[0])
    by_case = results[rows]
    target = by_case.get(TARGET_CASE)
    yard = by_case.get(YARDSTICK)
    out.append(f"targets at N = {_fmt_rows(rows)} for '{CASES[TARGET_CASE][0]}':")
    if target and not target[0].get("timed_out"):
        seconds = median(target, "seconds")
        ratio = median(yard, "seconds") / seconds if yard and not yard[0].get("timed_out") else 0
        memory = median(target, "peak_mb") / (inputs[rows]["data_bytes"] / 1e6)
        for text, met in (
            (f"whole workload under {TARGET_SECONDS:.0f} s: {seconds:.2f} s", seconds < 2),
            (
                f">= {TARGET_SPEEDUP:.0f}x faster than the scipy KS loop: {ratio:.2f}x",
                ratio >= TARGET_SPEEDUP,
            ),
            (
                f"peak memory under {TARGET_MEMORY:.0f}x the data size: {memory:.2f}x",
                memory < TARGET_MEMORY,
            ),
        ):
            out.append(f"  {text}  -> {'MET' if met else 'MISSED'}")
    else:
        out.append("  not measured (timed out or not run)")
    if len(sizes) > 1 and TARGET_CASE in results[sizes[0]]:
        grown = []
        for key in (TARGET_CASE, YARDSTICK):
            times = [
                median(results[r][key], "seconds")
                for r in sizes
                if key in results[r] and not results[r][key][0].get("timed_out")
            ]
            if len(times) == len(sizes):
                grown.append(f"  {CASES[key][0]}: {growth(sizes, times)}")
        if grown:
            out += ["", "growth of time with N:", *grown]
    agreement = _agreement(by_case)
    if agreement:
        out += ["", f"agreement at N = {_fmt_rows(rows)} (evalstore vs numpy/scipy):"]
        out += [f"  {line}" for line in agreement]
    return "\n".join(out)


def main() -> None:
    parser = bench_parser(__doc__, CASES, "100k,1M", 1800)
    parser.add_argument(
        "--peer-repeat",
        type=int,
        default=1,
        help="runs of the NannyML and Evidently cases (default 1: they are slow)",
    )
    args = parser.parse_args()
    if child_mode(parser, args, lambda name: prepare if name == "prepare" else CASES[name][1]):
        return
    sizes, chosen = sizes_and_cases(parser, args, CASES, 100, [args.repeat, args.peer_repeat])
    if YARDSTICK not in chosen:
        chosen.insert(0, YARDSTICK)
    skipped = {}
    for key in chosen:
        if _importable(CASES[key][2]) is None:
            skipped[key] = "not installed"
    load = [load_average()]
    results: dict[int, dict[str, list[dict]]] = {}
    inputs: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="evalstore-bench-drift-") as tmp:
        for rows in sizes:
            common = ["--rows", str(rows), "--workdir", tmp]
            print(f"N = {rows:,}: preparing the store in {tmp} ...", file=sys.stderr, flush=True)
            prepare_args = ["--case", "prepare", *common]
            inputs[rows] = run_child(__file__, prepare_args, args.timeout, NO_TELEMETRY)
            results[rows] = run_cases(
                __file__,
                [key for key in chosen if key not in skipped],
                common,
                args.repeat,
                runs={key: args.peer_repeat for key in PEERS},
                timeout=args.timeout,
                env=NO_TELEMETRY,
                prefix=f"N = {rows:,} ",
            )
            (Path(tmp) / STORE_FILE.format(rows=rows)).unlink(missing_ok=True)
    load.append(load_average())
    print(report(sizes, results, inputs, skipped, args.repeat, args.peer_repeat, load))


if __name__ == "__main__":
    main()
