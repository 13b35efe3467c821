"""Validate a group of small ingest calls without writing: what the journal holds.

:func:`prepare_group` is the journaled writer's (:mod:`server.journal`) counterpart of
:func:`evalstore.core.ingest_group.execute_group`: each call is planned on its own (a
planning error answers that call alone), same-shaped calls are converted together by one
``SELECT`` of the plan's expressions over their rows (each row with its call's batch id
and receipt time, as the group's ``INSERT`` would write it) that also evaluates every
row-wise check (or, for a small group whose expressions and checks it knows, by
:func:`python_convert`, which gives the same rows without a DuckDB query: checked against
the ``SELECT`` on the first group of each shape), and each call's ids are checked for
repeats within the call and against the stored keys and the keys already accepted
(``stored_keys``, the writer's :class:`~evalstore.core.ingest_keys.StoredKeys`, to which
each accepted call's key hashes are added at once). A call that passes is *accepted*: its
converted rows go to the journal, and nothing can fail when they are applied.

A call is sent to the *direct* lane instead (written by ``execute_group`` after the
journal is applied, so it gets exactly the answer it would get without a journal) when any
check might fail for it (a row-wise condition holds, an id repeats, a key hash is known:
a real repeat or a 2^-64 collision, which only SQL can tell apart), when its conversion
fails, or when it is not a small plain append: more than ``journal_rows`` rows, new
feature columns, ``on_conflict`` other than ``'error'``, or a client batch key repeated
within the group. Errors are rare, so the direct lane's wait costs nothing in the
common case.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from evalstore.core.db import used_params
from evalstore.core.identifiers import quote
from evalstore.core.ingest import Plan
from evalstore.core.ingest_call import LogCall, Lookups, plan_call
from evalstore.core.ingest_group import _BATCH, _RECEIVED, Item, _group_expressions
from evalstore.core.ingest_keys import StoredKeys
from evalstore.core.ingest_write import Receipt, incoming_names, stored_receipts
from evalstore.core.journal import Request, Segment
from evalstore.core.journal_convert import EPOCH, UTC_MICROS, python_convert
from evalstore.errors import EvalstoreError

log = logging.getLogger("evalstore.server")

#: Rows a call may have and still go through the journal (larger: the direct lane).
JOURNAL_ROWS = 1_000
#: Most rows a group of same-shaped calls may have to be converted in Python (about 7 µs a
#: row against DuckDB's ~4.5 ms a query: Python is cheaper below some 500 rows).
PYTHON_ROWS = 256
_HASH = "__evalstore_hash"
_BAD = "__evalstore_bad"


@dataclass
class Prepared:
    """What :func:`prepare_group` decided, by index into the group's items."""

    #: answered already: a planning error, or a stored batch key's receipt (duplicate)
    results: dict[int, Receipt | BaseException] = field(default_factory=dict)
    #: accepted: index -> its journal request
    accepted: dict[int, Request] = field(default_factory=dict)
    #: the accepted calls' converted rows
    segments: list[Segment] = field(default_factory=list)
    #: to be written directly once the journal is applied
    direct: list[int] = field(default_factory=list)
    #: the accepted calls' key hashes by scope (model, table, scope column, value)
    hashes: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)


