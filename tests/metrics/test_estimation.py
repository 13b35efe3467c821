"""store.estimate_performance: CBPE (binary, multiclass) and DLE (regression).

Calibration against scikit-learn's IsotonicRegression, expected confusion counts and the
estimated ROC AUC against numpy hand computations, coverage of the realized 95% interval
on data whose labels are drawn from the calibrated scores, the divergence flag under
concept drift, DLE against realized errors, errors by type and message, empty windows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import auc as sk_auc

from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation.calibration import fit_isotonic, pav
from evalstore.metrics.estimation.estimate import (
    ESTIMATE_ONLY,
    ESTIMATED_METRICS,
    NoReferenceError,
)
from evalstore.metrics.estimation.loss_model import LossModel
from evalstore.metrics.specs import PERFORMANCE_METRICS
from tests.conftest import blank_store

DAY = np.timedelta64(86400, "s")
START = np.datetime64("2026-03-02T00:00:00")  # a Monday


def _times(days: int, per_day: int) -> pa.Array:
    offsets = (np.arange(days * per_day) * (86400 // per_day)).astype("timedelta64[s]")
    return pa.array(START + offsets, pa.timestamp("s", "UTC"))


def _truth(score: np.ndarray) -> np.ndarray:
    """The true P(y = 1 | score) of the binary fixtures: the score is miscalibrated."""
    return score**1.5


@pytest.fixture(scope="module")
def binary_store():
    """30 days x 300 predictions; labels drawn from _truth(score) up to day 20, then
    from a flat 0.3 (concept drift: the score stops meaning anything); days 27+ unlabeled.
    A few logged predictions disagree with score >= 0.5 (decided at another cut-off)."""
    rng = np.random.default_rng(7)
    days, per_day = 30, 300
    n = days * per_day
    score = np.round(rng.uniform(size=n), 3)  # ties
    day = np.arange(n) // per_day
    p = np.where(day < 20, _truth(score), 0.3)
    y = (rng.uniform(size=n) < p).astype(int)
    prediction = np.where(score >= 0.55, 1, 0)
    ids = [f"e{i}" for i in range(n)]
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    ts = _times(days, per_day)
    x = rng.normal(size=n)
    store.log_features("m", pa.table({"example_id": ids, "x": x, "ts": ts}))
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": score, "prediction": prediction, "ts": ts}),
        version="v1",
    )  # fmt: skip
    # v2 scores only the last week: no labeled reference rows in the first week
    late = day >= 23
    store.log_predictions(
        "m",
        pa.table({"example_id": pa.array(ids).filter(pa.array(late)), "score": score[late],
                  "ts": ts.filter(pa.array(late))}),
        version="v2",
    )  # fmt: skip
    labeled = day < 27
    store.log_labels(
        "m",
        pa.table(
            {"example_id": [i for i, k in zip(ids, labeled, strict=True) if k], "label": y[labeled]}
        ),
    )
    data = {"score": score, "prediction": prediction, "day": day, "y": y, "x": x}
    yield store, data
    store.close()


REFERENCE = (str(START), str(START + 7 * DAY))


@pytest.fixture(scope="module")
def daily(binary_store):
    store, _ = binary_store
    return store.estimate_performance("m", window="1 day", version="v1", reference=REFERENCE)


# ---------------------------------------------------------------------- calibration


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isotonic_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(size=500), 2)  # many ties
    labels = (rng.uniform(size=500) < scores**2).astype(float)
    fit = fit_isotonic(scores, labels)
    reference = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, labels)
    probes = np.r_[scores, rng.uniform(-0.2, 1.2, size=200), 0.0, 1.0]
    np.testing.assert_allclose(fit(probes), reference.predict(probes), rtol=0, atol=1e-12)


def test_pav_weighted_equals_sklearn_and_single_value():
    rng = np.random.default_rng(3)
    y, w = rng.normal(size=60), rng.uniform(0.5, 2, size=60)
    expected = IsotonicRegression().fit(np.arange(60), y, sample_weight=w).predict(np.arange(60))
    np.testing.assert_allclose(pav(y, w), expected, atol=1e-12)
    one = fit_isotonic(np.array([0.4, 0.4, np.nan]), np.array([1.0, 0.0, 1.0]))
    assert one(np.array([0.0, 0.4, 0.9])).tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="no finite scores"):
        fit_isotonic(np.array([np.nan]), np.array([1.0]))


# ---------------------------------------------------------------------- CBPE binary


def test_estimated_metrics_are_performance_metrics_of_their_task():
    for task, names in ESTIMATED_METRICS.items():
        for name in names:
            if name not in ESTIMATE_ONLY.get(task, ()):
                assert task in PERFORMANCE_METRICS[name].tasks, (task, name)
            else:  # said so: no realized counterpart
                assert task not in PERFORMANCE_METRICS[name].tasks, (task, name)


def _hand_counts(score, prediction, p):
    return {
        "tp": np.sum(p * prediction),
        "fp": np.sum((1 - p) * prediction),
        "fn": np.sum(p * (1 - prediction)),
        "tn": np.sum((1 - p) * (1 - prediction)),
    }


def _nannyml_auc(calibrated, raw):
    """NannyML's estimate_roc_auc without its rounding, on tie-free scores."""
    order = np.argsort(raw)[::-1]
    tps = np.r_[0, np.cumsum(calibrated[order])]
    fps = np.r_[0, np.cumsum(1 - calibrated[order])]
    return sk_auc(fps / fps[-1], tps / tps[-1])


