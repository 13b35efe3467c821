"""Runs the code blocks of a documentation page (README.md, docs/*.md) as a reader would.

A page's blocks run in order, in one working directory, as a reader's shell and Python session
would. The directory starts as a copy of a **workspace** built once per test session
(:func:`build_workspace`, run through conftest's ``build_once``): what `make demo` leaves
(``demo.duckdb``, small: the quick start's first commands read it, then its
``evalstore demo`` replaces it), ``.venv`` linked to this interpreter's
environment (so ``.venv/bin/evalstore`` works as in a checkout), and everything
``docs/quickstart.md``'s blocks make (``monitoring.duckdb`` with the ``fraud`` model, and the
files for the command-line examples): the pages continue from the quick start, as their
readers do. Each page gets a copy of its own, so pages are
independent of each other and of their order.

* ``python`` blocks run in one namespace per page. A block that uses ``store`` without
  opening it continues the quick start's session: it gets
  ``evalstore.open("monitoring.duckdb")``, closed after the block (so that the command line
  and the server can open the file);
* ``sh`` blocks run command by command (``\\`` continuations joined, quotes and comments as
  the shell reads them; each must exit 0): ``evalstore …`` through the CLI's own entry point
  in this process (click's runner: the same code as the venv's script, without paying a
  Python start-up per command), a page's first ``.venv/bin/evalstore …`` as a process (the
  venv's script works as written) and its later ones like ``evalstore …``, ``curl`` as a
  process (with ``--fail-with-body``, so an HTTP error fails), and ``evalstore serve`` as a
  background process (the runner waits for ``/healthz`` and stops it at the end); port 8000
  becomes a free loopback port;
* ``sql`` blocks run on ``demo.duckdb`` through a plain DuckDB 2.x connection;
* other blocks (``text``: generated help and comments) are not code.

A block preceded by ``<!-- skip-test: reason -->`` is not run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import httpx
from click.testing import CliRunner

import evalstore
from evalstore.cli import main
from evalstore.demo.run import build_store
from evalstore.demo.scenario import credit_default_scenario

PROJECT = Path(__file__).resolve().parents[1]
DOCS = PROJECT / "docs"
BLOCK = re.compile(
    r"(?:<!--\s*skip-test:\s*(?P<skip>.*?)\s*-->\s*\n)?^```(?P<lang>\w*)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
RUN = ("python", "sh", "sql")
PORT = "8000"
CURL = ("curl", "--silent", "--show-error", "--fail-with-body", "--max-time", "120")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it starts, its language, code and skip reason."""

    page: str
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def page_path(page: str) -> Path:
    """``README.md`` or ``docs/<page>``."""
    return PROJECT / page if page == "README.md" else DOCS / page


def all_pages() -> list[str]:
    """README.md and every page of docs/."""
    return ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))]


def blocks(page: str) -> list[Block]:
    """Every fenced block of a page with its language, first line and skip reason."""
    text = page_path(page).read_text(encoding="utf-8")
    return [
        Block(page, text.count("\n", 0, m.start("code")) + 1, m["lang"], m["code"], m["skip"])
        for m in BLOCK.finditer(text)
    ]


