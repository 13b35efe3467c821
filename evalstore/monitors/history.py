"""The metric history: persisted metric calls, refreshed incrementally, and their series.

``store.drift(..., persist=True)`` (and ``quality``, ``performance``) runs
:func:`persisted`: the call's parameters are normalised (defaults filled, keyword order
irrelevant, times as UTC ISO text) and hashed; its result rows are stored in the shared
long table ``evalstore.metric_history`` (:mod:`evalstore.monitors.storage`) with the
input watermark they saw. The next identical call reads back the windows whose inputs
did not change and recomputes, in the same transaction, only the windows later batches
touched (:mod:`evalstore.monitors.fingerprints`; for drift and quality, whose windows are
cut on feature time, :func:`.history_windows.feature_time_windows`), replacing their
stored rows. The
answer is the table a fresh call returns, value for value and type for type.

Which calls refresh window by window, and which recompute everything when anything
changed (*coupled*: a window's result depends on other windows' rows):

=============== =====================================================================
family          refreshed per window unless
=============== =====================================================================
drift           ``window`` is rows per chunk or ``{'chunks': n}`` (a new row shifts
                every later chunk), or ``reference={'previous': n}`` (a window is the
                reference of the next n). ``'learned'`` thresholds depend on the
                reference alone, but the family itself does not reproduce them to the
                last bit from one call to the next (parallel summation order)
quality         as drift, unless the analysis has a window without rows (a gap): a
                gap lists every feature and output seen anywhere in the analysis
                (rows = 0), so its rows depend on every other window; a call with a
                gap, kept or recomputed, is recomputed whole
performance     ``by=`` is given (slices seen in any window are listed in every
                window) or a bootstrap metric (macro_f1, weighted_f1, ece) has
                ``n_boot > 0`` (one random stream is shared by all cells); chunked
                windows as drift. ``labels_due``/``labels_complete`` depend on every
                label of the model: they are recomputed on every read from the label
                horizon the call keeps current (:mod:`.history_horizon`)
=============== =====================================================================

A coupled call is still read back when nothing at all changed (same watermark, same
row counts, same context). A stored window that no longer holds any row (its feature
rows were replaced into other windows) is deleted. What every window depends on (the
reference rows, the registry, the feature columns, the macros' hash; performance reads
the reference only with ``by=``) is one context hash: when it changes, every window is
recomputed. Other families are not persisted: ``multivariate_drift``
(permutation tests and row samples drawn from one seed per call), ``validate`` (its
schema table is edited in place, without batch ids), ``compare`` and ``health``
(``health`` reads the clock; ``compare`` has not been verified window by window yet).

This module runs a persisted call. The call's parameters and its refresh plan are
:mod:`~evalstore.monitors.history_params`, the choice of windows to recompute
:mod:`~evalstore.monitors.history_windows`, the stored series :func:`history`
(:mod:`~evalstore.monitors.history_series`), performance's label horizon
:mod:`~evalstore.monitors.history_horizon`, the row storage
:mod:`~evalstore.monitors.storage` and the watermarks :mod:`~evalstore.monitors.fingerprints`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name, quote
from evalstore.metrics import performance as _performance
from evalstore.monitors import (
    fingerprints,
    history_horizon,
    history_params,
    history_windows,
    storage,
)
from evalstore.monitors.fingerprints import Watermark
from evalstore.monitors.history_params import (
    FAMILIES,
    Plan,
    family_function,
    normalise,
    params_hash,
)
from evalstore.monitors.history_series import (
    DEFAULT_HISTORY_ROWS,
    HISTORY_COLUMNS,
    MAX_HISTORY_ROWS,
    history,
)
from evalstore.monitors.history_touched import TouchedPredictions

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: The names callers import from here (the series and the parameters live in
#: :mod:`~evalstore.monitors.history_series` and :mod:`~evalstore.monitors.history_params`).
__all__ = [
    "DEFAULT_HISTORY_ROWS",
    "FAMILIES",
    "HISTORY_COLUMNS",
    "MAX_HISTORY_ROWS",
    "history",
    "normalise",
    "params_hash",
    "persisted",
]

# ---------------------------------------------------------------------- persisted calls


@dataclass(frozen=True)
class _Stored:
    schema: pa.Schema
    context: str
    mark: Watermark
    created_at: datetime
    counted: history_windows.Counted
    #: the reference fingerprint the call saw (None: stored before it was recorded)
    reference: list[Any] | None


def persisted(ctx: Context, family: str, model: str, arguments: Mapping[str, Any]) -> pa.Table:
    """``family(ctx, model, **arguments)``, read back from the metric history where its
    inputs did not change and recomputed (and stored) where they did.

    ``arguments`` are the family's parameters by name. Everything happens in one
    transaction: the windows read back, the windows recomputed and the rows replaced
    see one snapshot of the store and are committed together (a failure stores
    nothing). Raises what the family raises for bad parameters, and
    :class:`~evalstore.errors.ReadOnlyError` on a read-only store.
    """
    compute = family_function(family)
    check_model_name(model)
    ctx.check_writable()
    params = normalise(family, model, arguments)
    key = (model, family, params_hash(family, model, params))
    con = ctx.connection
    # the predictions of the examples touched since the watermark, shared by the label
    # horizon and the touched windows (one scan of the predictions' keys)
    shared = TouchedPredictions(con, model) if family == "performance" else None
    with ctx.lock:
        try:
            with transaction(con):
                return _persisted(ctx, compute, family, model, arguments, params, key, shared)
        finally:
            if shared is not None:  # after the commit or rollback
                shared.drop()


def _persisted(
    ctx: Context,
    compute: Callable[..., pa.Table],
    family: str,
    model: str,
    arguments: Mapping[str, Any],
    params: Mapping[str, Any],
    key: tuple[str, str, str],
    shared: TouchedPredictions | None,
) -> pa.Table:
    """The body of :func:`persisted`, inside its transaction."""
    con = ctx.connection
    registration = ctx.registration(model, arguments.get("version"))
    plan = history_params.plan(con, family, model, arguments, registration)
    mark = fingerprints.watermark(con, model)
    if family == "performance":
        _keep_horizon(con, model, params.get("delay_quantile"), shared)
    stored = _stored_call(con, key)
    reference = fingerprints.reference_fingerprint(
        con,
        model,
        plan.selection,
        stored.reference if stored is not None else None,
        stored.mark.labels if stored is not None else None,
    )
    extra: dict[str, Any] = {"reference": reference}
    if plan.coupled:
        extra["totals"] = history_windows.totals(con, model)
    context = fingerprints.context_hash(con, model, key[2], extra)
    totals = history_windows.row_totals(con, model)
    now = datetime.now(UTC)

    def run(**override: Any) -> pa.Table:
        return compute(ctx, model, **{**arguments, **override})

    def save(schema: pa.Schema) -> None:
        _save_call(con, key, params, schema, plan, context, mark, stored, now, totals, reference)

    current: dict[datetime, tuple[int, int]] = {}
    if plan.width is not None:
        counted = stored.counted if stored is not None else None
        current = history_windows.current_windows(con, model, plan, counted, totals)
    fresh = stored is not None and stored.context == context
    if fresh and plan.coupled and stored.mark == mark:
        table = _read_back(con, key, stored.schema, family, model, params)
        if table.num_rows:
            return table
    if fresh and not plan.coupled:
        assert stored is not None
        # windows stored but no longer listed (their rows were replaced into other
        # windows): deleted; windows touched or with other row counts: recomputed
        gone = history_windows.stored_starts(con, key) - set(current)
        stale = history_windows.stale_windows(con, key, model, plan, stored.mark, current, shared)
        if not stale and not gone:
            table = _read_back(con, key, stored.schema, family, model, params)
            if table.num_rows:
                save(stored.schema)
                return table
        elif stale < set(current):
            windows = (current, stale, gone)
            schema = _refresh(con, key, run, plan, stored.schema, windows, mark, now, shared)
            table = _read_back(con, key, schema, family, model, params) if schema else None
            if table is not None and table.num_rows:  # else computed whole below
                save(schema)
                return table
    table = run()
    storage.delete_windows(con, key, None)
    storage.insert_rows(con, key, table, mark, now)
    if plan.width is not None:
        storage.insert_windows(con, key, current.items(), plan.width, now)
    save(table.schema)
    return table


def _keep_horizon(
    con: duckdb.DuckDBPyConnection,
    model: str,
    delay_quantile: Any,
    shared: TouchedPredictions | None,
) -> None:
    """Bring the model's stored label horizon up to date before the family runs: its
    macros, and the read back, then read it instead of joining every label
    (:mod:`evalstore.monitors.history_horizon`). An invalid ``delay_quantile`` is left
    to the family to refuse."""
    valid = isinstance(delay_quantile, int | float) and not isinstance(delay_quantile, bool)
    if valid and 0 <= delay_quantile <= 1:
        history_horizon.refresh(con, model, float(delay_quantile), shared)


def _refresh(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    run: Callable[..., pa.Table],
    plan: Plan,
    schema: pa.Schema,
    windows: tuple[Mapping[datetime, tuple[int, int]], set[datetime], set[datetime]],
    mark: Watermark,
    now: datetime,
    shared: TouchedPredictions | None = None,
) -> pa.Schema | None:
    """Recompute the ``stale`` windows of a stored call (one family call per run of
    consecutive stale windows), replace their stored rows and window records, delete the
    ``gone`` ones; returns the result schema (that of the new rows, else ``schema``,
    the stored one). ``windows`` is ``(current, stale, gone)``: every window the call
    lists now with its row counts, and the starts to recompute and to delete.

    Performance (``shared`` given): a run whose predictions all belong to touched
    examples (the new day of a refresh; :meth:`TouchedPredictions.covers`) joins them
    with the touched examples' labels alone (:func:`_performance.labels_from`), not with
    every label of the model: the same rows, without a scan of every label's key.

    Quality (``plan.fill``) lists in a window without any analysis row (a *gap*: every
    row has ``n_analysis`` 0) each feature and output of the whole analysis, so a gap's
    rows depend on every other window; a window with rows depends only on its own. The
    stale windows are recomputed alone only when neither the kept windows nor the
    recomputed ones hold a gap; otherwise nothing is written and None is returned: the
    caller recomputes the call whole.
    """
    current, stale, gone = windows
    parts = []
    for start, end in history_windows.runs(con, sorted(current), stale, plan):
        if shared is not None and shared.covers(start, end):
            with _performance.labels_from(shared.labels()):
                parts.append(run(since=start, until=end))
        else:
            parts.append(run(since=start, until=end))
    if plan.fill:
        filled = {w for part in parts for w in history_windows.filled_windows(part)}
        if (
            history_windows.stored_gaps(con, key, stale | gone)
            or filled != stale
            or any(map(history_windows.gaps, parts))
        ):
            return None
    storage.delete_windows(con, key, stale | gone)
    for part in parts:
        storage.insert_rows(con, key, part, mark, now)
        if part.num_rows:
            schema = part.schema
    storage.insert_windows(
        con, key, ((s, current[s]) for s in sorted(stale)), plan.width or "", now
    )
    return schema


def _stored_call(con: duckdb.DuckDBPyConnection, key: Sequence[str]) -> _Stored | None:
    rows = con.execute(
        "SELECT result_schema, context_hash, features_batch, predictions_batch, labels_batch, "
        "created_at, feature_rows, prediction_rows, reference "
        f"FROM evalstore.metric_history_calls WHERE {storage.CALL_KEY}",
        list(key),
    ).fetchall()
    if not rows:
        return None
    schema, context, f, p, labels, created, feature_rows, prediction_rows, ref = rows[0]
    mark = Watermark(f, p, labels)
    counted = history_windows.Counted(tuple(key), mark, feature_rows, prediction_rows)
    reference = json.loads(ref) if ref is not None else None
    return _Stored(storage.deserialize_schema(schema), context, mark, created, counted, reference)


def _save_call(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    params: Mapping[str, Any],
    schema: pa.Schema,
    plan: Plan,
    context: str,
    mark: Watermark,
    stored: _Stored | None,
    now: datetime,
    totals: tuple[int, int],
    reference: list[Any],
) -> None:
    """Record the call: its parameters, result schema, context, watermark, the model's
    row totals its window counts were taken at, and the reference fingerprint."""
    con.execute(f"DELETE FROM evalstore.metric_history_calls WHERE {storage.CALL_KEY}", list(key))
    con.execute(
        "INSERT INTO evalstore.metric_history_calls (model, family, params_hash, params, "
        "result_schema, width, coupled, context_hash, features_batch, predictions_batch, "
        "labels_batch, created_at, refreshed_at, feature_rows, prediction_rows, reference) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            *key,
            json.dumps(params, sort_keys=True),
            storage.serialize_schema(schema),
            plan.width,
            plan.coupled,
            context,
            *mark.as_list(),
            stored.created_at if stored else now,
            now,
            *totals,
            json.dumps(reference),
        ],
    )


def _read_back(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    schema: pa.Schema,
    family: str,
    model: str,
    params: Mapping[str, Any],
) -> pa.Table:
    table = storage.read_rows(con, key, schema)
    if family == "performance" and table.num_rows:
        table = _label_horizon(con, table, model, params).cast(schema)
    return table


def _label_horizon(
    con: duckdb.DuckDBPyConnection, table: pa.Table, model: str, params: Mapping[str, Any]
) -> pa.Table:
    """``labels_due``/``labels_complete`` of every row recomputed now, as the performance
    macros compute them (``evalstore.label_horizon``): they move with every label."""
    name = "evalstore_history_horizon"
    ordinal = "evalstore_history_ordinal"
    con.register(name, table.append_column(ordinal, pa.array(range(table.num_rows))))
    try:
        return con.sql(
            f"""
            SELECT t.* EXCLUDE ({ordinal}) REPLACE (
                evalstore.add_hours(t.window_end, h.delay_hours) AS labels_due,
                coalesce(evalstore.add_hours(t.window_end, h.delay_hours) <= h.as_of, false)
                    AS labels_complete)
            FROM {quote(name)} AS t, evalstore.label_horizon(?, ?, ?) AS h
            ORDER BY t.{ordinal}
            """,
            params=[model, params["delay_quantile"], params["as_of"]],
        ).to_arrow_table()
    finally:
        con.unregister(name)
