"""Snapshots: the same rows and labels later, whatever arrives meanwhile; list, show, delete."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main
from evalstore.errors import InvalidParameterError, SnapshotError
from tests.conftest import blank_store


def _fill(store: evalstore.Store) -> None:
    rng = np.random.default_rng(0)
    store.register_model("m", "v1", "binary")
    ids = [f"e{i}" for i in range(50)]
    store.log_features(
        "m", pa.table({"example_id": ids, "x": rng.normal(size=50), "k": ["a", "b"] * 25})
    )
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": rng.uniform(size=50)}), version="v1"
    )
    store.log_labels("m", pa.table({"example_id": ids[:30], "label": ["0", "1"] * 15}))


@pytest.fixture
def store(template, open_copy):
    """A fresh copy of a store made by :func:`_fill` (built once per session)."""
    with open_copy(template("snapshots", _fill)) as opened:
        yield opened


def test_snapshot_survives_new_rows_corrections_columns_and_versions(store):
    info = store.snapshot("train-1", {"model": "m", "where": "k = 'a'"})
    assert info["row_count"] == 15
    assert info["content_hash"].startswith("15:")
    assert info["definition"].as_of_batch is not None
    before = store.load_snapshot("train-1")
    assert before.num_rows == 15
    # everything that could change the selection happens
    store.log_labels("m", pa.table({"example_id": ["e0", "e2"], "label": ["1", "1"]}))
    store.log_labels("m", pa.table({"example_id": ["e30", "e32"], "label": ["1", "0"]}))
    store.log_features(
        "m", pa.table({"example_id": ["n1", "n2"], "x": [1.0, 2.0], "k": ["a", "a"], "z": [1, 2]})
    )
    store.log_labels("m", pa.table({"example_id": ["n1", "n2"], "label": ["1", "1"]}))
    store.register_model("m", "v2", "binary")
    store.log_predictions("m", pa.table({"example_id": ["e0"], "score": [0.1]}), version="v2")
    after = store.load_snapshot("train-1")
    assert after.equals(before)
    assert {r["example_id"]: r["label"] for r in after.to_pylist()}["e0"] == "0"
    now = store.select("m", where="k = 'a'", version="v1")
    assert now.num_rows == 19 and "z" in now.column_names  # + e30, e32, n1, n2
    assert {r["example_id"]: r["label"] for r in now.to_pylist()}["e0"] == "1"
    # streamed load gives the same rows
    assert store.load_snapshot("train-1", stream=True).read_all().equals(before)


def test_snapshot_persists_in_the_file(tmp_path):
    path = tmp_path / "s.duckdb"
    with evalstore.open(path) as store:
        _fill(store)
        store.snapshot("s", store.selection("m", labeled_only=False))
        rows = store.load_snapshot("s")
    with evalstore.open(path) as store:
        store.log_labels("m", pa.table({"example_id": ["e49"], "label": ["1"]}))
        assert store.load_snapshot("s").equals(rows)
    with evalstore.open(path, read_only=True) as store:
        assert store.load_snapshot("s").equals(rows)


def test_snapshot_as_of_the_past(store):
    first_batches = store.sql("SELECT max(committed_at) FROM evalstore.batches").column(0)[0]
    store.log_labels("m", pa.table({"example_id": ["e40"], "label": ["1"]}))
    info = store.snapshot("past", store.selection("m", as_of=first_batches.as_py()))
    assert info["row_count"] == 30
    assert "e40" not in store.load_snapshot("past").column("example_id").to_pylist()


def test_replaced_rows_are_detected(store):
    store.snapshot("s", {"model": "m"})
    store.log_features(
        "m",
        pa.table({"example_id": ["e0"], "x": [99.0], "k": ["a"]}),
        on_conflict="replace",
    )
    with pytest.raises(SnapshotError, match="cannot be reproduced"):
        store.load_snapshot("s")
    # unverified: the replaced row is gone (its replacement is newer than the snapshot)
    assert store.load_snapshot("s", verify=False).num_rows == 29


def test_list_show_delete_and_errors(store):
    store.snapshot("a", {"model": "m"})
    store.snapshot("b", {"model": "m", "labeled_only": False})
    listing = store.snapshots()
    assert sorted(listing.column("name").to_pylist()) == ["a", "b"]
    assert dict(
        zip(
            listing.column("name").to_pylist(), listing.column("row_count").to_pylist(), strict=True
        )
    ) == {"a": 30, "b": 50}
    assert store.snapshots("zz").num_rows == 0
    with pytest.raises(InvalidParameterError, match="exists"):
        store.snapshot("a", {"model": "m"})
    assert store.snapshot("a", {"model": "m", "env": "serving"}, replace=True)["row_count"] == 30
    assert store.delete_snapshot("a") is True
    with pytest.raises(SnapshotError, match="no snapshot named 'a'"):
        store.load_snapshot("a")
    with pytest.raises(SnapshotError):
        store.delete_snapshot("a")
    with pytest.raises(InvalidParameterError, match="model"):
        store.snapshot("c", {"where": "x > 0"})
    with pytest.raises(InvalidParameterError, match="name"):
        store.snapshot("", {"model": "m"})


def test_cli_snapshot_select_suggest_requests(tmp_path):
    path = tmp_path / "s.duckdb"
    with evalstore.open(path) as store:
        _fill(store)
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(main, ["--store", str(path), *args], prog_name="evalstore")
        assert result.exit_code == 0, result.output
        return result.output

    out = run("snapshot", "create", "s1", "--model", "m", "--where", "k = 'a'")
    assert "s1" in out and "15" in out
    assert "s1" in run("snapshot", "list")
    assert "content_hash" in run("snapshot", "show", "s1")
    run("snapshot", "show", "s1", "--out", str(tmp_path / "s1.parquet"))
    assert pa.parquet.read_table(tmp_path / "s1.parquet").num_rows == 15
    run("select", "--model", "m", "--env", "serving", "--out", str(tmp_path / "sel.parquet"))
    assert pa.parquet.read_table(tmp_path / "sel.parquet").num_rows == 30
    assert "e" in run("select", "--model", "m", "--limit", "3")
    out = run("suggest", "--model", "m", "-k", "5", "--strategy", "entropy")
    assert "uncertain prediction" in out
    out = run("requests", "list", "--model", "m", "--status", "open")
    assert "(5 rows)" in out
    assert "cancelled 2" in run(
        "requests", "cancel", "--model", "m", "--request-id", "1", "--request-id", "2"
    )
    assert "expired 3" in run("requests", "expire", "--model", "m", "--now", "2100-01-01")
    run("snapshot", "delete", "s1")
    result = runner.invoke(main, ["--store", str(path), "snapshot", "show", "s1"])
    assert result.exit_code == 1 and "no snapshot named 's1'" in result.output


def test_select_and_snapshot_work_on_a_locked_configuration():
    """`evalstore serve` locks DuckDB's configuration: no library call may SET anything."""
    with blank_store() as store:
        _fill(store)
        store.connection.execute("SET enable_progress_bar = true")
        store.connection.execute("SET lock_configuration = true")
        assert store.select("m").num_rows == 30
        assert store.select("m", stream=True).read_all().num_rows == 30
        assert store.snapshot("locked", {"model": "m"})["row_count"] == 30
        assert store.load_snapshot("locked").num_rows == 30
