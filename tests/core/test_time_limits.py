"""Out-of-range times (issue 19, point 1): refused at ingest, bounded windows, readable results.

One row timed ``20266-01-01`` once made ``quality`` build millions of empty windows and
every JSON result raise ``OverflowError``. Ingest now refuses times outside the store's
time range (whatever their form: Arrow timestamps, text, JSON), every windowed family
refuses more than ``max_windows`` windows before any work (also over rows already in a
store from before), and results render every time DuckDB can hold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa
import pytest

import evalstore
from evalstore.core import formats
from evalstore.core.layout import example_key_sql
from evalstore.core.time_limits import DEFAULT_MAX_WINDOWS, DEFAULT_TIME_RANGE, check_window_count
from evalstore.errors import InvalidParameterError, ValidationError
from tests.conftest import blank_store, take_snapshot

FAR = "20266-01-01T00:00:00Z"
#: 20266-01-01 and 101 BC as microseconds since 1970 (pa.timestamp('us') holds both)
FAR_US = 577_366_012_800_000_000
BC_US = -65_291_356_800_000_000


def _populate(store: evalstore.Store) -> None:
    """Model ``m``: six days of features, predictions of v1 and v2, labels."""
    store.register_model("m", "v1", "binary")
    ids = [f"e{i}" for i in range(6)]
    days = [datetime(2024, 1, 1 + i, tzinfo=UTC) for i in range(6)]
    store.log_features(
        "m", pa.table({"example_id": ids, "x": [1.0, 2, 3, 4, 5, 6]}), env="training"
    )
    store.log_features("m", pa.table({"example_id": ids, "x": [1.0, 2, 3, 4, 5, 7], "ts": days}))
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": [0.1, 0.9] * 3, "ts": days}), version="v1"
    )
    store.log_labels("m", pa.table({"example_id": ids, "label": [0, 1, 1, 1, 0, 1], "ts": days}))
    store.register_model("m", "v2", "binary")
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": [0.2, 0.8] * 3, "ts": days}), version="v2"
    )


@pytest.fixture
def make_store(template, copy_template, tmp_path) -> Callable[..., evalstore.Store]:
    """``make_store(**limits)``: a fresh copy of a store made by :func:`_populate` (built
    once per session), opened with ``evalstore.open``'s per-open limits."""
    built = template("time-limits", _populate)
    return lambda **limits: evalstore.open(copy_template(built, tmp_path), **limits)


TIMES = {
    "arrow_far": pa.array([0, FAR_US], pa.timestamp("us", tz="UTC")),
    "arrow_bc": pa.array([0, BC_US], pa.timestamp("us")),
    "text_far": pa.array(["2024-01-01T00:00:00Z", FAR]),
    "date_far": pa.array([0, 6_700_000], pa.date32()),  # day 6.7M: year 20313
}


@pytest.mark.parametrize("kind", ["features", "predictions", "labels"])
@pytest.mark.parametrize("times", list(TIMES))
def test_ingest_refuses_times_outside_the_range_and_writes_nothing(kind, times, make_store):
    with make_store() as store:
        before = take_snapshot(store)
        batch = {"example_id": ["n1", "n2"], "when": TIMES[times]}
        with pytest.raises(ValidationError) as caught:
            if kind == "features":
                store.log_features("m", pa.table({**batch, "x": [1.0, 2.0]}), ts_column="when")
            elif kind == "predictions":
                data = pa.table({**batch, "score": [0.2, 0.7]})
                store.log_predictions("m", data, version="v1", ts_column="when")
            else:
                store.log_labels("m", pa.table({**batch, "label": [0, 1]}), ts_column="when")
        error = caught.value
        assert error.column == "when" and error.rows == 1
        message = str(error)
        assert "time column 'when' has 1 values outside the store's time range" in message
        assert "[1900-01-01T00:00:00+00:00, 2200-01-01T00:00:00+00:00) UTC" in message
        assert "time_range=(lo, hi)" in message
        expected = "(BC)" if times == "arrow_bc" else ("20313" if times == "date_far" else "20266")
        assert expected in error.examples[0]
        assert take_snapshot(store) == before


def test_json_ingest_body_with_a_far_time_is_refused(make_store):
    """The server's JSON reader gives the ts as text or timestamp; both are checked."""
    from server.json_body import read_json_table

    body = json.dumps(
        [{"example_id": "a", "x": 1.0, "ts": "2024-05-01T00:00:00Z"},
         {"example_id": "b", "x": 2.0, "ts": FAR}]
    ).encode()  # fmt: skip
    table = read_json_table(body, "application/json")
    with make_store() as store:
        with pytest.raises(ValidationError, match="time column 'ts' has 1 values outside"):
            store.log_features("m", table)
        assert store.sql("SELECT count(*) AS n FROM m.features").column("n")[0].as_py() == 12


