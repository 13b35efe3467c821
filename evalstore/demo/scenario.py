"""Deterministic synthetic monitoring scenario: a credit-default classifier.

The scenario mimics a binary classifier (``credit_default``) that scores loan
applications in production.  Everything is generated from a single
``numpy.random.default_rng(seed)`` stream, so the same seed always yields
identical Arrow tables.

Environments and time ranges (``start`` is 2026-09-01 00:00 UTC):

* ``training``   (dataset ``train_2026_08``): ``[start - 74d, start - 14d)``
* ``validation`` (dataset ``valid_2026_08``): ``[start - 14d, start)``
* ``serving``: ``days`` days from ``start`` with ``rows_per_day`` rows per day.

The true label ``default`` is drawn from a logistic model of the (clean)
features with a base rate around 12%; a logistic regression fitted on the
training data reaches an AUC of roughly 0.8 on fresh data.

Injected serving drift (day numbers are 0-based days since ``start``):

* ``income`` -- gradual drift: the log-income mean rises linearly from day 20
  to day 60 (about +30% on the raw scale at day 60).
* ``utilization`` -- abrupt shift at day 35: the distribution changes from
  Beta(2, 5) (mean ~0.29) to Beta(3.5, 3.5) (mean 0.5).
* ``transaction_amount`` -- weekly periodic pattern whose amplitude grows
  from 15% (also present in training) to about 75% at the end of serving.
* ``channel`` -- abrupt category-mix change at day 40 (mobile share rises
  from 35% to 65%).
* concept drift -- from day 45 the effect of ``debt_to_income`` on default
  becomes much stronger (and non-linear above 0.45) while income,
  utilization, late payments, region and channel stop mattering, so the
  deployed models' AUC drops from ~0.8 to ~0.73.

Injected data-quality problems in serving:

* ``debt_to_income``: NaN for ~4% of rows on days 50 and 51.
* ``age``: out-of-range values (-1 and 150) for ~3% of rows on day 52.
* ``credit_limit``: +inf for ~2% of rows on day 53.
* ``employment``: unseen category ``"gig_worker"`` for ~6% of rows from day 55.
* ``region``: a handful (~0.3%) of nulls on every serving day.

Two model versions are fitted with a small numpy IRLS logistic regression:
``v1`` (production, trained on the training set) scores every serving row;
``v2`` (shadow, trained on training + validation with a
``debt_to_income x utilization`` interaction) scores only from day 30 on.
Both impute non-finite values with training medians and clip to training
quantiles, and ignore unseen categories, so they are robust to the corruption.

Labels arrive late for ~60% of serving traffic (delay 2-10 days after the
prediction); labels that would arrive after the end of serving are never
delivered.  ``label_batches`` holds one table per arrival day; the last batch
also contains ~50 corrections (earlier labels flipped, with a later ``ts``).

This module holds the models, the predictions and the assembly of the :class:`Scenario`;
the feature/label schema, the drift schedule and the data generators are in
:mod:`evalstore.demo.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from evalstore.demo.synthetic import (
    _TS_TYPE,
    BAD_AGE_DAY,
    CATEGORICAL_FEATURES,
    CHANNEL_SHIFT_DAY,
    CONCEPT_DRIFT_DAY,
    FEATURES,
    INCOME_DRIFT_END,
    INCOME_DRIFT_START,
    INCOME_LOG_SHIFT,
    INF_CREDIT_LIMIT_DAY,
    LOG_FEATURES,
    NAN_DTI_DAYS,
    NUMERIC_FEATURES,
    UNSEEN_EMPLOYMENT,
    UNSEEN_EMPLOYMENT_DAY,
    UTILIZATION_SHIFT_DAY,
    _corrupt_serving,
    _feature_table,
    _generate_features,
    _label_batches,
    _label_table,
    _sample_times,
    _true_default,
)

__all__ = ["Scenario", "credit_default_scenario"]

MODEL_NAME = "credit_default"
TRAINING_DATASET = "train_2026_08"
VALIDATION_DATASET = "valid_2026_08"
THRESHOLD = 0.3

V2_START_DAY = 30
_START = datetime(2026, 9, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """A complete, deterministic production-monitoring scenario.

    Attributes:
        model: Model name (``"credit_default"``).
        versions: One dict of ``store.register_model(...)`` keyword arguments
            per model version (``"v1"`` production, ``"v2"`` shadow).
        training: Feature table for ``env="training"`` (``train_2026_08``).
        validation: Feature table for ``env="validation"`` (``valid_2026_08``).
        serving: Feature table for ``env="serving"``, sorted by ``ts``.
        predictions: Version -> predictions table (``example_id``, ``ts``,
            ``score``, ``prediction``, ``latency_ms``).
        label_batches: Serving labels grouped by arrival day, in arrival
            order; the last batch additionally holds label corrections.
        start: First serving instant (midnight UTC, tz-aware).
        drift_notes: Feature -> description of injected drift/corruption.
        reference_labels: Labels (``example_id``, ``label``, ``ts``) of the
            training and validation examples; ``ts`` is the example's ``ts``.
    """

    model: str
    versions: list[dict[str, Any]]
    training: pa.Table
    validation: pa.Table
    serving: pa.Table
    predictions: dict[str, pa.Table]
    label_batches: list[pa.Table]
    start: datetime
    drift_notes: dict[str, str]
    reference_labels: pa.Table


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


class _LogisticModel:
    """Tiny L2-regularised logistic regression fitted with IRLS on numpy."""

    def __init__(self, C: float = 1.0, interaction: bool = False) -> None:
        self.C = C
        self.interaction = interaction
        self.stats: dict[str, tuple[float, float, float, float, float]] = {}
        self.levels: dict[str, list[str]] = {}
        self.coef: np.ndarray = np.zeros(0)

    def _numeric(self, name: str, values: np.ndarray) -> np.ndarray:
        median, lo, hi, mean, std = self.stats[name]
        x = np.asarray(values, dtype=np.float64)
        x = np.where(np.isnan(x), median, x)
        x = np.clip(x, lo, hi)
        if name in LOG_FEATURES:
            x = np.log1p(np.maximum(x, 0.0))
        return (x - mean) / std

    def _design(self, t: pa.Table) -> np.ndarray:
        cols: list[np.ndarray] = [np.ones(t.num_rows)]
        std_cols: dict[str, np.ndarray] = {}
        for name in NUMERIC_FEATURES:
            raw = t.column(name).to_numpy(zero_copy_only=False)
            std_cols[name] = self._numeric(name, raw)
            cols.append(std_cols[name])
        for name in CATEGORICAL_FEATURES:
            values = np.asarray(t.column(name).to_pylist(), dtype=object)
            for level in self.levels[name]:
                cols.append((values == level).astype(np.float64))
        if self.interaction:
            cols.append(std_cols["debt_to_income"] * std_cols["utilization"])
        return np.column_stack(cols)

    def fit(self, t: pa.Table, y: np.ndarray) -> _LogisticModel:
        """Fit preprocessing statistics and coefficients on table ``t``."""
        for name in NUMERIC_FEATURES:
            x = t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            x = x[np.isfinite(x)]
            lo, hi = np.quantile(x, [0.001, 0.999])
            clipped = np.clip(x, lo, hi)
            if name in LOG_FEATURES:
                clipped = np.log1p(np.maximum(clipped, 0.0))
            std = float(clipped.std()) or 1.0
            self.stats[name] = (
                float(np.median(x)),
                float(lo),
                float(hi),
                float(clipped.mean()),
                std,
            )
        for name in CATEGORICAL_FEATURES:
            values = [v for v in t.column(name).to_pylist() if v is not None]
            self.levels[name] = sorted(set(values))
        X = self._design(t)
        y = y.astype(np.float64)
        w = np.zeros(X.shape[1])
        penalty = np.full(X.shape[1], 1.0 / self.C)
        penalty[0] = 0.0
        for _ in range(25):
            p = 1.0 / (1.0 + np.exp(-(X @ w)))
            grad = X.T @ (p - y) + penalty * w
            hess = (X * (p * (1.0 - p))[:, None]).T @ X + np.diag(penalty)
            step = np.linalg.solve(hess, grad)
            w = w - step
            if np.max(np.abs(step)) < 1e-8:
                break
        self.coef = w
        return self

    def predict_proba(self, t: pa.Table) -> np.ndarray:
        """Return the probability of default for each row of ``t``."""
        z = np.clip(self._design(t) @ self.coef, -35.0, 35.0)
        return 1.0 / (1.0 + np.exp(-z))


def _predictions(
    rng: np.random.Generator,
    model: _LogisticModel,
    serving: pa.Table,
    ts_us: np.ndarray,
    latency_median_ms: float,
) -> pa.Table:
    """Score ``serving`` and build the predictions table."""
    n = serving.num_rows
    score = model.predict_proba(serving)
    latency = np.round(rng.lognormal(np.log(latency_median_ms), 0.4, n), 3)
    overhead_ms = rng.uniform(100.0, 500.0, n)
    pred_ts = ts_us + np.rint((latency + overhead_ms) * 1000.0).astype(np.int64)
    return pa.table(
        {
            "example_id": serving.column("example_id"),
            "ts": pa.array(pred_ts, type=pa.int64()).cast(_TS_TYPE),
            "score": pa.array(score, type=pa.float64()),
            "prediction": pa.array((score >= THRESHOLD).astype(np.int64)),
            "latency_ms": pa.array(latency, type=pa.float64()),
        }
    )


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------


def _drift_notes() -> dict[str, str]:
    return {
        "income": (
            f"gradual drift: log-income mean rises linearly from day "
            f"{INCOME_DRIFT_START:.0f} to day {INCOME_DRIFT_END:.0f} "
            f"(+{np.expm1(INCOME_LOG_SHIFT):.0%} at the end)"
        ),
        "utilization": (
            f"abrupt shift at day {UTILIZATION_SHIFT_DAY}: Beta(2,5) (mean ~0.29) "
            "-> Beta(3.5,3.5) (mean 0.5)"
        ),
        "transaction_amount": (
            "weekly periodic pattern whose amplitude grows from 15% to ~75% over the serving period"
        ),
        "channel": (
            f"abrupt category-mix change at day {CHANNEL_SHIFT_DAY}: mobile share "
            "35% -> 65% (web 45% -> 27%, branch 20% -> 8%)"
        ),
        "debt_to_income": (
            f"concept drift from day {CONCEPT_DRIFT_DAY}: default risk depends much "
            "more strongly (non-linearly above 0.45) on debt_to_income while "
            "income/utilization/late payments stop mattering, degrading model "
            "AUC; "
            f"also ~4% NaN on days {NAN_DTI_DAYS[0]}-{NAN_DTI_DAYS[1]}"
        ),
        "age": f"out-of-range values (-1 and 150) for ~3% of rows on day {BAD_AGE_DAY}",
        "credit_limit": f"+inf for ~2% of rows on day {INF_CREDIT_LIMIT_DAY}",
        "employment": (
            f"unseen category '{UNSEEN_EMPLOYMENT}' for ~6% of rows from day "
            f"{UNSEEN_EMPLOYMENT_DAY}"
        ),
        "region": "~0.3% null values on every serving day",
    }


def credit_default_scenario(
    seed: int = 7,
    days: int = 60,
    rows_per_day: int = 1500,
    training_rows: int = 20000,
    validation_rows: int = 5000,
) -> Scenario:
    """Generate the deterministic credit-default monitoring scenario.

    Args:
        seed: Seed for ``numpy.random.default_rng``; equal seeds give
            identical tables.
        days: Number of serving days starting at ``Scenario.start``.
        rows_per_day: Serving rows per day.
        training_rows: Rows in the training feature table.
        validation_rows: Rows in the validation feature table.

    Returns:
        The generated :class:`Scenario`.
    """
    if days < 1 or rows_per_day < 1 or training_rows < 10 or validation_rows < 1:
        raise ValueError("days, rows_per_day and row counts must be positive")
    rng = np.random.default_rng(seed)
    start = _START
    start_us = int(start.timestamp()) * 1_000_000

    # ---- reference data (training + validation) -------------------------
    trn_off = np.sort(_sample_times(rng, rng.integers(-74, -14, size=training_rows)))
    val_off = np.sort(_sample_times(rng, rng.integers(-14, 0, size=validation_rows)))
    trn_f = _generate_features(rng, trn_off, serving=False)
    val_f = _generate_features(rng, val_off, serving=False)
    trn_y = _true_default(rng, trn_f, np.zeros(training_rows, dtype=bool))
    val_y = _true_default(rng, val_f, np.zeros(validation_rows, dtype=bool))
    trn_ids = [f"trn-{i:06d}" for i in range(1, training_rows + 1)]
    val_ids = [f"val-{i:06d}" for i in range(1, validation_rows + 1)]
    training = _feature_table(trn_ids, start_us + trn_off, trn_f)
    validation = _feature_table(val_ids, start_us + val_off, val_f)
    reference_labels = _label_table(
        np.asarray(trn_ids + val_ids, dtype=object),
        np.concatenate([trn_y, val_y]),
        start_us + np.concatenate([trn_off, val_off]),
    )

    # ---- serving --------------------------------------------------------
    n_srv = days * rows_per_day
    srv_day = np.repeat(np.arange(days, dtype=np.int64), rows_per_day)
    srv_off = _sample_times(rng, srv_day)
    order = np.argsort(srv_off, kind="stable")
    srv_off, srv_day = srv_off[order], srv_day[order]
    srv_f = _generate_features(rng, srv_off, serving=True)
    srv_y = _true_default(rng, srv_f, srv_day >= CONCEPT_DRIFT_DAY)
    srv_f, unseen, region_null = _corrupt_serving(rng, srv_f, srv_day)
    srv_ids = np.asarray([f"srv-{i:07d}" for i in range(1, n_srv + 1)], dtype=object)
    srv_ts = start_us + srv_off
    serving = _feature_table(srv_ids.tolist(), srv_ts, srv_f, unseen, region_null)

    # ---- models ---------------------------------------------------------
    v1 = _LogisticModel(C=1.0).fit(training, trn_y)
    reference = pa.concat_tables([training, validation])
    v2 = _LogisticModel(C=1.0, interaction=True).fit(reference, np.concatenate([trn_y, val_y]))
    pred_v1 = _predictions(rng, v1, serving, srv_ts, 40.0)
    shadow = np.flatnonzero(srv_day >= V2_START_DAY)
    pred_v2 = _predictions(rng, v2, serving.take(shadow), srv_ts[shadow], 65.0)
    predictions = {"v1": pred_v1, "v2": pred_v2}

    # ---- labels ---------------------------------------------------------
    v1_ts = pred_v1.column("ts").cast(pa.int64()).to_numpy()
    label_batches = _label_batches(rng, srv_ids, srv_y, v1_ts, start_us, days)

    features = list(FEATURES)
    versions: list[dict[str, Any]] = [
        {
            "model": MODEL_NAME,
            "version": "v1",
            "task": "binary",
            "classes": [0, 1],
            "positive_class": 1,
            "threshold": THRESHOLD,
            "trained_at": start - timedelta(days=13) + timedelta(hours=3),
            "deployed_at": start - timedelta(days=7),
            "stage": "production",
            "training_dataset": TRAINING_DATASET,
            "params": {"C": 1.0, "features": features, "solver": "irls"},
            "dependencies": {"numpy": "2.1.0", "scikit-learn": "1.5.2"},
        },
        {
            "model": MODEL_NAME,
            "version": "v2",
            "task": "binary",
            "classes": [0, 1],
            "positive_class": 1,
            "threshold": THRESHOLD,
            "trained_at": start + timedelta(days=V2_START_DAY - 4, hours=10),
            "deployed_at": start + timedelta(days=V2_START_DAY),
            "stage": "shadow",
            "training_dataset": TRAINING_DATASET,
            "params": {
                "C": 1.0,
                "features": features,
                "solver": "irls",
                "extra_training_datasets": [VALIDATION_DATASET],
                "interactions": [["debt_to_income", "utilization"]],
            },
            "dependencies": {"numpy": "2.1.3", "scikit-learn": "1.6.1"},
        },
    ]

    return Scenario(
        model=MODEL_NAME,
        versions=versions,
        training=training,
        validation=validation,
        serving=serving,
        predictions=predictions,
        label_batches=label_batches,
        start=start,
        drift_notes=_drift_notes(),
        reference_labels=reference_labels,
    )
