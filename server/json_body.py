"""JSON ingest bodies straight into Arrow, without a Python object per value.

``json.loads`` followed by ``pyarrow.Table.from_pylist`` held a Python object for every
value (about 8x the body in resident memory). Here the body is parsed by Arrow's JSON
reader (``pyarrow.json``) into columns in one pass: an array of records is read as the
one object ``{"records": [...]}`` (written around the body in the spare bytes of its
buffer, :meth:`server.ingest_body.Body.wrapped`, so the body is not copied) and its
struct column flattened without copying; an object of columns has one list per column;
newline-delimited JSON (``application/x-ndjson``) is read as rows. Strings stay strings
(Arrow's reader would otherwise turn ISO-8601-looking text into timestamps; the store
parses times itself).

Refused with 422 ``invalid_json``: text that is not JSON, rows that do not form a table
(a column that is a number in one row and text in another), values nested more than
:data:`MAX_DEPTH` levels, and integers outside the 64-bit range (Arrow's reader would read
them as floats, silently losing digits; a body holding a run of 19 or more digits is
checked exactly, by the standard library's parser with a hook that keeps no objects).

Small bodies (up to :data:`SMALL_BODY` bytes: a service's one-example requests) take a
cheaper path: Arrow's reader has a fixed cost of about 2 ms per body, the standard
library's parser a few microseconds for a record. :func:`small_records` reads an array of
flat records (values that are text, numbers, booleans or null) into exactly the table
Arrow's reader would build: columns in the order they first appear, a missing key as
null, integers as int64, integers mixed with floats as double, a column with only nulls of
type null. Anything else (nesting, a column mixing kinds, duplicate keys, NaN/Infinity, a
number beyond a double or an int64, invalid UTF-8, other shapes) is left to Arrow's reader,
which gives its answer or its error as before.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pyarrow as pa
import pyarrow.json as pj

from server.errors import ApiError
from server.ingest_body import Body, release_memory

#: Deepest nesting of lists/objects accepted inside a value (a flat record's is 0).
MAX_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LONG_DIGITS = re.compile(rb"\d{19}")
_FIRST = re.compile(rb"[^ \t\r\n]")  # the first byte that is not JSON whitespace
#: The end of an object key: each key of a parsed body matches once (text in a value
#: may match too: then the keys are counted exactly, by the parser's hook)
_KEY_END = re.compile(r'"[ \t\r\n]*:')
NDJSON = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")
#: Largest body tried by :func:`small_records` before Arrow's reader.
SMALL_BODY = 16 * 1024


def read_json_table(body: Body | bytes, media: str) -> pa.Table:
    """The table held by a JSON ingest ``body`` (records, columns, or NDJSON rows).

    ``body`` is best a :class:`~server.ingest_body.Body` (an array of records is then read
    without copying it); ``bytes`` are copied into one first.
    """
    if not isinstance(body, Body):
        body = Body.of(body)
    data = body.view()
    if media not in NDJSON and len(data) <= SMALL_BODY:
        table = small_records(data)
        if table is not None:
            return table
    if _LONG_DIGITS.search(data):
        _check_integers(data)
    first = _FIRST.search(data)
    start = b"" if first is None else bytes(data[first.start() : first.start() + 1])
    if media in NDJSON:
        return _checked(_read(data))
    if start == b"[":
        del data
        return _records(_read(body.wrapped(b'{"records":', b"}")), "records")
    if start != b"{":
        raise _shape_error()
    table = _read(data)
    if table.num_rows != 1:
        raise _shape_error()
    if table.column_names == ["records"] and _is_records(table.schema.field(0).type):
        return _records(table, "records")
    if all(pa.types.is_list(t) or pa.types.is_large_list(t) for t in table.schema.types):
        return _checked(_columns(table))
    raise _shape_error()


class _NotSimple(Exception):
    """The body is not a small array of flat records: let Arrow's reader decide."""


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(items)
    if len(record) != len(items):  # a key given twice: Arrow's reader refuses it
        raise _NotSimple
    return record


def _constant(name: str) -> Any:
    raise _NotSimple  # NaN, Infinity, -Infinity: not JSON


#: The Arrow type of a column from the Python types of its values (nulls left out).
_KINDS: dict[frozenset[type], pa.DataType] = {
    frozenset(): pa.null(),
    frozenset({str}): pa.string(),
    frozenset({int}): pa.int64(),
    frozenset({float}): pa.float64(),
    frozenset({int, float}): pa.float64(),
    frozenset({bool}): pa.bool_(),
}


