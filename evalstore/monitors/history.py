"""The metric history: persisted metric calls, refreshed incrementally, and their series.

``store.drift(..., persist=True)`` (and ``quality``, ``performance``) runs
:func:`persisted`: the call's parameters are normalised (defaults filled, keyword order
irrelevant, times as UTC ISO text) and hashed; its result rows are stored in the shared
long table ``evalstore.metric_history`` (:mod:`evalstore.monitors.storage`) with the
input watermark they saw. The next identical call reads back the windows whose inputs
did not change and recomputes, in the same transaction, only the windows later batches
touched (:mod:`evalstore.monitors.fingerprints`), replacing their stored rows. The
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
                label of the model: they are recomputed on every read
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
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.bounds import bounded_int
from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.layout import model_relation
from evalstore.core.registry import to_timestamp
from evalstore.core.values import feature_kinds
from evalstore.core.windows import Selection, checked_window_args, reference_args, resolve
from evalstore.errors import InvalidParameterError
from evalstore.metrics import performance as _performance
from evalstore.metrics import quality as _quality
from evalstore.metrics.bootstrap import BOOTSTRAP_METRICS
from evalstore.metrics.drift import univariate as _drift
from evalstore.metrics.specs import chosen_names
from evalstore.monitors import fingerprints, storage
from evalstore.monitors.fingerprints import Reads, Watermark

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: The persisted families and the functions that compute them.
FAMILIES: dict[str, Callable[..., pa.Table]] = {
    "drift": _drift.drift,
    "quality": _quality.quality,
    "performance": _performance.performance,
}
#: Parameters that are times (normalised to UTC ISO text before hashing).
TIME_PARAMETERS = ("since", "until", "as_of")
#: Most rows :func:`history` returns by default, and at most.
DEFAULT_HISTORY_ROWS = 100_000
MAX_HISTORY_ROWS = 1_000_000
#: Columns of :func:`history`, in order.
HISTORY_COLUMNS = (
    "model", "family", "params_hash", "params", "window_start", "window_end", "version",
    "subject", "kind", "metric", "class", "variant", "value", "p_value", "threshold",
    "threshold_low", "threshold_source", "flagged", "ci_low", "ci_high", "n_reference",
    "n_analysis", "count", "n", "n_excluded", "predictions", "labeled", "label_coverage",
    "labels_complete", "labels_due", "reason", "slices", "features_batch",
    "predictions_batch", "labels_batch", "computed_at",
)  # fmt: skip


# ---------------------------------------------------------------------- parameters


def normalise(family: str, model: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The call's parameters with defaults filled, as canonical JSON values.

    Times (``since``, ``until``, ``as_of``, the ends of a ``(start, end)`` reference)
    become UTC ISO text, tuples lists, mappings key-sorted dicts; a value that has no
    JSON form raises :class:`InvalidParameterError` (nothing is computed or stored).
    """
    compute = _family(family)
    try:
        bound = inspect.signature(compute).bind(None, model, **arguments)
    except TypeError as error:
        raise InvalidParameterError(
            f"{family}(persist=True): {error}; pass the parameters {family}() takes"
        ) from None
    bound.apply_defaults()
    params = {k: v for k, v in bound.arguments.items() if k not in ("ctx", "model")}
    out = {}
    for name, value in params.items():
        if name in TIME_PARAMETERS:
            stamp = to_timestamp(value, name)
            out[name] = None if stamp is None else stamp.isoformat()
        elif name == "reference" and isinstance(value, tuple | list) and len(value) == 2:
            ends = [
                to_timestamp(v, f"reference {e}")
                for v, e in zip(value, ("start", "end"), strict=True)
            ]
            out[name] = {"range": [None if t is None else t.isoformat() for t in ends]}
        else:
            out[name] = _canonical(name, value)
    return out


def _canonical(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, datetime | date):
        stamp = to_timestamp(value, name)
        return {"time": stamp.isoformat() if stamp else None}
    if isinstance(value, Mapping):
        items = [(json.dumps(_canonical(name, k)), _canonical(name, v)) for k, v in value.items()]
        return {"map": sorted(items, key=lambda kv: kv[0])}
    if isinstance(value, tuple | list):
        return [_canonical(name, v) for v in value]
    raise InvalidParameterError(
        f"persist=True cannot record {name}={value!r} ({type(value).__name__}): pass "
        "numbers, text, times, lists or dicts of them"
    )


