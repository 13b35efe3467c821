"""Run SQL calls on a DuckDB file and print their rows as JSON (under DuckDB 1.4 or 2.x).

Usage: ``python bi_run_calls.py FILE CALLS_JSON SETUP_JSON``, where CALLS_JSON maps a name
to a SELECT and SETUP_JSON lists statements to run first. Prints ``{"version": ...,
"results": {name: {"rows": [...]} or {"error": "..."}}}``; rows are sorted and their values
made comparable across DuckDB versions (floats to 10 significant digits, times in UTC ISO
format, UUIDs and intervals as text). Needs only ``duckdb`` (and ``pytz`` under DuckDB 1.4,
whose Python client returns time zone aware timestamps through it).
"""

from __future__ import annotations

import datetime
import decimal
import json
import sys
import uuid
from typing import Any


def comparable(value: Any) -> Any:
    """``value`` in a form equal across DuckDB versions and serialisable as JSON.

    >>> comparable([1.00000000001, decimal.Decimal("0.50"), {"a": uuid.UUID(int=1)}])
    [1.0, 0.5, {'a': '00000000-0000-0000-0000-000000000001'}]
    """
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, decimal.Decimal):
        return float(f"{float(value):.10g}")
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    return value


def run(path: str, calls: dict[str, str], setup: list[str]) -> dict[str, Any]:
    """Run ``setup`` then every call on a read-only connection to ``path`` (one thread)."""
    import duckdb

    con = duckdb.connect(path, read_only=True, config={"threads": 1})
    con.execute("SET TimeZone = 'UTC'")
    for statement in setup:
        con.execute(statement)
    results: dict[str, Any] = {}
    for name, sql in calls.items():
        try:
            rows = con.execute(sql).fetchall()
        except Exception as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        else:
            results[name] = {"rows": sorted((comparable(list(r)) for r in rows), key=json.dumps)}
    con.close()
    return {"version": duckdb.__version__, "results": results}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]))))