def small_records(data: memoryview | bytes) -> pa.Table | None:
    """An array of flat records (or ``{"records": [...]}``) as the table Arrow's JSON
    reader builds from it, or None when ``data`` is anything else (see the module).

    >>> small_records(b'[{"id": "a", "x": 1}, {"x": 2.5, "y": null}]').to_pylist()
    [{'id': 'a', 'x': 1.0, 'y': None}, {'id': None, 'x': 2.5, 'y': None}]
    >>> small_records(b'[{"id": "a", "x": [1]}]') is None  # nested: Arrow's reader
    True
    """
    try:
        text = str(data, "utf-8")
        rows = json.loads(text, parse_constant=_constant)
    except (_NotSimple, ValueError, RecursionError):
        return None
    keys = 0
    if isinstance(rows, dict) and list(rows) == ["records"]:
        keys, rows = 1, rows["records"]
    if not isinstance(rows, list) or not rows:
        return None
    keys += sum(len(row) for row in rows if isinstance(row, dict))
    if len(_KEY_END.findall(text)) != keys:  # a key given twice (or '":' in a value)
        try:  # the exact answer: the parser's hook sees every key of every object
            json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
        except (_NotSimple, ValueError, RecursionError):
            return None
    columns: dict[str, list[Any]] = {}
    kinds: dict[str, set[type]] = {}
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            return None
        for name, value in row.items():
            if name not in columns:
                columns[name] = [None] * n
                kinds[name] = set()
            kind = type(value)
            if kind is int:
                if not INT64_MIN <= value <= INT64_MAX:
                    return None
            elif kind is float:
                if not math.isfinite(value):  # beyond a double: Arrow's reader refuses it
                    return None
            elif value is not None and kind is not str and kind is not bool:
                return None  # nested
            if value is not None:
                kinds[name].add(kind)
            columns[name].append(value)
        for values in columns.values():
            if len(values) == n:
                values.append(None)
    if not columns:  # [{}]: Arrow's reader keeps the row count of a table with no columns
        return None
    arrays = {}
    for name, values in columns.items():
        kind = _KINDS.get(frozenset(kinds[name]))
        if kind is None:  # a column mixing kinds: Arrow's reader names it in its error
            return None
        try:
            arrays[name] = pa.array(values, kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # e.g. an integer beyond 2**53 in a column of doubles: Arrow's reader decides
            return None
    return pa.table(arrays)


def _read(body: memoryview) -> pa.Table:
    """Arrow's reading of ``body`` (whole, one block), with strings kept as strings."""
    read_options = pj.ReadOptions(block_size=max(len(body) + 1, 1 << 20), use_threads=False)
    parse = pj.ParseOptions(newlines_in_values=True)
    # the system allocator gives the parser's scratch memory back to the OS at once (Arrow's
    # default pool keeps it cached), so a second pass does not stack on the first
    pool = pa.system_memory_pool()
    try:
        table = pj.read_json(
            pa.BufferReader(body), read_options=read_options, parse_options=parse, memory_pool=pool
        )
        _valid(table)
        if any(_depth(t, MAX_DEPTH + 2) > MAX_DEPTH + 2 for t in table.schema.types):
            raise ApiError(  # (+ 2: the values of {"records": [...]} sit two levels down)
                422,
                "invalid_json",
                f"the JSON nests lists/objects more than {MAX_DEPTH} levels deep; send flat "
                'records (such as [{"example_id": "a", "x": 1.5}])',
            )
        if not any(_has_timestamp(t) for t in table.schema.types):
            release_memory()  # the parser's scratch memory
            return table
        schema = pa.schema([f.with_type(_as_text(f.type)) for f in table.schema])
        del table
        release_memory()  # the first pass's memory, before the second pass takes its own
        parse = pj.ParseOptions(newlines_in_values=True, explicit_schema=schema)
        table = pj.read_json(
            pa.BufferReader(body), read_options=read_options, parse_options=parse, memory_pool=pool
        )
        release_memory()
        return _valid(table)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ApiError(
            422, "invalid_json", f"the body is not valid JSON rows: {_reason(error)}"
        ) from None


def _valid(table: pa.Table) -> pa.Table:
    """``table``, or 422: Arrow's reader builds an invalid array for a list of only nulls
    (``[null, null]``: offsets past its values), which would crash whatever reads it next."""
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        raise ApiError(
            422,
            "invalid_json",
            "a JSON array holding only nulls (such as [null, null]) cannot be read; send "
            'rows as objects and leave such values out (such as [{"example_id": "a"}])',
        ) from None
    return table


def _records(table: pa.Table, name: str) -> pa.Table:
    """The rows of the one-row ``{"records": [...]}`` table."""
    kind = table.schema.field(name).type
    if not _is_records(kind):
        raise ApiError(422, "invalid_json", "a JSON array body must hold objects (one per row)")
    if pa.types.is_null(kind.value_type):  # [] (no rows) or [null, ...] (no objects)
        if any(chunk.value_lengths()[0].as_py() for chunk in table.column(name).chunks):
            raise ApiError(422, "invalid_json", "a JSON array body must hold objects (one per row)")
        return pa.table({})
    column = table.column(name)  # (one chunk, as read whole: used as is, not copied)
    items = (column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()).flatten()
    return _checked(pa.Table.from_struct_array(items))


def _columns(table: pa.Table) -> pa.Table:
    """``{"a": [...], "b": [...]}`` (one row of lists) as a table of those columns."""
    lengths = {name: len(table.column(name)[0]) for name in table.column_names}
    if len(set(lengths.values())) > 1:
        raise ApiError(
            422,
            "invalid_json",
            f"the column arrays have different lengths ({lengths}); send equal-length arrays",
        )
    return pa.table({n: table.column(n).combine_chunks().flatten() for n in table.column_names})


def _checked(table: pa.Table, most: int = MAX_DEPTH) -> pa.Table:
    """``table`` unless a column nests deeper than ``most`` levels (422)."""
    for field in table.schema:
        if _depth(field.type, most) > most:
            raise ApiError(
                422,
                "invalid_json",
                f"column {field.name!r} nests lists/objects more than {MAX_DEPTH} levels deep; "
                'send flat records (such as [{"example_id": "a", "x": 1.5}])',
                column=field.name,
            )
    return table


def _check_integers(body: memoryview) -> None:
    """422 naming the column of the first integer outside int64 (exact; keeps no objects)."""
    too_big = object()

    def parse_int(text: str) -> Any:
        value = int(text)
        return too_big if not INT64_MIN <= value <= INT64_MAX else None

    def pairs(items: list[tuple[str, Any]]) -> None:
        for key, value in items:
            if value is too_big or (isinstance(value, list) and too_big in value):
                raise ApiError(
                    422,
                    "invalid_json",
                    f"column {key!r} holds an integer outside the 64-bit range "
                    f"[{INT64_MIN}, {INT64_MAX}]; send such values as text or as floats",
                    column=key,
                )
        return None

    try:
        json.loads(
            str(body, "utf-8"),
            parse_int=parse_int,
            parse_float=lambda _: None,
            object_pairs_hook=pairs,
        )
    except (ValueError, RecursionError):
        return  # not JSON, or too deep: Arrow's reader says so with a clearer message


def _depth(kind: pa.DataType, most: int) -> int:
    """How many list/struct levels ``kind`` nests, counted up to ``most + 1`` (iteratively)."""
    deepest, stack = 0, [(kind, 0)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > most:
            return deepest
        stack.extend((current.field(i).type, level + 1) for i in range(current.num_fields))
    return deepest


def _has_timestamp(kind: pa.DataType) -> bool:
    stack = [kind]
    while stack:
        current = stack.pop()
        if pa.types.is_timestamp(current):
            return True
        stack.extend(current.field(i).type for i in range(current.num_fields))
    return False


def _as_text(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every timestamp replaced by string (the reader's inference undone)."""
    if pa.types.is_timestamp(kind):
        return pa.string()
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_as_text(kind.value_type)))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_as_text(f.type)) for f in kind])
    return kind


def _is_records(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) and (
        pa.types.is_struct(kind.value_type) or pa.types.is_null(kind.value_type)
    )


def _reason(error: Exception) -> str:
    return str(error).strip().removeprefix("JSON parse error: ")


def _shape_error() -> ApiError:
    return ApiError(
        422,
        "invalid_json",
        'send an array of records, an object of equal-length column arrays, or {"records": [...]}'
        " (or newline-delimited records as application/x-ndjson)",
    )
