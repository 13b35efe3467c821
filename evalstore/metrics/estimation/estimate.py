"""``store.estimate_performance``: the Python front-end of ``sql/estimation.sql`` and
``sql/estimation_regression.sql``.

It checks the parameters, fits what the SQL cannot (per version, on the labeled
reference: the isotonic calibration of CBPE, the loss models of DLE), hands the fits to
the estimation macros as a relation, learns alert thresholds on reference chunks, and
decodes the slices. See :mod:`evalstore.metrics.estimation` for the definitions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from evalstore.core.bounds import MAX_LEARN_CHUNKS, MAX_SLICE_BINS, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.layout import NUMERIC_TYPES, feature_columns, schema_prefix
from evalstore.core.macros import call
from evalstore.core.registry import time_range, to_timestamp
from evalstore.core.time_limits import prediction_windows
from evalstore.core.windows import (
    drop_temp_view,
    reference_args,
    temp_view,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation import calibration as _calibration
from evalstore.metrics.estimation.loss_model import MAX_ROWS, LossModel
from evalstore.metrics.estimation.reference import describe, reference_view
from evalstore.metrics.performance import _parse_by, _source_view
from evalstore.metrics.performance_options import check_threshold, fraction
from evalstore.metrics.slice_keys import _prepare_slices, _Slice
from evalstore.metrics.specs import chosen_names

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: The estimation method of each task.
METHODS = {"binary": "cbpe", "multiclass": "cbpe", "regression": "dle"}
#: The metrics each task's method estimates, in result order: metrics of
#: :data:`evalstore.metrics.specs.PERFORMANCE_METRICS` of that task (same definitions,
#: estimated; for binary models the confusion counts ``tp``, ``fp``, ``fn``, ``tn`` are
#: expected counts over every prediction of the window; for multiclass models
#: ``specificity`` and ``roc_auc`` per class and their macro average (class NULL), and
#: the per-class expected counts, which ``performance`` lacks: :data:`ESTIMATE_ONLY`).
ESTIMATED_METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc",
               "tp", "fp", "fn", "tn"),
    "multiclass": ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "precision",
                   "recall", "f1", "specificity", "roc_auc", "tp", "fp", "fn", "tn"),
    "regression": ("mae", "mse", "rmse"),
}  # fmt: skip
#: Estimated metrics without a realized counterpart in ``performance`` for that task
#: (their ``realized`` and ``diverged`` are NULL).
ESTIMATE_ONLY = {"multiclass": ("specificity", "roc_auc", "tp", "fp", "fn", "tn")}
#: Calibrations CBPE accepts.
CALIBRATIONS = ("isotonic", "none")
#: Result columns after the slice columns.
TRAILING_COLUMNS = (
    "metric", "class", "value", "ci_low", "ci_high", "n", "n_excluded", "predictions",
    "labeled", "label_coverage", "labels_complete", "labels_due", "reason", "variant",
    "estimated", "realized", "realized_ci_low", "realized_ci_high", "threshold_low",
    "threshold_high", "alert", "diverged",
)  # fmt: skip
#: Counts whose level depends on the window's size: no thresholds are learned for them.
COUNT_METRICS = ("tp", "fp", "fn", "tn")
#: Multiplier of the reference chunks' sd in the alert thresholds (NannyML's default).
THRESHOLD_SD = 3.0
#: Usable labeled reference rows each of the ``reference_chunks`` chunks must get (per
#: version): with fewer, a chunk's precision, recall or AUC is undefined or 0/1 and the
#: learned range means nothing, so the call is refused.
MIN_CHUNK_ROWS = 2
#: Analysis rows DLE scores per record batch (its loss models read features in batches).
BATCH_ROWS = 65_536
_counter = itertools.count()


class NoReferenceError(InvalidParameterError):
    """The reference holds no labeled, scored prediction of a version to learn from."""


def estimate_performance(
    ctx: Context,
    model: str,
    metrics: Sequence[str] | str | None = None,
    window: Any = "1 day",
    by: Any = None,
    version: str | None = None,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
    threshold: float | None = None,
    *,
    reference: Any = "training",
    method: str | None = None,
    calibration: str = "isotonic",
    reference_chunks: int = 10,
    confidence: float = 0.95,
    bins: int = 4,
    edges: Mapping[str, Sequence[float]] | None = None,
    as_of: Any = None,
    delay_quantile: float = 0.9,
) -> pa.Table:
    """Performance of ``model`` per window, version and slice estimated without labels.

    ``method`` is ``"cbpe"`` (binary and multiclass models: confidence-based performance
    estimation from calibrated scores) or ``"dle"`` (regression: direct loss estimation);
    ``None`` picks the task's. Both learn from ``reference`` (``"training"``,
    ``"validation"``, ``{"dataset": tag}`` or a ``(start, end)`` range of labeled serving
    predictions), per version; a version whose reference holds no labeled prediction is
    not estimated (its rows have a ``reason``), and the call is refused when no version
    (or the ``version`` given) has one. The selection parameters (``window``, ``by``,
    ``version``, ``where``, ``since``, ``until``, ``threshold``, ``bins``, ``edges``,
    ``as_of``, ``delay_quantile``) are those of :func:`evalstore.metrics.performance.performance`.
    ``calibration`` is ``"isotonic"`` (default) or ``"none"`` (scores already calibrated).
    ``reference_chunks`` (10): the reference is cut into that many chunks in time order;
    each metric's alert thresholds are the chunks' estimates' mean -+ 3 sd, per version
    and, with ``by``, per slice (each slice's part of the chunks; a slice with an estimate
    in fewer than 2 chunks gets no thresholds). Each version needs at least
    :data:`MIN_CHUNK_ROWS` usable reference rows per chunk (InvalidParameterError
    otherwise). CBPE calibrates on at most ``MAX_ROWS`` (100,000) reference rows per
    version (a seeded random sample beyond, named in ``variant``).

    Returns the columns of ``performance`` (``value`` is the estimate over every
    prediction of the cell, labeled or not, ``[ci_low, ci_high]`` its sampling band at
    ``confidence``) plus ``estimated`` (true), ``realized`` / ``realized_ci_low`` /
    ``realized_ci_high`` (``performance``'s value and interval over the labeled rows,
    NULL without labels), ``threshold_low`` / ``threshold_high``, ``alert`` (estimate
    outside them) and ``diverged`` (the realized value lies outside the estimate's band
    for the labeled rows: the reference's relationship no longer holds).
    """
    check_model_name(model)
    registration = ctx.registration(model, version)
    task = registration["task"]
    method = _check_method(method, task)
    chosen = chosen_names(
        metrics, ESTIMATED_METRICS[task], "metrics",
        f"not estimated for a {task} model; choose from {', '.join(ESTIMATED_METRICS[task])}",
    )  # fmt: skip
    threshold = check_threshold(threshold, task)
    if calibration not in CALIBRATIONS:
        raise InvalidParameterError(
            f"calibration={calibration!r} is not one of {', '.join(CALIBRATIONS)}"
        )
    z = NormalDist().inv_cdf(0.5 + fraction(confidence, "confidence", open_ends=True) / 2)
    delay_quantile = fraction(delay_quantile, "delay_quantile")
    reference_chunks = bounded_int(
        reference_chunks, "reference_chunks", least=2, most=MAX_LEARN_CHUNKS
    )
    bins = bounded_int(bins, "bins", most=MAX_SLICE_BINS, hint="pass edges= for finer slices")
    start, end = time_range(since, until)
    clock = to_timestamp(as_of, "as_of")
    ref = reference_args(reference, registration if version else None)
    if "previous" in ref:
        raise InvalidParameterError(
            "reference={'previous': n} is not a labeled reference; use 'training', "
            "'validation', {'dataset': tag} or a (start, end) range of labeled predictions"
        )
    con = ctx.connection
    with ctx.lock, transaction(con), Cleanup() as later:
        windows = prediction_windows(
            con, model, window, start, end, max_windows=ctx.limits.max_windows
        )
        columns = feature_columns(con, model)
        slices = _parse_by(by, columns, edges)
        _prepare_slices(con, model, slices, ref, bins)
        source = _source_view(con, model, slices, where, version, list(columns))
        later.add(drop_temp_view, con, source)
        ref_source = reference_view(con, model, ref, later)
        versions = [version] if version is not None else list(ctx.versions(model))
        fits, ref_fits = (f"evalstore_estimation_{p}_{next(_counter)}" for p in ("fits", "ref"))
        capped = False
        if method == "cbpe":
            table, counts, capped = _calibrations(
                con, ref_source, versions, registration, calibration, reference
            )
            ref_table = table
        else:
            analysis = _AnalysisRows(model, source, start, end)
            table, ref_table, counts = _loss_estimates(
                con, analysis, ref_source, versions, columns, reference
            )
        _check_reference_chunks(counts, reference_chunks, reference)
        for name, relation in ((fits, table), (ref_fits, ref_table)):
            con.register(name, relation)
            later.add(con.unregister, name)
        learn_source = _sliced_reference(con, ref_source, slices)
        later.add(drop_temp_view, con, learn_source)
        selection = (windows.get("width"), windows.get("chunk_rows"), windows.get("chunks"))
        raw = _run(con, task, source, fits, model, threshold, *selection, start, end, z,
                   clock, delay_quantile, chosen)  # fmt: skip
        learned = _run(con, task, learn_source, ref_fits, model, threshold, None, None,
                       reference_chunks, None, None, z, clock, delay_quantile, chosen)  # fmt: skip
        return _assemble(con, raw, _thresholds(learned), slices, calibration, capped)


# ---------------------------------------------------------------------- parameters


def _check_method(method: Any, task: str) -> str:
    expected = METHODS[task]
    if method is None:
        return expected
    if method not in set(METHODS.values()):
        raise InvalidParameterError(
            f"method={method!r} is not an estimation method; choose 'cbpe' (binary and "
            "multiclass models) or 'dle' (regression models)"
        )
    if method != expected:
        what = "classification" if method == "cbpe" else "regression"
        raise InvalidParameterError(
            f"method={method!r} estimates {what} models, and this model's task is {task}: "
            f"pass method={expected!r} (or leave method unset)"
        )
    return expected


def _check_reference_chunks(counts: Mapping[str, int], chunks: int, reference: Any) -> None:
    """Refuse ``reference_chunks`` when a fitted version's usable reference rows cannot
    give every chunk :data:`MIN_CHUNK_ROWS` rows."""
    for name, count in counts.items():
        if count < MIN_CHUNK_ROWS * chunks:
            fewer = count // MIN_CHUNK_ROWS
            hint = (
                f"pass reference_chunks={fewer} or less, or a larger reference"
                if fewer >= 2
                else "pass a larger reference"
            )
            raise InvalidParameterError(
                f"reference_chunks={chunks} needs at least {MIN_CHUNK_ROWS * chunks} usable "
                f"labeled reference rows ({MIN_CHUNK_ROWS} per chunk) for each version, and "
                f"version {name!r} has {count} in reference {describe(reference)}: {hint}"
            )


def _sliced_reference(
    con: duckdb.DuckDBPyConnection, ref_source: str, slices: Sequence[_Slice]
) -> str:
    """The reference rows with the slice code of each (as the analysis source carries
    it: :func:`evalstore.metrics.performance._source_view`), so that thresholds are
    learned per slice; ``ref_source`` itself without ``by``."""
    if not slices:
        return ref_source
    terms = [f"CAST({k.index()} AS BIGINT) * {k.stride}" for k in slices if k.kind != "predicates"]
    predicate_key = next((k for k in slices if k.kind == "predicates"), None)
    selects = []
    for name, predicate in (predicate_key.predicates if predicate_key else {None: None}).items():
        code = [*terms]
        if predicate_key is not None:
            code.append(f"CAST({predicate_key.index(name)} AS BIGINT) * {predicate_key.stride}")
        where = f" WHERE ({predicate})" if predicate else ""
        selects.append(f"SELECT e.*, {' + '.join(code)} AS slice FROM {ref_source} AS e{where}")
    return temp_view(
        con, f"evalstore_estimation_sliced_{next(_counter)}", " UNION ALL ".join(selects)
    )


# ---------------------------------------------------------------------- fits


def _calibrations(
    con: duckdb.DuckDBPyConnection,
    ref_source: str,
    versions: Sequence[str],
    registration: Mapping[str, Any],
    calibration: str,
    reference: Any,
) -> tuple[pa.Table, dict[str, int], bool]:
    """The calibration pieces of each version that has labeled, scored reference rows
    (binary: of the score; multiclass: of each registered class's probability, one
    against the rest, column ``class_name``), the usable reference rows of each fitted
    version, and whether a version's reference was capped at ``MAX_ROWS`` (a seeded
    random sample of its rows, the same rows for every class).

    The rows arrive sorted by (version, class, time, id), so each fit's rows are one
    contiguous run found in a single pass (O(K n) for K classes, not O(K^2 n))."""
    multiclass = registration["task"] == "multiclass"
    if multiclass:
        query = f"""
            SELECT e.version, k.class_name AS key,
                   evalstore.class_probability(e.probabilities, k.class_name) AS score,
                   CASE WHEN CAST(e.label AS VARCHAR) = k.class_name THEN 1.0 ELSE 0.0 END AS y
            FROM {ref_source} AS e
            JOIN (SELECT r.version, unnest(r.classes) AS class_name FROM evalstore.models AS r
                  WHERE r.model = ?) AS k ON k.version = e.version
            WHERE e.probabilities IS NOT NULL AND e.version IN (SELECT unnest(?))
            ORDER BY e.version, k.class_name, e.ts, e.example_id
        """
    else:
        query = f"""
            SELECT e.version, '' AS key, e.score,
                   CASE WHEN e.label = r.positive_class THEN 1.0 ELSE 0.0 END AS y
            FROM {ref_source} AS e
            JOIN evalstore.models AS r ON r.model = ? AND r.version = e.version
            WHERE e.score IS NOT NULL AND NOT isnan(e.score) AND e.version IN (SELECT unnest(?))
            ORDER BY e.version, e.ts, e.example_id
        """
    rows = con.sql(query, params=[registration["model"], list(versions)]).fetchnumpy()
    rows = _subset(rows, np.ones(len(rows["version"]), dtype=bool))
    fitted: dict[tuple[str, str], _calibration.Calibration] = {}
    counts: dict[str, int] = {}
    capped = False
    version_of, key_of = rows["version"], rows["key"]
    change = (version_of[1:] != version_of[:-1]) | (key_of[1:] != key_of[:-1])
    starts = np.r_[0, np.flatnonzero(change) + 1] if len(version_of) else np.empty(0, int)
    ends = np.r_[starts[1:], len(version_of)][: len(starts)]
    for begin, end in zip(starts.tolist(), ends.tolist(), strict=True):
        name, key = str(version_of[begin]), str(key_of[begin])
        scores, labels = rows["score"][begin:end], rows["y"][begin:end]
        keep = np.isfinite(scores)
        scores, labels = scores[keep], labels[keep]
        if len(scores) == 0:
            continue
        counts[name] = max(counts.get(name, 0), len(scores))
        if calibration == "none":
            fitted[(name, key)] = _calibration.identity()
            continue
        if len(scores) > MAX_ROWS:  # the same seed and size: the same rows for each class
            sample = np.sort(np.random.default_rng(0).choice(len(scores), MAX_ROWS, False))
            scores, labels, capped = scores[sample], labels[sample], True
        fitted[(name, key)] = _calibration.fit_isotonic(scores, labels)
    _require(fitted, versions, reference, "labeled predictions with a score or probabilities")
    table = _calibration.segments({f"{v}\0{k}": fit for (v, k), fit in fitted.items()})
    pairs = [text.split("\0", 1) for text in table.column("version").to_pylist()]
    table = table.set_column(0, "version", pa.array([v for v, _ in pairs], pa.string()))
    if multiclass:
        table = table.append_column("class_name", pa.array([k for _, k in pairs], pa.string()))
    return table, counts, capped


def _require(fitted: Mapping[str, Any], versions: Sequence[str], reference: Any, what: str) -> None:
    if fitted:
        return
    who = f"version {versions[0]!r}" if len(versions) == 1 else "any version of the model"
    raise NoReferenceError(
        f"reference {describe(reference)} holds no {what} of {who}, so there is nothing to "
        "learn the estimate from; log predictions (and labels) for the reference examples, "
        "or pass reference=(start, end), a period of serving predictions that are labeled"
    )


@dataclass(frozen=True)
class _AnalysisRows:
    """The analysis rows DLE scores: those of ``source`` (the macro's relation, with
    ``where``, ``version`` and the slices applied) in [since, until)."""

    model: str
    source: str
    since: Any
    until: Any


def _loss_estimates(
    con: duckdb.DuckDBPyConnection,
    analysis: _AnalysisRows,
    ref_source: str,
    versions: Sequence[str],
    columns: Mapping[str, str],
    reference: Any,
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Per prediction of each version with a labeled reference: the losses its DLE models
    predict (``abs_error``, ``sq_error``) and the reference losses' sds; for the analysis
    rows, and for the reference rows (which learn the thresholds, whatever ``since``
    excludes); and the usable reference rows of each fitted version.

    Only the analysis rows the call selects are read, in record batches of
    :data:`BATCH_ROWS`, each scored and dropped before the next is read."""
    names = list(columns)
    selected = ", ".join(_feature_sql(n, columns[n]) for n in names)
    selected = f", {selected}" if selected else ""
    reference_rows = con.sql(
        f"""
        SELECT e.example_id, e.version, TRY_CAST(e.prediction AS DOUBLE) AS evalstore_prediction,
               TRY_CAST(e.label AS DOUBLE) AS evalstore_label{selected}
        FROM {ref_source} AS e
        WHERE e.version IN (SELECT unnest(?))
        ORDER BY e.version, e.ts, e.example_id
        """,
        params=[list(versions)],
    ).fetchnumpy()
    inputs = [*names, "evalstore_prediction"]
    models: dict[str, tuple[LossModel, LossModel, float, float]] = {}
    counts: dict[str, int] = {}
    ref_parts: list[pa.Table] = []
    for name in versions:
        ref = _subset(reference_rows, reference_rows["version"] == name)
        ref = _subset(ref, np.isfinite(ref["evalstore_prediction"]))
        scored = ref
        ref = _subset(ref, np.isfinite(ref["evalstore_label"]))
        if len(ref["version"]) == 0:
            continue
        counts[name] = len(ref["version"])
        if len(ref["version"]) > MAX_ROWS:
            ref = _subset(ref, np.linspace(0, len(ref["version"]) - 1, MAX_ROWS).astype(int))
        error = ref["evalstore_label"] - ref["evalstore_prediction"]
        x = {n: ref[n] for n in inputs}
        models[name] = (
            LossModel().fit(x, np.abs(error)),
            LossModel().fit(x, error**2),
            float(np.std(np.abs(error), ddof=1)) if len(error) > 1 else math.nan,
            float(np.std(error**2, ddof=1)) if len(error) > 1 else math.nan,
        )
        ref_parts.append(_scored(models, scored, inputs))
    _require(models, versions, reference, "labeled predictions with a numeric prediction and label")
    conditions = ["e.version IN (SELECT unnest(?))"]
    params: list[Any] = [list(models)]
    for bound, op in ((analysis.since, ">="), (analysis.until, "<")):
        if bound is not None:
            conditions.append(f"e.ts {op} CAST(? AS TIMESTAMPTZ)")
            params.append(bound)
    selection = ""
    if analysis.source != f"{analysis.model}.evaluations":  # where, version or slices
        selection = (
            f"SEMI JOIN (SELECT DISTINCT s.example_id, s.version FROM {analysis.source} AS s)"
            " AS s ON s.example_id = e.example_id AND s.version = e.version"
        )
    reader = con.sql(
        f"""
        SELECT e.example_id, e.version,
               TRY_CAST(e.prediction AS DOUBLE) AS evalstore_prediction{selected}
        FROM {schema_prefix(con, analysis.model)}evaluations AS e {selection}
        WHERE {" AND ".join(conditions)} AND isfinite(TRY_CAST(e.prediction AS DOUBLE))
        """,
        params=params,
    ).to_arrow_reader(BATCH_ROWS)
    parts = [_scored(models, _batch_arrays(batch), inputs) for batch in reader]
    empty = _scored(models, {k: np.empty(0) for k in ["example_id", "version", *inputs]}, inputs)
    return pa.concat_tables([empty, *parts]), pa.concat_tables([empty, *ref_parts]), counts


