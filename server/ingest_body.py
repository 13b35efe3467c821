"""An ingest request's body read into one buffer, and its memory given back afterwards.

Starlette's ``request.body()`` keeps the list of received chunks and their joined copy (two
copies of the body at once) and caches the result on the request until the response is
sent. :func:`read_body` instead copies the chunks as they arrive into one ``bytearray``,
preallocated from ``Content-Length`` (grown as chunks arrive for a chunked body; either way
bounded by :class:`server.limits.BodyLimit`, which refuses a declared or counted size over
the route's limit before this reads on). The buffer keeps :data:`ROOM_BEFORE` and
:data:`ROOM_AFTER` spare bytes around the body, so the JSON reader can wrap an array of
records as ``{"records": [...]}`` in place instead of copying the body
(:meth:`Body.wrapped`).

:func:`release_memory` hands memory freed by parsing back to the operating system (glibc
keeps large freed blocks in its heap otherwise, so the next step of the request would stack
on top of the parse's scratch memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from starlette.requests import ClientDisconnect, Request

#: Spare bytes kept before and after the body (the JSON reader's ``{"records":`` and ``}``).
ROOM_BEFORE, ROOM_AFTER = 11, 1


class Body:
    """A request body held in one buffer with spare bytes around it."""

    def __init__(self, buffer: bytearray, size: int) -> None:
        if len(buffer) < ROOM_BEFORE + size + ROOM_AFTER:
            raise ValueError(
                f"buffer of {len(buffer)} bytes cannot hold a {size}-byte body with its room"
            )
        self._buffer = buffer
        self._size = size

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> Body:
        """A :class:`Body` holding a copy of ``data`` (for bodies not read by :func:`read_body`)."""
        size = len(data)
        buffer = bytearray(ROOM_BEFORE + size + ROOM_AFTER)
        # through a memoryview: bytearray slice assignment would copy ``data`` first
        memoryview(buffer)[ROOM_BEFORE : ROOM_BEFORE + size] = data
        return cls(buffer, size)

    def __len__(self) -> int:
        return self._size

    def view(self) -> memoryview:
        """The body's bytes (no copy)."""
        return memoryview(self._buffer)[ROOM_BEFORE : ROOM_BEFORE + self._size]

    def wrapped(self, before: bytes, after: bytes) -> memoryview:
        """``before + body + after`` without copying the body: written into the spare bytes.

        ``before`` and ``after`` may be at most :data:`ROOM_BEFORE` and :data:`ROOM_AFTER`
        bytes long; the body's own bytes are unchanged.
        """
        if len(before) > ROOM_BEFORE or len(after) > ROOM_AFTER:
            raise ValueError(
                f"at most {ROOM_BEFORE} bytes before and {ROOM_AFTER} after the body fit; "
                f"got {len(before)} and {len(after)}"
            )
        start, end = ROOM_BEFORE - len(before), ROOM_BEFORE + self._size
        self._buffer[start:ROOM_BEFORE] = before
        self._buffer[end : end + len(after)] = after
        return memoryview(self._buffer)[start : end + len(after)]


async def read_body(request: Request) -> Body:
    """The request's body, copied chunk by chunk into one buffer (not cached on ``request``).

    The size limit is enforced by :class:`server.limits.BodyLimit` while the chunks arrive;
    a declared ``Content-Length`` sizes the buffer up front (a body longer than declared
    still grows it, a shorter one leaves spare bytes unused).
    """
    declared = request.headers.get("content-length", "")
    expected = int(declared) if declared.isdigit() else 0
    buffer = bytearray(ROOM_BEFORE + expected + ROOM_AFTER)
    size = 0
    async for chunk in request.stream():
        end = ROOM_BEFORE + size + len(chunk)
        if end + ROOM_AFTER > len(buffer):  # chunked, or longer than declared: grow
            buffer.extend(bytes(end + ROOM_AFTER - len(buffer)))
        with memoryview(buffer) as view:  # (a bytearray slice assignment copies first)
            view[ROOM_BEFORE + size : end] = chunk
        size += len(chunk)
    return Body(buffer, size)


async def receive_body(receive: Any, declared: str | None) -> Body:
    """:func:`read_body` for a plain ASGI handler: the body of the ASGI messages of
    ``receive``, the buffer sized from the ``Content-Length`` header's value ``declared``.

    Raises Starlette's ``ClientDisconnect`` if the client goes away first (as
    ``Request.stream`` does).
    """
    expected = int(declared) if declared is not None and declared.isdigit() else 0
    buffer = bytearray(ROOM_BEFORE + expected + ROOM_AFTER)
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        if chunk:
            end = ROOM_BEFORE + size + len(chunk)
            if end + ROOM_AFTER > len(buffer):  # chunked, or longer than declared: grow
                buffer.extend(bytes(end + ROOM_AFTER - len(buffer)))
            with memoryview(buffer) as view:
                view[ROOM_BEFORE + size : end] = chunk
            size += len(chunk)
        if not message.get("more_body", False):
            return Body(buffer, size)


def _malloc_trim() -> object | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Give the C heap's free memory back to the operating system (glibc only; else no-op)."""
    if _TRIM is not None:
        _TRIM(0)
