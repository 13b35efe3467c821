"""Synthetic data of the credit-default scenario: the feature/label schema, the drift and
corruption schedule, and the numpy generators that produce its Arrow feature and label tables.

The scenario itself (models, predictions, registration metadata and the public
:func:`~evalstore.demo.scenario.credit_default_scenario`) lives in :mod:`evalstore.demo.scenario`,
whose docstring documents the injected drift and data-quality problems.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

NUMERIC_FEATURES: tuple[str, ...] = (
    "age",
    "income",
    "debt_to_income",
    "credit_limit",
    "utilization",
    "num_late_payments",
    "account_age_months",
    "transaction_amount",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("employment", "region", "channel")
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
INT_FEATURES = frozenset({"age", "num_late_payments", "account_age_months"})
LOG_FEATURES = frozenset({"income", "credit_limit", "transaction_amount"})

EMPLOYMENT = ("salaried", "self_employed", "unemployed", "retired", "student")
EMPLOYMENT_P = (0.58, 0.14, 0.06, 0.12, 0.10)
EMPLOYMENT_INCOME = (1.0, 1.1, 0.4, 0.7, 0.35)
EMPLOYMENT_RISK = (0.0, 0.15, 0.9, -0.2, 0.35)
REGIONS = ("north", "south", "east", "west", "central")
REGION_P = (0.22, 0.24, 0.20, 0.20, 0.14)
REGION_RISK = (0.0, 0.12, -0.05, 0.0, 0.05)
CHANNELS = ("web", "mobile", "branch")
CHANNEL_P = (0.45, 0.35, 0.20)
CHANNEL_P_DRIFT = (0.27, 0.65, 0.08)
CHANNEL_RISK = (0.0, 0.2, -0.15)

# Drift / corruption schedule (0-based serving day indices).
INCOME_DRIFT_START, INCOME_DRIFT_END, INCOME_LOG_SHIFT = 20.0, 60.0, 0.27
UTILIZATION_SHIFT_DAY = 35
CHANNEL_SHIFT_DAY = 40
CONCEPT_DRIFT_DAY = 45
NAN_DTI_DAYS = (50, 51)
BAD_AGE_DAY = 52
INF_CREDIT_LIMIT_DAY = 53
UNSEEN_EMPLOYMENT_DAY = 55
UNSEEN_EMPLOYMENT = "gig_worker"

LABEL_FRACTION = 0.6
N_CORRECTIONS = 50

_US_PER_DAY = 86_400_000_000
_US_PER_HOUR = 3_600_000_000
_TS_TYPE = pa.timestamp("us", tz="UTC")


# --------------------------------------------------------------------------
# Feature generation
# --------------------------------------------------------------------------


def _sample_times(rng: np.random.Generator, day_index: np.ndarray) -> np.ndarray:
    """Return microsecond offsets for rows of given integer days.

    Intraday arrival follows a diurnal profile peaking mid-afternoon.
    """
    hours = np.arange(24)
    weights = np.where(
        (hours >= 6) & (hours <= 22),
        1.0 + 0.8 * np.sin(np.pi * (hours - 6) / 16.0),
        0.25,
    )
    hour = rng.choice(24, size=day_index.size, p=weights / weights.sum())
    within = rng.integers(0, _US_PER_HOUR, size=day_index.size)
    return day_index.astype(np.int64) * _US_PER_DAY + hour * _US_PER_HOUR + within


def _generate_features(
    rng: np.random.Generator, offset_us: np.ndarray, serving: bool
) -> dict[str, np.ndarray]:
    """Generate clean feature columns for rows at ``offset_us`` from start.

    Drift depends on the fractional day index relative to ``start`` and is
    only applied when ``serving`` is true.
    """
    n = offset_us.size
    d = offset_us / _US_PER_DAY
    if not serving:
        d = np.full(n, -1.0)

    age = np.clip(np.rint(rng.normal(42.0, 13.0, n)), 18, 90).astype(np.int64)
    emp_idx = rng.choice(len(EMPLOYMENT), size=n, p=EMPLOYMENT_P)
    # Students are young, retirees old: nudge ages for realism.
    age = np.where(emp_idx == 4, np.clip(age, 18, 30), age)
    age = np.where(emp_idx == 3, np.clip(age, 60, 90), age)

    income_shift = INCOME_LOG_SHIFT * np.clip(
        (d - INCOME_DRIFT_START) / (INCOME_DRIFT_END - INCOME_DRIFT_START), 0.0, 1.0
    )
    # Features derived from income and utilization use their undrifted values, so that
    # exactly the documented features drift (no drift propagates to credit_limit,
    # debt_to_income or num_late_payments).
    base_income = rng.lognormal(np.log(55_000.0), 0.45, n) * np.asarray(EMPLOYMENT_INCOME)[emp_idx]
    income = np.round(base_income * np.exp(income_shift), 2)

    dti = rng.gamma(2.5, 0.12, n) * (55_000.0 / np.maximum(base_income, 1_000.0)) ** 0.25
    dti = np.round(np.clip(dti, 0.0, 3.0), 4)

    credit_limit = np.round(base_income * rng.lognormal(np.log(0.22), 0.35, n) / 100.0) * 100.0
    credit_limit = np.maximum(credit_limit, 500.0)

    util_base = rng.beta(2.0, 5.0, n)
    util_drift = rng.beta(3.5, 3.5, n)
    utilization = np.where(d >= UTILIZATION_SHIFT_DAY, util_drift, util_base)
    utilization = np.round(np.clip(utilization, 0.0, 1.0), 4)

    late_lam = 0.25 + 1.2 * util_base + 0.5 * (emp_idx == 2)
    num_late = rng.poisson(late_lam).astype(np.int64)

    acct = np.rint(rng.gamma(2.2, 28.0, n)).astype(np.int64)
    account_age = np.minimum(acct, (age - 18) * 12 + 1).astype(np.int64)

    # Weekly cycle based on absolute time so the phase is continuous.
    amp = 0.15 + 0.60 * np.clip(d / 59.0, 0.0, 1.0)
    amp = np.where(d < 0, 0.15, amp)
    phase = 2.0 * np.pi * ((offset_us / _US_PER_DAY) % 7.0) / 7.0
    txn = rng.lognormal(np.log(80.0), 0.8, n) * (1.0 + amp * np.sin(phase))
    txn = np.round(np.maximum(txn, 0.5), 2)

    region_idx = rng.choice(len(REGIONS), size=n, p=REGION_P)
    ch_base = rng.choice(len(CHANNELS), size=n, p=CHANNEL_P)
    ch_drift = rng.choice(len(CHANNELS), size=n, p=CHANNEL_P_DRIFT)
    channel_idx = np.where(d >= CHANNEL_SHIFT_DAY, ch_drift, ch_base)

    return {
        "age": age,
        "income": income,
        "debt_to_income": dti,
        "credit_limit": credit_limit,
        "utilization": utilization,
        "num_late_payments": num_late,
        "account_age_months": account_age,
        "transaction_amount": txn,
        "employment": emp_idx,
        "region": region_idx,
        "channel": channel_idx,
    }


def _true_default(
    rng: np.random.Generator, f: dict[str, np.ndarray], concept: np.ndarray
) -> np.ndarray:
    """Draw the true ``default`` label; ``concept`` marks post-drift rows."""
    dti = f["debt_to_income"]
    util = f["utilization"]
    late = f["num_late_payments"]
    demo = (
        np.asarray(EMPLOYMENT_RISK)[f["employment"]]
        - 0.012 * (f["age"] - 42.0)
        - 0.004 * (f["account_age_months"] - 60.0)
    )
    before = (
        -3.0
        + demo
        - 0.75 * np.log(f["income"] / 55_000.0)
        + np.asarray(REGION_RISK)[f["region"]]
        + np.asarray(CHANNEL_RISK)[f["channel"]]
        + 3.2 * (dti - 0.3)
        + 2.2 * (util - 0.29)
        + 0.45 * late
    )
    # Concept drift: debt_to_income dominates (with a kink above 0.45);
    # income, utilization, late payments, region and channel stop mattering.
    after = -2.6 + 0.2 * demo - 0.5 * (dti - 0.3) + 12.0 * np.maximum(dti - 0.45, 0.0)
    logit = np.where(concept, after, before)
    p = 1.0 / (1.0 + np.exp(-logit))
    return (rng.random(dti.size) < p).astype(np.int64)


def _corrupt_serving(
    rng: np.random.Generator, f: dict[str, np.ndarray], day: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Inject data-quality issues; returns features, employment and region masks.

    The returned masks flag rows whose employment is the unseen category and
    rows whose region is null.
    """
    out = {k: v.copy() for k, v in f.items()}
    n = day.size
    u = rng.random((5, n))

    dti = out["debt_to_income"].astype(np.float64)
    dti[np.isin(day, NAN_DTI_DAYS) & (u[0] < 0.04)] = np.nan
    out["debt_to_income"] = dti

    age = out["age"]
    on_bad_day = day == BAD_AGE_DAY
    age[on_bad_day & (u[1] < 0.015)] = -1
    age[on_bad_day & (u[1] >= 0.015) & (u[1] < 0.03)] = 150
    out["age"] = age

    cl = out["credit_limit"]
    cl[(day == INF_CREDIT_LIMIT_DAY) & (u[2] < 0.02)] = np.inf
    out["credit_limit"] = cl

    unseen = (day >= UNSEEN_EMPLOYMENT_DAY) & (u[3] < 0.06)
    region_null = u[4] < 0.003
    return out, unseen, region_null


