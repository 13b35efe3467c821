"""Alert episodes (evalstore.monitors.alerts): firing once per episode, hysteresis,
pending, re-evaluated windows, acknowledgement, silencing, and the stored state."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.errors import InvalidParameterError
from evalstore.monitors import alerts, channels, outbox
from evalstore.monitors.alerts import Cursor, advance
from evalstore.monitors.verdicts import Verdict

T0 = datetime(2024, 1, 1, tzinfo=UTC)
RULE = {"type": "fixed", "direction": "above", "value": 1.0}


def verdicts(statuses: str, first: int = 0, breached: str = "") -> list[Verdict]:
    """One verdict per letter, daily windows from day ``first``: b(reach), o(k),
    p(ending), i(nsufficient); a pending window in ``breached`` positions would breach."""
    names = {"b": "breach", "o": "ok", "p": "pending", "i": "insufficient"}
    out = []
    for offset, letter in enumerate(statuses):
        day = first + offset
        start = T0 + timedelta(days=day)
        would = letter == "b" or (letter == "p" and str(offset) in breached)
        out.append(
            Verdict(
                start,
                start + timedelta(days=1),
                names[letter],
                2.0 if would else 0.5,
                10,
                math.nan,
                1.0,
                would,
                f"day {day}",
            )
        )
    return out


def run(statuses: str, rule: dict | None = None, **kwargs) -> list[tuple[str, int, bool]]:
    """(change, day, notify) of each transition of a fresh cursor over ``statuses``."""
    _, transitions = advance(Cursor(), verdicts(statuses, **kwargs), rule or RULE)
    return [(t.change, (t.window_start - T0).days, t.notify) for t in transitions]


def test_fires_once_per_episode_and_resolves_on_the_first_clean_window():
    assert run("obbbob") == [
        ("fired", 1, True), ("updated", 2, False), ("updated", 3, False),
        ("resolved", 4, True), ("fired", 5, True),
    ]  # fmt: skip


def test_hysteresis_resolves_only_after_n_clean_windows_in_a_row():
    rule = {**RULE, "resolve_after": 3}
    assert run("boobooo", rule) == [
        ("fired", 0, True), ("updated", 3, False), ("resolved", 6, True),
    ]  # fmt: skip


def test_fire_after_opens_a_pending_episode_first():
    rule = {**RULE, "fire_after": 2}
    assert run("bobbb", rule) == [
        ("opened", 0, False), ("cleared", 1, False), ("opened", 2, False),
        ("fired", 3, True), ("updated", 4, False),
    ]  # fmt: skip


def test_pending_and_insufficient_windows_hold_the_streaks():
    # breach, (pending, insufficient), breach = 2 consecutive breaches for fire_after=2
    rule = {**RULE, "fire_after": 2, "resolve_after": 2}
    assert run("bpibopio", rule) == [
        ("opened", 0, False), ("fired", 3, True), ("resolved", 7, True),
    ]  # fmt: skip


def test_a_half_labelled_window_that_would_breach_is_a_provisional_pending_alert():
    cursor, transitions = advance(Cursor(), verdicts("op", breached="1"), RULE)
    assert [(t.change, t.episode.state, t.notify) for t in transitions] == [
        ("opened", "pending", False)
    ]
    # the same window re-evaluated once its labels are complete: breach -> fires
    again = verdicts("b", first=1)
    cursor, transitions = advance(cursor, again, RULE)
    assert [(t.change, t.episode.state, t.notify) for t in transitions] == [
        ("fired", "firing", True)
    ]
    assert cursor.counts == (1, 0)


def test_re_evaluating_a_window_replaces_its_verdict_instead_of_counting_it_twice():
    rule = {**RULE, "resolve_after": 2}
    cursor, _ = advance(Cursor(), verdicts("bo"), rule)
    assert cursor.counts == (0, 1)
    # day 1 evaluated again, clean again: still one clean window, no resolution
    cursor, transitions = advance(cursor, verdicts("o", first=1), rule)
    assert transitions == [] and cursor.counts == (0, 1)
    assert cursor.episode.state == "firing"
    # older windows are ignored
    cursor, transitions = advance(cursor, verdicts("b"), rule)
    assert transitions == [] and cursor.last_window_start == T0 + timedelta(days=1)
    cursor, transitions = advance(cursor, verdicts("o", first=2), rule)
    assert [t.change for t in transitions] == ["resolved"]


def test_times_default_to_window_ends_for_backtests():
    _, transitions = advance(Cursor(), verdicts("ob"), RULE)
    assert transitions[0].at == T0 + timedelta(days=2)
    assert transitions[0].episode.fired_at == T0 + timedelta(days=2)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    _, transitions = advance(Cursor(), verdicts("ob"), RULE, now=now, definition_version=3)
    assert transitions[0].at == now and transitions[0].episode.definition_version == 3


def test_a_silenced_subject_changes_state_without_notifying():
    until = T0 + timedelta(days=3, hours=12)
    cursor = Cursor(silenced_until=until)
    cursor, transitions = advance(cursor, verdicts("bobob"), RULE)
    # windows end at days 1..5: the first four changes are before the silence ends
    assert [(t.change, t.notify) for t in transitions] == [
        ("fired", False), ("resolved", False), ("fired", False), ("resolved", True),
        ("fired", True),
    ]  # fmt: skip


def test_acknowledge_keeps_the_state_and_refuses_resolved_alerts():
    cursor, _ = advance(Cursor(), verdicts("b"), RULE)
    acked = alerts.acknowledge(cursor.episode, "ana", T0)
    assert (acked.state, acked.acknowledged_by, acked.acknowledged_at) == ("firing", "ana", T0)
    cursor, _ = advance(cursor, verdicts("o", first=1), RULE)
    with pytest.raises(InvalidParameterError, match="is resolved; only a pending or firing"):
        alerts.acknowledge(cursor.episode, "ana", T0)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet="bopi", min_size=1, max_size=40),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 5),
)
def test_episode_invariants(statuses, fire_after, resolve_after, split):
    """Never two open episodes, fired/resolved alternate, and evaluating in two calls
    (with the split window repeated) gives the same transitions as one call."""
    rule = {**RULE, "fire_after": fire_after, "resolve_after": resolve_after}
    whole = verdicts(statuses)
    _, once = advance(Cursor(), whole, rule)
    cut = min(split, len(whole))
    cursor, first = advance(Cursor(), whole[:cut], rule)
    cursor, second = advance(cursor, whole[cut - 1 :], rule)
    repeated = whole[cut - 1].window_start
    twice = first + [t for t in second if t.change != "updated" or t.window_start > repeated]
    assert [(t.change, t.window_start) for t in once] == [(t.change, t.window_start) for t in twice]
    notified = [t.change for t in once if t.notify]
    assert all(a != b for a, b in itertools.pairwise(notified))
    assert notified[:1] in ([], ["fired"])
    open_episodes = 0
    for t in once:
        open_episodes += t.new
        if t.change in ("resolved", "cleared"):
            open_episodes -= 1
        assert open_episodes in (0, 1)
    # a breach streak of fire_after windows always fires
    streak = "b" * fire_after
    if streak in statuses.replace("p", "").replace("i", ""):
        assert "fired" in notified


# -- tables --------------------------------------------------------------------------------


@pytest.fixture
def con(empty_store: evalstore.Store) -> duckdb.DuckDBPyConnection:
    """The connection of a store without models (a copy of conftest's empty template)."""
    return empty_store._con


def record(con, statuses: str, first: int = 0, subject: str = "income", **kwargs):
    return alerts.record(con, monitor="psi_income", model="fraud", subject=subject, rule=RULE,
                         verdicts=verdicts(statuses, first), **kwargs)  # fmt: skip


def test_record_writes_one_row_per_episode_and_continues_from_the_stored_cursor(con):
    channels.add_channel(con, "hook", "webhook", {"url": "http://127.0.0.1:9/"})
    now = datetime(2024, 3, 1, tzinfo=UTC)
    record(con, "obb", now=now)
    record(con, "bbo", first=2, now=now + timedelta(hours=1))  # day 2 again, then 3, 4
    record(con, "ob", first=5, now=now + timedelta(hours=2))
    rows = alerts.list_alerts(con).to_pylist()
    assert [(r["alert_id"], r["state"]) for r in rows] == [(2, "firing"), (1, "resolved")]
    first = rows[1]
    assert first["first_window_start"] == T0 + timedelta(days=1)
    assert first["window_start"] == T0 + timedelta(days=3)  # the last breaching window
    assert (first["fired_at"], first["resolved_at"]) == (now, now + timedelta(hours=1))
    assert math.isnan(first["lower"]) and first["upper"] == 1.0
    sent = outbox.list_outbox(con).to_pylist()
    assert [(r["alert_id"], r["change"], r["state"]) for r in sent] == [
        (2, "fired", "due"), (1, "resolved", "due"), (1, "fired", "due"),
    ]  # fmt: skip
    payload = sent[2]["payload"]
    assert '"text": "[FIRING] psi_income on fraud/income: day 1' in payload
    # running the same windows again notifies nothing new
    record(con, "ob", first=5)
    assert len(outbox.list_outbox(con)) == 3
    assert alerts.list_alerts(con, state="firing").num_rows == 1


def test_a_cleared_pending_episode_leaves_no_row(con):
    rule = {**RULE, "fire_after": 2}
    alerts.record(con, monitor="m", model="fraud", subject="s", rule=rule,
                  verdicts=verdicts("b"))  # fmt: skip
    assert alerts.list_alerts(con, state="pending").num_rows == 1
    alerts.record(con, monitor="m", model="fraud", subject="s", rule=rule,
                  verdicts=verdicts("o", first=1))  # fmt: skip
    assert alerts.list_alerts(con).num_rows == 0
    assert con.execute("SELECT alert_id FROM evalstore.alert_cursors").fetchall() == [(None,)]


def test_acknowledge_and_silence_are_stored(con):
    channels.add_channel(con, "hook", "webhook", {"url": "http://127.0.0.1:9/"})
    (fired,) = record(con, "b", now=T0)
    alert_id = fired.episode.alert_id
    acked = alerts.acknowledge_alert(con, alert_id, "ana", now=T0 + timedelta(hours=1))
    assert acked.acknowledged_by == "ana"
    until = T0 + timedelta(days=30)
    alerts.silence_alert(con, alert_id, until)
    record(con, "ob", first=1, now=T0 + timedelta(days=2))  # resolves, fires again: silent
    rows = alerts.list_alerts(con).to_pylist()
    assert [(r["state"], r["silenced_until"]) for r in rows] == [
        ("firing", until), ("resolved", until),
    ]  # fmt: skip
    assert rows[1]["acknowledged_by"] == "ana" and rows[0]["acknowledged_by"] is None
    assert [r["change"] for r in outbox.list_outbox(con).to_pylist()] == ["fired"]
    with pytest.raises(InvalidParameterError, match="alert_id=99 is not an alert"):
        alerts.acknowledge_alert(con, 99, "ana")
    with pytest.raises(InvalidParameterError, match="must be a timezone-aware datetime"):
        alerts.silence_alert(con, alert_id, datetime(2030, 1, 1))
    with pytest.raises(InvalidParameterError, match="by='' must be a non-empty name"):
        alerts.acknowledge_alert(con, alert_id, "")


def test_record_joins_the_callers_transaction(con):
    channels.add_channel(con, "hook", "webhook", {"url": "http://127.0.0.1:9/"})
    from evalstore.core.db import transaction

    with pytest.raises(RuntimeError, match="the glue failed"), transaction(con):
        record(con, "b")
        raise RuntimeError("the glue failed")
    for table in ("alerts", "alert_cursors", "outbox"):
        assert con.execute(f"SELECT count(*) FROM evalstore.{table}").fetchall() == [(0,)]


def test_list_alerts_checks_its_arguments(con):
    with pytest.raises(InvalidParameterError, match="state='open' must be one of 'pending'"):
        alerts.list_alerts(con, state="open")
    with pytest.raises(InvalidParameterError, match="limit=0 must be an int"):
        alerts.list_alerts(con, limit=0)
