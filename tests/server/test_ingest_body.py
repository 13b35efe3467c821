"""server.ingest_body: a request body read into one buffer, wrapped in place for JSON."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from server.ingest_body import ROOM_BEFORE, Body, read_body
from server.json_body import read_json_table


def _request(chunks: list[bytes], declared: int | None) -> Request:
    headers = [] if declared is None else [(b"content-length", str(declared).encode())]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict:
        return messages.pop(0)

    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


@pytest.mark.parametrize("declared", [None, 13, 5, 40])  # chunked, exact, short, long
def test_read_body_joins_chunks_whatever_the_declared_length(declared: int | None) -> None:
    body = asyncio.run(read_body(_request([b'[{"a"', b": 1}", b",{}]"], declared)))
    assert len(body) == 13
    assert bytes(body.view()) == b'[{"a": 1},{}]'


def test_wrapped_writes_around_the_body_without_changing_it() -> None:
    body = Body.of(b"[1]")
    assert bytes(body.wrapped(b'{"records":', b"}")) == b'{"records":[1]}'
    assert bytes(body.view()) == b"[1]"
    with pytest.raises(ValueError, match=f"at most {ROOM_BEFORE} bytes before"):
        body.wrapped(b"x" * (ROOM_BEFORE + 1), b"")


def test_records_read_from_a_body_equal_those_read_from_bytes() -> None:
    text = b' [{"example_id": "a", "ts": "2026-01-01T00:00:00Z", "x": 1.5}]'
    from_body = read_json_table(Body.of(text), "application/json")
    assert from_body.equals(read_json_table(text, "application/json"))
    assert from_body.to_pylist() == [{"example_id": "a", "ts": "2026-01-01T00:00:00Z", "x": 1.5}]
