"""What DuckDB makes of an incoming batch's columns, and whether they fit the stored ones.

The schema-only half of ingest validation (:mod:`evalstore.core.ingest` plans a batch with
it): the DuckDB type of each incoming column, unusable or case-clashing names, a required
column or type that is missing, and the widenings a stored column accepts. Nothing here
reads or writes rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import count

import duckdb
import pyarrow as pa

from evalstore.core.identifiers import check_column_name, quote
from evalstore.core.layout import INTEGER_TYPES
from evalstore.errors import SchemaConflictError, ValidationError

TIME_TYPES = frozenset(
    {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
    | {"TIMESTAMPTZ_NS"}  # pandas 3 writes tz-aware times in nanoseconds
    | {"DATE", "VARCHAR"}
)
#: Incoming types a stored column accepts besides its own: lossless (or, for integers
#: into DOUBLE, the conversion every dataframe library makes) widenings.
WIDENINGS: dict[str, frozenset[str]] = {
    "SMALLINT": frozenset({"TINYINT", "UTINYINT"}),
    "INTEGER": frozenset({"TINYINT", "SMALLINT", "UTINYINT", "USMALLINT"}),
    "BIGINT": frozenset({"TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER"}),
    "DOUBLE": INTEGER_TYPES | {"FLOAT"},
    "TIMESTAMP": frozenset({"TIMESTAMP_S", "TIMESTAMP_MS"}),
}
NULL_TYPE = '"NULL"'
_probe_names = count()


def duckdb_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    """Return ``{column: DuckDB type}`` DuckDB would give each column of ``schema``.

    The names are checked first (:func:`check_names`): DuckDB silently renames empty
    and case-duplicate column names (``A`` beside ``a`` becomes ``A_1``), so checking
    the names DuckDB reports would let such batches through under invented names.
    """
    check_names(schema.names)
    name = f"__evalstore_probe_{next(_probe_names)}"
    con.register(name, schema.empty_table())
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {quote(name)}").fetchall()
    finally:
        con.unregister(name)
    for column, row in zip(schema.names, rows, strict=True):
        if row[0] != column:
            raise ValidationError(
                f"column {column!r} is read by DuckDB as {row[0]!r} (its name clashes with "
                "another column's); rename it",
                column=column,
            )
    return {row[0]: row[1] for row in rows}


def check_names(types: Iterable[str]) -> None:
    """Reject column names that are unusable or that differ only in letter case."""
    seen: dict[str, str] = {}
    for name in types:
        check_column_name(name)
        if name.lower() in seen:
            raise ValidationError(
                f"columns {seen[name.lower()]!r} and {name!r} differ only in letter case; "
                "SQL identifiers are case-insensitive, rename one of them",
                column=name,
            )
        seen[name.lower()] = name


def require_column(types: Mapping[str, str], column: str, parameter: str) -> str:
    if column not in types:
        raise ValidationError(
            f"missing column {column!r} ({parameter}={column!r}); the batch has columns "
            f"{list(types)}: pass {parameter}= naming the right one",
            column=column,
        )
    return types[column]


def require_type(column: str, actual: str, allowed: frozenset[str], expected: str) -> None:
    if actual not in allowed and not ("DOUBLE" in allowed and actual.startswith("DECIMAL")):
        raise SchemaConflictError(
            f"column {column!r} has type {actual}; expected {expected}", column=column
        )


def fits(stored: str, incoming: str) -> bool:
    """Whether values of DuckDB type ``incoming`` can be stored in a ``stored`` column."""
    return (
        incoming in (stored, NULL_TYPE)
        or incoming in WIDENINGS.get(stored, frozenset())
        or (stored == "DOUBLE" and incoming.startswith("DECIMAL"))
    )
