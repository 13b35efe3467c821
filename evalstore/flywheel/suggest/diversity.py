"""Strategy ``diversity``: greedy k-center (Sener & Savarese 2018) on standardized numeric
features over a pool of the ``pool`` most uncertain candidates (most novel for
regression): each pick is the candidate farthest from those already picked; its score is
that distance relative to the first step's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalstore.errors import InvalidParameterError
from evalstore.flywheel.suggest.context import _Context
from evalstore.flywheel.suggest.features import _features_of, _numeric_features
from evalstore.flywheel.suggest.novelty import _novelty_parts, _top_novelty
from evalstore.flywheel.suggest.random_sample import _top_random
from evalstore.flywheel.suggest.uncertainty import _top_uncertain


def _k_center(ctx: _Context, n: int, exclude: set[str]) -> list[tuple[str, float]]:
    """Greedy k-center over the pool; scores are distances relative to the first step's."""
    numeric = _numeric_features(ctx)
    if not numeric:
        raise InvalidParameterError(
            f"strategy='diversity' needs numeric features; {ctx.model!r} has none"
        )
    if ctx.task == "regression":
        # the pool shapes every pick, so its rows are checked to be candidates now
        optimistic, ctx.optimistic = ctx.optimistic, False
        try:
            pool = _top_novelty(ctx, ctx.pool + len(exclude)) if _novelty_parts(ctx) else []
        finally:
            ctx.optimistic = optimistic
        if not pool:
            pool = _top_random(ctx, ctx.pool + len(exclude))
    else:
        pool = _top_uncertain(ctx, "entropy", ctx.pool + len(exclude))
    everything = [eid for eid, _ in pool]
    ids = [eid for eid in everything if eid not in exclude][: ctx.pool]
    if not ids:
        return []
    # the other strategies' picks come along: their features are needed for the result
    features = _features_of(ctx, [*everything, *sorted(exclude)])
    pool_ids = [e for e in ids if e in features]
    if not pool_ids:
        return []
    x = np.array(
        [[_as_float(features[e]["v_" + c]) for c in numeric] for e in pool_ids], dtype=float
    ).reshape(len(pool_ids), len(numeric))
    return list(zip(*k_center(pool_ids, x, n), strict=True))


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def k_center(ids: Sequence[str], x: np.ndarray, n: int) -> tuple[list[str], list[float]]:
    """Greedy k-center: ``n`` rows of ``x`` (standardized per column) spread apart.

    The first pick is row 0 (the pool is ordered by uncertainty, so the most uncertain);
    each next pick maximises the Euclidean distance to its nearest earlier pick (ties:
    the earlier row). Missing and non-finite values are set to the column mean (0 after
    standardizing); constant columns are dropped. Returns the ids in pick order and each
    pick's distance divided by the second pick's (the first scores 1).
    """
    x = np.array(x, dtype=float, copy=True)
    x[~np.isfinite(x)] = np.nan
    mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
    sd = np.nanstd(x, axis=0) if len(x) else np.ones(x.shape[1])
    mean = np.where(np.isnan(mean), 0.0, mean)
    keep = np.nan_to_num(sd) > 0
    z = (x[:, keep] - mean[keep]) / sd[keep]
    z = np.nan_to_num(z, nan=0.0)
    m = len(ids)
    n = min(n, m)
    picked: list[int] = [0]
    scores = [1.0]
    nearest = np.sqrt(((z - z[0]) ** 2).sum(axis=1))
    scale = None
    for _ in range(1, n):
        nearest[picked[-1]] = -1.0
        nearest[picked] = -1.0
        i = int(np.argmax(nearest))
        d = float(nearest[i])
        if scale is None:
            scale = d if d > 0 else 1.0
        picked.append(i)
        scores.append(max(d, 0.0) / scale)
        nearest = np.minimum(nearest, np.sqrt(((z - z[i]) ** 2).sum(axis=1)))
    return [ids[i] for i in picked], scores
