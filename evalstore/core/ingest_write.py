"""Executing planned ingest batches in one transaction, and the :class:`Receipt` they return.

A batch (planned by :mod:`evalstore.core.ingest`) is written in one transaction: new
feature columns are added, the rows are inserted straight from the Arrow data (DuckDB
scans it in parallel, with no Python per row), and then validated inside the same
transaction by the plan's checks (all of them in one statement). Any violation, and any
failure midway, rolls the whole transaction back, so a rejected batch leaves the store
exactly as it was. On success the conflicts are resolved (``on_conflict``), superseded
labels are marked, and the batch is recorded in ``evalstore.batches``.

:func:`execute` writes one batch (``Store.log_*``: one call, one transaction).
:func:`execute_group` writes many calls in one transaction and one fsync (the server's
group commit, :mod:`server.group_commit`): each call is planned and checked on its own and
gets its own batch id and ``evalstore.batches`` row; same-shaped calls (same model, kind,
options and Arrow schema: a service's single-example requests) are inserted and checked
together, with a per-row batch id. A call that fails is answered alone with its own error
and the others are written without it (see :func:`execute_group`).

A batch may carry a ``batch_key`` (an idempotency key): when ``evalstore.batches`` already
holds that key for the same model and kind, nothing is written and the first call's receipt
comes back with ``duplicate=True``. The lookup runs inside the write transaction, and a
unique index on ``(model, kind, batch_key)`` refuses a second row for a key, so two retries
racing each other cannot both write.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import count
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from evalstore.core.db import one, transaction, used_params
from evalstore.core.identifiers import quote
from evalstore.core.ingest import Check, Plan
from evalstore.core.ingest_call import LogCall, Lookups, check_batch_key, plan_call
from evalstore.core.layout import model_relation
from evalstore.core.values import refresh_value_views
from evalstore.errors import EvalstoreError, ValidationError

_incoming_names = count()

#: Rows a call may have and still be inserted together with other calls (larger ones are
#: written on their own, streamed by DuckDB as by ``Store.log_*``).
GROUP_ROWS = 10_000
#: Per-row batch id and receipt time of a group's combined insert.
_BATCH = "__evalstore_batch_id"
_RECEIVED = "__evalstore_received_at"
#: The check placeholders for one batch and for a group of batches (:class:`Check`).
_ONE = {"this": "batch_id = $batch_id", "others": "batch_id <> $batch_id"}
_MANY = {
    "this": "batch_id BETWEEN $first_batch_id AND $last_batch_id",
    "others": "batch_id NOT BETWEEN $first_batch_id AND $last_batch_id",
}
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
class Item:
    """One call of a group (:func:`execute_group`): what to plan, its rows, where they came
    from (``source`` in ``evalstore.batches``), its idempotency key and when it arrived
    (``received_at``: the batch's receipt time, and the ``ts`` of rows without one)."""

    call: LogCall
    data: pa.Table
    source: str
    batch_key: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        check_batch_key(self.batch_key)


@dataclass
class _Written:
    plan: Plan
    receipt: Receipt
    received_at: datetime
    source: str
    batch_key: str | None


class _ItemFailed(Exception):
    """Item ``index`` of a group failed with ``error``: answer it alone, retry the rest."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(index)
        self.index, self.error = index, error


class _GroupFailed(Exception):
    """Same-shaped items written together failed (a check, a conversion): write them one
    by one, which finds the culprit."""

    def __init__(self, indices: Sequence[int]) -> None:
        super().__init__(indices)
        self.indices = list(indices)


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
    incoming = f"__evalstore_incoming_{next(_incoming_names)}"
    con.register(incoming, reader)
    try:
        with transaction(con):
            if batch_key is not None:
                stored = stored_receipts(con, plan.model, plan.kind, [batch_key])
                if batch_key in stored:
                    return stored[batch_key]
            receipt = _write_one(con, plan, incoming, received_at)
            _record(con, [_Written(plan, receipt, received_at, source, batch_key)])
    finally:
        con.unregister(incoming)
    return receipt


def _write_one(
    con: duckdb.DuckDBPyConnection, plan: Plan, incoming: str, received_at: datetime
) -> Receipt:
    """Insert, check and settle one batch inside the caller's transaction."""
    table = model_relation(con, plan.model, plan.table)
    batch_id = one(con, "SELECT nextval('evalstore.batch_ids')")[0]
    params = {**plan.params, "batch_id": batch_id, "received_at": received_at}
    _add_columns(con, plan, table)
    insert = (
        f"INSERT INTO {table} ({', '.join(map(quote, plan.columns))}) "
        f"SELECT {', '.join(plan.expressions)} FROM {quote(incoming)}"
    )
    try:
        inserted = one(con, insert, used_params(insert, params))[0]
    except duckdb.ConversionException as error:
        raise ValidationError(f"a value could not be converted: {error}") from error
    _run_checks(con, plan, table, params, _ONE, rows=inserted)
    replaced, skipped = _resolve_conflicts(con, plan, table, params)
    if plan.kind == "labels":
        _supersede_labels(con, table, {"first_batch_id": batch_id, "last_batch_id": batch_id})
        _fulfil_requests(con, plan.model, table, batch_id, batch_id)
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


def _add_columns(con: duckdb.DuckDBPyConnection, plan: Plan, table: str) -> None:
    for name, kind in plan.add_columns:
        con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {kind}")
    if plan.add_columns:
        refresh_value_views(con, plan.model)


def _run_checks(
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


def _failed_checks(
    con: duckdb.DuckDBPyConnection, plan: Plan, table: str, params: dict[str, Any]
) -> bool:
    """Whether any check of ``plan`` fails over the group's rows."""
    try:
        _run_checks(con, plan, table, params, _MANY)
    except ValidationError:
        return True
    return False


# ---------------------------------------------------------------------- many calls


def execute_group(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    *,
    group_rows: int = GROUP_ROWS,
) -> list[Receipt | BaseException]:
    """Write ``items`` in one transaction; return each item's receipt or error, in order.

    Each item is planned on its own (a planning error, e.g. an unknown version or a
    missing column, answers that item and touches nothing). Items of the same shape
    (:func:`_shape`) with at most ``group_rows`` rows each are inserted with one
    statement and checked with one query over the group's batch-id range; if that query
    finds anything, the transaction is rolled back and those items are written one by one,
    so the offending item gets exactly the error it would get alone. An item failing alone
    is dropped from the group (its error is its answer) and the transaction is run again
    without it. If the commit itself fails (a full disk), each item is tried alone.

    Every written item gets its own batch id and ``evalstore.batches`` row; they share
    one ``committed_at``. An item whose ``batch_key`` is stored already (or repeats an
    earlier item's key in the same group) is answered with the first call's receipt and
    ``duplicate=True``.
    """
    results: dict[int, Receipt | BaseException] = {}
    todo = list(range(len(items)))
    alone: set[int] = set()
    while todo:
        try:
            results.update(_group_transaction(con, items, todo, alone, results, group_rows))
            break
        except _ItemFailed as failed:
            results[failed.index] = failed.error
            todo.remove(failed.index)
        except _GroupFailed as failed:
            alone.update(failed.indices)
        except Exception as error:  # the commit or the audit trail: no one item's fault
            if len(todo) == 1:
                results[todo[0]] = error
            else:
                for index in todo:
                    results[index] = execute_group(con, [items[index]], group_rows=group_rows)[0]
            break
    return [results[index] for index in range(len(items))]


def _group_transaction(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    todo: list[int],
    alone: set[int],
    results: dict[int, Receipt | BaseException],
    group_rows: int,
) -> dict[int, Receipt]:
    """One attempt at writing ``todo``; planning errors go to ``results`` (and out of
    ``todo``) directly: they depend only on the call and the store, not on the attempt."""
    written: dict[int, _Written] = {}
    answered: dict[int, Receipt] = {}
    repeats: dict[int, int] = {}
    with transaction(con):
        lookups = Lookups(con)
        memo: dict[tuple[Any, ...], Plan] = {}
        plans = _plan_all(con, items, todo, results, lookups, memo)
        firsts: dict[tuple[str, str, str], int] = {}
        keys: dict[tuple[str, str], list[str]] = {}
        for index in todo:
            if items[index].batch_key is not None:
                keys.setdefault((plans[index].model, plans[index].kind), []).append(
                    items[index].batch_key
                )
        stored = {
            (model, kind, key): receipt
            for (model, kind), wanted in keys.items()
            for key, receipt in stored_receipts(con, model, kind, wanted).items()
        }
        for index in todo:
            key = items[index].batch_key
            if key is None:
                continue
            plan = plans[index]
            if (plan.model, plan.kind, key) in stored:
                answered[index] = stored[plan.model, plan.kind, key]
            elif (plan.model, plan.kind, key) in firsts:
                repeats[index] = firsts[plan.model, plan.kind, key]
            else:
                firsts[plan.model, plan.kind, key] = index
        remaining = [i for i in todo if i not in answered and i not in repeats]
        shapes = _shapes(plans, items, remaining, alone, group_rows)
        while remaining:
            first = remaining[0]
            shape = shapes[first]
            members = [first]
            if shape is not None:
                members = [i for i in remaining if shapes[i] == shape]
            if len(members) == 1:
                written[first] = _write_item(con, plans[first], items[first], first)
            else:
                receipts = _write_many(con, [plans[i] for i in members], items, members)
                for index, receipt in zip(members, receipts, strict=True):
                    item = items[index]
                    written[index] = _Written(
                        plans[index], receipt, item.received_at, item.source, item.batch_key
                    )
            remaining = [i for i in remaining if i not in members]
            added = {plans[i].model for i in members if plans[i].add_columns}
            if added and remaining:  # later features plans of these models are stale
                for model in added:
                    lookups.forget_columns(model)
                stale = [i for i in remaining if items[i].call.model in added]
                for key in [key for key in memo if key[1] in added]:
                    del memo[key]
                plans.update(_plan_all(con, items, stale, results, lookups, memo))
                remaining = [i for i in remaining if i not in results]
                todo[:] = [i for i in todo if i not in results]
                shapes.update(_shapes(plans, items, stale, alone, group_rows))
        _record(con, list(written.values()))
    answered.update({index: w.receipt for index, w in written.items()})
    for index, first in repeats.items():
        answered[index] = replace(answered[first], duplicate=True)
    return answered


def _plan_all(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    indices: list[int],
    results: dict[int, Receipt | BaseException],
    lookups: Lookups,
    memo: dict[tuple[Any, ...], Plan],
) -> dict[int, Plan]:
    """Plan each item; items with the same call (kind, model, options) and Arrow schema
    share one plan, planned once (``memo``: what this transaction planned)."""
    plans = {}
    for index in list(indices):
        item = items[index]
        call = item.call
        key = (
            call.kind,
            call.model,
            repr(sorted(call.options.items())),
            call.time_range,
            item.data.schema,
        )
        try:
            if key not in memo:
                memo[key] = plan_call(con, call, item.data.schema, lookups)
            plans[index] = memo[key]
        except EvalstoreError as error:
            results[index] = error
            indices.remove(index)
        except duckdb.Error as error:  # the transaction is aborted: retry without it
            raise _ItemFailed(index, error) from error
    return plans


def _shapes(
    plans: dict[int, Plan],
    items: Sequence[Item],
    indices: Sequence[int],
    alone: set[int],
    group_rows: int,
) -> dict[int, tuple[Any, ...] | None]:
    """:func:`_shape` of each item (None for those to be written ``alone``), computed once
    per plan."""
    of_plan: dict[int, tuple[Any, ...]] = {}
    shapes: dict[int, tuple[Any, ...] | None] = {}
    for index in indices:
        plan, item = plans[index], items[index]
        if index in alone or not _groupable(plan, item, group_rows):
            shapes[index] = None
            continue
        if id(plan) not in of_plan:
            of_plan[id(plan)] = _shape(plan, item)
        shapes[index] = of_plan[id(plan)]
    return shapes


def _groupable(plan: Plan, item: Item, group_rows: int) -> bool:
    """Whether the call may share an insert with others: not too many rows,
    ``on_conflict='error'``, no columns named like the group's own."""
    return not (
        item.data.num_rows > group_rows
        or plan.on_conflict != "error"
        or _BATCH in item.data.schema.names
        or _RECEIVED in item.data.schema.names
    )


def _shape(plan: Plan, item: Item) -> tuple[Any, ...]:
    """What must be equal for calls to share one insert and one check query."""
    return (
        plan.model,
        plan.table,
        tuple(plan.columns),
        tuple(plan.expressions),
        tuple(plan.add_columns),
        tuple(plan.ignored),
        tuple(plan.warnings),
        repr(sorted(plan.params.items())),
        tuple((check.sql, check.message) for check in plan.checks),
        item.data.schema,
    )


def _write_item(con: duckdb.DuckDBPyConnection, plan: Plan, item: Item, index: int) -> _Written:
    incoming = f"__evalstore_incoming_{next(_incoming_names)}"
    con.register(incoming, item.data)
    try:
        receipt = _write_one(con, plan, incoming, item.received_at)
    except Exception as error:
        raise _ItemFailed(index, error) from error
    finally:
        con.unregister(incoming)
    return _Written(plan, receipt, item.received_at, item.source, item.batch_key)


def _write_many(
    con: duckdb.DuckDBPyConnection, plans: list[Plan], items: Sequence[Item], members: list[int]
) -> list[Receipt]:
    """Insert and check same-shaped calls together; raise :class:`_GroupFailed` if
    anything is wrong with any of them."""
    plan = plans[0]
    table = model_relation(con, plan.model, plan.table)
    ids = sorted(
        row[0]
        for row in con.execute(
            "SELECT nextval('evalstore.batch_ids') FROM range(?)", [len(members)]
        ).fetchall()
    )
    if ids[-1] - ids[0] + 1 != len(ids):  # another writer took ids between ours
        raise _GroupFailed(members)
    tables = [items[index].data for index in members]
    try:
        combined = pa.concat_tables(tables).combine_chunks()
    except pa.ArrowInvalid:
        raise _GroupFailed(members) from None
    lengths = np.array([t.num_rows for t in tables])
    received = [items[index].received_at for index in members]
    combined = combined.append_column(
        _BATCH, pa.array(np.repeat(np.array(ids, dtype=np.int64), lengths))
    ).append_column(
        _RECEIVED,
        pa.array(received, pa.timestamp("us", "UTC")).take(
            pa.array(np.repeat(np.arange(len(members)), lengths))
        ),
    )
    params = {**plan.params, "first_batch_id": ids[0], "last_batch_id": ids[-1]}
    _add_columns(con, plan, table)
    expressions = [
        quote(_BATCH) if e == "$batch_id" else quote(_RECEIVED) if e == "$received_at" else e
        for e in plan.expressions
    ]
    incoming = f"__evalstore_incoming_{next(_incoming_names)}"
    insert = (
        f"INSERT INTO {table} ({', '.join(map(quote, plan.columns))}) "
        f"SELECT {', '.join(expressions)} FROM {quote(incoming)}"
    )
    con.register(incoming, combined)
    try:
        con.execute(insert, used_params(insert, params)).fetchall()
    except duckdb.Error:
        raise _GroupFailed(members) from None
    finally:
        con.unregister(incoming)
    if _failed_checks(con, plan, table, params):
        raise _GroupFailed(members)
    if plan.kind == "labels":
        _supersede_labels(con, table, params)
        _fulfil_requests(con, plan.model, table, ids[0], ids[-1])
    return [
        Receipt(
            batch_id=batch_id,
            model=plan.model,
            kind=plan.kind,
            rows=items[index].data.num_rows,
            # the first call of the group added the columns; the others found them
            columns_added=tuple(name for name, _ in plan.add_columns) if n == 0 else (),
            columns_ignored=tuple(plan.ignored),
            warnings=tuple(plan.warnings),
        )
        for n, (batch_id, index) in enumerate(zip(ids, members, strict=True))
    ]


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


def _record(con: duckdb.DuckDBPyConnection, written: Sequence[_Written]) -> None:
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
            None if w.batch_key is None else _details(w.receipt),
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
    columns = {
        name: pa.array([row[i] for row in rows], kind)
        for i, (name, kind) in enumerate(zip(names, types, strict=True))
    }
    incoming = f"__evalstore_batches_{next(_incoming_names)}"
    con.register(incoming, pa.table(columns))
    try:
        con.execute(
            f"INSERT INTO evalstore.batches ({_BATCH_COLUMNS}) "
            f"SELECT {_BATCH_COLUMNS} FROM {quote(incoming)}"
        )
    finally:
        con.unregister(incoming)


def _details(receipt: Receipt) -> str:
    """The part of a keyed batch's receipt ``evalstore.batches`` has no column for."""
    return json.dumps(
        {
            "columns_ignored": list(receipt.columns_ignored),
            "replaced": receipt.replaced,
            "skipped": receipt.skipped,
            "warnings": list(receipt.warnings),
        }
    )


def _supersede_labels(con: duckdb.DuckDBPyConnection, table: str, ids: dict[str, Any]) -> None:
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


def _fulfil_requests(
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
