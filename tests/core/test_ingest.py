"""Ingest: validation, atomicity, schema evolution, input formats, labels and receipts.

Every rejected batch is checked twice: by the error (type, and a message naming the
column or parameter) and by the store (``rejects`` compares every table, column and
row before and after the call).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

import evalstore
from evalstore.core import ingest, ingest_write
from evalstore.core.identifiers import quote
from evalstore.core.layout import RESERVED_FEATURE_NAMES
from evalstore.errors import (
    DuplicateIdError,
    InvalidNameError,
    InvalidParameterError,
    NotTabularError,
    SchemaConflictError,
    UnknownModelError,
    ValidationError,
)


def rows(store: evalstore.Store, query: str, params=None) -> list[dict]:
    return store.sql(query, params).to_pylist()


def features_by_id(store: evalstore.Store, *cols: str, env: str = "serving") -> dict:
    """``{example_id: (col values...)}`` of ``fraud.features`` in ``env``."""
    select = ", ".join(map(quote, cols))
    result = rows(
        store,
        f"SELECT example_id, {select} FROM fraud.features WHERE env = ? ORDER BY example_id",
        [env],
    )
    return {r["example_id"]: tuple(r[c] for c in cols) for r in result}


# ============================================================ rejected batches


def test_missing_id_column_is_rejected(store, rejects):
    batch = pa.table({"id": ["a"], "x": [1.0]})
    with rejects(store, ValidationError, r"missing column 'example_id' \(id_column=") as info:
        store.log_features("fraud", batch)
    assert info.value.column == "example_id"


def test_missing_custom_id_column_names_the_parameter(store, rejects):
    batch = pa.table({"example_id": ["a"], "x": [1.0]})
    with rejects(store, ValidationError, r"missing column 'key' \(id_column='key'\)"):
        store.log_features("fraud", batch, id_column="key")
    with rejects(store, ValidationError, r"missing column 'key' \(id_column='key'\)"):
        store.log_labels("fraud", pa.table({"example_id": ["a"], "label": [1]}), id_column="key")


def test_null_ids_are_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", None, "c", None], "x": [1.0, 2.0, 3.0, 4.0]})
    with rejects(store, ValidationError, r"id column 'example_id' has 2 null values") as info:
        store.log_features("fraud", batch)
    assert (info.value.column, info.value.rows) == ("example_id", 2)


def test_float_ids_are_rejected(store, rejects):
    batch = pa.table({"example_id": [1.5], "x": [1.0]})
    with rejects(
        store, SchemaConflictError, r"column 'example_id' has type DOUBLE; expected text or integer"
    ):
        store.log_features("fraud", batch)


def test_duplicate_ids_within_a_batch_are_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", "b", "a", "c", "b"], "x": [1.0] * 5})
    with rejects(
        store, DuplicateIdError, r"id column 'example_id' repeats 2 ids within the batch"
    ) as info:
        store.log_features("fraud", batch)
    assert sorted(info.value.examples) == ["a", "b"]


@pytest.mark.parametrize("on_conflict", ["error", "replace", "ignore"])
def test_duplicate_ids_within_a_batch_are_rejected_whatever_on_conflict(
    store, rejects, on_conflict
):
    batch = pa.table({"example_id": ["a", "a"], "x": [1.0, 2.0]})
    with rejects(store, DuplicateIdError, r"repeats 1 ids within the batch"):
        store.log_features("fraud", batch, on_conflict=on_conflict)


def test_id_already_stored_for_model_and_env_is_rejected(store, rejects):
    store.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
    batch = pa.table({"example_id": ["c", "b"], "x": [3.0, 4.0], "new": [1, 2]})
    with rejects(
        store, DuplicateIdError, r"1 ids are already stored for this env \('serving'\).*'b'"
    ) as info:
        store.log_features("fraud", batch)
    assert info.value.examples == ["b"]


def test_integer_and_text_ids_collide(store, rejects):
    """Ids are stored as text, so id 7 and id '7' are the same example."""
    store.log_features("fraud", pa.table({"example_id": [7, 8], "x": [1.0, 2.0]}))
    assert features_by_id(store, "x") == {"7": (1.0,), "8": (2.0,)}
    with rejects(store, DuplicateIdError, r"already stored for this env"):
        store.log_features("fraud", pa.table({"example_id": ["7"], "x": [3.0]}))


def test_same_id_in_another_env_is_accepted(store):
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0]}), env="training")
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [2.0]}), env="validation")
    receipt = store.log_features("fraud", pa.table({"example_id": ["a"], "x": [3.0]}))
    assert receipt.rows == 1
    assert features_by_id(store, "x", env="training") == {"a": (1.0,)}
    assert features_by_id(store, "x", env="validation") == {"a": (2.0,)}
    assert features_by_id(store, "x", env="serving") == {"a": (3.0,)}


def test_on_conflict_replace_new_values_win(store, counts):
    store.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [9.0]}), env="training")
    receipt = store.log_features(
        "fraud",
        pa.table({"example_id": ["a", "c"], "x": [10.0, 30.0]}),
        on_conflict="replace",
    )
    assert (receipt.rows, receipt.replaced, receipt.skipped) == (2, 1, 0)
    assert features_by_id(store, "x") == {"a": (10.0,), "b": (2.0,), "c": (30.0,)}
    # the replaced row is gone (not kept beside the new one); training is untouched
    assert counts(store)["features"] == 4
    assert features_by_id(store, "x", env="training") == {"a": (9.0,)}
    assert rows(store, "SELECT rows FROM evalstore.batches ORDER BY batch_id")[-1] == {"rows": 2}


def test_on_conflict_ignore_keeps_stored_rows(store, counts):
    store.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
    receipt = store.log_features(
        "fraud",
        pa.table({"example_id": ["a", "b", "c"], "x": [10.0, 20.0, 30.0]}),
        on_conflict="ignore",
    )
    assert (receipt.rows, receipt.replaced, receipt.skipped) == (1, 0, 2)
    assert features_by_id(store, "x") == {"a": (1.0,), "b": (2.0,), "c": (30.0,)}
    assert counts(store)["features"] == 3
    batch = rows(store, "SELECT rows FROM evalstore.batches WHERE batch_id = ?", [receipt.batch_id])
    assert batch == [{"rows": 1}]


def test_feature_type_conflict_names_column_and_both_types(store, rejects):
    store.log_features("fraud", pa.table({"example_id": ["a"], "income": [1.5]}))
    batch = pa.table({"example_id": ["b"], "brand_new": [1], "income": ["lots"]})
    with rejects(
        store,
        SchemaConflictError,
        r"column 'income' is stored as DOUBLE but the batch has VARCHAR",
    ) as info:
        store.log_features("fraud", batch)
    assert info.value.column == "income"


@pytest.mark.parametrize(
    ("stored", "incoming", "stored_type", "incoming_type"),
    [
        (pa.int32(), pa.int64(), "INTEGER", "BIGINT"),
        (pa.int64(), pa.float64(), "BIGINT", "DOUBLE"),
        (pa.float32(), pa.float64(), "FLOAT", "DOUBLE"),
        (pa.bool_(), pa.int64(), "BOOLEAN", "BIGINT"),
        (pa.string(), pa.int64(), "VARCHAR", "BIGINT"),
        (pa.timestamp("us"), pa.timestamp("us", tz="UTC"), "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"),
    ],
)
def test_narrowing_or_unrelated_types_conflict(
    store, rejects, stored, incoming, stored_type, incoming_type
):
    first = pa.array([1], pa.int64()).cast(stored)
    store.log_features("fraud", pa.table({"example_id": ["a"], "f": first}))
    second = pa.array([2], pa.int64()).cast(incoming)
    with rejects(
        store,
        SchemaConflictError,
        rf"column 'f' is stored as {stored_type} but the batch has {incoming_type}",
    ):
        store.log_features("fraud", pa.table({"example_id": ["b"], "f": second}))


@pytest.mark.parametrize(
    ("stored", "incoming", "stored_type", "values"),
    [
        (pa.int64(), pa.int32(), "BIGINT", [1, 2**31 - 1]),
        (pa.int64(), pa.int8(), "BIGINT", [1, -128]),
        (pa.int32(), pa.int16(), "INTEGER", [1, -(2**15)]),
        (pa.float64(), pa.int64(), "DOUBLE", [1.0, 2.0**53]),
        (pa.float64(), pa.int32(), "DOUBLE", [1.0, -7.0]),
        (pa.float64(), pa.float32(), "DOUBLE", [1.0, 0.5]),
    ],
)
def test_widenings_are_accepted(store, columns, stored, incoming, stored_type, values):
    store.log_features(
        "fraud", pa.table({"example_id": ["a"], "f": pa.array([values[0]]).cast(stored)})
    )
    receipt = store.log_features(
        "fraud", pa.table({"example_id": ["b"], "f": pa.array([values[1]]).cast(incoming)})
    )
    assert receipt.columns_added == ()
    assert columns(store)["f"] == stored_type
    assert features_by_id(store, "f") == {"a": (values[0],), "b": (values[1],)}


def test_predictions_for_unregistered_version(store, rejects):
    batch = pa.table({"example_id": ["a"], "score": [0.3]})
    with rejects(store, UnknownModelError, r"model 'fraud' has no version 'v9' \(registered: v1\)"):
        store.log_predictions("fraud", batch, version="v9")


@pytest.mark.parametrize("kind", ["features", "predictions", "labels"])
def test_ingest_for_unregistered_model(store, rejects, kind):
    batch = pa.table({"example_id": ["a"], "score": [0.3], "label": [1]})
    call = {
        "features": lambda: store.log_features("credit", batch),
        "predictions": lambda: store.log_predictions("credit", batch, version="v1"),
        "labels": lambda: store.log_labels("credit", batch),
    }[kind]
    with rejects(store, UnknownModelError, r"model 'credit' is not registered"):
        call()


def test_string_label_for_regression_is_rejected(store, rejects):
    store.register_model("price", "v1", "regression")
    with rejects(
        store, SchemaConflictError, r"column 'label' has type VARCHAR; expected numbers"
    ) as info:
        store.log_labels("price", pa.table({"example_id": ["a"], "label": ["12.5"]}))
    assert info.value.column == "label"


def test_float_label_for_binary_is_rejected(store, rejects):
    with rejects(store, SchemaConflictError, r"column 'y' has type DOUBLE; expected class labels"):
        store.log_labels("fraud", pa.table({"example_id": ["a"], "y": [1.0]}), label_column="y")


@pytest.mark.parametrize(
    ("labels", "bad"),
    [([0, 1, 2], ["2"]), (["0", "yes"], ["yes"]), ([True, False], None)],
)
def test_label_outside_registered_classes_is_rejected(store, rejects, labels, bad):
    batch = pa.table({"example_id": [str(i) for i in range(len(labels))], "label": labels})
    with rejects(
        store,
        ValidationError,
        r"label column 'label' has \d+ values outside the registered classes \['0', '1'\]",
    ) as info:
        store.log_labels("fraud", batch)
    if bad is not None:
        assert info.value.examples == bad
    else:  # booleans are 'true'/'false', not '1'/'0'
        assert sorted(info.value.examples) == ["false", "true"]


def test_null_labels_are_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", "b"], "label": pa.array([1, None], pa.int64())})
    with rejects(store, ValidationError, r"label column 'label' has 1 null values") as info:
        store.log_labels("fraud", batch)
    assert info.value.rows == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_regression_labels_are_rejected(store, rejects, value):
    store.register_model("price", "v1", "regression")
    batch = pa.table({"example_id": ["a", "b"], "label": [1.0, value]})
    with rejects(store, ValidationError, r"column 'label' has 1 values that are not finite"):
        store.log_labels("price", batch)


def test_duplicate_labels_in_one_batch_are_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", "a", "b"], "label": [0, 1, 1]})
    with rejects(store, DuplicateIdError, r"repeats 1 ids within the batch.*one label per"):
        store.log_labels("fraud", batch)


def test_prediction_outside_classes_is_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", "b"], "prediction": [1, 3], "score": [0.9, 0.2]})
    with rejects(
        store,
        ValidationError,
        r"column 'prediction' has 1 values outside the registered classes \['0', '1'\]",
    ) as info:
        store.log_predictions("fraud", batch, version="v1")
    assert info.value.examples == ["3"]


def test_prediction_checked_against_its_own_versions_classes(store, rejects):
    """A class of another version is not a valid prediction of this one."""
    store.register_model("fraud", "v2", "binary", classes=["legit", 1], positive_class=1)
    batch = pa.table({"example_id": ["a"], "prediction": ["0"]})
    with rejects(store, ValidationError, r"outside the registered classes \['legit', '1'\]"):
        store.log_predictions("fraud", batch, version="v2")


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf])
def test_score_outside_unit_interval_is_rejected(store, rejects, bad):
    batch = pa.table({"example_id": ["a", "b"], "score": [0.5, bad], "prediction": [1, 0]})
    with rejects(
        store, ValidationError, r"column 'score' has 1 values that are not probabilities in"
    ) as info:
        store.log_predictions("fraud", batch, version="v1")
    assert info.value.column == "score"


def test_score_given_by_another_column_name(store, rejects):
    batch = pa.table({"example_id": ["a"], "p": [1.5]})
    with rejects(store, ValidationError, r"column 'p' has 1 values that are not probabilities"):
        store.log_predictions("fraud", batch, version="v1", score_column="p")
    with rejects(store, ValidationError, r"missing column 'q' \(score_column='q'\)"):
        store.log_predictions("fraud", batch, version="v1", score_column="q")


def test_predictions_need_a_prediction_or_score(store, rejects):
    batch = pa.table({"example_id": ["a"], "other": [1]})
    with rejects(store, ValidationError, r"missing column 'prediction' \(prediction_column="):
        store.log_predictions("fraud", batch, version="v1")


def test_negative_latency_is_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", "b"], "score": [0.1, 0.2], "lat": [3.0, -1.0]})
    with rejects(
        store, ValidationError, r"column 'lat' has 1 values that are not non-negative milli"
    ):
        store.log_predictions("fraud", batch, version="v1", latency_column="lat")


def test_duplicate_prediction_for_same_version_is_rejected(store, rejects):
    store.log_predictions("fraud", pa.table({"example_id": ["a"], "score": [0.1]}), version="v1")
    with rejects(store, DuplicateIdError, r"1 ids are already stored for this version \('v1'\)"):
        store.log_predictions(
            "fraud", pa.table({"example_id": ["a"], "score": [0.2]}), version="v1"
        )
    # another version may predict the same example (shadow / challenger)
    store.register_model("fraud", "v2", "binary", classes=[0, 1])
    store.log_predictions("fraud", pa.table({"example_id": ["a"], "score": [0.9]}), version="v2")
    assert rows(store, "SELECT version, prediction FROM fraud.predictions ORDER BY version") == [
        {"version": "v1", "prediction": "0"},
        {"version": "v2", "prediction": "1"},
    ]


@pytest.mark.parametrize(
    "name",
    ["fraud; DROP TABLE x", "Fraud", "evalstore", "", "main", "9lives", "fr aud", "a" * 64],
)
def test_unsafe_model_names_are_rejected(store, rejects, name):
    batch = pa.table({"example_id": ["a"], "x": [1.0], "label": [1]})
    with rejects(store, InvalidNameError, r"model name .* (is not a safe identifier|is reserved)"):
        store.log_features(name, batch)
    with rejects(store, InvalidNameError, r"model name"):
        store.log_labels(name, batch)
    with rejects(store, InvalidNameError, r"model name"):
        store.register_model(name, "v1", "binary")


def test_injection_through_a_column_name_is_stored_literally(store):
    evil = 'x"; DROP TABLE fraud.features; --'
    batch = pa.table({"example_id": ["a", "b"], evil: [1.0, 2.0]})
    receipt = store.log_features("fraud", batch)
    assert receipt.columns_added == (evil,)
    assert features_by_id(store, evil) == {"a": (1.0,), "b": (2.0,)}
    tables = rows(
        store, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'fraud' ORDER BY 1"
    )
    assert [t["table_name"] for t in tables] == ["features", "labels", "predictions"]


def test_injection_through_the_id_column_parameter(store):
    evil = "k'); DROP TABLE fraud.labels; --"
    store.log_labels("fraud", pa.table({evil: ["a"], "label": [1]}), id_column=evil)
    assert rows(store, "SELECT example_id, label FROM fraud.labels") == [
        {"example_id": "a", "label": "1"}
    ]


def test_injection_through_parameters_is_stored_literally(store):
    dataset = "'); DROP TABLE fraud.features; --"
    source = "x'; DELETE FROM evalstore.models; --"
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0]}), dataset=dataset)
    store.log_labels("fraud", pa.table({"example_id": ["a"], "label": [1]}), source=source)
    assert rows(store, "SELECT dataset FROM fraud.features") == [{"dataset": dataset}]
    assert rows(store, "SELECT source FROM fraud.labels") == [{"source": source}]
    assert rows(store, "SELECT dataset FROM evalstore.batches WHERE kind = 'features'") == [
        {"dataset": dataset}
    ]
    assert rows(store, "SELECT count(*) AS n FROM evalstore.models") == [{"n": 1}]


def test_injection_through_a_version_string(store, rejects):
    version = "v2'; DROP TABLE fraud.predictions; --"
    with rejects(store, UnknownModelError, r"has no version"):
        store.log_predictions(
            "fraud", pa.table({"example_id": ["a"], "score": [0.5]}), version=version
        )
    store.register_model("fraud", version, "binary")
    store.log_predictions("fraud", pa.table({"example_id": ["a"], "score": [0.5]}), version=version)
    assert rows(store, "SELECT version FROM fraud.predictions") == [{"version": version}]


@pytest.mark.parametrize(
    "name", [*sorted(RESERVED_FEATURE_NAMES - {"example_id", "ts"}), "ENV", "Label", "Batch_Id"]
)
def test_reserved_feature_names_are_rejected(store, rejects, name):
    batch = pa.table({"example_id": ["a"], "ok": [1.0], name: [1]})
    with rejects(store, ValidationError, rf"column '{name}' uses a reserved name") as info:
        store.log_features("fraud", batch)
    assert info.value.column == name


def test_ts_is_reserved_when_another_time_column_is_named(store, rejects):
    batch = pa.table({"example_id": ["a"], "event_time": [datetime(2026, 1, 1)], "ts": [1]})
    with rejects(store, ValidationError, r"column 'ts' uses a reserved name"):
        store.log_features("fraud", batch, ts_column="event_time")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["x", "X"], r"columns 'x' and 'X' differ only in letter case"),
        (["income", "Income"], r"columns 'income' and 'Income' differ only in letter case"),
        (["x", "x"], r"columns 'x' and 'x' differ only in letter case"),
        (["x", "EXAMPLE_ID"], r"columns 'example_id' and 'EXAMPLE_ID' differ only"),
    ],
)
def test_columns_differing_only_in_case_are_rejected(store, rejects, names, message):
    batch = pa.table(
        [pa.array(["a"]), pa.array([1.0]), pa.array([2.0])], names=["example_id", *names]
    )
    with rejects(store, ValidationError, message):
        store.log_features("fraud", batch)


def test_empty_column_name_is_rejected(store, rejects):
    batch = pa.table([pa.array(["a"]), pa.array([1.0])], names=["example_id", ""])
    with rejects(store, InvalidNameError, r"column name '' is not usable"):
        store.log_features("fraud", batch)


def test_case_variant_of_a_stored_column_lands_in_it(store, columns):
    """SQL names are case-insensitive: 'INCOME' later is the stored 'Income' column."""
    store.log_features("fraud", pa.table({"example_id": ["a"], "Income": [1.0]}))
    receipt = store.log_features("fraud", pa.table({"example_id": ["b"], "INCOME": [2.0]}))
    assert receipt.columns_added == ()
    assert list(columns(store))[-1] == "Income"
    assert features_by_id(store, "Income") == {"a": (1.0,), "b": (2.0,)}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: [{"example_id": "a"}], r"data of type list is not tabular"),
        (lambda tmp: 42, r"data of type int is not tabular"),
        (lambda tmp: {"example_id": ["a"]}, r"data of type dict is not tabular"),
        (lambda tmp: None, r"data of type NoneType is not tabular"),
        (lambda tmp: tmp / "missing.parquet", r"missing\.parquet' does not exist"),
        (lambda tmp: tmp, r"does not exist or is not a regular file"),
        (lambda tmp: _write(tmp / "notes.txt", b"example_id\na\n"), r"unknown extension '.txt'"),
        (lambda tmp: _write(tmp / "junk.parquet", b"not parquet"), r"cannot read .* as parquet"),
        (lambda tmp: _write(tmp / "junk.arrow", b"not arrow"), r"cannot read .* as arrow"),
    ],
)
def test_non_tabular_data_is_rejected(store, rejects, tmp_path, make, message):
    data = make(tmp_path)
    with rejects(store, NotTabularError, message):
        store.log_features("fraud", data)
    with rejects(store, NotTabularError, message):
        store.log_labels("fraud", data)


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


def test_invalid_env_is_rejected(store, rejects):
    batch = pa.table({"example_id": ["a"], "x": [1.0]})
    with rejects(
        store, InvalidParameterError, r"env='prod' is not one of training, validation, serving"
    ):
        store.log_features("fraud", batch, env="prod")


def test_invalid_on_conflict_is_rejected(store, rejects):
    batch = pa.table({"example_id": ["a"], "x": [1.0]})
    with rejects(store, InvalidParameterError, r"on_conflict='overwrite' is not one of"):
        store.log_features("fraud", batch, on_conflict="overwrite")


def test_invalid_dataset_is_rejected(store, rejects):
    batch = pa.table({"example_id": ["a"], "x": [1.0]})
    with rejects(store, InvalidParameterError, r"dataset=3 must be a string tag or None"):
        store.log_features("fraud", batch, dataset=3)


def test_unparseable_time_text_is_rejected(store, rejects):
    batch = pa.table({"example_id": ["a", "b"], "ts": ["2026-01-01", "yesterday"], "x": [1, 2]})
    with rejects(store, ValidationError, r"could not be converted.*yesterday.*column ts"):
        store.log_features("fraud", batch)


def test_null_times_are_rejected(store, rejects):
    batch = pa.table(
        {"example_id": ["a", "b"], "ts": pa.array([datetime(2026, 1, 1), None]), "x": [1, 2]}
    )
    with rejects(store, ValidationError, r"time column 'ts' has 1 null values"):
        store.log_features("fraud", batch)


def test_probability_columns_are_validated(store, rejects):
    store.register_model("iris", "v1", "multiclass", classes=["a", "b", "c"])
    good = {"example_id": ["1"], "a": [0.2], "b": [0.3], "c": [0.5]}
    with rejects(
        store, ValidationError, r"probability columns have 1 rows with a value outside \[0, 1\]"
    ):
        store.log_predictions(
            "iris", pa.table({**good, "c": [1.5]}), version="v1", probability_columns=list("abc")
        )
    with rejects(store, ValidationError, r"probability column 'd' is for class 'd', which is not"):
        store.log_predictions(
            "iris", pa.table({**good, "d": [0.0]}), version="v1", probability_columns=["a", "d"]
        )
    with rejects(store, InvalidParameterError, r"probability_columns must be a list"):
        store.log_predictions("iris", pa.table(good), version="v1", probability_columns="abc")
    with rejects(store, ValidationError, r"missing column 'pz' \(probability_columns="):
        store.log_predictions("iris", pa.table(good), version="v1", probability_columns={"a": "pz"})


# ============================================================ failures midway


def _failing_reader(schema: pa.Schema, batches: list[pa.RecordBatch]) -> pa.RecordBatchReader:
    def generate():
        yield from batches
        raise RuntimeError("source broke after a few batches")

    return pa.RecordBatchReader.from_batches(schema, generate())


def test_source_failing_midway_writes_nothing(store, rejects, columns):
    store.log_features("fraud", pa.table({"example_id": ["s"], "x": [0.5]}))
    schema = pa.schema([("example_id", pa.string()), ("x", pa.float64()), ("fresh", pa.int64())])
    batches = [
        pa.record_batch(
            [
                pa.array([f"{i}-{j}" for j in range(1000)]),
                pa.array([1.0] * 1000),
                pa.array(range(1000)),
            ],
            schema=schema,
        )
        for i in range(3)
    ]
    with rejects(store, duckdb.Error, r"source broke after a few batches"):
        store.log_features("fraud", _failing_reader(schema, batches))
    assert "fresh" not in columns(store)
    # the same ids are still free: nothing of the failed batch was kept
    receipt = store.log_features("fraud", pa.Table.from_batches(batches, schema))
    assert receipt.rows == 3000
    assert receipt.columns_added == ("fresh",)


@pytest.mark.parametrize("kind", ["predictions", "labels"])
def test_source_failing_midway_for_predictions_and_labels(store, rejects, kind):
    name = "score" if kind == "predictions" else "label"
    values = pa.array([0.5] * 10) if kind == "predictions" else pa.array([1] * 10)
    schema = pa.schema([("example_id", pa.string()), (name, values.type)])
    batch = pa.record_batch([pa.array([str(i) for i in range(10)]), values], schema=schema)
    with rejects(store, duckdb.Error, r"source broke"):
        if kind == "predictions":
            store.log_predictions("fraud", _failing_reader(schema, [batch]), version="v1")
        else:
            store.log_labels("fraud", _failing_reader(schema, [batch]))


def test_failure_after_rows_were_inserted_rolls_back(store, rejects, monkeypatch, columns):
    """on_conflict='replace' deletes the stored rows, then the batch fails: they come back."""
    store.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
    seen = {}
    real = ingest_write._resolve_conflicts

    def resolve_then_fail(con, plan, table, params):
        seen["result"] = real(con, plan, table, params)
        seen["rows_in_transaction"] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        raise RuntimeError("injected failure after the insert")

    monkeypatch.setattr(ingest_write, "_resolve_conflicts", resolve_then_fail)
    batch = pa.table({"example_id": ["a", "c"], "x": [10.0, 30.0], "added": ["n", "m"]})
    with rejects(store, RuntimeError, r"injected failure after the insert"):
        store.log_features("fraud", batch, on_conflict="replace")
    # the failure really came after the writes: a replaced, c inserted, inside the transaction
    assert seen == {"result": (1, 0), "rows_in_transaction": 3}
    assert "added" not in columns(store)
    assert features_by_id(store, "x") == {"a": (1.0,), "b": (2.0,)}


class _FailingBatchesInsert:
    """A connection proxy whose insert into the audit trail fails (e.g. a full disk)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.statements: list[str] = []

    def execute(self, sql, *args, **kwargs):
        self.statements.append(sql)
        if sql.startswith("INSERT INTO evalstore.batches"):
            raise duckdb.IOException("injected: could not write evalstore.batches")
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