class WriterState:
    """What the journal's writer keeps between groups (one thread uses it).

    - ``stored_keys``: the stored key hashes (:class:`StoredKeys`); a table's set is
      caught up with DuckDB only after the applier committed rows to it (:meth:`applied`),
      since nothing else writes the model tables, and at most every ``sync_every``
      seconds (an applied call's hashes stay in the pending sets until then);
    - the key hashes of calls journaled but not yet applied, by scope: a call repeating
      one goes to the direct lane (which applies the journal first);
    - the plans by call and schema, dropped when the store's count of registrations
      (``Store.registry_changes``) moves and after the direct lane wrote DuckDB
      (:meth:`written_directly`: it may have added feature columns).
    """

    def __init__(self, stored_keys: StoredKeys | None = None, sync_every: float = 1.0) -> None:
        self.stored_keys = stored_keys or StoredKeys()
        self.sync_every = sync_every
        self.pending: dict[tuple[Any, ...], set[int]] = {}
        self._applied: dict[tuple[str, str], list[dict[tuple[Any, ...], list[int]]]] = {}
        self._synced: dict[tuple[str, str], float] = {}
        #: tables whose key sets must catch up on next use (DuckDB written directly)
        self._stale: set[tuple[str, str]] | None = set()
        #: plan and the Arrow schema it was planned for, by call and schema
        self._plans: dict[tuple[Any, ...], tuple[Plan, pa.Schema]] = {}
        #: the last call planned, its schema and plan (the call object kept: compared by
        #: identity, the fast path and the front link give a call's requests one object)
        self.last_plan: tuple[LogCall, pa.Schema, Plan] | None = None
        #: per (plan, Arrow schema): whether the conversion in Python gave the SQL's
        #: result when both were run (the first group of that shape)
        self.python_agrees: dict[tuple[int, pa.Schema], bool] = {}
        self.registry_changes = 0

    def applied(self, hashes: dict[tuple[Any, ...], list[int]]) -> None:
        """A journal record holding calls with these key hashes is applied: their tables'
        key sets catch up on next use, and the hashes then leave the pending sets."""
        for scope, values in hashes.items():
            self._applied.setdefault(scope[:2], []).append({scope: values})

    def forget(self, hashes: dict[tuple[Any, ...], list[int]]) -> None:
        """Drop ``hashes`` from the pending sets (a record not journaled, or applied)."""
        for scope, values in hashes.items():
            pending = self.pending.get(scope)
            if pending is not None:
                pending.difference_update(values)

    def forget_plans(self) -> None:
        self._plans.clear()
        self.last_plan = None
        self.python_agrees.clear()

    def written_directly(self) -> None:
        """The direct lane wrote DuckDB: forget the plans (it may have added feature
        columns) and catch every key set up on its next use (its rows are not in them)."""
        self.forget_plans()
        self._stale = None

    def keys(
        self, con: duckdb.DuckDBPyConnection, plan: Plan, column: str, value: Any
    ) -> tuple[Any, set[int]]:
        """The stored and the pending key hashes of ``plan``'s table for ``column = value``."""
        relation = self.stored_keys.relation(con, plan.model, plan.table)
        name = (plan.model, plan.table)
        now = time.monotonic()
        stale = self._stale is None or name in self._stale
        sync = stale or (
            name in self._applied and now - self._synced.get(name, -math.inf) >= self.sync_every
        )
        if self._stale is None:  # every other table stays stale until its next use
            self._stale = {table for table in self.stored_keys.tables() if table != name}
        else:
            self._stale.discard(name)
        applied = self._applied.pop(name, None) if sync else None
        loaded = name in self.stored_keys.tables()
        stored = self.stored_keys.keys(con, plan.model, plan.table, relation, column, value,
                                       sync=sync)  # fmt: skip
        if sync or not loaded:  # (a first use loads what is committed)
            self._synced[name] = now
        for hashes in applied or ():  # (caught up: in the stored set now)
            self.forget(hashes)
        return stored, self.pending.setdefault((*name, column, value), set())


def prepare_group(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    state: WriterState,
    *,
    batch_ids: Callable[[int], list[int]],
    pending_keys: Callable[[str, str, str], Receipt | None],
    registry_changes: int = 0,
    journal_rows: int = JOURNAL_ROWS,
) -> Prepared:
    """Plan, convert and check ``items`` (see the module); nothing is written.

    ``con`` is a connection of the writer's own (reads only: the registry, batch keys,
    the key sets' catch-up); ``state`` the writer's :class:`WriterState` (the accepted
    calls' key hashes are added to its pending sets, and listed in
    :attr:`Prepared.hashes`); ``batch_ids(n)`` gives ``n`` new batch ids, increasing;
    ``pending_keys(model, kind, key)`` the receipt of a batch key journaled but maybe
    not yet applied; ``registry_changes`` the store's count of registrations
    (``Store.registry_changes``): when it moves, the cached plans are dropped.
    """
    prepared = Prepared()
    if registry_changes != state.registry_changes:  # a registration: plan again
        state.forget_plans()
        state.registry_changes = registry_changes
    plans = _plan(con, items, prepared, state)
    _answer_batch_keys(con, items, plans, prepared, pending_keys)
    shapes: dict[tuple[int, int], list[int]] = {}
    groupable: dict[tuple[int, int], bool] = {}
    for index, (plan, schema) in plans.items():
        if index in prepared.results or index in prepared.direct:
            continue
        shape = (id(plan), id(schema))  # (a schema object per distinct schema: _plan)
        if shape not in groupable:
            groupable[shape] = not plan.add_columns and _groupable_shape(plan, schema)
        if not groupable[shape] or items[index].data.num_rows > journal_rows:
            prepared.direct.append(index)
            continue
        shapes.setdefault(shape, []).append(index)
    for members in shapes.values():
        plan = plans[members[0]][0]
        _convert(con, items, plan, members, prepared, batch_ids, state)
    prepared.direct.sort()
    return prepared


