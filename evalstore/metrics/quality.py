"""Data quality and schema validation: the Python front-end of ``sql/quality.sql``
and ``sql/validation.sql``.

Every number is computed by the SQL macros (their comments define each check
exactly); this module chooses what to compare (see :mod:`evalstore.core.windows`),
checks parameters and returns Arrow tables in the long format shared with
:func:`evalstore.metrics.drift.univariate.drift`: one row per window, feature and check, with
``method`` the check's name and ``drifted`` True when the check fails. The checks are
declared once in :data:`evalstore.metrics.specs.QUALITY_CHECKS` and
:data:`~evalstore.metrics.specs.VALIDATION_CHECKS`.

:func:`quality` compares windows of serving rows with a reference (the training rows
by default):

============= =========== =================================================================
method        kinds       value (fails when ...)
============= =========== =================================================================
rows          both        rows of the feature in the window (< ``min_rows``, default 1)
missing       both        share of NULL values (> reference share + ``missing_tolerance``)
nan           numeric     number of NaN values (> ``max_nonfinite``, default 0)
posinf        numeric     number of +inf values (> ``max_nonfinite``)
neginf        numeric     number of -inf values (> ``max_nonfinite``)
out_of_range  numeric     share of finite values outside the reference's finite [min, max]
                          (> ``max_out_of_range``, default 0.01)
unseen        categorical share of non-NULL values in categories absent from the reference
                          (> ``max_unseen``, default 0.01)
============= =========== =================================================================

With time windows, a window without any row (between the first and last non-empty
window, or inside ``[since, until)``) is reported with ``rows`` = 0, so a stopped
feed shows up as a failed ``rows`` check.

:func:`infer_schema` derives a schema from the reference and saves it in the table
``evalstore.schemas`` (one row per model and feature: ``kind``, ``dtype``,
``nullable``, ``min``, ``max``, ``domain``, ``expected_missing``, ``inferred_at``,
``reference``). It is an ordinary table: edit it with SQL (widen a range, add a
category, set ``nullable``; a NULL entry disables its check) and :func:`validate`
uses the edited rows:

============= =========== =================================================================
method        kinds       value (fails when ...)
============= =========== =================================================================
missing       both        number of NULL values (> 0 when ``nullable`` is false)
missing_rate  both        share of NULL values (> ``expected_missing`` + ``tolerance``)
below_min     numeric     share of non-NULL values below ``min`` (> 0; -inf counts, NaN not)
above_max     numeric     share of non-NULL values above ``max`` (> 0; +inf counts, NaN not)
out_of_domain categorical share of non-NULL values not in ``domain`` (> 0)
type          both        1 if the stored column's type differs from ``dtype`` (every window)
============= =========== =================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.bounds import MAX_DOMAIN, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.macros import call
from evalstore.core.registry import time_range, to_timestamp
from evalstore.core.time_limits import VALUE_TABLES, check_window_count
from evalstore.core.values import covering_rows, feature_kinds
from evalstore.core.windows import (
    Reference,
    Selection,
    Window,
    check_reference,
    checked_window_args,
    drop_view,
    reference_args,
    resolve,
    restricted_view,
    value_views,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics import presets
from evalstore.metrics.specs import QUALITY_CHECKS, chosen_names, of_kind
from evalstore.metrics.specs import VALIDATION_CHECKS as VALIDATION_SPECS

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Model outputs that appear in the long-format views beside the features.
OUTPUTS = ("score", "prediction", "label")
#: The outputs each task defines, the ones quality checks: ``score`` is the positive-class
#: probability of a binary model and NULL by design for multiclass and regression models
#: (whose ``missing`` would otherwise be 1.0 in every window).
TASK_OUTPUTS = {
    "binary": ("score", "prediction", "label"),
    "multiclass": ("prediction", "label"),
    "regression": ("prediction", "label"),
}
#: Checks per feature kind (views of the registries in evalstore.metrics.specs).
NUMERIC_CHECKS = of_kind(QUALITY_CHECKS, "numeric")
CATEGORICAL_CHECKS = of_kind(QUALITY_CHECKS, "categorical")
VALIDATION_CHECKS = tuple(VALIDATION_SPECS)
#: What the shares out_of_range and unseen of :func:`quality` divide by (``denominator``).
DENOMINATORS = ("present", "rows")
#: Columns of :func:`quality` and :func:`validate` results, in order.
RESULT_COLUMNS = (
    "window_start", "window_end", "feature", "kind", "version", "method", "variant", "value",
    "p_value", "threshold", "threshold_source", "drifted", "n_reference", "n_analysis", "count",
    "reason",
)  # fmt: skip
#: Columns of ``evalstore.schemas``, in order.
SCHEMA_COLUMNS = (
    "model", "feature", "kind", "dtype", "nullable", "min", "max", "domain",
    "expected_missing", "inferred_at", "reference",
)  # fmt: skip
#: The schema table the Python API reads and writes.
SCHEMA_TABLE = "evalstore.schemas"


def quality(
    ctx: Context,
    model: str,
    reference: Reference = "training",
    window: Window = "1 day",
    features: Sequence[str] | None = None,
    version: str | None = None,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
    *,
    min_rows: int = 1,
    missing_tolerance: float = 0.05,
    max_nonfinite: int = 0,
    max_out_of_range: float = 0.01,
    max_unseen: float = 0.01,
    denominator: str = "present",
    preset: str | None = None,
) -> pa.Table:
    """Data quality of each feature (and of score, prediction and label) in each window.

    ``reference``, ``window``, ``version`` and ``where`` are those of
    :mod:`evalstore.core.windows` (as for drift); ``since``/``until`` bound the analysis
    rows' time. The checks and their thresholds are in the module docstring; the
    ``missing`` threshold is the reference's NULL share plus ``missing_tolerance``
    (the tolerance alone when the reference has no rows of the feature).

    Edge cases: an empty time window has ``rows`` = 0 and NULL shares with the
    ``reason`` 'no rows in the window'; ``out_of_range`` is NULL when the reference or
    the window has no finite value; ``unseen`` is NULL when either has no non-NULL
    value. A constant reference makes every other finite value out of range. A check
    whose value is NULL does not fail.

    ``denominator`` says what the shares ``out_of_range`` and ``unseen`` divide by:
    ``"present"`` (default) the window's finite (out_of_range) or non-NULL (unseen) values,
    ``"rows"`` every row of the window, NULLs included (NannyML's definition; the macro
    ``evalstore.share_over``), named in ``variant``. ``preset="nannyml"`` keeps the
    checks NannyML 0.13 has (missing, unseen, out_of_range) with its definitions
    (:data:`evalstore.metrics.presets.PRESETS`); ``variant`` starts with ``preset=nannyml;``.

    Returns one row per window, feature and check (columns :data:`RESULT_COLUMNS`) in
    window, feature, version, check order; ``count`` is the number of rows behind
    ``value``, ``p_value`` is always NULL.
    """
    checks, prefix, denominator, thresholds = checked_options(
        preset, denominator, min_rows, missing_tolerance, max_nonfinite, max_out_of_range,
        max_unseen, since, until,
    )  # fmt: skip
    con = ctx.connection
    # one transaction: every statement sees one snapshot
    with ctx.lock, transaction(con), Cleanup() as later:
        registration = ctx.registration(model, version)
        kinds = feature_kinds(con, model)
        chosen = _check_features(features, [*kinds, *_task_outputs(registration, features)])
        selection = resolve(con, reference, window, registration if version else None, since, until)
        check_reference(con, model, reference, selection)
        # quality lists the empty windows between since and until too
        check_window_count(
            con, model, VALUE_TABLES, selection, max_windows=ctx.limits.max_windows, filled=True
        )
        views = _views(con, model, where, version, list(kinds), features, chosen, later)
        marks = ", ".join("?" for _ in range(2 + len(selection.args()) + len(thresholds)))
        query = (
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM ({_OVER_SQL}) "
            "WHERE list_contains(?, feature) AND (? IS NULL OR list_contains(?, method)) "
            "ORDER BY window_start, feature, version NULLS FIRST, method"
        ).format(call=f"evalstore.quality({marks})")
        args = [prefix, denominator, denominator]
        args += [*views, *selection.args(), *thresholds, chosen, checks, checks]
        return call(con, query, args)


def checked_options(
    preset: str | None,
    denominator: str,
    min_rows: int,
    missing_tolerance: float,
    max_nonfinite: int,
    max_out_of_range: float,
    max_unseen: float,
    since: Any,
    until: Any,
) -> tuple[list[str] | None, str, str, list[Any]]:
    """:func:`quality`'s options checked (also :meth:`SparkEngine.quality`'s): the checks a
    preset keeps (None: all), the variant prefix, the denominator, and the thresholds in
    the macros' order (min_rows, missing_tolerance, max_nonfinite, max_out_of_range,
    max_unseen); raises :class:`InvalidParameterError` naming a bad one."""
    checks: list[str] | None = None
    prefix = ""
    if preset is not None:
        passes = presets.groups(preset, "quality", None, {"denominator": denominator}
                                if denominator != "present" else {})  # fmt: skip
        ((checks, options),) = passes
        denominator = options["denominator"]
        prefix = presets.variant_prefix(preset)
    if denominator not in DENOMINATORS:
        raise InvalidParameterError(
            f"denominator={denominator!r} is not one of {', '.join(DENOMINATORS)}: 'present' "
            "divides a share by the window's finite (non-NULL) values, 'rows' by all its rows"
        )
    thresholds = [
        _count(min_rows, "min_rows"),
        _share(missing_tolerance, "missing_tolerance"),
        _count(max_nonfinite, "max_nonfinite"),
        _share(max_out_of_range, "max_out_of_range"),
        _share(max_unseen, "max_unseen"),
    ]
    _check_range(since, until)
    return checks, prefix, denominator, thresholds


#: Shares of ``evalstore.quality`` (``{call}``) over the chosen denominator
#: (``evalstore.share_over``): value, drifted, variant and reason follow it. Parameters:
#: the variant prefix, then the denominator twice.
_OVER_SQL = """
    SELECT * REPLACE (
        ? || CASE WHEN ? <> 'rows' THEN variant
            WHEN method = 'unseen' THEN 'share of the window''s rows, NULLs included, whose '
                || 'value is a category absent from the reference'
            WHEN method = 'out_of_range' THEN 'share of the window''s rows, NULLs included, '
                || 'whose value is finite and outside the reference''s finite [min, max]'
            ELSE variant END AS variant,
        shared AS value,
        evalstore.check_failed(shared, threshold, method = 'rows') AS drifted,
        CASE WHEN shared IS NULL THEN reason END AS reason)
    FROM (SELECT *, evalstore.share_over(method, value, count, n_analysis, ?) AS shared
          FROM {call})
