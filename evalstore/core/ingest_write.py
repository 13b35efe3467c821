"""Executing planned ingest batches in one transaction, and the :class:`Receipt` they return.

A batch (planned by :mod:`evalstore.core.ingest`) is written in one transaction: new
feature columns are added, the rows are inserted straight from the Arrow data (DuckDB
scans it in parallel, with no Python per row), and then validated inside the same
transaction by the plan's checks (all of them in one statement). Any violation, and any
failure midway, rolls the whole transaction back, so a rejected batch leaves the store
exactly as it was. On success the conflicts are resolved (``on_conflict``), superseded
labels are marked, and the batch is recorded in ``evalstore.batches``.

:func:`execute` writes one batch (``Store.log_*``: one call, one transaction);
:func:`evalstore.core.ingest_group.execute_group` writes many calls in one transaction
(the server's group commit) with the pieces defined here (:func:`write_one`,
:func:`run_checks`, :func:`record`).

A batch may carry a ``batch_key`` (an idempotency key): when ``evalstore.batches`` already
holds that key for the same model and kind, nothing is written and the first call's receipt
comes back with ``duplicate=True``. The lookup runs inside the write transaction, and a
unique index on ``(model, kind, batch_key)`` refuses a second row for a key, so two retries
racing each other cannot both write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.db import one, transaction, used_params
from evalstore.core.identifiers import quote
from evalstore.core.ingest import Check, Plan
from evalstore.core.ingest_call import check_batch_key
from evalstore.core.layout import model_relation
from evalstore.core.values import refresh_value_views
from evalstore.errors import ValidationError

incoming_names = count()

#: The check placeholders for one batch (:class:`~evalstore.core.ingest.Check`).
_ONE = {"this": "batch_id = $batch_id", "others": "batch_id <> $batch_id"}
_BATCH_COLUMNS = (
    "batch_id, model, kind, env, version, dataset, rows, columns_added, received_at, "
    "committed_at, source, batch_key, receipt"
)


@dataclass(frozen=True)
class Receipt:
    """What an accepted batch did to the store.

    ``rows`` is the number of rows written; ``columns_added`` the feature columns the
    batch created; ``columns_ignored`` incoming columns that were not stored (a new
    column with no values and hence no type, or a column a predictions/labels batch
    does not use); ``replaced``/``skipped`` count rows handled by ``on_conflict``.
    ``warnings`` says what was accepted but is probably not what was meant (labels
    without a time, which get the time of ingest). ``duplicate`` is True when the call
    carried a ``batch_key`` already stored for this model and kind: nothing was written
    and the receipt is the first call's.
    """

    batch_id: int
    model: str
    kind: str
    rows: int
    columns_added: tuple[str, ...] = ()
    columns_ignored: tuple[str, ...] = ()
    replaced: int = 0
    skipped: int = 0
    warnings: tuple[str, ...] = ()
    duplicate: bool = False


@dataclass
class Written:
    """A batch written in the current transaction, waiting for its ``evalstore.batches``
    row (:func:`record`)."""

    plan: Plan
    receipt: Receipt
    received_at: datetime
    source: str
    batch_key: str | None


# ---------------------------------------------------------------------- one batch


def execute(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    reader: pa.RecordBatchReader | pa.Table,
    *,
    source: str,
    batch_key: str | None = None,
) -> Receipt:
    """Write one planned batch in a transaction; roll everything back on any failure.

    With a ``batch_key`` already stored for the plan's model and kind, write nothing and
    return the stored receipt (``duplicate=True``).
    """
    check_batch_key(batch_key)
    received_at = datetime.now(UTC)
    incoming = f"__evalstore_incoming_{next(incoming_names)}"
    con.register(incoming, reader)
    try:
        with transaction(con):
            if batch_key is not None:
                stored = stored_receipts(con, plan.model, plan.kind, [batch_key])
                if batch_key in stored:
                    return stored[batch_key]
            receipt = write_one(con, plan, incoming, received_at)
            record(con, [Written(plan, receipt, received_at, source, batch_key)])
    finally:
        con.unregister(incoming)
    return receipt


def write_one(
    con: duckdb.DuckDBPyConnection, plan: Plan, incoming: str, received_at: datetime
) -> Receipt:
    """Insert, check and settle one batch inside the caller's transaction."""
    table = model_relation(con, plan.model, plan.table)
    batch_id = one(con, "SELECT nextval('evalstore.batch_ids')")[0]
    params = {**plan.params, "batch_id": batch_id, "received_at": received_at}
    add_columns(con, plan, table)
    insert = (
        f"INSERT INTO {table} ({', '.join(map(quote, plan.columns))}) "
        f"SELECT {', '.join(plan.expressions)} FROM {quote(incoming)}"
    )
    try:
        inserted = one(con, insert, used_params(insert, params))[0]
    except duckdb.ConversionException as error:
        raise ValidationError(f"a value could not be converted: {error}") from error
    run_checks(con, plan, table, params, _ONE, rows=inserted)
    replaced, skipped = _resolve_conflicts(con, plan, table, params)
    if plan.kind == "labels":
        supersede_labels(con, table, {"first_batch_id": batch_id, "last_batch_id": batch_id})
        fulfil_requests(con, plan.model, table, batch_id, batch_id)
    return Receipt(
        batch_id=batch_id,
        model=plan.model,
        kind=plan.kind,
        rows=inserted - skipped,  # 'ignore' deleted the skipped incoming rows
        columns_added=tuple(name for name, _ in plan.add_columns),
        columns_ignored=tuple(plan.ignored),
        replaced=replaced,
        skipped=skipped,
        warnings=tuple(plan.warnings),
    )


