"""Which examples are candidates: shared by every strategy.

Candidates are predictions of the suggested version with no label and no open request in
the call's time range and ``where``. The rankings over serving features (novelty, slices)
or over every version (committee) apply the label and request exclusions in SQL
(:func:`_anti_joins`, :func:`_excluded`) and leave the version and time range to a single
check of the final picks (:func:`_confirmed`); this module holds those checks, the cheap
"fetch more until enough" loop (:func:`_verified`) and the prediction payload kept for
the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from evalstore.core.identifiers import quote
from evalstore.core.layout import example_key_sql
from evalstore.flywheel.suggest.context import _Context

#: Prediction columns kept for the result (``{a}``: the alias of a candidates relation).
PREDICTION_PAYLOAD = (
    "{a}.version AS p_version, CAST({a}.prediction AS VARCHAR) AS p_prediction, "
    "{a}.score AS p_score, {a}.probabilities AS p_probabilities"
)


def _keep_predictions(ctx: _Context, table: pa.Table) -> None:
    names = ["example_id", "p_version", "p_prediction", "p_score", "p_probabilities"]
    part = table.select(names)
    ctx.predictions.append(part)


class _Ranked(list):
    """A ranked list that knows whether it holds every candidate there is."""

    def __init__(self, rows: list[tuple[str, float]], fetched: int) -> None:
        super().__init__(rows)
        self.complete = len(rows) < fetched


def _verified(ctx: _Context, fetch: Any, n: int) -> list[tuple[str, float]]:
    """Rank from a cheap source (``fetch(m)``: the top m rows, candidates or not), keeping
    the plausible candidates (:func:`_plausible`); fetch more, four times as many each
    round, until n are found or the source is spent.
    """
    m = max(2 * n, 1000)
    while True:
        rows = fetch(m)
        if not rows:
            return []
        ok = _plausible(ctx, [r[0] for r in rows])
        kept = [r for r in rows if r[0] in ok]
        if len(kept) >= n or len(rows) < m:
            return kept
        m *= 4


def _excluded(alias: str) -> str:
    """SQL: the example (``alias`` has ``example_key``) has a label or an open request
    (see evalstore.suggest_candidates)."""
    return (
        f"(EXISTS (SELECT 1 FROM evalstore.model_table($model, 'labels') AS l "
        f"WHERE l.example_key = {alias}.example_key) OR EXISTS (SELECT 1 FROM "
        "evalstore.label_requests AS r WHERE r.model = $model AND r.status = 'open' "
        f"AND {example_key_sql('r.example_id')} = {alias}.example_key))"
    )


def _anti_joins(alias: str) -> str:
    """SQL after a FROM item ``alias`` (with ``example_key``): drop examples with a label
    or an open request (as :func:`_excluded`; anti-joins plan better than NOT EXISTS
    inside subqueries), comparing keys."""
    return (
        f" ANTI JOIN evalstore.model_table($model, 'labels') AS l "
        f"ON l.example_key = {alias}.example_key ANTI JOIN (SELECT "
        f"{example_key_sql('r.example_id')} AS example_key FROM evalstore.label_requests AS r "
        f"WHERE r.model = $model AND r.status = 'open') AS r ON r.example_key = {alias}.example_key"
    )


def _plausible(ctx: _Context, ids: Sequence[str]) -> set[str]:
    """The ``ids`` that may be candidates.

    A ranking over the serving features (novelty, slices) or over every version
    (committee) has applied the label and request exclusions but not the version and
    time range. Checking that takes a join with all predictions, so it is done once, for
    the final picks (:func:`_confirmed`): until then an id not known to fail is taken as
    a candidate. After a pick has failed the check (a time range, or several versions),
    the rankings check their rows eagerly (:func:`_candidates_among`) instead.
    """
    if not ctx.optimistic:
        return _candidates_among(ctx, ids)
    return {eid for eid in ids if ctx.verdicts.get(eid, True)}


def _confirmed(ctx: _Context, ids: Sequence[str]) -> bool:
    """Check the picks not known to be candidates, in one query; False (and eager checks
    from then on) when one of them is not a candidate, so the picks must be redone.

    A pick may also be known to fail already: a ranking that checks eagerly (the
    regression diversity pool) can reject an id another ranking picked optimistically.
    """
    _candidates_among(ctx, [eid for eid in ids if eid not in ctx.verdicts])
    if all(ctx.verdicts[eid] for eid in ids):
        return True
    ctx.optimistic = False
    return False


def _candidates_among(ctx: _Context, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are candidates; their predictions are kept for the result."""
    unknown = list(dict.fromkeys(eid for eid in ids if eid not in ctx.verdicts))
    if unknown:
        _check_candidates(ctx, unknown)
    return {eid for eid in ids if ctx.verdicts[eid]}


def _check_candidates(ctx: _Context, ids: Sequence[str]) -> None:
    """Record which of ``ids`` are candidates (``ctx.verdicts``) and keep their
    predictions for the result, in one query."""
    name = ctx.register_ids(ids)
    # The rows of these ids first (a materialized semi-join, so the exclusions below only
    # look at them), then the same conditions as evalstore.suggest_candidates.
    table = ctx.run(
        "WITH c AS MATERIALIZED (SELECT p.* FROM evalstore.model_table($model, 'predictions') "
        f"AS p WHERE p.example_key IN (SELECT {example_key_sql('example_id')} FROM {quote(name)})) "
        f"SELECT c.example_id, {PREDICTION_PAYLOAD.format(a='c')} FROM c{_anti_joins('c')} "
        "WHERE c.version = $version AND ($since IS NULL OR c.ts >= $since) "
        "AND ($until IS NULL OR c.ts < $until)",
        ctx.params(),
    )
    _keep_predictions(ctx, table)
    ctx.verdicts.update(dict.fromkeys(ids, False))
    ctx.verdicts.update(dict.fromkeys(table.column(0).to_pylist(), True))
