"""Model comparison (sql/compare.sql, evalstore.compare) against scipy/numpy/scikit-learn.

Pairs, windows and slices are rebuilt in pandas; McNemar's p-values are checked against
``scipy.stats.binomtest`` (exact) and ``scipy.stats.chi2`` (corrected), mean losses
against scikit-learn's ``log_loss`` / ``brier_score_loss`` / regression errors, and the
intervals against their formulas on numpy arrays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from statistics import NormalDist

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss, log_loss, mean_absolute_error, mean_squared_error

import evalstore
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.metrics.compare import LEADING_COLUMNS, TRAILING_COLUMNS, p_values
from tests.conftest import blank_store

BASE = datetime(2026, 3, 2, tzinfo=UTC)
DAY = 86_400
Z = NormalDist().inv_cdf(0.975)


def _ts(seconds) -> pa.Array:
    us = (np.asarray(seconds, dtype=np.int64) + int(BASE.timestamp())) * 1_000_000
    return pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _binary_store(seed: int = 0, n: int = 900, days: int = 3):
    """v1 scores every example, v2 a random 80% (correlated scores); 70% labeled."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"e{i:05d}" for i in range(n)])
    t = rng.integers(0, days * DAY, n)
    y = rng.integers(0, 2, n)
    s1 = np.round(np.clip(0.5 * y + rng.normal(0.25, 0.25, n), 0, 1), 2)  # ties
    s2 = np.round(np.clip(s1 + rng.normal(0, 0.15, n), 0, 1), 2)
    region = rng.choice(["north", "south", None], n, p=[0.5, 0.4, 0.1])
    in2 = rng.random(n) < 0.8
    labeled = rng.random(n) < 0.7
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    store.log_features("m", pa.table({"example_id": ids, "region": region, "ts": _ts(t)}))
    store.log_predictions("m", pa.table({"example_id": ids, "score": s1, "ts": _ts(t)}), "v1")
    store.log_predictions(
        "m", pa.table({"example_id": ids[in2], "score": s2[in2], "ts": _ts(t[in2] + 5)}), "v2"
    )
    store.log_labels("m", pa.table({"example_id": ids[labeled], "label": y[labeled]}))
    frame = pd.DataFrame(
        {"id": ids, "day": t // DAY, "y": np.where(labeled, y, -1), "s1": s1, "s2": s2,
         "in2": in2, "region": region}
    )  # fmt: skip
    return store, frame[frame.in2]


