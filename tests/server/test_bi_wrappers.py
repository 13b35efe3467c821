"""The short SQL forms a BI user calls give the Python API's rows, value for value.

``evalstore.data_quality``, ``schema_validation``, ``feature_skew``,
``feature_skew_summary``, ``compare_versions`` and ``compare_regression_versions`` (see
``sql/quality.sql``, ``sql/skew.sql``, ``sql/compare.sql``) wrap the many-argument macros
with the defaults of ``store.quality``, ``validate``, ``skew``, ``skew_summary`` and
``compare``. Each is checked against its Python method on a small random store whose values
sit near those defaults (missing shares around the tolerance, skew just inside and outside
numpy.isclose's tolerance, windows below and above McNemar's exact-test switch), so a
wrapper with another default gives other rows. The performance and drift wrappers are
checked in ``tests/server/test_bi_snapshot.py``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from evalstore.errors import InvalidParameterError
from tests.conftest import blank_store

N_SERVING = 240  # 3 days of 80 serving examples
N_TRAINING = 120
N_SHARED = 60  # serving examples that the training set also holds (skew pairs)
START = datetime(2026, 10, 1, tzinfo=UTC)


def _serving_ts(rng: np.random.Generator) -> list[datetime]:
    return [
        START + timedelta(days=i % 3, minutes=int(rng.integers(0, 1440))) for i in range(N_SERVING)
    ]


def _features(rng: np.random.Generator, model: str, shared: bool) -> tuple[pa.Table, pa.Table]:
    """Training and serving features: x numeric (NULL, NaN, inf, out of range), c categorical
    (NULL, unseen). With ``shared``, serving ids s0..s59 are also training ids, their x
    equal, within numpy.isclose's default tolerance, or just outside it."""
    train_x = rng.normal(0.0, 1.0, N_TRAINING)
    train_ids = [f"s{i}" if shared and i < N_SHARED else f"t{i}" for i in range(N_TRAINING)]
    training = pa.table(
        {
            "example_id": train_ids,
            "ts": [START - timedelta(days=10, hours=i) for i in range(N_TRAINING)],
            "x": [None if i % 25 == 0 else float(v) for i, v in enumerate(train_x)],
            "c": [["u", "v", "w"][i % 3] if i % 30 else None for i in range(N_TRAINING)],
        }
    )
    x = rng.normal(0.3, 1.2, N_SERVING)
    # day 2 has many NULL x (missing fails), day 3 NaN, +inf and out-of-range values
    values: list[float | None] = [float(v) for v in x]
    for i in range(N_SERVING):
        if i % 3 == 1 and i % 9 == 1:
            values[i] = None
        if i % 3 == 2 and i % 20 == 2:
            values[i] = math.nan if i % 40 == 2 else math.inf
    if shared:  # pairs: i < N_SHARED share ids with training
        for i in range(N_SHARED):
            base = train_x[i] if i % 25 else None
            if base is None:
                values[i] = None if i % 2 else 1.0  # NULL vs NULL matches, NULL vs 1 not
                continue
            values[i] = [
                base,  # equal
                base + 1e-9,  # within atol
                base * (1 + 5e-6),  # within rtol
                base * (1 + 3e-5) + 2e-8,  # outside both
            ][i % 4]
    categories = ["u", "v", "w", "zz"]
    cats = [categories[int(rng.integers(0, 4 if i % 3 == 2 else 3))] for i in range(N_SERVING)]
    serving = pa.table(
        {
            "example_id": [f"s{i}" for i in range(N_SERVING)],
            "ts": _serving_ts(rng),
            "x": values,
            "c": [None if i % 17 == 0 else c for i, c in enumerate(cats)],
        }
    )
    return training, serving