@pytest.mark.parametrize("kind", ["features", "predictions", "labels"])
def test_failing_audit_trail_insert_rolls_back_the_batch(store, rejects, monkeypatch, kind):
    store.log_features("fraud", pa.table({"example_id": ["z"], "x": [1.0]}))
    proxy = _FailingBatchesInsert(store.connection)
    monkeypatch.setattr(store, "_con", proxy)
    batch = pa.table(
        {
            "example_id": ["a", "b"],
            "x": [1.0, 2.0],
            "extra": [1, 2],
            "score": [0.1, 0.9],
            "label": [0, 1],
        }
    )
    with rejects(store, duckdb.IOException, r"injected: could not write evalstore\.batches"):
        if kind == "features":
            store.log_features("fraud", batch.drop_columns(["score", "label"]))
        elif kind == "predictions":
            store.log_predictions("fraud", batch, version="v1")
        else:
            store.log_labels("fraud", batch)
    assert any(s.startswith("INSERT INTO") and "fraud" in s for s in proxy.statements)
    assert proxy.statements[-1] == "ROLLBACK"


def test_failing_validation_check_after_insert_rolls_back(store, rejects, monkeypatch, columns):
    real = ingest.plan_features

    def plan_with_extra_check(*args, **kwargs):
        plan = real(*args, **kwargs)
        plan.checks.append(
            ingest.Check(
                "SELECT count(*), [] FROM {table} WHERE batch_id = $batch_id",
                "injected check saw {n} inserted rows",
                "x",
            )
        )
        return plan

    monkeypatch.setattr(ingest, "plan_features", plan_with_extra_check)
    batch = pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0], "new_col": [True, False]})
    with rejects(store, ValidationError, r"injected check saw 2 inserted rows"):
        store.log_features("fraud", batch)
    assert "new_col" not in columns(store)