def test_the_time_range_is_configurable_per_open():
    with pytest.raises(InvalidParameterError, match="time_range hi='30000-01-01' is not an ISO"):
        evalstore.open(time_range=("1900-01-01", "30000-01-01"))  # bounds are datetimes
    with pytest.raises(InvalidParameterError, match="time_range"):
        evalstore.open(time_range=("2200-01-01", "1900-01-01"))
    with pytest.raises(InvalidParameterError, match=r"time_range='1900' must be a \(lo, hi\)"):
        evalstore.open(time_range="1900")
    wide = evalstore.open(time_range=(datetime(1, 1, 1), datetime(9999, 1, 1)))
    with wide:
        assert wide.limits.time_range == (
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(9999, 1, 1, tzinfo=UTC),
        )
        wide.register_model("m", "v1", "binary", trained_at="1850-06-01")
        receipt = wide.log_features(
            "m", pa.table({"example_id": ["a"], "x": [1.0], "ts": ["1850-06-02T00:00:00Z"]})
        )
        assert receipt.rows == 1
        with wide.session() as session:  # sessions keep the handle's limits
            assert session.limits == wide.limits


def test_registry_times_outside_the_range_are_refused():
    with blank_store() as store:
        with pytest.raises(InvalidParameterError) as caught:
            store.register_model("m", "v1", "binary", deployed_at="1066-10-14")
        assert str(caught.value).startswith(
            "deployed_at=1066-10-14T00:00:00+00:00 is outside the store's time range "
            "[1900-01-01T00:00:00+00:00, 2200-01-01T00:00:00+00:00) UTC"
        )
        assert store.models().num_rows == 0
        assert DEFAULT_TIME_RANGE[0] == datetime(1900, 1, 1, tzinfo=UTC)


def _poison(store: evalstore.Store) -> None:
    """Rows a store written before the range was enforced may hold (raw SQL, no ingest)."""
    far, bc = example_key_sql("'far'"), example_key_sql("'bc'")
    store.sql(
        "INSERT INTO m.features (example_id, example_key, env, ts, batch_id, x) "
        f"VALUES ('far', {far}, 'serving', TIMESTAMPTZ '20266-01-01 00:00:00+00', 99, 3.0)"
    )
    store.sql(
        "INSERT INTO m.predictions (example_id, example_key, version, ts, score, prediction, "
        f"batch_id) VALUES ('far', {far}, 'v1', TIMESTAMPTZ '20266-01-01 00:00:00+00', 0.5, "
        f"'1', 99), ('bc', {bc}, 'v1', TIMESTAMPTZ '0100-01-01 (BC) 00:00:00+00', 0.5, '1', 99)"
    )


#: families that list every window between the first and the last time (empty ones too)
FILLED = {
    "quality": lambda s, **o: s.quality("m", window="1 day", **o),
    "validate": lambda s, **o: s.validate("m", window="1 day", **o),
    "health": lambda s, **o: s.health("m", window="1 day"),
}
#: families that build only the windows holding rows
SPARSE = {
    "drift": lambda s, **o: s.drift("m", window="1 day", features=["x", "score"], **o),
    "multivariate_drift": lambda s, **o: s.multivariate_drift("m", window="1 day", **o),
    "performance": lambda s, **o: s.performance("m", window="1 day", metrics=["accuracy"], **o),
    "compare": lambda s, **o: s.compare("m", "v1", "v2", window="1 day", **o),
}


@pytest.mark.parametrize("family", list(FILLED))
def test_windows_are_bounded_over_rows_already_stored(family, make_store):
    """A poisoned store is refused at once, naming the window and the count; with
    since/until around the real times the same call works."""
    with make_store() as store:
        store.infer_schema("m")
        _poison(store)
        call = FILLED[family]
        with pytest.raises(InvalidParameterError) as caught:
            call(store)
        message = str(caught.value)
        assert message.startswith("window='1 day' would build about ")
        count = int(message.split("about ")[1].split(" windows")[0].replace(",", ""))
        assert count > 7_000_000 > DEFAULT_MAX_WINDOWS
        assert "pass a wider window, or since=/until=" in message
        if family != "health":  # health has no since/until: it reads every prediction
            result = call(store, since="2024-01-01", until="2024-02-01")
            assert result.num_rows > 0


