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

import pyarrow as pa
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


def to_records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (arrays of records, as Grafana's Infinity source reads them)."""
    return [{k: json_value(v) for k, v in row.items()} for row in table.to_pylist()]


def to_json(table: pa.Table) -> str:
    return json.dumps(to_records(table))


def to_csv(table: pa.Table) -> bytes:
    """CSV with a header; nested cells (lists, maps, structs) are written as JSON text."""
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
    rows = [[_cell(v) for v in row.values()] for row in table.slice(0, max_rows).to_pylist()]
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
    rows = table.select(["window_start", "feature", flag]).to_pylist()
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
