"""Production health (sql/health.sql, evalstore.health) against numpy oracles.

Latency percentiles must equal ``numpy.quantile(..., method='linear')`` (numpy's default),
counts and rates are recomputed in pandas, ages from the registered times, and ingest
figures from ``evalstore.batches``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.metrics.health import METRICS, RESULT_COLUMNS, SECTIONS
from tests.conftest import blank_store

BASE = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = 3600


def _ts(seconds) -> pa.Array:
    us = (np.asarray(seconds, dtype=np.int64) + int(BASE.timestamp())) * 1_000_000
    return pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


@pytest.fixture
def health_store():
    """v1 serves hours 0-5 (nothing in hour 3), v2 hours 2-5; some NULL predictions/latencies."""
    rng = np.random.default_rng(0)
    store = blank_store()
    store.register_model(
        "m", "v1", "regression", trained_at=BASE - timedelta(days=10),
        deployed_at=BASE - timedelta(days=7), training_dataset="train", stage="production",
        dependencies={"numpy": "2.1", "torch": "2.4"},
    )  # fmt: skip
    store.register_model(
        "m", "v2", "regression", trained_at=BASE, deployed_at=BASE + timedelta(hours=2),
        stage="shadow", dependencies={"numpy": "2.2", "jax": "0.4"},
    )  # fmt: skip
    store.register_model("m", "v3", "regression", dependencies={"numpy": "2.2", "jax": "0.4"})
    train_ts = rng.integers(-30 * 24 * HOUR, -20 * 24 * HOUR, 50)
    store.log_features("m", pa.table({"example_id": [f"t{i}" for i in range(50)],
                                      "x": rng.normal(size=50), "ts": _ts(train_ts)}),
                       env="training", dataset="train")  # fmt: skip
    frames = []
    for version, hours in (("v1", [0, 1, 2, 4, 5]), ("v2", [2, 3, 4, 5])):
        n = 400
        t = rng.choice(hours, n) * HOUR + rng.integers(0, HOUR, n)
        latency = np.round(rng.lognormal(3, 0.5, n), 1)  # ties
        latency_null = rng.random(n) < 0.05
        prediction = rng.normal(size=n)
        pred_null = rng.random(n) < 0.1
        ids = [f"{version}-{i}" for i in range(n)]
        store.log_predictions(
            "m",
            pa.table({"example_id": ids, "ts": _ts(t),
                      "prediction": pa.array(prediction, mask=pred_null),
                      "latency_ms": pa.array(latency, mask=latency_null)}),
            version, latency_column="latency_ms",
        )  # fmt: skip
        frames.append(pd.DataFrame({"version": version, "hour": t // HOUR,
                                    "latency": np.where(latency_null, np.nan, latency),
                                    "error": pred_null, "t": t}))  # fmt: skip
    with store:
        yield store, pd.concat(frames), train_ts


def _rows(table: pa.Table, **keys) -> list[dict]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in keys.items())]


def test_serving_signals_match_numpy(health_store):
    store, frame, _ = health_store
    table = store.health("m", window="1 hour", sections="serving")
    assert table.column_names == list(RESULT_COLUMNS)
    for version, first in (("v1", 0), ("v2", 2)):
        for hour in range(first, 6):
            cell = frame[(frame.version == version) & (frame.hour == hour)]
            start = BASE + timedelta(hours=hour)
            got = {r["metric"]: r for r in _rows(table, version=version, window_start=start)}
            assert list(got) == list(METRICS[3:10])
            assert got["predictions"]["value"] == len(cell)
            assert got["throughput"]["value"] == pytest.approx(len(cell) / HOUR, rel=1e-12)
            assert got["throughput"]["unit"] == "predictions/s"
            assert got["errors"]["value"] == cell.error.sum()
            assert got["latency_p50"]["window_end"] == start + timedelta(hours=1)
            if len(cell) == 0:  # v1's hour 3: a silent window, not a missing one
                assert got["error_rate"]["value"] is None
                assert got["latency_p99"]["value"] is None
                continue
            assert got["error_rate"]["value"] == pytest.approx(cell.error.mean(), rel=1e-12)
            latencies = cell.latency.dropna().to_numpy()
            for q, name in ((0.5, "latency_p50"), (0.95, "latency_p95"), (0.99, "latency_p99")):
                assert got[name]["value"] == pytest.approx(
                    np.quantile(latencies, q, method="linear"), rel=1e-12
                )
    assert not _rows(table, version="v2", window_start=BASE)  # before v2's first window


def test_staleness_ages(health_store):
    store, frame, train_ts = health_store
    table = store.health("m", sections=["staleness"])
    as_of = BASE + timedelta(seconds=int(frame.t.max()))
    rows = table.to_pylist()
    # v3 has no deployed_at: not deployed, no staleness rows
    assert [(r["version"], r["metric"]) for r in rows] == [
        (v, m) for v in ("v1", "v2") for m in ("version_age", "model_age", "training_data_age")
    ]
    got = {(r["version"], r["metric"]): r for r in rows}
    day = 86_400.0

    def age(t):
        return (as_of - t).total_seconds() / day

    assert got["v1", "version_age"]["value"] == pytest.approx(age(BASE - timedelta(days=7)))
    assert got["v1", "model_age"]["value"] == pytest.approx(age(BASE - timedelta(days=10)))
    newest = BASE + timedelta(seconds=int(train_ts.max()))
    assert got["v1", "training_data_age"]["value"] == pytest.approx(age(newest))
    assert got["v1", "version_age"]["unit"] == "days"
    assert got["v1", "version_age"]["detail"] == "production"
    assert all(r["window_end"] == as_of and r["window_start"] is None for r in rows)
    # v2 has no training dataset registered: every training row of the model counts
    assert got["v2", "training_data_age"]["value"] == pytest.approx(age(newest))
    early = store.health("m", sections="staleness", as_of=BASE + timedelta(hours=1))
    assert {r["version"] for r in early.to_pylist()} == {"v1"}  # v2 not yet deployed


def test_dependency_changes_between_consecutive_versions(health_store):
    store, _, _ = health_store
    rows = store.health("m", sections="dependencies").to_pylist()
    assert [(r["version"], r["subject"], r["metric"], r["detail"]) for r in rows] == [
        ("v2", "jax", "dependency_added", "0.4 (since v1)"),
        ("v2", "numpy", "dependency_changed", "2.1 -> 2.2 (since v1)"),
        ("v2", "torch", "dependency_removed", "2.4 (since v1)"),
    ]  # v3 has the same dependencies as v2: no row


def test_ingest_freshness_and_volume(health_store):
    store, _, _ = health_store
    batches = store.sql("SELECT * FROM evalstore.batches WHERE model = 'm'").to_pandas()
    now = batches.committed_at.max() + pd.Timedelta(hours=2)
    rows = store.health("m", sections="ingest", now=now.to_pydatetime()).to_pylist()
    fresh = {(r["subject"], r["version"]): r for r in rows if r["metric"] == "freshness"}
    assert set(fresh) == {("features/training", None), ("predictions", "v1"), ("predictions", "v2")}
    last = batches[batches.version == "v1"].committed_at.max()
    assert fresh["predictions", "v1"]["value"] == pytest.approx(
        (now - last).total_seconds() / 3600, rel=1e-9
    )
    volume = {
        (r["subject"], r["version"], r["metric"]): r["value"]
        for r in rows
        if r["metric"] != "freshness"
    }
    assert volume["predictions", "v2", "ingest_rows"] == 400
    assert volume["predictions", "v2", "ingest_batches"] == 1
    assert volume["features/training", None, "ingest_rows"] == 50


def test_version_filter_and_section_order(health_store):
    store, _, _ = health_store
    table = store.health("m", window="1 day", version="v2", now=BASE)
    rows = table.to_pylist()
    assert {r["version"] for r in rows} == {"v2"}
    sections = [r["section"] for r in rows]
    assert sections == sorted(sections, key=SECTIONS.index)
    assert set(sections) == set(SECTIONS)


def test_model_without_predictions():
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        table = store.health("m")
    assert table.num_rows == 0 and table.column_names == list(RESULT_COLUMNS)


def test_plain_duckdb_can_call_the_macro(tmp_path):
    path = tmp_path / "h.duckdb"
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.log_predictions("m", pa.table({"example_id": ["a", "b"], "score": [0.1, None],
                                             "ts": _ts([0, 60])}), "v1")  # fmt: skip
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql(
            "SELECT metric, value FROM evalstore.health('m', '1 hour', NULL, NULL) "
            "WHERE section = 'serving' AND metric IN ('predictions', 'error_rate') ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("error_rate", 0.5), ("predictions", 2.0)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"window": {"chunks": 2}}, InvalidParameterError, "health needs an interval"),
        ({"window": 100}, InvalidParameterError, "health needs an interval"),
        ({"window": "often"}, InvalidParameterError, "not an interval"),
        ({"sections": ["latency"]}, InvalidParameterError, r"\['latency'\]; choose from"),
        ({"version": "v9"}, UnknownModelError, "no version 'v9'"),
        ({"as_of": "yesterday-ish"}, InvalidParameterError, "as_of"),
    ],
)
def test_errors(kwargs, error, match):
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        with pytest.raises(error, match=match):
            store.health("m", **kwargs)


def test_unknown_model():
    with blank_store() as store, pytest.raises(UnknownModelError, match="not registered"):
        store.health("nope")


def test_cli_health(tmp_path):
    from click.testing import CliRunner

    from evalstore.cli import main

    path = tmp_path / "h.duckdb"
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary", deployed_at=BASE, dependencies={"a": "1"})
        store.register_model("m", "v2", "binary", deployed_at=BASE, dependencies={"a": "2"})
        store.log_predictions("m", pa.table({"example_id": ["a", "b"], "score": [0.1, 0.2],
                                             "ts": _ts([0, 60])}), "v1")  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(main, ["-s", str(path), "health", "-m", "m", "-w", "1 hour"])
    assert result.exit_code == 0, result.output
    for title in ("== Staleness", "== Serving per 1 hour", "== Ingest", "== Dependency"):
        assert title in result.output
    assert "1 -> 2 (since v1)" in result.output
    result = runner.invoke(main, ["-s", str(path), "health", "-m", "m", "-f", "csv",
                                  "--sections", "serving"])  # fmt: skip
    assert result.exit_code == 0
    assert result.output.splitlines()[0].startswith('"section","window_start"')
    result = runner.invoke(main, ["-s", str(path), "health", "-m", "m", "--sections", "x"])
    assert result.exit_code == 1 and "choose from" in result.output
