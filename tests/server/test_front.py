"""``evalstore serve --http-workers 2`` (server/front.py, server/front_link.py): HTTP front
processes in front of the one writer answer as the one-process server does, and survive
``kill -9`` of either side.

- the same requests, in the same order, against ``http_workers=1`` and ``http_workers=2``
  over fresh stores: the same statuses and bytes (receipts, refusals by the fronts and by
  the writer, routes passed through to the writer), a burst of concurrent requests with a
  bad one in the middle answered alike (the bad one alone refused, nothing of it stored),
  and the same rows stored;
- ``kill -9`` of the writer while the fronts have requests in flight: the fronts exit, and
  every acknowledged request is in the store after the restart (its journal replayed),
  each once, with its receipt's batch id;
- ``kill -9`` of a front: the writer and the other front keep answering (connections
  already open on it, and new ones), and the writer starts the front again.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import evalstore
from tests.conftest import copy_store

pytestmark = [pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
WRITE = "wr1te-0123456789abcdef"
READ = "r3ad-0123456789abcdef0"
MAX_BODY = 4_000
TS = "2026-01-01T00:00:00Z"
JSON = {"Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _prepare(path: Path) -> None:
    with evalstore.open(path) as store:
        for model in ("m", "k"):
            store.register_model(model, "v1", "binary", classes=[0, 1], positive_class=1)


def _start(path: Path, workers: int, tokens: Path | None = None) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    code = (
        "from server.serve import run; "
        f"run({str(path)!r}, port={port}, log_level='warning', journal=True, "
        f"monitor_every=0, http_workers={workers}, max_body_bytes={MAX_BODY}, "
        f"tokens={None if tokens is None else str(tokens)!r})"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                if workers == 1 or len(_children(process.pid)) == workers:
                    return process, port
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the server did not start in 60 s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listed:
            found += [int(child) for child in listed.read().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _send(connection: http.client.HTTPConnection, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, data, headers or {})
    response = connection.getresponse()
    payload = response.read()
    kept = {k.lower(): v for k, v in response.getheaders()
            if k.lower() in ("content-type", "retry-after", "www-authenticate")}  # fmt: skip
    return response.status, payload, kept


def _prediction(example: str, score: float = 0.5) -> list[dict[str, Any]]:
    return [{"example_id": example, "ts": TS, "score": score}]


def _script(port: int) -> dict[str, Any]:
    """The requests both servers get, and what they answered."""
    auth = {**JSON, "Authorization": f"Bearer {WRITE}"}
    reader = {**JSON, "Authorization": f"Bearer {READ}"}
    pred = "/v1/models/m/predictions?version=v1"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    steps = [
        ("POST", pred, _prediction("a1"), auth),
        ("POST", pred, _prediction("a0"), JSON),  # no token: 401 from the front
        ("POST", pred, _prediction("a0"), reader),  # read token: 403
        ("POST", pred, _prediction("a1"), auth),  # stored already: 409 from the writer
        ("POST", pred, _prediction("a0", 1.5), auth),  # not a probability: 422 (writer)
        ("POST", pred, b'[{"example_id": ', auth),  # not JSON: 422 (front)
        ("POST", pred, b"[]", auth),  # no rows: 422 (front)
        ("POST", "/v1/models/m/predictions", _prediction("a0"), auth),  # no version
        ("POST", "/v1/models/nope/predictions?version=v1", _prediction("a0"), auth),
        ("POST", "/v1/models/m/labels", [{"example_id": "a1", "ts": TS, "label": 1}], auth),
        ("POST", "/v1/models/m/features", [{"example_id": "a1", "ts": TS, "x": 1.5}], auth),
        ("POST", pred, _prediction("a2"), {**auth, "Idempotency-Key": "k-1"}),
        ("POST", pred, _prediction("a2"), {**auth, "Idempotency-Key": "k-1"}),  # duplicate
        ("POST", pred, _prediction("a3"), {**auth, "Content-Type": "text/plain"}),  # 415
        ("POST", pred, _prediction("x" * MAX_BODY), auth),  # 413
        ("POST", "/v1/models/m/predictions/?version=v1", _prediction("a4"), auth),  # redirect
        ("GET", "/v1/models", None, reader),  # a read route, passed through
        ("GET", "/v1/models", None, {}),  # 401 from the writer
    ]
    answers = []
    for method, path, body, headers in steps:
        answers.append(_send(connection, method, path, body, headers))
        if answers[-1][0] == 413:
            connection.close()  # the body limit closes the connection
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()

    # a burst: 16 requests at once, one of them bad, each on its own connection
    burst: dict[int, tuple[int, bytes]] = {}
    start = threading.Barrier(16)

    def one(index: int) -> None:
        own = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        own.connect()
        start.wait()
        score = 1.5 if index == 7 else 0.25
        status, payload, _ = _send(own, "POST", pred, _prediction(f"b{index}", score), auth)
        own.close()
        burst[index] = (status, payload)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"steps": answers, "burst": burst}


def _stored(path: Path) -> dict[str, Any]:
    """Model ``m``'s rows and batches (``k`` is the front-kill part's)."""
    with evalstore.open(path, read_only=True) as store:
        return {
            table: store.sql(f"SELECT * EXCLUDE (batch_id) FROM m.{table} ORDER BY ALL").to_pylist()
            for table in ("predictions", "labels", "features")
        } | {
            "batches": store.sql(
                "SELECT kind, version, rows, source, batch_key FROM evalstore.batches "
                "WHERE model = 'm' ORDER BY ALL"
            ).to_pylist()
        }


def test_two_fronts_answer_as_one_process_and_outlive_a_killed_front(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{WRITE} write ingest\n{READ} read dashboards\n")
    template = tmp_path / "template.duckdb"
    _prepare(template)
    seen = {}
    for workers in (1, 2):
        (tmp_path / f"w{workers}").mkdir()
        path = copy_store(template, tmp_path / f"w{workers}")
        process, port = _start(path, workers, tokens)
        try:
            seen[workers] = _script(port)
            if workers == 2:
                killed = _kill_a_front(process, port)
        finally:
            _stop(process)
        seen[workers]["stored"] = _stored(path)
    one, two = seen[1], seen[2]
    statuses = [status for status, _, _ in one["steps"]]
    assert statuses == [200, 401, 403, 409, 422, 422, 422, 422, 404, 200, 200, 200, 200, 415,
                        413, 307, 200, 401]  # fmt: skip
    assert two["steps"] == one["steps"]  # status, body bytes, the headers that matter
    assert json.loads(one["steps"][12][1])["duplicate"] is True

    # the burst: its bad request alone refused, with the same error; receipts alike but
    # for their batch ids (the order of a burst is the kernel's)
    def receipts(burst: dict[int, tuple[int, bytes]]) -> dict[int, Any]:
        shown = {}
        for index, (status, payload) in burst.items():
            body = json.loads(payload)
            if status == 200:
                body.pop("batch_id")
            shown[index] = (status, body)
        return shown

    assert receipts(two["burst"]) == receipts(one["burst"])
    assert one["burst"][7] == two["burst"][7] and one["burst"][7][0] == 422
    assert [i for i, (status, _) in two["burst"].items() if status != 200] == [7]
    # the same rows stored; nothing of the bad request
    assert two["stored"] == one["stored"]
    ids = {row["example_id"] for row in two["stored"]["predictions"]}
    assert ids == {"a1", "a2"} | {f"b{i}" for i in range(16) if i != 7}
    assert len(two["stored"]["batches"]) == len(one["stored"]["batches"]) == 1 + 1 + 1 + 1 + 15
    # the front-kill part: every request answered 200 is stored
    with evalstore.open(tmp_path / "w2" / "store.duckdb", read_only=True) as store:
        n = store.sql("SELECT count(*) AS n FROM k.predictions").to_pylist()[0]["n"]
    assert n == killed


def test_kill_9_of_the_writer_loses_no_acknowledged_request(tmp_path):
    path = tmp_path / "store.duckdb"
    _prepare(path)
    process, port = _start(path, 2)
    fronts = _children(process.pid)
    acked: dict[str, int] = {}
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(name: str) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                example = f"{name}-{n}"
                status, payload, _ = _send(connection, "POST",
                                           "/v1/models/m/predictions?version=v1",
                                           _prediction(example), JSON)  # fmt: skip
                if status == 200:
                    with lock:
                        acked[example] = json.loads(payload)["batch_id"]
                elif status != 503:  # 503 writer_unavailable: the writer just died
                    failures.append(f"{status} {payload[:200]!r}")
        except (OSError, http.client.HTTPException):
            pass  # the front went away with its writer
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(f"s{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # requests in flight in the fronts
    process.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert len(acked) >= 300
    deadline = time.monotonic() + 30  # the fronts follow their writer
    while any(_alive(pid) for pid in fronts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in fronts)

    with evalstore.open(path) as store:  # a restart: the journal is replayed
        rows = store.sql(
            "SELECT example_id, batch_id FROM m.predictions ORDER BY example_id"
        ).to_pylist()
    stored: dict[str, list[int]] = {}
    for row in rows:
        stored.setdefault(row["example_id"], []).append(row["batch_id"])
    assert {e: stored.get(e) for e in acked} == {e: [b] for e, b in acked.items()}
    assert all(len(batches) == 1 for batches in stored.values())  # none twice


def _server_side(port: int, client: socket.socket | http.client.HTTPConnection) -> str:
    """The inode of the server's end of a client's connection (Linux /proc/net/tcp)."""
    sock = client.sock if isinstance(client, http.client.HTTPConnection) else client
    mine = sock.getsockname()[1]
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == mine:
                return fields[9]
    raise AssertionError(f"no server end for client port {mine}")


def _owner(inode: str, pids: list[int]) -> int:
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no front holds socket {inode}")


def _kill_a_front(process: subprocess.Popen, port: int) -> int:
    """``kill -9`` of one of the two fronts: the writer and the other front keep answering
    (connections open on it, new connections, a route passed through to the writer), and
    the writer starts the front again. Returns the requests of model ``k`` answered 200."""
    auth = {**JSON, "Authorization": f"Bearer {WRITE}"}
    fronts = _children(process.pid)
    pred = "/v1/models/k/predictions?version=v1"
    answered = 0
    connections = []
    for i in range(16):  # keep-alive connections, spread over both fronts by the kernel
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert _send(connection, "POST", pred, _prediction(f"c{i}"), auth)[0] == 200
        answered += 1
        connections.append(connection)
    owners = [_owner(_server_side(port, c), fronts) for c in connections]
    assert set(owners) == set(fronts), "the kernel gave all 16 connections to one front"
    victim, survivor = fronts
    for connection, owner in zip(connections, owners, strict=True):
        if owner == survivor:  # just used: not closed as idle (uvicorn's 5 s) meanwhile
            assert _send(connection, "GET", "/v1/models", None, auth)[0] == 200
    os.kill(victim, signal.SIGKILL)
    # gone, and reaped by the writer: a zombie leader's other threads may still hold its
    # listening socket (new connections hashed to it would be reset when it closes), and
    # the kernel reports the leader's death to its parent only once they are all gone
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{victim}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{victim}")
    # the survivor's connections keep answering
    for i, (connection, owner) in enumerate(zip(connections, owners, strict=True)):
        if owner == survivor:
            status, payload, _ = _send(connection, "POST", pred, _prediction(f"d{i}"), auth)
            assert status == 200, payload
            answered += 1
    # new connections are answered (by the survivor, or the victim's replacement)
    for i in range(20):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, payload, _ = _send(connection, "POST", pred, _prediction(f"e{i}"), auth)
        assert status == 200, payload
        answered += 1
        assert _send(connection, "GET", "/v1/models", None, auth)[0] == 200  # the writer's
        connection.close()
    assert process.poll() is None
    deadline = time.monotonic() + 30  # the writer starts a new front
    current: list[int] = []
    while time.monotonic() < deadline:
        current = [pid for pid in _children(process.pid) if _alive(pid)]
        if len(current) == 2 and victim not in current:
            break
        time.sleep(0.1)
    assert len(current) == 2 and survivor in current and victim not in current
    for connection in connections:
        connection.close()
    return answered
