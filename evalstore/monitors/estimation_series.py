"""Estimated-performance monitors: a metric estimated before labels arrive, per window.

A monitor of family ``estimated_performance`` watches one metric of
:func:`evalstore.metrics.estimation.estimate.estimate_performance` (CBPE for binary and
multiclass models, DLE for regression): its ``metric`` is one of
:data:`~evalstore.metrics.estimation.estimate.ESTIMATED_METRICS` for the model's task
(``roc_auc``, ``f1``, ``accuracy``... or the expected confusion counts ``tp``, ``fp``,
``fn``, ``tn`` for binary models; ``macro_f1``, per-class ``precision`` ... for multiclass
ones; ``mae``, ``mse``, ``rmse`` for regression). Its subjects are the model's versions (or
``'*'``): a window's value is the **estimate** (the result's ``value``), and its ``n``
(what ``min_rows`` counts) the window's scored predictions, labeled or not (the result's
``n``). With ``by`` in ``options`` a subject is ``"v1 | region=north"``; a per-class metric's
is ``"v1 | class=a"``, as for performance monitors.

``reference`` is the estimate's labeled reference (default ``'training'``; a
``(start, end)`` range of labeled serving predictions for stores that, like the demo, log
predictions for serving traffic only); ``options`` takes the other keyword parameters of
``estimate_performance`` (``method``, ``calibration``, ``reference_chunks``, ``threshold``,
``confidence``, ``by``, ``bins``, ``edges``, ``as_of``, ``delay_quantile``, ``since``). A
reference that holds no labeled prediction of any version is refused when the monitor is
defined (the family's own check, in the definition's dry call).

The estimate needs no labels, so its windows are never ``pending``: a window is judged as
soon as it holds predictions, days before ``performance`` can judge it. A ``learned`` rule
learns mean ± k sd over the monitor's own windows in ``learn_period`` (with a serving-range
reference, pass the same range: the band is then learned on the reference's windows); the
estimate's own ``threshold_low``/``threshold_high`` (learned on ``reference_chunks``
chunks of the whole reference) stay in ``store.estimate_performance``'s table.

Like skew and summary statistics, the series is **computed fresh on every run** and in
backtests (the metric history persists the drift, quality and performance families): a
run fits the calibration (CBPE) or the loss models (DLE) on the reference again. So that a
run's cost does not grow with the store's history, a monitor whose options give no
``since`` analyses the last
:data:`DEFAULT_LOOKBACK_DAYS` (90) days of predictions: ``since`` is the start of the
window holding the model's latest prediction time minus 90 days (earlier when a
``learned`` rule's ``learn_period`` starts before it). Backtests see the same bounded
series; pass ``since`` in ``options`` to analyse more (or less).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.windows import window_args
from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation.estimate import ESTIMATED_METRICS, estimate_performance
from evalstore.monitors.series_split import by_subject

if TYPE_CHECKING:
    from evalstore.core.context import Context
    from evalstore.monitors.definitions import Monitor
    from evalstore.monitors.verdicts import Series

#: Days of predictions a monitor analyses when its options give no ``since`` (time
#: windows only; see the module docstring).
DEFAULT_LOOKBACK_DAYS = 90


def check_metric(ctx: Context, model: str, metric: Any) -> str:
    """``metric`` if the model's task has an estimate of it, else InvalidParameterError
    listing the task's estimated metrics."""
    task = ctx.registration(model)["task"]
    available = ESTIMATED_METRICS[task]
    if metric not in available:
        raise InvalidParameterError(
            f"metric={metric!r} is not estimated for a {task} model; choose from "
            f"{', '.join(available)}"
        )
    return metric


def estimation_series(ctx: Context, monitor: Monitor) -> list[tuple[str, Series]]:
    """The series of ``monitor`` (family ``estimated_performance``) per subject, oldest
    window first; subjects in first-seen order. Writes nothing."""
    table = estimate_performance(ctx, monitor.model, **call_arguments(ctx, monitor))
    return split(table, monitor.metric, monitor.subjects)


def call_arguments(ctx: Context, monitor: Monitor) -> dict[str, Any]:
    """``monitor.call_arguments()`` with the default ``since`` (the module docstring)
    when the options give none (a monitor's window is a time width)."""
    arguments = monitor.call_arguments()
    if arguments.get("since") is not None:
        return arguments
    width = window_args(arguments["window"]).get("width")
    if width is None:
        return arguments
    con = ctx.connection
    learn = monitor.learn_period[0] if monitor.learn_period else None
    rows = con.execute(
        f"""
        SELECT evalstore.bucket_start(evalstore.bucket_index(
                   least(max(p.ts) - INTERVAL (?) DAY, CAST(? AS TIMESTAMPTZ)), ?), ?)
        FROM {schema_prefix(con, monitor.model)}{quote("predictions")} AS p
        """,
        [DEFAULT_LOOKBACK_DAYS, learn, width, width],
    ).fetchall()
    if rows and rows[0][0] is not None:
        arguments["since"] = rows[0][0]
    return arguments


def subjects_of(table: pa.Table) -> list[str]:
    """The subject of every row of an ``estimate_performance`` table: the version, then
    ``' | '`` and the slice (the ``by`` columns, between ``version`` and ``metric``), then
    ``' | class=c'`` for a per-class metric."""
    names = table.schema.names
    slices = names[names.index("version") + 1 : names.index("metric")]
    cells = {s: table.column(s).to_pylist() for s in slices}
    classes = table.column("class").to_pylist()
    texts = []
    for i, version in enumerate(table.column("version").to_pylist()):
        parts = [str(version)]
        if slices:
            parts.append(", ".join(f"{s}={cells[s][i]}" for s in slices))
        if classes[i] is not None:
            parts.append(f"class={classes[i]}")
        texts.append(" | ".join(parts))
    return texts


def split(
    table: pa.Table, metric: str, versions: Sequence[str] | None = None
) -> list[tuple[str, Series]]:
    """An ``estimate_performance`` table cut into one series of ``metric`` per subject
    (:func:`subjects_of`), keeping the rows of ``versions`` (None: every version); a
    NULL estimate (a version without reference rows) becomes NaN."""
    table = table.filter(pc.equal(table.column("metric"), metric))
    if versions is not None:
        table = table.filter(pc.is_in(table.column("version"), pa.array(list(versions))))
    return by_subject(table, subjects_of(table))
