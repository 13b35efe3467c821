"""Multivariate drift statistics against independent oracles.

MMD² is checked against a literal double loop over Gretton et al.'s eq. (3), the median
heuristic against ``scipy.spatial.distance.pdist``, the permutation p-value against the
exact permutation distribution of tiny samples (all partitions enumerated), the PCA
reconstruction error against scikit-learn's ``StandardScaler`` + ``PCA``, and the chunk
thresholds against a by-hand split and numpy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from evalstore.errors import InvalidParameterError
from evalstore.metrics.drift.kernels import (
    MMDResult,
    PCAReconstruction,
    chunk_thresholds,
    finite_rows,
    median_heuristic_bandwidth,
    mmd2,
    mmd_test,
    mmd_undefined_reason,
)

# --------------------------------------------------------------------------- oracles


def mmd2_loop(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Gretton et al. (2012) eq. (3), written out with Python loops."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(
            -sum((float(ai) - float(bi)) ** 2 for ai, bi in zip(a, b, strict=True))
            / (2 * sigma * sigma)
        )

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def median_sigma_pdist(z: np.ndarray) -> float:
    """sqrt(median of squared pairwise Euclidean distances / 2), via plain distances."""
    return float(np.sqrt(np.median(pdist(z, "euclidean") ** 2) / 2))


def exact_permutation_p(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Share of all C(m+n, m) relabellings whose statistic is >= the observed one."""
    z = np.concatenate([x, y])
    m = len(x)
    observed = mmd2_loop(x, y, sigma)
    stats = []
    for chosen in itertools.combinations(range(len(z)), m):
        mask = np.zeros(len(z), dtype=bool)
        mask[list(chosen)] = True
        stats.append(mmd2_loop(z[mask], z[~mask], sigma))
    return float(np.mean(np.array(stats) >= observed - 1e-10))


# --------------------------------------------------------------------------- mmd2


@pytest.mark.parametrize(
    ("m", "n", "d", "bandwidth"),
    [(5, 7, 3, None), (4, 4, 1, 0.7), (9, 2, 2, None), (6, 11, 4, 2.5)],
)
def test_mmd2_matches_double_loop(m: int, n: int, d: int, bandwidth: float | None) -> None:
    rng = np.random.default_rng(m * 100 + n)
    x = rng.normal(size=(m, d))
    y = rng.normal(loc=0.3, scale=1.5, size=(n, d))
    value, sigma = mmd2(x, y, bandwidth)
    expected_sigma = median_sigma_pdist(np.concatenate([x, y])) if bandwidth is None else bandwidth
    assert sigma == pytest.approx(expected_sigma, abs=1e-14)
    assert value == pytest.approx(mmd2_loop(x, y, expected_sigma), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 6),
    n=st.integers(2, 6),
    d=st.integers(1, 3),
    offset=st.floats(-1e3, 1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_mmd2_matches_double_loop_property(
    m: int, n: int, d: int, offset: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(m, d)) + offset  # a large common offset must not cost precision
    y = rng.normal(size=(n, d)) * 2 + offset
    value, sigma = mmd2(x, y)
    assert sigma == pytest.approx(median_sigma_pdist(np.concatenate([x, y])), rel=1e-12)
    assert value == pytest.approx(mmd2_loop(x, y, sigma), abs=1e-12)


def test_mmd2_is_symmetric_and_negative_for_two_copies_of_a_sample() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3))
    assert mmd2(x, y)[0] == pytest.approx(mmd2(y, x)[0], abs=1e-14)
    # Two copies of one sample: with S the off-diagonal kernel sum, sxx = syy = S while the
    # cross sum S + m keeps the m exact matches, so MMD²_u = 2S/(m²(m-1)) - 2/m < 0.
    v, sigma = mmd2(x, x[::-1])
    assert v == pytest.approx(mmd2_loop(x, x[::-1], sigma), abs=1e-12)
    m = len(x)
    off_diagonal = 2 * np.exp(-pdist(x, "sqeuclidean") / (2 * sigma**2)).sum()
    assert v == pytest.approx(2 * off_diagonal / (m * m * (m - 1)) - 2 / m, abs=1e-12)
    assert v < 0


