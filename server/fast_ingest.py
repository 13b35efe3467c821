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
- the body read from the ASGI messages into one buffer as the route reads it
  (:func:`server.ingest_body.receive_body`) and limited by the same middleware; a body up
  to ``INLINE_PARSE_BYTES`` parsed on the event loop and submitted to the group commit as
  :func:`server.routes_store.submit` does it, a larger one by ``submit`` itself;
- errors answered by :func:`server.errors.error_response`, the app's exception handlers'
  code; the receipt rendered as ``JSONResponse(json_result(receipt))`` renders it (the
  same bytes and headers), written to the ASGI ``send`` directly.

Per request it does as little Python as it can: the three headers it needs read from the
ASGI scope, the query parameters remembered by query string, no ``Request`` object
unless a dependency needs one (the bearer-token check), no response object.

Whatever it does not handle goes to FastAPI unchanged, before the body is read: other
paths and methods, a path with a trailing slash (FastAPI redirects it), a request missing
a required parameter (FastAPI's 422 names it), and every request when the server writes
without group commit. The routes stay declared in FastAPI for ``/openapi.json``.
``tests/server/test_fast_ingest.py`` compares both paths, byte for byte.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.requests import Request

from evalstore.core.ingest_call import LogCall
from evalstore.core.ingest_group import Item
from evalstore.core.ingest_write import Receipt
from server.errors import error_response
from server.formats import ARROW, body_to_data, json_result
from server.ingest_body import receive_body
from server.routes_store import INLINE_PARSE_BYTES, _batch_key, ingest_options, submit
from server.routes_store import router as store_router

PATH = re.compile(r"/v1/models/([^/]+)/(features|predictions|labels)")
IDEMPOTENCY_HEADER = b"idempotency-key"
#: Distinct (kind, query string) pairs remembered (then forgotten all at once).
QUERY_CACHE = 1_024
_RECEIPT_FIELDS = tuple(f.name for f in dataclasses.fields(Receipt))


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
        #: query parameters by (kind, query string): a service sends the same ones
        self._queries: dict[tuple[str, bytes], dict[str, Any] | None] = {}
        #: calls by (kind, model, query string) (:meth:`_call`)
        self._calls: dict[tuple[str, str, bytes], LogCall] = {}

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
        scope["route"] = route.route  # the request metrics' route template
        try:
            if route.dependencies:
                request = Request(scope, receive)
                for dependency in route.dependencies:
                    dependency(request)
            query = scope.get("query_string", b"")
            values = self._query_values(route, kind, query)
            if values is None:  # FastAPI's 422 names what is missing
                await self.app(scope, receive, send)
                return
            content_type, length, key = _headers(scope["headers"])
            origin = values.pop("origin")
            batch_key = _batch_key(key)
            body = await receive_body(receive, length)
            if len(body) <= INLINE_PARSE_BYTES:  # as routes_store.submit does
                if origin is None:
                    origin = "http:arrow" if (content_type or "").startswith(ARROW) else "http:json"
                data = body_to_data(body, content_type)
                del body
                call = self._call(kind, model, query, values, state.store.limits.time_range)
                item = Item(call, data, source=origin, batch_key=batch_key)
                del data
                payload = _receipt_json(await state.committer.submit(item))
            else:
                payload = None
                result = await submit(state, kind, model, origin, batch_key,
                                      ingest_options(kind, values), content_type, body)  # fmt: skip
        except Exception as error:
            response = error_response(error)
            if response is None:
                raise
            await response(scope, receive, send)
            return
        if payload is None:
            await JSONResponse(result)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _call(
        self, kind: str, model: str, query: bytes, values: dict[str, Any], time_range: Any
    ) -> LogCall:
        """The request's call, one object for the requests of a (model, kind, query
        string): the writer plans a group's calls once per distinct call object
        (:func:`evalstore.core.journal_prepare.prepare_group`)."""
        key = (kind, model, query)
        call = self._calls.get(key)
        if call is None or call.time_range is not time_range:
            if len(self._calls) >= QUERY_CACHE:
                self._calls.clear()
            call = self._calls[key] = LogCall(kind, model, ingest_options(kind, values), time_range)
        return call

    def _query_values(self, route: _Route, kind: str, query: bytes) -> dict[str, Any] | None:
        """The route's query parameters by name, defaults filled in (the last value of a
        repeated one, as FastAPI reads it); None if a required one is missing."""
        key = (kind, query)
        if key not in self._queries:
            if len(self._queries) >= QUERY_CACHE:
                self._queries.clear()
            self._queries[key] = _query_values(route, QueryParams(query))
        values = self._queries[key]
        return None if values is None else dict(values)


def _headers(raw: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """The request's Content-Type, Content-Length and Idempotency-Key (the first of each,
    as Starlette's ``Headers.get`` reads them)."""
    content_type = length = key = None
    for name, value in raw:
        if name == b"content-type":
            content_type = content_type or value.decode("latin-1")
        elif name == b"content-length":
            length = length or value.decode("latin-1")
        elif name == IDEMPOTENCY_HEADER:
            key = key or value.decode("latin-1")
    return content_type, length, key


def _receipt_json(receipt: Any) -> bytes:
    """The receipt's JSON as ``JSONResponse(json_result(receipt))`` renders it."""
    value = {name: getattr(receipt, name) for name in _RECEIPT_FIELDS}
    for name, field in value.items():
        if type(field) is tuple and all(type(v) is str for v in field):
            value[name] = list(field)
        elif type(field) not in (str, int, bool):
            value = json_result(receipt)  # anything else: the general conversion
            break
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def _query_values(route: _Route, query: QueryParams) -> dict[str, Any] | None:
    """The route's query parameters by name, defaults filled in (the last value of a
    repeated one, as FastAPI reads it); None if a required one is missing."""
    values: dict[str, Any] = {}
    for alias, (name, required, default) in route.params.items():
        if alias in query:
            values[name] = query[alias]
        elif required:
            return None
        else:
            values[name] = default
    return values
