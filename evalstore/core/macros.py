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
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import duckdb

from evalstore import __version__
from evalstore.core.db import transaction

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