def params_hash(family: str, model: str, params: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 32 characters) of the family, model and normalised parameters."""
    text = json.dumps({"family": family, "model": model, "params": params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _family(family: str) -> Callable[..., pa.Table]:
    if family not in FAMILIES:
        raise InvalidParameterError(
            f"family={family!r} cannot be persisted; choose from {', '.join(FAMILIES)}"
        )
    return FAMILIES[family]


# ---------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """How a call's windows are refreshed (see the module docstring)."""

    width: str | None
    coupled: bool
    since: datetime | None
    until: datetime | None
    reads: Reads
    fill: bool
    reference: list[Any]


def _plan(
    con: duckdb.DuckDBPyConnection,
    family: str,
    model: str,
    arguments: Mapping[str, Any],
    registration: Mapping[str, Any],
) -> Plan:
    args = dict(inspect.signature(_family(family)).bind(None, model, **arguments).arguments)
    get = args.get
    window = get("window", "1 day")
    windows = checked_window_args(con, window)
    width = windows.get("width")
    since, until = to_timestamp(get("since"), "since"), to_timestamp(get("until"), "until")
    where, version = get("where"), get("version")
    reference = get("reference", "training")
    pinned = registration if version else None
    if family == "performance":
        by = get("by")
        task = registration["task"]
        available = _performance.TASK_METRICS[task]
        problem = f"not available for a {task} model; choose from {', '.join(available)}"
        chosen = chosen_names(get("metrics"), available, "metrics", problem)
        bootstrap = bool(set(chosen) & set(BOOTSTRAP_METRICS)) and get("n_boot", 200) != 0
        # the reference matters only for the bin edges of numeric ``by`` keys; without
        # ``by`` it is not read at all (its fingerprint would otherwise cover every row
        # of the model and turn each new batch into a whole recomputation)
        if by is None:
            selection = Selection(previous=1)
        else:
            ref = reference_args(reference, pinned)
            selection = Selection(**ref) if "previous" not in ref else Selection(previous=1)
        coupled = by is not None or bootstrap
        reads = Reads(False, False, where is not None or by is not None)
        fill = False
    else:
        selection = resolve(con, reference, window, pinned, since, until)
        # quality lists in a window without rows each feature and output its whole
        # analysis has (rows = 0): calls with such a gap are recomputed whole (``fill``)
        coupled = bool(selection.previous)
        reads = Reads(True, version is not None, where is not None)
        fill = family == "quality"
    return Plan(
        width=width,
        coupled=coupled or width is None,
        since=since,
        until=until,
        reads=reads,
        fill=fill,
        reference=fingerprints.reference_fingerprint(con, model, selection),
    )


# ---------------------------------------------------------------------- persisted calls


@dataclass(frozen=True)
class _Stored:
    schema: pa.Schema
    context: str
    mark: Watermark
    created_at: datetime


def persisted(ctx: Context, family: str, model: str, arguments: Mapping[str, Any]) -> pa.Table:
    """``family(ctx, model, **arguments)``, read back from the metric history where its
    inputs did not change and recomputed (and stored) where they did.

    ``arguments`` are the family's parameters by name. Everything happens in one
    transaction: the windows read back, the windows recomputed and the rows replaced
    see one snapshot of the store and are committed together (a failure stores
    nothing). Raises what the family raises for bad parameters, and
    :class:`~evalstore.errors.ReadOnlyError` on a read-only store.
    """
    compute = _family(family)
    check_model_name(model)
    ctx.check_writable()
    params = normalise(family, model, arguments)
    key = (model, family, params_hash(family, model, params))
    con = ctx.connection
    with ctx.lock, transaction(con):
        registration = ctx.registration(model, arguments.get("version"))
        plan = _plan(con, family, model, arguments, registration)
        mark = fingerprints.watermark(con, model)
        extra: dict[str, Any] = {"reference": plan.reference}
        if plan.coupled:
            extra["totals"] = _totals(con, model)
        context = fingerprints.context_hash(con, model, key[2], extra)
        stored = _stored_call(con, key)
        now = datetime.now(UTC)

        def run(**override: Any) -> pa.Table:
            return compute(ctx, model, **{**arguments, **override})

        current: dict[datetime, tuple[int, int]] = {}
        if plan.width is not None:
            current = _current_windows(con, model, plan)
        fresh = stored is not None and stored.context == context
        if fresh and plan.coupled and stored.mark == mark:
            table = _read_back(con, key, stored.schema, family, model, params)
            if table.num_rows:
                return table
        if fresh and not plan.coupled:
            assert stored is not None
            # windows stored but no longer listed (their rows were replaced into other
            # windows): deleted; windows touched or with other row counts: recomputed
            gone = _stored_starts(con, key) - set(current)
            stale = _stale_windows(con, key, model, plan, stored.mark, current)
            if not stale and not gone:
                table = _read_back(con, key, stored.schema, family, model, params)
                if table.num_rows:
                    _save_call(con, key, params, stored.schema, plan, context, mark, stored, now)
                    return table
            elif stale < set(current):
                windows = (current, stale, gone)
                schema = _refresh(con, key, run, plan, stored.schema, windows, mark, now)
                table = _read_back(con, key, schema, family, model, params) if schema else None
                if table is not None and table.num_rows:  # else computed whole below
                    _save_call(con, key, params, schema, plan, context, mark, stored, now)
                    return table
        table = run()
        storage.delete_windows(con, key, None)
        storage.insert_rows(con, key, table, mark, now)
        if plan.width is not None:
            storage.insert_windows(con, key, current.items(), plan.width, now)
        _save_call(con, key, params, table.schema, plan, context, mark, stored, now)
        return table


