"""The model page's review panels: champion/challenger, the worst slices and the open label
requests (the last two are tables, with the SQL predicate or example id to copy).

Each returns a :class:`~evalstore.dashboard.panels.Panel`; a table panel has no chart
(``chart`` None) and carries its ``table`` (``columns`` and ``rows``) instead, which the
dashboard draws as an HTML table and downloads as CSV like a chart's data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalstore.dashboard import charts
from evalstore.dashboard.panels import Panel, View, _http, _in_period, _python

if TYPE_CHECKING:
    import pandas as pd

    from evalstore.store import Store

#: Rows of a table panel (the worst slices, the open requests shown).
TABLE_ROWS = 50


def table(frame: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """A table panel's JSON: ``columns`` and ``rows`` (lists of plain values)."""
    shown = frame[columns].head(TABLE_ROWS).astype(object).where(frame[columns].notna(), None)
    return {"columns": columns, "rows": shown.to_numpy().tolist()}


def versions_compared(store: Store, model: str) -> tuple[str, str] | None:
    """``(champion, challenger)``: the production version (else the first registered)
    and the most recent other one; None when the model has one version."""
    rows = store.sql(
        "SELECT version, stage FROM evalstore.models WHERE model = ? ORDER BY created_at, version",
        [model],
    ).to_pylist()
    if len(rows) < 2:
        return None
    champion = next((r["version"] for r in rows if r["stage"] == "production"), rows[0]["version"])
    challenger = [r["version"] for r in rows if r["version"] != champion][-1]
    return champion, challenger


def comparison_panel(store: Store, view: View) -> Panel:
    """The challenger against the champion on the examples both predicted."""
    model = view.model
    pair = versions_compared(store, model)
    if pair is None:
        chart = charts.not_enough_data("Champion/challenger", "the model has one version")
        return Panel("compare", "Champion/challenger", chart, "", "")
    a, b = pair
    frame = _in_period(store.compare(model, a, b, window=view.window).to_pandas(), view)
    return Panel(
        "compare", f"Champion/challenger: {b} against {a}",
        charts.comparison(frame, a, b),
        _python("compare", model=model, a=a, b=b, window=view.window),
        _http(f"/v1/models/{model}/compare", a=a, b=b, window=view.window),
        "Paired differences on the examples both versions predicted: disagreement share, "
        "and on labeled pairs accuracy (McNemar), log loss and Brier score. Below zero, "
        f"{b} has less of the metric than {a}.",
    )  # fmt: skip


def slices_panel(store: Store, view: View) -> Panel:
    """The slices where the model is significantly worse than on the rest, over the
    view's period, with the SQL predicate to pass back as ``where=``."""
    model = view.model
    frame = store.worst_slices(model, since=view.since, until=view.until).to_pandas()
    columns = ["rank", "slice", "version", "metric", "value", "rest_value", "n", "q_value",
               "predicate"]  # fmt: skip
    empty = frame.empty
    return Panel(
        "slices", "Worst slices", None,
        _python("worst_slices", model=model, since=view.since, until=view.until),
        _http(f"/v1/models/{model}/slices", since=view.since, until=view.until),
        "No slice is significantly worse than the rest in this period." if empty else
        "Each predicate is SQL to pass as where= to any call (copy button).",
        extra={"table": table(frame, columns) if not empty else None},
    )  # fmt: skip


def requests_panel(store: Store, view: View) -> Panel:
    """The open label requests (from ``suggest``), highest priority first."""
    model = view.model
    frame = store.sql(
        "SELECT request_id, example_id, strategy, priority, reason, requested_at, expires_at "
        "FROM evalstore.label_requests WHERE model = ? AND status = 'open' "
        "ORDER BY priority DESC, request_id",
        [model],
    ).to_pandas()
    count = len(frame)
    return Panel(
        "requests", f"Open label requests ({count})", None,
        _python("label_requests", model=model, status="open"),
        _http(f"/v1/models/{model}/requests", status="open"),
        f"{count} open request(s); the first {min(count, TABLE_ROWS)} are listed. 'Request "
        "more labels' records 100 new suggestions (GET /v1/models/{model}/suggestions: "
        "needs a write token).",
        extra={"table": table(frame, list(frame.columns)) if count else None,
               "request_more": f"/v1/models/{model}/suggestions?k=100"},
    )  # fmt: skip
