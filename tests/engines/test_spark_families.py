"""SparkEngine's performance, quality and skew (evalstore.engines.spark_families) and the
version= / where= restriction on a real Spark (local[2]) against the embedded store: every
row equal to the store's to 1e-9 (same columns, types, order, texts).

Data: model ``m`` of tests/engines/conftest.py (binary: ties, NULL, NaN, an unseen
category, two versions, late labels and corrections), and here a second store with a
regression model ``r`` whose serving rows repeat training examples (skew: values equal,
within tolerance, off, NaN, NULL on one side) and a multiclass model ``k`` with class
probabilities; each model exported as a lake. One Spark call per family and option set,
each checking every row.

Skipped, with the reason, when pyspark or Java is missing (``pip install -e .[spark]``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.core.sql_policy import UnsafeSqlError
from evalstore.errors import InvalidParameterError, UnknownModelError
from tests.conftest import copy_store
from tests.engines.conftest import assert_same

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e .[spark]")
if shutil.which("java") is None:
    pytest.skip("Java is not on PATH: SparkEngine needs Java 17+", allow_module_level=True)

from evalstore.engines.spark import SparkEngine  # noqa: E402
from evalstore.engines.spark_families import SparkFamilies  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]

T0 = datetime(2025, 6, 2, tzinfo=UTC)


if issubclass(SparkEngine, SparkFamilies):
    _Engine = SparkEngine
else:

    class _Engine(SparkFamilies, SparkEngine):  # type: ignore[no-redef]
        """SparkEngine with the families, until SparkEngine inherits SparkFamilies."""

        def _drift_rows(self, model: str, reference: Any = "training", window: Any = "1 day",
                        features: Any = None, methods: Any = None, version: str | None = None,
                        where: str | None = None, **options: Any) -> pa.Table:  # fmt: skip
            # the change H2's report asks of SparkEngine._drift_rows (version=, where=)
            if version is not None or where is not None:
                return self._with_restriction(
                    lambda: SparkEngine._drift_rows(self, model, reference, window, features,
                                                    methods, **options),
                    model, reference, version, where,
                )  # fmt: skip
            return SparkEngine._drift_rows(self, model, reference, window, features, methods,
                                           **options)  # fmt: skip


@pytest.fixture(scope="module")
def engine(spark: Any, lake_path: Path) -> Iterator[_Engine]:
    with _Engine(spark, lake_path) as opened:
        yield opened


def build_others(store: evalstore.Store) -> None:
    """Regression model ``r`` (skew pairs, late labels, a correction) and multiclass ``k``."""
    rng = np.random.default_rng(5)
    store.register_model("r", "v1", "regression")
    n = 120
    x = np.round(rng.normal(0, 1, n), 2)
    c = [["a", "b", "c"][i % 3] for i in range(n)]
    ids = [f"e{i}" for i in range(n)]
    store.log_features("r", pa.table({
        "example_id": ids, "ts": [T0 - timedelta(days=20, minutes=i) for i in range(n)],
        "x": pa.array([None if i % 31 == 0 else float("nan") if i % 37 == 0 else float(v)
                       for i, v in enumerate(x)], pa.float64()),
        "c": c,
    }), env="training")  # fmt: skip
    # serving: the same examples (80 of them), values equal, within 1e-9, off, NaN, NULL
    served = ids[:80]
    xs = []
    for i in range(80):
        v = None if i % 31 == 0 else float("nan") if i % 37 == 0 else float(x[i])
        if i % 11 == 3:
            v = float("nan") if i % 2 else None
        elif v is not None and i % 5 == 1:
            v += 1e-9
        elif v is not None and i % 7 == 2:
            v += 0.5
        xs.append(v)
    ts = [T0 + timedelta(hours=7 * i) for i in range(80)]
    store.log_features("r", pa.table({
        "example_id": served, "ts": ts, "x": pa.array(xs, pa.float64()),
        "c": [None if i % 13 == 4 else ("d" if i % 9 == 0 else c[i]) for i in range(80)],
    }))  # fmt: skip
    truth = np.round(rng.normal(10, 3, 80), 1)
    store.log_predictions("r", pa.table({
        "example_id": served, "ts": ts,
        "prediction": [None if i % 17 == 5 else float(v)
                       for i, v in enumerate(np.round(truth + rng.normal(0, 1, 80), 1))],
    }), version="v1")  # fmt: skip
    store.log_labels("r", pa.table({
        "example_id": served[:70], "label": [float(v) for v in truth[:70]],
        "ts": [t + timedelta(days=1) for t in ts[:70]],
    }))  # fmt: skip
    store.log_labels("r", pa.table({"example_id": served[:70:9],
                                    "label": [0.0] * len(served[:70:9])}))  # fmt: skip

    classes = ["cat", "dog", "eel"]
    store.register_model("k", "v1", "multiclass", classes=classes)
    m = 150
    kids = [f"k{i}" for i in range(m)]
    kts = [T0 + timedelta(hours=5 * i) for i in range(m)]
    store.log_features("k", pa.table({"example_id": kids, "ts": kts, "w": rng.normal(0, 1, m),
                                      # below 1e-3: Spark's text of a double is 8.5E-4
                                      "tiny": [0.00085 + i * 1e-6 for i in range(m)],
                                      # slice keys whose Spark text differs from DuckDB's
                                      "opened": [None if i % 11 == 0 else
                                                 datetime(2024, 12, 28, 9, 5, 1, 250,
                                                          tzinfo=UTC) + timedelta(days=i % 5)
                                                 for i in range(m)],
                                      "tags": [None if i % 13 == 0 else [] if i % 13 == 1 else
                                               ["a, b"] if i % 3 == 0 else ["b", "a"][: 1 + i % 2]
                                               for i in range(m)]}))  # fmt: skip
    truth_k = rng.choice(classes, size=m, p=[0.5, 0.35, 0.15])
    logits = rng.normal(size=(m, 3)) + 1.5 * (truth_k[:, None] == np.array(classes))
    probs = np.round(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), 3)
    probs[:, 2] = 1 - probs[:, 0] - probs[:, 1]
    store.log_predictions("k", pa.table({
        "example_id": kids, "ts": kts, "prediction": np.array(classes)[probs.argmax(axis=1)],
        "p_cat": probs[:, 0], "p_dog": probs[:, 1], "p_eel": probs[:, 2],
    }), version="v1", probability_columns={k: f"p_{k}" for k in classes})  # fmt: skip
    labeled = [i for i in range(m) if i % 6]
    store.log_labels("k", pa.table({
        "example_id": [kids[i] for i in labeled], "label": [truth_k[i] for i in labeled],
        "ts": [kts[i] + timedelta(hours=30) for i in labeled],
    }))  # fmt: skip


@pytest.fixture(scope="module")
def others(
    template: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[evalstore.Store, dict[str, Path]]]:
    directory = tmp_path_factory.mktemp("spark-families")
    path = copy_store(template("spark_families_others", build_others), directory)
    with evalstore.open(path) as store:
        lakes = {}
        for model in ("r", "k"):
            lakes[model] = directory / f"lake-{model}"
            store.export_lake(model, lakes[model])
        yield store, lakes


def test_performance_binary_version_where_slices(
    engine: _Engine, lake_store: evalstore.Store
) -> None:
    """Every binary metric (confusion cells and business value too), one version, a
    where predicate, slices by a numeric feature's quantile bins, a categorical feature
    and named predicates, weekly windows."""
    options: dict[str, Any] = dict(
        metrics=["accuracy", "precision", "recall", "f1", "specificity", "roc_auc",
                 "average_precision", "log_loss", "brier", "ece", "tp", "fp", "fn", "tn",
                 "business_value"],
        window="7 days", version="v1", where="k < 4 OR x IS NULL",
        by=["x", "c", {"high": "score >= 0.5", "any": "score IS NOT NULL"}],
        business_value_matrix=[[1, -2], [-5, 10]],
    )  # fmt: skip
    got = engine.performance("m", **options)
    want = lake_store.performance("m", **options)
    assert_same(got, want)
    metrics = set(got.column("metric").to_pylist())
    assert {"roc_auc", "tp", "business_value", "ece"} <= metrics
    assert set(got.column("version").to_pylist()) == {"v1"}
    assert any(r["reason"] for r in got.to_pylist())  # empty slices and undefined metrics
    aucs = [r for r in got.to_pylist() if r["metric"] == "roc_auc" and r["ci_low"] is not None]
    assert aucs and all(r["ci_low"] <= r["value"] <= r["ci_high"] for r in aucs)


def test_performance_regression_and_multiclass(
    spark: Any, others: tuple[evalstore.Store, dict[str, Path]]
) -> None:
    """Regression in 3 chunks (NannyML's split) and multiclass per day, per-class rows,
    log loss from the probability maps, late labels and a correction."""
    store, lakes = others
    with _Engine(spark, lakes["r"]) as regression:
        window = {"chunks": 3, "split": "nannyml"}
        assert_same(regression.performance("r", window=window),
                    store.performance("r", window=window))  # fmt: skip
    with _Engine(spark, lakes["k"]) as multiclass:
        got = multiclass.performance("k", where="w > -1")
        assert_same(got, store.performance("k", where="w > -1"))
    assert {"precision", "macro_f1", "log_loss"} <= set(got.column("metric").to_pylist())


def test_performance_by_timestamp_and_list(
    spark: Any, others: tuple[evalstore.Store, dict[str, Path]]
) -> None:
    """Slices by a timestamp and a list feature (NULLs, an empty list, a list whose
    element holds ', ') and a where predicate on the timestamp: the slice labels are the
    store's DuckDB texts ('2024-12-30 09:05:01.00025+00', "['a, b']"), where Spark's
    text would be '2024-12-30 09:05:01.00025' and '[a, b]'."""
    store, lakes = others
    options: dict[str, Any] = dict(
        metrics=["accuracy", "macro_f1"], window="7 days", by=["opened", "tags"],
        where="opened IS NULL OR opened >= '2024-12-29 00:00:00+00'",
    )  # fmt: skip
    with _Engine(spark, lakes["k"]) as engine:
        got = engine.performance("k", **options)
    assert_same(got, store.performance("k", **options))
    opened = set(got.column("opened").to_pylist())
    tags = set(got.column("tags").to_pylist())
    assert "2024-12-30 09:05:01.00025+00" in opened and None in opened
    assert {"['a, b']", "[b, a]", "[b]", "[]", None} <= tags
    assert "2024-12-28 09:05:01.00025+00" not in opened  # before the where bound


def test_quality_version_where(engine: _Engine, lake_store: evalstore.Store) -> None:
    """Every check of numeric and categorical features and of the outputs, one version,
    a where predicate, and the empty windows between since and until."""
    options: dict[str, Any] = dict(
        version="v2", where="c <> 'b' OR k = 0", since="2025-06-01", until="2025-06-08"
    )
    got = engine.quality("m", **options)
    want = lake_store.quality("m", **options)
    assert_same(got, want)
    assert {"rows", "missing", "nan", "out_of_range", "unseen"} <= set(
        got.column("method").to_pylist()
    )
    assert 0 in got.column("n_analysis").to_pylist()  # 2025-06-01: before the serving rows


def test_quality_texts_of_small_numbers(
    spark: Any, others: tuple[evalstore.Store, dict[str, Path]]
) -> None:
    """A reference range below 1e-3 is written in quality's texts as the store writes it
    (0.00085, where Spark's cast of a double writes 8.5E-4): the texts are built on the
    driver."""
    store, lakes = others
    options: dict[str, Any] = dict(reference={"previous": 1}, features=["tiny"])
    with _Engine(spark, lakes["k"]) as engine:
        got = engine.quality("k", **options)
    want = store.quality("k", **options)
    assert_same(got, want)
    sources = got.column("threshold_source").to_pylist()
    assert any("reference range [0.00085" in (text or "") for text in sources)


def test_skew_with_where(spark: Any, others: tuple[evalstore.Store, dict[str, Path]]) -> None:
    """Skew: mismatch counts (within tolerance, off, NaN, NULL on one side), sample ids
    and the JS distance (the engine's drift, numeric and categorical) under a where
    predicate."""
    store, lakes = others
    with _Engine(spark, lakes["r"]) as engine:
        got = engine.skew("r", where="c <> 'c'", sample=3)
        assert_same(got, store.skew("r", where="c <> 'c'", sample=3))
        rows = {r["feature"]: r for r in got.to_pylist()}
        assert rows["x"]["n_mismatch"] > rows["x"]["n_null_mismatch"] > 0
        assert rows["c"]["n_mismatch"] > 0 and rows["x"]["distance"] is not None


def test_drift_version_where(engine: _Engine, lake_store: evalstore.Store) -> None:
    options: dict[str, Any] = dict(methods=["ks", "psi", "chi2", "unseen"], version="v2",
                                   where="flag AND c IN ('a', 'd')")  # fmt: skip
    got = engine.drift("m", **options)
    assert_same(got, lake_store.drift("m", **options))
    assert set(got.column("version").to_pylist()) <= {None, "v2"}


def test_errors(engine: _Engine) -> None:
    """Checked before any Spark job: unknown version, where predicates the store's checker
    refuses, a rolling reference for slices."""
    with pytest.raises(UnknownModelError, match=r"model 'm' has no version 'v9' in the lake"):
        engine.performance("m", version="v9")
    with pytest.raises(InvalidParameterError, match=r"refers to unknown column 'nope'"):
        engine.quality("m", where="nope > 1")
    with pytest.raises(UnsafeSqlError, match=r"may not call"):
        engine.performance("m", where="read_csv('x') IS NULL")
    with pytest.raises(InvalidParameterError, match=r"must be a single predicate expression"):
        engine.skew("m", where="1; DROP TABLE x")
    with pytest.raises(InvalidParameterError, match=r"cannot bin features"):
        engine.performance("m", by="x", reference={"previous": 1})