@pytest.fixture(scope="module")
def store():
    """A store with random binary, multiclass and regression models of two versions each."""
    rng = np.random.default_rng(20261001)
    with blank_store() as s:
        for model, task in (("bin", "binary"), ("mc", "multiclass"), ("reg", "regression")):
            for version in ("v1", "v2"):
                classes = ["a", "b", "c"] if task == "multiclass" else None
                s.register_model(model, version, task, classes=classes)
            training, serving = _features(rng, model, shared=model != "mc")
            s.log_features(model, training, env="training", dataset="train")
            s.log_features(model, serving)
            ids, ts = serving.column("example_id"), serving.column("ts")
            labeled = [i for i in range(N_SERVING) if i % 5]  # 80% labeled
            truth = rng.random(N_SERVING)
            for version, noise in (("v1", 0.35), ("v2", 0.3)):
                if task == "binary":
                    # day 1 the versions mostly agree (< 25 discordant pairs), later not
                    spread = [0.05 if i % 3 == 0 else noise for i in range(N_SERVING)]
                    score = np.clip(truth + rng.normal(0, spread), 0.001, 0.999)
                    outputs = {"score": score}
                elif task == "multiclass":
                    raw = rng.dirichlet([1.0, 1.0, 1.0], N_SERVING)
                    outputs = {"a": raw[:, 0], "b": raw[:, 1], "c": raw[:, 2]}
                else:
                    prediction = truth * 10 + rng.normal(0, noise * 3, N_SERVING)
                    if version == "v1":
                        first = prediction
                    else:  # a quarter of v2's predictions are v1's within numpy.isclose
                        close = np.arange(N_SERVING) % 4 == 0
                        prediction = np.where(close, first * (1 + 1e-6), prediction)
                    outputs = {"prediction": prediction}
                table = pa.table({"example_id": ids, "ts": ts, **outputs})
                s.log_predictions(
                    model,
                    table,
                    version=version,
                    probability_columns=["a", "b", "c"] if task == "multiclass" else None,
                )
            if task == "binary":
                label = [int(truth[i] > 0.5) for i in labeled]
            elif task == "multiclass":
                label = [["a", "b", "c"][int(truth[i] * 3)] for i in labeled]
            else:
                label = [float(truth[i] * 10) for i in labeled]
            s.log_labels(
                model,
                pa.table({"example_id": [f"s{i}" for i in labeled], "label": label}),
                labeled_at="2026-10-05T00:00:00Z",
            )
        s.infer_schema("bin")
        # a tighter range than the training rows had: below_min / above_max fail
        s.sql("UPDATE evalstore.schemas SET min = -1.0, max = 1.0 WHERE model = 'bin'")
        yield s


def assert_same_rows(sql: list[dict], python: list[dict]) -> None:
    """Same rows in the same order; floats equal to 1e-12 (NaN equal to NaN)."""
    assert len(sql) == len(python) > 0
    for position, (got, want) in enumerate(zip(sql, python, strict=True)):
        assert list(got) == list(want), position
        for column, value in want.items():
            other = got[column]
            if isinstance(value, float) and isinstance(other, float):
                if math.isnan(value):
                    assert math.isnan(other), (position, column)
                else:
                    assert other == pytest.approx(value, rel=1e-12, abs=1e-15), (position, column)
            else:
                assert other == value, (position, column, want)


@pytest.mark.parametrize("model", ["bin", "mc", "reg"])
def test_data_quality_gives_store_quality(store, model):
    python = store.quality(model, window="1 day").to_pylist()
    sql = store.sql("SELECT * FROM evalstore.data_quality(?, '1 day')", [model]).to_pylist()
    assert_same_rows(sql, python)
    features = {row["feature"] for row in sql}
    # score is checked only where the task defines it (issue 25, point 2)
    assert features == (
        {"x", "c", "prediction", "label"} | ({"score"} if model == "bin" else set())
    )
    failed = {row["method"] for row in sql if row["drifted"]}
    assert {"missing", "nan", "posinf", "out_of_range", "unseen"} <= failed
    thresholds = {row["method"]: row["threshold"] for row in sql}
    assert (thresholds["rows"], thresholds["unseen"], thresholds["posinf"]) == (1, 0.01, 0)