def add_columns(con: duckdb.DuckDBPyConnection, plan: Plan, table: str) -> None:
    """Add the plan's new feature columns to ``table`` and refresh the model's value views."""
    for name, kind in plan.add_columns:
        con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {kind}")
    if plan.add_columns:
        refresh_value_views(con, plan.model)


def run_checks(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    table: str,
    params: dict[str, Any],
    scope: dict[str, str],
    rows: int | None = None,
) -> None:
    """Run every check of ``plan``; raise the first one (in plan order) that fails.

    The checks are counted in one statement (:func:`_check_counts`); only a failing
    check's own query runs again, for its count and examples (the error it raises).
    With ``rows=1`` (one batch of one row) the checks of repeats within the batch
    (``Check.within``) are skipped: one row cannot repeat an id.
    """
    checks = [check for check in plan.checks if not (rows == 1 and check.within)]
    if not checks:
        return
    counts = _check_counts(con, checks, table, params, scope)
    for check, offending in zip(checks, counts, strict=True):
        if offending:
            query = check.sql.format(table=table, **scope)
            n, examples = one(con, query, used_params(query, params))
            raise check.error(
                check.message.format(n=n, examples=examples),
                column=check.column,
                rows=n,
                examples=examples,
            )


def _check_counts(
    con: duckdb.DuckDBPyConnection,
    checks: list[Check],
    table: str,
    params: dict[str, Any],
    scope: dict[str, str],
) -> list[int]:
    """The offending-row count of each of ``checks``, in order, from one statement:
    the row-wise checks (:attr:`~evalstore.core.ingest.Check.where`) in one scan of the
    batch's rows, the others (uniqueness) as their own queries, joined by UNION ALL."""
    row_wise = [i for i, check in enumerate(checks) if check.where is not None]
    others = [i for i, check in enumerate(checks) if check.where is None]
    parts = []
    if row_wise:
        filters = ", ".join(
            f"count(*) FILTER (WHERE {checks[i].where.format(table=table, **scope)})"
            for i in row_wise
        )
        parts.append(f"SELECT 0 AS part, [{filters}] AS n FROM {table} WHERE {scope['this']}")
    for part, i in enumerate(others, 1):
        sql = checks[i].sql.format(table=table, **scope)
        parts.append(f"SELECT {part} AS part, [n] AS n FROM ({sql}) AS c(n, e)")
    query = " UNION ALL ".join(parts)
    rows = sorted(con.execute(query, used_params(query, params)).fetchall())
    counts = [0] * len(checks)
    order = [row_wise] if row_wise else []
    order += [[i] for i in others]
    for indices, (_, values) in zip(order, rows, strict=True):
        for i, value in zip(indices, values, strict=True):
            counts[i] = value
    return counts


# ---------------------------------------------------------------------- audit trail


def stored_receipts(
    con: duckdb.DuckDBPyConnection, model: str, kind: str, keys: Sequence[str]
) -> dict[str, Receipt]:
    """The receipts of the batches of ``model`` and ``kind`` stored under ``keys``
    (``duplicate=True``), by key; keys never stored are absent."""
    rows = con.execute(
        "SELECT batch_key, batch_id, rows, columns_added, receipt FROM evalstore.batches "
        "WHERE model = ? AND kind = ? AND batch_key IN (SELECT unnest(?))",
        [model, kind, list(keys)],
    ).fetchall()
    stored = {}
    for key, batch_id, rows_, columns_added, details in rows:
        rest = json.loads(details) if details else {}
        stored[key] = Receipt(
            batch_id=batch_id,
            model=model,
            kind=kind,
            rows=rows_,
            columns_added=tuple(columns_added or ()),
            columns_ignored=tuple(rest.get("columns_ignored", ())),
            replaced=rest.get("replaced", 0),
            skipped=rest.get("skipped", 0),
            warnings=tuple(rest.get("warnings", ())),
            duplicate=True,
        )
    return stored