def _expected(cell: pd.DataFrame, exact_below: int = 25) -> dict[str, dict]:
    p1, p2 = (cell.s1 >= 0.5).astype(int), (cell.s2 >= 0.5).astype(int)
    out = {}
    k = int((p1 != p2).sum())
    m = len(cell)
    centre = (k / m + Z**2 / (2 * m)) / (1 + Z**2 / m)
    half = Z * np.sqrt(k / m * (1 - k / m) / m + Z**2 / (4 * m * m)) / (1 + Z**2 / m)
    out["disagreement"] = {"value": k / m, "ci_low": centre - half, "ci_high": centre + half,
                           "n": m}  # fmt: skip
    lab = cell[cell.y >= 0]
    y = lab.y.to_numpy()
    r1 = ((lab.s1 >= 0.5).astype(int) == y).to_numpy().astype(float)
    r2 = ((lab.s2 >= 0.5).astype(int) == y).to_numpy().astype(float)
    d = r2 - r1
    a_only, b_only = int(((r1 == 1) & (r2 == 0)).sum()), int(((r1 == 0) & (r2 == 1)).sum())
    se = d.std(ddof=0) / np.sqrt(len(d))
    if a_only + b_only < exact_below:
        p = (
            stats.binomtest(min(a_only, b_only), a_only + b_only, 0.5).pvalue
            if a_only + b_only
            else 1.0
        )
        test = "mcnemar exact"
    else:
        statistic = max(abs(a_only - b_only) - 1, 0) ** 2 / (a_only + b_only)
        p = stats.chi2.sf(statistic, 1)
        test = "mcnemar chi2 corrected"
    out["accuracy"] = {
        "value": d.mean(), "ci_low": d.mean() - Z * se, "ci_high": d.mean() + Z * se,
        "value_a": r1.mean(), "value_b": r2.mean(), "n_a_only": a_only, "n_b_only": b_only,
        "p_value": p, "test": test, "n": len(d),
    }  # fmt: skip
    for name, loss, oracle in (
        ("log_loss", _log_losses, lambda s: log_loss(y, s, labels=[0, 1])),
        ("brier", lambda yy, s: (s - yy) ** 2, lambda s: brier_score_loss(y, s)),
    ):
        la, lb = loss(y, lab.s1.to_numpy()), loss(y, lab.s2.to_numpy())
        dd = lb - la
        sd = dd.std(ddof=1)
        zz = dd.mean() / (sd / np.sqrt(len(dd)))
        out[name] = {
            "value": dd.mean(), "value_a": oracle(lab.s1.to_numpy()),
            "value_b": oracle(lab.s2.to_numpy()),
            "ci_low": dd.mean() - Z * sd / np.sqrt(len(dd)),
            "ci_high": dd.mean() + Z * sd / np.sqrt(len(dd)),
            "statistic": zz, "p_value": 2 * stats.norm.sf(abs(zz)), "n": len(dd),
        }  # fmt: skip
    return out


def _log_losses(y, s):
    eps = np.finfo(float).eps
    p = np.clip(np.where(y == 1, s, 1 - s), eps, 1 - eps)
    return -np.log(p)


def _check(row: dict, expected: dict) -> None:
    for key, value in expected.items():
        if isinstance(value, str | int) and not isinstance(value, bool):
            assert row[key] == value, key
        else:
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_binary_per_day_matches_oracles():
    store, frame = _binary_store()
    with store:
        table = store.compare("m", "v1", "v2", window="1 day")
    assert table.column_names == [*LEADING_COLUMNS, *TRAILING_COLUMNS]
    rows = table.to_pylist()
    assert [r["metric"] for r in rows[:4]] == ["disagreement", "accuracy", "log_loss", "brier"]
    assert {r["version_a"] for r in rows} == {"v1"} and {r["version_b"] for r in rows} == {"v2"}
    days = sorted(frame.day.unique())
    assert len(rows) == 4 * len(days)
    for i, day in enumerate(days):
        cell = frame[frame.day == day]
        expected = _expected(cell)
        for row in rows[4 * i : 4 * i + 4]:
            assert row["window_start"] == datetime.fromtimestamp(BASE.timestamp() + day * DAY, UTC)
            assert row["paired"] == len(cell) and row["labeled"] == (cell.y >= 0).sum()
            _check(row, expected[row["metric"]])


@pytest.mark.parametrize("exact_below", [0, 10**9])
def test_mcnemar_both_paths_match_scipy(exact_below):
    store, frame = _binary_store(seed=1, n=600, days=1)
    with store:
        [row] = store.compare(
            "m", "v1", "v2", window={"chunks": 1}, metric="accuracy", exact_below=exact_below
        ).to_pylist()
    _check(row, _expected(frame, exact_below)["accuracy"])
    a, b = row["n_a_only"], row["n_b_only"]
    if exact_below:
        assert row["statistic"] == min(a, b)
        assert row["p_value"] == pytest.approx(stats.binomtest(min(a, b), a + b).pvalue, rel=1e-12)
    else:
        assert row["p_value"] == pytest.approx(stats.chi2.sf(row["statistic"], 1), rel=1e-12)


