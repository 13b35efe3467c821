"""Multivariate drift over windows: the store-facing side of :mod:`evalstore.metrics.drift.kernels`
and :mod:`evalstore.metrics.drift.domain_classifier`.

Rows come out of the same selection as univariate drift (``evalstore.drift_pairs`` over
``<model>.numeric_values``, and ``<model>.category_values`` when categorical features are
chosen, so reference, window, version and where mean the same), are pivoted to one row per
example with a column per feature (categorical ones encoded by
:mod:`evalstore.metrics.drift.encoding`), and handed to numpy:

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

``domain_classifier``
    ROC AUC of a classifier telling window rows from reference rows, over held-out
    stratified folds (NannyML's domain-classifier drift; the classifier is an
    L2-regularised logistic regression on degree-2 terms, see
    :mod:`evalstore.metrics.drift.domain_classifier`). At most ``classifier_rows`` rows
    per side are used (a seeded random subsample, kept in time order). The alert range is
    learned from ``learn_chunks`` contiguous chunks of the (subsampled) reference in time
    order, each scored against the rest of the reference: mean ± ``learn_k`` sd, clipped
    to [0, 1]; ``classifier_range=(low, high)`` fixes it instead (NannyML's default is
    ``(0.45, 0.65)``). A window or reference with fewer rows than ``classifier_folds``
    gives NULL and a reason.

Features: ``features=None`` takes every numeric feature. Categorical features named in
``features`` enter every method through ``categorical_encoding`` (``count``: the
category's share of the reference, as NannyML's data-reconstruction drift; ``onehot``:
one 0/1 column per reference category; see :mod:`evalstore.metrics.drift.encoding`),
and the variant says which.

Result rows have the shape of :func:`evalstore.metrics.drift.univariate.drift` with
``feature`` set to ``'*'`` (all features jointly) and ``kind`` ``'multivariate'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.bounds import (
    MAX_LEARN_CHUNKS,
    MAX_MMD_ROWS,
    MAX_MMD_WORK,
    MAX_PERMUTATIONS,
    bounded_int,
)
from evalstore.core.db import Cleanup, transaction
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
from evalstore.metrics.drift.domain_classifier import (
    MAX_CLASSIFIER_ROWS,
    MAX_FIT_WORK,
    MAX_FOLDS,
    DomainScorer,
    check_terms,
    design_matrix,
)
from evalstore.metrics.drift.encoded_rows import EncodedRows, mean_and_std, subsample_index
from evalstore.metrics.drift.encoding import check_encoding
from evalstore.metrics.drift.kernels import (
    PCAReconstruction,
    chunk_thresholds,
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
#: Largest work of one ``domain_classifier`` call, summed over its fits (every window's
#: folds, and the reference chunks' when the range is learned): folds x rows fitted x
#: (terms + 1)², 50 times the largest single fit (:data:`MAX_FIT_WORK`). The default
#: (2000 rows per side, 5 folds, 10 numeric features' 75 terms) allows about 850 windows.
MAX_DOMAIN_CALL_WORK = 50 * MAX_FIT_WORK


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
    categorical_encoding: str = "count",
    classifier_rows: int = 2000,
    classifier_folds: int = 5,
    classifier_c: float = 1.0,
    classifier_terms: str = "quadratic",
    classifier_range: tuple[float, float] | None = None,
) -> pa.Table:
    """Joint drift of the chosen features per window (see the module docstring)."""
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
    classifier = _classifier_options(
        categorical_encoding, classifier_rows, classifier_folds, classifier_c,
        classifier_terms, classifier_range,
    )  # fmt: skip
    con = ctx.connection
    with ctx.lock, transaction(con):  # one snapshot for every statement
        kinds = feature_kinds(con, model)
        numeric = [f for f, k in kinds.items() if k == "numeric"]
        chosen = numeric if features is None else list(features)
        bad = [f for f in chosen if f not in kinds]
        if bad or len(chosen) < 1:
            raise InvalidParameterError(
                f"features {bad or chosen} are not features of {model!r}; numeric features: "
                f"{', '.join(numeric)}; categorical features (encoded by "
                f"categorical_encoding=): {', '.join(f for f in kinds if f not in numeric)}"
            )
        # numeric columns first, then categorical ones (the classifier's order)
        chosen = [f for f in chosen if f in numeric] + [f for f in chosen if f not in numeric]
        categorical = [f for f in chosen if f not in numeric]
        selection = resolve(con, reference, window, registration if version else None, since, until)
        check_reference(con, model, reference, selection)
        if selection.previous:
            raise InvalidParameterError("multivariate drift needs a fixed reference")
        check_window_count(con, model, VALUE_TABLES, selection, max_windows=ctx.limits.max_windows)
        with Cleanup() as later:
            if categorical:
                views = []
                for kind in ("DOUBLE", "VARCHAR"):
                    # the chosen features' rows alone: both views hold the same examples
                    select = value_rows(con, model, kind, chosen)
                    views.append(
                        restricted_view(con, model, "", where, version, list(kinds), select)
                    )
                    later.add(drop_view, con, views[-1])
            else:
                views = [restricted_view(con, model, "numeric_values", where, version, list(kinds))]
                later.add(drop_view, con, views[0])
            rows = _wide_rows(ctx, views, selection, chosen[: len(chosen) - len(categorical)],
                              categorical)  # fmt: skip
    options = dict(
        alpha=alpha, max_rows=max_rows, n_permutations=n_permutations, variance=variance,
        learn_chunks=learn_chunks, learn_k=learn_k, seed=seed, **classifier,
    )  # fmt: skip
    return _score(rows, len(chosen) - len(categorical), categorical, methods, options)


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


def _classifier_options(
    encoding: Any, rows: Any, folds: Any, c: Any, terms: Any, limits: Any
) -> dict[str, Any]:
    """The checked encoding and domain-classifier options, before any work starts."""
    check_encoding(encoding)
    check_terms(terms)
    rows = bounded_int(rows, "classifier_rows", least=2, most=MAX_CLASSIFIER_ROWS)
    folds = bounded_int(folds, "classifier_folds", least=2, most=MAX_FOLDS)
    if isinstance(c, bool) or not isinstance(c, int | float) or not (0 < c < float("inf")):
        raise InvalidParameterError(
            f"classifier_c={c!r} must be a finite number > 0 (the inverse L2 strength, "
            "as scikit-learn's C; default 1.0)"
        )
    if limits is not None:
        pair = tuple(limits) if isinstance(limits, list | tuple) else ()
        if (
            len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
            or not 0 <= pair[0] <= pair[1] <= 1
        ):
            raise InvalidParameterError(
                f"classifier_range={limits!r} must be a pair (low, high) with "
                "0 <= low <= high <= 1, e.g. (0.45, 0.65) as NannyML; or None to learn it "
                "from reference chunks"
            )
        limits = (float(pair[0]), float(pair[1]))
    return dict(
        categorical_encoding=encoding, classifier_rows=rows, classifier_folds=folds,
        classifier_c=float(c), classifier_terms=terms, classifier_range=limits,
    )  # fmt: skip


def _wide_rows(
    ctx: Context, views: list[str], selection: Selection, numeric: list[str], categorical: list[str]
) -> pa.Table:
    """One row per (side, window, example) with a column per feature, as Arrow.

    Numeric features come as ``f0, f1, ...`` (from ``views[0]``), categorical ones as
    ``c0, c1, ...`` (from ``views[1]``, joined on side, window and example). Rows come in
    (side, window_index, example_id) order; ``time_order`` numbers each side's examples
    0, 1, ... by (ts, example_id), the order the reference is cut into chunks in.
    """
    parts, params = [], []
    for prefix, names, view in (("f", numeric, views[0]), ("c", categorical, views[-1])):
        if not names:
            continue
        columns = ", ".join(
            f"max(value) FILTER (WHERE feature = ?) AS {prefix}{i}" for i in range(len(names))
        )
        parts.append(
            f"SELECT side, coalesce(window_index, -1) AS w, example_id, "
            f"min(window_start) AS window_start, max(window_end) AS window_end, "
            f"min(ts) AS ts, {columns} "
            f"FROM evalstore.drift_pairs(?, {selection.placeholders}) "
            "WHERE version = '' AND list_contains(?, feature) GROUP BY side, w, example_id"
        )
        params += [*names, view, *selection.args(), names]
    keep = [f"f{i}" for i in range(len(numeric))] + [f"c{i}" for i in range(len(categorical))]
    joined = " LEFT JOIN p1 USING (side, w, example_id)" if len(parts) > 1 else ""
    with_clause = ", ".join(f"p{i} AS ({part})" for i, part in enumerate(parts))
    sql = (
        f"WITH {with_clause} "
        "SELECT side, nullif(w, -1) AS window_index, p0.window_start, p0.window_end, "
        f"{', '.join(keep)}, "
        "row_number() OVER (PARTITION BY side ORDER BY p0.ts, example_id) - 1 AS time_order "
        f"FROM p0{joined} ORDER BY side, w, example_id"
    )
    return call(ctx.connection, sql, params)


def _score(
    rows: pa.Table, n_numeric: int, names: list[str], methods: list[str], options: dict[str, Any]
) -> pa.Table:
    is_reference = pc.equal(rows.column("side"), "reference").to_numpy(zero_copy_only=False)
    is_reference = np.asarray(is_reference, dtype=bool)
    # compact rows: each method encodes the rows it uses (its subsample, or blocks), so
    # memory does not grow with rows x encoded columns (see encoded_rows)
    encoded_rows = EncodedRows.from_arrow(
        rows, n_numeric, names, is_reference, options["categorical_encoding"]
    )
    encoding = encoded_rows.encoding
    reference = np.flatnonzero(is_reference)
    time_order = rows.column("time_order").to_numpy(zero_copy_only=False)
    # learned thresholds cut the reference in time order (ts, then example_id), not in
    # the example_id text order the rows come in ("0", "1", "10", "11", "2", ...)
    in_time = reference[np.argsort(time_order[is_reference], kind="stable")]
    analysis = np.flatnonzero(~is_reference)
    windows = rows.filter(pa.compute.equal(rows.column("side"), "analysis"))
    index = windows.column("window_index").to_numpy(zero_copy_only=False)
    # as microseconds: times beyond Python's datetime must not stop the call
    starts = windows.column("window_start").cast(pa.int64()).to_pylist()
    ends = windows.column("window_end").cast(pa.int64()).to_pylist()
    encoded = "" if encoding is None else (
        f"; categorical features {encoding.encoding}-encoded on the reference"
    )  # fmt: skip
    window_indexes = sorted(set(index.tolist()))
    learn_chunks, learn_k = options["learn_chunks"], options["learn_k"]
    out: list[dict[str, Any]] = []
    pca = lows = None
    if "pca" in methods and len(reference) >= max(2, learn_chunks) and encoded_rows.width:
        pca, lows = _fit_pca(encoded_rows, reference, in_time, options)
    domain = None
    if "domain_classifier" in methods:
        _check_domain_work(encoded_rows, n_numeric, len(in_time), index, options)
        capped = subsample_index(
            in_time, options["classifier_rows"], np.random.default_rng(options["seed"])
        )
        domain = DomainScorer.fit(encoded_rows.take(capped), n_numeric, options)
    mmd_reference = None
    if "mmd" in methods:
        finite = encoded_rows.finite()  # MMD leaves out rows with a missing value
        mmd_reference = reference[finite[reference]]
        center, scale = (
            mean_and_std(encoded_rows, mmd_reference) if len(mmd_reference) else (None, None)
        )
    for window_index in window_indexes:
        mask = index == window_index
        first = int(np.argmax(mask))
        sample = analysis[mask]
        base = {
            "window_start": starts[first], "window_end": ends[first], "feature": "*",
            "kind": "multivariate", "version": None, "n_reference": len(reference),
            "n_analysis": int(mask.sum()),
        }  # fmt: skip
        if mmd_reference is not None:
            window = sample[finite[sample]]
            mmd = _mmd_row(encoded_rows, mmd_reference, window, center, scale, options)
            out.append({**base, **mmd, "variant": mmd["variant"] + encoded})
        if "pca" in methods:
            value = None
            if pca is not None and lows is not None and len(sample):
                value = float(np.concatenate(
                    [pca.row_errors(b) for b in encoded_rows.blocks(sample)]
                ).mean())  # fmt: skip
            row = _pca_row(pca, lows, value, options["variance"], learn_chunks, learn_k)
            variant = None if row["variant"] is None else row["variant"] + encoded
            out.append({**base, **row, "variant": variant})
        if domain is not None:
            capped = subsample_index(
                sample, options["classifier_rows"], np.random.default_rng(options["seed"])
            )
            row = domain.row(encoded_rows.take(capped))
            out.append({**base, **row, "variant": row["variant"] + encoded})
    return pa.Table.from_pylist(out, schema=_schema(ticks=True)).cast(_schema())


def _fit_pca(
    rows: EncodedRows, reference: np.ndarray, in_time: np.ndarray, options: dict[str, Any]
) -> tuple[PCAReconstruction, tuple[float, float, np.ndarray] | None]:
    """PCA fitted on every reference row and its alert range over reference chunks in time
    order, encoding a block of rows at a time (one ``fit`` when they fit in a block)."""
    if len(reference) <= rows.block_rows:
        pca = PCAReconstruction.fit(rows.take(reference), options["variance"])
    else:
        pca = PCAReconstruction.fit_blocks(lambda: rows.blocks(reference), options["variance"])
    if pca.keeps_everything:
        return pca, None
    errors = np.concatenate([pca.row_errors(b) for b in rows.blocks(in_time)])
    # the chunks' mean errors: each row's error does not depend on its block
    lows = chunk_thresholds(
        errors[:, np.newaxis], lambda chunk: float(chunk.mean()),
        options["learn_chunks"], options["learn_k"],
    )  # fmt: skip
    return pca, lows


def _check_domain_work(
    rows: EncodedRows, n_numeric: int, n_reference: int, index: np.ndarray, options: dict
) -> None:
    """Refuse a domain_classifier call whose fits add up to more than
    :data:`MAX_DOMAIN_CALL_WORK` (before any fit runs): each window is ``classifier_folds``
    fits on its capped rows and the capped reference's, and a learned range as many per
    reference chunk, each of size rows x (terms + 1)²."""
    cap, folds = options["classifier_rows"], options["classifier_folds"]
    width = rows.width
    if width == 0:
        return
    zero = np.zeros((1, width))
    terms = design_matrix(zero, n_numeric, options["classifier_terms"]).transform(zero).shape[1]
    n_ref = min(cap, n_reference)
    _, sizes = np.unique(index, return_counts=True)
    fitted_rows = int(np.minimum(sizes, cap).sum()) + len(sizes) * n_ref
    if options["classifier_range"] is None:
        fitted_rows += options["learn_chunks"] * n_ref
    work = folds * fitted_rows * (terms + 1) ** 2
    if work > MAX_DOMAIN_CALL_WORK:
        raise InvalidParameterError(
            f"domain_classifier: {len(sizes)} windows with classifier_rows={cap}, "
            f"classifier_folds={folds} and {terms} terms is too much work for one call "
            f"(folds x rows fitted x (terms + 1)² = {work:.3g} > {MAX_DOMAIN_CALL_WORK:.3g}); "
            "lower classifier_rows or classifier_folds, pass classifier_terms='linear', "
            "choose fewer features, use fewer windows (a longer window= or a shorter "
            "since=/until= span), or pass classifier_range=(low, high) instead of learning it"
        )


def _mmd_row(
    rows: EncodedRows,
    reference: np.ndarray,
    window: np.ndarray,
    center: np.ndarray | None,
    scale: np.ndarray | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    alpha, max_rows = options["alpha"], options["max_rows"]
    n_permutations = options["n_permutations"]
    row = {
        "method": "mmd",
        "variant": f"unbiased MMD², RBF kernel, median-heuristic bandwidth, standardised on "
        f"the reference; up to {max_rows} rows per side, {n_permutations} permutations",
        "threshold": alpha, "threshold_low": None,
        "threshold_source": f"permutation p-value < {alpha}",
    }  # fmt: skip
    # the test's own subsample, drawn here on row numbers: x, then y, from one stream that
    # then drives the permutations (mmd_test draws nothing more on capped samples)
    rng = np.random.default_rng(options["seed"])
    x = rows.take(subsample_index(reference, max_rows, rng))
    y = rows.take(subsample_index(window, max_rows, rng))
    reason = mmd_undefined_reason(x, y)
    if reason is not None or center is None or scale is None:
        return {**row, "value": None, "p_value": None, "drifted": None, "reason": reason}
    scale = np.where(scale == 0, 1.0, scale)
    result = mmd_test(
        (x - center) / scale, (y - center) / scale,
        n_permutations=n_permutations, max_rows=max_rows, seed=rng,
    )  # fmt: skip
    return {
        **row, "value": result.mmd2, "p_value": result.p_value,
        "drifted": bool(result.p_value < alpha), "reason": None,
    }  # fmt: skip


def _pca_row(
    pca: PCAReconstruction | None,
    lows: tuple[float, float, np.ndarray] | None,
    value: float | None,
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
