"""``evalstore multivariate-drift``: the Store method's rows, options passed through."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main

START = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model m: 300 training rows; 200 serving rows over 2 days, shifted on the second."""
    path = tmp_path_factory.mktemp("mv") / "mv.duckdb"
    rng = np.random.default_rng(7)
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({
            "example_id": [f"t{i:04d}" for i in range(300)],
            "x": rng.normal(size=300), "y": rng.normal(size=300),
            "kind": rng.choice(["a", "b"], size=300),
        }), env="training")  # fmt: skip
        shift = np.repeat([0.0, 1.5], 100)
        store.log_features("m", pa.table({
            "example_id": [f"s{i:04d}" for i in range(200)],
            "ts": [START + timedelta(days=int(s > 0), minutes=i) for i, s in enumerate(shift)],
            "x": rng.normal(size=200) + shift, "y": rng.normal(size=200),
            "kind": rng.choice(["a", "b"], size=200),
        }))  # fmt: skip
    return path


def invoke(path: Path, *args: str):
    return CliRunner().invoke(
        main, ["-s", str(path), "multivariate-drift", *args], prog_name="evalstore"
    )


def test_csv_rows_are_the_store_methods(store_file):
    result = invoke(
        store_file, "-m", "m", "--features", "x,y,kind", "--methods", "domain_classifier,pca",
        "--categorical-encoding", "onehot", "--classifier-range", "0.3,0.7",
        "--classifier-rows", "150", "-f", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    with evalstore.open(store_file, read_only=True) as store:
        expected = store.multivariate_drift(
            "m", features=["x", "y", "kind"], methods=["domain_classifier", "pca"],
            categorical_encoding="onehot", classifier_range=(0.3, 0.7), classifier_rows=150,
        ).to_pylist()  # fmt: skip
    assert [(r["method"], float(r["value"]), r["variant"]) for r in rows] == [
        (e["method"], pytest.approx(e["value"], abs=1e-12), e["variant"]) for e in expected
    ]
    dc = [r for r in rows if r["method"] == "domain_classifier"]
    assert [r["drifted"] for r in dc] == ["false", "true"]
    assert {(r["threshold_low"], r["threshold"]) for r in dc} == {("0.3", "0.7")}


def test_a_bad_range_is_a_one_line_error(store_file):
    result = invoke(store_file, "-m", "m", "--classifier-range", "0.45")
    assert result.exit_code != 0
    assert "'0.45': use LOW,HIGH, e.g. 0.45,0.65" in result.output
    result = invoke(store_file, "-m", "m", "--methods", "domain_classifier",
                    "--classifier-range", "0.7,0.6")  # fmt: skip
    assert result.exit_code == 1
    assert "classifier_range=(0.7, 0.6) must be a pair (low, high)" in result.output
