"""Group commit: the server's one ingest writer, many requests per transaction.

A service that logs each prediction as its own request sends many small, concurrent
ingest requests. Each used to be its own transaction, with its own checks and its own
fsync (38 requests/s on 2 cores). With group commit the request handlers only parse their
bodies; a single writer thread (:class:`GroupCommitter`) takes every request queued while
it was busy and writes them with
:func:`evalstore.core.ingest_group.execute_group`: one transaction, one fsync.

What a request gets is unchanged:

- its own validation: a bad request is answered with its own error and never takes a
  good one down (a group whose combined check finds a problem is written again, one call
  at a time, in the same attempt's place);
- its own batch id and ``evalstore.batches`` row (provenance stays per request); the rows
  of one group share ``committed_at``;
- its receipt only after the commit that holds it: a receipt means the rows are durable.

The writer keeps the hashes of the stored example keys
(:class:`evalstore.core.ingest_keys.StoredKeys`), so a group's check that its ids are new
does not scan the stored rows. When the writer is idle a request is written at once, in a
group of one: nothing waits for a group to fill.

A group holds at most ``max_requests`` requests and ``max_rows`` rows (a request larger
than that is written in a group of its own); requests of every model and kind queue
together, so none waits for more than the commit in progress and its own. At most
``queue`` requests wait; beyond that a request gets 503 with ``Retry-After``. On shutdown
the writer stops taking new requests (503) and finishes every queued one before the store
is closed.

``on_commit`` (settable after construction), if given, is called on the writer thread
after each group with the models that group committed rows for (the server's monitor
loop, :mod:`server.monitor_loop`, evaluates their monitors a moment later); it must
return at once, and an error it raises is logged, never given to a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from evalstore.core.ingest_group import Item, execute_group
from evalstore.core.ingest_keys import StoredKeys
from evalstore.core.ingest_write import Receipt
from evalstore.errors import EvalstoreError, from_duckdb
from server.errors import ApiError, shutting_down

log = logging.getLogger("evalstore.server")

_PR_SET_NAME = 15


def name_os_thread(name: str) -> None:
    """Name the calling thread in the OS (Linux: ``/proc/<pid>/task/<tid>/comm``, ``top
    -H``; at most 15 bytes), so the server's CPU can be read per thread (the benchmarks
    do); does nothing where that is not available."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)  # (the process's own symbols: libc's prctl among them)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Waiter(ABC):
    """A request waiting for the writer, lighter than a ``concurrent.futures.Future``
    (no lock, no condition): the writer answers a group's waiters with :func:`answer`,
    which hands all those of one ``sink`` (an event loop, a front's link) over at once.
    Subclasses say what ``sink`` is and how a list of answers is delivered to it
    (:meth:`deliver`, on the writer's thread)."""

    __slots__ = ("answered", "sink")

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.answered = False

    def done(self) -> bool:
        return self.answered

    def set_result(self, value: Any) -> None:
        answer([(self, value)])

    def set_exception(self, error: BaseException) -> None:
        answer([(self, error)])

    @classmethod
    @abstractmethod
    def deliver(cls, sink: Any, answers: list[tuple[Any, Any]]) -> None:
        """Hand ``answers`` (``(waiter, receipt or error)``) over to ``sink``."""


class LoopWaiter(Waiter):
    """A request awaited on an asyncio event loop (``sink``): one
    ``call_soon_threadsafe`` (one wake-up of the loop) per group answers all of the
    loop's requests in it."""

    __slots__ = ("future",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.future: asyncio.Future[Any] = loop.create_future()

    @classmethod
    def deliver(cls, sink: Any, answers: list[tuple[Any, Any]]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            sink.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[LoopWaiter, Any]]) -> None:
    for waiter, outcome in answers:
        if waiter.future.done():  # (the request was cancelled: its client left)
            continue
        if isinstance(outcome, BaseException):
            waiter.future.set_exception(outcome)
        else:
            waiter.future.set_result(outcome)


