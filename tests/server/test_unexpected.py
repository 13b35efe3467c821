"""The innermost error middleware: a JSON 500 for a bug, nothing for a client that left."""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import ClientDisconnect

from server.errors import Unexpected

SCOPE = {"type": "http", "method": "POST", "path": "/v1/models/m/predictions"}


def _call(error: Exception) -> list[dict]:
    async def app(scope, receive, send):
        raise error

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.disconnect"}

    asyncio.run(Unexpected(app)(SCOPE, receive, send))
    return sent


def test_a_bug_is_answered_with_a_json_500_and_logged(caplog):
    with caplog.at_level(logging.INFO, logger="evalstore.server"):
        sent = _call(RuntimeError("boom"))
    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])
    assert body == {"error": "internal_error", "detail": "RuntimeError: boom"}
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_a_client_that_disconnected_gets_no_answer_and_no_error_log(caplog):
    with caplog.at_level(logging.INFO, logger="evalstore.server"):
        sent = _call(ClientDisconnect())
    assert sent == []
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "client disconnected during POST /v1/models/m/predictions")
    ]
