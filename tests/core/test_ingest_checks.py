"""How the writer runs a batch's checks: the row-wise ones counted in one scan, a failing
check's own query run for its error; and groups mixing replayed keys with new calls."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evalstore.core.ingest import Check
from evalstore.core.ingest_call import LogCall, Lookups, plan_call
from evalstore.core.ingest_group import Item, execute_group
from evalstore.errors import DuplicateIdError, ValidationError


def _predictions(ids: list[str], scores: list[float], ts: list[str | None] | None = None):
    return pa.table(
        {
            "example_id": ids,
            "ts": ts or ["2026-01-01T00:00:00Z"] * len(ids),
            "score": scores,
        }
    )


def _item(data: pa.Table, key: str | None = None) -> Item:
    return Item(LogCall("predictions", "fraud", {"version": "v1"}), data, "test", batch_key=key)


def test_row_wise_checks_have_a_condition_and_set_checks_none(store):
    schema = _predictions(["a"], [0.5]).schema
    con = store.connection
    plan = plan_call(con, LogCall("predictions", "fraud", {"version": "v1"}), schema, Lookups(con))
    row_wise = [c.where for c in plan.checks if c.where is not None]
    assert "example_id IS NULL" in row_wise and "ts IS NULL" in row_wise
    assert any("$ts_low" in where for where in row_wise)
    # the uniqueness checks (within the batch, against stored rows) need their own query
    assert [c.error for c in plan.checks if c.where is None] == [DuplicateIdError] * 2


def test_where_is_the_condition_of_a_count_over_the_batch_only():
    check = Check(
        "SELECT count(*), list(x)[1:5] FROM {table} WHERE {this} AND (x < 0 OR x > 1)", "m", "x"
    )
    assert check.where == "(x < 0 OR x > 1)"
    grouped = Check(
        "SELECT count(*), [] FROM (SELECT x FROM {table} WHERE {this} GROUP BY x)", "m", "x"
    )
    assert grouped.where is None


def test_the_first_failing_check_in_plan_order_is_raised_with_its_own_count(store):
    both = _predictions(["a", "b", "c"], [1.5, 0.5, 2.0], ["2026-01-01T00:00:00Z", None, None])
    with pytest.raises(ValidationError, match=r"time column 'ts' has 2 null values") as raised:
        store.log_predictions("fraud", both, "v1")
    assert raised.value.column == "ts" and raised.value.rows == 2
    scores = _predictions(["a", "b", "c"], [1.5, 0.5, 2.0])
    with pytest.raises(ValidationError, match=r"'score' has 2 values .* \[1\.5, 2\.0\]") as raised:
        store.log_predictions("fraud", scores, "v1")
    assert raised.value.examples == [1.5, 2.0]
    assert store.sql("SELECT count(*) AS n FROM fraud.predictions").to_pylist() == [{"n": 0}]
    assert store.sql("SELECT count(*) AS n FROM evalstore.batches").to_pylist() == [{"n": 0}]


def test_a_stored_id_is_found_by_the_set_check_after_clean_row_checks(store):
    store.log_predictions("fraud", _predictions(["a"], [0.5]), "v1")
    with pytest.raises(DuplicateIdError, match=r"1 ids are already stored .* \['a'\]"):
        store.log_predictions("fraud", _predictions(["b", "a"], [0.5, 0.5]), "v1")


def test_a_group_mixing_a_replayed_key_new_keys_and_unkeyed_calls(store):
    first = execute_group(store.connection, [_item(_predictions(["a"], [0.1]), key="k1")])[0]
    items = [
        _item(_predictions(["b"], [0.2])),  # unkeyed
        _item(_predictions(["a2"], [0.3]), key="k1"),  # replay of a stored key
        _item(_predictions(["c"], [0.4]), key="k2"),  # new key
        _item(_predictions(["c2"], [0.5]), key="k2"),  # repeats k2 within the group
        _item(_predictions(["d"], [1.5]), key="k3"),  # bad: answered alone, key not kept
        _item(_predictions(["e"], [0.6])),
    ]
    results = execute_group(store.connection, items)
    assert results[1].duplicate and results[1].batch_id == first.batch_id
    assert not results[2].duplicate and results[3].duplicate
    assert results[3].batch_id == results[2].batch_id
    assert isinstance(results[4], ValidationError)
    written = {results[i].batch_id for i in (0, 2, 5)}
    assert len(written) == 3 and first.batch_id not in written
    rows = store.sql(
        "SELECT batch_id, batch_key, rows FROM evalstore.batches ORDER BY batch_id"
    ).to_pylist()
    assert rows == [
        {"batch_id": first.batch_id, "batch_key": "k1", "rows": 1},
        *[
            {"batch_id": results[i].batch_id, "batch_key": key, "rows": 1}
            for i, key in sorted(
                [(0, None), (2, "k2"), (5, None)], key=lambda p: results[p[0]].batch_id
            )
        ],
    ]
    ids = store.sql("SELECT example_id FROM fraud.predictions ORDER BY 1").to_pylist()
    assert [r["example_id"] for r in ids] == ["a", "b", "c", "e"]
    retry = execute_group(store.connection, [_item(_predictions(["d"], [0.5]), key="k3")])[0]
    assert not retry.duplicate and retry.rows == 1  # the refused call's key was not kept


def test_a_one_row_batch_skips_only_the_within_batch_repeat_check(store, monkeypatch):
    from evalstore.core import ingest_write

    seen: list[list[bool]] = []
    counts = ingest_write._check_counts

    def spy(con, checks, *args):
        seen.append([check.within for check in checks])
        return counts(con, checks, *args)

    monkeypatch.setattr(ingest_write, "_check_counts", spy)
    store.log_predictions("fraud", _predictions(["a"], [0.5]), "v1")
    store.log_predictions("fraud", _predictions(["b", "c"], [0.5, 0.5]), "v1")
    with pytest.raises(DuplicateIdError, match="repeats 1 ids within the batch"):
        store.log_predictions("fraud", _predictions(["d", "d"], [0.5, 0.5]), "v1")
    one, two, _ = seen
    assert True not in one and two.count(True) == 1 and len(two) == len(one) + 1
    within = [c for c in plan_call(
        store.connection, LogCall("predictions", "fraud", {"version": "v1"}),
        _predictions(["a"], [0.5]).schema, Lookups(store.connection),
    ).checks if c.within]  # fmt: skip
    assert [c.error for c in within] == [DuplicateIdError]
    assert "within the batch" in within[0].message
