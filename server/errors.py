"""Errors as JSON: every rejection is a 4xx whose body says what went wrong and what to do.

Bodies have the shape ``{"error": code, "detail": message, ...}``; ingest validation errors
add the offending ``column``, the number of ``rows`` and a few ``examples``. FastAPI's own
request validation answers in the same shape (422 ``invalid_request``), and so does anything
unexpected (500 ``internal_error``): that last one is answered by :class:`Unexpected`, inside
the app, so the connection stays open for the client's next request (Starlette's outer
error middleware re-raises to the server, which then drops a keep-alive connection).
"""

from __future__ import annotations

import logging
from typing import Any

import duckdb
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from evalstore import errors as E
from evalstore.core.formats import json_value

log = logging.getLogger("evalstore.server")


class ApiError(StarletteHTTPException):
    """A request the server refuses: HTTP ``status``, a short ``code`` and a ``detail``.

    An HTTP exception to Starlette and FastAPI, so one raised while FastAPI reads a request
    body (the body size limit of :mod:`server.limits`) keeps its status instead of becoming
    FastAPI's generic 400 "error parsing the body".
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, detail, headers)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra

    def __str__(self) -> str:
        return self.detail


#: evalstore exception -> (HTTP status, error code); the first matching class wins.
STATUS = (
    (E.UnknownModelError, 404, "unknown_model"),
    (E.DuplicateIdError, 409, "duplicate_id"),
    (E.SchemaConflictError, 409, "schema_conflict"),
    (E.ModelConflictError, 409, "model_conflict"),
    (E.ReadOnlyError, 409, "read_only"),
    (E.ValidationError, 422, "invalid_batch"),
    (E.InvalidParameterError, 422, "invalid_parameter"),
    (E.StoreVersionError, 409, "store_version"),
    *(((E.SnapshotError, 404, "snapshot"),) if hasattr(E, "SnapshotError") else ()),
    (E.StoreInUseError, 409, "store_in_use"),
    (E.QueryError, 400, "query_error"),
    (E.EvalstoreError, 400, "bad_request"),
)


def shutting_down(retry_after: int, detail: str = "retry against its replacement") -> ApiError:
    """The 503 of a request the server refuses or stops because it is shutting down."""
    return ApiError(
        503,
        "shutting_down",
        f"the server is shutting down; {detail}",
        headers={"Retry-After": str(retry_after)},
    )


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **{k: json_value(v) for k, v in extra.items()}}


def from_evalstore(error: E.EvalstoreError) -> ApiError:
    """The HTTP form of a library error (status by class, the library's own message)."""
    for cls, status, code in STATUS:
        if isinstance(error, cls):
            extra: dict[str, Any] = {}
            if isinstance(error, E.ValidationError):
                extra = {"column": error.column, "rows": error.rows, "examples": error.examples}
            return ApiError(status, code, str(error), **extra)
    raise AssertionError("unreachable: EvalstoreError is last in STATUS")


def error_response(error: Exception) -> JSONResponse | None:
    """The JSON response to a refusal (:class:`ApiError`), a library error or a DuckDB
    error, as the app's exception handlers give it; None for any other exception."""
    if isinstance(error, E.EvalstoreError):
        error = from_evalstore(error)
    elif isinstance(error, duckdb.Error):
        error = ApiError(400, "query_error", str(error).strip())
    if not isinstance(error, ApiError):
        return None
    return JSONResponse(
        error_body(error.code, error.detail, **error.extra),
        status_code=error.status,
        headers=error.headers,
    )


def install(app: FastAPI) -> None:
    """Register the handlers turning exceptions into JSON error responses."""

    @app.exception_handler(ApiError)
    @app.exception_handler(E.EvalstoreError)
    @app.exception_handler(duckdb.Error)
    async def known_error(request: Request, error: Exception) -> JSONResponse:
        response = error_response(error)
        assert response is not None  # (registered for these classes only)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "; ".join(problems) or "invalid request"),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(error.detail)),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    app.add_middleware(Unexpected)


class Unexpected:
    """ASGI middleware answering an unhandled exception with a JSON 500, and not re-raising.

    Installed innermost (by :func:`install`, before any other middleware), so the request
    metrics still see the 500. Starlette's own handler for ``Exception`` would answer and then
    re-raise to the server, which closes the connection: a client's next request on the same
    keep-alive connection would fail too. A response already started cannot be replaced;
    then the error is only logged. A client that disconnected before its body was read
    (``ClientDisconnect``) gets no answer and is logged at INFO, not as an error.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            # the client closed the connection before its body was read: nobody to answer,
            # nothing was written (the body never reached the writer)
            log.info("client disconnected during %s %s", scope.get("method"), scope.get("path"))
        except Exception as error:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                return
            response = JSONResponse(
                error_body("internal_error", f"{type(error).__name__}: {error}"), status_code=500
            )
            await response(scope, receive, send)
