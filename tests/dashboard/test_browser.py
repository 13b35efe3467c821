"""The dashboard in headless Chromium (issue 22 point 5), against a server on the demo store.

One browser for the session and one server for this module (tests/dashboard/conftest.py);
each test opens a fresh browser context (its own sessionStorage). Every test fails on a
console error or an uncaught page error, except the token tests, which expect the 401s
of the requests sent without a valid token. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.dashboard.conftest import ARTIFACTS, MODEL, READ_TOKEN, WRITE_TOKEN

START = date(2026, 9, 1)  # the scenario's first serving day
MODEL_PAGE = f"/dashboard/models/{MODEL}"


class Page:
    """A browser page with its console errors collected."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-loaded=true]", timeout=60_000)

    def panel(self, name: str) -> Any:
        return self.page.locator(f"section[data-panel={name}]")

    def labels(self, panel: str, mark: str) -> list[str]:
        """The aria-labels of a panel's marks (Vega writes each mark's tooltip fields)."""
        return self.page.eval_on_selector_all(
            f"section[data-panel={panel}] g.mark-{mark}.role-mark path",
            "marks => marks.map(m => m.getAttribute('aria-label') || '')",
        )

    def count(self, panel: str, mark: str) -> int:
        return len(self.labels(panel, mark))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def fresh(browser: Any, server: Any) -> Iterator[Page]:
    """A page in a new context: no token yet."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        yield Page(context.new_page(), server.url)
    finally:
        context.close()


@pytest.fixture
def signed_in(browser: Any, server: Any) -> Iterator[Page]:
    """A page whose tab already holds the read token (as after typing it once)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('evalstore-token', '{READ_TOKEN}')")
    try:
        page = Page(context.new_page(), server.url)
        yield page
        assert page.errors == []
    finally:
        context.close()


def drifted_days(page: Page, feature: str) -> list[int]:
    """Days since the first serving day of the heatmap's drifted cells of ``feature``."""
    days = []
    for label in page.labels("drift", "symbol"):
        if f"feature: {feature};" in label:
            found = re.search(r"window start: (\d{4}-\d\d-\d\d)", label)
            days.append((date.fromisoformat(found.group(1)) - START).days)
    return sorted(days)


def test_a_missing_token_is_refused_and_a_typed_token_is_kept_for_the_tab(fresh):
    page = fresh.page
    page.goto(fresh.base + "/")
    page.wait_for_selector("#token-form:not(.hidden)")
    assert page.inner_text("#token-why") == "This server needs a read token."
    assert page.locator("table.models tbody tr").count() == 0
    page.fill("#token-form input[name=token]", "not-a-valid-token-0000")
    page.click("#token-form button")
    page.wait_for_selector("#token-form:not(.hidden)")
    page.wait_for_function("document.getElementById('token-why').textContent.includes('refused')")
    page.fill("#token-form input[name=token]", READ_TOKEN)
    page.click("#token-form button")
    page.wait_for_selector("body[data-loaded=true]")
    row = page.locator(f"tr[data-model={MODEL}]")
    assert row.locator(".status").inner_text() == "firing"
    assert "v1 (production), v2 (shadow)" in row.inner_text()
    assert page.locator(f"tr[data-model={MODEL}] .spark g.mark-area.role-mark path").count() == 1
    fresh.shot("overview")
    # the token stays with the tab: the model page loads without asking again
    fresh.open(MODEL_PAGE)
    assert page.locator("#token-form.hidden").count() == 1
    refused = [e for e in fresh.errors if "401" not in e]
    assert refused == []
    assert len(fresh.errors) == 2  # the request without a token, then the wrong one


