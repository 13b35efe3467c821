"""Data quality and schema validation (sql/quality.sql, evalstore/metrics/quality.py).

Every number is compared with an independent numpy computation over the data the test
generated (NULLs kept apart from NaN by explicit masks), on random data with NaN, +-inf,
NULLs, an empty day, a single-row day, a constant column and unseen categories.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.errors import (
    InvalidNameError,
    InvalidParameterError,
    ReadOnlyError,
    UnknownModelError,
)
from evalstore.metrics import quality as q
from tests.conftest import blank_store

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, midnight UTC
DAY = timedelta(days=1)
SERVING_DAYS = {0: 40, 1: 40, 2: 40, 4: 40, 5: 1, 6: 30}  # day 3 is empty, day 5 one row
NUMERIC = ("x", "k")
CATEGORICAL = ("c", "flag")
FEATURES = [*NUMERIC, *CATEGORICAL]
LIMITS = {"min_rows": 1, "tol": 0.05, "max_nonfinite": 0, "max_oor": 0.01, "max_unseen": 0.01}


# ---------------------------------------------------------------------------- data


@dataclass
class Rows:
    """One env's rows as generated: values plus explicit NULL masks."""

    ids: list[str]
    ts: list[datetime]
    values: dict[str, np.ndarray]  # numeric: float64 (NaN/inf kept); categorical: object
    nulls: dict[str, np.ndarray]  # True where the value is SQL NULL

    def table(self) -> pa.Table:
        columns = {
            "example_id": pa.array(self.ids),
            "ts": pa.array(self.ts, type=pa.timestamp("us", tz="UTC")),
            "x": pa.array(self.values["x"], mask=self.nulls["x"]),
            "k": pa.array(np.nan_to_num(self.values["k"]).astype(np.int64), mask=self.nulls["k"]),
            "c": pa.array(
                [None if m else v for v, m in zip(self.values["c"], self.nulls["c"], strict=True)],
                type=pa.string(),
            ),
            "flag": pa.array(
                [v == "true" for v in self.values["flag"]], mask=self.nulls["flag"], type=pa.bool_()
            ),
        }
        return pa.table(columns)

    def subset(self, keep: np.ndarray) -> Rows:
        return Rows(
            [i for i, k in zip(self.ids, keep, strict=True) if k],
            [t for t, k in zip(self.ts, keep, strict=True) if k],
            {f: v[keep] for f, v in self.values.items()},
            {f: m[keep] for f, m in self.nulls.items()},
        )


