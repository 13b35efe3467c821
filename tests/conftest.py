"""Shared fixtures: stores copied from a per-session template file, and a before/after
snapshot for "nothing was written" checks; ``free_port``, ``load_benchmark`` (a
benchmarks/ module by path) and ``webhook_receiver`` (:class:`Receiver`, a webhook
endpoint on 127.0.0.1).

Opening a new store installs every macro (~0.28 s of CPU); copying a store file and opening
the copy takes ~0.035 s (``register_model`` then adds a model in ~0.025 s, after ~0.2 s
for the first call of a process, which imports what registration needs). So a test that
needs a store in a known state opens a copy of a template built once per session
(:func:`copy_store`, the ``template`` and ``empty_template`` fixtures), never builds its own
unless building it is what the test checks. Code that cannot take a fixture (module
helpers, hypothesis examples) calls :func:`blank_store` instead of ``evalstore.open()``.
"""

from __future__ import annotations

import atexit
import fcntl
import importlib.util
import itertools
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from threadpoolctl import threadpool_limits

import evalstore
from evalstore.core.identifiers import quote

# ------------------------------------------------------------------ BLAS threads
#
# One BLAS thread per test process, and in the processes the tests start (CLI, servers,
# the docs pages' commands). The tests' matrices are small and two xdist workers share two
# cores: OpenBLAS's own threads then spin waiting for each other, which cost 5-15 times the
# CPU of one thread (the domain classifier of `evalstore demo`: 6-7 s of CPU instead of
# 0.4 s; the whole demo test: 25 s instead of 12). The results are the same to rounding.
# The environment reaches the processes started later; threadpoolctl limits the libraries
# already loaded here (pytest-randomly imports numpy before this file).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
threadpool_limits(1)

# ------------------------------------------------------------------ scheduling
#
# ``make test`` sends whole files to the xdist workers (``--dist loadfile``, without xdist's
# reordering by test count), in the order collected here: pytest-randomly shuffles the files
# and the tests in each, then the files are stably sorted by their expected cost, the
# costliest first (longest processing time first), so the two workers end together instead
# of one running the last big file while the other idles. A file's cost is its seconds
# (setup, call and teardown of its tests) in the last run that ran at least half as many of
# its tests as the run recorded before, kept in the pytest cache under FILE_SECONDS (a run
# of a few tests, ``-k``, does not replace a whole file's figure), scaled up if the file
# has more tests now; a file never timed counts UNTIMED_SLOW seconds per test marked slow.
# Without the cache (``-p no:cacheprovider``) every file is untimed: the order then follows
# the seed and the slow markers alone. Tests never depend on this order: it only decides
# which worker runs a file, and when.

