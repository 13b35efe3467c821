"""The notification outbox (``evalstore.outbox``): alert changes waiting to be sent.

:func:`enqueue` writes one row per channel for a notified alert change, on the caller's
connection and inside the caller's transaction -- the one that writes the alert change
(:func:`evalstore.monitors.alerts.record` calls it): the change and its notifications
commit together or not at all, so a crash never loses a notification nor sends one for
a change that was rolled back.

:func:`deliver_due` sends the rows that are due, each at most once per attempt:

1. it *claims* the due rows in one short transaction (``next_attempt_at`` moved
   ``claim_seconds`` ahead, so another deliverer on the same store skips them);
2. it sends each one outside any transaction (a slow receiver holds no lock);
3. it records the outcome: ``delivered`` (with ``delivered_at``), or a failure:
   ``attempts`` + 1, ``last_error``, and the next attempt after an exponential backoff
   ``min(base_delay · 2^(attempts-1), max_delay)``; after ``max_attempts`` failures the
   row is ``failed`` and never retried.

A row is sent again only after its receiver failed (or the deliverer died between
sending and recording, the one at-least-once window of any outbox). The table is the
record of what was delivered, when, after how many attempts, and what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.core.identifiers import quote
from evalstore.errors import InvalidParameterError
from evalstore.monitors import channels as channel_api

STATES = ("due", "delivered", "failed")
#: Upper bounds of the deliverer's knobs.
MAX_BATCH = 10_000
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt: ``state`` after it (``delivered``, ``due`` again, or
    ``failed``), attempts so far, and the error of a failed attempt."""

    outbox_id: int
    alert_id: int
    channel: str
    change: str
    state: str
    attempts: int
    error: str | None


def enqueue(
    con: duckdb.DuckDBPyConnection,
    *,
    alert_id: int,
    change: str,
    payload: Mapping[str, Any],
    channels: Sequence[str] | None = None,
    now: datetime | None = None,
) -> int:
    """Write one ``due`` row per channel (``channels``: names, None = every enabled
    channel; a disabled or missing named channel is an error) for ``change`` of alert
    ``alert_id``; return the number of rows. Joins the caller's transaction on ``con``."""
    now = now or datetime.now(UTC)
    text = json.dumps(payload, sort_keys=True)
    with transaction(con):
        enabled = [
            name
            for (name,) in con.execute(
                "SELECT name FROM evalstore.channels WHERE enabled ORDER BY name"
            ).fetchall()
        ]
        if channels is None:
            targets = enabled
        else:
            missing = [name for name in channels if name not in enabled]
            if missing:
                raise InvalidParameterError(
                    f"channel {missing[0]!r} does not exist or is disabled; add it with "
                    "add_channel or enable it"
                )
            targets = list(dict.fromkeys(channels))
        for name in targets:
            con.execute(
                "INSERT INTO evalstore.outbox (outbox_id, alert_id, channel, change, payload, "
                "state, created_at, attempts, next_attempt_at) VALUES "
                "(nextval('evalstore.outbox_ids'), ?, ?, ?, ?, 'due', ?, 0, ?)",
                [alert_id, name, change, text, now, now],
            )
    return len(targets)


def backoff(attempts: int, base_delay: float, max_delay: float) -> timedelta:
    """Delay before the next attempt after ``attempts`` failures:
    ``min(base_delay · 2^(attempts-1), max_delay)`` seconds."""
    return timedelta(seconds=min(base_delay * 2 ** max(attempts - 1, 0), max_delay))


