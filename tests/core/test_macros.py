"""The store macros (volume, label_coverage, label_delay and their helpers) against numpy/pandas.

Each metric is recomputed independently from the generated rows: windows by integer
arithmetic on epoch microseconds (DuckDB's ``time_bucket`` origin, Monday 2000-01-03 UTC),
quantiles with ``numpy.quantile`` (linear method), counts with pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import evalstore

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
#: time_bucket's origin for widths in days, hours, minutes: Monday 2000-01-03 00:00 UTC.
ORIGIN_US = int(datetime(2000, 1, 3, tzinfo=UTC).timestamp()) * 1_000_000
#: A Monday, so weekly and daily windows both start on it.
BASE_US = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp()) * 1_000_000
WIDTHS_US = {"1 day": US_PER_DAY, "6 hours": 6 * US_PER_HOUR, "7 days": 7 * US_PER_DAY}
SEEDS = (0, 1, 2, 3)


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _window_start(us: np.ndarray, width_us: int) -> np.ndarray:
    us = np.asarray(us, dtype=np.int64)
    return ORIGIN_US + np.floor_divide(us - ORIGIN_US, width_us) * width_us


def _as_us(table: pa.Table, *columns: str) -> pd.DataFrame:
    """Table as a DataFrame with the named timestamp columns as int64 epoch microseconds."""
    for name in columns:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, table.column(name).cast(pa.int64()))
    return table.to_pandas()


@dataclass
class Generated:
    predictions: pd.DataFrame  # example_id, version, ts (us)
    labels: pd.DataFrame  # example_id, label, ts (us), batch (0 = first, 1 = correction)
    features: pd.DataFrame  # example_id, env, ts (us)


def generate(seed: int) -> Generated:
    """Random rows with ties at window boundaries, tied delays and a lone far-away row."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 400))
    ids = np.array([f"s{seed}_{i}" for i in range(n)])
    ts = BASE_US + rng.integers(0, 20 * US_PER_DAY, size=n)
    # ties at window boundaries: exactly at midnight / 6-hour marks / Monday, and 1 us before
    k = n // 5
    ts[:k] = BASE_US + rng.integers(0, 20, size=k) * US_PER_DAY
    ts[k : 2 * k] = BASE_US + rng.integers(1, 80, size=k) * 6 * US_PER_HOUR - 1
    ts[2 * k] = BASE_US + 7 * US_PER_DAY  # a Monday midnight
    ts[2 * k + 1] = BASE_US + 7 * US_PER_DAY - 1  # the Sunday just before it
    ts[-1] = BASE_US + 60 * US_PER_DAY + 5 * US_PER_HOUR  # alone in its window at every width
    v1 = pd.DataFrame({"example_id": ids, "version": "v1", "ts": ts})
    shadow = rng.random(n - 1) < 0.5  # v2 never predicts the lone last example
    v2 = pd.DataFrame(
        {
            "example_id": ids[:-1][shadow],
            "version": "v2",
            "ts": ts[:-1][shadow] + rng.integers(0, 3 * US_PER_HOUR, size=int(shadow.sum())),
        }
    )
    predictions = pd.concat([v1, v2], ignore_index=True)

    labeled = rng.random(n) < 0.6
    labeled[-1] = True  # the lone window has exactly one labeled prediction
    # whole-hour delays (many ties, including 0) mixed with continuous ones
    delay = np.where(
        rng.random(n) < 0.5,
        rng.integers(0, 4, size=n) * US_PER_HOUR,
        rng.integers(0, 200 * US_PER_HOUR, size=n),
    )
    first = pd.DataFrame(
        {
            "example_id": ids[labeled],
            "label": rng.integers(0, 2, size=int(labeled.sum())),
            "ts": (ts + delay)[labeled],
            "batch": 0,
        }
    )
    orphans = pd.DataFrame(  # labels for examples never predicted: counted by volume only
        {
            "example_id": [f"orphan{seed}_{i}" for i in range(3)],
            "label": [0, 1, 0],
            "ts": BASE_US + np.arange(3) * US_PER_DAY,
            "batch": 0,
        }
    )
    corrected = first.sample(frac=0.3, random_state=seed)
    corrections = corrected.assign(
        label=1 - corrected["label"],
        ts=corrected["ts"] + rng.integers(1, 100 * US_PER_HOUR, size=len(corrected)),
        batch=1,
    )
    labels = pd.concat([first, orphans, corrections], ignore_index=True)

    m = int(rng.integers(5, 40))
    features = pd.concat(
        [
            pd.DataFrame({"example_id": ids, "env": "serving", "ts": ts}),
            pd.DataFrame(
                {
                    "example_id": [f"t{seed}_{i}" for i in range(m)],
                    "env": rng.choice(["training", "validation"], size=m),
                    "ts": BASE_US - rng.integers(0, 30 * US_PER_DAY, size=m),
                }
            ),
        ],
        ignore_index=True,
    )
    return Generated(predictions, labels, features)


