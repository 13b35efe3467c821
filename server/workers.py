"""The read pool: a bounded number of worker threads for read requests, each with a time limit.

Read requests (``POST /v1/sql``, the metric families, suggestions without recording,
selections, snapshot downloads) run on :class:`ReadPool`'s own threads, not on the
threads that serve ``/healthz``, ingest and the registry, so however many reads arrive,
those keep a thread. At most ``workers`` reads run at once and ``queue`` more wait for a
worker; a read beyond that is refused at once with 503 and ``Retry-After`` instead of
queueing without end.

Each read runs on a :meth:`~evalstore.Store.session` of its own (its own DuckDB
connection, consistent with ingest and other reads). A watchdog thread interrupts that
connection (``duckdb.DuckDBPyConnection.interrupt``) once the request has run for
``time_limit`` seconds, and again every :data:`REINTERRUPT_SECONDS` until the call returns,
since a library call may run several statements (Python work between statements cannot be
interrupted; the next statement is). The request then gets 408 ``time_limit``, the same
body as ``POST /v1/sql``. :meth:`ReadPool.shutdown` (called on SIGTERM/SIGINT) interrupts
every running read the same way, so the server stops within seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import duckdb

from evalstore.errors import InvalidParameterError
from server.errors import ApiError, shutting_down

T = TypeVar("T")

#: Seconds between interrupts of a read that is past its time limit (or being shut down).
REINTERRUPT_SECONDS = 0.05


def time_limit_error(time_limit: float) -> ApiError:
    """The 408 a read gets when it runs past ``time_limit`` seconds (one shape for all)."""
    return ApiError(
        408,
        "time_limit",
        f"the query ran longer than the server's time limit of {time_limit:g} s and was "
        "interrupted; narrow it (fewer rows, a shorter time range) or pre-aggregate",
        time_limit=time_limit,
    )


@dataclass(eq=False)
class _Job:
    """One read in flight: its connection once running, its deadline, why it was stopped."""

    time_limit: float
    connection: duckdb.DuckDBPyConnection | None = None
    deadline: float = math.inf
    expired: bool = False
    cancelled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def interrupt(self) -> None:
        with self.lock:
            if self.connection is not None:
                self.connection.interrupt()


class ReadPool:
    """``workers`` threads for read requests, ``queue`` more waiting, a per-read time limit.

    ``retry_after`` is the ``Retry-After`` (seconds) of the 503 a read gets when the pool
    and its queue are full.
    """

    def __init__(self, workers: int, queue: int, time_limit: float, retry_after: int = 1) -> None:
        if workers < 1 or queue < 0 or not time_limit > 0:
            raise InvalidParameterError(
                f"read_workers={workers!r} must be >= 1, read_queue={queue!r} >= 0 and "
                f"time_limit={time_limit!r} > 0"
            )
        self.workers = workers
        self.capacity = workers + queue
        self.time_limit = time_limit
        self.retry_after = retry_after
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="evalstore-read")
        self._state = threading.Condition()
        self._admitted = 0
        self._running: dict[int, _Job] = {}
        self._ids = itertools.count()
        self._closing = False
        self._watchdog = threading.Thread(
            target=self._watch, name="evalstore-read-watchdog", daemon=True
        )
        self._watchdog.start()

    # ------------------------------------------------------------------ requests

    @property
    def admitted(self) -> int:
        """Reads running or waiting for a worker."""
        return self._admitted

    @property
    def running(self) -> int:
        """Reads running on a worker now."""
        return len(self._running)

    async def on_session(self, store: Any, work: Callable[[Any], T]) -> T:
        """``work(session)`` on a worker, on a new session of ``store``, within the time limit.

        503 when the pool and its queue are full (or the server is stopping); 408 when the
        read runs past the time limit. If the client goes away, the read is interrupted.
        """
        job = self._admit()
        try:
            return await self._submit(self._run, job, store, work)
        except asyncio.CancelledError:
            job.cancelled = True
            job.interrupt()
            raise

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a worker, without a session or time limit (503 when full).

        For a request that must use the store's own (writer) connection, which is shared
        and so cannot be interrupted for one request; its size must be bounded otherwise.
        """
        self._admit()
        return await self._submit(work)

    async def _submit(self, work: Callable[..., T], *args: Any) -> T:
        future = self._executor.submit(work, *args)
        # released when the work ends, not when the client leaves: the worker is busy till then
        future.add_done_callback(lambda _: self._release())
        return await asyncio.wrap_future(future)

    def _admit(self) -> _Job:
        with self._state:
            if self._closing:
                raise shutting_down(self.retry_after)
            if self._admitted >= self.capacity:
                raise ApiError(
                    503,
                    "busy",
                    f"all {self.workers} read workers are busy and {self.capacity - self.workers} "
                    f"reads already wait; retry after {self.retry_after} s (the server's "
                    "read_workers/read_queue settings bound concurrent reads)",
                    headers={"Retry-After": str(self.retry_after)},
                )
            self._admitted += 1
            return _Job(self.time_limit)

    def _release(self) -> None:
        with self._state:
            self._admitted -= 1

    def _run(self, job: _Job, store: Any, work: Callable[[Any], T]) -> T:
        if job.cancelled or self._closing:
            raise ApiError(503, "shutting_down", "the server is shutting down")
        with store.session() as session, self._watched(job, session.connection):
            try:
                result = work(session)
            except Exception as error:
                stopped = self._stopped(job)
                if stopped is not None:
                    raise stopped from None
                if isinstance(error, duckdb.InterruptException):
                    raise ApiError(503, "interrupted", "the query was interrupted") from None
                raise
            stopped = self._stopped(job)
            if stopped is not None:
                raise stopped
            return result

    def _stopped(self, job: _Job) -> ApiError | None:
        """The error of a read stopped by its time limit or the shutdown, else None."""
        if job.expired or time.monotonic() > job.deadline:
            return time_limit_error(job.time_limit)
        if job.cancelled or self._closing:
            return shutting_down(self.retry_after, "the query was interrupted")
        return None

    @contextmanager
    def _watched(self, job: _Job, connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
        key = next(self._ids)
        with self._state:
            job.connection = connection
            job.deadline = time.monotonic() + job.time_limit
            self._running[key] = job
            self._state.notify_all()
        try:
            yield
        finally:
            with self._state:
                del self._running[key]
            with job.lock:
                job.connection = None

    # ------------------------------------------------------------------ watchdog

    def _watch(self) -> None:
        """Interrupt reads past their deadline (and all reads once closing), repeatedly."""
        while True:
            with self._state:
                if self._closing and not self._running and self._admitted == 0:
                    return
                now = time.monotonic()
                due = []
                for job in self._running.values():
                    if job.cancelled or self._closing:
                        due.append(job)
                    elif now >= job.deadline:
                        job.expired = True
                        due.append(job)
                upcoming = [j.deadline - now for j in self._running.values() if j not in due]
                wait = min([*upcoming, 1.0])
                if due:
                    wait = min(wait, REINTERRUPT_SECONDS)
            for job in due:
                with suppress(duckdb.Error):  # the connection closed meanwhile
                    job.interrupt()
            with self._state:
                self._state.wait(max(wait, 0.001))

    # ------------------------------------------------------------------ lifecycle

    def shutdown(self) -> None:
        """Refuse new reads and interrupt the running ones (repeatedly, until they return)."""
        with self._state:
            self._closing = True
            self._state.notify_all()

    def close(self) -> None:
        """:meth:`shutdown`, then wait for the workers to finish."""
        self.shutdown()
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._state:
            self._state.notify_all()
        self._watchdog.join(timeout=5)