# ============================================================ schema evolution


def test_new_column_in_a_later_batch_is_added(store, columns):
    first = store.log_features("fraud", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
    assert first.columns_added == ("x",)
    second = store.log_features(
        "fraud", pa.table({"example_id": ["c"], "x": [3.0], "y": ["new"], "z": [7]})
    )
    assert second.columns_added == ("y", "z")
    assert columns(store) == {
        "example_id": "VARCHAR",
        "env": "VARCHAR",
        "dataset": "VARCHAR",
        "ts": "TIMESTAMP WITH TIME ZONE",
        "batch_id": "BIGINT",
        "example_key": "UUID",
        "x": "DOUBLE",
        "y": "VARCHAR",
        "z": "BIGINT",
    }
    assert features_by_id(store, "x", "y", "z") == {
        "a": (1.0, None, None),
        "b": (2.0, None, None),
        "c": (3.0, "new", 7),
    }


def test_missing_column_reads_null_for_new_rows(store, columns):
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0], "y": ["k"]}))
    receipt = store.log_features("fraud", pa.table({"example_id": ["b"], "y": ["m"]}))
    assert receipt.columns_added == ()
    assert list(columns(store))[-2:] == ["x", "y"]
    assert features_by_id(store, "x", "y") == {"a": (1.0, "k"), "b": (None, "m")}


