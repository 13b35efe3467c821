"""Numeric core of multivariate drift detection: kernel MMD and PCA reconstruction error.

Univariate drift statistics are SQL macros; the statistics here look at all features of a
row jointly and need dense linear algebra, so they live in numpy/scipy and work on plain
arrays. Every function takes a 2-D float array with one row per observation and one column
per (numeric, already encoded) feature; a 1-D array is read as a single feature column.
Windowing, reference selection and turning results into rows are the caller's job.

* :func:`mmd2` -- the unbiased squared maximum mean discrepancy with an RBF kernel and a
  median-heuristic bandwidth; :func:`mmd_test` adds a seeded permutation p-value at a
  bounded cost.
* :class:`PCAReconstruction` -- the mean PCA reconstruction error of a window, as in
  NannyML's ``DataReconstructionDriftCalculator``.
* :func:`chunk_thresholds` -- alert thresholds learned from the variability of a statistic
  over contiguous chunks of the reference.

Missing values: the MMD functions require finite rows (drop the others with
:func:`finite_rows` and report how many were dropped); :class:`PCAReconstruction` imputes
non-finite cells with the reference means. Too little data never raises in the MMD
functions: they return NaN, and :func:`mmd_undefined_reason` says why, so that the
front-end can store NULL together with a reason.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> reference = rng.normal(size=(300, 4))
>>> current = rng.normal(loc=1.0, size=(300, 4))
>>> result = mmd_test(reference, current, n_permutations=99)
>>> result.p_value == 1 / 100                       # the smallest attainable p-value
True
>>> mmd_test(reference, rng.normal(size=(300, 4)), n_permutations=99).p_value > 0.05
True
>>> model = PCAReconstruction.fit(reference, variance=0.65)
>>> lower, upper, values = chunk_thresholds(reference, model.error, n_chunks=10)
>>> bool(lower < model.error(reference) < upper)
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.spatial.distance import pdist, squareform

from evalstore.errors import InvalidParameterError

__all__ = [
    "MMDResult",
    "PCAReconstruction",
    "chunk_thresholds",
    "finite_rows",
    "median_heuristic_bandwidth",
    "mmd2",
    "mmd_test",
    "mmd_undefined_reason",
]

FloatArray = npt.NDArray[np.float64]

#: Permuted statistics within this absolute distance below the observed one count as ties
#: (i.e. as "at least as large"). The statistic lies in [-2, 2]; two labellings that are
#: mathematically equal (the identity, or x and y swapped when n_x == n_y) are evaluated
#: with different floating-point operations and may differ by a few ulps. Counting such
#: near-ties keeps the p-value conservative; it changes nothing otherwise.
_TIE_ATOL = 1e-10

#: Permutations are evaluated this many at a time, bounding the memory of the
#: indicator matrix to ``_PERMUTATION_BATCH * (n_x + n_y)`` floats.
_PERMUTATION_BATCH = 128


# --------------------------------------------------------------------------- inputs


def _as_rows(a: npt.ArrayLike, name: str) -> FloatArray:
    """``a`` as a C-contiguous 2-D float64 array; 1-D input becomes one column."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, np.newaxis]
    if arr.ndim != 2:
        raise InvalidParameterError(
            f"{name} must be a 2-D array (rows x features) or 1-D (one feature); "
            f"got an array with {arr.ndim} dimensions"
        )
    return np.ascontiguousarray(arr)