def _log_predictions(store: evalstore.Store, model: str, g: Generated) -> None:
    for version, rows in g.predictions.groupby("version"):
        store.log_predictions(
            model,
            pa.table(
                {
                    "example_id": rows["example_id"].to_numpy(),
                    "ts": _ts(rows["ts"].to_numpy()),
                    "score": np.linspace(0, 1, len(rows)),
                }
            ),
            str(version),
        )


def _log_labels(store: evalstore.Store, model: str, rows: pd.DataFrame) -> None:
    store.log_labels(
        model,
        pa.table(
            {
                "example_id": rows["example_id"].to_numpy(),
                "label": rows["label"].to_numpy(),
                "ts": _ts(rows["ts"].to_numpy()),
            }
        ),
    )


def _log_features(store: evalstore.Store, model: str, g: Generated) -> None:
    for env, rows in g.features.groupby("env"):
        store.log_features(
            model,
            pa.table(
                {
                    "example_id": rows["example_id"].to_numpy(),
                    "ts": _ts(rows["ts"].to_numpy()),
                    "x": np.arange(len(rows), dtype=np.float64),
                }
            ),
            env=str(env),
        )


@pytest.fixture
def store(empty_store):
    """A fresh store without models (a copy of conftest's ``empty_template``)."""
    return empty_store


def _new_model(store: evalstore.Store, model: str) -> None:
    store.register_model(model, "v1", "binary")
    store.register_model(model, "v2", "binary")


def _macro(store: evalstore.Store, macro: str, model: str, width: str) -> pd.DataFrame:
    table = store.sql(f"SELECT * FROM evalstore.{macro}(?, ?)", [model, width])
    frame = _as_us(table, "window_start", "window_end")
    assert (frame["model"] == model).all()
    return frame.drop(columns="model")


# ---------------------------------------------------------------- expected values


def expected_volume(g: Generated, width_us: int) -> pd.DataFrame:
    landed = pd.concat(
        [
            g.features.assign(kind="features")[["kind", "env", "ts"]],
            g.predictions.assign(kind="predictions", env="serving")[["kind", "env", "ts"]],
            g.labels.assign(kind="labels", env=None)[["kind", "env", "ts"]],
        ],
        ignore_index=True,
    )
    landed["window_start"] = _window_start(landed["ts"].to_numpy(), width_us)
    out = (
        landed.groupby(["kind", "env", "window_start"], dropna=False)
        .size()
        .rename("rows")
        .reset_index()
    )
    out["window_end"] = out["window_start"] + width_us
    return out


def expected_coverage(g: Generated, width_us: int) -> pd.DataFrame:
    p = g.predictions.copy()
    p["window_start"] = _window_start(p["ts"].to_numpy(), width_us)
    p["has_label"] = p["example_id"].isin(set(g.labels["example_id"]))
    out = (
        p.groupby(["version", "window_start"])
        .agg(predictions=("has_label", "size"), labeled=("has_label", "sum"))
        .reset_index()
    )
    out["coverage"] = out["labeled"] / out["predictions"]
    out["window_end"] = out["window_start"] + width_us
    return out


def expected_delay(g: Generated, width_us: int) -> pd.DataFrame:
    first = g.labels.groupby("example_id")["ts"].min().rename("label_ts")
    p = g.predictions.join(first, on="example_id", how="inner")
    p["delay"] = (p["label_ts"] - p["ts"]) / US_PER_HOUR
    p["window_start"] = _window_start(p["ts"].to_numpy(), width_us)
    rows = []
    for (version, start), group in p.groupby(["version", "window_start"]):
        d = group["delay"].to_numpy()
        rows.append(
            {
                "version": version,
                "window_start": start,
                "window_end": start + width_us,
                "labeled": len(d),
                "delay_mean_hours": d.mean(),
                "delay_p50_hours": np.quantile(d, 0.5, method="linear"),
                "delay_p90_hours": np.quantile(d, 0.9, method="linear"),
                "delay_max_hours": d.max(),
            }
        )
    return pd.DataFrame(rows)


