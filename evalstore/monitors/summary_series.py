"""Summary-statistics monitors: one statistic of a feature per window, as series a rule judges.

A monitor of family ``summary_stats`` watches one statistic of
:func:`evalstore.metrics.summary.summary_stats` (its ``metric``: ``count``, ``mean``,
``median``, ``sd``, ``min``, ``max``, ``sum``, or a quantile ``q<level>`` such as ``q0.95``)
for each of its subjects, the features (and the outputs ``score``, ``prediction``,
``label``; ``count`` only for categorical ones). A model output has one series per version:
its subject is ``<feature>@<version>``. A window's ``n`` (what ``min_rows`` counts) is the
values behind the statistic (the rows for ``count``).

The monitor's rule judges the values: a ``learned`` rule with a ``learn_period`` learns
mean ± k sd of the statistic over the monitor's own windows in that period (NannyML's
summary-statistics alert, on serving windows), a ``fixed`` or ``range`` rule a given limit.
(``store.summary_stats`` itself also reports a range learned on reference chunks.)
``reference`` and ``options`` (``learn_chunks``, ``k``, ``since``) are those of the call.
Like skew, the series is **computed fresh on every run** (the metric history persists the
drift, quality and performance families); set ``since`` to bound the analysed period.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.errors import InvalidParameterError
from evalstore.metrics import summary
from evalstore.monitors.series_split import by_subject

if TYPE_CHECKING:
    from evalstore.core.context import Context
    from evalstore.monitors.definitions import Monitor
    from evalstore.monitors.verdicts import Series

#: Statistics a monitor may watch besides the quantiles ``q<level>``.
METRICS = tuple(s for s in summary.STATS if s != "quantile")
_QUANTILE = re.compile(r"^q(0(\.\d+)?|1(\.0+)?)$")


def check_metric(metric: Any) -> str:
    """``metric`` if it is a statistic of :data:`METRICS` or ``q<level>`` with a level in
    [0, 1], else InvalidParameterError listing them."""
    if isinstance(metric, str) and (metric in METRICS or _QUANTILE.match(metric)):
        return metric
    raise InvalidParameterError(
        f"metric={metric!r} is not a summary statistic; choose from {', '.join(METRICS)} or a "
        "quantile q<level> such as q0.95"
    )


def stat_arguments(metric: str) -> dict[str, Any]:
    """The ``stats`` (and ``quantiles``) arguments of ``store.summary_stats`` for ``metric``."""
    if metric in METRICS:
        return {"stats": [metric]}
    return {"stats": ["quantile"], "quantiles": [float(metric[1:])]}


def summary_series(ctx: Context, monitor: Monitor) -> list[tuple[str, Series]]:
    """The series of ``monitor`` (family ``summary_stats``) per subject, oldest window
    first; subjects in order of first window, then name. Writes nothing."""
    table = summary.summary_stats(ctx, monitor.model, **monitor.call_arguments())
    return split(table)


def split(table: pa.Table) -> list[tuple[str, Series]]:
    """A one-statistic :func:`~evalstore.metrics.summary.summary_stats` table cut into one
    series per (feature, version); NULL values become NaN."""
    features = table.column("feature").to_pylist()
    versions = table.column("version").to_pylist()
    names = [f if v is None else f"{f}@{v}" for f, v in zip(features, versions, strict=True)]
    return by_subject(table, names)
