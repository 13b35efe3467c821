"""The server's monitor loop: monitors evaluated on ingest and on a schedule, notifications sent.

``evalstore serve`` runs one :class:`MonitorLoop` thread (issue 26 point 6). It wakes:

- **after ingest**: the group commit (:mod:`server.group_commit`) calls :meth:`notify`
  with the models of each committed group; a model's monitors run ``debounce`` seconds
  (1 s) after its last commit, and at the latest ``max_delay`` seconds (5 s) after the
  first commit not yet evaluated, so a steady stream of small batches is evaluated every
  few seconds instead of after every batch, or never;
- **on a schedule**: every ``every`` seconds (``--monitor-every``, default 60) it runs
  the monitors of every model; the first pass runs when the server starts (it catches
  up on what arrived while it was down);
- **when a notification is due**: after the backoff of a failed delivery;
- **at once, for invalid values** (the fast path): after each commit, the model's
  monitors of an invalid-value check (quality ``nan``, ``posinf``, ``neginf``,
  ``out_of_range``, ``unseen``) are screened against the serving rows committed since the
  last look (:class:`evalstore.monitors.screen.Screen`: a query over those few rows and
  the reference's range and categories, kept between commits); the ones a row triggers
  run right away, without waiting for the debounce, and their notifications are sent as
  soon as their transaction commits. The screen runs between two monitors of a pass too,
  so a long pass delays it by one monitor at most. Regular passes run the fast monitors
  first.

Each pass, per model: :func:`evalstore.monitors.run.run_monitors` (each monitor in its
own transaction; a failing monitor records its ``last_error`` and the others run; a
monitor whose run fired or resolved an alert has its notifications sent before the next
monitor runs), then the rest of the outbox
(:func:`evalstore.monitors.outbox.deliver_due`, its backoff and bounded attempts), then
what ``/metrics`` serves from stored values: the feature histograms
(:mod:`server.feature_histograms`, counted incrementally on every pass) and, on the
scheduled passes, the model's default quality call kept in the metric history
(``quality(model)`` with every default, persisted: the invalid-value counters of
:mod:`server.prom`; a coupled call, recomputed whole when anything changed, so not on
every ingest). Everything runs on a session of its own
(:meth:`evalstore.Store.session`), never on the store's writer connection, so a slow
monitor never blocks ingest; an error in any step is logged and counted
(``evalstore_monitor_loop_errors_total`` on ``/metrics``), and the loop goes on.

``POST /v1/models/{model}/monitors/run`` calls :meth:`run_once`, in turn with the loop
(one pass at a time: two passes would race for the same alert cursors). :meth:`stop`
(on SIGTERM, from the app's lifespan) lets the running monitor finish — the loop checks
for the stop between monitors — and interrupts its DuckDB work after ``grace`` seconds
(that monitor's transaction is rolled back; its alert state is the stored one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.monitors.screen import Screen, is_fast
from server.background import BackgroundLoop
from server.feature_histograms import FeatureHistograms

log = logging.getLogger("evalstore.server")

#: Seconds after a model's last commit before its monitors run, and at most after its first.
DEBOUNCE = 1.0
MAX_DELAY = 5.0
#: Seconds a running monitor may go on after :meth:`MonitorLoop.stop` before it is interrupted.
GRACE = 10.0
#: Most notifications sent per delivery round (more rounds follow at once while some are due).
DELIVER_BATCH = 100


class MonitorLoop(BackgroundLoop):
    """Evaluates ``store``'s monitors on ingest and every ``every`` seconds; see the module.

    ``every`` 0 runs nothing in the background (:meth:`start` does not start a thread):
    monitors then run only on request (``POST …/monitors/run``) or from cron
    (``evalstore monitor run``). ``fast`` False turns the invalid-value fast path off
    (those monitors then wait for the debounced pass). ``deliver`` holds options of
    :func:`evalstore.monitors.outbox.deliver_due` (``max_attempts``, ``base_delay``,
    ``max_delay``).
    """

    thread_name = "evalstore-monitors"

    def __init__(
        self,
        store: Any,
        every: float = 60.0,
        *,
        debounce: float = DEBOUNCE,
        max_delay: float = MAX_DELAY,
        grace: float = GRACE,
        deliver: dict[str, Any] | None = None,
        fast: bool = True,
    ) -> None:
        super().__init__()
        if every < 0 or debounce < 0 or max_delay < debounce:
            raise ValueError(
                f"every={every!r} and debounce={debounce!r} must be >= 0 and "
                f"max_delay={max_delay!r} >= debounce"
            )
        self.store = store
        self.every = every
        self.debounce = debounce
        self.max_delay = max_delay
        self.grace = grace
        self.deliver_options = dict(deliver or {})
        self.histograms = FeatureHistograms()
        self.fast = fast
        self.screen = Screen()
        self._fresh: set[str] = set()  # models with commits not screened yet
        self._fast_runs = 0
        self._pass_lock = threading.Lock()  # one pass at a time: loop or request
        self._wake = threading.Condition()
        self._dirty: dict[str, tuple[float, float]] = {}  # model -> (first, last) commit
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._passes = 0
        self._errors = 0
        self._last_error: str | None = None
        self._last_pass: datetime | None = None

    # ------------------------------------------------------------------ triggers

    def notify(self, models: Iterable[str]) -> None:
        """Rows of ``models`` were committed: evaluate them after the debounce (nothing
        when the loop is off)."""
        if self.every <= 0:
            return
        now = time.monotonic()
        with self._wake:
            for model in models:
                first, _ = self._dirty.get(model, (now, now))
                self._dirty[model] = (first, now)
                if self.fast:
                    self._fresh.add(model)
            self._wake.notify()

    def run_once(self, model: str | None = None, names: Sequence[str] | None = None) -> pa.Table:
        """One pass now, in turn with the loop: the monitors of ``model`` (or all; only
        ``names`` if given), then the due notifications. Returns
        :func:`~evalstore.monitors.run.run_monitors`' table. Raises what it raises for
        bad arguments (an unknown name); a failing monitor is a row with its error."""
        with self._pass_lock, self.store.session() as session:
            from evalstore.monitors import run

            table = run.run_monitors(session._context(), model, names=names)
            self._deliver(session)
            return table

    def status(self) -> dict[str, Any]:
        """The schedule, passes made, fast-path runs (screens that ran some monitors),
        errors met and the last one (``/metrics`` shows the passes and errors)."""
        with self._wake:
            return {
                "every": self.every,
                "running": self._thread is not None,
                "passes": self._passes,
                "fast_runs": self._fast_runs,
                "errors": self._errors,
                "last_pass": None if self._last_pass is None else self._last_pass.isoformat(),
                "last_error": self._last_error,
                "waiting": sorted(self._dirty),
            }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.every > 0:
            super().start()

    def stop(self) -> None:
        """Stop after the running monitor (interrupted after ``grace`` seconds)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        thread = self._thread
        if thread is None:
            return
        thread.join(self.grace)
        if thread.is_alive():
            connection = self._connection
            if connection is not None:
                with suppress(duckdb.Error):  # closed meanwhile
                    connection.interrupt()
            thread.join()
        self._thread = None

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        next_pass = time.monotonic()  # a first pass at start
        next_delivery = float("inf")
        while not self._stop.is_set():
            with self._wake:
                fresh = sorted(self._fresh)
                self._fresh.clear()
            if fresh:
                self._guarded(self._screen_alone, fresh)
            now = time.monotonic()
            with self._wake:
                due = sorted(m for m, times in self._dirty.items() if self._due(times) <= now)
                for model in due:
                    del self._dirty[model]
            everything = now >= next_pass
            if everything:
                next_pass = now + self.every
                self._pass(None)
            elif due:
                for model in due:
                    if self._stop.is_set():
                        break
                    self._pass(model)
            elif now >= next_delivery:
                self._guarded(self._deliver_alone)
            # a delivery that keeps failing at once must not spin the loop
            next_delivery = max(self._next_delivery(), time.monotonic() + 0.25)
            with self._wake:
                wake = min([next_pass, next_delivery, *map(self._due, self._dirty.values())])
                wait = wake - time.monotonic()
                if wait > 0 and not self._stop.is_set() and not self._fresh:
                    self._wake.wait(wait)

    def _due(self, times: tuple[float, float]) -> float:
        first, last = times
        return min(last + self.debounce, first + self.max_delay)

    def _pass(self, model: str | None) -> None:
        """Monitors (of ``model``, or all), then delivery, then the stored Prometheus
        figures; each step's error logged and counted, never raised."""
        with self._pass_lock, self.store.session() as session:
            self._connection = session.connection
            try:
                models = self._guarded(self._models, session, model) or []
                for name in models:
                    if self._stop.is_set():
                        return
                    self._guarded(self._run_model, session, name)
                self._guarded(self._deliver, session)
                for name in models:
                    if self._stop.is_set():
                        return
                    self._guarded(self._refresh_figures, session, name, model is None)
            finally:
                self._connection = None
        with self._wake:
            self._passes += 1
            self._last_pass = datetime.now(UTC)

    def _guarded(self, step: Any, *args: Any) -> Any:
        try:
            return step(*args)
        except Exception as error:
            if self._stop.is_set() and isinstance(error, duckdb.InterruptException):
                return None
            log.exception("monitor loop: %s failed", getattr(step, "__name__", step))
            with self._wake:
                self._errors += 1
                self._last_error = f"{type(error).__name__}: {error}"[:2000]
            return None

    @staticmethod
    def _models(session: Any, model: str | None) -> list[str]:
        rows = session.connection.execute(
            "SELECT DISTINCT model FROM evalstore.models ORDER BY model"
        ).fetchall()
        known = [m for (m,) in rows]
        return known if model is None else [m for m in known if m == model]

    def _run_model(self, session: Any, model: str) -> None:
        """The model's enabled monitors, one at a time, the fast ones first (stopping
        between two, and screening fresh commits between two)."""
        from evalstore.monitors import catalog

        context = session._context()
        with context.lock:
            monitors = [m for m in catalog.stored(context.connection, model) if m.enabled]
        monitors.sort(key=lambda m: not is_fast(m))  # stable: by name within each group
        for monitor in monitors:
            if self._stop.is_set():
                return
            self._guarded(self._screen_fresh, session)
            self._run_names(session, model, [monitor.name])

    def _run_names(self, session: Any, model: str, names: list[str]) -> None:
        """Run the monitors ``names`` of ``model``; send the notifications at once when a
        run fired or resolved an alert."""
        from evalstore.monitors import run

        table = run.run_monitors(session._context(), model, names=names)
        notify = False
        for row in table.to_pylist():
            if row["verdict"] == "error":
                log.warning("monitor %s failed: %s", row["monitor"], row["error"])
            notify = notify or any(t in ("fired", "resolved") for t in row["transitions"])
        if notify:
            self._deliver(session)

    def _screen_alone(self, models: list[str]) -> None:
        with self._pass_lock, self.store.session() as session:
            self._connection = session.connection
            try:
                self._screen_fresh(session, models)
            finally:
                self._connection = None

    def _screen_fresh(self, session: Any, models: list[str] | None = None) -> None:
        """The fast path: screen ``models`` (default: those committed to since the last
        screen) and run the invalid-value monitors their new rows trigger (see the module
        docstring)."""
        from evalstore.monitors import catalog

        if models is None:
            with self._wake:
                models = sorted(self._fresh)
                self._fresh.clear()
        context = session._context()
        for model in models:
            if self._stop.is_set():
                return
            with context.lock:
                monitors = catalog.stored(context.connection, model)
                names = self.screen.check(context.connection, model, monitors)
            if names:
                self._run_names(session, model, names)
                with self._wake:
                    self._fast_runs += 1

    def _deliver(self, session: Any) -> None:
        """Send the due notifications, round after round while full rounds come back."""
        from evalstore.monitors import outbox

        context = session._context()
        options = {"limit": DELIVER_BATCH, **self.deliver_options}
        while not self._stop.is_set():
            with context.lock:
                done = outbox.deliver_due(context.connection, **options)
            for delivery in done:
                if delivery.error is not None:
                    log.warning(
                        "notification %s of alert %s to channel %s: %s (%s)",
                        delivery.outbox_id, delivery.alert_id, delivery.channel,
                        delivery.error, delivery.state,
                    )  # fmt: skip
            if len(done) < options["limit"]:
                return

    def _deliver_alone(self) -> None:
        with self._pass_lock, self.store.session() as session:
            self._deliver(session)

    def _next_delivery(self) -> float:
        """When (monotonic) the earliest waiting notification is due, or infinity."""
        try:
            with self.store.session() as session:
                (at,) = session.connection.execute(
                    "SELECT min(next_attempt_at) FROM evalstore.outbox WHERE state = 'due'"
                ).fetchall()[0]
        except duckdb.Error:
            return float("inf")
        if at is None:
            return float("inf")
        seconds = (at - datetime.now(UTC)).total_seconds()
        return time.monotonic() + max(seconds, 0.0)

    def _refresh_figures(self, session: Any, model: str, scheduled: bool) -> None:
        """What ``/metrics`` serves for ``model``: the histograms (incremental: every
        pass) and the stored default quality call (a coupled call, recomputed whole when
        anything changed: on the scheduled passes only, so a stream of small batches
        does not recompute it every few seconds)."""
        from evalstore.monitors import history

        self.histograms.refresh(session.connection, model)
        if scheduled:
            history.persisted(session._context(), "quality", model, {})