def _batch_arrays(batch: pa.RecordBatch) -> dict[str, np.ndarray]:
    """A record batch's columns as numpy arrays (NULL: NaN for numbers, None for text)."""
    out = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_floating(column.type):
            out[name] = column.fill_null(math.nan).to_numpy(zero_copy_only=False)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out


def _scored(
    models: Mapping[str, tuple[LossModel, LossModel, float, float]],
    rows: Mapping[str, np.ndarray],
    inputs: Sequence[str],
) -> pa.Table:
    """The estimates table of ``rows`` (their version's models' predicted losses)."""
    parts = {k: [] for k in ("example_id", "version", "abs_error", "sq_error", "sd_abs", "sd_sq")}
    version = np.asarray(rows["version"], dtype=object)
    for name in dict.fromkeys(version.tolist()):
        mine = version == name
        x = {n: np.asarray(rows[n])[mine] for n in inputs}
        abs_model, sq_model, sd_abs, sd_sq = models[name]
        count = int(mine.sum())
        values = (
            np.asarray(rows["example_id"], dtype=object)[mine], [name] * count,
            abs_model.predict(x), sq_model.predict(x), np.full(count, sd_abs),
            np.full(count, sd_sq),
        )  # fmt: skip
        for key, value in zip(parts, values, strict=True):
            parts[key].append(value)
    text = pa.string()
    return pa.table({
        key: pa.array(np.concatenate(v) if v else [], text if i < 2 else pa.float64())
        for i, (key, v) in enumerate(parts.items())
    })  # fmt: skip