@pytest.mark.parametrize(("a", "b"), [(0, 0), (0, 1), (3, 3), (2, 9), (12, 12), (30, 10), (0, 40)])
def test_p_values_against_scipy(a, b):
    exact = p_values(["mcnemar exact"], [min(a, b)], [a], [b])[0]
    expected = stats.binomtest(min(a, b), a + b, 0.5).pvalue if a + b else 1.0
    assert exact == pytest.approx(expected, rel=1e-12)
    statistic = max(abs(a - b) - 1, 0) ** 2 / (a + b) if a + b else 0.0
    chi2 = p_values(["mcnemar chi2 corrected"], [statistic], [a], [b])[0]
    assert chi2 == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-12)
    assert np.isnan(p_values([None], [None], [None], [None])[0])


def test_slices_by_feature_and_predicates():
    store, frame = _binary_store(seed=2)
    with store:
        table = store.compare(
            "m", "v1", "v2", window={"chunks": 1}, metric=["disagreement", "accuracy"],
            by=["region", {"low": "region = 'north'", "any": "example_id IS NOT NULL"}],
        )  # fmt: skip
    assert table.column_names[4:6] == ["region", "slice"]
    rows = table.to_pylist()
    seen = set()
    for row in rows:
        region, name = row["region"], row["slice"]
        cell = frame[frame.region.isna()] if region is None else frame[frame.region == region]
        if name == "low":
            cell = cell[cell.region == "north"]
        seen.add((region, name))
        _check(row, {k: v for k, v in _expected(cell)[row["metric"]].items()})
    assert seen == {("north", "low"), ("north", "any"), ("south", "any"), (None, "any")}


def test_where_restricts_pairs():
    store, frame = _binary_store(seed=3)
    with store:
        [row] = store.compare(
            "m", "v1", "v2", window={"chunks": 1}, metric="disagreement", where="region = 'south'"
        ).to_pylist()
    _check(row, _expected(frame[frame.region == "south"])["disagreement"])


def test_unlabeled_pairs_give_null_metrics_with_reason_and_single_pair_has_no_interval():
    with blank_store() as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "binary")
        ids = ["a", "b", "c"]
        store.log_predictions("m", pa.table({"example_id": ids, "score": [0.9, 0.1, 0.6]}), "v1")
        store.log_predictions("m", pa.table({"example_id": ids, "score": [0.8, 0.7, 0.6]}), "v2")
        rows = store.compare("m", "v1", "v2", window="100 years").to_pylist()
        store.log_labels("m", pa.table({"example_id": ["a"], "label": [1]}))
        one = {
            r["metric"]: r for r in store.compare("m", "v1", "v2", window="100 years").to_pylist()
        }
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["disagreement"]["value"] == pytest.approx(1 / 3)
    for name in ("accuracy", "log_loss", "brier"):
        assert by_metric[name]["value"] is None and "no labeled pair" in by_metric[name]["reason"]
        assert by_metric[name]["p_value"] is None
    assert one["accuracy"]["value"] == 0 and one["accuracy"]["p_value"] == 1.0
    assert one["log_loss"]["ci_low"] is None and "one labeled pair" in one["log_loss"]["reason"]


def test_no_pairs_gives_an_empty_table():
    with blank_store() as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "binary")
        store.log_predictions("m", pa.table({"example_id": ["a"], "score": [0.9]}), "v1")
        store.log_predictions("m", pa.table({"example_id": ["b"], "score": [0.9]}), "v2")
        table = store.compare("m", "v1", "v2")
        sliced = store.compare("m", "v1", "v2", by={"all": "ts IS NOT NULL"})
    assert table.num_rows == 0 and table.column_names == [*LEADING_COLUMNS, *TRAILING_COLUMNS]
    assert sliced.num_rows == 0 and "slice" in sliced.column_names