"""


def infer_schema(
    ctx: Context,
    model: str,
    reference: Reference = "training",
    version: str | None = None,
    features: Sequence[str] | None = None,
    *,
    max_domain: int | None = 1000,
) -> pa.Table:
    """Infer each feature's schema from the reference rows and save it.

    For every feature column (or only ``features``) of ``model``, from the rows of
    ``reference`` (``"training"``, ``"validation"``, ``{"dataset": tag}`` or a
    ``(start, end)`` range of serving rows; with ``version``, the dataset that version
    was trained/validated on): ``kind``, the column's ``dtype``, ``nullable`` (some
    value is NULL), ``min``/``max`` of the finite values (numeric), ``domain`` (sorted
    distinct values; NULL, i.e. unchecked, when there are more than ``max_domain``),
    ``expected_missing`` (the NULL share), ``inferred_at`` and a ``reference``
    description.

    The rows replace the model's rows in ``evalstore.schemas`` (only those of
    ``features`` when given) in one transaction. Edit the table with SQL to loosen or
    tighten the schema; :func:`validate` reads it. Raises
    :class:`InvalidParameterError` when the reference holds no rows (nothing is saved).
    Returns the saved rows (columns :data:`SCHEMA_COLUMNS`), by feature.
    """
    ctx.check_writable()
    if max_domain is not None:
        max_domain = bounded_int(
            max_domain, "max_domain", least=0, most=MAX_DOMAIN, hint="or max_domain=None"
        )
    con = ctx.connection
    with ctx.lock:
        registration = ctx.registration(model, version)
        ref = reference_args(reference, registration if version else None)
        if "previous" in ref:
            raise InvalidParameterError(
                "infer_schema needs a fixed reference ('training', 'validation', "
                "{'dataset': tag} or a (start, end) range), not {'previous': n}"
            )
        check_reference(con, model, reference, Selection(ref_dataset=ref.get("ref_dataset")))
        kinds = feature_kinds(con, model)
        if not kinds:
            raise InvalidParameterError(
                f"model {model!r} has no numeric or categorical feature columns yet; log "
                "features before inferring a schema"
            )
        chosen = _check_features(features, list(kinds))
        selection = Selection(**ref)
        columns = ", ".join(SCHEMA_COLUMNS)
        with transaction(con):
            con.execute(
                f"DELETE FROM {SCHEMA_TABLE} WHERE model = ? AND list_contains(?, feature)",
                [model, chosen],
            )
            con.execute(
                f"INSERT INTO {SCHEMA_TABLE} ({columns}) SELECT {columns} "
                "FROM evalstore.infer_schema(?, ?, ?, ?, ?, ?, ?, ?) "
                "WHERE list_contains(?, feature)",
                [
                    model, f"{model}.numeric_values", f"{model}.category_values",
                    selection.ref_env, selection.ref_dataset, selection.ref_start,
                    selection.ref_end, max_domain, chosen,
                ],
            )  # fmt: skip
            saved = con.execute(
                f"SELECT count(*) FROM {SCHEMA_TABLE} WHERE model = ? "
                "AND list_contains(?, feature)",
                [model, chosen],
            ).fetchall()[0][0]
            if not saved:
                raise InvalidParameterError(
                    f"the reference ({selection.describe_reference()}) holds no rows of model "
                    f"{model!r}; log them first or choose another reference"
                )
        return call(
            con,
            f"SELECT {columns} FROM {SCHEMA_TABLE} WHERE model = ? "
            "AND list_contains(?, feature) ORDER BY feature",
            [model, chosen],
        )


def saved_schema(ctx: Context, model: str) -> pa.Table:
    """The rows of ``evalstore.schemas`` for ``model`` (columns :data:`SCHEMA_COLUMNS`).

    Empty when no schema was saved; raises :class:`UnknownModelError` for an
    unregistered model.
    """
    with ctx.lock:
        ctx.registration(model)
        return call(
            ctx.connection,
            f"SELECT {', '.join(SCHEMA_COLUMNS)} FROM {SCHEMA_TABLE} WHERE model = ? "
            "ORDER BY feature",
            [model],
        )


def validate(
    ctx: Context,
    model: str,
    window: Window = "1 day",
    features: Sequence[str] | None = None,
    version: str | None = None,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
    *,
    tolerance: float = 0.05,
) -> pa.Table:
    """Check each window of serving rows against the model's saved schema.

    The schema is the model's rows of ``evalstore.schemas`` (see :func:`infer_schema`),
    as edited. The checks are in the module docstring; ``tolerance`` is added to each
    feature's ``expected_missing`` before comparing the window's NULL share. ``window``,
    ``version``, ``where``, ``since`` and ``until`` select the analysis rows as for
    :func:`quality`. Every window lists every feature of the schema (``n_analysis`` = 0
    where the feature has no rows); a NULL entry of the schema disables its check, and
    a check whose value is NULL does not fail. Features not in the schema are not
    checked.

    Raises :class:`InvalidParameterError` when the model has no saved schema. Returns
    one row per window, feature and check (columns :data:`RESULT_COLUMNS`), with
    ``drifted`` True for a violation; ``n_reference`` and ``p_value`` are NULL.
    """
    tolerance = _share(tolerance, "tolerance")
    _check_range(since, until)
    con = ctx.connection
    with ctx.lock, transaction(con), Cleanup() as later:
        ctx.registration(model, version)
        kinds = feature_kinds(con, model)
        saved = [
            row[0]
            for row in con.execute(
                f"SELECT feature FROM {SCHEMA_TABLE} WHERE model = ? ORDER BY feature", [model]
            ).fetchall()
        ]
        if not saved:
            raise InvalidParameterError(
                f"model {model!r} has no saved schema; call infer_schema (store.infer_schema"
                f"({model!r})) first, or insert its rows into {SCHEMA_TABLE}"
            )
        chosen = _check_features(features, saved, what="features of the saved schema")
        windows = checked_window_args(con, window)
        selection = Selection(
            **windows, ana_start=to_timestamp(since, "since"), ana_end=to_timestamp(until, "until")
        )
        check_window_count(  # validate lists the empty windows too
            con, model, VALUE_TABLES, selection, max_windows=ctx.limits.max_windows, filled=True
        )
        views = value_views(con, model, where, version, list(kinds), later)
        analysis = [
            selection.ana_env, selection.ana_dataset, selection.ana_start, selection.ana_end,
            selection.width, selection.chunk_rows, selection.chunks,
        ]  # fmt: skip
        marks = ", ".join("?" for _ in range(4 + len(analysis) + 1))
        query = (
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM evalstore.validate({marks}) "
            "WHERE list_contains(?, feature) ORDER BY window_start, feature, method"
        )
        args = [model, SCHEMA_TABLE, *views, *analysis, tolerance, chosen]
        return call(con, query, args)


# ---------------------------------------------------------------------- helpers


def _views(
    con: duckdb.DuckDBPyConnection,
    model: str,
    where: str | None,
    version: str | None,
    columns: list[str],
    features: Sequence[str] | None,
    chosen: list[str],
    later: Cleanup,
) -> tuple[str, str]:
    """The numeric and categorical long-format relations :func:`quality` reads: the
    model's whole views, or with ``features`` given only the chosen features' and
    outputs' rows and those that keep the whole views' window list
    (:func:`evalstore.core.values.covering_rows`; the other features' results are
    dropped by the caller's filter). A call over 5 of 25 features then reads about
    a fifth of the values, with the same rows for the chosen ones."""
    if features is None:
        return value_views(con, model, where, version, columns, later)
    views = []
    for value_type in ("DOUBLE", "VARCHAR"):
        rows = covering_rows(con, model, value_type, chosen)
        views.append(restricted_view(con, model, "", where, version, columns, rows))
        later.add(drop_view, con, views[-1])
    return views[0], views[1]


def _task_outputs(registration: Mapping[str, Any], features: Sequence[str] | None) -> tuple:
    """The outputs :func:`quality` checks for the model's task; asking for ``score`` of a
    model without one is an error saying why."""
    task = registration["task"]
    outputs = TASK_OUTPUTS[task]
    asked = [features] if isinstance(features, str) else list(features or [])
    if "score" in asked and "score" not in outputs:
        raise InvalidParameterError(
            f"features={asked!r}: a {task} model has no score (it is the positive-class "
            "probability of binary models, NULL by design here); check 'prediction' or "
            "'label' instead"
        )
    return outputs


def _check_features(
    features: Sequence[str] | None, available: Sequence[str], what: str = "analysable columns"
) -> list[str]:
    problem = f"not among the {what} of this model; known: {', '.join(available) or '(none)'}"
    return chosen_names(features, available, "features", problem)


def _count(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidParameterError(f"{name}={value!r} must be a non-negative int")
    return value


def _share(value: object, name: str) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidParameterError(f"{name}={value!r} must be a finite number >= 0")
    return float(value)


def _check_range(since: Any, until: Any) -> None:
    time_range(since, until)
