"""The model registry: validation of model versions and their rows in ``evalstore.models``.

Class labels are stored as text in one canonical form, the one DuckDB's
``CAST(x AS VARCHAR)`` gives, so labels and predictions logged as ints, bools or
strings compare equal to the registered classes: ``1 -> '1'``, ``True -> 'true'``.

>>> canonical_class(True), canonical_class(1), canonical_class("yes")
('true', '1', 'yes')
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from evalstore.core.layout import TASKS
from evalstore.errors import InvalidParameterError

#: Registry columns a caller may set, in table order after model, version, task.
FIELDS = (
    "classes",
    "positive_class",
    "threshold",
    "created_at",
    "trained_at",
    "deployed_at",
    "retired_at",
    "stage",
    "training_dataset",
    "validation_dataset",
    "params",
    "dependencies",
    "notes",
)
DEFAULT_BINARY_CLASSES = ("0", "1")
DEFAULT_THRESHOLD = 0.5


def canonical_class(value: object, parameter: str = "classes") -> str:
    """Return the canonical text of a class label (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, str) and value:
        return value
    raise InvalidParameterError(
        f"{parameter}: class label {value!r} must be a non-empty string, an int or a bool"
    )


def to_timestamp(value: object, parameter: str) -> datetime | None:
    """Accept a datetime, date or ISO-8601 text; naive times are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as error:
            raise InvalidParameterError(
                f"{parameter}={value!r} is not an ISO-8601 time such as '2026-11-01T12:00:00Z'"
            ) from error
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise InvalidParameterError(f"{parameter}={value!r} must be a datetime or ISO-8601 text")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def time_range(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` as UTC times (:func:`to_timestamp`); either may be None, and
    when both are given ``since`` must be earlier."""
    start, end = to_timestamp(since, "since"), to_timestamp(until, "until")
    if start is not None and end is not None and start >= end:
        raise InvalidParameterError(f"since={since!r} must be earlier than until={until!r}")
    return start, end


def _json(value: object, parameter: str, string_values: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidParameterError(f"{parameter} must be a dict, not {type(value).__name__}")
    if string_values and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidParameterError(
            f"{parameter} must map package names to version strings, e.g. {{'numpy': '2.1.0'}}"
        )
    return json.dumps(value, default=str, sort_keys=True)


def _text(value: object, parameter: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidParameterError(f"{parameter}={value!r} must be a string or None")
    return value


def build_row(
    model: str,
    version: str,
    task: str,
    *,
    classes: Sequence[object] | None = None,
    positive_class: object = None,
    threshold: float | None = None,
    trained_at: object = None,
    deployed_at: object = None,
    retired_at: object = None,
    stage: str | None = None,
    training_dataset: str | None = None,
    validation_dataset: str | None = None,
    params: Mapping[str, Any] | None = None,
    dependencies: Mapping[str, str] | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Validate a registration and return the ``evalstore.models`` row it becomes."""
    if not isinstance(version, str) or not version:
        raise InvalidParameterError(f"version={version!r} must be a non-empty string")
    if task not in TASKS:
        raise InvalidParameterError(f"task={task!r} is not one of {', '.join(TASKS)}")
    if classes is not None and (isinstance(classes, str) or not isinstance(classes, Sequence)):
        raise InvalidParameterError("classes must be a list of class labels, e.g. [0, 1]")
    canon = [canonical_class(c) for c in classes] if classes is not None else None
    if canon is not None and len(set(canon)) != len(canon):
        raise InvalidParameterError(f"classes={list(classes)!r} repeats a class")
    positive = (
        canonical_class(positive_class, "positive_class") if positive_class is not None else None
    )

    if task == "regression":
        if canon is not None or positive is not None or threshold is not None:
            raise InvalidParameterError(
                "classes, positive_class and threshold apply to classification tasks, "
                "not to task='regression'"
            )
    elif task == "binary":
        canon = canon or list(DEFAULT_BINARY_CLASSES)
        if len(canon) != 2:
            raise InvalidParameterError(
                f"task='binary' needs exactly two classes, got classes={list(classes)!r}"
            )
        positive = positive or canon[1]
        if positive not in canon:
            raise InvalidParameterError(
                f"positive_class={positive_class!r} is not one of classes={canon!r}"
            )
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, numbers.Real)
            or not 0 <= float(threshold) <= 1
        ):
            raise InvalidParameterError(f"threshold={threshold!r} must be a number in [0, 1]")
        threshold = float(threshold)
    else:
        if positive is not None or threshold is not None:
            raise InvalidParameterError(
                "positive_class and threshold apply to task='binary', not to 'multiclass'"
            )
        if canon is not None and len(canon) < 2:
            raise InvalidParameterError("task='multiclass' needs at least two classes")
    return {
        "model": model,
        "version": version,
        "task": task,
        "classes": canon,
        "positive_class": positive,
        "threshold": threshold,
        "created_at": datetime.now(UTC),
        "trained_at": to_timestamp(trained_at, "trained_at"),
        "deployed_at": to_timestamp(deployed_at, "deployed_at"),
        "retired_at": to_timestamp(retired_at, "retired_at"),
        "stage": _text(stage, "stage"),
        "training_dataset": _text(training_dataset, "training_dataset"),
        "validation_dataset": _text(validation_dataset, "validation_dataset"),
        "params": _json(params, "params"),
        "dependencies": _json(dependencies, "dependencies", string_values=True),
        "notes": _text(notes, "notes"),
    }


def same_definition(stored: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two registry rows agree on everything but their creation time."""

    def normal(row: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: row[k] for k in ("task", "classes", "positive_class", "threshold", *FIELDS[4:])}
        for key in ("params", "dependencies"):
            out[key] = json.loads(out[key]) if isinstance(out[key], str) else out[key]
        out["classes"] = list(out["classes"]) if out["classes"] is not None else None
        return out

    return normal(stored) == normal(new)