def _valid(data: pa.Table) -> bool:
    """Whether ``data`` is valid Arrow: an Arrow body's text may be invalid UTF-8, which
    DuckDB's ``SELECT`` passes and only its insert refuses, so such a call goes to the
    direct lane (answered as without a journal) instead of into the journal."""
    try:
        data.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _groupable_shape(plan: Plan, schema: pa.Schema) -> bool:
    """:func:`~evalstore.core.ingest_group._groupable` but for the rows' count: a plain
    append, no incoming column named like the group's own."""
    return (
        plan.on_conflict == "error"
        and _BATCH not in schema.names
        and (_RECEIVED not in schema.names)
    )


def _plan(
    con: duckdb.DuckDBPyConnection, items: Sequence[Item], prepared: Prepared, state: WriterState
) -> dict[int, tuple[Plan, pa.Schema]]:
    """Each item's plan and Arrow schema, the plan from ``state``'s cache or planned (a
    planning error answers the item; it is not cached). Items with equal schemas get the
    same schema object (the caller groups by it)."""
    lookups: Lookups | None = None
    plans: dict[int, tuple[Plan, pa.Schema]] = {}
    last = state.last_plan  # (the last group's last call: a service sends one kind)
    for index, item in enumerate(items):
        call = item.call
        schema = item.data.schema
        if last is not None and call is last[0] and schema.equals(last[1]):
            plans[index] = (last[2], last[1])  # (the same call as the last item's: a
            continue  # front's message shares one, fast_ingest remembers them)
        key = (call.kind, call.model, repr(sorted(call.options.items())), call.time_range,
               schema)  # fmt: skip
        try:
            if key not in state._plans:
                lookups = lookups or Lookups(con)
                state._plans[key] = (plan_call(con, call, schema, lookups), schema)
            plan, schema = state._plans[key]
        except EvalstoreError as error:
            prepared.results[index] = error
            continue
        except duckdb.Error:  # answered by the direct lane, with execute_group's error
            prepared.direct.append(index)
            continue
        plans[index] = (plan, schema)
        last = (call, schema, plan)
    state.last_plan = last
    return plans


def _answer_batch_keys(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    plans: dict[int, tuple[Plan, pa.Schema]],
    prepared: Prepared,
    pending_keys: Callable[[str, str, str], Receipt | None],
) -> None:
    """A stored or journaled batch key answers its call with the first receipt; a key
    repeated within the group goes to the direct lane (answered after the first)."""
    wanted: dict[tuple[str, str], list[str]] = {}
    seen: set[tuple[str, str, str]] = set()
    for index, (plan, _) in plans.items():
        key = items[index].batch_key
        if key is None:
            continue
        if (plan.model, plan.kind, key) in seen:
            prepared.direct.append(index)
            continue
        seen.add((plan.model, plan.kind, key))
        pending = pending_keys(plan.model, plan.kind, key)
        if pending is not None:
            prepared.results[index] = replace(pending, duplicate=True)
        else:
            wanted.setdefault((plan.model, plan.kind), []).append(key)
    stored = {
        (model, kind, key): receipt
        for (model, kind), keys in wanted.items()
        for key, receipt in stored_receipts(con, model, kind, keys).items()
    }
    if not stored:
        return
    for index, (plan, _) in plans.items():
        key = (plan.model, plan.kind, items[index].batch_key)
        if key in stored and index not in prepared.direct:
            prepared.results[index] = stored[key]


