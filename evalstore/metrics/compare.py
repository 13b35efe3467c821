"""Comparing two versions of a model: the Python front-end of ``sql/compare.sql``.

For champion/challenger and shadow deployments: two registered versions ``a`` (the
baseline) and ``b`` predicted the same examples; how often do they disagree, and on the
labeled ones, which is better, by how much, and is the difference more than noise?

The macros ``evalstore.compare_classification`` and ``evalstore.compare_regression``
compute every figure (their header comment defines each exactly); this module picks the
rows (a ``where`` predicate, ``by`` slices), adds the p-values SQL cannot compute (scipy),
decodes the slices into columns and orders the result.

Metrics, named the same in every interface (``value`` is the rate for ``disagreement``
and the paired difference ``b - a`` for the others; declared once in
:data:`evalstore.metrics.specs.COMPARE_METRICS`):

============ ============ =========================================================
metric       tasks        value, interval, test
============ ============ =========================================================
disagreement all          share of paired examples whose predictions differ (regression:
                          beyond ``numpy.isclose(b, a, rtol, atol=tolerance)``); Wilson
                          interval; needs no labels
accuracy     binary,      accuracy(b) - accuracy(a) on labeled pairs; Wald interval of a
             multiclass   paired difference of proportions; McNemar's test
log_loss     binary,      mean(loss_b - loss_a), ``-ln p(label)`` clipped to [eps, 1-eps];
             multiclass   normal interval of the mean difference (sample sd); paired z-test
brier        binary       mean((score_b - y)^2 - (score_a - y)^2); as log_loss
mae, mse     regression   mean(|e_b| - |e_a|), mean(e_b^2 - e_a^2); as log_loss
============ ============ =========================================================

Decisions (disagreement and accuracy of classification models): by default each
version's logged ``prediction`` (``variant`` ``decision=logged ...``; a pair missing one is
left out of these two metrics). For a binary model, ``threshold=t`` is a what-if as in
``store.performance``: a version decided the positive class when its ``score >= t`` and the
other class below, its logged prediction for a row without a score (``variant``
``decision=score>=t ...``); log_loss and brier do not depend on it.

With ``window={"chunks": n, "split": "nannyml"}`` every row's ``variant`` names the split
(the SQL does, ``evalstore.split_variant``).

McNemar's test uses the discordant pairs, ``n_a_only`` (a right, b wrong) and ``n_b_only``
(the reverse). With fewer than ``exact_below`` (25) discordant pairs it is the exact
binomial test (``test='mcnemar exact'``, ``statistic = min(n_a_only, n_b_only)``,
``p = min(1, 2 P(X <= statistic))`` for ``X ~ Binomial(n_a_only + n_b_only, 1/2)``, which
is ``scipy.stats.binomtest(statistic, n, 0.5).pvalue``); otherwise the chi-squared test
with continuity correction (``test='mcnemar chi2 corrected'``, ``statistic = max(|n_a_only -
n_b_only| - 1, 0)^2 / (n_a_only + n_b_only)``, ``p = scipy.stats.chi2.sf(statistic, 1)``).
Without discordant pairs the exact test gives p = 1. The paired z-test's p is
``2 scipy.stats.norm.sf(|z|)``; NULL when the differences are constant (sd 0) or n < 2.
The tests are per cell: with many windows and slices, expect some small p-values by
chance (no multiple-testing correction is applied).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats

from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name, quote, quote_literal
from evalstore.core.layout import CATEGORICAL_TYPES, feature_columns, schema_prefix
from evalstore.core.macros import call
from evalstore.core.registry import time_range
from evalstore.core.time_limits import prediction_windows
from evalstore.core.windows import (
    Window,
    check_named_predicates,
    check_predicate,
    drop_temp_view,
    temp_view,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics.performance_options import check_threshold
from evalstore.metrics.specs import COMPARE_METRICS, TASKS, chosen_names, task_metrics

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Metrics of each task, in result order (from the registry evalstore.metrics.specs).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    task: task_metrics(COMPARE_METRICS, task) for task in TASKS
}
#: Columns a ``where`` or named-slice predicate may use besides the features.
PREDICATE_COLUMNS = ("example_id", "ts", "label")
#: Name of the result column of named-predicate slices.
PREDICATE_COLUMN = "slice"
LEADING_COLUMNS = ("window_start", "window_end", "version_a", "version_b")
TRAILING_COLUMNS = (
    "metric", "value", "ci_low", "ci_high", "p_value", "value_a", "value_b", "statistic",
    "test", "n", "n_a_only", "n_b_only", "paired", "labeled", "reason", "variant",
)  # fmt: skip
_views = itertools.count()


def compare(
    ctx: Context,
    model: str,
    a: str,
    b: str,
    window: Window = "1 day",
    by: Any = None,
    metric: str | Sequence[str] | None = None,
    where: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
    confidence: float = 0.95,
    exact_below: int = 25,
    tolerance: float = 1e-8,
    rtol: float = 1e-5,
    threshold: float | None = None,
) -> pa.Table:
    """Version ``b`` against version ``a`` of ``model`` on the examples both predicted.

    ``window`` cuts a's prediction time as everywhere (an interval such as ``"1 day"``,
    paired examples per chunk, or ``{"chunks": n}``), within ``[since, until)``. ``by``
    slices the pairs: a categorical feature name (or a list of them; one result column
    each, values as text, NULL values forming their own slice), and/or one ``{name:
    predicate}`` mapping of named SQL predicates (result column ``slice``; a pair falls in
    every slice whose predicate it meets; bin numeric features this way). ``where`` is a
    predicate over the feature columns (and ``example_id``, ``ts``, ``label``), checked
    with sqlglot. ``metric`` picks metrics of the task (default: all; see the module
    docstring), ``confidence`` the intervals' level, ``exact_below`` the McNemar switch,
    ``tolerance``/``rtol`` the regression disagreement tolerance, ``threshold`` (binary)
    the what-if decision ``score >= threshold`` in place of the logged predictions.

    Returns an Arrow table, one row per window, slice and metric: ``window_start,
    window_end, version_a, version_b, <by columns>, metric, value, ci_low, ci_high,
    p_value, value_a, value_b, statistic, test, n, n_a_only, n_b_only, paired, labeled,
    reason, variant``. Windows and slices without a paired example do not appear (no
    pair at all: an empty table); a metric without usable pairs (no labels yet) has value
    NULL and a ``reason``.

    >>> import evalstore, pyarrow as pa
    >>> store = evalstore.open()
    >>> for v in ("v1", "v2"):
    ...     _ = store.register_model("m", v, "binary")
    >>> ids = ["a", "b", "c", "d"]
    >>> _ = store.log_predictions("m", pa.table({"example_id": ids,
    ...     "score": [0.9, 0.8, 0.2, 0.1]}), version="v1")
    >>> _ = store.log_predictions("m", pa.table({"example_id": ids,
    ...     "score": [0.9, 0.3, 0.2, 0.6]}), version="v2")
    >>> _ = store.log_labels("m", pa.table({"example_id": ids, "label": [1, 0, 0, 1]}))
    >>> table = store.compare("m", "v1", "v2", window="100 years",
    ...                 metric=["disagreement", "accuracy"])
    >>> for row in table.select(["metric", "value", "value_a", "value_b", "p_value"]).to_pylist():
    ...     print(row)
    {'metric': 'disagreement', 'value': 0.5, 'value_a': None, 'value_b': None, 'p_value': None}
    {'metric': 'accuracy', 'value': 0.5, 'value_a': 0.5, 'value_b': 1.0, 'p_value': 0.5}
    >>> store.close()
    """
    check_model_name(model)
    if a == b:
        raise InvalidParameterError(f"a and b are both {a!r}: compare two different versions")
    reg_a = ctx.registration(model, a)
    ctx.registration(model, b)
    task = reg_a["task"]
    chosen = _check_metrics(metric, task)
    z = NormalDist().inv_cdf(0.5 + _fraction(confidence, "confidence") / 2)
    if not isinstance(exact_below, int) or isinstance(exact_below, bool) or exact_below < 0:
        raise InvalidParameterError(f"exact_below={exact_below!r} must be a non-negative int")
    check_threshold(threshold, task)
    atol = _non_negative(tolerance, "tolerance")
    rtol = _non_negative(rtol, "rtol")
    start, end = time_range(since, until)
    con = ctx.connection
    with ctx.lock, transaction(con), Cleanup() as later:  # one snapshot for every statement
        windows = prediction_windows(
            con, model, window, start, end, max_windows=ctx.limits.max_windows
        )
        columns = feature_columns(con, model)
        keys, predicates = _parse_by(by, columns)
        source = _source_view(con, model, keys, predicates, where, list(columns))
        later.add(drop_temp_view, con, source)
        width, chunk_rows, chunks = (windows.get(k) for k in ("width", "chunk_rows", "chunks"))
        selection = [source, a, b]
        timing = [width, chunk_rows, chunks, start, end, z]
        if task == "regression":
            query = "evalstore.compare_regression(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            args = [*selection, *timing, atol, rtol]
        else:
            query = "evalstore.compare_classification(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            positive = reg_a["positive_class"] if task == "binary" else None
            cutoff = None if threshold is None else float(threshold)
            args = [*selection, positive, *timing, exact_below, cutoff]
        raw = call(
            con,
            f"SELECT * FROM {query} WHERE list_contains(?, metric) "
            "ORDER BY window_index, slice, list_position(?, metric)",
            [*args, chosen, chosen],
        )
    return _assemble(raw, a, b, [*keys, *([PREDICATE_COLUMN] if predicates else [])])


def p_values(
    test: Sequence[str | None],
    statistic: Sequence[float | None],
    n_a_only: Sequence[int | None],
    n_b_only: Sequence[int | None],
) -> np.ndarray:
    """p-value of each result row from its ``test`` (NaN where there is none).

    ``mcnemar exact``: ``min(1, 2 binom.cdf(min(a, b), a + b, 1/2))``; ``mcnemar chi2
    corrected``: ``chi2.sf(statistic, 1)``; ``paired z``: ``2 norm.sf(|statistic|)``.
    """
    tests = np.array([t or "" for t in test], dtype=object)
    stat = np.array([np.nan if s is None else s for s in statistic], dtype=float)
    a = np.array([0 if v is None else v for v in n_a_only], dtype=float)
    b = np.array([0 if v is None else v for v in n_b_only], dtype=float)
    out = np.full(len(tests), np.nan)
    exact = tests == "mcnemar exact"
    if exact.any():
        k, n = np.minimum(a, b)[exact], (a + b)[exact]
        out[exact] = np.minimum(1.0, 2.0 * stats.binom.cdf(k, n, 0.5))
    chi2 = tests == "mcnemar chi2 corrected"
    if chi2.any():
        out[chi2] = stats.chi2.sf(stat[chi2], 1)
    paired = (tests == "paired z") & np.isfinite(stat)
    if paired.any():
        out[paired] = 2.0 * stats.norm.sf(np.abs(stat[paired]))
    return out


# ---------------------------------------------------------------------- parameters


def _check_metrics(metric: str | Sequence[str] | None, task: str) -> list[str]:
    available = TASK_METRICS[task]
    problem = f"not available to compare {task} versions; choose from {', '.join(available)}"
    return chosen_names(metric, available, "metric", problem, show_given=True)


def _fraction(value: Any, name: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < value < 1:
        raise InvalidParameterError(f"{name}={value!r} must be a number in (0, 1)")
    return float(value)


def _non_negative(value: Any, name: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise InvalidParameterError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def _parse_by(by: Any, columns: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """``by`` as (categorical feature names, {slice name: checked predicate})."""
    if by is None:
        return [], {}
    items = [by] if isinstance(by, str | Mapping) else by
    if not isinstance(items, Sequence):
        raise InvalidParameterError(
            f"by={by!r} is not understood: pass a categorical feature name, a list of them, "
            "and/or one {name: predicate} mapping"
        )
    keys: list[str] = []
    predicates: dict[str, str] = {}
    reserved = {*LEADING_COLUMNS, *TRAILING_COLUMNS, PREDICATE_COLUMN, "window_index"}
    for item in items:
        if isinstance(item, Mapping):
            if predicates:
                raise InvalidParameterError("by may hold one {name: predicate} mapping only")
            predicates = check_named_predicates(item, [*columns, *PREDICATE_COLUMNS])
            continue
        if not isinstance(item, str) or item not in columns:
            raise InvalidParameterError(
                f"by: {item!r} is not a feature column of this model (nor a {{name: predicate}} "
                f"mapping); known features: {', '.join(columns) or '(none)'}"
            )
        if columns[item] not in CATEGORICAL_TYPES:
            raise InvalidParameterError(
                f"by: feature {item!r} is numeric ({columns[item]}); slice it into bins with "
                "named predicates instead, e.g. by={'young': 'age < 30', 'older': 'age >= 30'}"
            )
        if item in reserved or item in keys:
            raise InvalidParameterError(f"by: {item!r} is repeated or clashes with a result column")
        keys.append(item)
    return keys, predicates


def _source_view(
    con: Any,
    model: str,
    keys: Sequence[str],
    predicates: Mapping[str, str],
    where: str | None,
    columns: Sequence[str],
) -> str:
    """The relation the macro reads: the evaluations, or a temp view with ``slice``."""
    if not keys and not predicates and where is None:
        return f"{model}.evaluations"
    conditions = []
    if where is not None:
        conditions.append(f"({check_predicate(where, [*columns, *PREDICATE_COLUMNS])})")
    outputs = "e.example_id, e.version, e.ts, e.prediction, e.score, e.probabilities, e.label"
    selects = []
    for name, predicate in (predicates or {None: None}).items():
        fields = [f"{quote(k)} := CAST(e.{quote(k)} AS VARCHAR)" for k in keys]
        if name is not None:
            fields.append(f"{PREDICATE_COLUMN} := {quote_literal(name)}")
        slice_sql = f", struct_pack({', '.join(fields)}) AS slice" if fields else ""
        terms = [*conditions, f"({predicate})"] if predicate else conditions
        selects.append(
            f"SELECT {outputs}{slice_sql} FROM {schema_prefix(con, model)}evaluations AS e"
            + (f" WHERE {' AND '.join(terms)}" if terms else "")
        )
    return temp_view(con, f"evalstore_compare_{next(_views)}", " UNION ALL ".join(selects))


def _assemble(raw: pa.Table, a: str, b: str, slice_columns: Sequence[str]) -> pa.Table:
    n = raw.num_rows
    p = p_values(
        raw.column("test").to_pylist(),
        raw.column("statistic").to_pylist(),
        raw.column("n_a_only").to_pylist(),
        raw.column("n_b_only").to_pylist(),
    )
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "window_start": raw.column("window_start"),
        "window_end": raw.column("window_end"),
        "version_a": pa.array([a] * n, pa.string()),
        "version_b": pa.array([b] * n, pa.string()),
    }
    if slice_columns:
        sliced = raw.column("slice").combine_chunks() if n else None
        for name in slice_columns:
            columns[name] = (
                pc.struct_field(sliced, name) if sliced is not None else pa.array([], pa.string())
            )
    for name in TRAILING_COLUMNS:
        if name == "p_value":
            columns[name] = pa.array(p, pa.float64(), mask=np.isnan(p))
        else:
            columns[name] = raw.column(name)
    return pa.table(columns)
