"""The options of binary performance's confusion-matrix cells and business value.

``store.performance(metrics=["tp", "fp", "fn", "tn", "business_value"], ...)`` (and
``worst_slices(metric="business_value")``) take ``normalize_confusion_matrix``,
``business_value_matrix`` and ``normalize_business_value``; this module checks them
before any SQL runs (their definitions: :mod:`evalstore.metrics.performance` and
``sql/performance_binary.sql``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evalstore.errors import InvalidParameterError

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
