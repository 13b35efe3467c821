"""The journal's conversion in Python (:func:`evalstore.core.journal_convert.python_convert`)
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
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.core import journal_prepare
from evalstore.core.ingest_call import LogCall, Lookups, plan_call
from evalstore.core.ingest_group import Item
from evalstore.core.journal import Entry, apply_in_transaction
from evalstore.core.journal_convert import example_key, python_convert
from evalstore.core.journal_prepare import WriterState, prepare_group, sql_convert, with_ids
from server.errors import ApiError
from server.formats import body_to_data
from tests.conftest import copy_store

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


@pytest.mark.parametrize("call", range(len(CALLS)))
def test_batch_ids_and_receipt_times_given_as_lists_convert_as_columns(store, call):
    """The writer gives the per-row batch ids and receipt times to the conversion as
    lists (``journal_prepare._given``) instead of table columns: the same result, for
    calls of one row and of several."""
    kind, options, records = CALLS[call]
    data = body_to_data(json.dumps(records).encode(), "application/json")
    _, plan, _ = planned(store, kind, options, data)
    lengths = [1] * data.num_rows if data.num_rows > 1 and call % 2 else [data.num_rows]
    ids = list(range(200, 200 + len(lengths)))
    received = [RECEIVED.replace(second=i) for i in range(len(lengths))]
    table = with_ids(data, ids, received, np.array(lengths))
    given = journal_prepare._given(ids, received, lengths)
    as_columns, as_lists = python_convert(plan, table), python_convert(plan, data, given)
    assert as_lists is not None
    assert as_lists[0].to_pylist() == as_columns[0].to_pylist()
    assert as_lists[0].schema == as_columns[0].schema
    assert as_lists[1].tolist() == as_columns[1].tolist()
    assert as_lists[2].tolist() == as_columns[2].tolist()


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

    def wrong(plan: Any, table: pa.Table, given: Any = None) -> Any:
        rows, hashes, bad = right(plan, table, given)
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


# ------------------------------------------------------------------ hostile requests
#
# The writer trusts Python for a shape once the first group agreed; every later group of
# that shape carries other values. So each example below is prepared twice on the same
# store: by a writer that trusts Python for every shape (as after the first group's check)
# and by one that never uses it (DuckDB's conversion), and both must decide the same: the
# same planning answers, the same calls sent to the direct lane, the same journaled rows,
# value by value (-0.0 and NaN included); and what they journal must apply (DuckDB's
# insert accepts it), since nothing may fail once a receipt is given.


class _Trusting(dict):
    """``python_agrees`` of a writer whose every shape passed the first group's check."""

    def get(self, key: Any, default: Any = None) -> bool:
        return True


class _Distrusting(dict):
    """``python_agrees`` of a writer whose every shape failed it: DuckDB converts."""

    def get(self, key: Any, default: Any = None) -> bool:
        return False


def _iso(*parts: Any) -> str:
    year, month, day, sep, hour, minute, second, fraction, zone = parts
    return (f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}"
            f"{fraction}{zone}")  # fmt: skip


def _mostly(valid: st.SearchStrategy, *hostile: st.SearchStrategy) -> st.SearchStrategy:
    """``valid`` seven times in eight (so most requests reach the conversion), else one of
    ``hostile``."""
    return st.integers(0, 7).flatmap(lambda n: st.one_of(*hostile) if n == 0 else valid)


def _digits(low: int, high: int) -> st.SearchStrategy:
    return st.integers(low, high).flatmap(
        lambda n: st.text("0123456789", min_size=n, max_size=n).map(lambda d: "." + d))  # fmt: skip


