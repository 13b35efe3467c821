"""Run a checked read-only statement with a row limit, a result-size limit and a time limit."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from server.errors import ApiError
from server.workers import time_limit_error

#: Rows per Arrow batch while streaming a result.
BATCH_ROWS = 65_536


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | Mapping[str, Any] | None,
    row_limit: int,
    time_limit: float | None = None,
    max_result_bytes: int | None = None,
) -> pa.Table:
    """Run ``sql`` (already checked); return the whole result as Arrow.

    With a ``time_limit`` the statement runs on a fresh cursor of ``con`` that is
    interrupted after ``time_limit`` seconds (408). Without one, it runs on ``con``
    itself, which the caller owns and watches (the server's :class:`server.workers.ReadPool`
    runs each request on its own session and interrupts it; the interrupt propagates).

    The result streams in Arrow batches; more than ``row_limit`` rows, or more than
    ``max_result_bytes`` bytes of Arrow buffers, stops it and is refused (422
    ``row_limit`` / ``result_too_large``) rather than truncated silently.
    """
    cursor = con.cursor() if time_limit is not None else con
    timer = None
    if time_limit is not None:
        timer = threading.Timer(time_limit, cursor.interrupt)
        timer.daemon = True
        timer.start()
    try:
        relation = cursor.sql(sql, params=params or None)
        if relation is None:
            return pa.table({})
        reader = relation.to_arrow_reader(BATCH_ROWS)
        batches, rows, size = [], 0, 0
        for batch in reader:
            rows += batch.num_rows
            size += batch.nbytes
            if rows > row_limit:
                raise ApiError(
                    422,
                    "row_limit",
                    f"the result has more than {row_limit} rows (the server's row limit); "
                    "aggregate, filter or add a LIMIT",
                    row_limit=row_limit,
                )
            check_result_size(size, max_result_bytes)
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)
    except duckdb.InterruptException:
        if time_limit is None:
            raise
        raise time_limit_error(time_limit) from None
    except duckdb.PermissionException as error:
        raise ApiError(403, "file_access_not_allowed", str(error).strip()) from None
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as error:
        raise ApiError(400, "query_error", str(error).strip()) from None
    except duckdb.InvalidInputException as error:
        raise ApiError(400, "query_error", str(error).strip()) from None
    finally:
        if timer is not None:
            timer.cancel()
            cursor.close()


def check_result_size(size: int, max_result_bytes: int | None) -> None:
    """Refuse (422 ``result_too_large``) a result of more than ``max_result_bytes`` bytes."""
    if max_result_bytes is not None and size > max_result_bytes:
        raise ApiError(
            422,
            "result_too_large",
            f"the result is larger than {max_result_bytes} bytes (the server's result-size "
            "limit, max_result_bytes); aggregate, select fewer columns, filter or add a LIMIT",
            max_result_bytes=max_result_bytes,
        )