def _feature_sql(name: str, kind: str) -> str:
    column = f"e.{quote(name)}"
    if kind in NUMERIC_TYPES or kind.startswith("DECIMAL"):
        return f"CAST({column} AS DOUBLE) AS {quote(name)}"
    return f"CAST({column} AS VARCHAR) AS {quote(name)}"


def _subset(rows: Mapping[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for key, values in rows.items():
        values = np.asarray(values)
        if np.ma.isMaskedArray(values):
            values = values.filled(np.nan) if values.dtype.kind == "f" else values.data
        out[key] = values[keep]
    return out


# ---------------------------------------------------------------------- macro calls


def _run(
    con: duckdb.DuckDBPyConnection,
    task: str,
    source: str,
    fits: str,
    model: str,
    threshold: float | None,
    width: Any,
    chunk_rows: Any,
    chunks: Any,
    since: Any,
    until: Any,
    z: float,
    as_of: Any,
    delay_quantile: float,
    metrics: Sequence[str],
) -> pa.Table:
    selection = [width, chunk_rows, chunks, since, until, z, as_of, delay_quantile, list(metrics)]
    if task == "binary":
        args = [source, fits, model, threshold, *selection]
        macro = "evalstore.estimation_binary(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    elif task == "multiclass":
        args = [source, fits, model, *selection]
        macro = "evalstore.estimation_multiclass(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    else:
        args = [source, fits, model, *selection]
        macro = "evalstore.estimation_regression(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    return call(con, f"SELECT * FROM {macro}", args)


def _thresholds(learned: pa.Table) -> pa.Table:
    """Per version, slice, metric and class: the reference chunks' mean -+ 3 sd
    (population sd, as NannyML's StandardDeviationThreshold), clipped to [0, 1] for rates
    and floored at 0 for losses; none for the confusion counts (they scale with the
    window's size), nor where fewer than 2 chunks have an estimate (a slice the
    reference hardly holds: one value has no spread)."""
    keys: dict[tuple[Any, Any, Any, Any], list[float]] = {}
    for row in learned.select(["version", "slice", "metric", "class", "value"]).to_pylist():
        if row["value"] is not None and row["metric"] not in COUNT_METRICS:
            key = (row["version"], row["slice"], row["metric"], row["class"])
            keys.setdefault(key, []).append(row["value"])
    out: dict[str, list[Any]] = {k: [] for k in ("version", "slice", "metric", "class", "low",
                                                 "high")}  # fmt: skip
    for (version, code, metric, cls), values in keys.items():
        if len(values) < 2:
            continue
        mean, sd = float(np.mean(values)), float(np.std(values))
        low, high = max(mean - THRESHOLD_SD * sd, 0.0), mean + THRESHOLD_SD * sd
        if metric not in ("mae", "mse", "rmse"):
            high = min(high, 1.0)
        for key, value in zip(out, (version, code, metric, cls, low, high), strict=True):
            out[key].append(value)
    return pa.table({
        "version": pa.array(out["version"], pa.string()),
        "slice": pa.array(out["slice"], pa.int64()),
        "metric": pa.array(out["metric"], pa.string()),
        "class": pa.array(out["class"], pa.string()),
        "low": pa.array(out["low"], pa.float64()),
        "high": pa.array(out["high"], pa.float64()),
    })  # fmt: skip


def _assemble(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table,
    thresholds: pa.Table,
    slices: Sequence[_Slice],
    calibration: str,
    capped: bool = False,
) -> pa.Table:
    """Join the learned thresholds (per version, slice, metric and class), decode the
    slice codes into columns, name the calibration in ``variant``, order."""
    name, limits = (f"evalstore_estimation_{p}_{next(_counter)}" for p in ("raw", "limits"))
    decoded, params = [], []
    for key in slices:
        decoded.append(
            f"list_extract(?::VARCHAR[], CAST((r.slice // {key.stride}) % {key.base} AS INTEGER)"
            f" + 1) AS {quote(key.name)}"
        )
        params.append(key.domain)
    trailing = {
        "variant": "replace(r.variant, 'isotonic calibration on the reference', ?) AS variant",
        "estimated": "true AS estimated",
        "threshold_low": "t.low AS threshold_low",
        "threshold_high": "t.high AS threshold_high",
        "alert": "CASE WHEN r.value IS NULL OR t.low IS NULL THEN NULL "
        "ELSE r.value < t.low OR r.value > t.high END AS alert",
    }
    columns = ["r.window_start", "r.window_end", "r.version", *decoded]
    columns += [trailing.get(c, f"r.{quote(c)}") for c in TRAILING_COLUMNS]
    query = f"""
        SELECT {", ".join(columns)}
        FROM {name} AS r
        LEFT JOIN {limits} AS t ON t.version = r.version AND t.metric = r.metric
             AND t."class" IS NOT DISTINCT FROM r."class"
             AND t.slice IS NOT DISTINCT FROM CAST(r.slice AS BIGINT)
        ORDER BY r.window_start, r.window_index, r.version, r.slice, r.position, r."class"
    """
    with Cleanup() as later:
        con.register(name, raw)
        later.add(con.unregister, name)
        con.register(limits, thresholds)
        later.add(con.unregister, limits)
        named = (
            "isotonic calibration on the reference"
            if calibration == "isotonic"
            else "no calibration: scores taken as probabilities"
        )
        if capped:
            named += f" (a seeded random sample of {MAX_ROWS} rows per version and class)"
        return call(con, query, [*params, named])
