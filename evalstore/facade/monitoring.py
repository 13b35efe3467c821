"""Monitors, alerts and notification channels on the :class:`~evalstore.Store`:
:class:`MonitoringMethods`.

Each method hands the store's :class:`~evalstore.core.context.Context` to
:mod:`evalstore.monitors` (``definitions``, ``run``, ``backtest``, ``alerts``,
``channels``, ``outbox``); docs/monitoring.md describes the feature as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.errors import InvalidParameterError, translate_duckdb_errors

if TYPE_CHECKING:
    import threading

    from evalstore.core.context import Context
    from evalstore.monitors.definitions import Monitor
    from evalstore.store import Store


@translate_duckdb_errors
class MonitoringMethods:
    """The monitoring methods of :class:`~evalstore.Store` (a mixin; see
    :mod:`evalstore.facade`). Relies on the store's ``_context()``, ``_writable()``,
    ``_lock`` and ``session()``."""

    if TYPE_CHECKING:
        _lock: threading.RLock

        def _context(self) -> Context: ...

        def _writable(self) -> None: ...

        def session(self) -> Store: ...

    # ------------------------------------------------------------------ definitions

    def add_monitor(
        self,
        name: str,
        model: str,
        family: str,
        metric: str,
        rule: Mapping[str, Any] | str,
        *,
        subjects: str | Sequence[str] | None = "*",
        window: str = "1 day",
        reference: Any = None,
        where: str | None = None,
        version: str | None = None,
        options: Mapping[str, Any] | None = None,
        learn_period: Sequence[Any] | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Define a monitor: what to compute and the rule that turns it into alerts.

        ``family`` is ``drift``, ``quality`` or ``performance`` (kept in the metric
        history), or ``health``, ``skew``, ``summary_stats`` or ``estimated_performance``
        (computed fresh on each run); ``metric`` a drift method (``psi``, ``ks``...), a
        quality check (``out_of_range``, ``nan``...), a performance metric of the model's
        task (``roc_auc``...), a health or skew metric, a summary statistic (``mean``,
        ``q0.95``...) or a metric the task's estimate gives (``roc_auc``, ``mae``...).
        ``subjects``: features (drift, quality, skew, summary_stats), versions
        (performance, estimated_performance; health's version metrics) or ingest
        streams (health), or ``'*'`` for every one.
        ``window`` is a time interval; ``reference``, ``where``, ``version`` and
        ``options`` (other keyword parameters of the family) are those of the family
        call. ``rule`` is a rule definition (docs/monitoring.md#rule-types);
        ``learn_period=(start, end)`` is required by a ``learned`` rule. Everything is
        checked before anything is stored; returns the definition (version 1).

        >>> import evalstore, pyarrow as pa
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> _ = store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0]}))
        >>> row = store.add_monitor("x_psi", "m", "drift", "psi",
        ...                         {"type": "fixed", "direction": "above", "value": 0.2},
        ...                         subjects=["x"])
        >>> row["definition_version"], row["rule"]["value"]
        (1, 0.2)
        >>> store.close()
        """
        from evalstore.monitors import catalog, definitions

        self._writable()
        ctx = self._context()
        monitor = definitions.check(
            ctx, name, model, family, metric, rule, subjects=subjects, window=window,
            reference=reference, where=where, version=version, options=options,
            learn_period=learn_period, enabled=enabled,
        )  # fmt: skip
        return _as_dict(catalog.add(ctx, monitor))

    def monitors(self, model: str | None = None) -> pa.Table:
        """The monitors (of ``model``), by name: definition (``rule`` and ``options`` as
        JSON text), ``definition_version``, ``enabled``, ``last_run``, ``last_error``."""
        from evalstore.monitors import catalog

        ctx = self._context()
        with ctx.lock:
            return catalog.list_monitors(ctx.connection, model)

    def update_monitor(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change fields of monitor ``name`` (those of :meth:`add_monitor`); the new
        definition is checked whole. Its ``definition_version`` goes up by one unless
        only ``enabled`` changed; its alert state carries over (new episodes record the
        new version).

        >>> import evalstore, pyarrow as pa
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> _ = store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0]}))
        >>> _ = store.add_monitor("x_psi", "m", "drift", "psi",
        ...                       {"type": "fixed", "direction": "above", "value": 0.2})
        >>> store.update_monitor("x_psi", rule={"type": "trailing", "n": 14})["definition_version"]
        2
        >>> store.close()
        """
        from evalstore.monitors import catalog

        self._writable()
        return _as_dict(catalog.update(self._context(), name, changes))

    def delete_monitor(self, name: str) -> None:
        """Delete monitor ``name`` and its alert cursors; its open alerts are closed as
        resolved, without a notification (resolved alerts stay)."""
        from evalstore.monitors import catalog

        self._writable()
        catalog.delete(self._context(), name)

    def apply_monitors(
        self, monitors: str | Mapping[str, Mapping[str, Any]], *, dry_run: bool = False
    ) -> pa.Table:
        """Make the stored monitors match ``monitors`` (monitors as code): a TOML text
        with one ``[monitors.<name>]`` table per monitor, or the same as a mapping
        ``{name: fields of add_monitor}``. Creates, updates (version + 1) and deletes
        (monitors not listed) in one transaction, after checking every definition; with
        ``dry_run`` writes nothing. Returns the plan: action (create, update, delete,
        unchanged), name, the changed fields and the diff line; applying the same
        definitions again changes nothing. See :mod:`evalstore.monitors.apply`.
        """
        from evalstore.monitors import apply

        wanted = (
            apply.parse(monitors) if isinstance(monitors, str) else apply.from_mapping(monitors)
        )
        if not dry_run:
            self._writable()
        ctx = self._context()
        changes = apply.plan(ctx, wanted)
        if not dry_run:
            apply.apply(ctx, changes)
        return apply.table(changes)

    def add_default_monitors(
        self,
        model: str,
        *,
        window: str = "1 day",
        reference: Any = "training",
        replace: bool = False,
    ) -> pa.Table:
        """Create the default monitors of ``model`` (the ML Test Score set: headline
        performance per version, drift per feature, NaN/inf, out-of-range and unseen
        categories; see :mod:`evalstore.monitors.defaults`), named
        ``<model>.<family>.<metric>``. Idempotent: existing ones with the same definition
        are unchanged, differing ones kept unless ``replace=True``. Returns their
        definitions (the columns of :meth:`monitors`) with a ``change`` column.

        >>> import evalstore, pyarrow as pa
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> _ = store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0]}))
        >>> names = store.add_default_monitors("m").column("name").to_pylist()
        >>> [name for name in names if ".health." not in name]  # doctest: +NORMALIZE_WHITESPACE
        ['m.drift.wasserstein', 'm.performance.roc_auc', 'm.quality.nan', 'm.quality.neginf',
         'm.quality.out_of_range', 'm.quality.posinf']
        >>> set(store.add_default_monitors("m").column("change").to_pylist())
        {'unchanged'}
        >>> store.close()
        """
        from evalstore.monitors import defaults

        self._writable()
        return defaults.add_default_monitors(
            self._context(), model, window=window, reference=reference, replace=replace
        )

    # ------------------------------------------------------------------ running

    def run_monitors(
        self,
        model: str | None = None,
        now: Any = None,
        *,
        names: Sequence[str] | None = None,
    ) -> pa.Table:
        """Run every enabled monitor (of ``model``, or those in ``names``) once, on a
        session (ingest is not blocked); see :func:`evalstore.monitors.run.run_monitors`.

        Each monitor's metric goes through the metric history (only touched windows are
        recomputed), its verdicts advance the alert state, and the alerts and their
        notifications (the outbox) are committed together. Returns one row per monitor
        and subject: the latest window's ``verdict``, this run's ``transitions`` and the
        current alert; a failing monitor gives a row with ``verdict`` 'error' (and keeps
        ``last_error``) while the others run. Notifications are sent by
        :meth:`deliver_notifications`.
        """
        from evalstore.monitors import run

        self._writable()
        with self.session() as session:
            return run.run_monitors(session._context(), model, now, names=names)

    def backtest_monitor(
        self,
        monitor: str | Mapping[str, Any],
        since: Any = None,
        until: Any = None,
    ) -> pa.Table:
        """When a monitor would have fired and resolved over the stored data, windows
        starting in ``[since, until)``: one row per episode (see
        :func:`evalstore.monitors.backtest.backtest_monitor`). ``monitor`` is a saved
        monitor's name or an unsaved definition: a mapping of :meth:`add_monitor`'s
        arguments (``name`` optional). Writes nothing.
        """
        from evalstore.monitors import backtest, catalog

        ctx = self._context()
        if isinstance(monitor, str):
            with ctx.lock:
                definition = catalog.require(ctx.connection, monitor)
        elif isinstance(monitor, Mapping):
            definition = _unsaved(ctx, monitor)
        else:
            raise InvalidParameterError(
                f"monitor={monitor!r} must be a saved monitor's name or a definition (a mapping)"
            )
        return backtest.backtest_monitor(ctx, definition, since, until)

    # ------------------------------------------------------------------ alerts

    def alerts(
        self,
        model: str | None = None,
        state: str | None = None,
        *,
        monitor: str | None = None,
        limit: int = 10_000,
    ) -> pa.Table:
        """Alert episodes, newest first (columns of ``evalstore.alerts``), optionally of
        one ``model``, ``monitor`` or ``state`` (pending, firing, resolved)."""
        from evalstore.monitors import alerts

        ctx = self._context()
        with ctx.lock:
            return alerts.list_alerts(
                ctx.connection, model=model, monitor=monitor, state=state, limit=limit
            )

    def acknowledge_alert(self, alert_id: int, by: str) -> dict[str, Any]:
        """Acknowledge a pending or firing alert (``by``: who); its state is unchanged.
        Returns the alert's fields."""
        from evalstore.monitors import alerts

        self._writable()
        ctx = self._context()
        with ctx.lock:
            return _episode(alerts.acknowledge_alert(ctx.connection, alert_id, by))

    def silence_alert(self, alert_id: int, until: Any) -> dict[str, Any]:
        """Send no notification for this alert's changes (and later episodes of its
        monitor and subject) until ``until`` (a datetime or ISO text; None lifts the
        silence). Returns the alert's fields."""
        from evalstore.core.registry import to_timestamp
        from evalstore.monitors import alerts

        self._writable()
        ctx = self._context()
        stamp = to_timestamp(until, "until")
        with ctx.lock:
            return _episode(alerts.silence_alert(ctx.connection, alert_id, stamp))

    # ------------------------------------------------------------------ notifications

    def add_channel(
        self,
        name: str,
        kind: str,
        config: Mapping[str, Any],
        *,
        enabled: bool = True,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Add a notification channel: ``kind`` ``webhook`` (``config``: ``url``,
        optional ``secret_env``, ``headers``, ``timeout``) or ``command`` (``argv``,
        ``timeout``). The Python API is trusted: it may create command channels (the
        HTTP server never can). See docs/monitoring.md#channels-and-the-outbox.

        >>> import evalstore
        >>> store = evalstore.open()
        >>> store.add_channel("ops", "webhook", {"url": "http://127.0.0.1:9/hook"})["kind"]
        'webhook'
        >>> store.close()
        """
        from evalstore.monitors import channels

        self._writable()
        ctx = self._context()
        with ctx.lock:
            channel = channels.add_channel(
                ctx.connection, name, kind, config, enabled=enabled, replace=replace,
                trusted=True,
            )  # fmt: skip
        return {"name": channel.name, "kind": channel.kind, "config": channel.config,
                "enabled": channel.enabled}  # fmt: skip

    def channels(self) -> pa.Table:
        """The notification channels (name, kind, config, enabled, created_at)."""
        from evalstore.monitors import channels

        ctx = self._context()
        with ctx.lock:
            return channels.list_channels(ctx.connection)

    def delete_channel(self, name: str) -> None:
        """Delete a channel; its delivered and failed outbox rows stay."""
        from evalstore.monitors import channels

        self._writable()
        ctx = self._context()
        with ctx.lock:
            channels.delete_channel(ctx.connection, name, trusted=True)

    def deliver_notifications(self, now: Any = None, **options: Any) -> pa.Table:
        """Send the due notifications of the outbox (options of
        :func:`evalstore.monitors.outbox.deliver_due`: ``limit``, ``max_attempts``,
        ``base_delay``, ``max_delay``); one row per attempt: outbox_id, alert_id,
        channel, change, state (delivered, due, failed), attempts, error."""
        from evalstore.core.registry import to_timestamp
        from evalstore.monitors import outbox

        self._writable()
        ctx = self._context()
        stamp = to_timestamp(now, "now")
        with ctx.lock:
            done = outbox.deliver_due(ctx.connection, now=stamp, **options)
        schema = pa.schema([("outbox_id", pa.int64()), ("alert_id", pa.int64()),
                            ("channel", pa.string()), ("change", pa.string()),
                            ("state", pa.string()), ("attempts", pa.int64()),
                            ("error", pa.string())])  # fmt: skip
        return pa.Table.from_pylist([vars(d) for d in done], schema=schema)

    def outbox(self, state: str | None = None, *, limit: int = 10_000) -> pa.Table:
        """The notifications (outbox rows), newest first: channel, change, payload, state,
        attempts, delivered_at, last_error."""
        from evalstore.monitors import outbox

        ctx = self._context()
        with ctx.lock:
            return outbox.list_outbox(ctx.connection, state=state, limit=limit)


def _unsaved(ctx: Context, fields: Mapping[str, Any]) -> Monitor:
    from evalstore.monitors import definitions

    given = dict(fields)
    name = given.pop("name", "backtest")
    missing = [k for k in ("model", "family", "metric", "rule") if k not in given]
    if missing:
        raise InvalidParameterError(
            f"the monitor definition needs {', '.join(missing)} (the arguments of add_monitor)"
        )
    model, family, metric, rule = (given.pop(k) for k in ("model", "family", "metric", "rule"))
    return definitions.check(ctx, name, model, family, metric, rule, **given)


def _as_dict(monitor: Monitor) -> dict[str, Any]:
    return {**monitor.definition(), "definition_version": monitor.definition_version}


def _episode(episode: Any) -> dict[str, Any]:
    return {name: getattr(episode, name) for name in episode.__dataclass_fields__} | {
        "alert_id": episode.alert_id
    }