_ZONES = _mostly(
    st.one_of(
        st.sampled_from(["", "Z", "+00:00", "-00:00", "+05:30", "-12:00", "+14:00"]),
        st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"),
                  st.integers(0, 99), st.integers(0, 99)),
    ),
    st.sampled_from(["z", "+05", "+0530", " UTC", "+00:00:00", "+99:99", "+24:00", " +01:00"]),
)  # fmt: skip
_ISO = st.builds(
    _iso,
    _mostly(st.integers(1900, 2199), st.integers(1, 9999),
            st.sampled_from([1, 1582, 1899, 1969, 1970, 2024, 2200, 9999])),
    _mostly(st.integers(1, 12), st.sampled_from([0, 13])),
    _mostly(st.integers(1, 28), st.sampled_from([0, 29, 30, 31, 32])),
    _mostly(st.sampled_from(["T", " "]), st.sampled_from(["t", "_", "  "])),
    _mostly(st.integers(0, 23), st.sampled_from([24, 25])),
    _mostly(st.integers(0, 59), st.just(60)),
    _mostly(st.integers(0, 59), st.sampled_from([60, 61])),
    _mostly(st.one_of(st.just(""), _digits(1, 6)), _digits(7, 9)),
    _ZONES,
)  # fmt: skip
_TIMES = _mostly(
    _ISO,
    st.sampled_from(["2026-01-01", "2026-01-01T00:00", "20260101T000000Z", "01/02/2026",
                     "2026-01-01T00:00:00.Z", "infinity", "epoch", " 2026-01-01T00:00:00Z"]),
    st.text(max_size=8), st.none(), st.integers(), st.floats(),
)  # fmt: skip
_IDS = _mostly(
    st.one_of(st.text(max_size=12), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(100, 3000)),  # long ids
    st.sampled_from(["seed", "0", "-0", "00", "1e5", " 1", "NaN", "null", "\x00", "é日本🙂"]),
    st.sampled_from([0, 1, -1]), st.none(), st.booleans(), st.floats(),
)  # fmt: skip
_SCORES = _mostly(
    st.floats(0, 1),
    st.sampled_from([0, 1, 0.0, 1.0, 0.5, 1e-320, 5e-324, -0.0, 1e308, 2**53, 2**53 + 1,
                     2**63 - 1, -1, -(2**63), float("nan"), float("inf"), -float("inf")]),
    st.floats(), st.integers(), st.booleans(), st.none(), st.sampled_from(["NaN", "inf", ""]),
)  # fmt: skip


def _classes(*valid: Any) -> st.SearchStrategy:
    return _mostly(
        st.sampled_from(valid),
        st.integers(-2, 3), st.integers(),
        st.sampled_from(["0", "1", "yes", "no", "a", "b", "c", "", "1.0", "YES", " 1", "01"]),
        st.booleans(), st.none(), st.floats(0, 1),
    )  # fmt: skip


def _feature(valid: st.SearchStrategy) -> st.SearchStrategy:
    return _mostly(valid, st.floats(), st.integers(), st.text(max_size=5), st.none(),
                   st.booleans())  # fmt: skip


_X, _N, _C = _feature(st.floats()), _feature(st.integers()), _feature(st.text(max_size=5))
#: (model, kind, options, the optional fields and their values)
_CALLS = [
    ("fraud", "predictions", {"version": "v1"},
     {"ts": _TIMES, "score": _SCORES, "prediction": _classes(0, 1, "0", "1"),
      "latency_ms": _N, "extra": _C}),
    ("text", "predictions", {"version": "v1"}, {"ts": _TIMES, "score": _SCORES}),
    ("low", "predictions", {"version": "v1"}, {"ts": _TIMES, "score": _SCORES}),
    ("multi", "predictions", {"version": "v1"}, {"ts": _TIMES, "prediction": _classes("a", "c")}),
    ("fraud", "labels", {}, {"ts": _TIMES, "label": _classes(0, 1, "1"), "extra": _X}),
    ("text", "labels", {"source": "review"}, {"ts": _TIMES, "label": _classes("no", "yes")}),
    ("fraud", "features", {}, {"ts": _TIMES, "x": _X, "n": _N, "c": _C}),
    ("fraud", "features", {"env": "training"}, {"x": _X, "n": _N}),
]  # fmt: skip
#: How an Arrow body may differ from the JSON one: a column's type or invalid text
_MUTATIONS = _mostly(
    st.just("none"),
    st.sampled_from(["invalid_utf8", "large_string", "int32", "float32", "dictionary",
                     "timestamp", "naive_timestamp"]),
)  # fmt: skip


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any], list[tuple[Any, str]]]:
    """(model, kind, options, [(JSON records or an Arrow table, mutation), ...])."""
    model, kind, options, optional = draw(st.sampled_from(_CALLS))
    required = {"example_id": _IDS}
    if kind == "features" and draw(st.booleans()):  # (a stored feature of that name)
        required["__evalstore_hash"] = _N
    record = st.fixed_dictionaries(required, optional=optional)
    calls = draw(st.lists(st.lists(record, min_size=1, max_size=3), min_size=1, max_size=3))
    return model, kind, options, [(records, draw(_MUTATIONS)) for records in calls]


