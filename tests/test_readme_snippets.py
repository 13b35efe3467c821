"""Every code block of README.md runs, in order, as a reader would run it.

The blocks share one working directory (a temporary one), as a reader's shell and Python
session would:

* ``demo.duckdb`` is built first (what ``make demo`` leaves, with a fifth of its rows; the
  blocks on ``demo.duckdb`` read it), and ``.venv`` links to this interpreter's
  environment, so ``.venv/bin/evalstore`` works as in a checkout;
* ``python`` blocks run in one namespace, in the README's order. A block that uses ``store``
  without opening it continues the first example's session: it gets
  ``evalstore.open("monitoring.duckdb")``, closed after the block (so that the command
  line and the server can open the file);
* ``sh`` blocks run command by command (``\\`` continuations joined, quotes and comments as
  the shell reads them; each must exit 0): ``evalstore …`` through the CLI's own entry point
  in this process (click's runner: the same code as the venv's script, without paying a
  Python start-up per command), ``.venv/bin/evalstore …`` and ``curl`` as processes
  (``curl`` with ``--fail-with-body``, so an HTTP error fails), and ``evalstore serve`` as a
  background process (the test waits for ``/healthz`` and stops it at the end); port 8000
  becomes a free loopback port;
* ``sql`` blocks run on ``demo.duckdb`` through a plain DuckDB 2.x connection.

A block preceded by ``<!-- skip-test: reason -->`` is not run; there are at most two.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
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

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(
    r"(?:<!--\s*skip-test:\s*(?P<skip>.*?)\s*-->\s*\n)?^```(?P<lang>\w+)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
RUN = ("python", "sh", "sql")
PORT = "8000"
MAX_SKIPPED = 2
CURL = ("curl", "--silent", "--show-error", "--fail-with-body", "--max-time", "120")


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    code: str
    skip: str | None


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md with its language, first line and skip reason."""
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start("code")) + 1, m["lang"], m["code"], m["skip"])
        for m in BLOCK.finditer(text)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_readme_has_blocks_of_every_kind_and_few_skips():
    blocks = readme_blocks()
    assert {b.lang for b in blocks} == set(RUN), {b.lang for b in blocks}
    skipped = [b for b in blocks if b.skip]
    assert 1 <= len(skipped) <= MAX_SKIPPED, [(b.line, b.skip) for b in skipped]
    assert all(len(b.skip) > 10 for b in skipped)  # a reason, not a bare marker
    assert sum(b.lang == "python" for b in blocks) >= 5
    assert sum("curl " in b.code for b in blocks) >= 1


def _run_python(block: Block, namespace: dict, port: int) -> None:
    code = block.code.replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{port}")
    inject = re.search(r"\bstore\.", code) and "evalstore.open(" not in code
    if inject:
        namespace["store"] = evalstore.open("monitoring.duckdb")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, f"README.md:{block.line}", "exec"), namespace)
    finally:
        store = namespace.get("store")
        if isinstance(store, evalstore.Store):
            store.close()


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block, split into words as bash would (one per line, with
    ``\\`` continuations joined, quotes kept together and ``#`` comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def _check(words: list[str], block: Block, code: int, output: str) -> None:
    assert code == 0, f"README.md line {block.line}: {shlex.join(words)}: exit {code}\n{output}"


def _run_sh(block: Block, env: dict[str, str], port: int, servers: list) -> None:
    code = re.sub(rf"\b(localhost|127\.0\.0\.1):{PORT}\b", rf"\1:{port}", block.code)
    code = code.replace(f"--port {PORT}", f"--port {port}")
    for words in shell_commands(code):
        if words[:2] == ["evalstore", "serve"]:
            servers.append(_serve(words, block, env, port))
        elif words[0] == "evalstore":
            result = CliRunner().invoke(main, words[1:], env=env, prog_name="evalstore")
            _check(words, block, result.exit_code, result.output + repr(result.exception))
        else:
            command = [*CURL, *words[1:]] if words[0] == "curl" else words
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            _check(words, block, done.returncode, done.stdout[-3000:] + done.stderr[-3000:])


def _serve(words: list[str], block: Block, env: dict[str, str], port: int) -> subprocess.Popen:
    """Start `evalstore serve` in the background and wait until it answers /healthz."""
    with Path("serve.log").open("ab") as log:
        process = subprocess.Popen(
            [*words, "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/healthz"
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
    raise AssertionError(f"README.md line {block.line}: {shlex.join(words)} never answered")


def _run_sql(block: Block) -> None:
    with duckdb.connect("demo.duckdb") as con:
        con.execute(block.code)


def _stop(servers: list[subprocess.Popen]) -> None:
    """SIGTERM the servers the blocks started and wait until they let go of the store."""
    for process in servers:
        process.send_signal(signal.SIGTERM)
    for process in servers:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_every_readme_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    venv = Path(sys.prefix)
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    with evalstore.open("demo.duckdb") as store:  # what `make demo` leaves, a fifth of it
        build_store(store, credit_default_scenario(rows_per_day=300, training_rows=4000))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "EVALSTORE_STORE"},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    namespace: dict = {"__name__": "__readme__"}
    ran, servers = [], []
    try:
        for block in readme_blocks():
            if block.skip or block.lang not in RUN:
                continue
            if block.lang == "python":
                _run_python(block, namespace, port)
            elif block.lang == "sh":
                _run_sh(block, env, port, servers)
            else:
                _run_sql(block)
            ran.append(block.line)
    finally:
        _stop(servers)
    blocks = readme_blocks()
    assert len(ran) == len([b for b in blocks if not b.skip]) >= 20
    # the snippets did what they say: the server took the curl and httpx writes
    with evalstore.open("monitoring.duckdb", read_only=True) as store:
        served = store.sql(
            "SELECT count(*) FROM fraud.predictions WHERE example_id = 'a1' AND version = 'v2'"
        )
        assert served.column(0).to_pylist() == [1]
        names = store.snapshots().column("name").to_pylist()
    assert "fraud-train-2026-11" in names and "fraud-serving" not in names  # deleted again
    assert Path("fraud-serving.parquet").stat().st_size > 0
