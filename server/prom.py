"""``GET /metrics``: Prometheus exposition of the store and of the server itself.

Per model, read at scrape time from the store's audit trail and macros (no metric is
recomputed here):

- ``evalstore_ingested_rows_total{model,kind}`` and ``evalstore_batches_total{model,kind}``:
  sums over ``evalstore.batches``;
- ``evalstore_last_ingest_timestamp_seconds`` / ``evalstore_staleness_seconds{model,kind}``:
  the latest batch's commit time, and seconds since it;
- ``evalstore_label_coverage{model,version}``: labeled / predictions over all time, from the
  ``evalstore.label_coverage`` macro;
- ``evalstore_prediction_latency_ms{model}``: a histogram of the logged ``latency_ms``;
- ``evalstore_drift_value{model,feature,method,variant}``, ``evalstore_drift_drifted`` and
  ``evalstore_performance{model,version,metric}``: the latest window of the latest
  ``/v1/models/{model}/drift`` and ``/performance`` results this server computed (for
  performance, each version's latest window *with labeled rows*: the newest windows wait for
  their labels); a scrape does not run a drift analysis: schedule those calls, e.g. from the
  dashboard or cron.

Monitoring (issue 26), read from what the monitor loop (:mod:`server.monitor_loop`)
and the monitors stored; a scrape runs no analysis:

- ``evalstore_feature_bucket{model,feature,le}``, ``_count``, ``_sum``: the serving
  histogram of each numeric feature on the reference's quantile bin edges, cumulative
  over ingested batches (:mod:`server.feature_histograms`);
- ``evalstore_invalid_values_total{model,feature,check}``: NULL (``missing``), ``nan``,
  ``posinf``, ``neginf``, ``out_of_range`` (finite values outside the reference's
  [min, max]) and ``unseen`` (categories absent from the reference) values of the serving
  rows: the sum of the ``count`` column over the windows of the model's default quality
  call in the metric history (``quality(model)``, daily windows against training,
  refreshed by the monitor loop's scheduled passes, every ``monitor_every`` seconds);
- ``evalstore_alert_firing{model,monitor,subject}``: 1 while the subject's current alert
  episode is firing, else 0 (every subject a monitor has evaluated);
- ``evalstore_monitor_value{model,monitor,subject}``: the latest finite value of the
  series the monitor's rule judged at its last run (``evalstore.monitor_values``, written
  by the run: every monitor, ``health`` ones included);
- ``evalstore_monitor_loop_passes_total`` and ``evalstore_monitor_loop_errors_total``:
  the loop's passes and the steps that failed (each logged).

Server: ``evalstore_http_request_duration_seconds{method,route,status}`` (histogram) and
``evalstore_http_errors_total{method,route,status}`` (4xx and 5xx).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from evalstore.core.layout import schema_prefix

#: Upper bounds (ms) of the prediction latency histogram's buckets.
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Monitor:
    """The Prometheus registry of one app: server counters plus a store collector."""

    def __init__(self, store: Any) -> None:
        #: the monitor loop (:mod:`server.monitor_loop`) and its histograms, once attached
        self.loop: Any = None
        self.histograms: Any = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.request_seconds = Histogram(
            "evalstore_http_request_duration_seconds",
            "Server request latency by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "evalstore_http_errors",
            "Requests answered with a 4xx or 5xx status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._drift: dict[str, list[tuple[dict[str, str], float, float | None]]] = {}
        self._performance: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.registry.register(_StoreCollector(store, self))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_seconds.labels(method, route, str(status)).observe(seconds)
        if status >= 400:
            self.errors.labels(method, route, str(status)).inc()

    def observe_result(self, model: str, family: str, table: pa.Table) -> None:
        """Keep the latest window of a drift or performance result for the gauges."""
        if family == "drift":
            rows = _latest_window(table, ("feature", "method", "variant", "value"))
            samples = [
                (
                    {
                        "model": model,
                        "feature": str(r["feature"]),
                        "method": str(r["method"]),
                        "variant": str(r.get("variant") or ""),
                    },
                    r["value"],
                    r.get("drifted"),
                )
                for r in rows
                if _finite(r["value"])
            ]
            with self._lock:
                self._drift[model] = samples
        elif family == "performance":
            rows = _latest_labeled_windows(table)
            samples = [
                (
                    {
                        "model": model,
                        "version": str(r["version"]),
                        "metric": str(r["metric"]),
                        "class": "" if r.get("class") is None else str(r["class"]),
                    },
                    r["value"],
                )
                for r in rows
                if _finite(r["value"]) and _overall(r, table.column_names)
            ]
            with self._lock:
                self._performance[model] = samples

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _overall(row: dict[str, Any], columns: list[str]) -> bool:
    """Only unsliced performance rows (slice columns, when present, are all NULL)."""
    from evalstore.metrics.performance import RESULT_COLUMNS_WITHOUT_SLICES

    return all(row.get(c) is None for c in columns if c not in RESULT_COLUMNS_WITHOUT_SLICES)


def _latest_window(table: pa.Table, needed: tuple[str, ...]) -> list[dict[str, Any]]:
    if table.num_rows == 0 or not set(needed) <= set(table.column_names):
        return []
    rows = table.to_pylist()
    if "window_start" not in table.column_names:
        return rows
    starts = [r["window_start"] for r in rows if r["window_start"] is not None]
    if not starts:
        return rows
    latest = max(starts)
    return [r for r in rows if r["window_start"] == latest]


def _latest_labeled_windows(table: pa.Table) -> list[dict[str, Any]]:
    """Each version's rows of its latest window that has labeled rows.

    The newest windows of a model usually have no labels yet (labels arrive late): their
    metrics are NULL, so the gauges keep the latest window each version can be judged on.
    """
    if "labeled" in table.column_names:
        table = table.filter(pc.fill_null(pc.greater(table.column("labeled"), 0), False))
    if table.num_rows == 0 or not {"version", "metric", "value"} <= set(table.column_names):
        return []
    by_version: dict[Any, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        by_version.setdefault(row["version"], []).append(row)
    rows = []
    for version_rows in by_version.values():
        starts = [r["window_start"] for r in version_rows if r.get("window_start") is not None]
        latest = max(starts) if starts else None
        rows += [r for r in version_rows if latest is None or r["window_start"] == latest]
    return rows


class _StoreCollector:
    """Reads the store's figures at scrape time, on a cursor of its own."""

    def __init__(self, store: Any, monitor: Monitor) -> None:
        self.store = store
        self.monitor = monitor

    def collect(self):
        rows = CounterMetricFamily(
            "evalstore_ingested_rows", "Rows accepted per model and kind.", labels=["model", "kind"]
        )
        batches = CounterMetricFamily(
            "evalstore_batches", "Batches accepted per model and kind.", labels=["model", "kind"]
        )
        last = GaugeMetricFamily(
            "evalstore_last_ingest_timestamp_seconds",
            "Commit time of the latest batch (Unix seconds).",
            labels=["model", "kind"],
        )
        stale = GaugeMetricFamily(
            "evalstore_staleness_seconds",
            "Seconds since the latest batch was committed.",
            labels=["model", "kind"],
        )
        coverage = GaugeMetricFamily(
            "evalstore_label_coverage",
            "Labeled share of all predictions (evalstore.label_coverage).",
            labels=["model", "version"],
        )
        latency = HistogramMetricFamily(
            "evalstore_prediction_latency_ms",
            "Logged prediction latency (latency_ms) in milliseconds.",
            labels=["model"],
        )
        cursor = self.store.connection.cursor()
        try:
            now = time.time()
            for model, kind, n_rows, n_batches, committed in cursor.execute(
                "SELECT model, kind, sum(rows)::BIGINT, count(*), max(committed_at) "
                "FROM evalstore.batches GROUP BY model, kind ORDER BY model, kind"
            ).fetchall():
                rows.add_metric([model, kind], n_rows)
                batches.add_metric([model, kind], n_batches)
                if isinstance(committed, datetime):
                    last.add_metric([model, kind], committed.timestamp())
                    stale.add_metric([model, kind], max(0.0, now - committed.timestamp()))
            models = [m for (m,) in cursor.execute(
                "SELECT DISTINCT model FROM evalstore.models ORDER BY model"
            ).fetchall()]  # fmt: skip
            for model in models:
                for version, labeled, predictions in cursor.execute(
                    "SELECT version, sum(labeled)::BIGINT, sum(predictions)::BIGINT "
                    "FROM evalstore.label_coverage(?, '1 day') GROUP BY version ORDER BY version",
                    [model],
                ).fetchall():
                    if predictions:
                        coverage.add_metric([model, version], labeled / predictions)
                bounds = ", ".join(
                    f"count(*) FILTER (WHERE latency_ms <= {b})" for b in LATENCY_BUCKETS_MS
                )
                counts = cursor.execute(
                    f"SELECT {bounds}, count(latency_ms), coalesce(sum(latency_ms), 0) "
                    f"FROM {schema_prefix(cursor, model)}predictions"
                ).fetchall()[0]
                if counts and counts[-2]:
                    buckets = [
                        (repr(float(b)), c)
                        for b, c in zip(LATENCY_BUCKETS_MS, counts[:-2], strict=True)
                    ]
                    buckets.append(("+Inf", counts[-2]))
                    latency.add_metric([model], buckets, float(counts[-1]))
        finally:
            cursor.close()
        yield from (rows, batches, last, stale, coverage, latency)
        yield from self._cached()
        yield from self._monitoring()

    def _monitoring(self):
        """The monitoring series (see the module docstring), from stored values."""
        buckets = HistogramMetricFamily(
            "evalstore_feature",
            "Serving values of a numeric feature on the reference's quantile bin edges "
            "(finite values, cumulative over ingested batches).",
            labels=["model", "feature"],
        )
        if self.monitor.histograms is not None:
            for model, feature, histogram in self.monitor.histograms.samples():
                pairs = [
                    (repr(e), c) for e, c in zip(histogram.edges, histogram.buckets, strict=True)
                ]
                pairs.append(("+Inf", histogram.count))
                buckets.add_metric([model, feature], pairs, histogram.total)
        invalid = CounterMetricFamily(
            "evalstore_invalid_values",
            "Invalid serving values by check (missing = NULL, nan, posinf, neginf, "
            "out_of_range, unseen), from the stored default quality call.",
            labels=["model", "feature", "check"],
        )
        firing = GaugeMetricFamily(
            "evalstore_alert_firing",
            "1 while the current alert episode of the monitor and subject is firing, else 0.",
            labels=["model", "monitor", "subject"],
        )
        value = GaugeMetricFamily(
            "evalstore_monitor_value",
            "Latest finite value of the monitor's series at its last run.",
            labels=["model", "monitor", "subject"],
        )
        passes = CounterMetricFamily(
            "evalstore_monitor_loop_passes", "Passes of the server's monitor loop."
        )
        failures = CounterMetricFamily(
            "evalstore_monitor_loop_errors",
            "Steps of the monitor loop that failed (logged; the loop went on).",
        )
        if self.monitor.loop is not None:
            status = self.monitor.loop.status()
            passes.add_metric([], status["passes"])
            failures.add_metric([], status["errors"])
        cursor = self.store.connection.cursor()
        try:
            _invalid_values(cursor, invalid)
            for model, monitor, subject, state in cursor.execute(
                "SELECT c.model, c.monitor, c.subject, a.state FROM evalstore.alert_cursors c "
                "LEFT JOIN evalstore.alerts a ON a.alert_id = c.alert_id "
                "ORDER BY c.model, c.monitor, c.subject"
            ).fetchall():
                firing.add_metric([model, monitor, subject], 1.0 if state == "firing" else 0.0)
            _monitor_values(cursor, value)
        finally:
            cursor.close()
        yield from (buckets, invalid, firing, value, passes, failures)

    def _cached(self):
        drift = GaugeMetricFamily(
            "evalstore_drift_value",
            "Latest drift statistic per feature and method (last /drift served).",
            labels=["model", "feature", "method", "variant"],
        )
        drifted = GaugeMetricFamily(
            "evalstore_drift_drifted",
            "1 if the latest window drifted by that method, else 0.",
            labels=["model", "feature", "method", "variant"],
        )
        performance = GaugeMetricFamily(
            "evalstore_performance",
            "Latest window's performance per version and metric (last /performance served).",
            labels=["model", "version", "metric", "class"],
        )
        with self.monitor._lock:
            for samples in self.monitor._drift.values():
                for labels, value, flag in samples:
                    keys = list(labels.values())
                    drift.add_metric(keys, value)
                    if flag is not None:
                        drifted.add_metric(keys, 1.0 if flag else 0.0)
            for samples in self.monitor._performance.values():
                for labels, value in samples:
                    performance.add_metric(list(labels.values()), value)
        yield from (drift, drifted, performance)