def test_multiclass_accuracy_and_log_loss():
    rng = np.random.default_rng(5)
    n, classes = 300, ["cat", "dog", "owl"]
    ids = [f"e{i}" for i in range(n)]
    y = rng.choice(classes, n)
    probs = {v: rng.dirichlet(np.ones(3), n) for v in ("v1", "v2")}
    with blank_store() as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "multiclass", classes=classes)
            columns = {c: probs[v][:, j] for j, c in enumerate(classes)}
            store.log_predictions("m", pa.table({"example_id": ids, **columns}), v,
                                  probability_columns=classes)  # fmt: skip
        store.log_labels("m", pa.table({"example_id": ids, "label": y}))
        rows = {
            r["metric"]: r for r in store.compare("m", "v1", "v2", window={"chunks": 1}).to_pylist()
        }
    assert set(rows) == {"disagreement", "accuracy", "log_loss"}
    pred = {v: np.array(classes)[probs[v].argmax(axis=1)] for v in probs}
    assert rows["disagreement"]["value"] == pytest.approx((pred["v1"] != pred["v2"]).mean())
    assert rows["accuracy"]["value_a"] == pytest.approx((pred["v1"] == y).mean())
    assert rows["accuracy"]["value"] == pytest.approx(
        (pred["v2"] == y).mean() - (pred["v1"] == y).mean()
    )
    ll = {v: log_loss(y, probs[v], labels=classes) for v in probs}
    assert rows["log_loss"]["value_a"] == pytest.approx(ll["v1"], rel=1e-9)
    assert rows["log_loss"]["value"] == pytest.approx(ll["v2"] - ll["v1"], rel=1e-9)


def test_regression_disagreement_tolerance_and_errors():
    rng = np.random.default_rng(6)
    n = 200
    ids = [f"e{i}" for i in range(n)]
    y = rng.normal(10, 3, n)
    p1 = np.round(y + rng.normal(0, 1, n), 1)
    p2 = np.where(rng.random(n) < 0.5, p1, np.round(y + rng.normal(0, 0.5, n), 1))
    with blank_store() as store:
        for v, p in (("v1", p1), ("v2", p2)):
            store.register_model("m", v, "regression")
            store.log_predictions("m", pa.table({"example_id": ids, "prediction": p}), v)
        store.log_labels("m", pa.table({"example_id": ids, "label": y}))
        rows = {
            r["metric"]: r
            for r in store.compare(
                "m", "v1", "v2", window={"chunks": 1}, tolerance=0.2, rtol=0.01
            ).to_pylist()
        }
    assert list(rows) == ["disagreement", "mae", "mse"]
    disagree = ~np.isclose(p2, p1, rtol=0.01, atol=0.2)
    assert rows["disagreement"]["value"] == pytest.approx(disagree.mean())
    assert rows["mae"]["value_a"] == pytest.approx(mean_absolute_error(y, p1), rel=1e-9)
    assert rows["mae"]["value_b"] == pytest.approx(mean_absolute_error(y, p2), rel=1e-9)
    d = (p2 - y) ** 2 - (p1 - y) ** 2
    assert rows["mse"]["value"] == pytest.approx(
        mean_squared_error(y, p2) - mean_squared_error(y, p1), rel=1e-9
    )
    half = Z * d.std(ddof=1) / np.sqrt(n)
    assert rows["mse"]["ci_high"] - rows["mse"]["ci_low"] == pytest.approx(2 * half, rel=1e-9)
    assert rows["mse"]["p_value"] == pytest.approx(
        2 * stats.norm.sf(abs(d.mean() / (d.std(ddof=1) / np.sqrt(n)))), rel=1e-9
    )


