"""The chart definitions shared by the dashboard, the HTML reports and ``store.plot``.

Each function turns one result table (a :class:`pandas.DataFrame` of a family call, the
metric history, the alerts or a SQL macro) into an Altair chart, i.e. a Vega-Lite
specification; the dashboard and the reports render those specifications with the
vendored Vega scripts, a notebook with Altair itself, so the three places draw the same
picture. Conventions every chart keeps:

* **Honest empties**: a table without a value to draw gives :func:`not_enough_data`, a
  text chart saying why (``usermeta.empty`` is true), never an empty axis or a zero line.
* **Units** in every axis title; times are window starts in UTC.
* **Colour-blind-safe scales**: categories (versions, checks, samples) use the Okabe-Ito
  palette, continuous values ``viridis``; marks that matter also differ by shape or
  dash (drifted cells carry a cross, incomplete-label windows a hollow triangle).
* **Variants on hover**: every tooltip of a metric names its exact variant.
* **One dataset per chart** (``datasets`` of the specification), so a chart's data can
  be downloaded as CSV from the specification alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a chart is built: the server starts without them
    import altair as alt
    import pandas as pd

#: Okabe & Ito's palette (2008), distinguishable with the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
#: The continuous scale of heatmaps (perceptually uniform, readable in grey and by
#: colour-blind readers).
CONTINUOUS_SCHEME = "viridis"
WIDTH = 640
WINDOW_AXIS = "window start (UTC)"

#: Performance metrics that are rates or scores between 0 and 1 (their axis says so).
_UNITLESS = "score, 0-1"


def not_enough_data(title: str, why: str, height: int = 60) -> alt.Chart:
    """A chart holding only the sentence ``why``: drawn instead of a misleading value
    (an empty axis, a zero line) when a table has nothing to show."""
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"message": [f"Not enough data: {why}"]})
    return (
        alt.Chart(frame, title=title, width=WIDTH, height=height)
        .mark_text(align="left", x=5, fontSize=13, color="#444")
        .encode(text="message:N")
        .properties(usermeta={"empty": True, "why": why})
    )


def _categories(values: list[str]) -> alt.Scale:
    import altair as alt

    return alt.Scale(domain=list(values), range=OKABE_ITO[: max(1, len(values))])


def _window_x(title: str = WINDOW_AXIS) -> alt.X:
    import altair as alt

    return alt.X("window_start:T", title=title, axis=alt.Axis(format="%b %d", labelAngle=0))


def performance(frame: pd.DataFrame, metric: str, title: str | None = None) -> alt.Chart:
    """Realized ``metric`` per window and version with its confidence interval as a band.

    ``frame`` holds the rows of ``store.performance`` for one metric: ``window_start``,
    ``version``, ``value``, ``ci_low``, ``ci_high``, ``labels_complete``, ``labeled``,
    ``label_coverage``, ``variant``. Windows whose labels are incomplete are drawn as
    hollow triangles (their value may still move); windows without a value (no labels,
    one class) are left out, and a table with no value at all gives :func:`not_enough_data`.
    """
    import altair as alt

    title = title or f"{metric} per version (band: confidence interval)"
    rows = frame[frame["value"].notna()].copy() if len(frame) else frame
    if rows.empty:
        return not_enough_data(title, f"no window has labels enough to compute {metric}")
    rows["labels"] = rows["labels_complete"].map(
        lambda done: "labels complete" if done else "labels incomplete"
    )
    rows = rows[
        ["window_start", "window_end", "version", "value", "ci_low", "ci_high", "labels",
         "labeled", "label_coverage", "n", "variant"]
    ]  # fmt: skip
    versions = sorted(rows["version"].astype(str).unique())
    colour = alt.Color("version:N", scale=_categories(versions), title="version")
    axis = f"{metric} ({_UNITLESS})" if metric not in ("mae", "mse", "rmse") else metric
    tooltip = [
        alt.Tooltip("window_start:T", title="window start", format="%Y-%m-%d %H:%M"),
        "version:N",
        alt.Tooltip("value:Q", title=metric, format=".4f"),
        alt.Tooltip("ci_low:Q", title="CI low", format=".4f"),
        alt.Tooltip("ci_high:Q", title="CI high", format=".4f"),
        "labels:N",
        alt.Tooltip("labeled:Q", title="labeled rows"),
        alt.Tooltip("label_coverage:Q", title="label coverage", format=".1%"),
        alt.Tooltip("variant:N", title="variant"),
    ]
    base = alt.Chart(rows, title=title, width=WIDTH, height=260)
    band = base.mark_area(opacity=0.18).encode(
        _window_x(), alt.Y("ci_low:Q", title=axis, scale=alt.Scale(zero=False)),
        alt.Y2("ci_high:Q"), colour,
    )  # fmt: skip
    line = base.mark_line().encode(_window_x(), alt.Y("value:Q"), colour)
    shape = alt.Shape(
        "labels:N",
        scale=alt.Scale(
            domain=["labels complete", "labels incomplete"], range=["circle", "triangle-up"]
        ),
        title="labels",
    )
    complete = (
        base.transform_filter("datum.labels == 'labels complete'")
        .mark_point(size=40, filled=True)
        .encode(_window_x(), alt.Y("value:Q"), colour, shape, tooltip=tooltip)
    )
    incomplete = (
        base.transform_filter("datum.labels == 'labels incomplete'")
        .mark_point(size=60, filled=False, strokeWidth=1.5)
        .encode(_window_x(), alt.Y("value:Q"), colour, shape, tooltip=tooltip)
    )
    return alt.layer(band, line, complete, incomplete).properties(usermeta={"series": versions})


def drift_heatmap(frame: pd.DataFrame, method: str, title: str | None = None) -> alt.Chart:
    """Features x windows coloured by ``method``'s value, drifted cells marked with a cross.

    ``frame`` holds the rows of ``store.drift`` for one method (``window_start``,
    ``window_end``, ``feature``, ``version``, ``value``, ``threshold``, ``drifted``, ``p_value``,
    ``n_reference``, ``n_analysis``, ``variant``). Cells without a value (the method does
    not apply to the feature's kind, or the window is empty) are not drawn. A click on a
    cell is the dashboard's cue to open its distributions (:func:`distributions`).
    """
    import altair as alt
    import pandas as pd

    title = title or f"Drift per feature and window: {method} (cross: drifted)"
    rows = frame[frame["value"].notna()].copy() if len(frame) else frame
    if rows.empty:
        return not_enough_data(title, f"no window and feature has a {method} value")
    rows = rows[
        ["window_start", "window_end", "feature", "version", "value", "threshold", "drifted",
         "p_value", "n_reference", "n_analysis", "variant"]
    ]  # fmt: skip
    # an output (score, prediction) has a row per version: "score (v1)"
    rows["row"] = [f if v is None or pd.isna(v) else f"{f} ({v})"
                   for f, v in zip(rows["feature"], rows["version"], strict=True)]  # fmt: skip
    rows["drifted"] = rows["drifted"].fillna(False).astype(bool)
    rows["status"] = rows["drifted"].map(lambda d: "drifted" if d else "not drifted")
    features = sorted(rows["row"].unique())
    tooltip = [
        alt.Tooltip("row:N", title="feature"),
        alt.Tooltip("window_start:T", title="window start", format="%Y-%m-%d %H:%M"),
        alt.Tooltip("value:Q", title=method, format=".4f"),
        alt.Tooltip("threshold:Q", title="threshold", format=".4g"),
        alt.Tooltip("p_value:Q", title="p-value", format=".3g"),
        "status:N",
        alt.Tooltip("n_analysis:Q", title="rows in window"),
        alt.Tooltip("n_reference:Q", title="reference rows"),
        alt.Tooltip("variant:N", title="variant"),
    ]
    y = alt.Y("row:N", title="feature", sort=features)
    base = alt.Chart(rows, title=title, width=WIDTH, height=max(120, 18 * len(features)))
    cells = base.mark_rect(stroke="white", strokeWidth=0.3).encode(
        _window_x(), alt.X2("window_end:T"), y,
        alt.Color("value:Q", scale=alt.Scale(scheme=CONTINUOUS_SCHEME),
                  title=f"{method} (value)"),
        tooltip=tooltip,
    )  # fmt: skip
    marks = (
        base.transform_filter("datum.drifted")
        .transform_calculate(middle="(toDate(datum.window_start) + toDate(datum.window_end)) / 2")
        .mark_point(shape="cross", filled=True, color="white", stroke="black", strokeWidth=0.6,
                    size=60)
        .encode(alt.X("middle:T"), y, tooltip=tooltip)
    )  # fmt: skip
    return alt.layer(cells, marks).properties(
        usermeta={"series": features, "method": method, "clickable": "cell"}
    )


def distributions(frame: pd.DataFrame, title: str) -> alt.Chart:
    """The reference and window distributions of one feature overlaid as grouped bars.

    ``frame``: one row per ``bin`` (its label; ``order`` sorts them) and ``sample``
    (``reference`` or ``window``) with the ``share`` of the sample's rows in that bin
    and the ``rows``. Numeric features use the drift family's bins (quantiles of the
    reference), categorical ones their categories.
    """
    import altair as alt

    if frame.empty or frame["rows"].sum() == 0:
        return not_enough_data(title, "neither sample has a row in this window")
    order = list(dict.fromkeys(frame.sort_values("order")["bin"]))
    samples = ["reference", "window"]
    return (
        alt.Chart(frame, title=title, width=WIDTH, height=220)
        .mark_bar()
        .encode(
            alt.X(
                "bin:N",
                sort=order,
                title="bin (numeric: [low, high)) or category",
                axis=alt.Axis(labelAngle=-30),
            ),
            alt.XOffset("sample:N", sort=samples),
            alt.Y("share:Q", title="share of the sample's rows", axis=alt.Axis(format="%")),
            alt.Color("sample:N", scale=_categories(samples), title="sample"),
            tooltip=["bin:N", "sample:N", alt.Tooltip("share:Q", format=".2%"), "rows:Q"],
        )
        .properties(usermeta={"series": samples})
    )


def quality_rates(frame: pd.DataFrame, title: str | None = None) -> alt.Chart:
    """Share of serving values failing each quality check, per window.

    ``frame``: ``window_start``, ``check``, ``rate`` (failing values over the values
    checked, across the features the check applies to), ``failing``, ``checked`` and
    ``features`` (those failing). A window where no feature fails a check draws 0: the
    check ran and found nothing, which is a value, not missing data.
    """
    import altair as alt

    title = title or "Data quality: share of values failing each check"
    if frame.empty:
        return not_enough_data(title, "no serving rows were checked")
    checks = sorted(frame["check"].unique())
    return (
        alt.Chart(frame, title=title, width=WIDTH, height=220)
        .mark_line(point=True)
        .encode(
            _window_x(),
            alt.Y(
                "rate:Q", title="failing values (% of values checked)", axis=alt.Axis(format="%")
            ),
            alt.Color("check:N", scale=_categories(checks), title="check"),
            alt.StrokeDash("check:N", legend=None),
            tooltip=[
                alt.Tooltip("window_start:T", title="window start", format="%Y-%m-%d"),
                "check:N",
                alt.Tooltip("rate:Q", format=".3%"),
                "failing:Q",
                "checked:Q",
                "features:N",
                "variant:N",
            ],
        )
        .properties(usermeta={"series": checks})
    )


def label_coverage(frame: pd.DataFrame, title: str | None = None) -> alt.Chart:
    """Share of each version's predictions with a label, per window (``window_start``,
    ``version``, ``coverage``, ``predictions``, ``labeled``, ``delay_p50_hours``)."""
    import altair as alt

    title = title or "Label coverage per version"
    if frame.empty:
        return not_enough_data(title, "no predictions in this period")
    versions = sorted(frame["version"].astype(str).unique())
    return (
        alt.Chart(frame, title=title, width=WIDTH, height=180)
        .mark_line(point=True)
        .encode(
            _window_x(),
            alt.Y("coverage:Q", title="predictions labeled (%)", axis=alt.Axis(format="%")),
            alt.Color("version:N", scale=_categories(versions), title="version"),
            tooltip=[
                alt.Tooltip("window_start:T", title="window start", format="%Y-%m-%d"),
                "version:N",
                alt.Tooltip("coverage:Q", format=".1%"),
                "predictions:Q",
                "labeled:Q",
                alt.Tooltip("delay_p50_hours:Q", title="label delay p50 (h)", format=".1f"),
            ],
        )
        .properties(usermeta={"series": versions})
    )


def serving(frame: pd.DataFrame, quantity: str, title: str | None = None) -> alt.Chart:
    """Latency quantiles (``quantity='latency'``: p50/p95/p99, ms) or throughput
    (``'throughput'``: predictions per second) per version and window, from
    ``store.health``'s serving section (``window_start``, ``version``, ``metric``,
    ``value``, ``unit``)."""
    import altair as alt

    if quantity == "latency":
        title = title or "Latency quantiles per version"
        rows = frame[frame["metric"].isin(["latency_p50", "latency_p95", "latency_p99"])]
        axis = "latency (ms)"
    else:
        title = title or "Throughput per version"
        rows = frame[frame["metric"] == "throughput"]
        axis = "throughput (predictions/s, window average)"
    rows = rows[rows["value"].notna()]
    if rows.empty:
        return not_enough_data(title, f"no prediction has a {quantity} in this period")
    rows = rows[["window_start", "version", "metric", "value", "unit"]]
    versions = sorted(rows["version"].astype(str).unique())
    encodings: list[Any] = [
        _window_x(),
        alt.Y("value:Q", title=axis),
        alt.Color("version:N", scale=_categories(versions), title="version"),
        alt.Tooltip(["window_start:T", "version:N", "metric:N", "value:Q", "unit:N"]),
    ]
    if quantity == "latency":
        encodings.append(alt.StrokeDash("metric:N", title="quantile"))
    return (
        alt.Chart(rows, title=title, width=WIDTH, height=200)
        .mark_line(point=True)
        .encode(*encodings)
        .properties(usermeta={"series": versions})
    )


def comparison(frame: pd.DataFrame, a: str, b: str, title: str | None = None) -> alt.Chart:
    """Champion/challenger: the paired difference ``b - a`` of each metric per window
    with its confidence interval (``store.compare`` rows: ``window_start``, ``metric``,
    ``value``, ``ci_low``, ``ci_high``, ``p_value``, ``test``, ``n``, ``variant``), one
    small chart per metric (their scales differ) with the zero line of no difference."""
    import altair as alt

    title = title or f"{b} against {a}: difference {b} - {a} per window (band: CI)"
    rows = frame[frame["value"].notna()] if len(frame) else frame
    if rows.empty:
        return not_enough_data(title, f"{a} and {b} predicted no common example")
    rows = rows[["window_start", "metric", "value", "ci_low", "ci_high", "p_value", "test",
                 "n", "variant"]]  # fmt: skip
    metrics = sorted(rows["metric"].unique())
    tooltip = [alt.Tooltip("window_start:T", title="window start", format="%Y-%m-%d %H:%M"),
               "metric:N", alt.Tooltip("value:Q", title=f"{b} - {a}", format=".4f"),
               alt.Tooltip("ci_low:Q", format=".4f"), alt.Tooltip("ci_high:Q", format=".4f"),
               alt.Tooltip("p_value:Q", format=".3g"), "test:N", "n:Q", "variant:N"]  # fmt: skip
    colour = alt.Color("metric:N", scale=_categories(metrics), title="metric")
    base = alt.Chart(width=WIDTH, height=90)
    layers = alt.layer(
        base.mark_area(opacity=0.2).encode(_window_x(), alt.Y("ci_low:Q", title=f"{b} - {a}"),
                                           alt.Y2("ci_high:Q"), colour),
        base.mark_line(point=True).encode(_window_x(), alt.Y("value:Q"), colour,
                                          tooltip=tooltip),
        base.mark_rule(color="#444", strokeDash=[3, 3]).encode(y=alt.datum(0)),
        data=rows,
    )  # fmt: skip
    return (
        layers.facet(row=alt.Row("metric:N", title=None, sort=metrics))
        .resolve_scale(y="independent")
        .properties(title=title, usermeta={"series": metrics})
    )


def alerts_timeline(frame: pd.DataFrame, now: Any, title: str | None = None) -> alt.Chart:
    """Alert episodes per monitor and subject: a bar from first seen to resolved (or
    ``now`` while open), a filled triangle where it fired and a cross where it resolved.

    ``frame``: the columns of ``store.alerts`` (``monitor``, ``subject``, ``state``,
    ``first_seen``, ``fired_at``, ``resolved_at``, ``value``, ``reason``). No episode
    gives a text chart saying so (no alert is a finding, but there is nothing to plot).
    """
    import altair as alt
    import pandas as pd

    title = title or "Alerts: episodes per monitor and subject"
    if frame.empty:
        return not_enough_data(title, "no alert episode in this period")
    rows = frame[["alert_id", "monitor", "subject", "state", "first_seen", "fired_at",
                  "resolved_at", "value", "reason"]].copy()  # fmt: skip
    rows["row"] = rows["monitor"].astype(str) + " · " + rows["subject"].astype(str)
    rows["end"] = rows["resolved_at"].fillna(pd.Timestamp(now))
    states = ["pending", "firing", "resolved"]
    base = alt.Chart(rows, title=title, width=WIDTH, height=max(80, 22 * rows["row"].nunique()))
    y = alt.Y("row:N", title="monitor · subject")
    tooltip = ["monitor:N", "subject:N", "state:N", alt.Tooltip("first_seen:T", format="%c"),
               alt.Tooltip("fired_at:T", format="%c"), alt.Tooltip("resolved_at:T", format="%c"),
               alt.Tooltip("value:Q", format=".4g"), "reason:N"]  # fmt: skip
    bars = base.mark_bar(height=10, opacity=0.7).encode(
        alt.X("first_seen:T", title="time (UTC)"), alt.X2("end:T"), y,
        alt.Color("state:N", scale=_categories(states), title="state"), tooltip=tooltip,
    )  # fmt: skip
    fired = (
        base.transform_filter("datum.fired_at != null")
        .mark_point(shape="triangle-up", filled=True, size=70, color="#D55E00")
        .encode(alt.X("fired_at:T"), y, tooltip=tooltip)
    )
    resolved = (
        base.transform_filter("datum.resolved_at != null")
        .mark_point(shape="cross", filled=True, size=70, color="#000000")
        .encode(alt.X("resolved_at:T"), y, tooltip=tooltip)
    )
    return alt.layer(bars, fired, resolved).properties(
        usermeta={"series": sorted(rows["row"].unique())}
    )


def sparkline(frame: pd.DataFrame, title: str) -> alt.Chart:
    """Rows per window of one stream as a small area (``window_start``, ``rows``); the
    ``title`` is only used by the not-enough-data text (the table's header names it)."""
    import altair as alt

    if frame.empty:
        return not_enough_data(title, "no rows", height=30)
    return (
        alt.Chart(frame, width=160, height=30)
        .mark_area(line=True, opacity=0.4, color=OKABE_ITO[0])
        .encode(
            alt.X("window_start:T", axis=None),
            alt.Y("rows:Q", axis=None),
            tooltip=[alt.Tooltip("window_start:T", format="%Y-%m-%d"), "rows:Q"],
        )
    )


def spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite specification as a JSON-ready dict (data inlined in
    ``datasets``), with the ``$schema`` of the Vega-Lite version Altair targets.

    Not validated against the Vega-Lite JSON schema here (that costs more than building
    the chart); tests/dashboard validates every chart kind once."""
    import altair as alt

    with alt.data_transformers.enable("default", max_rows=None):
        return chart.to_dict(validate=False)
