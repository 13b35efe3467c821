"""Alert episodes: the state machine from window verdicts to alerts, and its tables.

One *episode* per (monitor, subject) run of trouble, in ``evalstore.alerts``. Its states:

* ``pending`` -- the rule breached, but fewer than ``fire_after`` consecutive windows so
  far; or a window whose labels are incomplete would breach (a provisional alert). Not
  notified. A clean window ends a pending episode: it is *cleared* (its row deleted: it
  never was an alert).
* ``firing`` -- ``fire_after`` consecutive breaching windows. Notified once, when it
  starts; later breaching windows update the row (window, value, bounds, ``last_seen``)
  without notifying again.
* ``resolved`` -- ``resolve_after`` consecutive clean windows after firing (hysteresis).
  Notified once. The next breach opens a new episode.

Counting windows. Verdicts ``breach`` and ``ok`` extend a streak (a breach resets the
clean count and vice versa); ``pending`` and ``insufficient`` verdicts hold both counts
(they neither break nor extend a streak). Each (monitor, subject) has a *cursor*
(``evalstore.alert_cursors``): the last window applied, its verdict, and the counts
before it. Verdicts are applied in window order; a verdict for a window older than the
cursor's is ignored (late changes to old windows do not rewrite past episodes); a verdict
for the cursor's own window *replaces* that window's earlier verdict (a window evaluated
while it was filling, or before its labels arrived, counts once, with its latest verdict).
So evaluating the same windows twice changes nothing but ``last_seen``, and an episode is
never raised twice.

Acknowledging marks the open episode (``acknowledged_at/by``) without changing its
state. Silencing sets ``silenced_until`` on the episode and on the cursor: until then, its
changes (and those of later episodes of the same subject) are recorded but not notified.

:func:`advance` is pure (a backtest runs it over stored history with ``now=None``: each
window's end is its time); :func:`record` loads the cursor, advances it, writes the
episode, the cursor and the outbox rows (:mod:`evalstore.monitors.outbox`) on the
caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.errors import InvalidParameterError
from evalstore.monitors import outbox
from evalstore.monitors.rules import Rule, parse_rule
from evalstore.monitors.verdicts import Verdict

ALERT_STATES = ("pending", "firing", "resolved")
#: Changes a transition reports; only ``fired`` and ``resolved`` notify.
CHANGES = ("opened", "fired", "updated", "resolved", "cleared")
NOTIFYING = ("fired", "resolved")


@dataclass(frozen=True)
class Episode:
    """One alert episode (a row of ``evalstore.alerts``); ``alert_id`` is None until
    written. ``window_start``/``window_end``/``value``/``lower``/``upper``/``reason`` are
    those of the latest breaching (or, while pending, would-breach) window;
    ``first_window_start`` the window that opened it."""

    state: str
    first_window_start: datetime
    window_start: datetime
    window_end: datetime | None
    value: float
    lower: float
    upper: float
    reason: str
    first_seen: datetime
    last_seen: datetime
    definition_version: int
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    silenced_until: datetime | None = None
    alert_id: int | None = None

    @property
    def open(self) -> bool:
        """Pending or firing."""
        return self.state != "resolved"


@dataclass(frozen=True)
class Cursor:
    """Where a (monitor, subject) stands: the last window applied and its verdict, the
    consecutive breach/clean counts *before* that window, the latest episode (open or
    resolved; None if none or cleared) and the subject's silence."""

    last_window_start: datetime | None = None
    last_status: str | None = None
    last_breached: bool = False
    base_breaches: int = 0
    base_clean: int = 0
    episode: Episode | None = None
    silenced_until: datetime | None = None

    @property
    def counts(self) -> tuple[int, int]:
        """(consecutive breaches, consecutive clean windows) including the last window."""
        return _step(self.base_breaches, self.base_clean, self.last_status)


@dataclass(frozen=True)
class Transition:
    """What one verdict did: ``change`` in :data:`CHANGES`, the episode after it, the
    time, and whether it is to be notified (a fired/resolved change of an episode not
    silenced at that time)."""

    change: str
    episode: Episode
    at: datetime
    window_start: datetime
    notify: bool
    new: bool = False