def test_median_heuristic_against_pdist_and_known_values() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(41, 5))
    assert median_heuristic_bandwidth(z) == pytest.approx(median_sigma_pdist(z), rel=1e-14)
    # An odd number of pairs (3 rows, 3 pairs): the median distance / sqrt 2.
    assert median_heuristic_bandwidth([[0.0], [1.0], [3.0]]) == pytest.approx(2 / math.sqrt(2))
    # Even number of pairs (4 rows, 6 pairs): the mean of the two middle squared distances.
    pts = np.array([[0.0], [1.0], [3.0], [7.0]])  # squared distances 1, 9, 49, 4, 36, 16
    assert median_heuristic_bandwidth(pts) == pytest.approx(math.sqrt((9 + 16) / 2 / 2))
    # Mostly duplicates: the median squared distance is 0, so sigma falls back to 1.
    dup = np.array([[1.0, 2.0]] * 5 + [[3.0, 4.0]])
    assert median_heuristic_bandwidth(dup) == 1.0
    value, sigma = mmd2(dup[:3], dup[3:])
    assert sigma == 1.0
    assert value == pytest.approx(mmd2_loop(dup[:3], dup[3:], 1.0), abs=1e-12)
    assert median_heuristic_bandwidth(np.zeros((1, 3))) == 1.0


def test_mmd2_edge_cases() -> None:
    x = np.zeros((5, 2))
    assert all(math.isnan(v) for v in mmd2(x, np.ones((1, 2))))
    assert all(math.isnan(v) for v in mmd2(np.empty((0, 2)), x))
    assert mmd_undefined_reason(x, np.ones((1, 2))) == (
        "MMD needs at least 2 rows in each sample; y has 1"
    )
    assert mmd_undefined_reason(np.empty((0, 2)), np.ones((1, 2))) == (
        "MMD needs at least 2 rows in each sample; x has 0 and y has 1"
    )
    assert mmd_undefined_reason(x, x) is None
    # 1-D input is one feature column.
    assert mmd2([0.0, 1.0, 2.0], [[0.5], [3.0]]) == mmd2([[0.0], [1.0], [2.0]], [[0.5], [3.0]])
    with pytest.raises(InvalidParameterError, match="same number of feature columns"):
        mmd2(x, np.zeros((5, 3)))
    with pytest.raises(InvalidParameterError, match="finite_rows"):
        mmd2(x, np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(InvalidParameterError, match="finite_rows"):
        mmd_undefined_reason(np.array([[np.inf, 0.0]]), x)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(InvalidParameterError, match="bandwidth"):
            mmd2(x, x, bad)
    with pytest.raises(InvalidParameterError, match="2-D"):
        mmd2(np.zeros((2, 2, 2)), x)


def test_finite_rows() -> None:
    a = np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, -np.inf], [4.0, 5.0]])
    b = [0.0, np.inf, 2.0]
    fa, fb = finite_rows(a, b)
    np.testing.assert_array_equal(fa, [[1.0, 2.0], [4.0, 5.0]])
    np.testing.assert_array_equal(fb, [[0.0], [2.0]])
    (empty,) = finite_rows(np.full((3, 2), np.nan))
    assert empty.shape == (0, 2)


# --------------------------------------------------------------------------- mmd_test


def test_mmd_test_same_distribution_is_not_significant() -> None:
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(400, 5)), rng.normal(size=(350, 5))
    result = mmd_test(x, y, n_permutations=200, seed=0)
    assert isinstance(result, MMDResult)
    assert abs(result.mmd2) < 0.005
    assert result.p_value > 0.01
    assert (result.n_x, result.n_y) == (400, 350)
    # Without subsampling the statistic and bandwidth are exactly those of mmd2.
    assert (result.mmd2, result.bandwidth) == mmd2(x, y)


def test_mmd_test_shifted_mean_reaches_minimum_p_value() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(300, 5)), rng.normal(loc=0.5, size=(300, 5))
    result = mmd_test(x, y, n_permutations=200, seed=0)
    assert result.p_value == 1 / 201
    assert result.mmd2 > 0.05


