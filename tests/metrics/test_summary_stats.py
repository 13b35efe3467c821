"""Summary statistics per window (issue 23 point 6) against numpy.

Serving and training rows of a numeric feature ``x`` (rounded, so values tie; NaN and NULL
missing; one window all missing; one holding a single value) and a categorical ``c``. Each
window's statistic must equal numpy's nan-aware function on that window's values (``sd``
with ddof 1, as pandas and NannyML), and the alert range must be the mean ± 3 population sd
of the statistic over the reference chunks (NannyML's StandardDeviationThreshold), floored
at 0 for count and sd.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main
from evalstore.errors import InvalidParameterError
from tests.conftest import blank_store

TOL = 1e-9
BASE = datetime(2026, 2, 2, tzinfo=UTC)
NUMPY = {
    "mean": np.mean,
    "median": np.median,
    "sd": lambda v: np.std(v, ddof=1) if len(v) > 1 else np.nan,
    "min": np.min,
    "max": np.max,
    "sum": np.sum,
    "q0.1": lambda v: np.quantile(v, 0.1),
    "q0.75": lambda v: np.quantile(v, 0.75),
}
FLOORED = {"count", "sd"}


def _frame(rng: np.random.Generator, n: int, days: int, shift: float) -> pd.DataFrame:
    x = np.round(rng.normal(shift, 1.0, size=n), 1)  # ties
    x[rng.random(n) < 0.1] = np.nan
    day, second = rng.integers(0, days, n), rng.integers(0, 86_400, n)
    ts = [BASE + timedelta(days=int(d), seconds=int(s)) for d, s in zip(day, second, strict=True)]
    return pd.DataFrame({"x": x, "c": rng.choice(["a", "b", "c"], size=n), "ts": ts})


def _build() -> tuple[evalstore.Store, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(21)
    store = blank_store()
    store.register_model("m", "v1", "binary", classes=[0, 1])
    train = _frame(rng, 300, 6, 0.0)
    serve = _frame(rng, 240, 4, 0.4)
    serve.loc[serve.index[:5], "x"] = None  # NULLs too
    # day 4: one row whose value is missing; day 5: a single value
    serve = pd.concat([serve, pd.DataFrame({"x": [np.nan, 2.5], "c": ["a", None],
                                            "ts": [BASE + timedelta(days=4, hours=1),
                                                   BASE + timedelta(days=5, hours=1)]})],
                      ignore_index=True)  # fmt: skip
    for env, frame, prefix in (("training", train, "t"), ("serving", serve, "s")):
        frame["example_id"] = [f"{prefix}{i}" for i in range(len(frame))]
        null_x = frame["x"].isna() & (frame.index < 5) if env == "serving" else None
        x = pa.array(frame["x"].to_numpy(), pa.float64(), from_pandas=False)
        if null_x is not None:  # the first five are NULL, the other missing ones NaN
            x = pa.array([None if m else v for m, v in zip(null_x, frame["x"], strict=True)],
                         pa.float64())  # fmt: skip
        table = pa.table({"example_id": frame["example_id"], "x": x, "c": frame["c"],
                          "ts": frame["ts"]})  # fmt: skip
        store.log_features("m", table, env=env)
    return store, train, serve


@pytest.fixture(scope="module")
def data():
    store, train, serve = _build()
    yield store, train, serve
    store.close()


def _chunks(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """Near-equal chunks in (ts, example_id) order: evalstore.chunk_index's default rule."""
    ordered = frame.sort_values(["ts", "example_id"]).reset_index(drop=True)
    index = (np.arange(len(ordered)) * n) // len(ordered)
    return [ordered[index == i] for i in range(n)]


def _days(frame: pd.DataFrame) -> list[pd.DataFrame]:
    day = frame["ts"].map(lambda t: (t - BASE).days)
    return [frame[day == d] for d in sorted(day.unique())]


