"""The statistics of numeric drift from sorted arrays: the fast path of ``store.drift``.

``evalstore.drift_numeric`` (``sql/drift_numeric.sql``) defines every numeric drift method and is
what a plain DuckDB connection calls. Its exact order statistics, KS's D and
Wasserstein's W1, need each window's empirical CDF looked up in the reference's; in
DuckDB SQL that takes window functions and ASOF joins over every distinct value, which
measured 30 to 70 s for 1M reference against 1M analysis rows x 20 features on 2 cores
(``benchmarks/README.md``), far slower than the data needs. This module computes the
same per-cell statistics from each reference column sorted once and each window sorted
once (numpy, features in parallel threads), then hands them to the same SQL
(``evalstore.binned_scores`` and ``evalstore.numeric_methods``) for the method values,
variant names, reasons, thresholds and p-values. The rows are chosen and cut into
windows by the same macro, ``evalstore.drift_pairs``, so reference, window, version and
``where`` mean exactly what they mean in SQL; ``tests/metrics/test_numeric_drift.py`` checks
both paths, and scipy, agree on random data with ties, NaN, infinities, empty and
single-row windows.

The rows are read by :mod:`evalstore.metrics.drift.numeric_read` (:func:`source`, then
one pass per part of the features that fits a memory budget, scattering every row into
its window's run of one array per feature); this module assembles the cells' statistics;
the statistics of a sorted sample themselves (KS's D, W1, histogram counts, quantile
edges, moments) are in :mod:`evalstore.metrics.drift.sorted_samples`.

Statistics of one cell (reference R and window A, finite values only; NULL, NaN and
+-inf are data-quality findings, not drift), exactly as in ``evalstore.drift_numeric``:

* ``ks``, ``w1`` and histogram counts on the chosen edges: see
  :mod:`evalstore.metrics.drift.sorted_samples`.
* n, mean, sample and population sd of the reference; n, mean and sample sd of the window.
* the KS p-value, :func:`evalstore.core.udfs.ks_pvalue` (as ``scipy.stats.ks_2samp``).
* E|R - A|, E|R - R'| and E|A - A'| for the energy distance.
* Mann-Whitney's U, the pooled tie term and Cramér-von Mises' U (:func:`rank_statistics`),
  with their p-values from :func:`evalstore.core.udfs.mannwhitney_pvalue` and
  :func:`evalstore.core.udfs.cvm_pvalue`.
* ``tests``: the rows of the methods only this path offers (Anderson-Darling,
  Epps-Singleton, 1-D MMD), from scipy on the sorted samples:
  :mod:`evalstore.metrics.drift.two_sample`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import quote
from evalstore.core.macros import call
from evalstore.core.udfs import ks_pvalue
from evalstore.core.windows import Selection
from evalstore.metrics.drift import numeric_read
from evalstore.metrics.drift.binned_cdf import ks_estimate, w1_estimate
from evalstore.metrics.drift.numeric_read import Cell, source
from evalstore.metrics.drift.sorted_samples import (
    Sample,
    histogram,
    ks_statistic,
    mean_cross_difference,
    quantile_edges,
    rank_statistics,
    wasserstein_distance,
)
from evalstore.metrics.drift.two_sample import SAMPLE_TESTS, sample_test_rows
from evalstore.metrics.specs import DRIFT_METHODS

#: Numeric methods computed from bin counts (evalstore.metrics.specs: ``binned``).
BINNED_METHODS = frozenset(name for name, spec in DRIFT_METHODS.items() if spec.binned)
#: Methods computed from the pooled midranks (:func:`rank_statistics`).
RANK_METHODS = frozenset({"mann_whitney", "cramer_von_mises"})
__all__ = [
    "ROWS_SQL", "STATS_SCHEMA", "UNBINNED_ROWS_SQL", "Cell", "register", "rows_args", "source",
    "statistics",
]  # fmt: skip
_names = itertools.count()

STATS_SCHEMA = pa.schema(
    [
        ("ref_key", pa.int64()),
        ("window_index", pa.int64()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("feature", pa.string()),
        ("version", pa.string()),
        ("n_reference", pa.int64()),
        ("n_analysis", pa.int64()),
        ("sd", pa.float64()),
        ("sd_pop", pa.float64()),
        ("ref_mean", pa.float64()),
        ("ana_mean", pa.float64()),
        ("ana_sd", pa.float64()),
        ("e_cross", pa.float64()),
        ("e_ref", pa.float64()),
        ("e_ana", pa.float64()),
        ("mw", pa.float64()),
        ("ties", pa.float64()),
        ("cvm_u", pa.float64()),
        ("ks", pa.float64()),
        ("ks_p", pa.float64()),
        ("w1", pa.float64()),
        ("r_counts", pa.list_(pa.int64())),
        ("a_counts", pa.list_(pa.int64())),
        # binning of this cell when it differs from the call's (few_values), and the bins
        # of KS's and W1's estimates (cdf_bins) when they were estimated
        ("cell_binning", pa.string()),
        ("cdf_bins", pa.int64()),
        ("sd_floor", pa.float64()),
        ("reason", pa.string()),
        (
            "tests",
            pa.list_(
                pa.struct(
                    [
                        ("method", pa.string()),
                        ("variant", pa.string()),
                        ("value", pa.float64()),
                        ("p_value", pa.float64()),
                        ("reason", pa.string()),
                    ]
                )
            ),
        ),
    ]
)
#: :data:`STATS_SCHEMA` with the window bounds as microseconds since 1970, as the cells
#: carry them.
_TICKS_SCHEMA = pa.schema(
    [f.with_type(pa.int64()) if f.name in ("window_start", "window_end") else f
     for f in STATS_SCHEMA]
)  # fmt: skip

#: The rows of evalstore.drift_numeric from a registered table of statistics; the
#: parameters are those of :func:`rows_args`.
ROWS_SQL = """
    WITH binned AS (
        SELECT *, CASE WHEN r_counts IS NOT NULL THEN evalstore.binned_scores(
                list_transform(r_counts, lambda x: x / n_reference),
                list_transform(a_counts, lambda x: x / n_analysis),
                ?, ?, ?, ?) END AS scores
        FROM {stats}
    ),
    methods AS (
        SELECT b.*, unnest(evalstore.numeric_methods(
            ks, w1, scores, n_reference, n_analysis, sd,
            CASE WHEN sd_floor > 0 THEN greatest(sd_pop, sd_floor) ELSE sd_pop END,
            ref_mean, ana_mean, ana_sd,
            {{'cross': e_cross, 'ref': e_ref, 'ana': e_ana}},
            {{'mw': mw, 'ties': ties, 'cvm_u': cvm_u}}, reason,
            coalesce(cell_binning, ?), ?, ?, ?, ?, ?, ?)) AS m
        FROM binned AS b
    )
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, m.method,
        CASE WHEN cdf_bins IS NOT NULL AND m.method IN ('ks', 'wasserstein')
             THEN m.variant || '; estimated on ' || cdf_bins
                  || ' equal-width bins of the reference range (NannyML)'
             WHEN sd_floor > 0 AND m.method = 'wasserstein'
                  AND starts_with(m.variant, 'normed')
             THEN replace(m.variant, 'W1 / reference population sd',
                          'W1 / max(reference population sd, ' || sd_floor || ')')
             ELSE m.variant END AS variant, m.value, n_reference,
        n_analysis, CAST(NULL AS BIGINT) AS dof, m.reason,
        CASE m.method WHEN 'ks' THEN ks_p
            WHEN 'welch_t' THEN evalstore_welch_pvalue(m.value, sd, n_reference, ana_sd,
                                                       n_analysis)
            WHEN 'mann_whitney' THEN evalstore_mannwhitney_pvalue(m.value, n_reference,
                                                                  n_analysis, ties)
            WHEN 'cramer_von_mises' THEN evalstore_cvm_pvalue(m.value, n_reference,
                                                              n_analysis) END AS p_value,
        CAST(NULL AS BIGINT[]) AS counts
    FROM methods
    UNION ALL
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, t.method, t.variant, t.value, n_reference,
        n_analysis, CAST(NULL AS BIGINT) AS dof, t.reason, t.p_value,
        CAST(NULL AS BIGINT[]) AS counts
    FROM (SELECT *, unnest(tests) AS t FROM {stats})
