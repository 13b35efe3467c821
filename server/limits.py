"""Request body size limits, enforced before a route reads the body.

Ingest routes (``POST /v1/models/{model}/features|predictions|labels``) accept bodies up to
``Settings.max_body_bytes``; every other route up to ``SMALL_BODY_BYTES``. A declared
``Content-Length`` over the limit is refused at once; a chunked body is counted as it
arrives. Both give 413 with a JSON body.

:func:`apply_memory_limit` caps DuckDB's memory for the whole database instance
(``Settings.memory_limit``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb

from evalstore.core.identifiers import quote_literal
from evalstore.errors import InvalidParameterError
from server.errors import ApiError, error_body
from server.lockdown import is_locked

SMALL_BODY_BYTES = 4 * 1024 * 1024
INGEST_PATH = re.compile(r"^/v1/models/[^/]+/(features|predictions|labels)/?$")


class BodyLimit:
    """ASGI middleware refusing request bodies over the route's limit with 413."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def limit_for(self, path: str) -> int:
        return self.max_body_bytes if INGEST_PATH.match(path) else SMALL_BODY_BYTES

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        received = 0

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(send: Any, limit: int) -> None:
        error = too_large(limit)
        body = json.dumps(error_body(error.code, error.detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "body_too_large",
        f"the request body exceeds this route's limit of {limit} bytes; split the batch "
        "(or raise the server's --max-body-mb for ingest)",
    )


def apply_memory_limit(con: Any, memory_limit: str | None) -> None:
    """Set DuckDB's instance-wide ``memory_limit`` (``Settings.memory_limit``) on ``con``.

    A value such as ``"50%"`` (of the machine's memory) or ``"4GiB"``; ``None`` leaves
    DuckDB's own setting. Done when the app is built, before :func:`server.lockdown.lock_down`
    locks the configuration; on an instance already locked, the setting is left as it is.
    """
    if memory_limit is None:
        return
    if is_locked(con):
        return
    try:
        con.execute(f"SET GLOBAL memory_limit = {quote_literal(memory_limit)}")
    except duckdb.Error as error:
        raise InvalidParameterError(
            f"memory_limit={memory_limit!r} is not a DuckDB memory size: use e.g. '4GiB' "
            f"or '50%' ({str(error).strip()})"
        ) from None
