"""The journal's conversion in Python (:func:`evalstore.core.journal_prepare.python_convert`)
gives exactly DuckDB's (:func:`~evalstore.core.journal_prepare.sql_convert`): the converted
rows, the key hashes and the failing row-wise checks; what it does not know it leaves to
DuckDB; and a shape where the two would differ is converted by DuckDB."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.core import journal_prepare
from evalstore.core.ingest_call import LogCall, Lookups, plan_call
from evalstore.core.ingest_group import Item
from evalstore.core.journal_prepare import (
    WriterState,
    example_key,
    prepare_group,
    python_convert,
    sql_convert,
    with_ids,
)
from server.formats import body_to_data

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

#: (kind, options, JSON records): each one call; together they cover the expressions
#: and checks of single-example requests, with rows the checks refuse
CALLS: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    ("predictions", {"version": "v1"}, [
        {"example_id": "a", "ts": "2026-01-01T00:00:01Z", "score": 0.5},
        {"example_id": "b", "ts": "2026-01-01 00:00:01", "score": 0.4999999},
        {"example_id": "é日本🙂", "ts": "2026-01-01T00:00:01.5+05:30", "score": 1.0},
        {"example_id": "d", "ts": "1899-12-31T23:59:59Z", "score": 0.0},  # too early
        {"example_id": "e", "ts": "2200-01-01T00:00:00Z", "score": 0.2},  # too late
        {"example_id": "f", "ts": None, "score": 0.2},  # no time
        {"example_id": "g", "ts": "2026-06-15T10:20:30.000001-00:30", "score": 1.5},
        {"example_id": "h", "ts": "2026-06-15T10:20:30Z", "score": -0.1},
        {"example_id": "i", "ts": "2026-06-15T10:20:30Z", "score": None},
    ]),
    ("predictions", {"version": "v1"}, [
        {"example_id": "j", "ts": "2026-01-01T00:00:01Z", "score": 1, "prediction": 1},
        {"example_id": "k", "ts": "2026-01-01T00:00:01Z", "score": 0, "prediction": 7},
    ]),
    ("predictions", {"version": "v1"}, [
        {"example_id": "l", "ts": "2026-01-01T00:00:01Z", "prediction": "1"},
        {"example_id": "m", "ts": "2026-01-01T00:00:01Z", "prediction": "x"},
    ]),
    ("predictions", {"version": "v1"}, [{"example_id": "n", "score": 0.7}]),  # no ts
    ("predictions", {"version": "v1"}, [
        {"example_id": 17, "ts": "2026-01-01T00:00:01Z", "prediction": 0},  # an integer id
    ]),
    ("labels", {}, [
        {"example_id": "a", "ts": "2026-01-01T00:00:01Z", "label": 1},
        {"example_id": "b", "ts": "2026-01-01T00:00:01Z", "label": 0},
        {"example_id": "c", "ts": "2026-01-01T00:00:01Z", "label": 3},  # not a class
        {"example_id": "d", "ts": "2026-01-01T00:00:01Z", "label": None},
    ]),
    ("labels", {"source": "review"}, [
        {"example_id": "a", "ts": "2026-01-01T00:00:01Z", "label": "1"},
        {"example_id": "b", "label": "0"},
    ]),
]  # fmt: skip


def planned(store: evalstore.Store, kind: str, options: dict, records: Any) -> Any:
    """(cursor, plan, rows with their batch id 100) of ``records`` (JSON or a table)."""
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    data = records
    if not isinstance(records, pa.Table):
        data = body_to_data(json.dumps(records).encode(), "application/json")
    plan = plan_call(con, LogCall(kind, "fraud", options), data.schema, Lookups(con))
    return con, plan, with_ids(data, [100], [RECEIVED], np.array([data.num_rows]))


def converted(store: evalstore.Store, kind: str, options: dict, records: list) -> Any:
    """(Python's, DuckDB's) conversion of ``records`` as one call."""
    con, plan, table = planned(store, kind, options, records)
    return python_convert(plan, table), sql_convert(con, plan, table)


@pytest.mark.parametrize("call", range(len(CALLS)))
def test_the_python_conversion_is_duckdbs(store, call):
    python, sql = converted(store, *CALLS[call])
    assert python is not None
    assert python[0].schema == sql[0].schema
    assert python[0].to_pylist() == sql[0].to_pylist()
    assert python[1].tolist() == sql[1].tolist()
    assert python[2].tolist() == sql[2].tolist()


def test_the_checks_found_failing_are_the_refused_rows(store):
    python, _ = converted(store, *CALLS[0])
    assert python[2].tolist() == [False, False, False, True, True, True, True, True, False]
    python, _ = converted(store, *CALLS[5])
    assert python[2].tolist() == [False, False, True, True]


def test_example_keys_and_hashes_are_duckdbs():
    ids = [f"id-{i}" for i in range(500)] + ["", " ", 'a"b', "\x00x", "é", "🙂", "x" * 500]
    got = [example_key(v) for v in ids]
    con = evalstore.open().connection
    want = con.execute(
        "SELECT CAST(k AS VARCHAR), hash(k) FROM (SELECT CAST(md5_number(s) AS UUID) AS k, i "
        "FROM (SELECT unnest(?) AS s, generate_subscripts(?, 1) AS i)) ORDER BY i",
        [ids, ids],
    ).fetchall()
    assert got == [tuple(w) for w in want]


@pytest.mark.parametrize(
    "records",
    [
        [{"example_id": "a", "ts": "2026-01-01T00:00:01.1234567Z", "score": 0.5}],  # 7 digits
        [{"example_id": "a", "ts": "2026-13-01T00:00:00Z", "score": 0.5}],  # month 13
        [{"example_id": "a", "ts": "01/02/2026", "score": 0.5}],
        [{"example_id": None, "ts": "2026-01-01T00:00:01Z", "score": 0.5}],  # no id
        [{"example_id": "a", "ts": "2026-01-01T00:00:01Z", "prediction": True}],  # a bool
        pa.table({"example_id": ["a"], "score": [float("nan")]}),  # NaN: DuckDB orders it
    ],
)
def test_what_python_does_not_know_is_left_to_duckdb(store, records):
    _, plan, table = planned(store, "predictions", {"version": "v1"}, records)
    assert python_convert(plan, table) is None


def items(records: list[list[dict[str, Any]]]) -> list[Item]:
    return [
        Item(
            LogCall("predictions", "fraud", {"version": "v1"}),
            body_to_data(json.dumps(r).encode(), "application/json"),
            "test",
        )
        for r in records
    ]


def test_a_shape_where_python_differs_is_converted_by_duckdb(store, monkeypatch, caplog):
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    state = WriterState()
    ids = iter(range(1, 1_000))

    def take(n: int) -> list[int]:
        return [next(ids) for _ in range(n)]

    def wrong(plan: Any, table: pa.Table) -> Any:
        rows, hashes, bad = right(plan, table)
        return rows.set_column(0, "example_id", pa.array(["wrong"] * rows.num_rows)), hashes, bad

    right = journal_prepare.python_convert
    monkeypatch.setattr(journal_prepare, "python_convert", wrong)
    group = [
        [{"example_id": f"p{i}", "ts": "2026-01-01T00:00:01Z", "score": 0.3}] for i in range(3)
    ]
    with caplog.at_level(logging.WARNING, "evalstore.server"):
        first = prepare_group(
            con, items(group), state, batch_ids=take, pending_keys=lambda *_: None
        )
    assert "differs from DuckDB's" in caplog.text
    assert list(state.python_agrees.values()) == [False]
    second = prepare_group(
        con, items([[{**group[0][0], "example_id": "q"}]]), state, batch_ids=take,
        pending_keys=lambda *_: None,
    )  # fmt: skip
    for prepared, expected in ((first, ["p0", "p1", "p2"]), (second, ["q"])):
        assert prepared.segments[0].rows.column("example_id").to_pylist() == expected


def test_a_shape_where_python_agrees_is_converted_in_python(store, monkeypatch):
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    state = WriterState()
    ids = iter(range(1, 1_000))
    calls = []

    def counted(*args: Any) -> Any:
        calls.append(args)
        return sql(*args)

    sql = journal_prepare.sql_convert
    monkeypatch.setattr(journal_prepare, "sql_convert", counted)
    for n in range(3):
        prepared = prepare_group(
            con, items([[{"example_id": f"r{n}", "ts": "2026-01-01T00:00:01Z", "score": 0.9}]]),
            state, batch_ids=lambda k: [next(ids) for _ in range(k)],
            pending_keys=lambda *_: None,
        )  # fmt: skip
        assert prepared.segments[0].rows.column("prediction").to_pylist() == ["1"]
    assert len(calls) == 1  # the first group only: compared
    assert list(state.python_agrees.values()) == [True]


def test_a_large_group_is_converted_by_duckdb(store, monkeypatch):
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    state = WriterState()
    ids = iter(range(1, 1_000))
    monkeypatch.setattr(journal_prepare, "PYTHON_ROWS", 2)
    monkeypatch.setattr(journal_prepare, "python_convert", None)  # would fail if called
    records = [
        {"example_id": f"s{i}", "ts": "2026-01-01T00:00:01Z", "score": 0.2} for i in range(3)
    ]
    prepared = prepare_group(
        con, items([records]), state, batch_ids=lambda k: [next(ids) for _ in range(k)],
        pending_keys=lambda *_: None,
    )  # fmt: skip
    assert prepared.segments[0].rows.column("example_id").to_pylist() == ["s0", "s1", "s2"]
    assert state.python_agrees == {}