def runnable(page: str) -> list[Block]:
    """The blocks of a page that run: Python, shell and SQL ones without a skip marker."""
    return [b for b in blocks(page) if b.lang in RUN and not b.skip]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block, split into words as bash would (one per line, with
    ``\\`` continuations joined, quotes kept together and ``#`` comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def _check(words: list[str], block: Block, code: int, output: str) -> None:
    assert code == 0, f"{block.where}: {shlex.join(words)}: exit {code}\n{output}"


class PageRun:
    """The session a reader of one page has: a Python namespace, a shell, servers started."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        venv = Path(sys.prefix)
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "EVALSTORE_STORE"},
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self.namespace: dict = {"__name__": "__docs__"}
        self.servers: list[subprocess.Popen] = []
        self.output = io.StringIO()
        #: whether a ``.venv/bin/evalstore`` command ran as a process yet
        self.ran_venv_script = False

    def run(self, page: str) -> list[int]:
        """Run every runnable block of ``page`` in order; the lines of the blocks run."""
        ran = []
        try:
            for block in runnable(page):
                getattr(self, f"_{block.lang}")(block)
                ran.append(block.line)
        finally:
            self.stop()
        return ran

    def _python(self, block: Block) -> None:
        code = block.code.replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{self.port}")
        if re.search(r"\bstore\.", code) and "evalstore.open(" not in code:
            self.namespace["store"] = evalstore.open("monitoring.duckdb")
        try:
            with contextlib.redirect_stdout(self.output):
                exec(compile(code, block.where, "exec"), self.namespace)
        finally:
            store = self.namespace.get("store")
            if isinstance(store, evalstore.Store):
                store.close()

    def _sh(self, block: Block) -> None:
        code = re.sub(rf"\b(localhost|127\.0\.0\.1):{PORT}\b", rf"\1:{self.port}", block.code)
        code = code.replace(f"--port {PORT}", f"--port {self.port}")
        for words in shell_commands(code):
            venv_script = words[0] == ".venv/bin/evalstore"
            if words[:2] == ["evalstore", "serve"]:
                self.servers.append(self._serve(words, block))
            elif words[0] == "evalstore" or (venv_script and self.ran_venv_script):
                result = CliRunner().invoke(main, words[1:], env=self.env, prog_name="evalstore")
                _check(words, block, result.exit_code, result.output + repr(result.exception))
                self.output.write(result.output)
            else:
                self.ran_venv_script |= venv_script
                command = [*CURL, *words[1:]] if words[0] == "curl" else words
                done = subprocess.run(
                    command, env=self.env, capture_output=True, text=True, timeout=300
                )
                _check(words, block, done.returncode, done.stdout[-3000:] + done.stderr[-3000:])
                self.output.write(done.stdout)

    def _sql(self, block: Block) -> None:
        with duckdb.connect("demo.duckdb") as con:
            con.execute(block.code)

    def _serve(self, words: list[str], block: Block) -> subprocess.Popen:
        """Start `evalstore serve` in the background and wait until it answers /healthz."""
        with Path("serve.log").open("ab") as log:
            process = subprocess.Popen(
                [*words, "--log-level", "warning"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{self.port}/healthz"
        for _ in range(600):  # start-up takes a few seconds on a busy machine
            if process.poll() is not None:
                _check(words, block, process.returncode, Path("serve.log").read_text())
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        process.kill()
        raise AssertionError(f"{block.where}: {shlex.join(words)} never answered")

    def stop(self) -> None:
        """SIGTERM the servers the blocks started and wait until they let go of the store."""
        for process in self.servers:
            process.send_signal(signal.SIGTERM)
        for process in self.servers:
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.servers.clear()


def build_workspace(directory: Path) -> list[int]:
    """The quick start, done in ``directory``: the demo store, ``.venv`` and every block of
    docs/quickstart.md. Returns the lines of the quick start's blocks that ran."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    with contextlib.chdir(directory):
        # what `make demo` leaves, small: quickstart.md's `evalstore demo` replaces it
        with evalstore.open("demo.duckdb") as store:
            scenario = credit_default_scenario(
                rows_per_day=60, training_rows=600, validation_rows=100
            )
            build_store(store, scenario)
        return PageRun(directory).run("quickstart.md")


def run_page(page: str, workspace: Path, directory: Path) -> PageRun:
    """Run ``page``'s blocks in a copy of ``workspace`` made at ``directory``."""
    shutil.copytree(workspace, directory, symlinks=True, dirs_exist_ok=True)
    session = PageRun(directory)
    with contextlib.chdir(directory):
        ran = session.run(page)
    assert ran == [b.line for b in runnable(page)]
    return session
