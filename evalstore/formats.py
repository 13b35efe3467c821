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