#: Quality checks counted by ``evalstore_invalid_values_total``.
INVALID_CHECKS = ("missing", "nan", "posinf", "neginf", "out_of_range", "unseen")


def _invalid_values(cursor: Any, family: CounterMetricFamily) -> None:
    """Sum of ``count`` per feature and check over the default quality call's windows."""
    from evalstore.monitors import history

    models = [m for (m,) in cursor.execute(
        "SELECT DISTINCT model FROM evalstore.metric_history_calls WHERE family = 'quality'"
    ).fetchall()]  # fmt: skip
    for model in sorted(models):
        key = history.params_hash("quality", model, history.normalise("quality", model, {}))
        checks = ", ".join(f"'{c}'" for c in INVALID_CHECKS)
        for feature, check, count in cursor.execute(
            "SELECT subject, metric, sum(count)::BIGINT FROM evalstore.metric_history "
            f"WHERE model = ? AND family = 'quality' AND params_hash = ? AND metric IN ({checks}) "
            "GROUP BY subject, metric ORDER BY subject, metric",
            [model, key],
        ).fetchall():
            family.add_metric([model, feature, check], float(count or 0))


def _monitor_values(cursor: Any, family: GaugeMetricFamily) -> None:
    """The latest finite value per monitor and subject, as its last run recorded it
    (``evalstore.monitor_values``: every family, health included)."""
    for model, monitor, subject, value in cursor.execute(
        "SELECT v.model, v.monitor, v.subject, v.value FROM evalstore.monitor_values v "
        "JOIN evalstore.monitors m ON m.name = v.monitor "
        "ORDER BY v.model, v.monitor, v.subject"
    ).fetchall():
        family.add_metric([model, monitor, subject], float(value))
