"""Binary threshold metrics score the logged decision (issue 23 point 1) against scikit-learn.

The generated model decided at 0.65 (the logged ``prediction``) while its registered
threshold is 0.5 (v1) or 0.4 (v2), so ``score >= registered`` differs from what the model
did. By default accuracy, precision, recall, f1 and specificity (``performance``,
``worst_slices``) must equal scikit-learn's scores of ``y_true`` against the logged
``y_pred``; rows logged without a prediction are decided by ``score >= registered``; a
given ``threshold=t`` is a what-if equal to scikit-learn on ``score >= t`` (rows without a
score keep their logged prediction). Scores are rounded to 0.01, so many tie at 0.4, 0.5
and 0.65 exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

import evalstore

TOL = 1e-12
DECIDED_AT = 0.65
REGISTERED = {"v1": 0.5, "v2": 0.4}
CLASS_METRICS = ["accuracy", "precision", "recall", "f1", "specificity"]
BASE = datetime(2026, 3, 2, tzinfo=UTC)


def _logged_store(seed: int = 3, n: int = 2400) -> tuple[evalstore.Store, pd.DataFrame]:
    """Two versions of a binary model that decided at 0.65; some rows lack a prediction
    (decided by the registered threshold), some lack a score (logged prediction only).

    Returns the store and one row per prediction: example_id, version, region, score
    (NaN when not logged), prediction (NaN when not logged), y (NaN when unlabeled).
    """
    rng = np.random.default_rng(seed)
    store = evalstore.open()
    for version, threshold in REGISTERED.items():
        store.register_model("loan", version, "binary", classes=[0, 1], threshold=threshold)
    ids = np.array([f"e{i}" for i in range(n)])
    region = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.3, 0.2])
    ts = [BASE + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400, size=n)]
    store.log_features("loan", pa.table({"example_id": ids, "region": region, "ts": ts}))
    truth = (rng.random(n) < 0.35).astype(int)
    frames = []
    for version in REGISTERED:
        score = np.round(np.clip(truth * 0.25 + rng.random(n) * 0.75, 0, 1), 2)
        score[rng.random(n) < 0.05] = DECIDED_AT  # ties at the deployed cut-off
        score[rng.random(n) < 0.05] = REGISTERED[version]  # and at the registered one
        prediction = (score >= DECIDED_AT).astype(float)
        prediction[rng.random(n) < 0.08] = np.nan  # no logged decision
        no_score = (rng.random(n) < 0.04) & ~np.isnan(prediction)
        score[no_score] = np.nan
        prediction[no_score] = rng.integers(0, 2, size=no_score.sum())  # any logged class
        store.log_predictions(
            "loan",
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
            version=version,
        )
        frames.append(
            pd.DataFrame(
                {"example_id": ids, "version": version, "region": region, "score": score,
                 "prediction": prediction}
            )
        )  # fmt: skip
    labeled = rng.random(n) < 0.9
    store.log_labels("loan", pa.table({"example_id": ids[labeled], "label": truth[labeled]}))
    y = pd.Series(np.where(labeled, truth, np.nan), index=ids, name="y")
    expected = pd.concat(frames, ignore_index=True)
    expected["y"] = expected["example_id"].map(y)
    return store, expected


@pytest.fixture(scope="module")
def logged():
    store, expected = _logged_store()
    yield store, expected
    store.close()


def _decisions(rows: pd.DataFrame, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
    """y_true and y_pred of the labeled rows: the logged prediction (threshold None; the
    registered threshold where none was logged) or score >= threshold (the logged
    prediction where no score was logged)."""
    labeled = rows[rows["y"].notna()]
    score, logged = labeled["score"].to_numpy(), labeled["prediction"].to_numpy()
    if threshold is None:
        cut = np.array([REGISTERED[v] for v in labeled["version"]])
        y_pred = np.where(np.isnan(logged), score >= cut, logged == 1)
    else:
        y_pred = np.where(np.isnan(score), logged == 1, score >= threshold)
    return labeled["y"].to_numpy().astype(int), y_pred.astype(int)


def _sklearn(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    tn, fp, _, _ = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision_score(y_true, y_pred),
        "recall": recall_score(y_true, y_pred),
        "f1": f1_score(y_true, y_pred),
        "specificity": tn / (tn + fp),
    }


def _performance(store: evalstore.Store, **options) -> pd.DataFrame:
    table = store.performance("loan", window="100 years", metrics=CLASS_METRICS, **options)
    return table.to_pandas()


def test_the_generated_decisions_differ_from_the_registered_threshold(logged):
    """The data is a real test: score >= registered would score other decisions."""
    _, expected = logged
    for version, rows in expected.groupby("version"):
        has_both = rows["score"].notna() & rows["prediction"].notna() & rows["y"].notna()
        at_registered = rows.loc[has_both, "score"] >= REGISTERED[version]
        differ = (at_registered.astype(int) != rows.loc[has_both, "prediction"]).sum()
        assert differ > 100, (version, differ)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_default_scores_the_logged_prediction_as_sklearn(logged, version):
    store, expected = logged
    result = _performance(store, version=version)
    rows = expected[expected["version"] == version]
    want = _sklearn(*_decisions(rows, None))
    old_rule = _sklearn(*_decisions(rows.assign(prediction=np.nan), None))
    labeled = int(rows["y"].notna().sum())
    for metric in CLASS_METRICS:
        got = result[result["metric"] == metric].iloc[0]
        assert got["value"] == pytest.approx(want[metric], abs=TOL, rel=TOL), metric
        assert got["n"] == labeled and got["n_excluded"] == 0
        assert got["variant"].startswith("decision=logged ("), got["variant"]
        assert f"score >= {REGISTERED[version]}, the registered threshold" in got["variant"]
    # the registered threshold alone (the former rule) gives other numbers
    assert abs(want["recall"] - old_rule["recall"]) > 0.01
    assert abs(want["accuracy"] - old_rule["accuracy"]) > 0.005


@pytest.mark.parametrize("threshold", [0.65, 0.3, 0.5])
def test_given_threshold_is_a_what_if_on_the_scores(logged, threshold):
    store, expected = logged
    result = _performance(store, threshold=threshold)
    for version, rows in expected.groupby("version"):
        want = _sklearn(*_decisions(rows, threshold))
        cell = result[result["version"] == version]
        for metric in CLASS_METRICS:
            got = cell[cell["metric"] == metric].iloc[0]
            assert got["value"] == pytest.approx(want[metric], abs=TOL, rel=TOL), metric
            assert got["variant"].startswith(f"decision=score>={threshold} (what-if"), got[
                "variant"
            ]


def test_what_if_at_the_deployed_cut_off_differs_from_logged_only_where_logs_lack_one(logged):
    """threshold=0.65 equals the logged decisions except on rows without a logged
    prediction (decided at 0.65 instead of the registered threshold) and rows without a
    score (the same logged prediction either way)."""
    store, expected = logged
    by_default = _performance(store, version="v1")
    what_if = _performance(store, version="v1", threshold=DECIDED_AT)
    rows = expected[expected["version"] == "v1"]
    y_true, default_pred = _decisions(rows, None)
    _, what_if_pred = _decisions(rows, DECIDED_AT)
    labeled = rows[rows["y"].notna()]
    changed = default_pred != what_if_pred
    assert changed.any()
    assert np.isnan(labeled["prediction"].to_numpy()[changed]).all()
    for frame, pred in ((by_default, default_pred), (what_if, what_if_pred)):
        got = frame.loc[frame["metric"] == "accuracy", "value"].iloc[0]
        assert got == pytest.approx(accuracy_score(y_true, pred), abs=TOL)


def test_the_sql_short_form_scores_the_logged_prediction(logged):
    store, expected = logged
    rows = store.sql(
        "SELECT version, value, variant FROM evalstore.performance('loan', '100 years') "
        "WHERE metric = 'recall' ORDER BY version"
    ).to_pylist()
    for row in rows:
        want = _sklearn(*_decisions(expected[expected["version"] == row["version"]], None))
        assert row["value"] == pytest.approx(want["recall"], abs=TOL)
        assert row["variant"].startswith("decision=logged")
    assert [r["version"] for r in rows] == ["v1", "v2"]


@pytest.mark.parametrize("threshold", [None, 0.5])
@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "specificity"])
def test_worst_slices_judge_the_same_decisions(logged, metric, threshold):
    store, expected = logged
    found = store.worst_slices(
        "loan", metric, version="v2", features=["region"], pairs=False, include_all=True,
        min_support=1, threshold=threshold,
    ).to_pandas()  # fmt: skip
    rows = expected[expected["version"] == "v2"]
    checked = 0
    for region, part in rows.groupby("region"):
        got = found[found["slice"] == f"region = '{region}'"]
        assert len(got) == 1, (region, found["slice"].tolist())
        want = _sklearn(*_decisions(part, threshold))[metric]
        rest = _sklearn(*_decisions(rows[rows["region"] != region], threshold))[metric]
        assert got["value"].iloc[0] == pytest.approx(want, abs=TOL), region
        assert got["rest_value"].iloc[0] == pytest.approx(rest, abs=TOL), region
        checked += 1
    assert checked == 3


def test_rows_without_a_score_or_prediction_are_excluded_in_both_modes():
    """A labeled row with neither a score nor a prediction has no decision: n_excluded."""
    store = evalstore.open()
    try:
        store.register_model("m", "v1", "binary", classes=[0, 1], threshold=0.5)
        ids = ["a", "b", "c", "d", "e"]
        store.log_predictions(
            "m",
            pa.table(
                {
                    "example_id": ids,
                    "score": pa.array([0.9, 0.6, None, 0.3, None], pa.float64()),
                    "prediction": pa.array([0, 1, 1, None, None], pa.int64()),
                }
            ),
            version="v1",
        )
        store.log_labels("m", pa.table({"example_id": ids, "label": [1, 0, 1, 0, 1]}))
        # logged: a 0, b 1, c 1, d (no prediction) 0.3 < 0.5; what-if at 0.8: a 1, b 0,
        # c (no score) its logged 1, d 0; e has neither and is excluded
        for threshold, y_pred in ((None, [0, 1, 1, 0]), (0.8, [1, 0, 1, 0])):
            result = store.performance(
                "m", window="100 years", metrics="accuracy", threshold=threshold
            ).to_pylist()[0]
            assert result["n"] == 4 and result["n_excluded"] == 1
            assert result["value"] == accuracy_score([1, 0, 1, 0], y_pred)
    finally:
        store.close()


def test_compare_accuracy_scores_the_logged_predictions(logged):
    """store.compare's accuracy of each version is sklearn's on its logged predictions (the
    labeled examples both versions logged a prediction for)."""
    store, expected = logged
    got = store.compare("loan", "v1", "v2", window="100 years", metric="accuracy").to_pylist()
    assert len(got) == 1
    wide = expected.pivot(index="example_id", columns="version", values="prediction")
    y = expected.drop_duplicates("example_id").set_index("example_id")["y"]
    both = wide["v1"].notna() & wide["v2"].notna() & y.reindex(wide.index).notna()
    y_true = y.reindex(wide.index)[both].astype(int)
    assert got[0]["n"] == both.sum()
    assert got[0]["value_a"] == pytest.approx(accuracy_score(y_true, wide["v1"][both]), abs=TOL)
    assert got[0]["value_b"] == pytest.approx(accuracy_score(y_true, wide["v2"][both]), abs=TOL)


def test_suggest_slice_errors_count_the_logged_decisions(logged):
    """evalstore.suggest_slice_needs counts as errors the labeled examples whose logged
    prediction (score >= registered where none was logged) differs from the label."""
    store, expected = logged
    store.sql(
        "CREATE OR REPLACE TEMP VIEW logged_decision_slices AS "
        "SELECT example_key, region AS slice FROM loan.features WHERE env = 'serving'"
    )
    for version in REGISTERED:
        needs = store.sql(
            "SELECT slice, labeled, errors FROM evalstore.suggest_slice_needs("
            "'loan', ?, 'temp.main.logged_decision_slices', 0) ORDER BY slice",
            params=[version],
        ).to_pylist()
        rows = expected[expected["version"] == version]
        want = []
        for region, part in sorted(rows.groupby("region")):
            y_true, y_pred = _decisions(part, None)
            want.append({"slice": region, "labeled": len(y_true),
                         "errors": float((y_true != y_pred).sum())})  # fmt: skip
        assert needs == want, version


def test_compare_names_the_decision_rule_and_the_nannyml_split(logged):
    """compare's variant: decision=logged by default, decision=score>=t for a what-if, and
    the SQL names NannyML's chunk split (evalstore.split_variant), once."""
    store, _ = logged
    split = "chunks split as NannyML (floor(rows / n) rows each, remainder last)"
    rows = store.compare(
        "loan", "v1", "v2", window={"chunks": 3, "split": "nannyml"}, threshold=0.5
    ).to_pylist()
    assert {r["metric"] for r in rows} == {"disagreement", "accuracy", "log_loss", "brier"}
    for row in rows:
        assert row["variant"].endswith(split) and row["variant"].count("NannyML") == 1
        if row["metric"] in ("disagreement", "accuracy"):
            assert row["variant"].startswith("decision=score>=0.5 (what-if")
    plain = store.compare("loan", "v1", "v2", window="100 years", metric="disagreement")
    assert plain["variant"][0].as_py().startswith("decision=logged (")
    assert split not in plain["variant"][0].as_py()
