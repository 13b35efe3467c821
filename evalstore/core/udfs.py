"""Python UDFs: the p-values SQL cannot compute, registered on every evalstore connection.

Registered as DuckDB scalar functions, so any query on a store opened by evalstore can
call them (a plain ``duckdb.connect`` cannot; the drift macros therefore return the
statistics and evalstore adds these p-values on top):

``evalstore_ks_pvalue(d, n1, n2)``
    two-sided p-value of the two-sample KS statistic ``d``, exactly as
    ``scipy.stats.ks_2samp(method='auto')``: the exact distribution when both samples
    have at most 10 000 values, else Smirnov's asymptotic ``kstwo.sf(d, round(n1 n2 / (n1 + n2)))``
    (its slowest branch, ``2 smirnov(n, d)``, is summed here faster: :func:`kstwo_sf`).
``evalstore_chi2_pvalue(statistic, dof)``
    ``scipy.stats.chi2.sf(statistic, dof)``, the p-value of ``chi2_contingency``.
``evalstore_normal_pvalue(z)``
    two-sided ``2 * scipy.stats.norm.sf(|z|)``, for the mean-shift z-score and the
    two-proportion z-test.
``evalstore_fisher_pvalue(r1, r2, a1, a2)``
    the two-sided p-value of ``scipy.stats.fisher_exact([[r1, r2], [a1, a2]])``.
``evalstore_welch_pvalue(t, sd_1, n_1, sd_2, n_2)``
    the two-sided p-value of Welch's t statistic ``t`` with the Welch-Satterthwaite degrees
    of freedom of two samples of sample sds ``sd_1``, ``sd_2`` and sizes ``n_1``, ``n_2``,
    as ``scipy.stats.ttest_ind(equal_var=False)``: 0 for an infinite ``t`` (both samples
    constant, different means).
``evalstore_mannwhitney_pvalue(u, n_1, n_2, ties)``
    the two-sided p-value of ``scipy.stats.mannwhitneyu(x, y)`` (``method='auto'``,
    continuity correction) from U of ``x`` (``n_1`` values), ``n_2`` and the pooled tie term
    ``ties`` = Σ (t³ - t) over the tie groups: exact when a side has at most 8 values and
    there are no ties, else the normal approximation with tie correction.
``evalstore_cvm_pvalue(t, n_1, n_2)``
    the p-value of the two-sample Cramér-von Mises statistic ``t``, as
    ``scipy.stats.cramervonmises_2samp(method='auto')``: exact when neither side has more
    than 20 values, else asymptotic.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
from duckdb import sqltypes
from scipy import stats
from scipy._lib._array_api import array_namespace
from scipy.stats import _hypotests, _mannwhitneyu, _stats_py

#: scipy's threshold for method='auto' in ks_2samp.
MAX_EXACT_N = 10_000
#: scipy.special.smirnov sums its series exactly up to this n and approximates beyond it.
SMIRNOV_MAX_SUM_N = 1_000_000
#: numpy's long double carries a 64-bit significand (x86 extended precision), not double's 52.
EXTENDED = np.finfo(np.longdouble).nmant >= 63


def ks_pvalue(d: float, n1: int, n2: int) -> float | None:
    """Two-sided KS p-value as ``scipy.stats.ks_2samp`` computes it (method 'auto')."""
    if d is None or not n1 or not n2:
        return None
    n1, n2 = int(n1), int(n2)
    if max(n1, n2) <= MAX_EXACT_N:
        g = math.gcd(n1, n2)
        # scipy rounds d to the lattice of attainable values inside this helper.
        success, _, prob = _stats_py._attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
        if success:
            return float(min(max(prob, 0.0), 1.0))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return kstwo_sf(d, round(m * n / (m + n)))


def kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, P(D_n >= d) of the two-sided one-sample KS statistic,
    clipped to [0, 1].

    scipy (``scipy.stats._ksstats._kolmogn``) answers the survival function for n > 140 and
    2.2 <= n d^2 < 370 with ``2 * scipy.special.smirnov(n, d)``, the Birnbaum-Tingey sum of
    :func:`smirnov_sum`, which it evaluates term by term in double-double arithmetic: about
    0.17 s at n = 90 909 and 1.7 s at n = 10^6, the cost of every drifted KS cell with large
    windows. That branch is computed here by :func:`smirnov_sum` (the same sum, vectorised in
    extended precision, 3-4x faster, within 1e-11 of scipy relative, tested); every other
    branch, and platforms without an 80-bit long double, call scipy.
    """
    t = n * d
    if (
        EXTENDED
        and 140 < n <= SMIRNOV_MAX_SUM_N
        and 0 < d < 0.5
        and 1 < t < n - 1
        and 2.2 <= t * d < 370
    ):
        return min(max(2.0 * smirnov_sum(n, d), 0.0), 1.0)
    return float(min(max(stats.kstwo.sf(d, n), 0.0), 1.0))


