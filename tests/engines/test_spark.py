"""SparkEngine on a real Spark (local[2], the test run's one session: tests/engines/conftest.py)
against the embedded store: every row of drift equals the store's to 1e-9 (same windows,
features, methods, variants, p-values and decisions), on the data of
tests/engines/conftest.py (ties, NULL, NaN, an unseen category, two versions, late labels
and corrections) exported as a lake. Each Spark call costs seconds, so the default call's
rows come from ``materialize`` once (module fixture ``materialized``) and two tests check
them: against ``store.drift``, and as written into the store's metric history.

Skipped, with the reason, when pyspark or Java is missing (``pip install -e .[spark]``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e .[spark]")
if shutil.which("java") is None:
    pytest.skip("Java is not on PATH: SparkEngine needs Java 17+", allow_module_level=True)

from evalstore.engines.spark import SparkEngine  # noqa: E402
from tests.engines.conftest import assert_same  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine(spark: Any, lake_path: Path) -> Iterator[SparkEngine]:
    with SparkEngine(spark, lake_path) as opened:
        yield opened


NUMERIC = ["ks", "wasserstein", "psi", "js", "kl", "hellinger", "d1", "zscore"]
CATEGORICAL = ["chi2", "linf", "unseen", "psi", "js", "hellinger"]
#: Every method on Spark, daily windows against the training rows.
DEFAULT: dict[str, Any] = dict(methods=list(dict.fromkeys(NUMERIC + CATEGORICAL)), window="1 day")


@pytest.fixture(scope="module")
def materialized(
    engine: SparkEngine, lake_store_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[pa.Table, evalstore.Store]]:
    """``engine.materialize(store, 'drift', 'm', **DEFAULT)`` on a copy of the lake's store:
    the rows it returns (those of ``SparkEngine.drift`` with the same arguments) and the
    store, open."""
    from tests.conftest import copy_store

    directory = tmp_path_factory.mktemp("engines-materialized")
    with evalstore.open(copy_store(lake_store_file, directory)) as store:
        yield engine.materialize(store, "drift", "m", **DEFAULT), store


def test_drift_default_methods(
    engine: SparkEngine,
    lake_store: evalstore.Store,
    materialized: tuple[pa.Table, evalstore.Store],
) -> None:
    """Every numeric and categorical method, reference training, daily windows: the
    Spark rows (from materialize, which returns ``SparkEngine.drift``'s rows) equal the
    store's."""
    got, _ = materialized
    want = lake_store.drift("m", **DEFAULT)
    assert_same(got, want, schema=False)
    assert set(got.column("method").to_pylist()) == set(DEFAULT["methods"])
    assert {"x", "k", "c", "flag", "score"} <= set(got.column("feature").to_pylist())
    assert any(p is not None for p in got.column("p_value").to_pylist())
    assert any(got.column("drifted").to_pylist())


def test_drift_rolling_chunks_and_variants(
    engine: SparkEngine, lake_store: evalstore.Store
) -> None:
    """Row chunks compared with the previous chunk; pooled Doane bins, leftover bins, JS
    divergence in base 2, raw Wasserstein, no Yates; BH correction."""
    options: dict[str, Any] = dict(
        reference={"previous": 1}, window={"chunks": 3}, binning="doane", pooled=True,
        zero_bins="leftover", js="divergence", log_base=2, wasserstein="raw", yates=False,
        correction="bh",
    )  # fmt: skip
    got = engine.drift("m", methods=["ks", "psi", "js", "wasserstein", "chi2"], **options)
    want = lake_store.drift("m", methods=["ks", "psi", "js", "wasserstein", "chi2"], **options)
    assert_same(got, want, schema=False)


def test_errors(engine: SparkEngine) -> None:
    with pytest.raises(UnknownModelError, match=r"model 'nope' is not in the lake"):
        engine.drift("nope")
    with pytest.raises(UnknownModelError, match=r"model 'm' has no version 'v9' in the lake"):
        engine.drift("m", version="v9")
    with pytest.raises(InvalidParameterError, match=r"month-free widths"):
        engine.drift("m", window="1 month", methods=["psi"])
    with pytest.raises(InvalidParameterError, match=r"unknown options \['bogus'\]"):
        engine.drift("m", bogus=1)


def test_materialize_writes_the_store_history(
    materialized: tuple[pa.Table, evalstore.Store],
) -> None:
    """materialize stores the Spark rows where store.drift(persist=True) keeps them: the
    store's persisted call then reads them back (same rows), marked engine = 'spark'."""
    written, store = materialized
    engines = store.sql(  # drift's rows (another test of the module adds performance's)
        "SELECT engine, count(*) AS n FROM evalstore.metric_history WHERE family = 'drift' "
        "GROUP BY ALL"
    ).to_pylist()
    assert engines == [{"engine": "spark", "n": written.num_rows}]
    assert_same(store.drift("m", persist=True, **DEFAULT), written, schema=False)
    assert store.sql(
        "SELECT count(*) AS n FROM evalstore.metric_history WHERE engine <> 'spark'"
    ).to_pylist() == [{"n": 0}]


def test_materialize_performance_and_refusal(
    engine: SparkEngine, materialized: tuple[pa.Table, evalstore.Store]
) -> None:
    """performance materialized on Spark is stored where store.performance(persist=True)
    keeps it (read back as the same rows, marked engine = 'spark') and equals a fresh
    store call; families the history does not keep are refused."""
    _, store = materialized
    options: dict[str, Any] = dict(metrics=["accuracy", "roc_auc", "f1"], window="1 day")
    written = engine.materialize(store, "performance", "m", **options)
    assert_same(written, store.performance("m", **options))
    counts = store.sql(
        "SELECT engine, count(*) AS n FROM evalstore.metric_history "
        "WHERE family = 'performance' GROUP BY ALL"
    ).to_pylist()
    assert counts == [{"engine": "spark", "n": written.num_rows}]
    assert_same(store.performance("m", persist=True, **options), written)
    with pytest.raises(InvalidParameterError, match=r"writes one of drift, performance, quality"):
        engine.materialize(store, "skew", "m")


def test_methods_not_on_spark_are_refused(engine: SparkEngine) -> None:
    with pytest.raises(
        InvalidParameterError,
        match=r"methods \['energy_distance'\] are not on "
        r"SparkEngine yet .* choose from ks, wasserstein",
    ):
        engine.drift("m", methods=["ks", "energy_distance"])
