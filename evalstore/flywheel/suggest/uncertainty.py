"""Strategies ``least_confidence``, ``margin`` and ``entropy``: the most uncertain
predictions of the suggested version (``evalstore.least_confidence``, ``evalstore.margin``,
``evalstore.entropy`` in ``sql/suggest.sql``). Binary and multiclass models only."""

from __future__ import annotations

import pyarrow.compute as pc

from evalstore.flywheel.suggest.candidates import (
    PREDICTION_PAYLOAD,
    _excluded,
    _keep_predictions,
    _Ranked,
)
from evalstore.flywheel.suggest.context import _Context, _pairs


def _top_uncertain(ctx: _Context, column: str, n: int) -> list[tuple[str, float]]:
    """The n most uncertain candidates by ``column`` (ties: example id), cached per call.

    For a binary model the three scores are increasing functions of one another
    (entropy = h((1 + sqrt(1 - lc)) / 2)... all decrease with |2s - 1|), so the ranking
    sorts by the cheapest, least confidence, and the result reports the requested score.

    The version's m most uncertain predictions are ranked first and the labeled and
    requested examples dropped from those m only (the same conditions as
    ``evalstore.suggest_candidates``, without joining every prediction with the labels):
    exact when n remain or the m were all there is, else m grows fourfold.
    """
    key = "least_confidence" if ctx.task == "binary" else column
    n = max(n, ctx.min_uncertain)  # mix: one query serves the share and the diversity pool
    cached = ctx.cache.get(("uncertain", key))
    if cached is None or (len(cached) < n and cached.complete is False):
        score = f"evalstore.{key}(p.score, p.probabilities)"
        sql = (
            f"WITH top AS (SELECT p.example_id, p.example_key, p.version, p.prediction, p.score, "
            f"p.probabilities, {score} AS {key} "
            "FROM evalstore.model_table($model, 'predictions') AS p "
            "WHERE p.version = $version AND ($since IS NULL OR p.ts >= $since) "
            f"AND ($until IS NULL OR p.ts < $until) AND {score} IS NOT NULL"
            f"{ctx.where_clause('p')} ORDER BY {key} DESC, p.example_id LIMIT $m) "
            f"SELECT s.example_id, s.{key}, {PREDICTION_PAYLOAD.format(a='s')}, "
            f"{_excluded('s')} AS excluded FROM top AS s ORDER BY s.{key} DESC, s.example_id"
        )
        m = max(2 * n, 1000)
        while True:
            top = ctx.run(sql, ctx.params(m=m))
            table = top.filter(pc.invert(top.column("excluded"))).slice(0, n)
            if table.num_rows >= n or top.num_rows < m:
                break
            m *= 4
        _keep_predictions(ctx, table)
        ctx.verdicts.update(dict.fromkeys(table.column(0).to_pylist(), True))
        cached = _Ranked(_pairs(table), n)
        ctx.cache[("uncertain", key)] = cached
    return list(cached[:n])
