"""The model registry: defaults, canonical classes, conflicts, validation, read-only stores."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import (
    InvalidNameError,
    InvalidParameterError,
    ModelConflictError,
    ReadOnlyError,
)


@pytest.fixture
def empty(empty_store):
    """A fresh store without models (a copy of conftest's ``empty_template``)."""
    return empty_store


def registry(store: evalstore.Store) -> list[dict]:
    return store.models().to_pylist()


def test_binary_defaults(empty):
    row = empty.register_model("fraud", "v1", "binary")
    assert (row["classes"], row["positive_class"], row["threshold"]) == (["0", "1"], "1", 0.5)
    assert (row["model"], row["version"], row["task"]) == ("fraud", "v1", "binary")
    assert row["created_at"].tzinfo is not None
    assert registry(empty) == [row]


def test_first_version_creates_the_model_schema(empty):
    empty.register_model("fraud", "v1", "binary")
    objects = empty.sql(
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'fraud' ORDER BY table_name"
    ).to_pylist()
    assert objects == [
        {"table_name": "category_values", "table_type": "VIEW"},
        {"table_name": "evaluations", "table_type": "VIEW"},
        {"table_name": "features", "table_type": "BASE TABLE"},
        {"table_name": "labels", "table_type": "BASE TABLE"},
        {"table_name": "labels_latest", "table_type": "VIEW"},
        {"table_name": "numeric_values", "table_type": "VIEW"},
        {"table_name": "predictions", "table_type": "BASE TABLE"},
    ]
    value_types = empty.sql(
        "SELECT table_name, data_type FROM information_schema.columns WHERE table_schema = "
        "'fraud' AND column_name IN ('label', 'prediction') AND table_name IN "
        "('labels', 'predictions') ORDER BY table_name"
    ).to_pylist()
    assert [r["data_type"] for r in value_types] == ["VARCHAR", "VARCHAR"]
    empty.register_model("price", "v1", "regression")
    value_types = empty.sql(
        "SELECT data_type FROM information_schema.columns WHERE table_schema = 'price' "
        "AND column_name IN ('label', 'prediction') AND table_name IN ('labels', 'predictions')"
    ).to_pylist()
    assert [r["data_type"] for r in value_types] == ["DOUBLE", "DOUBLE"]


@pytest.mark.parametrize(
    ("classes", "positive", "expected", "expected_positive"),
    [
        ([True, False], None, ["true", "false"], "false"),
        ([False, True], True, ["false", "true"], "true"),
        ([0, 1], 1, ["0", "1"], "1"),
        ([np.int64(3), np.int8(7)], None, ["3", "7"], "7"),
        (("no", "yes"), "yes", ["no", "yes"], "yes"),
        (["neg", 1], 1, ["neg", "1"], "1"),
    ],
)
def test_classes_are_stored_as_canonical_text(
    empty, classes, positive, expected, expected_positive
):
    row = empty.register_model("m", "v1", "binary", classes=classes, positive_class=positive)
    assert row["classes"] == expected
    assert row["positive_class"] == expected_positive


def test_multiclass_and_regression_rows(empty):
    multi = empty.register_model("iris", "v1", "multiclass", classes=["a", "b", 3])
    assert (multi["classes"], multi["positive_class"], multi["threshold"]) == (
        ["a", "b", "3"],
        None,
        None,
    )
    regression = empty.register_model("price", "v1", "regression")
    assert (regression["classes"], regression["positive_class"], regression["threshold"]) == (
        None,
        None,
        None,
    )


def test_task_is_fixed_across_versions(empty):
    empty.register_model("fraud", "v1", "binary")
    before = registry(empty)
    with pytest.raises(
        ModelConflictError,
        match=r"model 'fraud' is registered with task 'binary'; version 'v2' cannot have "
        r"task 'regression'",
    ):
        empty.register_model("fraud", "v2", "regression")
    with pytest.raises(ModelConflictError, match=r"cannot have task 'multiclass'"):
        empty.register_model("fraud", "v1", "multiclass", classes=[0, 1, 2], replace=True)
    assert registry(empty) == before


def test_positive_class_is_fixed_across_versions(empty):
    empty.register_model("fraud", "v1", "binary", classes=[0, 1])
    with pytest.raises(
        ModelConflictError, match=r"model 'fraud' has positive class '1'; version 'v2' must use"
    ):
        empty.register_model("fraud", "v2", "binary", classes=[0, 1], positive_class=0)
    assert [r["version"] for r in registry(empty)] == ["v1"]


def test_registering_the_same_definition_again_is_a_no_op(empty):
    kwargs = {
        "classes": [0, 1],
        "threshold": 0.7,
        "trained_at": "2026-01-02T03:04:05+00:00",
        "params": {"depth": 6, "features": ["a", "b"]},
        "dependencies": {"numpy": "2.1.0"},
        "stage": "production",
    }
    first = empty.register_model("fraud", "v1", "binary", **kwargs)
    again = empty.register_model("fraud", "v1", "binary", **kwargs)
    assert again == first
    assert registry(empty) == [first]
    # equivalent spellings are the same definition: int vs str classes, naive vs UTC times
    spelled = {**kwargs, "classes": ["0", "1"], "trained_at": datetime(2026, 1, 2, 3, 4, 5)}
    assert empty.register_model("fraud", "v1", "binary", **spelled) == first


def test_a_different_definition_conflicts_unless_replace(empty):
    first = empty.register_model("fraud", "v1", "binary", threshold=0.5, notes="first")
    with pytest.raises(
        ModelConflictError,
        match=r"model 'fraud' version 'v1' is already registered with a different definition; "
        r"pass replace=True",
    ):
        empty.register_model("fraud", "v1", "binary", threshold=0.8, notes="second")
    assert registry(empty) == [first]
    replaced = empty.register_model(
        "fraud", "v1", "binary", threshold=0.8, notes="second", replace=True
    )
    assert (replaced["threshold"], replaced["notes"]) == (0.8, "second")
    assert replaced["created_at"] == first["created_at"]
    assert registry(empty) == [replaced]


def test_replaced_threshold_drives_later_derivations(empty):
    empty.register_model("fraud", "v1", "binary")
    empty.log_predictions("fraud", pa.table({"example_id": ["a"], "score": [0.6]}), version="v1")
    empty.register_model("fraud", "v1", "binary", threshold=0.65, replace=True)
    empty.log_predictions("fraud", pa.table({"example_id": ["b"], "score": [0.6]}), version="v1")
    result = empty.sql("SELECT example_id, prediction FROM fraud.predictions ORDER BY 1")
    assert result.to_pylist() == [
        {"example_id": "a", "prediction": "1"},
        {"example_id": "b", "prediction": "0"},
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, r"task='ranking' is not one of binary, multiclass, regression"),
        ({"version": ""}, r"version='' must be a non-empty string"),
        ({"version": 2}, r"version=2 must be a non-empty string"),
        ({"threshold": 1.5}, r"threshold=1.5 must be a number in \[0, 1\]"),
        ({"threshold": -0.01}, r"threshold=-0.01 must be a number in \[0, 1\]"),
        ({"threshold": float("nan")}, r"threshold=nan must be a number in \[0, 1\]"),
        ({"threshold": "high"}, r"threshold='high' must be a number"),
        ({"classes": "01"}, r"classes must be a list of class labels"),
        ({"classes": [0, 1, 2]}, r"task='binary' needs exactly two classes, got classes=\[0, 1, 2"),
        ({"classes": [1]}, r"task='binary' needs exactly two classes"),
        ({"classes": [1, "1"]}, r"classes=\[1, '1'\] repeats a class"),
        ({"classes": [None, 1]}, r"classes: class label None must be a non-empty string"),
        ({"classes": [0.0, 1.0]}, r"classes: class label 0.0 must be a non-empty string"),
        ({"classes": ["", "x"]}, r"classes: class label '' must be"),
        ({"positive_class": 2}, r"positive_class=2 is not one of classes=\['0', '1'\]"),
        ({"positive_class": 1.0}, r"positive_class: class label 1.0 must be"),
        ({"dependencies": {"numpy": 2}}, r"dependencies must map package names to version str"),
        ({"dependencies": ["numpy==2"]}, r"dependencies must be a dict, not list"),
        ({"params": [1, 2]}, r"params must be a dict, not list"),
        ({"trained_at": "last tuesday"}, r"trained_at='last tuesday' is not an ISO-8601 time"),
        ({"deployed_at": 1700000000}, r"deployed_at=1700000000 must be a datetime or ISO-8601"),
        ({"retired_at": "2026-13-01"}, r"retired_at='2026-13-01' is not an ISO-8601"),
        ({"stage": 3}, r"stage=3 must be a string or None"),
        ({"training_dataset": ["a"]}, r"training_dataset=\['a'\] must be a string"),
        ({"notes": b"x"}, r"notes=b'x' must be a string"),
    ],
)
def test_invalid_registrations(empty, snapshot, kwargs, message):
    arguments = {"model": "fraud", "version": "v1", "task": "binary", **kwargs}
    before = snapshot(empty)
    with pytest.raises(InvalidParameterError, match=message):
        empty.register_model(**arguments)
    assert snapshot(empty) == before
    assert registry(empty) == []


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("regression", {"classes": [0, 1]}, r"apply to classification tasks, not to task='regr"),
        ("regression", {"threshold": 0.5}, r"apply to classification tasks"),
        ("regression", {"positive_class": 1}, r"apply to classification tasks"),
        ("multiclass", {"threshold": 0.5}, r"positive_class and threshold apply to task='binary'"),
        ("multiclass", {"classes": [0, 1, 2], "positive_class": 1}, r"apply to task='binary'"),
        ("multiclass", {"classes": ["only"]}, r"task='multiclass' needs at least two classes"),
    ],
)
def test_options_that_do_not_fit_the_task(empty, task, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        empty.register_model("m", "v1", task, **kwargs)
    assert registry(empty) == []


@pytest.mark.parametrize("name", ["Fraud", "fraud-v2", "fraud; DROP TABLE x", "", "evalstore"])
def test_register_rejects_unsafe_model_names(empty, snapshot, name):
    before = snapshot(empty)
    with pytest.raises(InvalidNameError, match=r"model name"):
        empty.register_model(name, "v1", "binary")
    assert snapshot(empty) == before


def test_timestamps_from_iso_text_and_naive_times_are_utc(empty):
    row = empty.register_model(
        "fraud",
        "v1",
        "binary",
        trained_at="2026-01-02T03:04:05Z",
        deployed_at="2026-01-05T12:00:00+02:00",
        retired_at="2026-02-01T08:30:00",
    )
    assert row["trained_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert row["deployed_at"] == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert row["retired_at"] == datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    other = empty.register_model(
        "fraud",
        "v2",
        "binary",
        trained_at=datetime(2026, 3, 1, 9, 15),  # naive: taken as UTC
        deployed_at=datetime(2026, 3, 2, 9, 15, tzinfo=timezone(timedelta(hours=-5))),
        retired_at=date(2026, 4, 1),
    )
    assert other["trained_at"] == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    assert other["deployed_at"] == datetime(2026, 3, 2, 14, 15, tzinfo=UTC)
    assert other["retired_at"] == datetime(2026, 4, 1, tzinfo=UTC)
    # stored as TIMESTAMPTZ: SQL sees the same instants
    stored = empty.sql(
        "SELECT version, epoch(trained_at) AS t FROM evalstore.models ORDER BY version"
    ).to_pylist()
    assert [r["t"] for r in stored] == [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp(),
        datetime(2026, 3, 1, 9, 15, tzinfo=UTC).timestamp(),
    ]


def test_params_and_dependencies_round_trip_as_json(empty):
    params = {"depth": 6, "eta": 0.1, "nested": {"list": [1, "two", None]}, "flag": True}
    dependencies = {"numpy": "2.1.0", "scikit-learn": "1.5.2"}
    row = empty.register_model("fraud", "v1", "binary", params=params, dependencies=dependencies)
    assert json.loads(row["params"]) == params
    assert json.loads(row["dependencies"]) == dependencies
    # the JSON column is queryable from SQL
    depth = empty.sql(
        "SELECT params->>'$.nested.list[1]' AS two, dependencies->>'$.numpy' AS numpy "
        "FROM evalstore.models"
    ).to_pylist()
    assert depth == [{"two": "two", "numpy": "2.1.0"}]


def test_models_lists_every_version(empty):
    empty.register_model("fraud", "v1", "binary", stage="production", training_dataset="t1")
    empty.register_model("fraud", "v2", "binary", stage="shadow", validation_dataset="val2")
    empty.register_model("iris", "2026-01", "multiclass", classes=["a", "b", "c"])
    table = empty.models()
    assert table.column_names == [
        "model",
        "version",
        "task",
        "classes",
        "positive_class",
        "threshold",
        "created_at",
        "trained_at",
        "deployed_at",
        "retired_at",
        "stage",
        "training_dataset",
        "validation_dataset",
        "params",
        "dependencies",
        "notes",
    ]
    summary = [
        (
            r["model"],
            r["version"],
            r["task"],
            r["stage"],
            r["training_dataset"],
            r["validation_dataset"],
        )
        for r in table.to_pylist()
    ]
    assert summary == [
        ("fraud", "v1", "binary", "production", "t1", None),
        ("fraud", "v2", "binary", "shadow", None, "val2"),
        ("iris", "2026-01", "multiclass", None, None, None),
    ]
    assert [r["version"] for r in empty.models("fraud").to_pylist()] == ["v1", "v2"]
    assert empty.models("nope").num_rows == 0


def test_read_only_store_refuses_writes(file_store):
    file_store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0]}))
    path = file_store.path
    file_store.close()
    with evalstore.open(path, read_only=True) as reader:
        assert reader.read_only
        before = reader.models().to_pylist()
        assert [r["model"] for r in before] == ["fraud"]
        with pytest.raises(ReadOnlyError, match=r"is read-only; open it with read_only=False"):
            reader.register_model("other", "v1", "binary")
        with pytest.raises(ReadOnlyError, match=r"read-only"):
            reader.log_features("fraud", pa.table({"example_id": ["b"], "x": [2.0]}))
        with pytest.raises(ReadOnlyError, match=r"read-only"):
            reader.log_predictions(
                "fraud", pa.table({"example_id": ["b"], "score": [0.2]}), version="v1"
            )
        with pytest.raises(ReadOnlyError, match=r"read-only"):
            reader.log_labels("fraud", pa.table({"example_id": ["b"], "label": [1]}))
        assert reader.models().to_pylist() == before
        assert reader.sql("SELECT example_id, x FROM fraud.features").to_pylist() == [
            {"example_id": "a", "x": 1.0}
        ]


def test_read_only_needs_an_existing_file(tmp_path):
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(InvalidParameterError, match=r"read_only=True needs an existing store"):
        evalstore.open(missing, read_only=True)
    assert not missing.exists()
    with pytest.raises(InvalidParameterError, match=r"read_only=True needs an existing store"):
        evalstore.open(None, read_only=True)


def test_registry_persists_in_the_file(file_store):
    file_store.register_model("fraud", "v2", "binary", params={"k": 1})
    path = file_store.path
    rows = file_store.models().to_pylist()
    file_store.close()
    with evalstore.open(path) as reopened:
        assert reopened.models().to_pylist() == rows
        # same definition again after reopening: still a no-op
        again = reopened.register_model("fraud", "v2", "binary", params={"k": 1})
        assert again == rows[1]


def test_boolean_threshold_is_rejected(empty):
    with pytest.raises(InvalidParameterError, match=r"threshold=True must be a number in \[0, 1\]"):
        empty.register_model("fraud", "v1", "binary", threshold=True)
