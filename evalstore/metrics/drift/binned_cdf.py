"""KS and Wasserstein estimated on a histogram of the reference: NannyML's estimates.

NannyML 0.13 (``nannyml.drift.univariate.methods``) computes ``kolmogorov_smirnov`` and
``wasserstein`` exactly on references of fewer than 10,000 values, and on larger ones
(its default ``calculation_method='auto'``) from ``n_bins`` = 10,000 equal-width bins of
the reference's range, to bound memory. evalstore computes both exactly by default; with
``cdf_bins=n`` (and ``cdf_min_rows``: only references of at least that many finite values),
``store.drift`` reports these estimates instead, named in ``variant``. Both functions take
the sorted finite values of the reference ``r`` and of the window ``a`` (sizes R and A).

``ks_estimate``: edges e_0..e_n = ``numpy.linspace(min r, max r, n + 1)``; with F(x) the
share of a sample in [e_0, x) for x < e_n (and in [e_0, e_n] at e_n), and L the share of
``a`` below e_0,

    D_est = max_i |F_r(e_i) - (L + F_a(e_i))|,  i = 1..n

(values of ``a`` above max r are in no bin, so the last term is their share).

``w1_estimate``: edges of ``numpy.histogram(r, bins=n)`` (width h; a constant reference
gets [r - 0.5, r + 0.5], as numpy), C_r and C_a the cumulative bin shares, S and B the
values of ``a`` below e_0 and above e_n,

    W1_est = h sum_i |C_r,i - (s + C_a,i)| + s T_S + b T_B,
    s = (|S| + 1) / A if S else 0,  b = (|B| + 1) / A if B else 0,

T_S = sum_j G_j (x_j+1 - x_j) over the distinct values x of S and e_0 with G their
empirical CDF, and T_B = sum_j (1 - G_j) (x_j+1 - x_j) over B and e_n: NannyML's formula,
including its (|S| + 1) / A weights, which make the estimate differ from W1 by more than
the binning when values fall outside the reference's range.
"""

from __future__ import annotations

import numpy as np


def ks_estimate(reference: np.ndarray, window: np.ndarray, n_bins: int) -> float:
    """NannyML's binned KS statistic of sorted ``reference`` and ``window`` (module doc)."""
    edges = np.linspace(reference[0], reference[-1], n_bins + 1)
    ref_cdf = np.cumsum(np.histogram(reference, edges)[0] / len(reference))
    below = np.searchsorted(window, edges[0], side="left") / len(window)
    ana_cdf = below + np.cumsum(np.histogram(window, edges)[0] / len(window))
    return float(np.max(np.abs(ref_cdf - ana_cdf)))


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, counts = np.unique(values, return_counts=True)
    return x, np.cumsum(counts) / len(values)


def w1_estimate(reference: np.ndarray, window: np.ndarray, n_bins: int) -> float:
    """NannyML's binned Wasserstein-1 of sorted ``reference`` and ``window`` (module doc)."""
    counts, edges = np.histogram(reference, bins=n_bins)
    ref_cdf = np.cumsum(counts / len(reference))
    width, lo, hi = edges[1] - edges[0], edges[0], edges[-1]
    n = len(window)
    smaller = window[: np.searchsorted(window, lo, side="left")]
    bigger = window[np.searchsorted(window, hi, side="right") :]
    term_smaller, amount_smaller = 0.0, 0.0
    if len(smaller):
        amount_smaller = (len(smaller) + 1) / n
        x, y = _ecdf(np.concatenate((smaller, [lo])))
        term_smaller = np.sum(y[:-1] * np.diff(x)) * amount_smaller
    term_bigger = 0.0
    if len(bigger):
        amount_bigger = (len(bigger) + 1) / n
        x, y = _ecdf(np.concatenate(([hi], bigger)))
        term_bigger = np.sum((1 - y)[:-1] * np.diff(x)) * amount_bigger
    ana_cdf = np.cumsum(np.histogram(window, bins=edges)[0] / n) + amount_smaller
    within = np.sum(np.abs(ref_cdf - ana_cdf) * width)
    return float(within + term_smaller + term_bigger)