"""


#: :data:`ROWS_SQL` for a call without a binned method, where no cell has bin counts and
#: every ``scores`` is NULL: the same rows without evalstore.binned_scores, whose expanded
#: lambdas cost DuckDB's binder and optimizer ~15 ms a call whether or not a row needs
#: them (~20% of a drift call over a few hundred rows; benchmarks/bench_call_overhead.py).
#: Its parameters are :func:`rows_args` with ``binned=False``.
UNBINNED_ROWS_SQL = """
    WITH binned AS (
        SELECT *, CAST(NULL AS STRUCT(psi DOUBLE, kl DOUBLE, js DOUBLE, hellinger DOUBLE,
                                      d1 DOUBLE)) AS scores
        FROM {stats}
    ),""" + ROWS_SQL[ROWS_SQL.index("\n    methods AS (") :]


def rows_args(params: Mapping[str, Any], binned: bool = True) -> list[Any]:
    """The arguments of :data:`ROWS_SQL` (``binned``) or :data:`UNBINNED_ROWS_SQL`, in
    order, from ``drift``'s variant parameters."""
    scoring = [params["zero_bins"], params["epsilon"], params["log_base"], params["js"]]
    binning = scoring if binned else []
    return [*binning, params["binning"], params["bins"], params["pooled"], *scoring]