def test_all_null_new_column_is_ignored_until_it_has_a_type(store, columns):
    receipt = store.log_features(
        "fraud", pa.table({"example_id": ["a"], "x": [1.0], "empty": pa.nulls(1)})
    )
    assert receipt.columns_added == ("x",)
    assert receipt.columns_ignored == ("empty",)
    assert "empty" not in columns(store)
    later = store.log_features(
        "fraud", pa.table({"example_id": ["b"], "empty": pa.array([5], pa.int16())})
    )
    assert later.columns_added == ("empty",)
    assert columns(store)["empty"] == "SMALLINT"
    # once typed, an all-null batch for it is stored as NULLs, not ignored
    again = store.log_features(
        "fraud", pa.table({"example_id": ["c"], "empty": pa.nulls(1), "x": [3.0]})
    )
    assert again.columns_ignored == ()
    assert features_by_id(store, "x", "empty") == {
        "a": (1.0, None),
        "b": (None, 5),
        "c": (3.0, None),
    }


def test_all_none_pandas_column_is_ignored(store, columns):
    frame = pd.DataFrame({"example_id": ["a"], "x": [1.0], "nothing": [None]})
    receipt = store.log_features("fraud", frame)
    assert receipt.columns_ignored == ("nothing",)
    assert "nothing" not in columns(store)


