"""Pictures on the :class:`~evalstore.Store`: :class:`ReportingMethods` (``store.report``
and ``store.plot``).

``store.report(model, ...)`` builds the self-contained HTML report of
:mod:`evalstore.dashboard.report`; ``store.plot.<chart>(model, ...)`` returns one chart
of :mod:`evalstore.dashboard.charts` as an Altair chart, the same picture the dashboard
shows, to restyle or save (``chart.save("drift.html")``) in a notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalstore.errors import translate_duckdb_errors

if TYPE_CHECKING:
    import altair as alt

    from evalstore.dashboard.report import Report
    from evalstore.store import Store


@translate_duckdb_errors
class ReportingMethods:
    """``report`` and ``plot`` of :class:`~evalstore.Store` (a mixin; see
    :mod:`evalstore.facade`)."""

    def report(
        self,
        model: str,
        since: Any = None,
        until: Any = None,
        *,
        window: str = "1 day",
        metric: str | None = None,
        method: str = "js",
        out: Any = None,
    ) -> Report:
        """The HTML report of ``model`` for windows starting in ``[since, until)``: the
        dashboard's panels (performance with intervals, drift heatmap, drifted features'
        distributions, data quality, label coverage, latency, throughput, alerts) in one
        file with every script and all data inlined, which opens offline. ``window`` is
        one of ``1 hour``, ``6 hours``, ``1 day``, ``7 days``; ``metric`` the performance
        metric (default: the task's headline), ``method`` the heatmap's drift method.
        ``out``: also write it there. Displays inline in Jupyter.

        Drift, quality and performance go through the metric history (a writable store
        stores their windows, as ``persist=True`` does).
        """
        from evalstore.dashboard.panels import View
        from evalstore.dashboard.report import build_report

        query = {"window": window, "metric": metric, "method": method}
        query.update(since=_text(since), until=_text(until))
        report = build_report(self, View.parse(model, query))  # type: ignore[arg-type]
        if out is not None:
            report.save(out)
        return report

    @property
    def plot(self) -> Plots:
        """The dashboard's charts as Altair charts: ``store.plot.drift(model)``,
        ``.performance``, ``.quality``, ``.coverage``, ``.latency``, ``.throughput``,
        ``.alerts``, ``.distributions``."""
        return Plots(self)  # type: ignore[arg-type]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class Plots:
    """``store.plot``: each method returns the dashboard's chart of one panel as an
    Altair chart (``window``, ``since``, ``until`` as for :meth:`ReportingMethods.report`).
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def _view(self, model: str, **query: Any) -> Any:
        from evalstore.dashboard.panels import View

        given = {k: _text(v) if k in ("since", "until") else v for k, v in query.items()}
        return View.parse(model, given)

    def performance(
        self, model: str, metric: str | None = None, window: str = "1 day",
        since: Any = None, until: Any = None,
    ) -> alt.TopLevelMixin:  # fmt: skip
        """Realized ``metric`` per version and window with its confidence band."""
        from evalstore.dashboard import panels

        view = self._view(model, metric=metric, window=window, since=since, until=until)
        return panels.performance_panel(self._store, view).chart

    def drift(
        self, model: str, method: str = "js", window: str = "1 day",
        since: Any = None, until: Any = None,
    ) -> alt.TopLevelMixin:  # fmt: skip
        """The drift heatmap (features x windows) of ``method``, drifted cells marked."""
        from evalstore.dashboard import panels

        view = self._view(model, method=method, window=window, since=since, until=until)
        return panels.drift_panel(self._store, view).chart

    def distributions(
        self, model: str, feature: str, window_start: Any, method: str = "js",
        window: str = "1 day",
    ) -> alt.TopLevelMixin:  # fmt: skip
        """Training against one window's distribution of ``feature`` (a heatmap cell)."""
        from evalstore.dashboard import panels

        view = self._view(model, method=method, window=window)
        return panels.distribution_panel(self._store, view, feature, _text(window_start)).chart

    def quality(
        self, model: str, window: str = "1 day", since: Any = None, until: Any = None
    ) -> alt.TopLevelMixin:
        """Share of serving values failing each quality check per window."""
        from evalstore.dashboard import panels

        view = self._view(model, window=window, since=since, until=until)
        return panels.quality_panel(self._store, view).chart

    def coverage(
        self, model: str, window: str = "1 day", since: Any = None, until: Any = None
    ) -> alt.TopLevelMixin:
        """Label coverage per version and window."""
        from evalstore.dashboard import panels

        view = self._view(model, window=window, since=since, until=until)
        return panels.coverage_panel(self._store, view).chart

    def latency(
        self, model: str, window: str = "1 day", since: Any = None, until: Any = None
    ) -> alt.TopLevelMixin:
        """Latency p50/p95/p99 per version and window (ms)."""
        from evalstore.dashboard import panels

        view = self._view(model, window=window, since=since, until=until)
        return panels.serving_panels(self._store, view)[0].chart

    def throughput(
        self, model: str, window: str = "1 day", since: Any = None, until: Any = None
    ) -> alt.TopLevelMixin:
        """Predictions per second per version and window."""
        from evalstore.dashboard import panels

        view = self._view(model, window=window, since=since, until=until)
        return panels.serving_panels(self._store, view)[1].chart

    def alerts(self, model: str, since: Any = None, until: Any = None) -> alt.TopLevelMixin:
        """Alert episodes of the model's monitors (fire and resolve markers)."""
        from evalstore.dashboard import panels

        view = self._view(model, since=since, until=until)
        return panels.alerts_panel(self._store, view).chart
