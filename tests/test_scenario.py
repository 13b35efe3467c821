"""Tests for the synthetic credit-default monitoring scenario."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from evalstore.demo.scenario import Scenario, credit_default_scenario

US_PER_DAY = 86_400_000_000
FEATURE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("age", pa.int64()),
        ("income", pa.float64()),
        ("debt_to_income", pa.float64()),
        ("credit_limit", pa.float64()),
        ("utilization", pa.float64()),
        ("num_late_payments", pa.int64()),
        ("account_age_months", pa.int64()),
        ("transaction_amount", pa.float64()),
        ("employment", pa.string()),
        ("region", pa.string()),
        ("channel", pa.string()),
    ]
)
PREDICTION_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("score", pa.float64()),
        ("prediction", pa.int64()),
        ("latency_ms", pa.float64()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("label", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
    ]
)


@pytest.fixture(scope="module")
def scn() -> Scenario:
    return credit_default_scenario()


def _ts_us(table: pa.Table) -> np.ndarray:
    return table.column("ts").cast(pa.int64()).to_numpy()


def _start_us(s: Scenario) -> int:
    return int(s.start.timestamp()) * 1_000_000


def _day(s: Scenario, table: pa.Table) -> np.ndarray:
    return (_ts_us(table) - _start_us(s)) // US_PER_DAY


def _col(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def _ids(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("example_id").to_pylist(), dtype=object)


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Rank-based (Mann-Whitney) AUC with average ranks for ties."""
    order = np.argsort(score, kind="stable")
    sorted_scores = score[order]
    ranks = np.empty(score.size)
    ranks[order] = np.arange(1, score.size + 1)
    _, inverse, counts = np.unique(sorted_scores, return_inverse=True, return_counts=True)
    if np.any(counts > 1):
        sums = np.bincount(inverse, weights=np.arange(1, score.size + 1))
        ranks[order] = (sums / counts)[inverse]
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _latest_labels(s: Scenario) -> dict[str, int]:
    """Latest label per example (corrections override earlier labels)."""
    out: dict[str, int] = {}
    for batch in s.label_batches:
        for eid, label in zip(
            batch.column("example_id").to_pylist(), batch.column("label").to_pylist(), strict=True
        ):
            out[eid] = label
    return out


def _all_tables(s: Scenario) -> list[pa.Table]:
    return [
        s.training,
        s.validation,
        s.serving,
        s.reference_labels,
        *[s.predictions[v] for v in sorted(s.predictions)],
        *s.label_batches,
    ]


# ---------------------------------------------------------------- determinism


def test_same_seed_is_byte_identical(scn: Scenario) -> None:
    again = credit_default_scenario(seed=7)
    assert again.versions == scn.versions
    assert again.drift_notes == scn.drift_notes
    assert again.start == scn.start
    assert len(again.label_batches) == len(scn.label_batches)
    for a, b in zip(_all_tables(scn), _all_tables(again), strict=True):
        # Table.equals treats NaN != NaN, so compare the serialized bytes.
        assert a.schema.equals(b.schema)
        assert _ipc_bytes(a) == _ipc_bytes(b)
    assert scn.training.equals(again.training)


def test_different_seed_differs(scn: Scenario) -> None:
    other = credit_default_scenario(seed=8)
    assert not other.serving.equals(scn.serving)
    assert not other.training.equals(scn.training)
    assert not other.predictions["v1"].equals(scn.predictions["v1"])


def test_small_configuration() -> None:
    s = credit_default_scenario(
        seed=1, days=10, rows_per_day=50, training_rows=500, validation_rows=100
    )
    assert s.serving.num_rows == 500
    assert s.training.num_rows == 500
    assert s.validation.num_rows == 100
    assert s.predictions["v1"].num_rows == 500
    assert s.predictions["v2"].num_rows == 0
    assert set(_day(s, s.serving).tolist()) == set(range(10))


# ------------------------------------------------------------ shape & schema


