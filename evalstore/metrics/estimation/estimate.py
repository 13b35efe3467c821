"""``store.estimate_performance``: the Python front-end of ``sql/estimation.sql``.

It checks the parameters, fits what the SQL cannot (per version, on the labeled
reference: the isotonic calibration of CBPE, the loss models of DLE), hands the fits to
the estimation macros as a relation, learns alert thresholds on reference chunks, and
decodes the slices. See :mod:`evalstore.metrics.estimation` for the definitions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from evalstore.core.bounds import MAX_LEARN_CHUNKS, MAX_SLICE_BINS, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.layout import NUMERIC_TYPES, feature_columns, schema_prefix
from evalstore.core.registry import time_range, to_timestamp
from evalstore.core.time_limits import PREDICTION_TABLES, check_window_count
from evalstore.core.windows import checked_window_args, drop_temp_view, reference_args
from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation import calibration as _calibration
from evalstore.metrics.estimation.loss_model import MAX_ROWS, LossModel
from evalstore.metrics.estimation.reference import describe, reference_view
from evalstore.metrics.performance import _check_threshold, _fraction, _parse_by, _source_view
from evalstore.metrics.slice_keys import _prepare_slices, _Slice
from evalstore.metrics.specs import chosen_names

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: The estimation method of each task.
METHODS = {"binary": "cbpe", "multiclass": "cbpe", "regression": "dle"}
#: The metrics each task's method estimates, in result order: metrics of
#: :data:`evalstore.metrics.specs.PERFORMANCE_METRICS` of that task (same definitions,
#: estimated; for binary models the confusion counts ``tp``, ``fp``, ``fn``, ``tn`` are
#: expected counts over every prediction of the window).
ESTIMATED_METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc",
               "tp", "fp", "fn", "tn"),
    "multiclass": ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "precision",
                   "recall", "f1"),
    "regression": ("mae", "mse", "rmse"),
}  # fmt: skip
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
    each metric's alert thresholds are the chunks' estimates' mean -+ 3 sd.

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
    threshold = _check_threshold(threshold, task)
    if calibration not in CALIBRATIONS:
        raise InvalidParameterError(
            f"calibration={calibration!r} is not one of {', '.join(CALIBRATIONS)}"
        )
    z = NormalDist().inv_cdf(0.5 + _fraction(confidence, "confidence", open_ends=True) / 2)
    delay_quantile = _fraction(delay_quantile, "delay_quantile")
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
        windows = checked_window_args(con, window)
        check_window_count(
            con, model, PREDICTION_TABLES, windows, start, end,
            max_windows=ctx.limits.max_windows,
        )  # fmt: skip
        columns = feature_columns(con, model)
        slices = _parse_by(by, columns, edges)
        _prepare_slices(con, model, slices, ref, bins)
        source = _source_view(con, model, slices, where, version, list(columns))
        later.add(drop_temp_view, con, source)
        ref_source = reference_view(con, model, ref)
        later.add(drop_temp_view, con, ref_source)
        versions = [version] if version is not None else list(ctx.versions(model))
        fits = f"evalstore_estimation_fits_{next(_counter)}"
        if method == "cbpe":
            table = _calibrations(con, ref_source, versions, registration, calibration, reference)
        else:
            table = _loss_estimates(
                con, model, ref_source, versions, columns, start, end, reference
            )
        con.register(fits, table)
        later.add(con.unregister, fits)
        selection = (windows.get("width"), windows.get("chunk_rows"), windows.get("chunks"))
        raw = _run(con, task, source, fits, model, threshold, *selection, start, end, z,
                   clock, delay_quantile, chosen)  # fmt: skip
        learned = _run(con, task, ref_source, fits, model, threshold, None, None,
                       reference_chunks, None, None, z, clock, delay_quantile, chosen)  # fmt: skip
        return _assemble(con, raw, _thresholds(learned), slices, calibration)


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


# ---------------------------------------------------------------------- fits


def _calibrations(
    con: duckdb.DuckDBPyConnection,
    ref_source: str,
    versions: Sequence[str],
    registration: Mapping[str, Any],
    calibration: str,
    reference: Any,
) -> pa.Table:
    """The calibration pieces of each version that has labeled, scored reference rows
    (binary: of the score; multiclass: of each registered class's probability, one
    against the rest, column ``class_name``)."""
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
            ORDER BY e.version, k.class_name
        """
    else:
        query = f"""
            SELECT e.version, '' AS key, e.score,
                   CASE WHEN e.label = r.positive_class THEN 1.0 ELSE 0.0 END AS y
            FROM {ref_source} AS e
            JOIN evalstore.models AS r ON r.model = ? AND r.version = e.version
            WHERE e.score IS NOT NULL AND NOT isnan(e.score) AND e.version IN (SELECT unnest(?))
            ORDER BY e.version
        """
    rows = con.sql(query, params=[registration["model"], list(versions)]).fetchnumpy()
    rows = _subset(rows, np.ones(len(rows["version"]), dtype=bool))
    fitted: dict[tuple[str, str], _calibration.Calibration] = {}
    for name in versions:
        for key in np.unique(rows["key"][rows["version"] == name]):
            mine = (rows["version"] == name) & (rows["key"] == key)
            if calibration == "none":
                fitted[(name, key)] = _calibration.identity()
            else:
                scores, labels = rows["score"][mine], rows["y"][mine]
                fitted[(name, key)] = _calibration.fit_isotonic(scores, labels)
    _require(fitted, versions, reference, "labeled predictions with a score or probabilities")
    table = _calibration.segments({f"{v}\0{k}": fit for (v, k), fit in fitted.items()})
    pairs = [text.split("\0", 1) for text in table.column("version").to_pylist()]
    table = table.set_column(0, "version", pa.array([v for v, _ in pairs], pa.string()))
    if multiclass:
        table = table.append_column("class_name", pa.array([k for _, k in pairs], pa.string()))
    return table


