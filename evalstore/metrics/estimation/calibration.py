"""Isotonic calibration of scores for CBPE: pool-adjacent-violators in numpy.

CBPE reads a model's scores as probabilities, so they must be calibrated: on the labeled
reference, ``P(y = 1 | score)`` is fitted as a non-decreasing step-wise linear function
of the score by isotonic regression (least squares under a monotonicity constraint),
solved exactly by the pool-adjacent-violators algorithm (PAV; Ayer et al. 1955, Barlow
et al. 1972). The fit equals scikit-learn's ``IsotonicRegression(increasing=True,
out_of_bounds="clip")`` (the calibrator NannyML's CBPE uses): tied scores are first
pooled into one point (mean label, weight = count), PAV merges adjacent blocks whose
means decrease, and a new score is mapped by linear interpolation between the pooled
points (``numpy.interp``), clipped to the end values outside the reference's range.

The result is a list of knots ``(x, p)``: :func:`segments` turns them into the
``[x_lo, x_hi)`` pieces ``sql/estimation.sql`` reads (an ASOF join picks a score's piece).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Calibration:
    """A fitted isotonic map: knots ``x`` (increasing) and values ``p`` (non-decreasing)."""

    x: np.ndarray
    p: np.ndarray

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``scores`` (linear between knots, clipped outside)."""
        return np.interp(np.asarray(scores, dtype=float), self.x, self.p)


def pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Isotonic (non-decreasing) least-squares fit of ``y`` with weights ``w``, in order.

    Pool adjacent violators: blocks are merged while a block's weighted mean is below the
    previous one's; each point gets its block's mean. O(n) amortised.
    """
    y = np.asarray(y, dtype=float)
    w = np.asarray(w, dtype=float)
    n = len(y)
    means = np.empty(n)
    weights = np.empty(n)
    sizes = np.empty(n, dtype=np.int64)
    top = -1
    for i in range(n):
        top += 1
        means[top], weights[top], sizes[top] = y[i], w[i], 1
        while top > 0 and means[top - 1] > means[top]:
            total = weights[top - 1] + weights[top]
            means[top - 1] = (means[top - 1] * weights[top - 1] + means[top] * weights[top]) / total
            weights[top - 1] = total
            sizes[top - 1] += sizes[top]
            top -= 1
    return np.repeat(means[: top + 1], sizes[: top + 1])


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    """Fit ``P(label = 1 | score)`` on paired arrays (NaN scores are dropped).

    Raises ``ValueError`` when no finite score remains (callers turn it into a message).
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=float)
    keep = np.isfinite(scores) & np.isfinite(labels)
    scores, labels = scores[keep], labels[keep]
    if len(scores) == 0:
        raise ValueError("no finite scores to calibrate")
    x, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=labels, minlength=len(x))
    fitted = pav(sums / counts, counts.astype(float))
    # keep the first and last point of each constant run (the same interpolation)
    if len(x) > 2:
        same_prev = np.r_[False, fitted[1:] == fitted[:-1]]
        same_next = np.r_[fitted[:-1] == fitted[1:], False]
        keep = ~(same_prev & same_next)
        x, fitted = x[keep], fitted[keep]
    return Calibration(x=x, p=fitted)


def identity() -> Calibration:
    """The map that leaves scores as they are (``calibration="none"``), clipped to [0, 1]."""
    return Calibration(x=np.array([0.0, 1.0]), p=np.array([0.0, 1.0]))


def segments(fits: dict[str, Calibration], column: str = "version") -> pa.Table:
    """The pieces of each fit as rows ``(<column>, x_lo, x_hi, p_lo, p_hi)``.

    A score s in ``[x_lo, x_hi)`` has probability ``p_lo + (p_hi - p_lo) (s - x_lo) /
    (x_hi - x_lo)``; the first piece starts at -inf and the last ends at +inf, both
    constant (``p_lo = p_hi``), so every score finds exactly one piece.
    """
    keys: list[str] = []
    parts: list[np.ndarray] = [np.empty(0)] * 4
    for key, fit in fits.items():
        x, p = fit.x, fit.p
        x_lo = np.r_[-np.inf, x]
        x_hi = np.r_[x, np.inf]
        p_lo = np.r_[p[0], p]
        p_hi = np.r_[p, p[-1]]
        keys += [key] * len(x_lo)
        parts = [np.r_[a, b] for a, b in zip(parts, (x_lo, x_hi, p_lo, p_hi), strict=True)]
    names = ("x_lo", "x_hi", "p_lo", "p_hi")
    floats = {n: pa.array(a, pa.float64()) for n, a in zip(names, parts, strict=True)}
    return pa.table({column: pa.array(keys, pa.string()), **floats})
