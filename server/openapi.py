"""The error side of ``/openapi.json``: every status an operation can answer, one body shape.

FastAPI describes the successful answers from the routes; :func:`install` completes the
description when it is first built:

- every error status an operation can answer is declared with the store's error body
  (``components.schemas.Error``: ``{"error": code, "detail": message, ...}``), including
  422 for FastAPI's own request validation (answered in that shape by
  :mod:`server.errors`, so FastAPI's ``HTTPValidationError`` schema is dropped);
- the statuses come from the route's traits (a bearer token needed: 401, a write token:
  403; a request body or parameters: 422; an ``Accept`` header: 406; any route: 413, the
  body size limit of :mod:`server.limits`) plus
  :data:`STATUSES`, what the route's own code and the library calls behind it can answer;
- with tokens configured, a ``bearer`` security scheme and each operation's requirement.

``tests/server/test_openapi_fuzz.py`` checks with Schemathesis that the server answers nothing
else, and every body as declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

ERROR_REF = "#/components/schemas/Error"
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Why the request was refused, and what to do about it.",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {
            "type": "string",
            "description": "A short, stable code (e.g. unknown_model, invalid_batch).",
        },
        "detail": {"type": "string", "description": "What went wrong and what to do."},
        "column": {
            "type": ["string", "null"],
            "description": "Ingest errors: the offending column.",
        },
        "rows": {
            "type": ["integer", "null"],
            "description": "Ingest errors: how many rows are at fault, when known.",
        },
        "examples": {
            "type": "array",
            "description": "Ingest errors: up to five offending values.",
        },
    },
    "additionalProperties": True,
}

#: What each error status means on this server, with the ``error`` codes it carries.
DESCRIPTIONS = {
    400: "The SQL or an expression was refused or failed in the engine (`query_error`, "
    "`sql_*` codes), or another store error (`bad_request`).",
    401: "No bearer token, or one this server does not accept (`unauthenticated`, "
    "`invalid_token`).",
    403: "A read token asked for a write (`forbidden`), the query reached for a file "
    "(`file_access_not_allowed`), a command channel over HTTP (`command_channel_refused`) "
    "or a webhook host outside the server's policy (`webhook_not_allowed`).",
    404: "Unknown model, version, snapshot, family, monitor, alert or channel, or a call this "
    "evalstore lacks (`unknown_model`, `snapshot`, `unknown_family`, `unknown_monitor`, "
    "`unknown_alert`, `unknown_channel`, `not_available`).",
    406: "The `Accept` header or `format=` asks for a media type this route does not offer "
    "(`unsupported_format`).",
    408: "The request ran past the server's time limit and was interrupted (`time_limit`).",
    409: "A conflict with what the store holds: duplicate ids, a column's type, a model's "
    "registration, a read-only, newer or busy store (`duplicate_id`, `schema_conflict`, "
    "`model_conflict`, `read_only`, `store_version`, `store_in_use`).",
    413: "The body is over the route's limit (`body_too_large`: every route, chunked bodies "
    "too), or the SQL text is too long (`sql_too_long`).",
    415: "An ingest body in a media type the server cannot read (`unsupported_media_type`).",
    422: "Invalid parameters, body or batch (`invalid_request`, `invalid_parameter`, "
    "`unknown_parameter`, `invalid_batch`, `invalid_json`, `invalid_arrow`, `empty_body`, "
    "`empty_batch`), or a result over the row or size limit (`row_limit`, "
    "`result_too_large`); ingest errors name the `column` and count the `rows`.",
    503: "Every read worker is busy and the queue is full (`busy`), or the server is "
    "shutting down (`shutting_down`, `interrupted`): retry after `Retry-After` seconds.",
}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    503: {
        "Retry-After": {
            "schema": {"type": "string"},
            "description": "Seconds to wait before retrying.",
        }
    },
}

#: Errors of the library call behind a route (:data:`server.errors.STATUS`): a refused
#: expression or engine error 400, unknown model 404, conflicts 409, invalid arguments 422.
LIBRARY = (400, 404, 409, 422)
#: Reads on the bounded read pool (:mod:`server.workers`): time limit 408, pool full 503.
POOLED = (408, 503)
#: Statuses an operation can answer beyond those its traits imply (see :func:`statuses`).
STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/healthz"): (),
    ("get", "/metrics"): (),
    ("get", "/v1/models"): (404, 422),
    ("post", "/v1/models/{model}/versions"): LIBRARY,
    ("post", "/v1/models/{model}/features"): (*LIBRARY, 415),
    ("post", "/v1/models/{model}/predictions"): (*LIBRARY, 415),
    ("post", "/v1/models/{model}/labels"): (*LIBRARY, 415),
    ("get", "/v1/models/{model}/suggestions"): (*LIBRARY, *POOLED),
    ("get", "/v1/models/{model}/requests"): LIBRARY,
    ("post", "/v1/models/{model}/requests/cancel"): LIBRARY,
    ("post", "/v1/models/{model}/selections"): (*LIBRARY, *POOLED),
    ("post", "/v1/models/{model}/snapshots"): LIBRARY,
    ("get", "/v1/snapshots"): LIBRARY,
    ("get", "/v1/snapshots/{name}"): (*LIBRARY, *POOLED),
    ("post", "/v1/sql"): (400, 403, 422, *POOLED),
    ("get", "/v1/models/{model}/{family}"): (*LIBRARY, *POOLED),
    ("get", "/v1/models/{model}/monitors"): LIBRARY,
    ("post", "/v1/models/{model}/monitors"): LIBRARY,
    ("post", "/v1/models/{model}/monitors/run"): (*LIBRARY, 503),
    ("post", "/v1/models/{model}/monitors/backtest"): (*LIBRARY, *POOLED),
    ("get", "/v1/models/{model}/monitors/{name}"): LIBRARY,
    ("patch", "/v1/models/{model}/monitors/{name}"): LIBRARY,
    ("delete", "/v1/models/{model}/monitors/{name}"): LIBRARY,
    ("post", "/v1/models/{model}/monitors/{name}/backtest"): (*LIBRARY, *POOLED),
    ("get", "/v1/alerts"): LIBRARY,
    ("post", "/v1/alerts/{alert_id}/acknowledge"): LIBRARY,
    ("post", "/v1/alerts/{alert_id}/silence"): LIBRARY,
    ("get", "/v1/channels"): LIBRARY,
    ("post", "/v1/channels"): (*LIBRARY, 403),
    ("delete", "/v1/channels/{name}"): (*LIBRARY, 403),
}
#: Routes missing from :data:`STATUSES` are assumed to call the library.
DEFAULT = LIBRARY
#: Routes that ask for a write token in their own code (not as a dependency): suggestions
#: record label requests unless ``record=false``.
WRITES_INSIDE = frozenset({("get", "/v1/models/{model}/suggestions")})


def error_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of an error ``status`` (the store's error body)."""
    response: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, "Refused; see `error` and `detail`."),
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def scope_of(route: APIRoute) -> str | None:
    """The token scope ``route`` requires (``read``/``write``), from its dependencies."""
    scopes = {
        getattr(dependency.call, "scope", None) for dependency in route.dependant.dependencies
    }
    return "write" if "write" in scopes else "read" if "read" in scopes else None