def _step(breaches: int, clean: int, status: str | None) -> tuple[int, int]:
    if status == "breach":
        return breaches + 1, 0
    if status == "ok":
        return 0, clean + 1
    return breaches, clean


def _silenced(until: datetime | None, at: datetime) -> bool:
    return until is not None and at < until


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def advance(
    cursor: Cursor,
    verdicts: Sequence[Verdict],
    rule: Rule | dict[str, Any],
    *,
    now: datetime | None = None,
    definition_version: int = 1,
) -> tuple[Cursor, list[Transition]]:
    """Apply ``verdicts`` (window order) to ``cursor``; return the new cursor and the
    transitions, in order. ``now`` is the time of every change (None: each window's end,
    or its start when it has no end: what a backtest wants). ``rule`` gives
    ``fire_after`` and ``resolve_after``."""
    rule = parse_rule(rule)
    fire_after, resolve_after = rule["fire_after"], rule["resolve_after"]
    transitions: list[Transition] = []
    now = utc(now)
    for verdict in verdicts:
        verdict = replace(
            verdict, window_start=utc(verdict.window_start), window_end=utc(verdict.window_end)
        )
        start = verdict.window_start
        last = cursor.last_window_start
        if last is not None and start < last:
            continue
        if last is not None and start == last:
            base = (cursor.base_breaches, cursor.base_clean)
        else:
            base = cursor.counts
        breaches, clean = _step(*base, verdict.status)
        at = now or verdict.window_end or start
        cursor = replace(
            cursor,
            last_window_start=start,
            last_status=verdict.status,
            last_breached=verdict.breached,
            base_breaches=base[0],
            base_clean=base[1],
        )
        cursor_before = cursor.episode
        change, episode = _transition(
            cursor, verdict, breaches, clean, at, fire_after, resolve_after, definition_version
        )
        if change is None:
            continue
        if change == "cleared":
            cursor = replace(cursor, episode=None)
        else:
            cursor = replace(cursor, episode=episode)
        notify = change in NOTIFYING and not _silenced(episode.silenced_until, at)
        new = cursor_before is None or not cursor_before.open
        transitions.append(Transition(change, episode, at, start, notify, new))
    return cursor, transitions


def _transition(
    cursor: Cursor,
    verdict: Verdict,
    breaches: int,
    clean: int,
    at: datetime,
    fire_after: int,
    resolve_after: int,
    definition_version: int,
) -> tuple[str | None, Episode]:
    """The change one verdict makes to the cursor's episode (None: no change)."""
    episode = cursor.episode
    breach = verdict.status == "breach"
    provisional = verdict.status == "pending" and verdict.breached
    seen = {
        "window_start": verdict.window_start,
        "window_end": verdict.window_end,
        "value": verdict.value,
        "lower": verdict.lower,
        "upper": verdict.upper,
        "reason": verdict.reason,
        "last_seen": at,
    }
    if episode is None or not episode.open:
        if not (breach or provisional):
            return None, episode  # type: ignore[return-value]
        firing = breach and breaches >= fire_after
        silence = cursor.silenced_until if _silenced(cursor.silenced_until, at) else None
        new = Episode(
            state="firing" if firing else "pending",
            first_window_start=verdict.window_start,
            first_seen=at,
            definition_version=definition_version,
            fired_at=at if firing else None,
            silenced_until=silence,
            **seen,
        )
        return ("fired" if firing else "opened"), new
    if episode.state == "pending":
        if breach and breaches >= fire_after:
            return "fired", replace(episode, state="firing", fired_at=at, **seen)
        if verdict.status == "ok":
            return "cleared", episode
        if breach or provisional:
            return "updated", replace(episode, **seen)
        return None, episode
    # firing
    if breach:
        return "updated", replace(episode, **seen)
    if verdict.status == "ok" and clean >= resolve_after:
        return "resolved", replace(episode, state="resolved", resolved_at=at, last_seen=at)
    return None, episode


def acknowledge(episode: Episode, by: str, at: datetime) -> Episode:
    """The episode acknowledged by ``by`` at ``at`` (its state unchanged); only an open
    (pending or firing) episode can be acknowledged."""
    if not episode.open:
        raise InvalidParameterError(
            f"alert {episode.alert_id} is resolved; only a pending or firing alert can be "
            "acknowledged"
        )
    return replace(episode, acknowledged_at=at, acknowledged_by=by)