def test_model_page_renders_every_panel_with_its_series(signed_in, server):
    signed_in.open(MODEL_PAGE)
    page = signed_in.page
    names = page.eval_on_selector_all("section.panel", "s => s.map(x => x.dataset.panel)")
    assert names == ["performance", "drift", "quality", "coverage", "latency", "throughput",
                     "alerts", "compare", "slices", "requests"]  # fmt: skip
    for name in names[:-3]:
        section = signed_in.panel(name)
        assert section.get_attribute("data-rendered") == "true"
        assert section.get_attribute("data-empty") == "false", name
        assert section.locator("details pre.python").text_content().startswith("store.")
    # two versions: one line and one band each; v2 predicts from day 30 only
    assert signed_in.count("performance", "line") == 2
    assert signed_in.count("performance", "area") == 2
    points = signed_in.labels("performance", "symbol")
    assert {re.search(r"version: (v\d)", p).group(1) for p in points} == {"v1", "v2"}
    assert sum("version: v2" in p for p in points) <= 30 < sum("version: v1" in p for p in points)
    # the heatmap: a cell per feature and day (60 days) where the method has a value
    cells = signed_in.labels("drift", "rect")
    features = {re.search(r"feature: ([\w]+);", c).group(1) for c in cells}
    assert {"utilization", "channel", "income", "employment"} <= features
    assert len(cells) == int(signed_in.panel("drift").get_attribute("data-rows"))
    assert 60 * (len(features) - 1) < len(cells) <= 60 * len(features)
    assert signed_in.count("latency", "line") == 6  # p50, p95, p99 of two versions
    assert signed_in.count("alerts", "rect") == 2  # the drift monitor's two firing episodes
    assert "variant: JS distance" in cells[0]
    # champion/challenger: one small chart per metric of the paired differences
    assert signed_in.count("compare", "line") == 4
    slices = page.locator("section[data-panel=slices] table.data tbody tr")
    assert slices.count() >= 1
    assert slices.first.locator("button.copy").count() == 1  # the predicate
    # 0, or 100 when the request test ran first (test order is shuffled)
    assert re.fullmatch(r"Open label requests \((0|100)\)",
                        page.inner_text("section[data-panel=requests] h2"))  # fmt: skip
    signed_in.shot("model")


def test_heatmap_marks_the_injected_drifts_from_their_first_day(signed_in):
    signed_in.open(MODEL_PAGE)
    assert drifted_days(signed_in, "utilization") == list(range(35, 60))
    assert drifted_days(signed_in, "channel") == list(range(40, 60))
    assert drifted_days(signed_in, "account_age_months") == []


def test_a_click_on_a_heatmap_cell_opens_its_distributions(signed_in):
    signed_in.open(MODEL_PAGE)
    page = signed_in.page
    cell = page.locator(
        "section[data-panel=drift] g.mark-rect.role-mark path[aria-label*='feature: utilization;']"
        "[aria-label*='window start: 2026-10-10 00:00']"
    )
    assert cell.count() == 1
    cell.click(force=True)
    page.wait_for_selector("#distribution section[data-panel=distribution][data-rendered=true]")
    title = page.inner_text("#distribution h2")
    assert title.startswith("utilization: training vs window 2026-10-10 00:00 (js = ")
    assert title.endswith("(drifted))")
    bars = signed_in.labels("distribution", "rect")
    assert len(bars) == 2 * 12  # 10 reference-quantile bins, below and above, two samples
    assert sum("sample: window" in b for b in bars) == 12
    query = parse_qs(urlparse(page.url).query)
    assert query["feature"] == ["utilization"]
    assert query["cell"][0].startswith("2026-10-10T00:00:00")
    signed_in.shot("distribution")


