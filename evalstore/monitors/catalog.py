"""The stored monitors: rows of ``evalstore.monitors`` to :class:`Monitor` and back.

:mod:`evalstore.monitors.definitions` checks a definition; this module stores, reads,
updates and deletes checked ones (each in one transaction under the store's lock) and
records the outcome of a run (``last_run``, ``last_error``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.errors import InvalidParameterError
from evalstore.monitors.definitions import Monitor, check
from evalstore.monitors.rules import parse_rule

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: The most monitors a store holds.
MAX_MONITORS = 10_000
#: Columns of :func:`list_monitors`, in order.
COLUMNS = (
    "name", "model", "family", "metric", "subjects", "options", "rule", "definition_version",
    "enabled", "created_at", "updated_at", "last_run", "last_error",
)  # fmt: skip


def _row(monitor: Monitor) -> list[Any]:
    return [
        monitor.name,
        monitor.model,
        monitor.family,
        monitor.metric,
        list(monitor.subjects) if monitor.subjects else None,
        json.dumps(monitor.stored_options(), sort_keys=True),
        monitor.rule.dumps(),
        monitor.definition_version,
        monitor.enabled,
    ]


def from_row(row: Mapping[str, Any]) -> Monitor:
    """The :class:`Monitor` of a row of ``evalstore.monitors`` (as stored: not re-checked
    against the store's data)."""
    stored = json.loads(row["options"]) if row["options"] else {}
    period = stored.get("learn_period")
    return Monitor(
        name=row["name"],
        model=row["model"],
        family=row["family"],
        metric=row["metric"],
        rule=parse_rule(row["rule"]),
        subjects=tuple(row["subjects"]) if row["subjects"] else None,
        window=stored.get("window", "1 day"),
        reference=stored.get("reference"),
        where=stored.get("where"),
        version=stored.get("version"),
        options=stored.get("options") or {},
        learn_period=tuple(period) if period else None,  # type: ignore[arg-type]
        enabled=row["enabled"],
        definition_version=row["definition_version"],
    )


def _select(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[dict[str, Any]]:
    relation = con.sql(
        f"SELECT {', '.join(COLUMNS)} FROM evalstore.monitors {where} ORDER BY name",
        params=params,
    )
    return relation.to_arrow_table().to_pylist()


def get(con: duckdb.DuckDBPyConnection, name: str) -> Monitor | None:
    """The stored monitor called ``name``, or None."""
    rows = _select(con, "WHERE name = ?", [name])
    return from_row(rows[0]) if rows else None


def require(con: duckdb.DuckDBPyConnection, name: str) -> Monitor:
    """The stored monitor called ``name``, or an error naming the ones there are."""
    monitor = get(con, name)
    if monitor is None:
        raise InvalidParameterError(
            f"monitor {name!r} does not exist; list them with store.monitors() "
            "(`evalstore monitor list`)"
        )
    return monitor


def stored(con: duckdb.DuckDBPyConnection, model: str | None = None) -> list[Monitor]:
    """Every stored monitor (of ``model``), by name."""
    if model is None:
        return [from_row(r) for r in _select(con, "", [])]
    return [from_row(r) for r in _select(con, "WHERE model = ?", [model])]


def list_monitors(con: duckdb.DuckDBPyConnection, model: str | None = None) -> pa.Table:
    """The monitors (of ``model``) as an Arrow table, columns :data:`COLUMNS` (``rule``
    and ``options`` as JSON text), by name."""
    where, params = ("WHERE model = ?", [model]) if model is not None else ("", [])
    cast = [f"{c}::VARCHAR AS {c}" if c in ("rule", "options") else c for c in COLUMNS]
    return con.sql(
        f"SELECT {', '.join(cast)} FROM evalstore.monitors {where} ORDER BY name", params=params
    ).to_arrow_table()


def add(ctx: Context, monitor: Monitor) -> Monitor:
    """Store a checked monitor as version 1; a name in use is an error."""
    ctx.check_writable()
    con = ctx.connection
    now = datetime.now(UTC)
    with ctx.lock, transaction(con):
        if get(con, monitor.name) is not None:
            raise InvalidParameterError(
                f"monitor {monitor.name!r} exists; change it with update_monitor, or pick "
                "another name"
            )
        count = con.execute("SELECT count(*) FROM evalstore.monitors").fetchall()[0][0]
        if count >= MAX_MONITORS:
            raise InvalidParameterError(
                f"the store holds {count} monitors, the limit; delete some first"
            )
        monitor = replace(monitor, definition_version=1)
        con.execute(
            "INSERT INTO evalstore.monitors (name, model, family, metric, subjects, options, "
            "rule, definition_version, enabled, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [*_row(monitor), now, now],
        )
    return monitor


def update(ctx: Context, name: str, changes: Mapping[str, Any]) -> Monitor:
    """Change fields of the stored monitor ``name`` (any field of :func:`check` but the
    name); the result is checked as a new definition. Its version goes up by one unless
    only ``enabled`` changed (or nothing). Alert state carries over."""
    ctx.check_writable()
    con = ctx.connection
    fields = ("model", "family", "metric", "rule", "subjects", "window", "reference", "where",
              "version", "options", "learn_period", "enabled")  # fmt: skip
    unknown = [k for k in changes if k not in fields]
    if unknown:
        raise InvalidParameterError(
            f"update_monitor takes no field {unknown[0]!r}; fields: {', '.join(fields)}"
        )
    with ctx.lock, transaction(con):
        current = require(con, name)
        merged = {
            "model": current.model, "family": current.family, "metric": current.metric,
            "rule": current.rule, "subjects": current.subjects, "window": current.window,
            "reference": current.reference, "where": current.where,
            "version": current.version, "options": current.options,
            "learn_period": current.learn_period, "enabled": current.enabled,
            **changes,
        }  # fmt: skip
        model, family, metric, rule = (merged.pop(k) for k in ("model", "family", "metric", "rule"))
        new = check(ctx, name, model, family, metric, rule, **merged)
        before = current.definition()
        after = new.definition()
        before.pop("enabled")
        after.pop("enabled")
        version = current.definition_version + (1 if before != after else 0)
        new = replace(new, definition_version=version)
        if new.definition() == current.definition() and version == current.definition_version:
            return current
        con.execute(
            "UPDATE evalstore.monitors SET model = ?, family = ?, metric = ?, subjects = ?, "
            "options = ?, rule = ?, definition_version = ?, enabled = ?, updated_at = ? "
            "WHERE name = ?",
            [*_row(new)[1:], datetime.now(UTC), name],
        )
    return new


def delete(ctx: Context, name: str, now: datetime | None = None) -> None:
    """Delete the monitor ``name``, its alert cursors and its latest values
    (``evalstore.monitor_values``); its open (pending or firing)
    episodes become ``resolved`` at ``now`` without a notification (the reason says
    why); resolved episodes and the outbox stay."""
    ctx.check_writable()
    con = ctx.connection
    now = now or datetime.now(UTC)
    with ctx.lock, transaction(con):
        require(con, name)
        con.execute(
            "UPDATE evalstore.alerts SET state = 'resolved', resolved_at = ?, last_seen = ?, "
            "reason = coalesce(reason, '') || ' (closed: monitor deleted)' "
            "WHERE monitor = ? AND state <> 'resolved'",
            [now, now, name],
        )
        con.execute("DELETE FROM evalstore.alert_cursors WHERE monitor = ?", [name])
        con.execute("DELETE FROM evalstore.monitor_values WHERE monitor = ?", [name])
        con.execute("DELETE FROM evalstore.monitors WHERE name = ?", [name])


def record_outcome(
    con: duckdb.DuckDBPyConnection, name: str, at: datetime, error: str | None
) -> None:
    """Set ``last_run`` and ``last_error`` (None: the run succeeded) of monitor ``name``."""
    con.execute(
        "UPDATE evalstore.monitors SET last_run = ?, last_error = ? WHERE name = ?",
        [at, error, name],
    )
