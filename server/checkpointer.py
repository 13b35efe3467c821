"""Background checkpoints: fold the write-ahead log into the store file while ingest pauses.

A DuckDB commit appends the batch to the write-ahead log (WAL) and fsyncs it: the batch is
durable from then on. Folding the log into the compressed table storage (a *checkpoint*)
is separate work, which DuckDB by default does inside the commit that makes the log exceed
``checkpoint_threshold`` (16 MiB). For a stream of 100,000-row batches that is every other
batch, and the batch that triggers it waits ~0.17 s longer (a third of its time).

The server moves that work off the ingest path:

- it raises ``checkpoint_threshold`` to ``wal_limit`` (default 1 GiB), which still bounds
  the log's size and hence the time a restart needs to replay it;
- a daemon thread watches the log file and runs ``CHECKPOINT`` once it has stopped growing
  for ``idle`` seconds (no batch committed meanwhile). DuckDB 2 checkpoints while readers
  run; a commit arriving during the checkpoint waits for it, which is why the thread waits
  for a pause instead of checkpointing on a timer;
- closing the store (server shutdown) checkpoints whatever is left.

Nothing changes for readers or for durability: a committed batch is in the log either way.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from evalstore.errors import InvalidParameterError
from server.background import BackgroundLoop

log = logging.getLogger("evalstore.server")

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def check_size(value: str, parameter: str = "wal_limit") -> str:
    """``value`` if it is a DuckDB memory size such as ``'512MB'`` or ``'1GiB'``.

    >>> check_size("1GiB")
    '1GiB'
    >>> check_size("1; DROP TABLE x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    evalstore.errors.InvalidParameterError: wal_limit='1; DROP TABLE x' is not a size; ...
    """
    if not isinstance(value, str) or not _SIZE.match(value):
        raise InvalidParameterError(
            f"{parameter}={value!r} is not a size; use a number and a unit, e.g. '512MB' or '1GiB'"
        )
    return value.strip()


class Checkpointer(BackgroundLoop):
    """Checkpoints ``store`` on a daemon thread once its WAL has been idle for ``idle`` s."""

    thread_name = "evalstore-checkpoint"

    def __init__(self, store: Any, idle: float = 1.0, wal_limit: str = "1GiB") -> None:
        super().__init__()
        if idle <= 0:
            raise InvalidParameterError(f"checkpoint idle={idle!r} must be a positive number of s")
        self.store = store
        self.idle = float(idle)
        self.wal_limit = check_size(wal_limit)
        self.wal = None if store.path is None else Path(f"{store.path}.wal")
        self.count = 0
        self.seconds = 0.0
        self.last: dict[str, Any] | None = None
        self.error: str | None = None

    def configure(self) -> None:
        """Raise DuckDB's automatic checkpoint threshold to ``wal_limit`` (before lockdown)."""
        self.store.connection.execute(f"SET checkpoint_threshold = '{self.wal_limit}'")

    def wal_bytes(self) -> int:
        """Size of the write-ahead log now (0 when there is none: nothing to fold in)."""
        try:
            return 0 if self.wal is None else self.wal.stat().st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self) -> dict[str, Any]:
        """Run ``CHECKPOINT`` now, on a cursor of its own; return what it did."""
        before = self.wal_bytes()
        started = time.perf_counter()
        cursor = self.store.connection.cursor()
        try:
            cursor.execute("CHECKPOINT")
        finally:
            cursor.close()
        seconds = time.perf_counter() - started
        self.count += 1
        self.seconds += seconds
        self.last = {
            "at": datetime.now(UTC).isoformat(),
            "seconds": round(seconds, 3),
            "wal_bytes_before": before,
            "wal_bytes_after": self.wal_bytes(),
        }
        self.error = None
        return self.last

    def start(self) -> None:
        """Watch the WAL on a daemon thread (a store in memory has none: nothing to do)."""
        if self.wal is not None:
            super().start()

    def _loop(self) -> None:
        done = 0  # the log's size right after the last checkpoint: nothing new to fold in
        size, since = self.wal_bytes(), time.monotonic()
        while not self._stop.wait(min(self.idle / 2, 0.5)):
            now_size = self.wal_bytes()
            if now_size != size:  # a batch was committed: wait for the pause
                size, since = now_size, time.monotonic()
            elif size != done and time.monotonic() - since >= self.idle:
                try:
                    self.checkpoint()
                except duckdb.Error as error:  # keep serving; retry after the next pause
                    self.error = f"{type(error).__name__}: {error}"
                    log.warning("background checkpoint failed: %s", self.error)
                else:
                    done = self.wal_bytes()
                size, since = self.wal_bytes(), time.monotonic()

    def status(self) -> dict[str, Any]:
        return {
            "idle_seconds": self.idle,
            "wal_limit": self.wal_limit,
            "wal_bytes": self.wal_bytes(),
            "checkpoints": self.count,
            "seconds_total": round(self.seconds, 3),
            "last": self.last,
            "error": self.error,
        }
