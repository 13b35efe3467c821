"""Read routes: ``POST /v1/sql`` and the metric families ``GET /v1/models/{model}/{family}``.

Each family is one call of the library (``Store.<method>(model, **query parameters)``); the
result table is answered as JSON records, CSV or Arrow IPC by the ``Accept`` header.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from server.auth import require
from server.dispatch import call, convert, store_method
from server.errors import ApiError
from server.formats import json_result, negotiate, render
from server.query import check_result_size, run_query
from server.sql_guard import check_query

router = APIRouter()
read = [Depends(require("read"))]

#: ``GET /v1/models/{model}/{family}`` -> the Store method it calls.
FAMILIES = {
    "drift": "drift",
    "multivariate_drift": "multivariate_drift",
    "quality": "quality",
    "summary_stats": "summary_stats",
    "validate": "validate",
    "schema": "schema",
    "performance": "performance",
    "slices": "worst_slices",
    "skew": "skew",
    "skew_summary": "skew_summary",
    "compare": "compare",
    "health": "health",
}
RESULT_DOC = {
    200: {
        "description": "JSON records (default), CSV or Arrow IPC, by the Accept header.",
        "content": {
            "application/json": {},
            "text/csv": {},
            "application/vnd.apache.arrow.stream": {},
        },
    }
}


class SqlRequest(BaseModel):
    """The body of ``POST /v1/sql``."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(description="One SELECT (or WITH … SELECT) statement.")
    params: list[Any] | dict[str, Any] | None = Field(
        None, description="Values bound to ? / $1 (a list) or $name (an object) placeholders."
    )
    dialect: str | None = Field(
        None, description="Dialect of the text (postgres, mysql, bigquery, snowflake, …)."
    )


@router.post("/v1/sql", tags=["query"], dependencies=read, responses=RESULT_DOC)
async def sql(
    request: Request,
    body: SqlRequest,
    accept: str | None = Header(None),
    format: str | None = Query(None, description="json, csv or arrow; overrides Accept."),
) -> Response:
    """Run one read-only statement with bound parameters, within the row and time limits."""
    settings = request.app.state.settings
    media = negotiate(accept, fmt=format)
    if len(body.sql) > settings.max_sql_chars:
        raise ApiError(
            413,
            "sql_too_long",
            f"the SQL text has {len(body.sql)} characters; the limit is {settings.max_sql_chars}",
        )

    def work(session: Any) -> Response:
        table = run_query(
            session.connection,
            check_query(body.sql, body.dialect, session.connection),
            body.params,
            settings.row_limit,
            max_result_bytes=settings.max_result_bytes,
        )
        return render(table, media)

    # a read worker of its own, on a session the time limit interrupts (server.workers)
    return await request.app.state.reads.on_session(request.app.state.store, work)


@router.get(
    "/v1/models/{model}/{family}", tags=["metrics"], dependencies=read, responses=RESULT_DOC
)
async def family(
    request: Request,
    model: str,
    family: str,
    accept: str | None = Header(None),
    format: str | None = Query(None, description="json, csv or arrow; overrides Accept."),
) -> Response:
    """A metric family of ``model``: ``Store.<method>(model, **query parameters)``, on a
    :meth:`~evalstore.Store.session` (concurrent with ingest and other requests).

    Families: drift, multivariate_drift, quality, summary_stats, validate, schema, performance,
    slices (``worst_slices``), skew, skew_summary, compare, health. Query parameters are the
    Python keyword arguments (``window=1 day``, ``features=a,b``, ``reference={"dataset":…}``).
    """
    name = FAMILIES.get(family)
    if name is None:
        raise ApiError(
            404,
            "unknown_family",
            f"there is no metric family {family!r}; use one of {', '.join(FAMILIES)}",
        )
    media = negotiate(accept, fmt=format)
    pairs = request.query_params.multi_items()
    if any(key == "persist" for key, _ in pairs):
        # a GET (and a read token) never writes: persisted series are read with
        # GET /v1/models/{model}/history; monitors persist their own calls
        raise ApiError(
            422,
            "invalid_parameter",
            "persist is not accepted over HTTP (a read never writes); read stored series "
            f"with GET /v1/models/{model}/history, or define a monitor, which persists its "
            "calls",
        )

    def work(session: Any) -> Response:
        # on a session of its own: runs beside ingest and other requests, not in turn
        method = store_method(session, name, f"the {family} family")
        result = call(method, model, **convert(method, pairs))
        return respond(request, result, media, model, family)

    return await request.app.state.reads.on_session(request.app.state.store, work)


def respond(request: Request, result: Any, media: str, model: str, family: str) -> Response:
    """A library result as a response (a table within ``Settings.max_result_bytes``)."""
    if isinstance(result, pa.Table):
        check_result_size(result.nbytes, request.app.state.settings.max_result_bytes)
        request.app.state.monitor.observe_result(model, family, result)
        return render(result, media, filename=f"{model}_{family}")
    return JSONResponse(json_result(result))
