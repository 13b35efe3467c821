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

This module reads the rows (:func:`source`, then one pass that scatters every row
into its window's run of one array per feature) and assembles the cells' statistics;
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
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.udfs import ks_pvalue
from evalstore.core.values import KEYS, output_names, output_rows
from evalstore.core.windows import Selection, restricted_view
from evalstore.metrics.drift.binned_cdf import ks_estimate, w1_estimate
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


def rows_args(params: Mapping[str, Any]) -> list[Any]:
    """The arguments of :data:`ROWS_SQL`, in order, from ``drift``'s variant parameters."""
    scoring = [params["zero_bins"], params["epsilon"], params["log_base"], params["js"]]
    return [*scoring, params["binning"], params["bins"], params["pooled"], *scoring]


@dataclass
class Cell:
    """One (reference, window, feature, version) comparison."""

    ref_key: int
    window_index: int
    #: microseconds since 1970 (cast to timestamps in the result table)
    window_start: int | None
    window_end: int | None
    feature: str
    version: str
    #: the samples are released (None) once ``stats`` is filled
    window: Sample | None
    reference: Sample | None
    edges: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: 'values' when ``few_values`` bins this cell by value (else the call's binning)
    binning: str | None = None
    #: (bins, min_rows): KS and W1 are NannyML's estimates on ``bins`` equal-width bins
    #: (:mod:`evalstore.metrics.drift.binned_cdf`) when the reference has at least
    #: ``min_rows`` finite values; exact when bins is None
    cdf: tuple[int | None, int] = (None, 0)
    #: wasserstein 'normed' divides by max(reference population sd, sd_floor) (Evidently)
    sd_floor: float = 0.0


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
    ``meanwhile`` (e.g. a DuckDB query on ``con``) runs in a thread of its own once
    the rows are read, while numpy works; its result is returned with the table.
    """
    with transaction(con):  # the group counts and the values: one snapshot
        cells = _cells(con, *packed, selection, features)
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
    table = pa.Table.from_pylist([_row(cell) for cell in cells], schema=_TICKS_SCHEMA)
    return table.cast(STATS_SCHEMA), result


def register(con: duckdb.DuckDBPyConnection, stats: pa.Table) -> str:
    """Register ``stats`` (an Arrow table) on ``con`` under a fresh name; the caller
    unregisters it."""
    name = f"evalstore_drift_rows_{next(_names)}"
    con.register(name, stats)
    return name


def source(
    con: duckdb.DuckDBPyConnection,
    model: str,
    kinds: Mapping[str, str],
    where: str | None,
    version: str | None,
    features: Sequence[str],
) -> tuple[str, list[str]]:
    """A temporary long-format relation of the numeric values of ``model``, packed.

    The same rows as ``<model>.numeric_values`` (so windows and chunks are cut exactly
    as the SQL macros cut them), restricted to ``where`` and ``version`` like it, but
    with one row per ``features`` row rather than one per feature: ``value`` is a
    struct whose fields ``c0``, ``c1``, ... hold the numeric ``features`` (returned, in
    order) and whose field ``out`` holds an output (score; prediction and label for
    regression) on the output rows, whose ``feature`` names it. Drop it with
    :func:`evalstore.core.windows.drop_view`.
    """
    s = schema_prefix(con, model)
    numeric = [f for f, kind in kinds.items() if kind == "numeric"]
    chosen = [f for f in numeric if f in features]
    outputs = output_names(con, model, "numeric")
    fields = [f"c{i} := CAST({quote(name)} AS DOUBLE)" for i, name in enumerate(chosen)]
    empty = [f"c{i} := CAST(NULL AS DOUBLE)" for i in range(len(chosen))]
    parts = []
    if outputs:  # score (binary), prediction and label (regression); none for multiclass
        parts.append(
            f"SELECT example_id, env, dataset, ts, version, feature, "
            f"struct_pack({', '.join([*empty, 'out := value'])}) AS value "
            f"FROM ({' UNION ALL '.join(output_rows(s, outputs, 'DOUBLE'))})"
        )
    if numeric or not parts:  # no numeric column at all: no rows, the same columns
        parts.append(
            f"SELECT {KEYS}, CAST(NULL AS VARCHAR) AS version, '*' AS feature, "
            f"struct_pack({', '.join([*fields, 'out := CAST(NULL AS DOUBLE)'])}) AS value "
            f"FROM {s}features" + ("" if numeric else " WHERE false")
        )
    select = " UNION ALL ".join(parts)
    return restricted_view(con, model, "", where, version, list(kinds), select), chosen


#: Rows per Arrow batch of the packed read: small enough that a batch in flight is a
#: fraction of the samples it is scattered into.
BATCH_ROWS = 1 << 17


def _cells(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    fields: Sequence[str],
    selection: Selection,
    features: Sequence[str],
) -> list[Cell]:
    """Read the packed rows once through ``drift_pairs``, each straight to its cell's place.

    A first, cheap query (no values) counts the rows of every group (reference or
    window, output or features, version); every feature then gets one array with a
    contiguous run per group, and each streamed batch is scattered into those runs. The
    rows are held once, in the arrays the samples sort in place, never concatenated or
    permuted.
    """
    pairs = f"evalstore.drift_pairs(?, {selection.placeholders})"
    pairs_args = [relation, *selection.args()]
    cell = "CASE WHEN side = 'reference' THEN -1 - ref_key ELSE window_index END"
    groups = con.sql(
        f"SELECT {cell} AS cell, feature, version, ref_key, "
        # as microseconds: a time beyond Python's datetime (a store written before
        # the time range was enforced) must not stop the read; cast back in Arrow
        "epoch_us(any_value(window_start)) AS window_start, "
        "epoch_us(any_value(window_end)) AS window_end, "
        f"count(*) AS n FROM {pairs} "
        "GROUP BY ALL ORDER BY cell, feature, version",
        params=pairs_args,
    ).to_arrow_table()
    if not groups.num_rows:
        return []
    group = groups.to_pydict()
    sizes = np.asarray(group["n"], dtype=np.int64)
    is_output = np.asarray([f != "*" for f in group["feature"]])
    # each family (feature rows, output rows) gets its own arrays, runs in group order
    start = np.empty_like(sizes)
    for family in (is_output, ~is_output):
        start[family] = np.cumsum(sizes[family]) - sizes[family]
    packed = {name: f"c{i}" for i, name in enumerate(fields) if name in features}
    columns = {name: np.empty(int(sizes[~is_output].sum())) for name in packed}
    out = np.empty(int(sizes[is_output].sum()))
    targets = [(columns[name], member) for name, member in packed.items()]
    _scatter(con, pairs, pairs_args, cell, groups, start, is_output, targets, out)
    references: dict[tuple[int, str, str], Sample] = {}
    analysis = []
    for g, (code, feature_field, version) in enumerate(
        zip(group["cell"], group["feature"], group["version"], strict=True)
    ):
        rows = slice(int(start[g]), int(start[g] + sizes[g]))
        if not is_output[g]:
            samples = [(name, column[rows]) for name, column in columns.items()]
        else:
            samples = [(feature_field, out[rows])] if feature_field in features else []
        for feature, values in samples:
            sample = Sample(values, owned=True)  # its own run of an array nobody else reads
            if code < 0:
                references[(group["ref_key"][g], feature, version)] = sample
            else:  # a window's start and end are the same on all its rows
                analysis.append(
                    (group["ref_key"][g], code, group["window_start"][g],
                     group["window_end"][g], feature, version, sample)
                )  # fmt: skip
    return [
        Cell(ref, window_index, begin, end, feature, version, sample,
             references.get((ref, feature, version)))
        for ref, window_index, begin, end, feature, version, sample in analysis
    ]  # fmt: skip


def _scatter(
    con: duckdb.DuckDBPyConnection,
    pairs: str,
    pairs_args: list[Any],
    cell: str,
    groups: pa.Table,
    start: np.ndarray,
    is_output: np.ndarray,
    targets: Sequence[tuple[np.ndarray, str]],
    out: np.ndarray,
) -> None:
    """Stream the values of ``pairs`` into ``targets`` (feature rows: an array and the
    ``value`` field it takes) and ``out`` (output rows): group g's rows fill
    ``start[g]``, ``start[g] + 1``, ... in arrival order."""
    name = f"evalstore_drift_groups_{next(_names)}"
    gid = pa.array(np.arange(groups.num_rows, dtype=np.int32))
    with Cleanup() as later:
        con.register(name, groups.select(["cell", "feature", "version"]).append_column("gid", gid))
        later.add(con.unregister, name)
        reader = con.sql(
            f"SELECT g.gid, p.value FROM (SELECT {cell} AS cell, feature, version, value "
            f"FROM {pairs}) AS p JOIN {quote(name)} AS g USING (cell, feature, version)",
            params=pairs_args,
        ).to_arrow_reader(BATCH_ROWS)
        # an unfinished result blocks the connection (even its ROLLBACK): closed first
        later.add(reader.close)
        fill = start.copy()
        for batch in reader:
            gid = batch.column(0).to_numpy()
            counts = np.bincount(gid, minlength=len(start))
            present = np.flatnonzero(counts)
            if len(present) == 1:  # one group: a contiguous run
                g = present[0]
                dest: np.ndarray | slice = slice(int(fill[g]), int(fill[g] + counts[g]))
                output_rows = bool(is_output[g])
            else:
                order = np.argsort(gid, kind="stable")
                ranked = gid[order]
                first = np.cumsum(counts) - counts  # each group's first row in ``order``
                dest = np.empty(len(gid), dtype=np.int64)
                dest[order] = fill[ranked] + np.arange(len(gid)) - first[ranked]
                output_rows = is_output[gid]
            fill += counts
            value = batch.column(1)
            if isinstance(output_rows, np.ndarray):  # rows of both families
                parts = [(out, "out", output_rows)]
                parts += [(target, member, ~output_rows) for target, member in targets]
            else:  # every row goes to the same arrays
                parts = [(out, "out", None)] if output_rows else [(*t, None) for t in targets]
            for target, member, rows in parts:
                values = _numbers(pc.struct_field(value, member))
                if rows is None:
                    target[dest] = values
                elif rows.any():
                    target[dest[rows]] = values[rows]
            del batch, value
    if not np.array_equal(fill, start + np.asarray(groups.column("n"))):
        raise RuntimeError("evalstore: the drift rows changed while they were read; run again")


def _numbers(array: pa.Array) -> np.ndarray:
    """``array`` (numbers) as numpy, NULL as NaN (a view of Arrow's buffer where it can)."""
    return array.to_numpy(zero_copy_only=False)


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
        result = con.sql(
            f"SELECT evalstore.bin_edges(lo, hi, n, g1, ?, ?) AS edges FROM {quote(name)}",
            params=[binning.removesuffix("_distinct"), params["bins"]],
        ).to_arrow_table()
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