def test_schemas(scn: Scenario) -> None:
    assert scn.model == "credit_default"
    for table in (scn.training, scn.validation, scn.serving):
        assert table.schema.equals(FEATURE_SCHEMA)
    assert set(scn.predictions) == {"v1", "v2"}
    for table in scn.predictions.values():
        assert table.schema.equals(PREDICTION_SCHEMA)
    assert scn.reference_labels.schema.equals(LABEL_SCHEMA)
    assert scn.label_batches
    for batch in scn.label_batches:
        assert batch.schema.equals(LABEL_SCHEMA)
    assert scn.training.num_rows == 20000
    assert scn.validation.num_rows == 5000
    assert scn.serving.num_rows == 60 * 1500


def test_versions_metadata(scn: Scenario) -> None:
    by_version = {v["version"]: v for v in scn.versions}
    assert set(by_version) == {"v1", "v2"}
    v1, v2 = by_version["v1"], by_version["v2"]
    assert v1["stage"] == "production" and v2["stage"] == "shadow"
    for v in (v1, v2):
        assert v["model"] == "credit_default"
        assert v["task"] == "binary"
        assert v["classes"] == [0, 1] and v["positive_class"] == 1
        assert v["training_dataset"] == "train_2026_08"
        assert v["trained_at"].tzinfo is not None
        assert v["trained_at"] < v["deployed_at"]
        assert "features" in v["params"] and "C" in v["params"]
        threshold = v["threshold"]
        pred = scn.predictions[v["version"]]
        expected = (_col(pred, "score") >= threshold).astype(np.int64)
        np.testing.assert_array_equal(_col(pred, "prediction"), expected)
    assert v1["deployed_at"] <= scn.start
    assert v2["deployed_at"] == scn.start + timedelta(days=30)
    assert v1["dependencies"] != v2["dependencies"]
    assert set(scn.drift_notes) >= {
        "income",
        "utilization",
        "transaction_amount",
        "channel",
        "debt_to_income",
    }


def test_example_ids_unique_across_envs(scn: Scenario) -> None:
    ids = np.concatenate([_ids(scn.training), _ids(scn.validation), _ids(scn.serving)])
    assert len(set(ids.tolist())) == ids.size
    assert all(i.startswith("trn-") for i in _ids(scn.training)[:10])
    assert all(i.startswith("val-") for i in _ids(scn.validation)[:10])
    assert all(i.startswith("srv-") for i in _ids(scn.serving)[:10])
    ref = set(_ids(scn.reference_labels).tolist())
    assert ref == set(_ids(scn.training).tolist()) | set(_ids(scn.validation).tolist())


def test_time_ranges(scn: Scenario) -> None:
    assert scn.start.tzinfo is not None
    serving_day = _day(scn, scn.serving)
    assert serving_day.min() == 0 and serving_day.max() == 59
    np.testing.assert_array_equal(np.bincount(serving_day), np.full(60, 1500))
    assert np.all(np.diff(_ts_us(scn.serving)) >= 0)
    trn_day = _day(scn, scn.training)
    val_day = _day(scn, scn.validation)
    assert trn_day.min() >= -74 and trn_day.max() < -14
    assert val_day.min() >= -14 and val_day.max() < 0
    assert _ts_us(scn.training).max() < _ts_us(scn.validation).min()


def test_clean_reference_data(scn: Scenario) -> None:
    for table in (scn.training, scn.validation):
        assert table.column("region").null_count == 0
        age = _col(table, "age")
        assert age.min() >= 18 and age.max() <= 90
        for name in ("income", "debt_to_income", "credit_limit", "transaction_amount"):
            assert np.all(np.isfinite(_col(table, name)))
        util = _col(table, "utilization")
        assert util.min() >= 0 and util.max() <= 1
        assert "gig_worker" not in set(table.column("employment").to_pylist())
    rate = _col(scn.reference_labels, "label").mean()
    assert 0.08 <= rate <= 0.18


# --------------------------------------------------------------------- drift


