"""Domain-classifier drift: how well a classifier tells analysis rows from reference rows.

If a window comes from the reference's distribution, no classifier can tell its rows from
the reference's better than chance, and the ROC AUC of its held-out predictions is about
0.5; the more the joint distribution has moved, the closer it gets to 1. This is
NannyML's ``DomainClassifierCalculator``; the classifier here is an L2-regularised
logistic regression on degree-2 terms instead of LightGBM (see :func:`design_matrix` and
``docs/drift.md`` for what that changes).

Steps for a reference ``X`` (n rows) and a window ``Y`` (m rows), both already numeric
(categorical features encoded by :mod:`evalstore.metrics.drift.encoding`):

1. **Design matrix** (:func:`design_matrix`): non-finite cells are replaced by the
   reference column means, every column is standardised with the reference's mean and
   standard deviation (ddof=0; a constant column gets scale 1), and ``terms="quadratic"``
   appends the squares and pairwise products of the first ``n_numeric`` (numeric feature)
   columns in ``sklearn.preprocessing.PolynomialFeatures(degree=2)`` order; with more than
   :data:`MAX_PRODUCT_FEATURES` numeric features only the squares are added.
   ``terms="linear"`` keeps the standardised columns alone. Last, a 0/1 column per numeric
   feature marks its missing cells, so a change in missingness is seen too. Columns
   constant over both sides are dropped (their weight would be 0).
2. **Labels**: reference rows 0, window rows 1, stacked reference first.
3. **Folds** (:func:`stratified_folds`): ``n_folds`` stratified folds, unshuffled, exactly
   ``sklearn.model_selection.StratifiedKFold(n_folds)`` (what NannyML uses).
4. **Classifier** (:func:`fit_logistic`): for each fold, the logistic regression minimising
   ``½‖w‖² + C Σ log(1 + exp(-s_i (x_i·w + b)))`` (``s_i = ±1``, intercept not penalised;
   ``sklearn.linear_model.LogisticRegression(C=C)``'s objective) on the other folds, by
   Newton's method (L-BFGS above :data:`NEWTON_MAX_COLUMNS` terms), predicting the
   held-out fold's probabilities.
5. **Value** (:func:`roc_auc`): the ROC AUC of all held-out predictions against the labels
   (the Mann-Whitney form with average ranks for ties, ``sklearn.metrics.roc_auc_score``).

Learned alert range (:func:`reference_chunk_aucs`): the reference (in time order) is cut
into contiguous chunks; each chunk is labelled 1 against the rest of the reference 0 and
scored as above (NannyML's reference results); the range is mean ± k sd (ddof=0) of those
AUCs, clipped to [0, 1].

Too little data does not raise in :func:`domain_auc`: with fewer than ``n_folds`` rows on
a side the value is NaN and :func:`domain_undefined_reason` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import rankdata

from evalstore.errors import InvalidParameterError

__all__ = [
    "MAX_CLASSIFIER_ROWS",
    "MAX_FIT_WORK",
    "MAX_FOLDS",
    "MAX_PRODUCT_FEATURES",
    "NEWTON_MAX_COLUMNS",
    "TERMS",
    "DesignMatrix",
    "DomainScorer",
    "cross_validated_auc",
    "design_matrix",
    "domain_auc",
    "domain_undefined_reason",
    "fit_logistic",
    "reference_chunk_aucs",
    "roc_auc",
    "stratified_folds",
]

FloatArray = npt.NDArray[np.float64]

#: Feature terms of the classifier (the ``classifier_terms`` option).
TERMS = ("quadratic", "linear")
#: Pairwise products are added for at most this many numeric features (210 products);
#: above it, ``quadratic`` adds the squares only (said in the variant).
MAX_PRODUCT_FEATURES = 20
#: Largest ``classifier_rows`` (rows per side the classifier is trained on).
MAX_CLASSIFIER_ROWS = 100_000
#: Largest ``classifier_folds``.
MAX_FOLDS = 20
#: Largest size of one fit, 2 ``classifier_rows`` x (terms + 1)² (about the multiply-adds
#: of one Newton step): 100,000 rows per side with 99 terms, 2000 with 706.
MAX_FIT_WORK = 2_000_000_000
#: Columns up to which :func:`fit_logistic` uses Newton's method (O(n p²) per step), L-BFGS
#: above.
NEWTON_MAX_COLUMNS = 300
#: The fit stops when the largest gradient component of the mean objective is below this.
_GTOL = 1e-8
_NEWTON_MAX_ITER = 100
_LBFGS_MAX_ITER = 2000


def check_terms(terms: object) -> str:
    """``terms`` if it names one of :data:`TERMS`, else an error naming them."""
    if not isinstance(terms, str) or terms not in TERMS:
        raise InvalidParameterError(
            f"classifier_terms={terms!r} is not a set of classifier terms; "
            f"choose from {', '.join(TERMS)}"
        )
    return terms


# --------------------------------------------------------------------------- features


@dataclass(frozen=True)
class DesignMatrix:
    """Standardisation (and degree-2 expansion) fitted on a reference; see :func:`design_matrix`."""

    mean: FloatArray
    scale: FloatArray
    n_numeric: int
    terms: str

    @property
    def products(self) -> bool:
        """Whether pairwise products of the numeric columns are among the terms."""
        return self.terms == "quadratic" and self.n_numeric <= MAX_PRODUCT_FEATURES

    def describe(self) -> str:
        """The terms, as the result's ``variant`` names them."""
        missing = ", missing-value indicators of the numeric features" if self.n_numeric else ""
        if self.terms == "linear" or self.n_numeric == 0:
            return f"linear terms{missing}"
        if self.products:
            return f"linear terms, squares and pairwise products of the numeric features{missing}"
        return (
            f"linear terms and squares of the numeric features (pairwise products left out: "
            f"{self.n_numeric} numeric features > {MAX_PRODUCT_FEATURES}){missing}"
        )

    def transform(self, x: npt.ArrayLike) -> FloatArray:
        """The classifier's input for rows ``x`` (same columns as the reference): the
        standardised columns (numeric ones with their degree-2 terms), then one 0/1 column
        per numeric feature marking a missing (non-finite) cell."""
        xa = np.asarray(x, dtype=np.float64).reshape(-1, len(self.mean))
        finite = np.isfinite(xa)
        z = (np.where(finite, xa, self.mean) - self.mean) / self.scale
        missing = (~finite[:, : self.n_numeric]).astype(np.float64)
        if self.terms == "linear" or self.n_numeric == 0:
            return np.hstack([z, missing])
        numeric = z[:, : self.n_numeric]
        if self.products:
            i, j = np.triu_indices(self.n_numeric)
            extra = numeric[:, i] * numeric[:, j]
        else:
            extra = numeric * numeric
        return np.hstack([numeric, extra, z[:, self.n_numeric :], missing])