def _stat(name: str, part: pd.DataFrame) -> float:
    if name == "count":
        return float(len(part))
    values = part["x"].to_numpy(dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return 0.0 if name == "sum" else np.nan
    return float(NUMPY[name](values))


def _range(name: str, chunks: list[pd.DataFrame]) -> tuple[float, float]:
    values = np.array([_stat(name, c) for c in chunks])
    low = np.nanmean(values) - 3 * np.nanstd(values)
    high = np.nanmean(values) + 3 * np.nanstd(values)
    return (max(low, 0.0) if name in FLOORED else low), high


@pytest.mark.parametrize("learn_chunks", [None, 5])
def test_daily_statistics_and_ranges_equal_numpy(data, learn_chunks):
    store, train, serve = data
    result = store.summary_stats(
        "m", window="1 day", features=["x"], quantiles=[0.75, 0.1], learn_chunks=learn_chunks
    ).to_pandas()
    reference = _days(train) if learn_chunks is None else _chunks(train, learn_chunks)
    windows = _days(serve)
    assert len(windows) == 6 and result["window_start"].nunique() == 6
    stats = ["count", *NUMPY]
    for part, (start, rows) in zip(windows, result.groupby("window_start"), strict=True):
        assert list(rows["stat"]) == ["count", "mean", "median", "sd", "min", "max", "sum",
                                      "q0.1", "q0.75"]  # fmt: skip
        for name in stats:
            got = rows[rows["stat"] == name].iloc[0]
            want = _stat(name, part)
            low, high = _range(name, reference)
            assert got["threshold_low"] == pytest.approx(low, abs=TOL), (start, name)
            assert got["threshold_high"] == pytest.approx(high, abs=TOL), (start, name)
            assert got["reference_chunks"] == len(reference)
            if np.isnan(want):
                assert pd.isna(got["value"]) and pd.isna(got["alert"]), (start, name)
                assert got["reason"] in (
                    "no values in the window (all NULL or NaN)",
                    "sd needs at least 2 values",
                )
                continue
            assert got["value"] == pytest.approx(want, abs=TOL), (start, name)
            assert got["alert"] == (want < low or want > high), (start, name)
            assert got["rows"] == len(part)
            assert got["n"] == (len(part) if name == "count" else part["x"].notna().sum())
    single = result[(result["window_start"] == result["window_start"].max())]
    assert single.set_index("stat").loc["sd", "reason"] == "sd needs at least 2 values"
    assert single.set_index("stat").loc["mean", "value"] == 2.5


def test_categorical_features_get_count_only(data):
    store, train, serve = data
    result = store.summary_stats("m", window={"chunks": 4}, features="c").to_pandas()
    assert set(result["stat"]) == {"count"} and set(result["kind"]) == {"categorical"}
    windows = _chunks(serve, 4)
    reference = _chunks(train, 4)  # the reference cut by the window: 4 chunks too
    low, high = _range("count", reference)
    for part, got in zip(windows, result.itertuples(), strict=True):
        assert got.value == len(part) and got.n == len(part)
        assert got.threshold_low == pytest.approx(low) and got.threshold_high == pytest.approx(high)


def test_nannyml_chunks_are_named_by_the_sql(data):
    store, _, _ = data
    result = store.summary_stats(
        "m", window={"chunks": 4, "split": "nannyml"}, features="x", stats="mean"
    )
    variants = result["variant"].to_pylist()
    assert variants and all(
        v.endswith("; chunks split as NannyML (floor(rows / n) rows each, remainder last)")
        for v in variants
    )


def test_k_and_a_single_reference_chunk(data):
    store, train, _ = data
    wide = store.summary_stats("m", window="1 day", features="x", stats="mean", k=1.5)
    low, high = wide["threshold_low"][0].as_py(), wide["threshold_high"][0].as_py()
    values = np.array([_stat("mean", d) for d in _days(train)])
    assert low == pytest.approx(values.mean() - 1.5 * values.std(), abs=TOL)
    assert high == pytest.approx(values.mean() + 1.5 * values.std(), abs=TOL)
    one = store.summary_stats("m", window="100 years", features="x", stats="mean").to_pylist()
    assert one[0]["threshold_high"] is None and one[0]["alert"] is None
    assert one[0]["reason"] == "fewer than 2 reference chunks with a value (1): no alert range"


def test_sql_and_http_and_cli_give_the_same_rows(data):
    store, _, _ = data
    python = store.summary_stats("m", window="1 day", features="x", stats=["mean", "sd"])
    sql = store.sql(
        "SELECT window_start, stat, value, threshold_low, threshold_high, alert "
        "FROM evalstore.summary_stats('m.numeric_values', 'm.category_values', 'training', "
        "NULL, NULL, NULL, 'serving', NULL, NULL, NULL, '1 day', NULL, NULL, NULL, "
        "['mean', 'sd'], [], 3.0) WHERE feature = 'x' ORDER BY window_index, position"
    )
    columns = ["window_start", "stat", "value", "threshold_low", "threshold_high", "alert"]
    assert sql.to_pylist() == python.select(columns).to_pylist()
    copy = blank_store()
    path = copy.path
    with copy:
        copy.register_model("m", "v1", "binary", classes=[0, 1])
        copy.log_features(
            "m", pa.table({"example_id": ["a", "b"], "x": [1.0, 3.0]}), env="training"
        )
        copy.log_features("m", pa.table({"example_id": ["c", "d"], "x": [2.0, 6.0]}))
    from fastapi.testclient import TestClient

    from server import create_app

    with evalstore.open(path) as served, TestClient(create_app(served)) as client:
        response = client.get(
            "/v1/models/m/summary_stats?window=100 years&features=x&stats=mean,max&learn_chunks=2"
        )
        assert response.status_code == 200, response.text
        rows = {r["stat"]: r for r in response.json()}
        assert rows["mean"]["value"] == 4.0 and rows["max"]["value"] == 6.0
        # reference chunks [1], [3]: mean 2 +- 3 * 1
        assert rows["mean"]["threshold_low"] == -1.0 and rows["mean"]["threshold_high"] == 5.0
    result = CliRunner().invoke(
        main, ["-s", str(path), "summary", "-m", "m", "-w", "100 years", "--stats", "mean",
               "--learn-chunks", "2", "--format", "csv"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ",4,-1,5," in result.output  # value, threshold_low, threshold_high


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"stats": ["mean", "mode"]}, r"stats=\['mean', 'mode'\]: \['mode'\] are not summary"),
        ({"quantiles": [0.5, 1.5]}, r"quantiles=\[0.5, 1.5\] must be a non-empty list of levels"),
        ({"quantiles": []}, r"quantiles=\[\] must be a non-empty list"),
        ({"learn_chunks": 1}, r"learn_chunks"),
        ({"k": -1}, r"k=-1 must be a finite number >= 0"),
        ({"reference": {"previous": 2}}, r"reference=\{'previous': n\} cannot learn"),
        ({"features": ["nope"]}, r"features=\['nope'\]: \['nope'\] not among the features"),
    ],
)  # fmt: skip
def test_bad_parameters_name_themselves(data, options, match):
    store, _, _ = data
    with pytest.raises(InvalidParameterError, match=match):
        store.summary_stats("m", window="1 day", **options)


