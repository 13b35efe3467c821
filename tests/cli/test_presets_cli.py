"""``--preset`` on drift, quality, performance and multivariate-drift: the CLI prints the
Store method's rows under the same preset, and a preset's errors exit 1 with their text."""

from __future__ import annotations

import json
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
    """Binary model m: 400 training rows, 300 serving rows with predictions and labels."""
    path = tmp_path_factory.mktemp("presets") / "p.duckdb"
    rng = np.random.default_rng(11)
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        for env, shift, n in (("training", 0.0, 400), ("serving", 0.5, 300)):
            ids = [f"{env[0]}{i:04d}" for i in range(n)]
            x = np.round(rng.normal(shift, 1, n), 1)
            x[rng.uniform(size=n) < 0.05] = np.nan
            store.log_features("m", pa.table({
                "example_id": ids, "ts": [START + timedelta(minutes=i) for i in range(n)],
                "x": pa.array(x, from_pandas=True), "y": rng.normal(size=n),
                "c": rng.choice(["a", "b", "c"], size=n),
            }), env=env)  # fmt: skip
        score = rng.uniform(size=300)
        ids = [f"s{i:04d}" for i in range(300)]
        store.log_predictions("m", pa.table({
            "example_id": ids, "score": score, "prediction": (score >= 0.5).astype(int),
        }), version="v1")  # fmt: skip
        labels = (rng.uniform(size=300) < score).astype(int)
        store.log_labels("m", pa.table({"example_id": ids, "label": labels}))
    return path


def invoke(path: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["-s", str(path), *args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("command", "family", "preset", "options"),
    [
        ("drift", "drift", "nannyml", {"features": ["x", "c"]}),
        ("drift", "drift", "evidently", {"features": ["x", "c"]}),
        ("quality", "quality", "nannyml", {"features": ["x", "c"]}),
        ("performance", "performance", "nannyml", {}),
        ("multivariate-drift", "multivariate_drift", "nannyml", {"features": ["x", "y"]}),
    ],
)
def test_same_rows_as_the_store(store_file, command, family, preset, options):  # type: ignore[no-untyped-def]
    args = [command, "-m", "m", "-w", "chunks:3:nannyml", "--preset", preset, "-f", "json"]
    if "features" in options:
        args += ["--features", ",".join(options["features"])]
    result = invoke(store_file, *args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    window = {"chunks": 3, "split": "nannyml"}
    with evalstore.open(store_file, read_only=True) as store:
        expected = getattr(store, family)("m", window=window, preset=preset, **options)
    rows = expected.to_pylist()
    assert [r["variant"] for r in printed] == [r["variant"] for r in rows]
    assert all(r["variant"].startswith(f"preset={preset}; ") for r in printed)
    got = [r["value"] for r in printed]
    want = [r["value"] for r in rows]
    assert got == pytest.approx(want, abs=1e-12, nan_ok=True)


def test_errors_exit_1_with_the_message(store_file):  # type: ignore[no-untyped-def]
    result = invoke(store_file, "drift", "-m", "m", "--preset", "nannyml", "--methods", "psi")
    assert result.exit_code == 1
    assert "['psi'] has no NannyML 0.13 counterpart" in result.output
    result = invoke(store_file, "drift", "-m", "m", "--preset", "nannyml", "--correction", "bh")
    assert result.exit_code == 1
    assert "correction='bh' conflicts with preset='nannyml'" in result.output
    result = invoke(store_file, "performance", "-m", "m", "--preset", "nannyml",
                    "--threshold", "0.6")  # fmt: skip
    assert result.exit_code == 1
    assert "threshold=0.6 conflicts with preset='nannyml'" in result.output