def _feature_table(
    ids: list[str],
    ts_us: np.ndarray,
    f: dict[str, np.ndarray],
    unseen: np.ndarray | None = None,
    region_null: np.ndarray | None = None,
) -> pa.Table:
    """Build the Arrow feature table from numeric arrays and category codes."""
    emp = np.asarray(EMPLOYMENT, dtype=object)[f["employment"]]
    if unseen is not None:
        emp = np.where(unseen, UNSEEN_EMPLOYMENT, emp)
    region = np.asarray(REGIONS, dtype=object)[f["region"]]
    channel = np.asarray(CHANNELS, dtype=object)[f["channel"]]

    columns: dict[str, pa.Array] = {
        "example_id": pa.array(ids, type=pa.string()),
        "ts": pa.array(ts_us, type=pa.int64()).cast(_TS_TYPE),
    }
    for name in NUMERIC_FEATURES:
        typ = pa.int64() if name in INT_FEATURES else pa.float64()
        columns[name] = pa.array(f[name], type=typ)
    columns["employment"] = pa.array(emp, type=pa.string())
    columns["region"] = pa.array(region, type=pa.string(), mask=region_null)
    columns["channel"] = pa.array(channel, type=pa.string())
    return pa.table(columns)


# --------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------


def _label_table(ids: np.ndarray, labels: np.ndarray, ts_us: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "example_id": pa.array(ids.tolist(), type=pa.string()),
            "label": pa.array(labels.astype(np.int64), type=pa.int64()),
            "ts": pa.array(ts_us.astype(np.int64), type=pa.int64()).cast(_TS_TYPE),
        }
    )


