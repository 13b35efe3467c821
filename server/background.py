"""A daemon thread a server component runs while the app is up (snapshot, checkpoints)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    """Runs ``self._loop()`` on a daemon thread named ``thread_name`` between :meth:`start`
    and :meth:`stop`; the loop waits on ``self._stop`` so that stopping is prompt."""

    thread_name = "evalstore-background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @abstractmethod
    def _loop(self) -> None:
        """The thread's work, until ``self._stop`` is set."""
