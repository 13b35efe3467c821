"""Two-sample tests and distances of univariate drift beyond KS and chi-squared.

Every method is declared in :data:`evalstore.metrics.specs.DRIFT_METHODS` (definition,
kinds, default threshold) and documented in ``docs/drift.md#two-sample-tests-and-distances``.
Where the statistic is SQL-shaped it is computed by the macros, so a plain DuckDB connection
gets it too:

* categorical ``tvd``, ``g_test``, ``chisquare_gof``, ``z_test``, ``fisher_exact``:
  ``evalstore.categorical_methods`` (``sql/drift.sql``);
* numeric ``tvd``, ``welch_t``, ``energy_distance``, ``mann_whitney`` and
  ``cramer_von_mises``: ``evalstore.numeric_methods`` (``sql/drift_numeric.sql``; the last
  two from the pooled midranks, read off the same lookups of each window value in the
  reference's cumulative counts as KS).

Their p-values need scipy's distributions: :data:`P_VALUE_SQL` calls the Python UDFs of
:mod:`evalstore.core.udfs` on the macros' rows.

The others are left to ``store.drift``'s numeric fast path
(:mod:`evalstore.metrics.drift.numeric`), which calls scipy on each cell's sorted finite
values (:data:`SAMPLE_TESTS`, :func:`sample_test_rows`): ``anderson`` (its p-value is
interpolated in Scholz-Stephens' table and capped, scipy's own procedure),
``epps_singleton`` (complex arithmetic on empirical characteristic functions and a
covariance inverse) and ``empirical_mmd`` (:func:`evalstore.metrics.drift.kernels.mmd_test`
on one column: every pairwise distance and a permutation loop). Every
statistic takes ``(reference, window)`` in that order. A cell without finite values on a
side, or with too few for the test, gets value NULL and a reason.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from evalstore.metrics.drift import kernels

#: The p-value of a row of the drift macros (columns ``method``, ``value``, ``dof``,
#: ``n_reference``, ``n_analysis``, ``counts``, ``p_value``), from evalstore's Python UDFs;
#: rows that carry a p-value already (the numeric fast path computes them) keep it.
P_VALUE_SQL = """coalesce(p_value, CASE method
    WHEN 'ks' THEN evalstore_ks_pvalue(value, n_reference, n_analysis)
    WHEN 'chi2' THEN evalstore_chi2_pvalue(value, dof)
    WHEN 'g_test' THEN evalstore_chi2_pvalue(value, dof)
    WHEN 'chisquare_gof' THEN evalstore_chi2_pvalue(value, dof)
    WHEN 'z_test' THEN evalstore_normal_pvalue(value)
    WHEN 'fisher_exact' THEN evalstore_fisher_pvalue(counts[1], counts[2], counts[3], counts[4])
    WHEN 'cramer_von_mises' THEN evalstore_cvm_pvalue(value, n_reference, n_analysis)
    END)"""


def sql_names(names: tuple[str, ...]) -> str:
    """Registry names as a SQL list literal (registry constants, never user input)."""
    if not all(name.replace("_", "").isalnum() for name in names):
        raise ValueError(f"not method names: {names}")
    return "[" + ", ".join(f"'{name}'" for name in names) + "]"


# ----------------------------------------------------------------- the numeric fast path
#
# Tests computed by scipy (or kernels.py) on the sorted finite values of each cell, in the
# fast path's worker threads (evalstore.metrics.drift.numeric); the SQL macro
# evalstore.drift_numeric does not offer them (see the module docstring for why).

#: scipy warns when it caps AD's p-value or ES's covariance is rank-deficient; the
#: ``warnings`` filters are process-wide, so calls that silence them take turns.
_WARNINGS = threading.Lock()


@dataclass(frozen=True)
class SampleTest:
    """A numeric drift method computed from the two sorted samples of a cell.

    ``compute(reference, window)`` returns (value, p-value); ``undefined(reference, window)``
    the reason it is undefined, or None (both get finite sorted values, each non-empty).
    """

    name: str
    variant: str
    compute: Callable[[np.ndarray, np.ndarray], tuple[float, float | None]]
    undefined: Callable[[np.ndarray, np.ndarray], str | None]


def _quiet(function: Callable[[], Any]) -> Any:
    with _WARNINGS, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function()


def _anderson(reference: np.ndarray, window: np.ndarray) -> tuple[float, float | None]:
    result = _quiet(lambda: stats.anderson_ksamp([reference, window], variant="midrank"))
    return float(result.statistic), float(result.pvalue)


def _anderson_undefined(reference: np.ndarray, window: np.ndarray) -> str | None:
    if reference[0] == reference[-1] == window[0] == window[-1]:
        return "a single distinct value in both samples: Anderson-Darling is undefined"
    if len(reference) + len(window) < 4:
        return "Anderson-Darling needs at least 4 values in the two samples together"
    return None


def _at_least(n: int, test: str) -> Callable[[np.ndarray, np.ndarray], str | None]:
    def undefined(reference: np.ndarray, window: np.ndarray) -> str | None:
        if min(len(reference), len(window)) < n:
            return f"{test} needs at least {n} values on each side"
        return None

    return undefined


def _epps(reference: np.ndarray, window: np.ndarray) -> tuple[float, float | None]:
    result = _quiet(lambda: stats.epps_singleton_2samp(reference, window))
    return float(result.statistic), float(result.pvalue)


def _epps_undefined(reference: np.ndarray, window: np.ndarray) -> str | None:
    too_few = _at_least(5, "Epps-Singleton")(reference, window)
    if too_few:
        return too_few
    if stats.iqr(np.concatenate([reference, window])) == 0:
        return "the pooled interquartile range is 0: Epps-Singleton is undefined"
    return None


def _mmd(reference: np.ndarray, window: np.ndarray) -> tuple[float, float | None]:
    result = kernels.mmd_test(
        reference, window, n_permutations=MMD_PERMUTATIONS, max_rows=MMD_MAX_ROWS, seed=0
    )
    return result.mmd2, result.p_value


def _mmd_undefined(reference: np.ndarray, window: np.ndarray) -> str | None:
    return _at_least(2, "the empirical MMD")(reference, window)


#: empirical_mmd's permutations and rows per side (as multivariate mmd's defaults).
MMD_PERMUTATIONS = 200
MMD_MAX_ROWS = 1000

#: The numeric methods of the fast path, by name (each declared in DRIFT_METHODS).
SAMPLE_TESTS: dict[str, SampleTest] = {
    test.name: test
    for test in (
        SampleTest(
            "anderson",
            "k-sample Anderson-Darling A2 (scipy anderson_ksamp, variant='midrank'); "
            "p-value interpolated in Scholz-Stephens' table, capped to [0.001, 0.25]",
            _anderson,
            _anderson_undefined,
        ),
        SampleTest(
            "epps_singleton",
            "Epps-Singleton W at t = (0.4, 0.8) / semi-IQR of the pooled sample, small-sample "
            "correction below 25 values per side (scipy epps_singleton_2samp)",
            _epps,
            _epps_undefined,
        ),
        SampleTest(
            "empirical_mmd",
            f"unbiased MMD² of one feature, RBF kernel, median-heuristic bandwidth, at most "
            f"{MMD_MAX_ROWS} sorted values per side drawn with seed 0, permutation p-value "
            f"over {MMD_PERMUTATIONS} permutations",
            _mmd,
            _mmd_undefined,
        ),
    )
}


def sample_test_rows(
    methods: Sequence[str],
    reference: np.ndarray | None,
    window: np.ndarray | None,
    reason: str | None,
) -> list[dict[str, Any]]:
    """The rows (method, variant, value, p_value, reason) of the fast-path methods among
    ``methods`` for one cell: sorted finite values of each side, or ``reason`` (no finite
    values on a side) for all of them."""
    rows = []
    for name in methods:
        test = SAMPLE_TESTS.get(name)
        if test is None:
            continue
        row: dict[str, Any] = {"method": name, "variant": test.variant, "value": None,
                               "p_value": None, "reason": reason}  # fmt: skip
        if reason is None and reference is not None and window is not None:
            row["reason"] = test.undefined(reference, window)
            if row["reason"] is None:
                value, p_value = test.compute(reference, window)
                if math.isnan(value) or (p_value is not None and math.isnan(p_value)):
                    row["reason"] = f"scipy's {name} is undefined (NaN) for these samples"
                else:
                    row["value"], row["p_value"] = value, p_value
        rows.append(row)
    return rows
