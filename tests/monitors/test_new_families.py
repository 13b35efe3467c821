"""Monitors of the families computed fresh on each run that came with issue 23:
``estimated_performance`` (store.estimate_performance: CBPE, DLE) and ``summary_stats``.

The series a monitor judges equals the family's own table (estimate_performance /
summary_stats called directly, and numpy's mean) window by window; rules fire on hand-built
shifts (the mean of ``x`` moves by +2 on day 10; the scores stop separating the classes on
day 14, so the estimated ROC AUC drops to about 0.5); runs made as data arrives record the
same firing windows as a backtest; definition errors by type and message, nothing stored;
the default estimated monitor; the HTTP routes and ``/metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import evalstore
from evalstore.cli import main
from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation.estimate import NoReferenceError
from evalstore.monitors import catalog, defaults, definitions, estimation_series
from evalstore.monitors.run import compute
from server import create_app
from tests.conftest import blank_store, copy_store

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAYS, PER_DAY = 20, 60
REF = ("2026-03-02T00:00:00+00:00", "2026-03-09T00:00:00+00:00")  # days 0-6, labeled
MEAN_SHIFT_DAY, SCORE_DAY = 10, 14
#: Batches of days logged one after the other, a run at the end of each: the shifts are
#: the last day of a batch, so a run sees each as its window ends (when a backtest dates it).
BATCHES = (
    (0, 9),
    (9, MEAN_SHIFT_DAY + 1),
    (MEAN_SHIFT_DAY + 1, SCORE_DAY + 1),
    (SCORE_DAY + 1, 20),
)
AUC_RULE = {"type": "learned", "k": 3.0, "direction": "below"}
MEAN_RULE = {"type": "learned", "k": 3.0}


def _day(d: int) -> datetime:
    return START + timedelta(days=d)


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)  # 11 has a noisy day 13 (AUC 0.77)
    n = DAYS * PER_DAY
    day = np.arange(n) // PER_DAY
    score = np.round(rng.uniform(size=n), 2)  # ties
    narrow = np.round(0.45 + 0.1 * rng.uniform(size=n), 2)
    score = np.where(day >= SCORE_DAY, narrow, score)  # no longer separates the classes
    y = (rng.uniform(size=n) < score).astype(int)
    x = rng.normal(size=n) + np.where(day >= MEAN_SHIFT_DAY, 2.0, 0.0)
    seconds = (np.arange(n) % PER_DAY) * (86_400 // PER_DAY)
    ts = np.datetime64("2026-03-02T00:00:00") + (day * 86_400 + seconds).astype("timedelta64[s]")
    return {"day": day, "score": score, "y": y, "x": x, "ts": ts,
            "ids": np.array([f"e{i}" for i in range(n)])}  # fmt: skip


def _log(store: evalstore.Store, data: dict[str, np.ndarray], first: int, last: int) -> None:
    keep = (data["day"] >= first) & (data["day"] < last)
    ids = pa.array(data["ids"][keep])
    ts = pa.array(data["ts"][keep], pa.timestamp("s")).cast(pa.timestamp("s", "UTC"))
    store.log_features("m", pa.table({"example_id": ids, "x": data["x"][keep], "ts": ts}))
    score = data["score"][keep]
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": score,
                       "prediction": (score >= 0.5).astype(int), "ts": ts}), version="v1",
    )  # fmt: skip
    shadow = keep & (data["day"] >= 16)  # v2 has no labeled reference rows
    if shadow.any():
        store.log_predictions(
            "m", pa.table({"example_id": data["ids"][shadow], "score": data["score"][shadow],
                           "ts": pa.array(data["ts"][shadow], pa.timestamp("s"))}),
            version="v2",
        )  # fmt: skip
    labeled = keep & (data["day"] < 7)
    if labeled.any():
        store.log_labels("m", pa.table({"example_id": data["ids"][labeled],
                                        "label": data["y"][labeled]}))  # fmt: skip


@pytest.fixture(scope="module")
def watched() -> Iterator[tuple[evalstore.Store, dict[str, np.ndarray], dict[str, Any]]]:
    """The store after the three batches, and the alerts the runs after each batch
    recorded (monitor -> {subject: alert row})."""
    data = _data()
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    runs = []
    for i, (first, last) in enumerate(BATCHES):
        _log(store, data, first, last)
        if i == 0:
            store.add_monitor("auc", "m", "estimated_performance", "roc_auc", AUC_RULE,
                              reference=REF, learn_period=REF)  # fmt: skip
            store.add_monitor("x_mean", "m", "summary_stats", "mean", MEAN_RULE,
                              subjects=["x"], reference=REF, learn_period=REF)  # fmt: skip
        runs.append(store.run_monitors("m", now=_day(last)).to_pylist())
    alerts = {}
    for row in store.alerts("m").to_pylist():
        alerts.setdefault(row["monitor"], {})[row["subject"]] = row
    yield store, data, {"runs": runs, "alerts": alerts}
    store.close()


def _series(store: evalstore.Store, name: str) -> dict[str, Any]:
    ctx = store._context()
    monitor = catalog.get(ctx.connection, name)
    with ctx.lock:
        return {part.subject: part.series for part in compute(ctx, monitor, persist=False)}


def _starts(series: Any) -> list[datetime]:
    starts = np.asarray(series.window_start).astype("datetime64[us]").astype(datetime)
    return [s.replace(tzinfo=UTC) for s in starts]


# ---------------------------------------------------------------------- the series


def test_the_estimated_series_is_the_estimate_window_by_window(watched):
    store, _, _ = watched
    series = _series(store, "auc")
    assert list(series) == ["v1", "v2"]
    table = store.estimate_performance("m", metrics=["roc_auc"], reference=REF)
    mine = [r for r in table.to_pylist() if r["version"] == "v1"]
    assert (
        _starts(series["v1"]) == [r["window_start"] for r in mine] == [_day(d) for d in range(DAYS)]
    )
    np.testing.assert_allclose(series["v1"].value, [r["value"] for r in mine], rtol=0, atol=0)
    assert list(series["v1"].n) == [r["n"] for r in mine] == [PER_DAY] * DAYS
    assert series["v1"].labels_complete is None  # an estimate never waits for labels
    # v2 has no labeled reference rows: no estimate, every window insufficient
    assert np.isnan(np.asarray(series["v2"].value)).all()
    v2 = [r for r in table.to_pylist() if r["version"] == "v2"]
    assert (
        _starts(series["v2"])
        == [r["window_start"] for r in v2]
        == [_day(d) for d in (16, 17, 18, 19)]
    )
    assert list(series["v2"].n) == [r["n"] for r in v2]
    last = {r["subject"]: r for r in watched[2]["runs"][-1] if r["monitor"] == "auc"}
    assert last["v2"]["verdict"] == "insufficient"


def test_options_slices_and_a_count_metric(watched):
    """An expected confusion count, uncalibrated, by bins of ``x``, of v1 only."""
    store, _, _ = watched
    ctx = store._context()
    since = _day(15).isoformat()
    options = {"calibration": "none", "by": ["x"], "edges": {"x": [0.5]}, "since": since}
    monitor = definitions.check(
        ctx, "probe", "m", "estimated_performance", "tp",
        {"type": "fixed", "direction": "below", "value": 0.5},
        subjects=["v1"], reference=REF, options=options,
    )  # fmt: skip
    with ctx.lock:
        parts = compute(ctx, monitor, persist=False)
    rows = store.estimate_performance("m", metrics=["tp"], reference=REF, **options).to_pylist()
    cells = [f"v1 | x={r['x']}" for r in rows if r["version"] == "v1"]
    assert len(set(cells)) == 2  # two bins
    assert [p.subject for p in parts] == list(dict.fromkeys(cells))
    for part in parts:
        mine = [r for r in rows if r["version"] == "v1" and f"v1 | x={r['x']}" == part.subject]
        assert _starts(part.series) == [r["window_start"] for r in mine]
        assert len(mine) == DAYS - 15
        assert list(part.series.value) == [r["value"] for r in mine]
        assert list(part.series.n) == [r["n"] for r in mine]
    assert store.monitors("m").num_rows == 2  # check() stores nothing


def test_per_class_rows_are_subjects_of_their_own():
    """``split`` on a hand-made multiclass-shaped table: class and slice in the subject,
    other metrics and versions left out, a NULL estimate becomes NaN."""
    day = [_day(0), _day(0), _day(1), _day(1), _day(0), _day(0)]
    table = pa.table({
        "window_start": pa.array(day, pa.timestamp("us", "UTC")),
        "window_end": pa.array([d + timedelta(days=1) for d in day], pa.timestamp("us", "UTC")),
        "version": ["v1", "v1", "v1", "v1", "v2", "v1"],
        "region": ["n", "n", "n", "n", "n", "n"],
        "metric": ["recall", "recall", "recall", "recall", "recall", "accuracy"],
        "class": ["a", "b", "a", "b", "a", None],
        "value": [0.5, None, 0.75, 0.25, 0.1, 0.9],
        "n": [10, 10, 12, 12, 5, 10],
    })  # fmt: skip
    parts = dict(estimation_series.split(table, "recall", ["v1"]))
    assert list(parts) == ["v1 | region=n | class=a", "v1 | region=n | class=b"]
    np.testing.assert_array_equal(parts["v1 | region=n | class=b"].value, [np.nan, 0.25])
    assert list(parts["v1 | region=n | class=a"].n) == [10, 12]
    assert _starts(parts["v1 | region=n | class=a"]) == [_day(0), _day(1)]
    every = dict(estimation_series.split(table, "accuracy"))
    assert list(every) == ["v1 | region=n"]


def test_the_summary_series_is_the_family_and_numpy_window_by_window(watched):
    store, data, _ = watched
    series = _series(store, "x_mean")
    assert list(series) == ["x"]
    table = store.summary_stats("m", features=["x"], stats=["mean"], reference=REF)
    assert _starts(series["x"]) == table.column("window_start").to_pylist()
    assert list(series["x"].value) == table.column("value").to_pylist()
    means = [data["x"][data["day"] == d].mean() for d in range(DAYS)]
    np.testing.assert_allclose(series["x"].value, means, rtol=1e-12)
    assert list(series["x"].n) == [PER_DAY] * DAYS


# ---------------------------------------------------------------------- rules, runs, backtests


def test_a_mean_shift_fires_on_its_day_in_runs_and_backtest(watched):
    store, _, recorded = watched
    alert = recorded["alerts"]["x_mean"]["x"]
    assert alert["state"] == "firing"
    assert alert["first_window_start"] == _day(MEAN_SHIFT_DAY)
    assert alert["fired_at"] == _day(MEAN_SHIFT_DAY + 1)  # the run as day 10 ended
    [episode] = store.backtest_monitor("x_mean").to_pylist()
    assert episode["fired_window_start"] == episode["first_window_start"] == _day(MEAN_SHIFT_DAY)
    assert episode["fired_at"] == alert["fired_at"]  # the end of the window
    assert episode["breaching_windows"] == DAYS - MEAN_SHIFT_DAY
    assert episode["state"] == alert["state"]


def test_an_estimated_auc_drop_fires_on_its_day_in_runs_and_backtest(watched):
    store, _, recorded = watched
    assert [r["verdict"] for r in recorded["runs"][0] if r["monitor"] == "auc"] == ["ok"]
    assert set(recorded["alerts"]["auc"]) == {"v1"}
    alert = recorded["alerts"]["auc"]["v1"]
    assert (alert["state"], alert["first_window_start"]) == ("firing", _day(SCORE_DAY))
    assert alert["fired_at"] == _day(SCORE_DAY + 1)  # the run as day 14 ended
    assert alert["value"] < 0.6 < alert["lower"]
    [episode] = store.backtest_monitor("auc").to_pylist()
    assert (episode["subject"], episode["fired_window_start"]) == ("v1", _day(SCORE_DAY))
    assert episode["fired_at"] == alert["fired_at"]
    assert episode["breaching_windows"] == DAYS - SCORE_DAY
    # an unsaved definition backtests the same way, bounded by since/until
    definition = {"model": "m", "family": "estimated_performance", "metric": "roc_auc",
                  "rule": AUC_RULE, "reference": list(REF), "learn_period": list(REF),
                  "subjects": ["v1"]}  # fmt: skip
    [bounded] = store.backtest_monitor(definition, since=_day(15)).to_pylist()
    assert bounded["first_window_start"] == _day(15)


def test_the_http_routes_and_metrics_take_the_new_families(watched):
    store, _, _ = watched
    body = {"name": "auc_http", "family": "estimated_performance", "metric": "f1",
            "rule": {"type": "fixed", "direction": "below", "value": 0.2},
            "subjects": ["v1"], "reference": list(REF)}  # fmt: skip
    with TestClient(create_app(store, monitor_every=0)) as client:
        created = client.post("/v1/models/m/monitors", json=body)
        assert created.status_code == 201, created.text
        bad = client.post("/v1/models/m/monitors", json={**body, "name": "x", "metric": "mae"})
        assert bad.status_code == 422
        assert "is not estimated for a binary model" in bad.text
        ran = client.post("/v1/models/m/monitors/run", json={"names": ["auc_http"]})
        assert ran.status_code == 200, ran.text
        text = client.get("/metrics").text
    samples = {
        (s.labels["monitor"], s.labels["subject"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "evalstore_monitor_value"
    }
    estimate = store.estimate_performance("m", metrics=["f1"], reference=REF, version="v1",
                                          since=_day(DAYS - 1))  # fmt: skip
    assert samples[("auc_http", "v1")] == pytest.approx(estimate.column("value")[0].as_py())
    store.delete_monitor("auc_http")


def test_monitors_as_code_take_the_new_families(watched):
    store, _, _ = watched
    reference = ", ".join(f'"{t}"' for t in REF)
    text = f"""
