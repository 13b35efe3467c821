"""Install the SQL macros of ``sql/`` into a store, so they persist in its file.

Macros compute the metrics: the Python API, the CLI and the server all call them, and
so can any process that opens the file with plain ``duckdb.connect(path)``. Python
adds what SQL cannot do well: p-values and bootstrap intervals (scipy/numpy, from the
statistics the macros return), multivariate drift (numpy kernels over rows the macros
select), and a numpy fast path of numeric drift's KS D and Wasserstein W1 (the SQL
``drift_numeric`` computes them too). ``common.sql`` holds the helpers every other file
uses and is installed first. Installation is idempotent: the files' combined SHA-256
and the evalstore version are stamped in ``evalstore.meta``; a store whose stamp
matches is left alone, one whose stamp differs gets every file re-run (each
statement is ``CREATE OR REPLACE``).

:func:`call` runs one call of the macros (a family's query over them) and returns its rows
as Arrow, binding the statement once (see its docstring).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalstore import __version__
from evalstore.core.db import transaction

try:  # what DuckDB 2.0's DuckDBPyRelation.to_arrow_table() itself runs (see call())
    from duckdb._seam import DEFAULT_BATCH_SIZE as _BATCH_ROWS
    from duckdb._seam import submit as _submit
except ImportError:  # pragma: no cover - another DuckDB: the relation API, binding twice
    _submit = None

#: Order of installation: the shared helpers (common.sql) first, then the families.
SQL_FILES = (
    "common.sql",
    "volume.sql",
    "drift_numeric.sql",
    "drift.sql",
    "quality.sql",
    "summary.sql",
    "validation.sql",
    "performance.sql",
    "performance_binary.sql",
    "performance_multiclass.sql",
    "performance_regression.sql",
    "estimation.sql",
    "estimation_regression.sql",
    "slices.sql",
    "skew.sql",
    "compare.sql",
    "health.sql",
    "suggest.sql",
    "select.sql",
)


def sql_dir() -> Path:
    """Return the directory holding the ``.sql`` files.

    In a wheel they ship inside the package (``evalstore/sql``); in a source checkout
    they are the top-level ``sql/`` directory.
    """
    packaged = resources.files("evalstore") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "sql"


def sql_sources() -> dict[str, str]:
    """Return ``{file name: SQL text}`` for every macro file, in installation order."""
    directory = sql_dir()
    return {name: (directory / name).read_text(encoding="utf-8") for name in SQL_FILES}


def macros_hash(sources: dict[str, str] | None = None) -> str:
    """SHA-256 over the macro files' names and texts (hex)."""
    digest = hashlib.sha256()
    for name, text in (sources or sql_sources()).items():
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def installed_stamp(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Return the ``macros_*`` entries of ``evalstore.meta``."""
    rows = con.execute(
        "SELECT key, value FROM evalstore.meta WHERE key LIKE 'macros\\_%' ESCAPE '\\'"
    ).fetchall()
    return dict(rows)


def install_macros(con: duckdb.DuckDBPyConnection, force: bool = False) -> bool:
    """Install the macros if their stamp differs from the store's; return whether it did."""
    sources = sql_sources()
    digest = macros_hash(sources)
    stamp = installed_stamp(con)
    if (
        not force
        and stamp.get("macros_hash") == digest
        and stamp.get("macros_version") == (__version__)
    ):
        return False
    with transaction(con):
        for text in sources.values():
            con.execute(text)
        for key, value in (
            ("macros_hash", digest),
            ("macros_version", __version__),
            ("macros_installed_at", datetime.now(UTC).isoformat()),
        ):
            con.execute("INSERT OR REPLACE INTO evalstore.meta VALUES (?, ?)", [key, value])
    return True


def call(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> pa.Table:
    """Run one SELECT ``query`` with bound ``params`` on ``con``; return its rows as Arrow.

    The same table as ``con.sql(query, params=params).to_arrow_table()``, for 14-36% less
    CPU on a family's call over a small store: DuckDB 2.0's ``con.sql`` binds the statement to
    describe the relation it returns, and ``to_arrow_table`` then binds (and plans) it
    again to run it. For a macro call over a few hundred rows the first bind is 15-40% of
    the call (the binder expands every nested macro; benchmarks/bench_call_overhead.py).
    This runs the statement once, through the function ``to_arrow_table`` calls
    (``duckdb._seam.submit``, a private function), and falls back to ``con.sql`` when a
    DuckDB version lacks it or calls it differently (a ``TypeError`` or
    ``AttributeError`` from it: DuckDB's own errors are ``duckdb.Error``). Only for
    queries that read no Python variable by name (a relation registered with
    ``con.register`` is fine): nothing here looks Python names up.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> query = "SELECT x, x * ? AS y FROM range(3) AS t(x) ORDER BY x"
    >>> call(con, query, [2]).to_pylist()
    [{'x': 0, 'y': 0}, {'x': 1, 'y': 2}, {'x': 2, 'y': 4}]
    >>> call(con, query, [2]).equals(con.sql(query, params=[2]).to_arrow_table())
    True
    >>> con.close()
    """
    if _submit is not None:
        values = (
            None
            if params is None
            else dict(params)
            if isinstance(params, Mapping)
            else list(params)
        )
        try:
            return _submit(con, query, values, "arrow", _BATCH_ROWS).arrow_table()
        except (TypeError, AttributeError):  # the private function changed (tested)
            pass  # DuckDB's errors are duckdb.Error; the public path below runs it again
    relation = con.sql(query, params=params)
    return relation.to_arrow_table() if relation is not None else pa.table({})
