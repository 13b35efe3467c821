"""Many ingest calls in one transaction and one fsync: the server's group commit.

:func:`execute_group` (used by :mod:`server.group_commit`) plans and checks each call on
its own; each gets its own batch id and ``evalstore.batches`` row. Same-shaped calls (same
model, kind, options and Arrow schema: a service's single-example requests) are inserted
and checked together, with a per-row batch id, in as few statements as DuckDB allows (the
insert checks the rows itself; the stored ids are looked up in the writer's key set,
:mod:`evalstore.core.ingest_keys`). A call that fails is answered alone with its own
error and the others are written without it. One batch's write, its checks and the
audit trail are :mod:`evalstore.core.ingest_write`'s, shared with ``Store.log_*``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from evalstore.core.db import transaction, used_params
from evalstore.core.identifiers import quote
from evalstore.core.ingest import Plan
from evalstore.core.ingest_call import LogCall, Lookups, check_batch_key, plan_call
from evalstore.core.ingest_keys import StoredKeys
from evalstore.core.ingest_write import (
    Receipt,
    Written,
    add_columns,
    fulfil_requests,
    incoming_names,
    record,
    run_checks,
    stored_receipts,
    supersede_labels,
    write_one,
)
from evalstore.core.layout import model_relation
from evalstore.errors import EvalstoreError, ValidationError

#: Rows a call may have and still be inserted together with other calls (larger ones are
#: written on their own, streamed by DuckDB as by ``Store.log_*``).
GROUP_ROWS = 10_000
#: Most rows of a group checked from what its insert returns (more: by SQL queries).
RETURN_ROWS = 4_096
#: The error a group's insert raises when a row-wise check fails on one of its rows.
_CHECK_FAILED = "evalstore: a row-wise check failed in the group"
#: Per-row batch id and receipt time of a group's combined insert.
_BATCH = "__evalstore_batch_id"
_RECEIVED = "__evalstore_received_at"
#: The check placeholders for a group of batches (:class:`~evalstore.core.ingest.Check`).
_MANY = {
    "this": "batch_id BETWEEN $first_batch_id AND $last_batch_id",
    "others": "batch_id NOT BETWEEN $first_batch_id AND $last_batch_id",
}


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


def _failed_checks(
    con: duckdb.DuckDBPyConnection, plan: Plan, table: str, params: dict[str, Any]
) -> bool:
    """Whether any check of ``plan`` fails over the group's rows."""
    try:
        run_checks(con, plan, table, params, _MANY)
    except ValidationError:
        return True
    return False


def execute_group(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    *,
    group_rows: int = GROUP_ROWS,
    stored_keys: StoredKeys | None = None,
) -> list[Receipt | BaseException]:
    """Write ``items`` in one transaction; return each item's receipt or error, in order.

    Each item is planned on its own (a planning error, e.g. an unknown version or a
    missing column, answers that item and touches nothing). Items of the same shape
    (:func:`_shape`, even a lone one) with at most ``group_rows`` rows each are inserted
    with one statement and checked together over the group's batch-id range; if a check
    finds anything, the transaction is rolled back and those items are written one by one,
    so the offending item gets exactly the error it would get alone. An item failing alone
    is dropped from the group (its error is its answer) and the transaction is run again
    without it. If the commit itself fails (a full disk), each item is tried alone.

    Up to :data:`RETURN_ROWS` rows, the group's insert fails itself if a row-wise check
    holds for a row and returns the ids and key hashes it wrote: the repeats within the
    group are counted from them, and the check of ids stored already is answered by
    ``stored_keys`` (the writer's :class:`~evalstore.core.ingest_keys.StoredKeys`) when
    given, else by SQL, as are the checks of larger groups.

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
            results.update(
                _group_transaction(con, items, todo, alone, results, group_rows, stored_keys)
            )
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
                if stored_keys is not None:
                    stored_keys.forget()  # what it caught up with may have been rolled back
                for index in todo:
                    results[index] = execute_group(
                        con, [items[index]], group_rows=group_rows, stored_keys=stored_keys
                    )[0]
            break
    return [results[index] for index in range(len(items))]


def _group_transaction(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    todo: list[int],
    alone: set[int],
    results: dict[int, Receipt | BaseException],
    group_rows: int,
    stored_keys: StoredKeys | None = None,
) -> dict[int, Receipt]:
    """One attempt at writing ``todo``; planning errors go to ``results`` (and out of
    ``todo``) directly: they depend only on the call and the store, not on the attempt."""
    written: dict[int, Written] = {}
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
            if shape is None:
                written[first] = _write_item(con, plans[first], items[first], first)
            else:
                receipts = _write_many(
                    con, [plans[i] for i in members], items, members, stored_keys
                )
                for index, receipt in zip(members, receipts, strict=True):
                    item = items[index]
                    written[index] = Written(
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
        record(con, list(written.values()))
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


def _write_item(con: duckdb.DuckDBPyConnection, plan: Plan, item: Item, index: int) -> Written:
    incoming = f"__evalstore_incoming_{next(incoming_names)}"
    con.register(incoming, item.data)
    try:
        receipt = write_one(con, plan, incoming, item.received_at)
    except Exception as error:
        raise _ItemFailed(index, error) from error
    finally:
        con.unregister(incoming)
    return Written(plan, receipt, item.received_at, item.source, item.batch_key)


def _write_many(
    con: duckdb.DuckDBPyConnection,
    plans: list[Plan],
    items: Sequence[Item],
    members: list[int],
    stored_keys: StoredKeys | None = None,
) -> list[Receipt]:
    """Insert and check same-shaped calls together; raise :class:`_GroupFailed` if
    anything is wrong with any of them.

    Up to :data:`RETURN_ROWS` rows, the insert returns each row's id, key hash and
    whether a row-wise check fails on it (:func:`_insert_returning`); more rows are
    checked by SQL over the group's batch-id range."""
    plan = plans[0]
    if stored_keys is None:
        table = model_relation(con, plan.model, plan.table)
    else:
        table = stored_keys.relation(con, plan.model, plan.table)
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
    add_columns(con, plan, table)
    expressions = _group_expressions(plan)
    incoming = f"__evalstore_incoming_{next(incoming_names)}"
    insert = (
        f"INSERT INTO {table} ({', '.join(map(quote, plan.columns))}) "
        f"SELECT {', '.join(expressions)} FROM {quote(incoming)}"
    )
    if combined.num_rows <= RETURN_ROWS:
        stored = _stored_keys(con, plan, table, stored_keys)
        relabeled = None
        if stored_keys is not None and plan.kind == "labels":
            relabeled = stored_keys.keys(con, plan.model, plan.table, table, None)
        returned = _insert_returning(con, plan, table, incoming, combined, params, members)
        hashes = [h for _, h in returned]
        left = [c for c in plan.checks if c.where is None and not c.within]
        if stored is not None and not stored.any_of(hashes):
            left = [c for c in left if c.stored_scope is None]  # surely none stored
        if left and _failed_checks(con, replace(plan, checks=left), table, params):
            raise _GroupFailed(members)
        if plan.kind == "labels" and (relabeled is None or relabeled.any_of(hashes)):
            supersede_labels(con, table, params)  # (else no stored label has these keys)
        if plan.kind == "labels" and _requested(con, plan.model, [i for i, _ in returned]):
            fulfil_requests(con, plan.model, table, ids[0], ids[-1])
    else:
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
            supersede_labels(con, table, params)
            fulfil_requests(con, plan.model, table, ids[0], ids[-1])
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


