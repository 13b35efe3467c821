"""The metric families on the :class:`~evalstore.Store`: :class:`AnalysisMethods`.

Drift (univariate and multivariate), data quality and saved schemas, performance, worst
slices, training/serving skew, version comparison and production health. Each method
checks nothing itself beyond what its family checks: it hands the store's
:class:`~evalstore.core.context.Context` and its arguments to the family's function in
:mod:`evalstore.metrics` and returns that function's Arrow table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.windows import name_split
from evalstore.errors import InvalidParameterError, translate_duckdb_errors
from evalstore.metrics import compare as _compare
from evalstore.metrics import health as _health
from evalstore.metrics import performance as _performance
from evalstore.metrics import presets as _presets
from evalstore.metrics import quality as _quality
from evalstore.metrics import skew as _skew
from evalstore.metrics import slices as _slices
from evalstore.metrics import summary as _summary
from evalstore.metrics.drift import multivariate as multivariate_drift
from evalstore.metrics.drift import univariate as drift
from evalstore.metrics.specs import DRIFT_METHODS

if TYPE_CHECKING:
    from evalstore.core.context import Context


@translate_duckdb_errors
class AnalysisMethods:
    """The metric-family methods of :class:`~evalstore.Store` (a mixin; see
    :mod:`evalstore.facade`). Relies on the store's ``_context()`` (the families'
    view of the handle) and ``_writable()`` (refuses a read-only store)."""

    if TYPE_CHECKING:

        def _context(self) -> Context: ...

        def _writable(self) -> None: ...

    def drift(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        *,
        persist: bool = False,
        **options: Any,
    ) -> pa.Table:
        """Univariate drift per window and feature; see
        :func:`evalstore.metrics.drift.univariate.drift`.

        ``reference`` is ``"training"``, ``"validation"``, ``{"dataset": tag}``, a
        ``(start, end)`` time range or ``{"previous": n}``; ``window`` an interval
        (``"1 day"``), rows per chunk (``5000``) or ``{"chunks": n}``. Returns a long
        table: window_start, window_end, feature, kind, version, method, variant, value,
        p_value, threshold, threshold_low, threshold_source, drifted, n_reference,
        n_analysis, reason. ``persist=True`` stores the result in the metric history and
        recomputes only the windows later batches touched (:mod:`evalstore.monitors.history`).

        >>> import evalstore, pyarrow as pa
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> ids = [str(i) for i in range(100)]
        >>> _ = store.log_features("m", pa.table({"example_id": ids, "x": range(100)}),
        ...                        env="training")
        >>> _ = store.log_features("m", pa.table({"example_id": ids, "x": range(50, 150)}))
        >>> row = store.drift("m", window="100 years", features=["x"], methods=["ks"])
        >>> row.select(["feature", "method", "value", "drifted"]).to_pylist()
        [{'feature': 'x', 'method': 'ks', 'value': 0.5, 'drifted': True}]
        >>> store.close()
        """
        _check_preset_options("drift", methods, options)
        if persist:
            arguments = dict(reference=reference, window=window, features=features)
            arguments.update(methods=methods, version=version, where=where)
            return name_split(self._persisted("drift", model, {**arguments, **options}), window)
        return name_split(
            drift.drift(
                self._context(), model, reference, window, features, methods, version, where,
                **options,
            ),
            window,
        )  # fmt: skip

    def multivariate_drift(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        methods: Sequence[str] = multivariate_drift.MULTIVARIATE_METHODS,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Joint drift of the features per window: MMD², PCA reconstruction and a domain
        classifier's cross-validated ROC AUC.

        Same selection parameters and result shape as :meth:`drift` (``feature`` is
        ``'*'``); ``features=None`` takes the numeric features, categorical ones named in
        ``features`` are count- or one-hot encoded (``categorical_encoding``). See
        :mod:`evalstore.metrics.drift.multivariate` for the methods and options (``alpha``,
        ``max_rows``, ``n_permutations``, ``variance``, ``learn_chunks``, ``learn_k``,
        ``seed``, ``categorical_encoding``, ``classifier_rows``, ``classifier_folds``,
        ``classifier_c``, ``classifier_terms``, ``classifier_range``). ``preset="nannyml"``:
        NannyML's data-reconstruction drift (``pca``; :mod:`evalstore.metrics.presets`).
        """
        preset = options.pop("preset", None)
        if preset is not None:
            default = tuple(methods) == tuple(multivariate_drift.MULTIVARIATE_METHODS)
            methods, options = _presets.single(
                preset, "multivariate_drift", None if default else methods, options
            )
        return name_split(
            _presets.prefixed(multivariate_drift.multivariate_drift(
                self._context(), model, reference, window, features, methods, version, where,
                **options,
            ), preset),
            window,
        )  # fmt: skip

    def quality(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        *,
        persist: bool = False,
        **options: Any,
    ) -> pa.Table:
        """Data quality per window and feature; see :func:`evalstore.metrics.quality.quality`.

        Checks: rows, missing, nan, posinf, neginf, out_of_range (numeric; outside the
        reference's [min, max]) and unseen (categorical). Same selection parameters and
        long result shape as :meth:`drift`; ``drifted`` is true when a check fails.
        ``persist=True``: as for :meth:`drift`.
        """
        _check_preset_options("quality", None, options)
        if persist:
            arguments = dict(reference=reference, window=window, features=features)
            arguments.update(version=version, where=where)
            return name_split(self._persisted("quality", model, {**arguments, **options}), window)
        return name_split(
            _quality.quality(
                self._context(), model, reference, window, features, version, where, **options
            ),
            window,
        )

    def summary_stats(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        stats: Sequence[str] | str | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Summary statistics per window and feature with learned alert ranges.

        count, mean, median, sd, min, max, sum and quantiles of each feature (count only for
        categorical ones) per ``window``, alerting outside mean ± 3 sd of the statistic over
        reference chunks (NannyML's summary-statistics calculators); see
        :func:`evalstore.metrics.summary.summary_stats` (``since``, ``until``,
        ``quantiles``, ``learn_chunks``, ``k``).
        """
        return _summary.summary_stats(
            self._context(), model, reference, window, features, stats, version, where,
            **options,
        )  # fmt: skip

    def infer_schema(
        self,
        model: str,
        reference: Any = "training",
        version: str | None = None,
        features: Sequence[str] | None = None,
        **options: Any,
    ) -> pa.Table:
        """Infer and save each feature's schema from the reference rows.

        Saved in the editable table ``evalstore.schemas`` (kind, dtype, nullable,
        min, max, domain, expected_missing); see :func:`evalstore.metrics.quality.infer_schema`.
        """
        self._writable()
        return _quality.infer_schema(
            self._context(), model, reference, version, features, **options
        )

    def schema(self, model: str) -> pa.Table:
        """The model's saved schema (its rows of ``evalstore.schemas``)."""
        return _quality.saved_schema(self._context(), model)

    def validate(
        self,
        model: str,
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Violations of the saved schema per window and feature.

        Checks: missing, missing_rate, type, below_min, above_max, out_of_domain; see
        :func:`evalstore.metrics.quality.validate`.
        """
        return name_split(
            _quality.validate(self._context(), model, window, features, version, where, **options),
            window,
        )

    def performance(
        self,
        model: str,
        metrics: Sequence[str] | None = None,
        window: Any = "1 day",
        by: Any = None,
        version: str | None = None,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
        threshold: float | None = None,
        *,
        persist: bool = False,
        **options: Any,
    ) -> pa.Table:
        """Realized performance per window, version and slice from the latest labels.

        Binary, multiclass and regression metrics with confidence intervals, label
        coverage and ``labels_complete`` (so a late-labelled window is not mistaken for a
        drop); see :func:`evalstore.metrics.performance.performance`. ``persist=True``: as
        for :meth:`drift`. ``preset="nannyml"``: NannyML's binary metrics
        (:mod:`evalstore.metrics.presets`; not with ``persist``).
        """
        preset = options.pop("preset", None)
        if preset is not None:
            if persist:
                raise InvalidParameterError(
                    "preset= is not kept in the metric history: drop persist=True (or the "
                    "preset, passing its options)"
                )
            given = {**options, **({"threshold": threshold} if threshold is not None else {})}
            task = self._context().registration(model, version)["task"]
            metrics, _ = _presets.single(preset, "performance", metrics, given, task)
        # the SQL names NannyML's chunk split in variant (evalstore.split_variant)
        if persist:
            arguments = dict(metrics=metrics, window=window, by=by, version=version)
            arguments.update(where=where, since=since, until=until, threshold=threshold)
            return self._persisted("performance", model, {**arguments, **options})
        return _presets.prefixed(
            _performance.performance(
                self._context(), model, metrics, window, by, version, where, since, until,
                threshold, **options,
            ),
            preset,
        )  # fmt: skip

    def _persisted(self, family: str, model: str, arguments: dict[str, Any]) -> pa.Table:
        from evalstore.monitors import history as _history

        return _history.persisted(self._context(), family, model, arguments)

    def history(
        self,
        model: str,
        family: str | None = None,
        metric: str | Sequence[str] | None = None,
        feature: str | Sequence[str] | None = None,
        since: Any = None,
        until: Any = None,
        **options: Any,
    ) -> pa.Table:
        """The stored metric series of ``model`` (rows of persisted calls, ``persist=True``).

        Filters by ``family``, ``metric``, ``feature`` (the subject) and ``since <=
        window_start < until`` (options ``version``, ``limit``); see
        :func:`evalstore.monitors.history.history` for the columns.
        """
        from evalstore.monitors import history as _history

        return _history.history(
            self._context(), model, family, metric, feature, since, until, **options
        )

    def worst_slices(
        self,
        model: str,
        metric: str | None = None,
        since: Any = None,
        until: Any = None,
        version: str | None = None,
        where: str | None = None,
        features: Sequence[str] | None = None,
        **options: Any,
    ) -> pa.Table:
        """Slices (a feature's value or bin, or a pair) where the model is significantly worse.

        Each finding carries a SQL ``predicate`` to pass back as ``where=`` to every other
        call; tests, multiple-testing control and ranking are described in
        :func:`evalstore.metrics.slices.worst_slices`.
        """
        return _slices.worst_slices(
            self._context(), model, metric, since, until, version, where, features, **options
        )

    def skew(
        self,
        model: str,
        tolerance: float = 1e-8,
        rtol: float = 1e-5,
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Training/serving skew per feature, for examples logged in both envs.

        Per feature: n_compared, n_mismatch (numeric within ``tolerance`` + ``rtol`` x
        |training| as numpy.isclose; categorical exact; NULL vs value mismatches),
        share_mismatch, sample_ids, and the training-vs-serving ``distance`` from the
        drift engine (``method``, ``variant``); see :func:`evalstore.metrics.skew.skew`.
        """
        return _skew.skew(
            self._context(), model, tolerance, rtol, features, version, where, **options
        )

    def skew_summary(
        self,
        model: str,
        tolerance: float = 1e-8,
        rtol: float = 1e-5,
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """One row: examples in both envs, how many have any skew, features with skew.

        Same parameters and mismatch rule as :meth:`skew`; see
        :func:`evalstore.metrics.skew.skew_summary`.
        """
        return _skew.skew_summary(
            self._context(), model, tolerance, rtol, features, version, where, **options
        )

    def compare(
        self,
        model: str,
        a: str,
        b: str,
        window: Any = "1 day",
        by: Any = None,
        metric: str | Sequence[str] | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Version ``b`` against version ``a`` on the examples both predicted.

        Per window and slice: disagreement rate, and on labeled pairs the paired
        difference b - a of accuracy (McNemar's test), log loss and Brier score
        (regression: MAE, MSE) with confidence intervals and p-values; see
        :func:`evalstore.metrics.compare.compare`.
        """
        # the SQL names NannyML's chunk split in variant (evalstore.split_variant)
        return _compare.compare(self._context(), model, a, b, window, by, metric, where, **options)

    def health(
        self,
        model: str,
        window: str = "1 day",
        version: str | None = None,
        sections: Sequence[str] | str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Production health in one long table: staleness, golden signals, ingest, dependencies.

        Version and training-data age; predictions, throughput, error rate (NULL
        predictions) and latency p50/p95/p99 per version and ``window``; ingest freshness
        and volume from ``evalstore.batches``; dependency changes between consecutive
        versions. See :func:`evalstore.metrics.health.health` (``as_of``, ``now``).
        """
        return _health.health(self._context(), model, window, version, sections, **options)


def _check_preset_options(family: str, methods: Any, options: dict[str, Any]) -> None:
    """Refuse an option the caller passed explicitly that ``options["preset"]`` sets to
    another value, even when it equals evalstore's default (the family's own check below
    this layer sees every parameter, given or not, and can only compare with defaults)."""
    preset = options.get("preset")
    if preset is None:
        return
    given = {k: v for k, v in options.items() if k not in ("preset", "thresholds")}
    available = DRIFT_METHODS if family == "drift" else None
    _presets.groups(preset, family, methods, given, available=available)