@pytest.mark.parametrize(
    ("m", "n", "shift"), [(3, 3, 0.8), (3, 5, 0.8), (4, 2, 0.8), (4, 4, 3.0), (5, 3, 2.0)]
)
def test_permutation_p_value_matches_exact_distribution(m: int, n: int, shift: float) -> None:
    rng = np.random.default_rng(m * 10 + n)
    x, y = rng.normal(size=(m, 2)), rng.normal(loc=shift, size=(n, 2))
    result = mmd_test(x, y, n_permutations=20000, seed=3)
    exact = exact_permutation_p(x, y, result.bandwidth)
    # (1 + B) / (1 + P) with B ~ Binomial(P, exact): the standard error is below 0.004.
    assert result.p_value == pytest.approx(exact, abs=0.015)
    if m == n:  # x <-> y swapped gives the same statistic: both labellings always count
        assert exact >= 2 / math.comb(m + n, m)
    assert result.p_value >= 1 / 20001


def test_p_value_bounds_and_grid() -> None:
    rng = np.random.default_rng(12)
    p_values = []
    for seed in range(8):
        x, y = rng.normal(size=(25, 2)), rng.normal(size=(30, 2))
        p = mmd_test(x, y, n_permutations=49, seed=seed).p_value
        assert 1 / 50 <= p <= 1
        assert (p * 50) == pytest.approx(round(p * 50), abs=1e-9)
        p_values.append(p)
    assert len(set(p_values)) > 1
    # Two copies of one sample: pairing every row with its duplicate across the samples
    # makes the statistic more negative than any of the drawn relabellings.
    z = rng.normal(size=(10, 2))
    assert mmd_test(z, z, n_permutations=30).p_value == 1.0


def test_mmd_test_is_deterministic_in_seed() -> None:
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(1500, 3)), rng.normal(size=(200, 3))
    a = mmd_test(x, y, n_permutations=100, max_rows=300, seed=5)
    b = mmd_test(x, y, n_permutations=100, max_rows=300, seed=5)
    assert a == b
    c = mmd_test(x, y, n_permutations=100, max_rows=300, seed=6)
    assert c.mmd2 != a.mmd2  # another subsample of x


def test_mmd_test_subsampling_cap() -> None:
    rng = np.random.default_rng(14)
    x = rng.normal(size=(5000, 2))
    y = rng.normal(loc=3.0, size=(120, 2))
    result = mmd_test(x, y, n_permutations=20, max_rows=100, seed=1)
    assert (result.n_x, result.n_y) == (100, 100)
    assert result.p_value == 1 / 21
    full = mmd_test(x[:200], y, n_permutations=20, max_rows=1000)
    assert (full.n_x, full.n_y) == (200, 120)


def test_mmd_test_edge_cases_and_validation() -> None:
    x = np.zeros((5, 2))
    r = mmd_test(x, np.ones((1, 2)))
    assert math.isnan(r.mmd2) and math.isnan(r.p_value) and math.isnan(r.bandwidth)
    assert (r.n_x, r.n_y) == (5, 1)
    fixed = mmd_test(x, x + 1, bandwidth=2.0, n_permutations=10)
    assert fixed.bandwidth == 2.0
    assert fixed.mmd2 == pytest.approx(mmd2_loop(x, x + 1, 2.0), abs=1e-12)
    for kwargs in (
        {"n_permutations": 0},
        {"n_permutations": 2.5},
        {"max_rows": 1},
        {"max_rows": True},
        {"bandwidth": 0.0},
    ):
        with pytest.raises(InvalidParameterError):
            mmd_test(x, x, **kwargs)
    with pytest.raises(InvalidParameterError, match="finite_rows"):
        mmd_test(x, np.array([[np.nan, 0.0], [1.0, 1.0]]))


# --------------------------------------------------------------------------- PCA


def correlated(n: int, rng: np.random.Generator, d: int = 6, rank: int = 2) -> np.ndarray:
    """Rows near a rank-``rank`` subspace, with columns on different scales."""
    loadings = np.random.default_rng(99).normal(size=(rank, d))
    data = rng.normal(size=(n, rank)) @ loadings + 0.3 * rng.normal(size=(n, d))
    return data * np.arange(1, d + 1) + 10 * np.arange(d)


def sklearn_error(reference: np.ndarray, x: np.ndarray, n_components: int) -> float:
    scaler = StandardScaler().fit(reference)
    pca = PCA(n_components=n_components, svd_solver="full").fit(scaler.transform(reference))
    z = scaler.transform(x)
    return float(np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1).mean())