def test_an_empty_selection_gives_an_empty_table():
    with blank_store() as store:
        store.register_model("m", "v1", "regression")
        store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0]}), env="training")
        table = store.summary_stats("m", window="1 day")
        assert table.num_rows == 0 and "threshold_high" in table.column_names


def test_a_constant_reference_statistic_alerts_only_on_other_values():
    """sd 0 over the reference chunks: the range is one point, and a window equal to it
    does not alert (NannyML's strict test would); a different one does."""
    with blank_store() as store:
        store.register_model("m", "v1", "regression")
        store.log_features(
            "m", pa.table({"example_id": list("abcd"), "x": [5.0] * 4}), env="training"
        )
        store.log_features("m", pa.table({"example_id": list("efgh"), "x": [5.0, 5, 5, 6]}))
        rows = store.summary_stats(
            "m", window={"chunks": 2}, features="x", stats="median", learn_chunks=2
        ).to_pylist()
        assert [(r["value"], r["threshold_low"], r["threshold_high"]) for r in rows] == [
            (5.0, 5.0, 5.0),
            (5.5, 5.0, 5.0),
        ]
        assert [r["alert"] for r in rows] == [False, True]


def test_a_monitor_watches_one_statistic_of_each_subject(data):
    """Family summary_stats: the series is store.summary_stats' value per window."""
    store, _, _ = data
    store.add_monitor(
        "x_q", "m", "summary_stats", "q0.75",
        {"type": "fixed", "direction": "above", "value": 1.0}, subjects=["x"],
        options={"learn_chunks": 3},
    )  # fmt: skip
    try:
        ran = store.run_monitors(now=BASE + timedelta(days=30)).to_pylist()
        (row,) = [r for r in ran if r["monitor"] == "x_q"]
        newest = store.summary_stats(
            "m", window="1 day", features="x", stats="quantile", quantiles=[0.75]
        ).to_pylist()[-1]
        assert row["subject"] == "x" and row["value"] == pytest.approx(newest["value"])
        assert row["verdict"] == ("breach" if newest["value"] > 1.0 else "ok")
    finally:
        store.delete_monitor("x_q")
    for metric, match in (("mode", r"metric='mode' is not a summary statistic"),
                          ("q1.5", r"metric='q1.5' is not a summary statistic")):  # fmt: skip
        with pytest.raises(InvalidParameterError, match=match):
            store.add_monitor("bad", "m", "summary_stats", metric,
                              {"type": "fixed", "direction": "above", "value": 1.0})  # fmt: skip
