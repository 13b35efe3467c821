"""Screening new serving rows for invalid values: the trigger of the monitors' fast path.

A monitor of an *invalid-value* check (quality ``nan``, ``posinf``, ``neginf``,
``out_of_range``, ``unseen``: :data:`INVALID_METRICS`) can breach on a single row, so the
server's monitor loop should run it as soon as such a row is committed rather than on its
debounced pass (issue 26 point 8: invalid values alerted within 1 s). Running the monitor
after every commit would add a quality call to each one; :class:`Screen` instead checks
only the serving rows committed since its last look (``batch_id`` above its watermark:
a few rows per commit) and names the monitors that must run now.

For each fast monitor and each of its feature subjects, a new serving row *triggers* it
when its value is

=============== ============================================================================
``nan``         NaN
``posinf``      +inf
``neginf``      -inf
``out_of_range`` finite and outside the finite [min, max] of the monitor's reference rows
``unseen``      non-NULL and not among the reference rows' non-NULL categories (as text)
=============== ============================================================================

which is what makes the quality family's count or share of that check above 0 in the
row's window. Batch ids only grow, so the new serving rows and any new reference rows are
those above the watermark: a check reads only what was committed since the last one.
The screen is a trigger, not a verdict: the monitor's run computes the
window exactly and its rule decides (a share above 0.01 may still be ``ok``). So the
screen may trigger more runs than needed, never fewer for what it screens exactly:

* exact for the reference ``training`` (the default), ``validation`` and
  ``{'dataset': tag}`` without ``version`` or ``where``; the reference's range and
  categories are read once and kept until a non-serving feature batch arrives (a
  batch that replaced reference rows with ``on_conflict='replace'`` arrives as one);
* a monitor with ``version``, ``where``, another reference, a reference of more than
  :data:`MAX_CATEGORIES` categories, or outputs among its subjects (``score``,
  ``prediction``, ``label`` live in other tables) is triggered by *any* new serving row
  of the model: its run decides.

The watermark starts at -1, so the first screen of a model reads its stored serving rows
once (a model with invalid values in its history gets one run of those monitors). NULL
(quality ``missing``) is not screened: it is a share compared with the reference's own
share of NULLs, an ordinary value for many features; it waits for the debounced pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from evalstore.core.db import transaction
from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.values import feature_kinds
from evalstore.monitors.definitions import Monitor

#: Quality checks a single row can breach: the monitors of the fast path.
INVALID_METRICS = ("nan", "posinf", "neginf", "out_of_range", "unseen")
#: Checks per feature kind.
_KINDS = {
    "nan": "numeric",
    "posinf": "numeric",
    "neginf": "numeric",
    "out_of_range": "numeric",
    "unseen": "categorical",
}
#: Most reference categories kept per feature; beyond, any new row triggers the monitor.
MAX_CATEGORIES = 10_000
#: Reference envs by name (the other references are not screened exactly).
_ENV_REFERENCES = {None: "training", "training": "training", "validation": "validation"}


def is_fast(monitor: Monitor) -> bool:
    """Whether ``monitor`` is on the fast path: an enabled quality monitor of one of
    :data:`INVALID_METRICS`."""
    return monitor.enabled and monitor.family == "quality" and monitor.metric in INVALID_METRICS


@dataclass
class _Reference:
    """One reference's figures per feature: ``ranges`` (finite min, max; None when no
    finite value) and ``categories`` (None when more than :data:`MAX_CATEGORIES`)."""

    ranges: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    categories: dict[str, frozenset[str] | None] = field(default_factory=dict)


@dataclass
class _Model:
    serving_batch: int = -1
    references: dict[tuple[str, str], _Reference] = field(default_factory=dict)


def _reference_filter(monitor: Monitor) -> tuple[str, str] | None:
    """``(column, value)`` selecting the monitor's reference rows, or None when the
    screen cannot select them exactly (see the module docstring)."""
    if monitor.version is not None or monitor.where is not None:
        return None
    reference = monitor.reference
    if reference is None or (isinstance(reference, str) and reference in _ENV_REFERENCES):
        return "env", _ENV_REFERENCES[reference]
    if isinstance(reference, str) and reference.startswith("dataset:"):
        return "dataset", reference.removeprefix("dataset:")
    if isinstance(reference, Mapping) and set(reference) == {"dataset"}:
        return "dataset", str(reference["dataset"])
    return None


class Screen:
    """Per model, the serving batches already screened and the reference figures kept
    (see the module docstring); :meth:`check` names the monitors to run now."""

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}

    def check(
        self, con: duckdb.DuckDBPyConnection, model: str, monitors: Sequence[Monitor]
    ) -> list[str]:
        """The names of the fast monitors among ``monitors`` (of ``model``) that a serving
        row committed since the last check triggers, in the order given; advances the
        watermark. One read transaction on ``con`` (a session's connection)."""
        fast = [m for m in monitors if is_fast(m) and m.model == model]
        if not fast:
            return []
        state = self._models.setdefault(model, _Model())
        features = f"{schema_prefix(con, model)}features"
        with transaction(con):  # one snapshot: the watermarks, the reference, the rows
            # batch ids only grow: everything committed since the last look is above it
            serving, others = con.execute(
                "SELECT max(batch_id) FILTER (WHERE env = 'serving'), "
                f"count(*) FILTER (WHERE env <> 'serving') FROM {features} WHERE batch_id > ?",
                [state.serving_batch],
            ).fetchall()[0]
            if others:  # new training or validation rows: read the references again
                state.references.clear()
            if serving is None:
                return []
            kinds = feature_kinds(con, model)
            tests: list[tuple[str, str]] = []  # (monitor, SQL condition)
            params: list[Any] = []
            for monitor in fast:
                for condition, values in self._conditions(con, features, state, monitor, kinds):
                    tests.append((monitor.name, condition))
                    params += values
            params += [state.serving_batch, serving]
            found = set()
            if tests:
                parts = ", ".join(f"coalesce(bool_or({c}), false)" for _, c in tests)
                row = con.execute(
                    f"SELECT {parts} FROM {features} "
                    "WHERE env = 'serving' AND batch_id > ? AND batch_id <= ?",
                    params,
                ).fetchall()[0]
                found = {name for (name, _), hit in zip(tests, row, strict=True) if hit}
            state.serving_batch = serving
        return [m.name for m in fast if m.name in found]

    def forget(self, model: str) -> None:
        """Drop what is kept for ``model`` (its next check starts from batch -1)."""
        self._models.pop(model, None)

    def _conditions(
        self,
        con: duckdb.DuckDBPyConnection,
        features: str,
        state: _Model,
        monitor: Monitor,
        kinds: Mapping[str, str],
    ) -> list[tuple[str, list[Any]]]:
        """The SQL conditions (with their parameters) of which any true on a new serving
        row triggers ``monitor``."""
        kind = _KINDS[monitor.metric]
        subjects = list(monitor.subjects) if monitor.subjects else None
        chosen = [f for f in (subjects or kinds) if kinds.get(f) == kind]
        selector = _reference_filter(monitor)
        if selector is None or (subjects is not None and any(s not in kinds for s in subjects)):
            return [("true", [])]  # not screened exactly: any new row
        if not chosen:
            return []
        reference = None
        if monitor.metric in ("out_of_range", "unseen"):
            reference = self._reference(con, features, state, selector, chosen, monitor.metric)
        out: list[tuple[str, list[Any]]] = []
        for feature in chosen:
            value = f"CAST({quote(feature)} AS DOUBLE)"
            if monitor.metric == "nan":
                out.append((f"isnan({value})", []))
            elif monitor.metric == "posinf":
                out.append((f"{value} = 'infinity'::DOUBLE", []))
            elif monitor.metric == "neginf":
                out.append((f"{value} = '-infinity'::DOUBLE", []))
            elif monitor.metric == "out_of_range":
                bounds = reference.ranges[feature] if reference else None
                if bounds is not None:
                    out.append((f"isfinite({value}) AND ({value} < ? OR {value} > ?)",
                                list(bounds)))  # fmt: skip
            else:
                categories = reference.categories[feature] if reference else None
                text = f"CAST({quote(feature)} AS VARCHAR)"
                if categories is None:
                    out.append((f"{text} IS NOT NULL", []))
                elif categories:
                    out.append((f"{text} IS NOT NULL AND NOT list_contains(?, {text})",
                                [sorted(categories)]))  # fmt: skip
        return out

    @staticmethod
    def _reference(
        con: duckdb.DuckDBPyConnection,
        features: str,
        state: _Model,
        selector: tuple[str, str],
        chosen: Sequence[str],
        metric: str,
    ) -> _Reference:
        """The reference figures of ``chosen`` features, read once per reference."""
        kept = state.references.setdefault(selector, _Reference())
        column, tag = selector
        where = f"{quote(column)} = ?"
        if metric == "out_of_range":
            missing = [f for f in chosen if f not in kept.ranges]
            for feature in missing:
                value = f"CAST({quote(feature)} AS DOUBLE)"
                low, high = con.execute(
                    f"SELECT min({value}), max({value}) FROM {features} "
                    f"WHERE {where} AND isfinite({value})",
                    [tag],
                ).fetchall()[0]
                finite = low is not None and math.isfinite(low) and math.isfinite(high)
                kept.ranges[feature] = (float(low), float(high)) if finite else None
        else:
            missing = [f for f in chosen if f not in kept.categories]
            for feature in missing:
                text = f"CAST({quote(feature)} AS VARCHAR)"
                rows = con.execute(
                    f"SELECT DISTINCT {text} FROM {features} "
                    f"WHERE {where} AND {text} IS NOT NULL LIMIT {MAX_CATEGORIES + 1}",
                    [tag],
                ).fetchall()
                kept.categories[feature] = (
                    None if len(rows) > MAX_CATEGORIES else frozenset(r[0] for r in rows)
                )
        return kept
