"""The BI snapshot and the SQL a BI tool calls on it.

* every persisted macro runs on the snapshot with DuckDB 1.4 (a throwaway virtualenv,
  ``.venv-duckdb14``, made by ``make test`` or here) and gives the rows DuckDB 2.x gives;
* the snapshot is skipped when nothing was committed, and rewritten when a batch, the
  registry or the label requests changed;
* a served (locked) store allows no directory for the snapshot;
* the SQL-only drift decisions and the short performance wrappers agree with the Python API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

import evalstore
from evalstore.metrics.drift.univariate import DEFAULT_THRESHOLDS
from evalstore.metrics.specs import DRIFT_METHODS
from server import create_app
from server.snapshot import STORAGE_VERSION, SnapshotWriter
from tests.conftest import blank_store

sys.path.insert(0, str(Path(__file__).parent))
from bi_macro_calls import MACRO_CALLS, SETUP, build_store

PROJECT = Path(__file__).parents[2]
VENV14 = Path(os.environ.get("EVALSTORE_DUCKDB14_VENV", PROJECT / ".venv-duckdb14"))
RUNNER = Path(__file__).parent / "bi_run_calls.py"
MACRO_TYPES = "('macro', 'table_macro')"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(store path, snapshot path) of the three-model store and its BI snapshot."""
    directory = tmp_path_factory.mktemp("bi")
    path, snapshot = directory / "store.duckdb", directory / "bi" / "snapshot.duckdb"
    with evalstore.open(path) as store:
        build_store(store)
        info = SnapshotWriter(store, snapshot).refresh()
    assert info["storage_version"] == STORAGE_VERSION == "v1.4.0"
    return path, snapshot


def duckdb14_python() -> Path:
    """The python of a virtualenv with DuckDB 1.4 and pytz, made once (skips if it cannot)."""
    python = VENV14 / "bin" / "python"
    check = [str(python), "-c", "import duckdb, pytz; assert duckdb.__version__[:4] == '1.4.'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    steps = [
        [sys.executable, "-m", "venv", str(VENV14)],
        [str(python), "-m", "pip", "install", "--quiet", "duckdb==1.4.*", "pytz"],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"DuckDB 1.4 could not be installed into {VENV14}: {error}")
        if done.returncode != 0:
            pytest.skip(
                f"DuckDB 1.4 could not be installed into {VENV14} (`{' '.join(step[-3:])}` "
                f"failed: {done.stderr.strip()[-300:]}); run `make duckdb14` with access to "
                "the package index"
            )
    return python


