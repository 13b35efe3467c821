"""Confusion-matrix cells and business value (issue 23 point 8) against scikit-learn.

A binary model decided at 0.65 (its logged ``prediction``; registered threshold 0.5 for
rows logged without one); scores rounded to 0.1 tie often; some rows have no score, some
no label, and one day has predictions but no labels. Per day and region, ``tp, fp, fn,
tn`` must equal ``sklearn.metrics.confusion_matrix(y, y_pred, labels=[0, 1],
normalize=...)`` of the decisions ``store.performance`` scores (the logged ones, or
``score >= t`` for ``threshold=t``), and ``business_value`` the sum of the cells times
the value matrix (NannyML's layout ``[[tn, fp], [fn, tp]]``), its interval the normal one
of the per-row values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix

import evalstore
from evalstore.errors import InvalidParameterError
from tests.conftest import blank_store

TOL = 1e-12
Z = 1.959963984540054
BASE = datetime(2026, 5, 4, tzinfo=UTC)
CELLS = ["tp", "fp", "fn", "tn"]
MATRIX = [[1.5, -4.0], [-20.0, 30.0]]  # [[tn, fp], [fn, tp]]


def _build() -> tuple[evalstore.Store, pd.DataFrame]:
    rng = np.random.default_rng(11)
    n = 900
    store = blank_store()
    store.register_model("m", "v1", "binary", classes=[0, 1], threshold=0.5)
    ids = np.array([f"e{i}" for i in range(n)])
    day = rng.integers(0, 4, size=n)
    ts = [BASE + timedelta(days=int(d), seconds=int(s)) for d, s in
          zip(day, rng.integers(0, 86_400, size=n), strict=True)]  # fmt: skip
    region = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.35, 0.15])
    store.log_features("m", pa.table({"example_id": ids, "region": region, "ts": ts}))
    truth = (rng.random(n) < 0.4).astype(int)
    score = np.round(np.clip(truth * 0.3 + rng.random(n) * 0.7, 0, 1), 1)  # ties
    prediction = (score >= 0.65).astype(float)
    prediction[rng.random(n) < 0.1] = np.nan  # decided by the registered 0.5
    no_score = (rng.random(n) < 0.05) & ~np.isnan(prediction)
    score[no_score] = np.nan
    store.log_predictions(
        "m",
        pa.table(
            {
                "example_id": ids,
                "ts": ts,
                "score": pa.array(score, from_pandas=True),
                "prediction": pa.array(
                    [None if np.isnan(p) else int(p) for p in prediction], pa.int64()
                ),
            }
        ),
        version="v1",
    )
    labeled = (rng.random(n) < 0.85) & (day != 3)  # day 3: no labels yet
    store.log_labels("m", pa.table({"example_id": ids[labeled], "label": truth[labeled]}))
    frame = pd.DataFrame(
        {"day": day, "region": region, "score": score, "prediction": prediction,
         "y": np.where(labeled, truth, np.nan)}
    )  # fmt: skip
    return store, frame


@pytest.fixture(scope="module")
def data():
    store, frame = _build()
    yield store, frame
    store.close()


def _decisions(rows: pd.DataFrame, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """y_true, y_pred of the labeled rows with a decision, as performance decides."""
    rows = rows[rows["y"].notna() & (rows["score"].notna() | rows["prediction"].notna())]
    score, logged = rows["score"].to_numpy(), rows["prediction"].to_numpy()
    if threshold is None:
        y_pred = np.where(np.isnan(logged), score >= 0.5, logged == 1)
    else:
        y_pred = np.where(np.isnan(score), logged == 1, score >= threshold)
    return rows["y"].to_numpy().astype(int), y_pred.astype(int)


def _cells(result: pd.DataFrame) -> dict[tuple[int, str], pd.DataFrame]:
    result = result.assign(day=(result["window_start"] - pd.Timestamp(BASE)).dt.days)
    return {key: part for key, part in result.groupby(["day", "region"])}


@pytest.mark.parametrize("threshold", [None, 0.3])
@pytest.mark.parametrize("normalize", [None, "all", "true", "pred"])
def test_cells_equal_sklearn_confusion_matrix(data, normalize, threshold):
    store, frame = data
    result = store.performance(
        "m", metrics=CELLS, window="1 day", by="region", threshold=threshold,
        normalize_confusion_matrix=normalize,
    ).to_pandas()  # fmt: skip
    cells = _cells(result)
    checked = 0
    for (day, region), rows in frame.groupby(["day", "region"]):
        got = cells[(day, region)].set_index("metric")
        y_true, y_pred = _decisions(rows, threshold)
        if not len(y_true):
            assert got["value"].isna().all() and day == 3
            assert (got["reason"] == "no labeled predictions in this cell (label coverage 0)").all()
            continue
        counts = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
        want = confusion_matrix(y_true, y_pred, labels=[0, 1], normalize=normalize).ravel()
        tn, fp, fn, tp = counts
        denominators = {
            None: dict.fromkeys(CELLS, None),
            "all": dict.fromkeys(CELLS, len(y_true)),
            "true": {"tp": tp + fn, "fn": tp + fn, "tn": tn + fp, "fp": tn + fp},
            "pred": {"tp": tp + fp, "fp": tp + fp, "tn": tn + fn, "fn": tn + fn},
        }[normalize]
        for name, expected, x in zip(["tn", "fp", "fn", "tp"], want, counts, strict=True):
            row = got.loc[name]
            assert row["n"] == len(y_true)
            d = denominators[name]
            if d == 0:  # sklearn gives 0 here: evalstore NULL with a reason
                assert pd.isna(row["value"]) and "undefined" in row["reason"]
                continue
            assert row["value"] == pytest.approx(expected, abs=TOL), (day, region, name)
            if d is None:
                assert pd.isna(row["ci_low"]) and "count (confusion_matrix)" in row["variant"]
            else:
                low = (x + Z**2 / 2 - Z * np.sqrt(x * (d - x) / d + Z**2 / 4)) / (d + Z**2)
                assert row["ci_low"] == pytest.approx(low, abs=1e-9)
                assert f"normalize={normalize}" in row["variant"]
            prefix = "decision=logged" if threshold is None else f"decision=score>={threshold}"
            assert row["variant"].startswith(prefix)
        checked += 1
    assert checked == 9  # 3 labeled days x 3 regions


@pytest.mark.parametrize("normalize", [None, "per_prediction"])
def test_business_value_is_the_matrix_weighted_confusion_matrix(data, normalize):
    store, frame = data
    result = store.performance(
        "m", metrics="business_value", window="1 day", business_value_matrix=MATRIX,
        normalize_business_value=normalize,
    ).to_pandas()  # fmt: skip
    values = np.array(MATRIX)
    for day, rows in frame.groupby("day"):
        got = result[(result["window_start"] - pd.Timestamp(BASE)).dt.days == day].iloc[0]
        y_true, y_pred = _decisions(rows, None)
        if not len(y_true):
            assert pd.isna(got["value"]) and got["reason"].startswith("no labeled predictions")
            continue
        total = (confusion_matrix(y_true, y_pred, labels=[0, 1]) * values).sum()
        per_row = values[y_true, y_pred]
        assert per_row.sum() == pytest.approx(total)
        scale = 1 if normalize else len(y_true)
        assert got["value"] == pytest.approx(total / len(y_true) * scale, rel=TOL)
        half = Z * np.std(per_row, ddof=1) / np.sqrt(len(y_true)) * scale
        assert got["ci_low"] == pytest.approx(per_row.mean() * scale - half, rel=1e-9)
        assert got["ci_high"] == pytest.approx(per_row.mean() * scale + half, rel=1e-9)
        assert "[[1.5, -4.0], [-20.0, 30.0]]" in got["variant"]
        assert ("per prediction" in got["variant"]) == (normalize is not None)


def test_single_row_and_single_valued_cells():
    """One labeled row: counts 0/1, shares of an empty class NULL, no business interval."""
    with blank_store() as store:
        store.register_model("m", "v1", "binary", classes=[0, 1])
        store.log_predictions(
            "m", pa.table({"example_id": ["a"], "score": [0.8], "prediction": [1]}), "v1"
        )
        store.log_labels("m", pa.table({"example_id": ["a"], "label": [1]}))
        rows = store.performance(
            "m", metrics=[*CELLS, "business_value"], window="100 years",
            normalize_confusion_matrix="true", business_value_matrix=MATRIX,
        ).to_pylist()  # fmt: skip
        got = {r["metric"]: r for r in rows}
        assert got["tp"]["value"] == 1.0 and got["fn"]["value"] == 0.0
        assert got["tn"]["value"] is None and got["fp"]["value"] is None
        assert (
            got["tn"]["reason"] == "no negative labels: tn normalised by the true class undefined"
        )
        assert got["business_value"]["value"] == 30.0
        assert got["business_value"]["ci_low"] is None


def test_default_metrics_leave_the_cells_out_and_sql_gets_them_by_name(data):
    store, frame = data
    default = set(store.performance("m", window="100 years", n_boot=0)["metric"].to_pylist())
    assert default.isdisjoint({*CELLS, "business_value"}) and "accuracy" in default
    rows = store.sql(
        "SELECT metric, value FROM evalstore.performance_binary('m.evaluations', 'm', NULL, "
        "'100 years', NULL, NULL, NULL, NULL, 10, 1.96, NULL, 0.9, "
        "['tp', 'fp', 'fn', 'tn', 'business_value'], 'all', [[1.5, -4.0], [-20.0, 30.0]], "
        "'per_prediction') ORDER BY metric"
    ).to_pylist()
    y_true, y_pred = _decisions(frame, None)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1], normalize="all").ravel()
    want = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    want["business_value"] = np.array(MATRIX)[y_true, y_pred].mean()
    assert {r["metric"]: pytest.approx(r["value"], abs=TOL) for r in rows} == want


def test_worst_slices_business_value_is_welch_on_per_row_values(data):
    store, frame = data
    found = store.worst_slices(
        "m", "business_value", features=["region"], pairs=False, include_all=True,
        min_support=1, business_value_matrix=MATRIX,
    ).to_pandas()  # fmt: skip
    rows = frame.assign(decided=frame["score"].notna() | frame["prediction"].notna())
    for region in ("north", "south", "east"):
        inside, rest = rows[rows["region"] == region], rows[rows["region"] != region]
        values = [np.array(MATRIX)[_decisions(part, None)] for part in (inside, rest)]
        got = found[found["slice"] == f"region = '{region}'"].iloc[0]
        assert got["value"] == pytest.approx(values[0].mean(), abs=TOL)
        assert got["rest_value"] == pytest.approx(values[1].mean(), abs=TOL)
        want = stats.ttest_ind(values[0], values[1], equal_var=False, alternative="less")
        assert got["p_value"] == pytest.approx(want.pvalue, rel=1e-9)
        assert got["variant"].startswith("decision=logged (") and "business value" in got["variant"]


def test_compare_threshold_is_a_what_if():
    """compare(threshold=t): each version decides score >= t (the logged prediction where it
    has no score); accuracy and disagreement as numpy; variant names the rule."""
    with blank_store() as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "binary", classes=[0, 1])
        rng = np.random.default_rng(5)
        n = 300
        ids = [f"e{i}" for i in range(n)]
        y = (rng.random(n) < 0.5).astype(int)
        scores = {v: np.round(rng.random(n), 1) for v in ("v1", "v2")}
        scores["v2"][:10] = np.nan
        logged = {v: (rng.random(n) < 0.5).astype(int) for v in ("v1", "v2")}
        for v in ("v1", "v2"):
            store.log_predictions(
                "m", pa.table({"example_id": ids, "score": pa.array(scores[v], from_pandas=True),
                               "prediction": logged[v]}), v,
            )  # fmt: skip
        store.log_labels("m", pa.table({"example_id": ids, "label": y}))
        got = {
            r["metric"]: r
            for r in store.compare("m", "v1", "v2", window="100 years", threshold=0.5).to_pylist()
        }
        decided = {
            v: np.where(np.isnan(scores[v]), logged[v], scores[v] >= 0.5).astype(int)
            for v in ("v1", "v2")
        }
        right = {v: decided[v] == y for v in decided}
        assert got["disagreement"]["value"] == pytest.approx(
            np.mean(decided["v1"] != decided["v2"]), abs=TOL
        )
        assert got["accuracy"]["value_a"] == pytest.approx(right["v1"].mean(), abs=TOL)
        assert got["accuracy"]["value_b"] == pytest.approx(right["v2"].mean(), abs=TOL)
        assert got["accuracy"]["n_a_only"] == int((right["v1"] & ~right["v2"]).sum())
        assert got["accuracy"]["variant"].startswith("decision=score>=0.5 (what-if")
        logged_rows = store.compare("m", "v1", "v2", window="100 years").to_pylist()
        accuracy = next(r for r in logged_rows if r["metric"] == "accuracy")
        assert accuracy["value_a"] == pytest.approx(np.mean(logged["v1"] == y), abs=TOL)
        assert accuracy["variant"].startswith("decision=logged")


def test_the_sql_names_nannyml_chunks_in_variant(data):
    store, _ = data
    rows = store.sql(
        "SELECT DISTINCT variant FROM evalstore.performance_binary('m.evaluations', 'm', NULL, "
        "NULL, 0, 4, NULL, NULL, 10, 1.96, NULL, 0.9, ['tp', 'brier'], NULL, NULL, NULL)"
    ).column("variant")
    assert len(rows) == 2 and all(
        v.endswith("; chunks split as NannyML (floor(rows / n) rows each, remainder last)")
        and v.count("NannyML") == 1
        for v in rows.to_pylist()
    )
    table = store.performance("m", metrics="tp", window={"chunks": 4, "split": "nannyml"})
    assert all(v.count("chunks split as NannyML") == 1 for v in table["variant"].to_pylist())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"metrics": "business_value"}, r"metric business_value needs business_value_matrix="),
        ({"business_value_matrix": [[1, 2], [3]]}, r"=\[\[1, 2\], \[3\]\] must be a 2 x 2"),
        ({"business_value_matrix": [[1, 2], [3, float("nan")]]}, r"must be a 2 x 2 list of finite"),
        ({"normalize_confusion_matrix": "rows"}, r"normalize_confusion_matrix='rows' must be None"),
        ({"normalize_business_value": "per_row"}, r"normalize_business_value='per_row' must be"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_before_any_work(data, options, match):
    store, _ = data
    with pytest.raises(InvalidParameterError, match=match):
        store.performance("m", window="1 day", **options)


def test_options_of_binary_models_only():
    with blank_store() as store:
        store.register_model("r", "v1", "regression")
        with pytest.raises(InvalidParameterError, match=r"business_value_matrix applies to binary"):
            store.performance("r", business_value_matrix=MATRIX)
        with pytest.raises(
            InvalidParameterError, match=r"metrics=\['tp'\]: \['tp'\] not available"
        ):
            store.performance("r", metrics=["tp"])
