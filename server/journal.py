"""Journaled ingest: a request is durable in ``<store>.journal`` and answered there; an
applier moves many requests into DuckDB per transaction.

The group commit (:mod:`server.group_commit`) writes each group in one DuckDB transaction,
and a DuckDB commit costs the writer about 8 ms of CPU whatever its size: that, not the
fsync, bounds single-example ingest. :class:`JournaledCommitter` keeps the group commit's
queue and its one writer thread, but the writer does not write DuckDB:

1. it validates the group as the group commit does (each request planned on its own, its
   rows converted to the table's columns and checked, its ids checked against the stored
   keys and those journaled but not yet applied, a client batch key against the stored
   and journaled ones: :func:`evalstore.core.journal_prepare.prepare_group`); a request
   that may fail a check, or is not a small append, takes the *direct lane*: the journal
   is applied first, then it is written by ``execute_group`` as without a journal, so its
   answer (an error, or a receipt) is exactly the group commit's;
2. it appends the accepted requests of the group to the journal as one record
   (:mod:`evalstore.core.journal`: length, CRC-32, converted rows as Arrow IPC, each
   request's batch id and receipt details) with one ``fdatasync``, and answers them: the
   receipt (with its final batch id, taken from a block reserved in DuckDB's sequence)
   means durable;
3. an applier thread applies the journaled records every ``apply_every`` seconds (or
   sooner past ``apply_rows`` rows, or when asked to drain), all of them in one DuckDB
   transaction holding one ``evalstore.batches`` row per request; the journal is emptied
   once everything in it is applied (at most every ``truncate_bytes``, and at close).

Rows become visible to reads when applied: the ack-to-visibility lag (``status()``'s
``lag_ms``) is about ``apply_every``. :meth:`drain` waits until every answered request
is applied (the direct lane, and the server's shutdown, call it). After a crash,
:func:`evalstore.open` (so the next server start) applies what the journal holds past
what DuckDB has (:func:`evalstore.core.journal.replay`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from evalstore.core.ingest_group import Item, execute_group
from evalstore.core.ingest_write import Receipt
from evalstore.core.journal import Entry, JournalFile, apply, journal_path
from evalstore.core.journal_prepare import JOURNAL_ROWS, WriterState, prepare_group
from server.errors import ApiError
from server.group_commit import GroupCommitter, answer, name_os_thread

log = logging.getLogger("evalstore.server")

#: Batch ids reserved from DuckDB's sequence at a time (one small commit per block).
ID_BLOCK = 1_024
#: Seconds a request of the direct lane waits for the journal to be applied before it is
#: answered 503 (the applier retries a failing apply every second meanwhile).
DRAIN_TIMEOUT = 30.0


class JournaledCommitter(GroupCommitter):
    """The group commit with a durable journal in front of DuckDB (see the module).

    ``apply_every`` (seconds) and ``apply_rows`` pace the applier; ``journal_rows`` is
    the most rows a request may have and be journaled (larger ones: the direct lane);
    ``truncate_bytes`` the journal size past which it is emptied as soon as all of it is
    applied (else at close). Other arguments are :class:`GroupCommitter`'s.
    """

    def __init__(
        self,
        store: Any,
        *,
        apply_every: float = 0.1,
        apply_rows: int = 100_000,
        journal_rows: int = JOURNAL_ROWS,
        truncate_bytes: int = 8 * 1024 * 1024,
        **options: Any,
    ) -> None:
        if store.path is None:
            raise ValueError("a journal needs a store file (an in-memory store has none)")
        if apply_every < 0 or apply_rows < 1 or journal_rows < 1:
            raise ValueError(
                f"apply_every={apply_every!r} must be >= 0, apply_rows={apply_rows!r} and "
                f"journal_rows={journal_rows!r} >= 1"
            )
        super().__init__(store, **options)
        self._store = store
        self.apply_every = apply_every
        self.apply_rows = apply_rows
        self.journal_rows = journal_rows
        self.truncate_bytes = truncate_bytes
        with self._lock:
            self._cursor = self._connection.cursor()  # the writer's reads, without the lock
            self._cursor.execute("SET TimeZone = 'UTC'")
        self._journal = JournalFile(journal_path(store.path))
        self._file_lock = threading.Lock()  # appends vs the applier's truncation
        self._ids: deque[int] = deque()
        self._writer = WriterState(self._keys)  # writer only
        self._released: deque[dict[tuple[Any, ...], list[int]]] = deque()
        self._pending_receipts: dict[tuple[str, str, str], Receipt] = {}
        # the applier's state, under _apply_state
        self._apply_state = threading.Condition()
        self._waiting: deque[tuple[Entry, float, dict[tuple[Any, ...], list[int]]]] = deque()
        self._waiting_rows = 0
        self._seq = 0
        self._applied_seq = 0
        self._hurry = 0
        self._stop_applier = False
        self._apply_error: BaseException | None = None
        self._journaled = 0
        self._applied = 0
        self._applies = 0
        self._direct = 0
        self._apply_seconds = 0.0
        self._lags: deque[float] = deque(maxlen=10_000)
        self._applier = threading.Thread(
            target=self._apply_loop, name="evalstore-journal-apply", daemon=True
        )

    def start(self) -> None:
        with self._apply_state:
            if not self._applier.is_alive() and not self._stop_applier:
                self._applier.start()
        super().start()

    # ------------------------------------------------------------------ the writer

    def _write(self, group: list[tuple[Item, Any]]) -> list[Receipt | BaseException]:
        items = [item for item, _ in group]
        while self._released:
            self._writer.applied(self._released.popleft())
        prepared = prepare_group(
            self._cursor,
            items,
            self._writer,
            batch_ids=self._batch_ids,
            pending_keys=self._pending_receipt,
            registry_changes=self._store.registry_changes,
            journal_rows=self.journal_rows,
        )
        results: dict[int, Receipt | BaseException] = dict(prepared.results)
        if prepared.accepted:
            order = sorted(prepared.accepted)
            requests = [prepared.accepted[i] for i in order]
            with self._file_lock:
                seq = self._seq + 1
                entry = Entry(seq, requests, prepared.segments)
                try:
                    self._journal.append([entry.encode()])
                except OSError as error:
                    self._writer.forget(prepared.hashes)
                    failed = ApiError(
                        503,
                        "journal_unavailable",
                        f"the ingest journal could not be written ({error}); nothing of "
                        "this request was stored: retry later",
                    )
                    results.update({i: failed for i in order})
                    requests = []
                else:
                    self._seq = seq
            if requests:
                acked = time.perf_counter()
                for request in requests:
                    if request.batch_key is not None:
                        key = (request.model, request.kind, request.batch_key)
                        self._pending_receipts[key] = request.receipt()
                with self._apply_state:
                    self._waiting.append((entry, acked, prepared.hashes))
                    self._waiting_rows += sum(r.rows for r in requests)
                    self._journaled += len(requests)
                    self._apply_state.notify_all()
                answers = []
                for index, request in zip(order, requests, strict=True):
                    receipt = request.receipt()
                    results[index] = receipt
                    answers.append((group[index][1], receipt))
                answer(answers)  # answered now: durable
        if prepared.direct and not self.drain(DRAIN_TIMEOUT):
            failed = ApiError(
                503,
                "journal_not_applied",
                "the ingest journal could not be applied to the store within "
                f"{DRAIN_TIMEOUT:g} s ({self._apply_error}); nothing of this request was "
                "stored: retry later",
                headers={"Retry-After": str(self.retry_after)},
            )
            results.update({i: failed for i in prepared.direct})
        elif prepared.direct:
            direct = [items[i] for i in prepared.direct]
            with self._lock:
                written = execute_group(self._connection, direct, stored_keys=self._keys)
            if any(not isinstance(r, BaseException) for r in written):
                self._ids.clear()  # later journal ids must follow the direct lane's
                self._writer.written_directly()  # plans and key sets catch up
            self._direct += len(direct)
            results.update(zip(prepared.direct, written, strict=True))
            self._notify({i.call.model for i, r in zip(direct, written, strict=True)
                          if not isinstance(r, BaseException)})  # fmt: skip
        return [results[i] for i in range(len(items))]

    def _batch_ids(self, n: int) -> list[int]:
        """``n`` batch ids, increasing, from a block reserved in DuckDB's sequence."""
        if len(self._ids) < n:
            with self._lock:
                rows = self._connection.execute(
                    "SELECT nextval('evalstore.batch_ids') FROM range(?)", [max(n, ID_BLOCK)]
                ).fetchall()
            self._ids = deque(sorted(row[0] for row in rows))
        return [self._ids.popleft() for _ in range(n)]

    def _pending_receipt(self, model: str, kind: str, key: str) -> Receipt | None:
        return self._pending_receipts.get((model, kind, key))

    # ------------------------------------------------------------------ the applier

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every request answered so far is applied to DuckDB; return whether
        it is (False after ``timeout`` seconds, or if the applier stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._apply_state:
            target = self._seq
            self._hurry += 1
            self._apply_state.notify_all()
            try:
                while self._applied_seq < target and self._applier.is_alive():
                    if deadline is not None and time.monotonic() >= deadline:
                        return False
                    self._apply_state.wait(0.5)
                return self._applied_seq >= target
            finally:
                self._hurry -= 1

    def _apply_loop(self) -> None:
        name_os_thread("es-applier")
        while True:
            with self._apply_state:
                while not self._waiting and not self._stop_applier:
                    self._apply_state.wait()
                if not self._waiting:
                    return
                deadline = self._waiting[0][1] + self.apply_every
                while (
                    not self._hurry
                    and not self._stop_applier
                    and self._waiting_rows < self.apply_rows
                    and (left := deadline - time.perf_counter()) > 0
                ):
                    self._apply_state.wait(left)
                taken = list(self._waiting)
            started = time.perf_counter()
            try:
                with self._lock:
                    models = apply(self._connection, [entry for entry, _, _ in taken])
            except Exception as error:  # kept journaled: retried, and replayed at restart
                log.exception("applying the ingest journal failed; retrying in 1 s")
                with self._apply_state:
                    self._apply_error = error
                    if self._stop_applier:  # the next start replays it
                        return
                    self._apply_state.wait(1.0)
                continue
            visible = time.perf_counter()
            requests = [r for entry, _, _ in taken for r in entry.requests]
            for request in requests:
                if request.batch_key is not None:
                    key = (request.model, request.kind, request.batch_key)
                    self._pending_receipts.pop(key, None)
            for _, _, hashes in taken:
                self._released.append(hashes)
            with self._apply_state:
                for _ in taken:
                    self._waiting.popleft()
                self._waiting_rows -= sum(r.rows for r in requests)
                self._applied_seq = taken[-1][0].seq
                self._applied += len(requests)
                self._applies += 1
                self._apply_seconds += visible - started
                self._apply_error = None
                self._lags.extend(
                    visible - acked for entry, acked, _ in taken for _ in entry.requests
                )
                self._apply_state.notify_all()
            self._truncate_if_applied(self.truncate_bytes)
            self._notify(models)

    def _truncate_if_applied(self, limit: int) -> None:
        """Empty the journal if it is past ``limit`` bytes and all of it is applied."""
        with self._file_lock:
            if self._journal.size > limit and self._applied_seq == self._seq:
                self._journal.truncate(0)

    # ------------------------------------------------------------------ lifecycle

    def status(self) -> dict[str, Any]:
        """The group commit's counters plus the journal's: requests ``journaled`` and
        ``applied``, ``applies`` (DuckDB transactions), requests sent to the ``direct``
        lane, the journal's size, and the ack-to-visibility lag (p50, p95, ms) of the
        last 10,000 applied requests."""
        body = super().status()
        with self._apply_state:
            lags = sorted(self._lags)
            body["journal"] = {
                "path": str(self._journal.path),
                "journaled": self._journaled,
                "applied": self._applied,
                "waiting": self._journaled - self._applied,
                "applies": self._applies,
                "direct": self._direct,
                "apply_seconds": round(self._apply_seconds, 3),
                "bytes": self._journal.size,
                "apply_error": None if self._apply_error is None else str(self._apply_error),
                "lag_ms": {
                    "p50": _quantile(lags, 0.5),
                    "p95": _quantile(lags, 0.95),
                },
            }
        return body

    def close(self) -> None:
        """Refuse new requests, write and answer the queued ones, apply the journal and
        empty it."""
        super().close()
        with self._apply_state:
            if self._stop_applier:
                return  # closed already
            self._stop_applier = True
            self._apply_state.notify_all()
        if self._applier.is_alive():
            self._applier.join()
        self._truncate_if_applied(-1)
        self._journal.close()
        self._cursor.close()


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 2)
