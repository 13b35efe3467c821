"""store.select / store.selection / store.export: rows, labels as of, streaming, Parquet."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.flywheel.training_data import OUTCOME_COLUMNS, TrainingSelection
from tests.conftest import blank_store


def _store() -> evalstore.Store:
    rng = np.random.default_rng(0)
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    ids = [f"e{i}" for i in range(20)]
    store.log_features(
        "m",
        pa.table(
            {
                "example_id": [f"t{i}" for i in range(10)],
                "x": rng.normal(size=10),
                "region": ["a", "b"] * 5,
            }
        ),
        env="training",
    )
    store.log_features(
        "m",
        pa.table(
            {
                "example_id": ids,
                "x": np.arange(20.0),
                "region": ["a", "b"] * 10,
                "ts": [datetime(2026, 11, 1 + i, tzinfo=UTC) for i in range(20)],
            }
        ),
    )
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": np.linspace(0, 1, 20)}), version="v1"
    )
    store.log_predictions("m", pa.table({"example_id": ids[:5], "score": [0.9] * 5}), version="v2")
    store.log_labels("m", pa.table({"example_id": ids[:10], "label": ["0"] * 10}))
    store.log_labels(
        "m", pa.table({"example_id": [f"t{i}" for i in range(10)], "label": ["1"] * 10})
    )
    return store


@pytest.fixture
def store():
    s = _store()
    yield s
    s.close()


def test_select_joins_features_latest_labels_and_predictions(store):
    table = store.select("m", env="serving", version="v1")
    assert table.num_rows == 10
    assert table.column_names == [
        "example_id", "env", "dataset", "ts", "batch_id", "x", "region", *OUTCOME_COLUMNS,
    ]  # fmt: skip
    assert table.column("example_id").to_pylist() == sorted(f"e{i}" for i in range(10))
    assert set(table.column("label").to_pylist()) == {"0"}
    assert set(table.column("version").to_pylist()) == {"v1"}
    # a correction: the latest label wins
    store.log_labels("m", pa.table({"example_id": ["e1"], "label": ["1"]}))
    row = [r for r in store.select("m", env="serving").to_pylist() if r["example_id"] == "e1"]
    assert row[0]["label"] == "1"


def test_select_defaults_version_env_and_unlabeled(store):
    # default version: the latest registered (v2), which predicted e0..e4 only
    table = store.select("m")
    assert table.num_rows == 20  # 10 training + 10 labeled serving rows
    assert sorted(set(table.column("env").to_pylist())) == ["serving", "training"]
    preds = {r["example_id"]: r["version"] for r in table.to_pylist() if r["env"] == "serving"}
    assert {k for k, v in preds.items() if v == "v2"} == {f"e{i}" for i in range(5)}
    everything = store.select("m", labeled_only=False, env=["serving"])
    assert everything.num_rows == 20
    assert everything.column("label").null_count == 10


def test_select_where_since_until_columns(store):
    table = store.select(
        "m", where="region = 'a' AND x >= 4", env="serving", columns=["x"],
        since="2026-11-03", until="2026-11-09",
    )  # fmt: skip
    assert table.column("example_id").to_pylist() == ["e4", "e6"]
    assert "region" not in table.column_names and "x" in table.column_names


def test_select_as_of_time_and_batch(store):
    before = datetime.now(UTC)
    time.sleep(0.01)
    store.log_labels("m", pa.table({"example_id": ["e0", "e15"], "label": ["1", "1"]}))
    store.log_features("m", pa.table({"example_id": ["new"], "x": [1.0], "region": ["a"]}))
    store.log_labels("m", pa.table({"example_id": ["new"], "label": ["1"]}))
    then = store.select("m", env="serving", as_of=before)
    now = store.select("m", env="serving")
    assert then.num_rows == 10 and now.num_rows == 12
    assert {r["example_id"]: r["label"] for r in then.to_pylist()}["e0"] == "0"
    assert {r["example_id"]: r["label"] for r in now.to_pylist()}["e0"] == "1"
    empty = store.select("m", as_of="2000-01-01")
    assert empty.num_rows == 0


def test_stream_returns_a_reader(store):
    reader = store.select("m", stream=True)
    assert isinstance(reader, pa.RecordBatchReader)
    streamed = reader.read_all()
    assert streamed.equals(store.select("m"))
    # the store stays usable while (and after) a reader exists
    reader2 = store.select("m", stream=True)
    assert store.select("m", env="training").num_rows == 10
    assert reader2.read_all().num_rows == 20


def test_export_parquet_and_partitions(store, tmp_path):
    selection = store.selection("m", labeled_only=False)
    assert isinstance(selection, TrainingSelection)
    out = store.export(selection, tmp_path / "all.parquet")
    assert out["rows"] == 30
    written = pq.read_table(tmp_path / "all.parquet")
    expected = store.select("m", labeled_only=False)
    assert written.sort_by("example_id").to_pylist() == expected.sort_by("example_id").to_pylist()
    parts = store.export({"model": "m"}, tmp_path / "parts", partition_by="env")
    assert parts["rows"] == 20
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "env=serving", "env=training",
    ]  # fmt: skip
    assert ds.dataset(tmp_path / "parts", partitioning="hive").count_rows() == 20
    # Arrow data from select() can be exported too
    table = store.select("m", env="serving")
    assert store.export(table, tmp_path / "t.parquet")["rows"] == 10
    with pytest.raises(InvalidParameterError, match="exists"):
        store.export(table, tmp_path / "t.parquet")
    assert store.export(table, tmp_path / "t.parquet", overwrite=True)["rows"] == 10
    with pytest.raises(InvalidParameterError, match="partition_by"):
        store.export(selection, tmp_path / "x", partition_by="nope")


def test_select_errors(store):
    with pytest.raises(InvalidParameterError, match="env='prod'"):
        store.select("m", env="prod")
    with pytest.raises(InvalidParameterError, match="unknown feature"):
        store.select("m", columns=["nope"])
    with pytest.raises(InvalidParameterError, match="unknown column"):
        store.select("m", where="nope = 1")
    with pytest.raises(InvalidParameterError, match="as_of"):
        store.select("m", as_of="yesterday")
    with pytest.raises(UnknownModelError):
        store.select("zz")
    with pytest.raises(UnknownModelError, match="v9"):
        store.select("m", version="v9")
    with pytest.raises(InvalidParameterError, match="selection"):
        store.export(42, "x.parquet")


def test_export_overwrite_switches_between_file_and_partitions(store, tmp_path):
    """overwrite=True replaces a single file by a partitioned directory; the other way
    round is refused (a directory is not deleted) with a clear error."""
    selection = store.selection("m", labeled_only=False)
    target = tmp_path / "out"
    assert store.export(selection, target)["rows"] == 30
    assert store.export(selection, target, partition_by="env", overwrite=True)["rows"] == 30
    assert sorted(p.name for p in target.iterdir()) == ["env=serving", "env=training"]
    with pytest.raises(InvalidParameterError, match="is a directory"):
        store.export(selection, target, overwrite=True)
    assert ds.dataset(target, partitioning="hive").count_rows() == 30
