"""Notifications (evalstore.monitors.channels, outbox): a real webhook receiver on
127.0.0.1 (tests/conftest.py Receiver) that fails (500, then connection refused) and recovers;
signatures; bounded retries; command channels and their trusted guard."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import evalstore
from evalstore.errors import InvalidParameterError
from evalstore.monitors import alerts, channels, outbox
from evalstore.monitors.verdicts import Verdict

T0 = datetime(2024, 5, 1, tzinfo=UTC)
SECRET = "s3cret-for-tests"


@pytest.fixture
def con(empty_store: evalstore.Store) -> duckdb.DuckDBPyConnection:
    """The connection of a store without models (a copy of conftest's empty template)."""
    return empty_store._con


def fire(con: duckdb.DuckDBPyConnection, subject: str = "income", **kwargs) -> int:
    start = T0 - timedelta(days=1)
    verdict = Verdict(start, T0, "breach", 0.4, 100, float("nan"), 0.2, True, "psi 0.4 > 0.2")
    (transition,) = alerts.record(
        con, monitor="psi", model="fraud", subject=subject,
        rule={"type": "fixed", "direction": "above", "value": 0.2}, verdicts=[verdict],
        now=T0, **kwargs,
    )  # fmt: skip
    return transition.episode.alert_id


def test_a_failing_receiver_gets_the_notification_exactly_once_after_it_recovers(
    con, free_port, monkeypatch, webhook_receiver
):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    channels.add_channel(con, "ops", "webhook", {"url": url, "secret_env": "HOOK_SECRET",
                                                 "headers": {"X-Team": "ml"}})  # fmt: skip
    alert_id = fire(con)
    receiver = webhook_receiver(port, 500)
    try:
        (first,) = outbox.deliver_due(con, now=T0, base_delay=10)
        assert (first.state, first.attempts) == ("due", 1)
        assert first.error == "HTTP 500: receiver says no"
        # not due again before the backoff: nothing is sent
        assert outbox.deliver_due(con, now=T0 + timedelta(seconds=9), base_delay=10) == []
    finally:
        receiver.stop()
    (second,) = outbox.deliver_due(con, now=T0 + timedelta(seconds=10), base_delay=10)
    assert (second.state, second.attempts) == ("due", 2)
    assert "Connection refused" in second.error
    row = outbox.list_outbox(con).to_pylist()[0]
    assert row["next_attempt_at"] == T0 + timedelta(seconds=10 + 20)  # 10 · 2^(2-1)
    assert outbox.deliver_due(con, now=T0 + timedelta(seconds=29), base_delay=10) == []
    receiver = webhook_receiver(port, 200)
    try:
        later = T0 + timedelta(seconds=30)
        (third,) = outbox.deliver_due(con, now=later, base_delay=10)
        assert (third.state, third.attempts, third.error) == ("delivered", 3, None)
        assert outbox.deliver_due(con, now=later + timedelta(days=1)) == []
    finally:
        receiver.stop()
    assert len(receiver.received) == 1
    headers, raw, _ = receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Evalstore-Signature"], expected)
    assert headers["Content-Type"] == "application/json" and headers["X-Team"] == "ml"
    sent = json.loads(raw)
    assert sent["text"].startswith("[FIRING] psi on fraud/income: psi 0.4 > 0.2")
    assert (sent["change"], sent["alert"]["alert_id"], sent["alert"]["state"]) == (
        "fired", alert_id, "firing",
    )  # fmt: skip
    assert sent["alert"]["lower"] is None and sent["alert"]["upper"] == 0.2
    row = outbox.list_outbox(con, state="delivered").to_pylist()[0]
    assert (row["attempts"], row["delivered_at"], row["last_error"]) == (3, later, None)


def test_attempts_are_bounded_then_the_row_is_failed(con, free_port):
    channels.add_channel(con, "dead", "webhook", {"url": f"http://127.0.0.1:{free_port()}/"})
    fire(con)
    states = []
    for attempt in range(3):
        now = T0 + timedelta(hours=attempt)
        states += [(d.state, d.attempts) for d in outbox.deliver_due(con, now=now, max_attempts=2)]
    assert states == [("due", 1), ("failed", 2)]
    assert outbox.list_outbox(con, state="failed").num_rows == 1


def test_backoff_doubles_up_to_the_cap():
    delays = [outbox.backoff(a, 5, 60).total_seconds() for a in range(1, 6)]
    assert delays == [5, 10, 20, 40, 60]


def test_notifications_go_to_the_named_or_enabled_channels(con):
    channels.add_channel(con, "a", "webhook", {"url": "http://127.0.0.1:9/"})
    channels.add_channel(con, "b", "webhook", {"url": "http://127.0.0.1:9/"}, enabled=False)
    fire(con, subject="x")
    assert [r["channel"] for r in outbox.list_outbox(con).to_pylist()] == ["a"]
    with pytest.raises(InvalidParameterError, match="channel 'b' does not exist or is disabled"):
        fire(con, subject="y", channels=["b"])
    assert outbox.list_outbox(con).num_rows == 1  # the failed record wrote nothing
    assert alerts.list_alerts(con).num_rows == 1


def test_a_deleted_channel_fails_its_rows_with_the_reason(con):
    channels.add_channel(con, "a", "webhook", {"url": "http://127.0.0.1:9/"})
    fire(con)
    channels.delete_channel(con, "a")
    (delivery,) = outbox.deliver_due(con, now=T0)
    assert (delivery.state, delivery.error) == ("failed", "channel 'a' was deleted or disabled")


def test_command_channel_runs_argv_with_the_alert_on_stdin(con, tmp_path: Path):
    target = tmp_path / "got.json"
    script = f"import sys; open({str(target)!r}, 'wb').write(sys.stdin.buffer.read())"
    channels.add_channel(con, "cmd", "command", {"argv": [sys.executable, "-c", script]},
                         trusted=True)  # fmt: skip
    channels.add_channel(con, "bad", "command",
                         {"argv": [sys.executable, "-c", "import sys; sys.stderr.write('boom'); "
                                   "sys.exit(3)"]}, trusted=True)  # fmt: skip
    fire(con)
    results = {d.channel: d for d in outbox.deliver_due(con, now=T0)}
    assert results["cmd"].state == "delivered"
    assert json.loads(target.read_bytes())["alert"]["subject"] == "income"
    assert results["bad"].error == "command exited with status 3: boom"


def test_command_channel_times_out(con):
    channels.add_channel(con, "slow", "command",
                         {"argv": [sys.executable, "-c", "import time; time.sleep(5)"],
                          "timeout": 0.5}, trusted=True)  # fmt: skip
    fire(con)
    (delivery,) = outbox.deliver_due(con, now=T0)
    assert delivery.error == "command timed out after 0.5 s"


def test_only_a_trusted_caller_creates_changes_or_deletes_a_command_channel(con):
    argv = {"argv": ["true"]}
    with pytest.raises(InvalidParameterError, match="never over HTTP"):
        channels.add_channel(con, "cmd", "command", argv)
    assert channels.list_channels(con).num_rows == 0
    channels.add_channel(con, "cmd", "command", argv, trusted=True)
    # an untrusted caller may not turn it into a webhook nor delete it
    with pytest.raises(InvalidParameterError, match="never over HTTP"):
        channels.add_channel(con, "cmd", "webhook", {"url": "http://x.test/"}, replace=True)
    with pytest.raises(InvalidParameterError, match="never over HTTP"):
        channels.delete_channel(con, "cmd")
    assert channels.get_channel(con, "cmd").kind == "command"


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("sms", {}, "kind='sms' must be one of 'webhook', 'command'"),
        ("webhook", {"url": "ftp://x/"}, "must be an http:// or https:// URL"),
        ("webhook", {"url": "http://x/", "secret": "abc"}, "takes no key 'secret'"),
        ("webhook", {"url": "http://x/", "secret_env": "A B"}, "name of an environment"),
        ("webhook", {"url": "http://x/", "timeout": 600}, "must be in (0, 60] seconds"),
        ("webhook", {"url": "http://x/", "headers": {"X-Evalstore-Signature": "x"}},
         "is set by evalstore"),
        ("webhook", {"url": "http://x/", "headers": {"X-A": "a\nb"}}, "one line of text"),
        ("command", {"argv": "rm -rf /"}, "must be a non-empty list"),
    ],
)  # fmt: skip
def test_bad_channel_configs_are_refused(con, kind, config, message):
    with pytest.raises(InvalidParameterError) as info:
        channels.add_channel(con, "c", kind, config, trusted=True)
    assert message in str(info.value)
    assert channels.list_channels(con).num_rows == 0


def test_channel_names_are_checked_and_unique(con):
    with pytest.raises(InvalidParameterError, match="name='1x' must start with a letter"):
        channels.add_channel(con, "1x", "webhook", {"url": "http://x/"})
    channels.add_channel(con, "ops", "webhook", {"url": "http://x/"})
    with pytest.raises(InvalidParameterError, match="channel 'ops' exists; pass replace=True"):
        channels.add_channel(con, "ops", "webhook", {"url": "http://y/"})
    channels.add_channel(con, "ops", "webhook", {"url": "http://y/"}, replace=True)
    assert channels.get_channel(con, "ops").config == {
        "url": "http://y/", "headers": {}, "timeout": 5.0,
    }  # fmt: skip
