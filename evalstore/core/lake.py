"""The lake layout: a model's rows as hive-partitioned Parquet, for engines past one machine.

A model's lake is one directory (``path``) holding one sub-directory per kind of row:

=========================================== ============================================
directory                                   rows (columns as the store's table)
=========================================== ============================================
``kind=features/env=<env>/day=<day>/``      ``<model>.features`` without ``example_key``
``kind=predictions/day=<day>/``             ``<model>.predictions`` without ``example_key``
``kind=labels/day=<day>/``                  ``<model>.labels`` without ``example_key``
                                            and ``superseded_by``
``kind=models/``                            the model's rows of ``evalstore.models``
=========================================== ============================================

``day`` is the UTC calendar date of the row's ``ts`` (``YYYY-MM-DD``; a row without a
``ts`` goes to ``day=__HIVE_DEFAULT_PARTITION__``, the hive convention for NULL, which
DuckDB and Spark both read back as NULL). Partition columns are also written inside the
files (``env``, and ``day`` as a ``DATE``), so a file read alone has every column with
its type; a reader with hive partitioning gets ``kind`` too. Only features have an env
level: predictions are serving rows by definition, and a label belongs to an example
whatever its env.

Labels stay append-only in the lake: a correction is a later row for the same
``example_id`` with a larger ``batch_id``, and an example's current label is the row
with the largest ``batch_id`` (exactly ``<model>.labels_latest``: a labels batch holds
an example at most once). ``superseded_by``, which the store fills in place when a
correction arrives, is left out because files are never rewritten. ``example_key`` (the
MD5 of ``example_id`` as a UUID, a join accelerator of the store) is left out too:
Spark's Parquet reader does not read the UUID type, and a reader joins on ``example_id``.

:func:`export_lake` writes this layout from a store; a service or a Spark job that
writes files of the same names and types is an equally valid source
(:mod:`evalstore.engines.spark` reads either). docs/scaling.md states the contract.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from evalstore.core.identifiers import quote, quote_literal
from evalstore.core.layout import model_columns, model_relation
from evalstore.errors import InvalidParameterError

#: The kinds of a lake, in export order, with their partition columns below ``kind=``.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "features": ("env", "day"),
    "predictions": ("day",),
    "labels": ("day",),
    "models": (),
}
#: Store columns not written to the lake (see the module docstring).
LEFT_OUT: dict[str, frozenset[str]] = {
    "features": frozenset({"example_key"}),
    "predictions": frozenset({"example_key"}),
    "labels": frozenset({"example_key", "superseded_by"}),
    "models": frozenset(),
}
#: The partition value of a NULL, as hive (and Spark and DuckDB) write it.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def kind_dir(path: str | Path, kind: str) -> Path:
    """The directory of one kind of rows in the lake at ``path``."""
    if kind not in PARTITIONS:
        raise InvalidParameterError(f"kind={kind!r} is not one of {tuple(PARTITIONS)}")
    return Path(path) / f"kind={kind}"


def lake_glob(path: str | Path, kind: str) -> str:
    """The glob of one kind's Parquet files, for ``read_parquet`` or Spark."""
    return str(kind_dir(path, kind) / "**" / "*.parquet")


def lake_columns(con: duckdb.DuckDBPyConnection, model: str, kind: str) -> dict[str, str]:
    """``{column: duckdb type}`` a lake's ``kind`` files hold for ``model``, in table
    order, partition columns included (``day`` is added after the table's columns)."""
    if kind == "models":
        rows = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'evalstore' "
            "AND table_name = 'models' ORDER BY column_index"
        ).fetchall()
        return dict(rows)
    columns = {
        name: kind_
        for name, kind_ in model_columns(con, model, kind).items()
        if name not in LEFT_OUT[kind]
    }
    return {**columns, "day": "DATE"}


