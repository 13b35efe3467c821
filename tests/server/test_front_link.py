"""The link between HTTP fronts and the writer (server/front_link.py), in-process: a group
of requests survives its message whole (rows, calls, sources, keys, times), answers are
the one-process server's errors, and a client and a server over a real Unix socket answer
each request with its own outcome. Also: the fronts refuse an address in use."""

from __future__ import annotations

import asyncio
import json
import socket
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from evalstore import errors as E
from evalstore.core.ingest_call import LogCall
from evalstore.core.ingest_group import Item
from evalstore.core.ingest_write import Receipt
from server.errors import ApiError, error_response
from server.front import Fronts
from server.front_link import (
    LinkClient,
    LinkServer,
    answer_of,
    decode_group,
    encode_group,
    outcome_of,
)

WRITER_RANGE = (datetime(1800, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC))


def _items() -> list[tuple[int, Item]]:
    one = pa.table({"example_id": ["a"], "ts": ["2026-01-01T00:00:00Z"], "score": [0.5]})
    three = pa.table({"example_id": ["b", "c", "d"], "ts": ["2026-01-02T00:00:00Z"] * 3,
                      "score": [0.1, 0.2, 0.3]})  # fmt: skip
    other = pa.table({"example_id": ["e", "f"], "label": [1, 0]})
    meta = pa.table({"example_id": ["g"], "label": [1]}).replace_schema_metadata({b"k": b"v"})
    at = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    options = {"version": "v1", "probability_columns": None, "score_column": None}
    return [
        (7, Item(LogCall("predictions", "m", options), one, source="http:json", received_at=at)),
        (8, Item(LogCall("labels", "m", {}), other, source="http:json", batch_key="key-1")),
        (9, Item(LogCall("predictions", "n", options), three, source="http:arrow")),
        (10, Item(LogCall("labels", "m", {}), meta, source="http:arrow")),
        (11, Item(LogCall("predictions", "m", options), one.slice(0, 1), source="s")),
    ]


def test_a_group_survives_its_message_whole():
    sent = _items()
    message = encode_group(sent)
    received = decode_group(message[4:], WRITER_RANGE)
    assert [rid for rid, _ in received] == [rid for rid, _ in sent]
    for (_, before), (_, after) in zip(sent, received, strict=True):
        assert after.data.equals(before.data)
        assert after.data.schema.equals(before.data.schema, check_metadata=True)
        assert (after.call.kind, after.call.model, dict(after.call.options)) == (
            before.call.kind, before.call.model, dict(before.call.options))  # fmt: skip
        assert after.call.time_range == WRITER_RANGE  # the writer's, not the front's
        assert (after.source, after.batch_key, after.received_at) == (
            before.source, before.batch_key, before.received_at)  # fmt: skip


def _response(error: Exception) -> tuple[int, bytes, dict[str, str]]:
    response = error_response(error)
    assert response is not None
    return response.status_code, response.body, dict(response.headers)


@pytest.mark.parametrize(
    "error",
    [
        E.DuplicateIdError("1 ids are already stored"),
        E.ValidationError("not probabilities", column="score", rows=1, examples=[1.5]),
        E.UnknownModelError("model 'x' is not registered"),
        ApiError(503, "busy", "wait", headers={"Retry-After": "1"}),
        duckdb.ConversionException("Conversion Error: bad value "),
    ],
)
def test_an_error_is_answered_as_the_one_process_server_answers_it(error):
    outcome = outcome_of(answer_of(3, error))
    assert isinstance(outcome, ApiError)
    assert _response(outcome) == _response(error)


def test_an_unexpected_error_is_the_json_500_and_a_receipt_comes_back_equal():
    outcome = outcome_of(answer_of(3, KeyError("boom")))
    assert _response(outcome)[0] == 500
    assert json.loads(_response(outcome)[1]) == {
        "error": "internal_error", "detail": "KeyError: 'boom'"}  # fmt: skip
    receipt = Receipt(4, "m", "labels", 2, columns_ignored=("x",), warnings=("w",))
    assert outcome_of(answer_of(3, receipt)) == receipt


