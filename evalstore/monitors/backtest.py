"""Backtests: when a monitor, saved or not, would have fired and resolved on past data.

:func:`backtest_monitor` computes the monitor's series the way a run does (the same
family call, computed fresh: nothing is written, not even the metric history), judges
every window with the rule (each window's bounds use only the windows before it, as at
run time), and runs the pure alert state machine (:func:`evalstore.monitors.alerts.advance`)
from a fresh cursor over the windows that start in ``[since, until)``, the time of each
change being the end of its window (when the window's data was complete).

So a backtest equals what :func:`evalstore.monitors.run.run_monitors` records when run
once after each window ends, with one difference by design: the labels are those known
now, so a performance window that a run judged ``pending`` (labels incomplete then) is
judged on its complete labels here.

Health monitors (:mod:`evalstore.monitors.health_series`): serving, volume and
dependency-change series are the same as at run time. The point-in-time metrics, which a
run measures only at its ``now``, are replayed: ``freshness`` from the commit times of
``evalstore.batches`` (each window gets the hours since the stream's last batch committed
by the window's end: what the last run inside that window would have seen), ages from
the registry at each window's end. What cannot be replayed: a registry row as it was in
the past (``deployed_at``/``retired_at`` are the current ones) and training rows logged
after a window (ages use the training rows known now), as performance uses the labels
known now. Windows are replayed up to ``until`` (default the current time).

The result has one row per episode that fired (pending episodes that cleared never were
alerts and are left out; one still pending at the end is listed with state
``pending``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.registry import time_range
from evalstore.monitors import alerts
from evalstore.monitors.definitions import Monitor
from evalstore.monitors.run import compute
from evalstore.monitors.verdicts import evaluate

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Columns of :func:`backtest_monitor`'s table, in order.
EPISODE_COLUMNS = (
    "monitor", "subject", "state", "first_window_start", "fired_window_start", "fired_at",
    "last_window_start", "resolved_at", "breaching_windows", "value", "lower", "upper",
    "reason",
)  # fmt: skip
_SCHEMA = pa.schema(
    [
        ("monitor", pa.string()),
        ("subject", pa.string()),
        ("state", pa.string()),
        ("first_window_start", pa.timestamp("us", tz="UTC")),
        ("fired_window_start", pa.timestamp("us", tz="UTC")),
        ("fired_at", pa.timestamp("us", tz="UTC")),
        ("last_window_start", pa.timestamp("us", tz="UTC")),
        ("resolved_at", pa.timestamp("us", tz="UTC")),
        ("breaching_windows", pa.int64()),
        ("value", pa.float64()),
        ("lower", pa.float64()),
        ("upper", pa.float64()),
        ("reason", pa.string()),
    ]
)


def backtest_monitor(
    ctx: Context, monitor: Monitor, since: Any = None, until: Any = None
) -> pa.Table:
    """Episodes ``monitor`` would have raised on the stored data, windows starting in
    ``[since, until)`` (None: unbounded), oldest first per subject; columns
    :data:`EPISODE_COLUMNS`:

    ``first_window_start`` the window that opened the episode; ``fired_window_start``
    the window that made it fire and ``fired_at`` that window's end (the earliest time
    it could have fired); ``last_window_start``, ``value``, ``lower``, ``upper`` and
    ``reason`` those of its latest breaching window; ``breaching_windows`` how many
    windows breached in it; ``resolved_at`` the end of the window that resolved it
    (NULL: still firing at the end). Writes nothing.
    """
    start, end = time_range(since, until)
    rows: list[dict[str, Any]] = []
    with ctx.lock:
        parts = compute(ctx, monitor, persist=False, until=end)
    for part in parts:
        verdicts = [
            v
            for v in evaluate(monitor.rule, part.series, part.reference).rows()
            if (start is None or alerts.utc(v.window_start) >= start)  # type: ignore[operator]
            and (end is None or alerts.utc(v.window_start) < end)  # type: ignore[operator]
        ]
        _, transitions = alerts.advance(
            alerts.Cursor(), verdicts, monitor.rule,
            definition_version=monitor.definition_version,
        )  # fmt: skip
        rows += _episodes(monitor.name, part.subject, transitions)
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def _episodes(
    monitor: str, subject: str, transitions: list[alerts.Transition]
) -> list[dict[str, Any]]:
    """One row per episode of ``transitions`` that fired (or is still pending at the end)."""
    episodes: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for t in transitions:
        episode = t.episode
        if t.new or current is None:
            current = {
                "monitor": monitor,
                "subject": subject,
                "first_window_start": episode.first_window_start,
                "fired_window_start": None,
                "fired_at": None,
                "resolved_at": None,
                "breaching_windows": 0,
            }
            episodes.append(current)
        if t.change == "cleared":
            episodes.remove(current)
            current = None
            continue
        if t.change in ("opened", "fired", "updated"):
            current["breaching_windows"] += 1
        if t.change == "fired":
            current["fired_window_start"] = t.window_start
            current["fired_at"] = t.at
        current.update(
            state=episode.state,
            last_window_start=episode.window_start,
            value=episode.value,
            lower=episode.lower,
            upper=episode.upper,
            reason=episode.reason,
        )
        if t.change == "resolved":
            current["resolved_at"] = t.at
            current = None
    return [_row(e) for e in episodes]


def _row(episode: dict[str, Any]) -> dict[str, Any]:
    return {
        name: alerts.utc(episode.get(name)) if isinstance(episode.get(name), datetime)
        else episode.get(name)
        for name in EPISODE_COLUMNS
    }  # fmt: skip