def record(con: duckdb.DuckDBPyConnection, written: Sequence[Written]) -> None:
    """One ``evalstore.batches`` row per written batch, all with one ``committed_at``."""
    if not written:
        return
    committed_at = datetime.now(UTC)
    rows = [
        [
            w.receipt.batch_id,
            w.plan.model,
            w.plan.kind,
            w.plan.env,
            w.plan.version,
            w.plan.dataset,
            w.receipt.rows,
            list(w.receipt.columns_added),
            w.received_at,
            committed_at,
            w.source,
            w.batch_key,
            None if w.batch_key is None else receipt_details(w.receipt),
        ]
        for w in written
    ]
    if len(rows) == 1:
        con.execute(
            f"INSERT INTO evalstore.batches ({_BATCH_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows[0],
        )
        return
    names = [name.strip() for name in _BATCH_COLUMNS.split(",")]
    timestamp = pa.timestamp("us", "UTC")
    types = [pa.int64(), *[pa.string()] * 5, pa.int64(), pa.list_(pa.string()), timestamp]
    types += [timestamp, pa.string(), pa.string(), pa.string()]
    insert_batch_rows(con, {
        name: pa.array([row[i] for row in rows], kind)
        for i, (name, kind) in enumerate(zip(names, types, strict=True))
    })  # fmt: skip


def insert_batch_rows(con: duckdb.DuckDBPyConnection, columns: dict[str, pa.Array]) -> None:
    """Insert ``evalstore.batches`` rows given column by column: every column of the
    table's audit row (:data:`_BATCH_COLUMNS`), each an Arrow array of the rows' values."""
    names = ", ".join(columns)
    if names != _BATCH_COLUMNS:
        raise ValueError(f"evalstore.batches rows need the columns {_BATCH_COLUMNS}, got {names}")
    incoming = f"__evalstore_batches_{next(incoming_names)}"
    con.register(incoming, pa.table(columns))
    try:
        con.execute(
            f"INSERT INTO evalstore.batches ({names}) SELECT {names} FROM {quote(incoming)}"
        )
    finally:
        con.unregister(incoming)


def receipt_details(receipt: Receipt) -> str:
    """The part of a keyed batch's receipt ``evalstore.batches`` has no column for."""
    return json.dumps(
        {
            "columns_ignored": list(receipt.columns_ignored),
            "replaced": receipt.replaced,
            "skipped": receipt.skipped,
            "warnings": list(receipt.warnings),
        }
    )


def supersede_labels(con: duckdb.DuckDBPyConnection, table: str, ids: dict[str, Any]) -> None:
    """Mark the current labels of the examples of batches ``first_batch_id`` to
    ``last_batch_id`` superseded by the batch that relabels them.

    ``labels_latest`` is then the labels with ``superseded_by IS NULL``, and a label was
    the latest as of batch ``b`` when ``batch_id <= b`` and ``superseded_by`` is NULL or
    later than ``b`` (see ``evalstore.labels_as_of``). For a group, its batches label
    distinct examples (the group's checks send repeats to be written one by one).
    """
    con.execute(
        f"UPDATE {table} AS old SET superseded_by = new.batch_id FROM (SELECT example_key, "
        f"batch_id FROM {table} WHERE batch_id BETWEEN $first_batch_id AND $last_batch_id) "
        "AS new WHERE old.superseded_by IS NULL AND old.batch_id < $first_batch_id "
        "AND old.example_key = new.example_key",
        {"first_batch_id": ids["first_batch_id"], "last_batch_id": ids["last_batch_id"]},
    )


def fulfil_requests(
    con: duckdb.DuckDBPyConnection, model: str, table: str, first: int, last: int
) -> None:
    """Mark the open (or expired) label requests of the examples labeled by batches
    ``first`` to ``last`` fulfilled by the batch that labels each (as
    :func:`evalstore.core.label_requests.fulfil_requests` does for one batch), inside the
    batches' transaction: a request is fulfilled exactly when its label is committed."""
    con.execute(
        "UPDATE evalstore.label_requests AS r SET status = 'fulfilled', fulfilled_at = $at, "
        "label_batch_id = new.batch_id FROM (SELECT example_id, max(batch_id) AS batch_id "
        f"FROM {table} WHERE batch_id BETWEEN $first AND $last GROUP BY example_id) AS new "
        "WHERE r.model = $model AND r.status IN ('open', 'expired') "
        "AND r.example_id = new.example_id",
        {"model": model, "at": datetime.now(UTC), "first": first, "last": last},
    )


def _resolve_conflicts(
    con: duckdb.DuckDBPyConnection, plan: Plan, table: str, params: dict[str, Any]
) -> tuple[int, int]:
    """Apply ``on_conflict='replace'|'ignore'``; return (rows replaced, rows skipped)."""
    if plan.on_conflict == "error":
        return 0, 0
    new = f"SELECT example_key FROM {table} WHERE batch_id = $batch_id"
    old = f"SELECT example_key FROM {table} WHERE env = $env AND batch_id <> $batch_id"
    if plan.on_conflict == "replace":
        sql = (
            f"DELETE FROM {table} WHERE env = $env AND batch_id <> $batch_id "
            f"AND example_key IN ({new})"
        )
        replaced = one(con, sql, used_params(sql, params))[0]
        return replaced, 0
    sql = f"DELETE FROM {table} WHERE batch_id = $batch_id AND example_key IN ({old})"
    skipped = one(con, sql, used_params(sql, params))[0]
    return 0, skipped
