"""Training data for the next model: ``store.select`` and ``store.export``.

A selection is the rows of ``evalstore.training_rows`` (``sql/select.sql``): every feature
row of the model in ``env`` and ``[since, until)`` matching ``where``, with the example's
label as it stood ``as_of`` (labels are append-only; the latest label committed by then
wins) and what ``version`` predicted. ``as_of`` is resolved to the last ingest batch
committed at or before it, so a selection as of a time reads exactly the rows and labels
the store held then (except feature rows since replaced with ``on_conflict='replace'``,
which are gone).

:class:`TrainingSelection` is the definition (what :func:`select` runs, what a snapshot
records); :func:`select` returns its rows as an Arrow table or, with ``stream=True``, a
``pyarrow.RecordBatchReader`` read from a cursor of its own (the store stays usable while
it is consumed); :func:`export` writes Parquet with DuckDB's writer, in parallel, without
passing the rows through Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.db import utc_cursor
from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.layout import ENVS, FEATURE_SYSTEM_COLUMNS, feature_columns, model_columns
from evalstore.core.registry import to_timestamp
from evalstore.core.windows import check_predicate
from evalstore.errors import InvalidParameterError, warn

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Columns every selection has after the feature columns.
OUTCOME_COLUMNS = (
    "label", "label_ts", "label_source", "version", "prediction", "score", "probabilities",
)  # fmt: skip
#: Rows per record batch of a streamed selection.
BATCH_ROWS = 1 << 17


@dataclass(frozen=True)
class TrainingSelection:
    """A resolved selection: model, filters, version, columns and ``as_of_batch``.

    ``as_of_batch`` (the last batch id included; ``None``: whatever is committed when it
    runs) is what makes a selection reproducible. ``to_json``/``from_json`` give the
    definition a snapshot records.
    """

    model: str
    where: str | None = None
    env: tuple[str, ...] | None = None
    since: str | None = None
    until: str | None = None
    labeled_only: bool = True
    version: str | None = None
    columns: tuple[str, ...] | None = None
    as_of_batch: int | None = None
    as_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("extra")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainingSelection:
        data = json.loads(text)
        for key in ("env", "columns"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


def resolve(
    ctx: Context,
    model: str,
    where: str | None = None,
    env: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    labeled_only: bool = True,
    version: str | None = None,
    columns: Sequence[str] | None = None,
    as_of: Any = None,
    *,
    pin: bool = False,
) -> TrainingSelection:
    """Check the parameters of :func:`select` and return the selection they define.

    ``version=None`` takes the latest registered version's predictions. ``columns``
    (feature columns; the system and outcome columns always come) defaults to every
    feature column, resolved now. With ``pin=True`` (snapshots) ``as_of=None`` is pinned to
    the last committed batch.
    """
    check_model_name(model)
    registration = ctx.registration(model, version)
    con = ctx.connection
    stored = list(feature_columns(con, model))
    envs = None
    if env is not None:
        envs = (env,) if isinstance(env, str) else tuple(env)
        for value in envs:
            if value not in ENVS:
                raise InvalidParameterError(f"env={value!r} is not one of {', '.join(ENVS)}")
    predicate = None
    if where is not None:
        predicate = check_predicate(where, [*stored, "example_id", "env", "dataset", "ts"])
    if columns is None:
        chosen = tuple(stored)
    else:
        if isinstance(columns, str):
            columns = [columns]
        unknown = [c for c in columns if c not in stored and c not in FEATURE_SYSTEM_COLUMNS]
        if unknown:
            raise InvalidParameterError(
                f"columns={list(columns)} has unknown feature(s) {unknown}; known features: "
                + ", ".join(stored)
            )
        chosen = tuple(c for c in columns if c not in FEATURE_SYSTEM_COLUMNS)
    if not isinstance(labeled_only, bool):
        raise InvalidParameterError(f"labeled_only={labeled_only!r} must be True or False")
    since_ts = to_timestamp(since, "since")
    until_ts = to_timestamp(until, "until")
    as_of_ts = to_timestamp(as_of, "as_of")
    as_of_batch = None
    if as_of_ts is not None or pin:
        rows = con.execute(
            "SELECT max(batch_id), max(committed_at) FROM evalstore.batches "
            "WHERE ? IS NULL OR committed_at <= ?",
            [as_of_ts, as_of_ts],
        ).fetchall()
        as_of_batch = rows[0][0] if rows[0][0] is not None else 0
        if as_of_ts is None:
            as_of_ts = rows[0][1]
    notes = [] if as_of is None else _as_of_notes(con, model, as_of_ts)
    for note in notes:
        warn(note)
    return TrainingSelection(
        model=model,
        where=predicate,
        env=envs,
        since=since_ts.isoformat() if since_ts else None,
        until=until_ts.isoformat() if until_ts else None,
        labeled_only=labeled_only,
        version=registration["version"],
        columns=chosen,
        as_of_batch=as_of_batch,
        as_of=as_of_ts.isoformat() if isinstance(as_of_ts, datetime) else None,
        extra={"warnings": notes} if notes else {},
    )


def _as_of_notes(con: Any, model: str, as_of: datetime) -> list[str]:
    """Why a selection ``as_of`` a time before every batch of ``model`` is empty.

    ``as_of`` is commit time (what the store held then), not event time: a user who
    means "rows up to this date" and passes a date before the data was loaded gets no
    rows. Returned so the selection carries it (``extra['warnings']``) beside the
    :class:`~evalstore.errors.EvalstoreWarning` the caller issues.
    """
    first = con.execute(
        "SELECT min(committed_at) FROM evalstore.batches WHERE model = ?", [model]
    ).fetchall()[0][0]
    if first is None or as_of >= first:
        return []
    return [
        f"as_of={as_of.isoformat()!r} precedes every batch of model {model!r} (the first "
        f"was committed at {first.isoformat()}), so the selection is empty: as_of is the "
        "time rows were committed to the store, not their event time; to select by event "
        "time use since=/until="
    ]


def to_sql(selection: TrainingSelection) -> tuple[str, dict[str, Any]]:
    """The query (and its parameters) that reads ``selection``'s rows, in a stable order."""
    columns = [*FEATURE_SYSTEM_COLUMNS, *(selection.columns or ()), *OUTCOME_COLUMNS]
    listed = ", ".join(f"t.{quote(c)}" for c in columns)
    params: dict[str, Any] = {
        "model": selection.model,
        "version": selection.version,
        "env": selection.env[0] if selection.env and len(selection.env) == 1 else None,
        "since": to_timestamp(selection.since, "since"),
        "until": to_timestamp(selection.until, "until"),
        "labeled_only": selection.labeled_only,
        "as_of_batch": selection.as_of_batch,
    }
    conditions = []
    if selection.env and len(selection.env) > 1:
        params["envs"] = list(selection.env)
        conditions.append("list_contains($envs, t.env)")
    if selection.where:
        conditions.append(f"({selection.where})")
    sql = (
        f"SELECT {listed} FROM evalstore.training_rows($model, $version, $env, $since, $until, "
        "$labeled_only, $as_of_batch) AS t"
    )
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    return sql, params


