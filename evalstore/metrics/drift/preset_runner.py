"""``store.drift(..., preset=name)``: univariate drift with a peer's definitions.

The options come from the registry :data:`evalstore.metrics.presets.PRESETS` (which also
says what a preset does not reproduce); this module runs one pass of
:func:`evalstore.metrics.drift.univariate.drift` per group of methods that share their
options (:func:`evalstore.metrics.presets.groups`), joins the passes in drift's usual
order (window, feature, version with NULL first, method) and starts every ``variant``
with ``preset=<name>; ``. The peer's fixed alert thresholds (Evidently's) apply unless
``thresholds=`` names the method.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from evalstore.metrics import presets
from evalstore.metrics.specs import DRIFT_METHODS

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Parameters of ``univariate.drift`` that select rows, not definitions: passed through.
_SELECTION = ("model", "reference", "window", "features", "version", "where", "since", "until")


def drift(ctx: Context, preset: str, arguments: dict[str, Any]) -> pa.Table:
    """Run ``univariate.drift`` with ``arguments`` (its own, as called) under ``preset``."""
    from evalstore.metrics.drift import univariate

    defaults = {
        name: p.default
        for name, p in inspect.signature(univariate.drift).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    options = {k: v for k, v in arguments.items() if k in defaults and k not in _SELECTION}
    options.pop("preset", None)
    methods = options.pop("methods", None)
    given = {k: v for k, v in options.items() if v != defaults[k]}
    passes = presets.groups(preset, "drift", methods, given, available=DRIFT_METHODS)
    chosen = [m for names, _ in passes for m in names]
    limits = {**presets.thresholds(preset, "drift", chosen), **(options.pop("thresholds") or {})}
    selection = {k: arguments[k] for k in _SELECTION if k in arguments}
    tables = [
        univariate.drift(
            ctx,
            methods=names,
            **selection,
            **{**options, **pass_options},
            thresholds={m: limit for m, limit in limits.items() if m in names} or None,
        )
        for names, pass_options in passes
    ]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if len(tables) > 1 and table.num_rows:
        order = pc.sort_indices(
            table,
            sort_keys=[
                (c, "ascending", "at_start")
                for c in ("window_start", "feature", "version", "method")
            ],
        )
        table = table.take(order)
    prefixed = pc.binary_join_element_wise(presets.variant_prefix(preset), table["variant"], "")
    return table.set_column(table.schema.get_field_index("variant"), "variant", prefixed)
