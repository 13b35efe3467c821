"""The group commit's stored-id check from the writer's key set (core/ingest_keys.py):
the same answers as the SQL check, whoever wrote the stored rows, and nothing left behind
by a rejected call."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evalstore.core.ingest_call import LogCall
from evalstore.core.ingest_group import Item, execute_group
from evalstore.core.ingest_keys import StoredKeys
from evalstore.errors import DuplicateIdError


def _predictions(ids: list[str], version: str = "v1") -> Item:
    data = pa.table({"example_id": ids, "ts": ["2026-01-01T00:00:00Z"] * len(ids)})
    data = data.append_column("score", pa.array([0.5] * len(ids)))
    return Item(LogCall("predictions", "fraud", {"version": version}), data, "test")


def _features(ids: list[str], env: str = "serving") -> Item:
    data = pa.table({"example_id": ids, "x": [1.0] * len(ids)})
    return Item(LogCall("features", "fraud", {"env": env}), data, "test")


def _labels(ids: list[str], labels: list[int]) -> Item:
    data = pa.table({"example_id": ids, "label": labels})
    return Item(LogCall("labels", "fraud", {}), data, "test")


def _ids(store, table: str = "predictions") -> list[str]:
    rows = store.sql(f"SELECT example_id FROM fraud.{table} ORDER BY example_id").to_pylist()
    return [row["example_id"] for row in rows]


def _counts(store) -> tuple[int, int]:
    return (
        store.sql("SELECT count(*) AS n FROM fraud.predictions").to_pylist()[0]["n"],
        store.sql("SELECT count(*) AS n FROM evalstore.batches").to_pylist()[0]["n"],
    )


@pytest.fixture
def keys() -> StoredKeys:
    return StoredKeys()


def test_an_id_stored_before_the_set_was_loaded_is_refused_alone(store, keys):
    store.log_predictions(
        "fraud", pa.table({"example_id": [f"s{i}" for i in range(1000)], "score": [0.5] * 1000}),
        "v1",
    )  # fmt: skip
    before = _counts(store)
    results = execute_group(
        store.connection,
        [_predictions(["n1"]), _predictions(["s17"]), _predictions(["n2", "n3"])],
        stored_keys=keys,
    )
    assert isinstance(results[1], DuplicateIdError)
    assert "1 ids are already stored for this version ('v1')" in str(results[1])
    assert results[1].examples == ["s17"] and results[1].column == "example_id"
    assert [r.rows for r in (results[0], results[2])] == [1, 2]
    assert _counts(store) == (before[0] + 3, before[1] + 2)
    assert "s17" in _ids(store) and _ids(store).count("s17") == 1


def test_a_rejected_group_member_leaves_the_store_as_it_was(store, keys):
    execute_group(store.connection, [_predictions(["a", "b"])], stored_keys=keys)
    before = _counts(store), _ids(store)
    results = execute_group(store.connection, [_predictions(["b"])], stored_keys=keys)
    assert isinstance(results[0], DuplicateIdError)
    assert (_counts(store), _ids(store)) == before


def test_rows_written_by_another_path_are_caught_up_with(store, keys):
    execute_group(store.connection, [_predictions(["a"])], stored_keys=keys)  # set loaded
    store.log_predictions("fraud", pa.table({"example_id": ["lib"], "score": [0.1]}), "v1")
    results = execute_group(
        store.connection, [_predictions(["lib"]), _predictions(["new"])], stored_keys=keys
    )
    assert isinstance(results[0], DuplicateIdError) and results[1].rows == 1
    assert keys.reloads == 1  # caught up by batch id, not reloaded


def test_deleted_rows_reload_the_set_and_free_their_ids(store, keys):
    execute_group(store.connection, [_predictions(["a", "b"])], stored_keys=keys)
    execute_group(store.connection, [_predictions(["c"])], stored_keys=keys)  # caught up: a, b
    store.sql("DELETE FROM fraud.predictions WHERE example_id = 'a'")
    results = execute_group(
        store.connection, [_predictions(["a"]), _predictions(["b"])], stored_keys=keys
    )
    assert results[0].rows == 1 and isinstance(results[1], DuplicateIdError)
    assert keys.reloads == 2  # the count disagreed: loaded again
    assert _ids(store) == ["a", "b", "c"]


def test_ids_are_scoped_by_version_and_by_env(store, keys):
    store.register_model("fraud", "v2", "binary", classes=[0, 1])
    execute_group(store.connection, [_predictions(["a"]), _features(["f"])], stored_keys=keys)
    results = execute_group(
        store.connection,
        [
            _predictions(["a"], "v2"),  # another version: fine
            _predictions(["a"]),  # same version: refused
            _features(["f"], "training"),  # another env: fine
            _features(["f"]),  # same env: refused
        ],
        stored_keys=keys,
    )
    assert results[0].rows == 1 and results[2].rows == 1
    assert isinstance(results[1], DuplicateIdError) and isinstance(results[3], DuplicateIdError)
    assert "for this env ('serving')" in str(results[3])


def test_a_repeat_across_the_requests_of_a_group_is_found(store, keys):
    results = execute_group(
        store.connection, [_predictions(["x"]), _predictions(["x"])], stored_keys=keys
    )
    assert results[0].rows == 1 and isinstance(results[1], DuplicateIdError)
    assert _ids(store) == ["x"]


def test_relabels_supersede_the_stored_label_with_or_without_the_set(store, keys):
    execute_group(store.connection, [_labels(["a", "b"], [0, 0])], stored_keys=keys)
    execute_group(store.connection, [_labels(["b"], [1]), _labels(["c"], [1])], stored_keys=keys)
    latest = store.sql(
        "SELECT example_id, label FROM fraud.labels_latest ORDER BY example_id"
    ).to_pylist()
    assert latest == [
        {"example_id": "a", "label": "0"},
        {"example_id": "b", "label": "1"},
        {"example_id": "c", "label": "1"},
    ]
    superseded = store.sql(
        "SELECT count(*) AS n FROM fraud.labels WHERE superseded_by IS NOT NULL"
    ).to_pylist()
    assert superseded == [{"n": 1}]


def test_a_failing_row_check_sends_the_group_to_be_written_one_by_one(store, keys):
    bad = _predictions(["bad"])
    bad.data = bad.data.set_column(2, "score", pa.array([1.5]))
    results = execute_group(
        store.connection, [_predictions(["ok"]), bad, _predictions(["ok2"])], stored_keys=keys
    )
    assert "not probabilities in [0, 1]" in str(results[1]) and results[1].rows == 1
    assert _ids(store) == ["ok", "ok2"]