def _missing_columns(ctx: Context, selection: TrainingSelection) -> list[str]:
    stored = set(model_columns(ctx.connection, selection.model, "features"))
    return [c for c in selection.columns or () if c not in stored]


@contextmanager
def quiet(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """No DuckDB progress bar during a library call.

    The setting is changed only when it is on, and left alone when the configuration is
    locked (``evalstore serve`` locks it): a library call must not fail over a display
    setting.
    """
    shown = con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]
    changed = False
    if shown:
        try:
            con.execute("SET enable_progress_bar = false")
            changed = True
        except duckdb.Error:
            changed = False
    try:
        yield
    finally:
        if changed:
            con.execute("SET enable_progress_bar = true")


def select(
    ctx: Context, selection: TrainingSelection, stream: bool = False, order: bool = True
) -> pa.Table | pa.RecordBatchReader:
    """Run a selection: an Arrow table, or a ``RecordBatchReader`` with ``stream=True``.

    Rows are ordered by ``env, example_id`` (``order=False`` skips the sort).
    """
    missing = _missing_columns(ctx, selection)
    if missing:
        raise InvalidParameterError(
            f"the selection reads feature column(s) {missing} that {selection.model!r} no "
            "longer has"
        )
    sql, params = to_sql(selection)
    if order:
        sql += " ORDER BY t.env, t.example_id"
    if stream:
        cursor = utc_cursor(ctx.connection)
        return cursor.sql(sql, params=params).to_arrow_reader(BATCH_ROWS)
    with ctx.lock, quiet(ctx.connection):
        return ctx.connection.sql(sql, params=params).to_arrow_table()