def _stored_keys(
    con: duckdb.DuckDBPyConnection, plan: Plan, table: str, stored_keys: StoredKeys | None
) -> Any:
    """The key set answering ``plan``'s check of stored ids, if ``stored_keys`` and the check
    exist (read before the group's rows are inserted)."""
    check = next((c for c in plan.checks if c.stored_scope is not None), None)
    if stored_keys is None or check is None:
        return None
    scope = check.stored_scope
    return stored_keys.keys(con, plan.model, plan.table, table, scope, plan.params[scope])


def _insert_returning(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    table: str,
    incoming: str,
    combined: pa.Table,
    params: dict[str, Any],
    members: list[int],
) -> list[tuple[str, int]]:
    """Insert the group's rows with one statement that fails if any row-wise check
    (:attr:`~evalstore.core.ingest.Check.where`) holds for a row (DuckDB's ``error()``)
    and returns each row's id and key hash; raise :class:`_GroupFailed` if it fails or
    (given a check of repeats within the batch) an id repeats in the group. Return the
    (id, key hash) of each row. (The conditions are in the ``WHERE`` of the insert's
    ``SELECT``: DuckDB binds no parameters in ``RETURNING``, and the checks have some.)"""
    row_wise = [c.where.format(table=table, **_MANY) for c in plan.checks if c.where]
    columns = ", ".join(
        f"{expression} AS {quote(column)}"
        for column, expression in zip(plan.columns, _group_expressions(plan), strict=True)
    )
    failing = " OR ".join(f"({condition})" for condition in row_wise) or "false"
    insert = (
        f"INSERT INTO {table} ({', '.join(map(quote, plan.columns))}) "
        f"SELECT * FROM (SELECT {columns} FROM {quote(incoming)}) "
        f"WHERE CASE WHEN coalesce({failing}, false) THEN error('{_CHECK_FAILED}') "
        "ELSE true END RETURNING example_id, hash(example_key)"
    )
    con.register(incoming, combined)
    try:
        rows = con.execute(insert, used_params(insert, params)).fetchall()
    except duckdb.Error:
        raise _GroupFailed(members) from None
    finally:
        # (in an aborted transaction the view goes with the rollback)
        with contextlib.suppress(duckdb.Error):
            con.unregister(incoming)
    if any(c.within for c in plan.checks) and len({row[0] for row in rows}) < len(rows):
        raise _GroupFailed(members)
    return rows


def _requested(con: duckdb.DuckDBPyConnection, model: str, example_ids: list[str]) -> bool:
    """Whether an open (or expired) label request of ``model`` asks for any of
    ``example_ids`` (else labeling them fulfils nothing, and the UPDATE is skipped)."""
    return con.execute(
        "SELECT EXISTS (SELECT 1 FROM evalstore.label_requests WHERE model = $model AND "
        "status IN ('open', 'expired') AND example_id IN (SELECT unnest($ids)))",
        {"model": model, "ids": example_ids},
    ).fetchall()[0][0]


def _group_expressions(plan: Plan) -> list[str]:
    """The plan's expressions reading the group's per-row batch id and receipt time."""
    return [
        quote(_BATCH) if e == "$batch_id" else quote(_RECEIVED) if e == "$received_at" else e
        for e in plan.expressions
    ]