@pytest.mark.parametrize("variance", [0.3, 0.65, 0.9, 0.99])
def test_pca_matches_sklearn(variance: float) -> None:
    rng = np.random.default_rng(20)
    reference, current = correlated(500, rng), correlated(200, rng) + 0.5
    model = PCAReconstruction.fit(reference, variance)
    oracle = PCA(n_components=variance, svd_solver="full").fit(
        StandardScaler().fit_transform(reference)
    )
    assert model.n_components == oracle.n_components_
    np.testing.assert_allclose(
        model.explained_variance_ratio, oracle.explained_variance_ratio_, rtol=1e-9
    )
    for x in (reference, current):
        assert model.error(x) == pytest.approx(
            sklearn_error(reference, x, model.n_components), abs=1e-9
        )


def test_pca_n_components_is_fewest_reaching_variance() -> None:
    rng = np.random.default_rng(21)
    reference = correlated(400, rng)
    cumulative = np.cumsum(
        PCA(svd_solver="full")
        .fit(StandardScaler().fit_transform(reference))
        .explained_variance_ratio_
    )
    for k in range(1, 5):
        assert PCAReconstruction.fit(reference, cumulative[k - 1] - 1e-9).n_components == k
        assert PCAReconstruction.fit(reference, cumulative[k - 1] + 1e-9).n_components == k + 1
    full = PCAReconstruction.fit(reference, 1.0)
    assert full.n_components == 6
    assert full.error(reference) == pytest.approx(0.0, abs=1e-12)


def test_pca_error_small_on_reference_and_larger_on_broken_structure() -> None:
    rng = np.random.default_rng(22)
    reference = correlated(1000, rng)
    model = PCAReconstruction.fit(reference)
    assert model.n_components == 2
    base = model.error(correlated(500, rng))
    # On the reference the mean squared residual is exactly the unexplained variance,
    # d * (1 - kept ratio), and the mean residual norm is at most its square root (Jensen).
    unexplained = 6 * (1 - model.explained_variance_ratio.sum())
    assert np.mean(model.row_errors(reference) ** 2) == pytest.approx(unexplained, rel=1e-9)
    assert model.error(reference) <= math.sqrt(unexplained)
    # Small compared with the norm of the standardized rows themselves (about sqrt(6)).
    z_norm = np.linalg.norm((reference - model.mean) / model.scale, axis=1).mean()
    assert model.error(reference) < 0.3 * z_norm
    assert base == pytest.approx(model.error(reference), rel=0.1)
    # Same marginals, broken correlation: shuffle two columns independently.
    broken = correlated(500, rng)
    for j in (0, 3):
        broken[:, j] = rng.permutation(broken[:, j])
    assert model.error(broken) > 1.5 * base
    # A rotation within two columns' standardized plane also breaks the structure.
    z = (correlated(500, rng) - model.mean) / model.scale
    c, s = math.cos(1.0), math.sin(1.0)
    z[:, [1, 4]] = z[:, [1, 4]] @ np.array([[c, -s], [s, c]])
    assert model.error(z * model.scale + model.mean) > 1.5 * base
    lower, upper, _ = chunk_thresholds(reference, model.error)
    assert lower < base < upper < model.error(broken)


def test_pca_constant_column() -> None:
    rng = np.random.default_rng(23)
    reference = correlated(300, rng, d=4)
    reference = np.column_stack([reference, np.full(300, 0.1)])
    model = PCAReconstruction.fit(reference)
    assert model.scale[-1] == 1.0
    assert np.all(np.isfinite(model.components))
    np.testing.assert_allclose(model.components[:, -1], 0.0, atol=1e-12)
    assert model.error(reference) == pytest.approx(
        sklearn_error(reference, reference, model.n_components), abs=1e-9
    )
    # Shifting the constant column by 5 adds an orthogonal residual of exactly 5.
    shifted = reference.copy()
    shifted[:, -1] += 5.0
    np.testing.assert_allclose(
        model.row_errors(shifted), np.hypot(model.row_errors(reference), 5.0), atol=1e-9
    )
    # Every column constant: nothing to keep, the reconstruction is the reference mean.
    flat = PCAReconstruction.fit(np.tile([1.0, 2.0, 3.0], (10, 1)))
    assert flat.n_components == 0
    assert flat.error([[1.0, 2.0, 3.0], [4.0, 6.0, 3.0]]) == pytest.approx(2.5)


