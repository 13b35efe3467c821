"""The ingest routes' fast path: ``POST /v1/models/{model}/features|predictions|labels``
answered by a plain ASGI handler when the server has a group commit.

A service logging one example per request spends most of the server's CPU in the web
framework, not in evalstore: FastAPI's routing, dependency injection, parameter
validation and exception handling cost about 1 ms of CPU per request on this machine.
:class:`FastIngest` sits inside the app's middlewares (the request metrics, the body
limit and the JSON 500 of :class:`server.errors.Unexpected` apply to it unchanged) and in
front of FastAPI's router. For a POST to one of the three ingest paths it does what the
route does, with the route's own pieces:

- the route's dependencies (the bearer-token check, :func:`server.auth.require`), called
  with the request as FastAPI calls them, first;
- the route's query parameters, read from FastAPI's own declaration of them
  (``APIRoute.dependant``: names, defaults), and turned into ``Store.log_*`` options by
  :func:`server.routes_store.ingest_options`, as the route does;
- the body read and limited as the route reads it, parsed and submitted to the group
  commit by :func:`server.routes_store.submit`, the route's own code;
- errors answered by :func:`server.errors.error_response`, the app's exception handlers'
  code; the receipt rendered by the same ``JSONResponse`` FastAPI uses.

Whatever it does not handle goes to FastAPI unchanged, before the body is read: other
paths and methods, a path with a trailing slash (FastAPI redirects it), a request missing
a required parameter (FastAPI's 422 names it), and every request when the server writes
without group commit. The routes stay declared in FastAPI for ``/openapi.json``.
``tests/server/test_fast_ingest.py`` compares both paths, byte for byte.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request

from server.errors import error_response
from server.ingest_body import read_body
from server.routes_store import _batch_key, ingest_options, submit
from server.routes_store import router as store_router

PATH = re.compile(r"/v1/models/([^/]+)/(features|predictions|labels)")
IDEMPOTENCY_HEADER = "idempotency-key"


@dataclass(frozen=True)
class _Route:
    """What the fast path needs of one ingest route."""

    route: APIRoute
    dependencies: tuple[Any, ...]
    #: query parameter alias -> (name, required, default)
    params: dict[str, tuple[str, bool, Any]]


def _routes() -> dict[str, _Route]:
    """The ingest routes by kind, with their dependencies and query parameters; a route
    whose dependencies need more than the request is left to FastAPI."""
    found = {}
    for route in store_router.routes:
        if not isinstance(route, APIRoute) or "POST" not in route.methods:
            continue
        match = PATH.fullmatch(route.path.replace("{model}", "m"))
        if match is None:
            continue
        dependencies = tuple(d.call for d in route.dependant.dependencies)
        if any(
            list(inspect.signature(call).parameters) != ["request"] for call in dependencies
        ) or any(d.dependencies for d in route.dependant.dependencies):
            continue
        params = {
            field.alias: (field.name, field.field_info.is_required(), field.field_info.default)
            for field in route.dependant.query_params
        }
        found[match[2]] = _Route(route, dependencies, params)
    return found


class FastIngest:
    """ASGI middleware answering single ingest requests without FastAPI's router (see the
    module docstring); everything else is passed on to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.routes = _routes()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = PATH.fullmatch(scope["path"])
        route = None if match is None else self.routes.get(match[2])
        state = scope["app"].state
        if route is None or state.committer is None:
            await self.app(scope, receive, send)
            return
        model, kind = match[1], match[2]
        request = Request(scope, receive)
        scope["route"] = route.route  # the request metrics' route template
        try:
            for dependency in route.dependencies:
                dependency(request)
            values = _query_values(route, request)
            if values is None:  # FastAPI's 422 names what is missing
                await self.app(scope, receive, send)
                return
            origin = values.pop("origin")
            batch_key = _batch_key(request.headers.get(IDEMPOTENCY_HEADER))
            body = await read_body(request)
            result = await submit(
                state,
                kind,
                model,
                origin,
                batch_key,
                ingest_options(kind, values),
                request.headers.get("content-type"),
                body,
            )
        except Exception as error:
            response = error_response(error)
            if response is None:
                raise
            await response(scope, receive, send)
            return
        await JSONResponse(result)(scope, receive, send)


def _query_values(route: _Route, request: Request) -> dict[str, Any] | None:
    """The route's query parameters by name, defaults filled in (the last value of a
    repeated one, as FastAPI reads it); None if a required one is missing."""
    values: dict[str, Any] = {}
    query = request.query_params
    for alias, (name, required, default) in route.params.items():
        if alias in query:
            values[name] = query[alias]
        elif required:
            return None
        else:
            values[name] = default
    return values