def test_plain_duckdb_can_call_the_macro(tmp_path):
    path = tmp_path / "c.duckdb"
    with evalstore.open(path) as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "binary")
        ids = ["a", "b"]
        store.log_predictions("m", pa.table({"example_id": ids, "score": [0.9, 0.1]}), "v1")
        store.log_predictions("m", pa.table({"example_id": ids, "score": [0.9, 0.9]}), "v2")
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql(
            "SELECT metric, value FROM evalstore.compare_classification('m.evaluations', 'v1', "
            "'v2', '1', NULL, NULL, 1, NULL, NULL, 1.96, 25, NULL) WHERE metric = 'disagreement'"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("disagreement", 0.5)]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("v1", "v1"), {}, InvalidParameterError, "both 'v1'"),
        (("v1", "v9"), {}, UnknownModelError, "no version 'v9'"),
        (("v1", "v2"), {"metric": "mae"}, InvalidParameterError, "not available to compare binary"),
        (("v1", "v2"), {"by": "score_x"}, InvalidParameterError, "not a feature column"),
        (("v1", "v2"), {"by": "x"}, InvalidParameterError, "is numeric"),
        (("v1", "v2"), {"by": [{"a": "x > 1"}, {"b": "x < 1"}]}, InvalidParameterError, "one"),
        (("v1", "v2"), {"window": "soon"}, InvalidParameterError, "not an interval"),
        (("v1", "v2"), {"window": 0}, InvalidParameterError, "at least 1"),
        (("v1", "v2"), {"confidence": 1.5}, InvalidParameterError, "confidence=1.5"),
        (("v1", "v2"), {"exact_below": -1}, InvalidParameterError, "exact_below=-1"),
        (("v1", "v2"), {"threshold": 1.5}, InvalidParameterError,
         r"threshold=1.5 must be a number in \[0, 1\]"),
        (("v1", "v2"), {"threshold": True}, InvalidParameterError, "threshold=True must be"),
        (("v1", "v2"), {"where": "prediction = '1'"}, InvalidParameterError, "unknown column"),
        (("v1", "v2"), {"since": "2026-02-01", "until": "2026-01-01"}, InvalidParameterError,
         "earlier"),
    ],
)  # fmt: skip
def test_errors(args, kwargs, error, match):
    with blank_store() as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "binary")
        store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0], "c": ["u"]}))
        with pytest.raises(error, match=match):
            store.compare("m", *args, **kwargs)


def test_cli_compare(tmp_path):
    from click.testing import CliRunner

    from evalstore.cli import main

    path = tmp_path / "c.duckdb"
    with evalstore.open(path) as store:
        for v in ("v1", "v2"):
            store.register_model("m", v, "binary")
        ids = ["a", "b", "c", "d"]
        store.log_features("m", pa.table({"example_id": ids, "c": ["u", "u", "w", "w"]}))
        store.log_predictions(
            "m", pa.table({"example_id": ids, "score": [0.9, 0.1, 0.9, 0.1]}), "v1"
        )
        store.log_predictions(
            "m", pa.table({"example_id": ids, "score": [0.9, 0.9, 0.9, 0.9]}), "v2"
        )
        store.log_labels("m", pa.table({"example_id": ids, "label": [1, 1, 1, 0]}))
    runner = CliRunner()
    args = ["-s", str(path), "compare", "-m", "m", "-a", "v1", "-b", "v2", "-w", "chunks:1"]
    wide = {"COLUMNS": "250"}  # every column fits: the test's name is shown
    result = runner.invoke(
        main, [*args, "--by", "c", "--metrics", "disagreement,accuracy"], env=wide
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["window_start", "c", "metric"]
    assert "mcnemar exact" in result.output
    assert "difference v2 - v1" in result.output
    narrow = runner.invoke(
        main, [*args, "--by", "c", "--metrics", "disagreement,accuracy"], env={"COLUMNS": "80"}
    )
    assert max(len(line) for line in narrow.output.splitlines()) <= 80
    assert "mcnemar exact" not in narrow.output and "not shown:" in narrow.output
    result = runner.invoke(main, [*args, "--slice", "oops"])
    assert result.exit_code == 1 and "NAME=PREDICATE" in result.output
    result = runner.invoke(main, [*args, "-f", "json"])
    assert result.exit_code == 0 and '"metric": "brier"' in result.output