def _refresh(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    run: Callable[..., pa.Table],
    plan: Plan,
    schema: pa.Schema,
    windows: tuple[Mapping[datetime, tuple[int, int]], set[datetime], set[datetime]],
    mark: Watermark,
    now: datetime,
) -> pa.Schema | None:
    """Recompute the ``stale`` windows of a stored call (one family call per run of
    consecutive stale windows), replace their stored rows and window records, delete the
    ``gone`` ones; returns the result schema (that of the new rows, else ``schema``,
    the stored one). ``windows`` is ``(current, stale, gone)``: every window the call
    lists now with its row counts, and the starts to recompute and to delete.

    Quality (``plan.fill``) lists in a window without any analysis row (a *gap*: every
    row has ``n_analysis`` 0) each feature and output of the whole analysis, so a gap's
    rows depend on every other window; a window with rows depends only on its own. The
    stale windows are recomputed alone only when neither the kept windows nor the
    recomputed ones hold a gap; otherwise nothing is written and None is returned: the
    caller recomputes the call whole.
    """
    current, stale, gone = windows
    parts = [run(since=start, until=end) for start, end in _runs(con, sorted(current), stale, plan)]
    if plan.fill:
        filled = {w for part in parts for w in _filled_windows(part)}
        if _stored_gaps(con, key, stale | gone) or filled != stale or any(map(_gaps, parts)):
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


def _filled_windows(part: pa.Table) -> set[datetime]:
    """The window starts a family result has rows for."""
    return set(part.column("window_start").to_pylist()) if part.num_rows else set()


def _gaps(part: pa.Table) -> bool:
    """Whether a quality result holds a window without analysis rows (gap)."""
    if not part.num_rows:
        return False
    most = part.group_by("window_start").aggregate([("n_analysis", "max")])
    return any(not n for n in most.column("n_analysis_max").to_pylist())


def _stored_gaps(
    con: duckdb.DuckDBPyConnection, key: Sequence[str], dropped: set[datetime]
) -> bool:
    """Whether the stored windows that stay (not in ``dropped``) hold a gap."""
    rows = con.execute(
        f"SELECT window_start FROM evalstore.metric_history WHERE {storage.CALL_KEY} "
        "AND NOT list_contains(?::TIMESTAMPTZ[], window_start) "
        "GROUP BY window_start HAVING coalesce(max(n_analysis), 0) = 0 LIMIT 1",
        [*key, sorted(dropped)],
    ).fetchall()
    return bool(rows)


def _totals(con: duckdb.DuckDBPyConnection, model: str) -> list[int]:
    """Serving feature rows and predictions of the model (removals show only here)."""
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    s = con.execute(
        f"SELECT (SELECT count(*) FROM {features} WHERE env = 'serving'), "
        f"(SELECT count(*) FROM {predictions})"
    ).fetchall()[0]
    return [int(s[0]), int(s[1])]


