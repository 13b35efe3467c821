"""Strategy ``mix``: a weighted combination of the others.

The budget is shared between strategies in proportion to ``weights`` (default
:data:`DEFAULT_WEIGHTS`; strategies a model cannot use are dropped and the rest
renormalised, :func:`_weights`) by D'Hondt apportionment, the r-th pick of strategy s
having priority ``weight_s / r``; an example picked by several keeps its first pick.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from evalstore.errors import InvalidParameterError
from evalstore.flywheel.suggest.committee import _version_count
from evalstore.flywheel.suggest.context import STRATEGIES, UNCERTAINTY, _Context
from evalstore.flywheel.suggest.features import _numeric_features
from evalstore.flywheel.suggest.novelty import _novelty_parts
from evalstore.flywheel.suggest.ranking import _ranked
from evalstore.flywheel.suggest.slices import _slice_candidates

#: Default weights of ``mix``.
DEFAULT_WEIGHTS: dict[str, float] = {
    "entropy": 0.4,
    "committee": 0.2,
    "novelty": 0.15,
    "slices": 0.15,
    "diversity": 0.1,
}


def _weights(ctx: _Context, weights: Mapping[str, float] | None) -> dict[str, float]:
    given = weights is not None
    chosen = dict(DEFAULT_WEIGHTS if weights is None else weights)
    for name, weight in chosen.items():
        if name not in STRATEGIES or name == "mix":
            raise InvalidParameterError(
                f"weights has unknown strategy {name!r}; use names among "
                f"{', '.join(s for s in STRATEGIES if s != 'mix')}"
            )
        if not isinstance(weight, int | float) or weight < 0 or not math.isfinite(weight):
            raise InvalidParameterError(f"weights[{name!r}]={weight!r} must be >= 0")
    usable = {}
    for name, weight in chosen.items():
        if weight == 0:
            continue
        if name in UNCERTAINTY and ctx.task == "regression":
            continue
        if name == "committee" and _version_count(ctx) < 2:
            continue
        if name == "novelty" and not _novelty_parts(ctx):  # no features or no reference
            continue
        if name == "diversity" and not _numeric_features(ctx):
            continue
        if name == "slices" and not _slice_candidates(ctx):
            continue
        usable[name] = float(weight)
    if not usable:
        if given:
            raise InvalidParameterError(
                f"none of the strategies in weights={dict(chosen)} can be used for "
                f"{ctx.model!r} (regression models have no uncertainty, committee needs two "
                "versions, novelty/diversity/slices need features)"
            )
        usable = {"random": 1.0}
    total = sum(usable.values())
    return {name: weight / total for name, weight in usable.items()}


def _mix(ctx: _Context, k: int, weights: dict[str, float]) -> list[tuple[str, float, str]]:
    """D'Hondt merge: the r-th pick of strategy s has priority w_s / r; first pick wins."""
    shares = _apportion(weights, k)
    if "diversity" in shares and not ctx.pool_given:
        # the pool scales with diversity's share of the budget, not with k
        ctx.pool = min(max(10 * shares["diversity"], 2000), ctx.pool)
    if "diversity" in weights and ctx.task != "regression":
        ctx.min_uncertain = ctx.pool + k
    picks: list[tuple[str, float, str]] = []
    taken: set[str] = set()
    queue: list[tuple[float, int, str, str]] = []
    # Strategies fill their share in turn; a strategy short of candidates leaves its
    # remaining slots to the others (a second round tops up from the best ones).
    for order, (name, weight) in enumerate(sorted(weights.items(), key=lambda kv: -kv[1])):
        ranked = _ranked(ctx, name, shares[name] + k, taken) if shares[name] else []
        count = 0
        for eid, _ in ranked:
            if count >= shares[name]:
                break
            if eid in taken:
                continue
            taken.add(eid)
            count += 1
            queue.append((weight / count, order, eid, name))
    if len(queue) < k:
        for name in sorted(weights, key=lambda s: -weights[s]):
            for eid, _ in _ranked(ctx, name, k - len(queue), taken):
                taken.add(eid)
                queue.append((0.0, 99, eid, name))
            if len(queue) >= k:
                break
    queue.sort(key=lambda row: (-row[0], row[1]))
    for priority, _, eid, name in queue[:k]:
        picks.append((eid, priority, name))
    return picks


def _apportion(weights: dict[str, float], k: int) -> dict[str, int]:
    """Seats per strategy by D'Hondt: the k largest of weight / r."""
    seats = dict.fromkeys(weights, 0)
    for _ in range(k):
        name = max(weights, key=lambda s: (weights[s] / (seats[s] + 1), -list(weights).index(s)))
        seats[name] += 1
    return seats
