"""Soak: every sqlglot dialect x every function name, through the /v1/sql gate.

Each probe is ``SELECT <function>('x')`` and ``SELECT * FROM <function>('x')`` written in
one dialect, for every function DuckDB or sqlglot knows. :func:`server.sql_guard.check_query`
must either refuse it with a 400 :class:`~server.errors.ApiError`, or return DuckDB SQL
whose every function is allow-listed and whose every table is a plain name (never a
``FROM '<path>'``). Anything else (another exception, a disallowed function or a path in
accepted SQL) is an error. Prints one row per dialect and a total::

    .venv/bin/python benchmarks/soak_sql_fuzz.py            # all dialects x all functions
    .venv/bin/python benchmarks/soak_sql_fuzz.py --sample 500 --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter

import duckdb
import sqlglot
from sqlglot import exp

from evalstore.core import sql_allowlist, sql_policy
from server.errors import ApiError
from server.sql_guard import DIALECTS, check_query

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH_LIKE = re.compile(r"[./\\:~*?]")


def function_names() -> list[str]:
    """Every function name DuckDB (this build) or sqlglot knows, sorted."""
    with duckdb.connect() as con:
        names = {
            r[0] for r in con.execute("SELECT function_name FROM duckdb_functions()").fetchall()
        }
    for function in exp.ALL_FUNCTIONS:
        names.update(function.sql_names())
    return sorted(n for n in names if _NAME.fullmatch(n))


def probes(names: list[str]) -> list[tuple[str, str]]:
    """``(dialect, sql)`` for every dialect x name, scalar and table-function call."""
    return [
        (dialect, sql)
        for dialect in DIALECTS
        for name in names
        for sql in (f"SELECT {name}('x')", f"SELECT * FROM {name}('x')")
    ]


def violations(sql: str, con: duckdb.DuckDBPyConnection) -> list[str]:
    """What in accepted DuckDB ``sql`` the allow-list should have refused.

    An independent walk of DuckDB's parse (on ``con``): every function call must be
    allow-listed (or a store macro or UDF), no table name may look like a path.
    """
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        return [f"DuckDB cannot parse accepted SQL: {tree.get('error_message')}"]
    allowed = (
        sql_allowlist.ALLOWED_FUNCTIONS
        | sql_allowlist.ALLOWED_TABLE_FUNCTIONS
        | sql_allowlist.STORE_UDFS
        | {f"evalstore.{m}" for m in sql_policy.installed_macros()}
    )
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("class") in ("FUNCTION", "WINDOW"):
                schema = node.get("schema") or ""
                name = (f"{schema}." if schema == "evalstore" else "") + node["function_name"]
                if name.lower() not in allowed:
                    found.append(f"function {name}")
            if node.get("type") == "BASE_TABLE" and _PATH_LIKE.search(node["table_name"]):
                found.append(f"table {node['table_name']!r}")
            stack.extend(node.values())
    return found


def run(cases: list[tuple[str, str]]) -> tuple[dict[str, Counter], list[str]]:
    """Counts per dialect (refused, accepted, errors) and the error descriptions."""
    counts: dict[str, Counter] = {}
    errors: list[str] = []
    with duckdb.connect() as con:
        for dialect, sql in cases:
            _probe(dialect, sql, con, counts.setdefault(dialect, Counter()), errors)
    return counts, errors


def _probe(
    dialect: str, sql: str, con: duckdb.DuckDBPyConnection, tally: Counter, errors: list[str]
) -> None:
    """Run one probe through the gate and count it as refused, accepted or an error."""
    tally["probes"] += 1
    try:
        checked = check_query(sql, dialect)
    except ApiError as error:
        tally["refused" if error.status_code == 400 else "errors"] += 1
        if error.status_code != 400:
            errors.append(f"{dialect}: {sql}: status {error.status_code}")
        return
    except Exception as error:  # the gate must never raise anything else
        tally["errors"] += 1
        errors.append(f"{dialect}: {sql}: {type(error).__name__}: {error}")
        return
    bad = violations(checked, con)
    tally["errors" if bad else "accepted"] += 1
    if bad:
        errors.append(f"{dialect}: {sql} -> {checked}: {', '.join(bad)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0, help="probes to draw (0: all)")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    cases = probes(function_names())
    if args.sample:
        cases = random.Random(args.seed).sample(cases, min(args.sample, len(cases)))
    started = time.perf_counter()
    counts, errors = run(cases)
    seconds = time.perf_counter() - started
    print(f"{'dialect':<14}{'probes':>8}{'refused':>9}{'accepted':>10}{'errors':>8}")
    total: Counter = Counter()
    for dialect, tally in sorted(counts.items()):
        total.update(tally)
        print(
            f"{dialect:<14}{tally['probes']:>8}{tally['refused']:>9}{tally['accepted']:>10}"
            f"{tally['errors']:>8}"
        )
    print(
        f"{'total':<14}{total['probes']:>8}{total['refused']:>9}{total['accepted']:>10}"
        f"{total['errors']:>8}   ({seconds:.1f} s, {duckdb.__version__=}, {sqlglot.__version__=})"
    )
    for line in errors[:50]:
        print("ERROR", line)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