def answer(pairs: Iterable[tuple[Any, Any]]) -> None:
    """Answer each waiter of ``pairs`` (a :class:`Waiter` or a ``Future``) with its
    receipt or error, unless it is answered already; the :class:`Waiter` s of one sink
    together."""
    sinks: dict[tuple[type, int], tuple[Any, list[tuple[Any, Any]]]] = {}
    for waiter, outcome in pairs:
        if waiter.done():
            continue
        if isinstance(waiter, Waiter):
            waiter.answered = True
            key = (type(waiter), id(waiter.sink))
            if key not in sinks:
                sinks[key] = (waiter.sink, [])
            sinks[key][1].append((waiter, outcome))
        else:  # a Future: its caller may cancel it between done() and here
            with contextlib.suppress(InvalidStateError):
                if isinstance(outcome, BaseException):
                    waiter.set_exception(outcome)
                else:
                    waiter.set_result(outcome)
    for (kind, _), (sink, answers) in sinks.items():
        kind.deliver(sink, answers)


class GroupCommitter:
    """The single writer of ingest requests for ``store``'s connection (see the module).

    ``max_requests`` and ``max_rows`` bound a group; ``queue`` bounds the requests
    waiting; ``retry_after`` is the ``Retry-After`` (seconds) of a 503 when it is full.
    """

    def __init__(
        self,
        store: Any,
        *,
        max_requests: int = 1_000,
        max_rows: int = 100_000,
        queue: int = 10_000,
        retry_after: int = 1,
    ) -> None:
        if max_requests < 1 or max_rows < 1 or queue < 1:
            raise ValueError(
                f"max_requests={max_requests!r}, max_rows={max_rows!r} and queue={queue!r} "
                "must be >= 1"
            )
        context = store._context()
        self._connection = context.connection
        self._lock = context.lock  # the store's: library calls on it take turns with us
        self.max_requests = max_requests
        self.max_rows = max_rows
        self.capacity = queue
        self.retry_after = retry_after
        self._queue: deque[tuple[Item, Any]] = deque()  # (item, its waiter)
        self._state = threading.Condition()
        self._closing = False
        self._started = False
        self._groups = 0
        self._calls = 0
        self._rejected = 0
        self._largest = 0
        self._writing = 0
        self._busy_seconds = 0.0
        self._keys = StoredKeys()  # the stored-id check without a scan (core.ingest_keys)
        self.on_commit: Callable[[Iterable[str]], None] | None = None
        self._thread = threading.Thread(
            target=self._run, name="evalstore-group-commit", daemon=True
        )

    # ------------------------------------------------------------------ requests

    def start(self) -> None:
        """Start the writer thread (the first request starts it too, if need be: an app
        used without its lifespan still answers)."""
        with self._state:
            if not self._started:
                self._started = True
                self._thread.start()

    async def submit(self, item: Item) -> Receipt:
        """Queue ``item``; return its receipt once the commit holding it is done.

        Raises the item's own error (an :class:`~evalstore.errors.EvalstoreError`, which
        the server answers as 4xx), or 503 when the queue is full or the server stops.
        """
        waiter = LoopWaiter(asyncio.get_running_loop())
        (refusal,) = self.enqueue_waiters([(item, waiter)])
        if refusal is not None:
            raise refusal
        return await waiter.future

    def enqueue(self, item: Item) -> Future[Receipt]:
        """Queue ``item``; the future resolves after the commit that holds it."""
        (result,) = self.enqueue_many([item])
        if isinstance(result, ApiError):
            raise result
        return result

    def enqueue_many(self, items: list[Item]) -> list[Future[Receipt] | ApiError]:
        """Queue ``items`` together: one lock, one wake-up of the writer, so they reach
        it as a group. Each gets its future, or the 503 it is refused with (the server
        shutting down, the queue full)."""
        futures: list[Future[Receipt]] = [Future() for _ in items]
        refusals = self.enqueue_waiters(list(zip(items, futures, strict=True)))
        return [f if r is None else r for f, r in zip(futures, refusals, strict=True)]

    def enqueue_waiters(self, pairs: list[tuple[Item, Any]]) -> list[ApiError | None]:
        """Queue ``(item, waiter)`` pairs together (one request, or a group forwarded by
        an HTTP front process, :mod:`server.front_link`); a waiter is a :class:`Waiter`
        or a ``Future``, answered after the commit holding its item. Return, per pair,
        None or the 503 it is refused with (nothing queued for it)."""
        refusals: list[ApiError | None] = []
        with self._state:
            for pair in pairs:
                refusal = self._refusal()
                refusals.append(refusal)
                if refusal is None:
                    self._queue.append(pair)
            self._state.notify()
        if not self._started:
            self.start()
        return refusals

    def _refusal(self) -> ApiError | None:
        """The 503 a new item gets now (under ``_state``), or None when it may queue."""
        if self._closing:
            return shutting_down(self.retry_after)
        if len(self._queue) >= self.capacity:
            return ApiError(
                503,
                "busy",
                f"{len(self._queue)} ingest requests already wait for the writer; retry "
                f"after {self.retry_after} s (the server's ingest_queue setting)",
                headers={"Retry-After": str(self.retry_after)},
            )
        return None

    def status(self) -> dict[str, Any]:
        """Counters since start: ``groups`` committed, ``requests`` answered in them
        (``rejected`` of those with an error), the ``largest`` group, the requests
        ``queued`` now and those being ``writing`` (the group in progress), and the
        writer's busy seconds."""
        with self._state:
            return {
                "group_commit": True,
                "groups": self._groups,
                "requests": self._calls,
                "rejected": self._rejected,
                "largest": self._largest,
                "queued": len(self._queue),
                "writing": self._writing,
                "busy_seconds": round(self._busy_seconds, 3),
            }

    # ------------------------------------------------------------------ the writer

    def _take(self) -> list[tuple[Item, Any]] | None:
        """The next group (None once closing and drained)."""
        with self._state:
            while not self._queue and not self._closing:
                self._state.wait()
            if not self._queue:
                return None
            group = [self._queue.popleft()]
            rows = group[0][0].data.num_rows
            while self._queue and len(group) < self.max_requests:
                following = self._queue[0][0].data.num_rows
                if rows + following > self.max_rows:
                    break
                group.append(self._queue.popleft())
                rows += following
            self._writing = len(group)
            return group

    def _write(self, group: list[tuple[Item, Any]]) -> list[Receipt | BaseException]:
        """Write a group; return each request's receipt or error (a subclass may answer
        some waiters itself, earlier: those are left alone)."""
        with self._lock:
            results = execute_group(
                self._connection, [item for item, _ in group], stored_keys=self._keys
            )
        pairs = zip(group, results, strict=True)
        self._notify({i.call.model for (i, _), r in pairs if not isinstance(r, BaseException)})
        return results

    def _notify(self, models: set[str]) -> None:
        """Tell ``on_commit`` which models just got rows."""
        if models and self.on_commit is not None:
            try:
                self.on_commit(models)
            except Exception:
                log.exception("the on_commit hook of the group commit failed")

    def _run(self) -> None:
        name_os_thread("es-writer")
        while (group := self._take()) is not None:
            started = time.perf_counter()
            try:
                results = self._write(group)
            except BaseException as error:  # never leave a request waiting forever
                log.exception("the ingest writer failed on a group")
                results = [error] * len(group)
            busy = time.perf_counter() - started
            rejected = sum(isinstance(result, BaseException) for result in results)
            answer(
                (future, _translated(result, item) if isinstance(result, BaseException)
                 else result)
                for (item, future), result in zip(group, results, strict=True)
            )  # fmt: skip
            with self._state:
                self._groups += 1
                self._calls += len(group)
                self._rejected += rejected
                self._largest = max(self._largest, len(group))
                self._writing = 0
                self._busy_seconds += busy

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Refuse new requests and return once every queued one is written and answered."""
        with self._state:
            self._closing = True
            self._state.notify_all()
        if self._thread.is_alive():
            self._thread.join()


def _translated(error: BaseException, item: Item) -> BaseException:
    """DuckDB's errors as the library's (what ``Store.log_*`` raises for the same call)."""
    duckdb = sys.modules.get("duckdb")
    if isinstance(error, EvalstoreError) or duckdb is None or not isinstance(error, duckdb.Error):
        return error
    translated = from_duckdb(error, f"log_{item.call.kind}()", dict(item.call.options))
    translated.__cause__ = error
    return translated
