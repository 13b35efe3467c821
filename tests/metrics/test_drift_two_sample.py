"""The two-sample tests and distances of store.drift against scipy (issue 23, point 5).

Each method is recomputed here with the scipy function its definition names (statistic and
p-value, to 1e-9) on exactly the finite values of each window and of the reference: data
with ties, NaN/inf and NULLs (left out), a single-row window, a window without finite
values, a constant window, a window with a category the reference never had and one with
a single category. p-values are compared with ``correction="none"``.
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from scipy import stats

import evalstore
from evalstore.cli import main
from evalstore.core import udfs
from evalstore.errors import InvalidParameterError
from evalstore.metrics.drift import kernels
from evalstore.metrics.drift.sorted_samples import (
    Sample,
    mean_cross_difference,
    rank_statistics,
)
from evalstore.metrics.drift.two_sample import sample_test_rows
from evalstore.metrics.specs import DRIFT_METHODS
from server import create_app
from tests.conftest import blank_store
from tests.metrics.test_drift_methods import oracle_edges, oracle_histogram

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
TOL = 1e-9
CATEGORICAL = ["tvd", "g_test", "chisquare_gof", "z_test", "fisher_exact", "chi2"]
SQL_NUMERIC = ["welch_t", "tvd", "energy_distance"]
#: The methods of issue 23 point 5 (docs/drift.md#two-sample-tests-and-distances).
TWO_SAMPLE = [
    "welch_t", "anderson", "cramer_von_mises", "energy_distance", "epps_singleton",
    "mann_whitney", "empirical_mmd", "tvd", "g_test", "chisquare_gof", "z_test",
    "fisher_exact",
]  # fmt: skip


def _close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    if math.isinf(expected):
        return actual == expected
    return math.isclose(actual, expected, rel_tol=TOL, abs_tol=TOL)


def _data() -> tuple[dict, dict]:
    """Reference (training) and serving columns by day: x numeric with ties and NaN,
    b binary, c three categories (+ 'zz' unseen on day 1)."""
    rng = np.random.default_rng(23)
    n_ref = 80
    reference = {
        "x": np.round(rng.normal(0, 1, n_ref), 1),  # ties
        "b": rng.choice(["no", "yes"], n_ref, p=[0.7, 0.3]).tolist(),
        "c": rng.choice(["u", "v", "w"], n_ref).tolist(),
    }
    reference["x"][:3] = [np.nan, np.inf, -np.inf]
    days = {
        0: {  # shifted, ties, a NaN
            "x": np.append(np.round(rng.normal(0.4, 1.3, 39), 1), np.nan),
            "b": rng.choice(["no", "yes"], 40, p=[0.4, 0.6]).tolist(),
            "c": rng.choice(["u", "v", "w"], 40).tolist(),
        },
        1: {  # unseen category, NULLs
            "x": np.round(rng.normal(0, 1, 25), 1),
            "b": [*rng.choice(["no", "yes"], 23).tolist(), None, None],
            "c": [*rng.choice(["u", "v", "w", "zz"], 25).tolist()],
        },
        2: {"x": np.array([0.5]), "b": ["yes"], "c": ["u"]},  # a single row
        3: {  # constant window, one category
            "x": np.full(12, 0.3),
            "b": ["no"] * 12,
            "c": ["w"] * 12,
        },
        4: {"x": np.full(5, np.nan), "b": [None] * 5, "c": [None] * 5},  # nothing finite
    }
    return reference, days


def _table(columns: dict, start: datetime, prefix: str) -> pa.Table:
    n = len(columns["x"])
    return pa.table(
        {
            "example_id": [f"{prefix}{i}" for i in range(n)],
            "ts": [start + timedelta(minutes=i) for i in range(n)],
            "x": pa.array(columns["x"], pa.float64()),
            "b": pa.array(columns["b"], pa.string()),
            "c": pa.array(columns["c"], pa.string()),
        }
    )


@pytest.fixture(scope="module")
def world() -> tuple[evalstore.Store, dict, dict]:
    reference, days = _data()
    store = blank_store()
    store.register_model("m", "v1", "regression")
    store.log_features("m", _table(reference, DAY0 - timedelta(days=30), "t"), env="training")
    for day, columns in days.items():
        start = DAY0 + timedelta(days=day, hours=6)
        store.log_features("m", _table(columns, start, f"d{day}_"), env="serving")
    yield store, reference, days
    store.close()


def _rows(store: evalstore.Store, methods: list[str], features: list[str], **options) -> dict:
    table = store.drift(
        "m", window="1 day", methods=methods, features=features, correction="none", **options
    )
    out = {}
    for row in table.to_pylist():
        day = (row["window_start"] - DAY0).days
        out[(day, row["feature"], row["method"])] = row
    return out


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _counts(reference: list, window: list) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = sorted({v for v in [*reference, *window] if v is not None})
    r = np.array([sum(v == k for v in reference) for k in keys])
    a = np.array([sum(v == k for v in window) for k in keys])
    return keys, r, a


def _categorical_oracle(method: str, r: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    """(value, p-value) by the scipy function the method's definition names."""
    table = np.array([r, a])
    if method == "chi2":
        res = stats.chi2_contingency(table)
        return res.statistic, res.pvalue
    if method == "g_test":
        res = stats.chi2_contingency(table, lambda_="log-likelihood")
        return res.statistic, res.pvalue
    if method == "chisquare_gof":
        with np.errstate(divide="ignore", invalid="ignore"):
            res = stats.chisquare(a, r * (a.sum() / r.sum()))
        return res.statistic, res.pvalue
    if method == "z_test":
        # z² and its p-value are those of the uncorrected chi-squared of the 2 x 2 table
        res = stats.chi2_contingency(table, correction=False)
        p_r, p_a = r[0] / r.sum(), a[0] / a.sum()
        pooled = (r[0] + a[0]) / (r.sum() + a.sum())
        z = (p_r - p_a) / math.sqrt(pooled * (1 - pooled) * (1 / r.sum() + 1 / a.sum()))
        assert math.isclose(z * z, res.statistic, rel_tol=1e-12)
        return z, res.pvalue
    if method == "fisher_exact":
        res = stats.fisher_exact(table)
        return res.statistic, res.pvalue
    assert method == "tvd"
    return 0.5 * np.abs(r / r.sum() - a / a.sum()).sum(), None