def _current_windows(
    con: duckdb.DuckDBPyConnection, model: str, plan: Plan
) -> dict[datetime, tuple[int, int]]:
    """Every window the fresh call lists, with its row counts: the non-empty windows,
    and for quality the empty ones between them (or across ``[since, until)``)."""
    assert plan.width is not None
    counts = fingerprints.bucket_counts(con, model, plan.width, plan.since, plan.until)
    if not plan.fill:
        return counts
    has_features = bool(feature_kinds(con, model))
    seen = [s for s, (f, p) in counts.items() if p or (f and has_features)]
    first, last = (min(seen), max(seen)) if seen else (None, None)
    starts = con.execute(
        "SELECT unnest(evalstore.analysis_window_starts(?, ?, ?, ?, ?))",
        [plan.since, plan.until, first, last, plan.width],
    ).fetchall()
    filled = {start: counts.get(start, (0, 0)) for (start,) in starts}
    return {**filled, **counts}


def _stale_windows(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    model: str,
    plan: Plan,
    mark: Watermark,
    current: Mapping[datetime, tuple[int, int]],
) -> set[datetime]:
    assert plan.width is not None
    stored = {
        start: (int(f), int(p))
        for start, f, p in con.execute(
            "SELECT window_start, feature_rows, prediction_rows FROM "
            f"evalstore.metric_history_windows WHERE {storage.CALL_KEY}",
            list(key),
        ).fetchall()
    }
    touched = fingerprints.touched_windows(
        con, model, plan.width, plan.since, plan.until, mark, plan.reads
    )
    changed = {s for s, counts in current.items() if stored.get(s) != counts}
    return (touched & set(current)) | changed


def _stored_starts(con: duckdb.DuckDBPyConnection, key: Sequence[str]) -> set[datetime]:
    rows = con.execute(
        f"SELECT window_start FROM evalstore.metric_history_windows WHERE {storage.CALL_KEY} "
        f"UNION SELECT window_start FROM evalstore.metric_history WHERE {storage.CALL_KEY}",
        [*key, *key],
    ).fetchall()
    return {start for (start,) in rows}


def _runs(
    con: duckdb.DuckDBPyConnection, starts: Sequence[datetime], stale: set[datetime], plan: Plan
) -> list[tuple[datetime, datetime]]:
    """``[since, until)`` of each run of consecutive stale windows, clipped to the call's
    own ``since``/``until``."""
    runs: list[list[datetime]] = []
    previous_stale = False
    for start in starts:
        if start in stale:
            if previous_stale:
                runs[-1].append(start)
            else:
                runs.append([start])
        previous_stale = start in stale
    out = []
    for run in runs:
        end = con.execute(
            "SELECT evalstore.window_end(CAST(? AS TIMESTAMPTZ), ?)", [run[-1], plan.width]
        ).fetchall()[0][0]
        low = run[0] if plan.since is None else max(run[0], plan.since)
        high = end if plan.until is None else min(end, plan.until)
        out.append((low, high))
    return out