# ============================================================ input formats

TABLE = pa.table(
    {
        "example_id": ["e1", "e2", "e3"],
        "x": [1.5, -2.25, 1e6],
        "k": pa.array([1, 2, 3], pa.int64()),
        "name": ["alpha", "β", "gamma"],
    }
)
EXPECTED = {"e1": (1.5, 1, "alpha"), "e2": (-2.25, 2, "β"), "e3": (1e6, 3, "gamma")}


def _parquet(tmp):
    pq.write_table(TABLE, tmp / "data.parquet")
    return tmp / "data.parquet"


def _csv(tmp):
    pacsv.write_csv(TABLE, tmp / "data.csv")
    return str(tmp / "data.csv")


def _ipc_file(tmp):
    with ipc.new_file(tmp / "data.arrow", TABLE.schema) as writer:
        writer.write_table(TABLE, max_chunksize=2)
    return tmp / "data.arrow"


def _ipc_stream(tmp):
    with ipc.new_stream(tmp / "data.arrows", TABLE.schema) as writer:
        writer.write_table(TABLE, max_chunksize=1)
    return tmp / "data.arrows"


def _ipc_stream_with_file_suffix(tmp):
    with ipc.new_stream(tmp / "data.stream.arrow", TABLE.schema) as writer:
        writer.write_table(TABLE)
    return tmp / "data.stream.arrow"