def _paired_samples(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate the two samples of a two-sample statistic: same width, finite values."""
    xa, ya = _as_rows(x, "x"), _as_rows(y, "y")
    if xa.shape[1] != ya.shape[1]:
        raise InvalidParameterError(
            f"x and y must have the same number of feature columns; "
            f"got {xa.shape[1]} and {ya.shape[1]}"
        )
    for name, arr in (("x", xa), ("y", ya)):
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).any(axis=1).sum())
            raise InvalidParameterError(
                f"{name} has {bad} row(s) with NaN or infinite values; drop them first with "
                f"evalstore.metrics.drift.kernels.finite_rows and report the count"
            )
    return xa, ya


def finite_rows(*arrays: npt.ArrayLike) -> tuple[FloatArray, ...]:
    """Each array with its non-finite rows removed.

    Every argument is converted to a 2-D float64 array (1-D input becomes one column) and
    the rows holding any NaN, +inf or -inf are dropped; row order is kept. The arrays are
    filtered independently of each other (they may have different lengths, like the two
    samples of :func:`mmd_test`), and a tuple with one array per argument is returned.

    >>> x, y = finite_rows([[1.0, 2.0], [np.nan, 0.0]], [[0.0, np.inf], [3.0, 4.0]])
    >>> x.tolist(), y.tolist()
    ([[1.0, 2.0]], [[3.0, 4.0]])
    """
    out = []
    for i, a in enumerate(arrays):
        arr = _as_rows(a, f"array {i}")
        out.append(arr[np.isfinite(arr).all(axis=1)])
    return tuple(out)


def mmd_undefined_reason(x: npt.ArrayLike, y: npt.ArrayLike) -> str | None:
    """Why :func:`mmd2` / :func:`mmd_test` return NaN for these samples, or None if they don't.

    The unbiased estimator averages kernel values over pairs of *distinct* rows within each
    sample, so it needs at least 2 rows in each sample. Inputs that are invalid rather than
    too small (different widths, non-finite values) raise
    :class:`~evalstore.errors.InvalidParameterError` here as in the statistics themselves.

    >>> mmd_undefined_reason(np.zeros((5, 2)), np.zeros((1, 2)))
    'MMD needs at least 2 rows in each sample; y has 1'
    >>> mmd_undefined_reason(np.zeros((5, 2)), np.zeros((3, 2))) is None
    True
    """
    xa, ya = _paired_samples(x, y)
    short = [f"{name} has {len(arr)}" for name, arr in (("x", xa), ("y", ya)) if len(arr) < 2]
    if short:
        return "MMD needs at least 2 rows in each sample; " + " and ".join(short)
    return None


def _check_bandwidth(bandwidth: float) -> float:
    sigma = float(bandwidth)
    if not (np.isfinite(sigma) and sigma > 0):
        raise InvalidParameterError(f"bandwidth must be a finite number > 0; got {bandwidth!r}")
    return sigma


# --------------------------------------------------------------------------- MMD


def median_heuristic_bandwidth(z: npt.ArrayLike) -> float:
    """RBF bandwidth sigma of the median heuristic over the rows of ``z`` (the pooled sample).

    ``sigma = sqrt(median{‖z_i - z_j‖² : i < j} / 2)``: the median runs over the
    N(N-1)/2 squared Euclidean distances between *distinct* rows (self-distances excluded;
    duplicate rows contribute zeros), with ``numpy.median`` averaging the two middle values
    when the count is even. With this sigma the kernel is ``exp(-‖a - b‖² / median)``. When
    the pair count is odd, sigma is the median distance divided by √2 (Gretton et al. use
    the median distance itself, i.e. a √2 wider kernel). If the median is 0 (more than half
    of the pairs are duplicates, or there are no features) or there are fewer than 2 rows,
    sigma = 1.

    >>> median_heuristic_bandwidth([[0.0], [1.0], [3.0]])   # squared distances 1, 4, 9
    1.4142135623730951
    """
    za = _as_rows(z, "z")
    if len(za) < 2:
        return 1.0
    med = float(np.median(pdist(za, "sqeuclidean")))
    return float(np.sqrt(med / 2.0)) if med > 0 else 1.0


def _pooled_kernel(z: FloatArray, bandwidth: float | None) -> tuple[FloatArray, float]:
    """RBF Gram matrix of the rows of ``z`` and the bandwidth used.

    Squared distances come from ``pdist`` (sums of squared coordinate differences, so
    translation-invariant and exactly 0 on the diagonal, unlike the ``‖a‖²+‖b‖²-2a·b``
    expansion); the same condensed vector feeds the median heuristic.
    """
    d2 = pdist(z, "sqeuclidean")
    if bandwidth is None:
        med = float(np.median(d2)) if d2.size else 0.0
        sigma = float(np.sqrt(med / 2.0)) if med > 0 else 1.0
    else:
        sigma = _check_bandwidth(bandwidth)
    d2 *= -1.0 / (2.0 * sigma * sigma)
    np.exp(d2, out=d2)
    gram = squareform(d2, checks=False)
    np.fill_diagonal(gram, 1.0)  # k(a, a) = exp(0)
    return gram, sigma


def _mmd2_from_gram(gram: FloatArray, m: int) -> float:
    """Unbiased MMD² of the first ``m`` rows of the pooled Gram matrix against the rest."""
    n = gram.shape[0] - m
    kxx, kyy, kxy = gram[:m, :m], gram[m:, m:], gram[:m, m:]
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float(sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2.0 * kxy.sum() / (m * n))


def mmd2(x: npt.ArrayLike, y: npt.ArrayLike, bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased squared MMD between samples ``x`` (m rows) and ``y`` (n rows); (mmd2, sigma).

    The U-statistic of Gretton et al. (2012), "A Kernel Two-Sample Test", JMLR 13, eq. (3)
    (Lemma 6), which excludes the i = j terms within each sample::

        MMD²_u = 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j)
                 - 2/(mn) Σ_{i,j} k(x_i, y_j)

    with the RBF kernel ``k(a, b) = exp(-‖a - b‖² / (2 sigma²))``. When ``bandwidth`` is
    None, sigma comes from :func:`median_heuristic_bandwidth` over the pooled sample
    ``[x; y]`` (m + n rows); otherwise sigma = ``bandwidth`` (finite, > 0). Being unbiased,
    the estimate is near 0, and can be slightly negative, when both samples come from the
    same distribution; since 0 < k <= 1 it lies in [-2, 2].

    Edge cases: fewer than 2 rows in either sample returns ``(nan, nan)`` (see
    :func:`mmd_undefined_reason`). Different column counts, non-finite values (use
    :func:`finite_rows`) or an invalid bandwidth raise
    :class:`~evalstore.errors.InvalidParameterError`. Cost is O((m+n)²) time and memory
    (the pooled Gram matrix); :func:`mmd_test` caps the sample sizes.
    """
    xa, ya = _paired_samples(x, y)
    if bandwidth is not None:
        _check_bandwidth(bandwidth)
    if len(xa) < 2 or len(ya) < 2:
        return float("nan"), float("nan")
    gram, sigma = _pooled_kernel(np.concatenate([xa, ya]), bandwidth)
    return _mmd2_from_gram(gram, len(xa)), sigma


class MMDResult(NamedTuple):
    """Result of :func:`mmd_test`.

    ``mmd2`` is :func:`mmd2` of the (subsampled) samples, ``p_value`` the permutation
    p-value, ``bandwidth`` the sigma used, ``n_x``/``n_y`` the numbers of rows actually used
    (after subsampling to ``max_rows``). The three floats are NaN when the test is
    undefined (fewer than 2 rows in a sample; see :func:`mmd_undefined_reason`).
    """

    mmd2: float
    p_value: float
    bandwidth: float
    n_x: int
    n_y: int


def _subsample(a: FloatArray, max_rows: int, rng: np.random.Generator) -> FloatArray:
    """At most ``max_rows`` rows of ``a`` drawn without replacement, in original order."""
    if len(a) <= max_rows:
        return a
    return a[np.sort(rng.choice(len(a), size=max_rows, replace=False))]


def _permutation_stats(
    gram: FloatArray, m: int, n_permutations: int, rng: np.random.Generator
) -> tuple[float, FloatArray]:
    """MMD²_u of the original labelling and of ``n_permutations`` random relabellings.

    A labelling is an indicator vector ``a`` (1 for the m rows called x, 0 for the n rows
    called y; ``b = 1 - a``). With ``r = K1`` and ``T = 1ᵀK1`` the three block sums are
    ``aᵀKa``, ``bᵀKb = T - 2aᵀr + aᵀKa`` and ``aᵀKb = aᵀr - aᵀKa``, minus the diagonal
    ``aᵀdiag(K)`` / ``bᵀdiag(K)`` within samples. So every batch of labellings costs one
    matrix product with the Gram matrix, computed once; no kernel is recomputed.
    """
    size = gram.shape[0]
    n = size - m
    rowsum = gram.sum(axis=1)
    total = rowsum.sum()
    diag = np.diagonal(gram)
    diag_total = diag.sum()

    def stats(labels: FloatArray) -> FloatArray:  # labels: (batch, size) of 0.0 / 1.0
        a_ka = np.einsum("pi,ip->p", labels, gram @ labels.T)
        a_r = labels @ rowsum
        a_diag = labels @ diag
        sxx = a_ka - a_diag
        syy = total - 2.0 * a_r + a_ka - (diag_total - a_diag)
        sxy = a_r - a_ka
        return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2.0 * sxy / (m * n)

    base = np.zeros(size)
    base[:m] = 1.0
    observed = float(stats(base[np.newaxis, :])[0])
    out = np.empty(n_permutations)
    for start in range(0, n_permutations, _PERMUTATION_BATCH):
        stop = min(start + _PERMUTATION_BATCH, n_permutations)
        labels = rng.permuted(np.tile(base, (stop - start, 1)), axis=1)
        out[start:stop] = stats(labels)
    return observed, out


def mmd_test(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    n_permutations: int = 200,
    max_rows: int = 1000,
    seed: int | np.random.Generator = 0,
    bandwidth: float | None = None,
) -> MMDResult:
    """Permutation two-sample test of ``x`` against ``y`` with the MMD²_u statistic.

    Steps, all driven by one ``numpy.random.default_rng(seed)`` stream (so the result is a
    deterministic function of the inputs and the arguments; ``seed`` may be a Generator
    the caller already drew the subsamples of step 1 from, which then drives step 3):

    1. If a sample has more than ``max_rows`` rows, ``max_rows`` of them are drawn uniformly
       without replacement (``x`` first, then ``y``); this bounds the cost to
       O((2·max_rows)² · (d + n_permutations)) time and O((2·max_rows)²) memory.
    2. The observed statistic is :func:`mmd2` of the subsamples; sigma is fixed once, from
       the median heuristic over the pooled subsample (or ``bandwidth`` when given), and
       the pooled Gram matrix is computed once.
    3. Each permutation shuffles the pooled rows' sample labels (keeping the sizes) and
       re-evaluates the statistic on the same Gram matrix.
    4. ``p = (1 + #{permuted ≥ observed}) / (1 + n_permutations)`` (Phipson & Smyth 2010),
       so ``1/(1 + n_permutations) ≤ p ≤ 1``; permuted values within 1e-10 below the
       observed one count as ties (floating-point guard; see ``_TIE_ATOL``).

    Rows must be finite (drop the others with :func:`finite_rows`); otherwise, and for
    different column counts, :class:`~evalstore.errors.InvalidParameterError` is raised.
    With fewer than 2 rows in a sample the result is ``MMDResult(nan, nan, nan, n_x, n_y)``
    (see :func:`mmd_undefined_reason`).
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int | np.integer):
        raise InvalidParameterError(f"n_permutations must be an integer; got {n_permutations!r}")
    if n_permutations < 1:
        raise InvalidParameterError(f"n_permutations must be >= 1; got {n_permutations}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int | np.integer):
        raise InvalidParameterError(f"max_rows must be an integer; got {max_rows!r}")
    if max_rows < 2:
        raise InvalidParameterError(f"max_rows must be >= 2; got {max_rows}")
    xa, ya = _paired_samples(x, y)
    if bandwidth is not None:
        _check_bandwidth(bandwidth)
    rng = np.random.default_rng(seed)
    xa = _subsample(xa, int(max_rows), rng)
    ya = _subsample(ya, int(max_rows), rng)
    m, n = len(xa), len(ya)
    if m < 2 or n < 2:
        nan = float("nan")
        return MMDResult(nan, nan, nan, m, n)
    gram, sigma = _pooled_kernel(np.concatenate([xa, ya]), bandwidth)
    statistic = _mmd2_from_gram(gram, m)
    observed, permuted = _permutation_stats(gram, m, int(n_permutations), rng)
    exceed = int(np.count_nonzero(permuted >= observed - _TIE_ATOL))
    p_value = (1 + exceed) / (1 + int(n_permutations))
    return MMDResult(statistic, p_value, sigma, m, n)


# --------------------------------------------------------------------------- PCA


@dataclass(frozen=True, eq=False)
class PCAReconstruction:
    """PCA fitted on a standardized reference; scores windows by mean reconstruction error.

    Build it with :meth:`fit`. For an input row ``x`` (d features):

    1. impute: non-finite cells (NaN, ±inf) are replaced by the reference column means;
    2. standardize: ``z = (x - mean) / scale``;
    3. reconstruct: ``ẑ = z Wᵀ W`` with ``W`` the ``n_components x d`` matrix of the
       leading principal axes (orthonormal rows). The standardized reference has mean 0,
       so PCA's centering is the identity here.

    :meth:`row_errors` gives ``‖z - ẑ‖₂`` per row and :meth:`error` their mean. This is
    the DataReconstructionDriftCalculator of NannyML (mean imputation, standard scaling,
    PCA, mean Euclidean distance in the scaled space) for numeric features, and it agrees
    with ``sklearn.decomposition.PCA(n_components).fit(z_ref)`` followed by
    ``inverse_transform(transform(z))``.

    Attributes: ``mean`` and ``scale`` (per column), ``components`` (``W``),
    ``explained_variance_ratio`` (of the kept components) and ``n_components``.
    """

    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    explained_variance_ratio: FloatArray

    @property
    def n_components(self) -> int:
        """Number of principal components kept."""
        return int(self.components.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns of the reference."""
        return int(self.mean.shape[0])

    @property
    def keeps_everything(self) -> bool:
        """Whether every component is kept (``n_components == n_features``): then ``W`` is
        square and orthonormal, ``ẑ = z`` for every row, and the reconstruction error is
        rounding noise (about 1e-16) whatever the data: the method cannot detect drift."""
        return self.n_components == self.n_features

    @classmethod
    def fit(cls, reference: npt.ArrayLike, variance: float = 0.65) -> PCAReconstruction:
        """Fit imputation, standardization and PCA on ``reference`` (rows x features).

        * ``mean`` = column means over the finite cells of the reference; the reference's
          own non-finite cells are then replaced by these means (mean imputation, which
          leaves the means unchanged).
        * ``scale`` = column standard deviations of the imputed reference with ddof=0
          (``StandardScaler``); a column whose finite values are all equal gets scale 1
          (its standardized values are then 0 in the reference).
        * ``Z`` = standardized reference (n x d), with SVD ``Z = U S Vᵀ``. The explained
          variance ratios are ``S_i² / Σ S²`` (descending) and ``n_components`` is the
          fewest leading components whose cumulative ratio is ≥ ``variance``, capped at
          ``min(n, d)``. (scikit-learn's ``PCA(n_components=variance)`` requires the
          cumulative ratio to be strictly greater; the two differ only on exact ties.)
          If ``Z`` is all zero (every column constant) ``n_components`` is 0 and the
          reconstruction of every row is the reference mean.

        Raises :class:`~evalstore.errors.InvalidParameterError` when ``variance`` is not in
        (0, 1], the reference has fewer than 2 rows or no columns, or a column has no
        finite value.
        """
        var = float(variance)
        if not 0.0 < var <= 1.0:
            raise InvalidParameterError(f"variance must be in (0, 1]; got {variance!r}")
        ref = _as_rows(reference, "reference")
        n_rows, n_cols = ref.shape
        if n_rows < 2 or n_cols < 1:
            raise InvalidParameterError(
                f"reference must have at least 2 rows and 1 column; got shape {ref.shape}"
            )
        finite = np.isfinite(ref)
        counts = finite.sum(axis=0)
        if (counts == 0).any():
            cols = np.flatnonzero(counts == 0).tolist()
            raise InvalidParameterError(f"reference columns {cols} have no finite value")
        mean = np.where(finite, ref, 0.0).sum(axis=0) / counts
        imputed = np.where(finite, ref, mean)
        scale = imputed.std(axis=0)
        constant = imputed.max(axis=0) == imputed.min(axis=0)
        scale[constant | (scale == 0)] = 1.0
        z = (imputed - mean) / scale
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        return cls._from_svd(mean, scale, s, vt, var)

    @classmethod
    def fit_blocks(
        cls, blocks: Callable[[], Iterable[npt.ArrayLike]], variance: float = 0.65
    ) -> PCAReconstruction:
        """:meth:`fit` on the reference given as row blocks, never holding it whole.

        ``blocks()`` yields the reference's rows in blocks (the same blocks on each of its
        three calls). Means and standard deviations are summed block by block (two
        passes), and the singular values and axes of ``Z`` are those of the triangular
        factor ``R`` of its QR decomposition, accumulated block by block (``ZᵀZ = RᵀR``:
        a tall-skinny QR, as stable as the SVD of ``Z``). Memory is one block plus d x d;
        the result equals :meth:`fit` on the stacked blocks up to rounding (and the signs
        of the axes, which the reconstruction does not depend on).
        """
        var = float(variance)
        if not 0.0 < var <= 1.0:
            raise InvalidParameterError(f"variance must be in (0, 1]; got {variance!r}")
        sums: FloatArray | None = None
        counts = np.zeros(0)
        n_rows = 0
        for block in blocks():
            b = _as_rows(block, "reference")
            finite = np.isfinite(b)
            if sums is None:
                sums, counts = np.zeros(b.shape[1]), np.zeros(b.shape[1])
            sums += np.where(finite, b, 0.0).sum(axis=0)
            counts += finite.sum(axis=0)
            n_rows += len(b)
        if sums is None or n_rows < 2 or len(sums) < 1:
            raise InvalidParameterError(
                f"reference must have at least 2 rows and 1 column; got {n_rows} rows"
            )
        if (counts == 0).any():
            cols = np.flatnonzero(counts == 0).tolist()
            raise InvalidParameterError(f"reference columns {cols} have no finite value")
        mean = sums / counts
        squares, low, high = np.zeros(len(mean)), mean.copy(), mean.copy()
        for block in blocks():
            imputed = np.where(np.isfinite(block), block, mean)
            squares += ((imputed - mean) ** 2).sum(axis=0)
            low, high = np.minimum(low, imputed.min(axis=0)), np.maximum(high, imputed.max(axis=0))
        scale = np.sqrt(squares / n_rows)
        scale[(high == low) | (scale == 0)] = 1.0
        r: FloatArray | None = None
        for block in blocks():
            z = (np.where(np.isfinite(block), block, mean) - mean) / scale
            stacked = z if r is None else np.vstack([r, z])
            r = np.linalg.qr(stacked, mode="r")
        _, s, vt = np.linalg.svd(r, full_matrices=False)
        return cls._from_svd(mean, scale, s, vt, var)

    @classmethod
    def _from_svd(
        cls, mean: FloatArray, scale: FloatArray, s: FloatArray, vt: FloatArray, var: float
    ) -> PCAReconstruction:
        """The fitted model from the singular values ``s`` and axes ``vt`` of ``Z``."""
        power = s * s
        total = power.sum()
        if total <= 0:
            k, ratio = 0, np.zeros(0)
        else:
            ratio = power / total
            k = min(int(np.searchsorted(np.cumsum(ratio), var, side="left")) + 1, len(s))
        return cls(
            mean=mean,
            scale=scale,
            components=np.ascontiguousarray(vt[:k]),
            explained_variance_ratio=ratio[:k],
        )

    def _standardize(self, x: npt.ArrayLike) -> FloatArray:
        xa = _as_rows(x, "x")
        if xa.shape[1] != self.mean.shape[0]:
            raise InvalidParameterError(
                f"x must have {self.mean.shape[0]} feature columns like the reference; "
                f"got {xa.shape[1]}"
            )
        xa = np.where(np.isfinite(xa), xa, self.mean)
        return (xa - self.mean) / self.scale

    def row_errors(self, x: npt.ArrayLike) -> FloatArray:
        """``‖z - ẑ‖₂`` for every row of ``x`` (see the class docstring)."""
        z = self._standardize(x)
        residual = z - (z @ self.components.T) @ self.components
        return np.linalg.norm(residual, axis=1)

    def error(self, x: npt.ArrayLike) -> float:
        """Mean over the rows of ``x`` of :meth:`row_errors`; NaN when ``x`` has no rows."""
        errors = self.row_errors(x)
        return float(errors.mean()) if errors.size else float("nan")


# --------------------------------------------------------------------------- thresholds


def chunk_thresholds(
    reference: npt.ArrayLike,
    statistic: Callable[[FloatArray], float],
    n_chunks: int = 10,
    k: float = 3.0,
) -> tuple[float, float, FloatArray]:
    """Alert thresholds ``mean ± k·std`` of ``statistic`` over contiguous reference chunks.

    The reference rows are split, in order, into ``n_chunks`` contiguous chunks with
    ``numpy.array_split`` (sizes differ by at most one; the first ``n_rows % n_chunks``
    chunks get the extra row). ``values[i] = statistic(chunk_i)`` and the thresholds are
    ``mean(values) - k·std(values)`` and ``mean(values) + k·std(values)`` with the
    population standard deviation (ddof=0), as NannyML's ``StandardDeviationThreshold``.
    A value outside ``[lower, upper]`` is an alert. No clipping is applied: for a
    non-negative statistic such as :meth:`PCAReconstruction.error` the caller may clip the
    lower threshold at 0, as NannyML does.

    If any chunk value is NaN or infinite, both thresholds are NaN (the values are still
    returned, so the caller can see which chunk failed). Raises
    :class:`~evalstore.errors.InvalidParameterError` unless ``2 ≤ n_chunks ≤ n_rows`` and
    ``k`` is finite and ≥ 0.
    """
    ref = _as_rows(reference, "reference")
    if isinstance(n_chunks, bool) or not isinstance(n_chunks, int | np.integer):
        raise InvalidParameterError(f"n_chunks must be an integer; got {n_chunks!r}")
    if not 2 <= n_chunks <= len(ref):
        raise InvalidParameterError(
            f"n_chunks must be between 2 and the number of reference rows ({len(ref)}); "
            f"got {n_chunks}"
        )
    k = float(k)
    if not (np.isfinite(k) and k >= 0):
        raise InvalidParameterError(f"k must be a finite number >= 0; got {k!r}")
    values = np.array([float(statistic(c)) for c in np.array_split(ref, int(n_chunks))])
    if not np.isfinite(values).all():
        return float("nan"), float("nan"), values
    center, spread = float(values.mean()), float(values.std())
    return center - k * spread, center + k * spread, values
