"""`evalstore serve`'s server, run in this process, for the client tests, and a polling helper.

The client talks to it over real HTTP on a loopback port, as to an `evalstore serve` process:
the same app (:func:`server.create_app` with the command's defaults), the same uvicorn
server class (:class:`server.serve.GracefulServer`), stopped the way SIGTERM stops it
(its ``handle_exit``, then the store is closed). Running it on a thread instead of in a
process of its own saves the Python start-up and imports (~2 s of CPU per start); the
kill -9 and SIGTERM tests of the server itself start real processes
(tests/core/test_durability.py, tests/server/test_server_e2e.py, test_server_limits.py).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import evalstore
from server import create_app
from server.serve import GracefulServer

START_TIMEOUT = 90.0
#: A write token the token-file server accepts (at least 16 characters).
WRITE_TOKEN = "client-tests-write-token-0123456789"
READ_TOKEN = "client-tests-read-token-0123456789"


class Server:
    """An `evalstore serve` server on ``port`` over ``path``, started and stopped at will."""

    def __init__(self, path: Path, port: int, tokens: Path | None = None) -> None:
        self.path = path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tokens = tokens
        self.headers = {"Authorization": f"Bearer {WRITE_TOKEN}"} if tokens else {}
        self.store: evalstore.Store | None = None
        self.server: GracefulServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> Server:
        """Open the store, serve it on a thread and wait until ``/healthz`` answers."""
        self.store = evalstore.open(self.path)
        app = create_app(self.store, tokens=self.tokens)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=60, access_log=False)  # fmt: skip
        self.server = GracefulServer(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive():
                self.stop()
                raise AssertionError("server exited before it started")
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        assert httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200
        return self

    def stop(self) -> None:
        """Stop as SIGTERM stops `evalstore serve`: drain, stop the app, close the store."""
        if self.server is not None and self.thread is not None:
            self.server.handle_exit(signal.SIGTERM, None)
            self.thread.join(timeout=60)
            assert not self.thread.is_alive(), "server did not stop"
        if self.store is not None:
            self.store.close()
        self.server = self.thread = self.store = None

    def register(self, model: str, version: str = "v1", **definition: Any) -> None:
        body = {"version": version, "task": "binary", "classes": [0, 1], **definition}
        response = httpx.post(f"{self.url}/v1/models/{model}/versions", json=body,
                              headers=self.headers, timeout=60)  # fmt: skip
        assert response.status_code == 201, response.text

    def sql(self, sql: str) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.url}/v1/sql", json={"sql": sql}, headers=self.headers,
                              timeout=60)  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds (a deadline guards against hanging, not timing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
