"""The dashboard without a browser: the JSON API and its tokens, the panels' data, the
charts' honest empties, the offline report, ``store.plot`` and ``evalstore report``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main
from evalstore.dashboard import charts, panels
from evalstore.errors import InvalidParameterError, UnknownModelError
from tests.dashboard.conftest import MODEL, READ_TOKEN, WRITE_TOKEN


@pytest.fixture(scope="module")
def store(
    demo_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[evalstore.Store]:
    """A writable copy of the demo store, shared by this module's read-only checks."""
    directory = tmp_path_factory.mktemp("dashboard-lib")
    copy = directory / "demo.duckdb"
    copy.write_bytes(demo_template.read_bytes())
    with evalstore.open(copy) as opened:
        yield opened


@pytest.fixture
def http(server) -> Callable[..., httpx.Response]:
    def get(path: str, token: str | None = READ_TOKEN, **params: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(server.url + path, params=params, headers=headers, timeout=120)

    return get


# ---------------------------------------------------------------------- HTTP


def test_pages_hold_no_data_and_the_api_needs_a_read_token(http):
    page = http("/", token=None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-page="overview"' in page.text and MODEL not in page.text
    refused = http("/dashboard/api/overview", token=None)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthenticated"
    wrong = http("/dashboard/api/overview", token="not-a-token-0123456789")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_token")
    for token in (READ_TOKEN, WRITE_TOKEN):
        models = http("/dashboard/api/overview", token=token).json()["models"]
        assert [m["model"] for m in models] == [MODEL]
    entry = models[0]
    assert entry["status"] == "firing" and entry["firing"] == 2
    assert [v["version"] for v in entry["versions"]] == ["v1", "v2"]
    assert 0.4 < entry["coverage"] < 0.7
    assert {p["version"] for p in entry["performance"]} == {"v1", "v2"}
    for latest in entry["performance"]:
        assert latest["ci_low"] < latest["value"] < latest["ci_high"]


def test_static_files_come_from_the_package(http):
    bundle = http("/dashboard/static/vega-bundle.min.js", token=None)
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert "window.vegaEmbed=" in bundle.text
    missing = http("/dashboard/static/../app.py", token=None)
    assert missing.status_code == 404
    assert http("/dashboard/static/other.js", token=None).json()["error"] == "not_found"


def test_model_api_checks_the_view_before_computing(http):
    answer = http(f"/dashboard/api/models/{MODEL}", window="2 days")
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "window='2 days' is not offered; choose one of 1 hour, 6 hours, 1 day, 7 days"
    )
    answer = http(f"/dashboard/api/models/{MODEL}", since="last tuesday")
    assert answer.json()["detail"] == (
        "since='last tuesday' is not an ISO date or time (e.g. 2026-10-01)"
    )
    answer = http(f"/dashboard/api/models/{MODEL}", where="nope > 1")
    assert answer.status_code == 422
    assert "where='nope > 1' refers to unknown column 'nope'" in answer.json()["detail"]
    answer = http(f"/dashboard/api/models/{MODEL}", where="x" * 2001)
    assert answer.json()["detail"] == "where= is 2001 characters; at most 2000 are accepted"
    unknown = http("/dashboard/api/models/nope")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_model")
    cell = http(f"/dashboard/api/models/{MODEL}/distribution", feature="utilization",
                window_start="2031-01-01")  # fmt: skip
    assert cell.status_code == 422
    assert "'utilization' has no drift row in the window starting 2031-01-01" in cell.text


def test_model_api_gives_each_panel_with_its_calls(http):
    answer = http(f"/dashboard/api/models/{MODEL}", since="2026-10-01", method="psi").json()
    assert answer["view"] == {"since": "2026-10-01", "method": "psi", "metric": "roc_auc"}
    assert "roc_auc" in answer["metrics"] and "accuracy" in answer["metrics"]
    # the picker offers the metrics a call computes without extra parameters: not
    # business_value (it needs business_value_matrix=) nor the opt-in confusion cells
    assert not {"business_value", "tp", "fp", "fn", "tn"} & set(answer["metrics"])
    by_id = {p["id"]: p for p in answer["panels"]}
    drift = by_id["drift"]
    assert drift["python"] == f"store.drift(model='{MODEL}', window='1 day', persist=True)"
    assert drift["http"] == (
        f"GET /v1/models/{MODEL}/history?family=drift&metric=psi&since=2026-10-01"
    )
    rows = next(iter(drift["spec"]["datasets"].values()))
    assert min(r["window_start"] for r in rows).startswith("2026-10-01")
    assert all(r["variant"].startswith("psi, ln") for r in rows)


# ---------------------------------------------------------------------- panels and charts


def test_view_parse_refuses_what_the_pickers_do_not_offer():
    with pytest.raises(InvalidParameterError, match=r"method='mmd' is not a heatmap method"):
        panels.View.parse(MODEL, {"method": "mmd"})
    with pytest.raises(InvalidParameterError, match=r"until='soon' is not an ISO date"):
        panels.View.parse(MODEL, {"until": "soon"})
    view = panels.View.parse(MODEL, {"window": "7 days", "since": "2026-10-01", "x": "1"})
    assert view.query() == {"window": "7 days", "since": "2026-10-01"}


def test_quality_rates_sum_counts_over_the_checked_values():
    frame = pd.DataFrame({
        "window_start": pd.to_datetime(["2026-10-01"] * 4, utc=True),
        "method": ["nan", "nan", "rows", "unseen"],
        "feature": ["a", "b", "a", "c"],
        "count": [3.0, 1.0, 100.0, 0.0],
        "n_analysis": [100, 300, 100, 50],
        "drifted": [True, False, False, False],
        "variant": ["number of NaN values", "number of NaN values", "rows", "share unseen"],
    })  # fmt: skip
    rates = panels.quality_rates(frame).set_index("check")
    assert list(rates.index) == ["nan", "unseen"]  # the row count is not a rate
    assert rates.loc["nan", "rate"] == pytest.approx(4 / 400)
    assert (rates.loc["nan", "failing"], rates.loc["nan", "checked"]) == (4, 400)
    assert rates.loc["nan", "features"] == "a"
    assert (rates.loc["unseen", "rate"], rates.loc["unseen", "features"]) == (0.0, "none")


def test_charts_without_values_say_so_instead_of_drawing():
    rows = pd.DataFrame({
        "window_start": pd.to_datetime(["2026-10-01"], utc=True),
        "window_end": pd.to_datetime(["2026-10-02"], utc=True),
        "version": ["v1"], "value": [None], "ci_low": [None], "ci_high": [None],
        "labels_complete": [False], "labeled": [0], "label_coverage": [0.0], "n": [0],
        "variant": ["AUC"],
    })  # fmt: skip
    chart = charts.spec(charts.performance(rows, "roc_auc"))
    assert chart["usermeta"] == {
        "empty": True, "why": "no window has labels enough to compute roc_auc"
    }  # fmt: skip
    assert chart["mark"]["type"] == "text"
    message = next(iter(chart["datasets"].values()))[0]["message"]
    assert message == "Not enough data: no window has labels enough to compute roc_auc"
    empty = charts.spec(charts.drift_heatmap(pd.DataFrame(), "js"))
    assert empty["usermeta"]["why"] == "no window and feature has a js value"


def test_distributions_count_the_rows_the_drift_family_compared(store):
    view = panels.View(MODEL)
    drift = store.drift(MODEL, features=["utilization", "channel"], methods=["js"]).to_pandas()
    for feature, bins in (("utilization", 12), ("channel", None)):
        panel = panels.distribution_panel(store, view, feature, "2026-10-10")
        frame = panel.chart.data
        row = drift[(drift["feature"] == feature)
                    & (drift["window_start"] == pd.Timestamp("2026-10-10", tz="UTC"))]  # fmt: skip
        totals = frame.groupby("sample")["rows"].sum()
        assert totals["window"] == row["n_analysis"].iloc[0]
        assert totals["reference"] == row["n_reference"].iloc[0]
        shares = frame.groupby("sample")["share"].sum()
        assert shares.to_dict() == pytest.approx({"reference": 1.0, "window": 1.0})
        assert f"js = {row['value'].iloc[0]:.4f}" in panel.title
        if bins:
            assert len(frame) == 2 * bins
            assert frame["bin"].iloc[0].startswith("< ")
        else:
            assert set(frame["bin"]) >= {"mobile", "web"}


def test_a_read_only_store_keeps_family_calls_in_memory(demo_template):
    with evalstore.open(demo_template, read_only=True) as store:
        first = panels.family_call(store, "quality", MODEL, window="7 days")
        again = panels.family_call(store, "quality", MODEL, window="7 days")
        assert again is first
        daily = panels.family_call(store, "quality", MODEL, window="1 day")
        assert daily is not first
        assert daily.num_rows > first.num_rows  # 60 daily windows against 9 weekly ones


# ---------------------------------------------------------------------- report, plot, CLI


def test_report_is_one_offline_file_under_five_megabytes(store, tmp_path):
    out = tmp_path / "report.html"
    report = store.report(MODEL, out=out)
    text = out.read_text()
    assert text == report.html
    assert len(text.encode()) < 5_000_000
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing from the web
    assert "window.vegaEmbed=" in text and '"id":"drift"' in text
    assert "Model <b>credit_default</b>, windows of 1 day, all stored data." in text
    assert report._repr_html_().startswith('<iframe srcdoc="&lt;!doctype html&gt;')
    assert repr(report).startswith("<Report of 'credit_default': ")


def test_plot_returns_the_dashboards_altair_charts(store):
    import altair as alt  # here, not at collection: no other test of a worker needs altair

    heatmap = store.plot.drift(MODEL, method="psi", since="2026-10-01")
    assert isinstance(heatmap, alt.LayerChart)
    meta = heatmap.to_dict()["usermeta"]
    assert meta["method"] == "psi" and "utilization" in meta["series"]
    latency = store.plot.latency(MODEL, window="7 days").to_dict()
    assert latency["usermeta"]["series"] == ["v1", "v2"]
    with pytest.raises(InvalidParameterError, match="bogus"):
        store.plot.performance(MODEL, metric="bogus")
    with pytest.raises(UnknownModelError, match="'nope' is not registered"):
        store.plot.quality("nope")


def test_cli_report_writes_the_file_and_says_its_size(demo_template, tmp_path):
    copy = tmp_path / "demo.duckdb"
    copy.write_bytes(demo_template.read_bytes())
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["-s", str(copy), "report", "--model", MODEL,
                                       "--since", "2026-10-20", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    size = out.stat().st_size / 1e6
    assert f"wrote {out} ({size:.2f} MB): credit_default, windows of 1 day" in result.output
    assert "from 2026-10-20" in out.read_text()
    refused = CliRunner().invoke(main, ["-s", str(copy), "report", "--model", MODEL,
                                        "--window", "2 days", "--out", str(out)])  # fmt: skip
    assert refused.exit_code != 0 and "'2 days' is not one of" in refused.output


def test_every_chart_kind_is_valid_vega_lite(store):
    """The served specs skip Altair's schema validation (charts.spec): check it here."""
    view = panels.View(MODEL, since="2026-10-20")
    built = [*panels.model_panels(store, view),
             panels.distribution_panel(store, view, "channel", "2026-10-25")]  # fmt: skip
    built_charts = [p.chart for p in built if p.chart is not None]  # tables have none
    built_charts.append(charts.not_enough_data("t", "nothing"))
    built_charts.append(charts.sparkline(pd.DataFrame({"window_start": [], "rows": []}), "s"))
    for chart in built_charts:
        assert chart.to_dict(validate=True)["$schema"].endswith("/v6.4.1.json")