def _label_batches(
    rng: np.random.Generator,
    ids: np.ndarray,
    labels: np.ndarray,
    pred_ts_us: np.ndarray,
    start_us: int,
    days: int,
) -> list[pa.Table]:
    """Simulate late, partial label arrival plus a final batch of corrections."""
    n = ids.size
    gets_label = rng.random(n) < LABEL_FRACTION
    delay_days = 2.0 + np.minimum(rng.lognormal(np.log(2.0), 0.6, n), 8.0)
    arrival = pred_ts_us + np.rint(delay_days * _US_PER_DAY).astype(np.int64)
    end_us = start_us + days * _US_PER_DAY
    keep = gets_label & (arrival < end_us)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(arrival[idx], kind="stable")]
    if idx.size == 0:
        return []
    arr_day = (arrival[idx] - start_us) // _US_PER_DAY
    last_day = int(arr_day[-1])

    earlier = idx[arr_day < last_day]
    n_corr = min(N_CORRECTIONS, earlier.size)
    corr = np.sort(rng.choice(earlier, size=n_corr, replace=False))
    corr_ts = start_us + last_day * _US_PER_DAY + rng.integers(0, _US_PER_DAY, size=n_corr)

    batches: list[pa.Table] = []
    for day in np.unique(arr_day):
        sel = idx[arr_day == day]
        b_ids, b_lab, b_ts = ids[sel], labels[sel], arrival[sel]
        if day == last_day and n_corr:
            b_ids = np.concatenate([b_ids, ids[corr]])
            b_lab = np.concatenate([b_lab, 1 - labels[corr]])
            b_ts = np.concatenate([b_ts, corr_ts])
            order = np.argsort(b_ts, kind="stable")
            b_ids, b_lab, b_ts = b_ids[order], b_lab[order], b_ts[order]
        batches.append(_label_table(b_ids, b_lab, b_ts))
    return batches
