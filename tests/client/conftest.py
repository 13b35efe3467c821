"""Fixtures of the client tests: `evalstore serve` servers (in this process, servers.py) on free
loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from servers import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port) -> Iterator[Server]:
    """A running server over a new store file, for the whole test module."""
    running = Server(tmp_path_factory.mktemp("client") / "served.duckdb", free_port()).start()
    yield running
    running.stop()


@pytest.fixture
def new_server(tmp_path, free_port) -> Iterator[Callable[..., Server]]:
    """``new_server(tokens=None)``: a server (not started) over a new store, on a free port;
    stopped at the end of the test."""
    made: list[Server] = []

    def make(tokens: Path | None = None) -> Server:
        server = Server(tmp_path / f"store{len(made)}.duckdb", free_port(), tokens)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
