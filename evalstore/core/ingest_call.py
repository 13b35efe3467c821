"""One ingest call as data: what ``Store.log_features/log_predictions/log_labels`` was asked.

A :class:`LogCall` holds the kind, the model and the call's options (everything but the
data), so the call can be planned later, by whoever writes it: the store right away
(:meth:`evalstore.Store.log_predictions`), or a group commit that writes many calls in one
transaction (:func:`evalstore.core.ingest_group.execute_group`). :func:`plan_call` turns a
call and the schema of its data into a :class:`~evalstore.core.ingest.Plan`, reading the
registry and the stored feature columns through :class:`Lookups`, which reads each once per
transaction however many calls of the same model it plans.

>>> import evalstore, pyarrow as pa
>>> store = evalstore.open()
>>> _ = store.register_model("m", "v1", "binary", classes=[0, 1], positive_class=1)
>>> call = LogCall("predictions", "m", {"version": "v1"})
>>> plan = plan_call(store.connection, call, pa.schema([("example_id", pa.string()),
...     ("score", pa.float64())]), Lookups(store.connection))
>>> plan.kind, plan.version, plan.columns[:2]
('predictions', 'v1', ['example_id', 'example_key'])
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core import ingest
from evalstore.core.identifiers import check_model_name
from evalstore.core.layout import model_columns
from evalstore.core.time_limits import DEFAULT_TIME_RANGE
from evalstore.errors import InvalidParameterError, UnknownModelError

#: The kinds of ingest call and the planning function of each.
KINDS = ("features", "predictions", "labels")

#: The options of each kind of call that have defaults, as ``Store.log_*`` gives them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "features": {
        "env": "serving",
        "dataset": None,
        "id_column": "example_id",
        "ts_column": "ts",
        "on_conflict": "error",
    },
    "predictions": {
        "id_column": "example_id",
        "ts_column": "ts",
        "prediction_column": "prediction",
        "score_column": "score",
        "probability_columns": None,
        "latency_column": None,
    },
    "labels": {
        "id_column": "example_id",
        "label_column": "label",
        "ts_column": "ts",
        "source": None,
        "labeled_at": None,
    },
}

#: Longest idempotency key (``batch_key=``, the ``Idempotency-Key`` header) accepted.
MAX_BATCH_KEY = 128


def check_batch_key(batch_key: object) -> str | None:
    """Return ``batch_key`` if it is a usable idempotency key (or None), else raise.

    A key is 1 to :data:`MAX_BATCH_KEY` printable characters (no control characters,
    no line breaks); keys are compared exactly, per model and kind.

    >>> check_batch_key("retry-7f3a"), check_batch_key(None)
    ('retry-7f3a', None)
    >>> check_batch_key("")
    Traceback (most recent call last):
    ...
    evalstore.errors.InvalidParameterError: batch_key='' must be 1 to 128 printable characters ...
    """
    if batch_key is None:
        return None
    if (
        not isinstance(batch_key, str)
        or not 0 < len(batch_key) <= MAX_BATCH_KEY
        or not batch_key.isprintable()
    ):
        shown = batch_key if not isinstance(batch_key, str) else batch_key[:40]
        raise InvalidParameterError(
            f"batch_key={shown!r} must be 1 to {MAX_BATCH_KEY} printable characters (no "
            "control characters or line breaks): a client-chosen id of the batch, sent "
            "again unchanged when the batch is retried (e.g. a UUID)"
        )
    return batch_key


@dataclass(frozen=True)
class LogCall:
    """An ingest call: ``kind`` (features | predictions | labels), ``model``, and the
    keyword options of the matching ``Store.log_*`` method other than the data, ``origin``
    and ``batch_key`` (``env``, ``version``, ``id_column``, ``labeled_at``, ...; those left
    out take :data:`DEFAULTS`), with ``time_range`` the store's accepted times."""

    kind: str
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    time_range: tuple[datetime, datetime] = DEFAULT_TIME_RANGE

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidParameterError(f"kind={self.kind!r} is not one of {', '.join(KINDS)}")


class Lookups:
    """Registry rows and stored feature columns, each read once per transaction.

    Make one per transaction (its answers are that transaction's view); call
    :meth:`forget_columns` after adding feature columns to a model.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._versions: dict[str, dict[str, dict[str, Any]]] = {}
        self._columns: dict[str, dict[str, str]] = {}

    def versions(self, model: str) -> dict[str, dict[str, Any]]:
        """The registry rows of ``model`` by version, oldest first (empty if unregistered)."""
        if model not in self._versions:
            cursor = self._con.execute(  # (fetchall: a third cheaper than via Arrow here)
                "SELECT * FROM evalstore.models WHERE model = ? ORDER BY created_at, version",
                [model],
            )
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            self._versions[model] = {row["version"]: row for row in rows}
        return self._versions[model]

    def registration(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The registry row of ``version`` (default: the latest) of ``model``; raises
        :class:`~evalstore.errors.UnknownModelError` (as ``Context.registration``)."""
        check_model_name(model)
        versions = self.versions(model)
        if not versions:
            raise UnknownModelError(
                f"model {model!r} is not registered; call store.register_model({model!r}, "
                "version, task) first (or `evalstore register` on the command line)"
            )
        if version is None:
            return list(versions.values())[-1]
        if version not in versions:
            raise UnknownModelError(
                f"model {model!r} has no version {version!r} (registered: "
                f"{', '.join(versions)}); register it before logging its predictions"
            )
        return versions[version]

    def classes(self, model: str) -> list[str] | None:
        """Union of the classes registered for any version of ``model`` (None if unset)."""
        classes: list[str] = []
        for row in self.versions(model).values():
            for label in row["classes"] or []:
                if label not in classes:
                    classes.append(label)
        return classes or None

    def columns(self, model: str) -> dict[str, str]:
        """``{name: DuckDB type}`` of ``<model>.features``."""
        if model not in self._columns:
            self._columns[model] = model_columns(self._con, model, "features")
        return self._columns[model]

    def forget_columns(self, model: str) -> None:
        """Read ``<model>.features``'s columns again next time (columns were added)."""
        self._columns.pop(model, None)


def plan_call(
    con: duckdb.DuckDBPyConnection, call: LogCall, schema: pa.Schema, lookups: Lookups
) -> ingest.Plan:
    """Plan ``call`` for data of ``schema``: what ``Store.log_<kind>`` plans.

    Raises the call's error (unknown model or version, missing or mistyped columns,
    reserved names, ...) before anything is written.
    """
    options = {**DEFAULTS[call.kind], **call.options}
    lookups.registration(call.model)
    if call.kind == "features":
        return ingest.plan_features(
            con,
            call.model,
            schema,
            time_range=call.time_range,
            stored_columns=lookups.columns(call.model),
            **options,
        )
    if call.kind == "predictions":
        version = options.pop("version")
        return ingest.plan_predictions(
            con,
            call.model,
            schema,
            version=version,
            registration=lookups.registration(call.model, version),
            time_range=call.time_range,
            **options,
        )
    return ingest.plan_labels(
        con,
        call.model,
        schema,
        task=lookups.registration(call.model)["task"],
        classes=lookups.classes(call.model),
        time_range=call.time_range,
        **options,
    )
