"""The dashboard's HTML: server-rendered page shells and the self-contained report.

The dashboard's pages hold no data: :func:`overview_page` and :func:`model_page` render
the layout and the pickers, and ``static/dashboard.js`` fetches the panels from the API
with the session's read token. :func:`report_html` writes everything into one file: the
vendored Vega scripts, the style sheet, the script and the panels' JSON, so the report
opens offline in any browser.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from evalstore.dashboard.panels import DRIFT_METHODS, WINDOWS

#: The files ``/dashboard/static/`` serves (and the report inlines).
STATIC_FILES = ("vega-bundle.min.js", "dashboard.js", "dashboard.css")


def static_file(name: str) -> bytes:
    """The bytes of one of :data:`STATIC_FILES` (read from the installed package)."""
    if name not in STATIC_FILES:
        raise KeyError(name)
    return resources.files("evalstore.dashboard").joinpath("static", name).read_bytes()


_TOKEN_FORM = """
<form id="token-form" class="hidden">
  <p id="token-why"></p>
  <label>Read token <input name="token" type="password" autocomplete="off" required></label>
  <button type="submit">Use this token</button>
  <span class="note">Kept in this browser tab only (sessionStorage).</span>
</form>"""


def _shell(title: str, body: str, *, page: str, model: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css">
<script type="module" src="/dashboard/static/vega-bundle.min.js"></script>
</head>
<body data-page="{page}" data-model="{html.escape(model)}">
<header><h1><a href="/">evalstore</a></h1><span>{html.escape(title)}</span></header>
<main>{_TOKEN_FORM}
<p id="message" role="status"></p>
{body}
</main>
<script type="module" src="/dashboard/static/dashboard.js"></script>
</body></html>
"""


def overview_page() -> str:
    """The models overview (``/``): one row per model, filled by the script."""
    body = """
<table class="models">
<thead><tr><th>model</th><th>status</th><th>versions (stage)</th>
<th>serving rows per day</th><th>label coverage</th>
<th>latest realized performance (complete labels)</th><th>alerts</th>
<th>freshness (hours since last batch)</th></tr></thead>
<tbody></tbody></table>"""
    return _shell("Models", body, page="overview")


def _options(values: tuple[str, ...]) -> str:
    return "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)


def model_page(model: str) -> str:
    """A model's page: the pickers (window, period, metric, drift method) and the panels,
    which the script loads for the state in the URL."""
    body = f"""
<form id="controls" class="controls">
  <label>Window <select name="window">{_options(WINDOWS)}</select></label>
  <label>From (UTC) <input type="date" name="since"></label>
  <label>Until (UTC, excluded) <input type="date" name="until"></label>
  <label>Performance metric <select name="metric"></select></label>
  <label>Drift method <select name="method">{_options(DRIFT_METHODS)}</select></label>
  <label>Slice of the performance panel (SQL predicate)
    <input name="where" size="40" placeholder="e.g. &quot;age&quot; &lt; 31"></label>
  <button type="submit">Show</button>
</form>
<div id="panels"></div>
<div id="distribution" class="hidden"></div>"""
    return _shell(f"Model {model}", body, page="model", model=model)


def _inline_script(text: str) -> str:
    # a script element ends at the first "</script" whatever the JavaScript says
    return text.replace("</script", "<\\/script")


def report_html(
    model: str,
    panels: list[dict[str, Any]],
    distributions: list[dict[str, Any]],
    period: str,
    generated: datetime | None = None,
) -> str:
    """One offline HTML file: the model page's ``panels`` (their JSON: Vega-Lite spec,
    calls, note) and drifted cells' ``distributions``, with every script inlined."""
    generated = generated or datetime.now(UTC)
    data = json.dumps({"model": model, "panels": panels, "distributions": distributions},
                      default=str, separators=(",", ":"))  # fmt: skip
    css = static_file("dashboard.css").decode()
    bundle = static_file("vega-bundle.min.js").decode()
    script = static_file("dashboard.js").decode()
    title = f"evalstore report: {model}"
    cells = (
        "<h2>Distributions of drifted features</h2><p class='note'>Each drifted feature's "
        "first drifted window, reference (training) against the window.</p>"
        if distributions
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>{css}</style>
<script type="module">{_inline_script(bundle)}</script>
</head>
<body data-page="report" data-model="{html.escape(model)}">
<header><h1>evalstore</h1><span>{html.escape(title)}</span></header>
<main>
<p>Model <b>{html.escape(model)}</b>, {html.escape(period)}. Generated
{generated:%Y-%m-%d %H:%M} UTC by evalstore. Every panel names the call that reproduces
its data.</p>
<p id="message" role="status"></p>
<div id="panels"></div>
{cells}<div id="distribution"></div>
</main>
<script type="application/json" id="evalstore-data">{_inline_script(data)}</script>
<script type="module">{_inline_script(script)}</script>
</body></html>
"""
