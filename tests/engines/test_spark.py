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
from sqlglot import exp

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


NUMERIC = ["ks", "wasserstein", "psi", "js", "kl", "hellinger", "d1", "zscore", "tvd",
           "energy_distance", "cramer_von_mises"]  # fmt: skip
CATEGORICAL = ["chi2", "linf", "unseen", "psi", "js", "hellinger", "tvd", "g_test",
               "chisquare_gof", "z_test", "fisher_exact"]  # fmt: skip
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
    with_p = {r["method"] for r in got.to_pylist() if r["p_value"] is not None}
    assert with_p == {"ks", "chi2", "g_test", "chisquare_gof", "z_test", "fisher_exact",
                      "cramer_von_mises"}  # fmt: skip
    assert any(got.column("drifted").to_pylist())


def test_learned_thresholds(engine: SparkEngine, lake_store: evalstore.Store) -> None:
    """thresholds='learned' (4 reference chunks, k = 2): the ranges learned on Spark, and
    so the decisions, equal the store's; a rolling reference cannot learn."""
    options: dict[str, Any] = dict(
        methods=["ks", "psi", "wasserstein", "chi2", "linf"], learn_chunks=4, learn_k=2.0,
        thresholds={"psi": "learned", "wasserstein": "learned", "linf": "learned"},
    )  # fmt: skip
    got = engine.drift("m", **options)
    want = lake_store.drift("m", **options)
    assert_same(got, want, schema=False)
    sources = {(r["method"], r["threshold_source"]) for r in got.to_pylist()}
    assert ("psi", "learned: mean ± 2.0 sd over 4 reference chunks") in sources
    assert ("linf", "learned: mean ± 2.0 sd over 4 reference chunks") in sources
    with pytest.raises(InvalidParameterError, match=r"learned thresholds need a fixed reference"):
        engine.drift("m", reference={"previous": 1}, thresholds={"psi": "learned"})


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
        match=r"methods \['welch_t', 'anderson'\] are not on "
        r"SparkEngine yet .* choose from ks, wasserstein",
    ):
        engine.drift("m", methods=["ks", "welch_t", "anderson"])


def _quantile_table(rng: Any) -> pa.Table:
    """Groups of 0, 1, 2, 3 and 1,000+ values: ties (rounded), NULL, NaN and infinities;
    group 'nulls' holds only NULLs."""
    import numpy as np

    groups, values = [], []
    for name, n in (("one", 1), ("two", 2), ("three", 3), ("big", 1037), ("ties", 500)):
        x = rng.normal(0, 1e3, n)
        if name == "ties":
            x = np.round(x / 300)
        groups += [name] * n
        values += [float(v) for v in x]
    values[50] = None
    values[51] = float("nan")
    values[52] = float("inf")
    values[53] = float("-inf")
    groups += ["nulls"] * 3
    values += [None] * 3
    return pa.table({"g": groups, "x": pa.array(values, pa.float64())})


def test_quantiles_by_sort_are_duckdbs_to_the_bit(spark: Any) -> None:
    """quantile_cont (scalar and list levels, grouped and global, a WHERE) on Spark through
    the engine's rewrite (a sort with rank and count per group, DuckDB's interpolation)
    gives DuckDB's own doubles exactly, NULL for an empty group; Spark's ``percentile``
    (which interpolated differently) is not in the Spark SQL."""
    import duckdb
    import numpy as np

    from evalstore.engines.spark_sql import from_duckdb

    table = _quantile_table(np.random.default_rng(11))
    rows = list(zip(table["g"].to_pylist(), table["x"].to_pylist(), strict=True))
    spark.createDataFrame(rows, "g STRING, x DOUBLE").createOrReplaceTempView("q")
    levels = "[0.1, 0.25, 0.5, 0.9, 0.999, 1.0, 0.0]"
    grouped = (
        f"SELECT g, count(*) AS n, quantile_cont(x, 0.9) AS p90, "
        f"quantile_cont(x, {levels}) AS ps FROM q WHERE g <> 'one' OR x > -1e9 "
        "GROUP BY g ORDER BY g"
    )
    overall = "SELECT quantile_cont(q.x, 0.37) AS p37, min(q.x) AS lo FROM q AS q WHERE q.g = 'big'"
    for sql in (grouped, overall):
        spark_sql = from_duckdb(sql)
        assert "percentile" not in spark_sql.lower()
        got = [row.asDict() for row in spark.sql(spark_sql).collect()]
        with duckdb.connect() as con:
            con.register("q", table)
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            want = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        assert len(got) == len(want) > 0
        for a, b in zip(got, want, strict=True):
            assert _bitwise(a) == _bitwise(b), (a, b)
    assert want[0]["lo"] < 0  # the global query had rows