#: The pytest cache key of ``{file: [seconds, tests]}`` from previous runs.
FILE_SECONDS = "evalstore/file-seconds"
#: The guessed seconds of a slow test in a file never timed ("several seconds").
UNTIMED_SLOW = 5.0
_timed: dict[str, list[float]] = {}


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _recorded(config: pytest.Config) -> dict[str, list[float]]:
    """The recorded ``[seconds, tests]`` of each file: an xdist worker gets the controller's
    copy, so every worker sorts alike even if another run rewrites the cache meanwhile
    (xdist refuses workers whose collections differ)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return workerinput.get(FILE_SECONDS, {})
    cache = getattr(config, "cache", None)
    return cache.get(FILE_SECONDS, {}) if cache is not None else {}


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, in the controller) Hand each worker the controller's recorded seconds."""
    node.workerinput[FILE_SECONDS] = _recorded(node.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files costliest first (see the comment above); pytest-randomly has
    shuffled ``items`` already (its hook wraps this one)."""
    recorded = _recorded(config)
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(_file_of(item.nodeid), []).append(item)

    def cost(file: str) -> float:
        tests = files[file]
        if file in recorded:
            seconds, timed_tests = recorded[file]
            return seconds * max(1.0, len(tests) / max(timed_tests, 1))
        return UNTIMED_SLOW * sum(test.get_closest_marker("slow") is not None for test in tests)

    items[:] = [item for file in sorted(files, key=cost, reverse=True) for item in files[file]]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up each file's seconds (setup, call, teardown) and tests (one setup each)."""
    timed = _timed.setdefault(_file_of(report.nodeid), [0.0, 0])
    timed[0] += report.duration
    timed[1] += report.when == "setup"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Record the seconds of the files this run timed (in the xdist controller, which sees
    every worker's reports, or in a run without xdist), unless it ran fewer than half of
    the tests the recorded figure covers."""
    cache = getattr(session.config, "cache", None)
    if cache is None or hasattr(session.config, "workerinput") or not _timed:
        return
    recorded = cache.get(FILE_SECONDS, {})
    for file, (seconds, tests) in _timed.items():
        if tests and 2 * tests >= recorded.get(file, [0.0, 0])[1]:
            recorded[file] = [round(seconds, 3), tests]
    cache.set(FILE_SECONDS, recorded)


#: The model tables a rejected batch must leave untouched.
MODEL_TABLES = ("features", "predictions", "labels")


def take_snapshot(store: evalstore.Store) -> dict[str, Any]:
    """Everything an ingest call could change: schemas, tables, columns and all rows.

    Rows are compared as sorted reprs, so the snapshot is independent of scan order.
    """
    tables = store.sql(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() ORDER BY ALL"
    ).to_pylist()
    columns = store.sql(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() "
        "ORDER BY schema_name, table_name, column_index"
    ).to_pylist()
    contents = {}
    for row in tables:
        schema, table = row["schema_name"], row["table_name"]
        if schema == "evalstore" and table not in ("models", "batches"):
            continue
        rows = store.sql(f"SELECT * FROM {quote(schema)}.{quote(table)}").to_pylist()
        contents[f"{schema}.{table}"] = sorted(map(repr, rows))
    return {"tables": tables, "columns": columns, "contents": contents}


def row_counts(store: evalstore.Store, model: str = "fraud") -> dict[str, int]:
    """Row counts of a model's tables and of ``evalstore.batches``."""
    counts = {
        table: store.sql(f"SELECT count(*) AS n FROM {quote(model)}.{table}").column(0)[0].as_py()
        for table in MODEL_TABLES
    }
    counts["batches"] = store.sql("SELECT count(*) FROM evalstore.batches").column(0)[0].as_py()
    return counts


def feature_columns(store: evalstore.Store, model: str = "fraud") -> dict[str, str]:
    """``{column: type}`` of ``<model>.features`` in table order."""
    rows = store.sql(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = ? "
        "AND table_name = 'features' ORDER BY column_index",
        [model],
    ).to_pylist()
    return {row["column_name"]: row["data_type"] for row in rows}


def copy_store(template: Path, directory: Path, name: str = "store.duckdb") -> Path:
    """Copy the store file ``template`` to ``directory / name`` and return the copy's path.

    Opening a copy skips the layout migration and the macro installation (the copy's
    ``evalstore.meta`` stamp matches), which makes it several times faster than building
    a new store. The copy opens as DuckDB catalog ``Path(name).stem``.
    """
    copy = directory / name
    shutil.copyfile(template, copy)
    return copy


_blank: dict[str, Path] = {}
_blank_copies = itertools.count()


def blank_store(path: str | os.PathLike[str] | None = None) -> evalstore.Store:
    """A new store with no model, open for writing: what ``evalstore.open()`` gives, kept in
    a file instead of memory (or what ``evalstore.open(path)`` gives for a new ``path``).

    An in-memory store (or a new file) installs every macro when it opens (~0.25 s of CPU);
    this opens a copy of an empty store file made by the first call in this process
    (~0.03 s), for code that cannot take the ``empty_store`` fixture: module helpers and
    hypothesis examples. Without ``path`` the copies live in a temporary directory removed
    at exit, a copy's file removed as soon as its store is garbage-collected, and the
    catalog is ``blank<N>`` (``memory`` in memory); with ``path`` the copy is that file
    (catalog: its stem), the caller's to keep or remove.
    """
    if "template" not in _blank:
        directory = Path(tempfile.mkdtemp(prefix="evalstore-tests-"))
        atexit.register(shutil.rmtree, directory, True)
        with evalstore.open(directory / "empty.duckdb"):
            pass
        _blank["template"] = directory / "empty.duckdb"
    template = _blank["template"]
    if path is not None:
        return evalstore.open(copy_store(template, Path(path).parent, Path(path).name))
    copy = copy_store(template, template.parent, f"blank{next(_blank_copies)}.duckdb")
    store = evalstore.open(copy)
    weakref.finalize(store, _remove_store_file, copy)
    return store


def _remove_store_file(path: Path) -> None:
    for leftover in (path, Path(f"{path}.wal")):
        leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def copy_template() -> Callable[..., Path]:
    """The :func:`copy_store` function: ``copy_template(template, tmp_path, name)``."""
    return copy_store


@pytest.fixture(scope="session")
def open_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], evalstore.Store]:
    """``open_copy(template)``: open a fresh copy of the store file ``template``.

    Each call copies it into a new directory under the session's temporary directory;
    session-scoped, so hypothesis tests can use it for a fresh store per example.
    """

    def open_one(template: Path) -> evalstore.Store:
        return evalstore.open(copy_store(template, tmp_path_factory.mktemp("copy")))

    return open_one


def shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory shared by the xdist workers of this test session (the session's own
    temporary directory when xdist is not running)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    build: Callable[[Path], Any],
) -> tuple[Path, Any]:
    """``(directory, result)``: ``build(directory)`` run once for the whole test session.

    The first caller (of any xdist worker) creates ``<shared>/<name>`` and runs ``build`` in
    it while holding an exclusive lock; later callers wait for the lock and get the same
    directory and the JSON-serialisable value ``build`` returned. A build that raised is
    not recorded, so the next caller builds again (and fails the same way). Callers must
    not modify the directory: they copy what they change.
    """
    root = shared_directory(tmp_path_factory)
    directory, done = root / name, root / f"{name}.built.json"
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
                done.write_text(json.dumps(build(directory)))
            return directory, json.loads(done.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def build_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, Callable[[Path], Any]], tuple[Path, Any]]:
    """``build_once(name, build)``: :func:`built_once` for this session (e.g. the docs
    pages' workspace, which two test modules continue from)."""
    return lambda name, build: built_once(tmp_path_factory, name, build)


@pytest.fixture(scope="session")
def template(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Path]:
    """``template(name, build, file="store.duckdb")``: the path of a store file that
    ``build(store)`` filled, built once per test session and shared by the xdist workers.

    ``name`` identifies the template across the session (use the test module's name as a
    prefix); ``file`` is the file's name, which is the catalog name of copies made with
    :func:`copy_store` under the same name. Tests open copies, never the template itself.
    """

    def make(
        name: str, build: Callable[[evalstore.Store], Any], file: str = "store.duckdb"
    ) -> Path:
        def run(directory: Path) -> None:
            with evalstore.open(directory / file) as opened:
                build(opened)

        directory, _ = built_once(tmp_path_factory, f"template-{name}", run)
        return directory / file

    return make


@pytest.fixture(scope="session")
def empty_template(template: Callable[..., Path]) -> Path:
    """A store file with the current layout and macros and no model."""
    return template("empty", lambda store: None)


@pytest.fixture
def empty_store(empty_template: Path, tmp_path: Path) -> Iterator[evalstore.Store]:
    """A fresh copy of ``empty_template`` (no model), open for writing."""
    with evalstore.open(copy_store(empty_template, tmp_path)) as opened:
        yield opened