def test_categorical_methods_agree_with_scipy(world):
    store, reference, days = world
    rows = _rows(store, CATEGORICAL, ["b", "c"])
    compared = set()
    for day, columns in days.items():
        for feature in ("b", "c"):
            keys, r, a = _counts(reference[feature], columns[feature])
            for method in CATEGORICAL:
                row = rows[(day, feature, method)]
                assert row["n_reference"] == r.sum() and row["n_analysis"] == a.sum()
                if not a.sum():
                    assert row["value"] is None and row["reason"] == "no values in the window"
                    continue
                if method != "tvd" and len(keys) < 2:
                    assert row["value"] is None and row["p_value"] is None
                    assert row["reason"].startswith("a single category"), row
                    continue
                if method in ("z_test", "fisher_exact") and len(keys) > 2:
                    assert row["value"] is None and row["p_value"] is None
                    assert row["reason"] == (
                        f"{len(keys)} categories: "
                        + ("the two-proportion z-test" if method == "z_test" else
                           "Fisher's exact test")
                        + " needs a binary feature (use chi2 or g_test)"
                    )  # fmt: skip
                    continue
                value, p_value = _categorical_oracle(method, r, a)
                assert row["reason"] is None
                assert _close(row["value"], value), (day, feature, method, row, value)
                assert _close(row["p_value"], p_value), (day, feature, method, row, p_value)
                compared.add((method, len(keys)))
    # every method on a binary feature, the K-category ones on three and four categories
    assert {m for m, _ in compared} == set(CATEGORICAL)
    assert {("chisquare_gof", 4), ("g_test", 3), ("fisher_exact", 2), ("z_test", 2)} <= compared
    # a category the reference never had: the goodness of fit is infinite, p = 0, drifted
    unseen = rows[(1, "c", "chisquare_gof")]
    assert unseen["value"] == math.inf and unseen["p_value"] == 0.0 and unseen["drifted"]


