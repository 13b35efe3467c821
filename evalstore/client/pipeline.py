"""The client's buffer and flusher thread: bounded buffering, batching, delivery, counts.

A :class:`Pipeline` holds the records ``log_*`` calls append (a deque of tuples under one
lock: the only work on the caller's thread), drains them in chunks of at most ``flush_rows``
records on a daemon thread, builds the chunk's Arrow batches
(:func:`evalstore.client.batches.build`) and sends each through the transport under a batch
key drawn once, retrying transient failures with exponential backoff and jitter.

Entries leave the buffer first in, first out, by draining or (``drop_oldest``) by discard,
and one chunk is sent at a time; so "the first *n* entries are settled" is two comparisons
(:meth:`Pipeline._settled_through`), which is what :meth:`Pipeline.flush` waits for.
"""

from __future__ import annotations

import atexit
import collections
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from evalstore.client.batches import Batch, build, weight
from evalstore.client.errors import BufferFullError, ClientClosedError
from evalstore.client.transport import Retryable, Transport

log = logging.getLogger("evalstore.client")


@dataclass(frozen=True)
class ClientStats:
    """What a client did so far, in records (see the module docstring).

    ``logged``: records accepted by ``log_*`` calls. ``sent``: records taken from the buffer
    into batches and sent at least once. ``acknowledged``: sent records whose batches were
    all committed (a replay answered ``duplicate`` counts: it was committed before).
    ``dropped``: records discarded unsent by ``on_full="drop_oldest"``, or still unsent when
    :meth:`Client.close` gave up waiting. ``failed``: records the store refused (a 4xx other
    than 429, a batch that could not be built, or ``retries`` exhausted). ``retried``: send
    attempts repeated after a connection error, timeout, 5xx or 429. ``pending``: records
    buffered or in a batch being sent now. ``batches``: batches committed; ``duplicates``: of
    those, how many the store had committed before (a retry after a lost answer).
    ``last_error``: the message of the last failed attempt, or None.

    At any time ``logged == sent + dropped_from_buffer + buffered`` and
    ``sent == acknowledged + failed + in_flight (+ records dropped at close)``.
    """

    logged: int
    sent: int
    acknowledged: int
    dropped: int
    failed: int
    retried: int
    pending: int
    batches: int
    duplicates: int
    last_error: str | None


