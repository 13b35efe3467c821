"""Skew monitors: training/serving skew per window of serving time, as series a rule judges.

A monitor of family ``skew`` watches one figure of
:func:`evalstore.metrics.skew.skew_windows` per feature: the examples logged in both
training and serving (same ``example_id``) are compared feature by feature, and each pair
is counted in the window holding its *serving* row's time (``ts``), so a window's value
says how many of the examples served in it were computed differently online than in the
training pipeline. Metrics (:data:`METRICS`):

================== ===================================================================
``share_mismatch`` mismatching pairs / pairs compared in the window (a share of rows:
                   ``unsupervised`` ``method='share'`` applies)
``n_mismatch``     mismatching pairs
``n_null_mismatch`` pairs with exactly one side NULL
``max_abs_diff``   largest |serving - training| of a numeric value mismatch (numeric
                   features only; NaN when the window has none)
================== ===================================================================

A window's ``n`` (what ``min_rows`` counts) is its pairs compared. Windows without a pair
of the feature have no value (no verdict). ``options`` takes the comparison's
``tolerance``, ``rtol`` and ``equal_nan`` (defaults numpy's ``isclose``, NaN matching NaN)
and ``since``; ``version`` compares the training rows of that version's registered
dataset with the serving examples it predicted; ``where`` keeps the pairs whose training
and serving rows both meet it. No ``reference``: the reference of a pair is the same
example's training row.

Like health, skew is **computed fresh on every run** (the metric history persists the
drift, quality and performance families): its cost is one join of the serving rows with
the training rows on the example id, so a monitor on a large store should set ``since``
(or ``where``) to keep the analysed period short. A backtest computes the same series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from evalstore.metrics.skew import skew_windows
from evalstore.monitors.series_split import by_subject

if TYPE_CHECKING:
    from evalstore.core.context import Context
    from evalstore.monitors.definitions import Monitor
    from evalstore.monitors.verdicts import Series

#: Figures of :func:`evalstore.metrics.skew.skew_windows` a skew monitor may watch.
METRICS = ("share_mismatch", "n_mismatch", "n_null_mismatch", "max_abs_diff")
#: Metrics of numeric features only.
NUMERIC_ONLY = ("max_abs_diff",)


def skew_series(ctx: Context, monitor: Monitor) -> list[tuple[str, Series]]:
    """The series of ``monitor`` (family ``skew``) per feature, oldest window first;
    features in order of first window, then name. Writes nothing."""
    table = skew_windows(ctx, monitor.model, **monitor.call_arguments())
    return split(table, monitor.metric)


def split(table: pa.Table, metric: str) -> list[tuple[str, Series]]:
    """A :func:`~evalstore.metrics.skew.skew_windows` table cut into one series of
    ``metric`` per feature (in first-seen order); NULL values become NaN."""
    return by_subject(table, table.column("feature").to_pylist(), metric, "n_compared")