def test_schema_validation_gives_store_validate(store):
    python = store.validate("bin", window="1 day").to_pylist()
    sql = store.sql("SELECT * FROM evalstore.schema_validation('bin', '1 day')").to_pylist()
    assert_same_rows(sql, python)
    assert {"below_min", "above_max", "missing_rate", "out_of_domain"} <= {
        r["method"] for r in sql if r["drifted"]
    }
    rates = [r for r in sql if r["method"] == "missing_rate" and r["feature"] == "x"]
    assert rates[0]["threshold"] == pytest.approx(0.05 + 5 / 120)  # expected_missing + 0.05


def test_schema_validation_without_a_saved_schema_has_no_rows(store):
    assert store.sql("SELECT * FROM evalstore.schema_validation('mc', '1 day')").num_rows == 0
    with pytest.raises(InvalidParameterError, match="model 'mc' has no saved schema"):
        store.validate("mc")


@pytest.mark.parametrize("model", ["bin", "reg", "mc"])
def test_feature_skew_gives_store_skew(store, model):
    python = store.skew(model, method=None).to_pylist()
    for row in python:  # the distance is evalstore.drift's in SQL
        for column in ("distance", "method", "variant", "distance_drifted"):
            assert row.pop(column) is None
        assert (row.pop("n_training"), row.pop("n_serving")) == (None, None)
    sql = store.sql("SELECT * FROM evalstore.feature_skew(?)", [model]).to_pylist()
    assert_same_rows(sql, python)
    x = sql[0]
    assert x["feature"] == "x"
    if model == "mc":  # no shared example: every feature listed, with the reason
        assert [(r["n_compared"], r["skewed"]) for r in sql] == [(0, None), (0, None)]
        assert {r["reason"] for r in sql} == {"no example_id is in both training and serving"}
    else:
        # of the 60 pairs, those with i % 4 == 3 are outside isclose; of the training x
        # that are NULL (i = 0, 25, 50), the even i are served as 1.0 (a NULL mismatch)
        outside = sum(1 for i in range(N_SHARED) if i % 25 and i % 4 == 3)
        null_vs_value = sum(1 for i in range(N_SHARED) if i % 25 == 0 and i % 2 == 0)
        assert x["n_compared"] == N_SHARED
        assert (x["n_mismatch"], x["n_null_mismatch"]) == (outside + null_vs_value, null_vs_value)
        assert len(x["sample_ids"]) == 5 and x["skewed"] is True


@pytest.mark.parametrize("model", ["bin", "mc"])
def test_feature_skew_summary_gives_store_skew_summary(store, model):
    python = store.skew_summary(model).to_pylist()
    sql = store.sql("SELECT * FROM evalstore.feature_skew_summary(?)", [model]).to_pylist()
    assert sql == python
    assert sql[0]["n_examples"] == (0 if model == "mc" else N_SHARED)


@pytest.mark.parametrize(
    ("model", "macro"),
    [
        ("bin", "compare_versions"),
        ("mc", "compare_versions"),
        ("reg", "compare_regression_versions"),
    ],
)
def test_compare_wrappers_give_store_compare(store, model, macro):
    python = store.compare(model, "v1", "v2", window="1 day").drop_columns(["p_value"]).to_pylist()
    sql = store.sql(f"SELECT * FROM evalstore.{macro}(?, 'v1', 'v2', '1 day')", [model]).to_pylist()
    assert_same_rows(sql, python)
    metrics = [row["metric"] for row in sql[: len(sql) // 3]]
    expected = {
        "bin": ["disagreement", "accuracy", "log_loss", "brier"],
        "mc": ["disagreement", "accuracy", "log_loss"],
        "reg": ["disagreement", "mae", "mse"],
    }[model]
    assert metrics == expected
    if model == "bin":  # both McNemar variants occur: the 25-pair switch is store.compare's
        assert {r["test"] for r in sql if r["metric"] == "accuracy"} == {
            "mcnemar exact",
            "mcnemar chi2 corrected",
        }
    if model == "reg":  # a quarter of v2's predictions are within isclose of v1's
        rates = [r["value"] for r in sql if r["metric"] == "disagreement"]
        assert all(0.6 < rate < 0.9 for rate in rates)
