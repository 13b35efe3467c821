"""Property tests: what goes in comes back out, with its values and its types.

Each example ingests a random Arrow table into a fresh store (a copy of a template file,
cheaper than building one) and reads the features back with SQL; floats keep NaN and
infinities, timestamps their time zone, strings any unicode, and nulls stay nulls in
every column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.core.layout import RESERVED_FEATURE_NAMES
from evalstore.core.time_limits import DEFAULT_TIME_RANGE
from evalstore.errors import InvalidNameError, ValidationError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
READ_BACK = (
    "SELECT * EXCLUDE (env, dataset, batch_id, example_key) FROM fraud.features ORDER BY example_id"
)

INT_RANGES = {
    pa.int8(): (-(2**7), 2**7 - 1),
    pa.int16(): (-(2**15), 2**15 - 1),
    pa.int32(): (-(2**31), 2**31 - 1),
    pa.int64(): (-(2**63), 2**63 - 1),
}
NAIVE_US = pa.timestamp("us")
UTC_US = pa.timestamp("us", tz="UTC")
TYPES = [*INT_RANGES, pa.float32(), pa.float64(), pa.string(), pa.bool_(), NAIVE_US, UTC_US]
# DuckDB's TIMESTAMP range is narrower than Python's; stay well inside both. Timestamp
# *feature* columns keep this wide range: only the event time ``ts`` is bounded by the
# store's time range (evalstore.core.time_limits), ``[TS_LOW, TS_HIGH)`` UTC by default.
MIN_TIME, MAX_TIME = datetime(1700, 1, 1), datetime(2300, 12, 31, 23, 59, 59, 999999)
TS_LOW, TS_HIGH = DEFAULT_TIME_RANGE
# the last microsecond the default range accepts (hypothesis bounds are inclusive)
TS_LAST = TS_HIGH.replace(tzinfo=None) - timedelta(microseconds=1)


def event_times() -> st.SearchStrategy:
    """UTC event times the store accepts by default: ``[TS_LOW, TS_HIGH)``."""
    return st.datetimes(TS_LOW.replace(tzinfo=None), TS_LAST, timezones=st.just(UTC))


def out_of_range_times() -> st.SearchStrategy:
    """UTC times DuckDB holds but the store's default time range refuses."""
    return st.datetimes(
        MIN_TIME, TS_LOW.replace(tzinfo=None) - timedelta(microseconds=1), timezones=st.just(UTC)
    ) | st.datetimes(TS_HIGH.replace(tzinfo=None), MAX_TIME, timezones=st.just(UTC))


def values_of(kind: pa.DataType) -> st.SearchStrategy:
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return st.integers(low, high)
    if kind == pa.float32():
        return st.floats(width=32, allow_nan=True, allow_infinity=True)
    if kind == pa.float64():
        return st.floats(allow_nan=True, allow_infinity=True)
    if kind == pa.string():
        return st.text(max_size=12)
    if kind == pa.bool_():
        return st.booleans()
    if kind == NAIVE_US:
        return st.datetimes(MIN_TIME, MAX_TIME)
    return st.datetimes(MIN_TIME, MAX_TIME, timezones=st.just(UTC))


def free_name(name: str) -> bool:
    """Usable as a feature name: non-empty, no NUL, not reserved (in any letter case)."""
    return bool(name) and "\x00" not in name and name.lower() not in RESERVED_FEATURE_NAMES


names = st.text(min_size=1, max_size=12).filter(free_name)


@st.composite
def tables(draw, names=names) -> pa.Table:
    """A features table: unique ids, a UTC event time, and 1-6 random typed columns."""
    columns = draw(
        st.lists(
            st.tuples(names, st.sampled_from(TYPES)),
            min_size=1,
            max_size=6,
            unique_by=lambda column: column[0].lower(),
        )
    )
    n = draw(st.integers(0, 12))
    arrays = {
        "example_id": pa.array([f"e{i:03d}" for i in range(n)], type=pa.string()),
        "ts": pa.array(draw(st.lists(event_times(), min_size=n, max_size=n)), type=UTC_US),
    }
    for name, kind in columns:
        cells = draw(st.lists(st.none() | values_of(kind), min_size=n, max_size=n))
        arrays[name] = pa.array(cells, type=kind)
    return pa.table(arrays)