def _feather(tmp):
    feather.write_feather(TABLE, tmp / "data.feather")
    return tmp / "data.feather"


def _polars(tmp):
    import polars as pl  # here, not at collection: the workers that never run this case skip it

    return pl.from_arrow(TABLE)


@pytest.mark.parametrize(
    ("make", "source"),
    [
        (lambda tmp: TABLE, "pyarrow.Table"),
        (lambda tmp: TABLE.to_batches()[0], "pyarrow.RecordBatch"),
        (
            lambda tmp: pa.Table.from_batches(TABLE.to_batches(max_chunksize=1)).to_reader(),
            "pyarrow.RecordBatchReader",
        ),
        (lambda tmp: TABLE.to_pandas(), "pandas.DataFrame"),
        (_polars, "polars.DataFrame"),
        (_parquet, "data.parquet"),
        (_csv, "data.csv"),
        (_ipc_file, "data.arrow"),
        (_ipc_stream, "data.arrows"),
        (_ipc_stream_with_file_suffix, "data.stream.arrow"),
        (_feather, "data.feather"),
    ],
    ids=[
        "table",
        "record_batch",
        "reader",
        "pandas",
        "polars",
        "parquet",
        "csv",
        "ipc_file",
        "ipc_stream",
        "ipc_stream_as_arrow",
        "feather",
    ],
)
def test_every_input_kind_lands_the_same_values(store, columns, tmp_path, make, source):
    data = make(tmp_path)
    receipt = store.log_features("fraud", data)
    assert receipt.rows == 3
    assert receipt.columns_added == ("x", "k", "name")
    assert features_by_id(store, "x", "k", "name") == EXPECTED
    types = columns(store)
    assert (types["x"], types["k"], types["name"]) == ("DOUBLE", "BIGINT", "VARCHAR")
    recorded = rows(store, "SELECT source FROM evalstore.batches")[0]["source"]
    assert recorded == (str(tmp_path / source) if source.startswith("data.") else source)


def test_duckdb_relation_is_accepted(store):
    with duckdb.connect() as other:
        relation = other.from_arrow(TABLE)
        receipt = store.log_features("fraud", relation)
    assert receipt.rows == 3
    assert features_by_id(store, "x", "k", "name") == EXPECTED


def test_pandas_unnamed_index_is_not_a_feature(store, columns):
    frame = TABLE.to_pandas()
    frame.index = [10, 3, 7]  # e.g. after a sort or a join
    filtered = frame[frame["k"] != 2]  # pandas exports such an index as a column
    receipt = store.log_features("fraud", filtered)
    assert receipt.columns_added == ("x", "k", "name")
    assert not any(name.startswith("__index") for name in columns(store))
    assert features_by_id(store, "k") == {"e1": (1,), "e3": (3,)}


def test_pandas_named_index_is_a_column(store):
    frame = TABLE.to_pandas().set_index("example_id")
    store.log_features("fraud", frame)
    assert features_by_id(store, "x", "k", "name") == EXPECTED


