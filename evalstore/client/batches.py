"""Turning buffered records into Arrow batches, one per store call.

The caller's thread only appends tuples (records) to the buffer; this module runs on the
flusher thread. Records are grouped so that each group is one valid ``log_*`` call:

* a prediction record gives a ``predictions`` row, grouped by (model, version, the Python
  type of ``prediction``, whether ``score`` and ``latency_ms`` were given), and, when it has
  features, a ``features`` row in env ``serving``;
* a features record gives a ``features`` row, grouped by (model, env, feature names in order);
* a label record gives a ``labels`` row, grouped by (model, source, the type of ``label``);
* a table given to a batch form (``log_predictions``, ``log_labels``, ``log_features_batch``)
  is a batch of its own, sent as given.

Grouping by the value types keeps each Arrow column of one type (a group mixing ``1`` and
``"yes"`` would not convert); a group whose predictions are all ``None`` leaves the
``prediction`` column out, so a binary model derives it from the score and its threshold.
Times are kept as integer microseconds since the Unix epoch (UTC) and sent as
``timestamp[us, tz=UTC]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from evalstore.errors import InvalidParameterError, ValidationError

#: Record kinds (the first field of a buffered tuple).
PREDICTION, FEATURES, LABEL, TABLE = "p", "f", "l", "t"
TIMESTAMP = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Batch:
    """One store call to make: ``kind`` (features, predictions, labels) of ``model``.

    ``options`` are the keyword arguments of the ``Store.log_*`` call (the query parameters
    of the HTTP route); ``members`` the positions, in the drained chunk, of the records the
    batch carries; ``key`` its batch key, drawn once and kept across retries.
    """

    kind: str
    model: str
    table: pa.Table
    options: dict[str, Any]
    members: list[int]
    key: str = ""
    attempts: int = 0
    receipt: Any = field(default=None, repr=False)


def timestamp_us(ts: Any, parameter: str = "ts") -> int:
    """Microseconds since the Unix epoch of ``ts``: a ``datetime`` (naive means UTC), an
    ISO-8601 string, or a number of seconds since the epoch (``time.time()``).

    >>> timestamp_us("2026-11-01T10:00:00Z")
    1793527200000000
    >>> timestamp_us(datetime(2026, 11, 1, 10))
    1793527200000000
    """
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError as error:
            raise InvalidParameterError(
                f"{parameter}={ts!r} is not an ISO-8601 time: pass a datetime, an ISO-8601 "
                "string such as '2026-11-01T10:00:00Z', or seconds since the epoch"
            ) from error
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return (ts - _EPOCH) // _MICROSECOND
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return round(ts * 1_000_000)
    raise InvalidParameterError(
        f"{parameter} must be a datetime, an ISO-8601 string or seconds since the epoch, "
        f"not {type(ts).__name__}"
    )


def weight(record: tuple) -> int:
    """The number of examples a buffered record holds: a table's rows, else 1."""
    return record[1] if record[0] == TABLE else 1


def build(records: Sequence[tuple]) -> tuple[list[Batch], list[tuple[list[int], Exception]]]:
    """The batches for a drained chunk of ``records``, and the groups that could not be
    built (their members and the error: a feature column mixing types, say)."""
    groups: dict[tuple, list[int]] = {}
    batches: list[Batch] = []
    for position, record in enumerate(records):
        kind = record[0]
        if kind == PREDICTION:
            _, model, version, _id, features, prediction, score, latency, _ts = record
            if features:
                key = ("features", model, "serving", tuple(features))
                groups.setdefault(key, []).append(position)
            key = (
                "predictions",
                model,
                version,
                type(prediction),
                score is not None,
                latency is not None,
            )
            groups.setdefault(key, []).append(position)
        elif kind == FEATURES:
            _, model, _id, features, _ts, env = record
            groups.setdefault(("features", model, env, tuple(features)), []).append(position)
        elif kind == LABEL:
            _, model, _id, label, _ts, source = record
            groups.setdefault(("labels", model, source, type(label)), []).append(position)
        else:
            _, _rows, table_kind, model, table, options = record
            batches.append(Batch(table_kind, model, table, options, [position]))
    failed: list[tuple[list[int], Exception]] = []
    for key, members in groups.items():
        try:
            batches.append(_group_batch(key, [records[i] for i in members], members))
        except (ValidationError, pa.ArrowException, TypeError, ValueError) as error:
            failed.append((members, error))
    return batches, failed


def _group_batch(key: tuple, records: list[tuple], members: list[int]) -> Batch:
    kind, model = key[0], key[1]
    if kind == "predictions":
        _, _, version, prediction_type, has_score, has_latency = key
        columns = {
            "example_id": _ids([r[3] for r in records]),
            "ts": pa.array([r[8] for r in records], TIMESTAMP),
        }
        if prediction_type is not type(None):
            columns["prediction"] = _column("prediction", [r[5] for r in records], model)
        if has_score:
            columns["score"] = pa.array([r[6] for r in records], pa.float64())
        if has_latency:
            columns["latency_ms"] = pa.array([r[7] for r in records], pa.float64())
        options = {
            "version": version,
            "score_column": "score" if has_score else None,
            "latency_column": "latency_ms" if has_latency else None,
        }
        return Batch(kind, model, pa.table(columns), options, members)
    if kind == "features":
        env, names = key[2], key[3]
        at_id, at_features, at_ts = (3, 4, 8) if records[0][0] == PREDICTION else (2, 3, 4)
        columns = {
            "example_id": _ids([r[at_id] for r in records]),
            "ts": pa.array([r[at_ts] for r in records], TIMESTAMP),
        }
        for name in names:
            if name in ("example_id", "ts"):
                raise ValidationError(
                    f"model {model!r}: feature {name!r} has the name of a system column; "
                    "rename the feature",
                    column=name,
                    rows=len(records),
                )
            columns[name] = _column(name, [r[at_features][name] for r in records], model)
        return Batch(kind, model, pa.table(columns), {"env": env}, members)
    source = key[2]
    columns = {
        "example_id": _ids([r[2] for r in records]),
        "label": _column("label", [r[3] for r in records], model),
        "ts": pa.array([r[4] for r in records], TIMESTAMP),
    }
    return Batch(kind, model, pa.table(columns), {"source": source}, members)


def _ids(values: list[Any]) -> pa.Array:
    """Example ids as text (the store keeps them as VARCHAR): ints become their digits."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _column(name: str, values: list[Any], model: str) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        raise ValidationError(
            f"model {model!r}: column {name!r} mixes value types ({', '.join(kinds)}) across "
            f"the {len(values)} rows of one batch ({error}); log one type per column",
            column=name,
            rows=len(values),
        ) from error
