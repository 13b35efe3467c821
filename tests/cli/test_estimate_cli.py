"""``evalstore estimate``: the Store's estimate_performance table, and its errors."""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main


@pytest.fixture(scope="module")
def store_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("estimate") / "s.duckdb"
    rng = np.random.default_rng(12)
    n = 900
    score = rng.uniform(size=n)
    ids = [f"r{i}" for i in range(n)]
    offsets = (np.arange(n) * (3 * 86400 // n)).astype("timedelta64[s]")
    ts = pa.array(np.datetime64("2026-03-02T00:00:00") + offsets, pa.timestamp("s", "UTC"))
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({"example_id": ids, "x": score, "ts": ts}))
        store.log_predictions("m", pa.table({"example_id": ids, "score": score, "ts": ts}), "v1")
        labels = (rng.uniform(size=600) < score[:600]).astype(int)
        store.log_labels("m", pa.table({"example_id": ids[:600], "label": labels}))
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="evalstore")


def test_estimate_prints_the_stores_table(store_file):
    result = invoke(
        "-s", str(store_file), "estimate", "-m", "m", "-w", "1 day", "--metrics", "roc_auc,f1",
        "--reference", "2026-03-02..2026-03-03", "--format", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    with evalstore.open(store_file, read_only=True) as store:
        expected = store.estimate_performance(
            "m", metrics=["roc_auc", "f1"], window="1 day",
            reference=("2026-03-02", "2026-03-03"),
        ).to_pylist()  # fmt: skip
    assert [r["metric"] for r in rows] == [r["metric"] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        assert float(got["value"]) == pytest.approx(want["value"], rel=1e-12)
        if want["realized"] is None:
            assert got["realized"] == ""
        else:
            assert float(got["realized"]) == pytest.approx(want["realized"], rel=1e-12)
    assert rows[-1]["realized"] == "" and rows[0]["realized"] != ""


def test_estimate_errors_name_the_parameter(store_file):
    result = invoke("-s", str(store_file), "estimate", "-m", "m", "--method", "dle",
                    "--reference", "2026-03-02..2026-03-03")  # fmt: skip
    assert result.exit_code != 0
    assert "method='dle' estimates regression models" in result.output
    result = invoke("-s", str(store_file), "estimate", "-m", "m")
    assert result.exit_code != 0
    assert "reference 'training' holds no labeled predictions" in result.output


def test_estimate_takes_the_python_apis_options(store_file):
    result = invoke(
        "-s", str(store_file), "estimate", "-m", "m", "-w", "3 days", "--metrics", "f1",
        "--reference", "2026-03-02..2026-03-03", "--by", "x", "--edges", "x=0.25,0.75",
        "--reference-chunks", "5", "--confidence", "0.8", "--as-of", "2026-03-10",
        "--delay-quantile", "0.5", "--format", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    with evalstore.open(store_file, read_only=True) as store:
        expected = store.estimate_performance(
            "m", metrics=["f1"], window="3 days", reference=("2026-03-02", "2026-03-03"),
            by="x", edges={"x": [0.25, 0.75]}, reference_chunks=5, confidence=0.8,
            as_of="2026-03-10", delay_quantile=0.5,
        ).to_pylist()  # fmt: skip
    assert [r["x"] for r in rows] == [r["x"] for r in expected] and len(rows) == 3
    for got, want in zip(rows, expected, strict=True):
        assert float(got["ci_low"]) == pytest.approx(want["ci_low"], rel=1e-12)
    result = invoke("-s", str(store_file), "estimate", "-m", "m", "--by", "x", "--bins", "2",
                    "--reference", "2026-03-02..2026-03-03", "--format", "csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len({r["x"] for r in csv.DictReader(io.StringIO(result.output))}) == 2
    result = invoke("-s", str(store_file), "estimate", "-m", "m", "--edges", "x=a",
                    "--reference", "2026-03-02..2026-03-03")  # fmt: skip
    assert result.exit_code != 0 and "'x=a' is not NAME=E1,E2,..." in result.output
    result = invoke("-s", str(store_file), "estimate", "-m", "m", "--reference-chunks", "400",
                    "--reference", "2026-03-02..2026-03-03")  # fmt: skip
    assert result.exit_code != 0
    assert "reference_chunks=400 needs at least 800 usable labeled reference rows" in result.output