[monitors.auc_toml]
model = "m"
family = "estimated_performance"
metric = "roc_auc"
subjects = ["v1"]
reference = [{reference}]
rule = {{ type = "range", low = 0.7, high = 1.0 }}
options = {{ reference_chunks = 5 }}
"""
    before = store.monitors().to_pylist()
    # a dry run (the fixture's monitors are not in the file: applying would delete them)
    diff = {r["name"]: r["action"] for r in store.apply_monitors(text, dry_run=True).to_pylist()}
    assert diff == {"auc_toml": "create", "auc": "delete", "x_mean": "delete"}
    bad = text.replace("reference_chunks = 5", "reference_chunks = 5, n_boot = 3")
    with pytest.raises(InvalidParameterError, match=r"auc_toml.*takes no parameter 'n_boot'"):
        store.apply_monitors(bad, dry_run=True)
    assert store.monitors().to_pylist() == before


# ---------------------------------------------------------------------- definition errors


@pytest.mark.parametrize(
    ("family", "metric", "fields", "error", "match"),
    [
        ("estimated_performance", "auroc", {}, InvalidParameterError,
         r"metric='auroc' is not estimated for a binary model; choose from accuracy, "),
        ("estimated_performance", "mae", {}, InvalidParameterError,
         r"metric='mae' is not estimated for a binary model"),
        ("estimated_performance", "roc_auc", {"options": {"n_boot": 10}}, InvalidParameterError,
         r"options: estimated_performance takes no parameter 'n_boot'; its options are .*"
         r"calibration.*reference_chunks"),
        ("estimated_performance", "roc_auc", {"options": {"reference": "training"}},
         InvalidParameterError, r"options: 'reference' is a monitor field"),
        ("estimated_performance", "roc_auc", {"options": {"calibration": "platt"}},
         InvalidParameterError, r"calibration='platt' is not one of isotonic, none"),
        ("estimated_performance", "roc_auc", {"options": {"method": "dle"}},
         InvalidParameterError, r"method='dle' estimates regression models"),
        ("estimated_performance", "roc_auc", {"options": {"reference_chunks": 1}},
         InvalidParameterError, r"reference_chunks"),
        ("estimated_performance", "roc_auc", {"subjects": ["v9"]}, InvalidParameterError,
         r"subjects: 'v9' is not a version of model 'm' .*estimated_performance subjects"),
        ("estimated_performance", "roc_auc", {"reference": "training"}, NoReferenceError,
         r"reference 'training' holds no labeled predictions with a score"),
        ("estimated_performance", "roc_auc", {"reference": {"previous": 2}},
         InvalidParameterError, r"reference=\{'previous': n\} is not a labeled reference"),
        ("summary_stats", "average", {}, InvalidParameterError,
         r"metric='average' is not a summary statistic"),
        ("summary_stats", "mean", {"options": {"bins": 3}}, InvalidParameterError,
         r"options: summary_stats takes no parameter 'bins'"),
    ],
)  # fmt: skip
def test_definition_errors_store_nothing(watched, family, metric, fields, error, match):
    store, _, _ = watched
    before = store.monitors().to_pylist()
    fields = {"reference": REF, **fields} if family == "estimated_performance" else fields
    with pytest.raises(error, match=match):
        store.add_monitor("bad", "m", family, metric, {"type": "fixed", "direction": "below",
                                                        "value": 0.5}, **fields)  # fmt: skip
    assert store.monitors().to_pylist() == before


# ---------------------------------------------------------------------- regression, defaults, CLI


@pytest.fixture(scope="module")
def regression() -> Iterator[evalstore.Store]:
    """A regression model ``r``: 3 days of training examples, predicted and labeled (a
    labeled reference), then 10 days of serving, 40 rows a day; the error grows with |x|."""
    rng = np.random.default_rng(5)
    store = blank_store()
    store.register_model("r", "v1", "regression")
    for env, days, offset in (("training", 3, 0), ("serving", 10, 100)):
        n = days * 40
        ids = [f"{env}{i}" for i in range(n)]
        ts = [START + timedelta(days=offset + i // 40, minutes=i % 40) for i in range(n)]
        x = np.round(rng.normal(size=n), 1)
        store.log_features("r", pa.table({"example_id": ids, "x": x, "ts": ts}), env=env)
        prediction = x + rng.normal(scale=0.5, size=n)
        store.log_predictions("r", pa.table({"example_id": ids, "prediction": prediction,
                                             "ts": ts}), version="v1")  # fmt: skip
        if env == "training":
            label = x + rng.normal(scale=np.abs(x) + 0.1, size=n)
            store.log_labels("r", pa.table({"example_id": ids, "label": label}))
    yield store
    store.close()


def test_a_regression_model_watches_the_dle_estimate(regression):
    store = regression
    ctx = store._context()
    monitor = definitions.check(ctx, "mae", "r", "estimated_performance", "mae",
                                {"type": "fixed", "direction": "above", "value": 2.0})  # fmt: skip
    with ctx.lock:
        [part] = compute(ctx, monitor, persist=False)
    table = store.estimate_performance("r", metrics=["mae"])
    assert table.num_rows == 13  # the training examples' 3 days are predictions too
    # the monitor analyses the last 90 days (latest prediction on day 109: from day 19)
    table = store.estimate_performance("r", metrics=["mae"], since=_day(19))
    assert part.subject == "v1" and table.num_rows == 10
    assert list(part.series.value) == table.column("value").to_pylist()
    assert list(part.series.n) == table.column("n").to_pylist()
    with pytest.raises(InvalidParameterError, match=r"metric='roc_auc' is not estimated for a "
                       r"regression model; choose from mae, mse, rmse"):  # fmt: skip
        definitions.check(ctx, "auc", "r", "estimated_performance", "roc_auc",
                          {"type": "fixed", "direction": "below", "value": 0.5})  # fmt: skip


def test_defaults_add_an_estimated_headline_monitor_with_a_labeled_reference(regression, watched):
    store = regression
    made = {r["name"]: r for r in store.add_default_monitors("r").to_pylist()}
    row = made["r.estimated_performance.mae"]
    assert (row["family"], row["metric"], row["subjects"]) == ("estimated_performance",
                                                               "mae", None)  # fmt: skip
    rule = json.loads(row["rule"])
    assert {k: rule[k] for k in ("type", "n", "k", "direction", "min_rows")} == {
        "type": "trailing", "n": 14, "k": 3.0, "direction": "above", "min_rows": 100}  # fmt: skip
    assert rule == json.loads(made["r.performance.mae"]["rule"])  # the same rule
    ran = {r["subject"]: r for r in store.run_monitors("r", names=[row["name"]],
                                                       now=_day(120)).to_pylist()}  # fmt: skip
    assert ran["v1"]["verdict"] == "insufficient"  # 40 predictions a day, below 100
    # the model of `watched` logs no predictions for training examples: none for it
    other, _, _ = watched
    planned = [m.name for m in defaults.planned(other._context(), "m")]
    assert "m.performance.roc_auc" in planned
    assert not any(".estimated_performance." in name for name in planned)


def test_the_cli_adds_and_backtests_an_estimated_monitor(regression, tmp_path):
    regression.sql("CHECKPOINT")
    [source] = (
        regression.sql(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        )
        .column(0)
        .to_pylist()
    )
    path = str(copy_store(Path(source), tmp_path))
    runner = CliRunner()
    added = runner.invoke(main, [
        "-s", path, "monitor", "add", "r_mse", "--model", "r",
        "--family", "estimated_performance", "--metric", "mse", "--subjects", "v1",
        "--rule", '{"type": "fixed", "direction": "above", "value": 0.0}',
        "--option", "reference_chunks=4",
    ])  # fmt: skip
    assert added.exit_code == 0, added.output
    tested = runner.invoke(main, ["-s", path, "monitor", "backtest", "r_mse", "--format", "json"])
    assert tested.exit_code == 0, tested.output
    [episode] = json.loads(tested.output)
    assert (episode["subject"], episode["state"]) == ("v1", "firing")
    first = regression.estimate_performance("r", metrics=["mse"], since=_day(19)).column(
        "window_start"
    )[0]  # the monitor's default 90-day lookback
    assert episode["fired_window_start"].startswith(first.as_py().date().isoformat())