# -- tables --------------------------------------------------------------------------------

_EPISODE_COLUMNS = [f.name for f in dataclasses.fields(Episode) if f.name != "alert_id"]


def _now() -> datetime:
    return datetime.now(UTC)


def _load_episode(con: duckdb.DuckDBPyConnection, alert_id: int | None) -> Episode | None:
    if alert_id is None:
        return None
    rows = con.execute(
        f"SELECT {', '.join(_EPISODE_COLUMNS)}, alert_id FROM evalstore.alerts WHERE alert_id = ?",
        [alert_id],
    ).fetchall()
    return Episode(*rows[0]) if rows else None


def load_cursor(con: duckdb.DuckDBPyConnection, monitor: str, subject: str) -> Cursor:
    """The stored cursor of (monitor, subject), with its latest episode; a fresh one if
    the subject was never evaluated."""
    rows = con.execute(
        "SELECT last_window_start, last_status, last_breached, base_breaches, base_clean, "
        "alert_id, silenced_until FROM evalstore.alert_cursors WHERE monitor = ? AND subject = ?",
        [monitor, subject],
    ).fetchall()
    if not rows:
        return Cursor()
    start, status, breached, breaches, clean, alert_id, silence = rows[0]
    return Cursor(start, status, breached, breaches, clean, _load_episode(con, alert_id), silence)


def _write_episode(
    con: duckdb.DuckDBPyConnection, monitor: str, model: str, subject: str, episode: Episode
) -> Episode:
    values = [getattr(episode, name) for name in _EPISODE_COLUMNS]
    if episode.alert_id is None:
        alert_id = con.execute("SELECT nextval('evalstore.alert_ids')").fetchall()[0][0]
        con.execute(
            f"INSERT INTO evalstore.alerts (alert_id, monitor, model, subject, "
            f"{', '.join(_EPISODE_COLUMNS)}) VALUES ({', '.join(['?'] * (len(values) + 4))})",
            [alert_id, monitor, model, subject, *values],
        )
        return replace(episode, alert_id=int(alert_id))
    assignments = ", ".join(f"{name} = ?" for name in _EPISODE_COLUMNS)
    con.execute(
        f"UPDATE evalstore.alerts SET {assignments} WHERE alert_id = ?",
        [*values, episode.alert_id],
    )
    return episode


def record(
    con: duckdb.DuckDBPyConnection,
    *,
    monitor: str,
    model: str,
    subject: str,
    rule: Rule | dict[str, Any],
    verdicts: Sequence[Verdict],
    definition_version: int = 1,
    now: datetime | None = None,
    channels: Sequence[str] | None = None,
) -> list[Transition]:
    """Apply ``verdicts`` to the stored alert state of (``monitor``, ``subject``): write
    the episode rows, the cursor and, for each notified change, one outbox row per channel
    (``channels``: names, None = every enabled channel), in one transaction (the caller's,
    if it holds one on ``con``: the glue evaluates a monitor and records its alerts in the
    transaction that stores its history). ``now`` defaults to the current time. Returns
    the transitions, episodes with their ``alert_id``."""
    now = utc(now) or _now()
    rule = parse_rule(rule)
    with transaction(con):
        cursor = load_cursor(con, monitor, subject)
        current = cursor.episode.alert_id if cursor.episode else None
        cursor, transitions = advance(
            cursor, verdicts, rule, now=now, definition_version=definition_version
        )
        written: list[Transition] = []
        for transition in transitions:
            episode = transition.episode
            if not transition.new:
                episode = replace(episode, alert_id=current)
            if transition.change == "cleared":
                con.execute("DELETE FROM evalstore.alerts WHERE alert_id = ?", [current])
                current = None
            else:
                episode = _write_episode(con, monitor, model, subject, episode)
                current = episode.alert_id
            transition = replace(transition, episode=episode)
            written.append(transition)
            if transition.notify:
                outbox.enqueue(
                    con,
                    alert_id=episode.alert_id,  # type: ignore[arg-type]
                    change=transition.change,
                    payload=payload(monitor, model, subject, transition),
                    channels=channels,
                    now=now,
                )
        if cursor.episode is not None:
            cursor = replace(cursor, episode=replace(cursor.episode, alert_id=current))
        if cursor.last_window_start is not None:
            con.execute(
                f"INSERT OR REPLACE INTO evalstore.alert_cursors VALUES ({', '.join('?' * 10)})",
                [
                    monitor, subject, model, cursor.last_window_start, cursor.last_status,
                    cursor.last_breached, cursor.base_breaches, cursor.base_clean,
                    cursor.episode.alert_id if cursor.episode else None, cursor.silenced_until,
                ],
            )  # fmt: skip
    return written


