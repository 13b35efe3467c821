"""The demo's injected events against backtests of the default monitors.

:func:`backtest_defaults` backtests every default monitor of the demo model
(:func:`evalstore.monitors.defaults.add_default_monitors`) over the serving period, and
:func:`event_table` matches the episodes with the events the scenario injects
(:data:`EVENTS`, from :mod:`evalstore.demo.synthetic`'s schedule).

Days are 0-based days since the first serving day; an episode's day is that of the
daily window that made it fire (the alert is raised when that window closes, at the
next midnight). Per event (one row per event and subject):

* ``injected``: the day the event starts;
* ``first_alert``: the first day on or after ``injected`` on which a default monitor of
  that subject and of the event's kind (:attr:`Event.monitors`: a feature's drift or
  quality monitors, since an out-of-range age is seen by both; a version's performance
  monitor for the concept drift, its dependency monitor for the dependency change) fired;
  NULL: missed;
* ``delay``: ``first_alert - injected`` in days;
* ``monitor``: the monitor that fired first (``family.metric``);
* ``episodes``: alert episodes of the subject and kind that fired on or after ``injected``;
* ``false_before``: episodes of the subject and kind that fired before ``injected``
  (clean days of that subject).

:func:`false_alerts` counts the episodes no event explains: on a subject without an
event of the monitor's kind, or before that event (all days, and the clean period, the
days before the first event). Performance and health subjects are versions: the concept
drift is an event of ``v1`` and ``v2``, and ``v2`` (deployed on day 30) changed numpy
and scikit-learn against ``v1``.

A backtest judges a performance window on the labels known now; a run on the day would
have reported it ``pending`` until its labels completed (up to 10 days later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.demo.scenario import V2_START_DAY
from evalstore.demo.synthetic import (
    BAD_AGE_DAY,
    CHANNEL_SHIFT_DAY,
    CONCEPT_DRIFT_DAY,
    INCOME_DRIFT_START,
    INF_CREDIT_LIMIT_DAY,
    NAN_DTI_DAYS,
    UNSEEN_EMPLOYMENT_DAY,
    UTILIZATION_SHIFT_DAY,
)
from evalstore.monitors.backtest import EPISODE_COLUMNS

if TYPE_CHECKING:
    from evalstore.store import Store


@dataclass(frozen=True)
class Event:
    """An injected event: a short description, the subjects it changes (features, or
    versions for performance and health), its first day and the monitors that may see it
    (prefixes of ``family.metric``)."""

    name: str
    subjects: tuple[str, ...]
    day: int
    monitors: tuple[str, ...] = ("drift.", "quality.")

    def explains(self, subject: str, monitor: str) -> bool:
        """Whether an alert of ``monitor`` (``family.metric``) on ``subject`` is of this
        event's kind."""
        return subject in self.subjects and monitor.startswith(self.monitors)


#: The scenario's injected events, in order of their first day.
EVENTS = (
    Event("weekly cycle grows", ("transaction_amount",), 0),
    Event("income gradual drift", ("income",), int(INCOME_DRIFT_START)),
    Event("utilization abrupt shift", ("utilization",), UTILIZATION_SHIFT_DAY),
    Event("channel mix change", ("channel",), CHANNEL_SHIFT_DAY),
    Event("dependency change", ("v2",), V2_START_DAY, ("health.dependency_changed",)),
    Event("concept drift (AUC down)", ("v1", "v2"), CONCEPT_DRIFT_DAY, ("performance.",)),
    Event("NaN debt_to_income", ("debt_to_income",), NAN_DTI_DAYS[0]),
    Event("out-of-range ages", ("age",), BAD_AGE_DAY),
    Event("+inf credit_limit", ("credit_limit",), INF_CREDIT_LIMIT_DAY),
    Event("unseen employment value", ("employment",), UNSEEN_EMPLOYMENT_DAY),
)
#: Columns of :func:`event_table`.
EVENT_COLUMNS = (
    "event", "subject", "injected", "first_alert", "delay", "monitor", "episodes",
    "false_before",
)  # fmt: skip