def run_calls(python: Path | str, snapshot: Path) -> dict:
    calls = {name: MACRO_CALLS[name] for name in persisted_macros(snapshot)}
    done = subprocess.run(
        [str(python), str(RUNNER), str(snapshot), json.dumps(calls), json.dumps(SETUP)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def persisted_macros(path: Path) -> list[str]:
    """The names of the evalstore macros persisted in the store file ``path``."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.sql(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            f"WHERE schema_name = 'evalstore' AND function_type IN {MACRO_TYPES}"
        ).fetchall()
    return sorted(n for (n,) in names)


def test_every_persisted_macro_has_a_call(built):
    path, _ = built
    macros = persisted_macros(path)
    assert len(macros) > 90
    assert [name for name in macros if name not in MACRO_CALLS] == []


def test_every_macro_runs_on_the_snapshot_with_duckdb_14(built):
    _, snapshot = built
    python = duckdb14_python()
    old = run_calls(python, snapshot)
    new = run_calls(sys.executable, snapshot)
    assert old["version"].startswith("1.4.")
    assert new["version"].startswith("2.")
    errors = {name: r["error"] for name, r in old["results"].items() if "error" in r}
    assert errors == {}
    assert {name: r for name, r in new["results"].items() if "error" in r} == {}
    empty = [name for name, r in old["results"].items() if not r["rows"]]
    assert empty == []
    assert set(old["results"]) == set(persisted_macros(snapshot))  # every one was called
    different = [name for name in old["results"] if old["results"][name] != new["results"][name]]
    assert different == []
    rows = old["results"]
    # a few values that could be wrong: the macros that failed on 1.4 before
    health = rows["health"]["rows"]
    assert {r[0] for r in health} == {"staleness", "serving", "ingest", "dependencies"}
    candidates = {r[0] for r in rows["suggest_uncertainty"]["rows"]}
    requested = {r[0] for r in rows["suggest_candidates"]["rows"]}
    assert candidates == requested and len(candidates) == 10 - 3  # 10 unlabeled, 3 requested
    assert (
        rows["volume"]["rows"]
        and sum(r[-1] for r in rows["volume"]["rows"]) == 40 + 40 + 2 * 40 + 30
    )


def test_requests_exclude_candidates_with_the_portable_key(built):
    path, _ = built
    with evalstore.open(path, read_only=True) as store:
        requested = set(store.label_requests("bin", status="open").column("example_id").to_pylist())
        candidates = set(
            store.sql(
                "SELECT example_id FROM evalstore.suggest_candidates('bin', 'v1', NULL, NULL)"
            )
            .column(0)
            .to_pylist()
        )
    unlabeled = {f"e{i}" for i in range(30, 40)}
    assert len(requested) == 3 and requested <= unlabeled
    assert candidates == unlabeled - requested


def _modified(path: Path) -> int:
    return path.stat().st_mtime_ns


def test_refresh_is_skipped_until_something_commits(tmp_path):
    target = tmp_path / "bi" / "copy.duckdb"
    with evalstore.open(tmp_path / "s.duckdb") as store:
        store.register_model("m", "v1", task="binary")
        store.log_features("m", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}))
        writer = SnapshotWriter(store, target)
        first = writer.refresh()
        assert first is not None and first["bytes"] > 0
        stamp = _modified(target)
        assert writer.refresh() is None
        assert writer.status()["unchanged"] == 1 and _modified(target) == stamp

        changes = [
            lambda: store.log_features("m", pa.table({"example_id": ["c"], "x": [3.0]})),
            lambda: store.register_model("m", "v2", task="binary"),  # registry, no batch
            lambda: store.log_predictions(
                "m", pa.table({"example_id": ["a", "b"], "score": [0.2, 0.9]}), version="v1"
            ),
            lambda: store.suggest("m", k=1, strategy="least_confidence", version="v1"),  # requests
            lambda: store.cancel_requests("m", example_ids=["a", "b"]),
        ]
        for change in changes:
            change()
            assert writer.refresh() is not None
            assert writer.refresh() is None
        assert writer.status()["unchanged"] == 1 + len(changes)
        target.unlink()
        assert writer.refresh() is not None  # a copy someone removed is written again
        assert writer.refresh(force=True) is not None
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM m.features").fetchall() == [(3,)]
        assert con.sql("SELECT count(*) FROM evalstore.models").fetchall() == [(2,)]
        statuses = con.sql("SELECT status FROM evalstore.label_requests").fetchall()
        assert statuses == [("cancelled",)]
        following = con.sql(
            "SELECT start_value FROM duckdb_sequences() WHERE sequence_name = 'batch_ids'"
        ).fetchall()
        assert following == [(4,)]  # 3 batches: the copy's sequence goes on after them
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.duckdb"]


def test_a_served_store_allows_no_directory_for_the_snapshot(tmp_path):
    target = tmp_path / "bi" / "copy.duckdb"
    with evalstore.open(tmp_path / "s.duckdb") as store:
        store.register_model("m", "v1", task="binary")
        store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0]}))
        with TestClient(create_app(store, snapshot=target, snapshot_every=3600)) as client:
            assert client.get("/healthz").status_code == 200
            writer = client.app.state.snapshot
            assert writer.refresh(force=True) is not None and target.exists()
            (allowed,) = store.sql("SELECT current_setting('allowed_directories') AS a").column(0)
            assert str(target.parent) not in str(allowed)
            with pytest.raises(duckdb.Error, match="disabled by configuration"):
                store.sql(f"SELECT * FROM read_blob('{target}')")
            with pytest.raises(duckdb.Error, match="disabled by configuration"):
                store.sql(f"SELECT * FROM glob('{target.parent}/*')")
            refused = client.post("/v1/sql", json={"sql": f"SELECT * FROM '{target}'"})
            assert refused.status_code in (400, 403)
            store.log_features("m", pa.table({"example_id": ["b"], "x": [2.0]}))
            assert writer.refresh() is not None  # still written under the lock
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM m.features").fetchall() == [(2,)]


def test_drift_thresholds_are_the_registry_defaults():
    with blank_store() as store:
        rows = store.sql("SELECT * FROM evalstore.drift_thresholds()").to_pylist()
    table = {r["method"]: r for r in rows}
    assert set(table) == set(DRIFT_METHODS)
    for method, spec in DRIFT_METHODS.items():
        row = table[method]
        assert row["compares"] == ("p_value" if spec.has_p_value else "value"), method
        assert (row["threshold_low"], row["threshold"]) == (spec.threshold_low, spec.threshold)
        assert row["variant_prefix"] == spec.variant_prefix, method
    # the registry's numbers are the ones store.drift applies by default
    assert table["wasserstein"]["variant_prefix"] == "normed"
    assert (table["ks"]["compares"], table["ks"]["threshold"]) == ("p_value", 0.05)
    assert (table["zscore"]["threshold_low"], table["zscore"]["threshold"]) == (-3.0, 3.0)
    assert DEFAULT_THRESHOLDS["zscore"] == (-3.0, 3.0) and DEFAULT_THRESHOLDS["psi"] == 0.2


def test_sql_drift_decisions_agree_with_store_drift(built):
    path, _ = built
    methods = ["ks", "psi", "js", "wasserstein", "zscore", "chi2", "unseen"]
    with evalstore.open(path, read_only=True) as store:
        python = store.drift("bin", window="1 day", methods=methods, features=["x", "c"])
        sql = store.sql(
            "SELECT * FROM evalstore.drift('bin', 'training', '1 day') WHERE feature IN ('x', 'c')"
        )
    decided = {
        (r["window_start"], r["feature"], r["method"], r["variant"]): r for r in sql.to_pylist()
    }
    compared = 0
    for row in python.to_pylist():
        other = decided[(row["window_start"], row["feature"], row["method"], row["variant"])]
        if row["method"] in ("ks", "chi2"):
            assert other["drifted"] is None
            assert "needs evalstore" in other["threshold_source"]
            continue
        assert other["value"] == pytest.approx(row["value"], rel=1e-9)
        assert (other["threshold"], other["threshold_low"]) == (
            row["threshold"],
            row["threshold_low"],
        )
        assert other["threshold_source"] == row["threshold_source"]
        assert other["drifted"] == row["drifted"]
        compared += 1
    assert compared >= 4 * 5  # 4 serving days x (psi, js, wasserstein, zscore, unseen)
    assert pc.sum(pc.cast(sql.column("drifted"), pa.int64())).as_py() > 0


@pytest.mark.parametrize(
    ("model", "macro"),
    [("bin", "performance"), ("mc", "performance"), ("reg", "regression_performance")],
)
def test_performance_wrappers_give_store_performance(built, model, macro):
    path, _ = built
    with evalstore.open(path, read_only=True) as store:
        python = store.performance(model, window="1 day").to_pylist()
        sql = store.sql(f"SELECT * FROM evalstore.{macro}(?, '1 day')", [model]).to_pylist()
    assert len(sql) == len(python) > 0
    keyed = {(r["window_start"], r["version"], r["metric"], r["class"]): r for r in sql}
    for row in python:
        other = keyed[(row["window_start"], row["version"], row["metric"], row["class"])]
        for column in ("value", "n", "labeled", "labels_complete", "reason"):
            assert other[column] == pytest.approx(row[column]), (row["metric"], column)
        if row["metric"] not in ("macro_f1", "weighted_f1", "ece"):  # bootstrap in Python
            assert other["variant"] == row["variant"]
            assert other["ci_low"] == pytest.approx(row["ci_low"])
            assert other["ci_high"] == pytest.approx(row["ci_high"])


def test_a_null_delay_quantile_means_the_default(built):
    path, _ = built
    with evalstore.open(path, read_only=True) as store:
        default = store.sql("SELECT * FROM evalstore.label_horizon('bin', NULL, NULL)")
        explicit = store.sql("SELECT * FROM evalstore.label_horizon('bin', 0.9, NULL)")
        other = store.sql("SELECT * FROM evalstore.label_horizon('bin', 0.1, NULL)")
    assert default.to_pylist() == explicit.to_pylist()
    assert default.column("labeled").to_pylist() == [60]
    assert default.column("delay_hours")[0].as_py() > other.column("delay_hours")[0].as_py()


def test_performance_gauge_keeps_each_versions_latest_labeled_window():
    """evalstore_performance (Grafana's gauge) skips the newest windows, still unlabeled."""
    from datetime import UTC, datetime

    from prometheus_client.parser import text_string_to_metric_families

    from server.prom import Monitor

    day = [datetime(2026, 10, d, tzinfo=UTC) for d in (1, 2, 3)]
    rows = [  # (window_start, version, value, labeled)
        (day[0], "v1", 0.81, 50),
        (day[1], "v1", 0.84, 20),
        (day[2], "v1", None, 0),  # today: no labels yet
        (day[0], "v2", 0.79, 40),
        (day[1], "v2", None, 0),
        (day[2], "v2", None, 0),
    ]
    table = pa.table(
        {
            "window_start": [r[0] for r in rows],
            "version": [r[1] for r in rows],
            "metric": ["accuracy"] * len(rows),
            "class": pa.array([None] * len(rows), pa.string()),
            "value": [r[2] for r in rows],
            "labeled": [r[3] for r in rows],
        }
    )
    with blank_store() as store:
        monitor = Monitor(store)
        monitor.observe_result("fraud", "performance", table)
        text = monitor.exposition().decode()
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "evalstore_performance"
    ]
    assert {s.labels["version"]: s.value for s in family.samples} == {"v1": 0.84, "v2": 0.79}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_grafana_example_shows_the_demo_model_per_version(
    tmp_path, version, template, copy_template
):
    """examples/grafana_dashboard.json: its defaults (model credit_default, the demo's time
    range) give records for each version, most of them inside the dashboard's time range
    (the volume panel also counts the training set's historical labels, before it). The
    demo store is built once for both versions (a session template) and served from a copy."""
    from datetime import datetime
    from urllib.parse import unquote

    from evalstore.demo.run import build_store as build_demo
    from evalstore.demo.scenario import credit_default_scenario

    dashboard = json.loads((PROJECT / "examples" / "grafana_dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["model"]["current"]["value"] == "credit_default"
    assert [o["value"] for o in variables["version"]["options"]] == ["v1", "v2"]
    first, last = (datetime.fromisoformat(dashboard["time"][k]) for k in ("from", "to"))
    scenario = credit_default_scenario(rows_per_day=60, training_rows=600, validation_rows=100)
    demo = template("bi-grafana-demo", lambda store: build_demo(store, scenario), "demo.duckdb")
    values = {"${evalstore}": "", "${model}": "credit_default", "${version}": version}

    def fill(text: str) -> str:
        for name, value in values.items():
            text = text.replace(name, value)
        return text

    targets = [t for p in dashboard["panels"] for t in p["targets"] if "url" in t]
    with (
        evalstore.open(copy_template(demo, tmp_path, "demo.duckdb")) as store,
        TestClient(create_app(store)) as client,
    ):
        for target in targets:
            url = unquote(fill(target["url"]))
            if target["url_options"]["method"] == "POST":
                body = json.loads(fill(target["url_options"]["data"]))
                response = client.post(url, json=body)
            else:
                response = client.get(url)
            assert response.status_code == 200, (url, response.text)
            records = response.json()
            assert records, url
            assert {c["selector"] for c in target["columns"]} <= set(records[0]), url
            (time,) = [c["selector"] for c in target["columns"] if c["type"] == "timestamp"]
            shown = [r for r in records if first <= datetime.fromisoformat(r[time]) < last]
            assert len(shown) >= len(records) / 2, url  # the range shows the data
            if "version" in records[0]:
                # (drift rows of features carry no version: the rows version predicted)
                assert {r["version"] for r in records} - {None} == {version}, url
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"] if "expr" in t]
    assert 'evalstore_performance{model="$model",version="$version",class=""}' in exprs
