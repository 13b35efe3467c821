"""Real `evalstore serve` processes for the client tests, and a polling helper."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT = 90.0
#: A write token the token-file server accepts (at least 16 characters).
WRITE_TOKEN = "client-tests-write-token-0123456789"
READ_TOKEN = "client-tests-read-token-0123456789"


class Server:
    """An `evalstore serve` process on ``port`` over ``path``, started and stopped at will."""

    def __init__(self, path: Path, port: int, tokens: Path | None = None) -> None:
        self.path = path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.tokens = tokens
        self.process: subprocess.Popen | None = None
        self.headers = {"Authorization": f"Bearer {WRITE_TOKEN}"} if tokens else {}

    def start(self) -> Server:
        command = [sys.executable, "-c", "from evalstore.cli import main; main()", "serve",
                   str(self.path), "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        if self.tokens is not None:
            command += ["--tokens", str(self.tokens)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stdout.read().decode()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError("server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None

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