def _mutated(table: pa.Table, how: str, micros: int) -> pa.Table:
    """``table`` with its last text (or time) column changed as ``how`` says."""
    names = [f.name for f in table.schema if f.type == pa.string()]
    if how == "none" or not names:
        return table
    name = names[-1]
    index = table.column_names.index(name)
    column = table.column(name).combine_chunks()
    if how == "invalid_utf8":
        values = [None if v is None else b"\xff" + v.encode() for v in column.to_pylist()]
        changed = pa.array(values, pa.binary()).view(pa.string())
    elif how in ("timestamp", "naive_timestamp"):
        zone = "UTC" if how == "timestamp" else None
        changed = pa.array([micros] * len(column), pa.int64()).cast(pa.timestamp("us", zone))
    else:
        kind = {"large_string": pa.large_string(), "int32": pa.int32(), "float32": pa.float32(),
                "dictionary": pa.dictionary(pa.int32(), pa.string())}  # fmt: skip
        try:
            changed = column.cast(kind[how])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return table
    return table.set_column(index, name, changed)  # fmt: skip


def _normal(value: Any) -> Any:
    """``value`` comparable exactly: floats by their repr (-0.0 and NaN kept)."""
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _outcome(prepared: journal_prepare.Prepared) -> dict[str, Any]:
    return {
        "results": {i: (type(r).__name__, str(r)) if isinstance(r, BaseException) else r
                    for i, r in prepared.results.items()},
        "accepted": prepared.accepted,
        "direct": prepared.direct,
        "segments": [(s.model, s.table, s.kind, s.rows.schema, _normal(s.rows.to_pylist()))
                     for s in prepared.segments],
        "hashes": prepared.hashes,
    }  # fmt: skip


