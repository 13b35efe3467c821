"""The ingest routes' fast path (server/fast_ingest.py) answers exactly as the FastAPI
routes do: the same requests, sent in the same order to two servers over copies of one
store, one with the fast path and one without, get byte-identical responses (status,
body, the headers that matter), good requests and refused ones alike."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect

import evalstore
from server.app import create_app
from server.auth import Tokens
from server.fast_ingest import FastIngest
from server.ingest_body import receive_body
from tests.conftest import copy_store

WRITE = "wr1te-0123456789abcdef"
READ = "r3ad-0123456789abcdef0"
TOKENS = f"{WRITE} write ingest\n{READ} read dashboards\n"
MAX_BODY = 4_000


def _client(template: Path, directory: Path, fast: bool) -> Iterator[TestClient]:
    store = evalstore.open(copy_store(template, directory))
    app = create_app(store, tokens=Tokens.parse(TOKENS), max_body_bytes=MAX_BODY, lockdown=False)
    if not fast:  # the stack is built at the first request: drop the fast path before
        app.user_middleware = [m for m in app.user_middleware if m.cls is not FastIngest]
    with TestClient(app) as client:
        yield client
    store.close()


@pytest.fixture
def clients(store_template: Path, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    (tmp_path / "fast").mkdir()
    (tmp_path / "slow").mkdir()
    fast = _client(store_template, tmp_path / "fast", True)
    slow = _client(store_template, tmp_path / "slow", False)
    yield next(fast), next(slow)
    for client in (fast, slow):
        next(client, None)


AUTH = {"Authorization": f"Bearer {WRITE}"}
JSON = {**AUTH, "Content-Type": "application/json"}
PREDICT = "/v1/models/fraud/predictions?version=v1"


def _body(records: Any) -> bytes:
    return json.dumps(records).encode()


def _one(example: str, **values: Any) -> bytes:
    return _body([{"example_id": example, "ts": "2026-01-01T00:00:00Z", **values}])


#: (path, headers, body) in order; each answer is compared between the two servers.
REQUESTS: list[tuple[str, dict[str, str], bytes]] = [
    (PREDICT, JSON, _one("a", score=0.25)),  # good
    (PREDICT, JSON, _one("b", score=0.5, latency=3)),  # an unused column is ignored
    ("/v1/models/fraud/labels", JSON, _one("a", label=1)),
    ("/v1/models/fraud/labels?label_column=y&source=review", JSON, _one("b", y=0)),
    ("/v1/models/fraud/features", JSON, _one("a", amount=1.5, country="fr")),
    ("/v1/models/fraud/features?env=training&dataset=d1", JSON, _one("a", amount=2.0)),
    (PREDICT, {**JSON, "Idempotency-Key": "k-1"}, _one("c", score=0.1)),
    (PREDICT, {**JSON, "Idempotency-Key": "k-1"}, _one("c2", score=0.1)),  # replay
    (PREDICT, {"Content-Type": "application/json"}, _one("d", score=0.1)),  # no token
    (PREDICT, {**JSON, "Authorization": "Bearer nope-not-a-token-at-all"}, _one("d")),
    (PREDICT, {**JSON, "Authorization": f"Bearer {READ}"}, _one("d", score=0.1)),
    (PREDICT, JSON, _body([{"example_id": f"x{i:02d}", "score": 0.5} for i in range(60)])),
    (PREDICT, {**JSON, "Content-Length": "999999"}, b"[]"),  # declared too large
    (PREDICT, JSON, b'[{"example_id": "e", "score": 0.5'),  # bad JSON
    (PREDICT, JSON, b""),  # empty
    (PREDICT, JSON, b'{"example_id": ["e"], "score": [0.5], "x": [1, "a"]}'),
    ("/v1/models/nobody/predictions?version=v1", JSON, _one("e", score=0.5)),
    ("/v1/models/fraud/predictions?version=v9", JSON, _one("e", score=0.5)),
    (PREDICT, JSON, _one("a", score=0.5)),  # stored id: 409 duplicate_id
    (PREDICT, JSON, _body([{"example_id": "f", "score": 0.5}, {"example_id": "f"}])),
    (PREDICT, JSON, _one("g", score=1.5)),  # not a probability
    (PREDICT, JSON, _one("g", score=0.5, ts=None)),  # a null column: no type
    ("/v1/models/fraud/features", JSON, _one("h", **{'a"b': 1, "x'); DROP TABLE t; --": 2})),
    ("/v1/models/fraud/features", JSON, _one("i", batch_id=3)),  # a reserved name
    ("/v1/models/fraud/features", JSON, _one("j", **{"__evalstore_batch_id": 1})),
    ("/v1/models/fraud/features?on_conflict=bogus", JSON, _one("k", amount=1.0)),
    ("/v1/models/fraud/predictions", JSON, _one("l", score=0.5)),  # no version: 422
    ("/v1/models/fraud/predictions?version=v0&version=v1", JSON, _one("m", score=0.5)),
    (f"{PREDICT}&score_column=", JSON, _one("n", score=0.5)),
    (f"{PREDICT}&probability_columns=p0,%20p1", JSON, _one("o", p0=0.5, p1=0.5)),
    (PREDICT, {**JSON, "Idempotency-Key": "k" * 129}, _one("p", score=0.5)),
    (PREDICT, {**AUTH, "Content-Type": "text/csv"}, b"example_id\np"),
    ("/v1/models/fraud/predictions/?version=v1", JSON, _one("q", score=0.5)),  # redirect
    ("/v1/models/fr%2Fa/predictions?version=v1", JSON, _one("r", score=0.5)),
    (PREDICT, JSON, b'[{"example_id": "s", "score": 0.5, "score": 0.7}]'),  # a key twice
    (PREDICT, JSON, _one('t":', score=0.5, note='x" : y')),  # '":' inside values
    (PREDICT, JSON, b'{"records": [{"example_id": "u", "score": 0.5}]}'),
]


def _answer(response: Any) -> tuple[int, bytes, dict[str, str]]:
    headers = {
        name: response.headers.get(name)
        for name in ("content-type", "content-length", "www-authenticate", "location")
    }
    return response.status_code, response.content, headers


def test_the_fast_path_answers_byte_for_byte_as_the_routes(clients):
    fast, slow = clients
    statuses = []
    for path, headers, body in REQUESTS:
        got = _answer(fast.post(path, headers=headers, content=body, follow_redirects=False))
        want = _answer(slow.post(path, headers=headers, content=body, follow_redirects=False))
        assert got == want, (path, headers, body[:80])
        statuses.append(got[0])
    # the cases cover what they claim (the answers are not all one status)
    assert statuses == [
        *[200] * 8, 401, 401, 403, 200, 413, 422, 422, 422, 404, 404, 409, 409, 422,
        409, 200, 422, 200, 422, 422, 200, 422, 422, 422, 415, 307, 404, 422, 200, 200,
    ]  # fmt: skip
    assert json.loads(fast_body(fast))["duplicate"] is True
    for client in clients:
        rows = client.post(
            "/v1/sql", headers=AUTH, json={"sql": "SELECT count(*) AS n FROM fraud.predictions"}
        ).json()
        assert rows == [{"n": 66}]  # a, b, c, 60 x.., m, t":, u


def fast_body(client: TestClient) -> bytes:
    """The receipt of replaying key ``k-1`` once more (a duplicate)."""
    return client.post(
        PREDICT, headers={**JSON, "Idempotency-Key": "k-1"}, content=_one("z", score=0.1)
    ).content


def test_fast_requests_are_counted_under_the_route_template(clients):
    for client in clients:
        client.post(PREDICT, headers=JSON, content=_one("a", score=0.25))
        client.post(PREDICT, headers=JSON, content=_one("a", score=0.25))  # 409
    pattern = re.compile(
        r'^evalstore_http_\w+_count\{method="POST",route="/v1/models/\{model\}/predictions",'
        r'status="(\d+)"\} (\S+)$',
        re.M,
    )
    counts = [
        sorted(pattern.findall(client.get("/metrics", headers=AUTH).text)) for client in clients
    ]
    assert counts[0] == counts[1] == [("200", "1.0"), ("409", "1.0")]


def test_the_fast_path_is_installed_and_knows_the_three_routes(clients):
    fast, slow = clients
    assert [m.cls for m in fast.app.user_middleware].count(FastIngest) == 1
    assert FastIngest not in [m.cls for m in slow.app.user_middleware]
    assert sorted(FastIngest(None).routes) == ["features", "labels", "predictions"]


def test_the_body_is_read_from_the_asgi_messages():
    messages = iter(
        [
            {"type": "http.request", "body": b'[{"a":', "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b' "long"}]', "more_body": False},
        ]
    )

    async def receive() -> dict:
        return next(messages)

    body = asyncio.run(receive_body(receive, "3"))  # declared shorter: grown
    assert bytes(body.view()) == b'[{"a": "long"}]'
    assert bytes(body.wrapped(b'{"records":', b"}")) == b'{"records":[{"a": "long"}]}'

    async def gone() -> dict:
        return {"type": "http.disconnect"}

    with pytest.raises(ClientDisconnect):
        asyncio.run(receive_body(gone, None))
