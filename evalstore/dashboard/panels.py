"""The dashboard's panels: what each one reads from the store, and the call that reproduces it.

A :class:`Panel` is a chart of :mod:`evalstore.dashboard.charts` plus the Python call and
the HTTP request that give its data, so a reader can take any picture to a notebook or a
BI tool. :func:`model_panels` builds a model page for a :class:`View` (window, period,
performance metric, drift method), :func:`distribution_panel` one heatmap cell's
distributions, :func:`overview` the models overview.

Where the data comes from: drift, data quality and performance go through the metric
history (``persist=True``): the first view of a model computes each call's windows and
stores them, later views read the stored rows and recompute only the windows later
batches touched. A read-only store (``evalstore ui``) cannot store them: its calls are
computed once per state of the store (the highest batch id) and kept in this process's
memory (:data:`MEMO_SIZE` calls). Health, label coverage and alerts are cheap reads and
are computed on every view.
"""

from __future__ import annotations

import itertools
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from evalstore.dashboard import charts
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.metrics.drift.sorted_samples import histogram
from evalstore.metrics.performance import DEFAULT_METRICS
from evalstore.monitors.defaults import HEADLINE

if TYPE_CHECKING:  # altair and pandas load where a panel is built, not with the server
    import altair as alt
    import pandas as pd

    from evalstore.store import Store

#: The window widths the pickers offer (any other is refused: each costs a history call).
WINDOWS = ("1 hour", "6 hours", "1 day", "7 days")
#: Drift methods the heatmap can colour by (those of the univariate family's defaults).
DRIFT_METHODS = ("js", "psi", "ks", "wasserstein", "chi2")
#: The query parameters of a :class:`View`.
FIELDS = ("window", "since", "until", "metric", "method", "where")
#: The longest slice predicate a view takes (the library checks what it may contain).
MAX_WHERE = 2000
#: Family calls a read-only store keeps in memory.
MEMO_SIZE = 32
#: Bins of a numeric feature's distributions: the drift family's default quantile binning.
BINS = 10


@dataclass(frozen=True)
class View:
    """What a model page shows: ``model``, ``window`` (one of :data:`WINDOWS`), windows
    starting in ``[since, until)`` (ISO dates or times; None: unbounded), the
    performance ``metric`` (None: the task's headline metric), the drift ``method`` of
    the heatmap and a slice of the performance panel (``where``: a SQL predicate over the
    model's features, checked by the library as every ``where=``). The dashboard keeps
    it in the URL's query string (deep links)."""

    model: str
    window: str = "1 day"
    since: str | None = None
    until: str | None = None
    metric: str | None = None
    method: str = "js"
    where: str | None = None

    @classmethod
    def parse(cls, model: str, query: Mapping[str, Any]) -> View:
        """A view from query parameters; an unknown window or method, or a time that
        does not parse, is an :class:`~evalstore.errors.InvalidParameterError`."""
        view = cls(model, **{k: query[k] for k in FIELDS if query.get(k)})
        if view.window not in WINDOWS:
            raise InvalidParameterError(
                f"window={view.window!r} is not offered; choose one of {', '.join(WINDOWS)}"
            )
        if view.where is not None and len(view.where) > MAX_WHERE:
            raise InvalidParameterError(
                f"where= is {len(view.where)} characters; at most {MAX_WHERE} are accepted"
            )
        if view.method not in DRIFT_METHODS:
            raise InvalidParameterError(
                f"method={view.method!r} is not a heatmap method; choose one of "
                f"{', '.join(DRIFT_METHODS)}"
            )
        for name in ("since", "until"):
            value = getattr(view, name)
            if value is not None:
                try:
                    _timestamp(value)
                except ValueError as error:
                    raise InvalidParameterError(
                        f"{name}={value!r} is not an ISO date or time (e.g. 2026-10-01)"
                    ) from error
        return view

    def query(self) -> dict[str, str]:
        """The view's query parameters (those that differ from the defaults)."""
        default = View(self.model)
        return {
            name: getattr(self, name)
            for name in FIELDS
            if getattr(self, name) is not None and getattr(self, name) != getattr(default, name)
        }


