"""Fixtures of the dashboard tests: the demo store (built once per session), a server on a
copy of it with read/write tokens (one per module), and one headless Chromium per session.

The demo template is the credit-default scenario with 400 serving rows a day (the
injected drifts are found on the same days as with 1,500: utilization from day 35,
channel from day 40, by JS distance on daily windows), its default monitors, the drift
monitor run once (so alerts exist), and the dashboard's default view computed once (the
metric history holds its windows, as after a first page view).

Browser tests need Debian's ``chromium`` and the ``playwright`` package; without either
they skip, saying which is missing. Screenshots go to ``tests/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import evalstore

MODEL = "credit_default"
READ_TOKEN = "dash-read-0123456789abcdef"
WRITE_TOKEN = "dash-write-0123456789abcdef"
#: Where browser tests write their screenshots (git-ignored).
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def build_demo(store: evalstore.Store) -> None:
    """The demo scenario (400 rows a day), default monitors, one drift monitor run, and
    the dashboard's default view computed once."""
    from evalstore.dashboard import panels
    from evalstore.demo.run import build_store
    from evalstore.demo.scenario import credit_default_scenario

    scenario = credit_default_scenario(rows_per_day=400, training_rows=5000, validation_rows=1000)
    build_store(store, scenario)
    store.add_default_monitors(MODEL)
    store.run_monitors(MODEL, now="2026-10-31", names=[f"{MODEL}.drift.js"])
    panels.model_panels(store, panels.View(MODEL))


@pytest.fixture(scope="session")
def demo_template(template: Callable[..., Path]) -> Path:
    """The demo store file (see the module docstring); tests open copies."""
    return template("dashboard-demo", build_demo)


@dataclass
class Server:
    """A running server: its ``url`` (no trailing slash) and the ``store`` it serves."""

    url: str
    store: evalstore.Store


@pytest.fixture(scope="module")
def server(
    demo_template: Path, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Server]:
    """``evalstore serve`` on a copy of the demo store, with a read and a write token."""
    import uvicorn

    from server.app import create_app

    directory = tmp_path_factory.mktemp("dashboard-server")
    copy = directory / "demo.duckdb"
    shutil.copyfile(demo_template, copy)
    tokens = directory / "tokens.txt"
    tokens.write_text(f"{READ_TOKEN} read viewer\n{WRITE_TOKEN} write admin\n")
    store = evalstore.open(copy)
    app = create_app(store, tokens=tokens, monitor_every=0, checkpoint_idle=None)
    port = free_port()
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if running.started:
                break
            time.sleep(0.05)
        assert running.started, "the dashboard test server did not start"
        yield Server(f"http://127.0.0.1:{port}", store)
    finally:
        running.should_exit = True
        thread.join(30)
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per module (Debian's, driven by Playwright).

    Module scope, not session: Playwright's sync API runs an asyncio event loop in the
    worker's main thread while it is open, and a later test file's ``asyncio.run()`` on the
    same worker would fail ("cannot be called from a running event loop")."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): browser tests skip")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()
