"""The options of ``store.performance`` (and of ``SparkEngine.performance``), checked
before any SQL runs: the metric names of each task, the decision threshold, the interval
fractions, the bounded counts, the time range, and binary performance's confusion-matrix
cells and business value.

``store.performance(metrics=["tp", "fp", "fn", "tn", "business_value"], ...)`` (and
``worst_slices(metric="business_value")``) take ``normalize_confusion_matrix``,
``business_value_matrix`` and ``normalize_business_value`` (their definitions:
:mod:`evalstore.metrics.performance` and ``sql/performance_binary.sql``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, NamedTuple

from evalstore.core.bounds import MAX_BINS, MAX_BOOTSTRAP, MAX_SLICE_BINS, bounded_int
from evalstore.core.registry import time_range, to_timestamp
from evalstore.errors import InvalidParameterError
from evalstore.metrics.specs import PERFORMANCE_METRICS, TASKS, chosen_names, task_metrics

#: Metrics of each task, in result order (from the registry evalstore.metrics.specs).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    task: task_metrics(PERFORMANCE_METRICS, task) for task in TASKS
}
#: Metrics of each task that ``metrics=None`` computes (the others are asked for by name).
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    task: tuple(m for m in names if PERFORMANCE_METRICS[m].default)
    for task, names in TASK_METRICS.items()
}

#: ``normalize_confusion_matrix`` values: counts (None) or shares of all rows, of the
#: true class, of the predicted class (sklearn's ``confusion_matrix(normalize=...)``).
CONFUSION_NORMALIZATIONS = (None, "all", "true", "pred")


def check_confusion_options(
    chosen: Sequence[str],
    task: str,
    normalize_confusion_matrix: Any,
    business_value_matrix: Any,
    normalize_business_value: Any,
) -> list[Any]:
    """``[normalize_confusion_matrix, business_value_matrix (2 x 2 floats),
    normalize_business_value]`` for the macro, checked."""
    given = {
        "normalize_confusion_matrix": normalize_confusion_matrix,
        "business_value_matrix": business_value_matrix,
        "normalize_business_value": normalize_business_value,
    }
    if task != "binary":
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise InvalidParameterError(
                f"{named[0]} applies to binary models (metrics tp, fp, fn, tn, "
                f"business_value), not to a {task} model"
            )
        return [None, None, None]
    if normalize_confusion_matrix not in CONFUSION_NORMALIZATIONS:
        raise InvalidParameterError(
            f"normalize_confusion_matrix={normalize_confusion_matrix!r} must be None (counts), "
            "'all', 'true' or 'pred' (as sklearn's confusion_matrix(normalize=...))"
        )
    if normalize_business_value not in (None, "per_prediction"):
        raise InvalidParameterError(
            f"normalize_business_value={normalize_business_value!r} must be None (the total "
            "value) or 'per_prediction' (the total / n)"
        )
    matrix = None
    if business_value_matrix is not None:
        matrix = value_matrix(business_value_matrix)
    elif "business_value" in chosen:
        raise InvalidParameterError(
            "metric business_value needs business_value_matrix=[[tn_value, fp_value], "
            "[fn_value, tp_value]] (NannyML's layout: rows the true class 0, 1; columns the "
            "decision 0, 1)"
        )
    return [normalize_confusion_matrix, matrix, normalize_business_value]


def value_matrix(matrix: Any, name: str = "business_value_matrix") -> list[list[float]]:
    """``matrix`` as a 2 x 2 list of finite floats ``[[tn, fp], [fn, tp]]``, or
    InvalidParameterError naming ``name``."""
    rows = list(matrix) if isinstance(matrix, Sequence) and not isinstance(matrix, str) else []
    cells = [
        list(row) if isinstance(row, Sequence) and not isinstance(row, str) else [] for row in rows
    ]
    ok = (
        len(cells) == 2
        and all(len(row) == 2 for row in cells)
        and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for row in cells
            for v in row
        )
    )
    if not ok:
        raise InvalidParameterError(
            f"{name}={matrix!r} must be a 2 x 2 list of finite numbers [[tn_value, "
            "fp_value], [fn_value, tp_value]]"
        )
    return [[float(v) for v in row] for row in cells]


def check_metrics(metrics: Sequence[str] | str | None, task: str) -> list[str]:
    """The metric names asked for (``None``: the task's defaults), each checked against
    the task's metrics."""
    available = TASK_METRICS[task]
    problem = f"not available for a {task} model; choose from {', '.join(available)}"
    if metrics is None:
        return list(DEFAULT_METRICS[task])
    return chosen_names(metrics, available, "metrics", problem)


def check_threshold(threshold: Any, task: str) -> float | None:
    """``threshold`` as a float in [0, 1] (binary models only), or None."""
    if threshold is None:
        return None
    if task != "binary":
        raise InvalidParameterError(f"threshold applies to binary models, not to a {task} model")
    if (
        not isinstance(threshold, int | float)
        or isinstance(threshold, bool)
        or not 0 <= threshold <= 1
    ):
        raise InvalidParameterError(f"threshold={threshold!r} must be a number in [0, 1]")
    return float(threshold)


def fraction(value: Any, name: str, open_ends: bool = False) -> float:
    """``value`` as a float in [0, 1] (in (0, 1) with ``open_ends``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = 0 < value < 1 if open_ends else 0 <= value <= 1
    if not ok:
        interval = "(0, 1)" if open_ends else "[0, 1]"
        raise InvalidParameterError(f"{name}={value!r} must be a number in {interval}")
    return float(value)


class Options(NamedTuple):
    """``store.performance``'s checked options (what :func:`checked_options` returns)."""

    metrics: list[str]
    threshold: float | None
    confusion: list[Any]
    z: float
    delay_quantile: float
    ece_bins: int
    bins: int
    n_boot: int
    start: Any
    end: Any
    clock: Any


def checked_options(
    task: str,
    metrics: Sequence[str] | str | None,
    threshold: Any,
    confidence: float,
    delay_quantile: float,
    ece_bins: int,
    bins: int,
    n_boot: int,
    seed: int,
    since: Any,
    until: Any,
    as_of: Any,
    normalize_confusion_matrix: Any,
    business_value_matrix: Any,
    normalize_business_value: Any,
) -> Options:
    """Every option of ``store.performance`` for a ``task`` model checked, each bad one an
    :class:`InvalidParameterError` naming it; ``z`` is the normal quantile of
    ``confidence``, ``start``/``end`` the checked time range, ``clock`` ``as_of``."""
    chosen = check_metrics(metrics, task)
    checked_threshold = check_threshold(threshold, task)
    confusion = check_confusion_options(
        chosen, task, normalize_confusion_matrix, business_value_matrix,
        normalize_business_value,
    )  # fmt: skip
    z = NormalDist().inv_cdf(0.5 + fraction(confidence, "confidence", open_ends=True) / 2)
    quantile = fraction(delay_quantile, "delay_quantile")
    ece_bins = bounded_int(ece_bins, "ece_bins", most=MAX_BINS)
    bins = bounded_int(bins, "bins", most=MAX_SLICE_BINS, hint="pass edges= for finer slices")
    n_boot = bounded_int(n_boot, "n_boot", least=0, most=MAX_BOOTSTRAP)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidParameterError(f"seed={seed!r} must be a non-negative int")
    start, end = time_range(since, until)
    return Options(
        chosen, checked_threshold, confusion, z, quantile, ece_bins, bins, n_boot, start, end,
        to_timestamp(as_of, "as_of"),
    )  # fmt: skip