@dataclass
class Panel:
    """One chart with the calls that reproduce its data: ``python`` (a Store call) and
    ``http`` (the server's request); ``note`` says what the chart leaves out; ``frame``
    is the table the chart was drawn from (where a caller needs it: the drift rows)."""

    id: str
    title: str
    chart: alt.TopLevelMixin | None
    python: str
    http: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    frame: pd.DataFrame | None = None

    def to_json(self) -> dict[str, Any]:
        """The panel as the dashboard's JSON: the Vega-Lite ``spec`` and the calls."""
        return {
            "id": self.id, "title": self.title,
            "spec": None if self.chart is None else charts.spec(self.chart),
            "python": self.python, "http": self.http, "note": self.note, **self.extra,
        }  # fmt: skip


# ---------------------------------------------------------------------- reading


_memo: OrderedDict[tuple[Any, ...], pa.Table] = OrderedDict()
_memo_lock = threading.Lock()


def family_call(store: Store, family: str, model: str, **arguments: Any) -> pa.Table:
    """``store.<family>(model, **arguments)`` through the metric history (a writable
    store) or this process's memo of the store's current state (a read-only one)."""
    method: Callable[..., pa.Table] = getattr(store, family)
    if not store.read_only:
        return method(model, persist=True, **arguments)
    state = store.sql("SELECT max(batch_id) AS b FROM evalstore.batches").column(0)[0].as_py()
    key = (_store_key(store), family, model, repr(sorted(arguments.items())), state)
    with _memo_lock:
        if key in _memo:
            _memo.move_to_end(key)
            return _memo[key]
    table = method(model, **arguments)
    with _memo_lock:
        _memo[key] = table
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return table


def _store_key(store: Store) -> Any:
    """A store file (its sessions share it: the server reads on a session per request;
    the inode tells a file replaced at the same path) or an in-memory store object."""
    if store.path is None:
        return ("memory", id(store))
    return ("file", str(store.path.resolve()), store.path.stat().st_ino)


def _timestamp(value: str) -> pd.Timestamp:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _in_period(frame: pd.DataFrame, view: View, column: str = "window_start") -> pd.DataFrame:
    import pandas as pd

    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    if view.since:
        keep &= frame[column] >= _timestamp(view.since)
    if view.until:
        keep &= frame[column] < _timestamp(view.until)
    return frame[keep]


def _python(call: str, **arguments: Any) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if v is not None)
    return f"store.{call}({shown})"


def _http(path: str, **query: Any) -> str:
    pairs = [(k, v) for k, v in query.items() if v is not None]
    return f"GET {path}" + (f"?{urllib.parse.urlencode(pairs, doseq=True)}" if pairs else "")


def task_of(store: Store, model: str) -> str:
    """The task of ``model`` (binary, multiclass, regression); an unknown model is an
    :class:`~evalstore.errors.UnknownModelError`."""
    rows = store.sql("SELECT task FROM evalstore.models WHERE model = ? LIMIT 1", [model])
    if rows.num_rows == 0:
        raise UnknownModelError(f"model {model!r} is not registered; see store.models()")
    return rows.column(0)[0].as_py()


# ---------------------------------------------------------------------- model page


def model_panels(store: Store, view: View) -> list[Panel]:
    """The panels of ``view.model``'s page, in page order: performance, drift heatmap,
    data quality, label coverage, latency, throughput, alerts, then the review panels of
    :mod:`evalstore.dashboard.review` (champion/challenger, worst slices, open label
    requests)."""
    from evalstore.dashboard import review

    metric = view.metric or HEADLINE[task_of(store, view.model)]
    view = replace(view, metric=metric)
    return [
        performance_panel(store, view),
        drift_panel(store, view),
        quality_panel(store, view),
        coverage_panel(store, view),
        *serving_panels(store, view),
        alerts_panel(store, view),
        review.comparison_panel(store, view),
        review.slices_panel(store, view),
        review.requests_panel(store, view),
    ]