def statistics(
    con: duckdb.DuckDBPyConnection,
    packed: tuple[str, Sequence[str]],
    selection: Selection,
    methods: Sequence[str],
    features: Sequence[str],
    params: Mapping[str, Any],
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[pa.Table, Any]:
    """Per-cell statistics (:data:`STATS_SCHEMA`) of the numeric features.

    ``packed`` is what :func:`source` returns: a relation in the long format of
    ``drift_pairs`` and the feature names of its ``value`` fields ``c0``, ``c1``, ...
    The features are read and computed in parts whose values fit in
    :data:`evalstore.metrics.drift.numeric_read.MEMORY_BUDGET` (one part when they all
    fit); the rows are those of a one-part call, in its order, whatever the parts.
    ``meanwhile`` (e.g. a DuckDB query on ``con``) runs in a thread of its own once
    the last part's rows are read, while numpy works; its result is returned with the table.
    """
    rows: list[dict[str, Any]] = []
    with transaction(con):  # the group counts and every part's values: one snapshot
        call = numeric_read.plan(con, *packed, selection, features)
        pieces = numeric_read.parts(call.unit_bytes(), numeric_read.MEMORY_BUDGET)
        for piece in pieces[:-1]:
            cells = numeric_read.read_cells(con, call, piece)
            rows += _part_rows(con, cells, methods, params)[0]
        last = numeric_read.read_cells(con, call, pieces[-1]) if pieces else []
    last_rows, result = _part_rows(con, last, methods, params, meanwhile)
    rows += last_rows
    rows.sort(key=lambda row: row.pop("order"))  # one part's order, whatever the parts
    table = pa.Table.from_pylist(rows, schema=_TICKS_SCHEMA)
    return table.cast(STATS_SCHEMA), result


def _part_rows(
    con: duckdb.DuckDBPyConnection,
    cells: list[Cell],
    methods: Sequence[str],
    params: Mapping[str, Any],
    meanwhile: Callable[[], Any] | None = None,
) -> tuple[list[dict[str, Any]], Any]:
    """The statistics rows of ``cells`` (each with its ``order``), their samples released,
    and the result of ``meanwhile`` (None without), run in a thread while numpy works."""
    binned = bool(BINNED_METHODS & set(methods))
    if binned:
        _assign_edges(con, cells, params)
    want_ks, want_w1 = "ks" in methods, "wasserstein" in methods
    for cell in cells:  # KS and W1 estimated on bins (NannyML) or exact
        cell.cdf = (params.get("cdf_bins"), params.get("cdf_min_rows") or 0)
        cell.sd_floor = params.get("sd_floor") or 0.0
    sample_tests = [m for m in methods if m in SAMPLE_TESTS]
    want_sd = "welch_t" in methods  # the window's sd: Welch's t only
    want_energy = "energy_distance" in methods
    want_ranks = bool(RANK_METHODS & set(methods))
    quantile_bins = params["bins"] if binned and params["binning"] == "quantile" else None
    by_feature: dict[str, list[Cell]] = {}
    for cell in cells:
        by_feature.setdefault(cell.feature, []).append(cell)
    workers = min(len(by_feature), os.cpu_count() or 1) or 1
    with ThreadPoolExecutor(max_workers=1) as side, ThreadPoolExecutor(workers) as pool:
        other = side.submit(meanwhile) if meanwhile is not None else None
        list(
            pool.map(
                lambda group: _compute(
                    group,
                    want_ks,
                    want_w1,
                    binned,
                    quantile_bins,
                    sample_tests,
                    want_sd,
                    want_energy,
                    want_ranks,
                ),
                by_feature.values(),
            )
        )
        result = other.result() if other is not None else None
    return [_row(cell) | {"order": cell.order} for cell in cells], result


def register(con: duckdb.DuckDBPyConnection, stats: pa.Table) -> str:
    """Register ``stats`` (an Arrow table) on ``con`` under a fresh name; the caller
    unregisters it."""
    name = f"evalstore_drift_rows_{next(_names)}"
    con.register(name, stats)
    return name


def _assign_edges(con: duckdb.DuckDBPyConnection, cells: list[Cell], params: Mapping) -> None:
    """Histogram edges per cell: given, reference quantiles, or evalstore.bin_edges."""
    binning = params["binning"]
    if binning == "values" or params.get("few_values"):
        cells = _value_edges(cells, binning, params.get("few_values") or 0)
    if binning in ("quantile", "values"):  # quantile: from the sorted reference, in the workers
        return
    if binning == "edges":  # the same for every cell (cells that cannot compare ignore it)
        edges = np.unique(np.asarray(params["edges"], dtype=float))
        for cell in cells:
            cell.edges = edges
        return
    # sorts the samples here, serially: only binnings that need the moments get here
    comparable = [c for c in cells if c.reference is not None and c.reference.n and c.window.n]
    inputs = []
    for cell in comparable:
        if params["pooled"]:
            both = np.sort(np.concatenate([cell.reference.values, cell.window.values]))
            sample = Sample(both)
        else:
            sample = cell.reference
        skewness = sample.skewness if binning == "doane" else None
        # sturges_distinct: Sturges' count from the distinct values (Evidently's hellinger)
        n = len(sample.unique) if binning == "sturges_distinct" else sample.n
        inputs.append((sample.moments["lo"], sample.moments["hi"], n, skewness))
    if not inputs:
        return
    lo, hi, n, g1 = zip(*inputs, strict=True)
    table = pa.table({"lo": lo, "hi": hi, "n": pa.array(n, pa.int64()), "g1": pa.array(g1)})
    name = f"evalstore_edge_inputs_{next(_names)}"
    with Cleanup() as later:
        con.register(name, table)
        later.add(con.unregister, name)
        result = call(
            con,
            f"SELECT evalstore.bin_edges(lo, hi, n, g1, ?, ?) AS edges FROM {quote(name)}",
            [binning.removesuffix("_distinct"), params["bins"]],
        )
    for cell, edges in zip(comparable, result.column("edges").to_pylist(), strict=True):
        cell.edges = np.asarray(edges, dtype=float)


def _value_edges(cells: list[Cell], binning: str, few_values: int) -> list[Cell]:
    """Bin by value the cells of ``binning='values'``, or those whose reference has at
    most ``few_values`` distinct finite values: one bin per distinct value of reference and
    window together (edges the distinct values and one just above the largest, so every bin
    holds one value). Returns the other cells."""
    others = []
    for cell in cells:
        ref, window = cell.reference, cell.window
        comparable = ref is not None and ref.n and window.n
        if comparable and (binning == "values" or len(ref.unique) <= few_values):
            values = np.union1d(ref.unique, window.unique)
            cell.edges = np.append(values, np.nextafter(values[-1], np.inf))
            cell.binning = "values" if binning != "values" else None
        else:
            others.append(cell)
    return others


def _compute(
    cells: list[Cell],
    want_ks: bool,
    want_w1: bool,
    binned: bool,
    quantile_bins: int | None,
    sample_tests: Sequence[str] = (),
    want_sd: bool = False,
    want_energy: bool = False,
    want_ranks: bool = False,
) -> None:
    """Fill ``cell.stats`` for the cells of one feature (run in a worker thread).

    The KS p-value is :func:`evalstore.core.udfs.ks_pvalue` (scipy's), computed here rather
    than by the SQL UDF so that the features' p-values are computed in parallel; so are
    the rows of the ``sample_tests`` (:data:`evalstore.metrics.drift.two_sample.SAMPLE_TESTS`).
    """
    reference_counts: dict[tuple[int, int], list[int]] = {}
    quantiles: dict[int, np.ndarray] = {}
    for cell in cells:
        window = cell.window
        ref = cell.reference if cell.reference is not None and cell.reference.n else None
        stats: dict[str, Any] = {"n_reference": ref.n if ref else 0, "n_analysis": window.n}
        if ref is None:
            stats["reason"] = "no finite reference values"
        elif not window.n:
            stats["reason"] = "no finite values in the window"
        if ref is not None:
            moments = ref.moments
            stats |= {"sd": moments["sd"], "sd_pop": moments["sd_pop"], "ref_mean": moments["mean"]}
        if window.n:
            if want_sd:
                stats["ana_mean"], stats["ana_sd"] = window.moments["mean"], window.moments["sd"]
            else:
                stats["ana_mean"] = float(window.values.mean())
        if ref is not None and window.n:
            lookups = want_ks or want_w1 or want_energy or want_ranks
            at = ref.positions(window) if lookups else None
            estimated = cell.cdf[0] is not None and ref.n >= cell.cdf[1]
            if want_ks:
                stats["ks"] = (
                    ks_estimate(ref.values, window.values, cell.cdf[0])
                    if estimated
                    else ks_statistic(ref, window, at)
                )
                stats["ks_p"] = ks_pvalue(stats["ks"], ref.n, window.n)
            if want_w1:
                stats["w1"] = (
                    w1_estimate(ref.values, window.values, cell.cdf[0])
                    if estimated
                    else wasserstein_distance(ref, window, at)
                )
            if want_energy:
                stats["e_cross"] = mean_cross_difference(ref, window, at)
                stats["e_ref"] = ref.mean_abs_difference
                stats["e_ana"] = window.mean_abs_difference
            if want_ranks:
                stats["mw"], stats["ties"], stats["cvm_u"] = rank_statistics(ref, window, at)
            if estimated and (want_ks or want_w1):
                stats["cdf_bins"] = cell.cdf[0]
            if quantile_bins is not None:
                if id(ref) not in quantiles:
                    quantiles[id(ref)] = quantile_edges(ref.values, quantile_bins)
                cell.edges = quantiles[id(ref)]
            if binned and cell.edges is not None:
                key = (id(ref), id(cell.edges))
                if key not in reference_counts:
                    reference_counts[key] = histogram(ref.values, cell.edges)
                stats["r_counts"] = reference_counts[key]
                stats["a_counts"] = histogram(window.values, cell.edges)
        stats["tests"] = sample_test_rows(
            sample_tests,
            ref.values if ref is not None else None,
            window.values,
            stats.get("reason"),
        )
        cell.stats = stats
        cell.window = None  # a window's sample (and its caches) serves this cell only
    for cell in cells:  # the feature is done: its reference samples can go too
        cell.reference = None


def _row(cell: Cell) -> dict[str, Any]:
    return {
        "ref_key": cell.ref_key,
        "window_index": cell.window_index,
        "window_start": cell.window_start,
        "window_end": cell.window_end,
        "feature": cell.feature,
        "version": cell.version,
        **cell.stats,
        "cell_binning": cell.binning,
        "sd_floor": cell.sd_floor,
    }
