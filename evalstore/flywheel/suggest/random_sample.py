"""Strategy ``random``: a seeded uniform sample of the candidates (the baseline), ordered by
``evalstore.pick_order`` of the example id."""

from __future__ import annotations

from evalstore.flywheel.suggest.context import _Context


def _top_random(ctx: _Context, n: int) -> list[tuple[str, float]]:
    sql = (
        "SELECT s.example_id FROM evalstore.suggest_candidates($model, $version, $since, "
        f"$until) AS s WHERE true{ctx.where_clause('s')} "
        "ORDER BY evalstore.pick_order(s.example_id, $seed), s.example_id LIMIT $n"
    )
    ids = ctx.run(sql, ctx.params(n=n)).column(0).to_pylist()
    ctx.verdicts.update(dict.fromkeys(ids, True))
    return [(eid, 1.0 - i / max(len(ids), 1)) for i, eid in enumerate(ids)]
