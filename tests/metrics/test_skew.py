"""Training/serving skew (sql/skew.sql, evalstore.skew) against numpy oracles.

Mismatches are recomputed with ``numpy.isclose(serving, training, rtol, atol,
equal_nan)`` on random data with ties, NaN, infinities and NULLs; the distance column
must equal what the drift engine returns for the same selection.
"""

from __future__ import annotations

import itertools

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.metrics.skew import RESULT_COLUMNS, SUMMARY_COLUMNS
from tests.conftest import blank_store

SPECIALS = (np.nan, np.inf, -np.inf)


def _numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rounded values (ties) with a sprinkle of NaN and infinities."""
    x = np.round(rng.normal(0, 10, n), 1)
    special = rng.random(n) < 0.1
    x[special] = rng.choice(SPECIALS, special.sum())
    return x


def _perturb(rng: np.random.Generator, x: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """Serving values: equal, just inside or outside the tolerance, or special."""
    y = x.copy()
    kind = rng.integers(0, 5, len(x))
    with np.errstate(invalid="ignore"):
        limit = atol + rtol * np.abs(x)
        y = np.where(kind == 1, x + 0.5 * limit, y)
        y = np.where(kind == 2, x - 2.0 * limit - 1e-9, y)
        y = np.where(kind == 3, np.round(rng.normal(0, 10, len(x)), 1), y)
    special = kind == 4
    y[special] = rng.choice(SPECIALS, special.sum())
    return y


def _store_with(training: dict, serving: dict, train_ids, serve_ids, **register) -> evalstore.Store:
    store = blank_store()
    store.register_model("m", "v1", "binary", **register)
    store.log_features("m", pa.table({"example_id": train_ids, **training}), env="training",
                       dataset="train")  # fmt: skip
    store.log_features("m", pa.table({"example_id": serve_ids, **serving}))
    return store


def _oracle(train: np.ndarray, serve: np.ndarray, t_null, s_null, atol, rtol, equal_nan):
    close = np.isclose(serve, train, rtol=rtol, atol=atol, equal_nan=equal_nan)
    both_null = t_null & s_null
    one_null = t_null ^ s_null
    mismatch = np.where(both_null, False, np.where(one_null, True, ~close))
    return mismatch, one_null


@pytest.mark.parametrize("equal_nan", [True, False])
@pytest.mark.parametrize(("atol", "rtol"), [(1e-8, 1e-5), (0.5, 0.0), (0.0, 0.1), (0.0, 0.0)])
def test_numeric_mismatches_match_numpy_isclose(atol, rtol, equal_nan):
    rng = np.random.default_rng(int(atol * 10 + rtol * 100) + equal_nan)
    n = 400
    train = _numbers(rng, n)
    serve = _perturb(rng, train, atol, rtol)
    t_null, s_null = rng.random(n) < 0.05, rng.random(n) < 0.05
    ids = [f"id{i:04d}" for i in range(n)]
    store = _store_with(
        {"x": pa.array(train, mask=t_null)}, {"x": pa.array(serve, mask=s_null)}, ids, ids
    )
    with store:
        row = store.skew(
            "m", tolerance=atol, rtol=rtol, equal_nan=equal_nan, sample=7, method=None
        ).to_pylist()
    mismatch, one_null = _oracle(train, serve, t_null, s_null, atol, rtol, equal_nan)
    [row] = row
    assert row["n_compared"] == n
    assert row["n_mismatch"] == mismatch.sum()
    assert row["n_null_mismatch"] == one_null.sum()
    assert row["share_mismatch"] == pytest.approx(mismatch.mean(), abs=1e-15)
    assert row["sample_ids"] == sorted(np.asarray(ids)[mismatch])[:7]
    assert row["skewed"] == bool(mismatch.any())
    value_mismatch = mismatch & ~one_null & ~t_null & ~s_null
    with np.errstate(invalid="ignore"):
        diffs = np.abs(serve - train)[value_mismatch]
    diffs = diffs[~np.isnan(diffs)]
    assert row["max_abs_diff"] == (diffs.max() if diffs.size else None)


@pytest.fixture(scope="module")
def shared():
    """One store for the property test (a model per example) and the error cases."""
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0], "c": ["a"]}),
                           env="training")  # fmt: skip
        store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0], "c": ["a"]}))
        yield store


_models = itertools.count()


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    pairs=st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32)),
        ),
        min_size=1,
        max_size=30,
    ),
    atol=st.sampled_from([0.0, 1e-8, 0.1]),
    rtol=st.sampled_from([0.0, 1e-5, 0.1]),
)
def test_property_mismatch_counts(shared, pairs, atol, rtol):
    train = np.array([np.nan if t is None else t for t, _ in pairs])
    serve = np.array([np.nan if s is None else s for _, s in pairs])
    t_null = np.array([t is None for t, _ in pairs])
    s_null = np.array([s is None for _, s in pairs])
    ids = [f"e{i}" for i in range(len(pairs))]
    model = f"p{next(_models)}"
    shared.register_model(model, "v1", "binary")
    shared.log_features(model, pa.table({"example_id": ids, "x": pa.array(train, mask=t_null)}),
                        env="training")  # fmt: skip
    shared.log_features(model, pa.table({"example_id": ids, "x": pa.array(serve, mask=s_null)}))
    [row] = shared.skew(model, tolerance=atol, rtol=rtol, method=None).to_pylist()
    [summary] = shared.skew_summary(model, tolerance=atol, rtol=rtol).to_pylist()
    mismatch, _ = _oracle(train, serve, t_null, s_null, atol, rtol, True)
    assert row["n_mismatch"] == mismatch.sum()
    assert summary["n_examples_skewed"] == mismatch.sum()


def test_categorical_exact_and_nulls():
    train = ["a", "b", None, None, "c", "True", "x "]
    serve = ["a", "B", None, "d", None, "True", "x"]
    ids = [f"e{i}" for i in range(len(train))]
    store = _store_with({"c": pa.array(train)}, {"c": pa.array(serve)}, ids, ids)
    with store:
        [row] = store.skew("m", method=None).to_pylist()
    assert row["kind"] == "categorical"
    assert row["method"] is None and row["distance"] is None and row["reason"] is None
    assert (row["n_compared"], row["n_mismatch"], row["n_null_mismatch"]) == (7, 4, 2)
    assert row["sample_ids"] == ["e1", "e3", "e4", "e6"]
    assert row["max_abs_diff"] is None


def test_only_shared_ids_are_compared_and_summary_counts_examples():
    train_ids = ["a", "b", "c", "d"]
    serve_ids = ["c", "d", "e", "f", "g"]
    store = _store_with(
        {"x": [1.0, 2.0, 3.0, 4.0], "c": ["u", "v", "w", "z"]},
        {"x": [3.0, 4.5, 0.0, 0.0, 0.0], "c": ["w2", "z", "u", "u", "u"]},
        train_ids,
        serve_ids,
    )
    with store:
        rows = {r["feature"]: r for r in store.skew("m", method=None).to_pylist()}
        [summary] = store.skew_summary("m").to_pylist()
        only_x = store.skew_summary("m", features=["x"]).to_pylist()[0]
        tolerant = store.skew_summary("m", max_share=0.5).to_pylist()[0]
    assert rows["x"]["n_compared"] == 2 and rows["x"]["sample_ids"] == ["d"]
    assert rows["c"]["n_compared"] == 2 and rows["c"]["sample_ids"] == ["c"]
    assert list(summary) == list(SUMMARY_COLUMNS)
    assert summary == {
        "n_examples": 2, "n_examples_skewed": 2, "share_examples_skewed": 1.0,
        "n_features": 2, "n_features_skewed": 2,
    }  # fmt: skip
    assert only_x["n_examples_skewed"] == 1 and only_x["n_features"] == 1
    assert tolerant["n_features_skewed"] == 0  # share 0.5 is not > 0.5


def test_no_shared_ids_gives_zero_compared_with_reason_and_distance_from_drift():
    rng = np.random.default_rng(3)
    store = _store_with(
        {"x": rng.normal(0, 1, 300), "c": rng.choice(["a", "b"], 300)},
        {"x": rng.normal(1, 1, 200), "c": rng.choice(["a", "b", "c"], 200)},
        [f"t{i}" for i in range(300)],
        [f"s{i}" for i in range(200)],
    )
    with store:
        table = store.skew("m")
        drift = store.drift("m", reference="training", window={"chunks": 1}, methods=["js"],
                            features=["x", "c"])  # fmt: skip
        summary = store.skew_summary("m").to_pylist()[0]
    assert table.column_names == list(RESULT_COLUMNS)
    expected = {r["feature"]: r for r in drift.to_pylist()}
    for row in table.to_pylist():
        assert row["n_compared"] == 0 and row["n_mismatch"] == 0
        assert row["share_mismatch"] is None and row["skewed"] is None
        assert "no example_id is in both" in row["reason"]
        assert row["sample_ids"] == []
        assert row["method"] == "js"
        assert row["distance"] == expected[row["feature"]]["value"]
        assert row["variant"] == expected[row["feature"]]["variant"]
        assert (row["n_training"], row["n_serving"]) == (300, 200)
    assert summary["n_examples"] == 0 and summary["share_examples_skewed"] is None


def test_distance_method_per_kind_and_drift_options():
    rng = np.random.default_rng(4)
    store = _store_with(
        {"x": rng.normal(0, 1, 100), "c": rng.choice(["a", "b"], 100)},
        {"x": rng.normal(0, 2, 100), "c": rng.choice(["a", "b"], 100)},
        [f"t{i}" for i in range(100)],
        [f"s{i}" for i in range(100)],
    )
    with store:
        rows = {
            r["feature"]: r
            for r in store.skew(
                "m", method={"numeric": "wasserstein", "categorical": "chi2"},
                wasserstein="raw",
            ).to_pylist()
        }  # fmt: skip
        w = store.drift("m", window={"chunks": 1}, features=["x"], methods=["wasserstein"],
                        wasserstein="raw").to_pylist()[0]  # fmt: skip
    assert rows["x"]["method"] == "wasserstein" and rows["c"]["method"] == "chi2"
    assert rows["x"]["distance"] == pytest.approx(w["value"], rel=1e-12)
    assert rows["x"]["variant"] == w["variant"]


def test_version_uses_its_training_dataset_and_predicted_examples():
    store = blank_store()
    with store:
        store.register_model("m", "v1", "binary", training_dataset="old")
        store.register_model("m", "v2", "binary", training_dataset="new")
        ids = ["a", "b", "c"]
        store.log_features("m", pa.table({"example_id": ids, "x": [1.0, 2.0, 3.0]}),
                           env="training", dataset="old")  # fmt: skip
        store.log_features("m", pa.table({"example_id": ["d"], "x": [9.0]}), env="training",
                           dataset="new")  # fmt: skip
        store.log_features("m", pa.table({"example_id": [*ids, "d"], "x": [1.0, 5.0, 3.0, 0.0]}))
        store.log_predictions("m", pa.table({"example_id": ["a", "b"], "score": [0.1, 0.2]}), "v1")
        store.log_predictions("m", pa.table({"example_id": ["d"], "score": [0.1]}), "v2")
        every = store.skew("m", features="x", method=None).to_pylist()[0]
        v1 = store.skew("m", version="v1").to_pylist()[0]
        v2 = store.skew("m", version="v2", method=None).to_pylist()[0]
        north = store.skew("m", where="x < 4", method=None).to_pylist()[0]
    assert (every["n_compared"], every["n_mismatch"]) == (4, 2)
    assert (v1["n_compared"], v1["n_mismatch"], v1["sample_ids"]) == (2, 1, ["b"])
    # the distance compares v1's training dataset with the serving rows v1 predicted
    assert (v1["n_training"], v1["n_serving"]) == (3, 2)
    assert (v2["n_compared"], v2["n_mismatch"], v2["sample_ids"]) == (1, 1, ["d"])
    # both rows of an example must meet the predicate: b (serving 5.0) and d (training 9.0)
    # drop out
    assert (north["n_compared"], north["n_mismatch"]) == (2, 0)


def test_plain_duckdb_can_call_the_macros(tmp_path):
    path = tmp_path / "s.duckdb"
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.0]}),
                           env="training")  # fmt: skip
        store.log_features("m", pa.table({"example_id": ["a", "b"], "x": [1.0, 2.5]}))
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql(
            "SELECT feature, n_compared, n_mismatch, sample_ids FROM evalstore.skew("
            "'m.numeric_values', 'm.category_values', NULL, NULL, 1e-8, 1e-5, true, 5)"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("x", 2, 1, ["b"])]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tolerance": -1}, InvalidParameterError, "tolerance=-1 must be a finite number >= 0"),
        ({"rtol": float("nan")}, InvalidParameterError, "rtol=nan"),
        ({"features": ["nope"]}, InvalidParameterError, r"features \['nope'\] are not"),
        ({"features": ["score"]}, InvalidParameterError, "not numeric or categorical feature"),
        ({"method": "ks"}, InvalidParameterError, "'ks' does not apply to categorical"),
        ({"method": 3}, InvalidParameterError, "method=3 is not understood"),
        ({"sample": -1}, InvalidParameterError, "sample=-1"),
        ({"equal_nan": "yes"}, InvalidParameterError, "equal_nan='yes'"),
        ({"version": "v9"}, UnknownModelError, "no version 'v9'"),
        ({"where": "x; DROP TABLE m.features"}, InvalidParameterError, "where="),
        ({"where": "nope > 1"}, InvalidParameterError, "unknown column"),
    ],
)
def test_errors(shared, kwargs, error, match):
    with pytest.raises(error, match=match):
        shared.skew("m", **kwargs)


def test_unknown_model():
    with blank_store() as store, pytest.raises(UnknownModelError, match="not registered"):
        store.skew("nope")


def test_model_without_features_gives_an_empty_table():
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        table = store.skew("m")
        summary = store.skew_summary("m").to_pylist()
    assert table.num_rows == 0 and table.column_names == list(RESULT_COLUMNS)
    assert summary[0]["n_examples"] == 0


def test_cli_skew_table_and_csv(tmp_path):
    from click.testing import CliRunner

    from evalstore.cli import main

    path = tmp_path / "s.duckdb"
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        ids = ["a", "b", "c"]
        store.log_features("m", pa.table({"example_id": ids, "x": [1.0, 2.0, 3.0]}),
                           env="training")  # fmt: skip
        store.log_features("m", pa.table({"example_id": ids, "x": [1.0, 2.5, 3.0]}))
    runner = CliRunner()
    result = runner.invoke(
        main, ["-s", str(path), "skew", "-m", "m", "--no-distance"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "share_mismatch" in result.output and "['b']" in result.output
    assert "1 of 3 examples in both training and serving differ" in result.output
    result = runner.invoke(main, ["-s", str(path), "skew", "-m", "m", "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith('"feature","kind","n_compared"')
    result = runner.invoke(main, ["-s", str(path), "skew", "-m", "m", "--tolerance", "-1"])
    assert result.exit_code == 1 and "tolerance=-1.0 must be" in result.output