def statuses(route: APIRoute, method: str, operation: dict[str, Any], auth: bool) -> set[int]:
    """Every error status ``operation`` (``method`` of ``route``) can answer.

    ``auth``: whether the server checks tokens (401 and 403 are declared only then).
    """
    key = (method, route.path_format)
    found = set(STATUSES.get(key, DEFAULT)) | {413}  # server.limits: a body on any route
    scope = "write" if key in WRITES_INSIDE else scope_of(route)
    if auth and scope is not None:
        found.add(401)
        if scope == "write":
            found.add(403)
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "header" and p.get("name") == "accept" for p in parameters):
        found.add(406)
    if "requestBody" in operation:
        found.add(422)
    if parameters:
        found.add(422)
    return found


def describe(schema: dict[str, Any], app: FastAPI) -> None:
    """Complete ``schema`` (FastAPI's description of ``app``) in place; see the module doc."""
    auth = app.state.settings.tokens is not None
    routes = {
        (method.lower(), route.path_format): route
        for route in api_routes(app.routes)
        for method in route.methods
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            route = routes.get((method, path))
            if route is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in statuses(route, method, operation, auth):
                responses[str(status)] = error_response(status)
            if auth and scope_of(route) is not None:
                operation["security"] = [{"bearer": []}]
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    if auth:
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from the server's --tokens file (scope read or write).",
            }
        }


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The API routes among ``routes``, also inside included routers.

    Newer FastAPI versions keep an included router as one entry (``original_router``)
    instead of copying its routes into the app's list; the routers here have no prefix.
    """
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        router = getattr(route, "original_router", None)
        if router is not None:
            yield from api_routes(router.routes)


def install(app: FastAPI) -> None:
    """Have ``app.openapi()`` return the completed description (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            describe(build(), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