def _informative(x: FloatArray) -> FloatArray:
    """``x`` without its constant columns (a missing-value indicator that is all 0, a
    constant feature): with a free intercept their weight is 0 at the optimum."""
    return x[:, x.max(axis=0) > x.min(axis=0)] if len(x) else x


def design_matrix(
    reference: npt.ArrayLike, n_numeric: int, terms: str = "quadratic"
) -> DesignMatrix:
    """Fit the classifier's input on ``reference`` (rows x columns, numeric columns first).

    Column means over the finite cells impute non-finite cells; scales are the standard
    deviations of the imputed columns (ddof=0), 1 for a constant column. With
    ``terms="quadratic"`` the numeric columns are followed by their degree-2 terms
    ``z_i z_j`` (i <= j, row-major: PolynomialFeatures order) when there are at most
    :data:`MAX_PRODUCT_FEATURES` of them, else by their squares; the remaining
    (encoded categorical) columns come last, linear.
    """
    check_terms(terms)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.ndim != 2 or len(ref) == 0:
        raise InvalidParameterError(
            f"reference must be a non-empty 2-D array (rows x columns); got shape {ref.shape}"
        )
    finite = np.isfinite(ref)
    counts = finite.sum(axis=0)
    mean = np.where(finite, ref, 0.0).sum(axis=0) / np.maximum(counts, 1)
    imputed = np.where(finite, ref, mean)
    scale = imputed.std(axis=0)
    scale[(scale == 0) | (imputed.max(axis=0) == imputed.min(axis=0))] = 1.0
    return DesignMatrix(mean, scale, int(n_numeric), terms)


