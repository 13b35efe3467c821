"""Idempotent ingest (``batch_key=``) and writing many calls in one transaction
(:func:`evalstore.core.ingest_group.execute_group`), the core of the server's group commit."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

import evalstore
from evalstore.core.ingest_call import LogCall
from evalstore.core.ingest_group import Item, execute_group
from evalstore.core.layout import SCHEMA_VERSION
from evalstore.errors import (
    DuplicateIdError,
    InvalidParameterError,
    SchemaConflictError,
    UnknownModelError,
    ValidationError,
)
from tests.conftest import copy_store


def predictions(*ids: str, score: float = 0.25) -> pa.Table:
    return pa.table(
        {
            "example_id": list(ids),
            "ts": ["2026-01-01T00:00:00Z"] * len(ids),
            "score": [score] * len(ids),
        }
    )


def labels(*pairs: tuple[str, int], ts: bool = True) -> pa.Table:
    columns: dict[str, list] = {
        "example_id": [e for e, _ in pairs],
        "label": [label for _, label in pairs],
    }
    if ts:
        columns["ts"] = ["2026-01-02T00:00:00Z"] * len(pairs)
    return pa.table(columns)


def batches(store: evalstore.Store) -> list[dict]:
    return store.sql(
        "SELECT batch_id, model, kind, rows, batch_key, committed_at, source "
        "FROM evalstore.batches ORDER BY batch_id"
    ).to_pylist()


def count(store: evalstore.Store, table: str) -> int:
    return store.sql(f"SELECT count(*) AS n FROM fraud.{table}").to_pylist()[0]["n"]


# ---------------------------------------------------------------------- batch keys


def test_a_replayed_key_writes_nothing_and_returns_the_first_receipt(store):
    first = store.log_predictions("fraud", predictions("a", "b"), "v1", batch_key="k-1")
    again = store.log_predictions("fraud", predictions("a", "b"), "v1", batch_key="k-1")
    assert first.duplicate is False and again.duplicate is True
    assert again == first.__class__(**{**first.__dict__, "duplicate": True})
    assert count(store, "predictions") == 2
    rows = batches(store)
    assert [(b["kind"], b["rows"], b["batch_key"]) for b in rows] == [("predictions", 2, "k-1")]


def test_a_replay_returns_the_stored_warnings_and_columns_added(store):
    first = store.log_labels("fraud", labels(("a", 1), ts=False), batch_key="lab-1")
    assert first.warnings  # labels without a time
    again = store.log_labels("fraud", labels(("a", 1), ts=False), batch_key="lab-1")
    assert again.warnings == first.warnings and again.duplicate
    table = pa.table({"example_id": ["a"], "amount": [1.5], "extra": pa.nulls(1)})
    added = store.log_features("fraud", table, batch_key="f-1")
    replay = store.log_features("fraud", table, batch_key="f-1")
    assert added.columns_added == replay.columns_added == ("amount",)
    assert added.columns_ignored == replay.columns_ignored == ("extra",)


def test_keys_are_per_model_and_kind(store):
    store.register_model("other", "v1", "binary", classes=[0, 1])
    p = store.log_predictions("fraud", predictions("a"), "v1", batch_key="same")
    lab = store.log_labels("fraud", labels(("a", 1)), batch_key="same")
    o = store.log_predictions("other", predictions("a"), "v1", batch_key="same")
    assert not (p.duplicate or lab.duplicate or o.duplicate)
    assert len({p.batch_id, lab.batch_id, o.batch_id}) == 3


@pytest.mark.parametrize(
    "key", ["", "x" * 129, "line\nbreak", "tab\tbed", 42], ids=["empty", "long", "nl", "tab", "int"]
)
def test_an_unusable_key_is_refused_before_anything_is_written(store, rejects, key):
    with rejects(store, InvalidParameterError, r"batch_key=.* must be 1 to 128 printable"):
        store.log_predictions("fraud", predictions("a"), "v1", batch_key=key)


def test_a_key_of_128_printable_characters_is_accepted(store):
    key = "k" * 127 + "é"
    assert store.log_predictions("fraud", predictions("a"), "v1", batch_key=key).rows == 1
    assert batches(store)[0]["batch_key"] == key


def test_a_rejected_batch_does_not_keep_its_key(store):
    with pytest.raises(ValidationError, match="outside the registered classes"):
        store.log_labels("fraud", labels(("a", 7)), batch_key="bad-then-good")
    receipt = store.log_labels("fraud", labels(("a", 1)), batch_key="bad-then-good")
    assert receipt.duplicate is False and receipt.rows == 1


def test_the_unique_index_refuses_a_second_row_for_a_key(store):
    store.log_predictions("fraud", predictions("a"), "v1", batch_key="once")
    with pytest.raises(duckdb.ConstraintException):
        store.connection.execute(
            "INSERT INTO evalstore.batches (batch_id, model, kind, rows, received_at, "
            "committed_at, batch_key) VALUES (999, 'fraud', 'predictions', 0, now(), now(), "
            "'once')"
        )


def test_migration_9_adds_keys_to_an_older_store(store_template, tmp_path):
    path = copy_store(store_template, tmp_path)
    con = duckdb.connect(str(path))
    con.execute("DROP INDEX evalstore.batches_batch_key")
    con.execute("ALTER TABLE evalstore.batches DROP COLUMN receipt")
    con.execute("ALTER TABLE evalstore.batches DROP COLUMN batch_key")
    con.execute("DELETE FROM evalstore.migrations WHERE version >= 9")
    con.execute("UPDATE evalstore.meta SET value = '8' WHERE key = 'schema_version'")
    con.close()
    with evalstore.open(path) as store:
        assert store.sql("SELECT max(version) AS v FROM evalstore.migrations").to_pylist() == [
            {"v": SCHEMA_VERSION}
        ]
        first = store.log_predictions("fraud", predictions("a"), "v1", batch_key="m9")
        assert store.log_predictions("fraud", predictions("a"), "v1", batch_key="m9") == (
            first.__class__(**{**first.__dict__, "duplicate": True})
        )


# ---------------------------------------------------------------------- groups


def item(kind: str, data: pa.Table, key: str | None = None, **options) -> Item:
    if kind == "predictions":
        options.setdefault("version", "v1")
    return Item(LogCall(kind, "fraud", options), data, source="test", batch_key=key)


def test_a_bad_call_is_answered_alone_and_the_good_ones_share_one_commit(store):
    items = [
        item("predictions", predictions("a")),
        item("predictions", predictions("b", score=1.5)),  # score out of [0, 1]
        item("predictions", predictions("c")),
        item("predictions", predictions("d")),
    ]
    results = execute_group(store.connection, items)
    assert isinstance(results[1], ValidationError)
    assert "values that are not probabilities in [0, 1]" in str(results[1])
    good = [results[i] for i in (0, 2, 3)]
    assert [r.rows for r in good] == [1, 1, 1]
    assert len({r.batch_id for r in good}) == 3
    stored = batches(store)
    assert [b["batch_id"] for b in stored] == sorted(r.batch_id for r in good)
    assert len({b["committed_at"] for b in stored}) == 1  # one transaction
    ids = store.sql("SELECT example_id, batch_id FROM fraud.predictions ORDER BY 1").to_pylist()
    assert ids == [
        {"example_id": "a", "batch_id": results[0].batch_id},
        {"example_id": "c", "batch_id": results[2].batch_id},
        {"example_id": "d", "batch_id": results[3].batch_id},
    ]


def test_errors_are_the_ones_each_call_gets_alone(store):
    store.log_predictions("fraud", predictions("taken"), "v1")
    items = [
        item("predictions", predictions("x")),
        item("predictions", predictions("taken")),  # already stored
        item("predictions", predictions("y"), version="v9"),  # unknown version
        item("predictions", pa.table({"example_id": ["z"], "score": ["high"]})),  # type
        item("predictions", predictions("x")),  # repeats the first call's id
        item("labels", labels(("x", 1))),
    ]
    results = execute_group(store.connection, items)
    assert isinstance(results[1], DuplicateIdError) and "already stored" in str(results[1])
    assert isinstance(results[2], UnknownModelError) and "no version 'v9'" in str(results[2])
    assert isinstance(results[3], ValidationError) and "'score'" in str(results[3])
    assert isinstance(results[4], DuplicateIdError)
    assert results[0].rows == 1 and results[5].rows == 1
    assert count(store, "predictions") == 2 and count(store, "labels") == 1


def test_a_key_repeated_within_a_group_is_written_once(store):
    items = [item("predictions", predictions(f"e{i}"), key="same") for i in range(3)]
    results = execute_group(store.connection, items)
    assert [r.duplicate for r in results] == [False, True, True]
    assert {r.batch_id for r in results} == {results[0].batch_id}
    assert count(store, "predictions") == 1
    again = execute_group(store.connection, [item("predictions", predictions("e0"), key="same")])
    assert again[0].duplicate and again[0].batch_id == results[0].batch_id


def test_grouped_features_add_columns_once_across_shapes(store):
    one = pa.table({"example_id": ["a"], "amount": [1.0]})
    two = pa.table({"example_id": ["b"], "amount": [2.0], "country": ["fr"]})
    three = pa.table({"example_id": ["c"], "amount": [3.0]})
    clash = pa.table({"example_id": ["d"], "country": [5]})
    results = execute_group(
        store.connection,
        [item("features", t) for t in (one, two, three, clash)],
    )
    assert results[0].columns_added == ("amount",)
    assert results[1].columns_added == ("country",)
    assert results[2].columns_added == ()
    assert isinstance(results[3], SchemaConflictError)
    rows = store.sql("SELECT example_id, amount, country FROM fraud.features ORDER BY 1")
    assert rows.to_pylist() == [
        {"example_id": "a", "amount": 1.0, "country": None},
        {"example_id": "b", "amount": 2.0, "country": "fr"},
        {"example_id": "c", "amount": 3.0, "country": None},
    ]


def test_grouped_labels_fulfil_requests(store):
    store.log_predictions("fraud", predictions("a", "b", "c"), "v1")
    store.suggest("fraud", k=3, strategy="random")
    items = [item("labels", labels((e, 1))) for e in ("a", "b", "c")]
    results = execute_group(store.connection, items)
    requests = store.label_requests("fraud").to_pylist()
    assert {r["example_id"]: (r["status"], r["label_batch_id"]) for r in requests} == {
        e: ("fulfilled", r.batch_id) for e, r in zip("abc", results, strict=True)
    }
    committed = {b["committed_at"] for b in batches(store) if b["kind"] == "labels"}
    assert len(committed) == 1


def test_grouped_labels_supersede_and_fulfil_like_one_call_each(store):
    store.log_predictions("fraud", predictions("a", "b", "c"), "v1")
    store.log_labels("fraud", labels(("a", 0)))
    store.suggest("fraud", k=3, strategy="random")  # open requests for b and c
    items = [
        item("labels", labels(("a", 1))),  # corrects a
        item("labels", labels(("b", 1))),
        item("labels", labels(("b", 0))),  # corrects b within the group
        item("labels", labels(("c", 1))),
    ]
    results = execute_group(store.connection, items)
    assert all(r.rows == 1 for r in results)
    latest = store.sql("SELECT example_id, label FROM fraud.labels_latest ORDER BY 1")
    assert latest.to_pylist() == [
        {"example_id": "a", "label": "1"},
        {"example_id": "b", "label": "0"},
        {"example_id": "c", "label": "1"},
    ]
    requests = store.label_requests("fraud").to_pylist()
    fulfilled = {r["example_id"]: r["label_batch_id"] for r in requests}
    assert {r["status"] for r in requests} == {"fulfilled"}
    # fulfilled by the first label of each example, as when the calls come one by one
    assert fulfilled == {"b": results[1].batch_id, "c": results[3].batch_id}


def test_a_group_writes_what_one_call_each_would(store, store_template, tmp_path):
    tables = [predictions(f"e{i}", score=i / 10) for i in range(10)]
    results = execute_group(store.connection, [item("predictions", t) for t in tables])
    with evalstore.open(copy_store(store_template, tmp_path, "alone.duckdb")) as alone:
        for t in tables:
            alone.log_predictions("fraud", t, "v1")
        expected = alone.sql(
            "SELECT example_id, version, ts, prediction, score FROM fraud.predictions ORDER BY 1"
        ).to_pylist()
    got = store.sql(
        "SELECT example_id, version, ts, prediction, score FROM fraud.predictions ORDER BY 1"
    ).to_pylist()
    assert got == expected
    assert [r.rows for r in results] == [1] * 10


def test_same_shaped_calls_share_one_insert_unless_their_group_check_fails(store, monkeypatch):
    from evalstore.core import ingest_group

    alone: list[int] = []
    write_item = ingest_group._write_item

    def counted(con, plan, one_item, index):
        alone.append(index)
        return write_item(con, plan, one_item, index)

    monkeypatch.setattr(ingest_group, "_write_item", counted)
    clean = [item("labels", labels((f"e{i}", 1))) for i in range(5)]
    assert all(r.rows == 1 for r in execute_group(store.connection, clean))
    assert alone == []  # one insert and one check query for the five
    dirty = [item("labels", labels((f"f{i}", 1 if i != 2 else 5))) for i in range(4)]
    results = execute_group(store.connection, dirty)
    assert isinstance(results[2], ValidationError)
    assert alone == [0, 1, 2, 0, 1, 3]  # one by one until 2 failed, then without it


@pytest.mark.parametrize("kind", ["features", "predictions", "labels"])
def test_a_log_call_defaults_to_what_the_store_method_does(kind):
    import inspect

    from evalstore.core.ingest_call import DEFAULTS

    parameters = inspect.signature(getattr(evalstore.Store, f"log_{kind}")).parameters
    defaults = {
        name: p.default
        for name, p in parameters.items()
        if p.default is not inspect.Parameter.empty and name not in ("origin", "batch_key")
    }
    assert defaults == DEFAULTS[kind]
