"""Training/serving skew: the Python front-end of ``sql/skew.sql``.

Skew is a difference between the features a model was trained on and the ones it is
served, for the *same* example: a feature computed one way by the training pipeline and
another way online. It shows up when serving logs an example that the training set also
holds (same ``example_id`` in ``env='training'`` and ``env='serving'``), e.g. when the
serving features of past traffic are re-computed offline to build the next training set.

Mismatches are counted by the macro ``evalstore.skew`` in one pass over the joined
rows of every feature (see ``sql/skew.sql`` for the exact definitions):

* numeric features match when ``numpy.isclose(serving, training, rtol=rtol,
  atol=tolerance, equal_nan=equal_nan)``: ``|serving - training| <= tolerance + rtol *
  |training|``, with the training value as the reference (numpy's asymmetric rule), an
  infinity matching only the same infinity. Defaults are numpy's (``tolerance=1e-8``,
  ``rtol=1e-5``).
* categorical features match on exact text.
* NULL vs NULL matches; NULL vs a value is a mismatch (counted in ``n_null_mismatch``).
* NaN vs NaN matches by default (``equal_nan=True``, unlike numpy's default): both
  pipelines produced "not a number" for the example, which is agreement, not skew;
  pass ``equal_nan=False`` to count it. NaN vs a number, and NaN vs NULL, mismatch.

Beside the per-example comparison each feature gets the distribution ``distance``
between the whole training set and all serving rows, from the drift engine
(:func:`evalstore.metrics.drift.univariate.drift` with one window,
``window={"chunks": 1}``): ``method``
(default ``"js"``, the Jensen-Shannon distance, defined for numeric and categorical
features) names it and ``variant`` gives its exact definition. This second figure needs
no shared ids: it is the distribution-level view of skew.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.bounds import MAX_SAMPLE_IDS, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import quote_literal
from evalstore.core.macros import call
from evalstore.core.registry import time_range
from evalstore.core.values import feature_kinds
from evalstore.core.windows import (
    check_width,
    drop_temp_view,
    temp_view,
    value_views,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics.specs import DRIFT_METHODS, KINDS, of_kind

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Columns of :func:`skew`'s result, in order.
RESULT_COLUMNS = (
    "feature", "kind", "n_compared", "n_mismatch", "n_null_mismatch", "share_mismatch",
    "max_abs_diff", "skewed", "distance", "method", "variant", "distance_drifted",
    "n_training", "n_serving", "sample_ids", "reason",
)  # fmt: skip
#: Columns of :func:`skew_windows`' result, in order.
WINDOW_COLUMNS = (
    "window_start", "window_end", "feature", "kind", "n_compared", "n_mismatch",
    "n_null_mismatch", "share_mismatch", "max_abs_diff",
)  # fmt: skip
#: Columns of :func:`skew_summary`'s result.
SUMMARY_COLUMNS = (
    "n_examples", "n_examples_skewed", "share_examples_skewed", "n_features",
    "n_features_skewed",
)  # fmt: skip

_view_ids = itertools.count()

_SCHEMA = pa.schema(
    [
        ("feature", pa.string()),
        ("kind", pa.string()),
        ("n_compared", pa.int64()),
        ("n_mismatch", pa.int64()),
        ("n_null_mismatch", pa.int64()),
        ("share_mismatch", pa.float64()),
        ("max_abs_diff", pa.float64()),
        ("skewed", pa.bool_()),
        ("distance", pa.float64()),
        ("method", pa.string()),
        ("variant", pa.string()),
        ("distance_drifted", pa.bool_()),
        ("n_training", pa.int64()),
        ("n_serving", pa.int64()),
        ("sample_ids", pa.list_(pa.string())),
        ("reason", pa.string()),
    ]
)


def skew(
    ctx: Context,
    model: str,
    tolerance: float = 1e-8,
    rtol: float = 1e-5,
    features: Sequence[str] | None = None,
    version: str | None = None,
    where: str | None = None,
    *,
    equal_nan: bool = True,
    method: str | Mapping[str, str] | None = "js",
    sample: int = 5,
    max_share: float = 0.0,
    **drift_options: Any,
) -> pa.Table:
    """Training/serving skew of each feature of ``model``.

    For the examples logged in both training and serving (same ``example_id``): per
    feature, ``n_compared`` pairs, ``n_mismatch`` of them differing (``n_null_mismatch``
    with exactly one side NULL), ``share_mismatch`` = n_mismatch / n_compared,
    ``max_abs_diff`` (numeric), ``sample_ids`` (the ``sample`` smallest offending ids)
    and ``skewed`` (``share_mismatch > max_share``; 0 flags any mismatch). See the module
    docstring for the tolerance (``tolerance`` is the absolute one, ``rtol`` the
    relative one) and the handling of NULL and NaN.

    Beside it, ``distance`` between the training set and all serving rows by the drift
    engine's ``method`` (a drift method name, or ``{"numeric": m1, "categorical": m2}``;
    default ``"js"``), with its ``variant``, the drift threshold's verdict
    (``distance_drifted``) and the row counts ``n_training`` / ``n_serving``;
    ``drift_options`` go to :func:`evalstore.metrics.drift.univariate.drift` (e.g. ``bins``,
    ``log_base``).
    ``method=None`` skips the distance (its columns are NULL): the mismatch counts alone
    are one query.

    ``version`` compares the training rows of the dataset that version was trained on
    (as registered) with the serving examples it predicted; ``where`` is a predicate
    over the feature columns that both the training and the serving row of an example
    must meet (it also restricts the distance's rows).

    Features without a shared example have ``n_compared`` 0, NULL shares and a
    ``reason``. Returns one row per feature (columns :data:`RESULT_COLUMNS`), in the
    model's column order.
    """
    from evalstore.metrics.drift.univariate import drift as _drift

    registration = ctx.registration(model, version)
    atol, rtol, max_share = _mismatch_rule(tolerance, rtol, max_share, equal_nan)
    sample = bounded_int(sample, "sample", least=0, most=MAX_SAMPLE_IDS)
    methods = _methods(method)
    con = ctx.connection
    # one transaction: the mismatch counts and the distances see the same rows
    with ctx.lock, transaction(con):
        kinds = feature_kinds(con, model)
        chosen = _check_features(features, kinds)
        train_dataset = registration.get("training_dataset") if version else None
        counts = {}
        if chosen:
            with Cleanup() as later:
                views = value_views(con, model, where, version, list(kinds), later)
                rows = call(
                    con,
                    "SELECT * FROM evalstore.skew(?, ?, ?, ?, ?, ?, ?, ?)",
                    [*views, train_dataset, chosen, atol, rtol, equal_nan, max(sample, 1)],
                )
            counts = {row["feature"]: row for row in rows.to_pylist()}
        distances = (
            skew_distances(
                functools.partial(_drift, ctx, model),
                chosen, kinds, methods, version, where, drift_options,
            )
            if methods
            else {}
        )  # fmt: skip
    return assemble(chosen, kinds, counts, distances, methods, sample, max_share)


def skew_summary(
    ctx: Context,
    model: str,
    tolerance: float = 1e-8,
    rtol: float = 1e-5,
    features: Sequence[str] | None = None,
    version: str | None = None,
    where: str | None = None,
    *,
    equal_nan: bool = True,
    max_share: float = 0.0,
) -> pa.Table:
    """One row: how many examples and features show training/serving skew.

    ``n_examples`` logged in both envs, ``n_examples_skewed`` with a mismatch in at
    least one (chosen) feature, ``share_examples_skewed``, ``n_features`` compared and
    ``n_features_skewed`` (share of mismatches above ``max_share``). Parameters as in
    :func:`skew` (the same mismatch rule, from the macro ``evalstore.skew_summary``).
    """
    registration = ctx.registration(model, version)
    atol, rtol, max_share = _mismatch_rule(tolerance, rtol, max_share, equal_nan)
    con = ctx.connection
    with ctx.lock, transaction(con), Cleanup() as later:
        kinds = feature_kinds(con, model)
        chosen = _check_features(features, kinds)
        train_dataset = registration.get("training_dataset") if version else None
        views = value_views(con, model, where, version, list(kinds), later)
        return call(
            con,
            "SELECT * FROM evalstore.skew_summary(?, ?, ?, ?, ?, ?, ?, ?)",
            [*views, train_dataset, chosen, atol, rtol, equal_nan, max_share],
        )


def skew_windows(
    ctx: Context,
    model: str,
    window: str = "1 day",
    tolerance: float = 1e-8,
    rtol: float = 1e-5,
    features: Sequence[str] | None = None,
    version: str | None = None,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
    *,
    equal_nan: bool = True,
) -> pa.Table:
    """Training/serving skew per feature and window of *serving* time.

    The pairs of :func:`skew` (an example logged in training and in serving, compared
    feature by feature with the same rule: ``tolerance``, ``rtol``, ``equal_nan``) are
    counted in the window of width ``window`` (a time interval such as ``'1 hour'``,
    aligned as every window of the store) holding the serving row's ``ts``:
    ``n_compared``, ``n_mismatch``, ``n_null_mismatch``, ``share_mismatch`` =
    n_mismatch / n_compared and ``max_abs_diff`` per feature and window (macro
    ``evalstore.skew_windows``). ``since``/``until`` keep the serving rows with
    ``since <= ts < until``; ``features``, ``version`` and ``where`` are those of
    :func:`skew`. A window without a pair of a feature has no row for it; serving rows
    without ``ts`` are left out. Rows in window, feature order (columns
    :data:`WINDOW_COLUMNS`). This is the series a ``skew`` monitor judges.
    """
    registration = ctx.registration(model, version)
    atol, rtol, _ = _mismatch_rule(tolerance, rtol, 0.0, equal_nan)
    if not isinstance(window, str):
        raise InvalidParameterError(
            f"window={window!r}: skew windows are time intervals such as '1 hour' or '1 day'"
        )
    low, high = time_range(since, until)
    con = ctx.connection
    with ctx.lock, transaction(con), Cleanup() as later:
        check_width(con, window)
        kinds = feature_kinds(con, model)
        chosen = _check_features(features, kinds)
        train_dataset = registration.get("training_dataset") if version else None
        views = value_views(con, model, where, version, list(kinds), later)
        if low is not None or high is not None:
            views = tuple(_serving_between(con, view, low, high, later) for view in views)
        table = call(
            con,
            f"SELECT {', '.join(WINDOW_COLUMNS)} FROM "
            "evalstore.skew_windows(?, ?, ?, ?, ?, ?, ?, ?) ORDER BY window_start, feature",
            [*views, train_dataset, chosen, atol, rtol, equal_nan, window],
        )
    return table


def _serving_between(
    con: Any, view: str, low: datetime | None, high: datetime | None, later: Cleanup
) -> str:
    """A temporary view of ``view`` whose serving rows have ``low <= ts < high``
    (either bound None: open); training and validation rows are all kept."""
    bounds = []
    if low is not None:
        bounds.append(f"ts >= CAST({quote_literal(low.isoformat())} AS TIMESTAMPTZ)")
    if high is not None:
        bounds.append(f"ts < CAST({quote_literal(high.isoformat())} AS TIMESTAMPTZ)")
    name = f"evalstore_skew_{next(_view_ids)}"
    body = f"SELECT * FROM {view} WHERE env <> 'serving' OR ({' AND '.join(bounds)})"
    made = temp_view(con, name, body)
    later.add(drop_temp_view, con, made)
    return made


def _mismatch_rule(
    tolerance: Any, rtol: Any, max_share: Any, equal_nan: Any
) -> tuple[float, float, float]:
    """The checked ``(atol, rtol, max_share)`` of the mismatch rule shared by :func:`skew`
    and :func:`skew_summary`; ``equal_nan`` must be a bool."""
    atol = _non_negative(tolerance, "tolerance")
    rtol = _non_negative(rtol, "rtol")
    max_share = _non_negative(max_share, "max_share")
    if not isinstance(equal_nan, bool):
        raise InvalidParameterError(f"equal_nan={equal_nan!r} must be True or False")
    return atol, rtol, max_share


def _non_negative(value: Any, name: str) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise InvalidParameterError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def _methods(method: str | Mapping[str, str] | None) -> dict[str, str]:
    if method is None:
        return {}
    if isinstance(method, str):
        chosen = {"numeric": method, "categorical": method}
    elif isinstance(method, Mapping) and set(method) <= {"numeric", "categorical"} and method:
        chosen = {"numeric": "js", "categorical": "js", **method}
    else:
        raise InvalidParameterError(
            f"method={method!r} is not understood: pass a drift method name such as 'js', "
            "or {'numeric': 'wasserstein', 'categorical': 'chi2'}"
        )
    for kind in KINDS:
        allowed = of_kind(DRIFT_METHODS, kind)
        if chosen[kind] not in allowed:
            raise InvalidParameterError(
                f"method {chosen[kind]!r} does not apply to {kind} features; choose from "
                + ", ".join(allowed)
            )
    return chosen


def _check_features(features: Sequence[str] | None, kinds: Mapping[str, str]) -> list[str]:
    if features is None:
        return list(kinds)
    if isinstance(features, str):
        features = [features]
    unknown = [f for f in features if f not in kinds]
    if unknown:
        raise InvalidParameterError(
            f"features {unknown} are not numeric or categorical feature columns of this model; "
            f"known: {', '.join(kinds) or '(none)'}"
        )
    return list(dict.fromkeys(features))


def skew_distances(
    drift_call: Callable[..., pa.Table],
    features: Sequence[str],
    kinds: Mapping[str, str],
    methods: Mapping[str, str],
    version: str | None,
    where: str | None,
    options: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """``{feature: drift row}``: training set vs every serving row, one window, by
    ``drift_call(**arguments)`` (the store's drift of the model, or an engine's): one call
    per method over the features it measures; a feature without a row gets a reason."""
    found: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(methods.values()):
        wanted = [f for f in features if methods[kinds[f]] == method]
        if not wanted:
            continue
        table = drift_call(
            reference="training", window={"chunks": 1}, features=wanted,
            methods=[method], version=version, where=where, **options,
        )  # fmt: skip
        # the window's bounds are not used (a far time would not convert to Python)
        for row in table.drop_columns(["window_start", "window_end"]).to_pylist():
            if row["method"] == method and methods[kinds[row["feature"]]] == method:
                found[row["feature"]] = row
    for feature in features:
        found.setdefault(feature, {"reason": "no serving rows to compare with"})
    return found


def assemble(
    chosen: Sequence[str],
    kinds: Mapping[str, str],
    counts: Mapping[str, Mapping[str, Any]],
    distances: Mapping[str, Mapping[str, Any]],
    methods: Mapping[str, str],
    sample: int,
    max_share: float,
) -> pa.Table:
    """The result rows (:data:`RESULT_COLUMNS`), one per chosen feature in order, from the
    macro ``evalstore.skew``'s rows by feature (``counts``) and :func:`skew_distances`."""
    records = []
    for feature in chosen:
        row = counts.get(feature)
        dist = distances.get(feature, {})
        reasons = []
        if row is None:
            reasons.append("no example_id is in both training and serving")
        if dist.get("reason"):
            reasons.append(f"distance: {dist['reason']}")
        n_mismatch = row["n_mismatch"] if row else 0
        share = row["share_mismatch"] if row else None
        records.append(
            {
                "feature": feature,
                "kind": kinds[feature],
                "n_compared": row["n_compared"] if row else 0,
                "n_mismatch": n_mismatch,
                "n_null_mismatch": row["n_null_mismatch"] if row else 0,
                "share_mismatch": share,
                "max_abs_diff": row["max_abs_diff"] if row else None,
                "skewed": None if share is None else share > max_share,
                "distance": dist.get("value"),
                "method": methods[kinds[feature]] if methods else None,
                "variant": dist.get("variant"),
                "distance_drifted": dist.get("drifted"),
                "n_training": dist.get("n_reference"),
                "n_serving": dist.get("n_analysis"),
                "sample_ids": (row["sample_ids"] or [])[:sample] if row else [],
                "reason": "; ".join(reasons) or None,
            }
        )
    return pa.Table.from_pylist(records, schema=_SCHEMA)