def test_a_deep_link_restores_the_pickers_the_panels_and_the_open_cell(signed_in):
    since = (START + timedelta(days=30)).isoformat()
    signed_in.open(
        f"{MODEL_PAGE}?since={since}&metric=accuracy&method=psi"
        "&feature=channel&cell=2026-10-15T00:00:00.000Z"
    )
    page = signed_in.page
    form = "#controls"
    assert page.input_value(f"{form} select[name=window]") == "1 day"
    assert page.input_value(f"{form} select[name=method]") == "psi"
    assert page.input_value(f"{form} select[name=metric]") == "accuracy"
    assert page.input_value(f"{form} input[name=since]") == since
    assert page.inner_text("section[data-panel=performance] h2") == "Performance: accuracy"
    assert page.inner_text("section[data-panel=drift] h2") == "Drift: psi"
    starts = {re.search(r"window start: (\S+)", c).group(1) for c in
              signed_in.labels("drift", "rect")}  # fmt: skip
    assert min(starts) == since and len(starts) == 30
    assert page.inner_text("#distribution h2").startswith(
        "channel: training vs window 2026-10-15 00:00 (psi = "
    )
    # changing a picker rewrites the URL (and closes the cell)
    page.select_option(f"{form} select[name=window]", "7 days")
    page.click(f"{form} button[type=submit]")
    page.wait_for_function("location.search.includes('window=7+days')")
    page.wait_for_function("document.querySelector('#message').textContent === ''", timeout=60_000)
    assert "feature=" not in page.url


def test_the_offline_report_renders_without_a_server(browser, server, tmp_path):
    out = tmp_path / "report.html"
    server.store.report(MODEL, since="2026-10-01", out=out)
    context = browser.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    try:
        page = Page(context.new_page(), "")
        page.open(out.as_uri())
        sections = page.page.eval_on_selector_all(
            "section.panel", "s => s.map(x => [x.dataset.panel, x.dataset.rendered])"
        )
        assert [name for name, _ in sections][:7] == [
            "performance", "drift", "quality", "coverage", "latency", "throughput", "alerts"
        ]  # fmt: skip
        assert all(rendered == "true" for _, rendered in sections)
        # the drifted features' distributions follow: utilization's first drifted window
        titles = page.page.eval_on_selector_all("#distribution h2", "h => h.map(x => x.innerText)")
        assert any(t.startswith("utilization: training vs window 2026-10-06") for t in titles)
        assert page.errors == []
        page.shot("report")
    finally:
        context.close()


def test_requesting_labels_needs_a_write_token(signed_in, browser, server):
    signed_in.open(MODEL_PAGE)
    page = signed_in.page
    page.click("section[data-panel=requests] button.request-more")
    page.wait_for_function("document.getElementById('message').textContent.includes('write')")
    assert page.inner_text("#message") == (
        "Requesting labels needs a write token: this tab's token may only read."
    )
    signed_in.errors.clear()  # the browser logs the refused request (403)
    context = browser.new_context()
    try:
        writer = Page(context.new_page(), server.url)
        context.add_init_script(f"sessionStorage.setItem('evalstore-token', '{WRITE_TOKEN}')")
        writer.open(MODEL_PAGE)
        writer.page.click("section[data-panel=requests] button.request-more")
        writer.page.wait_for_function(
            "document.querySelector('section[data-panel=requests] h2').textContent"
            " === 'Open label requests (100)'"
        )
        rows = writer.page.locator("section[data-panel=requests] table.data tbody tr")
        assert rows.count() == 50
        assert writer.errors == []
    finally:
        context.close()


def test_a_worst_slice_is_shown_on_the_performance_panel(signed_in):
    signed_in.open(MODEL_PAGE)
    page = signed_in.page
    first = page.locator("section[data-panel=slices] table.data tbody tr").first
    predicate = first.locator("td").last.inner_text().split(" copy")[0].strip()
    first.locator("button.show-slice").click()
    page.wait_for_function("location.search.includes('where=')")
    page.wait_for_function("document.querySelector('#message').textContent === ''")
    title = page.inner_text("section[data-panel=performance] h2")
    assert title == f"Performance: roc_auc where {predicate}"
    assert parse_qs(urlparse(page.url).query)["where"] == [predicate]
    assert page.input_value("#controls input[name=where]") == predicate
    assert signed_in.count("performance", "line") >= 1
