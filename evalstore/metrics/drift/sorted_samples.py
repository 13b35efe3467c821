"""Sorted samples and the drift statistics computed on them (numpy only, no database).

One side of a numeric drift cell is a :class:`Sample`: its values, sorted once (finite
ones only), with the distinct values, empirical CDF levels, partial sums and moments
derived from them on first use. On two samples, reference R and window A:

* :func:`ks_statistic`: D = sup_x |F_R(x) - F_A(x)|, evaluated at the window's distinct
  values a and just below them: max(|F_R(a) - F_A(a)|, |F_R(a-) - F_A(a-)|). Between two
  window values F_A is constant and F_R monotone, so the supremum is attained there; this
  is ``scipy.stats.ks_2samp``'s statistic.
* :func:`wasserstein_distance`: W1 = integral |F_R - F_A| dx, summed over the window's
  steps [a_j, a_j+1) with G(t) = mean_R(max(t - r, 0)) (the integral of F_R up to t) and
  the first reference value where F_R reaches the step's level; sums are taken of
  r - min_R so W1 keeps its precision far from 0 (``scipy.stats.wasserstein_distance``).
* :func:`mean_cross_difference` and :attr:`Sample.mean_abs_difference`: E|R - A| and
  E|X - X'| over all pairs, the terms of the energy distance
  sqrt(2 E|R - A| - E|R - R'| - E|A - A'|) (``scipy.stats.energy_distance``).
* :func:`rank_statistics`: Mann-Whitney's U, the pooled tie term and Cramér-von Mises' U
  from the pooled midranks (``scipy.stats.mannwhitneyu``, ``cramervonmises_2samp``).
* :func:`histogram`: counts on the chosen edges: bins [e_i, e_i+1), the last inner one
  closed, plus open-ended bins below the first and above the last edge.
* :func:`quantile_edges`: ``evalstore.quantile_edges`` of a sorted sample.

:mod:`evalstore.metrics.drift.numeric` reads the rows into samples and calls these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(eq=False)
class Sample:
    """One side of a cell: its raw values, sorted (finite ones only) on first use.

    Sorting is left to first use so that it happens in the worker thread of the
    feature, in parallel with the other features.
    """

    raw: np.ndarray
    #: ``raw`` is this sample's own memory (a slice of an array nobody else reads), so it
    #: is sorted in place rather than copied.
    owned: bool = False

    @cached_property
    def values(self) -> np.ndarray:
        """The finite values, sorted."""
        raw, self.raw = self.raw, None  # the raw values are not needed again
        finite = np.isfinite(raw)
        if not finite.all():
            return np.sort(raw[finite])
        if self.owned:
            raw.sort()
            return raw
        return np.sort(raw)

    @property
    def n(self) -> int:
        return len(self.values)

    @cached_property
    def starts(self) -> np.ndarray | None:
        """Where each distinct value first occurs in :attr:`values`; None when no value
        repeats (continuous data), so that nothing of the sample's size is built."""
        v = self.values
        first = np.empty(len(v), dtype=bool)
        first[:1] = True
        np.not_equal(v[1:], v[:-1], out=first[1:])
        return None if first.all() else np.flatnonzero(first)

    @cached_property
    def unique(self) -> np.ndarray:
        """The distinct values, ascending."""
        return self.values if self.starts is None else self.values[self.starts]

    @cached_property
    def distinct(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(distinct values, their counts, count of values <= each)."""
        v, starts = self.values, self.starts
        if starts is None:
            return v, np.ones(len(v), dtype=np.int64), np.arange(1, len(v) + 1)
        ends = np.append(starts[1:], len(v))
        return self.unique, ends - starts, ends

    def lookup(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ``at`` = how many distinct values lie at or below each of some keys (see
        :meth:`positions`): how many values lie at or below each key, and the count and
        value of the largest distinct value at or below it (0 and -inf where none is)."""
        found = at > 0
        last = np.maximum(at - 1, 0)
        value = np.where(found, self.unique[last], -np.inf)
        if self.starts is None:
            return at, found.astype(np.int64), value
        _, counts, le = self.distinct
        return np.where(found, le[last], 0), np.where(found, counts[last], 0), value

    @cached_property
    def levels(self) -> np.ndarray:
        """F at each distinct value (the empirical CDF's levels)."""
        return self.distinct[2] / self.n

    def positions(self, other: Sample) -> np.ndarray:
        """For each distinct value of ``other``: how many distinct values here are <= it."""
        return np.searchsorted(self.unique, other.unique, side="right")

    @cached_property
    def lo(self) -> float:
        return float(self.values[0])

    @cached_property
    def partial_sums(self) -> np.ndarray:
        """Sum of (r - min) over the values <= each distinct value."""
        unique, counts, _ = self.distinct
        return np.cumsum((unique - self.lo) * counts)

    @cached_property
    def moments(self) -> dict[str, float | None]:
        """mean, population and sample (ddof 1) standard deviation, min and max."""
        v = self.values
        mean = v.mean()
        deviations = v - mean
        squares = float(np.dot(deviations, deviations))
        return {
            "mean": float(mean),
            "sd_pop": math.sqrt(squares / len(v)),
            "sd": math.sqrt(squares / (len(v) - 1)) if len(v) > 1 else None,
            "lo": float(v[0]),
            "hi": float(v[-1]),
        }

    @cached_property
    def mean_abs_difference(self) -> float:
        """mean |x - x'| over all n² ordered pairs, self-pairs included:
        2 / n² Σ (v - lo) c (2 cum - c - n) over the distinct values v (count c, cum values
        at or below), the sorted-sample form of Σ x_(k) (2k - n - 1)."""
        unique, counts, le = self.distinct
        n = self.n
        return float(2 * np.dot((unique - self.lo) * counts, 2 * le - counts - n) / (n * n))

    @cached_property
    def tie_sum(self) -> float:
        """Σ (c³ - c) over the distinct values' counts c (0 without ties)."""
        if self.starts is None:
            return 0.0
        c = self.distinct[1].astype(np.float64)
        return float(np.sum(c**3 - c))

    @cached_property
    def run_sum(self) -> float:
        """Σ c (c² - 1) / 12 over the distinct values' counts c: Σ (i - m)² over each run of
        c tied sorted positions i around their midpoint m (Cramér-von Mises)."""
        return self.tie_sum / 12

    @cached_property
    def skewness(self) -> float | None:
        """Population skewness g1 (None for a constant sample), for Doane's bins."""
        mean, sd_pop = self.moments["mean"], self.moments["sd_pop"]
        return float(np.mean(((self.values - mean) / sd_pop) ** 3)) if sd_pop else None


def ks_statistic(reference: Sample, window: Sample, at: np.ndarray | None = None) -> float:
    """Two-sample KS statistic D of two non-empty samples (``scipy.stats.ks_2samp``).

    ``at`` is ``reference.positions(window)`` when the caller has it already.
    """
    a_unique, a_counts, a_le = window.distinct
    at = reference.positions(window) if at is None else at
    le, count, value = reference.lookup(at)
    lt = le - count * (value == a_unique)
    n_r, n_a = reference.n, window.n
    d_at = np.abs(le / n_r - a_le / n_a)
    d_below = np.abs(lt / n_r - (a_le - a_counts) / n_a)
    return float(max(d_at.max(), d_below.max()))


def wasserstein_distance(reference: Sample, window: Sample, at: np.ndarray | None = None) -> float:
    """W1 between two non-empty samples (``scipy.stats.wasserstein_distance``).

    ``at`` is ``reference.positions(window)`` when the caller has it already.
    """
    r_unique, _, r_le = reference.distinct
    a_unique, _, a_le = window.distinct
    n_r, n_a, lo = reference.n, window.n, reference.lo
    sums = reference.partial_sums
    at = reference.positions(window) if at is None else at
    le = reference.lookup(at)[0]
    total = np.where(at > 0, sums[at - 1], 0.0)
    g = (le * (a_unique - lo) - total) / n_r  # G(a) at each window value
    level = a_le / n_a  # F_A on [a_j, a_j+1)
    # first reference value whose F_R reaches the level (F_R's last value is exactly 1)
    cross = np.minimum(np.searchsorted(reference.levels, level, side="left"), len(r_unique) - 1)
    cross_value = r_unique[cross]
    cross_g = (r_le[cross] * (cross_value - lo) - sums[cross]) / n_r
    a, b = a_unique[:-1], a_unique[1:]
    c, g_a, g_b = level[:-1], g[:-1], g[1:]
    x, g_x = cross_value[:-1], cross_g[:-1]
    g_m = np.where(x <= a, g_a, np.where(x >= b, g_b, g_x))
    m = np.minimum(np.maximum(x, a), b)
    steps = g_b - g_a - c * (b - a) + 2 * (c * (m - a) - (g_m - g_a))
    above = (sums[-1] - total[-1] - (n_r - le[-1]) * (a_unique[-1] - lo)) / n_r
    return float(steps.sum() + g[0] + above)


def mean_cross_difference(reference: Sample, window: Sample, at: np.ndarray | None = None) -> float:
    """mean |r - a| over all pairs of two non-empty samples: for each window value a,
    Σ_r |a - r| = (a - lo) (2 le - n) - 2 T(a) + T_all, le the reference values <= a and
    T the sums of r - lo over them (energy distance's cross term).

    ``at`` is ``reference.positions(window)`` when the caller has it already.
    """
    a_unique, a_counts, _ = window.distinct
    at = reference.positions(window) if at is None else at
    le = reference.lookup(at)[0]
    sums = reference.partial_sums
    total = np.where(at > 0, sums[at - 1], 0.0)
    per_value = (a_unique - reference.lo) * (2 * le - reference.n) - 2 * total + sums[-1]
    return float(np.dot(a_counts, per_value) / (reference.n * window.n))


def histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    """Counts of sorted ``values`` in (-inf, e0), [e0, e1), ..., [e_k-1, e_k], (e_k, inf)."""
    n_edges = len(edges)
    if n_edges >= 2:
        below = np.searchsorted(values, edges[:-1], side="left")
    else:
        below = np.searchsorted(values, edges, side="left")
    at_or_below = np.searchsorted(values, edges[-1:], side="right")
    cumulative = np.concatenate([[0], below, at_or_below, [len(values)]])
    return np.diff(cumulative).tolist()


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """``evalstore.quantile_edges`` of sorted values: distinct [min, q(i/bins).., max].

    Interpolates linearly between order statistics, as ``numpy.quantile`` and DuckDB's
    ``quantile_cont``: position (n - 1) q, then lo + (hi - lo) * fraction. The result
    can differ from DuckDB's in the last bit; an interpolated edge lies strictly between
    two neighbouring values (or equals them when they tie), so bin counts are the same.
    """
    n = len(values)
    q = np.arange(1, bins) / bins
    position = (n - 1) * q
    below, above = np.floor(position).astype(np.int64), np.ceil(position).astype(np.int64)
    lo, hi = values[below], values[above]
    inner = np.where(below == above, lo, lo + (hi - lo) * (position - below))
    return np.unique(np.concatenate([values[:1], inner, values[-1:]]))


def rank_statistics(
    reference: Sample, window: Sample, at: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(Mann-Whitney U of the reference, the pooled tie term Σ (t³ - t), Cramér-von Mises U)
    of two non-empty samples, from each window value's reference counts below and equal
    (``evalstore.drift_numeric`` computes the same sums in SQL):

    * U of the reference = n_r n_a - Σ_a c_a (#r < a + ½ #r = a)
      (``scipy.stats.mannwhitneyu(reference, window).statistic``);
    * t runs over the pooled sample's tie groups: the reference's own, with the window's
      counts added where the window has the value (the normal approximation's tie term);
    * the CvM U = n_r Σ_i (rank(r_(i)) - i)² + n_a Σ_j (rank(a_(j)) - j)² with pooled
      midranks: a run of c tied values of one side at v contributes c d² + c (c² - 1) / 12,
      d = #other < v + ½ #other = v; reference values between window values a < a' have
      d = cum_a(a), those equal to a have cum_a(a) - ½ c_a, those below the first 0.

    ``at`` is ``reference.positions(window)`` when the caller has it already.
    """
    a_unique, a_counts, a_cum = window.distinct
    at = reference.positions(window) if at is None else at
    le, count, value = reference.lookup(at)
    equal = np.where(value == a_unique, count, 0).astype(np.float64)
    below = le - equal
    c = a_counts.astype(np.float64)
    cum = a_cum.astype(np.float64)
    n_r, n_a = reference.n, window.n
    mw = float(n_r) * n_a - float(np.dot(c, below + 0.5 * equal))
    t = equal + c
    ties = reference.tie_sum + float(np.sum(t**3 - t - (equal**3 - equal)))
    next_below = np.append(below[1:], n_r)
    reference_part = float(np.sum((next_below - le) * cum**2 + equal * (cum - 0.5 * c) ** 2))
    window_part = float(np.sum(c * (below + 0.5 * equal) ** 2 + c * (c * c - 1) / 12))
    cvm_u = n_r * (reference_part + reference.run_sum) + n_a * window_part
    return mw, ties, cvm_u