def _bitwise(row: dict[str, Any]) -> dict[str, Any]:
    """The row with each double as its exact value (``float.hex``; NaN as 'nan'), except
    that -0.0 counts as 0.0: DuckDB sorts the two zeros as equal, so which of them a
    quantile lands on among tied zeros is its sort's choice."""

    def exact(v: Any) -> Any:
        if isinstance(v, list):
            return [exact(x) for x in v]
        return (v + 0.0).hex() if isinstance(v, float) else v

    return {k: exact(v) for k, v in row.items()}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT quantile_cont(a.x, 0.5) FROM a JOIN b ON a.k = b.k", "only in a SELECT over one"),
        ("SELECT k, quantile_cont(x, 0.5) FROM t GROUP BY ALL", "under GROUP BY ALL"),
        ("SELECT k, quantile_cont(x, 0.5) FROM t GROUP BY 1", r"position or an output alias \(1\)"),
        ("SELECT lower(k) AS kk, quantile_cont(x, 0.5) FROM t GROUP BY kk", r"alias \(kk\)"),
        ("SELECT quantile_cont(x, 0.5) FILTER (WHERE x > 0) FROM t", "with FILTER or OVER"),
        ("SELECT quantile_cont(x, t.q) FROM t", "levels must be a constant or a written-out list"),
        ("SELECT quantile_cont(x, CAST(? AS DOUBLE[])) FROM t", "levels must be a constant"),
    ],
)
def test_quantile_shapes_without_a_rewrite_are_refused(sql: str, message: str) -> None:
    """Shapes the sort rewrite would get wrong are refused by name, never run."""
    from evalstore.engines.spark_sql import from_duckdb

    with pytest.raises(InvalidParameterError, match=message):
        from_duckdb(sql)


def test_time_arithmetic_is_duckdbs_to_the_bit(spark: Any, lake_store: evalstore.Store) -> None:
    """``epoch`` and ``evalstore.hours_between`` of TIMESTAMPTZ values (before and after
    1970) on Spark give the store's doubles bit for bit, and so ``evalstore.add_hours`` of
    the label delay gives its microseconds (``micros / 1e6`` on Spark put ``labels_due``
    1 us off at 10M rows: DuckDB's ICU epoch is milliseconds / 1000 + microseconds / 1e6)."""
    import numpy as np

    from evalstore.engines.spark_sql import SPARK_HELPERS, from_duckdb

    rng = np.random.default_rng(3)
    a = rng.integers(-2_000_000_000_000_000, 1_800_000_000_000_000, 3000)
    b = a + rng.integers(0, 200 * 3_600_000_000, 3000)
    rows = [(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    spark.createDataFrame(rows, "a BIGINT, b BIGINT").createOrReplaceTempView("stamps")
    hours = SPARK_HELPERS["hours_between"]([exp.column("ta"), exp.column("tb")]).sql("spark")
    epoch = from_duckdb("SELECT epoch(ta) FROM x").split(" FROM ")[0].removeprefix("SELECT ")
    got = spark.sql(
        f"SELECT a, {epoch} AS e, {hours} AS h FROM (SELECT a, timestamp_micros(a) AS ta, "
        "timestamp_micros(b) AS tb FROM stamps) ORDER BY a"
    ).collect()
    want = lake_store.sql(  # TIMESTAMPTZ, as the store's ts columns
        "SELECT a, epoch(ta) AS e, evalstore.hours_between(ta, tb) AS h FROM ("
        "SELECT a, make_timestamp(a)::TIMESTAMPTZ AS ta, make_timestamp(b)::TIMESTAMPTZ AS tb "
        "FROM (SELECT unnest(?::BIGINT[]) AS a, unnest(?::BIGINT[]) AS b)) ORDER BY a",
        [a.tolist(), b.tolist()],
    ).to_pylist()
    assert [(r["a"], r["e"].hex(), r["h"].hex()) for r in got] == [
        (r["a"], r["e"].hex(), r["h"].hex()) for r in want
    ]
