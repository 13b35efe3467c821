"""The client's errors, and the evalstore error an HTTP error answer stands for.

The server answers a refused request with ``{"error": code, "detail": message, ...}`` (see
``server/errors.py``); :func:`from_response` turns that body back into the library's own
exception class (``duplicate_id`` → :class:`~evalstore.errors.DuplicateIdError`, ...) with
the server's message, so code catching library errors works the same against a URL and
against an in-process store. Statuses the library has no class for (401, 403, 413, 429, 5xx)
become a :class:`ServerError` carrying the status and code.
"""

from __future__ import annotations

import json
from typing import Any

from evalstore import errors as E


class ServerError(E.EvalstoreError):
    """The server refused or failed a request with an error the library has no class for.

    ``status`` is the HTTP status (401 no/invalid token, 403 read token writing, 413 body
    too large, 429/503 busy, 500 internal error), ``code`` the body's ``error`` field.
    """

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServerUnavailableError(ServerError, ConnectionError):
    """The server could not be reached, or did not answer within the client's ``timeout``,
    on every attempt the client's ``retries`` allowed (``status`` 0, ``code``
    ``unavailable``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=0, code="unavailable")


class BufferFullError(E.EvalstoreError):
    """``on_full="block"``: the client's buffer stayed full for ``block_timeout`` seconds
    (the server is down or slower than the rate of logging); nothing of the call was
    buffered."""


class ClientClosedError(E.EvalstoreError):
    """A ``log_*`` call on a client that was closed: open a new ``evalstore.Client``."""


#: The server's error code -> the library's exception class (the inverse of
#: ``server.errors.STATUS``).
CODES: dict[str, type[E.EvalstoreError]] = {
    "unknown_model": E.UnknownModelError,
    "duplicate_id": E.DuplicateIdError,
    "schema_conflict": E.SchemaConflictError,
    "model_conflict": E.ModelConflictError,
    "read_only": E.ReadOnlyError,
    "invalid_batch": E.ValidationError,
    "invalid_parameter": E.InvalidParameterError,
    "invalid_request": E.InvalidParameterError,
    "store_version": E.StoreVersionError,
    "snapshot": E.SnapshotError,
    "store_in_use": E.StoreInUseError,
    "query_error": E.QueryError,
    "bad_request": E.EvalstoreError,
}

#: Error classes that carry ``column``, ``rows`` and ``examples``.
_VALIDATION = (E.ValidationError,)


def from_response(status: int, body: bytes, where: str) -> E.EvalstoreError:
    """The exception for an HTTP error answer ``status`` with ``body``, to ``where``.

    A body in the server's shape gives the library class of its ``error`` code (with the
    ``detail`` as message and, for batch errors, ``column``, ``rows`` and ``examples``);
    anything else (a proxy's HTML page, an unknown code) a :class:`ServerError` quoting
    the start of the body. The exception gets ``status`` and ``code`` attributes either way.
    """
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("error"), str):
        text = body[:200].decode("utf-8", "replace").strip()
        return ServerError(
            f"{where}: HTTP {status} without an evalstore error body: {text!r}",
            status=status,
            code="http_error",
        )
    code = parsed["error"]
    detail = str(parsed.get("detail", ""))
    cls = CODES.get(code) if status < 500 and status not in (401, 403, 413, 429) else None
    if cls is None:
        return ServerError(f"{where}: HTTP {status} {code}: {detail}", status=status, code=code)
    if issubclass(cls, _VALIDATION):
        error: E.EvalstoreError = cls(
            detail,
            column=parsed.get("column"),
            rows=parsed.get("rows"),
            examples=parsed.get("examples"),
        )
    else:
        error = cls(detail)
    error.status = status  # type: ignore[attr-defined]
    error.code = code  # type: ignore[attr-defined]
    return error
