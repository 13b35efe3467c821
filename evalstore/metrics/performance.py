"""Sliced performance with late labels: the Python front-end of ``sql/performance*.sql``.

Every metric is computed by the SQL macros ``evalstore.performance_binary``,
``evalstore.performance_multiclass`` and ``evalstore.performance_regression`` (their
comments define each one exactly, with the scikit-learn function it agrees with). This
module chooses the rows (a temporary view of ``<model>.evaluations`` restricted to a
version and a ``where`` predicate, carrying the slice keys), checks parameters, adds the
bootstrap intervals the SQL cannot draw, fills in empty slices, and orders the result.

Metrics per task (``metrics=None`` means all of them; declared once in
:data:`evalstore.metrics.specs.PERFORMANCE_METRICS`):

=========== ===================================================================
task        metrics
=========== ===================================================================
binary      accuracy, precision, recall, f1, specificity (at the threshold),
            roc_auc, average_precision, log_loss, brier, ece (from the score);
            asked for by name: tp, fp, fn, tn, business_value
multiclass  accuracy, macro_f1, micro_f1, weighted_f1, log_loss, and per class
            (column ``class``) precision, recall, f1
regression  mae, mse, rmse, mape, r2, bias
=========== ===================================================================

Decisions where the definition has a choice:

* **Decision** (binary threshold metrics): by default the logged ``prediction`` (what the
  model actually decided, as scikit-learn's ``accuracy_score(y, y_pred)``, NannyML and
  Evidently score it), ``variant`` ``decision=logged ...``; a row without a logged
  prediction is predicted positive when ``score >=`` its version's registered threshold.
  ``threshold=t`` given is a what-if: predicted positive when ``score >= t`` (``variant``
  ``decision=score>=t ...``), the logged prediction for rows without a score. A row
  without a score is left out of the score metrics (counted in ``n_excluded``).
* **Confusion matrix and business value** (binary, by name only: ``metrics=["tp",
  "fp", "fn", "tn", "business_value"]``): the cells of the decisions above
  (``sklearn.metrics.confusion_matrix(y, y_pred, labels=[0, 1]).ravel()`` = tn, fp, fn,
  tp), counts by default or, with ``normalize_confusion_matrix`` ``'all'`` / ``'true'`` /
  ``'pred'`` (NannyML's parameter, sklearn's ``normalize=`` values), shares of all rows,
  of the true class's rows or of the predicted class's rows (Wilson intervals; NULL with
  a reason when that class is empty, where sklearn gives 0). ``business_value`` is
  ``v_tn tn + v_fp fp + v_fn fn + v_tp tp`` for ``business_value_matrix=[[v_tn, v_fp],
  [v_fn, v_tp]]`` (NannyML's layout: rows the true class 0/1, columns the decision),
  the total, or per decision (÷ n) with ``normalize_business_value='per_prediction'``;
  interval normal from the sample sd of the per-row values.
* **log_loss** clips probabilities to ``[eps, 1 - eps]`` with ``eps`` the float64 machine
  epsilon (2.22e-16), as scikit-learn's ``log_loss`` does (checked against 1.9: ``eps =
  finfo(dtype).eps``, the default since 1.3 and the only choice since 1.5; rows that do
  not sum to 1 are not renormalised). Multiclass uses ``probabilities[label]`` from the
  stored map, 0 (then eps) when the map lacks the label's class.
* **ece**: ``ece_bins`` (10) equal-width bins of the score, bin ``min(floor(s * bins),
  bins - 1)``; ``sum_b (n_b / n) |mean(y)_b - mean(score)_b|``.
* **mape** leaves zero targets out and reports how many in ``n_excluded``; NULL with a
  reason when every target is 0. scikit-learn divides by ``max(|y|, eps)`` instead, so
  the two agree unless some ``|y| < 2.22e-16``.
* **Undefined metrics** are NULL with a ``reason``: precision without predicted
  positives, recall without positives, ROC AUC of a single-class cell, R2 of constant
  labels, any metric of a cell without labels (scikit-learn returns 0, 1 or NaN with a
  warning in these cases).

Intervals (``ci_low``/``ci_high``, at ``confidence``, 95% by default):

================================ ===============================================
metric                           interval
================================ ===============================================
accuracy, precision, recall,     Wilson score interval of the proportion
specificity, micro_f1, per-class
precision/recall
log_loss, brier, mae, mse, bias, mean +- z sd / sqrt(n), sample sd (floored at 0
mape                             for non-negative metrics)
rmse                             square roots of the mse interval's ends
roc_auc                          DeLong (1988) variance, normal interval, clipped
average_precision                logit interval (Boyd, Eng & Page 2013)
r2                               delta method (influence function of 1 - MSE/Var)
f1 (binary and per class)        delta method over the confusion matrix
                                 (Takahashi et al. 2022), clipped to [0, 1]
macro_f1, weighted_f1, ece       percentile bootstrap, ``n_boot`` (200) replicates,
                                 numpy ``default_rng(seed)`` (seed 0)
================================ ===============================================

F1's interval is analytic: Var(F1) = 4 tp (fp + fn) (tp + fp + fn) / (2 tp + fp + fn)^4
(``evalstore.f1_se``). It agrees with the percentile bootstrap of the confusion matrix
(which earlier versions used) to within the bootstrap's own noise from a few dozen
positives on, and costs nothing per cell; it is zero-width when tp = 0 or fp + fn = 0,
where every resample has the same F1 too.

The bootstrap is vectorised over cells and works on each cell's sufficient statistics
(``stats`` from the macros), so its cost does not grow with the rows. For macro/weighted
F1 it is exact: resampling n rows with replacement is a multinomial draw of the confusion
matrix (the K x K matrix), drawn as a chain of
binomials. For ece it draws the bins' sums of ``y - score`` from the normal limit of
resampling the rows (mean the observed sums D, covariance diag(q) - D D' / n, q the bins'
sums of squares), which matches the row bootstrap's distribution closely from a few
hundred rows on. Intervals are percentile intervals; replicates where the metric is
undefined are dropped. ECE is biased upwards in small cells, so its replicates (and the
interval) can sit above the estimate: read that as "the ECE here is mostly noise". Results
are deterministic for the same data, arguments and seed; ``n_boot=0`` skips the
bootstrap (those intervals are NULL).

Late labels: each row carries ``label_coverage`` (labeled / predictions of the cell) and
``labels_complete``, true when ``labels_due = window_end + q`` is at or before
``as_of``, with q the ``delay_quantile`` (0.9) quantile of every label delay the store has
seen for the model (first label ts - prediction ts, as ``evalstore.label_delay``) and
``as_of`` the latest label time (or the ``as_of`` given). A window younger than the
usual label delay is marked incomplete, so a dashboard does not read a drop into it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name, quote, quote_literal
from evalstore.core.layout import EVALUATIONS, NUMERIC_TYPES, feature_columns, schema_prefix
from evalstore.core.macros import call
from evalstore.core.time_limits import prediction_windows
from evalstore.core.windows import (
    Window,
    check_named_predicates,
    check_predicate,
    drop_temp_view,
    reference_args,
    temp_view,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics.bootstrap import bootstrap_intervals
from evalstore.metrics.performance_options import DEFAULT_METRICS as DEFAULT_METRICS
from evalstore.metrics.performance_options import TASK_METRICS, checked_options
from evalstore.metrics.slice_keys import _prepare_slices, _Slice

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Every metric name, across tasks.
METRICS = tuple(dict.fromkeys(m for names in TASK_METRICS.values() for m in names))
#: Result columns before and after the slice columns.
LEADING_COLUMNS = ("window_start", "window_end", "version")
TRAILING_COLUMNS = (
    "metric", "class", "value", "ci_low", "ci_high", "n", "n_excluded", "predictions",
    "labeled", "label_coverage", "labels_complete", "labels_due", "reason", "variant",
)  # fmt: skip
#: Result columns when ``by`` adds no slice column.
RESULT_COLUMNS_WITHOUT_SLICES = LEADING_COLUMNS + TRAILING_COLUMNS
#: Name of the result column of named-predicate slices.
PREDICATE_COLUMN = "slice"
#: Columns a ``where`` or named-slice predicate may use besides the features.
PREDICATE_COLUMNS = ("example_id", "version", "ts", "prediction", "score", "latency_ms")
_MACRO_ARGS = {
    "binary": 16,
    "multiclass": 11,
    "regression": 11,
}
_BOOTSTRAP_TEXT = "CI bootstrap (Python front-end)"
_view_counter = itertools.count()
#: The relation :func:`labels_from` has the evaluations take the latest labels from
#: (None: the model's ``labels_latest``).
_LABELS: ContextVar[str | None] = ContextVar("evalstore_performance_labels", default=None)


@contextmanager
def labels_from(relation: str) -> Iterator[None]:
    """Inside the block, :func:`performance` joins the predictions with the latest labels
    found in ``relation`` instead of the model's ``labels_latest`` (every label of the
    model), and leaves out the serving features when neither ``where`` nor ``by`` reads
    them (an example has at most one serving row, so the rows are the same).

    For the metric history's refresh (:mod:`evalstore.monitors.history`): ``relation``
    is a temporary table of evalstore's (never user text) with the labels table's
    ``example_key``, ``label``, ``ts``, ``source`` and ``superseded_by`` columns, holding
    every label row of every example the call's predictions belong to; the caller
    guarantees that, and the result is then the one the model's labels give.
    """
    token = _LABELS.set(relation)
    try:
        yield
    finally:
        _LABELS.reset(token)


def performance(
    ctx: Context,
    model: str,
    metrics: Sequence[str] | str | None = None,
    window: Window = "1 day",
    by: Any = None,
    version: str | None = None,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
    threshold: float | None = None,
    *,
    reference: Any = "training",
    bins: int = 4,
    edges: Mapping[str, Sequence[float]] | None = None,
    ece_bins: int = 10,
    confidence: float = 0.95,
    n_boot: int = 200,
    seed: int = 0,
    as_of: Any = None,
    delay_quantile: float = 0.9,
    normalize_confusion_matrix: str | None = None,
    business_value_matrix: Sequence[Sequence[float]] | None = None,
    normalize_business_value: str | None = None,
) -> pa.Table:
    """Realized performance of ``model`` per window, version and slice, from its labels.

    Rows are the model's ``evaluations`` (predictions joined with the latest labels, so
    corrections win) whose prediction time falls in ``[since, until)``, cut into
    ``window``\\ s of prediction time: an interval (``"1 day"``), a number of predictions
    per chunk, or ``{"chunks": n}``. ``version`` keeps one version's predictions (results
    are always per version: predictions of different versions are never pooled, and
    ``"version"`` in ``by`` is accepted for clarity). ``where`` is a SQL predicate over
    the feature columns (and ``example_id``, ``version``, ``ts``, ``prediction``,
    ``score``, ``latency_ms``), checked with sqlglot.

    ``by`` slices the rows, one result column per key (cells are the combinations):

    * a feature name: categorical features by value (as text), numeric ones by
      ``bins`` (4) quantile bins of the ``reference`` rows (``"training"``; also
      ``"validation"``, ``{"dataset": tag}`` or a ``(start, end)`` range of serving rows),
      labelled ``'(-inf, a)'``, ``'[a, b)'``, ..., ``'[z, inf)'``; ``edges={feature:
      [...]}`` gives the inner edges instead. NULL and NaN values form the NULL slice;
    * ``{name: predicate, ...}``: named SQL predicates, result column ``slice``; a row
      falls in every slice whose predicate it meets, rows meeting none are left out;
    * ``"version"``: a no-op (see above).

    Slices of the declared domains (every bin, every named predicate) and every value
    seen in the selection appear in every window and version, with ``n`` = 0 and a
    ``reason`` when the cell has no predictions; windows (and versions of a window)
    without any prediction do not appear. Analytic intervals need n >= 2 (NULL below).

    ``metrics`` picks metrics of the model's task (see the module docstring, which also
    defines intervals, the bootstrap (``n_boot``, ``seed``), ``threshold`` (binary; by
    default the logged predictions decide, ``threshold=t`` is a what-if at ``score >= t``),
    ``ece_bins``, and ``labels_complete`` (``as_of``, ``delay_quantile``)); ``None``
    means the task's default metrics, every one but the binary confusion cells and
    business value (``normalize_confusion_matrix``, ``business_value_matrix``,
    ``normalize_business_value``: see the module docstring), which are asked for by name.

    Returns an Arrow table, one row per window, version, slice and metric (and class for
    per-class multiclass metrics): ``window_start, window_end, version, <by columns>,
    metric, class, value, ci_low, ci_high, n, n_excluded, predictions, labeled,
    label_coverage, labels_complete, labels_due, reason, variant``, in window, version,
    slice, metric order.

    >>> import evalstore, pyarrow as pa
    >>> store = evalstore.open()
    >>> _ = store.register_model("m", "v1", "binary")
    >>> ids = ["a", "b", "c", "d"]
    >>> _ = store.log_predictions(
    ...     "m", pa.table({"example_id": ids, "score": [0.9, 0.2, 0.6, 0.4]}), version="v1")
    >>> _ = store.log_labels("m", pa.table({"example_id": ids, "label": [1, 0, 0, 1]}))
    >>> table = store.performance("m", metrics=["accuracy", "roc_auc"], window="100 years")
    >>> for row in table.select(["metric", "value", "n", "label_coverage"]).to_pylist():
    ...     print(row)
    {'metric': 'accuracy', 'value': 0.5, 'n': 4, 'label_coverage': 1.0}
    {'metric': 'roc_auc', 'value': 0.75, 'n': 4, 'label_coverage': 1.0}
    >>> store.close()
    """
    check_model_name(model)
    registration = ctx.registration(model, version)
    task = registration["task"]
    o = checked_options(
        task, metrics, threshold, confidence, delay_quantile, ece_bins, bins, n_boot, seed,
        since, until, as_of, normalize_confusion_matrix, business_value_matrix,
        normalize_business_value,
    )  # fmt: skip
    chosen, threshold, confusion, z = o.metrics, o.threshold, o.confusion, o.z
    delay_quantile, ece_bins, bins, n_boot = o.delay_quantile, o.ece_bins, o.bins, o.n_boot
    start, end, clock = o.start, o.end, o.clock
    con = ctx.connection
    # one transaction: every statement (slice domains, the metrics) sees one snapshot
    with ctx.lock, transaction(con), Cleanup() as later:
        windows = prediction_windows(
            con, model, window, start, end, max_windows=ctx.limits.max_windows
        )
        columns = feature_columns(con, model)
        slices = _parse_by(by, columns, edges)
        ref = reference_args(reference, registration if version else None)
        if "previous" in ref:
            raise InvalidParameterError(
                "reference={'previous': n} cannot bin features; use 'training', "
                "'validation', {'dataset': tag} or a (start, end) range"
            )
        _prepare_slices(con, model, slices, ref, bins)
        source = _source_view(con, model, slices, where, version, list(columns))
        later.add(drop_temp_view, con, source)
        raw = _run_macro(
            con, task, source, model, threshold, windows, start, end, ece_bins, z, clock,
            delay_quantile, chosen, confusion,
        )  # fmt: skip
        low, high = bootstrap_intervals(raw, n_boot, seed, confidence)
        raw = raw.set_column(raw.schema.get_field_index("ci_low"), "ci_low", low)
        raw = raw.set_column(raw.schema.get_field_index("ci_high"), "ci_high", high)
        text = (
            f"CI percentile bootstrap (B = {n_boot}, seed = {seed})"
            if n_boot
            else "CI not computed (n_boot = 0)"
        )
        return _assemble(con, raw, slices, TASK_METRICS[task], text)


# ---------------------------------------------------------------------- slices


def _parse_by(
    by: Any, columns: Mapping[str, str], edges: Mapping[str, Sequence[float]] | None
) -> list[_Slice]:
    if by is None:
        items: list[Any] = []
    elif isinstance(by, str | Mapping):
        items = [by]
    elif isinstance(by, Sequence):
        items = list(by)
    else:
        raise InvalidParameterError(
            f"by={by!r} is not understood: pass a feature name, 'version', "
            "{name: predicate}, or a list of these"
        )
    reserved = {*LEADING_COLUMNS, *TRAILING_COLUMNS, PREDICATE_COLUMN, "window_index", "stats"}
    slices: list[_Slice] = []
    for item in items:
        if item == "version":
            continue
        if isinstance(item, Mapping):
            if any(s.kind == "predicates" for s in slices):
                raise InvalidParameterError("by may hold one {name: predicate} mapping only")
            checked = check_named_predicates(item, [*columns, *PREDICATE_COLUMNS])
            slices.append(_Slice(PREDICATE_COLUMN, "predicates", predicates=checked))
            continue
        if not isinstance(item, str) or item not in columns:
            raise InvalidParameterError(
                f"by: {item!r} is not a feature column of this model (nor 'version' or a "
                f"{{name: predicate}} mapping); known features: {', '.join(columns) or '(none)'}"
            )
        if item in reserved or any(s.name == item for s in slices):
            raise InvalidParameterError(
                f"by: feature {item!r} would clash with a result column of the same name"
            )
        numeric = columns[item] in NUMERIC_TYPES or columns[item].startswith("DECIMAL")
        slices.append(_Slice(item, "numeric" if numeric else "categorical"))
    for name, given in (edges or {}).items():
        key = next((s for s in slices if s.name == name and s.kind == "numeric"), None)
        if key is None:
            raise InvalidParameterError(f"edges: {name!r} is not a numeric feature listed in by")
        values = list(given) if isinstance(given, Sequence) and not isinstance(given, str) else []
        if not values or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        ):
            raise InvalidParameterError(f"edges[{name!r}] must be a list of finite numbers")
        key.edges = sorted({float(v) for v in values})
    return slices


def _source_view(
    con: duckdb.DuckDBPyConnection,
    model: str,
    slices: Sequence[_Slice],
    where: str | None,
    version: str | None,
    columns: Sequence[str],
) -> str:
    """The relation the macro reads: the model's evaluations, or a restricted temp view.

    The view carries the slice code of every row (see :class:`_Slice`) in ``slice``; a
    row meeting several named predicates appears once per predicate. The part of the
    code that comes from feature columns is computed on the serving features, before
    they are joined with the predictions (once per example rather than per prediction,
    and the join carries one integer instead of the columns); a prediction without
    serving features gets every feature key's NULL index.
    """
    s = schema_prefix(con, model)
    labels = _LABELS.get()
    if labels is None and not slices and where is None and version is None:
        return f"{model}.evaluations"
    conditions = []
    if where is not None:
        conditions.append(f"({check_predicate(where, [*columns, *PREDICATE_COLUMNS])})")
    if version is not None:
        conditions.append(f"e.version = {quote_literal(version)}")
    outputs = "e.example_id, e.version, e.ts, e.prediction, e.score, e.probabilities, e.label"
    evaluations, feature_terms = f"{s}evaluations", []
    by_feature = [key for key in slices if key.kind != "predicates"]
    if labels is not None:  # see labels_from
        features = None if where is None and not by_feature else f"{s}features"
        evaluations = f"({_evaluations(s, features, labels)})"
    if by_feature:
        part = _unused_name("evalstore_slice_part", columns)
        code = " + ".join(f"CAST({key.index()} AS BIGINT) * {key.stride}" for key in by_feature)
        missing = sum(key.null_index * key.stride for key in by_feature)
        features = f"(SELECT *, {code} AS {part} FROM {s}features AS e)"
        evaluations = f"({_evaluations(s, features, labels)})"
        feature_terms = [f"coalesce(e.{part}, {missing})"]
    selects = []
    predicate_key = next((k for k in slices if k.kind == "predicates"), None)
    for name, predicate in (predicate_key.predicates if predicate_key else {None: None}).items():
        terms = [*feature_terms]
        if predicate_key is not None:
            terms.append(f"CAST({predicate_key.index(name)} AS BIGINT) * {predicate_key.stride}")
        slice_sql = f", {' + '.join(terms)} AS slice" if terms else ""
        where_sql = [*conditions, f"({predicate})"] if predicate else conditions
        selects.append(
            f"SELECT {outputs}{slice_sql} FROM {evaluations} AS e"
            + (f" WHERE {' AND '.join(where_sql)}" if where_sql else "")
        )
    name = f"evalstore_performance_{next(_view_counter)}"
    return temp_view(con, name, " UNION ALL ".join(selects))


def _evaluations(s: str, features: str | None, labels: str | None) -> str:
    """The model's ``evaluations`` as a query (``EVALUATIONS``) whose features are
    ``features`` (None: no feature columns) and whose latest labels come from
    ``labels`` (None: the model's ``labels_latest``; see :func:`labels_from`)."""
    latest = f"{s}labels_latest"
    if labels is not None:
        latest = (
            f"(SELECT example_key, label, ts, source FROM {labels} WHERE superseded_by IS NULL)"
        )
    if features is None:
        return (
            "SELECT p.example_id, p.version, p.ts, p.prediction, p.score, p.probabilities, "
            "p.latency_ms, l.label, l.ts AS label_ts, l.source AS label_source, p.example_key "
            f"FROM {s}predictions AS p LEFT JOIN {latest} AS l ON l.example_key = p.example_key"
        )
    query = EVALUATIONS.format(s=s, features=features)
    return query.replace(f"{s}labels_latest AS l", f"{latest} AS l", 1)


def _unused_name(name: str, columns: Sequence[str]) -> str:
    """``name``, with underscores appended until it is none of ``columns`` (any case)."""
    taken = {c.lower() for c in columns}
    while name in taken:
        name += "_"
    return name


# ---------------------------------------------------------------------- the macro call


def _run_macro(
    con: duckdb.DuckDBPyConnection,
    task: str,
    source: str,
    model: str,
    threshold: float | None,
    windows: Mapping[str, Any],
    since: Any,
    until: Any,
    ece_bins: int,
    z: float,
    as_of: Any,
    delay_quantile: float,
    metrics: Sequence[str],
    confusion: Sequence[Any] = (None, None, None),
) -> pa.Table:
    width, chunk_rows, chunks = (windows.get(k) for k in ("width", "chunk_rows", "chunks"))
    selection = [width, chunk_rows, chunks, since, until]
    tail = [z, as_of, delay_quantile, list(metrics)]
    if task == "binary":
        args = [source, model, threshold, *selection, ece_bins, *tail, *confusion]
    else:
        args = [source, model, *selection, *tail]
    marks = ", ".join("?" for _ in range(_MACRO_ARGS[task]))
    query = (
        f"SELECT * FROM evalstore.performance_{task}({marks}) "
        'ORDER BY window_index, version, slice, metric, "class"'
    )
    return call(con, query, args)


# ---------------------------------------------------------------------- assembly


def _assemble(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table,
    slices: Sequence[_Slice],
    metric_order: Sequence[str],
    bootstrap_text: str,
) -> pa.Table:
    """Decode slice codes into columns, add empty slices, order, and drop internals."""
    name = f"evalstore_performance_result_{next(_view_counter)}"
    keys = [quote(k.name) for k in slices]
    domain_args: list[Any] = []
    empty = union = ""
    if slices:
        domains = []
        for i, key in enumerate(slices):
            index = f"(slice_code // {key.stride}) % {key.base}"
            domain = f"SELECT DISTINCT {index} AS i{i} FROM unpacked"
            if key.declared():
                domain += f" UNION SELECT range AS i{i} FROM range({key.base - 1})"
            domains.append(f"({domain})")
        code = " + ".join(f"i{i} * {key.stride}" for i, key in enumerate(slices))
        empty = f""",
            grid AS (
                SELECT w.*, {code} AS slice_code
                FROM (SELECT DISTINCT window_index, window_start, window_end, version,
                             labels_due, labels_complete FROM unpacked) AS w
                CROSS JOIN {" CROSS JOIN ".join(domains)}
            ),
            missing AS (
                SELECT g.* FROM grid AS g
                WHERE NOT EXISTS (
                    SELECT 1 FROM unpacked AS u
                    WHERE u.window_index = g.window_index AND u.version = g.version
                      AND u.slice_code = g.slice_code)
            ),
            shapes AS (SELECT DISTINCT version, metric, "class", variant FROM unpacked)"""
        union = """
            UNION ALL BY NAME
            SELECT m.*, s.metric, s."class", s.variant,
                   CAST(NULL AS DOUBLE) AS value, CAST(NULL AS DOUBLE) AS ci_low,
                   CAST(NULL AS DOUBLE) AS ci_high, 0 AS n, 0 AS n_excluded,
                   0 AS predictions, 0 AS labeled, CAST(NULL AS DOUBLE) AS label_coverage,
                   'no predictions in this slice and window' AS reason
            FROM missing AS m JOIN shapes AS s ON s.version = m.version"""
    decoded = []
    for key, column in zip(slices, keys, strict=True):
        decoded.append(
            f"list_extract(?::VARCHAR[], CAST((slice_code // {key.stride}) % {key.base} AS INTEGER)"
            f" + 1) AS {column}"
        )
        domain_args.append(key.domain)
    columns = [
        *LEADING_COLUMNS,
        *decoded,
        *("replace(variant, ?, ?) AS variant" if c == "variant" else quote(c)
          for c in TRAILING_COLUMNS),
    ]  # fmt: skip
    order = ["window_start", "window_index", "version"]
    order += ["slice_code"] if slices else []
    order += ["list_position(?::VARCHAR[], metric)", '"class"']
    query = f"""
        WITH unpacked AS (SELECT * EXCLUDE (stats, slice), slice AS slice_code FROM {name}){empty}
        SELECT {", ".join(columns)} FROM (SELECT * FROM unpacked{union})
        ORDER BY {", ".join(order)}
    """
    with Cleanup() as later:
        con.register(name, raw)
        later.add(con.unregister, name)
        params = [*domain_args, _BOOTSTRAP_TEXT, bootstrap_text, list(metric_order)]
        return call(con, query, params)
