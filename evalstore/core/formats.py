"""Render Arrow results as text, CSV, JSON or Arrow IPC (shared by the CLI and the server).

>>> import pyarrow as pa
>>> print(to_text(pa.table({"feature": ["age", "income"], "psi": [0.01, 0.4]})))
feature  psi
-------  ----
age      0.01
income   0.4
(2 rows)
"""

from __future__ import annotations

import io
import json
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc

FORMATS = ("table", "csv", "json", "arrow")


def json_value(value: Any) -> Any:
    """A JSON-safe form of one cell: ISO-8601 times, NaN/inf as null, Decimal as float."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): json_value(v) for k, v in value}  # an Arrow map
        return [json_value(v) for v in value]
    return value


#: The times Python's ``datetime`` holds, with a day's margin for time zones.
_PYTHON_TIMES = (datetime(1, 1, 2), datetime(9999, 12, 30))


def python_safe(table: pa.Table) -> pa.Table:
    """``table`` with every column Python cannot convert rendered as ISO-8601 text.

    DuckDB holds timestamps and dates from 290309 BC to 294247 AD, Python's ``datetime``
    only years 1 to 9999; ``to_pylist`` raises ``OverflowError`` beyond them. A column
    holding such a value (at any depth: lists and structs of times too) becomes text,
    e.g. ``20266-01-01T00:00:00.000000Z``; other columns are left as they are. Checking
    a time column is one vectorised min/max.

    >>> import pyarrow as pa
    >>> far = pa.array([10**18, 0], pa.timestamp("us", tz="UTC"))  # year 33658
    >>> python_safe(pa.table({"ts": far})).column("ts").to_pylist()
    ['33658-09-27T01:46:40.000000Z', '1970-01-01T00:00:00.000000Z']
    """
    for i, field in enumerate(table.schema):
        if _has_time(field.type) and not _convertible(table.column(i)):
            table = table.set_column(i, field.name, _as_text(table.column(i), field.type))
    return table


def _has_time(kind: pa.DataType) -> bool:
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return True
    return any(_has_time(kind.field(j).type) for j in range(kind.num_fields))


def _convertible(column: pa.ChunkedArray) -> bool:
    """Whether every value of ``column`` converts to Python (nested ones are tried)."""
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        bounds = pa.array(_PYTHON_TIMES, pa.timestamp("us"))
        if pa.types.is_date(kind):
            bounds = bounds.cast(pa.date32()).cast(kind)
        else:
            bounds = bounds.cast(pa.timestamp(kind.unit), safe=False).cast(kind)
        low, high = pc.min_max(column).values()
        return not low.is_valid or (
            pc.greater_equal(low, bounds[0]).as_py() and pc.less_equal(high, bounds[1]).as_py()
        )
    try:
        column.to_pylist()
    except (OverflowError, ValueError):
        return False
    return True


def _as_text(column: pa.ChunkedArray, kind: pa.DataType) -> pa.Array:
    """``column`` with its times (at any depth) as ISO-8601 text.

    Written by numpy's ``datetime64``, exact over DuckDB's whole range (Arrow's own cast
    to text is wrong past year 32767); times with a zone end in ``Z`` (they are UTC).
    """
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        ticks = column.cast(_ticks_type(kind)).combine_chunks()
        unit = _unit(kind)
        text = np.datetime_as_string(ticks.fill_null(0).to_numpy().astype(f"datetime64[{unit}]"))
        if getattr(kind, "tz", None):
            text = np.char.add(text, "Z")
        return pa.array(text, pa.string(), mask=ticks.is_null().to_numpy(zero_copy_only=False))
    values = column.cast(_ticks_type(kind)).to_pylist()
    return pa.array([_render(value, kind) for value in values], _text_type(kind))


def _unit(kind: pa.DataType) -> str:
    if pa.types.is_date32(kind):
        return "D"
    return "ms" if pa.types.is_date64(kind) else kind.unit


def _render(value: Any, kind: pa.DataType) -> Any:
    """One Python value of ``_ticks_type(kind)`` with its times as ISO-8601 text."""
    if value is None:
        return None
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        text = str(np.datetime_as_string(np.datetime64(value, _unit(kind))))
        return text + "Z" if getattr(kind, "tz", None) else text
    if pa.types.is_struct(kind):
        return {f.name: _render(value[f.name], f.type) for f in kind}
    if pa.types.is_map(kind):
        return [(_render(k, kind.key_type), _render(v, kind.item_type)) for k, v in value]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return [_render(item, kind.value_type) for item in value]
    return value


def _ticks_type(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every time (at any depth) as its count of units since 1970."""
    return _replace_times(kind, None)


