"""One registry per metric family: every drift method, quality check and performance or
compare metric is declared once here, as a frozen spec.

The families (validation, defaults, result order), the CLI help, the docs tables and the
tests read these registries; nothing else lists metric names. Adding a metric is one spec
here, its SQL (the macro named by ``sql_macro``) and its tests.

Registries (name -> spec, in declaration order, which is the order of error messages and,
per task, of results):

* :data:`DRIFT_METHODS` (univariate drift) and :data:`MULTIVARIATE_DRIFT_METHODS`;
* :data:`QUALITY_CHECKS` (``store.quality``) and :data:`VALIDATION_CHECKS`
  (``store.validate``);
* :data:`PERFORMANCE_METRICS` (``store.performance`` and ``store.worst_slices``);
* :data:`COMPARE_METRICS` (``store.compare``);
* :data:`SUMMARY_STATS` (``store.summary_stats``; not in :data:`REGISTRIES`, whose
  specs have thresholds or a better direction, and documented by its own table).

This module imports nothing heavy (the CLI reads it without loading DuckDB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalstore.errors import InvalidParameterError

#: Feature kinds of univariate specs.
KINDS = ("numeric", "categorical")
#: Model tasks of performance and compare specs.
TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class DriftMethod:
    """A drift method: which features it applies to and when it calls a window drifted.

    ``threshold`` is the default limit: the significance level for p-value methods (drifted
    when the corrected p-value is below it), else drifted when ``value > threshold``, or
    outside ``[threshold_low, threshold]`` when ``threshold_low`` is set. ``None`` means
    learned from the reference. ``variant_prefix`` restricts the default to the variants
    whose name starts with it (wasserstein's default is for ``normed`` only).
    """

    name: str
    kinds: tuple[str, ...]
    definition: str
    threshold: float | None
    has_p_value: bool = False
    threshold_low: float | None = None
    variant_prefix: str | None = None
    default: bool = False
    binned: bool = False
    sql_macro: str | None = None
    docs_anchor: str = "drift.md#drift"

    @property
    def direction(self) -> str:
        """``'below'`` (p-value), ``'outside'`` (a range), ``'above'`` or ``'learned'``."""
        if self.threshold is None:
            return "learned"
        if self.has_p_value:
            return "below"
        return "outside" if self.threshold_low is not None else "above"

    @property
    def default_limit(self) -> float | tuple[float, float] | None:
        """The default threshold as ``store.drift`` takes it: a number or ``(low, high)``."""
        if self.threshold is None or self.threshold_low is None:
            return self.threshold
        return (self.threshold_low, self.threshold)


@dataclass(frozen=True)
class QualityCheck:
    """A data-quality or validation check: fails when ``value`` passes its limit.

    ``threshold_parameter`` names the keyword argument of ``store.quality`` /
    ``store.validate`` (or the schema column) holding the limit, ``default_threshold`` its
    default; ``direction`` is ``'below'`` (fails when value < limit) or ``'above'``.
    """

    name: str
    kinds: tuple[str, ...]
    definition: str
    threshold_parameter: str
    default_threshold: float | None
    direction: str = "above"
    sql_macro: str = "evalstore.quality"
    docs_anchor: str = "quality.md#data-quality-and-schemas"


@dataclass(frozen=True)
class Metric:
    """A performance or compare metric.

    ``tasks`` are the model tasks it is computed for; ``per_class_tasks`` those where it is
    reported per class (column ``class``; listed after the task's other metrics).
    ``slice_test`` is the test ``store.worst_slices`` uses (``'proportion'`` or ``'mean'``)
    on ``slice_tasks``; a metric without one is not decomposable (a slice's value is not a
    mean of per-row outcomes). ``needs_bootstrap``: the interval is drawn by the Python
    bootstrap, not computed in SQL. ``higher_is_better`` is None for a signed metric whose
    best value is 0 (``bias``).
    ``default``: computed when a call names no metrics (else only when asked for by name).
    """

    name: str
    tasks: tuple[str, ...]
    definition: str
    higher_is_better: bool | None
    interval: str
    per_class_tasks: tuple[str, ...] = ()
    needs_bootstrap: bool = False
    slice_test: str | None = None
    slice_tasks: tuple[str, ...] = ()
    sql_macro: str = "evalstore.performance_<task>"
    docs_anchor: str = "performance.md#performance"
    default: bool = True

    @property
    def decomposable(self) -> bool:
        """Whether a slice's value is a mean of per-row outcomes (worst_slices can test it)."""
        return self.slice_test is not None


@dataclass(frozen=True)
class SummaryStat:
    """A summary statistic of ``store.summary_stats``: its value per window, and whether the
    low end of its learned alert range is floored at 0 (``floor_zero``, as NannyML's
    ``lower_threshold_value_limit`` for counts and standard deviations)."""

    name: str
    kinds: tuple[str, ...]
    definition: str
    floor_zero: bool = False
    sql_macro: str = "evalstore.summary_stats"
    docs_anchor: str = "quality.md#summary-statistics"


def _registry(*specs):  # type: ignore[no-untyped-def]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate spec names in {names}")
    return {s.name: s for s in specs}


_NUM, _CAT, _BOTH = ("numeric",), ("categorical",), KINDS
_NUMERIC_MACRO = "evalstore.drift_numeric"
_CATEGORICAL_MACRO = "evalstore.drift_categorical"
_BOTH_MACRO = "evalstore.drift_numeric, evalstore.drift_categorical"
_TWO_SAMPLE_DOCS = "drift.md#two-sample-tests-and-distances"

#: Univariate drift methods (``store.drift``), in the order error messages list them.
DRIFT_METHODS: dict[str, DriftMethod] = _registry(
    DriftMethod("ks", _NUM, "two-sided KS statistic D; p-value as `scipy.stats.ks_2samp` "
                "(exact up to 10 000 values per side, else `kstwo.sf(D, round(n m / (n + m)))`, "
                "whose Birnbaum-Tingey branch evalstore sums itself, faster, within 1e-11 of "
                "scipy)", 0.05, has_p_value=True, default=True, sql_macro=_NUMERIC_MACRO),
    DriftMethod("psi", _BOTH, "population stability index, Σ (q - p) ln(q / p) over bins or "
                "categories", 0.2,
                default=True, binned=True, sql_macro=_BOTH_MACRO),
    DriftMethod("js", _BOTH, "Jensen-Shannon distance (or divergence) over bins or "
                "categories, base e or 2 (as `scipy.spatial.distance.jensenshannon`)", 0.1,
                default=True, binned=True, sql_macro=_BOTH_MACRO),
    DriftMethod("kl", _BOTH, "KL(reference || analysis) over bins or categories, base e or 2 "
                "(as `scipy.stats.entropy(p, q)`)", 0.1, binned=True, sql_macro=_BOTH_MACRO),
    DriftMethod("hellinger", _BOTH, "Hellinger distance, √(Σ (√p - √q)²) / √2 over bins or "
                "categories", 0.1,
                binned=True, sql_macro=_BOTH_MACRO),
    DriftMethod("wasserstein", _NUM, "Wasserstein-1 distance (as "
                "`scipy.stats.wasserstein_distance`), `normed` (÷ reference population sd, "
                "default) or `raw`", 0.1, variant_prefix="normed", default=True,
                sql_macro=_NUMERIC_MACRO),
    DriftMethod("d1", _NUM, "Σ |p - q| over bins", 0.2, binned=True,
                sql_macro=_NUMERIC_MACRO),
    DriftMethod("zscore", _NUM, "(mean_a - mean_r) / (sd_r / sqrt(n_a))", 3.0,
                threshold_low=-3.0, sql_macro=_NUMERIC_MACRO),
    DriftMethod("chi2", _CAT, "Pearson chi-squared of the 2 x K table, Yates-corrected when "
                "dof = 1 (as `scipy.stats.chi2_contingency`)",
                0.05, has_p_value=True, default=True, sql_macro=_CATEGORICAL_MACRO),
    DriftMethod("linf", _CAT, "max |p - q| over categories", 0.1,
                sql_macro=_CATEGORICAL_MACRO),
    DriftMethod("unseen", _CAT, "share of window values in categories the reference never "
                "had", 0.0, default=True, sql_macro=_CATEGORICAL_MACRO),
    DriftMethod("welch_t", _NUM, "Welch's t, (mean_r - mean_a) / √(s_r² / n_r + s_a² / n_a) "
                "with sample variances, and its p-value with the Welch-Satterthwaite dof, as "
                "`scipy.stats.ttest_ind(reference, window, equal_var=False)`; ±inf (p = 0) "
                "when both sides are constant with different means", 0.05, has_p_value=True,
                sql_macro=_NUMERIC_MACRO, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("anderson", _NUM, "k-sample Anderson-Darling statistic of the reference and "
                "the window (midrank, for ties) and its p-value, as "
                "`scipy.stats.anderson_ksamp([reference, window], variant='midrank')`: the "
                "p-value is interpolated in Scholz and Stephens' table and capped to "
                "[0.001, 0.25] (scipy's default; no permutations)", 0.05, has_p_value=True,
                docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("cramer_von_mises", _NUM, "two-sample Cramér-von Mises T (midranks) and its "
                "p-value, as `scipy.stats.cramervonmises_2samp(reference, window)` (exact up "
                "to 20 values per side, else asymptotic)", 0.05, has_p_value=True,
                sql_macro=_NUMERIC_MACRO, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("energy_distance", _NUM, "energy distance √(2 E|R - A| - E|R - R'| - "
                "E|A - A'|) over all pairs, which is √2 · √(∫ (F_R - F_A)² dx), as "
                "`scipy.stats.energy_distance(reference, window)`", 0.1,
                sql_macro=_NUMERIC_MACRO, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("epps_singleton", _NUM, "Epps-Singleton W (empirical characteristic functions "
                "at t = (0.4, 0.8) over the pooled semi-IQR) and its p-value, as "
                "`scipy.stats.epps_singleton_2samp(reference, window)`; needs 5 values per "
                "side", 0.05, has_p_value=True, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("mann_whitney", _NUM, "Mann-Whitney U of the reference and its two-sided "
                "p-value, as `scipy.stats.mannwhitneyu(reference, window)` (continuity "
                "correction; exact when a side has at most 8 values and there are no ties, "
                "else normal with tie correction)", 0.05, has_p_value=True,
                sql_macro=_NUMERIC_MACRO, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("empirical_mmd", _NUM, "unbiased MMD² of one feature (RBF kernel, median-"
                "heuristic bandwidth; at most 1000 values per side drawn with seed 0) with a "
                "permutation p-value over 200 permutations: multivariate `mmd`'s kernel "
                "test on a single column", 0.05, has_p_value=True,
                docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("tvd", _BOTH, "total variation distance, 0.5 Σ |p - q| over bins (on the same "
                "edges as psi) or categories", 0.1, binned=True, sql_macro=_BOTH_MACRO,
                docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("g_test", _CAT, "G-test (log-likelihood ratio) of the 2 x K table, 2 Σ O "
                "ln(O / E), Yates-corrected when dof = 1 (`yates=True`), as "
                "`scipy.stats.chi2_contingency(lambda_='log-likelihood')`; p = chi2.sf(G, K - 1)",
                0.05, has_p_value=True, sql_macro=_CATEGORICAL_MACRO,
                docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("chisquare_gof", _CAT, "chi-squared goodness of fit of the window's counts to "
                "the reference's proportions, Σ (a - E)² / E with E = r A / R, as "
                "`scipy.stats.chisquare(a, r A / R)` (Evidently's `chisquare`); +inf, p = 0, "
                "when the window has a category the reference lacks", 0.05, has_p_value=True,
                sql_macro=_CATEGORICAL_MACRO, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("z_test", _CAT, "two-proportion z-test of a binary feature (pooled variance): "
                "share of the first category in sort order, reference minus window, over "
                "√(P (1 - P) (1/R + 1/A)); p = 2 norm.sf(|z|) (z² and p equal "
                "`scipy.stats.chi2_contingency(correction=False)`'s); more than two categories "
                "give NULL with a reason", 0.05, has_p_value=True,
                sql_macro=_CATEGORICAL_MACRO, docs_anchor=_TWO_SAMPLE_DOCS),
    DriftMethod("fisher_exact", _CAT, "Fisher's exact test of a binary feature's 2 x 2 table "
                "[[r1, r2], [a1, a2]], two-sided, as `scipy.stats.fisher_exact`; value the odds "
                "ratio r1 a2 / (r2 a1) (+inf when r2 a1 = 0); more than two categories give "
                "NULL with a reason", 0.05, has_p_value=True, sql_macro=_CATEGORICAL_MACRO,
                docs_anchor=_TWO_SAMPLE_DOCS),
)  # fmt: skip

#: Multivariate drift methods (``store.multivariate_drift``; Python only, thresholds learned
#: from reference chunks). Categorical features named in ``features=`` enter every method
#: count- or one-hot encoded (``categorical_encoding``).
MULTIVARIATE_DRIFT_METHODS: dict[str, DriftMethod] = _registry(
    DriftMethod("mmd", _BOTH, "maximum mean discrepancy (Gaussian kernel) with a "
                "permutation p-value", None, has_p_value=True, default=True,
                docs_anchor="drift.md#multivariate-drift"),
    DriftMethod("pca", _BOTH, "PCA reconstruction error of the window under the reference's "
                "components", None, default=True, docs_anchor="drift.md#multivariate-drift"),
    DriftMethod("domain_classifier", _BOTH, "ROC AUC of held-out stratified folds of a "
                "classifier telling window rows from reference rows (L2 logistic regression "
                "on degree-2 terms; NannyML's domain classifier uses LightGBM)", None,
                default=True, docs_anchor="drift.md#domain-classifier"),
)  # fmt: skip

_NUMERIC_QUALITY = "evalstore.quality_numeric"
_CATEGORICAL_QUALITY = "evalstore.quality_categorical"
_BOTH_QUALITY = "evalstore.quality_numeric, evalstore.quality_categorical"

#: Checks of ``store.quality`` (``default_threshold`` is the keyword argument's default).
QUALITY_CHECKS: dict[str, QualityCheck] = _registry(
    QualityCheck("rows", _BOTH, "rows of the feature in the window, NULLs included",
                 "min_rows", 1, direction="below", sql_macro=_BOTH_QUALITY),
    QualityCheck("missing", _BOTH, "share of NULL values (limit: reference share + "
                 "tolerance)", "missing_tolerance", 0.05, sql_macro=_BOTH_QUALITY),
    QualityCheck("nan", _NUM, "number of NaN values", "max_nonfinite", 0,
                 sql_macro=_NUMERIC_QUALITY),
    QualityCheck("posinf", _NUM, "number of +inf values", "max_nonfinite", 0,
                 sql_macro=_NUMERIC_QUALITY),
    QualityCheck("neginf", _NUM, "number of -inf values", "max_nonfinite", 0,
                 sql_macro=_NUMERIC_QUALITY),
    QualityCheck("out_of_range", _NUM, "share of finite values outside the reference's "
                 "finite [min, max] (of all rows, NULLs included, with `denominator='rows'`)",
                 "max_out_of_range", 0.01, sql_macro=_NUMERIC_QUALITY),
    QualityCheck("unseen", _CAT, "share of non-NULL values in categories absent from the "
                 "reference (of all rows, NULLs included, with `denominator='rows'`)",
                 "max_unseen", 0.01, sql_macro=_CATEGORICAL_QUALITY),
)  # fmt: skip

_NUMERIC_VALIDATE = "evalstore.validate_numeric"
_CATEGORICAL_VALIDATE = "evalstore.validate_categorical"
_BOTH_VALIDATE = "evalstore.validate_numeric, evalstore.validate_categorical"

#: Checks of ``store.validate`` against a saved schema (limits from the schema's columns;
#: ``tolerance`` is the one keyword argument).
VALIDATION_CHECKS: dict[str, QualityCheck] = _registry(
    QualityCheck("missing", _BOTH, "number of NULL values (fails > 0 when not nullable)",
                 "nullable", 0, sql_macro=_BOTH_VALIDATE),
    QualityCheck("missing_rate", _BOTH, "share of NULL values (limit: expected_missing + "
                 "tolerance)", "tolerance", 0.05, sql_macro=_BOTH_VALIDATE),
    QualityCheck("below_min", _NUM, "share of non-NULL values below the schema's min", "min",
                 0, sql_macro=_NUMERIC_VALIDATE),
    QualityCheck("above_max", _NUM, "share of non-NULL values above the schema's max", "max",
                 0, sql_macro=_NUMERIC_VALIDATE),
    QualityCheck("out_of_domain", _CAT, "share of non-NULL values not in the schema's "
                 "domain", "domain", 0, sql_macro=_CATEGORICAL_VALIDATE),
    QualityCheck("type", _BOTH, "1 if the stored column's type differs from the schema's "
                 "dtype", "dtype", 0, sql_macro=_BOTH_VALIDATE),
)  # fmt: skip

_B, _M, _R = ("binary",), ("multiclass",), ("regression",)
_BM = ("binary", "multiclass")

#: Metrics of ``store.performance`` (and, where ``slice_test`` is set, of
#: ``store.worst_slices``). Per task, results follow this order, per-class metrics last.
PERFORMANCE_METRICS: dict[str, Metric] = _registry(
    Metric("accuracy", _BM, "share of correct predictions", True, "wilson",
           slice_test="proportion", slice_tasks=_BM),
    Metric("precision", _BM, "tp / (tp + fp) (multiclass: per class)", True, "wilson",
           per_class_tasks=_M, slice_test="proportion", slice_tasks=_B),
    Metric("recall", _BM, "tp / (tp + fn) (multiclass: per class)", True, "wilson",
           per_class_tasks=_M, slice_test="proportion", slice_tasks=_B),
    Metric("f1", _BM, "harmonic mean of precision and recall (multiclass: per class)", True,
           "delta method", per_class_tasks=_M),
    Metric("specificity", _B, "tn / (tn + fp)", True, "wilson", slice_test="proportion",
           slice_tasks=_B),
    Metric("roc_auc", _B, "area under the ROC curve of the score (ties count ½, as "
           "`roc_auc_score`)", True, "delong"),
    Metric("average_precision", _B, "area under the precision-recall curve (step, as "
           "`average_precision_score`)", True, "logit"),
    Metric("macro_f1", _M, "unweighted mean of the per-class F1", True, "bootstrap",
           needs_bootstrap=True),
    Metric("micro_f1", _M, "F1 of the pooled confusion matrix (= accuracy)", True, "wilson"),
    Metric("weighted_f1", _M, "per-class F1 weighted by support", True, "bootstrap",
           needs_bootstrap=True),
    Metric("log_loss", _BM, "mean -ln p(label), probabilities clipped to [eps, 1 - eps] "
           "(multiclass: the stored probabilities)",
           False, "normal", slice_test="mean", slice_tasks=_BM),
    Metric("brier", _B, "mean (score - y)^2", False, "normal", slice_test="mean",
           slice_tasks=_B),
    Metric("ece", _B, "expected calibration error over `ece_bins` (10) equal-width "
           "score bins", False,
           "bootstrap", needs_bootstrap=True),
    Metric("mae", _R, "mean |y - prediction|", False, "normal", slice_test="mean",
           slice_tasks=_R),
    Metric("mse", _R, "mean (y - prediction)^2", False, "normal", slice_test="mean",
           slice_tasks=_R),
    Metric("rmse", _R, "sqrt(mse)", False, "sqrt of the mse interval"),
    Metric("mape", _R, "mean |y - prediction| / |y| over non-zero targets (zero "
           "targets left out, counted in `n_excluded`)", False, "normal",
           slice_test="mean", slice_tasks=_R),
    Metric("r2", _R, "1 - MSE / Var(y)", True, "delta method"),
    Metric("bias", _R, "mean (prediction - y)", None, "normal"),
    Metric("tp", _B, "true positives of the decisions: count, or share of all rows, of the "
           "true class or of the predicted class (`normalize_confusion_matrix`); by name "
           "only", True, "none for counts, Wilson for shares", default=False,
           docs_anchor="performance.md#confusion-matrix-and-business-value"),
    Metric("fp", _B, "false positives (as tp)", False, "none for counts, Wilson for shares",
           default=False, docs_anchor="performance.md#confusion-matrix-and-business-value"),
    Metric("fn", _B, "false negatives (as tp)", False, "none for counts, Wilson for shares",
           default=False, docs_anchor="performance.md#confusion-matrix-and-business-value"),
    Metric("tn", _B, "true negatives (as tp)", True, "none for counts, Wilson for shares",
           default=False, docs_anchor="performance.md#confusion-matrix-and-business-value"),
    Metric("business_value", _B, "v_tn tn + v_fp fp + v_fn fn + v_tp tp for "
           "`business_value_matrix=[[v_tn, v_fp], [v_fn, v_tp]]` (NannyML's layout); total, "
           "or / n with `normalize_business_value='per_prediction'`; by name only", True,
           "normal",
           slice_test="mean", slice_tasks=_B, default=False,
           docs_anchor="performance.md#confusion-matrix-and-business-value"),
)  # fmt: skip

#: Statistics of ``store.summary_stats`` (NannyML's summary-statistics calculators, and
#: min, max, quantiles), in result order.
SUMMARY_STATS: dict[str, SummaryStat] = _registry(
    SummaryStat("count", KINDS, "rows of the window, NULL and NaN included (NannyML's row "
                "count)", floor_zero=True),
    SummaryStat("mean", _NUM, "mean of the values, NULL and NaN left out (`numpy.nanmean`)"),
    SummaryStat("median", _NUM, "median (`numpy.nanmedian`)"),
    SummaryStat("sd", _NUM, "sample standard deviation, ddof 1 (`numpy.nanstd(ddof=1)`, "
                "pandas `Series.std` as NannyML)", floor_zero=True),
    SummaryStat("min", _NUM, "minimum (`numpy.nanmin`)"),
    SummaryStat("max", _NUM, "maximum (`numpy.nanmax`)"),
    SummaryStat("sum", _NUM, "sum, 0 without values (`numpy.nansum`)"),
    SummaryStat("quantile", _NUM, "one row `q<level>` per level of `quantiles` (0.05, 0.95), "
                "linear interpolation (`numpy.nanquantile`)"),
)  # fmt: skip

_COMPARE_CLASSIFICATION = "evalstore.compare_classification"
_COMPARE_DOCS = "compare.md#comparing-versions"

#: Metrics of ``store.compare`` (``value`` is the rate for disagreement, else b - a).
COMPARE_METRICS: dict[str, Metric] = _registry(
    Metric("disagreement", TASKS, "share of paired examples whose predictions differ "
           "(regression: beyond `numpy.isclose(b, a, rtol, atol=tolerance)`); Wilson interval; "
           "no labels needed", False, "wilson",
           sql_macro="evalstore.compare_classification, evalstore.compare_regression",
           docs_anchor=_COMPARE_DOCS),
    Metric("accuracy", _BM, "accuracy(b) - accuracy(a) on labeled pairs; Wald interval of a "
           "paired difference, `d ± z·√(n_a_only + n_b_only - n·d²)/n`; McNemar's test",
           True, "wald", sql_macro=_COMPARE_CLASSIFICATION, docs_anchor=_COMPARE_DOCS),
    Metric("log_loss", _BM, "mean(loss_b - loss_a), `-ln p(label)` clipped to [eps, 1 - eps]; "
           "mean ± z·sd/√n (sample sd); paired z-test", False, "normal",
           sql_macro=_COMPARE_CLASSIFICATION, docs_anchor=_COMPARE_DOCS),
    Metric("brier", _B, "mean((score_b - y)² - (score_a - y)²); interval and test as "
           "log_loss", False,
           "normal", sql_macro=_COMPARE_CLASSIFICATION, docs_anchor=_COMPARE_DOCS),
    Metric("mae", _R, "mean(|e_b| - |e_a|); interval and test as log_loss", False, "normal",
           sql_macro="evalstore.compare_regression", docs_anchor=_COMPARE_DOCS),
    Metric("mse", _R, "mean(e_b² - e_a²); interval and test as log_loss", False, "normal",
           sql_macro="evalstore.compare_regression", docs_anchor=_COMPARE_DOCS),
)  # fmt: skip


def of_kind(
    registry: dict[str, DriftMethod] | dict[str, QualityCheck], kind: str
) -> tuple[str, ...]:
    """Names in ``registry`` that apply to features of ``kind``, in registry order."""
    return tuple(name for name, spec in registry.items() if kind in spec.kinds)


def task_metrics(registry: dict[str, Metric], task: str) -> tuple[str, ...]:
    """Metric names of ``task`` in result order: registry order, per-class metrics last."""
    names = [name for name, spec in registry.items() if task in spec.tasks]
    return tuple(sorted(names, key=lambda name: task in registry[name].per_class_tasks))


def chosen_names(
    value: str | Sequence[str] | None,
    available: Sequence[str],
    name: str,
    problem: str,
    *,
    show_given: bool = False,
) -> list[str]:
    """The names a call asked for in its parameter ``name``: all of ``available`` for None,
    one name for a string, else those given, in order without repeats.

    An empty list or a name not in ``available`` raises InvalidParameterError
    ``"{name}={value!r}: {unknown names or 'none given'} {problem}"``, the value shown as
    a list, or as given with ``show_given``.
    """
    if value is None:
        return list(available)
    names = [value] if isinstance(value, str) else list(value)
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        shown = value if show_given else names
        raise InvalidParameterError(f"{name}={shown!r}: {unknown or 'none given'} {problem}")
    return list(dict.fromkeys(names))


REGISTRIES: dict[str, dict[str, DriftMethod] | dict[str, QualityCheck] | dict[str, Metric]] = {
    "drift": DRIFT_METHODS,
    "multivariate_drift": MULTIVARIATE_DRIFT_METHODS,
    "quality": QUALITY_CHECKS,
    "validate": VALIDATION_CHECKS,
    "performance": PERFORMANCE_METRICS,
    "compare": COMPARE_METRICS,
}
"""Every registry by the ``store`` method (or HTTP family) it serves."""
