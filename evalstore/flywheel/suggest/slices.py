"""Strategy ``slices``: spread the budget over slices of categorical feature(s) ``by`` in
proportion to their need (low label coverage, error rate above the overall one:
``evalstore.suggest_slice_needs``) by D'Hondt apportionment; inside a slice the picks are a
seeded random sample, so each slice's performance estimate stays unbiased. ``by=None``
tries each categorical feature with 2 to :data:`MAX_SLICE_VALUES` serving values and keeps
the one whose slices' needs differ most."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.errors import InvalidParameterError
from evalstore.flywheel.suggest.candidates import _anti_joins, _plausible
from evalstore.flywheel.suggest.context import _Context, _memo, _names

MAX_SLICE_VALUES = 50


def _slice_candidates(ctx: _Context) -> list[str]:
    """Categorical features usable as slices by default (2..50 serving values), cached."""
    return _memo(ctx, "slice candidates", lambda: _count_slice_values(ctx))


def _count_slice_values(ctx: _Context) -> list[str]:
    columns = [f for f, kind in ctx.kinds.items() if kind == "categorical"]
    if not columns:
        return []
    counts = ", ".join(f"count(DISTINCT {quote(c)})" for c in columns)
    row = ctx.con.execute(
        f"SELECT {counts} FROM {schema_prefix(ctx.con, ctx.model)}features WHERE env = 'serving'"
    ).fetchall()[0]
    return [c for c, n in zip(columns, row, strict=True) if 2 <= n <= MAX_SLICE_VALUES]


def _slice_key(columns: Sequence[str], alias: str) -> str:
    """SQL text of the slice key: the value itself for one column (grouping on the raw
    column is cheaper), ``a=x / b=y`` for several."""
    if len(columns) == 1:
        return f"CAST({alias}.{quote(columns[0])} AS VARCHAR)"
    return " || ' / ' || ".join(
        "'{}=' || coalesce(CAST({}.{} AS VARCHAR), 'NULL')".format(
            c.replace("'", "''"), alias, quote(c)
        )
        for c in columns
    )


def _slice_label(columns: Sequence[str], key: Any) -> str:
    """The readable name of a slice key, e.g. ``region=north``."""
    if len(columns) == 1:
        return f"{columns[0]}={'NULL' if key is None else key}"
    return str(key)


def _slice_view(ctx: _Context, columns: Sequence[str]) -> str:
    name = f"__evalstore_suggest_view_{next(_names)}"
    ctx.con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT f.example_id, f.example_key, "
        f"{_slice_key(columns, 'f')} AS slice "
        f"FROM {schema_prefix(ctx.con, ctx.model)}features AS f WHERE f.env = 'serving'"
    )
    ctx.temp.append(name)
    return name


def _slice_needs(ctx: _Context) -> dict[str, Any]:
    """Choose the slicing (``by`` or the most discriminating feature) and its needs."""
    if ctx.slices is not None:
        return ctx.slices
    if ctx.by is None:
        options = [[c] for c in _slice_candidates(ctx)]
        if not options:
            raise InvalidParameterError(
                f"strategy='slices' found no categorical feature of {ctx.model!r} with 2 to "
                f"{MAX_SLICE_VALUES} serving values; pass by=<feature> (or several)"
            )
    else:
        by = [ctx.by] if isinstance(ctx.by, str) else list(ctx.by)
        for column in by:
            if column not in ctx.kinds:
                raise InvalidParameterError(
                    f"by={column!r} is not a feature of {ctx.model!r}; known features: "
                    + ", ".join(ctx.kinds)
                )
        options = [by]
    best = None
    for columns in options:
        view = _slice_view(ctx, columns)
        needs = ctx.con.sql(
            "SELECT slice, examples, labeled, coverage, error_rate, need "
            "FROM evalstore.suggest_slice_needs(?, ?, ?, ?)",
            params=[ctx.model, ctx.version, f"temp.main.{view}", ctx.prior],
        ).to_arrow_table()
        values = [v for v in needs.column("need").to_pylist() if v is not None]
        spread = (max(values) - min(values)) if values else 0.0
        if best is None or spread > best["spread"]:
            best = {"columns": columns, "view": view, "needs": needs, "spread": spread}
    ctx.slices = best
    return best


def _top_slices(ctx: _Context, n: int) -> list[tuple[str, float]]:
    """D'Hondt over slices by need; inside a slice, a seeded random order.

    The random order is the seeded hash of the example's key (``example_key``, a
    function of the id; hashing it costs a quarter of hashing the text). Rather than
    ranking every serving row, each slice keeps the rows whose hash falls below a cut
    sized to a few times the picks D'Hondt can give it (a Bernoulli sample with the same
    order), and the cut grows until every slice has enough candidates or all of them.
    """
    slices = _slice_needs(ctx)
    rows_needs = slices["needs"].to_pylist()
    where = ctx.where_clause("v")
    # D'Hondt seats per slice for n picks (capped by the slice's size): how deep to sample
    seats = {row["slice"]: 0 for row in rows_needs}
    size = {row["slice"]: row["examples"] for row in rows_needs}
    need = {row["slice"]: row["need"] or 0.0 for row in rows_needs}
    for _ in range(n):
        open_ = [key for key in seats if seats[key] < size[key]]
        if not open_:
            break
        best = max(open_, key=lambda key: (need[key] / (seats[key] + 1), str(key)))
        seats[best] += 1

    def sample(factor: float) -> pa.Table:
        cut = [min(1.0, factor * (seats[key] + 2) / max(size[key], 1)) for key in seats]
        cuts = pa.table(
            {
                "slice": pa.array(list(seats), pa.string()),
                "need": pa.array([need[key] for key in seats], pa.float64()),
                "cut": pa.array(cut, pa.float64()),
            }
        )
        name = ctx.register(cuts)
        # hash / 2^64 is uniform in [0, 1): keep a slice's rows below its cut (the largest
        # cut first, on the scan, so that few rows reach the join), then drop the labeled
        # and requested ones
        sql = (
            "WITH sampled AS MATERIALIZED (SELECT v.example_id, v.example_key, v.slice, "
            "c.need, "
            "evalstore.pick_order(v.example_key, $seed) AS o "
            f"FROM temp.main.{quote(slices['view'])} AS v JOIN {quote(name)} AS c "
            "ON c.slice IS NOT DISTINCT FROM v.slice "
            "WHERE evalstore.pick_order(v.example_key, $seed) / 18446744073709551616.0 < c.cut "
            "AND evalstore.pick_order(v.example_key, $seed) / 18446744073709551616.0 < $cut"
            f"{where}) SELECT s.example_id, s.slice, s.o, s.need "
            f"FROM sampled AS s{_anti_joins('s')}"
        )
        table = ctx.run(sql, ctx.params(cut=max(cut, default=1.0)))
        return table

    factor = 4.0
    while True:
        table = _memo(ctx, ("slices", n, factor), lambda factor=factor: sample(factor))
        ids = table.column(0).to_pylist()
        ok = _plausible(ctx, ids)
        per_slice: dict[Any, int] = {}
        ranked = []
        keys, orders, needs_ = (table.column(i).to_pylist() for i in (1, 2, 3))
        for eid, key, _, slice_need in sorted(
            zip(ids, keys, orders, needs_, strict=True), key=lambda t: (str(t[1]), t[2])
        ):
            if eid not in ok:
                continue
            per_slice[key] = per_slice.get(key, 0) + 1
            ranked.append((eid, slice_need, per_slice[key]))
        short = [
            key
            for key in seats
            if per_slice.get(key, 0) < seats[key] and factor * (seats[key] + 2) < size[key]
        ]
        if not short or factor >= 4096:
            break
        factor *= 4
    ranked.sort(key=lambda t: (-(t[1] or 0.0) / t[2], t[0]))
    return [(eid, (need_ or 0.0) / r) for eid, need_, r in ranked[:n]]
