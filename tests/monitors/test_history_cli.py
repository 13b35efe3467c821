"""``evalstore history MODEL``: the stored series on the command line (filters, formats,
refusals), read from a store file holding persisted drift and performance calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import evalstore
from evalstore.cli import main
from tests.monitors.conftest import Days, day_start, training_rows


@pytest.fixture(scope="module")
def persisted(template: Callable[..., Path]) -> Path:
    """Model m, three serving days (labelled), drift (psi, ks of x) and performance
    (accuracy) persisted."""

    def build(store: evalstore.Store) -> None:
        training_rows(store, seed=3, n=500)
        days = Days(store)
        for d in range(3):
            days.add(d, shift=float(d), labels=True)
        store.drift("m", features=["x"], methods=["psi", "ks"], persist=True)
        store.performance("m", metrics=["accuracy"], n_boot=0, persist=True)

    return template("history-cli", build)


@pytest.fixture
def path(persisted: Path, tmp_path: Path, copy_template) -> Path:
    return copy_template(persisted, tmp_path)


def invoke(path: Path, *args: str) -> Result:
    """``evalstore --store PATH history ARGS`` on a 160-column terminal (the table's
    columns do not depend on the test runner's)."""
    return CliRunner().invoke(
        main, ["--store", str(path), "history", *args], prog_name="evalstore",
        env={"COLUMNS": "160"},
    )  # fmt: skip


def rows(path: Path, *args: str) -> list[dict]:
    result = invoke(path, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_history_prints_every_stored_row(path):
    everything = rows(path, "m")
    with evalstore.open(path, read_only=True) as store:
        expected = store.history("m").to_pylist()
    assert len(everything) == len(expected) == 3 * 2 + 3  # drift: 3 days x 2; performance 3
    assert [r["value"] for r in everything] == [r["value"] for r in expected]
    assert {r["family"] for r in everything} == {"drift", "performance"}


def test_history_filters(path):
    psi = rows(path, "m", "--family", "drift", "--metric", "psi", "--feature", "x")
    assert [(r["subject"], r["metric"]) for r in psi] == [("x", "psi")] * 3
    assert [r["value"] for r in psi] == sorted(r["value"] for r in psi)  # shift grows
    window = rows(path, "m", "--since", day_start(1).isoformat(), "--until", "2024-03-03")
    assert {r["window_start"][:10] for r in window} == {"2024-03-02"}
    two = rows(path, "m", "--feature", "x", "--feature", "score", "--family", "drift")
    assert {r["subject"] for r in two} == {"x"}  # score was not in the drift call
    both = rows(path, "m", "--metric", "ks,accuracy", "--version", "v1")
    assert {r["metric"] for r in both} == {"accuracy"}  # drift rows of x carry no version


def test_history_table_and_csv(path):
    table = invoke(path, "m", "--family", "performance")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    # empty columns (subject, threshold, flagged of performance rows) are left out
    assert lines[0].split() == [
        "family", "window_start", "version", "metric", "value", "n", "labels_complete",
        "computed_at",
    ]  # fmt: skip
    assert [line.split()[:4] for line in lines[2:5]] == [
        ["performance", f"2024-03-0{d}", "v1", "accuracy"] for d in (1, 2, 3)
    ]
    assert "(3 rows)" in table.stdout
    csv = invoke(path, "m", "--format", "csv", "--family", "drift", "--limit", "2")
    assert csv.exit_code == 0, csv.output
    lines = csv.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith('"model","family","params_hash"')


def test_history_refusals(path):
    too_many = invoke(path, "m", "--max-rows", "2")
    assert too_many.exit_code == 1
    assert "more than limit=2 rows" in too_many.output and "--max-rows" in too_many.output
    unknown = invoke(path, "nope")
    assert unknown.exit_code == 1 and "'nope' is not registered" in unknown.output
    family = invoke(path, "m", "--family", "health")
    assert family.exit_code != 0 and "'health' is not one of" in family.output
    since = invoke(path, "m", "--since", "yesterday-ish")
    assert since.exit_code == 1 and "since" in since.output