def export(
    ctx: Context,
    selection: TrainingSelection | pa.Table | pa.RecordBatchReader,
    path: str | PathLike[str],
    partition_by: str | Sequence[str] | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a selection (or its rows) to Parquet at ``path`` (a directory with ``partition_by``).

    A :class:`TrainingSelection` is written by DuckDB straight from the query (parallel, no
    Python per row); an Arrow table or reader is written from memory. Returns
    ``{"path", "rows", "partition_by"}``.
    """
    target = Path(path)
    parts = [partition_by] if isinstance(partition_by, str) else list(partition_by or [])
    if target.exists() and not overwrite:
        raise InvalidParameterError(
            f"{str(target)!r} exists; pass overwrite=True (or --overwrite) to replace it"
        )
    if target.is_dir() and not parts:
        raise InvalidParameterError(
            f"{str(target)!r} is a directory (a partitioned export?); remove it or choose "
            "another path for a single Parquet file"
        )
    con = ctx.connection
    with ctx.lock:
        if isinstance(selection, TrainingSelection):
            sql, params = to_sql(selection)
            names = [*FEATURE_SYSTEM_COLUMNS, *(selection.columns or ()), *OUTCOME_COLUMNS]
            relation = con.sql(sql, params=params)
        elif isinstance(selection, pa.Table | pa.RecordBatchReader):
            names = selection.schema.names
            relation = con.from_arrow(selection)
        else:
            raise InvalidParameterError(
                "selection must be a store.selection(...) definition, an Arrow table or a "
                f"RecordBatchReader, not {type(selection).__name__}"
            )
        unknown = [p for p in parts if p not in names]
        if unknown:
            raise InvalidParameterError(
                f"partition_by={parts} names column(s) {unknown} not in the selection"
            )
        if parts:
            if target.is_file():  # overwrite=True: a single-file export becomes a directory
                target.unlink()
            relation.to_parquet(str(target), partition_by=parts, overwrite=overwrite)
            rows = None
        else:
            relation.to_parquet(str(target))
            rows = None
    if isinstance(selection, pa.Table):
        rows = selection.num_rows
    elif rows is None:
        import pyarrow.dataset as ds

        rows = ds.dataset(str(target), format="parquet", partitioning="hive").count_rows()
    return {"path": str(target), "rows": rows, "partition_by": parts or None}


def selection_of(ctx: Context, value: TrainingSelection | Mapping[str, Any]) -> TrainingSelection:
    """A selection from a :class:`TrainingSelection` or a dict of :func:`resolve` arguments."""
    if isinstance(value, TrainingSelection):
        return value
    if isinstance(value, Mapping):
        options = dict(value)
        if "model" not in options:
            raise InvalidParameterError("a selection dict needs 'model'")
        return resolve(ctx, **options)
    raise InvalidParameterError(
        "selection must be store.selection(model, ...) or a dict of its arguments, not "
        f"{type(value).__name__}"
    )