@pytest.mark.parametrize("family", list(SPARSE))
def test_sparse_windows_of_far_rows_are_computed_and_rendered(family, make_store):
    """Families that build only non-empty windows get one window per far row: they run,
    and their result converts (JSON) with the far window start as ISO text."""
    with make_store() as store:
        _poison(store)
        result = SPARSE[family](store)
        records = formats.to_records(result)
        starts = {r["window_start"] for r in records if r["window_start"] is not None}
        if family == "multivariate_drift":  # serving features only (no BC feature row)
            assert "20266-01-01T00:00:00.000000Z" in starts
        elif family == "compare":  # v2 never predicted the far examples
            assert all(s.startswith("2024-01-0") for s in starts)
        else:
            assert "20266-01-01T00:00:00.000000Z" in starts
        assert any(s.startswith("2024-01-01") for s in starts)


def test_validate_quality_and_chunks_are_bounded_by_max_windows(make_store):
    with make_store(max_windows=4) as store:
        store.infer_schema("m")
        with pytest.raises(InvalidParameterError, match="window='1 day' would build about 6 "):
            store.validate("m", window="1 day")
        # quality lists the empty windows between since and until too
        with pytest.raises(InvalidParameterError, match="about 32 windows, more than the limit"):
            store.quality("m", window="1 day", since="2024-01-01", until="2024-02-01")
        with pytest.raises(InvalidParameterError, match=r"window=\{'chunks': 5\} would build"):
            store.drift("m", window={"chunks": 5})
        with pytest.raises(InvalidParameterError, match=r"window=1 \(rows per chunk\) would"):
            store.drift("m", window=1)
        assert store.drift("m", window="2 days", features=["x"], methods=["ks"]).num_rows == 3


def test_window_estimate_reads_far_times_in_sql(make_store):
    """min/max of the analysed times are measured by DuckDB (no Python datetime); a
    family that builds only non-empty windows is capped by the rows, one that lists the
    empty ones too (filled) is not."""
    with make_store() as store:
        _poison(store)
        con = store.connection
        windows = {"width": "1 day"}
        rows = check_window_count(con, "m", ("predictions",), windows, max_windows=10**9)
        assert rows == 14  # 12 real predictions (v1, v2) and the 2 poisoned ones
        filled = check_window_count(
            con, "m", ("predictions",), windows, max_windows=10**9, filled=True
        )
        # 100 BC (astronomical year -99) to 20266-01-01 in days, plus the first window
        assert filled == 7_438_164 + 1
        inside = check_window_count(
            con, "m", ("features", "predictions"), windows,
            datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 4, tzinfo=UTC), filled=True,
        )  # fmt: skip
        assert inside == 4  # since..until spans 3 days: 3 windows, +1 for a partial one


def test_results_render_times_beyond_python_datetime(make_store):
    """A store holding such rows (raw SQL) still answers in JSON, text and CSV."""
    with make_store() as store:
        _poison(store)
        table = store.sql("SELECT example_id, ts FROM m.predictions ORDER BY ts")
        with pytest.raises(OverflowError):
            table.to_pylist()  # what every JSON result used to hit
        records = formats.to_records(table)
        assert records[0] == {"example_id": "bc", "ts": "-099-01-01T00:00:00.000000Z"}
        assert records[1] == {"example_id": "e0", "ts": "2024-01-01T00:00:00.000000Z"}
        assert records[-1] == {"example_id": "far", "ts": "20266-01-01T00:00:00.000000Z"}
        assert json.loads(formats.to_json(table))[-1]["ts"].startswith("20266-01-01T")
        text = formats.to_text(table)
        assert "20266-01-01T00:00:00.000000Z" in text and "(14 rows)" in text
        csv = formats.to_csv(table).decode()
        assert '"far","20266-01-01T00:00:00.000000Z"' in csv
        nested = store.sql(
            "SELECT list(ts ORDER BY ts) AS times, {'last': max(ts)} AS s, "
            "max(CAST(ts AS DATE)) AS day FROM m.predictions"
        )
        (row,) = formats.to_records(nested)
        assert row["times"][0] == "-099-01-01T00:00:00.000000Z"
        assert row["s"] == {"last": "20266-01-01T00:00:00.000000Z"}
        assert row["day"] == "20266-01-01"
        ordinary = store.sql("SELECT max(ts) AS ts FROM m.features WHERE ts < '2025-01-01'")
        assert formats.to_records(ordinary) == [{"ts": "2024-01-06T00:00:00+00:00"}]


def test_skew_and_selections_of_a_poisoned_store_convert(make_store):
    """skew (its distance reads through the numeric drift path) and training-data
    selections over far rows run, and their rows convert to JSON."""
    with make_store() as store:
        _poison(store)
        skew = store.skew("m", features=["x"])
        assert skew.column("n_serving").to_pylist() == [7]  # 6 real rows and the far one
        chosen = store.select("m", env="serving", labeled_only=False)
        records = formats.to_records(chosen)
        far = [r for r in records if r["example_id"] == "far"]
        assert len(far) == 1 and far[0]["ts"] == "20266-01-01T00:00:00.000000Z"