def test_yates_switch_applies_to_the_g_test_as_to_chi2(world):
    store, reference, days = world
    rows = _rows(store, ["g_test"], ["b"], yates=False)
    _, r, a = _counts(reference["b"], days[0]["b"])
    res = stats.chi2_contingency(np.array([r, a]), correction=False, lambda_="log-likelihood")
    row = rows[(0, "b", "g_test")]
    assert _close(row["value"], res.statistic) and _close(row["p_value"], res.pvalue)
    assert row["variant"].endswith("uncorrected")


def test_numeric_sql_methods_agree_with_scipy(world):
    store, reference, days = world
    rows = _rows(store, SQL_NUMERIC, ["x"])
    ref = np.sort(_finite(reference["x"]))
    edges = oracle_edges(ref, ref, {})
    for day, columns in days.items():
        window = _finite(columns["x"])
        welch, tvd = rows[(day, "x", "welch_t")], rows[(day, "x", "tvd")]
        energy = rows[(day, "x", "energy_distance")]
        assert welch["n_analysis"] == tvd["n_analysis"] == len(window)
        if not len(window):
            assert welch["value"] is None and welch["reason"] == "no finite values in the window"
            continue
        p = oracle_histogram(ref, edges) / len(ref)
        q = oracle_histogram(window, edges) / len(window)
        assert _close(tvd["value"], 0.5 * np.abs(p - q).sum())
        assert _close(energy["value"], stats.energy_distance(ref, window)), (day, energy)
        assert energy["drifted"] == (stats.energy_distance(ref, window) > 0.1)
        if len(window) < 2:
            assert welch["value"] is None and welch["p_value"] is None
            assert welch["reason"] == "Welch's t needs at least 2 values on each side"
            continue
        res = stats.ttest_ind(ref, window, equal_var=False)
        assert _close(welch["value"], float(res.statistic)), (day, welch, res)
        assert _close(welch["p_value"], float(res.pvalue)), (day, welch, res)
        assert welch["drifted"] == (res.pvalue < 0.05)


def test_p_value_udfs_equal_scipy_on_edge_cases():
    # both samples constant: scipy's t is +-inf with p = 0 (different means), nan (equal)
    res = stats.ttest_ind([1.0, 1.0, 1.0], [2.0, 2.0], equal_var=False)
    assert res.statistic == -math.inf and udfs.welch_pvalue(-math.inf, 0.0, 3, 0.0, 2) == 0.0
    assert udfs.welch_pvalue(1.0, 1.0, 1, 1.0, 5) is None  # fewer than 2 values on a side
    for table in ([[3, 0], [0, 4]], [[10, 2], [7, 9]], [[0, 5], [5, 0]], [[1, 1], [1, 1]]):
        (r1, r2), (a1, a2) = table
        assert udfs.fisher_pvalue(r1, r2, a1, a2) == stats.fisher_exact(table).pvalue


def test_registry_declares_the_new_methods_with_kinds_and_defaults():
    expected = {
        "tvd": (("numeric", "categorical"), "above", 0.1),
        "welch_t": (("numeric",), "below", 0.05),
        "g_test": (("categorical",), "below", 0.05),
        "chisquare_gof": (("categorical",), "below", 0.05),
        "z_test": (("categorical",), "below", 0.05),
        "fisher_exact": (("categorical",), "below", 0.05),
    }
    for name, (kinds, direction, limit) in expected.items():
        spec = DRIFT_METHODS[name]
        assert (spec.kinds, spec.direction, spec.default_limit) == (kinds, direction, limit)
        assert spec.docs_anchor == "drift.md#two-sample-tests-and-distances"
        assert not spec.default


