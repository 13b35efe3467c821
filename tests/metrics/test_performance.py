"""Sliced performance (sql/performance.sql and evalstore.performance) against scikit-learn.

Every metric is recomputed independently from the generated rows with scikit-learn
(``roc_auc_score``, ``average_precision_score``, ``log_loss``, ``brier_score_loss``, the
F1/precision/recall/accuracy scores, ``confusion_matrix``, the regression errors) or numpy
(ECE, bias, the interval formulas, DeLong's variance from explicit placement values), and
compared to 1e-9. Windows are rebuilt by integer arithmetic on epoch seconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.metrics.performance import RESULT_COLUMNS_WITHOUT_SLICES, performance
from tests.conftest import blank_store

BASE = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, UTC midnight
DAY = 86_400
Z95 = NormalDist().inv_cdf(0.975)
TOL = 1e-9


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(
        (np.asarray(seconds, dtype=np.int64) + int(BASE.timestamp())) * 1_000_000, pa.int64()
    ).cast(pa.timestamp("us", tz="UTC"))


def _rows(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def _cell(frame: pd.DataFrame, **keys) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for name, value in keys.items():
        mask &= (frame[name] == value).to_numpy()
    return frame[mask]


def _value(result: pd.DataFrame, metric: str, **keys) -> pd.Series:
    rows = _cell(result, metric=metric, **keys)
    assert len(rows) == 1, (metric, keys, rows)
    return rows.iloc[0]


def _ece(y: np.ndarray, s: np.ndarray, bins: int = 10) -> float:
    b = np.minimum(np.floor(s * bins).astype(int), bins - 1)
    gaps = np.bincount(b, weights=y - s, minlength=bins)
    return float(np.abs(gaps).sum() / len(y))


def _wilson(x: float, m: float, z: float = Z95) -> tuple[float, float]:
    p = x / m
    center = p + z * z / (2 * m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
    return max(0.0, (center - half) / (1 + z * z / m)), min(1.0, (center + half) / (1 + z * z / m))


def _delong_se(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return math.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))


def _mean_ci(values: np.ndarray, floor: bool = True) -> tuple[float, float]:
    half = Z95 * values.std(ddof=1) / math.sqrt(len(values))
    low = values.mean() - half
    return (max(0.0, low) if floor else low), values.mean() + half


# ---------------------------------------------------------------------- binary data


def binary_store(seed: int = 0, n: int = 900) -> tuple[evalstore.Store, pd.DataFrame]:
    """A binary model with two versions over 3 days; tied scores, gaps in labels.

    Returns the store and the expected evaluation rows (example_id, version, day, ts,
    score, prediction, y (latest label, NaN when unlabeled), x, region).
    """
    rng = np.random.default_rng(seed)
    store = blank_store()
    store.register_model("fraud", "v1", "binary", classes=[0, 1], threshold=0.3)
    store.register_model("fraud", "v2", "binary", classes=[0, 1], threshold=0.6)
    ids = np.array([f"e{i}" for i in range(n)])
    seconds = rng.integers(0, 3 * DAY, size=n)
    seconds[:5] = [0, DAY, 2 * DAY, DAY - 1, 2 * DAY - 1]  # window boundaries
    x = rng.normal(size=n)
    x[7] = np.nan
    region = rng.choice(["north", "south", "east"], size=n)
    train_x = rng.normal(size=400)
    store.log_features(
        "fraud",
        pa.table(
            {
                "example_id": [f"t{i}" for i in range(400)],
                "x": train_x,
                "region": rng.choice(["north", "south"], size=400),
            }
        ),
        env="training",
    )
    store.log_features(
        "fraud", pa.table({"example_id": ids, "x": x, "region": region, "ts": _ts(seconds)})
    )
    truth = (rng.random(n) < 0.4).astype(int)
    frames = []
    for version, noise in (("v1", 0.25), ("v2", 0.35)):
        picked = np.ones(n, dtype=bool) if version == "v1" else rng.random(n) < 0.6
        raw = np.clip(truth * 0.35 + rng.random(n) * 0.65 + rng.normal(0, noise, n) * 0.1, 0, 1)
        score = np.round(raw, 1)  # heavy ties
        score[rng.random(n) < 0.03] = 1.0
        score[rng.random(n) < 0.03] = 0.0
        threshold = 0.3 if version == "v1" else 0.6
        prediction = (score >= threshold).astype(int).astype(str)
        no_score = rng.random(n) < 0.05  # prediction without a score
        given = rng.choice(["0", "1"], size=n)
        prediction = np.where(no_score, given, prediction)
        stored_score = np.where(no_score, np.nan, score)
        ts = seconds + rng.integers(0, 60, size=n)
        ts = np.minimum(ts, (seconds // DAY + 1) * DAY - 1)  # stays in its day
        store.log_predictions(
            "fraud",
            pa.table(
                {
                    "example_id": ids[picked],
                    "ts": _ts(ts[picked]),
                    "score": pa.array(stored_score[picked], from_pandas=True),
                    "prediction": prediction[picked],
                }
            ),
            version=version,
        )
        frames.append(
            pd.DataFrame(
                {
                    "example_id": ids[picked],
                    "version": version,
                    "ts": ts[picked],
                    "day": ts[picked] // DAY,
                    "score": stored_score[picked],
                    "prediction": prediction[picked].astype(int),
                    "x": x[picked],
                    "region": region[picked],
                }
            )
        )
    labeled = rng.random(n) < 0.7
    labeled[:3] = True
    label_ts = seconds + rng.integers(DAY // 2, 2 * DAY, size=n)
    store.log_labels(
        "fraud",
        pa.table(
            {
                "example_id": ids[labeled],
                "label": truth[labeled],
                "ts": _ts(label_ts[labeled]),
            }
        ),
    )
    # corrections: flip some labels in a later batch; the latest wins
    flip = labeled & (rng.random(n) < 0.1)
    latest = truth.copy()
    latest[flip] = 1 - truth[flip]
    store.log_labels(
        "fraud",
        pa.table(
            {
                "example_id": ids[flip],
                "label": latest[flip],
                "ts": _ts(label_ts[flip] + DAY),
            }
        ),
    )
    expected = pd.concat(frames, ignore_index=True)
    y = pd.Series(np.where(labeled, latest, np.nan), index=ids)
    expected["y"] = y.loc[expected["example_id"]].to_numpy()
    return store, expected


@pytest.fixture(scope="module")
def binary():
    store, expected = binary_store()
    yield store, expected
    store.close()


def _binary_expected(rows: pd.DataFrame, threshold: float | None) -> dict[str, float | None]:
    labeled = rows[rows["y"].notna()]
    y = labeled["y"].to_numpy().astype(int)
    score = labeled["score"].to_numpy()
    has_score = ~np.isnan(score)
    default = 0.3 if (rows["version"] == "v1").all() else 0.6
    cut = default if threshold is None else threshold
    yhat = np.where(has_score, score >= cut, labeled["prediction"].to_numpy() == 1).astype(int)
    ys, ss = y[has_score], score[has_score]
    tn, fp, fn, tp = confusion_matrix(y, yhat, labels=[0, 1]).ravel()
    out: dict[str, float | None] = {
        "accuracy": accuracy_score(y, yhat),
        "precision": precision_score(y, yhat, zero_division=np.nan) if tp + fp else None,
        "recall": recall_score(y, yhat) if tp + fn else None,
        "f1": f1_score(y, yhat) if tp + fp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "log_loss": log_loss(ys, ss, labels=[0, 1]),
        "brier": brier_score_loss(ys, ss, pos_label=1),
        "ece": _ece(ys, ss),
        "roc_auc": roc_auc_score(ys, ss) if 0 < ys.sum() < len(ys) else None,
        "average_precision": average_precision_score(ys, ss) if ys.sum() else None,
    }
    return out


def test_result_columns(binary):
    store, _ = binary
    result = performance(store._context(), "fraud")
    assert tuple(result.column_names) == RESULT_COLUMNS_WITHOUT_SLICES
    assert result.num_rows == 3 * 2 * 10


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_binary_metrics_match_sklearn(binary, threshold):
    store, expected = binary
    result = _rows(performance(store._context(), "fraud", threshold=threshold))
    result["day"] = (result["window_start"] - pd.Timestamp(BASE)).dt.days
    checked = 0
    for (day, version), rows in expected.groupby(["day", "version"]):
        want = _binary_expected(rows, threshold)
        for metric, value in want.items():
            got = _value(result, metric, day=day, version=version)
            if value is None:
                assert pd.isna(got["value"]) and got["reason"], (metric, got)
            else:
                assert got["value"] == pytest.approx(value, abs=TOL, rel=TOL), (metric, day)
                checked += 1
        got = _value(result, "accuracy", day=day, version=version)
        assert got["predictions"] == len(rows)
        assert got["labeled"] == rows["y"].notna().sum()
        assert got["label_coverage"] == pytest.approx(rows["y"].notna().mean(), abs=TOL)
        score_row = _value(result, "roc_auc", day=day, version=version)
        scored = rows["y"].notna() & rows["score"].notna()
        assert score_row["n"] == scored.sum()
        assert score_row["n_excluded"] == rows["y"].notna().sum() - scored.sum()
    assert checked == 3 * 2 * 10


def test_window_bounds_are_utc_days(binary):
    store, _ = binary
    result = _rows(performance(store._context(), "fraud", metrics="accuracy", version="v1"))
    starts = [pd.Timestamp(BASE + timedelta(days=d)) for d in range(3)]
    assert result["window_start"].tolist() == starts
    assert (result["window_end"] - result["window_start"] == pd.Timedelta(days=1)).all()


def test_analytic_intervals_match_hand_computation(binary):
    store, expected = binary
    result = _rows(performance(store._context(), "fraud", version="v1"))
    rows = expected[(expected["version"] == "v1") & (expected["day"] == 1)]
    labeled = rows[rows["y"].notna()]
    y = labeled["y"].to_numpy().astype(int)
    score = labeled["score"].to_numpy()
    yhat = np.where(np.isnan(score), labeled["prediction"] == 1, score >= 0.3).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, yhat, labels=[0, 1]).ravel()
    day1 = _cell(result, window_start=pd.Timestamp(BASE + timedelta(days=1)))
    for metric, (x, m) in {
        "accuracy": (tp + tn, len(y)),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "specificity": (tn, tn + fp),
    }.items():
        got = _value(day1, metric)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx(_wilson(x, m), abs=TOL)
    keep = ~np.isnan(score)
    ys, ss = y[keep], score[keep]
    brier = (ss - ys) ** 2
    clipped = np.clip(np.where(ys == 1, ss, 1 - ss), np.finfo(float).eps, 1 - np.finfo(float).eps)
    for metric, values in {"brier": brier, "log_loss": -np.log(clipped)}.items():
        got = _value(day1, metric)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx(_mean_ci(values), abs=TOL)
    auc = roc_auc_score(ys, ss)
    se = _delong_se(ys, ss)
    got = _value(day1, "roc_auc")
    assert got["ci_low"] == pytest.approx(max(0.0, auc - Z95 * se), abs=TOL)
    assert got["ci_high"] == pytest.approx(min(1.0, auc + Z95 * se), abs=TOL)
    ap = average_precision_score(ys, ss)
    tau = 1 / math.sqrt(ys.sum() * ap * (1 - ap))
    logit = math.log(ap / (1 - ap))
    got = _value(day1, "average_precision")
    assert got["ci_low"] == pytest.approx(1 / (1 + math.exp(-(logit - Z95 * tau))), abs=TOL)
    assert got["ci_high"] == pytest.approx(1 / (1 + math.exp(-(logit + Z95 * tau))), abs=TOL)


def test_wilson_interval_of_a_known_proportion(binary):
    store, _ = binary
    row = store.sql(
        "SELECT evalstore.wilson_low(8, 10, 1.959963984540054) AS low, "
        "evalstore.wilson_high(8, 10, 1.959963984540054) AS high"
    ).to_pylist()[0]
    low, high = row["low"], row["high"]
    # statsmodels.stats.proportion.proportion_confint(8, 10, method='wilson')
    assert low == pytest.approx(0.4901624, abs=1e-7)
    assert high == pytest.approx(0.9433178, abs=1e-7)


def test_confidence_level_changes_analytic_intervals(binary):
    store, _ = binary
    narrow = _rows(
        performance(store._context(), "fraud", metrics="accuracy", confidence=0.5, n_boot=0)
    )
    wide = _rows(
        performance(store._context(), "fraud", metrics="accuracy", confidence=0.99, n_boot=0)
    )
    assert (narrow["ci_high"] - narrow["ci_low"] < wide["ci_high"] - wide["ci_low"]).all()
    assert ((wide["ci_low"] <= wide["value"]) & (wide["value"] <= wide["ci_high"])).all()


def test_bootstrap_is_seeded_and_close_to_a_row_bootstrap(binary):
    store, expected = binary
    first = _rows(
        performance(store._context(), "fraud", metrics=["f1", "ece"], n_boot=2000, seed=7)
    )
    again = _rows(
        performance(store._context(), "fraud", metrics=["f1", "ece"], n_boot=2000, seed=7)
    )
    other = _rows(
        performance(store._context(), "fraud", metrics=["f1", "ece"], n_boot=2000, seed=8)
    )
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["ci_low"], other["ci_low"])
    ece = first[first["metric"] == "ece"]
    assert ece["variant"].str.contains("B = 2000, seed = 7").all()
    assert first.loc[first["metric"] == "f1", "variant"].str.contains("delta method").all()
    # the same cell bootstrapped by resampling rows with numpy: the analytic F1 interval
    # agrees with it
    rows = expected[(expected["version"] == "v1") & (expected["day"] == 0)]
    labeled = rows[rows["y"].notna()]
    y = labeled["y"].to_numpy().astype(int)
    score = labeled["score"].to_numpy()
    yhat = np.where(np.isnan(score), labeled["prediction"] == 1, score >= 0.3).astype(int)
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(y), size=(2000, len(y)))
    tp = ((y[index] == 1) & (yhat[index] == 1)).sum(axis=1)
    wrong = (y[index] != yhat[index]).sum(axis=1)
    naive = np.quantile(2 * tp / (2 * tp + wrong), [0.025, 0.975])
    got = _value(first, "f1", version="v1", window_start=pd.Timestamp(BASE))
    assert got["ci_low"] == pytest.approx(naive[0], abs=0.02)
    assert got["ci_high"] == pytest.approx(naive[1], abs=0.02)
    keep = ~np.isnan(score)
    ys, ss = y[keep], score[keep]
    index = rng.integers(0, len(ys), size=(2000, len(ys)))
    eces = [_ece(ys[i], ss[i]) for i in index]
    naive = np.quantile(eces, [0.025, 0.975])
    got = _value(first, "ece", version="v1", window_start=pd.Timestamp(BASE))
    assert got["ci_low"] == pytest.approx(naive[0], abs=0.01)
    assert got["ci_high"] == pytest.approx(naive[1], abs=0.01)


def test_bootstrap_can_be_switched_off(binary):
    store, _ = binary
    result = _rows(
        performance(store._context(), "fraud", metrics=["f1", "ece", "accuracy"], n_boot=0)
    )
    boot = result[result["metric"] == "ece"]
    assert boot["ci_low"].isna().all() and boot["ci_high"].isna().all()
    assert boot["variant"].str.contains("CI not computed").all()
    assert result.loc[result["metric"] == "accuracy", "ci_low"].notna().all()
    assert result.loc[result["metric"] == "f1", "ci_low"].notna().all()


def test_f1_interval_is_the_delta_method(binary):
    """F1 +- z sqrt(4 tp (fp + fn) (tp + fp + fn) / (2 tp + fp + fn)^4), clipped to [0, 1]."""
    store, _ = binary
    result = _rows(performance(store._context(), "fraud", metrics=["f1"]))
    defined = result[result["value"].notna()]
    assert len(defined)
    assert (
        (defined["ci_low"] <= defined["value"]) & (defined["value"] <= defined["ci_high"])
    ).all()
    con = store.connection
    for tp, fp, fn in [(5, 3, 2), (40, 0, 7), (0, 4, 4), (12, 0, 0), (1_000_000, 900_000, 800_000)]:
        se = con.execute(f"SELECT evalstore.f1_se({tp}, {fp}, {fn})").fetchall()[0][0]
        expected = math.sqrt(4 * tp * (fp + fn) * (tp + fp + fn) / (2 * tp + fp + fn) ** 4)
        assert se == pytest.approx(expected, rel=1e-12, abs=1e-15)
        # the delta method from finite differences of F1 over multinomial proportions
        n = tp + fp + fn + 10
        p = np.array([tp, fp, fn, 10]) / n

        def f1(q):
            return 2 * q[0] / (2 * q[0] + q[1] + q[2])

        grad = np.array([(f1(p + h) - f1(p - h)) / 2e-7 for h in np.eye(4) * 1e-7])
        cov = (np.diag(p) - np.outer(p, p)) / n
        assert se == pytest.approx(math.sqrt(max(grad @ cov @ grad, 0.0)), rel=1e-5, abs=1e-9)
    assert con.execute("SELECT evalstore.f1_se(0, 0, 0)").fetchall()[0][0] is None


def test_metric_subset_and_order(binary):
    store, _ = binary
    result = _rows(
        performance(store._context(), "fraud", metrics=["roc_auc", "accuracy"], version="v2")
    )
    assert result["metric"].tolist() == ["accuracy", "roc_auc"] * 3
    assert set(result["version"]) == {"v2"}


# ---------------------------------------------------------------------- edge cells


def _tiny_store(labels: dict[str, int], scores: dict[str, float], day_of=None):
    store = blank_store()
    store.register_model("fraud", "v1", "binary", classes=[0, 1])
    ids = list(scores)
    seconds = np.array([(day_of or {}).get(i, 0) * DAY + k for k, i in enumerate(ids)])
    store.log_predictions(
        "fraud",
        pa.table({"example_id": ids, "score": list(scores.values()), "ts": _ts(seconds)}),
        version="v1",
    )
    if labels:
        store.log_labels(
            "fraud", pa.table({"example_id": list(labels), "label": list(labels.values())})
        )
    return store


def test_single_class_window_gives_null_auc_with_reason():
    scores = {"a": 0.9, "b": 0.2, "c": 0.7}
    with _tiny_store({"a": 0, "b": 0, "c": 0}, scores) as store:
        result = _rows(performance(store._context(), "fraud"))
    auc = _value(result, "roc_auc")
    assert pd.isna(auc["value"]) and "single-class" in auc["reason"]
    assert pd.isna(auc["ci_low"]) and pd.isna(auc["ci_high"])
    assert "no positive labels" in _value(result, "average_precision")["reason"]
    assert "no positive labels" in _value(result, "recall")["reason"]
    assert _value(result, "precision")["value"] == 0.0  # two predicted positives, both wrong
    assert _value(result, "specificity")["value"] == pytest.approx(1 / 3)
    assert _value(result, "log_loss")["value"] == pytest.approx(
        log_loss([0, 0, 0], [0.9, 0.2, 0.7], labels=[0, 1]), abs=TOL
    )


def test_no_predicted_positive_gives_null_precision():
    with _tiny_store({"a": 1, "b": 0}, {"a": 0.1, "b": 0.2}) as store:
        result = _rows(performance(store._context(), "fraud"))
    precision = _value(result, "precision")
    assert pd.isna(precision["value"]) and "no predicted positives" in precision["reason"]
    assert _value(result, "roc_auc")["value"] == 0.0


def test_unlabeled_window_has_zero_coverage_and_null_metrics():
    scores = {"a": 0.9, "b": 0.2, "c": 0.7, "d": 0.4}
    day_of = {"c": 1, "d": 1}
    with _tiny_store({"a": 1, "b": 0}, scores, day_of) as store:
        result = _rows(performance(store._context(), "fraud"))
    late = result[result["window_start"] == pd.Timestamp(BASE + timedelta(days=1))]
    assert len(late) == 10
    assert late["value"].isna().all() and late["ci_low"].isna().all()
    assert (late["label_coverage"] == 0).all() and (late["n"] == 0).all()
    assert late["reason"].str.contains("label coverage 0").all()
    early = result[result["window_start"] == pd.Timestamp(BASE)]
    assert _value(early, "roc_auc")["value"] == 1.0


def test_one_row_cells_have_no_made_up_intervals(regression):
    with _tiny_store({"a": 1}, {"a": 0.7}) as store:
        result = _rows(
            performance(store._context(), "fraud", metrics=["log_loss", "brier", "roc_auc"])
        )
    assert result["value"].notna().tolist() == [False, True, True]  # roc_auc: one class
    assert result["ci_low"].isna().all() and result["ci_high"].isna().all()
    store, _ = regression
    first = (
        store.sql(
            "SELECT min(p.ts) FROM price.predictions AS p JOIN price.labels AS l USING (example_id)"
        )
        .column(0)[0]
        .as_py()
    )
    one = _rows(
        performance(store._context(), "price", since=first, until=first + timedelta(microseconds=1))
    )
    assert (one["predictions"] == 1).all() and (one["n"] == 1).all()
    assert one.loc[one["metric"] == "mae", "value"].notna().all()
    assert one["ci_low"].isna().all() and one["ci_high"].isna().all()


def test_empty_model_gives_an_empty_table():
    with blank_store() as store:
        store.register_model("fraud", "v1", "binary")
        result = performance(store._context(), "fraud", by=["version"])
    assert result.num_rows == 0
    assert tuple(result.column_names) == RESULT_COLUMNS_WITHOUT_SLICES


def test_label_corrections_latest_wins():
    with _tiny_store({"a": 1, "b": 0}, {"a": 0.9, "b": 0.2}) as store:
        assert _value(_rows(performance(store._context(), "fraud")), "accuracy")["value"] == 1.0
        store.log_labels("fraud", pa.table({"example_id": ["a"], "label": [0]}))
        result = _rows(performance(store._context(), "fraud"))
    assert _value(result, "accuracy")["value"] == 0.5
    assert _value(result, "accuracy")["labeled"] == 2


# ---------------------------------------------------------------------- slices


def test_slices_by_binned_numeric_feature(binary):
    store, expected = binary
    result = _rows(performance(store._context(), "fraud", by="x", metrics=["accuracy", "roc_auc"]))
    train = store.sql("SELECT x FROM fraud.features WHERE env = 'training'").column(0)
    edges = np.quantile(train.to_numpy(), [0.25, 0.5, 0.75])
    labels = [f"(-inf, {edges[0]:.6g})", f"[{edges[0]:.6g}, {edges[1]:.6g})"]
    labels += [f"[{edges[1]:.6g}, {edges[2]:.6g})", f"[{edges[2]:.6g}, inf)"]
    assert list(dict.fromkeys(result["x"].dropna())) == labels
    codes = np.searchsorted(edges, expected["x"].to_numpy(), side="right")
    expected = expected.assign(bin=[labels[c] for c in codes])
    expected.loc[expected["x"].isna(), "bin"] = None
    result["day"] = (result["window_start"] - pd.Timestamp(BASE)).dt.days
    for (day, version, label), rows in expected.dropna(subset=["bin"]).groupby(
        ["day", "version", "bin"]
    ):
        got = _value(result, "accuracy", day=day, version=version, x=label)
        assert got["value"] == pytest.approx(_binary_expected(rows, None)["accuracy"], abs=TOL)
        assert got["predictions"] == len(rows)
    null_slice = result[result["x"].isna() & (result["predictions"] > 0)]
    assert null_slice["predictions"].sum() == 2 * expected["x"].isna().sum()  # both metrics


def test_explicit_edges_and_reference(binary):
    store, expected = binary
    result = _rows(
        performance(
            store._context(), "fraud", by=["x"], edges={"x": [0]}, metrics="accuracy", version="v1"
        )
    )
    assert set(result["x"].dropna()) == {"(-inf, 0)", "[0, inf)"}
    got = result[(result["x"] == "[0, inf)")]["predictions"].sum()
    assert got == ((expected["version"] == "v1") & (expected["x"] >= 0)).sum()
    assert result[result["x"].isna()]["predictions"].sum() == 1  # x = NaN: the NULL slice
    serving = _rows(
        performance(
            store._context(), "fraud", by="x", bins=2, metrics="accuracy", version="v1",
            reference=(BASE, BASE + timedelta(days=3)),
        )
    )  # fmt: skip
    median = np.nanmedian(_rows(store.sql("SELECT x FROM fraud.features WHERE env='serving'"))["x"])
    assert set(serving["x"].dropna()) == {f"(-inf, {median:.6g})", f"[{median:.6g}, inf)"}


def test_slices_by_category_and_version(binary):
    store, expected = binary
    result = _rows(
        performance(store._context(), "fraud", by=["region", "version"], metrics=["f1", "brier"])
    )
    assert "version" in result.columns and "region" in result.columns
    result["day"] = (result["window_start"] - pd.Timestamp(BASE)).dt.days
    for (day, version, region), rows in expected.groupby(["day", "version", "region"]):
        want = _binary_expected(rows, None)
        for metric in ("f1", "brier"):
            got = _value(result, metric, day=day, version=version, region=region)
            assert got["value"] == pytest.approx(want[metric], abs=TOL)


def test_named_predicate_slices_overlap_and_empty(binary):
    store, expected = binary
    # NaN is the largest DOUBLE in DuckDB, so the example with x = NaN meets "x > 0"
    slices = {"high": "x > 0.5", "positive": "x > 0", "none": "x > 100 AND x < 1000"}
    result = _rows(performance(store._context(), "fraud", by=slices, metrics=["accuracy"]))
    assert list(dict.fromkeys(result["slice"])) == ["high", "positive", "none"]
    result["day"] = (result["window_start"] - pd.Timestamp(BASE)).dt.days
    for (day, version), rows in expected.groupby(["day", "version"]):
        nan = rows["x"].isna()
        for name, mask in (("high", (rows["x"] > 0.5) | nan), ("positive", (rows["x"] > 0) | nan)):
            got = _value(result, "accuracy", day=day, version=version, slice=name)
            want = _binary_expected(rows[mask.to_numpy()], None)["accuracy"]
            assert got["value"] == pytest.approx(want, abs=TOL)
        empty = _value(result, "accuracy", day=day, version=version, slice="none")
        assert pd.isna(empty["value"]) and empty["n"] == 0 and empty["predictions"] == 0
        assert "no predictions" in empty["reason"]


def test_feature_slices_of_predictions_without_serving_features():
    """Slice codes from feature columns are computed on the serving features before the
    join: predictions of examples without serving features still fall in the NULL slice
    of each feature key, combined with named predicates and a where on a feature."""
    rng = np.random.default_rng(5)
    n, with_features = 400, 250
    ids = np.array([f"e{i}" for i in range(n)])
    region = rng.choice(["north", "south", None], size=with_features, p=[0.45, 0.45, 0.1])
    x = rng.normal(size=with_features)
    x[:3] = np.nan
    score = np.round(rng.random(n), 2)
    y = rng.integers(0, 2, size=n)
    with blank_store() as store:
        store.register_model("m", "v1", "binary", classes=[0, 1])
        store.log_features(
            "m",
            pa.table({"example_id": ids[:with_features], "region": pa.array(region, pa.string()),
                      "x": x, "ts": _ts(np.zeros(with_features))}),
        )  # fmt: skip
        store.log_predictions(
            "m", pa.table({"example_id": ids, "score": score, "ts": _ts(np.zeros(n))}), "v1"
        )
        store.log_labels("m", pa.table({"example_id": ids, "label": y}))
        predicates = {"high": "score >= 0.5", "low": "score < 0.5"}
        result = _rows(
            performance(
                store._context(), "m", metrics="accuracy", window="1 day",
                by=["region", "x", predicates], edges={"x": [0.0]}, where="x IS NULL OR x > -1.5",
            )
        )  # fmt: skip
    rows = pd.DataFrame({"score": score, "y": y})
    rows["region"] = list(region) + [None] * (n - with_features)
    rows["x"] = np.append(x, [np.nan] * (n - with_features))
    rows = rows[rows["x"].isna() | (rows["x"] > -1.5)]
    rows["bin"] = np.where(rows["x"].isna(), None, np.where(rows["x"] < 0, "(-inf, 0)", "[0, inf)"))
    seen = 0
    for name, mask in (("high", rows["score"] >= 0.5), ("low", rows["score"] < 0.5)):
        part = rows[mask]
        for (region_, bin_), cell in part.groupby(["region", "bin"], dropna=False):
            region_ = None if pd.isna(region_) else region_
            bin_ = None if pd.isna(bin_) else bin_
            got = result[
                (result["slice"] == name)
                & (result["region"].isna() if region_ is None else result["region"] == region_)
                & (result["x"].isna() if bin_ is None else result["x"] == bin_)
            ]
            assert len(got) == 1
            assert got["predictions"].iloc[0] == len(cell)
            expected = np.mean((cell["score"] >= 0.5).astype(int) == cell["y"])
            assert got["value"].iloc[0] == pytest.approx(expected, abs=TOL)
            seen += 1
    assert seen >= 8 and result["predictions"].sum() == len(rows)


def test_where_restricts_rows(binary):
    store, expected = binary
    result = _rows(
        performance(store._context(), "fraud", where="region = 'north'", metrics="accuracy")
    )
    north = expected[expected["region"] == "north"]
    assert result["predictions"].sum() == len(north)


# ---------------------------------------------------------------------- windows


def _chunk_reference(expected: pd.DataFrame, chunk_rows=None, chunks=None) -> pd.Series:
    ordered = expected.sort_values(["ts", "example_id", "version"]).reset_index(drop=True)
    rank = np.arange(len(ordered))
    if chunk_rows:
        ordered["chunk"] = rank // chunk_rows
    else:
        ordered["chunk"] = rank * chunks // len(ordered)
    return ordered


@pytest.mark.parametrize(("chunk_rows", "chunks"), [(250, None), (None, 4)])
def test_windows_of_rows_and_chunks(binary, chunk_rows, chunks):
    store, expected = binary
    window = chunk_rows if chunk_rows else {"chunks": chunks}
    result = _rows(
        performance(store._context(), "fraud", window=window, metrics=["accuracy", "roc_auc"])
    )
    ordered = _chunk_reference(expected, chunk_rows, chunks)
    groups = list(ordered.groupby("chunk"))
    starts = sorted(result["window_start"].unique())
    assert len(starts) == len(groups)
    for start, (_, rows) in zip(starts, groups, strict=True):
        window_rows = result[result["window_start"] == start]
        assert start == pd.Timestamp(BASE) + pd.Timedelta(seconds=int(rows["ts"].min()))
        end = pd.Timestamp(BASE) + pd.Timedelta(seconds=int(rows["ts"].max()))
        assert (window_rows["window_end"] == end).all()
        for version, part in rows.groupby("version"):
            got = _value(window_rows, "roc_auc", version=version)
            want = _binary_expected(part, None)["roc_auc"]
            assert got["value"] == pytest.approx(want, abs=TOL)
            assert got["predictions"] == len(part)


def test_since_until_bound_prediction_time(binary):
    store, _ = binary
    result = _rows(
        performance(
            store._context(), "fraud", metrics="accuracy", since=BASE + timedelta(days=1),
            until=BASE + timedelta(days=2),
        )
    )  # fmt: skip
    assert set(result["window_start"]) == {pd.Timestamp(BASE + timedelta(days=1))}


@pytest.mark.parametrize("width", ["1 day", "7 days", "6 hours", "90 minutes", "1 month", "1 year"])
def test_bucket_index_agrees_with_window_start(width):
    rng = np.random.default_rng(3)
    seconds = rng.integers(-40 * 365 * DAY, 40 * 365 * DAY, size=500)
    seconds[:4] = [0, -1, DAY, -DAY]
    with blank_store() as store:
        store.connection.register("moments", pa.table({"ts": _ts(seconds)}))
        rows = store.sql(
            "SELECT count(*) FILTER (WHERE evalstore.bucket_start(evalstore.bucket_index(ts, ?), ?)"
            " <> evalstore.window_start(ts, ?)) AS wrong, "
            "count(DISTINCT evalstore.bucket_index(ts, ?)) AS keys, "
            "count(DISTINCT evalstore.window_start(ts, ?)) AS starts FROM moments",
            [width] * 5,
        ).to_pylist()[0]
    assert rows["wrong"] == 0 and rows["keys"] == rows["starts"]


# ---------------------------------------------------------------------- late labels


def test_labels_complete_from_the_label_delay_quantile():
    store = blank_store()
    store.register_model("fraud", "v1", "binary")
    n = 200
    rng = np.random.default_rng(5)
    seconds = rng.integers(0, 10 * DAY, size=n)
    ids = [f"e{i}" for i in range(n)]
    store.log_predictions(
        "fraud", pa.table({"example_id": ids, "score": rng.random(n), "ts": _ts(seconds)}), "v1"
    )
    delay = rng.integers(0, 3 * DAY, size=n)
    labeled = seconds + delay < 8 * DAY  # labels that have arrived by day 8
    label_ts = seconds + delay
    store.log_labels(
        "fraud",
        pa.table(
            {
                "example_id": np.array(ids)[labeled],
                "label": rng.integers(0, 2, size=labeled.sum()),
                "ts": _ts(label_ts[labeled]),
            }
        ),
    )
    p90 = np.quantile(delay[labeled] / 3600, 0.9)
    as_of = label_ts[labeled].max()
    with store:
        result = _rows(performance(store._context(), "fraud", metrics="accuracy"))
        horizon = store.sql("SELECT * FROM evalstore.label_horizon('fraud', 0.9, NULL)").to_pylist()
        given = _rows(
            performance(
                store._context(), "fraud", metrics="accuracy", as_of=BASE + timedelta(days=30)
            )
        )
    assert horizon[0]["delay_hours"] == pytest.approx(p90, abs=1e-6)
    assert horizon[0]["labeled"] == labeled.sum()
    end = (result["window_end"] - pd.Timestamp(BASE)).dt.total_seconds().to_numpy()
    assert result["labels_complete"].tolist() == list(end + p90 * 3600 <= as_of + 1e-6)
    assert result["labels_complete"].any() and not result["labels_complete"].all()
    due = (result["labels_due"] - result["window_end"]).dt.total_seconds() / 3600
    assert np.allclose(due, p90, atol=1e-6)
    assert given["labels_complete"].all()


def test_no_labels_means_incomplete():
    with _tiny_store({}, {"a": 0.3, "b": 0.8}) as store:
        result = _rows(performance(store._context(), "fraud", metrics="accuracy"))
    assert not result["labels_complete"].any()
    assert result["labels_due"].isna().all()


# ---------------------------------------------------------------------- multiclass


@pytest.fixture(scope="module")
def multiclass():
    rng = np.random.default_rng(11)
    store = blank_store()
    classes = ["cat", "dog", "eel"]
    store.register_model("zoo", "v1", "multiclass", classes=classes)
    n = 600
    ids = np.array([f"m{i}" for i in range(n)])
    seconds = rng.integers(0, 2 * DAY, size=n)
    truth = rng.choice(classes, size=n, p=[0.5, 0.35, 0.15])
    logits = rng.normal(size=(n, 3)) + 1.5 * (truth[:, None] == np.array(classes))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = np.round(probs, 3)
    probs[:, 2] = 1 - probs[:, 0] - probs[:, 1]
    prediction = np.array(classes)[probs.argmax(axis=1)]
    # day 1 never predicts 'eel'
    day = seconds // DAY
    prediction = np.where((day == 1) & (prediction == "eel"), "dog", prediction)
    store.log_predictions(
        "zoo",
        pa.table(
            {
                "example_id": ids,
                "ts": _ts(seconds),
                "prediction": prediction,
                "p_cat": probs[:, 0],
                "p_dog": probs[:, 1],
                "p_eel": probs[:, 2],
            }
        ),
        version="v1",
        probability_columns={"cat": "p_cat", "dog": "p_dog", "eel": "p_eel"},
    )
    labeled = rng.random(n) < 0.8
    store.log_labels("zoo", pa.table({"example_id": ids[labeled], "label": truth[labeled]}))
    frame = pd.DataFrame({"day": day, "y": truth, "yhat": prediction, "labeled": labeled})
    yield store, frame, probs, classes
    store.close()


def test_multiclass_metrics_match_sklearn(multiclass):
    store, frame, probs, classes = multiclass
    result = _rows(performance(store._context(), "zoo"))
    result["day"] = (result["window_start"] - pd.Timestamp(BASE)).dt.days
    for day in (0, 1):
        rows = frame[(frame["day"] == day) & frame["labeled"]]
        y, yhat = rows["y"].to_numpy(), rows["yhat"].to_numpy()
        cells = result[result["day"] == day]
        assert _value(cells, "accuracy")["value"] == pytest.approx(accuracy_score(y, yhat))
        for average in ("macro", "micro", "weighted"):
            got = _value(cells, f"{average}_f1")["value"]
            assert got == pytest.approx(f1_score(y, yhat, average=average), abs=TOL)
        want = log_loss(y, probs[rows.index], labels=classes)
        assert _value(cells, "log_loss")["value"] == pytest.approx(want, abs=TOL)
        for label in classes:
            for metric, scorer in (
                ("precision", precision_score), ("recall", recall_score), ("f1", f1_score)
            ):  # fmt: skip
                got = _value(cells, metric, **{"class": label})
                if metric == "precision" and label not in yhat:
                    assert pd.isna(got["value"]) and "never predicted" in got["reason"]
                    continue
                want = scorer(y, yhat, labels=[label], average=None)[0]
                assert got["value"] == pytest.approx(want, abs=TOL), (day, metric, label)
        accuracy = _value(cells, "accuracy")
        correct = (y == yhat).sum()
        assert (accuracy["ci_low"], accuracy["ci_high"]) == pytest.approx(
            _wilson(correct, len(y)), abs=TOL
        )
        assert _value(cells, "macro_f1")["ci_low"] < _value(cells, "macro_f1")["value"]
    assert "eel" not in frame.loc[frame["day"] == 1, "yhat"].to_numpy()


def test_multiclass_log_loss_leaves_out_rows_without_probabilities():
    # a labeled prediction without a probability map has no log loss: it is counted in
    # n_excluded, not scored as a (clipped) perfect prediction
    store = blank_store()
    try:
        store.register_model("zoo", "v1", "multiclass", classes=["cat", "dog"])
        store.log_predictions(
            "zoo",
            pa.table(
                {
                    "example_id": ["a", "b", "c"],
                    "ts": _ts(np.array([10, 20, 30])),
                    "prediction": ["cat", "dog", "cat"],
                    "p_cat": [0.8, 0.3, 0.6],
                    "p_dog": [0.2, 0.7, 0.4],
                }
            ),
            version="v1",
            probability_columns={"cat": "p_cat", "dog": "p_dog"},
        )
        store.log_predictions(
            "zoo",
            pa.table(
                {
                    "example_id": ["d", "e"],
                    "ts": _ts(np.array([40, 50])),
                    "prediction": ["dog", "cat"],
                }
            ),
            version="v1",
        )
        store.log_labels(
            "zoo", pa.table({"example_id": ["a", "b", "c", "d", "e"], "label": ["cat"] * 5})
        )
        result = _rows(store.performance("zoo", metrics="log_loss"))
    finally:
        store.close()
    row = _value(result, "log_loss")
    assert (row["n"], row["n_excluded"], row["labeled"]) == (3, 2, 5)
    want = log_loss(
        ["cat", "cat", "cat"], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], labels=["cat", "dog"]
    )
    assert row["value"] == pytest.approx(want, abs=TOL)


def test_multiclass_threshold_is_refused(multiclass):
    store, *_ = multiclass
    with pytest.raises(InvalidParameterError, match="binary"):
        performance(store._context(), "zoo", threshold=0.5)
    with pytest.raises(InvalidParameterError, match="roc_auc"):
        performance(store._context(), "zoo", metrics=["roc_auc"])


# ---------------------------------------------------------------------- regression


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(21)
    store = blank_store()
    store.register_model("price", "v1", "regression")
    n = 400
    ids = np.array([f"r{i}" for i in range(n)])
    seconds = rng.integers(0, 3 * DAY, size=n)
    day = seconds // DAY
    y = rng.normal(10, 3, size=n)
    y[rng.random(n) < 0.1] = 0.0  # zero targets
    y[day == 2] = 0.0  # day 2: every target is 0 (MAPE undefined, R2 undefined)
    prediction = y + rng.normal(0.5, 2, size=n)
    store.log_predictions(
        "price",
        pa.table({"example_id": ids, "ts": _ts(seconds), "prediction": prediction}),
        version="v1",
    )
    labeled = rng.random(n) < 0.75
    store.log_labels("price", pa.table({"example_id": ids[labeled], "label": y[labeled]}))
    frame = pd.DataFrame({"day": day, "y": y, "yhat": prediction, "labeled": labeled})
    yield store, frame
    store.close()


def test_regression_metrics_match_sklearn(regression):
    store, frame = regression
    result = _rows(performance(store._context(), "price"))
    result["day"] = (result["window_start"] - pd.Timestamp(BASE)).dt.days
    for day in (0, 1):
        rows = frame[(frame["day"] == day) & frame["labeled"]]
        y, yhat = rows["y"].to_numpy(), rows["yhat"].to_numpy()
        cells = result[result["day"] == day]
        nonzero = y != 0
        want = {
            "mae": mean_absolute_error(y, yhat),
            "mse": mean_squared_error(y, yhat),
            "rmse": math.sqrt(mean_squared_error(y, yhat)),
            "r2": r2_score(y, yhat),
            "bias": float(np.mean(yhat - y)),
            "mape": mean_absolute_percentage_error(y[nonzero], yhat[nonzero]),
        }
        for metric, value in want.items():
            assert _value(cells, metric)["value"] == pytest.approx(value, abs=TOL, rel=TOL)
        mape = _value(cells, "mape")
        assert mape["n_excluded"] == (~nonzero).sum() > 0 and mape["n"] == nonzero.sum()
        e = yhat - y
        for metric, values, floor in (
            ("mae", np.abs(e), True), ("mse", e**2, True), ("bias", e, False),
            ("mape", np.abs(e[nonzero]) / np.abs(y[nonzero]), True),
        ):  # fmt: skip
            got = _value(cells, metric)
            assert (got["ci_low"], got["ci_high"]) == pytest.approx(
                _mean_ci(values, floor), abs=TOL
            )
        low, high = _mean_ci(e**2)
        rmse = _value(cells, "rmse")
        assert (rmse["ci_low"], rmse["ci_high"]) == pytest.approx(
            (math.sqrt(low), math.sqrt(high)), abs=TOL
        )
        u, v = e**2, (y - y.mean()) ** 2
        a, b = u.mean(), v.mean()
        cov = np.cov(u, v, ddof=1)
        var = cov[0, 0] / b**2 - 2 * a * cov[0, 1] / b**3 + a**2 * cov[1, 1] / b**4
        r2 = _value(cells, "r2")
        se = math.sqrt(var / len(y))
        assert r2["ci_low"] == pytest.approx(want["r2"] - Z95 * se, abs=TOL)
        assert r2["ci_high"] == pytest.approx(min(1.0, want["r2"] + Z95 * se), abs=TOL)


def test_regression_all_zero_targets_and_constant_labels(regression):
    store, frame = regression
    result = _rows(performance(store._context(), "price", since=BASE + timedelta(days=2)))
    mape, r2 = _value(result, "mape"), _value(result, "r2")
    assert pd.isna(mape["value"]) and "every target is 0" in mape["reason"]
    assert mape["n_excluded"] == (frame["labeled"] & (frame["day"] == 2)).sum()
    assert pd.isna(r2["value"]) and "constant" in r2["reason"]
    assert _value(result, "mae")["value"] > 0


# ---------------------------------------------------------------------- plain SQL and errors


@pytest.mark.parametrize(
    ("width", "chunks", "slices"),
    [
        ("1 month", None, ["north", "south", None]),
        ("9 days", None, ["north", "south", None]),
        (None, 4, ["north", "south", None]),
        # integer slices 10^9 apart: the cell keys no longer fit an INTEGER
        ("9 days", None, [0, 10**9, None]),
    ],
    ids=str,
)
def test_ranking_metrics_with_slices_from_sql(width, chunks, slices):
    """The SQL macro over a view with a VARCHAR (or sparse integer) slice and NULL slices,
    two versions, monthly / daily / chunk windows and tied scores: every cell's ROC AUC
    and average precision equal scikit-learn's, and its DeLong interval the one from
    explicit placement values (the ranking windows partition by one integer key, narrow
    or wide; the negatives' placement sums are derived from the positives' ranks)."""
    rng = np.random.default_rng(17)
    n = 1500
    ids = np.array([f"e{i:05d}" for i in range(n)])
    seconds = np.sort(rng.integers(0, 150 * DAY, size=n))
    y = rng.integers(0, 2, size=n)
    with blank_store() as store:
        for version in ("v1", "v2"):
            store.register_model("fraud", version, "binary", classes=[0, 1])
            score = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1), 1)  # ties
            store.log_predictions(
                "fraud",
                pa.table({"example_id": ids, "score": score, "ts": _ts(seconds)}),
                version,
            )
        store.log_labels("fraud", pa.table({"example_id": ids, "label": y}))
        region = [slices[i] for i in rng.choice(3, size=n, p=[0.45, 0.45, 0.1])]
        kind = pa.string() if isinstance(slices[0], str) else pa.int64()
        store.connection.register(
            "regions", pa.table({"example_id": ids, "region": pa.array(region, kind)})
        )
        store.connection.execute(
            "CREATE TEMP VIEW src AS SELECT e.*, r.region AS slice "
            "FROM fraud.evaluations AS e JOIN regions AS r USING (example_id)"
        )
        got = store.sql(
            "SELECT window_start, version, slice, metric, value, ci_low, ci_high, n "
            "FROM evalstore.performance_binary('temp.main.src', 'fraud', NULL, ?, NULL, ?, "
            "NULL, NULL, 10, 1.96, NULL, 0.9, ['roc_auc', 'average_precision'], NULL, NULL, NULL)",
            [width, chunks],
        ).to_pandas()
        rows = store.sql(
            "SELECT s.version, s.slice, s.score, CAST(s.label AS INTEGER) AS y, "
            + ("evalstore.window_start(s.ts, ?) AS window_start " if width else
               "s.ts, s.example_id ")
            + "FROM temp.main.src AS s",
            [width] if width else None,
        ).to_pandas()  # fmt: skip
    if chunks:  # near-equal parts of the predictions ranked by (ts, example_id, version)
        order = rows.sort_values(["ts", "example_id", "version"]).reset_index(drop=True)
        order["part"] = order.index * chunks // len(order)
        rows = order
        firsts = order.groupby("part")["ts"].min()
        rows["window_start"] = rows["part"].map(firsts)
    rows["slice"] = rows["slice"].astype(object).where(rows["slice"].notna(), None)
    checked = 0
    for (start, version, slice_), cell in rows.groupby(
        ["window_start", "version", "slice"], dropna=False
    ):
        slice_ = None if pd.isna(slice_) else slice_
        mine = got[(got.window_start == start) & (got.version == version)]
        mine = mine[mine.slice.isna()] if slice_ is None else mine[mine.slice == slice_]
        by_metric = dict(zip(mine.metric, mine.value, strict=True))
        if cell.y.nunique() == 2:
            assert by_metric["roc_auc"] == pytest.approx(roc_auc_score(cell.y, cell.score), abs=TOL)
            assert by_metric["average_precision"] == pytest.approx(
                average_precision_score(cell.y, cell.score), abs=TOL
            )
            if min(cell.y.sum(), (1 - cell.y).sum()) > 1:
                auc = mine[mine.metric == "roc_auc"].iloc[0]
                se = _delong_se(cell.y.to_numpy(), cell.score.to_numpy())
                # z = 1.96 as passed to the macro
                assert auc.ci_low == pytest.approx(max(0.0, auc.value - 1.96 * se), abs=TOL)
                assert auc.ci_high == pytest.approx(min(1.0, auc.value + 1.96 * se), abs=TOL)
            checked += 1
        else:
            assert pd.isna(by_metric["roc_auc"])
    assert checked >= 10


@pytest.fixture(scope="module")
def ranking_store():
    """A registered binary model with versions v1 to v8 (the macro scores registered
    versions only); tests pass their rows to the macro as a relation."""
    with blank_store() as store:
        for k in range(1, 9):
            store.register_model("m", f"v{k}", "binary", classes=[0, 1])
        yield store


#: One cell's (label, score) rows: few distinct scores, so all tied, one positive or one
#: negative come up often.
RANKING_CELL = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 4)).map(lambda p: (p[0], p[1] / 4)),
    min_size=4,
    max_size=40,
)


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(st.lists(RANKING_CELL, min_size=4, max_size=8))
def test_roc_auc_interval_from_positive_ranks_alone(ranking_store, cells):
    """ROC AUC, average precision and the DeLong interval from the cell-wide ranking plus
    the positives' own ranking (the negatives' placement sums derived from the
    positives'), on cells with few distinct scores: all tied, one positive, one negative.

    Each example checks 4-8 independent cells (one version each) in one macro call: a
    call costs the same for one cell or eight, and 20 examples check at least 80 cells."""
    versions = [f"v{k}" for k, rows in enumerate(cells, 1) for _ in rows]
    y_all = np.array([r[0] for rows in cells for r in rows])
    s_all = np.array([r[1] for rows in cells for r in rows])
    n = len(versions)
    source = pa.table(
        {
            "example_id": [f"e{i}" for i in range(n)],
            "version": versions,
            "ts": _ts(np.zeros(n)),
            "prediction": pa.nulls(n, pa.string()),
            "score": s_all,
            "probabilities": pa.nulls(n, pa.map_(pa.string(), pa.float64())),
            "label": pa.array(y_all.astype(str)),
        }
    )
    ranking_store.connection.register("ranking_rows", source)
    try:
        got = ranking_store.sql(
            "SELECT version, metric, value, ci_low, ci_high FROM evalstore.performance_binary("
            "'ranking_rows', 'm', NULL, NULL, NULL, 1, NULL, NULL, 10, 1.96, NULL, 0.9, "
            "['roc_auc', 'average_precision'], NULL, NULL, NULL)"
        ).to_pandas()
    finally:
        ranking_store.connection.unregister("ranking_rows")
    assert sorted(got.version.unique()) == [f"v{k}" for k in range(1, len(cells) + 1)]
    for k, rows in enumerate(cells, 1):
        y = np.array([r[0] for r in rows])
        s = np.array([r[1] for r in rows])
        cell = got[got.version == f"v{k}"]
        (auc,) = cell[cell.metric == "roc_auc"].itertuples()
        (ap,) = cell[cell.metric == "average_precision"].itertuples()
        if y.min() == y.max():
            assert pd.isna(auc.value)
            continue
        assert auc.value == pytest.approx(roc_auc_score(y, s), abs=TOL)
        assert ap.value == pytest.approx(average_precision_score(y, s), abs=TOL)
        if min(y.sum(), (1 - y).sum()) > 1:
            se = _delong_se(y, s)
            assert auc.ci_low == pytest.approx(max(0.0, auc.value - 1.96 * se), abs=TOL)
            assert auc.ci_high == pytest.approx(min(1.0, auc.value + 1.96 * se), abs=TOL)
        else:
            assert pd.isna(auc.ci_low) and pd.isna(auc.ci_high)


def test_macros_are_callable_from_plain_sql(tmp_path):
    path = tmp_path / "store.duckdb"
    with evalstore.open(path) as store:
        store.register_model("fraud", "v1", "binary", classes=[0, 1])
        store.log_predictions(
            "fraud", pa.table({"example_id": ["a", "b", "c"], "score": [0.9, 0.1, 0.6]}), "v1"
        )
        store.log_labels("fraud", pa.table({"example_id": ["a", "b", "c"], "label": [1, 0, 0]}))
        through_python = _rows(
            performance(store._context(), "fraud", metrics="roc_auc", window="100 years")
        )
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT metric, value, n FROM evalstore.performance_binary('fraud.evaluations', "
            "'fraud', NULL, '100 years', NULL, NULL, NULL, NULL, 10, 1.96, NULL, 0.9, NULL, "
            "NULL, NULL, NULL) "
            "WHERE metric IN ('roc_auc', 'accuracy') ORDER BY metric"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("accuracy", pytest.approx(2 / 3), 3), ("roc_auc", 1.0, 3)]
    assert through_python["value"].tolist() == [1.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metrics": ["mae"]}, InvalidParameterError, "not available for a binary"),
        ({"metrics": []}, InvalidParameterError, "none given"),
        ({"threshold": 1.5}, InvalidParameterError, "threshold"),
        ({"by": "nope"}, InvalidParameterError, "not a feature column"),
        ({"by": {"big": "nope > 1"}}, InvalidParameterError, "unknown column"),
        ({"by": {"big": "x > (SELECT 1)"}}, InvalidParameterError, "subqueries"),
        ({"where": "read_csv('x') IS NULL"}, InvalidParameterError, "read_csv"),
        ({"window": "soon"}, InvalidParameterError, "interval"),
        ({"window": 0}, InvalidParameterError, "at least 1"),
        ({"since": "2026-03-03", "until": "2026-03-02"}, InvalidParameterError, "earlier"),
        ({"confidence": 1.0}, InvalidParameterError, "confidence"),
        ({"n_boot": -1}, InvalidParameterError, "n_boot"),
        ({"edges": {"x": [0]}}, InvalidParameterError, "listed in by"),
        ({"by": "x", "edges": {"x": ["a"]}}, InvalidParameterError, "finite numbers"),
        ({"by": "x", "reference": {"previous": 2}}, InvalidParameterError, "previous"),
        ({"version": "v9"}, UnknownModelError, "no version"),
    ],
)
def test_invalid_parameters(binary, kwargs, error, match):
    store, _ = binary
    with pytest.raises(error, match=match):
        performance(store._context(), "fraud", **kwargs)


def test_unknown_model(binary):
    store, _ = binary
    with pytest.raises(UnknownModelError):
        performance(store._context(), "nobody")


def test_by_predicate_errors_name_the_slice(binary):
    """A refused ``by=`` predicate is named as ``by['<slice>']``, not as ``where``."""
    store, _ = binary
    with pytest.raises(InvalidParameterError, match=r"by\['hack'\].*setval\(\)"):
        store.performance("fraud", by={"hack": "setval('evalstore.batch_ids', 1) > 0"})
    with pytest.raises(InvalidParameterError, match=r"by\['nap'\].*sleep_ms\(\)"):
        store.compare("fraud", "v1", "v2", by={"nap": "sleep_ms(1000) IS NULL"})