_pages: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def model_page(store: Store, view: View) -> dict[str, Any]:
    """The model page's JSON: ``view`` (with the metric chosen), the task's ``metrics``
    and the ``panels``. Kept in memory (:data:`MEMO_SIZE` pages) for the state of the
    store it was built from: the highest batch id, the model's monitors and alert
    changes, its open label requests, and the minute (open alert episodes end at "now")."""
    task = task_of(store, view.model)
    view = replace(view, metric=view.metric or HEADLINE[task])
    state = store.sql(
        "SELECT (SELECT max(batch_id) FROM evalstore.batches), "
        "(SELECT count(*) FROM evalstore.monitors WHERE model = ?), "
        "(SELECT max(updated_at) FROM evalstore.monitors WHERE model = ?), "
        "(SELECT count(*) FROM evalstore.alerts WHERE model = ?), "
        "(SELECT max(greatest(last_seen, fired_at, resolved_at, acknowledged_at, silenced_until)) "
        " FROM evalstore.alerts WHERE model = ?), "
        "(SELECT count(*) FILTER (status = 'open') || '/' || coalesce(max(request_id), 0) "
        " FROM evalstore.label_requests WHERE model = ?)",
        [view.model] * 5,
    ).to_pylist()[0]
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    key = (_store_key(store), view, repr(state), minute)
    with _memo_lock:
        if key in _pages:
            _pages.move_to_end(key)
            return _pages[key]
    page = {
        "view": {**view.query(), "metric": view.metric},
        "metrics": list(DEFAULT_METRICS[task]),
        "panels": [p.to_json() for p in model_panels(store, view)],
    }
    with _memo_lock:
        _pages[key] = page
        while len(_pages) > MEMO_SIZE:
            _pages.popitem(last=False)
    return page


def performance_panel(store: Store, view: View) -> Panel:
    """Realized performance of ``view.metric`` per version, with intervals."""
    model, metric = view.model, view.metric or HEADLINE[task_of(store, view.model)]
    table = family_call(
        store, "performance", model, metrics=[metric], window=view.window, where=view.where
    )
    frame = _in_period(table.to_pandas(), view)
    return Panel(
        "performance", f"Performance: {metric}" + (f" where {view.where}" if view.where else ""),
        charts.performance(frame, metric),
        _python("performance", model=model, metrics=[metric], window=view.window,
                where=view.where, persist=True),
        _http(f"/v1/models/{model}/history", family="performance", metric=metric,
              since=view.since, until=view.until),
        "Hollow triangles: windows whose labels are not all in yet (the value may move). "
        "Windows without labels enough are left out.",
    )  # fmt: skip


def drift_panel(store: Store, view: View) -> Panel:
    """The drift heatmap of ``view.method``: features x windows, drifted cells marked."""
    model = view.model
    table = family_call(store, "drift", model, window=view.window)
    frame = table.to_pandas()
    frame = _in_period(frame[frame["method"] == view.method] if len(frame) else frame, view)
    return Panel(
        "drift", f"Drift: {view.method}",
        charts.drift_heatmap(frame, view.method),
        _python("drift", model=model, window=view.window, persist=True),
        _http(f"/v1/models/{model}/history", family="drift", metric=view.method,
              since=view.since, until=view.until),
        "Click a cell: the reference and window distributions of that feature. Features "
        "the method does not apply to (e.g. ks on a categorical feature) have no row.",
        frame=frame,
    )  # fmt: skip


def quality_panel(store: Store, view: View) -> Panel:
    """Share of serving values failing each quality check per window (all features)."""
    model = view.model
    table = family_call(store, "quality", model, window=view.window)
    frame = _in_period(table.to_pandas(), view)
    return Panel(
        "quality", "Data quality",
        charts.quality_rates(quality_rates(frame)),
        _python("quality", model=model, window=view.window, persist=True),
        _http(f"/v1/models/{model}/history", family="quality", since=view.since,
              until=view.until),
        "Counts of NaN, ±inf, out-of-range (outside the training range), unseen categories "
        "and missing values over the values checked; the row count check is not a rate.",
    )  # fmt: skip