def test_plain_macro_gives_the_sql_shaped_statistics(world):
    store, _, _ = world
    python = _rows(store, ["g_test", "chisquare_gof", "tvd"], ["b"])
    sql = store.sql(
        "SELECT window_start, method, value, threshold, drifted "
        "FROM evalstore.drift('m', 'training', '1 day') WHERE feature = 'b' "
        "AND method IN ('g_test', 'chisquare_gof', 'tvd')"
    ).to_pylist()
    assert len(sql) == 3 * 5
    for row in sql:
        want = python[((row["window_start"] - DAY0).days, "b", row["method"])]
        assert _close(row["value"], want["value"])
        if row["method"] == "tvd":  # decided in SQL
            assert row["threshold"] == 0.1 and row["drifted"] == want["drifted"]
        else:  # p-values need evalstore's UDFs
            assert row["drifted"] is None


def test_unknown_method_names_the_new_ones(world):
    store, _, _ = world
    with pytest.raises(InvalidParameterError, match=r"unknown \['g-test'\]; choose from .*g_test"):
        store.drift("m", methods=["g-test"])
    with pytest.raises(InvalidParameterError, match="p-value methods take a significance level"):
        store.drift("m", methods=["chisquare_gof"], thresholds={"chisquare_gof": "learned"})


SAMPLE_TESTS = [
    "anderson", "cramer_von_mises", "epps_singleton", "mann_whitney", "empirical_mmd",
]  # fmt: skip
#: Those computed by scipy in the fast path (the others come from the pooled midranks in SQL).
SCIPY_TESTS = ["anderson", "epps_singleton", "empirical_mmd"]


def _rank_rows(reference: np.ndarray, window: np.ndarray) -> dict[str, tuple[float, float]]:
    """mann_whitney and cramer_von_mises (value, p-value) as the fast path computes them:
    the rank sums of sorted_samples, T as numeric_methods, p-values from the UDFs."""
    mw, ties, cvm_u = rank_statistics(Sample(reference.copy()), Sample(window.copy()))
    n, m = len(reference), len(window)
    t = cvm_u / (n * m * (n + m)) - (4 * n * m - 1) / (6 * (n + m))
    return {
        "mann_whitney": (mw, udfs.mannwhitney_pvalue(mw, n, m, ties)),
        "cramer_von_mises": (t, udfs.cvm_pvalue(t, n, m)),
    }


@pytest.mark.parametrize("seed", range(2))
def test_rank_statistics_and_their_udfs_equal_scipy_with_ties_and_tiny_sides(seed):
    rng = np.random.default_rng(seed)
    for trial in range(24):  # each of the three kinds of data 8 times
        n, m = (int(v) for v in rng.integers(1, 30, size=2))
        if trial % 3 == 0:  # heavy ties across both sides
            reference, window = rng.integers(0, 5, n) / 2, rng.integers(0, 6, m) / 2
        elif trial % 3 == 1:  # large values close together, a shift
            reference, window = 1e6 + rng.normal(size=n), 1e6 + rng.normal(0.5, 1, m)
        else:
            reference, window = rng.normal(size=n), rng.exponential(size=m)
        rows = _rank_rows(reference, window)
        mwu = stats.mannwhitneyu(reference, window)
        assert rows["mann_whitney"][0] == pytest.approx(mwu.statistic, abs=1e-9)
        assert _close(rows["mann_whitney"][1], mwu.pvalue), (n, m, trial)
        if min(n, m) < 2:
            assert udfs.cvm_pvalue(rows["cramer_von_mises"][0], n, m) is None
            continue
        cvm = stats.cramervonmises_2samp(reference, window)
        assert _close(rows["cramer_von_mises"][0], cvm.statistic), (n, m, trial)
        assert _close(rows["cramer_von_mises"][1], cvm.pvalue), (n, m, trial)
    # both sides one constant: U = n m / 2, every value tied
    constant = np.full(6, 2.0)
    mwu = stats.mannwhitneyu(constant, constant)
    assert _rank_rows(constant, constant)["mann_whitney"] == (mwu.statistic, mwu.pvalue)
    assert udfs.mannwhitney_pvalue(None, 3, 4, 0.0) is None


