"""Planning a validated ingest batch: how features, predictions or labels map onto a table.

A plan (:class:`Plan`) names the target columns, the SQL expression filling each from the
incoming Arrow stream, the feature columns to add, and the validation queries
(:class:`Check`) to run over the inserted rows (null or duplicate ids, id collisions,
values outside the registered classes, times outside the store's time range
(:mod:`evalstore.core.time_limits`; a mistyped year, a BC date), ...). Checks that only
need the schema (missing id column, reserved names, type conflicts,
:mod:`evalstore.core.ingest_types`) raise here, before anything is written.
:mod:`evalstore.core.ingest_write` executes a plan in one transaction.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.identifiers import quote
from evalstore.core.ingest_types import (
    NULL_TYPE,
    TIME_TYPES,
    check_names,
    duckdb_types,
    fits,
    require_column,
    require_type,
)
from evalstore.core.layout import (
    ENVS,
    EXAMPLE_KEY,
    INTEGER_TYPES,
    NUMERIC_TYPES,
    RESERVED_FEATURE_NAMES,
    example_key_sql,
    model_columns,
)
from evalstore.core.time_limits import DEFAULT_TIME_RANGE
from evalstore.errors import (
    DuplicateIdError,
    InvalidParameterError,
    SchemaConflictError,
    ValidationError,
)


@dataclass
class Plan:
    """How one batch maps onto a model table: target columns, SQL expressions, checks."""

    model: str
    table: str
    kind: str
    columns: list[str] = field(default_factory=list)
    expressions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    add_columns: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    unique_within: str | None = None
    on_conflict: str = "error"
    warnings: list[str] = field(default_factory=list)
    env: str | None = None
    version: str | None = None
    dataset: str | None = None

    def select(self, column: str, expression: str) -> None:
        self.columns.append(column)
        self.expressions.append(expression)


@dataclass(frozen=True)
class Check:
    """A validation query over the batch's rows: returns ``(offending rows, examples)``.

    ``sql`` names the model table ``{table}``, the batch's rows ``{this}`` and the rows
    of every other batch ``{others}``; :mod:`evalstore.core.ingest_write` fills them in
    for one batch (``batch_id = $batch_id``) or for a group of same-shaped batches
    written together (the group's batch id range), where a check passes only if it
    would pass for each batch of the group written one after another.
    """

    sql: str
    message: str
    column: str
    error: type[ValidationError] = ValidationError
    #: True for a check that ids appear once within the batch: it cannot fail for a
    #: batch of one row, which skips it.
    within: bool = False
    #: For the check that ids are not stored already: the column (``version`` or
    #: ``env``) whose value, the plan's parameter of that name, scopes the stored ids
    #: (:mod:`evalstore.core.ingest_keys` answers it from a key set when it can).
    stored_scope: str | None = None

    @property
    def where(self) -> str | None:
        """The condition of a row-wise check, or None.

        A check whose ``sql`` reads ``SELECT count(*), <examples> FROM {table} WHERE
        {this} AND <condition>`` counts the batch's rows meeting ``<condition>``; the writer
        counts every such check in one scan (``count(*) FILTER (WHERE <condition>)``) and
        runs a check's own query only when its count is not zero.
        """
        match = _ROW_WISE.match(self.sql)
        return None if match is None else match.group(1)


#: The form of a row-wise check (:attr:`Check.where`).
_ROW_WISE = re.compile(
    r"SELECT count\(\*\), [^{}]+? FROM \{table\} WHERE \{this\} AND (.+)\Z", re.S
)


#: Schemas already typed (:func:`batch_types`), most recent last; bounded.
_typed: OrderedDict[pa.Schema, dict[str, str]] = OrderedDict()
_TYPED_MAX = 256
_typed_lock = threading.Lock()


def batch_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """:func:`~evalstore.core.ingest_types.duckdb_types`, remembered per Arrow schema.

    DuckDB's type for an Arrow type depends only on the DuckDB version, so the answer for
    a schema seen before is reused: a service sending the same single-row shape thousands
    of times a second pays for the DuckDB probe once. Refused schemas are not remembered.
    """
    with _typed_lock:
        types = _typed.get(schema)
        if types is not None:
            _typed.move_to_end(schema)
            return dict(types)
    types = duckdb_types(con, schema)
    with _typed_lock:
        _typed[schema] = dict(types)
        while len(_typed) > _TYPED_MAX:
            _typed.popitem(last=False)
    return types


def _id_and_ts(
    plan: Plan,
    types: Mapping[str, str],
    id_column: str,
    ts_column: str,
    time_range: tuple[datetime, datetime],
) -> set[str]:
    id_type = require_column(types, id_column, "id_column")
    # an all-null column (type NULL) passes here and is refused by the null-id check below
    require_type(
        id_column,
        id_type,
        INTEGER_TYPES | {"VARCHAR", "UUID", NULL_TYPE},
        "text or integer example ids",
    )
    text_id = f"CAST({quote(id_column)} AS VARCHAR)"
    plan.select("example_id", text_id)
    plan.select(EXAMPLE_KEY, example_key_sql(text_id))
    plan.checks.append(
        Check(
            "SELECT count(*), [] FROM {table} WHERE {this} AND example_id IS NULL",
            f"id column {id_column!r} has {{n}} null values; every row needs an example id",
            id_column,
        )
    )
    used = {id_column}
    if ts_column in types:
        require_type(ts_column, types[ts_column], TIME_TYPES, "a timestamp, date or ISO text")
        plan.select("ts", f"CAST({quote(ts_column)} AS TIMESTAMPTZ)")
        plan.checks.append(
            Check(
                "SELECT count(*), [] FROM {table} WHERE {this} AND ts IS NULL",
                f"time column {ts_column!r} has {{n}} null values; give every row a time "
                "or leave the column out to use the time of ingest",
                ts_column,
            )
        )
        _time_range_check(plan, ts_column, time_range)
        used.add(ts_column)
    elif ts_column != "ts":
        require_column(types, ts_column, "ts_column")
    else:
        plan.select("ts", "$received_at")
    plan.select("batch_id", "$batch_id")
    return used


def _time_range_check(plan: Plan, ts_column: str, time_range: tuple[datetime, datetime]) -> None:
    """Times outside the store's range (:mod:`evalstore.core.time_limits`) reject the batch.

    The examples are rendered by DuckDB as text: a year like 20266 is beyond Python's
    ``datetime``.
    """
    lo, hi = time_range
    plan.params.update(ts_low=lo, ts_high=hi)
    plan.checks.append(
        Check(
            "SELECT count(*), list(CAST(ts AS VARCHAR) ORDER BY ts)[1:5] FROM {table} "
            "WHERE {this} AND (ts < $ts_low OR ts >= $ts_high)",
            f"time column {ts_column!r} has {{n}} values outside the store's time range "
            f"[{lo.isoformat()}, {hi.isoformat()}) UTC, for example {{examples}}; fix the "
            "times (a mistyped year?), or open the store with evalstore.open(path, "
            "time_range=(lo, hi)) to accept them",
            ts_column,
        )
    )


def _uniqueness_checks(plan: Plan, key: str, id_column: str) -> None:
    """Ids unique within the batch, and (unless on_conflict says otherwise) new."""
    scope = f"{key} = ${key}"
    plan.checks.append(
        Check(
            "SELECT count(*), list(example_id)[1:5] FROM (SELECT example_id FROM {table} "
            "WHERE {this} GROUP BY example_id HAVING count(*) > 1)",
            f"id column {id_column!r} repeats {{n}} ids within the batch, for example "
            "{examples}; each example may appear once per batch",
            id_column,
            DuplicateIdError,
            within=True,
        )
    )
    if plan.on_conflict == "error":
        plan.checks.append(
            Check(
                "SELECT count(*), list(example_id)[1:5] FROM (SELECT DISTINCT example_id, "
                "example_key FROM {table} WHERE {this}) AS incoming WHERE "
                f"example_key IN (SELECT example_key FROM {{table}} WHERE {scope} "
                "AND {others})",
                f"{{n}} ids are already stored for this {key} ({plan.params[key]!r}), for "
                "example {examples}; pass on_conflict='replace' to overwrite them or "
                "'ignore' to keep the stored rows",
                id_column,
                DuplicateIdError,
                stored_scope=key,
            )
        )


def plan_features(
    con: duckdb.DuckDBPyConnection,
    model: str,
    schema: pa.Schema,
    *,
    env: str,
    dataset: str | None,
    id_column: str,
    ts_column: str,
    on_conflict: str,
    time_range: tuple[datetime, datetime] = DEFAULT_TIME_RANGE,
    stored_columns: Mapping[str, str] | None = None,
) -> Plan:
    """Map a features batch onto ``<model>.features``, adding new columns.

    ``stored_columns`` (``{name: DuckDB type}`` of ``<model>.features``) saves the
    catalog lookup when the caller has just read them.
    """
    if env not in ENVS:
        raise InvalidParameterError(f"env={env!r} is not one of {', '.join(ENVS)}")
    if on_conflict not in ("error", "replace", "ignore"):
        raise InvalidParameterError(
            f"on_conflict={on_conflict!r} is not one of 'error', 'replace', 'ignore'"
        )
    if dataset is not None and not isinstance(dataset, str):
        raise InvalidParameterError(f"dataset={dataset!r} must be a string tag or None")
    types = batch_types(con, schema)
    check_names(types)
    plan = Plan(model, "features", "features", on_conflict=on_conflict, env=env, dataset=dataset)
    plan.params.update(env=env, dataset=dataset)
    used = _id_and_ts(plan, types, id_column, ts_column, time_range)
    plan.select("env", "$env")
    plan.select("dataset", "$dataset")
    stored = {
        name.lower(): (name, kind)
        for name, kind in (
            stored_columns if stored_columns is not None else model_columns(con, model, "features")
        ).items()
    }
    for name, kind in types.items():
        if name in used:
            continue
        if name.lower() in RESERVED_FEATURE_NAMES:
            raise ValidationError(
                f"column {name!r} uses a reserved name "
                f"({', '.join(sorted(RESERVED_FEATURE_NAMES))}); "
                "rename it, or pass id_column=/ts_column= if it is the id or time",
                column=name,
            )
        if name.lower() in stored:
            stored_name, stored_type = stored[name.lower()]
            if not fits(stored_type, kind):
                raise SchemaConflictError(
                    f"column {name!r} is stored as {stored_type} but the batch has {kind}; "
                    f"cast it to {stored_type} before logging, or log it under a new name",
                    column=name,
                )
            plan.select(stored_name, quote(name))
        elif kind == NULL_TYPE:
            plan.ignored.append(name)
        else:
            plan.add_columns.append((name, kind))
            plan.select(name, quote(name))
    _uniqueness_checks(plan, "env", id_column)
    return plan


def _value_type(task: str) -> tuple[frozenset[str], str, str]:
    """Accepted incoming types, SQL cast target, and description, for labels/predictions."""
    if task == "regression":
        return NUMERIC_TYPES, "DOUBLE", "numbers (a regression task)"
    return (
        INTEGER_TYPES | {"VARCHAR", "BOOLEAN"},
        "VARCHAR",
        f"class labels (int, text or bool) for a {task} task",
    )


def _class_check(
    plan: Plan, column: str, classes: Sequence[str] | None, what: str, source: str
) -> None:
    if not classes:
        return
    plan.params["classes"] = list(classes)
    plan.checks.append(
        Check(
            f"SELECT count(*), list(DISTINCT {column})[1:5] FROM {{table}} WHERE {{this}} "
            f"AND {column} IS NOT NULL AND NOT list_contains($classes, {column})",
            f"{what} has {{n}} values outside the registered classes {list(classes)}, for "
            "example {examples}; register the classes or fix the values",
            source,
        )
    )


def _range_check(plan: Plan, column: str, source: str, condition: str, expected: str) -> None:
    plan.checks.append(
        Check(
            f"SELECT count(*), list({column})[1:5] FROM {{table}} WHERE {{this}} AND {condition}",
            f"column {source!r} has {{n}} values that are not {expected}, for example {{examples}}",
            source,
        )
    )


def plan_predictions(
    con: duckdb.DuckDBPyConnection,
    model: str,
    schema: pa.Schema,
    *,
    version: str,
    registration: Mapping[str, Any],
    id_column: str,
    ts_column: str,
    prediction_column: str,
    score_column: str | None,
    probability_columns: Sequence[str] | Mapping[Any, str] | None,
    latency_column: str | None,
    time_range: tuple[datetime, datetime] = DEFAULT_TIME_RANGE,
) -> Plan:
    """Map a predictions batch onto ``<model>.predictions``."""
    task = registration["task"]
    classes = registration["classes"]
    types = batch_types(con, schema)
    check_names(types)
    plan = Plan(model, "predictions", "predictions", version=version)
    plan.params["version"] = version
    used = _id_and_ts(plan, types, id_column, ts_column, time_range)
    plan.select("version", "$version")
    allowed, target, expected = _value_type(task)

    if score_column is not None and score_column in types:
        require_type(score_column, types[score_column], NUMERIC_TYPES, "a number (a probability)")
        plan.select("score", f"CAST({quote(score_column)} AS DOUBLE)")
        used.add(score_column)
        if task != "regression":
            _range_check(
                plan,
                "score",
                score_column,
                "(isnan(score) OR score < 0 OR score > 1)",
                "probabilities in [0, 1]",
            )
    elif score_column is not None and score_column != "score":
        require_column(types, score_column, "score_column")

    probabilities = _probability_map(types, probability_columns, classes)
    if probabilities:
        keys = list(probabilities)
        values = ", ".join(f"CAST({quote(column)} AS DOUBLE)" for column in probabilities.values())
        plan.params["probability_classes"] = keys
        plan.select("probabilities", f"map($probability_classes, [{values}])")
        used.update(probabilities.values())
        plan.checks.append(
            Check(
                "SELECT count(*), [] FROM {table} WHERE {this} AND "
                "list_any_value(list_filter(map_values(probabilities), "
                "lambda p: isnan(p) OR p < 0 OR p > 1)) IS NOT NULL",
                "probability columns have {n} rows with a value outside [0, 1]",
                next(iter(probabilities.values())),
            )
        )

    if prediction_column in types:
        require_type(prediction_column, types[prediction_column], allowed, expected)
        plan.select("prediction", f"CAST({quote(prediction_column)} AS {target})")
        used.add(prediction_column)
        if task == "regression":
            _range_check(
                plan, "prediction", prediction_column, "NOT isfinite(prediction)", "finite numbers"
            )
    elif prediction_column != "prediction":
        require_column(types, prediction_column, "prediction_column")
    elif task == "binary" and "score" in plan.columns:
        positive = registration["positive_class"]
        negative = next(c for c in classes if c != positive)
        plan.params.update(
            positive=positive, negative=negative, threshold=registration["threshold"]
        )
        plan.select(
            "prediction",
            f"CASE WHEN {quote(score_column)} >= $threshold THEN $positive "
            f"WHEN {quote(score_column)} IS NOT NULL THEN $negative END",
        )
    elif task == "multiclass" and probabilities:
        # list_position(list, NULL) finds the first NULL: all-null probabilities -> NULL.
        plan.select(
            "prediction",
            f"CASE WHEN list_max([{values}]) IS NOT NULL THEN "
            f"$probability_classes[list_position([{values}], list_max([{values}]))] END",
        )
    else:
        require_column(types, prediction_column, "prediction_column")
    _class_check(plan, "prediction", classes, f"column {prediction_column!r}", prediction_column)

    if latency_column is not None:
        require_type(
            latency_column,
            require_column(types, latency_column, "latency_column"),
            NUMERIC_TYPES,
            "a number of milliseconds",
        )
        plan.select("latency_ms", f"CAST({quote(latency_column)} AS DOUBLE)")
        used.add(latency_column)
        _range_check(
            plan,
            "latency_ms",
            latency_column,
            "(isnan(latency_ms) OR latency_ms < 0)",
            "non-negative milliseconds",
        )
    plan.ignored = [name for name in types if name not in used]
    _uniqueness_checks(plan, "version", id_column)
    return plan


def _probability_map(
    types: Mapping[str, str],
    probability_columns: Sequence[str] | Mapping[Any, str] | None,
    classes: Sequence[str] | None,
) -> dict[str, str]:
    """Normalise ``probability_columns`` to ``{class text: column}``.

    A mapping gives ``{class: column}``; a sequence names columns that are the classes.
    """
    if probability_columns is None:
        return {}
    from evalstore.core.registry import canonical_class

    if isinstance(probability_columns, Mapping):
        pairs = {
            canonical_class(k, "probability_columns"): v for k, v in probability_columns.items()
        }
    elif isinstance(probability_columns, Sequence) and not isinstance(probability_columns, str):
        pairs = {str(column): column for column in probability_columns}
    else:
        raise InvalidParameterError(
            "probability_columns must be a list of columns named after the classes or a "
            f"{{class: column}} mapping, not {type(probability_columns).__name__}"
        )
    for label, column in pairs.items():
        require_type(
            column,
            require_column(types, column, "probability_columns"),
            NUMERIC_TYPES,
            "a probability",
        )
        if classes and label not in classes:
            raise ValidationError(
                f"probability column {column!r} is for class {label!r}, which is not among "
                f"the registered classes {list(classes)}",
                column=column,
            )
    return pairs


def plan_labels(
    con: duckdb.DuckDBPyConnection,
    model: str,
    schema: pa.Schema,
    *,
    task: str,
    classes: Sequence[str] | None,
    id_column: str,
    label_column: str,
    ts_column: str,
    source: str | None,
    time_range: tuple[datetime, datetime] = DEFAULT_TIME_RANGE,
    labeled_at: datetime | None = None,
) -> Plan:
    """Map a labels batch onto ``<model>.labels`` (append-only).

    A label's ``ts`` (when it became known: the basis of label delay and of a window's
    ``labels_complete``) comes from ``ts_column``, or is ``labeled_at`` for the whole
    batch, or else the time of ingest, which the receipt then warns about.
    """
    types = batch_types(con, schema)
    check_names(types)
    plan = Plan(model, "labels", "labels")
    used = _id_and_ts(plan, types, id_column, ts_column, time_range)
    if labeled_at is not None:
        _labeled_at(plan, labeled_at, ts_column, time_range)
    elif ts_column not in types:
        plan.warnings.append(LABELS_WITHOUT_TS.format(column=ts_column))
    allowed, target, expected = _value_type(task)
    kind = require_column(types, label_column, "label_column")
    require_type(label_column, kind, allowed, expected)
    plan.select("label", f"CAST({quote(label_column)} AS {target})")
    plan.select("source", "$source")
    plan.params["source"] = source
    used.add(label_column)
    plan.checks.append(
        Check(
            "SELECT count(*), [] FROM {table} WHERE {this} AND label IS NULL",
            f"label column {label_column!r} has {{n}} null values; leave unlabeled examples out",
            label_column,
        )
    )
    if task == "regression":
        _range_check(plan, "label", label_column, "NOT isfinite(label)", "finite numbers")
    _class_check(plan, "label", classes, f"label column {label_column!r}", label_column)
    plan.checks.append(
        Check(
            "SELECT count(*), list(example_id)[1:5] FROM (SELECT example_id FROM {table} "
            "WHERE {this} GROUP BY example_id HAVING count(*) > 1)",
            f"id column {id_column!r} repeats {{n}} ids within the batch, for example "
            "{examples}; send one label per example per batch (later batches may correct it)",
            id_column,
            DuplicateIdError,
            within=True,
        )
    )
    plan.ignored = [name for name in types if name not in used]
    return plan


#: The receipt's warning for labels without a time.
LABELS_WITHOUT_TS = (
    "the labels have no {column!r} column, so each gets the time of ingest as its ts: label "
    "delay and labels_complete then read as if every label arrived now; give the time the "
    "labels became known (ts_column=, or labeled_at= for the whole batch; on the command "
    "line --ts-column or --labeled-at)"
)


def _labeled_at(
    plan: Plan, labeled_at: datetime, ts_column: str, time_range: tuple[datetime, datetime]
) -> None:
    """Give every label of the batch the time ``labeled_at`` (instead of a column)."""
    if plan.expressions[plan.columns.index("ts")] != "$received_at":
        raise InvalidParameterError(
            f"labeled_at= and a time column ({ts_column!r}) were both given: the column "
            "already times each label; drop one of them"
        )
    lo, hi = time_range
    if not lo <= labeled_at < hi:
        raise InvalidParameterError(
            f"labeled_at={labeled_at.isoformat()!r} is outside the store's time range "
            f"[{lo.isoformat()}, {hi.isoformat()})"
        )
    plan.expressions[plan.columns.index("ts")] = "$labeled_at"
    plan.params["labeled_at"] = labeled_at
