"""The lake layout: store.export_lake and `evalstore lake export` write the model's rows as
hive-partitioned Parquet that reads back, with DuckDB's read_parquet, as the store's tables
(same rows, columns and types; labels append-only with their corrections)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main
from evalstore.core.lake import lake_glob
from evalstore.errors import InvalidParameterError, UnknownModelError
from tests.conftest import copy_store

KEYS = {"features": "example_id, env", "predictions": "example_id, version",
        "labels": "example_id, batch_id", "models": "version"}  # fmt: skip


def read_back(path: Path, kind: str) -> duckdb.DuckDBPyConnection:
    """A connection whose view ``lake`` reads the lake's ``kind`` files (hive partitions)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE VIEW lake AS SELECT * FROM "
        f"read_parquet('{lake_glob(path, kind)}', hive_partitioning = true)"
    )
    return con


@pytest.mark.parametrize("kind", ["features", "predictions", "labels", "models"])
def test_round_trip(lake_store: evalstore.Store, lake_path: Path, kind: str) -> None:
    """Every row of the store's table comes back, with the same column types."""
    left_out = {"features": ["example_key"], "predictions": ["example_key"],
                "labels": ["example_key", "superseded_by"], "models": []}[kind]  # fmt: skip
    table = f'"m".{kind}' if kind != "models" else "evalstore.models"
    where = "" if kind != "models" else " WHERE model = 'm'"
    exclude = f" EXCLUDE ({', '.join(left_out)})" if left_out else ""
    stored = lake_store.sql(f"SELECT *{exclude} FROM {table}{where} ORDER BY {KEYS[kind]}")
    con = read_back(lake_path, kind)
    extra = "day, kind" if kind != "models" else "kind"
    lake = con.sql(f"SELECT * EXCLUDE ({extra}) FROM lake ORDER BY {KEYS[kind]}").to_arrow_table()
    assert lake.schema.names == stored.schema.names
    assert lake.schema.types == stored.schema.types
    assert repr(lake.to_pylist()) == repr(stored.to_pylist())  # repr: NaN equals NaN
    assert stored.num_rows > 0
    con.close()


def test_partitions_are_utc_days(lake_store: evalstore.Store, lake_path: Path) -> None:
    """day is the UTC date of ts and the directories carry env and day."""
    con = read_back(lake_path, "features")
    wrong = con.sql(
        "SELECT count(*) FROM lake WHERE day IS DISTINCT FROM CAST(timezone('UTC', ts) AS DATE)"
    ).fetchall()[0][0]
    assert wrong == 0
    envs = sorted(p.name for p in (lake_path / "kind=features").iterdir())
    assert envs == ["env=serving", "env=training"]
    days = {p.name for p in (lake_path / "kind=predictions").iterdir()}
    assert all(d.startswith("day=2025-06-") for d in days) and len(days) > 1
    con.close()


def test_labels_latest_is_the_largest_batch(lake_store: evalstore.Store, lake_path: Path) -> None:
    """A correction is a later row: the latest label per example (largest batch_id) in the
    lake is the store's labels_latest."""
    con = read_back(lake_path, "labels")
    latest = con.sql(
        "SELECT example_id, arg_max(label, batch_id) AS label FROM lake "
        "GROUP BY example_id ORDER BY example_id"
    ).fetchall()
    stored = lake_store.sql(
        'SELECT example_id, label FROM "m".labels_latest ORDER BY example_id'
    ).to_pylist()
    assert [tuple(r.values()) for r in stored] == latest
    corrected = con.sql(
        "SELECT count(*) FROM (SELECT example_id FROM lake GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()[0][0]
    assert corrected == 43  # every 7th of the first 300 examples was relabelled
    con.close()


def test_empty_kind_has_a_readable_file(tmp_path: Path) -> None:
    """A model without labels still gets a labels file with its columns (zero rows)."""
    with evalstore.open() as store:
        store.register_model("e", "v1", "regression")
        store.export_lake("e", tmp_path / "e")
        con = read_back(tmp_path / "e", "labels")
        assert con.sql("SELECT * FROM lake").fetchall() == []
        assert {"label", "batch_id"} <= set(con.sql("SELECT * FROM lake").columns)
        con.close()


@pytest.mark.parametrize("name", ["day", "Day", "kind"])
def test_refuses_a_feature_named_like_a_partition(tmp_path: Path, name: str) -> None:
    """A feature named ``day`` (in any case) or ``kind`` would be replaced by a partition
    column: export refuses the model and writes nothing."""
    with evalstore.open() as store:
        store.register_model("d", "v1", "regression")
        store.log_features("d", pa.table({"example_id": ["a"], name: [3.0]}))
        with pytest.raises(
            InvalidParameterError, match=rf"features have a column named '{name}', the name of"
        ):
            store.export_lake("d", tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_refuses_a_non_empty_directory(lake_store: evalstore.Store, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match=r"is not empty; pass overwrite=True"):
        lake_store.export_lake("m", tmp_path)
    with pytest.raises(InvalidParameterError, match=r"holds \['notes.txt'\], which is not a lake"):
        lake_store.export_lake("m", tmp_path, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(UnknownModelError):
        lake_store.export_lake("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_overwrite_replaces_the_lake(lake_store: evalstore.Store, tmp_path: Path) -> None:
    first = lake_store.export_lake("m", tmp_path / "m").to_pylist()
    again = lake_store.export_lake("m", tmp_path / "m", overwrite=True).to_pylist()
    assert first == again
    con = read_back(tmp_path / "m", "predictions")
    assert con.sql("SELECT count(*) FROM lake").fetchall()[0][0] == 800
    con.close()


def test_cli_export(lake_store_file: Path, tmp_path: Path) -> None:
    path = str(copy_store(lake_store_file, tmp_path))
    result = CliRunner().invoke(
        main, ["-s", path, "lake", "export", "m", str(tmp_path / "m"), "-f", "csv"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.replace('"', "").splitlines()
    assert lines[0] == "kind,directory,rows,files"
    assert [line.split(",")[0] for line in lines[1:]] == [
        "features", "predictions", "labels", "models"]  # fmt: skip
    assert lines[2].split(",")[2] == "800"
    again = CliRunner().invoke(main, ["-s", path, "lake", "export", "m", str(tmp_path / "m")])
    assert again.exit_code == 1 and "pass overwrite=True" in again.output
