"""Serving feature rows of chosen examples (values, per-feature rarities, slice key), cached
per call; read by ``diversity`` (its pool's coordinates) and by the result's reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalstore.core.identifiers import quote
from evalstore.core.layout import example_key_sql, schema_prefix
from evalstore.flywheel.suggest.context import _Context
from evalstore.flywheel.suggest.novelty import _novelty_params, _novelty_parts
from evalstore.flywheel.suggest.slices import _slice_key


def _features_of(ctx: _Context, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Serving feature rows (values and per-feature rarities) of examples, cached; one
    query, by ``example_key`` (DuckDB pushes the few keys into the scan of the features).
    """
    missing = [e for e in dict.fromkeys(ids) if e not in ctx.features]
    if not missing:
        return ctx.features
    parts = _novelty_parts(ctx) if ctx.kinds else []
    params = _novelty_params(parts)
    cols = ["f.example_id"]
    cols += [f"{expr} AS {quote('r_' + feature)}" for feature, expr, _ in parts]
    cols += [f"f.{quote(feature)} AS {quote('v_' + feature)}" for feature in ctx.kinds]
    if ctx.slices is not None:
        cols.append(f"{_slice_key(ctx.slices['columns'], 'f')} AS __slice")
    name = ctx.register_ids(missing)
    sql = (
        f"SELECT {', '.join(cols)} FROM {schema_prefix(ctx.con, ctx.model)}features AS f "
        f"WHERE f.env = 'serving' "
        f"AND f.example_key IN (SELECT {example_key_sql('example_id')} FROM {quote(name)})"
    )
    for row in ctx.run(sql, params).to_pylist():
        ctx.features[row["example_id"]] = row
    return ctx.features


def _numeric_features(ctx: _Context) -> list[str]:
    return [f for f, kind in ctx.kinds.items() if kind == "numeric"]
