"""The dashboard's model page in a real browser: cold (the metric history computed and
stored by the first view) against warm (read back), and the offline report's size
(issue 22, points 2 and 6; the browser tests' benchmark twin).

The store is the demo (``credit_default``: 60 days of ``--rows-per-day`` serving rows, two
versions, labels arriving late; default 1,500 as ``evalstore demo``), built in a temporary
directory, with the default monitors run once so alerts exist. A server
(:func:`server.app.create_app` under uvicorn, in this process) serves it on 127.0.0.1;
headless Chromium (Debian's, driven by Playwright) opens the model page:

* ``cold``: the first view of a store whose metric history is empty (drift, quality and
  performance windows computed and stored);
* ``warm``: ``--repeat`` later views (a new browser context each: no cache of the page's
  scripts or data), median and max; then ``--repeat`` views in one browser context after
  a first one (the Vega bundle comes from the browser's cache, as for a returning user);
* ``overview``: the models overview, warm.

For each it reports the page load (navigation start to every panel drawn, what a person
waits for) and the server time of the page's API request (the browser's resource
timing: request start to response end). Then it writes the report of the whole period
and gives its size against the 5 MB target, and the size of the vendored Vega bundle
against plotly.js (the alternative measured for docs/dashboard.md), when plotly is
installed.

    python benchmarks/bench_dashboard.py --rows-per-day 1500 --repeat 5
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import harness

import evalstore

MODEL = "credit_default"
PAGE = f"/dashboard/models/{MODEL}"


def build(path: Path, rows_per_day: int) -> None:
    """The demo store at ``path`` with its default monitors run once (no dashboard call)."""
    from evalstore.demo.run import build_store
    from evalstore.demo.scenario import credit_default_scenario

    with evalstore.open(path) as store:
        build_store(store, credit_default_scenario(rows_per_day=rows_per_day))
        store.add_default_monitors(MODEL)
        store.run_monitors(MODEL, now="2026-10-31", names=[f"{MODEL}.drift.js"])
        # the monitor run persisted its own drift call; the dashboard's calls differ
        # (every method, all features): the first view computes them


def serve(store: evalstore.Store) -> tuple[Any, threading.Thread, str]:
    import socket

    import uvicorn

    from server.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(store, monitor_every=0, checkpoint_idle=None)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def view(browser: Any, url: str, api: str, context: Any = None) -> tuple[float, float]:
    """(page load, server time of the API request) in seconds, in a fresh context (no
    cached scripts) or in ``context`` (its cache: the scripts of an earlier view)."""
    own = context is None
    context = context or browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("body[data-loaded=true]", timeout=600_000)
        if errors:
            raise RuntimeError(f"the page failed: {errors}")
        load = float(page.get_attribute("body", "data-loaded-ms"))
        served = page.evaluate(
            "(api) => performance.getEntriesByType('resource')"
            ".filter(e => e.name.includes(api))"
            ".map(e => e.responseEnd - e.requestStart)[0]",
            api,
        )
        return load / 1000, served / 1000
    finally:
        if own:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-day", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=5, help="Warm views.")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load = [harness.load_average()]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "demo.duckdb"
        started = time.perf_counter()
        build(path, args.rows_per_day)
        built = time.perf_counter() - started
        store = evalstore.open(path)
        server, thread, base = serve(store)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
                )
                api = f"/dashboard/api/models/{MODEL}"
                cold = view(browser, base + PAGE, api)
                rows.append(["model page, cold (history computed)", f"{cold[0]:.2f}",
                             f"{cold[1]:.2f}", "1"])  # fmt: skip
                warm = [view(browser, base + PAGE, api) for _ in range(args.repeat)]
                loads, served = [w[0] for w in warm], [w[1] for w in warm]
                rows.append([
                    "model page, warm (history read back)",
                    f"{statistics.median(loads):.2f} (max {max(loads):.2f})",
                    f"{statistics.median(served):.2f} (max {max(served):.2f})",
                    str(args.repeat),
                ])  # fmt: skip
                tab = browser.new_context(viewport={"width": 1200, "height": 900})
                cached = [view(browser, base + PAGE, api, tab) for _ in range(args.repeat + 1)]
                tab.close()
                loads, served = [c[0] for c in cached[1:]], [c[1] for c in cached[1:]]
                rows.append([
                    "model page, warm, scripts cached (same browser)",
                    f"{statistics.median(loads):.2f} (max {max(loads):.2f})",
                    f"{statistics.median(served):.2f} (max {max(served):.2f})",
                    str(args.repeat),
                ])  # fmt: skip
                overview = [view(browser, base + "/", "/dashboard/api/overview")
                            for _ in range(args.repeat)]  # fmt: skip
                rows.append([
                    "models overview, warm",
                    f"{statistics.median(o[0] for o in overview):.2f}",
                    f"{statistics.median(o[1] for o in overview):.2f}", str(args.repeat),
                ])  # fmt: skip
                browser.close()
            report = store.report(MODEL)
        finally:
            server.should_exit = True
            thread.join(30)
            store.close()
    load.append(harness.load_average())
    size = len(report.html.encode())
    lines = harness.setting(
        f"bench_dashboard: demo store, {args.rows_per_day} serving rows/day x 60 days "
        f"(built in {built:.0f} s)",
        harness.versions("duckdb", "altair"),
        load,
    )
    lines += ["", *harness.table(["case", "page load s", "API server s", "views"], rows)]
    bundle = (Path(evalstore.__file__).parent / "dashboard/static/vega-bundle.min.js").read_bytes()
    weights = [["report of the 60 days (scripts + data inlined)", f"{size / 1e6:.2f}",
                f"{len(gzip.compress(report.html.encode())) / 1e6:.2f}"],
               ["vega + vega-lite + vega-embed bundle (vendored)", f"{len(bundle) / 1e6:.2f}",
                f"{len(gzip.compress(bundle)) / 1e6:.2f}"]]  # fmt: skip
    try:
        import plotly

        plotly_js = (Path(plotly.__file__).parent / "package_data/plotly.min.js").read_bytes()
        weights.append(["plotly.min.js (plotly.py's package data)",
                        f"{len(plotly_js) / 1e6:.2f}",
                        f"{len(gzip.compress(plotly_js)) / 1e6:.2f}"])  # fmt: skip
    except ImportError:
        weights.append(["plotly.min.js", "plotly not installed", ""])
    lines += ["", *harness.table(["page weight", "MB", "gzip MB"], weights)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
