"""server.json_body.small_records: the standard library's parser for small bodies builds the
table Arrow's JSON reader builds (or steps aside, and Arrow's reader answers as before)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import json_body
from server.errors import ApiError
from server.json_body import read_json_table, small_records


def _arrow(data: bytes, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    """What Arrow's reader makes of ``data`` (the small path switched off)."""
    with monkeypatch.context() as patched:
        patched.setattr(json_body, "SMALL_BODY", -1)
        return read_json_table(data, "application/json")


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01", "1.5", "true"]),  # stay text
)
_rows = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "é", "x y"]), _values, max_size=4),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=_rows)
def test_small_records_builds_what_arrows_reader_builds(
    rows: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.dumps(rows).encode()
    small = small_records(data)
    try:
        expected = _arrow(data, monkeypatch)
    except ApiError:
        assert small is None  # Arrow's reader refuses it: the small path must not accept it
        return
    if small is not None:
        assert small.schema == expected.schema
        assert small.to_pylist() == expected.to_pylist()
        assert small.column(0).num_chunks == 1 if small.num_columns else True


@pytest.mark.parametrize(
    ("body", "types"),
    [
        (b'[{"id": "a", "x": 1}, {"x": 2.5, "y": null}]', ["string", "double", "null"]),
        (b'{"records": [{"id": "a", "n": 7}]}', ["string", "int64"]),
        (b'[{"t": "2026-01-01T00:00:00Z", "ok": true}]', ["string", "bool"]),
    ],
)
def test_small_records_types(body: bytes, types: list[str]) -> None:
    table = small_records(body)
    assert table is not None
    assert [str(t) for t in table.schema.types] == types
    assert table.num_rows == body.count(b"{") - body.startswith(b"{")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"a": true}, {"a": 1}]', "changed from boolean to number"),
        (b'[{"a": 1}, {"a": "x"}]', "changed from number to string"),
        (b'[{"a": 1, "a": 2}]', "specified twice"),
        (b'[{"a": 1e400}]', "too big"),
        (b'[{"a": 99999999999999999999}]', "outside the 64-bit range"),
        (b"[1, 2]", "must hold objects"),
    ],
)
def test_small_bodies_the_fast_path_refuses_get_arrows_error(body: bytes, message: str) -> None:
    assert small_records(body) is None
    with pytest.raises(ApiError, match=message) as raised:
        read_json_table(body, "application/json")
    assert raised.value.status == 422


def test_nested_and_other_shapes_go_to_arrows_reader() -> None:
    nested = b'[{"id": "a", "v": [1, 2], "s": {"k": 1}}]'
    assert small_records(nested) is None
    table = read_json_table(nested, "application/json")
    assert table.column_names == ["id", "v", "s"]
    assert table.to_pylist() == [{"id": "a", "v": [1, 2], "s": {"k": 1}}]
    assert small_records(b'{"a": [1, 2]}') is None  # columns: Arrow's reader
    assert read_json_table(b'{"a": [1, 2]}', "application/json").to_pylist() == [
        {"a": 1},
        {"a": 2},
    ]
    assert small_records(b'[{"a": NaN}]') is None  # not JSON, but Arrow's reader reads it
    assert str(read_json_table(b'[{"a": NaN}]', "application/json").column("a")[0]) == "nan"
    assert small_records(b"[{}]") is None
    # an integer beyond 2**53 beside a double: pyarrow refuses the exact conversion, so the
    # small path steps aside and Arrow's reader rounds it as it always did
    wide = b'[{"a": 1.5}, {"a": 9007199254740993}]'
    assert small_records(wide) is None
    assert read_json_table(wide, "application/json").column("a").to_pylist() == [
        1.5,
        9007199254740992.0,
    ]
    assert small_records(b"\xff[]") is None  # not UTF-8