def _corrupt(rng: np.random.Generator, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NULL ~5%, NaN ~3%, +inf ~2%, -inf ~2% of x."""
    u = rng.random(x.size)
    x = x.copy()
    x[(u >= 0.05) & (u < 0.08)] = np.nan
    x[(u >= 0.08) & (u < 0.10)] = np.inf
    x[(u >= 0.10) & (u < 0.12)] = -np.inf
    return x, u < 0.05


def make_rows(seed: int) -> tuple[Rows, Rows]:
    """Training rows (10 days before T0) and serving rows on SERVING_DAYS."""
    rng = np.random.default_rng(seed)
    n = 200
    train_ts = [T0 - 10 * DAY + timedelta(seconds=int(s)) for s in rng.integers(0, 9 * 86400, n)]
    x, x_null = _corrupt(rng, rng.normal(0, 1, n))
    train = Rows(
        [f"t{i}" for i in range(n)],
        train_ts,
        {
            "x": x,
            "k": np.full(n, 7.0),  # constant column
            "c": rng.choice(["a", "b", "c"], n).astype(object),
            "flag": rng.choice(["true", "false"], n).astype(object),
        },
        {"x": x_null, "k": np.zeros(n, bool), "c": rng.random(n) < 0.05, "flag": np.zeros(n, bool)},
    )
    days = np.concatenate([np.full(size, day) for day, size in SERVING_DAYS.items()])
    m = days.size
    seconds = rng.integers(0, 86400, m)
    ts = [T0 + int(d) * DAY + timedelta(seconds=int(s)) for d, s in zip(days, seconds, strict=True)]
    x, x_null = _corrupt(rng, rng.normal(0.5, 1.5, m))
    x_null[days == 6] = True  # a window where x is all NULL
    k = np.where((days == 1) & (rng.random(m) < 0.3), 8.0, 7.0)
    c = rng.choice(["a", "b", "c", "d"], m, p=[0.3, 0.3, 0.3, 0.1]).astype(object)
    c_null = (rng.random(m) < 0.05) | (days == 6)  # c all NULL on day 6
    serving = Rows(
        [f"s{i}" for i in range(m)],
        ts,
        {"x": x, "k": k, "c": c, "flag": rng.choice(["true", "false"], m).astype(object)},
        {
            "x": x_null,
            "k": (days == 2) & (rng.random(m) < 0.1),  # a few NULLs in an int column
            "c": c_null,
            "flag": rng.random(m) < 0.1,
        },
    )
    return train, serving


def new_store(train: Rows, serving: Rows, path=None) -> evalstore.Store:
    store = blank_store(path)
    store.register_model("qm", "v1", "binary", classes=[0, 1])
    store.log_features("qm", train.table(), env="training", dataset="train_a")
    store.log_features("qm", serving.table())
    return store


# ------------------------------------------------------------------- expectations


def day_start(ts: datetime) -> datetime:
    return datetime(ts.year, ts.month, ts.day, tzinfo=UTC)


def check_values(
    feature: str, ref: Rows, ana: Rows, limits: dict[str, float] = LIMITS
) -> dict[str, dict]:
    """Expected rows of one (window, feature): {method: {value, count, threshold, ...}}."""
    rv, rn = ref.values[feature], ref.nulls[feature]
    av, an = ana.values[feature], ana.nulls[feature]
    n_ref, n = rv.size, av.size
    missing = int(an.sum())
    ref_share = rn.sum() / n_ref if n_ref else 0.0

    def row(value, count, threshold, low=False):
        failed = value is not None and (value < threshold if low else value > threshold)
        return {
            "value": value, "count": count, "threshold": threshold, "drifted": failed,
            "n_reference": n_ref, "n_analysis": n,
        }  # fmt: skip

    out = {
        "rows": row(float(n), n, limits["min_rows"], low=True),
        "missing": row(missing / n if n else None, missing, ref_share + limits["tol"]),
    }
    if feature in NUMERIC:
        present = av[~an].astype(float)
        for method, hits in (
            ("nan", np.isnan(present)),
            ("posinf", present == np.inf),
            ("neginf", present == -np.inf),
        ):
            out[method] = row(float(hits.sum()), int(hits.sum()), limits["max_nonfinite"])
        ref_finite = rv[~rn][np.isfinite(rv[~rn])]
        finite = present[np.isfinite(present)]
        if ref_finite.size and finite.size:
            outside = int(((finite < ref_finite.min()) | (finite > ref_finite.max())).sum())
            out["out_of_range"] = row(outside / finite.size, outside, limits["max_oor"])
        else:
            count = 0 if ref_finite.size else None
            out["out_of_range"] = row(None, count, limits["max_oor"])
    else:
        seen = set(rv[~rn])
        present = av[~an]
        unseen = int(sum(v not in seen for v in present))
        if seen and present.size:
            out["unseen"] = row(unseen / present.size, unseen, limits["max_unseen"])
        else:
            out["unseen"] = row(None, unseen if seen else None, limits["max_unseen"])
    return out


def expected_daily(train: Rows, serving: Rows, features=FEATURES) -> dict[tuple, dict]:
    """Expected quality() rows for daily windows against the training rows."""
    starts = [day_start(t) for t in serving.ts]
    first, last = min(starts), max(starts)
    grid = [first + i * DAY for i in range((last - first).days + 1)]
    expected = {}
    for start in grid:
        ana = serving.subset(np.array([s == start for s in starts]))
        for feature in features:
            for method, row in check_values(feature, train, ana).items():
                expected[(start, feature, method)] = row
    return expected


def assert_rows_match(result: pa.Table, expected: dict[tuple, dict], key=("window_start",)):
    rows = result.to_pylist()
    got = {(*(r[k] for k in key), r["feature"], r["method"]): r for r in rows}
    assert len(got) == len(rows), "duplicate (window, feature, method) rows"
    assert set(got) == set(expected)
    for k, want in expected.items():
        row = got[k]
        for column, value in want.items():
            if value is None:
                assert row[column] is None, (k, column, row[column])
            elif isinstance(value, float) and not isinstance(value, bool):
                assert row[column] == pytest.approx(value, rel=1e-12, abs=1e-12), (k, column)
            else:
                assert row[column] == value, (k, column, row[column], value)
        assert (row["value"] is None) == (row["reason"] is not None) or row["method"] in (
            "rows", "nan", "posinf", "neginf"
        ), (k, row["reason"])  # fmt: skip


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=[0, 1])
def loaded(request):
    train, serving = make_rows(request.param)
    store = new_store(train, serving)
    yield store, train, serving
    store.close()


# ----------------------------------------------------------------- quality tests


def test_quality_matches_numpy(loaded):
    store, train, serving = loaded
    result = q.quality(store._context(), "qm")
    assert tuple(result.column_names) == q.RESULT_COLUMNS
    assert_rows_match(result, expected_daily(train, serving))
    rows = result.to_pylist()
    assert all(r["p_value"] is None and r["version"] is None for r in rows)
    assert {r["kind"] for r in rows if r["feature"] in NUMERIC} == {"numeric"}
    assert {r["kind"] for r in rows if r["feature"] in CATEGORICAL} == {"categorical"}
    keys = [(r["window_start"], r["feature"], r["method"]) for r in rows]
    assert keys == sorted(keys)


def test_quality_edge_windows(loaded):
    """The empty day, the single-row day and the all-NULL day, spelled out."""
    store, _, serving = loaded
    rows = q.quality(store._context(), "qm", features=["x", "c"]).to_pylist()
    at = {(r["window_start"], r["feature"], r["method"]): r for r in rows}
    empty = T0 + 3 * DAY
    assert at[(empty, "x", "rows")]["value"] == 0 and at[(empty, "x", "rows")]["drifted"]
    assert at[(empty, "x", "missing")]["reason"] == "no rows in the window"
    assert at[(empty, "c", "unseen")]["value"] is None
    assert at[(empty, "x", "rows")]["window_end"] == T0 + 4 * DAY
    single = T0 + 5 * DAY
    assert at[(single, "x", "rows")]["value"] == 1 and not at[(single, "x", "rows")]["drifted"]
    all_null = T0 + 6 * DAY
    assert at[(all_null, "x", "missing")]["value"] == 1.0
    assert at[(all_null, "x", "out_of_range")]["reason"] == "no finite values in the window"
    assert at[(all_null, "c", "unseen")]["reason"] == "no values in the window"
    # the constant column k: every 8 on day 1 is out of the reference range [7, 7]
    k_rows = q.quality(store._context(), "qm", features="k").to_pylist()
    day1 = next(
        r for r in k_rows if r["window_start"] == T0 + DAY and r["method"] == "out_of_range"
    )
    eights = int(np.sum((serving.values["k"] == 8) & ~serving.nulls["k"]))
    assert day1["count"] == eights > 0 and day1["drifted"]


def test_quality_thresholds_are_parameters(loaded):
    store, train, serving = loaded
    limits = {"min_rows": 35, "tol": 0.5, "max_nonfinite": 2, "max_oor": 0.3, "max_unseen": 0.2}
    result = q.quality(
        store._context(), "qm", min_rows=35, missing_tolerance=0.5, max_nonfinite=2,
        max_out_of_range=0.3, max_unseen=0.2,
    )  # fmt: skip
    starts = [day_start(t) for t in serving.ts]
    expected = {}
    for start in [T0 + i * DAY for i in range(7)]:
        ana = serving.subset(np.array([s == start for s in starts]))
        for feature in FEATURES:
            for method, row in check_values(feature, train, ana, limits).items():
                expected[(start, feature, method)] = row
    assert_rows_match(result, expected)


def test_quality_since_until_reports_empty_windows_at_the_ends(loaded):
    store = loaded[0]
    since, until = T0 - 2 * DAY, T0 + 9 * DAY
    result = q.quality(store._context(), "qm", since=since, until=until, features=["x"])
    starts = sorted({r["window_start"] for r in result.to_pylist()})
    assert starts == [since + i * DAY for i in range(11)]
    rows = {(r["window_start"], r["method"]): r for r in result.to_pylist()}
    for day in (-2, -1, 3, 7, 8):
        assert rows[(T0 + day * DAY, "rows")]["value"] == 0
        assert rows[(T0 + day * DAY, "rows")]["drifted"]
    default = {
        (r["window_start"], r["method"]): r
        for r in q.quality(store._context(), "qm", features=["x"]).to_pylist()
    }
    for key, row in default.items():
        assert rows[key] == row
    # an until on a window boundary does not open the next window
    bounded = q.quality(
        store._context(), "qm", since=T0, until=T0 + 2 * DAY, features=["x"]
    ).to_pylist()
    assert sorted({r["window_start"] for r in bounded}) == [T0, T0 + DAY]


def test_quality_empty_window_means_no_row_of_any_feature():
    """A window is empty (every feature listed with rows = 0) only when no feature, numeric
    or categorical, has a row there: one kind's rows keep the other kind out of it, with
    or without since/until (the outputs score and prediction come from the predictions)."""
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({"example_id": ["t"], "x": [0.5], "ts": [T0 - 9 * DAY]}),
                           env="training")  # fmt: skip
        for day in (0, 2, 3):  # x: days 0, 2 and 3
            store.log_features(
                "m", pa.table({"example_id": [f"f{day}"], "x": [1.0], "ts": [T0 + day * DAY]})
            )
        for day in (0, 1):  # score and prediction: days 0 and 1
            store.log_predictions(
                "m", pa.table({"example_id": [f"p{day}"], "score": [0.7], "ts": [T0 + day * DAY]}),
                "v1",
            )  # fmt: skip

        def listed(**bounds) -> dict[int, set[str]]:
            days: dict[int, set[str]] = {}
            for r in store.quality("m", **bounds).to_pylist():
                days.setdefault((r["window_start"] - T0).days, set()).add(r["feature"])
            return days

        every = {"x", "score", "prediction"}
        assert listed() == {0: every, 1: {"score", "prediction"}, 2: {"x"}, 3: {"x"}}
        assert listed(until=T0 + 5 * DAY) == {
            0: every,
            1: {"score", "prediction"},
            2: {"x"},
            3: {"x"},
            4: every,
        }
        assert listed(since=T0 - DAY, until=T0 + 2 * DAY) == {
            -1: every,
            0: every,
            1: {"score", "prediction"},
        }
        gap = [r for r in store.quality("m", until=T0 + 5 * DAY).to_pylist()
               if r["window_start"] == T0 + 4 * DAY and r["method"] == "rows"]  # fmt: skip
        assert {(r["feature"], r["value"], r["n_analysis"], r["drifted"]) for r in gap} == {
            (f, 0.0, 0, True) for f in every
        }


def test_quality_row_chunks(loaded):
    store, train, serving = loaded
    result = q.quality(store._context(), "qm", window=50, features=["x", "c"]).to_pylist()
    order = sorted(range(len(serving.ids)), key=lambda i: (serving.ts[i], serving.ids[i]))
    expected = {}
    for begin in range(0, len(order), 50):
        keep = np.zeros(len(order), bool)
        keep[order[begin : begin + 50]] = True
        chunk = serving.subset(keep)
        for feature in ("x", "c"):
            for method, row in check_values(feature, train, chunk).items():
                expected[(min(chunk.ts), max(chunk.ts), feature, method)] = row
    got = {(r["window_start"], r["window_end"], r["feature"], r["method"]): r for r in result}
    assert set(got) == set(expected)
    for key, want in expected.items():
        for column, value in want.items():
            assert got[key][column] == (pytest.approx(value) if value is not None else None)


def test_quality_rolling_reference(loaded):
    """reference={'previous': 1}: each non-empty window against the one before it."""
    store, _, serving = loaded
    result = q.quality(
        store._context(), "qm", reference={"previous": 1}, features=["x"]
    ).to_pylist()
    starts = [day_start(t) for t in serving.ts]
    days = sorted(set(starts))
    got = {(r["window_start"], r["method"]): r for r in result}
    for i, start in enumerate(days):
        ana = serving.subset(np.array([s == start for s in starts]))
        if i == 0:
            ref = serving.subset(np.zeros(len(starts), bool))
        else:
            ref = serving.subset(np.array([s == days[i - 1] for s in starts]))
        for method, want in check_values("x", ref, ana).items():
            row = got[(start, method)]
            for column, value in want.items():
                assert row[column] == (pytest.approx(value) if value is not None else None), (
                    start, method, column,
                )  # fmt: skip
    first = got[(days[0], "out_of_range")]
    assert first["reason"] == "no finite reference values" and first["n_reference"] == 0
    assert got[(T0 + 3 * DAY, "rows")]["value"] == 0  # the gap is still reported


def test_quality_where_restricts_reference_and_windows(loaded):
    store, train, serving = loaded
    result = q.quality(store._context(), "qm", where="c = 'a'", features=["x", "k"])

    def only_a(rows: Rows) -> Rows:
        return rows.subset(~rows.nulls["c"] & (rows.values["c"] == "a"))

    expected = expected_daily(only_a(train), only_a(serving), features=["x", "k"])
    # days without any 'a' row are gaps of the restricted data
    assert_rows_match(result, expected)


def test_quality_of_model_outputs_per_version():
    train, serving = make_rows(5)
    with new_store(train, serving) as store:
        store.register_model("qm", "v2", "binary", classes=[0, 1])
        rng = np.random.default_rng(5)
        scores = rng.random(len(serving.ids))
        for version, keep in (("v1", slice(None)), ("v2", slice(0, None, 2))):
            store.log_predictions(
                "qm",
                pa.table({
                    "example_id": serving.ids[keep],
                    "ts": pa.array(serving.ts[keep], type=pa.timestamp("us", tz="UTC")),
                    "score": scores[keep],
                }),
                version=version,
            )  # fmt: skip
        rows = q.quality(store._context(), "qm", features=["score", "prediction"]).to_pylist()
        starts = [day_start(t) for t in serving.ts]
        for version, ids in (("v1", serving.ids), ("v2", serving.ids[::2])):
            for day in sorted(set(starts)):
                n = sum(1 for i in ids if starts[serving.ids.index(i)] == day)
                got = [
                    r
                    for r in rows
                    if (r["version"], r["window_start"], r["method"]) == (version, day, "rows")
                ]
                assert {r["feature"]: r["value"] for r in got} == {"score": n, "prediction": n}
        score_oor = [r for r in rows if r["feature"] == "score" and r["method"] == "out_of_range"]
        reasons = {"no finite reference values", "no rows in the window"}
        assert {r["reason"] for r in score_oor} == reasons  # no score in the training rows
        # version= keeps the examples v2 predicted, and v2's own score
        v2 = q.quality(store._context(), "qm", version="v2", features=["x", "score"]).to_pylist()
        assert {r["version"] for r in v2 if r["feature"] == "score"} == {"v2"}
        x_rows = sum(r["value"] for r in v2 if r["feature"] == "x" and r["method"] == "rows")
        assert x_rows == len(serving.ids[::2])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "nope"}, UnknownModelError, "not registered"),
        ({"model": "Bad Name"}, InvalidNameError, "not a safe identifier"),
        ({"version": "v9"}, UnknownModelError, "no version 'v9'"),
        ({"window": "soon"}, InvalidParameterError, "not an interval"),
        ({"window": 0}, InvalidParameterError, "at least 1"),
        ({"reference": "yesterday"}, InvalidParameterError, "reference="),
        ({"features": ["nope"]}, InvalidParameterError, "nope"),
        ({"where": "nope > 1"}, InvalidParameterError, "unknown column"),
        ({"since": T0, "until": T0}, InvalidParameterError, "earlier than"),
        ({"min_rows": -1}, InvalidParameterError, "min_rows"),
        ({"missing_tolerance": float("nan")}, InvalidParameterError, "missing_tolerance"),
        ({"max_nonfinite": 0.5}, InvalidParameterError, "max_nonfinite"),
        ({"max_out_of_range": -0.1}, InvalidParameterError, "max_out_of_range"),
        ({"max_unseen": "1"}, InvalidParameterError, "max_unseen"),
    ],
)
def test_quality_parameter_errors(loaded, kwargs, error, match):
    store = loaded[0]
    kwargs = {"model": "qm", **kwargs}
    with pytest.raises(error, match=match):
        q.quality(store._context(), **kwargs)


LONG = [
    ("example_id", "VARCHAR"), ("env", "VARCHAR"), ("dataset", "VARCHAR"),
    ("ts", "TIMESTAMPTZ"), ("version", "VARCHAR"), ("feature", "VARCHAR"), ("value", "DOUBLE"),
]  # fmt: skip
values = st.lists(
    st.one_of(
        st.none(),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0]),
        st.floats(-5, 5, allow_nan=False),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def macro_con():
    with blank_store() as store:
        columns = ", ".join(f"{name} {kind}" for name, kind in LONG)
        store.sql(f"CREATE TABLE main.long_values ({columns})")
        yield store


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reference=values, analysis=values)
def test_quality_numeric_macro_property(macro_con, reference, analysis):
    """evalstore.quality_numeric on a hand-made long relation, as a SQL user calls it."""
    store = macro_con
    store.sql("DELETE FROM main.long_values")
    rows = [("r", "training", reference), ("a", "serving", analysis)]
    for prefix, env, vals in rows:
        for i, v in enumerate(vals):
            store.sql(
                "INSERT INTO main.long_values VALUES (?, ?, NULL, ?, NULL, 'f', ?)",
                [f"{prefix}{i}", env, T0 + timedelta(minutes=i), v],
            )
    result = store.sql(
        "SELECT * FROM evalstore.quality_numeric('main.long_values', 'training', NULL, NULL, "
        "NULL, 'serving', NULL, NULL, NULL, '1 day', NULL, NULL, 0, 1, 0.05, 0, 0.01)"
    ).to_pylist()
    if not analysis:
        assert result == []
        return

    def rows_of(vals):
        arr = np.array([np.nan if v is None else v for v in vals], dtype=float)
        return Rows(
            [str(i) for i in range(len(vals))], [T0] * len(vals),
            {"x": arr}, {"x": np.array([v is None for v in vals], dtype=bool)},
        )  # fmt: skip

    want = check_values("x", rows_of(reference), rows_of(analysis))
    got = {r["method"]: r for r in result}
    assert set(got) == set(want)
    for method, expected in want.items():
        for column, value in expected.items():
            assert got[method][column] == (pytest.approx(value) if value is not None else None)


# ------------------------------------------------------------------ schema inference


def test_infer_schema_matches_numpy(loaded):
    train = loaded[1]
    with blank_store() as fresh:
        fresh.register_model("qm", "v1", "binary")
        fresh.log_features("qm", train.table(), env="training", dataset="train_a")
        saved = q.infer_schema(fresh._context(), "qm")
        assert tuple(saved.column_names) == q.SCHEMA_COLUMNS
        assert saved.to_pylist() == q.saved_schema(fresh._context(), "qm").to_pylist()
        assert fresh.sql("SELECT * FROM evalstore.schemas").to_pylist() == saved.to_pylist()
    rows = {r["feature"]: r for r in saved.to_pylist()}
    assert list(rows) == sorted(FEATURES)
    dtypes = {"x": "DOUBLE", "k": "BIGINT", "c": "VARCHAR", "flag": "BOOLEAN"}
    for feature, row in rows.items():
        v, null = train.values[feature], train.nulls[feature]
        assert row["model"] == "qm" and row["dtype"] == dtypes[feature]
        assert row["kind"] == ("numeric" if feature in NUMERIC else "categorical")
        assert row["nullable"] == bool(null.any())
        assert row["expected_missing"] == pytest.approx(null.mean())
        assert row["reference"] == "env=training"
        assert row["inferred_at"] is not None
        if feature in NUMERIC:
            finite = v[~null][np.isfinite(v[~null])]
            assert (row["min"], row["max"]) == (finite.min(), finite.max())
            assert row["domain"] is None
        else:
            assert row["domain"] == sorted(set(v[~null]))
            assert row["min"] is None and row["max"] is None
    assert rows["k"]["min"] == rows["k"]["max"] == 7  # constant column
    assert rows["flag"]["domain"] == ["false", "true"]


def test_infer_schema_references_versions_and_features():
    train, serving = make_rows(3)
    other = make_rows(4)[0]
    other.ids = [f"o{i}" for i in range(len(other.ids))]
    other.values["x"] = other.values["x"] * 10
    with new_store(train, serving) as store:
        store.log_features("qm", other.table(), env="training", dataset="train_b")
        store.register_model("qm", "v2", "binary", training_dataset="train_b")

        def finite_range(rows: Rows) -> tuple[float, float]:
            v = rows.values["x"][~rows.nulls["x"]]
            v = v[np.isfinite(v)]
            return v.min(), v.max()

        both = q.infer_schema(store._context(), "qm").to_pylist()
        x = next(r for r in both if r["feature"] == "x")
        lo = min(finite_range(train)[0], finite_range(other)[0])
        assert x["min"] == lo
        v2 = {
            r["feature"]: r
            for r in q.infer_schema(store._context(), "qm", version="v2").to_pylist()
        }
        assert (v2["x"]["min"], v2["x"]["max"]) == finite_range(other)
        assert v2["x"]["reference"] == "env=training, dataset=train_b"
        # re-inferring one feature keeps the others' rows as they were
        before = {r["feature"]: r for r in q.saved_schema(store._context(), "qm").to_pylist()}
        only = q.infer_schema(
            store._context(), "qm", reference={"dataset": "train_a"}, features=["x"]
        )
        assert only.column("feature").to_pylist() == ["x"]
        after = {r["feature"]: r for r in q.saved_schema(store._context(), "qm").to_pylist()}
        assert {f: after[f] for f in after if f != "x"} == {
            f: before[f] for f in before if f != "x"
        }
        assert (after["x"]["min"], after["x"]["max"]) == finite_range(train)
        assert after["x"]["reference"] == "dataset=train_a"
        # a serving time range as the reference
        ranged = q.infer_schema(
            store._context(), "qm", reference=(T0, T0 + DAY), features="c"
        ).to_pylist()
        day0 = serving.subset(np.array([day_start(t) == T0 for t in serving.ts]))
        assert ranged[0]["domain"] == sorted(set(day0.values["c"][~day0.nulls["c"]]))
        assert ranged[0]["reference"].startswith("env=serving, ts in [2026-03-02 00:00:00")
        # max_domain: too many categories -> no domain (unchecked)
        capped = q.infer_schema(store._context(), "qm", features=["c"], max_domain=2).to_pylist()
        assert capped[0]["domain"] is None
        assert len(q.saved_schema(store._context(), "qm")) == len(FEATURES)


def test_infer_schema_errors_leave_the_schema_alone(tmp_path):
    train, serving = make_rows(6)
    path = tmp_path / "store.duckdb"
    with new_store(train, serving, path) as store:
        q.infer_schema(store._context(), "qm")
        before = q.saved_schema(store._context(), "qm").to_pylist()
        with pytest.raises(InvalidParameterError, match="holds no rows"):
            q.infer_schema(store._context(), "qm", reference={"dataset": "nope"})
        with pytest.raises(InvalidParameterError, match="fixed reference"):
            q.infer_schema(store._context(), "qm", reference={"previous": 2})
        with pytest.raises(InvalidParameterError, match="not among"):
            q.infer_schema(store._context(), "qm", features=["score"])
        with pytest.raises(InvalidParameterError, match="max_domain"):
            q.infer_schema(store._context(), "qm", max_domain=-1)
        with pytest.raises(UnknownModelError):
            q.infer_schema(store._context(), "other")
        assert q.saved_schema(store._context(), "qm").to_pylist() == before
        store.register_model("empty", "v1", "binary")
        with pytest.raises(InvalidParameterError, match="no numeric or categorical"):
            q.infer_schema(store._context(), "empty")
    with evalstore.open(path, read_only=True) as store:
        with pytest.raises(ReadOnlyError):
            q.infer_schema(store._context(), "qm")
        assert q.saved_schema(store._context(), "qm").to_pylist() == before
        assert len(q.validate(store._context(), "qm")) > 0  # reading works on a read-only store


# ------------------------------------------------------------------------ validation


def validation_rows() -> tuple[Rows, Rows, set[tuple[int, str, str]]]:
    """Clean training rows; serving days with exactly the violations listed."""
    rng = np.random.default_rng(11)
    n = 200
    x = rng.uniform(0, 10, n)
    y_null = np.zeros(n, bool)
    y_null[:20] = True  # expected_missing = 0.1
    train = Rows(
        [f"t{i}" for i in range(n)],
        [T0 - 5 * DAY] * n,
        {
            "x": x,
            "k": rng.integers(1, 6, n).astype(float),
            "c": rng.choice(["a", "b"], n).astype(object),
            "flag": rng.choice(["true", "false"], n).astype(object),
        },
        {"x": np.zeros(n, bool), "k": np.zeros(n, bool), "c": np.zeros(n, bool), "flag": y_null},
    )  # fmt: skip
    train.values["k"][:5] = [1, 2, 3, 4, 5]
    lo, hi = x.min(), x.max()
    per_day, days = 40, 5
    m = per_day * days
    day = np.repeat(np.arange(days), per_day)
    sx = rng.uniform(lo, hi, m)
    sk = rng.integers(1, 6, m).astype(float)
    sc = rng.choice(["a", "b"], m).astype(object)
    y_null = np.tile(np.arange(per_day) < 4, days)  # 10% NULL, as in training
    x_null = np.zeros(m, bool)
    first = {d: int(np.flatnonzero(day == d)[0]) for d in range(days)}
    sx[first[1]] = hi + 1  # day 1: above max ...
    x_null[first[1] + 1] = True  # ... and a NULL in a non-nullable feature
    sc[first[2]] = "z"  # day 2: a category outside the domain ...
    sk[first[2]] = 0  # ... and k below its min
    y_null[day == 3] = np.arange(per_day) < 20  # day 3: missing rate 0.5 > 0.1 + 0.05
    sx[first[4]] = -np.inf  # day 4: -inf is below min; NaN is not a range violation
    sx[first[4] + 1] = np.nan
    serving = Rows(
        [f"s{i}" for i in range(m)],
        [T0 + int(d) * DAY + timedelta(hours=1 + i % 20) for i, d in enumerate(day)],
        {"x": sx, "k": sk, "c": sc, "flag": rng.choice(["true", "false"], m).astype(object)},
        {"x": x_null, "k": np.zeros(m, bool), "c": np.zeros(m, bool), "flag": y_null},
    )
    injected = {
        (1, "x", "above_max"), (1, "x", "missing"), (2, "c", "out_of_domain"),
        (2, "k", "below_min"), (3, "flag", "missing_rate"), (4, "x", "below_min"),
    }  # fmt: skip
    return train, serving, injected


def violations(result: pa.Table) -> set[tuple[int, str, str]]:
    return {
        ((r["window_start"] - T0).days, r["feature"], r["method"])
        for r in result.to_pylist()
        if r["drifted"]
    }


@pytest.fixture
def validated():
    train, serving, injected = validation_rows()
    with new_store(train, serving) as store:
        q.infer_schema(store._context(), "qm")
        yield store, serving, injected


def test_validate_flags_exactly_the_injected_violations(validated):
    store, _, injected = validated
    result = q.validate(store._context(), "qm")
    assert tuple(result.column_names) == q.RESULT_COLUMNS
    assert violations(result) == injected
    rows = result.to_pylist()
    methods = {(r["feature"], r["method"]) for r in rows}
    assert methods == {
        (f, m)
        for f in NUMERIC
        for m in ("missing", "missing_rate", "below_min", "above_max", "type")
    } | {(f, m) for f in CATEGORICAL for m in ("missing", "missing_rate", "out_of_domain", "type")}
    assert len(rows) == 5 * len(methods)  # every window lists every check of every feature
    at = {((r["window_start"] - T0).days, r["feature"], r["method"]): r for r in rows}
    assert at[(1, "x", "above_max")]["value"] == pytest.approx(1 / 39)
    assert at[(1, "x", "above_max")]["count"] == 1
    assert at[(1, "x", "missing")]["value"] == 1 and at[(1, "x", "missing")]["threshold"] == 0
    assert at[(2, "c", "out_of_domain")]["value"] == pytest.approx(1 / 40)
    assert at[(3, "flag", "missing_rate")]["value"] == 0.5
    assert at[(3, "flag", "missing_rate")]["threshold"] == pytest.approx(0.15)
    assert at[(0, "flag", "missing")]["threshold"] is None  # nullable: no constraint
    assert at[(4, "x", "below_min")]["count"] == 1  # -inf; the NaN is in neither
    assert at[(4, "x", "above_max")]["count"] == 0
    assert all(r["p_value"] is None and r["n_reference"] is None for r in rows)
    assert all(r["n_analysis"] == 40 for r in rows)
    # tolerance is a parameter: a wide one forgives day 3
    assert (3, "flag", "missing_rate") not in violations(
        q.validate(store._context(), "qm", tolerance=0.5)
    )


def test_editing_the_schema_table_changes_validation(validated):
    store, _, injected = validated
    store.sql("UPDATE evalstore.schemas SET max = 100 WHERE model = 'qm' AND feature = 'x'")
    store.sql(
        "UPDATE evalstore.schemas SET domain = list_append(domain, 'z') "
        "WHERE model = 'qm' AND feature = 'c'"
    )
    store.sql("UPDATE evalstore.schemas SET nullable = true WHERE feature = 'x'")
    store.sql("UPDATE evalstore.schemas SET min = NULL WHERE feature = 'k'")
    fixed = {(1, "x", "above_max"), (2, "c", "out_of_domain"), (1, "x", "missing")}
    fixed |= {(2, "k", "below_min")}
    result = q.validate(store._context(), "qm")
    assert violations(result) == injected - fixed
    k_min = [r for r in result.to_pylist() if r["feature"] == "k" and r["method"] == "below_min"]
    assert {r["reason"] for r in k_min} == {"no min in the schema"}
    assert {r["threshold_source"] for r in k_min} == {"schema: min = NULL"}
    # a dtype that differs from the stored column is a violation in every window
    store.sql("UPDATE evalstore.schemas SET dtype = 'bigint' WHERE feature = 'x'")
    store.sql("UPDATE evalstore.schemas SET dtype = 'double' WHERE feature = 'k'")
    type_rows = {(d, "x", "type") for d in range(5)} | {(d, "k", "type") for d in range(5)}
    result = q.validate(store._context(), "qm")
    assert violations(result) == (injected - fixed) | type_rows
    x_type = next(r for r in result.to_pylist() if r["feature"] == "x" and r["method"] == "type")
    assert x_type["threshold_source"] == "schema: dtype = bigint, stored DOUBLE"
    store.sql("UPDATE evalstore.schemas SET dtype = 'Double' WHERE feature = 'x'")  # same type
    store.sql("DELETE FROM evalstore.schemas WHERE feature = 'k'")  # k is no longer checked
    assert violations(q.validate(store._context(), "qm")) == injected - fixed - {
        (2, "k", "below_min")
    }


def test_validate_selection_and_errors(validated):
    store, _, injected = validated
    two_days = q.validate(
        store._context(), "qm", since=T0 + DAY, until=T0 + 3 * DAY, features=["x", "c"]
    )
    assert violations(two_days) == {v for v in injected if v[0] in (1, 2) and v[1] in ("x", "c")}
    assert {r["feature"] for r in two_days.to_pylist()} == {"x", "c"}
    chunks = q.validate(store._context(), "qm", window={"chunks": 1}).to_pylist()
    assert {r["n_analysis"] for r in chunks} == {200}
    assert {r["method"] for r in chunks if r["drifted"]} == {m for _, _, m in injected}
    # the one row with c = 'z' (first of day 2) also has k = 0 and a NULL flag
    sliced = q.validate(store._context(), "qm", where="c = 'z'")
    assert violations(sliced) == {
        (2, "c", "out_of_domain"), (2, "k", "below_min"), (2, "flag", "missing_rate")
    }  # fmt: skip
    assert {r["n_analysis"] for r in sliced.to_pylist()} == {1}
    with pytest.raises(InvalidParameterError, match="not among the features of the saved schema"):
        q.validate(store._context(), "qm", features=["score"])
    with pytest.raises(InvalidParameterError, match="tolerance"):
        q.validate(store._context(), "qm", tolerance=-1)
    with pytest.raises(InvalidParameterError, match="not an interval"):
        q.validate(store._context(), "qm", window="often")
    store.sql("DELETE FROM evalstore.schemas")
    with pytest.raises(InvalidParameterError, match="no saved schema"):
        q.validate(store._context(), "qm")
    with pytest.raises(UnknownModelError):
        q.validate(store._context(), "nope")


def test_validate_against_a_draft_schema_table(validated):
    """The SQL macro takes the schema table's name: edits can be tried on a copy."""
    store, _, injected = validated
    store.sql("CREATE TEMP TABLE draft AS SELECT * FROM evalstore.schemas")
    store.sql("UPDATE draft SET max = 1000")
    draft = store.sql(
        "SELECT * FROM evalstore.validate('qm', 'temp.main.draft', 'qm.numeric_values', "
        "'qm.category_values', 'serving', NULL, NULL, NULL, '1 day', NULL, NULL, 0.05)"
    )
    assert violations(draft) == injected - {(1, "x", "above_max")}
    assert violations(q.validate(store._context(), "qm")) == injected


# ------------------------------------------------------------ plain DuckDB process

PLAIN = r"""
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET TimeZone = 'America/New_York'")  # windows must not depend on it
quality = con.execute(
    "SELECT epoch(window_start), feature, method, value, drifted FROM evalstore.quality("
    "'qm.numeric_values', 'qm.category_values', 'training', NULL, NULL, NULL, 'serving', "
    "NULL, NULL, NULL, '1 day', NULL, NULL, 0, 1, 0.05, 0, 0.01, 0.01)"
).fetchall()
validate = con.execute(
    "SELECT epoch(window_start), feature, method, value, drifted FROM evalstore.validate("
    "'qm', 'evalstore.schemas', 'qm.numeric_values', 'qm.category_values', 'serving', NULL, "
    "NULL, NULL, '1 day', NULL, NULL, 0.05)"
).fetchall()
con.close()
assert "evalstore" not in sys.modules
print(json.dumps({"quality": quality, "validate": validate}))
"""


def test_plain_duckdb_process_calls_the_macros(tmp_path):
    train, serving = make_rows(2)
    path = tmp_path / "store.duckdb"
    with new_store(train, serving, path) as store:
        q.infer_schema(store._context(), "qm")
        tables = {
            "quality": q.quality(store._context(), "qm"),
            "validate": q.validate(store._context(), "qm"),
        }
        expected = {
            name: [
                [r["window_start"].timestamp(), r["feature"], r["method"], r["value"], r["drifted"]]
                for r in table.to_pylist()
            ]
            for name, table in tables.items()
        }
    run = subprocess.run(
        [sys.executable, "-c", PLAIN, str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    for name in ("quality", "validate"):
        rows = sorted(got[name], key=lambda r: (r[0], r[1], r[2]))
        want = sorted(expected[name], key=lambda r: (r[0], r[1], r[2]))
        assert len(rows) == len(want) > 0
        for a, b in zip(rows, want, strict=True):
            assert a[:3] == b[:3] and a[4] == b[4]
            assert a[3] == (pytest.approx(b[3]) if b[3] is not None else None)


def test_macros_carry_catalog_comments():
    with blank_store() as store:
        rows = store.sql(
            "SELECT function_name, comment FROM duckdb_functions() WHERE schema_name = 'evalstore' "
            "AND function_name IN ('quality', 'quality_numeric', 'quality_categorical', "
            "'infer_schema', 'validate', 'validate_numeric', 'validate_categorical')"
        ).to_pylist()
        table = store.sql(
            "SELECT comment FROM duckdb_tables() WHERE schema_name = 'evalstore' "
            "AND table_name = 'schemas'"
        ).to_pylist()
    assert len({r["function_name"] for r in rows}) == 7
    assert all(r["comment"] for r in rows)
    assert table and table[0]["comment"]
