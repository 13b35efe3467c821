"""Python UDFs: the p-values SQL cannot compute, registered on every evalstore connection.

Registered as DuckDB scalar functions, so any query on a store opened by evalstore can
call them (a plain ``duckdb.connect`` cannot; the drift macros therefore return the
statistics and evalstore adds these p-values on top):

``evalstore_ks_pvalue(d, n1, n2)``
    two-sided p-value of the two-sample KS statistic ``d``, exactly as
    ``scipy.stats.ks_2samp(method='auto')``: the exact distribution when both samples
    have at most 10 000 values, else Smirnov's asymptotic ``kstwo.sf(d, round(n1 n2 / (n1 + n2)))``.
``evalstore_chi2_pvalue(statistic, dof)``
    ``scipy.stats.chi2.sf(statistic, dof)``, the p-value of ``chi2_contingency``.
``evalstore_normal_pvalue(z)``
    two-sided ``2 * scipy.stats.norm.sf(|z|)``, for the mean-shift z-score.
"""

from __future__ import annotations

import math

import duckdb
from duckdb import sqltypes
from scipy import stats
from scipy.stats import _stats_py

#: scipy's threshold for method='auto' in ks_2samp.
MAX_EXACT_N = 10_000


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
    prob = stats.kstwo.sf(d, round(m * n / (m + n)))
    return float(min(max(prob, 0.0), 1.0))


def chi2_pvalue(statistic: float, dof: int) -> float | None:
    if statistic is None or dof is None or dof < 1:
        return None
    return float(stats.chi2.sf(statistic, dof))


def normal_pvalue(z: float) -> float | None:
    if z is None or math.isnan(z):
        return None
    return float(2 * stats.norm.sf(abs(z)))


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Register the p-value UDFs on ``con`` (idempotent per connection)."""
    double, bigint = sqltypes.DOUBLE, sqltypes.BIGINT
    for name, function, params in (
        ("evalstore_ks_pvalue", ks_pvalue, [double, bigint, bigint]),
        ("evalstore_chi2_pvalue", chi2_pvalue, [double, bigint]),
        ("evalstore_normal_pvalue", normal_pvalue, [double]),
    ):
        con.create_function(name, function, params, double, null_handling="special")