def _text_type(kind: pa.DataType) -> pa.DataType:
    """``kind`` with every time (at any depth) as text."""
    return _replace_times(kind, pa.string())


def _replace_times(kind: pa.DataType, by: pa.DataType | None) -> pa.DataType:
    """``kind`` with its times replaced by ``by`` (None: their integer storage type)."""
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return by or (pa.int32() if pa.types.is_date32(kind) else pa.int64())
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_replace_times(f.type, by)) for f in kind])
    if pa.types.is_map(kind):
        return pa.map_(_replace_times(kind.key_type, by), _replace_times(kind.item_type, by))
    value = (
        kind.value_field.with_type(_replace_times(kind.value_type, by)) if kind.num_fields else None
    )
    if pa.types.is_large_list(kind):
        return pa.large_list(value)
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(value, kind.list_size)
    if pa.types.is_list(kind):
        return pa.list_(value)
    return kind


def to_records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (arrays of records, as Grafana's Infinity source reads them).

    Times beyond Python's ``datetime`` (years 1 to 9999) come as ISO-8601 text
    (:func:`python_safe`).
    """
    return [{k: json_value(v) for k, v in row.items()} for row in python_safe(table).to_pylist()]


def to_json(table: pa.Table) -> str:
    return json.dumps(to_records(table))


def to_csv(table: pa.Table) -> bytes:
    """CSV with a header; nested cells (lists, maps, structs) are written as JSON text."""
    table = python_safe(table)
    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            texts = [
                None if v is None else json.dumps(json_value(v))
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, field.name, pa.array(texts, pa.string()))
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def to_arrow_ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(json_value(value))


def to_text(table: pa.Table, max_rows: int = 100, max_width: int = 40) -> str:
    """A plain aligned table for terminals, truncated to ``max_rows`` rows."""
    names = table.column_names
    shown = python_safe(table.slice(0, max_rows))
    rows = [[_cell(v) for v in row.values()] for row in shown.to_pylist()]
    rows = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in r] for r in rows]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
    lines = [
        "  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows),
    ]
    more = f", showing {max_rows}" if table.num_rows > max_rows else ""
    lines.append(f"({table.num_rows} row{'s' if table.num_rows != 1 else ''}{more})")
    return "\n".join(lines)


def to_grid(
    table: pa.Table,
    flag: str = "drifted",
    max_columns: int = 60,
    meaning: str = "drifted by at least one method",
) -> str:
    """Features by windows, one cell per pair: ``X`` if any row of the cell has ``flag``
    true, ``.`` if all are false, ``?`` if none could be decided (NULL).

    >>> import pyarrow as pa
    >>> from datetime import datetime
    >>> days = [datetime(2026, 1, d) for d in (1, 1, 2, 2)]
    >>> t = pa.table({"window_start": days, "feature": ["a", "b", "a", "b"],
    ...               "drifted": [False, None, True, False]})
    >>> print(to_grid(t))
    feature  01-01  01-02
    -------  -----  -----
    a        .      X
    b        ?      .
    X = drifted by at least one method, . = not, ? = undefined
    """
    rows = python_safe(table.select(["window_start", "feature", flag])).to_pylist()
    windows = sorted({r["window_start"] for r in rows})[-max_columns:]
    features = sorted({r["feature"] for r in rows})
    cells: dict[tuple[str, Any], list[bool | None]] = {}
    for r in rows:
        cells.setdefault((r["feature"], r["window_start"]), []).append(r[flag])

    def mark(values: list[bool | None]) -> str:
        if any(v for v in values):
            return "X"
        return "." if any(v is False for v in values) else "?" if values else " "

    labels = [_window_label(w, windows) for w in windows]
    width = max([len("feature"), *map(len, features)])
    lines = [
        "  ".join(["feature".ljust(width), *labels]).rstrip(),
        "  ".join(["-" * width, *("-" * len(label) for label in labels)]),
    ]
    for feature in features:
        marks = [
            mark(cells.get((feature, w), [])).ljust(len(lab))
            for w, lab in zip(windows, labels, strict=True)
        ]
        lines.append("  ".join([feature.ljust(width), *marks]).rstrip())
    lines.append(f"X = {meaning}, . = not, ? = undefined")
    return "\n".join(lines)


def _window_label(start: Any, windows: list[Any]) -> str:
    """Short column label: month-day, with the time when windows are shorter than a day."""
    if not isinstance(start, datetime):
        return str(start)
    same_day = len({w.date() for w in windows if isinstance(w, datetime)}) < len(windows)
    return start.strftime("%m-%d %H:%M") if same_day else start.strftime("%m-%d")
