"""The client's retry path over HTTP when the server committed but the answer was lost (a
proxy that cuts the connection after the server answered), and the flush at interpreter
exit of a process that never closes its client."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import evalstore

pytestmark = pytest.mark.serial


class LosingProxy:
    """Forwards each HTTP request to ``upstream`` and relays the answer, except the first
    ``lose`` answers: those are read from the server (so the batch is committed) and then
    the client's connection is closed without a word."""

    def __init__(self, upstream_port: int, lose: int) -> None:
        self.upstream_port = upstream_port
        self.lose = lose
        self.requests: list[tuple[str, str | None]] = []  # (path, Idempotency-Key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as stream:
            request_line = stream.readline().decode()
            headers = {}
            while (line := stream.readline().decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            method, path, _ = request_line.split(" ", 2)
            self.requests.append((path.split("?")[0], headers.get("idempotency-key")))
            forward = {k: v for k, v in headers.items() if k not in ("host", "connection")}
            upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
            upstream.request(method, path, body=body, headers=forward)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            if self.lose > 0:
                self.lose -= 1
                return  # committed upstream; the client never hears of it
            head = (f"HTTP/1.1 {response.status} {response.reason}\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(data)}\r\n"
                    "Connection: close\r\n\r\n")  # fmt: skip
            connection.sendall(head.encode() + data)

    def close(self) -> None:
        self.listener.close()


def test_lost_answer_over_http_is_stored_once(server):
    server.register("replay")
    proxy = LosingProxy(server.port, lose=1)
    try:
        with evalstore.Client(proxy.url, flush_interval=3600, backoff=0.01) as client:
            for i in range(4):
                client.log_prediction("replay", "v1", f"r{i}", None, i % 2, score=0.1 + i / 10)
            assert client.flush(60)
            stats = client.stats()
    finally:
        proxy.close()
    assert [path for path, _ in proxy.requests] == ["/v1/models/replay/predictions"] * 2
    first, second = (key for _, key in proxy.requests)
    assert first is not None and first == second
    assert (stats.acknowledged, stats.retried, stats.batches, stats.duplicates) == (4, 1, 1, 1)
    counts = server.sql(
        "SELECT (SELECT count(*) FROM replay.predictions) AS rows, "
        "(SELECT count(*) FROM evalstore.batches WHERE model = 'replay') AS batches"
    )
    assert counts == [{"rows": 4, "batches": 1}]


def test_rows_are_flushed_at_interpreter_exit(server):
    server.register("atexit")
    script = textwrap.dedent(
        f"""
        import evalstore
        client = evalstore.Client({server.url!r}, flush_interval=3600, flush_rows=10_000)
        for i in range(250):
            client.log_prediction("atexit", "v1", f"x{{i}}", {{"amount": float(i)}}, i % 2)
        print(client.stats().pending)
        # no flush, no close: the interpreter's exit sends what is buffered
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "250"  # nothing had been sent before exit
    counts = server.sql(
        "SELECT (SELECT count(*) FROM atexit.predictions) AS p, "
        "(SELECT sum(amount) FROM atexit.features) AS total"
    )
    assert counts == [{"p": 250, "total": float(sum(range(250)))}]
