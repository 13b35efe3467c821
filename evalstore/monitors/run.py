"""Running monitors: the metric series, the rule's verdicts, the alert state, one commit.

:func:`run_monitors` evaluates every enabled monitor (of one model, or all). For each
monitor, in one write transaction on the caller's connection:

1. the family computes the metric with the metric history
   (:func:`evalstore.monitors.history.persisted`), so a run recomputes only the windows
   later batches touched and reads the others back; a ``health`` monitor's series is
   computed fresh (:mod:`evalstore.monitors.health_series`: health is cheap), its
   point-in-time metrics (freshness, ages) measured at the run's ``now`` and judged as
   the value of the window holding ``now``; ``skew``, ``summary_stats`` and
   ``estimated_performance`` monitors are computed fresh too (their modules
   :mod:`~evalstore.monitors.skew_series`, :mod:`~evalstore.monitors.summary_series`,
   :mod:`~evalstore.monitors.estimation_series` cut their own series);
2. :func:`series_of` cuts the result into one :class:`~evalstore.monitors.verdicts.Series`
   per subject (values, rows, ``labels_complete`` for performance metrics);
3. the rule gives a verdict per window (:func:`evalstore.monitors.verdicts.evaluate`;
   a ``learned`` rule takes as reference the subject's values in ``learn_period``);
4. :func:`evalstore.monitors.alerts.record` advances each subject's alert cursor and
   writes the episodes and the outbox rows; each subject's latest finite value replaces
   the monitor's previous ones in ``evalstore.monitor_values``
   (:mod:`evalstore.monitors.latest`: what ``/metrics`` exports); the monitor's
   ``last_run`` is set and its ``last_error`` cleared.

A monitor that fails (a feature dropped since it was defined, a predicate that no longer
parses...) is rolled back whole; its ``last_error`` records the error and the other
monitors run. Each monitor commits alone, so a run killed midway loses nothing: the
monitors it committed are done, the others continue from their stored cursors next time.

Where a subject starts. The first run of a subject (no cursor yet) applies only its
latest ``max(fire_after, resolve_after)`` windows: adding a monitor to a store with months
of history raises the alert that is current, not every past episode (that is what
:func:`evalstore.monitors.backtest.backtest_monitor` shows). Later runs apply every window
from the cursor's on (the cursor's own window is re-judged, as it may have filled).

The caller passes a session's context (``store.session()``), as the families do, so a
slow monitor never blocks ingest on the store's own connection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name
from evalstore.core.registry import to_timestamp
from evalstore.errors import InvalidParameterError
from evalstore.monitors import (
    alerts,
    catalog,
    estimation_series,
    health_series,
    history,
    latest,
    skew_series,
    summary_series,
)
from evalstore.monitors.definitions import Monitor
from evalstore.monitors.verdicts import Series, Verdict, evaluate

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Columns of :func:`run_monitors`' table, in order.
RUN_COLUMNS = (
    "monitor", "model", "subject", "window_start", "window_end", "value", "lower", "upper",
    "verdict", "transitions", "alert_id", "state", "error",
)  # fmt: skip
#: Most subjects one monitor may evaluate in a run.
MAX_SUBJECTS = 10_000
#: Families computed fresh on every run (and in backtests), and their series functions.
_FRESH = {
    "skew": skew_series.skew_series,
    "summary_stats": summary_series.summary_series,
    "estimated_performance": estimation_series.estimation_series,
}


@dataclass(frozen=True)
class SubjectSeries:
    """One subject's series and, for a ``learned`` rule, its reference values."""

    subject: str
    series: Series
    reference: np.ndarray | None


def _subjects_column(monitor: Monitor, table: pa.Table) -> list[str]:
    """The subject of every result row: the feature (drift, quality); for performance
    the version, then ``' | '`` and the slice (``'region=north, age=[30, 40)'``) when
    the call has ``by``, then ``' | class=c'`` for a per-class metric."""
    if monitor.family != "performance":
        return [str(s) for s in table.column("feature").to_pylist()]
    from evalstore.monitors.storage import slice_columns

    slices = slice_columns(table.schema)
    versions = table.column("version").to_pylist()
    classes = table.column("class").to_pylist() if "class" in table.schema.names else None
    texts = []
    cells = {s: table.column(s).to_pylist() for s in slices}
    for i, version in enumerate(versions):
        parts = [str(version)]
        if slices:
            parts.append(", ".join(f"{s}={cells[s][i]}" for s in slices))
        if classes is not None and classes[i] is not None:
            parts.append(f"class={classes[i]}")
        texts.append(" | ".join(parts))
    return texts


