"""Numeric drift's sorted-array path (evalstore/metrics/drift/numeric.py, sorted_samples.py).

Two kinds of checks: the kernels against scipy/numpy/DuckDB on random samples with heavy
ties, and the whole fast path of ``store.drift`` against the SQL macro
``evalstore.drift_numeric`` that a plain DuckDB connection calls: both must give the same
rows (values to 1e-12, same variants, counts and reasons) for every variant. Against a
fixed reference both sides tell an output without reference rows by
``evalstore.reference_reason``, as the macro ``evalstore.drift`` does.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import evalstore
import evalstore.core.windows
from evalstore.metrics.drift.sorted_samples import (
    Sample,
    histogram,
    ks_statistic,
    quantile_edges,
    wasserstein_distance,
)
from tests.conftest import blank_store

samples = st.lists(
    st.one_of(st.integers(-5, 5).map(float), st.floats(-1e3, 1e3, allow_nan=False)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_ks_statistic_is_scipys(reference, window):
    expected = stats.ks_2samp(reference, window).statistic
    assert ks_statistic(Sample(np.array(reference)), Sample(np.array(window))) == pytest.approx(
        expected, abs=1e-12
    )


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_wasserstein_distance_is_scipys(reference, window):
    expected = stats.wasserstein_distance(reference, window)
    actual = wasserstein_distance(Sample(np.array(reference)), Sample(np.array(window)))
    assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_non_finite_values_are_left_out():
    sample = Sample(np.array([3.0, np.nan, -np.inf, 1.0, np.inf, 2.0, 1.0]))
    assert sample.values.tolist() == [1.0, 1.0, 2.0, 3.0]
    unique, counts, at_or_below = sample.distinct
    assert unique.tolist() == [1.0, 2.0, 3.0]
    assert counts.tolist() == [2, 1, 1]
    assert at_or_below.tolist() == [2, 3, 4]


def test_histogram_bins_are_half_open_with_open_ends():
    values = np.sort(np.array([-5.0, 0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 9.0]))
    # (-inf, 0), [0, 1), [1, 2], (2, inf)
    assert histogram(values, np.array([0.0, 1.0, 2.0])) == [1, 3, 4, 1]
    # a single edge: (-inf, e), [e, e], (e, inf)
    assert histogram(values, np.array([1.0])) == [4, 2, 3]
    assert sum(histogram(values, np.array([-1.0, 3.0]))) == len(values)


@pytest.mark.parametrize("bins", [1, 2, 4, 10])
def test_quantile_edges_match_the_sql_aggregate(bins):
    rng = np.random.default_rng(bins)
    values = np.sort(np.concatenate([rng.lognormal(size=500), np.round(rng.normal(size=300))]))
    with duckdb.connect() as con:
        con.register("t", pa.table({"value": values}))
        expected = con.sql(
            "SELECT list_sort(list_distinct(list_concat([min(value)], "
            "quantile_cont(value, list_transform(range(1, ?), lambda i: i / ?)), "
            "[max(value)]))) FROM t",
            params=[bins, bins],
        ).fetchall()[0][0]
    actual = quantile_edges(values, bins)
    assert len(actual) == len(expected)
    np.testing.assert_allclose(actual, expected, rtol=4.5e-16, atol=0)  # within one ulp
    # no value lies between an edge and its DuckDB twin: the bin counts are the same
    assert histogram(values, actual) == histogram(values, np.array(expected))


# --------------------------------------------------------------------------- fast path vs SQL

START = datetime(2026, 3, 2, tzinfo=UTC)


def _store(seed: int) -> evalstore.Store:
    """Random data with ties, NaN, infinities, a skewed and a constant feature, a column
    that is empty in the reference and a window with one row."""
    rng = np.random.default_rng(seed)
    store = blank_store()
    store.register_model("m", "v1", "binary")

    def frame(n: int, shift: float, days: int, ids: str) -> pa.Table:
        noisy = rng.normal(shift, 1, n)
        noisy[rng.random(n) < 0.05] = np.nan
        noisy[rng.random(n) < 0.02] = np.inf
        ts = [START + timedelta(days=int(d), minutes=int(m)) for d, m in
              zip(rng.integers(0, days, n), rng.integers(0, 1440, n), strict=True)]  # fmt: skip
        return pa.table({
            "example_id": [f"{ids}{i}" for i in range(n)],
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "noisy": noisy,
            "ties": np.round(rng.normal(shift, 1, n)),
            "skewed": rng.lognormal(shift, 2, n),
            "constant": np.full(n, 3.0),
        })  # fmt: skip

    reference = frame(400, 0.0, 30, "r")
    reference = reference.append_column("late", pa.array([None] * 400, pa.float64()))
    store.log_features("m", reference, env="training")
    serving = frame(300, 0.3, 3, "s").append_column("late", pa.array(rng.normal(size=300)))
    store.log_features("m", serving)
    lone = frame(1, 0.0, 1, "x").append_column("late", pa.array([1.5]))
    lone = lone.set_column(
        1, "ts", pa.array([START + timedelta(days=9)], lone.schema.field("ts").type)
    )
    store.log_features("m", lone)
    scores = pa.table({
        "example_id": serving.column("example_id"),
        "ts": serving.column("ts"),
        "score": rng.random(300),
    })  # fmt: skip
    store.log_predictions("m", scores, version="v1")
    return store


VARIANTS = [
    {},
    {"binning": "sturges", "pooled": True, "log_base": 2, "js": "divergence"},
    {"binning": "doane", "zero_bins": "leftover", "wasserstein": "raw"},
    {"binning": "fixed", "bins": 5, "epsilon": 1e-3},
    {"binning": "edges", "edges": [-1.0, 0.0, 1.0, 2.5]},
]
SQL_DEFAULTS = {
    "binning": "quantile", "bins": 10, "edges": None, "pooled": False,
    "zero_bins": "epsilon", "epsilon": 1e-4, "log_base": math.e, "js": "distance",
    "wasserstein": "normed",
}  # fmt: skip
METHODS = [
    "ks", "wasserstein", "zscore", "welch_t", "energy_distance", "mann_whitney",
    "cramer_von_mises", "psi", "kl", "js", "hellinger", "d1", "tvd",
]  # fmt: skip


def _key(row: dict) -> tuple:
    return (row["window_start"], row["feature"], row["method"])


@pytest.mark.parametrize(
    ("variant", "window", "reference"),
    [
        (VARIANTS[0], "1 day", "training"),
        (VARIANTS[1], {"chunks": 3}, "training"),
        (VARIANTS[2], 100, {"previous": 1}),
        (VARIANTS[3], "1 day", "training"),
        (VARIANTS[4], "2 days", "training"),
    ],
)
def test_fast_path_equals_the_sql_macro(variant, window, reference):
    store = _store(7)
    try:
        fast = store.drift("m", reference=reference, window=window, methods=METHODS, **variant)
        options = SQL_DEFAULTS | variant
        selection = evalstore.core.windows.resolve(store.connection, reference, window)
        placeholders = ", ".join("?" for _ in selection.args())
        # a fixed reference's outputs without rows get their reason from the one SQL
        # definition, evalstore.reference_reason, as the macro evalstore.drift gives it
        # (a rolling {'previous': n} reference keeps drift_numeric's reasons)
        reason = (
            "reason"
            if selection.previous
            else "evalstore.reference_reason(feature, reason, n_reference, ?)"
        )
        macro = store.sql(
            f"SELECT * REPLACE ({reason} AS reason) "
            f"FROM evalstore.drift_numeric('m.numeric_values', {placeholders}, "
            "?, ?, ?::DOUBLE[], ?, ?, ?, ?, ?) "
            "WHERE method <> 'wasserstein' OR starts_with(variant, ?)",
            [
                *([] if selection.previous else [reference]),
                *selection.args(), options["binning"], options["bins"], options["edges"],
                options["pooled"], options["zero_bins"], options["epsilon"],
                options["log_base"], options["js"], options["wasserstein"] + ":",
            ],
        )  # fmt: skip
    finally:
        store.close()
    expected = {_key(r): r for r in macro.to_pylist()}
    actual = {_key(r): r for r in fast.to_pylist() if r["kind"] == "numeric"}
    assert set(actual) == set(expected)
    assert len(actual) > 40
    for key, row in actual.items():
        want = expected[key]
        for column in ("variant", "n_reference", "n_analysis", "reason", "window_end"):
            assert row[column] == want[column], (key, column)
        if want["value"] is None:
            assert row["value"] is None, key
        else:
            assert row["value"] == pytest.approx(want["value"], rel=1e-12, abs=1e-12), key
    reasons = {r["reason"] for r in actual.values()}
    assert "no finite reference values" in reasons  # 'late' has no reference values
    assert "reference standard deviation is 0 or undefined" in reasons  # zscore of 'constant'
    if variant.get("wasserstein", "normed") == "normed":
        assert "constant reference: standard deviation is 0" in reasons
    score_reasons = {r["reason"] for r in actual.values() if r["feature"] == "score"}
    if reference == "training":  # the training rows were never predicted
        assert score_reasons == {
            "the reference (training) has no predictions: score exists only for served rows; "
            "compare with earlier serving windows, reference={'previous': n}, or a (start, "
            "end) range of serving time"
        }
    else:
        assert "the reference" not in " ".join(filter(None, score_reasons))


def test_plain_duckdb_drift_macro_gives_store_drift_statistics(tmp_path):
    path = tmp_path / "store.duckdb"
    store = _store(3)
    try:
        store.sql(f"ATTACH '{path}' AS copy")
        catalog = store.sql("SELECT current_database() AS c").to_pylist()[0]["c"]
        store.sql(f"COPY FROM DATABASE {catalog} TO copy")  # blank<N>: no quoting needed
        store.sql("DETACH copy")
        fast = store.drift("m", reference="training", window="1 day", methods=METHODS)
        fast = fast.filter(pa.compute.equal(fast.column("method"), "wasserstein")).to_pylist()
    finally:
        store.close()
    with duckdb.connect(str(path)) as con:  # no evalstore import needed to call the macro
        result = con.sql(
            "SELECT * FROM evalstore.drift('m', 'training', '1 day') "
            "WHERE method = 'wasserstein' AND starts_with(variant, 'normed:')"
        ).to_arrow_table()
    plain = {(r["window_start"], r["feature"]): r for r in result.to_pylist()}
    assert len(plain) == len(fast) > 10
    # the score's reason (no predictions in training) is evalstore.reference_reason's on
    # both sides
    assert any(
        r["feature"] == "score"
        and r["reason"].startswith("the reference (training) has no predictions")
        for r in fast
    )
    for row in fast:
        other = plain[(row["window_start"], row["feature"])]
        assert (other["n_reference"], other["n_analysis"], other["reason"]) == (
            row["n_reference"],
            row["n_analysis"],
            row["reason"],
        )
        if row["value"] is None:
            assert other["value"] is None
        else:
            assert other["value"] == pytest.approx(row["value"], rel=1e-12)