class Pipeline:
    """Buffer, flusher thread and delivery of one :class:`evalstore.Client`.

    The parameters are the Client's (see its docstring); ``background=False`` (sync mode)
    starts no thread: :meth:`send_now` delivers on the caller's thread.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        background: bool,
        flush_rows: int,
        flush_interval: float,
        max_buffer_rows: int,
        drop_oldest: bool,
        block_timeout: float | None,
        retries: int | None,
        backoff: float,
        max_backoff: float,
        close_timeout: float,
    ) -> None:
        self._transport = transport
        self._flush_rows = flush_rows
        self._interval = float(flush_interval)
        self._max = max_buffer_rows
        self._drop = drop_oldest
        self._block_timeout = block_timeout
        self._retries = retries
        self._backoff = float(backoff)
        self._max_backoff = float(max_backoff)
        self._close_timeout = float(close_timeout)
        self._background = background

        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._has_room = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._send_lock = threading.Lock()  # one request at a time on the transport
        self._abandon = threading.Event()
        self._buffer: collections.deque[tuple] = collections.deque()
        self._buffered = 0  # records in the buffer
        self._appended = 0  # buffer entries ever appended
        self._removed = 0  # buffer entries ever removed (drained or dropped), first in first out
        self._flight_start: int | None = None  # entry number of the chunk being sent
        self._in_flight = 0  # records in the chunk being sent
        self._flush_target = 0
        self._woken = False
        self._closing = False
        self._counts = dict.fromkeys(
            (
                "logged",
                "sent",
                "acknowledged",
                "dropped",
                "failed",
                "retried",
                "batches",
                "duplicates",
            ),
            0,
        )
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="evalstore-client", daemon=True)
            self._thread.start()
            atexit.register(self._at_exit)

    def append(self, record: tuple, n: int) -> None:
        """Buffer ``record`` of ``n`` records (the caller's thread: a lock and an append)."""
        with self._lock:
            if self._closing:
                raise ClientClosedError("this evalstore.Client is closed: open a new one")
            if self._buffered + n > self._max:
                self._make_room(n)
            self._buffer.append(record)
            self._buffered += n
            self._appended += 1
            self._counts["logged"] += n
            if self._buffered >= self._flush_rows and not self._woken:
                self._woken = True
                self._has_work.notify()

    def _make_room(self, n: int) -> None:
        """Called with the lock held on a full buffer: drop the oldest records, or wait."""
        if self._drop:
            while self._buffered + n > self._max:
                self._discard_oldest()
            return
        self._woken = True
        self._has_work.notify()
        if not self._has_room.wait_for(
            lambda: self._buffered + n <= self._max or self._closing, self._block_timeout
        ):
            raise BufferFullError(
                f"the client's buffer ({self._max} records) stayed full for "
                f"{self._block_timeout} s: the server is down or slower than logging "
                f"(last error: {self._last_error}); nothing of this call was buffered"
            )
        if self._closing:
            raise ClientClosedError("this evalstore.Client was closed while the call waited")

    def _discard_oldest(self) -> None:
        dropped = weight(self._buffer.popleft())
        self._buffered -= dropped
        self._removed += 1
        self._counts["dropped"] += dropped
        self._settled.notify_all()

    def _settled_through(self, target: int) -> bool:
        """Whether the first ``target`` buffer entries are all acknowledged, failed or
        dropped (entries leave the buffer in order; one drained chunk is sent at a time)."""
        return target <= self._removed and (
            self._flight_start is None or target <= self._flight_start
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything logged so far and wait until it is acknowledged, refused or
        dropped; False if ``timeout`` seconds passed first (sync mode: True at once)."""
        if not self._background:
            return True
        with self._lock:
            target = self._appended
            if target > self._flush_target:
                self._flush_target = target
                self._has_work.notify()
            return self._settled.wait_for(lambda: self._settled_through(target), timeout)

    # ----------------------------------------------------------------- flusher

    def _run(self) -> None:
        due = time.monotonic() + self._interval
        while True:
            with self._lock:
                while True:
                    now = time.monotonic()
                    if now >= due:
                        due = now + self._interval
                        if self._buffer:
                            break
                    if self._buffer and (
                        self._buffered >= self._flush_rows
                        or self._flush_target > self._removed
                        or self._closing
                    ):
                        break
                    if self._closing:
                        return
                    self._woken = False
                    self._has_work.wait(due - now)
                chunk = self._drain()
            self._deliver_chunk(chunk)

    def _drain(self) -> list[tuple]:
        """Take up to ``flush_rows`` records (at least one entry) off the buffer."""
        chunk: list[tuple] = []
        taken = 0
        while self._buffer and (not chunk or taken + weight(self._buffer[0]) <= self._flush_rows):
            record = self._buffer.popleft()
            chunk.append(record)
            taken += weight(record)
        self._flight_start = self._removed
        self._removed += len(chunk)
        self._buffered -= taken
        self._in_flight = taken
        self._counts["sent"] += taken
        self._has_room.notify_all()
        return chunk

    def _deliver_chunk(self, chunk: list[tuple]) -> None:
        """Build and send one drained chunk, then count its records (the thread survives
        anything a chunk raises: the records are counted failed and the error kept)."""
        try:
            batches, unbuilt = build(chunk)
        except Exception as error:
            batches, unbuilt = [], [(list(range(len(chunk))), error)]
        failed: set[int] = set()
        lost: set[int] = set()
        for members, error in unbuilt:
            failed.update(members)
            self._note_error(error, len(members), final=True)
        for batch in batches:
            if self._abandon.is_set():
                lost.update(batch.members)
                continue
            try:
                self._deliver(batch)
            except _Abandoned:
                lost.update(batch.members)
            except Exception as error:  # refused, or retries exhausted: counted, never raised
                failed.update(batch.members)
                self._note_error(error, sum(weight(chunk[i]) for i in batch.members), True)
        with self._lock:
            n_failed = sum(weight(chunk[i]) for i in failed)
            n_lost = sum(weight(chunk[i]) for i in lost - failed)
            self._counts["failed"] += n_failed
            self._counts["dropped"] += n_lost
            self._counts["acknowledged"] += self._in_flight - n_failed - n_lost
            self._in_flight = 0
            self._flight_start = None
            self._settled.notify_all()

    def _deliver(self, batch: Batch) -> Any:
        """Send ``batch`` under one batch key until it is committed or refused, retrying
        transient failures; returns the receipt."""
        batch.key = uuid.uuid4().hex
        while True:
            batch.attempts += 1
            try:
                with self._send_lock:
                    receipt = self._transport.send(batch)
            except Retryable as retryable:
                with self._lock:
                    self._last_error = str(retryable.error)
                if self._retries is not None and batch.attempts > self._retries:
                    raise retryable.error from retryable
                if batch.attempts == 1:
                    log.warning("evalstore client: %s; retrying with backoff", retryable.error)
                delay = min(self._max_backoff, self._backoff * 2 ** (batch.attempts - 1))
                if retryable.retry_after is not None:
                    delay = max(delay, min(retryable.retry_after, self._max_backoff))
                with self._lock:
                    self._counts["retried"] += 1
                if self._abandon.wait(random.uniform(delay / 2, delay)):
                    raise _Abandoned from retryable
                continue
            with self._lock:
                self._counts["batches"] += 1
                self._counts["duplicates"] += bool(getattr(receipt, "duplicate", False))
            return receipt

    def _note_error(self, error: Exception, records: int, final: bool) -> None:
        with self._lock:
            self._last_error = str(error)
        if final:
            log.error("evalstore client: %d records not stored: %s", records, error)

    def send_now(self, records: list[tuple]) -> list[Any]:
        """Sync mode: build and send ``records`` now; the receipts, or the first error."""
        with self._lock:
            if self._closing:
                raise ClientClosedError("this evalstore.Client is closed: open a new one")
            n = sum(weight(r) for r in records)
            self._counts["logged"] += n
            self._counts["sent"] += n
        batches, unbuilt = build(records)
        receipts = []
        try:
            for _members, error in unbuilt:
                raise error
            for batch in batches:
                receipts.append(self._deliver(batch))
        except Exception as error:
            with self._lock:
                self._counts["failed"] += n
                self._last_error = str(error)
            raise
        with self._lock:
            self._counts["acknowledged"] += n
        return receipts

    # ----------------------------------------------------------------- lifecycle

    def stats(self) -> ClientStats:
        """The counts so far (see :class:`ClientStats`)."""
        with self._lock:
            return ClientStats(
                **self._counts,
                pending=self._buffered + self._in_flight,
                last_error=self._last_error,
            )

    def close(self, timeout: float | None = None) -> ClientStats:
        """Send what is buffered and stop; wait at most ``timeout`` seconds (default the
        client's ``close_timeout``). Records still unsent then are counted as dropped.
        Returns the final :meth:`stats`. Closing twice is harmless."""
        timeout = self._close_timeout if timeout is None else timeout
        with self._lock:
            already = self._closing
            self._closing = True
            self._has_work.notify_all()
            self._has_room.notify_all()
        if self._thread is not None and not already:
            atexit.unregister(self._at_exit)
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._abandon.set()  # stop retrying; what is left is dropped
                with self._lock:
                    while self._buffer:
                        self._discard_oldest()
                self._thread.join(1.0)
        if not already:
            self._transport.close()
        return self.stats()

    def _at_exit(self) -> None:
        self.close()


class _Abandoned(Exception):
    """The client was closed while a batch waited to be retried."""