def _naive_utc(column: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column as ``datetime64[us]`` in UTC (NaT for NULL)."""
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = pc.cast(column, pa.timestamp("us"))
    return column.to_numpy(zero_copy_only=False).astype("datetime64[us]")


def series_of(monitor: Monitor, table: pa.Table) -> list[SubjectSeries]:
    """The family's result ``table`` cut into one series per subject of ``monitor``
    (subjects in first-seen order), oldest window first.

    Rows are those of the monitor's metric (``method`` for drift and quality, ``metric``
    for performance) and subjects; ``value`` NULL becomes NaN; the rows behind a value
    are ``n_analysis`` (drift, quality) or ``n`` (performance: labelled predictions);
    ``labels_complete`` is carried for performance only (the metrics that need labels).
    Two rows of one subject in one window are an error naming the options to change.
    """
    column = "metric" if monitor.family == "performance" else "method"
    if table.num_rows == 0:
        return []
    table = table.filter(pc.equal(table.column(column), monitor.metric))
    subjects = np.array(_subjects_column(monitor, table), dtype=object)
    if monitor.family == "performance" and monitor.subjects is not None:
        keep = np.isin(np.array(table.column("version").to_pylist(), dtype=object),
                       list(monitor.subjects))  # fmt: skip
        table, subjects = table.filter(pa.array(keep)), subjects[keep]
    starts = _naive_utc(table.column("window_start"))
    ends = _naive_utc(table.column("window_end"))
    values = np.array(
        [math.nan if v is None else float(v) for v in table.column("value").to_pylist()]
    )
    rows_column = "n" if monitor.family == "performance" else "n_analysis"
    rows = np.array([0 if v is None else int(v) for v in table.column(rows_column).to_pylist()])
    complete = None
    if monitor.family == "performance":
        complete = np.array([bool(v) for v in table.column("labels_complete").to_pylist()])
    names = list(dict.fromkeys(subjects.tolist()))
    if len(names) > MAX_SUBJECTS:
        raise InvalidParameterError(
            f"monitor {monitor.name!r} yields {len(names)} subjects, above the limit of "
            f"{MAX_SUBJECTS}; list its subjects or slice less finely"
        )
    period = _period(monitor)
    out = []
    for name in names:
        mask = subjects == name
        order = np.argsort(starts[mask], kind="stable")
        s = starts[mask][order]
        if len(s) > 1 and (np.diff(s) == np.timedelta64(0, "us")).any():
            raise InvalidParameterError(
                f"monitor {monitor.name!r}: subject {name!r} has several rows in one window "
                "(e.g. one per version); set version= or, for performance, list versions "
                "as subjects"
            )
        v = values[mask][order]
        reference = _reference(period, s, v)
        out.append(
            SubjectSeries(
                subject=name,
                series=Series(
                    window_start=s,
                    value=v,
                    n=rows[mask][order],
                    labels_complete=None if complete is None else complete[mask][order],
                    window_end=ends[mask][order],
                ),
                reference=reference,
            )
        )
    return out


def _period(monitor: Monitor) -> tuple[np.datetime64, np.datetime64] | None:
    """``learn_period`` as naive-UTC ``datetime64[us]`` ends, or None."""
    if monitor.learn_period is None:
        return None
    low, high = (to_timestamp(t, "learn_period") for t in monitor.learn_period)
    return tuple(np.datetime64(t.replace(tzinfo=None), "us") for t in (low, high))  # type: ignore[union-attr,return-value]


def _reference(
    period: tuple[np.datetime64, np.datetime64] | None, starts: np.ndarray, values: np.ndarray
) -> np.ndarray | None:
    """The values of the windows starting in ``period`` (a ``learned`` rule's reference)."""
    if period is None:
        return None
    return values[(starts >= period[0]) & (starts < period[1])]


def compute(
    ctx: Context,
    monitor: Monitor,
    *,
    persist: bool = True,
    now: datetime | None = None,
    until: datetime | None = None,
) -> list[SubjectSeries]:
    """The monitor's series per subject: the family's result through the metric history
    (``persist=True``: stored and refreshed) or computed fresh, writing nothing.

    A ``health`` monitor is always computed fresh at ``now`` (default the current time);
    ``persist=False`` (a backtest) also replays its point-in-time metrics over past
    windows up to ``until`` (:func:`evalstore.monitors.health_series.health_series`).
    A ``skew``, ``summary_stats`` or ``estimated_performance`` monitor is always computed
    fresh (:func:`evalstore.monitors.skew_series.skew_series`,
    :func:`evalstore.monitors.summary_series.summary_series`,
    :func:`evalstore.monitors.estimation_series.estimation_series`)."""
    if monitor.family == "health":
        parts = health_series.health_series(
            ctx, monitor, now or datetime.now(UTC), replay=not persist, until=until
        )
        period = _period(monitor)
        return [
            SubjectSeries(name, series, _reference(period, np.asarray(series.window_start),
                                                   np.asarray(series.value)))
            for name, series in parts
        ]  # fmt: skip
    if monitor.family in _FRESH:
        period = _period(monitor)
        fresh = _FRESH[monitor.family]
        return [
            SubjectSeries(name, series, _reference(period, np.asarray(series.window_start),
                                                   np.asarray(series.value)))
            for name, series in fresh(ctx, monitor)
        ]  # fmt: skip
    arguments = monitor.call_arguments()
    if persist:
        table = history.persisted(ctx, monitor.family, monitor.model, arguments)
    else:
        table = history.FAMILIES[monitor.family](ctx, monitor.model, **arguments)
    return series_of(monitor, table)


def _start_verdicts(
    cursor: alerts.Cursor, verdicts: list[Verdict], monitor: Monitor
) -> list[Verdict]:
    """The verdicts to apply: all of them for a subject with a cursor (the alert engine
    skips the windows before it), the latest ``max(fire_after, resolve_after)`` for a
    new one."""
    if cursor.last_window_start is not None:
        return verdicts
    keep = max(monitor.rule["fire_after"], monitor.rule["resolve_after"])
    return verdicts[-keep:]


def run_monitor(ctx: Context, monitor: Monitor, now: datetime) -> list[dict[str, Any]]:
    """Evaluate one monitor and record its alerts, in one transaction on
    ``ctx.connection``; return one row per subject (columns :data:`RUN_COLUMNS`).
    Raises what the family or the rule raises (nothing is then written)."""
    con = ctx.connection
    rows = []
    values = []
    with ctx.lock, transaction(con):
        for part in compute(ctx, monitor, now=now):
            verdicts = evaluate(monitor.rule, part.series, part.reference).rows()
            if not verdicts:
                continue
            newest = latest.latest_finite(verdicts)
            if newest is not None:
                values.append((part.subject, newest))
            cursor = alerts.load_cursor(con, monitor.name, part.subject)
            transitions = alerts.record(
                con,
                monitor=monitor.name,
                model=monitor.model,
                subject=part.subject,
                rule=monitor.rule,
                verdicts=_start_verdicts(cursor, verdicts, monitor),
                definition_version=monitor.definition_version,
                now=now,
            )
            last = verdicts[-1]
            episode = transitions[-1].episode if transitions else None
            if episode is None:
                stored = alerts.load_cursor(con, monitor.name, part.subject).episode
                episode = stored
            rows.append(
                {
                    "monitor": monitor.name,
                    "model": monitor.model,
                    "subject": part.subject,
                    "window_start": alerts.utc(last.window_start),
                    "window_end": alerts.utc(last.window_end),
                    "value": last.value,
                    "lower": last.lower,
                    "upper": last.upper,
                    "verdict": last.status,
                    "transitions": [t.change for t in transitions],
                    "alert_id": None if episode is None else episode.alert_id,
                    "state": None if episode is None else episode.state,
                    "error": None,
                }
            )
        latest.replace(con, monitor.name, monitor.model, values, now)
        catalog.record_outcome(con, monitor.name, now, None)
    return rows


_SCHEMA = pa.schema(
    [
        ("monitor", pa.string()),
        ("model", pa.string()),
        ("subject", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("lower", pa.float64()),
        ("upper", pa.float64()),
        ("verdict", pa.string()),
        ("transitions", pa.list_(pa.string())),
        ("alert_id", pa.int64()),
        ("state", pa.string()),
        ("error", pa.string()),
    ]
)


def run_monitors(
    ctx: Context,
    model: str | None = None,
    now: datetime | None = None,
    *,
    names: Sequence[str] | None = None,
) -> pa.Table:
    """Run every enabled monitor (of ``model``; or only those in ``names``) once.

    ``now`` (default the current time; timezone-aware, naive taken as UTC) is the time
    recorded for every change. Returns one row per monitor and subject (columns
    :data:`RUN_COLUMNS`): the latest window's value, bounds and ``verdict`` (ok, breach,
    pending, insufficient), the ``transitions`` this run made (opened, fired, updated,
    resolved, cleared) and the subject's current alert (``alert_id``, ``state``); a
    failed monitor gives one row with ``verdict`` 'error' and the ``error`` text (also
    stored as its ``last_error``). Monitors without any window yet give no row.
    """
    ctx.check_writable()
    if model is not None:
        check_model_name(model)
    now = alerts.utc(to_timestamp(now, "now")) if now is not None else datetime.now(UTC)
    con = ctx.connection
    with ctx.lock:
        monitors = [m for m in catalog.stored(con, model) if m.enabled]
    if names is not None:
        wanted = list(names)
        known = {m.name for m in monitors}
        missing = [n for n in wanted if n not in known]
        if missing:
            raise InvalidParameterError(
                f"monitor {missing[0]!r} does not exist or is disabled"
                + ("" if model is None else f" for model {model!r}")
            )
        monitors = [m for m in monitors if m.name in wanted]
    rows: list[dict[str, Any]] = []
    for monitor in monitors:
        try:
            rows += run_monitor(ctx, monitor, now)
        except Exception as error:  # one failing monitor never stops the others
            text = f"{type(error).__name__}: {error}"[:2000]
            with ctx.lock, transaction(con):
                catalog.record_outcome(con, monitor.name, now, text)
            rows.append(
                {**dict.fromkeys(RUN_COLUMNS), "monitor": monitor.name,
                 "model": monitor.model, "verdict": "error", "transitions": [], "error": text}
            )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=_SCHEMA)
