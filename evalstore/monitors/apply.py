"""Monitors as code: make the stored monitors match a file (``evalstore monitor apply``).

The file is TOML, one table per monitor under ``monitors``, keyed by its name, with the
fields of ``store.add_monitor``::

    [monitors.x_psi]
    model = "fraud"
    family = "drift"
    metric = "psi"
    subjects = ["amount"]            # or "*" (the default)
    window = "1 day"
    rule = { type = "fixed", direction = "above", value = 0.2 }
    options = { bins = 20 }          # optional; so are reference, where, version,
                                     # learn_period = ["2024-01-01", "2024-02-01"], enabled

:func:`plan` checks every definition of the file (as ``add_monitor`` does) before
anything is written, and compares it with the stored one: ``create`` (not stored),
``update`` (a field differs: the changed fields are listed), ``delete`` (stored, not in
the file), ``unchanged``. :func:`apply` writes the plan in one transaction (all of it or,
on an error, nothing), so applying the same file again is a no-op: every monitor is
``unchanged`` and no version moves.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.errors import InvalidParameterError
from evalstore.monitors import catalog, definitions
from evalstore.monitors.definitions import Monitor

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Most bytes of a monitors file.
MAX_FILE_BYTES = 4_000_000
#: Fields of a monitor table in the file.
FIELDS = ("model", "family", "metric", "rule", "subjects", "window", "reference", "where",
          "version", "options", "learn_period", "enabled")  # fmt: skip
ACTIONS = ("create", "update", "delete", "unchanged")


@dataclass(frozen=True)
class Change:
    """One line of the plan: ``action`` on monitor ``name``, the ``fields`` that differ
    (update) and the definitions before and after (None where there is none)."""

    action: str
    name: str
    fields: tuple[str, ...] = ()
    before: Monitor | None = None
    after: Monitor | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The change as one line of the printed diff (``+``, ``~``, ``-``, ``=``)."""
        monitor = self.after or self.before
        assert monitor is not None
        what = f"{monitor.family} {monitor.metric} on {monitor.model}"
        if self.action == "create":
            return f"+ create {self.name} ({what}, rule {monitor.rule.type})"
        if self.action == "delete":
            return f"- delete {self.name} ({what})"
        if self.action == "unchanged":
            return f"= unchanged {self.name}"
        parts = []
        for name in self.fields:
            old, new = self.details[name]
            parts.append(f"{name}: {old!r} -> {new!r}")
        return f"~ update {self.name}: " + "; ".join(parts)


def parse(text: str) -> dict[str, dict[str, Any]]:
    """The monitors of a TOML text: ``{name: fields}``, or an error naming the problem."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise InvalidParameterError(
            f"the monitors file is larger than {MAX_FILE_BYTES} bytes; split it"
        )
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidParameterError(f"the monitors file is not valid TOML: {error}") from None
    extra = [k for k in document if k != "monitors"]
    if extra:
        raise InvalidParameterError(
            f"the monitors file has a top-level {extra[0]!r}; put every monitor under "
            "[monitors.<name>]"
        )
    return from_mapping(document.get("monitors", {}))


def from_mapping(monitors: Any) -> dict[str, dict[str, Any]]:
    """``{name: fields}`` checked for its shape: every table has the required fields
    (model, family, metric, rule) and no unknown one."""
    if not isinstance(monitors, Mapping):
        raise InvalidParameterError("'monitors' must be a table of [monitors.<name>] tables")
    out = {}
    for name, fields in monitors.items():
        if not isinstance(fields, Mapping):
            raise InvalidParameterError(f"monitors.{name} must be a table of fields")
        unknown = [k for k in fields if k not in FIELDS]
        if unknown:
            raise InvalidParameterError(
                f"monitors.{name}: unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}"
            )
        missing = [k for k in ("model", "family", "metric", "rule") if k not in fields]
        if missing:
            raise InvalidParameterError(f"monitors.{name}: missing {', '.join(missing)}")
        out[name] = dict(fields)
    return out


def check_all(ctx: Context, wanted: Mapping[str, Mapping[str, Any]]) -> dict[str, Monitor]:
    """Every definition of ``wanted`` checked (the first error raised, naming the monitor)."""
    checked = {}
    for name, fields in wanted.items():
        given = dict(fields)
        model, family, metric, rule = (given.pop(k) for k in ("model", "family", "metric", "rule"))
        try:
            checked[name] = definitions.check(ctx, name, model, family, metric, rule, **given)
        except InvalidParameterError as error:
            raise type(error)(f"monitors.{name}: {error}") from None
    return checked


def plan(ctx: Context, wanted: Mapping[str, Mapping[str, Any]]) -> list[Change]:
    """The changes that make the stored monitors match ``wanted`` (creates and updates in
    the file's order, then deletes by name). Writes nothing."""
    checked = check_all(ctx, wanted)
    with ctx.lock:
        stored = {m.name: m for m in catalog.stored(ctx.connection)}
    changes = []
    for name, monitor in checked.items():
        current = stored.get(name)
        if current is None:
            changes.append(Change("create", name, after=monitor))
            continue
        old, new = current.definition(), monitor.definition()
        differing = tuple(k for k in new if old.get(k) != new[k])
        if differing:
            details = {k: (old.get(k), new[k]) for k in differing}
            changes.append(Change("update", name, differing, current, monitor, details))
        else:
            changes.append(Change("unchanged", name, before=current, after=current))
    for name in sorted(set(stored) - set(checked)):
        changes.append(Change("delete", name, before=stored[name]))
    return changes


def apply(ctx: Context, changes: list[Change]) -> None:
    """Write ``changes`` (from :func:`plan`) in one transaction."""
    ctx.check_writable()
    con = ctx.connection
    with ctx.lock, transaction(con):
        for change in changes:
            if change.action == "create":
                catalog.add(ctx, change.after)  # type: ignore[arg-type]
            elif change.action == "update":
                after = change.after
                assert after is not None
                fields = {k: v for k, v in after.definition().items() if k != "name"}
                fields["rule"] = after.rule
                catalog.update(ctx, change.name, fields)
            elif change.action == "delete":
                catalog.delete(ctx, change.name)


def table(changes: list[Change]) -> pa.Table:
    """The plan as a table: action, name, fields (changed), line (the printed diff)."""
    return pa.Table.from_pylist(
        [{"action": c.action, "name": c.name, "fields": list(c.fields), "line": c.line()}
         for c in changes],
        schema=pa.schema([("action", pa.string()), ("name", pa.string()),
                          ("fields", pa.list_(pa.string())), ("line", pa.string())]),
    )  # fmt: skip