def test_pca_nan_imputation() -> None:
    rng = np.random.default_rng(24)
    reference = correlated(300, rng)
    holes = reference.copy()
    holes[rng.random(holes.shape) < 0.05] = np.nan
    holes[3, 2] = np.inf  # infinities are missing too
    model = PCAReconstruction.fit(holes)
    means = np.nanmean(np.where(np.isinf(holes), np.nan, holes), axis=0)
    imputed = np.where(np.isfinite(holes), holes, means)
    np.testing.assert_allclose(model.mean, means, rtol=1e-12)
    np.testing.assert_allclose(model.scale, imputed.std(axis=0), rtol=1e-12)
    oracle = PCAReconstruction.fit(imputed)
    assert model.n_components == oracle.n_components
    x = correlated(50, rng)
    assert model.error(x) == pytest.approx(sklearn_error(imputed, x, model.n_components), abs=1e-9)
    # At scoring time a missing cell scores as if it held the reference mean.
    x_nan = x.copy()
    x_nan[::3, 1] = np.nan
    x_mean = x.copy()
    x_mean[::3, 1] = model.mean[1]
    np.testing.assert_array_equal(model.row_errors(x_nan), model.row_errors(x_mean))
    assert math.isnan(model.error(np.empty((0, 6))))


def test_pca_validation() -> None:
    ref = np.random.default_rng(25).normal(size=(20, 3))
    for variance in (0.0, -0.1, 1.01):
        with pytest.raises(InvalidParameterError, match="variance"):
            PCAReconstruction.fit(ref, variance)
    with pytest.raises(InvalidParameterError, match="at least 2 rows"):
        PCAReconstruction.fit(ref[:1])
    bad = ref.copy()
    bad[:, 1] = np.nan
    with pytest.raises(InvalidParameterError, match=r"\[1\]"):
        PCAReconstruction.fit(bad)
    with pytest.raises(InvalidParameterError, match="3 feature columns"):
        PCAReconstruction.fit(ref).error(np.zeros((4, 2)))


# --------------------------------------------------------------------------- thresholds


def test_chunk_thresholds_against_numpy() -> None:
    rows = 23
    reference = np.arange(rows, dtype=float)[:, None] * np.ones((1, 2))
    lower, upper, values = chunk_thresholds(reference, lambda c: c[0, 0] * 10 + len(c), 5, 2.0)
    # Contiguous, in order; the first 23 % 5 = 3 chunks hold 5 rows, the others 4.
    starts, sizes = [0, 5, 10, 15, 19], [5, 5, 5, 4, 4]
    expected = np.array([s * 10 + n for s, n in zip(starts, sizes, strict=True)], dtype=float)
    np.testing.assert_array_equal(values, expected)
    mean = expected.sum() / 5
    std = math.sqrt(((expected - mean) ** 2).sum() / 5)  # ddof = 0
    assert lower == pytest.approx(mean - 2 * std, abs=1e-12)
    assert upper == pytest.approx(mean + 2 * std, abs=1e-12)


def test_chunk_thresholds_with_pca_error() -> None:
    rng = np.random.default_rng(30)
    reference = correlated(1003, rng)
    model = PCAReconstruction.fit(reference)
    lower, upper, values = chunk_thresholds(reference, model.error)
    sizes = [101] * 3 + [100] * 7  # 1003 = 10 * 100 + 3
    edges = np.concatenate([[0], np.cumsum(sizes)])
    expected = np.array([model.error(reference[a:b]) for a, b in itertools.pairwise(edges)])
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    assert lower == pytest.approx(expected.mean() - 3 * expected.std(ddof=0), rel=1e-12)
    assert upper == pytest.approx(expected.mean() + 3 * expected.std(ddof=0), rel=1e-12)
    assert lower < model.error(reference) < upper


def test_chunk_thresholds_edge_cases() -> None:
    reference = np.arange(10.0)
    lower, upper, values = chunk_thresholds(
        reference, lambda c: float("nan") if c[0, 0] == 4 else 1.0, n_chunks=5
    )
    assert math.isnan(lower) and math.isnan(upper)
    assert np.isnan(values).tolist() == [False, False, True, False, False]
    lo, up, _ = chunk_thresholds(reference, lambda c: 2.0, n_chunks=10, k=0.0)
    assert (lo, up) == (2.0, 2.0)
    for kwargs in ({"n_chunks": 1}, {"n_chunks": 11}, {"k": -1.0}, {"k": np.inf}):
        with pytest.raises(InvalidParameterError):
            chunk_thresholds(reference, np.mean, **kwargs)