def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with exp(-d² / median d²) (kernels.py's median heuristic), in numpy."""
    z = np.concatenate([x, y])
    d2 = (z[:, None] - z[None, :]) ** 2
    median = np.median(d2[np.triu_indices(len(z), 1)])
    k = np.exp(-d2 / (median if median > 0 else 2.0))
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    return (kxx.sum() - m) / (m * (m - 1)) + (kyy.sum() - n) / (n * (n - 1)) - 2 * kxy.mean()


def _sample_oracle(method: str, ref: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    if method == "anderson":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when it caps the p-value
            res = stats.anderson_ksamp([ref, window], variant="midrank")
    elif method == "cramer_von_mises":
        res = stats.cramervonmises_2samp(ref, window)
    elif method == "epps_singleton":
        res = stats.epps_singleton_2samp(ref, window)
    elif method == "mann_whitney":
        res = stats.mannwhitneyu(ref, window)
    else:
        result = kernels.mmd_test(np.sort(ref), np.sort(window), n_permutations=200, seed=0)
        return _mmd2(ref, window), result.p_value
    return float(res.statistic), float(res.pvalue)


def test_fast_path_methods_agree_with_scipy(world):
    store, reference, days = world
    rows = _rows(store, SAMPLE_TESTS, ["x"])
    ref = _finite(reference["x"])
    reasons = {}
    for day, columns in days.items():
        window = _finite(columns["x"])
        for method in SAMPLE_TESTS:
            row = rows[(day, "x", method)]
            assert (row["n_reference"], row["n_analysis"]) == (len(ref), len(window))
            if not len(window):
                assert row["value"] is None and row["reason"] == "no finite values in the window"
                continue
            if row["reason"] is not None:
                assert row["value"] is None and row["p_value"] is None
                reasons[(day, method)] = row["reason"]
                continue
            value, p_value = _sample_oracle(method, ref, window)
            assert _close(row["value"], value), (day, method, row, value)
            assert _close(row["p_value"], p_value), (day, method, row, p_value)
            assert row["drifted"] == (p_value < 0.05)
    # the single-row window (day 2): the tests that need more values say so
    assert reasons == {
        (2, "cramer_von_mises"): "Cramér-von Mises needs at least 2 values on each side",
        (2, "epps_singleton"): "Epps-Singleton needs at least 5 values on each side",
        (2, "empirical_mmd"): "the empirical MMD needs at least 2 values on each side",
    }
    # AD's p-value is scipy's default: interpolated and capped to [0.001, 0.25]
    assert rows[(2, "x", "anderson")]["p_value"] == 0.25


def test_fast_path_methods_on_constant_and_tiny_samples():
    constant = np.full(6, 2.0)
    rows = {r["method"]: r for r in sample_test_rows(SCIPY_TESTS, constant, constant, None)}
    assert rows["anderson"]["reason"] == (
        "a single distinct value in both samples: Anderson-Darling is undefined"
    )
    assert rows["epps_singleton"]["reason"] == (
        "the pooled interquartile range is 0: Epps-Singleton is undefined"
    )
    tiny = sample_test_rows(["anderson"], np.array([1.0, 2.0]), np.array([3.0]), None)
    assert (
        tiny[0]["reason"] == "Anderson-Darling needs at least 4 values in the two samples together"
    )
    skipped = sample_test_rows(
        [*SAMPLE_TESTS, "ks"], None, constant, "no finite reference values"
    )  # the rank methods and ks are not the scipy road's
    assert [r["method"] for r in skipped] == SCIPY_TESTS
    assert {r["reason"] for r in skipped} == {"no finite reference values"}


def test_cli_and_http_give_the_store_rows(world, tmp_path):
    store, _, _ = world
    methods = ["chisquare_gof", "fisher_exact", "anderson", "welch_t"]
    want = _rows(store, methods, ["b", "x"])
    path = tmp_path / "copy.duckdb"
    catalog = store.sql("SELECT current_database() AS c").to_pylist()[0]["c"]
    store.sql(f"ATTACH '{path}' AS copy")
    store.sql(f"COPY FROM DATABASE {catalog} TO copy")  # blank<N>: no quoting needed
    store.sql("DETACH copy")
    args = ["-s", str(path), "drift", "-m", "m", "-w", "1 day", "--features", "b,x",
            "--methods", ",".join(methods), "--correction", "none", "-f", "json"]  # fmt: skip
    result = CliRunner().invoke(main, args, prog_name="evalstore")
    assert result.exit_code == 0, result.output
    with TestClient(create_app(store)) as client:
        response = client.get(
            "/v1/models/m/drift",
            params={"window": "1 day", "features": "b,x", "methods": ",".join(methods),
                    "correction": "none"},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    for rows in (json.loads(result.output), response.json()):
        assert len(rows) == len(want) == 4 * 5
        for row in rows:
            day = (datetime.fromisoformat(row["window_start"]) - DAY0).days
            other = want[(day, row["feature"], row["method"])]
            assert _close(row["value"], other["value"] if other["value"] != math.inf else None)
            assert _close(row["p_value"], other["p_value"])


@pytest.mark.parametrize("seed", [1, 2])
def test_fast_path_methods_on_small_samples_use_scipy_exact_branches(seed):
    # up to 20 values per side: Cramér-von Mises' exact p-value; a side of at most 8
    # values without ties: Mann-Whitney's exact p-value; fewer than 25: Epps-Singleton's
    # small-sample correction
    rng = np.random.default_rng(seed)
    reference, window = np.sort(rng.normal(0, 1, 17)), np.sort(rng.normal(0.8, 1.5, 8))
    rows = {r["method"]: r for r in sample_test_rows(SCIPY_TESTS, reference, window, None)}
    for method in SCIPY_TESTS:
        value, p_value = _sample_oracle(method, reference, window)
        assert _close(rows[method]["value"], value), method
        assert _close(rows[method]["p_value"], p_value), method
        assert rows[method]["reason"] is None
    ranks = _rank_rows(reference, window)
    exact = stats.mannwhitneyu(reference, window, method="exact")
    assert ranks["mann_whitney"] == pytest.approx((exact.statistic, exact.pvalue), abs=1e-12)
    exact = stats.cramervonmises_2samp(reference, window, method="exact")
    assert ranks["cramer_von_mises"] == pytest.approx((exact.statistic, exact.pvalue), abs=1e-12)


def test_p_values_of_the_new_methods_are_corrected_over_the_window_features(world):
    store, _, _ = world
    raw = _rows(store, ["g_test", "chisquare_gof"], ["b", "c"])
    corrected = store.drift(
        "m", window="1 day", methods=["g_test", "chisquare_gof"], features=["b", "c"]
    ).to_pylist()
    checked = 0
    for row in corrected:
        day = (row["window_start"] - DAY0).days
        p = raw[(day, row["feature"], row["method"])]["p_value"]
        if p is None:
            continue
        assert _close(row["p_value"], min(1.0, 2 * p))  # Bonferroni over b and c
        assert row["threshold_source"] == "p-value < 0.05 (Bonferroni correction over 2 tests)"
        checked += 1
    assert checked >= 8


def test_categorical_macro_on_random_count_tables_agrees_with_scipy():
    # evalstore.categorical_methods on pre-aggregated counts, as a SQL user calls it:
    # K = 1..5 categories, zeros on one side (unseen, vanished) and on both (ignored)
    rng = np.random.default_rng(5)
    cases = []
    for _ in range(40):
        k = int(rng.integers(1, 6))
        r, a = rng.integers(0, 30, k), rng.integers(0, 30, k)
        r[rng.random(k) < 0.2], a[rng.random(k) < 0.2] = 0, 0
        if r.sum() and a.sum():
            cases.append((r, a))
    cases_table = pa.table(
        {
            "i": list(range(len(cases))),
            "r": [r.tolist() for r, _ in cases],
            "a": [a.tolist() for _, a in cases],
            "nr": [int(r.sum()) for r, _ in cases],
            "na": [int(a.sum()) for _, a in cases],
        }
    )
    with blank_store() as store:  # one query: planning the macro is the costly part
        store.connection.register("random_cases", cases_table)
        result = store.sql(
            "SELECT i, unnest(evalstore.categorical_methods(r, a, nr, na, 'epsilon', 1e-4, "
            "exp(1), 'distance', true)) AS m FROM random_cases"
        ).to_pylist()
        store.connection.unregister("random_cases")
    by_case: dict[int, dict] = {}
    for row in result:
        by_case.setdefault(row["i"], {})[row["m"]["method"]] = row["m"]
    seen_k = set()
    for i, (r, a) in enumerate(cases):
        rows = by_case[i]
        keep = (r + a) > 0
        rk, ak = r[keep], a[keep]
        seen_k.add(len(rk))
        for method in ("tvd", "g_test", "chisquare_gof", "z_test", "fisher_exact"):
            row = rows[method]
            binary_only = method in ("z_test", "fisher_exact")
            if method != "tvd" and (len(rk) < 2 or (len(rk) > 2 and binary_only)):
                assert row["value"] is None and row["reason"], (r, a, method)
                continue
            value, p_value = _categorical_oracle(method, rk, ak)
            assert row["reason"] is None
            assert _close(row["value"], value), (r, a, method, row)
            if method == "fisher_exact":
                assert row["counts"] == [*rk.tolist(), *ak.tolist()]
                p = udfs.fisher_pvalue(*row["counts"])
            elif method in ("g_test", "chisquare_gof"):
                assert row["dof"] == len(rk) - 1
                p = udfs.chi2_pvalue(row["value"], row["dof"])
            elif method == "z_test":
                p = udfs.normal_pvalue(row["value"])
            else:
                p = None
            assert _close(p, p_value), (r, a, method, p, p_value)
    assert {1, 2, 3, 4} <= seen_k


def test_docs_table_names_the_variants_the_rows_carry(world):
    store, _, _ = world
    text = (Path(__file__).parents[2] / "docs" / "drift.md").read_text(encoding="utf-8")
    section = text.split("## Two-sample tests and distances", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[1] in ("numeric", "categorical"):
            documented[(cells[0].strip("`"), cells[1])] = cells[2].replace("\\|", "|")
    rows = store.drift("m", window="1 day", methods=list(TWO_SAMPLE), features=["x", "b"])
    kinds = {"x": "numeric", "b": "categorical"}
    actual = {(r["method"], kinds[r["feature"]]): r["variant"] for r in rows.to_pylist()}
    assert set(documented) == set(actual)
    for key, variant in actual.items():
        if key == ("tvd", "numeric"):  # the binning part depends on the options
            assert variant.startswith(documented[key].split("; *")[0])
        else:
            assert variant == documented[key], key


@pytest.mark.parametrize("shift", [0.0, 1e6])
def test_energy_terms_of_sorted_samples_agree_with_scipy(shift):
    # E|R - A|, E|R - R'|, E|A - A'| from sorted distinct values (ties), far from 0 too
    rng = np.random.default_rng(11)
    reference = shift + np.round(rng.normal(0, 1, 300), 1)
    window = shift + np.round(rng.normal(0.3, 1.2, 70), 1)
    r, a = Sample(reference), Sample(window)
    assert _close(r.mean_abs_difference, np.abs(reference[:, None] - reference).mean())
    assert _close(mean_cross_difference(r, a), np.abs(reference[:, None] - window).mean())
    energy = math.sqrt(2 * mean_cross_difference(r, a) - r.mean_abs_difference
                       - a.mean_abs_difference)  # fmt: skip
    assert _close(energy, stats.energy_distance(reference, window))
    same = Sample(np.full(4, shift + 2.0))
    assert same.mean_abs_difference == 0 and mean_cross_difference(same, same) == 0