def _assert_frames(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    assert len(actual) == len(expected)
    assert sorted(actual.columns) == sorted(expected.columns)
    actual = actual.sort_values(keys, na_position="first").reset_index(drop=True)
    expected = expected.sort_values(keys, na_position="first").reset_index(drop=True)
    expected = expected[list(actual.columns)]
    for column in actual.columns:
        a, e = actual[column].to_numpy(), expected[column].to_numpy()
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, e.astype(float), rtol=1e-9, atol=1e-9, err_msg=column)
        else:
            assert [None if pd.isna(x) else x for x in a] == [
                None if pd.isna(x) else x for x in e
            ], column


# ---------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def loaded_by_seed(empty_template, open_copy):
    """``get(seed)``: a store holding model ``m`` with ``generate(seed)``'s rows (labels in
    two batches, corrections second), and the generated rows. Built on first use and kept
    for the module: the tests that take it (through ``loaded``) only read."""
    built: dict[int, tuple[evalstore.Store, Generated]] = {}

    def get(seed: int) -> tuple[evalstore.Store, Generated]:
        if seed not in built:
            store, g = open_copy(empty_template), generate(seed)
            _new_model(store, "m")
            _log_features(store, "m", g)
            _log_predictions(store, "m", g)
            _log_labels(store, "m", g.labels[g.labels["batch"] == 0])
            _log_labels(store, "m", g.labels[g.labels["batch"] == 1])
            built[seed] = store, g
        return built[seed]

    yield get
    for store, _ in built.values():
        store.close()


@pytest.fixture(params=SEEDS, ids=lambda s: f"seed{s}")
def loaded(request, loaded_by_seed):
    return loaded_by_seed(request.param)


@pytest.mark.parametrize("width", list(WIDTHS_US))
def test_volume_matches_pandas(loaded, width):
    store, g = loaded
    actual = _macro(store, "volume", "m", width)
    _assert_frames(actual, expected_volume(g, WIDTHS_US[width]), ["kind", "env", "window_start"])
    # rows counts every label row, corrections included
    assert actual.loc[actual["kind"] == "labels", "rows"].sum() == len(g.labels)


@pytest.mark.parametrize("width", list(WIDTHS_US))
def test_label_coverage_matches_pandas(loaded, width):
    store, g = loaded
    actual = _macro(store, "label_coverage", "m", width)
    _assert_frames(actual, expected_coverage(g, WIDTHS_US[width]), ["version", "window_start"])
    assert ((actual["coverage"] >= 0) & (actual["coverage"] <= 1)).all()


@pytest.mark.parametrize("width", list(WIDTHS_US))
def test_label_delay_matches_numpy(loaded, width):
    store, g = loaded
    actual = _macro(store, "label_delay", "m", width)
    _assert_frames(actual, expected_delay(g, WIDTHS_US[width]), ["version", "window_start"])


def test_daily_windows_start_at_utc_midnight(loaded):
    store, _ = loaded
    for macro in ("volume", "label_coverage", "label_delay"):
        frame = _macro(store, macro, "m", "1 day")
        assert len(frame) > 0
        assert (frame["window_start"] % US_PER_DAY == 0).all(), macro
        assert (frame["window_end"] - frame["window_start"] == US_PER_DAY).all(), macro