@pytest.fixture(scope="session")
def store_template(template: Callable[..., Path]) -> Path:
    """A store file with a binary model ``fraud`` version ``v1``, classes [0, 1].

    Built once per test session (shared by the xdist workers); tests never open it for
    writing, they open copies (:func:`copy_store`, the ``store`` and ``file_store``
    fixtures).
    """
    return template(
        "fraud",
        lambda store: store.register_model("fraud", "v1", "binary", classes=[0, 1]),
        "template.duckdb",
    )


@pytest.fixture
def store(store_template: Path, tmp_path: Path) -> Iterator[evalstore.Store]:
    """A store with a binary model ``fraud`` version ``v1``, classes [0, 1].

    A fresh copy of ``store_template`` in ``tmp_path`` (``store.path``), so every test
    starts from the same state. Tests of in-memory stores open ``evalstore.open()``
    themselves.
    """
    with evalstore.open(copy_store(store_template, tmp_path)) as opened:
        yield opened


@pytest.fixture
def file_store(store: evalstore.Store) -> evalstore.Store:
    """The ``store`` fixture, for tests that use its file (``file_store.path``)."""
    return store


@pytest.fixture
def rejects() -> Callable[..., Any]:
    """``with rejects(store, ErrorType, "message regex"): store.log_...(...)``.

    Asserts the call raises ``ErrorType`` with a message matching the regex, and that
    the store (every table, column and row, the audit trail included) is exactly as
    it was before the call. Yields pytest's ``ExceptionInfo``.
    """

    @contextmanager
    def check(store: evalstore.Store, error: type[BaseException], match: str) -> Iterator[Any]:
        before = take_snapshot(store)
        counts = row_counts(store) if _has_model(store, "fraud") else None
        columns = feature_columns(store)
        with pytest.raises(error, match=match) as info:
            yield info
        assert take_snapshot(store) == before
        if counts is not None:
            assert row_counts(store) == counts
        assert feature_columns(store) == columns

    return check


def _has_model(store: evalstore.Store, model: str) -> bool:
    return bool(store.sql("SELECT 1 FROM evalstore.models WHERE model = ?", [model]).num_rows)


@pytest.fixture
def snapshot() -> Callable[[evalstore.Store], dict[str, Any]]:
    """The :func:`take_snapshot` function, for tests that compare states themselves."""
    return take_snapshot


@pytest.fixture
def counts() -> Callable[..., dict[str, int]]:
    """The :func:`row_counts` function."""
    return row_counts


@pytest.fixture
def columns() -> Callable[..., dict[str, str]]:
    """The :func:`feature_columns` function."""
    return feature_columns


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """A function importing ``benchmarks/<name>.py`` by path (benchmarks/ is no package),
    e.g. ``load_benchmark("soak_durability")``; the module is registered in
    ``sys.modules`` under ``name`` first, as its dataclasses look their module up."""

    def load(name: str) -> ModuleType:
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(f"no benchmark module {name!r} at {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """A function returning a TCP port free on 127.0.0.1 (for servers the tests start)."""

    def port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    return port


class Receiver:
    """A webhook receiver on ``127.0.0.1:port`` (0: a free port, then read ``port``)
    answering every POST with ``status`` (body ``ok``, or ``receiver says no`` from 400
    on); ``received`` keeps ``(headers, raw body, status answered)`` per request, in order
    of arrival. ``url`` is ``http://127.0.0.1:<port>/hook``."""

    def __init__(self, port: int = 0, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), raw, receiver.status))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"receiver says no" if receiver.status >= 400 else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.stopped = False

    def changes(self) -> list[str]:
        """The ``change`` of each notification received so far (fired, resolved, …)."""
        return [json.loads(raw)["change"] for _, raw, _ in list(self.received)]

    def stop(self) -> None:
        """Stop listening (the port then refuses connections); a second call does nothing."""
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[..., Receiver]]:
    """Starts a :class:`Receiver` per call (``webhook_receiver(port=0, status=200)``); the
    ones still running are stopped at the end of the test."""
    started: list[Receiver] = []

    def start(port: int = 0, status: int = 200) -> Receiver:
        receiver = Receiver(port, status)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