@pytest.fixture(scope="module")
def hostile_store(template: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Models ``fraud`` (binary, classes [0, 1]), ``text`` (binary, 'no'/'yes'), ``low``
    (binary, threshold 0.3: an integer score against it), ``multi`` (classes a, b, c);
    ``fraud`` has features x (DOUBLE), n (BIGINT), c (VARCHAR) and __evalstore_hash
    (BIGINT, named like a column of DuckDB's conversion), and example ``seed`` is stored
    everywhere (a stored id)."""

    def build(store: evalstore.Store) -> None:
        store.register_model("fraud", "v1", "binary", classes=[0, 1])
        store.register_model("text", "v1", "binary", classes=["no", "yes"], positive_class="yes")
        store.register_model("multi", "v1", "multiclass", classes=["a", "b", "c"])
        store.register_model("low", "v1", "binary", classes=[0, 1], threshold=0.3)

        def seed(**values: Any) -> pa.Table:
            return pa.Table.from_pylist([{"example_id": "seed", "ts": RECEIVED, **values}])

        for env in ("serving", "training"):
            store.log_features("fraud", seed(x=1.5, n=1, c="u", __evalstore_hash=1), env=env)
        store.log_predictions("fraud", seed(score=0.5), version="v1")
        store.log_predictions("text", seed(score=0.5), version="v1")
        store.log_predictions("multi", seed(prediction="a"), version="v1")
        store.log_labels("fraud", seed(label=1))
        store.log_labels("text", seed(label="yes"))

    path = template("journal-convert-hostile-3", build)
    with evalstore.open(copy_store(path, tmp_path_factory.mktemp("hostile"))) as opened:
        yield opened


def _prepare(con: Any, group: list[Item], agrees: dict) -> journal_prepare.Prepared:
    state = WriterState()
    state.python_agrees = agrees
    ids = iter(range(10**9, 10**9 + 1_000))  # (not the stored batches' ids)
    return prepare_group(con, group, state, batch_ids=lambda n: [next(ids) for _ in range(n)],
                         pending_keys=lambda *_: None)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=_requests(), micros=st.integers(-(2**63) + 1, 2**63 - 1))
def test_hostile_requests_are_prepared_as_duckdb_prepares_them(hostile_store, request, micros):
    model, kind, options, calls = request
    group = []
    for records, how in calls:
        body = json.dumps(records).encode()  # (NaN and Infinity as JSON tokens)
        try:
            data = body_to_data(body, "application/json")
        except ApiError:
            continue  # refused before any conversion
        group.append(Item(LogCall(kind, model, options), _mutated(data, how, micros), "test",
                          received_at=RECEIVED))  # fmt: skip
    assume(group)
    con = hostile_store.connection.cursor()
    try:
        con.execute("SET TimeZone = 'UTC'")
        python = _prepare(con, group, _Trusting())
        duckdb_only = _prepare(con, group, _Distrusting())
        assert _outcome(python) == _outcome(duckdb_only)
        if duckdb_only.accepted:  # what is journaled applies: DuckDB's insert takes it
            requests = [duckdb_only.accepted[i] for i in sorted(duckdb_only.accepted)]
            con.execute("BEGIN")
            try:
                apply_in_transaction(con, [Entry(1, requests, duckdb_only.segments)])
            finally:
                con.execute("ROLLBACK")
    finally:
        con.close()


def _invalid_text(values: list[str]) -> pa.Array:
    """A string array whose values are not UTF-8 (an Arrow body is not validated)."""
    return pa.array([b"\xff" + v.encode() for v in values], pa.binary()).view(pa.string())


@pytest.mark.parametrize("agrees", [_Trusting, _Distrusting], ids=["python", "duckdb"])
@pytest.mark.parametrize("column", ["example_id", "ts", "prediction"])
def test_invalid_utf8_from_an_arrow_body_goes_to_the_direct_lane(store, agrees, column):
    # Before: Python's conversion raised UnicodeDecodeError (the writer answered the whole
    # group 500), and DuckDB's SELECT passed the text, so the call was journaled and its
    # insert then failed at every apply ("Invalid unicode ... detected"), stopping the
    # journal. Now the call is answered by the direct lane, as without a journal.
    good = {"example_id": ["g"], "ts": ["2026-01-01T00:00:00Z"], "prediction": ["1"]}
    bad = pa.table({**good, column: _invalid_text(good[column])})
    group = [Item(LogCall("predictions", "fraud", {"version": "v1"}), table, "test",
                  received_at=RECEIVED) for table in (bad, pa.table(good))]  # fmt: skip
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    prepared = _prepare(con, group, agrees())
    assert prepared.direct == [0]
    assert list(prepared.accepted) == [1]
    assert prepared.segments[0].rows.column("example_id").to_pylist() == ["g"]
    _, plan, table = planned(store, "predictions", {"version": "v1"}, bad)
    assert python_convert(plan, table) is None  # (and does not raise)


def test_a_nan_score_refused_in_the_first_group_keeps_python_for_the_shape(store):
    # Before: the first group's comparison used Table.equals, for which NaN != NaN, so a
    # first group holding a refused NaN score made Python "differ" and DuckDB converted
    # that shape from then on. A refused row is never journaled: it is not compared.
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    state = WriterState()
    ids = iter(range(10**9, 10**9 + 1_000))

    def table(example: str, score: float) -> pa.Table:
        return pa.table({"example_id": [example], "ts": ["2026-01-01T00:00:00Z"],
                         "score": [score], "prediction": ["1"]})  # fmt: skip

    group = [Item(LogCall("predictions", "fraud", {"version": "v1"}), table(e, s), "test")
             for e, s in (("nan", float("nan")), ("fine", 0.75))]  # fmt: skip
    prepared = prepare_group(con, group, state, batch_ids=lambda n: [next(ids) for _ in range(n)],
                             pending_keys=lambda *_: None)  # fmt: skip
    assert prepared.direct == [0]
    assert list(prepared.accepted) == [1]
    assert list(state.python_agrees.values()) == [True]


@pytest.mark.parametrize("agrees", [dict, _Distrusting], ids=["first-group", "duckdb"])
@pytest.mark.parametrize("name", ["__evalstore_hash", "__evalstore_bad"])
def test_a_feature_named_like_the_conversions_own_columns_is_journaled(store, agrees, name):
    # Before: DuckDB's conversion read its key-hash and failing-check columns by name, so
    # a stored feature of that name raised KeyError ('Field ... exists 2 times'), which the
    # writer did not catch: every request of the group was answered 500.
    store.log_features("fraud", pa.table({"example_id": ["stored"], name: [1]}))
    data = pa.table({"example_id": ["new"], "ts": ["2026-01-01T00:00:00Z"], name: [7]})
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    prepared = _prepare(con, [Item(LogCall("features", "fraud", {}), data, "test")], agrees())
    assert (prepared.direct, list(prepared.accepted)) == ([], [0])
    assert prepared.segments[0].rows.select(["example_id", name]).to_pylist() == [
        {"example_id": "new", name: 7}
    ]


def _arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_hostile_requests_get_the_group_commits_answers_over_http(store_template, tmp_path):
    """The two divergences found, end to end: a journaled server answers (status, error
    type and message) and stores exactly as the group commit does."""
    from fastapi.testclient import TestClient

    from server.app import create_app

    good = {"example_id": ["g"], "ts": ["2026-01-01T00:00:00Z"], "prediction": ["1"]}
    invalid = pa.table({**good, "example_id": _invalid_text(["h"])})
    arrow = {"content-type": "application/vnd.apache.arrow.stream"}
    predict, features = "/v1/models/fraud/predictions?version=v1", "/v1/models/fraud/features"

    def feature(i: int) -> dict[str, Any]:
        return {"example_id": f"f{i}", "ts": "2026-01-02T00:00:00Z", "__evalstore_hash": i}

    requests = [
        (predict, {"content": _arrow_body(pa.table(good)), "headers": arrow}),
        (predict, {"content": _arrow_body(invalid), "headers": arrow}),
        *[(features, {"json": [feature(i)]}) for i in range(3)],  # the first adds the column
    ]
    results = {}
    for journal in (False, True):
        directory = tmp_path / str(journal)
        directory.mkdir()
        with evalstore.open(copy_store(store_template, directory)) as opened:
            app = create_app(opened, checkpoint_idle=None, monitor_every=0, journal=journal)
            answers = []
            with TestClient(app) as client:
                for path, body in requests:
                    response = client.post(path, **body)
                    payload = response.json()
                    payload.pop("batch_id", None)
                    answers.append((response.status_code, payload))
            stored = [opened.sql(f"SELECT * EXCLUDE (batch_id) FROM fraud.{name} ORDER BY ALL")
                      .to_pylist() for name in ("predictions", "features")]  # fmt: skip
        results[journal] = answers, stored
    assert results[True] == results[False]
    assert [status for status, _ in results[True][0]] == [200, 422, 200, 200, 200]
    # text that is not UTF-8 is refused when the body is read, before either writer
    assert results[True][0][1][1]["error"] == "invalid_arrow"
    assert "text columns must hold UTF-8" in results[True][0][1][1]["detail"]
    assert results[True][0][4][1]["columns_added"] == []  # (the first added the column)


def test_calls_of_no_rows_and_of_several_rows_keep_their_own_rows_in_a_group(store):
    """A group whose calls have 0, 2 and 1 rows (as many rows as calls, but not one a
    call): each accepted call is journaled with its own rows, and a call repeating an id
    journaled earlier in the group goes to the direct lane alone."""
    con = store.connection.cursor()
    con.execute("SET TimeZone = 'UTC'")
    call = LogCall("predictions", "fraud", {"version": "v1"})
    schema = pa.schema([("example_id", pa.string()), ("score", pa.float64())])

    def item(ids: list[str]) -> Item:
        return Item(call, pa.table({"example_id": ids, "score": [0.5] * len(ids)}, schema), "t")

    ids = iter(range(500, 600))
    group = [item([]), item(["z1", "z2"]), item(["z3"]), item(["z2"])]
    prepared = prepare_group(
        con, group, WriterState(), batch_ids=lambda n: [next(ids) for _ in range(n)],
        pending_keys=lambda *_: None,
    )  # fmt: skip
    assert prepared.direct == [3]
    assert {i: r.rows for i, r in prepared.accepted.items()} == {0: 0, 1: 2, 2: 1}
    (segment,) = prepared.segments
    by_batch = {r.batch_id: i for i, r in prepared.accepted.items()}
    rows = segment.rows.to_pylist()
    assert [(by_batch[r["batch_id"]], r["example_id"]) for r in rows] == [
        (1, "z1"), (1, "z2"), (2, "z3")]  # fmt: skip