def backtest_defaults(store: Store, names: list[str], since: datetime) -> pa.Table:
    """Episodes of the monitors ``names`` backtested from ``since`` on (the columns of
    :meth:`~evalstore.Store.backtest_monitor`), one table."""
    tables = [store.backtest_monitor(name, since=since) for name in names]
    if not tables:
        return pa.table({name: pa.array([], type=pa.null()) for name in EPISODE_COLUMNS})
    return pa.concat_tables(tables)


def _fired(episodes: pa.Table, start: datetime) -> list[dict[str, Any]]:
    """Episodes that fired, with their day and short monitor name, oldest first."""
    rows = []
    for row in episodes.to_pylist():
        if row["fired_window_start"] is None:
            continue
        day = (row["fired_window_start"] - start).days
        short = ".".join(row["monitor"].split(".")[-2:])
        rows.append({"subject": row["subject"], "day": day, "monitor": short})
    return sorted(rows, key=lambda r: (r["day"], r["monitor"], r["subject"]))


def event_table(episodes: pa.Table, start: datetime) -> pa.Table:
    """One row per event and subject (columns :data:`EVENT_COLUMNS`, module docstring)
    from the backtest ``episodes``; ``start`` is day 0."""
    fired = _fired(episodes, start)
    rows = []
    for event in EVENTS:
        for subject in event.subjects:
            mine = [
                r
                for r in fired
                if r["subject"] == subject and event.explains(subject, r["monitor"])
            ]
            after = [r for r in mine if r["day"] >= event.day]
            first = after[0] if after else None
            rows.append(
                {
                    "event": event.name,
                    "subject": subject,
                    "injected": event.day,
                    "first_alert": None if first is None else first["day"],
                    "delay": None if first is None else first["day"] - event.day,
                    "monitor": None if first is None else first["monitor"],
                    "episodes": len(after),
                    "false_before": len(mine) - len(after),
                }
            )
    schema = pa.schema(
        [("event", pa.string()), ("subject", pa.string()), ("injected", pa.int64()),
         ("first_alert", pa.int64()), ("delay", pa.int64()), ("monitor", pa.string()),
         ("episodes", pa.int64()), ("false_before", pa.int64())]
    )  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema)


def false_alerts(episodes: pa.Table, start: datetime) -> dict[str, Any]:
    """Episodes no event explains: ``total`` (all days), ``clean_period`` (fired before
    the first event's day other than day 0's, i.e. days ``[0, clean_until)``),
    ``clean_until``, and ``examples`` (up to 5 ``'monitor subject day N'`` texts)."""
    clean_until = min(e.day for e in EVENTS if e.day > 0)
    unexplained = [
        r
        for r in _fired(episodes, start)
        if not any(e.explains(r["subject"], r["monitor"]) and r["day"] >= e.day for e in EVENTS)
    ]
    return {
        "total": len(unexplained),
        "clean_period": sum(1 for r in unexplained if r["day"] < clean_until),
        "clean_until": clean_until,
        "examples": [f"{r['monitor']} {r['subject']} day {r['day']}" for r in unexplained[:5]],
    }


def rule_text(rule: dict[str, Any]) -> str:
    """A short reading of a stored rule, e.g. ``'fixed > 0.1, min_rows 100'``."""
    kind = rule["type"]
    if kind == "fixed":
        text = f"fixed {'>' if rule['direction'] == 'above' else '<'} {rule['value']:g}"
    elif kind == "unsupervised" and rule["method"] == "share":
        text = f"share > {rule['threshold']:g}"
    elif kind == "trailing":
        side = {"below": "below ", "above": "above ", "both": ""}[rule["direction"]]
        text = f"trailing {side}mean ± {rule['k']:g} sd of {rule['n']} windows"
    else:
        text = kind
    extra = [f"{key} {rule[key]}" for key in ("min_rows", "resolve_after") if rule[key] != 1]
    return ", ".join([text, *extra])