def payload(monitor: str, model: str, subject: str, transition: Transition) -> dict[str, Any]:
    """The notification of a change: the alert's fields, the change, and a Slack-compatible
    ``text`` line."""
    episode = transition.episode
    verb = {"fired": "FIRING", "resolved": "RESOLVED"}.get(transition.change, transition.change)
    text = (
        f"[{verb}] {monitor} on {model}/{subject}: {episode.reason} "
        f"(window {_iso(episode.window_start)})"
    )
    alert = {name: _jsonable(getattr(episode, name)) for name in _EPISODE_COLUMNS}
    return {
        "text": text,
        "change": transition.change,
        "at": _iso(transition.at),
        "alert": {"alert_id": episode.alert_id, "monitor": monitor, "model": model,
                  "subject": subject, **alert},
    }  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def _open_episode(con: duckdb.DuckDBPyConnection, alert_id: int) -> tuple[str, str, Episode]:
    rows = con.execute(
        "SELECT monitor, subject FROM evalstore.alerts WHERE alert_id = ?", [alert_id]
    ).fetchall()
    episode = _load_episode(con, alert_id)
    if not rows or episode is None:
        raise InvalidParameterError(
            f"alert_id={alert_id!r} is not an alert; list them with store.alerts()"
        )
    return rows[0][0], rows[0][1], episode


def acknowledge_alert(
    con: duckdb.DuckDBPyConnection, alert_id: int, by: str, now: datetime | None = None
) -> Episode:
    """Acknowledge a pending or firing alert (``by``: who, non-empty, ≤ 200 characters)."""
    if not isinstance(by, str) or not 0 < len(by) <= 200:
        raise InvalidParameterError(
            f"by={by!r} must be a non-empty name of at most 200 characters (who acknowledges)"
        )
    with transaction(con):
        _, _, episode = _open_episode(con, alert_id)
        episode = acknowledge(episode, by, now or _now())
        con.execute(
            "UPDATE evalstore.alerts SET acknowledged_at = ?, acknowledged_by = ? "
            "WHERE alert_id = ?",
            [episode.acknowledged_at, by, alert_id],
        )
    return episode


def silence_alert(con: duckdb.DuckDBPyConnection, alert_id: int, until: datetime | None) -> Episode:
    """Silence an alert's notifications until ``until`` (timezone-aware; None lifts the
    silence). The alert still changes state; later episodes of the same monitor and
    subject inherit the silence while it lasts."""
    if until is not None and (not isinstance(until, datetime) or until.tzinfo is None):
        raise InvalidParameterError(
            f"until={until!r} must be a timezone-aware datetime (or None to lift the silence)"
        )
    with transaction(con):
        monitor, subject, episode = _open_episode(con, alert_id)
        con.execute(
            "UPDATE evalstore.alerts SET silenced_until = ? WHERE alert_id = ?", [until, alert_id]
        )
        con.execute(
            "UPDATE evalstore.alert_cursors SET silenced_until = ? WHERE monitor = ? "
            "AND subject = ?",
            [until, monitor, subject],
        )
    return replace(episode, silenced_until=until)


def list_alerts(
    con: duckdb.DuckDBPyConnection,
    *,
    model: str | None = None,
    monitor: str | None = None,
    state: str | None = None,
    limit: int = 10_000,
) -> pa.Table:
    """Alert episodes, newest first, as an Arrow table (columns of ``evalstore.alerts``)."""
    filters = {"model": model, "monitor": monitor, "state": state}
    return outbox.newest_rows(con, "alerts", "alert_id", filters, limit, states=ALERT_STATES)
