"""A binary model's store with the awkward cases the engines must agree on: ties, NULLs,
NaN, a categorical feature with a category unseen in training, predictions of two
versions, late labels (logged days after their predictions) and label corrections (a
later batch relabels some examples); ``lake_store`` is a template file of it and
``lake_path`` its lake, exported once per module. ``spark`` is the one local Spark
session of the test run (skips when pyspark or Java is missing)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from tests.conftest import copy_store

T0 = datetime(2025, 6, 2, tzinfo=UTC)
TRAIN, SERVE = 300, 400


def build(store: evalstore.Store) -> None:
    """Fill ``store`` with model ``m`` (see the module docstring); deterministic."""
    rng = np.random.default_rng(7)
    store.register_model("m", "v1", "binary", classes=["no", "yes"], positive_class="yes")
    store.register_model("m", "v2", "binary", classes=["no", "yes"], positive_class="yes")

    def features(n: int, shift: float, start: datetime, step: timedelta, prefix: str) -> pa.Table:
        # rounded values: many ties; every 17th x NULL, every 23rd NaN
        x = np.round(rng.normal(shift, 1.0, n), 1)
        xs = [None if i % 17 == 0 else float("nan") if i % 23 == 0 else float(v)
              for i, v in enumerate(x)]  # fmt: skip
        cats = ["a", "b", "c"] if prefix == "t" else ["a", "b", "c", "d"]
        c = [
            None if i % 19 == 0 else cats[int(v)]
            for i, v in enumerate(rng.integers(0, len(cats), n))
        ]
        k = rng.integers(0, 5, n).astype(float)  # a low-cardinality numeric: heavy ties
        return pa.table({
            "example_id": [f"{prefix}{i}" for i in range(n)],
            "ts": [start + i * step for i in range(n)],
            "x": pa.array(xs, pa.float64()),
            "k": k,
            "c": c,
            "flag": [bool(v) for v in rng.integers(0, 2, n)],
        })  # fmt: skip

    training = features(TRAIN, 0.0, T0 - timedelta(days=30), timedelta(minutes=5), "t")
    store.log_features("m", training, env="training")
    served = features(SERVE, 0.4, T0, timedelta(minutes=17), "s")
    store.log_features("m", served)
    ids = served["example_id"].to_pylist()
    ts = served["ts"].to_pylist()
    truth = rng.random(SERVE) < 0.4
    for version, noise in (("v1", 0.35), ("v2", 0.25)):
        score = np.clip(np.round(truth * 0.5 + rng.normal(0.25, noise, SERVE), 2), 0, 1)
        scores = [None if i % 29 == 0 else float(s) for i, s in enumerate(score)]
        store.log_predictions("m", pa.table({
            "example_id": ids, "ts": ts,
            "prediction": ["yes" if s is not None and s >= 0.5 else "no" for s in scores],
            "score": pa.array(scores, pa.float64()),
        }), version=version)  # fmt: skip
    labels = ["yes" if t else "no" for t in truth]
    # late labels: the first 300 examples labelled 2 days after their prediction
    store.log_labels("m", pa.table({
        "example_id": ids[:300], "label": labels[:300],
        "ts": [t + timedelta(days=2) for t in ts[:300]],
    }))  # fmt: skip
    # corrections: a later batch flips every 7th of those labels
    fixed = [i for i in range(300) if i % 7 == 0]
    store.log_labels("m", pa.table({
        "example_id": [ids[i] for i in fixed],
        "label": ["no" if labels[i] == "yes" else "yes" for i in fixed],
        "ts": [ts[i] + timedelta(days=3) for i in fixed],
    }))  # fmt: skip


@pytest.fixture(scope="module")
def lake_store_file(template: Callable[..., Path]) -> Path:
    """The template store file (model ``m``)."""
    return template("engines_lake", build)


@pytest.fixture(scope="module")
def lake_store(
    lake_store_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[evalstore.Store]:
    """A copy of the template, open for the module."""
    directory = tmp_path_factory.mktemp("engines-store")
    with evalstore.open(copy_store(lake_store_file, directory)) as store:
        yield store


@pytest.fixture(scope="module")
def lake_path(lake_store: evalstore.Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lake_store``'s model ``m`` exported as a lake."""
    path = tmp_path_factory.mktemp("engines-lake") / "m"
    lake_store.export_lake("m", path)
    return path


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the whole test run (``local[2]``, the engine's
    :data:`~evalstore.engines.spark.LOCAL_SETTINGS`, no UI, quiet): a second session
    would pay the JVM's start and warm-up again."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e .[spark]")
    if shutil.which("java") is None:
        pytest.skip("Java is not on PATH: SparkEngine needs Java 17+")
    from pyspark.sql import SparkSession

    from evalstore.engines.spark import LOCAL_SETTINGS

    builder = SparkSession.builder.master("local[2]").appName("evalstore-tests")
    for key, value in {**LOCAL_SETTINGS, "spark.ui.enabled": "false"}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def assert_same(got: pa.Table, want: pa.Table, *, schema: bool = True) -> None:
    """A Spark result equals the store's: the same schema (or, with ``schema=False``, the
    same column names) and rows in the same order, at least one; floats equal to 1e-9
    (NaN equal to NaN), everything else exactly."""
    if schema:
        assert got.schema == want.schema
    else:
        assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows > 0
    assert_rows_close(got.to_pylist(), want.to_pylist(), 1e-9)


def assert_rows_close(got: list[dict], want: list[dict], tolerance: float) -> None:
    """Row by row, the same keys; floats equal to ``tolerance`` (relative and absolute; NaN
    equal to NaN), everything else exactly."""
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys(), (a, b)
        for column, x in a.items():
            y = b[column]
            if isinstance(x, float) and isinstance(y, float):
                assert (math.isnan(x) and math.isnan(y)) or x == pytest.approx(
                    y, rel=tolerance, abs=tolerance
                ), (column, a, b)
            else:
                assert x == y, (column, a, b)
