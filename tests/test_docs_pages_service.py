"""The README, the flywheel, HTTP API, BI and services pages run as written (docs_snippets).

The workspace is the quick start done once per test session (shared with
tests/test_docs_pages_metrics.py); each page runs in a copy of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import evalstore

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import build_workspace, page_path, run_page

PAGES = ["README.md", "flywheel.md", "http.md", "bi.md", "services.md"]
README_LIMIT = 10_000  # bytes: what a newcomer reads first (issue 20, point 5)


@pytest.fixture(scope="module")
def workspace(build_once) -> Path:
    """The quick start done once for the whole test session (conftest's ``build_once``)."""
    directory, _ = build_once("docs-workspace", build_workspace)
    return directory


@pytest.mark.slow
def test_readme_runs_and_stays_short(workspace, tmp_path):
    assert len(page_path("README.md").read_bytes()) <= README_LIMIT
    session = run_page("README.md", workspace, tmp_path / "page")
    printed = session.output.getvalue()
    assert "'metric': 'accuracy', 'value': 0.6666666666666666, 'n': 3" in printed
    assert "'metric': 'recall', 'value': 0.5, 'n': 3" in printed
    assert "'predictions': 4, 'labeled': 3, 'coverage': 0.75" in printed


@pytest.mark.slow
def test_flywheel_page_runs(workspace, tmp_path):
    run_page("flywheel.md", workspace, tmp_path / "page")
    with evalstore.open(str(tmp_path / "page" / "monitoring.duckdb"), read_only=True) as store:
        names = store.snapshots().column("name").to_pylist()
        requests = store.sql(
            "SELECT request_id, status FROM evalstore.label_requests ORDER BY request_id"
        ).to_pylist()
    assert "fraud-train-2026-11" in names and "fraud-serving" not in names  # deleted again
    statuses = {r["request_id"]: r["status"] for r in requests}
    assert statuses[17] == "cancelled"  # `evalstore requests cancel --request-id 17`
    assert list(statuses.values()).count("open") == len(statuses) - 1  # none expired yet
    assert (tmp_path / "page" / "fraud-serving.parquet").stat().st_size > 0
    assert (tmp_path / "page" / "train.parquet").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.serial  # `evalstore serve` as a process
def test_http_page_runs(workspace, tmp_path):
    run_page("http.md", workspace, tmp_path / "page")
    # the server took the curl and httpx writes
    with evalstore.open(str(tmp_path / "page" / "monitoring.duckdb"), read_only=True) as store:
        served = store.sql(
            "SELECT (SELECT count(*) FROM fraud.predictions WHERE example_id = 'a1' "
            "AND version = 'v2'), (SELECT count(*) FROM fraud.features WHERE example_id = 'a1')"
        )
    assert list(served.to_pylist()[0].values()) == [1, 1]


@pytest.mark.slow
def test_bi_page_runs(workspace, tmp_path):
    session = run_page("bi.md", workspace, tmp_path / "page")
    assert session.output.getvalue() == ""  # SQL blocks only: nothing printed, nothing failed


@pytest.mark.slow
@pytest.mark.serial  # `evalstore serve` as a process
def test_services_page_runs(workspace, tmp_path):
    session = run_page("services.md", workspace, tmp_path / "page")
    printed = session.output.getvalue()
    assert (
        "ClientStats(logged=3, sent=3, acknowledged=3, dropped=0, failed=0, retried=0, "
        "pending=0, batches=4, duplicates=0, last_error=None)" in printed
    )
    assert (
        "{'example_id': 'svc-1', 'prediction': '1', 'score': 0.91}, "
        "{'example_id': 'svc-2', 'prediction': '0', 'score': 0.12}" in printed
    )  # threshold 0.3
    assert "[('features', 1), ('predictions', 1)]" in printed
    assert "ValidationError label" in printed
    with evalstore.open(str(tmp_path / "page" / "monitoring.duckdb"), read_only=True) as store:
        sources = store.sql(
            "SELECT count(*) FROM evalstore.batches WHERE source = 'evalstore.Client'"
        ).column(0)
    assert sources.to_pylist() == [6]  # 4 in process, 2 over HTTP