def smirnov_sum(n: int, d: float) -> float:
    """P(D+_n >= d), the one-sided KS survival function, by the Birnbaum-Tingey sum

    d * sum_{v=0}^{floor(n (1 - d))} C(n, v) (d + v/n)^(v - 1) (1 - d - v/n)^(n - v),

    the series ``scipy.special.smirnov`` sums for n <= 10^6. All terms are evaluated at once
    in log space in numpy's long double (64-bit significand): a term's relative error grows
    like n times the unit roundoff, which in double would reach 1e-10 at n = 10^5. A term
    whose last factor is 0 (v = n (1 - d) exactly) is dropped, as in scipy. 0 < d < 1.
    """
    ext = np.longdouble
    v = np.arange(math.floor(n * (1 - d)) + 1, dtype=ext)
    n_ext, d_ext = ext(n), ext(d)
    log_binomial = np.concatenate(([ext(0)], np.cumsum(np.log((n_ext - v[:-1]) / (v[:-1] + 1)))))
    above, below = n_ext * d_ext + v, n_ext - v - n_ext * d_ext  # n (d + v/n), n (1 - d - v/n)
    keep = below > 0
    log_terms = (
        log_binomial[keep]
        + (v[keep] - 1) * np.log(above[keep] / n_ext)
        + (n_ext - v[keep]) * np.log(below[keep] / n_ext)
    )
    top = log_terms.max()
    return float(d_ext * np.exp(top) * np.exp(log_terms - top).sum())


def chi2_pvalue(statistic: float, dof: int) -> float | None:
    if statistic is None or dof is None or dof < 1:
        return None
    return float(stats.chi2.sf(statistic, dof))


def normal_pvalue(z: float) -> float | None:
    if z is None or math.isnan(z):
        return None
    return float(2 * stats.norm.sf(abs(z)))


def fisher_pvalue(r1: int, r2: int, a1: int, a2: int) -> float | None:
    """Two-sided p-value of Fisher's exact test of [[r1, r2], [a1, a2]] (scipy's)."""
    if r1 is None or r2 is None or a1 is None or a2 is None:
        return None
    table = [[int(r1), int(r2)], [int(a1), int(a2)]]
    return float(stats.fisher_exact(table).pvalue)


def welch_pvalue(t: float, sd_1: float, n_1: int, sd_2: float, n_2: int) -> float | None:
    """Two-sided p-value of Welch's t, as ``scipy.stats.ttest_ind(equal_var=False)``:
    ``2 t.sf(|t|, df)``, df = (v1 + v2)² / (v1² / (n1 - 1) + v2² / (n2 - 1)), v = sd² / n."""
    if t is None or math.isnan(t) or n_1 is None or n_2 is None or n_1 < 2 or n_2 < 2:
        return None
    if math.isinf(t):
        return 0.0
    v1, v2 = sd_1 * sd_1 / n_1, sd_2 * sd_2 / n_2
    df = (v1 + v2) ** 2 / (v1 * v1 / (n_1 - 1) + v2 * v2 / (n_2 - 1))
    return float(2 * stats.t.sf(abs(t), df))