def _stored_call(con: duckdb.DuckDBPyConnection, key: Sequence[str]) -> _Stored | None:
    rows = con.execute(
        "SELECT result_schema, context_hash, features_batch, predictions_batch, labels_batch, "
        f"created_at FROM evalstore.metric_history_calls WHERE {storage.CALL_KEY}",
        list(key),
    ).fetchall()
    if not rows:
        return None
    schema, context, f, p, labels, created = rows[0]
    return _Stored(storage.deserialize_schema(schema), context, Watermark(f, p, labels), created)


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
) -> None:
    con.execute(f"DELETE FROM evalstore.metric_history_calls WHERE {storage.CALL_KEY}", list(key))
    con.execute(
        "INSERT INTO evalstore.metric_history_calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


# ---------------------------------------------------------------------- the series


def history(
    ctx: Context,
    model: str,
    family: str | None = None,
    metric: str | Sequence[str] | None = None,
    feature: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    *,
    version: str | None = None,
    limit: int = DEFAULT_HISTORY_ROWS,
) -> pa.Table:
    """The stored metric series of ``model``: one row per persisted result row.

    Filters: ``family`` (drift, quality, performance), ``metric`` (a drift method,
    quality check or performance metric, or a list), ``feature`` (the subject: a
    feature, an output, or a performance slice's text, or a list), ``version``, and
    ``since <= window_start < until``. Columns (:data:`HISTORY_COLUMNS`): the call
    (``family``, ``params_hash`` and its ``params`` as JSON text), the window, the
    subject and metric, every numeric result column of the families (NULL where a family
    has none), ``flagged`` (drift's and quality's ``drifted``), ``slices`` (performance
    ``by`` keys as a map), the input watermark the row saw (``features_batch``,
    ``predictions_batch``, ``labels_batch``) and ``computed_at``. Performance rows get
    ``labels_due``/``labels_complete`` as of now. Rows are in family, call, window
    order. More than ``limit`` rows (default 100,000, at most 1,000,000) raise
    :class:`InvalidParameterError`: narrow the filters. An unregistered model or
    ``version`` raises :class:`~evalstore.errors.UnknownModelError`; a model without
    persisted calls has an empty history.
    """
    check_model_name(model)
    ctx.registration(model, version)
    if family is not None:
        _family(family)
    limit = bounded_int(limit, "limit", most=MAX_HISTORY_ROWS)
    start, end = to_timestamp(since, "since"), to_timestamp(until, "until")
    metrics = _names(metric, "metric")
    subjects = _names(feature, "feature")
    columns = ", ".join(
        "c.params::VARCHAR AS params" if c == "params" else f"h.{quote(c)}" for c in HISTORY_COLUMNS
    )
    sql = f"""
        SELECT {columns} FROM evalstore.metric_history AS h
        JOIN evalstore.metric_history_calls AS c USING (model, family, params_hash)
        WHERE h.model = $model AND ($family IS NULL OR h.family = $family)
          AND ($metrics IS NULL OR list_contains($metrics, h.metric))
          AND ($subjects IS NULL OR list_contains($subjects, h.subject))
          AND ($version IS NULL OR h.version = $version)
          AND ($since IS NULL OR h.window_start >= $since)
          AND ($until IS NULL OR h.window_start < $until)
        ORDER BY h.family, h.params_hash, h.window_start, h.row_index
        LIMIT $limit
    """
    params = {
        "model": model, "family": family, "metrics": metrics, "subjects": subjects,
        "version": version, "since": start, "until": end, "limit": limit + 1,
    }  # fmt: skip
    con = ctx.connection
    with ctx.lock, transaction(con):
        table = con.sql(sql, params=params).to_arrow_table()
        if table.num_rows > limit:
            raise InvalidParameterError(
                f"history of {model!r} has more than limit={limit} rows for these filters; "
                "narrow them (family, metric, feature, version, since/until) or raise limit "
                "(--max-rows on the command line)"
            )
        return _history_horizon(con, table, model)


def _names(value: str | Sequence[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(v, str) and v for v in items):
        raise InvalidParameterError(f"{name} must be a non-empty string or list of strings")
    return items


def _history_horizon(con: duckdb.DuckDBPyConnection, table: pa.Table, model: str) -> pa.Table:
    """Performance rows' ``labels_due``/``labels_complete`` recomputed as of now."""
    calls = sorted(
        {
            (h, p)
            for f, h, p in zip(
                table.column("family").to_pylist(),
                table.column("params_hash").to_pylist(),
                table.column("params").to_pylist(),
                strict=True,
            )
            if f == "performance"
        }
    )
    if not calls:
        return table
    horizons = []
    for call_hash, text in calls:
        params = json.loads(text)
        row = con.execute(
            "SELECT delay_hours, as_of FROM evalstore.label_horizon(?, ?, ?)",
            [model, params["delay_quantile"], params["as_of"]],
        ).fetchall()[0]
        horizons.append({"params_hash": call_hash, "delay_hours": row[0], "as_of": row[1]})
    name, ordinal = "evalstore_history_series", "evalstore_history_ordinal"
    con.register(name, table.append_column(ordinal, pa.array(range(table.num_rows))))
    con.register("evalstore_history_horizons", pa.Table.from_pylist(horizons))
    try:
        due = "evalstore.add_hours(t.window_end, h.delay_hours)"
        return con.sql(
            f"""
            SELECT t.* EXCLUDE ({ordinal}) REPLACE (
                CASE WHEN t.family = 'performance' THEN {due} ELSE t.labels_due END
                    AS labels_due,
                CASE WHEN t.family = 'performance' THEN coalesce({due} <= h.as_of, false)
                     ELSE t.labels_complete END AS labels_complete)
            FROM {name} AS t LEFT JOIN evalstore_history_horizons AS h USING (params_hash)
            ORDER BY t.{ordinal}
            """
        ).to_arrow_table()
    finally:
        con.unregister(name)
        con.unregister("evalstore_history_horizons")
