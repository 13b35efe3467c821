"""Multivariate drift over windows: the store-facing side of :mod:`evalstore.metrics.drift.kernels`.

Rows come out of the same selection as univariate drift (``evalstore.drift_pairs`` over
``<model>.numeric_values``, so reference, window, version and where mean the same), are
pivoted to one row per example and numeric feature column, and handed to numpy:

``mmd``
    unbiased MMD² with an RBF kernel (median-heuristic bandwidth) between at most
    ``max_rows`` random reference rows and at most ``max_rows`` window rows, both
    standardised with the reference's mean and standard deviation; rows with a missing
    or non-finite value are left out. ``p_value`` is a seeded permutation p-value
    (``n_permutations``); drifted when it is below ``alpha``.
``pca``
    PCA reconstruction error (NannyML's data-reconstruction drift): standardise on the
    reference, keep the fewest components explaining ``variance`` (65%) of its
    variance, and report the window's mean Euclidean reconstruction error. Missing
    values are imputed with the reference means. The alert range is learned from
    ``learn_chunks`` contiguous chunks of the reference rows in time order (``ts``,
    then ``example_id``, as every learned threshold): mean
    ± ``learn_k`` sd of their errors, the lower bound clipped at 0, the upper bound at
    least :data:`PCA_NOISE_FLOOR` (errors below it are floating-point rounding, not a
    signal). When the variance target keeps every component (``n_components`` equals the
    number of features, as with 2 independent features at 65%) each row is reconstructed
    exactly and the method can say nothing: ``value`` and ``drifted`` are NULL and the
    ``reason`` says so (use more features, a lower ``variance`` or ``mmd``).

Result rows have the shape of :func:`evalstore.metrics.drift.univariate.drift` with
``feature`` set to ``'*'`` (all features jointly) and ``kind`` ``'multivariate'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalstore.core.bounds import (
    MAX_LEARN_CHUNKS,
    MAX_MMD_ROWS,
    MAX_MMD_WORK,
    MAX_PERMUTATIONS,
    bounded_int,
)
from evalstore.core.db import Cleanup, transaction
from evalstore.core.time_limits import VALUE_TABLES, check_window_count
from evalstore.core.values import feature_kinds
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
from evalstore.metrics.drift.kernels import (
    PCAReconstruction,
    chunk_thresholds,
    finite_rows,
    mmd_test,
    mmd_undefined_reason,
)
from evalstore.metrics.drift.univariate import RESULT_COLUMNS
from evalstore.metrics.specs import MULTIVARIATE_DRIFT_METHODS

if TYPE_CHECKING:
    from evalstore.core.context import Context

MULTIVARIATE_METHODS = tuple(MULTIVARIATE_DRIFT_METHODS)
#: Smallest upper alert bound of ``pca`` (standardised units, where errors are of order 1):
#: a reference whose discarded components carry no variance (a constant or exactly
#: collinear column) learns a band of rounding noise (about 1e-16), which any window
#: would leave; an error below this floor is noise, one above it a real departure.
PCA_NOISE_FLOOR = 1e-8


def multivariate_drift(
    ctx: Context,
    model: str,
    reference: Reference = "training",
    window: Window = "1 day",
    features: Sequence[str] | None = None,
    methods: Sequence[str] = MULTIVARIATE_METHODS,
    version: str | None = None,
    where: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
    alpha: float = 0.05,
    max_rows: int = 1000,
    n_permutations: int = 200,
    variance: float = 0.65,
    learn_chunks: int = 10,
    learn_k: float = 3.0,
    seed: int = 0,
) -> pa.Table:
    """Joint drift of the numeric features per window (see the module docstring)."""
    registration = ctx.registration(model, version)
    methods = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in methods if m not in MULTIVARIATE_METHODS]
    if unknown or not methods:
        raise InvalidParameterError(
            f"methods={methods!r}: choose from {', '.join(MULTIVARIATE_METHODS)}"
        )
    if not 0 < variance <= 1:
        raise InvalidParameterError(f"variance={variance!r} must be in (0, 1]")
    _check_sizes(max_rows, n_permutations, learn_chunks)
    con = ctx.connection
    with ctx.lock, transaction(con):  # one snapshot for every statement
        kinds = feature_kinds(con, model)
        numeric = [f for f, k in kinds.items() if k == "numeric"]
        chosen = numeric if features is None else list(features)
        bad = [f for f in chosen if f not in numeric]
        if bad or len(chosen) < 1:
            raise InvalidParameterError(
                f"features {bad or chosen} are not numeric features of {model!r}; "
                f"numeric features: {', '.join(numeric)}"
            )
        selection = resolve(con, reference, window, registration if version else None, since, until)
        check_reference(con, model, reference, selection)
        if selection.previous:
            raise InvalidParameterError("multivariate drift needs a fixed reference")
        check_window_count(con, model, VALUE_TABLES, selection, max_windows=ctx.limits.max_windows)
        with Cleanup() as later:
            view = restricted_view(con, model, "numeric_values", where, version, list(kinds))
            later.add(drop_view, con, view)
            rows = _wide_rows(ctx, view, selection, chosen)
    return _score(rows, chosen, methods, alpha, max_rows, n_permutations, variance,
                  learn_chunks, learn_k, seed)  # fmt: skip


def _check_sizes(max_rows: Any, n_permutations: Any, learn_chunks: Any) -> None:
    """Refuse MMD subsamples, permutations or chunks beyond :mod:`evalstore.core.bounds`."""
    rows = bounded_int(max_rows, "max_rows", least=2, most=MAX_MMD_ROWS)
    permutations = bounded_int(n_permutations, "n_permutations", most=MAX_PERMUTATIONS)
    bounded_int(learn_chunks, "learn_chunks", least=2, most=MAX_LEARN_CHUNKS)
    if (2 * rows) ** 2 * permutations > MAX_MMD_WORK:
        raise InvalidParameterError(
            f"max_rows={rows} with n_permutations={permutations} is too much work for one "
            f"test ((2 max_rows)² x n_permutations = {(2 * rows) ** 2 * permutations:.3g} > "
            f"{MAX_MMD_WORK:.3g}); lower one of them"
        )


def _wide_rows(ctx: Context, view: str, selection: Selection, features: list[str]) -> pa.Table:
    """One row per (side, window, example) with a column per feature, as Arrow.

    Rows come in (side, window, example_id) order; ``time_order`` numbers each side's
    examples 0, 1, ... by (ts, example_id), the order the reference is cut into chunks in.
    """
    columns = ", ".join(
        f"max(value) FILTER (WHERE feature = ?) AS f{i}" for i in range(len(features))
    )
    sql = (
        f"SELECT side, window_index, min(window_start) AS window_start, "
        f"max(window_end) AS window_end, {columns}, "
        "row_number() OVER (PARTITION BY side ORDER BY min(ts), example_id) - 1 AS time_order "
        f"FROM evalstore.drift_pairs(?, {selection.placeholders}) "
        "WHERE version = '' AND list_contains(?, feature) "
        "GROUP BY side, window_index, example_id ORDER BY side, window_index, example_id"
    )
    params = [*features, view, *selection.args(), features]
    return ctx.connection.sql(sql, params=params).to_arrow_table()


def _score(
    rows: pa.Table,
    features: list[str],
    methods: list[str],
    alpha: float,
    max_rows: int,
    n_permutations: int,
    variance: float,
    learn_chunks: int,
    learn_k: float,
    seed: int,
) -> pa.Table:
    side = np.asarray(rows.column("side").to_pylist())
    matrix = np.empty((rows.num_rows, len(features)))
    for i in range(len(features)):
        column = rows.column(f"f{i}").to_numpy(zero_copy_only=False)
        matrix[:, i] = np.asarray(column, dtype=float)
    reference_rows = matrix[side == "reference"]
    time_order = rows.column("time_order").to_numpy(zero_copy_only=False)
    # learned thresholds cut the reference in time order (ts, then example_id), not in
    # the example_id text order the rows come in ("0", "1", "10", "11", "2", ...)
    in_time = reference_rows[np.argsort(time_order[side == "reference"], kind="stable")]
    windows = rows.filter(pa.compute.equal(rows.column("side"), "analysis"))
    index = windows.column("window_index").to_numpy(zero_copy_only=False)
    analysis = matrix[side == "analysis"]
    # as microseconds: times beyond Python's datetime must not stop the call
    starts = windows.column("window_start").cast(pa.int64()).to_pylist()
    ends = windows.column("window_end").cast(pa.int64()).to_pylist()
    out: list[dict[str, Any]] = []
    pca = lows = None
    if "pca" in methods and len(reference_rows) >= max(2, learn_chunks):
        pca = PCAReconstruction.fit(reference_rows, variance)
        if not pca.keeps_everything:
            lows = chunk_thresholds(in_time, pca.error, learn_chunks, learn_k)
    for window_index in sorted(set(index.tolist())):
        mask = index == window_index
        first = int(np.argmax(mask))
        sample = analysis[mask]
        base = {
            "window_start": starts[first], "window_end": ends[first], "feature": "*",
            "kind": "multivariate", "version": None, "n_reference": len(reference_rows),
            "n_analysis": int(mask.sum()),
        }  # fmt: skip
        if "mmd" in methods:
            mmd = _mmd_row(reference_rows, sample, alpha, max_rows, n_permutations, seed)
            out.append({**base, **mmd})
        if "pca" in methods:
            out.append({**base, **_pca_row(pca, lows, sample, variance, learn_chunks, learn_k)})
    return pa.Table.from_pylist(out, schema=_schema(ticks=True)).cast(_schema())


def _mmd_row(
    reference_rows: np.ndarray,
    sample: np.ndarray,
    alpha: float,
    max_rows: int,
    n_permutations: int,
    seed: int,
) -> dict[str, Any]:
    x, y = finite_rows(reference_rows), finite_rows(sample)
    x, y = x[0], y[0]
    row = {
        "method": "mmd",
        "variant": f"unbiased MMD², RBF kernel, median-heuristic bandwidth, standardised on "
        f"the reference; up to {max_rows} rows per side, {n_permutations} permutations",
        "threshold": alpha, "threshold_low": None,
        "threshold_source": f"permutation p-value < {alpha}",
    }  # fmt: skip
    reason = mmd_undefined_reason(x, y)
    if reason is not None:
        return {**row, "value": None, "p_value": None, "drifted": None, "reason": reason}
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    result = mmd_test(
        (x - center) / scale, (y - center) / scale,
        n_permutations=n_permutations, max_rows=max_rows, seed=seed,
    )  # fmt: skip
    return {
        **row, "value": result.mmd2, "p_value": result.p_value,
        "drifted": bool(result.p_value < alpha), "reason": None,
    }  # fmt: skip


def _pca_row(
    pca: PCAReconstruction | None,
    lows: tuple[float, float, np.ndarray] | None,
    sample: np.ndarray,
    variance: float,
    learn_chunks: int,
    learn_k: float,
) -> dict[str, Any]:
    if pca is not None and pca.keeps_everything:
        return {
            "method": "pca",
            "variant": f"mean reconstruction error, {pca.n_components} components "
            f"(>= {variance:.0%} of the reference's variance)",
            "value": None, "p_value": None, "threshold": None, "threshold_low": None,
            "threshold_source": None, "drifted": None,
            "reason": f"PCA keeps all {pca.n_features} components (reaching {variance:.0%} "
            "of the reference's variance needs every one), so every row is reconstructed "
            "exactly and the error is rounding noise; use more features, a lower "
            "variance= or method 'mmd'",
        }  # fmt: skip
    if pca is None or lows is None:
        return {
            "method": "pca", "variant": None, "value": None, "p_value": None,
            "threshold": None, "threshold_low": None, "threshold_source": None,
            "drifted": None,
            "reason": f"the reference needs at least {max(2, learn_chunks)} rows",
        }  # fmt: skip
    low, high, _ = lows
    low, high = max(0.0, low), max(high, PCA_NOISE_FLOOR)
    value = pca.error(sample) if len(sample) else None
    return {
        "method": "pca",
        "variant": f"mean reconstruction error, {pca.n_components} components "
        f"(>= {variance:.0%} of the reference's variance)",
        "value": value, "p_value": None, "threshold": high, "threshold_low": low,
        "threshold_source": f"learned: mean ± {learn_k} sd over {learn_chunks} reference "
        f"chunks (low clipped at 0, high at least {PCA_NOISE_FLOOR:g})",
        "drifted": None if value is None else bool(value < low or value > high),
        "reason": None if value is not None else "no rows in the window",
    }  # fmt: skip


def _schema(ticks: bool = False) -> pa.Schema:
    """The result's schema (``ticks``: window bounds as microseconds since 1970)."""
    time = pa.int64() if ticks else pa.timestamp("us", tz="UTC")
    types = {
        "window_start": time, "window_end": time,
        "value": pa.float64(), "p_value": pa.float64(), "threshold": pa.float64(),
        "threshold_low": pa.float64(), "drifted": pa.bool_(), "n_reference": pa.int64(),
        "n_analysis": pa.int64(),
    }  # fmt: skip
    return pa.schema([(c, types.get(c, pa.string())) for c in RESULT_COLUMNS])