def test_lone_window_has_its_single_row(loaded):
    store, g = loaded
    lone = int(g.predictions["ts"].max())
    start = _window_start(np.array([lone]), US_PER_DAY)[0]
    coverage = _macro(store, "label_coverage", "m", "1 day")
    row = coverage[coverage["window_start"] == start]
    assert row[["version", "predictions", "labeled", "coverage"]].values.tolist() == [
        ["v1", 1, 1, 1.0]
    ]
    delay = _macro(store, "label_delay", "m", "1 day")
    row = delay[delay["window_start"] == start].iloc[0]
    lone_id = g.predictions.loc[g.predictions["ts"] == lone, "example_id"].iloc[0]
    label_ts = g.labels.loc[g.labels["example_id"] == lone_id, "ts"].min()
    hours = (label_ts - lone) / US_PER_HOUR
    assert row["labeled"] == 1
    for column in ("delay_mean_hours", "delay_p50_hours", "delay_p90_hours", "delay_max_hours"):
        assert row[column] == pytest.approx(hours, abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_corrections_do_not_change_delay_or_coverage(store, seed):
    g = generate(seed)
    _new_model(store, "m")
    _log_predictions(store, "m", g)
    _log_labels(store, "m", g.labels[g.labels["batch"] == 0])
    before = {m: _macro(store, m, "m", "1 day") for m in ("label_coverage", "label_delay")}
    volume_before = _macro(store, "volume", "m", "1 day")
    corrections = g.labels[g.labels["batch"] == 1]
    assert len(corrections) > 0
    _log_labels(store, "m", corrections)
    for macro, frame in before.items():
        pd.testing.assert_frame_equal(_macro(store, macro, "m", "1 day"), frame, check_exact=True)
    volume_after = _macro(store, "volume", "m", "1 day")
    added = (
        volume_after.loc[volume_after["kind"] == "labels", "rows"].sum()
        - volume_before.loc[volume_before["kind"] == "labels", "rows"].sum()
    )
    assert added == len(corrections)
    # the corrections are the labels now in force
    latest = store.sql("SELECT example_id, label FROM m.labels_latest").to_pylist()
    latest = {r["example_id"]: r["label"] for r in latest}
    for row in corrections.itertuples():
        assert latest[row.example_id] == str(row.label)


def test_empty_model_gives_empty_results(store):
    _new_model(store, "empty")
    for macro, columns in {
        "volume": ["model", "kind", "env", "window_start", "window_end", "rows"],
        "label_coverage": [
            "model",
            "version",
            "window_start",
            "window_end",
            "predictions",
            "labeled",
            "coverage",
        ],
        "label_delay": [
            "model",
            "version",
            "window_start",
            "window_end",
            "labeled",
            "delay_mean_hours",
            "delay_p50_hours",
            "delay_p90_hours",
            "delay_max_hours",
        ],
    }.items():
        table = store.sql(f"SELECT * FROM evalstore.{macro}('empty', '1 day')")
        assert table.num_rows == 0, macro
        assert table.column_names == columns, macro


def test_unlabeled_model_has_zero_coverage_and_no_delay(store):
    g = generate(5)
    _new_model(store, "m")
    _log_predictions(store, "m", g)
    coverage = _macro(store, "label_coverage", "m", "1 day")
    assert len(coverage) > 0
    assert (coverage["labeled"] == 0).all() and (coverage["coverage"] == 0.0).all()
    assert coverage["predictions"].sum() == len(g.predictions)
    assert len(_macro(store, "label_delay", "m", "1 day")) == 0


def test_volume_of_one_model_ignores_another(store):
    g = generate(0)
    _new_model(store, "a")
    _new_model(store, "b")
    _log_predictions(store, "a", g)
    volume = _macro(store, "volume", "b", "1 day")
    assert len(volume) == 0
    assert _macro(store, "volume", "a", "1 day")["rows"].sum() == len(g.predictions)


# ---------------------------------------------------------------- window alignment and helpers


def _one(store: evalstore.Store, expression: str, params: list | None = None):
    return store.sql(f"SELECT {expression} AS v", params).column("v")[0].as_py()


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ts", "width", "start"),
    [
        # 7-day windows align to Monday 2000-01-03, as DuckDB's time_bucket does
        (_utc(2024, 1, 3, 5), "7 days", _utc(2024, 1, 1)),
        (_utc(2024, 1, 7, 23, 59, 59, 999999), "7 days", _utc(2024, 1, 1)),
        (_utc(2024, 1, 8), "7 days", _utc(2024, 1, 8)),
        (_utc(2000, 1, 3), "7 days", _utc(2000, 1, 3)),
        (_utc(2000, 1, 2, 23), "7 days", _utc(1999, 12, 27)),
        (_utc(2024, 3, 10, 23, 59, 59, 999999), "1 day", _utc(2024, 3, 10)),
        (_utc(2024, 3, 10), "1 day", _utc(2024, 3, 10)),
        (_utc(2024, 3, 10, 5, 59), "6 hours", _utc(2024, 3, 10)),
        (_utc(2024, 3, 10, 6), "6 hours", _utc(2024, 3, 10, 6)),
        (_utc(2024, 3, 10, 6, 14), "15 minutes", _utc(2024, 3, 10, 6)),
        (_utc(2024, 2, 29, 13), "1 month", _utc(2024, 2, 1)),
    ],
)
def test_window_start(store, ts, width, start):
    assert _one(store, "evalstore.window_start(?::TIMESTAMPTZ, ?)", [ts, width]) == start