class _Committer:
    """Answers each item by its model: ``ok`` a receipt, ``bad`` a library error, ``full``
    refused at enqueue; answers come from another thread, later."""

    def __init__(self) -> None:
        self.groups: list[int] = []

    def enqueue_waiters(self, pairs: list[tuple[Item, Any]]) -> list[ApiError | None]:
        import threading

        self.groups.append(len(pairs))
        refusals: list[ApiError | None] = []
        pending = []
        for item, waiter in pairs:
            if item.call.model == "full":
                refusals.append(ApiError(503, "busy", "full", headers={"Retry-After": "1"}))
                continue
            refusals.append(None)
            pending.append((item, waiter))

        def answer() -> None:
            for item, waiter in pending:
                if item.call.model == "bad":
                    waiter.set_exception(E.ValidationError("bad rows", column="score"))
                else:
                    waiter.set_result(Receipt(1, item.call.model, item.call.kind,
                                              item.data.num_rows))  # fmt: skip

        threading.Timer(0.01, answer).start()
        return refusals


def test_a_client_and_a_server_answer_each_request_with_its_own_outcome(tmp_path):
    committer = _Committer()
    server = LinkServer(committer, WRITER_RANGE, str(tmp_path / "link.sock"))
    table = pa.table({"example_id": ["a"], "label": [1]})

    async def run() -> list[object]:
        client = LinkClient(server.path)
        await client.connect(timeout=5)
        models = ["ok", "bad", "full", "ok", "ok"]
        outcomes = await asyncio.gather(
            *(client.submit(Item(LogCall("labels", m, {}), table, source="s")) for m in models),
            return_exceptions=True,
        )
        await client.close()
        return outcomes

    try:
        outcomes = asyncio.run(run())
    finally:
        server.close()
    assert committer.groups == [5]  # one message, one group
    assert [type(o).__name__ for o in outcomes] == [
        "Receipt", "ApiError", "ApiError", "Receipt", "Receipt"]  # fmt: skip
    assert (outcomes[1].status, outcomes[1].code) == (422, "invalid_batch")
    assert (outcomes[2].status, outcomes[2].code, outcomes[2].headers) == (
        503, "busy", {"Retry-After": "1"})  # fmt: skip
    assert outcomes[0] == Receipt(1, "ok", "labels", 1)


def test_a_lost_writer_answers_503_and_tells_the_front(tmp_path):
    lost = []

    class Silent:
        def enqueue_many(self, items: list[Item]) -> list[Future[Receipt]]:
            return [Future() for _ in items]  # never answered

    server = LinkServer(Silent(), WRITER_RANGE, str(tmp_path / "link.sock"))
    table = pa.table({"example_id": ["a"], "label": [1]})

    async def run() -> object:
        client = LinkClient(server.path, on_lost=lambda: lost.append(True))
        await client.connect(timeout=5)
        waiting = asyncio.ensure_future(
            client.submit(Item(LogCall("labels", "m", {}), table, source="s"))
        )
        await asyncio.sleep(0.2)
        server.close()  # the writer goes away with the request in flight
        try:
            return await asyncio.wait_for(waiting, 10)
        except ApiError as error:
            return error

    outcome = asyncio.run(run())
    assert isinstance(outcome, ApiError)
    assert (outcome.status, outcome.code) == (503, "writer_unavailable")
    assert lost == [True]


def test_fronts_refuse_an_address_in_use_even_by_so_reuseport_sockets():
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(E.InvalidParameterError, match=f"cannot listen on 127.0.0.1:{port}"):
            Fronts(2, "127.0.0.1", port, {})


def test_the_writer_reads_messages_however_the_socket_cuts_them():
    """Several messages in one read, a header cut in two, a message larger than the read
    chunk: each comes out whole, in order, then None at the end of the stream."""
    import threading

    from server.front_link import READ_CHUNK, _Frames

    payloads = [b"a" * 10, b"", b"b" * 300, b"c" * (READ_CHUNK * 2 + 17), b"d" * 5]
    stream = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
    left, right = socket.socketpair()

    def send() -> None:  # (in pieces: 3 bytes end inside the first header)
        start = 0
        for cut in (3, 5, 400, READ_CHUNK, len(stream)):
            left.sendall(stream[start:cut])
            start = cut
        left.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        frames = _Frames(right)
        got = [frames.next() for _ in payloads]
        assert [bytes(g) for g in got] == payloads
        assert frames.next() is None
    finally:
        sender.join()
        left.close()
        right.close()