@dataclass(frozen=True)
class ExportedKind:
    """What :func:`export_lake` wrote for one kind: its directory, rows and files."""

    kind: str
    directory: str
    rows: int
    files: int


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(
            f"path={str(path)!r} is a file; the lake is a directory: pass a directory path"
        )
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise InvalidParameterError(
                f"path={str(path)!r} is not empty; pass overwrite=True (--overwrite) to "
                "replace the lake there, or choose an empty or new directory"
            )
        stray = [p.name for p in path.iterdir() if not p.name.startswith("kind=")]
        if stray:
            raise InvalidParameterError(
                f"path={str(path)!r} holds {sorted(stray)[:3]}, which is not a lake "
                "(kind=... directories); overwrite=True replaces only a lake: choose "
                "another directory"
            )


def _select(con: duckdb.DuckDBPyConnection, model: str, kind: str) -> str:
    """The SELECT of one kind's rows, with ``day`` for the partitioned kinds."""
    if kind == "models":
        names = ", ".join(quote(c) for c in lake_columns(con, model, kind))
        return f"SELECT {names} FROM evalstore.models WHERE model = {quote_literal(model)}"
    columns = [c for c in lake_columns(con, model, kind) if c != "day"]
    names = ", ".join(quote(c) for c in columns)
    # the store's session time zone is UTC, so the DATE of ts is its UTC day
    day = "CAST(timezone('UTC', ts) AS DATE) AS day"
    return f"SELECT {names}, {day} FROM {model_relation(con, model, kind)}"


def export_lake(
    con: duckdb.DuckDBPyConnection, model: str, path: str | Path, overwrite: bool = False
) -> list[ExportedKind]:
    """Write ``model``'s features, predictions, labels and registry rows to the lake at
    ``path`` (a local directory; see the module docstring for the layout).

    The directory must be empty or new; ``overwrite=True`` replaces a lake already there
    (only ``kind=...`` directories: any other file makes it refuse). The rows are read
    in one snapshot (the caller holds the store's lock and a transaction). Returns what
    was written per kind.
    """
    if not isinstance(path, str | Path) or not str(path):
        raise InvalidParameterError(f"path={path!r}: give the lake's directory as a path")
    for kind in ("features", "predictions", "labels"):
        # hive readers (DuckDB, Spark) match names without case: a feature Day is day
        clash = [c for c in model_columns(con, model, kind) if c.lower() in ("day", "kind")]
        if clash:
            raise InvalidParameterError(
                f"model {model!r}'s {kind} have a column named {clash[0]!r}, the name of a "
                f"lake partition (kind={kind}/.../day=...), which would replace it: log "
                "that feature under another name to export the model to a lake"
            )
    root = Path(path)
    _check_target(root, overwrite)
    for child in root.iterdir() if root.is_dir() else ():
        shutil.rmtree(child)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, partitions in PARTITIONS.items():
        target = kind_dir(root, kind)
        select = _select(con, model, kind)
        rows = con.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0]
        if partitions:
            options = (
                f"FORMAT parquet, PARTITION_BY ({', '.join(partitions)}), "
                "WRITE_PARTITION_COLUMNS true"
            )
            if rows:
                con.execute(f"COPY ({select}) TO {quote_literal(str(target))} ({options})")
            else:  # an empty kind gets one empty file in NULL partitions: readers see
                # the kind and its columns (a glob that matches nothing is an error)
                empty = target.joinpath(*(f"{p}={NULL_PARTITION}" for p in partitions))
                empty.mkdir(parents=True, exist_ok=True)
                file = quote_literal(str(empty / "data_0.parquet"))
                con.execute(
                    f"COPY (SELECT * FROM ({select}) WHERE false) TO {file} (FORMAT parquet)"
                )
        else:
            target.mkdir(parents=True, exist_ok=True)
            file = quote_literal(str(target / f"{kind}.parquet"))
            con.execute(f"COPY ({select}) TO {file} (FORMAT parquet)")
        files = sum(1 for _ in target.rglob("*.parquet"))
        written.append(ExportedKind(kind, str(target), rows, files))
    return written
