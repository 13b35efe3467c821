"""Result rows in and out of the long table ``evalstore.metric_history``.

One shared long table holds the rows of every persisted family: the columns the
families share keep their names (``window_start``, ``version``, ``value``,
``threshold``, ``n_analysis``, ...), ``feature`` is stored as ``subject``, ``method``
(drift, quality) and ``metric`` (performance) as ``metric``, ``drifted`` as
``flagged``, and performance's slice columns (``by=``) go into the ``slices`` map, with
a readable ``subject`` (``'region=north, age=[30, 40)'``). ``row_index`` is the row's
position inside its window, so a window's rows come back in the order the family gave
them, and the call's Arrow schema (``metric_history_calls.result_schema``) gives every
column back its name, position and type: a read-back table equals the fresh one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.identifiers import quote
from evalstore.monitors.fingerprints import Watermark

#: Result columns stored under another name.
RENAMED = {"feature": "subject", "method": "metric", "drifted": "flagged"}
#: Result columns stored under their own name.
SHARED = (
    "window_start", "window_end", "version", "kind", "metric", "class", "variant", "value",
    "p_value", "threshold", "threshold_low", "threshold_source", "ci_low", "ci_high",
    "n_reference", "n_analysis", "count", "n", "n_excluded", "predictions", "labeled",
    "label_coverage", "labels_complete", "labels_due", "reason",
)  # fmt: skip
#: Key columns of a call in the history tables.
CALL_KEY = "model = ? AND family = ? AND params_hash = ?"
_names = itertools.count()


def slice_columns(schema: pa.Schema) -> list[str]:
    """The result columns that are neither shared nor renamed: performance's ``by`` keys."""
    return [name for name in schema.names if name not in RENAMED and name not in SHARED]


def storage_expression(name: str, schema: pa.Schema) -> str:
    """SQL reading result column ``name`` back from ``evalstore.metric_history``."""
    if name in RENAMED:
        return f"{quote(RENAMED[name])} AS {quote(name)}"
    if name in SHARED:
        return quote(name)
    return f"slices[{_literal(name)}] AS {quote(name)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    table: pa.Table,
    mark: Watermark,
    computed_at: datetime,
) -> int:
    """Insert the rows of a family's result ``table`` for the call ``key`` (model,
    family, params_hash); returns how many. The caller holds the transaction and has
    deleted the rows these replace."""
    if table.num_rows == 0:
        return 0
    ordinal = f"evalstore_history_ordinal_{next(_names)}"
    source = table.append_column(ordinal, pa.array(range(table.num_rows), pa.int64()))
    slices = slice_columns(table.schema)
    targets, values = [], []
    for name in table.schema.names:
        if name in RENAMED or name in SHARED:
            targets.append(quote(RENAMED.get(name, name)))
            values.append(quote(name))
    if slices:
        names = ", ".join(_literal(s) for s in slices)
        cells = ", ".join(f"CAST({quote(s)} AS VARCHAR)" for s in slices)
        texts = " || ', ' || ".join(
            f"{_literal(s + '=')} || coalesce(CAST({quote(s)} AS VARCHAR), 'NULL')" for s in slices
        )
        targets += ["slices", "subject"]
        values += [f"map([{names}], [{cells}])", texts]
    name = f"evalstore_history_rows_{next(_names)}"
    con.register(name, source)
    try:
        con.execute(
            f"""
            INSERT INTO evalstore.metric_history (
                model, family, params_hash, row_index, {", ".join(targets)},
                features_batch, predictions_batch, labels_batch, computed_at)
            SELECT ?, ?, ?,
                CAST(row_number() OVER (PARTITION BY window_start ORDER BY {quote(ordinal)})
                     - 1 AS INTEGER),
                {", ".join(values)}, ?, ?, ?, ?
            FROM {quote(name)}
            """,
            [*key, *mark.as_list(), computed_at],
        )
    finally:
        con.unregister(name)
    return table.num_rows


def delete_windows(
    con: duckdb.DuckDBPyConnection, key: Sequence[str], starts: Iterable[datetime] | None
) -> None:
    """Delete the stored rows and window records of the call ``key``: of the windows
    starting at ``starts``, or all of them (``None``)."""
    for table in ("metric_history", "metric_history_windows"):
        if starts is None:
            con.execute(f"DELETE FROM evalstore.{table} WHERE {CALL_KEY}", list(key))
        else:
            chosen = sorted(starts)
            if chosen:
                con.execute(
                    f"DELETE FROM evalstore.{table} WHERE {CALL_KEY} "
                    "AND list_contains(?::TIMESTAMPTZ[], window_start)",
                    [*key, chosen],
                )


def insert_windows(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    windows: Iterable[tuple[datetime, tuple[int, int]]],
    width: str,
    computed_at: datetime,
) -> None:
    """Record the windows ``(start, (feature rows, predictions))`` of the call ``key``."""
    rows = [[*key, start, f, p, computed_at] for start, (f, p) in windows]
    if rows:
        con.executemany(
            "INSERT INTO evalstore.metric_history_windows VALUES "
            f"(?, ?, ?, ?, evalstore.window_end(CAST(? AS TIMESTAMPTZ), {_literal(width)}), "
            "?, ?, ?)",
            [[*r[:4], r[3], *r[4:]] for r in rows],
        )


def read_rows(con: duckdb.DuckDBPyConnection, key: Sequence[str], schema: pa.Schema) -> pa.Table:
    """Every stored row of the call ``key`` as the family returned it: columns, order
    and types of ``schema``, rows in window then ``row_index`` order."""
    columns = ", ".join(storage_expression(name, schema) for name in schema.names)
    table = con.sql(
        f"SELECT {columns} FROM evalstore.metric_history WHERE {CALL_KEY} "
        "ORDER BY window_start, row_index",
        params=list(key),
    ).to_arrow_table()
    return table.cast(schema)


def serialize_schema(schema: pa.Schema) -> bytes:
    """The Arrow IPC bytes of ``schema`` (what ``result_schema`` stores)."""
    return schema.serialize().to_pybytes()


def deserialize_schema(data: Any) -> pa.Schema:
    """The schema :func:`serialize_schema` stored."""
    return pa.ipc.read_schema(pa.py_buffer(bytes(data)))
