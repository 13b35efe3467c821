"""Univariate drift: the Python front-end of the ``evalstore.drift_*`` macros.

The statistics are computed by the SQL macros in ``sql/drift_numeric.sql`` and
``sql/drift.sql`` (their comments define every method exactly). This module chooses what
to compare (see :mod:`evalstore.core.windows`), adds p-values from the Python UDFs of
:mod:`evalstore.core.udfs`, and decides ``drifted`` against thresholds.

Methods, named the same in every interface (declared once in
:data:`evalstore.metrics.specs.DRIFT_METHODS`, which the lists below are views of):

========== =========== =======================================================
method     kinds       default threshold (drifted when ...)
========== =========== =======================================================
ks         numeric     p < alpha (0.05), after the multiple-testing correction
chi2       categorical p < alpha (0.05), after the multiple-testing correction
psi        both        value > 0.2
js         both        value > 0.1
kl         numeric     value > 0.1
hellinger  both        value > 0.1
wasserstein numeric    value > 0.1 (for the default 'normed' variant; no default
                       for 'raw', whose scale is the feature's)
d1         numeric     value > 0.2
zscore     numeric     value outside [-3, 3]
linf       categorical value > 0.1
unseen     categorical value > 0 (any category never seen in the reference)
========== =========== =======================================================

plus the two-sample tests and distances asked for by name (welch_t, anderson,
cramer_von_mises, energy_distance, epps_singleton, mann_whitney, empirical_mmd, tvd,
g_test, chisquare_gof, z_test, fisher_exact: :mod:`evalstore.metrics.drift.two_sample`);
every p-value method is decided by its corrected p-value against ``alpha``.

A threshold can be replaced per method by a number (drifted above it; for ``ks`` and
``chi2`` the significance level), a ``(low, high)`` range (drifted outside it), or
``"learned"``: the reference is split into ``learn_chunks`` chunks in time order,
the method is computed between each chunk and the rest of the reference, and the
threshold is mean ± ``learn_k`` standard deviations (ddof 0) of those values.
p-values of many features in one window are corrected together (per window and
method): ``correction="bonferroni"`` (default), ``"bh"`` (Benjamini-Hochberg) or
``"none"``.

Reproducing other tools' numbers (parameters of :func:`drift`; ``preset="nannyml"`` or
``preset="evidently"`` passes all of a peer's, see :mod:`evalstore.metrics.presets`):

============================================ ==========================================
definition                                   parameters
============================================ ==========================================
JS distance, base 2, reference-quantile bins ``js="distance", log_base=2``
JS distance, base e, bins of both samples    ``binning="sturges", pooled=True``
                                             (Evidently's ``jensenshannon`` adds
                                             ``few_values=20``)
JS divergence, base 2 (capped at 1)          ``js="divergence", log_base=2``
PSI, 10 reference-quantile bins, epsilon     defaults (``zero_bins="epsilon"``)
PSI with zero bins folded together           ``zero_bins="leftover"``
Wasserstein divided by the reference sd      ``wasserstein="normed"`` (Evidently's
                                             ``wasserstein`` adds ``sd_floor=0.001``)
KS as scipy.stats.ks_2samp                   ``ks`` (statistic and p-value match)
chi-squared as scipy.stats.chi2_contingency  ``chi2`` (``yates=True``, scipy's default)
============================================ ==========================================
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.bounds import MAX_BINS, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import quote
from evalstore.core.macros import call
from evalstore.core.time_limits import VALUE_TABLES, check_window_count
from evalstore.core.values import feature_kinds, value_rows
from evalstore.core.windows import (
    Reference,
    Selection,
    Window,
    check_reference,
    drop_view,
    resolve,
    restricted_view,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics.drift import learned as learned_thresholds
from evalstore.metrics.drift import numeric as numeric_drift
from evalstore.metrics.drift import two_sample
from evalstore.metrics.specs import DRIFT_METHODS, of_kind

if TYPE_CHECKING:
    from evalstore.core.context import Context

# Views of the registry (evalstore.metrics.specs.DRIFT_METHODS), the one list of methods.
NUMERIC_METHODS = of_kind(DRIFT_METHODS, "numeric")
CATEGORICAL_METHODS = of_kind(DRIFT_METHODS, "categorical")
METHODS = tuple(DRIFT_METHODS)
DEFAULT_METHODS = tuple(name for name, spec in DRIFT_METHODS.items() if spec.default)
P_VALUE_METHODS = tuple(name for name, spec in DRIFT_METHODS.items() if spec.has_p_value)
DEFAULT_THRESHOLDS: dict[str, float | tuple[float, float]] = {
    name: spec.default_limit
    for name, spec in DRIFT_METHODS.items()
    if not spec.has_p_value and spec.default_limit is not None
}
OUTPUTS = ("score", "prediction", "label")
BINNINGS = ("quantile", "doane", "sturges", "fixed", "edges", "sturges_distinct", "values")
CORRECTIONS = ("bonferroni", "bh", "none")
RESULT_COLUMNS = (
    "window_start", "window_end", "feature", "kind", "version", "method", "variant", "value",
    "p_value", "threshold", "threshold_low", "threshold_source", "drifted", "n_reference",
    "n_analysis", "reason",
)  # fmt: skip


def drift(
    ctx: Context,
    model: str,
    reference: Reference = "training",
    window: Window = "1 day",
    features: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    version: str | None = None,
    where: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
    thresholds: Mapping[str, Any] | None = None,
    alpha: float = 0.05,
    correction: str = "bonferroni",
    binning: str = "quantile",
    bins: int = 10,
    edges: Sequence[float] | None = None,
    pooled: bool = False,
    zero_bins: str = "epsilon",
    epsilon: float = 1e-4,
    log_base: float | str = "e",
    js: str = "distance",
    wasserstein: str = "normed",
    yates: bool = True,
    learn_chunks: int = 10,
    learn_k: float = 3.0,
    few_values: int = 0,
    cdf_bins: int | None = None,
    cdf_min_rows: int = 0,
    sd_floor: float = 0.0,
    preset: str | None = None,
) -> pa.Table:
    """Drift of each feature (and of score, prediction and label) in each window.

    See the module docstring for methods, thresholds and variants, and
    :mod:`evalstore.core.windows` for ``reference``, ``window``, ``version`` and
    ``where``. ``since``/``until`` bound the analysis rows' time. ``methods`` defaults
    to ks, psi, js and wasserstein for numeric features and chi2, psi, js and unseen
    for categorical ones; a method that does not apply to a feature's kind is skipped
    for it. Returns one row per window, feature and method (columns
    :data:`RESULT_COLUMNS`), in window, feature, method order; ``value`` is NULL with
    a ``reason`` where the method is undefined (empty reference, constant reference
    for a normalised measure, a single category for chi2, ...).

    The peers' definitions (``docs/drift.md#variants``): ``zero_bins="smallest"``
    (Evidently's empty-bin fill), binnings ``"sturges_distinct"`` and ``"values"``,
    ``few_values`` (bin by value a numeric feature with at most that many distinct
    reference values), ``cdf_bins``/``cdf_min_rows`` (NannyML's binned KS and W1,
    :mod:`evalstore.metrics.drift.binned_cdf`), ``sd_floor`` (normed W1's divisor at
    least this, Evidently's 0.001). ``preset="nannyml"`` or ``"evidently"``
    sets them all method by method (:mod:`evalstore.metrics.presets`, which says what a
    preset leaves to you); an option it sets, given with another value, raises.
    """
    if preset is not None:  # a peer's definitions: evalstore.metrics.presets
        from evalstore.metrics.drift import preset_runner

        return preset_runner.drift(ctx, preset, dict(locals()))
    registration = ctx.registration(model, version)
    chosen = _check_methods(methods)
    params = _variant_args(
        binning, bins, edges, pooled, zero_bins, epsilon, log_base, js, wasserstein, yates
    )
    params |= _estimate_args(binning, few_values, cdf_bins, cdf_min_rows, sd_floor)
    limits = _thresholds(thresholds, alpha, wasserstein)
    if correction not in CORRECTIONS:
        raise InvalidParameterError(f"correction={correction!r} is not one of {CORRECTIONS}")
    con = ctx.connection
    # one transaction: every statement (counts, values, categories) sees one snapshot
    with ctx.lock, transaction(con), Cleanup() as later:
        kinds = feature_kinds(con, model)
        chosen_features = _check_features(features, kinds)
        selection = resolve(con, reference, window, registration if version else None, since, until)
        check_reference(con, model, reference, selection)
        check_window_count(con, model, VALUE_TABLES, selection, max_windows=ctx.limits.max_windows)
        categorical = value_rows(con, model, "VARCHAR", chosen_features)
        numeric = numeric_drift.source(con, model, kinds, where, version, chosen_features)
        later.add(drop_view, con, numeric[0])
        category_view = restricted_view(con, model, "", where, version, list(kinds), categorical)
        later.add(drop_view, con, category_view)
        views = Views(numeric=numeric, categorical=category_view)
        learned = _learned_limits(
            ctx, views, selection, limits, chosen, chosen_features, params, learn_chunks, learn_k
        )
        table = _run(
            ctx, views, selection, chosen, chosen_features, params, limits, learned, correction
        )
        return _explain_empty_reference(con, table, reference, selection)


def _explain_empty_reference(
    con: duckdb.DuckDBPyConnection, table: pa.Table, reference: Reference, selection: Selection
) -> pa.Table:
    """The reasons of outputs whose fixed reference has no rows, told by
    ``evalstore.reference_reason`` (a training set has no predictions: compare with
    ``{'previous': n}``), as the SQL macro ``evalstore.drift`` tells them."""
    if selection.previous or table.num_rows == 0:
        return table
    described = reference if isinstance(reference, str) else repr(reference)
    name = numeric_drift.register(con, table)
    try:
        return call(
            con,
            "SELECT * REPLACE (evalstore.reference_reason(feature, reason, n_reference, ?) "
            f"AS reason) FROM {quote(name)}",
            [described],
        )
    finally:
        con.unregister(name)


def _check_methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    if methods is None:
        return DEFAULT_METHODS
    if isinstance(methods, str):
        methods = [methods]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InvalidParameterError(
            f"methods={list(methods)!r}: unknown {unknown}; choose from {', '.join(METHODS)}"
        )
    return tuple(dict.fromkeys(methods))


def _check_features(features: Sequence[str] | None, kinds: Mapping[str, str]) -> list[str]:
    available = [*kinds, *OUTPUTS]
    if features is None:
        return available
    if isinstance(features, str):
        features = [features]
    unknown = [f for f in features if f not in available]
    if unknown:
        raise InvalidParameterError(
            f"features {unknown} are not analysable columns of this model; known: "
            + ", ".join(available)
        )
    return list(features)


def _variant_args(
    binning: str,
    bins: int,
    edges: Sequence[float] | None,
    pooled: bool,
    zero_bins: str,
    epsilon: float,
    log_base: float | str,
    js: str,
    wasserstein: str,
    yates: bool,
) -> dict[str, Any]:
    if binning not in BINNINGS:
        raise InvalidParameterError(f"binning={binning!r} is not one of {BINNINGS}")
    if binning == "edges":
        if not edges or not all(isinstance(e, int | float) and math.isfinite(e) for e in edges):
            raise InvalidParameterError("binning='edges' needs edges=[finite numbers, ...]")
    elif edges is not None:
        raise InvalidParameterError("edges= is only used with binning='edges'")
    bins = bounded_int(bins, "bins", most=MAX_BINS)
    if zero_bins not in ("epsilon", "leftover", "smallest"):
        raise InvalidParameterError(
            f"zero_bins={zero_bins!r} is not 'epsilon', 'leftover' or 'smallest'"
        )
    if not isinstance(epsilon, int | float) or not 0 < epsilon < 1:
        raise InvalidParameterError(f"epsilon={epsilon!r} must be a number in (0, 1)")
    bases = {"e": math.e, math.e: math.e, 2: 2.0, "2": 2.0}
    if log_base not in bases:
        raise InvalidParameterError(f"log_base={log_base!r} must be 'e' or 2")
    if js not in ("distance", "divergence"):
        raise InvalidParameterError(f"js={js!r} is not 'distance' or 'divergence'")
    if wasserstein not in ("normed", "raw"):
        raise InvalidParameterError(f"wasserstein={wasserstein!r} is not 'normed' or 'raw'")
    return {
        "binning": binning,
        "bins": bins,
        "edges": [float(e) for e in edges] if edges else None,
        "pooled": bool(pooled),
        "zero_bins": zero_bins,
        "epsilon": float(epsilon),
        "log_base": bases[log_base],
        "js": js,
        "wasserstein": wasserstein,
        "yates": bool(yates),
    }


def _estimate_args(
    binning: str, few_values: int, cdf_bins: int | None, cdf_min_rows: int, sd_floor: float
) -> dict[str, Any]:
    """The peers' binning and estimate options (checked): ``few_values`` (bin by value the
    numeric features whose reference has at most that many distinct values; with an
    equal-width binning only), ``cdf_bins`` (KS and W1 estimated on that many equal-width
    bins of the reference's range, as NannyML), ``cdf_min_rows`` (only for references
    of at least that many finite values) and ``sd_floor`` (wasserstein 'normed' divides by
    max(reference population sd, sd_floor), Evidently's 0.001)."""
    few_values = bounded_int(few_values, "few_values", least=0, most=MAX_BINS)
    if few_values and binning in ("quantile", "edges"):
        raise InvalidParameterError(
            f"few_values={few_values} needs an equal-width binning ('sturges', 'doane', "
            f"'fixed' or 'sturges_distinct'), not binning={binning!r}"
        )
    if cdf_bins is not None:
        cdf_bins = bounded_int(cdf_bins, "cdf_bins", least=1, most=1_000_000)
    cdf_min_rows = bounded_int(cdf_min_rows, "cdf_min_rows", least=0, most=10**12)
    if (
        isinstance(sd_floor, bool)
        or not isinstance(sd_floor, int | float)
        or not (0 <= sd_floor < math.inf)
    ):
        raise InvalidParameterError(f"sd_floor={sd_floor!r} must be a finite number >= 0")
    return {"few_values": few_values, "cdf_bins": cdf_bins, "cdf_min_rows": cdf_min_rows,
            "sd_floor": float(sd_floor)}  # fmt: skip


def _thresholds(
    thresholds: Mapping[str, Any] | None, alpha: float, wasserstein: str
) -> dict[str, Any]:
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha={alpha!r} must be a number in (0, 1)")
    limits: dict[str, Any] = dict(DEFAULT_THRESHOLDS)
    if wasserstein == "raw":
        del limits["wasserstein"]
    limits.update({m: float(alpha) for m in P_VALUE_METHODS})
    for method, limit in (thresholds or {}).items():
        if method not in METHODS:
            raise InvalidParameterError(f"thresholds: unknown method {method!r}")
        if limit == "learned":
            if method in P_VALUE_METHODS:
                raise InvalidParameterError(
                    f"thresholds[{method!r}]: p-value methods take a significance level"
                )
        elif isinstance(limit, int | float) and not isinstance(limit, bool):
            limit = float(limit)
        elif (
            isinstance(limit, tuple | list)
            and len(limit) == 2
            and all(isinstance(x, int | float) for x in limit)
            and limit[0] <= limit[1]
        ):
            limit = (float(limit[0]), float(limit[1]))
        else:
            raise InvalidParameterError(
                f"thresholds[{method!r}]={limit!r}: use a number, a (low, high) range or 'learned'"
            )
        limits[method] = limit
    return limits


@dataclass(frozen=True)
class Views:
    """What :func:`drift` reads: the packed numeric values (see
    :func:`evalstore.metrics.drift.numeric.source`) and the long-format categorical values."""

    numeric: tuple[str, list[str]]
    categorical: str


def _categorical_sql(source: str, selection: Selection, p: Mapping[str, Any]) -> tuple[str, list]:
    """The call of ``evalstore.drift_categorical`` with bound arguments."""
    sql = (
        "SELECT *, 'categorical' AS kind FROM evalstore.drift_categorical("
        f"?, {Selection().placeholders}, ?, ?, ?, ?, ?)"
    )
    variant = [p["zero_bins"], p["epsilon"], p["log_base"], p["js"], p["yates"]]
    return sql, [source, *selection.args(), *variant]


@contextmanager
def _statistics_sql(
    con: duckdb.DuckDBPyConnection,
    views: Views,
    selection: Selection,
    methods: Sequence[str],
    features: Sequence[str],
    params: Mapping[str, Any],
) -> Iterator[tuple[str, list[Any]]]:
    """SQL and arguments for the statistics and p-values of the chosen methods.

    Numeric statistics come from :mod:`evalstore.metrics.drift.numeric` (registered on ``con``
    while the context lasts) and categorical ones from ``evalstore.drift_categorical``.
    """
    parts, args = [], []
    numeric = [m for m in methods if m in NUMERIC_METHODS]
    categorical = [m for m in methods if m in CATEGORICAL_METHODS]

    def categorical_rows() -> pa.Table | None:
        if not categorical:
            return None
        sql, call_args = _categorical_sql(views.categorical, selection, params)
        return call(
            con,
            f"SELECT * FROM ({sql}) WHERE list_contains(?, method) AND list_contains(?, feature)",
            [*call_args, categorical, list(features)],
        )

    def register(table: pa.Table) -> str:
        name = numeric_drift.register(con, table)
        later.add(con.unregister, name)
        return quote(name)

    with Cleanup() as later:
        if numeric:
            # the categorical macro runs in DuckDB while numpy computes the numeric cells
            stats, category = numeric_drift.statistics(
                con, views.numeric, selection, numeric, features, params, categorical_rows
            )
            # without a binned method no cell has bin counts: the SQL that scores them is left out
            binned = bool(numeric_drift.BINNED_METHODS & set(numeric))
            rows = numeric_drift.ROWS_SQL if binned else numeric_drift.UNBINNED_ROWS_SQL
            parts.append(
                f"SELECT *, 'numeric' AS kind FROM ({rows.format(stats=register(stats))}) "
                "WHERE list_contains(?, method) "
                "AND (method <> 'wasserstein' OR starts_with(variant, ?))"
            )
            args += [*numeric_drift.rows_args(params, binned), numeric, params["wasserstein"] + ":"]
        else:
            category = categorical_rows()
        if category is not None:
            parts.append(f"SELECT *, CAST(NULL AS DOUBLE) AS p_value FROM {register(category)}")
        if not parts:
            yield "", []
            return
        yield (
            f"SELECT * REPLACE ({two_sample.P_VALUE_SQL} AS p_value) "
            f"FROM ({' UNION ALL BY NAME '.join(parts)})",
            args,
        )


def _limits_table(
    limits: Mapping[str, Any], learned: Mapping[tuple[str, str], tuple[float, float, str]]
) -> tuple[str, list[Any]]:
    """VALUES rows (method, feature, low, high, source) for the decision query.

    Fixed limits apply to every feature (feature NULL); learned ones to one feature.
    """
    rows, args = [], []
    entries: list[tuple[str, str | None, Any]] = [(m, None, lim) for m, lim in limits.items()]
    entries += [(m, f, lim) for (m, f), lim in learned.items()]
    for method, feature, limit in entries:
        if isinstance(limit, tuple) and len(limit) == 3:  # learned: (low, high, text)
            low, high, source = limit
        elif isinstance(limit, tuple):
            low, high, source = limit[0], limit[1], f"fixed range [{limit[0]}, {limit[1]}]"
        elif limit == "learned":
            continue
        elif method in P_VALUE_METHODS:
            low, high, source = None, limit, f"p-value < {limit}"
        else:
            low, high, source = None, limit, f"fixed: value > {limit}"
        rows.append("(?, CAST(? AS VARCHAR), CAST(? AS DOUBLE), CAST(? AS DOUBLE), ?)")
        args += [method, feature, low, high, source]
    if not rows:
        return (
            "SELECT NULL AS method, NULL AS feature, NULL AS low, NULL AS high, "
            "NULL AS source WHERE false",
            [],
        )
    values = ", ".join(rows)
    return f"SELECT * FROM (VALUES {values}) AS t(method, feature, low, high, source)", args


def _run(
    ctx: Context,
    views: Views,
    selection: Selection,
    methods: Sequence[str],
    features: Sequence[str],
    params: Mapping[str, Any],
    limits: Mapping[str, Any],
    learned: Mapping[tuple[str, str], tuple[float, float, str]],
    correction: str,
) -> pa.Table:
    con = ctx.connection
    with _statistics_sql(con, views, selection, methods, features, params) as (statistics, args):
        if not statistics:
            return pa.table({c: [] for c in RESULT_COLUMNS})
        return _decide(con, statistics, args, limits, learned, correction)


def _decide(
    con: duckdb.DuckDBPyConnection,
    statistics: str,
    args: list[Any],
    limits: Mapping[str, Any],
    learned: Mapping[tuple[str, str], tuple[float, float, str]],
    correction: str,
) -> pa.Table:
    """Corrected p-values, thresholds and ``drifted`` for the rows of ``statistics``."""
    limits_sql, limit_args = _limits_table(limits, learned)
    adjusted = {
        "bonferroni": "least(1, p_value * m)",
        "bh": "least(1, min(p_value * m / p_rank) OVER (PARTITION BY window_index, method "
        "ORDER BY p_rank DESC NULLS LAST ROWS UNBOUNDED PRECEDING))",
        "none": "p_value",
    }[correction]
    correction_text = {"bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg", "none": "no"}[
        correction
    ]
    with_p = two_sample.sql_names(P_VALUE_METHODS)
    sql = f"""
        WITH stats AS ({statistics}),
        ranked AS (
            SELECT *, count(p_value) OVER (PARTITION BY window_index, method) AS m,
                   CASE WHEN p_value IS NOT NULL THEN row_number() OVER (
                       PARTITION BY window_index, method ORDER BY p_value NULLS LAST) END AS p_rank
            FROM stats
        ),
        adjusted AS (
            SELECT *, CASE WHEN p_value IS NOT NULL THEN {adjusted} END AS p_adjusted
            FROM ranked
        ),
        limits AS ({limits_sql})
        SELECT a.window_start, a.window_end, a.feature, a.kind, a.version, a.method,
            a.variant, a.value,
            CASE WHEN list_contains({with_p}, a.method) THEN a.p_adjusted END AS p_value,
            l.high AS threshold, l.low AS threshold_low,
            CASE WHEN list_contains({with_p}, a.method)
                 THEN l.source || ' (' || ? || ' correction over ' || a.m || ' tests)'
                 ELSE l.source END AS threshold_source,
            CASE
                WHEN a.value IS NULL OR l.method IS NULL THEN NULL
                WHEN list_contains({with_p}, a.method) THEN a.p_adjusted < l.high
                WHEN l.low IS NOT NULL THEN a.value < l.low OR a.value > l.high
                ELSE a.value > l.high
            END AS drifted,
            a.n_reference, a.n_analysis, a.reason
        FROM adjusted AS a LEFT JOIN limits AS l
          ON l.method = a.method AND (l.feature IS NULL OR l.feature = a.feature)
        ORDER BY a.window_start, a.feature, a.version NULLS FIRST, a.method
    """
    return call(con, sql, [*args, *limit_args, correction_text])


def _learned_limits(
    ctx: Context,
    views: Views,
    selection: Selection,
    limits: Mapping[str, Any],
    methods: Sequence[str],
    features: Sequence[str],
    params: Mapping[str, Any],
    learn_chunks: int,
    learn_k: float,
) -> dict[tuple[str, str], tuple[float, float, str]]:
    """``{(method, feature): (low, high, how)}`` learned from chunks of the reference
    (:mod:`evalstore.metrics.drift.learned`: each chunk compared with all the others, the
    range the mean ± ``learn_k`` population sds of those values)."""
    wanted = [m for m in methods if limits.get(m) == "learned"]
    if not wanted:
        return {}
    chunked = learned_thresholds.learning_selection(selection, learn_chunks)
    con = ctx.connection
    with _statistics_sql(con, views, chunked, wanted, features, params) as (sql, args):
        summary = call(con, learned_thresholds.SUMMARY_SQL.format(rows=sql), args).to_pylist()
    return learned_thresholds.limits(summary, chunked.chunks, learn_k)