def _require(fitted: Mapping[str, Any], versions: Sequence[str], reference: Any, what: str) -> None:
    if fitted:
        return
    who = f"version {versions[0]!r}" if len(versions) == 1 else "any version of the model"
    raise NoReferenceError(
        f"reference {describe(reference)} holds no {what} of {who}, so there is nothing to "
        "learn the estimate from; log predictions (and labels) for the reference examples, "
        "or pass reference=(start, end), a period of serving predictions that are labeled"
    )


def _loss_estimates(
    con: duckdb.DuckDBPyConnection,
    model: str,
    ref_source: str,
    versions: Sequence[str],
    columns: Mapping[str, str],
    since: Any,
    until: Any,
    reference: Any,
) -> pa.Table:
    """Per prediction of each version with a labeled reference: the losses its DLE models
    predict (``abs_error``, ``sq_error``) and the reference losses' sds."""
    names = list(columns)
    selected = ", ".join(_feature_sql(n, columns[n]) for n in names)
    selected = f", {selected}" if selected else ""
    reference_rows = con.sql(
        f"""
        SELECT e.version, TRY_CAST(e.prediction AS DOUBLE) AS evalstore_prediction,
               TRY_CAST(e.label AS DOUBLE) AS evalstore_label{selected}
        FROM {ref_source} AS e
        WHERE e.version IN (SELECT unnest(?))
        ORDER BY e.version, e.ts, e.example_id
        """,
        params=[list(versions)],
    ).fetchnumpy()
    conditions = ["e.version IN (SELECT unnest(?))"]
    params: list[Any] = [list(versions)]
    if since is not None:
        conditions.append("e.ts >= CAST(? AS TIMESTAMPTZ)")
        params.append(since)
    if until is not None:
        conditions.append("e.ts < CAST(? AS TIMESTAMPTZ)")
        params.append(until)
    analysis = con.sql(
        f"""
        SELECT e.example_id, e.version,
               TRY_CAST(e.prediction AS DOUBLE) AS evalstore_prediction{selected}
        FROM {schema_prefix(con, model)}evaluations AS e WHERE {" AND ".join(conditions)}
        """,
        params=params,
    ).fetchnumpy()
    parts: list[pa.Table] = []
    for name in versions:
        ref = _subset(reference_rows, reference_rows["version"] == name)
        keep = np.isfinite(ref["evalstore_prediction"]) & np.isfinite(ref["evalstore_label"])
        ref = _subset(ref, keep)
        if len(ref["version"]) == 0:
            continue
        if len(ref["version"]) > MAX_ROWS:
            ref = _subset(ref, np.linspace(0, len(ref["version"]) - 1, MAX_ROWS).astype(int))
        error = ref["evalstore_label"] - ref["evalstore_prediction"]
        inputs = {n: ref[n] for n in [*names, "evalstore_prediction"]}
        mine = analysis["version"] == name
        rows = _subset(analysis, mine & np.isfinite(analysis["evalstore_prediction"]))
        x = {n: rows[n] for n in [*names, "evalstore_prediction"]}
        sd_abs = float(np.std(np.abs(error), ddof=1)) if len(error) > 1 else math.nan
        sd_sq = float(np.std(error**2, ddof=1)) if len(error) > 1 else math.nan
        abs_error = LossModel().fit(inputs, np.abs(error)).predict(x)
        sq_error = LossModel().fit(inputs, error**2).predict(x)
        count = len(abs_error)
        parts.append(
            pa.table({
                "example_id": pa.array(rows["example_id"], pa.string()),
                "version": pa.array([name] * count, pa.string()),
                "abs_error": pa.array(abs_error, pa.float64()),
                "sq_error": pa.array(sq_error, pa.float64()),
                "sd_abs": pa.array(np.full(count, sd_abs), pa.float64()),
                "sd_sq": pa.array(np.full(count, sd_sq), pa.float64()),
            })
        )  # fmt: skip
    _require(parts, versions, reference, "labeled predictions with a numeric prediction and label")
    return pa.concat_tables(parts)


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
    return con.sql(f"SELECT * FROM {macro}", params=args).to_arrow_table()


def _thresholds(learned: pa.Table) -> pa.Table:
    """Per version, metric and class: the reference chunks' mean -+ 3 sd (population sd,
    as NannyML's StandardDeviationThreshold), clipped to [0, 1] for rates and floored
    at 0 for losses; none for the confusion counts (they scale with the window's size)."""
    keys: dict[tuple[Any, Any, Any], list[float]] = {}
    for row in learned.select(["version", "metric", "class", "value"]).to_pylist():
        if row["value"] is not None and row["metric"] not in COUNT_METRICS:
            keys.setdefault((row["version"], row["metric"], row["class"]), []).append(row["value"])
    out: dict[str, list[Any]] = {k: [] for k in ("version", "metric", "class", "low", "high")}
    for (version, metric, cls), values in keys.items():
        mean, sd = float(np.mean(values)), float(np.std(values))
        low, high = max(mean - THRESHOLD_SD * sd, 0.0), mean + THRESHOLD_SD * sd
        if metric not in ("mae", "mse", "rmse"):
            high = min(high, 1.0)
        for key, value in zip(out, (version, metric, cls, low, high), strict=True):
            out[key].append(value)
    return pa.table({
        "version": pa.array(out["version"], pa.string()),
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
) -> pa.Table:
    """Join the learned thresholds, decode the slice codes into columns, name the
    calibration in ``variant``, order."""
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
        return con.sql(query, params=[*params, named]).to_arrow_table()