def quality_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Per window and check: failing values (``count``) over values checked
    (``n_analysis``) summed across the features the check applies to."""
    import pandas as pd

    columns = ["window_start", "check", "rate", "failing", "checked", "features", "variant"]
    rows = frame[(frame["method"] != "rows") & frame["count"].notna()] if len(frame) else frame
    if rows.empty:
        return pd.DataFrame(columns=columns)
    keys = ["window_start", "method"]
    out = rows.groupby(keys, sort=True).agg(
        failing=("count", "sum"), checked=("n_analysis", "sum"), variant=("variant", "first"),
    ).reset_index()  # fmt: skip
    drifted = rows[rows["drifted"].fillna(False).astype(bool)].sort_values("feature")
    named = drifted.groupby(keys)["feature"].agg(", ".join).rename("features").reset_index()
    out = out.merge(named, on=keys, how="left").rename(columns={"method": "check"})
    out["features"] = out["features"].fillna("none")
    out["failing"] = out["failing"].astype(int)
    out["checked"] = out["checked"].astype(int)
    out = out[out["checked"] > 0]
    out["rate"] = out["failing"] / out["checked"]
    return out[columns].reset_index(drop=True)


def coverage_panel(store: Store, view: View) -> Panel:
    """Label coverage and median label delay per version and window."""
    model = view.model
    sql = (
        "SELECT c.window_start, c.version, c.predictions, c.labeled, c.coverage, "
        "d.delay_p50_hours FROM evalstore.label_coverage(?, ?) c "
        "LEFT JOIN evalstore.label_delay(?, ?) d USING (version, window_start) "
        "ORDER BY c.version, c.window_start"
    )
    frame = _in_period(store.sql(sql, [model, view.window, model, view.window]).to_pandas(), view)
    return Panel(
        "coverage", "Label coverage and delay",
        charts.label_coverage(frame),
        f"store.sql({sql!r}, {[model, view.window, model, view.window]!r})",
        "POST /v1/sql  (the same SQL)",
    )  # fmt: skip


def serving_panels(store: Store, view: View) -> list[Panel]:
    """Latency quantiles and throughput per version (``store.health``, serving)."""
    model = view.model
    table = store.health(model, window=view.window, sections=["serving"])
    frame = _in_period(table.to_pandas(), view)
    python = _python("health", model=model, window=view.window, sections=["serving"])
    http = _http(f"/v1/models/{model}/health", window=view.window, sections="serving")
    return [
        Panel("latency", "Latency", charts.serving(frame, "latency"), python, http),
        Panel("throughput", "Throughput", charts.serving(frame, "throughput"), python, http),
    ]


def alerts_panel(store: Store, view: View, now: datetime | None = None) -> Panel:
    """Alert episodes of the model's monitors that overlap the period."""
    model = view.model
    frame = store.alerts(model).to_pandas()
    if len(frame):
        if view.until:
            frame = frame[frame["first_seen"] < _timestamp(view.until)]
        if view.since:
            ended = frame["resolved_at"]
            frame = frame[ended.isna() | (ended >= _timestamp(view.since))]
    monitors = store.monitors(model).num_rows
    chart = (
        charts.alerts_timeline(frame, now or datetime.now(UTC))
        if monitors or len(frame)
        else charts.not_enough_data(
            "Alerts", "this model has no monitor (store.add_default_monitors adds the defaults)"
        )
    )
    return Panel(
        "alerts", "Alerts", chart, _python("alerts", model=model),
        _http("/v1/alerts", model=model),
        f"{monitors} monitor(s) defined; fire: filled triangle, resolve: cross.",
    )  # fmt: skip


# ---------------------------------------------------------------------- one drift cell


