"""Strategy ``committee``: disagreement between the versions that predicted the same
example (``evalstore.suggest_committee``: vote entropy and score spread). Needs two
versions with logged predictions."""

from __future__ import annotations

from evalstore.flywheel.suggest.candidates import _verified
from evalstore.flywheel.suggest.context import _Context, _memo, _pairs


def _version_count(ctx: _Context) -> int:
    """Versions that logged predictions for the model (from the batch audit trail)."""
    rows = ctx.con.execute(
        "SELECT count(DISTINCT version) FROM evalstore.batches "
        "WHERE model = ? AND kind = 'predictions' AND rows > 0",
        [ctx.model],
    ).fetchall()
    return int(rows[0][0])


def _top_committee(ctx: _Context, n: int) -> list[tuple[str, float]]:
    sql = (
        "SELECT s.example_id, s.committee FROM evalstore.suggest_committee($model, $since, "
        "$until) AS s WHERE s.committee IS NOT NULL"
        f"{ctx.where_clause('s')} ORDER BY s.committee DESC, s.example_id LIMIT $n"
    )
    return _verified(
        ctx,
        lambda m: _memo(ctx, ("committee", m), lambda: _pairs(ctx.run(sql, ctx.params(n=m)))),
        n,
    )
