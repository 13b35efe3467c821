"""Health monitors: the figures of ``store.health`` as series a rule can judge.

A monitor of family ``health`` watches one metric of :func:`evalstore.metrics.health.health`
(the macros of ``sql/health.sql``). Health is cheap (aggregates of the predictions table,
the batch audit trail and the registry), so it is **computed fresh on every run**: the
metric history does not persist it, and a run reads the whole series again. Four kinds of
metric, each with its subjects and its windows:

================= ======================================= =========== ===================
kind              metrics                                 subjects    windows
================= ======================================= =========== ===================
serving           predictions, throughput, errors,        versions    prediction time
                  error_rate, latency_p50/p95/p99                     (``window`` wide)
volume            ingest_batches, ingest_rows             streams     commit time
freshness         freshness (hours since the stream's     streams     the run's bucket
                  last committed batch)
age               version_age, model_age,                 versions    the run's bucket
                  training_data_age (days)
event             dependency_changed                      versions    the version's event
================= ======================================= =========== ===================

**Streams** are ``features/<env>`` (training, validation, serving), ``predictions`` (every
version's prediction batches together: a version that is retired does not make the stream
stale) and ``labels``; volume sums the versions' batches, freshness is the time since the
newest batch of any version.

**Serving and volume** are windowed like the other families, with two rules: a window's
``n`` (what ``min_rows`` counts) is its predictions (serving) or its committed rows
(volume), and the totals over a window's width (``predictions``, ``throughput``,
``errors``, ``ingest_batches``, ``ingest_rows``: :data:`WHOLE_WINDOW`) are judged only
once the window has ended at ``now`` -- an unfinished window reads low only because it is
unfinished. Rates and quantiles (``error_rate``, latencies) are judged while the window
fills, as the other families' windows are. Volume windows without a batch count 0, from
the window of the stream's first batch on (health lists only windows with batches).

**Point-in-time metrics** (freshness, ages) have no past windows at run time: a run
measures the value at its ``now`` and judges it as the value of the window of width
``window`` that holds ``now`` (``[window_start(now), window_start(now) + window)``, aligned
as every window is). Runs inside one window re-judge that window with the newest value
(the alert engine counts a window once, with its latest verdict), so a stream that stops
fires in the window where its staleness crosses the limit and resolves in the run that
sees it resume. ``n`` is 1. Freshness here is health's ``freshness`` restricted to the
batches committed at or before the instant (equal to health's at the current time).
Ages are health's ``health_staleness`` at ``as_of = now`` (deployed versions only).

**Events**: ``dependency_changed`` is 1 for a version whose dependencies differ from those
of the version registered before it (any package added, removed or of another version:
a row of health's ``dependencies`` section), 0 when they are the same; the first version
has no value. Its window is the one holding the version's ``deployed_at`` (its
``created_at`` when it was never deployed): the change matters from when it serves. The
window after it, when it has started (at run time: the run's bucket), has value 0 --
nothing changes in a version after its event -- so a ``fixed`` rule above 0 fires once per
changed version and resolves at the next window.

**Replay** (:func:`evalstore.monitors.backtest.backtest_monitor`, ``replay=True``): serving,
volume and events are the same series. Freshness is replayed from the commit times in
``evalstore.batches``: each window from the one of the model's first batch to ``until``
(default the current time) gets the hours from the stream's last batch committed at or
before the window's end (or the current time, for the window now filling) to that
instant: what the last run inside the window would have measured. Ages are replayed the
same way from ``health_staleness`` at each window's end, with the registry and training
rows as they are now (a version's past ``deployed_at``/``retired_at`` are not kept, and a
training row logged later counts as if it had been there: like a performance backtest's
labels, the present stands for the past).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.db import transaction
from evalstore.errors import InvalidParameterError
from evalstore.metrics.health import health
from evalstore.monitors.rules import MAX_WINDOWS
from evalstore.monitors.verdicts import Series

if TYPE_CHECKING:
    from evalstore.core.context import Context
    from evalstore.monitors.definitions import Monitor

#: Golden signals per version and window of prediction time (health's ``serving``).
SERVING = (
    "predictions", "throughput", "errors", "error_rate", "latency_p50", "latency_p95",
    "latency_p99",
)  # fmt: skip
#: Batches and rows per stream and window of commit time (health's ``ingest``).
VOLUME = ("ingest_batches", "ingest_rows")
#: Hours since each stream's last committed batch (point in time).
FRESHNESS = ("freshness",)
#: Days since deployment, training and the newest training row, per deployed version.
AGES = ("version_age", "model_age", "training_data_age")
#: One value per version: its dependencies differ from the previous version's.
EVENTS = ("dependency_changed",)
#: Every metric a health monitor may watch.
METRICS = SERVING + VOLUME + FRESHNESS + AGES + EVENTS
#: Metrics whose subjects are ingest streams (the others' are versions).
STREAM_METRICS = VOLUME + FRESHNESS
#: Totals over a window's width: judged only once the window has ended.
WHOLE_WINDOW = ("predictions", "throughput", "errors", "ingest_batches", "ingest_rows")
#: Stream names (``evalstore.batches`` kinds, features by env).
STREAM = re.compile(r"^(features/(training|validation|serving)|predictions|labels)$")

#: A batch's stream: health_ingest's subject, the prediction versions together.
_STREAM_SQL = "CASE WHEN b.kind = 'features' THEN b.kind || '/' || b.env ELSE b.kind END"


def check_subjects(metric: str, subjects: Sequence[str] | None, versions: Sequence[str]) -> None:
    """Refuse subjects that cannot be ``metric``'s: a version not registered (version
    metrics) or a name that is not a stream (:data:`STREAM`)."""
    if subjects is None:
        return
    if metric in STREAM_METRICS:
        bad = [s for s in subjects if not STREAM.match(s)]
        if bad:
            raise InvalidParameterError(
                f"subjects: {bad[0]!r} is not an ingest stream; {metric} subjects are "
                "'features/serving', 'features/training', 'features/validation', "
                "'predictions' or 'labels'"
            )
        return
    unknown = [s for s in subjects if s not in versions]
    if unknown:
        raise InvalidParameterError(
            f"subjects: {unknown[0]!r} is not a version of this model (registered: "
            f"{', '.join(versions)}); {metric} subjects are versions"
        )


def health_series(
    ctx: Context,
    monitor: Monitor,
    now: datetime,
    *,
    replay: bool = False,
    until: datetime | None = None,
) -> list[tuple[str, Series]]:
    """The series of ``monitor`` (family ``health``) per subject, oldest window first
    (module docstring). ``now`` is the run's time (aware); ``replay`` rebuilds the
    point-in-time metrics' past windows up to ``until`` (default ``now``) for a
    backtest. Subjects in order of name; writes nothing."""
    metric = monitor.metric
    con = ctx.connection
    with ctx.lock, transaction(con):
        if metric in SERVING:
            table = _serving(ctx, monitor, now)
        elif metric in VOLUME:
            table = _volume(ctx, monitor, now)
        elif metric in FRESHNESS:
            table = _freshness(ctx, monitor, now, replay, until)
        elif metric in AGES:
            table = _ages(ctx, monitor, now, replay, until)
        else:
            table = _events(ctx, monitor, now, replay, until)
    if monitor.subjects is not None:
        keep = pc.is_in(table.column("subject"), pa.array(list(monitor.subjects), pa.string()))
        table = table.filter(keep)
    if monitor.version is not None and metric not in STREAM_METRICS:
        table = table.filter(pc.equal(table.column("subject"), monitor.version))
    return _split(table)


def _width_seconds(ctx: Context, window: str) -> float:
    sql = "SELECT epoch(CAST(? AS INTERVAL))"
    return float(ctx.connection.execute(sql, [window]).fetchall()[0][0])


def _check_span(ctx: Context, window: str, first: datetime | None, last: datetime) -> None:
    """Refuse a grid of more than :data:`MAX_WINDOWS` windows before building it."""
    if first is None:
        return
    count = (last - first).total_seconds() / _width_seconds(ctx, window) + 1
    if count > MAX_WINDOWS:
        raise InvalidParameterError(
            f"window={window!r} from {first.isoformat()} to {last.isoformat()} makes "
            f"{math.ceil(count)} windows, above the limit of {MAX_WINDOWS}; use wider "
            "windows or a later since="
        )


def _serving(ctx: Context, monitor: Monitor, now: datetime) -> pa.Table:
    table = health(ctx, monitor.model, monitor.window, monitor.version, sections="serving")
    metric = table.column("metric")
    # every (version, window) cell has every metric, in the same order: rows align
    rows = table.filter(pc.equal(metric, monitor.metric))
    counts = table.filter(pc.equal(metric, "predictions")).column("value")
    out = pa.table(
        {
            "subject": rows.column("version"),
            "window_start": rows.column("window_start"),
            "window_end": rows.column("window_end"),
            "value": rows.column("value"),
            "n": pc.cast(counts, pa.int64()),
        }
    )
    if monitor.metric in WHOLE_WINDOW:
        out = out.filter(
            pc.less_equal(out.column("window_end"), pa.scalar(now, out.column("window_end").type))
        )
    return out


def _volume(ctx: Context, monitor: Monitor, now: datetime) -> pa.Table:
    con = ctx.connection
    first = con.execute(
        "SELECT min(committed_at) FROM evalstore.batches WHERE model = ?", [monitor.model]
    ).fetchall()[0][0]
    _check_span(ctx, monitor.window, first, now)
    return con.sql(
        "WITH h AS (SELECT subject, window_start, metric, value "
        "  FROM evalstore.health_ingest($model, $width, $now) "
        "  WHERE window_start IS NOT NULL), "
        "per AS (SELECT subject, window_start, "
        "  sum(CASE WHEN metric = $metric THEN value END) AS value, "
        "  sum(CASE WHEN metric = 'ingest_rows' THEN value END) AS n "
        "  FROM h GROUP BY subject, window_start), "
        "starts AS (SELECT subject, min(window_start) AS first FROM per GROUP BY subject), "
        "grid AS (SELECT s.subject, g.window_start FROM starts AS s, "
        "  evalstore.time_grid(s.first, CAST($now AS TIMESTAMPTZ), $width) AS g) "
        "SELECT g.subject, g.window_start, "
        "  evalstore.window_end(g.window_start, $width) AS window_end, "
        "  coalesce(p.value, 0.0) AS value, CAST(coalesce(p.n, 0) AS BIGINT) AS n "
        "FROM grid AS g LEFT JOIN per AS p "
        "  ON p.subject = g.subject AND p.window_start = g.window_start "
        "WHERE evalstore.window_end(g.window_start, $width) <= $now ORDER BY 1, 2",
        params={
            "model": monitor.model,
            "width": monitor.window,
            "now": now,
            "metric": monitor.metric,
        },
    ).to_arrow_table()


def _bucket(ctx: Context, window: str, at: datetime) -> tuple[datetime, datetime]:
    """The window of width ``window`` holding ``at`` (``[start, end)``)."""
    start, end = ctx.connection.execute(
        "SELECT evalstore.window_start(CAST(? AS TIMESTAMPTZ), ?), "
        "evalstore.window_end(evalstore.window_start(CAST(? AS TIMESTAMPTZ), ?), ?)",
        [at, window, at, window, window],
    ).fetchall()[0]
    return start, end


def _grid_sql(replay: bool) -> str:
    """The windows judged, with the instant each is measured at: the run's bucket at
    ``$now``, or (replay) every window from ``$first`` to ``$last``, each measured at its
    end or at ``$now`` for the one still filling."""
    if not replay:
        return (
            "grid AS (SELECT CAST($start AS TIMESTAMPTZ) AS window_start, "
            "CAST($end AS TIMESTAMPTZ) AS window_end, CAST($now AS TIMESTAMPTZ) AS at)"
        )
    return (
        "cells AS (SELECT g.window_start, evalstore.window_end(g.window_start, $width) "
        "  AS window_end FROM evalstore.time_grid(CAST($first AS TIMESTAMPTZ), "
        "  CAST($last AS TIMESTAMPTZ), $width) AS g), "
        "grid AS (SELECT window_start, window_end, "
        "  least(window_end, CAST($now AS TIMESTAMPTZ)) AS at FROM cells "
        "  WHERE window_start <= CAST($now AS TIMESTAMPTZ))"
    )


def _grid_params(
    ctx: Context,
    monitor: Monitor,
    now: datetime,
    replay: bool,
    until: datetime | None,
    first_sql: str,
) -> dict[str, Any] | None:
    """The parameters of :func:`_grid_sql`: ``$now`` and the current window's ``$start``
    / ``$end``, or, with ``replay``, the windows from the earliest time ``first_sql``
    selects (one ``?``, the model) to ``until`` (default ``now``). None when that earliest
    time is NULL (the model has nothing to put on a grid)."""
    first = ctx.connection.execute(first_sql, [monitor.model]).fetchall()[0][0]
    if first is None:
        return None
    params: dict[str, Any] = {"now": now}
    if replay:
        last = min(until, now) if until is not None else now
        _check_span(ctx, monitor.window, first, last)
        params.update(first=first, last=last, width=monitor.window)
    else:
        params.update(zip(("start", "end"), _bucket(ctx, monitor.window, now), strict=True))
    return params


def _freshness(
    ctx: Context, monitor: Monitor, now: datetime, replay: bool, until: datetime | None
) -> pa.Table:
    first_sql = "SELECT min(committed_at) FROM evalstore.batches WHERE model = ?"
    params = _grid_params(ctx, monitor, now, replay, until, first_sql)
    if params is None:
        return _empty()
    return ctx.connection.sql(
        f"WITH b AS (SELECT {_STREAM_SQL} AS stream, b.committed_at "
        "  FROM evalstore.batches AS b WHERE b.model = $model), "
        f"{_grid_sql(replay)} "
        "SELECT b.stream AS subject, g.window_start, g.window_end, "
        "  (epoch(g.at) - epoch(max(b.committed_at))) / 3600.0 AS value, CAST(1 AS BIGINT) AS n "
        "FROM grid AS g JOIN b ON b.committed_at <= g.at "
        "GROUP BY b.stream, g.window_start, g.window_end, g.at ORDER BY 1, 2",
        params={**params, "model": monitor.model},
    ).to_arrow_table()


def _ages(
    ctx: Context, monitor: Monitor, now: datetime, replay: bool, until: datetime | None
) -> pa.Table:
    first_sql = "SELECT min(deployed_at) FROM evalstore.models WHERE model = ?"
    params = _grid_params(ctx, monitor, now, replay, until, first_sql)
    if params is None:
        return _empty()
    return ctx.connection.sql(
        f"WITH {_grid_sql(replay)} "
        "SELECT h.version AS subject, g.window_start, g.window_end, h.value, "
        "  CAST(1 AS BIGINT) AS n "
        "FROM grid AS g, evalstore.health_staleness($model, g.at) AS h "
        "WHERE h.metric = $metric ORDER BY 1, 2",
        params={**params, "model": monitor.model, "metric": monitor.metric},
    ).to_arrow_table()


def _events(
    ctx: Context, monitor: Monitor, now: datetime, replay: bool, until: datetime | None
) -> pa.Table:
    con = ctx.connection
    rows = con.execute(
        "WITH ordered AS (SELECT m.version, coalesce(m.deployed_at, m.created_at) AS at, "
        "  lag(m.version) OVER (ORDER BY m.created_at, m.version) AS previous "
        "  FROM evalstore.models AS m WHERE m.model = $model), "
        "changed AS (SELECT DISTINCT d.version FROM evalstore.health_dependencies($model) AS d) "
        "SELECT o.version, evalstore.window_start(o.at, $width) AS window_start, "
        "  evalstore.window_end(evalstore.window_start(o.at, $width), $width) AS window_end, "
        "  CAST(CASE WHEN c.version IS NULL THEN 0 ELSE 1 END AS DOUBLE) AS value "
        "FROM ordered AS o LEFT JOIN changed AS c ON c.version = o.version "
        "WHERE o.previous IS NOT NULL AND o.at <= $now ORDER BY o.version",
        {"model": monitor.model, "width": monitor.window, "now": now},
    ).fetchall()
    if replay:
        last = min(until, now) if until is not None else now
        follow = None
    else:
        follow = _bucket(ctx, monitor.window, now)
    records = []
    for version, start, end, value in rows:
        records.append((version, start, end, value))
        if follow is None:  # replay: the next window, if it has started by `last`
            if end < last:
                after = _bucket(ctx, monitor.window, end)
                records.append((version, *after, 0.0))
        elif follow[0] > start:
            records.append((version, *follow, 0.0))
    return pa.Table.from_pylist(
        [{"subject": v, "window_start": s, "window_end": e, "value": x, "n": 1}
         for v, s, e, x in records],
        schema=_SCHEMA,
    )  # fmt: skip


_SCHEMA = pa.schema(
    [
        ("subject", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("n", pa.int64()),
    ]
)


def _empty() -> pa.Table:
    return _SCHEMA.empty_table()


def _naive_utc(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = pc.cast(column, pa.timestamp("us"))
    return column.to_numpy(zero_copy_only=False).astype("datetime64[us]")


def _split(table: pa.Table) -> list[tuple[str, Series]]:
    """One :class:`Series` per subject of a ``subject, window_start, window_end, value,
    n`` table sorted by subject then window (NULL values become NaN)."""
    if table.num_rows == 0:
        return []
    subjects = np.array(table.column("subject").to_pylist(), dtype=object)
    starts = _naive_utc(table.column("window_start"))
    ends = _naive_utc(table.column("window_end"))
    values = np.array(
        [math.nan if v is None else float(v) for v in table.column("value").to_pylist()]
    )
    rows = np.array([0 if v is None else int(v) for v in table.column("n").to_pylist()])
    out = []
    for name in sorted(set(subjects.tolist())):
        mask = subjects == name
        out.append(
            (
                str(name),
                Series(
                    window_start=starts[mask],
                    value=values[mask],
                    n=rows[mask],
                    window_end=ends[mask],
                ),
            )
        )
    return out