def distribution_panel(
    store: Store, view: View, feature: str, window_start: str, version: str | None = None
) -> Panel:
    """The reference (training) and window distributions of ``feature`` (a feature or an
    output: ``score``, ``prediction`` of ``version``, ``label``) in the window of
    ``view.window`` starting at ``window_start``, with the method's value there.

    The values are those the drift family compares (the model's ``numeric_values`` and
    ``category_values`` views). Numeric ones are binned on the family's default edges
    (quantiles of the finite reference values, :data:`BINS` bins, same bin rule), plus a
    bin below the reference's minimum and one above its maximum; NULL, NaN and inf are
    left out. Categorical ones are counted per category (NULL as ``(missing)``).
    """
    import pandas as pd

    model = view.model
    rows = family_call(store, "drift", model, window=view.window).to_pandas()
    start = _timestamp(window_start)
    cell = rows[(rows["feature"] == feature) & (rows["window_start"] == start)]
    cell = cell[cell["version"].isna()] if version is None else cell[cell["version"] == version]
    if cell.empty:
        raise InvalidParameterError(
            f"{feature!r} has no drift row in the window starting {window_start}"
            + (f" for version {version!r}" if version else "")
        )
    end = cell["window_end"].iloc[0]
    frame = _distributions(store, model, feature, cell["kind"].iloc[0], start, end, version)
    chosen = cell[cell["method"] == view.method]
    summary = "no value"
    if len(chosen) and pd.notna(chosen["value"].iloc[0]):
        row = chosen.iloc[0]
        summary = (f"{view.method} = {row['value']:.4f}, threshold {row['threshold']:.4g}"
                   f" ({'drifted' if row['drifted'] else 'not drifted'})")  # fmt: skip
    subject = feature if version is None else f"{feature} ({version})"
    title = f"{subject}: training vs window {start:%Y-%m-%d %H:%M} ({summary})"
    where = f"env = 'serving' AND ts >= '{start.isoformat()}' AND ts < '{end.isoformat()}'"
    return Panel(
        "distribution", title, charts.distributions(frame, title),
        _python("drift", model=model, window=view.window, features=[feature],
                methods=[view.method], version=version),
        _http(f"/v1/models/{model}/drift", window=view.window, features=feature,
              methods=view.method, version=version),
        f"The window's rows: {where}.",
        extra={"feature": feature, "version": version, "window_start": start.isoformat(),
               "summary": summary},
    )  # fmt: skip


def _distributions(
    store: Store,
    model: str,
    feature: str,
    kind: str,
    start: Any,
    end: Any,
    version: str | None,
) -> pd.DataFrame:
    import pandas as pd

    from evalstore.core.layout import schema_prefix

    columns = ["bin", "order", "sample", "share", "rows"]
    numeric = kind == "numeric"
    view = f"{schema_prefix(store.connection, model)}{'numeric' if numeric else 'category'}_values"
    same = "feature = ?" + (" AND version IS NULL" if version is None else " AND version = ?")
    keys = [feature] if version is None else [feature, version]
    # the reference is the training rows; an output without training rows (score,
    # prediction) has none, and is drawn against an empty reference
    reference = ("feature = ? AND env = 'training'", [feature])
    samples = {
        "reference": reference,
        "window": (f"{same} AND env = 'serving' AND ts >= ? AND ts < ?", [*keys, start, end]),
    }
    rows: list[dict[str, Any]] = []
    if numeric:
        edges = store.sql(
            f"SELECT evalstore.quantile_edges(value, {BINS}) FROM {view} "
            f"WHERE {reference[0]} AND isfinite(value)", reference[1],
        ).column(0)[0].as_py() or []  # fmt: skip
        if len(edges) < 2:
            return pd.DataFrame(columns=columns)
        inner = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(edges)]
        inner[-1] = inner[-1][:-1] + "]"  # the last bin holds the reference's maximum
        labels = [f"< {edges[0]:.4g}", *inner, f"> {edges[-1]:.4g}"]
        for sample, (where, params) in samples.items():
            values = store.sql(
                f"SELECT value FROM {view} WHERE {where} AND isfinite(value)", params
            ).column(0).to_numpy(zero_copy_only=False)  # fmt: skip
            counts = histogram(np.sort(values), np.asarray(edges, dtype=float))
            total = max(1, sum(counts))
            rows += [{"bin": label, "order": i, "sample": sample, "share": n / total, "rows": n}
                     for i, (label, n) in enumerate(zip(labels, counts, strict=True))]  # fmt: skip
    else:
        for sample, (where, params) in samples.items():
            counted = store.sql(
                f"SELECT coalesce(value::VARCHAR, '(missing)') AS bin, count(*) AS n "
                f"FROM {view} WHERE {where} GROUP BY 1 ORDER BY 1", params,
            ).to_pylist()  # fmt: skip
            total = max(1, sum(r["n"] for r in counted))
            rows += [{"bin": r["bin"], "order": 0, "sample": sample, "share": r["n"] / total,
                      "rows": r["n"]} for r in counted]  # fmt: skip
        order = {b: i for i, b in enumerate(sorted({r["bin"] for r in rows}))}
        for row in rows:
            row["order"] = order[row["bin"]]
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------------- overview