def same(left: object, right: object) -> bool:
    """Equality where NaN equals NaN (and -0.0 equals 0.0, as in SQL)."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return left == right and type(left) is type(right)


def assert_round_trip(expected: pa.Table, result: pa.Table) -> None:
    assert result.column_names == expected.column_names
    for name in expected.column_names:
        assert result.schema.field(name).type == expected.schema.field(name).type, name
        got, want = result.column(name).to_pylist(), expected.column(name).to_pylist()
        assert len(got) == len(want)
        mismatches = [(g, w) for g, w in zip(got, want, strict=True) if not same(g, w)]
        assert not mismatches, (name, mismatches[:3])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file with a binary model ``fraud`` version ``v1`` (no classes)."""
    path = tmp_path_factory.mktemp("roundtrip") / "template.duckdb"
    with evalstore.open(path) as store:
        store.register_model("fraud", "v1", "binary")
    return path


@pytest.fixture(scope="module")
def fresh_store(template: Path, open_copy) -> Callable[[], evalstore.Store]:
    """``fresh_store()``: a new copy of ``template``, opened (one per hypothesis example)."""
    return lambda: open_copy(template)


@pytest.fixture(scope="module")
def refusing_store(template: Path, open_copy) -> Iterator[evalstore.Store]:
    """One copy of ``template`` for the properties whose every example is a refused batch:
    a refused batch writes nothing (each example checks that the store holds no batch), so
    the examples need no store of their own (opening and closing a copy per example was
    most of their time)."""
    with open_copy(template) as store:
        yield store


@pytest.mark.slow
@SETTINGS
@given(table=tables())
def test_features_round_trip_values_and_types(table, fresh_store):
    with fresh_store() as store:
        receipt = store.log_features("fraud", table)
        assert receipt.rows == table.num_rows
        assert receipt.columns_added == tuple(table.column_names[2:])
        result = store.sql(READ_BACK)
    assert_round_trip(table.sort_by("example_id"), result)


@pytest.mark.slow
@SETTINGS
@given(table=tables(), data=st.data())
def test_features_round_trip_across_batches_with_evolving_columns(table, data, fresh_store):
    """Rows split over two batches, the first lacking some columns: those read NULL."""
    split = data.draw(st.integers(0, table.num_rows), label="split")
    features = table.column_names[2:]
    late = data.draw(st.lists(st.sampled_from(features), unique=True), label="late columns")
    first = table.slice(0, split).drop_columns(late)
    second = table.slice(split)
    with fresh_store() as store:
        added = store.log_features("fraud", first).columns_added
        added += store.log_features("fraud", second).columns_added
        result = store.sql(READ_BACK)
    ordered = [n for n in features if n not in late] + [n for n in features if n in late]
    assert added == tuple(ordered)
    expected = table.select(["example_id", "ts", *ordered])
    for name in late:  # the first batch's rows never had these columns
        index = expected.column_names.index(name)
        kind = expected.schema.field(name).type
        column = pa.concat_arrays(
            [pa.nulls(split, kind), expected.column(name).combine_chunks().slice(split)]
        )
        expected = expected.set_column(index, name, column)
    assert_round_trip(expected.sort_by("example_id"), result)


# names from a tiny alphabet, so letter-case twins are frequent
twin_names = st.text(alphabet="aAbB", min_size=1, max_size=2)


@pytest.mark.slow
@SETTINGS
@given(table=tables(names=twin_names), clash=st.booleans())
def test_case_twins_are_rejected_and_others_round_trip(table, clash, fresh_store):
    """``tables`` draws names unique in lower case; ``clash`` adds a letter-case twin."""
    if clash:
        table = table.append_column(table.column_names[2].swapcase(), table.column(2))
    with fresh_store() as store:
        if clash:
            with pytest.raises(ValidationError, match=r"differ only in letter case"):
                store.log_features("fraud", table)
            assert store.sql("SELECT count(*) AS n FROM evalstore.batches").to_pylist() == [
                {"n": 0}
            ]
            assert store.sql(READ_BACK).column_names == ["example_id", "ts"]
        else:
            store.log_features("fraud", table)
            assert_round_trip(table.sort_by("example_id"), store.sql(READ_BACK))