def test_many_batches_stream_in(store):
    n = 50_000
    table = pa.table({"example_id": pa.array(range(n)).cast(pa.string()), "v": range(n)})
    receipt = store.log_features("fraud", table.to_reader(max_chunksize=4096))
    assert receipt.rows == n
    assert rows(store, "SELECT count(*) AS n, sum(v) AS s FROM fraud.features") == [
        {"n": n, "s": n * (n - 1) // 2}
    ]


def test_event_time_column_is_kept_and_naive_times_are_utc(store):
    batch = pa.table(
        {
            "example_id": ["a", "b", "c"],
            "event_time": [datetime(2026, 3, 1, 12), datetime(2026, 3, 2), datetime(2026, 3, 3)],
            "x": [1.0, 2.0, 3.0],
        }
    )
    store.log_features("fraud", batch, ts_column="event_time")
    result = rows(store, "SELECT example_id, ts FROM fraud.features ORDER BY example_id")
    assert [r["ts"] for r in result] == [
        datetime(2026, 3, 1, 12, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),
    ]


# ============================================================ labels and predictions


def test_labels_are_append_only_and_the_latest_wins(store):
    store.log_predictions(
        "fraud", pa.table({"example_id": ["a", "b"], "score": [0.9, 0.1]}), version="v1"
    )
    first = store.log_labels(
        "fraud", pa.table({"example_id": ["a", "b"], "label": [0, 0]}), source="rules"
    )
    second = store.log_labels(
        "fraud", pa.table({"example_id": ["a"], "label": [1]}), source="chargeback"
    )
    assert second.batch_id > first.batch_id
    assert rows(
        store, "SELECT example_id, label, source FROM fraud.labels ORDER BY batch_id, example_id"
    ) == [
        {"example_id": "a", "label": "0", "source": "rules"},
        {"example_id": "b", "label": "0", "source": "rules"},
        {"example_id": "a", "label": "1", "source": "chargeback"},
    ]
    assert rows(
        store, "SELECT example_id, label, source FROM fraud.labels_latest ORDER BY example_id"
    ) == [
        {"example_id": "a", "label": "1", "source": "chargeback"},
        {"example_id": "b", "label": "0", "source": "rules"},
    ]
    assert rows(
        store,
        "SELECT example_id, prediction, label, label_source FROM fraud.evaluations "
        "ORDER BY example_id",
    ) == [
        {"example_id": "a", "prediction": "1", "label": "1", "label_source": "chargeback"},
        {"example_id": "b", "prediction": "0", "label": "0", "label_source": "rules"},
    ]


def test_bool_labels_fit_bool_classes(store):
    store.register_model("spam", "v1", "binary", classes=[False, True])
    store.log_labels("spam", pa.table({"example_id": ["a", "b"], "label": [True, False]}))
    assert rows(store, "SELECT label FROM spam.labels ORDER BY example_id") == [
        {"label": "true"},
        {"label": "false"},
    ]


def test_binary_prediction_derived_from_score_and_threshold(store):
    store.register_model("fraud", "v2", "binary", classes=[0, 1], threshold=0.3)
    batch = pa.table(
        {"example_id": ["a", "b", "c", "d"], "score": pa.array([0.29, 0.3, 0.31, None])}
    )
    store.log_predictions("fraud", batch, version="v2")
    store.log_predictions(
        "fraud", pa.table({"example_id": ["a", "b"], "score": [0.4999, 0.5]}), version="v1"
    )
    assert rows(
        store, "SELECT version, example_id, prediction FROM fraud.predictions ORDER BY ALL"
    ) == [
        {"version": "v1", "example_id": "a", "prediction": "0"},
        {"version": "v1", "example_id": "b", "prediction": "1"},
        {"version": "v2", "example_id": "a", "prediction": "0"},
        {"version": "v2", "example_id": "b", "prediction": "1"},
        {"version": "v2", "example_id": "c", "prediction": "1"},
        {"version": "v2", "example_id": "d", "prediction": None},
    ]


def test_binary_derivation_uses_the_registered_positive_class(store):
    store.register_model("churn", "v1", "binary", classes=["stay", "leave"], positive_class="stay")
    store.register_model("churn", "v2", "binary", classes=["go", "stay"], positive_class="stay")
    batch = pa.table({"example_id": ["a", "b"], "p": [0.8, 0.2]})
    store.log_predictions("churn", batch, version="v1", score_column="p")
    store.log_predictions("churn", batch, version="v2", score_column="p")
    assert rows(store, "SELECT version, prediction FROM churn.predictions ORDER BY ALL") == [
        {"version": "v1", "prediction": "leave"},
        {"version": "v1", "prediction": "stay"},
        {"version": "v2", "prediction": "go"},
        {"version": "v2", "prediction": "stay"},
    ]


def test_explicit_prediction_column_is_not_rederived(store):
    batch = pa.table({"example_id": ["a"], "score": [0.9], "prediction": [0]})
    store.log_predictions("fraud", batch, version="v1")
    assert rows(store, "SELECT prediction, score FROM fraud.predictions") == [
        {"prediction": "0", "score": 0.9}
    ]


def test_multiclass_probability_columns_as_list(store):
    store.register_model("iris", "v1", "multiclass", classes=["setosa", "versicolor", "virginica"])
    batch = pa.table(
        {
            "example_id": ["1", "2", "3"],
            "setosa": [0.7, 0.1, None],
            "versicolor": [0.2, 0.3, None],
            "virginica": [0.1, 0.6, None],
        }
    )
    receipt = store.log_predictions(
        "iris", batch, version="v1", probability_columns=["setosa", "versicolor", "virginica"]
    )
    assert receipt.columns_ignored == ()
    result = rows(
        store,
        "SELECT example_id, prediction, probabilities FROM iris.predictions ORDER BY example_id",
    )
    assert [(r["example_id"], r["prediction"]) for r in result] == [
        ("1", "setosa"),
        ("2", "virginica"),
        ("3", None),  # no probabilities, no prediction
    ]
    assert dict(result[0]["probabilities"]) == {"setosa": 0.7, "versicolor": 0.2, "virginica": 0.1}
    assert dict(result[2]["probabilities"]) == {
        "setosa": None,
        "versicolor": None,
        "virginica": None,
    }


def test_multiclass_probability_columns_as_mapping(store):
    store.register_model("digits", "v1", "multiclass", classes=[0, 1, 2])
    batch = pa.table(
        {
            "example_id": ["a", "b"],
            "p0": [0.5, 0.2],
            "p1": [0.25, 0.2],
            "p2": [0.25, 0.6],
            "prediction": [1, 2],
            "extra": ["x", "y"],
        }
    )
    receipt = store.log_predictions(
        "digits", batch, version="v1", probability_columns={0: "p0", 1: "p1", 2: "p2"}
    )
    assert receipt.columns_ignored == ("extra",)
    result = rows(store, "SELECT * FROM digits.predictions ORDER BY example_id")
    # an explicit prediction column is kept even where it is not the argmax
    assert [r["prediction"] for r in result] == ["1", "2"]
    assert dict(result[0]["probabilities"]) == {"0": 0.5, "1": 0.25, "2": 0.25}
    assert dict(result[1]["probabilities"]) == {"0": 0.2, "1": 0.2, "2": 0.6}
    # without a prediction column it is the most probable class (first one on ties)
    unpredicted = pa.table(
        {"example_id": ["c", "d"], "p0": [0.5, 0.1], "p1": [0.3, 0.45], "p2": [0.2, 0.45]}
    )
    store.log_predictions(
        "digits", unpredicted, version="v1", probability_columns={0: "p0", 1: "p1", 2: "p2"}
    )
    derived = rows(
        store,
        "SELECT prediction FROM digits.predictions WHERE batch_id = "
        "(SELECT max(batch_id) FROM evalstore.batches) ORDER BY example_id",
    )
    assert derived == [{"prediction": "0"}, {"prediction": "1"}]


def test_regression_end_to_end(store):
    store.register_model("price", "v1", "regression")
    store.log_features(
        "price", pa.table({"example_id": ["h1", "h2"], "rooms": [3, 5], "area": [70.5, 120.0]})
    )
    store.log_predictions(
        "price",
        pa.table(
            {
                "example_id": ["h1", "h2"],
                "prediction": [250_000.5, 410_000.0],
                "latency_ms": [1.5, 2.0],
            }
        ),
        version="v1",
        latency_column="latency_ms",
    )
    store.log_labels("price", pa.table({"example_id": ["h1"], "label": [260_000]}))
    assert rows(
        store,
        "SELECT example_id, prediction, latency_ms, label, rooms, area FROM price.evaluations "
        "ORDER BY example_id",
    ) == [
        {
            "example_id": "h1",
            "prediction": 250_000.5,
            "latency_ms": 1.5,
            "label": 260_000.0,
            "rooms": 3,
            "area": 70.5,
        },
        {
            "example_id": "h2",
            "prediction": 410_000.0,
            "latency_ms": 2.0,
            "label": None,
            "rooms": 5,
            "area": 120.0,
        },
    ]
    with pytest.raises(SchemaConflictError, match=r"column 'prediction' has type VARCHAR"):
        store.log_predictions(
            "price", pa.table({"example_id": ["h3"], "prediction": ["cheap"]}), version="v1"
        )


def test_evaluations_use_serving_features_only(store):
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0]}), env="training")
    store.log_features("fraud", pa.table({"example_id": ["a"], "x": [2.0]}))
    store.log_predictions("fraud", pa.table({"example_id": ["a"], "score": [0.2]}), version="v1")
    assert rows(store, "SELECT example_id, x FROM fraud.evaluations") == [
        {"example_id": "a", "x": 2.0}
    ]