def test_monday_2000_01_03_is_the_weekly_origin():
    assert datetime(2000, 1, 3).weekday() == 0  # Monday
    assert _window_start(np.array([ORIGIN_US + 3 * US_PER_DAY]), 7 * US_PER_DAY)[0] == ORIGIN_US


@pytest.mark.parametrize(
    ("t0", "t1", "hours"),
    [
        (_utc(2024, 1, 1), _utc(2024, 1, 1, 1, 30), 1.5),
        (_utc(2024, 1, 1, 1, 30), _utc(2024, 1, 1), -1.5),
        (_utc(2024, 1, 1), _utc(2024, 1, 1), 0.0),
        (_utc(2024, 3, 9), _utc(2024, 3, 11), 48.0),  # across a US DST change: still 48
        (_utc(2024, 1, 1), _utc(2024, 1, 1) + timedelta(microseconds=36), 1e-8),
    ],
)
def test_hours_between(store, t0, t1, hours):
    result = _one(store, "evalstore.hours_between(?::TIMESTAMPTZ, ?::TIMESTAMPTZ)", [t0, t1])
    assert result == pytest.approx(hours, rel=1e-9, abs=1e-12)


def test_windows_do_not_depend_on_session_time_zone(store):
    """A client with another TimeZone (a BI tool) gets the same UTC windows of 24 hours."""
    _new_model(store, "m")
    ts = np.array([_utc(2024, 3, 10, 12), _utc(2024, 3, 10, 23), _utc(2024, 11, 3, 12)])
    us = np.array([int(t.timestamp()) * 1_000_000 for t in ts])
    store.log_predictions(
        "m", pa.table({"example_id": ["a", "b", "c"], "ts": _ts(us), "score": [0.1] * 3}), "v1"
    )
    utc = _macro(store, "volume", "m", "1 day")
    store.sql("SET TimeZone = 'America/New_York'")  # DST starts 2024-03-10, ends 2024-11-03
    try:
        local = _macro(store, "volume", "m", "1 day")
        end = _one(store, "evalstore.window_end(?::TIMESTAMPTZ, '1 day')", [_utc(2024, 3, 10)])
    finally:
        store.sql("SET TimeZone = 'UTC'")
    pd.testing.assert_frame_equal(local, utc)
    assert end == _utc(2024, 3, 11)
    assert local["window_start"].tolist() == [
        int(_utc(2024, 3, 10).timestamp()) * 1_000_000,
        int(_utc(2024, 11, 3).timestamp()) * 1_000_000,
    ]
    assert local["rows"].tolist() == [2, 1]
    assert (local["window_end"] - local["window_start"] == US_PER_DAY).all()


def test_call_falls_back_when_the_private_runner_changes(monkeypatch):
    """macros.call runs a statement through DuckDB's private runner; when that function is
    missing or called differently (TypeError, AttributeError) the public relation API gives
    the same rows, and DuckDB's own errors still reach the caller."""
    import duckdb

    from evalstore.core import macros

    con = duckdb.connect()
    query = "SELECT x, x * ? AS y FROM range(4) AS t(x) ORDER BY x"
    want = [{"x": i, "y": 3 * i} for i in range(4)]
    runner = macros._submit
    assert runner is not None  # this DuckDB has it: the fast path is the one taken
    used = []
    monkeypatch.setattr(macros, "_submit", lambda *a: used.append(a) or runner(*a))
    assert macros.call(con, query, [3]).to_pylist() == want
    assert len(used) == 1

    def changed(*args, **kwargs):
        raise TypeError("submit() takes 3 positional arguments but 5 were given")

    monkeypatch.setattr(macros, "_submit", changed)
    assert macros.call(con, query, [3]).to_pylist() == want
    monkeypatch.setattr(macros, "_submit", None)
    assert macros.call(con, query, [3]).to_pylist() == want
    with pytest.raises(duckdb.BinderException, match=r'column "nope"'):
        macros.call(con, "SELECT nope FROM range(1)")