@pytest.mark.slow
@SETTINGS
@given(table=tables(), data=st.data())
def test_event_times_outside_the_time_range_are_refused(table, data, refusing_store):
    """One ``ts`` outside ``[TS_LOW, TS_HIGH)`` refuses the whole batch; nothing is written."""
    if table.num_rows == 0:
        table = pa.table({"example_id": ["e000"], "ts": pa.array([TS_LOW], type=UTC_US)})
    row = data.draw(st.integers(0, table.num_rows - 1), label="row")
    bad = data.draw(out_of_range_times(), label="bad time")
    times = table.column("ts").to_pylist()
    times[row] = bad
    table = table.set_column(1, "ts", pa.array(times, type=UTC_US))
    store = refusing_store  # the module's: every example's batch is refused
    with pytest.raises(ValidationError) as caught:
        store.log_features("fraud", table)
    error = caught.value
    assert error.column == "ts" and error.rows == 1
    assert str(error).startswith(
        "time column 'ts' has 1 values outside the store's time range "
        "[1900-01-01T00:00:00+00:00, 2200-01-01T00:00:00+00:00) UTC, for example "
    )
    assert "time_range=(lo, hi)" in str(error)
    assert error.examples == [
        store.sql("SELECT CAST(CAST(? AS TIMESTAMPTZ) AS VARCHAR) AS t", [bad])
        .column("t")[0]
        .as_py()
    ]
    assert store.sql("SELECT count(*) AS n FROM evalstore.batches").to_pylist() == [{"n": 0}]
    assert store.sql("SELECT count(*) AS n FROM fraud.features").to_pylist() == [{"n": 0}]


@pytest.mark.slow
@SETTINGS
@given(name=st.sampled_from(sorted(RESERVED_FEATURE_NAMES - {"example_id", "ts"})), data=st.data())
def test_reserved_names_in_any_case_are_rejected(name, data, refusing_store):
    spelled = "".join(
        c.upper() if data.draw(st.booleans(), label=f"upper {c}") else c for c in name
    )
    table = pa.table({"example_id": ["a"], spelled: [1]})
    with pytest.raises(ValidationError, match=rf"column '{spelled}' uses a reserved name"):
        refusing_store.log_features("fraud", table)
    assert refusing_store.sql("SELECT count(*) AS n FROM evalstore.batches").to_pylist() == [
        {"n": 0}
    ]


def test_nul_in_a_column_name_is_rejected(fresh_store):
    table = pa.table({"example_id": ["a"], "x\x00y": [1]})
    with fresh_store() as store, pytest.raises(InvalidNameError, match=r"without NUL characters"):
        store.log_features("fraud", table)


label_batches = st.lists(
    st.dictionaries(st.sampled_from("abcdef"), st.sampled_from([0, 1]), min_size=1),
    min_size=1,
    max_size=8,
)


@pytest.mark.slow
@SETTINGS
@given(batches=label_batches)
def test_labels_latest_is_the_last_logged_label(batches, fresh_store):
    expected: dict[str, str] = {}
    for batch in batches:
        expected.update({example: str(label) for example, label in batch.items()})
    with fresh_store() as store:
        for batch in batches:
            store.log_labels(
                "fraud", pa.table({"example_id": list(batch), "label": list(batch.values())})
            )
        latest = store.sql("SELECT example_id, label FROM fraud.labels_latest").to_pylist()
        stored = store.sql("SELECT count(*) AS n FROM fraud.labels").to_pylist()
    assert {row["example_id"]: row["label"] for row in latest} == expected
    assert len(latest) == len(expected)
    assert stored == [{"n": sum(len(batch) for batch in batches)}]


def test_a_column_named_like_a_parameter_is_stored_as_data(fresh_store):
    """``$received_at`` is also the name of an ingest parameter: as a quoted column it is
    data, not a parameter to bind (found by the evolving-columns property)."""
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    table = pa.table({"example_id": ["a", "b"], "ts": [ts, ts], "$received_at": [1.5, None]})
    with fresh_store() as store:
        assert store.log_features("fraud", table).rows == 2
        assert store.sql(
            'SELECT example_id, "$received_at" AS v FROM fraud.features ORDER BY example_id'
        ).to_pylist() == [{"example_id": "a", "v": 1.5}, {"example_id": "b", "v": None}]