def overview(store: Store) -> list[dict[str, Any]]:
    """One entry per model: ``model``, ``task``, ``versions`` (version, stage), a
    ``sparkline`` spec of serving rows per day, ``coverage`` (labeled share of all
    predictions), ``performance`` (latest window with complete labels per version:
    value and interval of the headline metric), ``firing``/``pending`` alert counts,
    ``monitors``, ``freshness`` (hours since each stream's last batch) and ``status``
    (``firing``, ``pending``, ``unmonitored`` or ``ok``)."""
    registry = store.models().to_pandas()
    out = []
    for model, versions in registry.groupby("model", sort=True):
        task = versions["task"].iloc[0]
        volume = store.sql(
            "SELECT window_start, rows FROM evalstore.volume(?, '1 day') "
            "WHERE kind = 'features' AND env = 'serving' ORDER BY window_start",
            [model],
        ).to_pandas()
        coverage = (
            store.sql(
                "SELECT sum(labeled) / nullif(sum(predictions), 0) AS c "
                "FROM evalstore.label_coverage(?, '1 day')",
                [model],
            )
            .column(0)[0]
            .as_py()
        )
        headline = HEADLINE[task]
        perf = family_call(store, "performance", model, metrics=[headline], window="1 day")
        latest = []
        frame = perf.to_pandas()
        done = frame[frame["labels_complete"].fillna(False).astype(bool) & frame["value"].notna()]
        for version, rows in done.groupby("version", sort=True):
            row = rows.sort_values("window_start").iloc[-1]
            latest.append({"version": version, "metric": headline, "value": float(row["value"]),
                           "ci_low": _number(row["ci_low"]), "ci_high": _number(row["ci_high"]),
                           "window_start": row["window_start"].isoformat()})  # fmt: skip
        firing = store.alerts(model, state="firing").num_rows
        pending = store.alerts(model, state="pending").num_rows
        monitors = store.monitors(model).num_rows
        health = store.health(model, sections=["ingest"]).to_pandas()
        fresh = health[health["metric"] == "freshness"]
        freshness = {s: float(v) for s, v in fresh.groupby("subject")["value"].min().items()}
        status = ("firing" if firing else "pending" if pending
                  else "unmonitored" if not monitors else "ok")  # fmt: skip
        out.append({
            "model": model, "task": task,
            "versions": versions[["version", "stage"]].to_dict("records"),
            "sparkline": charts.spec(charts.sparkline(volume, "serving rows per day")),
            "coverage": coverage, "performance": latest, "firing": firing,
            "pending": pending, "monitors": monitors, "freshness": freshness,
            "status": status,
        })  # fmt: skip
    return out


def _number(value: Any) -> float | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else float(value)