def test_receipts_and_the_audit_trail(store):
    features = store.log_features(
        "fraud",
        pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0], "y": ["p", "q"]}),
        env="training",
        dataset="train-2026-01",
    )
    predictions = store.log_predictions(
        "fraud",
        pa.table({"example_id": ["a", "b", "c"], "score": [0.1, 0.6, 0.7]}),
        version="v1",
    )
    labels = store.log_labels("fraud", pa.table({"example_id": ["a"], "label": [1]}))
    assert features.batch_id < predictions.batch_id < labels.batch_id
    assert (features.kind, predictions.kind, labels.kind) == ("features", "predictions", "labels")
    assert (features.rows, predictions.rows, labels.rows) == (2, 3, 1)
    assert features.model == predictions.model == labels.model == "fraud"
    audit = rows(
        store,
        "SELECT batch_id, model, kind, env, version, dataset, rows, columns_added, source "
        "FROM evalstore.batches ORDER BY batch_id",
    )
    assert audit == [
        {
            "batch_id": features.batch_id,
            "model": "fraud",
            "kind": "features",
            "env": "training",
            "version": None,
            "dataset": "train-2026-01",
            "rows": 2,
            "columns_added": ["x", "y"],
            "source": "pyarrow.Table",
        },
        {
            "batch_id": predictions.batch_id,
            "model": "fraud",
            "kind": "predictions",
            "env": None,
            "version": "v1",
            "dataset": None,
            "rows": 3,
            "columns_added": [],
            "source": "pyarrow.Table",
        },
        {
            "batch_id": labels.batch_id,
            "model": "fraud",
            "kind": "labels",
            "env": None,
            "version": None,
            "dataset": None,
            "rows": 1,
            "columns_added": [],
            "source": "pyarrow.Table",
        },
    ]
    times = rows(store, "SELECT received_at, committed_at FROM evalstore.batches")
    assert all(t["received_at"] <= t["committed_at"] for t in times)
    stored_ids = rows(store, "SELECT DISTINCT batch_id FROM fraud.features")
    assert stored_ids == [{"batch_id": features.batch_id}]


def test_batch_ids_keep_increasing_after_a_rejected_batch(store):
    first = store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0]}))
    with pytest.raises(DuplicateIdError):
        store.log_features("fraud", pa.table({"example_id": ["a"], "x": [1.0]}))
    second = store.log_features("fraud", pa.table({"example_id": ["b"], "x": [1.0]}))
    assert second.batch_id > first.batch_id
    assert [r["batch_id"] for r in rows(store, "SELECT batch_id FROM evalstore.batches")] == [
        first.batch_id,
        second.batch_id,
    ]


def test_a_named_time_or_prediction_column_must_exist(store, rejects):
    """Defaults may be absent (ingest time, derived prediction); a named column may not."""
    batch = pa.table({"example_id": ["a"], "score": [0.7]})
    with rejects(store, ValidationError, r"missing column 'event_time' \(ts_column='event_time'\)"):
        store.log_predictions("fraud", batch, version="v1", ts_column="event_time")
    with rejects(store, ValidationError, r"missing column 'pred' \(prediction_column='pred'\)"):
        store.log_predictions("fraud", batch, version="v1", prediction_column="pred")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_regression_predictions_are_rejected(store, rejects, value):
    store.register_model("price", "v1", "regression")
    batch = pa.table({"example_id": ["a", "b"], "prediction": [1.0, value]})
    with rejects(store, ValidationError, r"column 'prediction' has 1 values that are not finite"):
        store.log_predictions("price", batch, version="v1")


def test_origin_is_recorded_as_the_batch_source(store):
    batch = pa.table({"example_id": ["a"], "x": [1.0]})
    store.log_features("fraud", batch, origin="kafka://features-topic")
    store.log_labels("fraud", pa.table({"example_id": ["a"], "label": [1]}))
    sources = store.sql("SELECT source FROM evalstore.batches ORDER BY batch_id").column(0)
    assert sources.to_pylist() == ["kafka://features-topic", "pyarrow.Table"]