def test_expected_confusion_matrix_and_rates_by_hand(binary_store, daily):
    _, data = binary_store
    ref = data["day"] < 7
    fit = IsotonicRegression(out_of_bounds="clip").fit(data["score"][ref], data["y"][ref])
    rows = daily.to_pylist()
    for day in (3, 25, 29):
        mine = data["day"] == day
        p = fit.predict(data["score"][mine])
        counts = _hand_counts(data["score"][mine], data["prediction"][mine], p)
        got = {r["metric"]: r for r in rows if r["window_start"].day == 2 + day}
        for name, value in counts.items():
            assert got[name]["value"] == pytest.approx(value, rel=1e-12)
        tp, fp, fn, tn = (counts[k] for k in ("tp", "fp", "fn", "tn"))
        assert got["accuracy"]["value"] == pytest.approx((tp + tn) / mine.sum(), rel=1e-12)
        assert got["precision"]["value"] == pytest.approx(tp / (tp + fp), rel=1e-12)
        assert got["recall"]["value"] == pytest.approx(tp / (tp + fn), rel=1e-12)
        assert got["specificity"]["value"] == pytest.approx(tn / (tn + fp), rel=1e-12)
        assert got["f1"]["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
        # accuracy's band: Poisson-binomial sd of the correct count
        sd = np.sqrt(np.sum(p * (1 - p))) / mine.sum()
        assert got["accuracy"]["ci_high"] - got["accuracy"]["value"] == pytest.approx(
            1.959963984540054 * sd, rel=1e-9
        )
        assert got["accuracy"]["n"] == mine.sum() and got["accuracy"]["estimated"] is True


def test_roc_auc_equals_nannyml_formula_without_ties():
    rng = np.random.default_rng(11)
    n = 400
    score = rng.uniform(size=n)  # no ties
    y = (rng.uniform(size=n) < score).astype(int)
    store = blank_store()
    store.register_model("a", "v1", "binary")
    ids = [f"r{i}" for i in range(n)]
    ts = _times(2, n // 2)
    store.log_predictions("a", pa.table({"example_id": ids, "score": score, "ts": ts}), "v1")
    store.log_labels("a", pa.table({"example_id": ids[: n // 2], "label": y[: n // 2]}))
    table = store.estimate_performance(
        "a", metrics=["roc_auc"], window="1 day", reference=(str(START), str(START + DAY))
    )
    fit = IsotonicRegression(out_of_bounds="clip").fit(score[: n // 2], y[: n // 2])
    second = slice(n // 2, n)
    expected = _nannyml_auc(fit.predict(score[second]), score[second])
    assert table.column("value")[1].as_py() == pytest.approx(expected, rel=1e-12)
    store.close()


def test_roc_auc_with_ties_counts_a_tie_group_as_one_step():
    """Tied scores: one trapezoid per distinct score, whatever the rows' order."""
    store = blank_store()
    store.register_model("t", "v1", "binary")
    score = np.array([0.2, 0.2, 0.5, 0.5, 0.5, 0.9, 0.9, 0.1])
    ids = [f"r{i}" for i in range(8)]
    ts = _times(1, 8)
    store.log_predictions("t", pa.table({"example_id": ids, "score": score, "ts": ts}), "v1")
    store.log_labels("t", pa.table({"example_id": ids, "label": [0, 1, 0, 1, 1, 1, 0, 0]}))
    table = store.estimate_performance(
        "t", metrics=["roc_auc"], window="1 day", reference=(str(START), str(START + DAY)),
        calibration="none", reference_chunks=4,
    )  # fmt: skip
    p, q = score, 1 - score
    area, above = 0.0, 0.0
    for s in sorted(set(score), reverse=True):  # sum_g q_g (p_above + p_g / 2)
        group = score == s
        area += q[group].sum() * (above + p[group].sum() / 2)
        above += p[group].sum()
    assert table.column("value")[0].as_py() == pytest.approx(area / (p.sum() * q.sum()), 1e-12)
    store.close()


def test_estimate_within_realized_interval_while_the_relationship_holds(daily):
    rows = [r for r in daily.to_pylist() if r["window_start"].day < 2 + 20]
    for metric in ("roc_auc", "f1", "accuracy"):
        chosen = [r for r in rows if r["metric"] == metric]
        inside = [r["realized_ci_low"] <= r["value"] <= r["realized_ci_high"] for r in chosen]
        assert len(chosen) == 20 and np.mean(inside) >= 0.9, (metric, inside)
        assert np.mean([not r["diverged"] for r in chosen]) >= 0.9


def test_concept_drift_diverges_and_alerts(daily):
    drifted = [
        r
        for r in daily.to_pylist()
        if r["metric"] == "roc_auc" and 22 <= r["window_start"].day < 29
    ]
    assert drifted and all(r["diverged"] for r in drifted)
    assert all(r["realized"] < r["threshold_low"] for r in drifted)
    # the estimate itself does not see concept drift: no alert from it
    assert not any(r["alert"] for r in drifted)


def test_unlabeled_windows_have_an_estimate_and_no_realized(daily):
    last = [r for r in daily.to_pylist() if r["window_start"].day >= 2 + 27]
    assert last and all(r["realized"] is None and r["diverged"] is None for r in last)
    assert all(r["value"] is not None and r["labeled"] == 0 for r in last)


def test_thresholds_learned_on_reference_chunks(binary_store, daily):
    store, _ = binary_store
    chunks = store.estimate_performance(
        "m", metrics=["accuracy"], window={"chunks": 10}, version="v1",
        since=REFERENCE[0], until=REFERENCE[1], reference=REFERENCE,
    )  # fmt: skip
    values = np.array(chunks.column("value").to_pylist())
    row = next(r for r in daily.to_pylist() if r["metric"] == "accuracy")
    assert row["threshold_low"] == pytest.approx(values.mean() - 3 * values.std(), rel=1e-9)
    assert row["threshold_high"] == pytest.approx(
        min(values.mean() + 3 * values.std(), 1.0), rel=1e-9
    )
    counts = [r for r in daily.to_pylist() if r["metric"] == "tp"]
    assert all(r["threshold_low"] is None and r["alert"] is None for r in counts)


def test_version_without_labeled_reference_has_a_reason(binary_store):
    store, _ = binary_store
    table = store.estimate_performance(
        "m", metrics=["accuracy"], window="7 days", reference=REFERENCE
    )
    v2 = [r for r in table.to_pylist() if r["version"] == "v2"]
    assert v2 and all(r["value"] is None for r in v2)
    assert all("no calibration for this version" in r["reason"] for r in v2)
    with pytest.raises(NoReferenceError, match=r"holds no labeled predictions .* of version 'v2'"):
        store.estimate_performance("m", version="v2", reference=REFERENCE)


def test_empty_window_selection(binary_store):
    store, _ = binary_store
    table = store.estimate_performance(
        "m", window="1 day", reference=REFERENCE, since="2027-01-01", until="2027-01-02"
    )
    assert table.num_rows == 0
    assert {"value", "realized", "diverged", "estimated", "alert"} <= set(table.column_names)


def test_by_feature_and_calibration_none(binary_store):
    store, data = binary_store
    table = store.estimate_performance(
        "m", metrics=["tp"], window="100 years", version="v1", by="x", bins=2,
        reference=REFERENCE, calibration="none",
    )  # fmt: skip
    assert table.column_names[3] == "x" and table.num_rows == 2
    assert (
        table.column("variant")[0]
        .as_py()
        .startswith("CBPE (no calibration: scores taken as probabilities); decision=logged")
    )
    total = sum(table.column("value").to_pylist())
    assert total == pytest.approx(np.sum(data["score"] * data["prediction"]), rel=1e-12)


def test_where_selects_the_rows(binary_store):
    store, data = binary_store
    table = store.estimate_performance(
        "m", metrics=["fn"], window="100 years", version="v1", where="x > 0",
        reference=REFERENCE, calibration="none",
    )  # fmt: skip
    rows = data["x"] > 0
    expected = np.sum(data["score"][rows] * (1 - data["prediction"][rows]))
    assert table.column("value")[0].as_py() == pytest.approx(expected, rel=1e-12)
    assert table.column("n")[0].as_py() == rows.sum()


def test_threshold_what_if_decides_by_score(binary_store):
    store, data = binary_store
    table = store.estimate_performance(
        "m", metrics=["tp", "fp"], window="100 years", version="v1", threshold=0.3,
        reference=REFERENCE, calibration="none",
    )  # fmt: skip
    decided = (data["score"] >= 0.3).astype(float)
    values = dict(zip(table.column("metric").to_pylist(), table.column("value").to_pylist(),
                      strict=True))  # fmt: skip
    assert values["tp"] == pytest.approx(np.sum(data["score"] * decided), rel=1e-12)
    assert values["fp"] == pytest.approx(np.sum((1 - data["score"]) * decided), rel=1e-12)
    assert (
        table.column("variant")[0]
        .as_py()
        .startswith("CBPE (no calibration: scores taken as probabilities); decision=score>=0.3")
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"method": "dle"}, InvalidParameterError, r"method='dle' estimates regression models"),
        ({"method": "x"}, InvalidParameterError, r"method='x' is not an estimation method"),
        ({"metrics": ["mae"]}, InvalidParameterError, r"mae.*not estimated for a binary model"),
        ({"calibration": "platt"}, InvalidParameterError, r"calibration='platt' is not one of"),
        ({"reference": {"previous": 2}}, InvalidParameterError, r"not a labeled reference"),
        ({"reference": "training"}, NoReferenceError, r"reference 'training' holds no labeled"),
        ({"reference_chunks": 1}, InvalidParameterError, r"reference_chunks=1 must be an int"),
    ],
)
def test_errors(binary_store, kwargs, error, message):
    store, _ = binary_store
    arguments = {"reference": REFERENCE, **kwargs}
    with pytest.raises(error, match=message):
        store.estimate_performance("m", **arguments)


# ---------------------------------------------------------------------- CBPE multiclass


def _multiclass_p(data, sample=slice(0, 300)) -> np.ndarray:
    """Calibrated, renormalised probabilities of the second day's rows, the first day's
    rows (or ``sample`` of them) the reference."""
    shown, truth = data["shown"], data["truth"]
    fits = [
        IsotonicRegression(out_of_bounds="clip").fit(shown[sample, i], truth[sample] == i)
        for i in range(3)
    ]
    q = np.column_stack([fits[i].predict(shown[300:, i]) for i in range(3)])
    return q / q.sum(1, keepdims=True)


def test_multiclass_expected_counts_by_hand(multiclass_store):
    store, data = multiclass_store
    table = store.estimate_performance(
        "k", window="1 day", reference=(str(START), str(START + DAY))
    ).to_pylist()
    p = _multiclass_p(data)
    yhat = data["prediction"][300:]
    rows = {(r["metric"], r["class"]): r for r in table if r["window_start"].day == 3}
    assert rows[("accuracy", None)]["value"] == pytest.approx(
        np.mean(p[np.arange(len(yhat)), yhat]), rel=1e-12
    )
    f1s = []
    for i, c in enumerate("abc"):
        tp = np.sum(p[:, i] * (yhat == i))
        fp = np.sum((1 - p[:, i]) * (yhat == i))
        fn = np.sum(p[:, i] * (yhat != i))
        assert rows[("precision", c)]["value"] == pytest.approx(tp / (tp + fp), rel=1e-12)
        assert rows[("recall", c)]["value"] == pytest.approx(tp / (tp + fn), rel=1e-12)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert rows[("macro_f1", None)]["value"] == pytest.approx(np.mean(f1s), rel=1e-12)
    assert rows[("accuracy", None)]["realized"] == pytest.approx(
        np.mean(data["truth"][300:] == yhat), rel=1e-12
    )


# ---------------------------------------------------------------------- DLE


def test_loss_model_is_deterministic_and_learns_heteroscedastic_errors():
    rng = np.random.default_rng(9)
    n = 3000
    x = rng.normal(size=n)
    group = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n)
    scale = np.where(group == "a", 0.2, 1.5) * (1 + np.abs(x))
    target = np.abs(rng.normal(size=n) * scale)
    x_seen = np.where(np.arange(n) % 50 == 0, np.nan, x)  # NaN: a bin of its own
    inputs = {"x": x_seen, "g": group}
    first = LossModel().fit(inputs, target).predict(inputs)
    second = LossModel().fit(inputs, target).predict(inputs)
    assert np.array_equal(first, second) and first.min() >= 0
    expected = scale * np.sqrt(2 / np.pi)  # E|N(0, s^2)|
    assert np.corrcoef(first, expected)[0, 1] > 0.9
    unseen = (
        LossModel()
        .fit(inputs, target)
        .predict({"x": np.array([np.nan, 0.0]), "g": np.array(["zzz", None], dtype=object)})
    )
    assert np.all(np.isfinite(unseen)) and np.all(unseen >= 0)
    many = np.array([f"k{i % 500}" for i in range(n)], dtype=object)  # 500 categories
    model = LossModel(rounds=2).fit({"g": many}, target)
    assert model.encoder.n_bins <= 33 and sorted(set(model.encoder.categories["g"].values())) == (
        list(range(1, 33))
    )


@pytest.fixture(scope="module")
def regression_store():
    """8 days x 250 predictions of y = 2x + noise growing with |x|; the last day unlabeled."""
    rng = np.random.default_rng(4)
    days, per_day = 8, 250
    n = days * per_day
    x = rng.normal(size=n)
    prediction = 2 * x
    y = prediction + rng.normal(size=n) * (0.3 + np.abs(x))
    ids = [f"r{i}" for i in range(n)]
    ts = _times(days, per_day)
    store = blank_store()
    store.register_model("r", "v1", "regression")
    store.log_features("r", pa.table({"example_id": ids, "x": x, "ts": ts}))
    store.log_predictions("r", pa.table({"example_id": ids, "prediction": prediction, "ts": ts}),
                          version="v1")  # fmt: skip
    store.log_labels("r", pa.table({"example_id": ids[:1750], "label": y[:1750]}))
    yield store, {"x": x, "prediction": prediction, "y": y}
    store.close()


def test_dle_regression_against_realized_and_method_errors(regression_store):
    store, _ = regression_store
    reference = (str(START), str(START + 3 * DAY))
    table = store.estimate_performance("r", window="1 day", reference=reference)
    rows = table.to_pylist()
    assert [r["metric"] for r in rows[:3]] == ["mae", "mse", "rmse"]
    for r in rows:
        if r["metric"] == "rmse":
            mse = next(
                s for s in rows if s["metric"] == "mse" and s["window_start"] == r["window_start"]
            )
            assert r["value"] == pytest.approx(np.sqrt(mse["value"]), rel=1e-12)
    later = [r for r in rows if r["realized"] is not None and r["window_start"].day >= 5]
    assert later and np.mean([not r["diverged"] for r in later]) >= 0.9
    last = [r for r in rows if r["window_start"].day == 9]
    assert last and all(r["realized"] is None and r["value"] > 0 for r in last)
    with pytest.raises(InvalidParameterError, match="method='cbpe' estimates classification"):
        store.estimate_performance("r", method="cbpe", reference=reference)
    with pytest.raises(NoReferenceError, match="numeric prediction and label"):
        store.estimate_performance("r", reference=("2020-01-01", "2020-01-02"))


# ---------------------------------------------------------------------- review fixes


def _thresholds_of(chunks: pa.Table, **match: object) -> tuple[float, float]:
    values = np.array(
        [r["value"] for r in chunks.to_pylist() if all(r[k] == v for k, v in match.items())]
    )
    return max(values.mean() - 3 * values.std(), 0.0), min(values.mean() + 3 * values.std(), 1.0)


def test_slices_learn_their_own_thresholds(binary_store):
    """With by=, each slice's range comes from its part of the reference chunks, not
    the whole population's."""
    store, _ = binary_store
    common = {"metrics": ["recall"], "version": "v1", "by": "x", "bins": 2,
              "reference": REFERENCE}  # fmt: skip
    table = store.estimate_performance("m", window="7 days", **common)
    chunks = store.estimate_performance(
        "m", window={"chunks": 10}, since=REFERENCE[0], until=REFERENCE[1], **common
    )
    bins = sorted({r["x"] for r in table.to_pylist()} - {None})
    assert len(bins) == 2
    limits = set()
    for label in bins:
        low, high = _thresholds_of(chunks, x=label)
        rows = [r for r in table.to_pylist() if r["x"] == label]
        assert rows and all(r["threshold_low"] == pytest.approx(low, rel=1e-9) for r in rows)
        assert all(r["threshold_high"] == pytest.approx(high, rel=1e-9) for r in rows)
        limits.add((round(low, 9), round(high, 9)))
    assert len(limits) == 2  # the slices' ranges differ


def test_reference_chunks_need_two_rows_each(binary_store):
    store, _ = binary_store
    eight = (str(START), str(START + np.timedelta64(8 * 288, "s")))  # 8 labeled rows
    with pytest.raises(
        InvalidParameterError,
        match=r"reference_chunks=10 needs at least 20 usable labeled reference rows \(2 per "
        r"chunk\) for each version, and version 'v1' has 8 .*pass reference_chunks=4 or less",
    ):
        store.estimate_performance("m", version="v1", reference=eight)
    table = store.estimate_performance(
        "m", metrics=["accuracy"], window="100 years", version="v1", reference=eight,
        reference_chunks=4,
    )  # fmt: skip
    assert table.column("threshold_low")[0].as_py() is not None


def test_reference_is_bound_not_pasted(binary_store):
    """A dataset tag with a quote reaches the SQL as a value: nothing found, no SQL error."""
    store, _ = binary_store
    with pytest.raises(NoReferenceError, match=r"reference \{'dataset': \"x' OR 1=1 --\"\}"):
        store.estimate_performance("m", reference={"dataset": "x' OR 1=1 --"})
    temps = store.sql(
        "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name LIKE 'evalstore_estimation%'"
    )
    assert temps.column("n")[0].as_py() == 0


@pytest.fixture(scope="module")
def multiclass_store():
    rng = np.random.default_rng(5)
    n, classes = 600, np.array(["a", "b", "c"])
    shown = rng.dirichlet([1, 1, 1], size=n)
    truth = np.array([rng.choice(3, p=row) for row in shown])
    prediction = shown.argmax(1)
    store = blank_store()
    store.register_model("k", "v1", "multiclass", classes=list(classes))
    ids = [f"r{i}" for i in range(n)]
    columns = {c: shown[:, i] for i, c in enumerate(classes)}
    store.log_predictions(
        "k", pa.table({"example_id": ids, "prediction": classes[prediction], **columns,
                       "ts": _times(2, n // 2)}),
        version="v1", probability_columns=list(classes),
    )  # fmt: skip
    store.log_labels("k", pa.table({"example_id": ids, "label": classes[truth]}))
    yield store, {"shown": shown, "truth": truth, "prediction": prediction}
    store.close()


def test_multiclass_reference_is_capped_by_a_seeded_sample(multiclass_store, monkeypatch):
    from evalstore.metrics.estimation import estimate

    store, data = multiclass_store
    monkeypatch.setattr(estimate, "MAX_ROWS", 200)
    table = store.estimate_performance(
        "k", metrics=["accuracy"], window="1 day", reference=(str(START), str(START + DAY))
    ).to_pylist()
    sample = np.sort(np.random.default_rng(0).choice(300, 200, replace=False))  # ts order
    p = _multiclass_p(data, sample)
    yhat = data["prediction"][300:]
    second = next(r for r in table if r["window_start"].day == 3)
    assert second["value"] == pytest.approx(np.mean(p[np.arange(300), yhat]), rel=1e-12)
    assert "a seeded random sample of 200 rows per version and class" in second["variant"]


def test_dle_keeps_its_thresholds_when_since_excludes_the_reference(regression_store):
    store, _ = regression_store
    reference = (str(START), str(START + 3 * DAY))
    whole = store.estimate_performance("r", metrics=["mae"], window="1 day", reference=reference)
    later = store.estimate_performance(
        "r", metrics=["mae"], window="1 day", reference=reference, since=str(START + 5 * DAY)
    )
    assert later.num_rows == 3
    expected = whole.column("threshold_low")[0].as_py()
    assert expected is not None
    assert later.column("threshold_low").to_pylist() == pytest.approx([expected] * 3, rel=1e-12)
    assert later.column("value").to_pylist() == pytest.approx(
        whole.column("value").to_pylist()[5:], rel=1e-12
    )


def test_dle_reads_only_the_selected_rows_in_batches(regression_store, monkeypatch):
    from evalstore.metrics.estimation import estimate

    store, data = regression_store
    monkeypatch.setattr(estimate, "BATCH_ROWS", 97)  # many small batches
    reference = (str(START), str(START + 3 * DAY))
    table = store.estimate_performance(
        "r", metrics=["mae"], window="100 years", reference=reference, where="x > 0.5"
    )
    ref = slice(0, 752)  # the first 3 days: rows 345 s apart
    error = np.abs(data["y"][ref] - data["prediction"][ref])
    model = LossModel().fit(
        {"x": data["x"][ref], "evalstore_prediction": data["prediction"][ref]}, error
    )
    rows = data["x"] > 0.5
    expected = model.predict(
        {"x": data["x"][rows], "evalstore_prediction": data["prediction"][rows]}
    )
    assert table.column("value")[0].as_py() == pytest.approx(expected.mean(), rel=1e-12)
    assert table.column("n")[0].as_py() == rows.sum()


def test_scores_outside_zero_one_are_refused_at_ingest():
    """NaN and infinite scores never reach the estimate: the store refuses them."""
    from evalstore.errors import ValidationError

    store = blank_store()
    store.register_model("s", "v1", "binary")
    with pytest.raises(ValidationError, match=r"'score' has 3 values that are not probabilities"):
        store.log_predictions(
            "s", pa.table({"example_id": ["a", "b", "c", "d"],
                           "score": [np.nan, np.inf, -np.inf, 0.5], "ts": _times(1, 4)}),
            version="v1",
        )  # fmt: skip
    store.close()


def _tiny(score: np.ndarray, labels: np.ndarray):
    store = blank_store()
    store.register_model("t", "v1", "binary")
    n = len(score)
    ids = [f"r{i}" for i in range(n)]
    store.log_predictions("t", pa.table({"example_id": ids, "score": score, "ts": _times(1, n)}),
                          "v1")  # fmt: skip
    store.log_labels("t", pa.table({"example_id": ids, "label": labels}))
    table = store.estimate_performance(
        "t", window="1 day", reference=(str(START), str(START + DAY)), reference_chunks=2
    )
    store.close()
    return {r["metric"]: r for r in table.to_pylist()}


def test_single_valued_score():
    """One distinct score: calibrated p is the reference's positive share everywhere,
    the ROC curve is one step (AUC 0.5)."""
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1])
    rows = _tiny(np.full(8, 0.7), labels)  # every row decided positive (score >= 0.5)
    share = labels.mean()
    assert rows["roc_auc"]["value"] == pytest.approx(0.5, rel=1e-12)
    assert rows["precision"]["value"] == pytest.approx(share, rel=1e-12)
    assert rows["tp"]["value"] == pytest.approx(8 * share, rel=1e-12)
    assert rows["specificity"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert rows["recall"]["value"] == pytest.approx(1.0, rel=1e-12)


def test_single_class_reference_gives_reasons():
    """A reference whose labels are all negative calibrates p = 0: recall, f1 and ROC AUC
    are undefined (a reason each), accuracy and specificity are defined."""
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    rows = _tiny(score, np.zeros(8, dtype=int))
    for metric in ("recall", "f1"):
        assert rows[metric]["value"] is None
        assert rows[metric]["reason"] == (
            f"no expected positives (calibrated p = 0 on every row): {metric} undefined"
        )
    assert rows["roc_auc"]["reason"] == "expected single-class cell: ROC AUC undefined"
    assert rows["accuracy"]["value"] == pytest.approx(0.5, rel=1e-12)  # 4 decided negative
    assert rows["specificity"]["value"] == pytest.approx(0.5, rel=1e-12)
    assert rows["precision"]["value"] == pytest.approx(0.0, abs=1e-12)


def test_multiclass_roc_auc_specificity_and_counts_by_hand(multiclass_store):
    """One-vs-rest ROC AUC from the calibrated p_c ordered by the raw probability
    (NannyML's estimate_roc_auc without its rounding; no ties here) and its macro mean;
    specificity per class and macro; the expected counts per class."""
    store, data = multiclass_store
    table = store.estimate_performance(
        "k", metrics=["roc_auc", "specificity", "tn", "tp"], window="1 day",
        reference=(str(START), str(START + DAY)),
    ).to_pylist()  # fmt: skip
    shown, second = data["shown"], slice(300, 600)
    p = _multiclass_p(data)
    yhat = data["prediction"][second]
    rows = {(r["metric"], r["class"]): r for r in table if r["window_start"].day == 3}
    aucs, specificities = [], []
    for i, c in enumerate("abc"):
        auc = _nannyml_auc(p[:, i], shown[second, i])
        assert rows[("roc_auc", c)]["value"] == pytest.approx(auc, rel=1e-12)
        aucs.append(auc)
        mine = yhat == i
        tp, fp = np.sum(p[mine, i]), np.sum(1 - p[mine, i])
        tn = np.sum(1 - p[~mine, i])
        specificities.append(tn / (tn + fp))
        assert rows[("specificity", c)]["value"] == pytest.approx(specificities[-1], rel=1e-12)
        assert rows[("tn", c)]["value"] == pytest.approx(tn, rel=1e-12)
        assert rows[("tp", c)]["value"] == pytest.approx(tp, rel=1e-12)
        assert rows[("roc_auc", c)]["realized"] is None and rows[("tn", c)]["diverged"] is None
    assert rows[("roc_auc", None)]["value"] == pytest.approx(np.mean(aucs), rel=1e-12)
    assert rows[("specificity", None)]["value"] == pytest.approx(np.mean(specificities), 1e-12)
    assert rows[("roc_auc", None)]["variant"].endswith(
        "band Hanley-McNeil; macro average, classes taken as independent"
    )
    # Hanley-McNeil band of a class's AUC with n_pos = sum p_c, n_neg = sum 1 - p_c
    a, n_pos, n_neg = aucs[0], p[:, 0].sum(), (1 - p[:, 0]).sum()
    var = (a * (1 - a) + (n_pos - 1) * (a / (2 - a) - a * a)
           + (n_neg - 1) * (2 * a * a / (1 + a) - a * a)) / (n_pos * n_neg)  # fmt: skip
    assert rows[("roc_auc", "a")]["ci_high"] - a == pytest.approx(1.959963984540054 * np.sqrt(var))
    assert rows[("roc_auc", "a")]["threshold_low"] is not None
    assert rows[("tn", "a")]["threshold_low"] is None


def test_sql_macro_with_nan_and_infinite_scores():
    """The store refuses such scores, but the SQL macro can be handed any relation: a NaN
    score is left out (n_excluded), +inf and -inf take the calibration's end values."""
    store = blank_store()
    store.register_model("m", "v1", "binary")
    con = store._context().connection
    con.execute(
        "CREATE TEMP TABLE src AS SELECT 'e' || i AS example_id, 'v1' AS version, "
        "TIMESTAMPTZ '2026-03-02 00:00:00+00' + i * INTERVAL 1 MINUTE AS ts, "
        "CAST(NULL AS VARCHAR) AS prediction, s AS score, NULL AS probabilities, "
        "CAST(NULL AS VARCHAR) AS label "
        "FROM (SELECT unnest(range(5)) AS i, unnest(['nan', 'inf', '-inf', '0.3', '0.8']::DOUBLE[])"
        " AS s)"
    )
    con.execute(
        "CREATE TEMP TABLE cal AS SELECT * FROM (VALUES ('v1', '-inf'::DOUBLE, 0.0, 0.0, 0.0), "
        "('v1', 0.0, 1.0, 0.0, 1.0), ('v1', 1.0, 'inf'::DOUBLE, 1.0, 1.0)) "
        "AS t(version, x_lo, x_hi, p_lo, p_hi)"
    )
    rows = con.execute(
        "SELECT metric, value, n, n_excluded FROM evalstore.estimation_binary('temp.main.src', "
        "'temp.main.cal', 'm', NULL, '100 years', NULL, NULL, NULL, NULL, 1.96, NULL, 0.9, "
        "['tp', 'fp', 'fn', 'tn'])"
    ).fetchall()
    got = {metric: (value, n, excluded) for metric, value, n, excluded in rows}
    # p: +inf -> 1, -inf -> 0, 0.3, 0.8; decisions score >= 0.5: +inf, 0.8
    expected = {"tp": 1.8, "fp": 0.2, "fn": 0.3, "tn": 1.7}
    for metric, value in expected.items():
        assert got[metric][0] == pytest.approx(value, rel=1e-12)
        assert got[metric][1:] == (4, 1)
    store.close()
