"""Percentile bootstrap intervals of performance metrics from per-cell sufficient statistics.

Fills ``ci_low``/``ci_high`` of the metrics whose intervals have no analytic form
(``needs_bootstrap`` in :data:`evalstore.metrics.specs.PERFORMANCE_METRICS`: macro and
weighted F1, ECE) in the raw table of the ``evalstore.performance_*`` macros, vectorised
over cells; see :mod:`evalstore.metrics.performance` for the method and its guarantees.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.metrics.specs import PERFORMANCE_METRICS

#: Metrics whose intervals come from this bootstrap.
BOOTSTRAP_METRICS = tuple(n for n, spec in PERFORMANCE_METRICS.items() if spec.needs_bootstrap)


def bootstrap_intervals(
    raw: pa.Table, n_boot: int, seed: int, confidence: float
) -> tuple[pa.Array, pa.Array]:
    """ci_low / ci_high with the bootstrap intervals filled in (rows in table order)."""
    low = raw.column("ci_low").to_numpy(zero_copy_only=False).astype(float)
    high = raw.column("ci_high").to_numpy(zero_copy_only=False).astype(float)
    if n_boot and raw.num_rows:
        wanted = pc.and_(
            pc.is_in(raw.column("metric"), pa.array(BOOTSTRAP_METRICS)),
            pc.is_valid(raw.column("value")),
        )
        rows = np.flatnonzero(wanted.to_numpy(zero_copy_only=False))
        picked = raw.take(pa.array(rows, pa.int64()))
        metric = picked.column("metric").to_pylist()
        stats = picked.column("stats").to_pylist()
        rng = np.random.default_rng(seed)
        for name, statistic in (
            ("macro_f1", _macro_f1_replicates),
            ("weighted_f1", _weighted_f1_replicates),
            ("ece", _ece_replicates),
        ):
            groups: dict[int, list[int]] = {}
            for i, (m, s) in enumerate(zip(metric, stats, strict=True)):
                if m == name and s:
                    groups.setdefault(len(s), []).append(i)
            for size in sorted(groups):
                members = np.array(groups[size])
                matrix = np.array([stats[i] for i in members], dtype=float)
                for part, block in _batches(members, matrix, n_boot * size):
                    replicates = statistic(rng, block, n_boot)
                    lo, hi = _percentile(replicates, confidence)
                    low[rows[part]], high[rows[part]] = lo, hi
    return pa.array(low, mask=np.isnan(low)), pa.array(high, mask=np.isnan(high))


def _batches(indices: np.ndarray, matrix: np.ndarray, per_cell: int, limit: int = 4_000_000):
    step = max(1, limit // max(per_cell, 1))
    for first in range(0, len(indices), step):
        yield indices[first : first + step], matrix[first : first + step]


def _percentile(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column: quantiles (1 -+ confidence) / 2 of the replicates.

    Quantiles are numpy.quantile's default (linear); NaN replicates (metric undefined
    in that resample) are dropped, and a column without a finite one gives NaN.
    """
    finite = np.isfinite(replicates)
    count = finite.sum(axis=0)
    ordered = np.sort(np.where(finite, replicates, np.inf), axis=0)
    last = np.maximum(count - 1, 0)
    position = np.array([[(1 - confidence) / 2], [(1 + confidence) / 2]]) * last
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, last)
    lower = np.take_along_axis(ordered, below, axis=0)
    upper = np.take_along_axis(ordered, above, axis=0)
    with np.errstate(invalid="ignore"):
        ends = lower + (position - below) * np.where(upper > lower, upper - lower, 0.0)
    ends[:, count == 0] = np.nan
    return ends[0], ends[1]


def _multinomial(rng: np.random.Generator, counts: np.ndarray, n_boot: int) -> np.ndarray:
    """Bootstrap draws of count vectors: (n_boot, cells, k), each row summing to n.

    Resampling n rows with replacement gives multinomial(n, counts / n) counts; drawn as
    a chain of binomials, vectorised over replicates and cells.
    """
    counts = np.rint(counts).astype(np.int64)
    cells, k = counts.shape
    remaining = np.broadcast_to(counts.sum(axis=1), (n_boot, cells)).copy()
    # share of the mass left after categories 0..j-1 that category j takes
    tails = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    out = np.empty((n_boot, cells, k), dtype=np.int64)
    for j in range(k - 1):
        share = np.divide(counts[:, j], tails[:, j], out=np.zeros(cells), where=tails[:, j] > 0)
        draw = rng.binomial(remaining, np.broadcast_to(share, (n_boot, cells)))
        out[:, :, j] = draw
        remaining -= draw
    out[:, :, k - 1] = remaining
    return out


def _class_f1(rng: np.random.Generator, stats: np.ndarray, n_boot: int):
    k = math.isqrt(stats.shape[1])
    draws = _multinomial(rng, stats, n_boot).reshape(n_boot, stats.shape[0], k, k)
    tp = np.diagonal(draws, axis1=2, axis2=3)
    actual = draws.sum(axis=3)
    predicted = draws.sum(axis=2)
    present = (actual + predicted) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(present, 2 * tp / (actual + predicted), np.nan)
    return f1, actual, present


def _macro_f1_replicates(rng: np.random.Generator, stats: np.ndarray, n_boot: int) -> np.ndarray:
    f1, _, present = _class_f1(rng, stats, n_boot)
    with np.errstate(invalid="ignore"):
        return np.nansum(f1, axis=2) / present.sum(axis=2)


def _weighted_f1_replicates(rng: np.random.Generator, stats: np.ndarray, n_boot: int) -> np.ndarray:
    f1, actual, _ = _class_f1(rng, stats, n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(np.nan_to_num(f1) * actual, axis=2) / actual.sum(axis=2)


def _ece_replicates(rng: np.random.Generator, stats: np.ndarray, n_boot: int) -> np.ndarray:
    """ECE of resampled cells from the bins' sums alone (normal limit of the bootstrap).

    With d = y - score, D_b = sum of d over bin b and q_b = sum of d^2 over it,
    resampling the n rows with replacement gives bin sums D* of mean D and covariance
    diag(q) - D D' / n. D* is drawn from that normal, D* = D + W - g D (a' W) with
    W ~ N(0, diag(q)), a = D / q and g = (1 - sqrt(1 - s / n)) / s, s = sum D^2 / q
    (so that the covariance matches); ECE* = sum_b |D*_b| / n.
    """
    k = stats.shape[1] // 3
    n = stats[:, :k].sum(axis=1)
    gaps, squares = stats[:, k : 2 * k], stats[:, 2 * k :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(squares > 0, gaps / squares, 0.0)
        s = (gaps * ratio).sum(axis=1)
        root = np.sqrt(np.clip(1 - s / n, 0.0, 1.0))
        g = np.where(s > 0, (1 - root) / s, 0.0)
    # float32 replicates: ample for interval ends, half the memory traffic
    w = rng.standard_normal((n_boot, *gaps.shape), dtype=np.float32)
    w *= np.sqrt(squares).astype(np.float32)
    projection = np.einsum("bck,ck->bc", w, ratio.astype(np.float32))
    w += gaps.astype(np.float32)
    w -= (g[:, None] * gaps).astype(np.float32) * projection[:, :, None]
    return np.abs(w).sum(axis=2, dtype=np.float64) / n
