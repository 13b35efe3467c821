"""The quick start and the metric family pages run as written (tests/docs_snippets.py).

The workspace is the quick start done once per test session (shared with
tests/test_docs_pages_service.py); each page runs in a copy of it.
The other pages run in tests/test_docs_pages_service.py, so xdist can spread the two files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import evalstore

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import all_pages, blocks, build_workspace, run_page, runnable

PAGES = ["concepts.md", "drift.md", "quality.md", "performance.md", "estimation.md", "skew.md",
         "compare.md",
         "health.md", "monitoring.md", "dashboard.md", "scaling.md"]  # fmt: skip
#: Pages with nothing to run: the index, the benchmark figures, the generated references.
NO_CODE = {"index.md", "benchmarks.md", "operations.md", "sql-reference.md", "cli-reference.md"}


@pytest.fixture(scope="module")
def workspace(build_once) -> Path:
    """The quick start done once for the whole test session (conftest's ``build_once``)."""
    directory, ran = build_once("docs-workspace", build_workspace)
    assert ran == [b.line for b in runnable("quickstart.md")] and len(ran) >= 4
    return directory


def test_every_page_is_run_by_a_test_or_has_no_code():
    from test_docs_pages_service import PAGES as SERVICE_PAGES

    tested = {"quickstart.md", *PAGES, *SERVICE_PAGES}
    assert set(all_pages()) == tested | NO_CODE, set(all_pages()) ^ (tested | NO_CODE)
    assert not tested & NO_CODE
    for page in NO_CODE:
        assert not runnable(page), f"{page} has code to run: give it a test"
    for page in tested:
        assert runnable(page), f"{page} has no code to run"


def test_blocks_are_code_and_skips_give_reasons():
    found = [b for page in all_pages() for b in blocks(page)]
    assert {b.lang for b in found} == {"python", "sh", "sql", "text"}
    skipped = [b for b in found if b.skip]
    assert [b.page for b in skipped] == ["README.md", "http.md", "quickstart.md"], skipped
    assert all(len(b.skip) > 10 for b in skipped)  # a reason, not a bare marker
    assert sum(b.lang == "python" for b in found if not b.skip) >= 7
    assert sum("curl " in b.code for b in found if not b.skip) >= 1


@pytest.mark.slow  # builds the workspace when it runs first
def test_quickstart_builds_the_store_the_pages_continue_from(workspace):
    with evalstore.open(str(workspace / "monitoring.duckdb"), read_only=True) as store:
        models = store.models().to_pylist()
        counts = store.sql(
            "SELECT (SELECT count(*) FROM fraud.features), (SELECT count(*) FROM fraud.labels),"
            " (SELECT count(*) FROM fraud.predictions WHERE version = 'v2')"
        ).to_pylist()[0]
    assert sorted((m["model"], m["version"]) for m in models) == [("fraud", "v1"), ("fraud", "v2")]
    # 2000 training + 3000 serving rows in Python, 200 more from tomorrow.parquet on the CLI;
    # 1800 labels (60%) from labels.parquet and 50 from labels.arrow; v2 scored tomorrow's 200
    assert list(counts.values()) == [5200, 1850, 200]
    # `evalstore demo demo.duckdb --overwrite --days 21` replaced the 60-day demo store the
    # workspace started with (the CLI's --overwrite, moved here from tests/cli/test_cli.py)
    with evalstore.open(str(workspace / "demo.duckdb"), read_only=True) as store:
        days = store.sql(
            "SELECT count(DISTINCT ts::DATE) AS d FROM credit_default.features "
            "WHERE env = 'serving'"
        ).to_pylist()
    assert days == [{"d": 21}]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, workspace, tmp_path):
    session = run_page(page, workspace, tmp_path / "page")
    assert session.output.getvalue()  # the CLI printed its tables
