"""Defence in depth for ``POST /v1/sql``: a DuckDB instance that cannot reach the file system.

DuckDB's ``enable_external_access`` and ``lock_configuration`` are settings of the database
*instance*, shared by every connection and cursor on it; there is no per-cursor switch, and a
second instance of the same file cannot be opened in the same process. So the server locks
the store's own instance when it starts serving:

- ``allowed_directories`` is set to DuckDB's spill directory and the directories an
  embedding program lists (``create_app(store, allowed_directories=[...])``), none by
  default: the BI snapshot is written by a DuckDB instance of its own
  (:mod:`server.snapshot`), so no user-reachable SQL can touch its directory;
- ``enable_external_access = false``: no file or network access anywhere else: no
  ``read_csv('/etc/passwd')``, ``COPY … TO``, ``ATTACH``, ``INSTALL``/``LOAD`` nor
  replacement scans of Python objects or file names;
- ``TimeZone = 'UTC'`` for every cursor, then ``lock_configuration = true``, so no
  statement can change any setting back.

Once locked, *no* code may ``SET`` anything on the instance, the library's included: a
library function that sets a setting per call (even to its current value) fails with
"the configuration has been locked" in a served store. Library code should read the
setting first and only ``SET`` when it differs (the server already sets ``TimeZone`` to
UTC).

evalstore's own work is unaffected: ingest registers Arrow streams explicitly
(``con.register``), the metrics are macros and UDFs, Parquet downloads are written by pyarrow
from Arrow results, and the snapshot streams the store's tables as Arrow record batches
into a separate DuckDB instance that owns the snapshot file.
"""

from __future__ import annotations

import os

import duckdb

from evalstore.core.identifiers import quote_literal


def is_locked(con: duckdb.DuckDBPyConnection) -> bool:
    value = con.execute("SELECT current_setting('lock_configuration')").fetchone()
    return bool(value and value[0] in (True, "true"))


def lock_down(con: duckdb.DuckDBPyConnection, allowed_directories: list[str]) -> None:
    """Disable external access on ``con``'s database instance and lock its configuration.

    ``allowed_directories`` stay readable and writable (absolute paths). Idempotent: an
    instance already locked is left as it is.
    """
    if is_locked(con):
        return
    temp = con.execute("SELECT current_setting('temp_directory')").fetchone()
    directories = [os.path.abspath(d) for d in allowed_directories]
    if temp and temp[0]:
        directories.append(os.path.abspath(str(temp[0])))
    listed = ", ".join(quote_literal(d.rstrip("/") + "/") for d in directories)
    con.execute(f"SET GLOBAL allowed_directories = [{listed}]")
    con.execute("SET GLOBAL enable_external_access = false")
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    con.execute("SET GLOBAL lock_configuration = true")