def _convert(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[Item],
    plan: Plan,
    members: list[int],
    prepared: Prepared,
    batch_ids: Callable[[int], list[int]],
    state: WriterState,
) -> None:
    """Convert same-shaped calls together (in Python when :func:`python_convert` knows
    the shape and agreed with DuckDB on its first group and the group has at most
    :data:`PYTHON_ROWS` rows, else by one DuckDB query);
    accept those every check passes."""
    tables = [items[index].data for index in members]
    try:
        joined = pa.concat_tables(tables)  # zero-copy: validated before any buffer is copied
    except pa.ArrowInvalid:
        prepared.direct.extend(members)
        return
    if not _valid(joined):  # (rare: find the calls at fault, the others go on)
        bad_calls = [index for index in members if not _valid(items[index].data)]
        prepared.direct.extend(bad_calls)
        members = [index for index in members if index not in bad_calls]
        if not members:
            return
        tables = [items[index].data for index in members]
        joined = pa.concat_tables(tables)
    combined = joined.combine_chunks()
    ids = batch_ids(len(members))
    lengths = np.fromiter((t.num_rows for t in tables), dtype=np.int64, count=len(tables))
    received = [items[i].received_at for i in members]
    shape = (id(plan), combined.schema)
    agrees = state.python_agrees.get(shape)
    small = combined.num_rows <= PYTHON_ROWS
    python = None
    if small and agrees is not False:  # (the batch ids and receipt times as lists)
        given = _given(ids, received, lengths.tolist())
        python = python_convert(plan, combined, given)
    if python is not None and agrees:
        rows, hashes, bad = python
    else:
        try:
            rows, hashes, bad = sql_convert(con, plan, with_ids(combined, ids, received, lengths))
        except duckdb.Error:  # a value that does not convert: the direct lane names it
            prepared.direct.extend(members)
            return
        if python is not None:  # the first group of this shape: both, compared (the
            # rows of a call a check refuses are never journaled: a NaN score there is no
            # difference)
            kept = pa.array(~bad)
            same = (
                np.array_equal(bad, python[2])
                and np.array_equal(hashes, python[1])
                and rows.filter(kept).equals(python[0].filter(kept))
            )
            state.python_agrees[shape] = same
            if not same:
                log.warning(
                    "the journal's conversion in Python differs from DuckDB's for %s %s "
                    "(columns %s): that shape is converted by DuckDB from now on",
                    plan.model, plan.kind, plan.columns,
                )  # fmt: skip
    scope = None
    journaled: set[int] = set()
    refused = bad  # rows whose call may not be journaled: a check fails, a key is known
    check = next((c for c in plan.checks if c.stored_scope is not None), None)
    if check is not None:
        column = check.stored_scope
        value = plan.params[column]
        stored, journaled = state.keys(con, plan, column, value)
        scope = (plan.model, plan.table, column, value)
        refused = bad | stored.contains(hashes)
    within = any(c.within for c in plan.checks)
    track = scope is not None  # (ids repeated across calls only matter for a stored check)
    all_hashes = hashes.tolist()
    refused_rows = refused.tolist()
    accepted: list[tuple[int, int, int, int]] = []  # (n, index, lo, hi)
    if bool((lengths == 1).all()):  # one row a call: a service's requests
        for n, index in enumerate(members):
            mine = all_hashes[n]
            if refused_rows[n] or (track and mine in journaled):
                prepared.direct.append(index)
                continue
            if track:
                journaled.add(mine)  # the next calls' check sees this call's id
            accepted.append((n, index, n, n + 1))
    else:
        starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        for n, index in enumerate(members):
            lo, hi = starts[n], starts[n + 1]
            mine = all_hashes[lo:hi]
            if (
                any(refused_rows[lo:hi])
                or (within and len(set(mine)) < len(mine))
                or (track and not journaled.isdisjoint(mine))
            ):
                prepared.direct.append(index)
                continue
            if track:
                journaled.update(mine)  # the next calls' check sees this call's ids
            accepted.append((n, index, lo, hi))
    if not accepted:
        return
    if track:
        prepared.hashes.setdefault(scope, []).extend(
            h for _, _, lo, hi in accepted for h in all_hashes[lo:hi]
        )
    common = (plan.model, plan.kind, plan.env, plan.version, plan.dataset, tuple(plan.ignored),
              tuple(plan.warnings))  # fmt: skip
    model, kind, env, version, dataset, ignored, warnings = common
    for n, index, lo, hi in accepted:
        item = items[index]
        prepared.accepted[index] = Request(
            batch_id=ids[n],
            model=model,
            kind=kind,
            rows=hi - lo,
            received_at=item.received_at,
            source=item.source,
            batch_key=item.batch_key,
            env=env,
            version=version,
            dataset=dataset,
            columns_ignored=ignored,
            warnings=warnings,
        )
    if len(accepted) < len(members):
        taken = np.concatenate([np.arange(lo, hi) for _, _, lo, hi in accepted])
        rows = rows.take(pa.array(taken))
    prepared.segments.append(Segment(plan.model, plan.table, plan.kind, rows))


