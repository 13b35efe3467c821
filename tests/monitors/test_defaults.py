"""Default monitors (evalstore.monitors.defaults): the set per task, names, rules,
idempotence, replace=True, and errors that leave the store as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.monitors.defaults import NOT_MONITORED
from tests.conftest import copy_store

TASKS = {"bin": "binary", "multi": "multiclass", "reg": "regression"}
#: The health defaults every model gets (features or not).
HEALTH = ("health.latency_p99", "health.throughput", "health.error_rate", "health.freshness",
          "health.dependency_changed")  # fmt: skip


def _build(store: evalstore.Store) -> None:
    for model, task in TASKS.items():
        classes = None if task == "regression" else ([0, 1] if task == "binary" else [0, 1, 2])
        store.register_model(model, "v1", task, classes=classes)
        store.log_features(
            model,
            pa.table({"example_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0],
                      "c": ["p", "q", "p"]}),
            env="training",
        )  # fmt: skip
    store.register_model("bare", "v1", "binary", classes=[0, 1])


@pytest.fixture
def store(template: Any, tmp_path: Path) -> Iterator[evalstore.Store]:
    path = template("monitors-defaults", _build)
    with evalstore.open(copy_store(path, tmp_path)) as opened:
        yield opened


def _rules(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r["name"]: json.loads(r["rule"]) for r in table.to_pylist()}


@pytest.mark.parametrize(
    ("model", "metric", "direction", "options"),
    [("bin", "roc_auc", "below", {}), ("multi", "macro_f1", "below", {"n_boot": 0}),
     ("reg", "mae", "above", {})],
)  # fmt: skip
def test_the_set_per_task(
    store: evalstore.Store, model: str, metric: str, direction: str, options: dict[str, Any]
) -> None:
    table = store.add_default_monitors(model)
    names = table.column("name").to_pylist()
    assert names == sorted(
        f"{model}.{n}" for n in (f"performance.{metric}", "drift.wasserstein", "drift.js",
                                 "quality.nan", "quality.posinf", "quality.neginf",
                                 "quality.out_of_range", "quality.unseen", *HEALTH)
    )  # fmt: skip
    assert set(table.column("change").to_pylist()) == {"created"}
    rows = {r["name"]: r for r in table.to_pylist()}
    rules = _rules(table)
    performance = rules[f"{model}.performance.{metric}"]
    assert (performance["type"], performance["direction"]) == ("trailing", direction)
    assert (performance["n"], performance["k"], performance["min_rows"]) == (14, 3.0, 100)
    assert performance["wait_for_labels"] is True
    assert rows[f"{model}.performance.{metric}"]["subjects"] is None  # every version
    assert json.loads(rows[f"{model}.performance.{metric}"]["options"])["options"] == options
    assert rows[f"{model}.drift.wasserstein"]["subjects"] == ["x"]
    assert rows[f"{model}.drift.js"]["subjects"] == ["c"]
    assert rules[f"{model}.drift.wasserstein"]["value"] == 0.1
    assert rules[f"{model}.drift.js"]["value"] == 0.1
    assert rules[f"{model}.drift.js"]["resolve_after"] == 3
    assert rules[f"{model}.quality.nan"] == rules[f"{model}.quality.posinf"]
    assert (rules[f"{model}.quality.nan"]["value"], rules[f"{model}.quality.nan"]["min_rows"]) == (
        0.0,
        1,
    )
    unseen = rules[f"{model}.quality.unseen"]
    assert (unseen["method"], unseen["threshold"], unseen["min_rows"]) == ("share", 0.01, 100)
    assert rows[f"{model}.quality.unseen"]["subjects"] == ["c"]
    assert store.monitors(model).num_rows == 8 + len(HEALTH)
    latency = rules[f"{model}.health.latency_p99"]
    assert (latency["type"], latency["direction"], latency["fire_after"]) == (
        "trailing", "above", 2,
    )  # fmt: skip
    assert rules[f"{model}.health.throughput"]["direction"] == "both"
    assert rules[f"{model}.health.error_rate"]["value"] == 0.01
    assert rules[f"{model}.health.freshness"]["value"] == 48.0  # two daily windows, in hours
    assert rows[f"{model}.health.freshness"]["subjects"] == ["features/serving", "predictions"]
    assert rules[f"{model}.health.dependency_changed"]["value"] == 0.0


def test_a_second_call_changes_nothing(store: evalstore.Store) -> None:
    store.add_default_monitors("bin")
    before = store.monitors("bin")
    again = store.add_default_monitors("bin")
    assert set(again.column("change").to_pylist()) == {"unchanged"}
    assert store.monitors("bin").equals(before)


def test_a_changed_default_is_kept_unless_replace(store: evalstore.Store) -> None:
    store.add_default_monitors("bin")
    store.update_monitor("bin.drift.js", rule={"type": "fixed", "direction": "above", "value": 0.3})
    store.update_monitor("bin.quality.nan", enabled=False)
    kept = {r["name"]: r["change"] for r in store.add_default_monitors("bin").to_pylist()}
    assert kept["bin.drift.js"] == "kept"
    assert kept["bin.quality.nan"] == "unchanged"  # disabling is the user's choice
    assert _rules(store.monitors("bin"))["bin.drift.js"]["value"] == 0.3
    # a new feature: the drift monitor of its kind differs from the stored one
    store.log_features("bin", pa.table({"example_id": ["d"], "x": [1.0], "z": [5.0]}),
                       env="training")  # fmt: skip
    table = store.add_default_monitors("bin", replace=True)
    rows = {r["name"]: r for r in table.to_pylist()}
    assert rows["bin.drift.js"]["change"] == "replaced"
    assert rows["bin.drift.wasserstein"]["change"] == "replaced"
    assert rows["bin.drift.wasserstein"]["subjects"] == ["x", "z"]
    assert rows["bin.drift.wasserstein"]["definition_version"] == 2
    assert _rules(table)["bin.drift.js"]["value"] == 0.1
    assert rows["bin.quality.nan"]["change"] == "replaced"  # z is numeric too
    assert rows["bin.quality.nan"]["enabled"] is False  # and stays disabled
    assert rows["bin.quality.unseen"]["change"] == "unchanged"
    assert rows["bin.performance.roc_auc"]["change"] == "unchanged"


def test_a_model_without_features_gets_the_performance_monitor(
    store: evalstore.Store,
) -> None:
    table = store.add_default_monitors("bare")
    assert table.column("name").to_pylist() == sorted(
        ["bare.performance.roc_auc", *(f"bare.{n}" for n in HEALTH)]
    )


def test_errors_leave_the_store_as_it_was(store: evalstore.Store) -> None:
    with pytest.raises(UnknownModelError, match="nope"):
        store.add_default_monitors("nope")
    with pytest.raises(InvalidParameterError, match="window"):
        store.add_default_monitors("bin", window="sometimes")
    with pytest.raises(InvalidParameterError, match="replace="):
        store.add_default_monitors("bin", replace="yes")  # type: ignore[arg-type]
    assert store.monitors().num_rows == 0


def test_what_is_not_monitored_says_why() -> None:
    assert set(NOT_MONITORED) == {"model age"}
    assert all(len(reason) > 60 for reason in NOT_MONITORED.values())