def test_income_gradual_drift(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    income = _col(scn.serving, "income")
    first, last = income[day < 7], income[day >= 53]
    assert last.mean() > 1.15 * first.mean()
    # Welch-style z statistic on log income: clearly significant.
    lf, ll = np.log(first), np.log(last)
    z = (ll.mean() - lf.mean()) / np.sqrt(lf.var() / lf.size + ll.var() / ll.size)
    assert z > 10
    # Gradual: no shift before day 20, intermediate level around day 40.
    mid = np.log(income[(day >= 38) & (day < 42)]).mean()
    pre = np.log(income[(day >= 10) & (day < 20)]).mean()
    assert abs(pre - lf.mean()) < 0.03
    assert lf.mean() + 0.05 < mid < ll.mean() - 0.05


def test_utilization_jump_at_day_35(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    util = _col(scn.serving, "utilization")
    daily = np.array([util[day == d].mean() for d in range(60)])
    assert daily[35] - daily[34] > 0.15
    assert np.ptp(daily[:35]) < 0.05
    assert np.ptp(daily[35:]) < 0.05
    assert util.min() >= 0 and util.max() <= 1


def test_channel_mix_changes_at_day_40(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    mobile = np.asarray(scn.serving.column("channel").to_pylist()) == "mobile"
    before, after = mobile[(day >= 30) & (day < 40)].mean(), mobile[day >= 40].mean()
    assert 0.3 < before < 0.4
    assert after > before + 0.2


def test_transaction_amount_weekly_pattern_intensifies(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    amount = _col(scn.serving, "transaction_amount")
    daily = np.array([np.median(amount[day == d]) for d in range(60)])
    early = np.ptp(daily[:14]) / daily[:14].mean()
    late = np.ptp(daily[-14:]) / daily[-14:].mean()
    assert late > 2 * early
    # Periodic with period 7: days a week apart look alike in the last weeks.
    assert np.corrcoef(daily[-21:-7], daily[-14:])[0, 1] > 0.8


# --------------------------------------------------------------- corruption


def test_nan_debt_to_income_on_days_50_51(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    dti = _col(scn.serving, "debt_to_income")
    nan_days = set(day[np.isnan(dti)].tolist())
    assert nan_days == {50, 51}
    assert np.isnan(dti[day == 50]).sum() >= 10


def test_out_of_range_age_on_day_52(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    age = _col(scn.serving, "age")
    bad = (age < 18) | (age > 90)
    assert set(day[bad].tolist()) == {52}
    assert (age[day == 52] < 0).sum() > 0
    assert (age[day == 52] == 150).sum() > 0


def test_inf_credit_limit_on_day_53(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    limit = _col(scn.serving, "credit_limit")
    assert set(day[np.isinf(limit)].tolist()) == {53}
    assert np.all(limit[np.isinf(limit)] > 0)
    assert not np.isnan(limit).any()


def test_unseen_employment_from_day_55(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    gig = np.asarray(scn.serving.column("employment").to_pylist()) == "gig_worker"
    assert day[gig].min() == 55
    assert set(day[gig].tolist()) == set(range(55, 60))


def test_region_nulls_throughout(scn: Scenario) -> None:
    region = scn.serving.column("region")
    assert 0 < region.null_count < 0.01 * scn.serving.num_rows
    day = _day(scn, scn.serving)
    null_days = day[np.asarray(region.is_null().to_pylist())]
    assert null_days.min() < 10 and null_days.max() >= 50


# --------------------------------------------------------------- predictions


def test_v1_scores_everything_v2_only_from_day_30(scn: Scenario) -> None:
    v1, v2 = scn.predictions["v1"], scn.predictions["v2"]
    assert _ids(v1).tolist() == _ids(scn.serving).tolist()
    day = _day(scn, scn.serving)
    expected = _ids(scn.serving)[day >= 30]
    assert _ids(v2).tolist() == expected.tolist()
    assert _day(scn, v2).min() == 30
    for pred in (v1, v2):
        score = _col(pred, "score")
        assert np.all(np.isfinite(score))
        assert score.min() >= 0 and score.max() <= 1
        assert np.all(_col(pred, "latency_ms") > 0)
    assert np.median(_col(v2, "latency_ms")) > np.median(_col(v1, "latency_ms"))


def test_prediction_ts_shortly_after_serving_ts(scn: Scenario) -> None:
    serving_ts = dict(zip(_ids(scn.serving).tolist(), _ts_us(scn.serving).tolist(), strict=True))
    for pred in scn.predictions.values():
        base = np.array([serving_ts[i] for i in _ids(pred).tolist()])
        lag_ms = (_ts_us(pred) - base) / 1000.0
        assert lag_ms.min() > 0 and lag_ms.max() < 2000


def test_corrupted_rows_still_scored(scn: Scenario) -> None:
    day = _day(scn, scn.serving)
    score = _col(scn.predictions["v1"], "score")
    assert np.all(np.isfinite(score[(day >= 50) & (day <= 55)]))


# -------------------------------------------------------------------- labels


def test_label_coverage(scn: Scenario) -> None:
    labels = pa.concat_tables(scn.label_batches)
    unique = set(labels.column("example_id").to_pylist())
    assert unique <= set(_ids(scn.serving).tolist())
    coverage = len(unique) / scn.serving.num_rows
    assert 0.4 <= coverage <= 0.8


def test_label_ts_after_prediction_ts(scn: Scenario) -> None:
    labels = pa.concat_tables(scn.label_batches)
    label_ts = _ts_us(labels)
    label_ids = _ids(labels).tolist()
    end_us = _start_us(scn) + 60 * US_PER_DAY
    assert label_ts.max() < end_us
    for pred in scn.predictions.values():
        pred_ts = dict(zip(_ids(pred).tolist(), _ts_us(pred).tolist(), strict=True))
        pairs = [(t, pred_ts[i]) for i, t in zip(label_ids, label_ts, strict=True) if i in pred_ts]
        assert pairs
        delay = np.array([a - b for a, b in pairs])
        assert delay.min() > 0
    v1_ts = dict(
        zip(_ids(scn.predictions["v1"]).tolist(), _ts_us(scn.predictions["v1"]), strict=True)
    )
    delay_days = (label_ts - np.array([v1_ts[i] for i in label_ids])) / US_PER_DAY
    assert delay_days.min() >= 2 and np.median(delay_days) < 10


def test_batches_grouped_by_arrival_day(scn: Scenario) -> None:
    batch_days = []
    for batch in scn.label_batches:
        days = set(_day(scn, batch).tolist())
        assert len(days) == 1
        assert np.all(np.diff(_ts_us(batch)) >= 0)
        batch_days.append(days.pop())
    assert batch_days == sorted(batch_days)
    assert len(set(batch_days)) == len(batch_days)
    assert batch_days[-1] == 59


def test_corrections_flip_earlier_labels(scn: Scenario) -> None:
    earlier: dict[str, tuple[int, int]] = {}
    for batch in scn.label_batches[:-1]:
        for eid, label, ts in zip(_ids(batch), _col(batch, "label"), _ts_us(batch), strict=True):
            assert eid not in earlier  # no duplicates before the last batch
            earlier[eid] = (int(label), int(ts))
    last = scn.label_batches[-1]
    corrections = 0
    for eid, label, ts in zip(_ids(last), _col(last, "label"), _ts_us(last), strict=True):
        if eid in earlier:
            corrections += 1
            old_label, old_ts = earlier[eid]
            assert label == 1 - old_label
            assert ts > old_ts
    assert 40 <= corrections <= 60
    assert len(set(_ids(last).tolist())) == last.num_rows


def test_v1_auc_good_then_degrades_after_concept_drift(scn: Scenario) -> None:
    latest = _latest_labels(scn)
    pred = scn.predictions["v1"]
    ids = _ids(pred).tolist()
    day = _day(scn, scn.serving)
    has = np.array([i in latest for i in ids])
    y = np.array([latest.get(i, -1) for i in ids])
    score = _col(pred, "score")
    early = has & (day < 30)
    late = has & (day >= 45)
    auc_early = _auc(y[early], score[early])
    auc_late = _auc(y[late], score[late])
    assert 0.7 <= auc_early <= 0.9
    assert auc_late < auc_early - 0.03
    base_rate = y[early].mean()
    assert 0.08 <= base_rate <= 0.2


def test_auc_helper() -> None:
    y = np.array([0, 0, 1, 1])
    assert _auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert _auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert _auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