def deliver_due(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    limit: int = 100,
    max_attempts: int = 8,
    base_delay: float = 5.0,
    max_delay: float = 3600.0,
    claim_seconds: float = 300.0,
    send: Callable[[channel_api.Channel, Mapping[str, Any]], None] = channel_api.send,
) -> list[Delivery]:
    """Send up to ``limit`` due rows (oldest first) whose ``next_attempt_at`` ≤ ``now``;
    return one :class:`Delivery` per attempt. Defaults: 8 attempts, backoff 5 s doubling
    to at most an hour (the last retry about 10 minutes after the first failure). A row
    whose channel was deleted or disabled is marked ``failed`` at once, with the reason.
    ``now`` (default: the current time) is also the time recorded as ``delivered_at``."""
    now = now or datetime.now(UTC)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise InvalidParameterError(f"limit={limit!r} must be an int in [1, {MAX_BATCH}]")
    if (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= MAX_ATTEMPTS
    ):
        raise InvalidParameterError(
            f"max_attempts={max_attempts!r} must be an int in [1, {MAX_ATTEMPTS}]"
        )
    for name, value in (("base_delay", base_delay), ("max_delay", max_delay),
                        ("claim_seconds", claim_seconds)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise InvalidParameterError(f"{name}={value!r} must be a number of seconds >= 0")
    with transaction(con):
        claimed = con.execute(
            "UPDATE evalstore.outbox SET next_attempt_at = ? WHERE outbox_id IN ("
            "  SELECT outbox_id FROM evalstore.outbox WHERE state = 'due' "
            "  AND next_attempt_at <= ? ORDER BY next_attempt_at, outbox_id LIMIT ?) "
            "RETURNING outbox_id, alert_id, channel, change, payload, attempts",
            [now + timedelta(seconds=claim_seconds), now, limit],
        ).fetchall()
    results = []
    for outbox_id, alert_id, name, change, payload, attempts in sorted(claimed):
        channel = channel_api.get_channel(con, name)
        error: str | None = None
        if channel is None or not channel.enabled:
            error = f"channel {name!r} was deleted or disabled"
            attempts, state = attempts + 1, "failed"
        else:
            try:
                send(channel, json.loads(payload))
            except channel_api.DeliveryError as failure:
                error = str(failure)[: channel_api.MAX_ERROR_TEXT]
            attempts += 1
            state = "delivered" if error is None else "due"
            if error is not None and attempts >= max_attempts:
                state = "failed"
        next_at = now + backoff(attempts, base_delay, max_delay) if state == "due" else now
        with transaction(con):
            con.execute(
                "UPDATE evalstore.outbox SET state = ?, attempts = ?, next_attempt_at = ?, "
                "delivered_at = ?, last_error = ? WHERE outbox_id = ?",
                [state, attempts, next_at, now if state == "delivered" else None, error,
                 outbox_id],
            )  # fmt: skip
        results.append(Delivery(outbox_id, alert_id, name, change, state, attempts, error))
    return results


def list_outbox(
    con: duckdb.DuckDBPyConnection,
    *,
    state: str | None = None,
    alert_id: int | None = None,
    limit: int = 10_000,
) -> pa.Table:
    """Outbox rows, newest first: what was (or will be) sent, to which channel, with its
    state, attempts, delivery time and last error."""
    return newest_rows(
        con, "outbox", "outbox_id", {"state": state, "alert_id": alert_id}, limit, states=STATES
    )


def newest_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key: str,
    filters: Mapping[str, Any],
    limit: int,
    *,
    states: Sequence[str],
) -> pa.Table:
    """The rows of ``evalstore.<table>`` whose columns equal every non-None value of
    ``filters`` (column → value, bound as parameters), highest ``key`` first, at most
    ``limit`` of them (the listings of the outbox and of the alerts).

    ``filters['state']``, when given, must be one of ``states``, and ``limit`` an int in
    [1, 1000000]; otherwise :class:`InvalidParameterError` names the parameter.
    """
    state = filters.get("state")
    if state is not None and state not in states:
        raise InvalidParameterError(
            f"state={state!r} must be one of {', '.join(map(repr, states))} or None"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise InvalidParameterError(f"limit={limit!r} must be an int in [1, 1000000]")
    where, params = [], []
    for column, value in filters.items():
        if value is not None:
            where.append(f"{quote(column)} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return con.sql(
        f"SELECT * FROM evalstore.{quote(table)} {clause} "
        f"ORDER BY {quote(key)} DESC LIMIT {int(limit)}",
        params=params,
    ).to_arrow_table()