# --------------------------------------------------------------------------- pieces


def stratified_folds(labels: npt.ArrayLike, n_folds: int) -> npt.NDArray[np.int64]:
    """The test fold of every row, as ``sklearn.model_selection.StratifiedKFold(n_folds)``
    (no shuffle): classes are numbered in order of first appearance, the sorted labels are
    dealt round-robin to the folds to decide how many rows of each class each fold gets,
    and each class's rows fill the folds in row order."""
    y = np.asarray(labels)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    encoded = np.argsort(np.argsort(first))[inverse]
    n_classes = len(first)
    ordered = np.sort(encoded)
    allocation = np.array(
        [np.bincount(ordered[i::n_folds], minlength=n_classes) for i in range(n_folds)]
    )
    folds = np.empty(len(y), dtype=np.int64)
    for k in range(n_classes):
        folds[encoded == k] = np.repeat(np.arange(n_folds), allocation[:, k])
    return folds


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC of ``scores`` for the 0/1 ``labels``: ``(R₁ - n₁(n₁+1)/2) / (n₁ n₀)`` with
    ``R₁`` the sum of the positives' average ranks (ties count one half), which is
    ``sklearn.metrics.roc_auc_score``. NaN when a class is absent."""
    y = np.asarray(labels).astype(bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def fit_logistic(
    x: npt.ArrayLike, labels: npt.ArrayLike, c: float = 1.0
) -> tuple[FloatArray, float]:
    """``(w, b)`` of the L2-regularised logistic regression (see the module docstring).

    Minimises ``½‖w‖² + C Σ log(1 + exp(-s_i (x_i·w + b)))`` from ``w = 0, b = 0`` (so the
    fit is deterministic): by Newton's method with a backtracking line search when there
    are at most :data:`NEWTON_MAX_COLUMNS` columns (a few iterations however correlated the
    degree-2 terms are), else by L-BFGS. Both stop when every gradient component of the
    objective divided by ``C`` times the number of rows is below 1e-8 (or after 100 Newton
    / 2000 L-BFGS iterations); the minimiser is unique, so the two agree to that tolerance.
    """
    xa = np.asarray(x, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    n, p = xa.shape
    design = np.hstack([xa, np.ones((n, 1))])
    # the objective divided by C n: mean log-loss + ½ λ ‖w‖², λ = 1 / (C n)
    penalty = np.r_[np.full(p, 1.0 / (c * n)), 0.0]
    sign = np.where(y, 1.0, -1.0)

    def objective(theta: FloatArray) -> float:
        return float(
            np.logaddexp(0.0, -sign * (design @ theta)).mean() + 0.5 * penalty @ (theta * theta)
        )

    def gradient(theta: FloatArray) -> tuple[FloatArray, FloatArray]:
        probability = expit(design @ theta)
        return design.T @ (probability - y) / n + penalty * theta, probability

    theta = np.zeros(p + 1)
    if p > NEWTON_MAX_COLUMNS:
        result = minimize(
            lambda t: (objective(t), gradient(t)[0]), theta, jac=True, method="L-BFGS-B",
            options={"maxiter": _LBFGS_MAX_ITER, "gtol": _GTOL, "ftol": 0.0},
        )  # fmt: skip
        return result.x[:p], float(result.x[p])
    for _ in range(_NEWTON_MAX_ITER):
        g, probability = gradient(theta)
        if np.abs(g).max() <= _GTOL:
            break
        weight = probability * (1.0 - probability) / n
        hessian = (design * weight[:, None]).T @ design + np.diag(penalty)
        try:
            step = np.linalg.solve(hessian, g)
        except np.linalg.LinAlgError:  # saturated probabilities: a singular Hessian
            step = np.linalg.lstsq(hessian, g, rcond=None)[0]
        current, t = objective(theta), 1.0
        while objective(theta - t * step) > current - 1e-4 * t * (g @ step) and t > 1e-10:
            t /= 2
        theta = theta - t * step
    return theta[:p], float(theta[p])


def cross_validated_auc(
    x: FloatArray, labels: npt.ArrayLike, n_folds: int = 5, c: float = 1.0
) -> float:
    """ROC AUC of the held-out predictions of :func:`fit_logistic` over
    :func:`stratified_folds` (steps 3-5 of the module docstring)."""
    y = np.asarray(labels).astype(bool)
    folds = stratified_folds(y, n_folds)
    scores = np.empty(len(y))
    for fold in range(n_folds):
        test = folds == fold
        w, b = fit_logistic(x[~test], y[~test], c)
        scores[test] = x[test] @ w + b  # the decision function ranks as the probability
    return roc_auc(y, scores)


# --------------------------------------------------------------------------- drift


def domain_undefined_reason(n_reference: int, n_analysis: int, n_folds: int = 5) -> str | None:
    """Why :func:`domain_auc` is NaN for sides of these sizes, or None if it is not."""
    short = [
        f"the {name} has {n}" for name, n in (("reference", n_reference), ("window", n_analysis))
        if n < n_folds
    ]  # fmt: skip
    if short:
        return (
            f"the domain classifier needs at least {n_folds} rows on each side (one per "
            f"cross-validation fold); " + " and ".join(short)
        )
    return None


def domain_auc(
    design: DesignMatrix,
    reference: FloatArray,
    window: FloatArray,
    n_folds: int = 5,
    c: float = 1.0,
) -> float:
    """Cross-validated ROC AUC of reference (label 0) against window (label 1) rows."""
    if domain_undefined_reason(len(reference), len(window), n_folds) is not None:
        return float("nan")
    x = _informative(np.vstack([design.transform(reference), design.transform(window)]))
    labels = np.r_[np.zeros(len(reference), dtype=bool), np.ones(len(window), dtype=bool)]
    return cross_validated_auc(x, labels, n_folds, c)


def reference_chunk_aucs(
    design: DesignMatrix, reference: FloatArray, n_chunks: int, n_folds: int = 5, c: float = 1.0
) -> FloatArray:
    """The AUC of each of ``n_chunks`` contiguous chunks (``numpy.array_split`` of the rows,
    in the order given: time order) against the rest of ``reference``."""
    if not 2 <= n_chunks <= len(reference) // n_folds:
        raise InvalidParameterError(
            f"learn_chunks={n_chunks} needs at least {n_folds} reference rows per chunk "
            f"(the reference has {len(reference)} rows): pass at most "
            f"{max(len(reference) // n_folds, 0)} or more reference rows"
        )
    x = _informative(design.transform(reference))
    values = []
    for chunk in np.array_split(np.arange(len(reference)), n_chunks):
        labels = np.zeros(len(reference), dtype=bool)
        labels[chunk] = True
        values.append(cross_validated_auc(x, labels, n_folds, c))
    return np.array(values)


# --------------------------------------------------------------------------- windows


def _subsample(rows: FloatArray, cap: int, seed: int) -> FloatArray:
    """At most ``cap`` rows drawn without replacement by ``default_rng(seed)``, in order."""
    if len(rows) <= cap:
        return rows
    rng = np.random.default_rng(seed)
    return rows[np.sort(rng.choice(len(rows), size=cap, replace=False))]


def _check_work(design: DesignMatrix, rows_per_side: int) -> None:
    """Refuse a fit whose size, (2 rows per side) x (terms + 1)², exceeds :data:`MAX_FIT_WORK`
    (before any fit runs)."""
    terms = design.transform(design.mean[np.newaxis, :]).shape[1] + 1
    work = 2 * rows_per_side * terms * terms
    if work > MAX_FIT_WORK:
        raise InvalidParameterError(
            f"domain_classifier: classifier_rows={rows_per_side} with {terms - 1} terms is too "
            f"much work for one fit (2 x rows x (terms + 1)² = {work:.3g} > {MAX_FIT_WORK:.3g}); "
            "lower classifier_rows, pass classifier_terms='linear', or choose fewer features "
            "(one-hot encoding adds a term per category)"
        )


@dataclass(frozen=True)
class DomainScorer:
    """The ``domain_classifier`` method over the windows of one call: the reference (capped
    and in time order), its design matrix and the alert range, fitted once; :meth:`row`
    scores a window. ``options`` are ``store.multivariate_drift``'s keyword arguments."""

    reference: FloatArray
    design: DesignMatrix | None
    limits: tuple[float, float] | None
    options: dict[str, Any]
    source: str | None
    reason: str | None

    @classmethod
    def fit(cls, in_time: FloatArray, n_numeric: int, options: dict[str, Any]) -> DomainScorer:
        """Subsample the reference (rows in time order) and learn or take the alert range."""
        folds, chunks, k = options["classifier_folds"], options["learn_chunks"], options["learn_k"]
        reference = _subsample(in_time, options["classifier_rows"], options["seed"])
        if len(reference) == 0 or reference.shape[1] == 0:
            return cls(reference, None, None, options, None, "the reference has no rows")
        design = design_matrix(reference, n_numeric, options["classifier_terms"])
        _check_work(design, options["classifier_rows"])
        given = options["classifier_range"]
        if given is not None:
            return cls(reference, design, given, options, "given: classifier_range", None)
        if len(reference) < chunks * folds:
            reason = (
                f"the alert range is learned from {chunks} reference chunks of at least "
                f"{folds} rows, so the reference needs {chunks * folds} rows (it has "
                f"{len(reference)}); pass classifier_range=(low, high) or a lower learn_chunks"
            )
            return cls(reference, design, None, options, None, reason)
        values = reference_chunk_aucs(design, reference, chunks, folds, options["classifier_c"])
        center, spread = float(values.mean()), float(values.std())
        limits = (max(0.0, center - k * spread), min(1.0, center + k * spread))
        source = (
            f"learned: mean ± {k} sd of the AUCs of {chunks} reference chunks against the rest "
            "of the reference (clipped to [0, 1])"
        )
        return cls(reference, design, limits, options, source, None)

    def variant(self) -> str:
        """The method's variant: folds, classifier, terms and row cap."""
        o = self.options
        terms = (
            self.design.describe() if self.design is not None else f"{o['classifier_terms']} terms"
        )
        return (
            f"ROC AUC of {o['classifier_folds']}-fold stratified cross-validated L2 logistic "
            f"regression (C={o['classifier_c']:g}) on {terms}; up to "
            f"{o['classifier_rows']} rows per side (seed {o['seed']})"
        )

    def row(self, sample: FloatArray) -> dict[str, Any]:
        """The result columns of one window (``sample``: its rows, encoded)."""
        low, high = self.limits if self.limits is not None else (None, None)
        row: dict[str, Any] = {
            "method": "domain_classifier", "variant": self.variant(), "value": None,
            "p_value": None, "threshold": high, "threshold_low": low,
            "threshold_source": self.source, "drifted": None, "reason": self.reason,
        }  # fmt: skip
        if len(sample) == 0:
            return {**row, "reason": "no rows in the window"}
        window = _subsample(sample, self.options["classifier_rows"], self.options["seed"])
        folds = self.options["classifier_folds"]
        short = domain_undefined_reason(len(self.reference), len(window), folds)
        if short is not None or self.design is None:
            return {**row, "reason": short or self.reason}
        value = domain_auc(self.design, self.reference, window, folds, self.options["classifier_c"])
        row["value"] = value
        if self.limits is not None:
            row["drifted"] = bool(value < self.limits[0] or value > self.limits[1])
        return row
