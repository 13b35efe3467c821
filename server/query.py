"""Run a checked read-only statement on its own cursor, with a row limit and a time limit."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from server.errors import ApiError

#: Rows per Arrow batch while streaming a result.
BATCH_ROWS = 65_536


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None,
    row_limit: int,
    time_limit: float,
) -> pa.Table:
    """Run ``sql`` (already checked) on a fresh cursor of ``con``; return the whole result.

    The cursor is the request's own, so queries run concurrently with each other and with
    ingest (DuckDB's MVCC gives each a consistent snapshot). A statement still running after
    ``time_limit`` seconds is interrupted (408); a result of more than ``row_limit`` rows
    stops streaming and is refused (422) rather than truncated silently.
    """
    cursor = con.cursor()
    timer = threading.Timer(time_limit, cursor.interrupt)
    timer.daemon = True
    timer.start()
    try:
        relation = cursor.sql(sql, params=params or None)
        if relation is None:
            return pa.table({})
        reader = relation.to_arrow_reader(BATCH_ROWS)
        batches, rows = [], 0
        for batch in reader:
            rows += batch.num_rows
            if rows > row_limit:
                raise ApiError(
                    422,
                    "row_limit",
                    f"the result has more than {row_limit} rows (the server's row limit); "
                    "aggregate, filter or add a LIMIT",
                    row_limit=row_limit,
                )
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        raise ApiError(
            408,
            "time_limit",
            f"the query ran longer than the server's time limit of {time_limit:g} s and was "
            "interrupted; narrow it (fewer rows, a shorter time range) or pre-aggregate",
            time_limit=time_limit,
        ) from None
    except duckdb.PermissionException as error:
        raise ApiError(403, "file_access_not_allowed", str(error).strip()) from None
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as error:
        raise ApiError(400, "query_error", str(error).strip()) from None
    except duckdb.InvalidInputException as error:
        raise ApiError(400, "query_error", str(error).strip()) from None
    finally:
        timer.cancel()
        cursor.close()
