"""Worst-slice discovery: where is the model significantly worse than on the rest?

The front-end of ``sql/slices.sql``. For one metric over one period (and one version) it
searches slices of the labeled serving rows:

* **single features**: each value of a categorical feature, each of ``bins`` quantile bins
  of a numeric one (edges from the ``reference`` rows, exactly as ``store.performance``
  bins a ``by`` feature), and the missing values (NULL, and NaN for floats) of each;
* **pairs** of features: every combination of their values / bins, for up to
  ``max_pairs`` feature pairs (all pairs when there are few enough features, otherwise
  the pairs of the features whose single slices are most significant, best first).

A slice is tested against **the rest of the rows** (the selection minus the slice) when it
holds at least ``min_support`` of the metric's rows (and the rest holds some): with
evalstore.slice_tests' statistics,

* proportions (``accuracy``, ``precision``, ``recall``, ``specificity``): the pooled
  two-proportion z-test, one-sided (slice lower);
* mean losses (``brier``, ``log_loss``, ``mae``, ``mse``, ``mape``): Welch's t-test,
  one-sided (slice higher), as ``scipy.stats.ttest_ind(equal_var=False)``;
* ``business_value`` (binary, with ``business_value_matrix=[[v_tn, v_fp], [v_fn,
  v_tp]]``): the mean value per decision (performance's ``normalize_business_value=
  'per_prediction'``), Welch's t-test, one-sided (slice lower).

The binary decision metrics (accuracy, precision, recall, specificity, business_value)
judge the decisions as ``store.performance`` does: the logged predictions, or
``score >= threshold`` with ``threshold=`` given (a what-if); the result's ``variant``
says which (``decision=logged ...`` / ``decision=score>=t ...``; for the other metrics
the outcome's definition).

Every tested slice counts towards the multiple-testing correction (single and pair
levels together): Benjamini-Hochberg by default (``correction='bh'``, false discovery
rate ``alpha``), or ``'bonferroni'`` (family-wise) or ``'none'``. A finding is a slice with
q-value (adjusted p-value) <= ``alpha`` and a positive effect. Findings are ranked by
``excess`` = effect x n, the errors (or loss) the slice has beyond what it would have at
the rest's rate, so a large slice somewhat worse can outrank a tiny slice much worse;
ties by effect.

Only metrics that are a mean of per-row outcomes can be searched this way: a slice's
value and its test follow from counts and sums. ROC AUC, average precision, F1, ECE and
R2 are not decomposable (their value on a slice is not a mean of row outcomes) and are
refused with a message: search with ``accuracy`` / ``log_loss`` / ``brier`` (or ``recall``
for missed positives), then look at the found slices' ROC AUC with
``store.performance(where=finding['predicate'])``.

Each finding's ``predicate`` is a SQL predicate over the feature columns that selects
exactly the slice's rows; pass it as ``where=`` to ``performance``, ``drift``,
``suggest``, ``select`` or back to ``worst_slices``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
from scipy import stats

from evalstore.core.bounds import MAX_PAIRS, MAX_SLICE_BINS, MAX_TOP, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name, quote, quote_literal
from evalstore.core.layout import NUMERIC_TYPES, feature_columns, schema_prefix
from evalstore.core.registry import time_range
from evalstore.core.windows import check_predicate, reference_args
from evalstore.errors import InvalidParameterError
from evalstore.metrics.performance import PREDICATE_COLUMNS
from evalstore.metrics.performance_options import check_threshold, value_matrix
from evalstore.metrics.slice_keys import (
    MAX_CATEGORIES,
    _bin_labels,
    _quantile_edges,
    _Slice,
    category_domain,
)
from evalstore.metrics.specs import PERFORMANCE_METRICS, TASKS

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Searchable metrics: name -> (tasks, kind of test, higher is better), from the registry.
METRICS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    name: (spec.slice_tasks, spec.slice_test, spec.higher_is_better)
    for name, spec in PERFORMANCE_METRICS.items()
    if spec.slice_test is not None
}
#: Metrics refused because a slice's value is not a mean of per-row outcomes.
NON_DECOMPOSABLE = tuple(n for n, spec in PERFORMANCE_METRICS.items() if not spec.decomposable)
#: The metric searched when none is given: the task's first searchable one.
DEFAULT_METRIC = {
    task: next(name for name, (tasks, _, _) in METRICS.items() if task in tasks) for task in TASKS
}
CORRECTIONS = ("bh", "bonferroni", "none")
RESULT_COLUMNS = (
    "rank", "features", "slice", "predicate", "metric", "n", "share", "value", "rest_n",
    "rest_value", "effect", "excess", "statistic", "p_value", "q_value", "significant",
    "level", "test", "version", "variant",
)  # fmt: skip
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})
_counter = itertools.count()


def worst_slices(
    ctx: Context,
    model: str,
    metric: str | None = None,
    since: Any = None,
    until: Any = None,
    version: str | None = None,
    where: str | None = None,
    features: Sequence[str] | None = None,
    *,
    min_support: float = 0.01,
    alpha: float = 0.05,
    correction: str = "bh",
    pairs: bool = True,
    max_pairs: int = 45,
    bins: int = 4,
    reference: Any = "training",
    threshold: float | None = None,
    top: int | None = 20,
    include_all: bool = False,
    business_value_matrix: Sequence[Sequence[float]] | None = None,
) -> pa.Table:
    """Slices (one feature or a pair) where ``metric`` is significantly worse than elsewhere.

    Rows: the model's labeled ``evaluations`` of one ``version`` (the latest registered
    one when None: versions are never pooled) with prediction time in ``[since, until)``,
    restricted by ``where`` (a SQL predicate, as everywhere). ``metric`` (default
    accuracy, or mae for regression) must be decomposable (see the module docstring);
    ``threshold`` as in ``performance`` (the decision rule scored is named in
    ``variant``); ``business_value_matrix`` for ``metric='business_value'``.
    ``features`` (default: every feature column) are sliced by value (categorical) or
    into ``bins`` quantile bins of ``reference`` (numeric), plus a missing-value slice
    each; ``pairs`` adds their pairwise combinations (at most ``max_pairs`` feature
    pairs).

    ``min_support``: least number of the metric's rows a slice must hold to be tested,
    as a count (int >= 1) or a share of the selection's (float in (0, 1); default 1%).
    ``alpha``: the false discovery rate (or family-wise error rate with
    ``correction='bonferroni'``). ``top``: keep the best ``top`` findings (None: all).
    ``include_all=True`` returns every tested slice, significant or not (``rank`` NULL
    for the others), in rank then p-value order.

    Returns an Arrow table, one row per finding: ``rank, features (list), slice (readable),
    predicate (SQL), metric, n, share (of the selection's metric rows), value (the
    metric on the slice), rest_n, rest_value, effect (> 0: worse, metric units),
    excess (effect x n), statistic (z or Welch t, large = worse), p_value (one-sided),
    q_value (corrected), significant, level (1 or 2 features), test, version, variant``.

    >>> import evalstore, pyarrow as pa
    >>> store = evalstore.open()
    >>> _ = store.register_model("m", "v1", "binary")
    >>> ids = [f"e{i}" for i in range(400)]
    >>> region = ["north" if i % 4 == 0 else "south" for i in range(400)]
    >>> _ = store.log_features("m", pa.table({"example_id": ids, "region": region}))
    >>> wrong = [i % 4 == 0 and i % 8 != 0 for i in range(400)]  # north: half wrong
    >>> _ = store.log_predictions("m", pa.table({"example_id": ids, "prediction": [1] * 400,
    ...     "score": [0.9] * 400}), version="v1")
    >>> _ = store.log_labels("m", pa.table({"example_id": ids,
    ...     "label": [0 if w else 1 for w in wrong]}))
    >>> found = store.worst_slices("m", pairs=False)
    >>> found.select(["slice", "n", "value", "rest_value"]).to_pylist()
    [{'slice': "region = 'north'", 'n': 100, 'value': 0.5, 'rest_value': 1.0}]
    >>> store.performance("m", window="100 years", metrics="accuracy",
    ...     where=found["predicate"][0].as_py())["n"].to_pylist()
    [100]
    >>> store.close()
    """
    check_model_name(model)
    registration = ctx.registration(model, version)
    task, version = registration["task"], registration["version"]
    metric = _check_metric(metric, task)
    _, kind, higher_is_better = METRICS[metric]
    _check_options(min_support, alpha, correction, max_pairs, bins, top)
    check_threshold(threshold, task)
    matrix = None
    if business_value_matrix is not None:
        if task != "binary":
            raise InvalidParameterError(
                f"business_value_matrix applies to binary models, not to a {task} model"
            )
        matrix = value_matrix(business_value_matrix)
    elif metric == "business_value":
        raise InvalidParameterError(
            "metric='business_value' needs business_value_matrix=[[tn_value, fp_value], "
            "[fn_value, tp_value]] (NannyML's layout)"
        )
    start, end = time_range(since, until)
    con = ctx.connection
    # one transaction: the totals and every level's counts see the same rows
    with ctx.lock, transaction(con), Cleanup() as later:
        columns = feature_columns(con, model)
        keys = _keys(con, model, columns, features, reference, registration, bins)
        view = _source_view(con, model, keys, columns, where, version, start, end)
        later.add(con.execute, f"DROP VIEW IF EXISTS {quote(view)}")
        outcomes = (
            f"evalstore.slice_outcomes({quote_literal(view)}, {quote_literal(model)}, "
            f"{quote_literal(metric)}, ?::DOUBLE, ?::DOUBLE[][])"
        )
        total_n, total_mean, total_m2, variant = con.execute(
            f"SELECT count(x), avg(x), coalesce(var_pop(x) * count(x), 0), any_value(variant) "
            f"FROM {outcomes}",
            [threshold, matrix],
        ).fetchall()[0]
        if not total_n:
            return _empty(metric, version)
        support = min_support if min_support >= 1 else math.ceil(min_support * total_n)
        totals = (total_n, total_mean, total_m2)
        args = (con, outcomes, [threshold, matrix], totals, kind, higher_is_better, support)
        singles = _level(*args, keys, [(i,) for i in range(len(keys))])
        if pairs and len(keys) > 1:
            chosen = _pairs(keys, singles, max_pairs)
            doubles = _level(*args, keys, chosen) if chosen else []
        else:
            doubles = []
    return _result(
        singles + doubles, keys, metric, kind, higher_is_better, total_n, version, alpha,
        correction, top, include_all, variant,
    )  # fmt: skip


# ---------------------------------------------------------------------- parameters


def _check_metric(metric: str | None, task: str) -> str:
    if metric is None:
        return DEFAULT_METRIC[task]
    if metric in METRICS and task in METRICS[metric][0]:
        return metric
    usable = ", ".join(m for m, (tasks, _, _) in METRICS.items() if task in tasks)
    if metric in NON_DECOMPOSABLE:
        raise InvalidParameterError(
            f"metric={metric!r} is not a mean of per-row outcomes, so worst_slices cannot test "
            f"slices for it; search with one of {usable}, then check the found slices' "
            f"{metric} with store.performance(where=finding predicate)"
        )
    raise InvalidParameterError(
        f"metric={metric!r} cannot be searched for a {task} model; choose one of {usable}"
    )


def _check_options(
    min_support: Any, alpha: Any, correction: Any, max_pairs: Any, bins: Any, top: Any
) -> None:
    number = isinstance(min_support, int | float) and not isinstance(min_support, bool)
    if not number or not (
        (isinstance(min_support, int) and min_support >= 1)
        or (isinstance(min_support, float) and 0 < min_support < 1)
    ):
        raise InvalidParameterError(
            f"min_support={min_support!r} must be a row count (int >= 1) or a share of the "
            "rows (float in (0, 1))"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise InvalidParameterError(f"alpha={alpha!r} must be a number in (0, 1)")
    if correction not in CORRECTIONS:
        raise InvalidParameterError(
            f"correction={correction!r} is not one of {', '.join(CORRECTIONS)}"
        )
    bounded_int(max_pairs, "max_pairs", least=0, most=MAX_PAIRS)
    bounded_int(bins, "bins", most=MAX_SLICE_BINS)
    if top is not None:
        bounded_int(top, "top", most=MAX_TOP, hint="pass at most that, or top=None for all")


# ---------------------------------------------------------------------- slices


def _keys(
    con: duckdb.DuckDBPyConnection,
    model: str,
    columns: dict[str, str],
    features: Sequence[str] | None,
    reference: Any,
    registration: dict[str, Any],
    bins: int,
) -> list[_Slice]:
    """One performance-style slice key per feature, with its domain (bins or values)."""
    if features is None:
        names = list(columns)
    elif isinstance(features, str):
        names = [features]
    else:
        names = list(dict.fromkeys(features))
    unknown = [n for n in names if not isinstance(n, str) or n not in columns]
    if unknown or not names:
        raise InvalidParameterError(
            f"features={features!r}: {unknown or 'none'} not feature columns of this model; "
            f"known features: {', '.join(columns) or '(none: log features first)'}"
        )
    ref = reference_args(reference, registration)
    if "previous" in ref:
        raise InvalidParameterError(
            "reference={'previous': n} cannot bin features; use 'training', 'validation', "
            "{'dataset': tag} or a (start, end) range"
        )
    keys = []
    for name in names:
        kind = columns[name]
        numeric = kind in NUMERIC_TYPES or kind.startswith("DECIMAL")
        key = _Slice(name, "numeric" if numeric else "categorical")
        key.column_type = kind  # type: ignore[attr-defined]
        if numeric:
            key.edges = _quantile_edges(con, model, name, ref, bins)
            key.domain = _bin_labels(key.edges)
        else:
            key.domain = category_domain(
                con, model, name,
                f"features: {name!r} has more than {MAX_CATEGORIES} distinct values; "
                "leave it out (features=[...]) or bin it into a coarser column",
            )  # fmt: skip
        keys.append(key)
    return keys


def _source_view(
    con: duckdb.DuckDBPyConnection,
    model: str,
    keys: Sequence[_Slice],
    columns: dict[str, str],
    where: str | None,
    version: str,
    start: Any,
    end: Any,
) -> str:
    """A temp view of the selected evaluations with one slice-code column per key."""
    conditions = [f"e.version = {quote_literal(version)}", "e.label IS NOT NULL"]
    if where is not None:
        conditions.append(f"({check_predicate(where, [*columns, *PREDICATE_COLUMNS])})")
    if start is not None:
        conditions.append(f"e.ts >= CAST({quote_literal(start.isoformat())} AS TIMESTAMPTZ)")
    if end is not None:
        conditions.append(f"e.ts < CAST({quote_literal(end.isoformat())} AS TIMESTAMPTZ)")
    codes = "".join(f", {key.index()} AS c{i}" for i, key in enumerate(keys))
    name = f"evalstore_slices_{next(_counter)}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS "
        "SELECT e.example_id, e.version, e.ts, e.prediction, e.score, e.probabilities, "
        f"e.label{codes} FROM {schema_prefix(con, model)}evaluations AS e "
        f"WHERE {' AND '.join(conditions)}"
    )
    return name


def _level(
    con: duckdb.DuckDBPyConnection,
    outcomes: str,
    outcome_args: list[Any],
    totals: tuple[int, float, float],
    kind: str,
    higher_is_better: bool,
    support: int,
    keys: Sequence[_Slice],
    sets: Sequence[tuple[int, ...]],
) -> list[dict[str, Any]]:
    """Count and test every slice of the grouping ``sets`` in one GROUPING SETS pass.

    Returns one dict per slice with at least ``support`` rows (and a non-empty rest):
    ``members`` ((key index, code) pairs) and evalstore.slice_tests' columns.
    """
    used = sorted({i for s in sets for i in s})
    grouping = ", ".join("(" + ", ".join(f"c{i}" for i in s) + ")" for s in sets)
    flags = ", ".join(f"GROUPING(c{i}) AS g{i}" for i in used)
    codes = ", ".join(f"c{i}" for i in used)
    name = f"evalstore_slice_counts_{next(_counter)}"
    total_n, total_mean, total_m2 = totals
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS "
        f"SELECT row_number() OVER () AS slice_id, * FROM ("
        f"SELECT {flags}, {codes}, count(x) AS n, avg(x) AS mean, "
        f"var_pop(x) * count(x) AS m2 FROM {outcomes} WHERE x IS NOT NULL "
        f"GROUP BY GROUPING SETS ({grouping}) HAVING count(x) >= ? AND count(x) < ?)",
        [*outcome_args, support, total_n],
    )
    with Cleanup() as later:
        later.add(con.execute, f"DROP TABLE IF EXISTS {quote(name)}")
        rows = con.execute(
            f"SELECT c.*, t.* EXCLUDE (slice_id, n) FROM {quote(name)} AS c "
            "JOIN evalstore.slice_tests(?, ?, ?, ?, ?, ?) AS t ON t.slice_id = c.slice_id "
            "ORDER BY c.slice_id",
            [f"temp.main.{name}", total_n, total_mean, total_m2, kind, higher_is_better],
        ).fetchall()
        names = [d[0] for d in con.description]
    found = []
    for row in rows:
        record = dict(zip(names, row, strict=True))
        record["members"] = tuple((i, record[f"c{i}"]) for i in used if record[f"g{i}"] == 0)
        found.append(record)
    return found


def _pairs(
    keys: Sequence[_Slice], singles: Sequence[dict[str, Any]], max_pairs: int
) -> list[tuple[int, int]]:
    """Feature pairs to search: all when few enough, else those of the strongest features."""
    everything = list(itertools.combinations(range(len(keys)), 2))
    if len(everything) <= max_pairs:
        return everything
    best: dict[int, float] = dict.fromkeys(range(len(keys)), -math.inf)
    for record in singles:
        ((i, _),) = record["members"]
        if record["statistic"] is not None:
            best[i] = max(best[i], record["statistic"])
    order = sorted(best, key=lambda i: (-best[i], i))
    rank = {key: position for position, key in enumerate(order)}
    everything.sort(key=lambda p: (max(rank[p[0]], rank[p[1]]), min(rank[p[0]], rank[p[1]])))
    return [tuple(sorted(p)) for p in everything[:max_pairs]]  # type: ignore[misc]


# ---------------------------------------------------------------------- predicates


def _number(value: float) -> str:
    """A SQL literal that DuckDB reads back as exactly ``value`` (a double)."""
    text = repr(float(value))
    digits = len(text.replace("-", "").replace(".", "").lstrip("0").split("e")[0])
    if "e" in text or "inf" in text or "nan" in text or digits > 15:
        # exponent notation is read as a DOUBLE (correctly rounded), never as a DECIMAL
        return f"{float(value):.17e}"
    return text.removesuffix(".0") if text.endswith(".0") else text


def describe(key: _Slice, code: int) -> tuple[str, str]:
    """(readable slice, SQL predicate) of one key's code; the predicate selects exactly
    the rows ``key.index()`` gives that code."""
    column = quote(key.name)
    float_column = getattr(key, "column_type", "DOUBLE") in _FLOAT_TYPES
    missing = len(key.domain)
    if code == missing:
        if key.kind == "numeric" and float_column:
            return f"{key.name} is missing", f"({column} IS NULL OR isnan({column}))"
        return f"{key.name} is missing", f"{column} IS NULL"
    if key.kind == "categorical":
        value = key.domain[code]
        kind = getattr(key, "column_type", "VARCHAR")
        target = column if kind == "VARCHAR" else f"CAST({column} AS VARCHAR)"
        return f"{key.name} = {quote_literal(value)}", f"{target} = {quote_literal(value)}"
    edges = key.edges or []
    label = key.domain[code]
    if getattr(key, "column_type", "DOUBLE") not in NUMERIC_TYPES:
        column = f"CAST({column} AS DOUBLE)"
    parts = []
    if code > 0:
        parts.append(f"{column} >= {_number(edges[code - 1])}")
    if code < len(edges):
        parts.append(f"{column} < {_number(edges[code])}")
    if code == len(edges):
        parts.append(f"NOT isnan({column})" if float_column else f"{column} IS NOT NULL")
    return f"{key.name} in {label}", " AND ".join(parts)


# ---------------------------------------------------------------------- result


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (as scipy.stats.false_discovery_control(method='bh'))."""
    m = len(p)
    if not m:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _result(
    records: list[dict[str, Any]],
    keys: Sequence[_Slice],
    metric: str,
    kind: str,
    higher_is_better: bool,
    total_n: int,
    version: str,
    alpha: float,
    correction: str,
    top: int | None,
    include_all: bool,
    variant: str | None = None,
) -> pa.Table:
    statistic = np.array(
        [np.nan if r["statistic"] is None else r["statistic"] for r in records], dtype=float
    )
    df = np.array([np.nan if r["df"] is None else r["df"] for r in records], dtype=float)
    with np.errstate(invalid="ignore"):
        p = stats.norm.sf(statistic) if kind == "proportion" else stats.t.sf(statistic, df)
    p = np.where(np.isnan(p), 1.0, p)
    if correction == "bh":
        q = _benjamini_hochberg(p)
    elif correction == "bonferroni":
        q = np.minimum(p * len(p), 1.0)
    else:
        q = p.copy()
    effect = np.array([r["effect"] for r in records], dtype=float)
    significant = (q <= alpha) & (effect > 0)
    excess = np.array([r["excess"] for r in records], dtype=float)
    order = sorted(
        range(len(records)),
        key=lambda i: (not significant[i], -excess[i] if significant[i] else p[i], -effect[i]),
    )
    test = (
        "two-proportion z-test (pooled), one-sided"
        if kind == "proportion"
        else "Welch t-test, one-sided"
    ) + {"bh": ", Benjamini-Hochberg", "bonferroni": ", Bonferroni", "none": ""}[correction]
    rows = []
    rank = 0
    for i in order:
        if not significant[i] and not include_all:
            break
        if significant[i]:
            rank += 1
            if top is not None and rank > top and not include_all:
                break
        record = records[i]
        described = [describe(keys[k], code) for k, code in record["members"]]
        rows.append(
            {
                "rank": rank if significant[i] else None,
                "features": [keys[k].name for k, _ in record["members"]],
                "slice": " and ".join(text for text, _ in described),
                "predicate": " AND ".join(
                    f"({sql})" if len(described) > 1 else sql for _, sql in described
                ),
                "metric": metric,
                "n": int(record["n"]),
                "share": record["n"] / total_n,
                "value": record["value"],
                "rest_n": int(record["rest_n"]),
                "rest_value": record["rest_value"],
                "effect": record["effect"],
                "excess": record["excess"],
                "statistic": record["statistic"],
                "p_value": float(p[i]),
                "q_value": float(q[i]),
                "significant": bool(significant[i]),
                "level": len(record["members"]),
                "test": test,
                "version": version,
                "variant": variant,
            }
        )
    return pa.Table.from_pylist(rows, schema=_schema()) if rows else _empty(metric, version)


def _schema() -> pa.Schema:
    return pa.schema(
        [
            ("rank", pa.int64()), ("features", pa.list_(pa.string())), ("slice", pa.string()),
            ("predicate", pa.string()), ("metric", pa.string()), ("n", pa.int64()),
            ("share", pa.float64()), ("value", pa.float64()), ("rest_n", pa.int64()),
            ("rest_value", pa.float64()), ("effect", pa.float64()), ("excess", pa.float64()),
            ("statistic", pa.float64()), ("p_value", pa.float64()), ("q_value", pa.float64()),
            ("significant", pa.bool_()), ("level", pa.int64()), ("test", pa.string()),
            ("version", pa.string()), ("variant", pa.string()),
        ]
    )  # fmt: skip


def _empty(metric: str, version: str) -> pa.Table:
    del metric, version
    return _schema().empty_table()