_MICROSECOND = timedelta(microseconds=1)


def _given(
    ids: list[int], received: list[datetime], lengths: list[int]
) -> dict[str, tuple[pa.DataType, list[Any]]]:
    """The per-row batch ids and receipt times (UTC microseconds) of calls of
    ``lengths`` rows each, as :func:`python_convert` takes them (what :func:`with_ids`
    adds to the table)."""
    at = [
        ((r if r.tzinfo else r.replace(tzinfo=UTC)) - EPOCH) // _MICROSECOND for r in received
    ]  # fmt: skip  (naive: UTC, as Arrow reads it)
    if all(n == 1 for n in lengths):
        return {_BATCH: (pa.int64(), list(ids)), _RECEIVED: (UTC_MICROS, at)}
    return {
        _BATCH: (pa.int64(), [i for i, n in zip(ids, lengths, strict=True) for _ in range(n)]),
        _RECEIVED: (UTC_MICROS, [a for a, n in zip(at, lengths, strict=True) for _ in range(n)]),
    }


def with_ids(
    combined: pa.Table, ids: list[int], received: list[Any], lengths: np.ndarray
) -> pa.Table:
    """``combined`` (the rows of calls of ``lengths`` rows each) with each row's call's
    batch id and receipt time, the columns the plan's expressions read."""
    calls = pa.array(np.repeat(np.arange(len(ids)), lengths))
    return combined.append_column(
        _BATCH, pa.array(np.repeat(np.array(ids, dtype=np.int64), lengths))
    ).append_column(_RECEIVED, pa.array(received, pa.timestamp("us", "UTC")).take(calls))


def sql_convert(
    con: duckdb.DuckDBPyConnection, plan: Plan, combined: pa.Table
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """``combined``'s rows converted by one DuckDB query of the plan's expressions: the
    table's columns, each row's ``hash(example_key)`` and whether a row-wise check fails."""
    columns = ", ".join(
        f"{expression} AS {quote(column)}"
        for column, expression in zip(plan.columns, _group_expressions(plan), strict=True)
    )
    row_wise = [c.where.format(table="", this="true", others="false") for c in plan.checks
                if c.where]  # fmt: skip
    failing = " OR ".join(f"({condition})" for condition in row_wise) or "false"
    incoming = f"__evalstore_incoming_{next(incoming_names)}"
    query = (
        f"SELECT *, hash(example_key) AS {_HASH}, coalesce({failing}, false) AS {_BAD} "
        f"FROM (SELECT {columns} FROM {quote(incoming)})"
    )
    params = used_params(query, plan.params)
    con.register(incoming, combined)
    try:
        converted = con.sql(query, params=params).to_arrow_table()
    finally:
        con.unregister(incoming)
    # (by position: a feature may be named like the two added columns)
    n = len(plan.columns)
    bad = converted.column(n + 1).to_numpy(zero_copy_only=False).astype(bool)
    hashes = converted.column(n).to_numpy(zero_copy_only=False).astype(np.uint64)
    return converted.select(range(n)), hashes, bad