def mannwhitney_pvalue(u: float, n_1: int, n_2: int, ties: float) -> float | None:
    """Two-sided p-value of Mann-Whitney's U of the first sample, as
    ``scipy.stats.mannwhitneyu(x, y)`` (``method='auto'``, ``use_continuity=True``).

    With U' = max(U, n_1 n_2 - U): exact (scipy's null distribution of U, ``2 P(U >= U')``)
    when a side has at most 8 values and there are no ties (``ties`` = Σ (t³ - t) over the
    pooled tie groups is 0), else ``2 Φ(-z)``, z = (U' - n_1 n_2 / 2 - ½) / s,
    s = √(n_1 n_2 / 12 ((n + 1) - ties / (n (n - 1)))); clipped to [0, 1].
    """
    if u is None or ties is None or not n_1 or not n_2 or math.isnan(u):
        return None
    n_1, n_2 = int(n_1), int(n_2)
    big_u = max(u, n_1 * n_2 - u)
    if (n_1 <= 8 or n_2 <= 8) and ties == 0:
        distribution = _mannwhitneyu._MWU(n_1, n_2)
        p = float(distribution.sf(np.asarray(round(big_u), np.int64)))
    else:
        n = n_1 + n_2
        s = math.sqrt(max(n_1 * n_2 / 12 * ((n + 1) - ties / (n * (n - 1))), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.float64(big_u - n_1 * n_2 / 2 - 0.5) / np.float64(s)
        p = float(stats.norm.sf(z))
    return None if math.isnan(p) else min(max(2 * p, 0.0), 1.0)


def cvm_pvalue(t: float, n_1: int, n_2: int) -> float | None:
    """p-value of the two-sample Cramér-von Mises ``t``, as
    ``scipy.stats.cramervonmises_2samp(method='auto')``: with both sides at most 20 values,
    scipy's exact distribution of U = (t + (4k - 1) / (6N)) k N (k = n_1 n_2, N = n_1 + n_2;
    U is a multiple of ¼, so it is rounded to one), else scipy's asymptotic p-value of t.
    None below 2 values a side."""
    if t is None or n_1 is None or n_2 is None or n_1 < 2 or n_2 < 2 or math.isnan(t):
        return None
    n_1, n_2 = int(n_1), int(n_2)
    k, n = n_1 * n_2, n_1 + n_2
    if max(n_1, n_2) <= 20:
        u = round(4 * (t + (4 * k - 1) / (6 * n)) * k * n) / 4
        return float(_hypotests._pval_cvm_2samp_exact(np.asarray(u), n_1, n_2))
    statistic = np.asarray(float(t))
    xp = array_namespace(statistic)
    return float(_hypotests._pval_cvm_2samp_asymptotic(statistic, n, n_1, n_2, k, xp=xp))


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Register the p-value UDFs on ``con`` (idempotent per connection)."""
    double, bigint = sqltypes.DOUBLE, sqltypes.BIGINT
    for name, function, params in (
        ("evalstore_ks_pvalue", ks_pvalue, [double, bigint, bigint]),
        ("evalstore_chi2_pvalue", chi2_pvalue, [double, bigint]),
        ("evalstore_normal_pvalue", normal_pvalue, [double]),
        ("evalstore_fisher_pvalue", fisher_pvalue, [bigint, bigint, bigint, bigint]),
        ("evalstore_welch_pvalue", welch_pvalue, [double, double, bigint, double, bigint]),
        ("evalstore_mannwhitney_pvalue", mannwhitney_pvalue, [double, bigint, bigint, double]),
        ("evalstore_cvm_pvalue", cvm_pvalue, [double, bigint, bigint]),
    ):
        con.create_function(name, function, params, double, null_handling="special")
