"""Group commit over HTTP (:mod:`server.group_commit`): concurrent ingest requests written
together, each validated alone; the ``Idempotency-Key`` header."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import evalstore
from evalstore.core.ingest_call import LogCall
from evalstore.core.ingest_group import Item
from server.app import create_app
from server.errors import ApiError
from server.group_commit import GroupCommitter

WAIT = 30.0


@pytest.fixture
def served(store: evalstore.Store) -> evalstore.Store:
    store.register_model("other", "v1", "binary", classes=[0, 1])
    return store


def prediction(example: str, score: float = 0.5) -> list[dict[str, Any]]:
    return [{"example_id": example, "ts": "2026-01-01T00:00:00Z", "score": score}]


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def queued_behind_the_lock(
    client: TestClient, store: evalstore.Store, requests: list[tuple[str, dict[str, Any]]]
) -> Iterator[list[Any]]:
    """Send ``requests`` (path, httpx keyword arguments) while the store's lock is held:
    the first, which the writer takes alone (and waits for the lock with), then the others
    at once, which queue; release the lock once they all wait, and yield the responses in
    order once all are answered."""
    committer = client.app.state.committer
    responses: list[Any] = [None] * len(requests)

    def send(i: int, path: str, kwargs: dict[str, Any]) -> None:
        responses[i] = client.post(path, **kwargs)

    threads = [
        threading.Thread(target=send, args=(i, path, kwargs))
        for i, (path, kwargs) in enumerate(requests)
    ]
    with store._lock:
        threads[0].start()
        wait_for(lambda: committer.status()["writing"] == 1)
        for thread in threads[1:]:
            thread.start()
        wait_for(lambda: committer.status()["queued"] == len(requests) - 1)
    for thread in threads:
        thread.join(WAIT)
    yield responses


def commits(store: evalstore.Store, batch_ids: list[int]) -> list[int]:
    """How many of ``batch_ids`` each commit held (batches of one commit share
    ``committed_at``), smallest first."""
    rows = store.sql(
        "SELECT count(*) AS n FROM evalstore.batches WHERE list_contains(?, batch_id) "
        "GROUP BY committed_at ORDER BY n",
        [batch_ids],
    ).to_pylist()
    return [r["n"] for r in rows]


def test_a_bad_request_fails_alone_and_the_good_ones_share_one_commit(served):
    path = "/v1/models/fraud/predictions?version=v1"
    requests = [(path, {"json": prediction(f"e{i}")}) for i in range(6)]
    requests[3] = (path, {"json": prediction("bad", score=7.0)})
    with (
        TestClient(create_app(served)) as client,
        queued_behind_the_lock(client, served, requests) as responses,
    ):
        status = client.get("/healthz").json()["ingest"]
    assert [r.status_code for r in responses] == [200, 200, 200, 422, 200, 200]
    bad = responses[3].json()
    assert bad["error"] == "invalid_batch" and bad["column"] == "score"
    assert "values that are not probabilities in [0, 1]" in bad["detail"]
    receipts = [r.json() for i, r in enumerate(responses) if i != 3]
    assert all(r["rows"] == 1 and r["duplicate"] is False for r in receipts)
    assert len({r["batch_id"] for r in receipts}) == 5  # one batches row per request
    assert status["groups"] == 2 and status["requests"] == 6 and status["rejected"] == 1
    assert status["largest"] == 5  # the first request alone, then the other five together
    # the first request went alone; the other four good ones (and the bad one, rolled
    # back) were written together
    assert commits(served, [r["batch_id"] for r in receipts]) == [1, 4]
    assert commits(served, [r["batch_id"] for r in receipts[1:]]) == [4]
    stored = served.sql("SELECT example_id FROM fraud.predictions ORDER BY 1").to_pylist()
    assert [r["example_id"] for r in stored] == ["e0", "e1", "e2", "e4", "e5"]


def test_requests_of_other_models_and_kinds_join_the_same_commit(served):
    requests = [
        ("/v1/models/fraud/predictions?version=v1", {"json": prediction("first")}),
        ("/v1/models/fraud/predictions?version=v1", {"json": prediction("p")}),
        ("/v1/models/other/predictions?version=v1", {"json": prediction("p")}),
        ("/v1/models/fraud/labels", {"json": [{"example_id": "p", "label": 1}]}),
        ("/v1/models/other/features", {"json": [{"example_id": "p", "amount": 2.5}]}),
    ]
    with (
        TestClient(create_app(served)) as client,
        queued_behind_the_lock(client, served, requests) as responses,
    ):
        pass
    assert [r.status_code for r in responses] == [200] * 5
    receipts = [r.json() for r in responses]
    assert [(r["model"], r["kind"]) for r in receipts] == [
        ("fraud", "predictions"),
        ("fraud", "predictions"),
        ("other", "predictions"),
        ("fraud", "labels"),
        ("other", "features"),
    ]
    assert commits(served, [r["batch_id"] for r in receipts[1:]]) == [4]


def test_grouped_labels_fulfil_label_requests(served):
    scores = pa.table({"example_id": ["a", "b", "c"], "score": [0.1, 0.5, 0.9]})
    served.log_predictions("fraud", scores, "v1")
    served.suggest("fraud", k=3, strategy="random")
    requests = [("/v1/models/fraud/labels", {"json": [{"example_id": "first", "label": 0}]})]
    requests += [
        ("/v1/models/fraud/labels", {"json": [{"example_id": e, "label": 1}]}) for e in "abc"
    ]
    with (
        TestClient(create_app(served)) as client,
        queued_behind_the_lock(client, served, requests) as responses,
    ):
        pass
    batch_of = {e: r.json()["batch_id"] for e, r in zip("-abc", responses, strict=True)}
    fulfilled = {
        r["example_id"]: (r["status"], r["label_batch_id"])
        for r in served.label_requests("fraud").to_pylist()
    }
    assert fulfilled == {e: ("fulfilled", batch_of[e]) for e in "abc"}


@pytest.mark.parametrize("group_commit", [True, False], ids=["grouped", "one-commit-each"])
def test_idempotency_key_header_replays_the_first_receipt(served, group_commit):
    path = "/v1/models/fraud/predictions?version=v1"
    headers = {"Idempotency-Key": "req-7f3a"}
    with TestClient(create_app(served, group_commit=group_commit)) as client:
        first = client.post(path, json=prediction("a"), headers=headers)
        again = client.post(path, json=prediction("a"), headers=headers)
        other = client.post(path, json=prediction("b"), headers={"Idempotency-Key": "req-2"})
    assert first.status_code == again.status_code == other.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert first.json()["duplicate"] is False and other.json()["duplicate"] is False
    rows = served.sql("SELECT batch_key, rows FROM evalstore.batches ORDER BY batch_id")
    assert rows.to_pylist() == [
        {"batch_key": "req-7f3a", "rows": 1},
        {"batch_key": "req-2", "rows": 1},
    ]


def test_an_unusable_idempotency_key_is_422_naming_the_header(served):
    with TestClient(create_app(served)) as client:
        response = client.post(
            "/v1/models/fraud/labels",
            json=[{"example_id": "a", "label": 1}],
            headers={"Idempotency-Key": "k" * 129},
        )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameter"
    assert (
        "Idempotency-Key header must be 1 to 128 printable characters"
        in (response.json()["detail"])
    )
    assert served.sql("SELECT count(*) AS n FROM evalstore.batches").to_pylist() == [{"n": 0}]


def test_concurrent_replays_of_one_key_write_once(served):
    path = "/v1/models/fraud/labels"
    body = {"json": [{"example_id": "a", "label": 1}], "headers": {"Idempotency-Key": "once"}}
    requests = [(path, body) for _ in range(5)]
    with (
        TestClient(create_app(served)) as client,
        queued_behind_the_lock(client, served, requests) as responses,
    ):
        pass
    receipts = [r.json() for r in responses]
    assert [r["duplicate"] for r in receipts] == [False, True, True, True, True]
    assert {r["batch_id"] for r in receipts} == {receipts[0]["batch_id"]}
    assert served.sql("SELECT count(*) AS n FROM fraud.labels").to_pylist() == [{"n": 1}]


def test_the_openapi_documents_the_idempotency_key_header(served):
    with TestClient(create_app(served)) as client:
        spec = client.get("/openapi.json").json()
    for kind in ("features", "predictions", "labels"):
        parameters = spec["paths"][f"/v1/models/{{model}}/{kind}"]["post"]["parameters"]
        header = next(p for p in parameters if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and "duplicate" in header["description"]


def test_close_writes_every_queued_request_then_refuses(served):
    committer = GroupCommitter(served)
    call = LogCall("predictions", "fraud", {"version": "v1"})
    with served._lock:
        futures = [
            committer.enqueue(Item(call, pa.table({"example_id": [f"q{i}"], "score": [0.5]}), "t"))
            for i in range(4)
        ]
        closing = threading.Thread(target=committer.close)
        closing.start()
        wait_for(lambda: committer.status()["queued"] <= 3)
    closing.join(WAIT)
    assert not closing.is_alive()
    assert [f.result(0).rows for f in futures] == [1, 1, 1, 1]
    with pytest.raises(ApiError, match="shutting down") as refused:
        committer.enqueue(Item(call, pa.table({"example_id": ["late"], "score": [0.5]}), "t"))
    assert refused.value.status == 503
    assert served.sql("SELECT count(*) AS n FROM fraud.predictions").to_pylist() == [{"n": 4}]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OS thread names: Linux")
def test_the_writer_thread_is_named_for_per_thread_cpu_figures(served):
    committer = GroupCommitter(served)
    committer.start()
    try:
        call = LogCall("predictions", "fraud", {"version": "v1"})
        future = committer.enqueue(
            Item(call, pa.table({"example_id": ["n1"], "score": [0.5]}), "t")
        )
        assert future.result(WAIT).rows == 1  # (the writer has run: its name is set)
        tid = committer._thread.native_id
        with open(f"/proc/self/task/{tid}/comm") as comm:
            assert comm.read().strip() == "es-writer"
    finally:
        committer.close()


def test_submit_answers_on_the_loop_and_a_cancelled_request_is_left_alone(served):
    """``submit`` waits on a light waiter answered from the writer thread through the
    event loop; a request whose caller went away (cancelled) is still written, and its
    answer is dropped without error."""
    committer = GroupCommitter(served)
    call = LogCall("predictions", "fraud", {"version": "v1"})

    def item(example: str) -> Item:
        return Item(call, pa.table({"example_id": [example], "score": [0.5]}), "t")

    async def run() -> Any:
        with served._lock:  # (the writer waits: both are queued before it writes)
            kept = asyncio.ensure_future(committer.submit(item("c1")))
            gone = asyncio.ensure_future(committer.submit(item("c2")))
            await asyncio.sleep(0.05)
            gone.cancel()
        receipt = await asyncio.wait_for(kept, WAIT)
        with pytest.raises(asyncio.CancelledError):
            await gone
        return receipt

    try:
        receipt = asyncio.run(run())
    finally:
        committer.close()
    assert (receipt.model, receipt.kind, receipt.rows) == ("fraud", "predictions", 1)
    assert served.sql(
        "SELECT count(*) AS n FROM fraud.predictions WHERE example_id IN ('c1', 'c2')"
    ).to_pylist() == [{"n": 2}]


def test_answer_survives_a_future_cancelled_meanwhile() -> None:
    """A caller may cancel its Future between the writer's done() check and its answer:
    the writer thread must not die of InvalidStateError, and the group's other waiters
    are still answered."""
    from concurrent.futures import Future

    from server.group_commit import answer

    class CancelledInTheWindow(Future):
        def done(self) -> bool:  # as seen just before the caller's cancel()
            return False

    late: Future[Any] = CancelledInTheWindow()
    assert late.cancel()
    other: Future[Any] = Future()
    failed: Future[Any] = Future()
    answer([(late, "receipt 1"), (other, "receipt 2"), (failed, ValueError("bad row"))])
    assert late.cancelled()
    assert other.result(timeout=0) == "receipt 2"
    with pytest.raises(ValueError, match="bad row"):
        failed.result(timeout=0)
