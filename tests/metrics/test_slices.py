"""Worst-slice discovery (sql/slices.sql, evalstore.slices) against numpy/scipy oracles.

Slice counts, the metric per slice and per rest, the test statistics and one-sided
p-values (scipy.stats.norm / ttest_ind), the Benjamini-Hochberg q-values
(scipy.stats.false_discovery_control) are recomputed from the generated rows; the
predicates are checked to select exactly the slice's rows through performance and drift.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from evalstore.errors import InvalidParameterError
from evalstore.metrics.slices import _number
from tests.conftest import blank_store

BASE = datetime(2026, 3, 2, tzinfo=UTC)
N = 1200


def _ts(seconds) -> pa.Array:
    us = (np.asarray(seconds, dtype=np.int64) + int(BASE.timestamp())) * 1_000_000
    return pa.array(us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


@pytest.fixture(scope="module")
def binary():
    """A binary model, 2 versions; region is bad for 'north', amount above ~1 is bad."""
    rng = np.random.default_rng(11)
    ids = np.array([f"x{i:05d}" for i in range(N)])
    region = rng.choice(["north", "south", "east"], N, p=[0.2, 0.5, 0.3]).astype(object)
    region[rng.random(N) < 0.05] = None
    amount = rng.standard_normal(N)
    amount[rng.random(N) < 0.04] = np.nan
    count = rng.integers(0, 5, N)
    always = rng.standard_normal(N)
    seconds = rng.integers(0, 20 * 86_400, N)
    y = rng.integers(0, 2, N)
    # scores: good except in the north and for large amounts
    bad = (region == "north") | (np.nan_to_num(amount) > 1.0)
    noise = np.where(bad, 0.5, 0.15)
    score = np.clip(np.where(y == 1, 0.7, 0.3) + noise * rng.standard_normal(N), 0, 1)
    score = np.round(score, 2)  # ties
    store = blank_store()
    store.register_model("fraud", "v1", "binary", threshold=0.5)
    store.register_model("fraud", "v2", "binary", threshold=0.5)
    training = pa.table(
        {
            "example_id": [f"t{i}" for i in range(500)],
            "ts": _ts(np.arange(500) - 10_000),
            "region": rng.choice(["north", "south", "east"], 500),
            "amount": rng.standard_normal(500),
            "count": rng.integers(0, 5, 500),
            "always": rng.standard_normal(500),
        }
    )
    store.log_features("fraud", training, env="training")
    serving = pa.table(
        {
            "example_id": ids,
            "ts": _ts(seconds),
            "region": pa.array(list(region), pa.string()),
            "amount": pa.array(amount),
            "count": pa.array(count),
            "always": pa.array(always),
        }
    )
    store.log_features("fraud", serving)
    for version, shift in (("v1", 0.0), ("v2", 0.05)):
        s = np.clip(score + shift, 0, 1)
        store.log_predictions(
            "fraud",
            pa.table(
                {
                    "example_id": ids,
                    "ts": _ts(seconds),
                    "prediction": (s >= 0.5).astype(np.int64),
                    "score": s,
                }
            ),
            version=version,
        )
    labeled = rng.random(N) < 0.9
    wrong = rng.random(N) < 0.1  # first labels of some examples are wrong ...
    first = np.where(wrong, 1 - y, y)
    store.log_labels(
        "fraud",
        pa.table(
            {"example_id": ids[labeled], "label": first[labeled], "ts": _ts(seconds[labeled] + 9)}
        ),
    )
    fix = labeled & wrong  # ... and corrected later (the latest wins)
    store.log_labels(
        "fraud",
        pa.table({"example_id": ids[fix], "label": y[fix], "ts": _ts(seconds[fix] + 99)}),
    )
    frame = pd.DataFrame(
        {
            "region": region,
            "amount": amount,
            "count": count,
            "always": always,
            "y": np.where(labeled, y, -1),
            "score": score,
            "seconds": seconds,
        }
    )
    edges = {
        name: np.quantile(training.column(name).to_numpy().astype(float), [0.25, 0.5, 0.75])
        for name in ("amount", "count", "always")
    }
    yield store, frame[frame["y"] >= 0].reset_index(drop=True), edges
    store.close()


def _codes(frame: pd.DataFrame, edges: dict) -> dict[str, np.ndarray]:
    """Slice labels per row as evalstore builds them (bins: x < edge goes left)."""
    out = {}
    region = frame["region"].to_numpy()
    out["region"] = np.array(
        [f"region = '{r}'" if isinstance(r, str) else "region is missing" for r in region]
    )
    for name in ("amount", "count", "always"):
        x = frame[name].to_numpy().astype(float)
        e = np.unique(edges[name])
        index = np.searchsorted(e, x, side="right")
        labels = []
        texts = [format(v, ".6g") for v in e]
        names = [f"(-inf, {texts[0]})"]
        names += [f"[{a}, {b})" for a, b in itertools.pairwise(texts)]
        names += [f"[{texts[-1]}, inf)"]
        for value, i in zip(x, index, strict=True):
            labels.append(f"{name} is missing" if np.isnan(value) else f"{name} in {names[i]}")
        out[name] = np.array(labels)
    return out


def _proportion_oracle(x: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, float]:
    n, rest = mask.sum(), (~mask).sum()
    p_s, p_r, p = x[mask].mean(), x[~mask].mean(), x.mean()
    z = (p_r - p_s) / math.sqrt(p * (1 - p) * (1 / n + 1 / rest))
    return p_s, p_r, z, stats.norm.sf(z)


def test_single_slices_match_numpy_and_scipy(binary):
    store, frame, edges = binary
    table = store.worst_slices(
        "fraud", metric="accuracy", version="v1", pairs=False, include_all=True, min_support=5
    )
    result = table.to_pandas().set_index("slice")
    x = ((frame["score"] >= 0.5).astype(int) == frame["y"]).to_numpy().astype(float)
    codes = _codes(frame, edges)
    expected = {}
    for labels in codes.values():
        for label in np.unique(labels):
            mask = labels == label
            if 5 <= mask.sum() < len(x):
                expected[label] = (mask.sum(), *_proportion_oracle(x, mask))
    assert set(result.index) == set(expected)
    for label, (n, p_s, p_r, z, p) in expected.items():
        row = result.loc[label]
        assert row["n"] == n and row["rest_n"] == len(x) - n
        assert row["value"] == pytest.approx(p_s, abs=1e-12)
        assert row["rest_value"] == pytest.approx(p_r, abs=1e-12)
        assert row["effect"] == pytest.approx(p_r - p_s, abs=1e-12)
        assert row["excess"] == pytest.approx((p_r - p_s) * n, abs=1e-9)
        assert row["statistic"] == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert row["p_value"] == pytest.approx(p, rel=1e-9, abs=1e-15)
    # Benjamini-Hochberg over every tested slice
    q = stats.false_discovery_control(result["p_value"].to_numpy(), method="bh")
    np.testing.assert_allclose(result["q_value"].to_numpy(), q, rtol=1e-12)
    significant = (result["q_value"] <= 0.05) & (result["effect"] > 0)
    assert (result["significant"] == significant).all()
    assert "region = 'north'" in set(result.index[significant])
    # ranks: significant findings by excess, descending
    ranked = table.to_pandas().dropna(subset=["rank"])
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert (np.diff(ranked["excess"].to_numpy()) <= 1e-12).all()


def test_pairs_counts_and_welch_test(binary):
    store, frame, edges = binary
    table = store.worst_slices(
        "fraud", metric="brier", version="v1", features=["region", "amount"],
        include_all=True, min_support=10,
    )  # fmt: skip
    result = table.to_pandas()
    pairs = result[result["level"] == 2].set_index("slice")
    loss = ((frame["score"] - frame["y"]) ** 2).to_numpy()
    codes = _codes(frame, edges)
    expected = {}
    for a in np.unique(codes["region"]):
        for b in np.unique(codes["amount"]):
            mask = (codes["region"] == a) & (codes["amount"] == b)
            if mask.sum() >= 10:
                expected[f"{a} and {b}"] = mask
    assert set(pairs.index) == set(expected)
    for label, mask in expected.items():
        row = pairs.loc[label]
        assert row["n"] == mask.sum()
        assert row["value"] == pytest.approx(loss[mask].mean(), rel=1e-9)
        assert row["rest_value"] == pytest.approx(loss[~mask].mean(), rel=1e-9)
        welch = stats.ttest_ind(loss[mask], loss[~mask], equal_var=False, alternative="greater")
        assert row["statistic"] == pytest.approx(welch.statistic, rel=1e-7)
        assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-6, abs=1e-300)
    assert result["test"].str.startswith("Welch t-test").all()
    # one BH family over both levels
    q = stats.false_discovery_control(result["p_value"].to_numpy(), method="bh")
    np.testing.assert_allclose(result["q_value"].to_numpy(), q, rtol=1e-12)


def test_predicates_round_trip_through_performance_and_drift(binary):
    store, _, _ = binary
    table = store.worst_slices(
        "fraud", version="v1", include_all=True, min_support=20,
        features=["region", "amount", "count", "always"],
    )  # fmt: skip
    assert table.num_rows > 10
    rows = table.to_pylist()
    # every level-1 kind (category, missing, first / middle / last bin) and a few pairs
    picked = [r for r in rows if r["level"] == 1][:: max(1, len(rows) // 12)]
    picked += [r for r in rows if r["level"] == 2][:3]
    picked += [r for r in rows if "missing" in r["slice"]][:2]
    picked += [r for r in rows if "inf)" in r["slice"] and r["level"] == 1][:3]
    for row in picked:
        perf = store.performance(
            "fraud", metrics="accuracy", window="100 years", version="v1", where=row["predicate"]
        )
        assert perf["n"].to_pylist() == [row["n"]], row["slice"]
        assert perf["value"][0].as_py() == pytest.approx(row["value"], abs=1e-12)
        # the same rows again through worst_slices' own where=
    some = table.to_pylist()[:3]
    for row in some:
        # drift: n_analysis counts serving rows of the slice (every example is predicted by
        # v1; `always` has no missing values), labeled or not
        drift = store.drift(
            "fraud", window="100 years", features=["always"], methods=["ks"], version="v1",
            where=row["predicate"],
        )  # fmt: skip
        serving = store.sql(
            f"SELECT count(*) AS n FROM fraud.features WHERE env = 'serving' AND {row['predicate']}"
        )
        assert drift["n_analysis"].to_pylist() == serving["n"].to_pylist()
    nested = store.worst_slices(
        "fraud", version="v1", where=some[0]["predicate"], include_all=True, min_support=1,
        features=["always"], pairs=False,
    )  # fmt: skip
    assert sum(nested["n"].to_pylist()) == some[0]["n"]


def test_number_literals_read_back_exactly():
    import duckdb

    con = duckdb.connect()
    for value in [0.45, 0.1 + 0.2, 1e-7, -3.0, 123456.789, 2.0**60, 1 / 3, 5e-324]:
        assert con.execute(f"SELECT {_number(value)}::DOUBLE").fetchall()[0][0] == value
    con.close()


def test_version_since_until_and_corrections(binary):
    store, frame, _ = binary
    late = frame[frame["seconds"] >= 10 * 86_400]
    result = store.worst_slices(
        "fraud", version="v2", since=BASE.replace(day=12), pairs=False, include_all=True,
        features=["region"], min_support=1, correction="bonferroni",
    ).to_pandas()  # fmt: skip
    assert set(result["version"]) == {"v2"}
    counts = late["region"].fillna("?").value_counts()
    got = dict(zip(result["slice"], result["n"], strict=True))
    for region, n in counts.items():
        label = "region is missing" if region == "?" else f"region = '{region}'"
        assert got[label] == n
    np.testing.assert_allclose(
        result["q_value"], np.minimum(result["p_value"] * len(result), 1.0), rtol=1e-12
    )
    plain = store.worst_slices("fraud", pairs=False, correction="none", include_all=True)
    np.testing.assert_array_equal(plain["q_value"], plain["p_value"])
    assert set(plain["version"].to_pylist()) == {"v2"}  # the latest version by default


def test_top_and_defaults(binary):
    store, _, _ = binary
    found = store.worst_slices("fraud", version="v1", top=2)
    assert found.num_rows <= 2
    assert found["rank"].to_pylist() == list(range(1, found.num_rows + 1))
    assert found["significant"].to_pylist() == [True] * found.num_rows


def test_regression_mae_and_empty_selection():
    store = blank_store()
    store.register_model("price", "v1", "regression")
    rng = np.random.default_rng(3)
    n = 400
    ids = [f"p{i}" for i in range(n)]
    kind = rng.choice(["a", "b"], n)
    label = rng.normal(10, 2, n)
    error = np.where(kind == "a", 3.0, 1.0) * rng.standard_normal(n)
    store.log_features("price", pa.table({"example_id": ids, "kind": kind}))
    store.log_predictions(
        "price", pa.table({"example_id": ids, "prediction": label + error}), version="v1"
    )
    store.log_labels("price", pa.table({"example_id": ids, "label": label}))
    result = store.worst_slices("price", include_all=True).to_pandas().set_index("slice")
    a = kind == "a"
    absolute = np.abs(error)
    welch = stats.ttest_ind(absolute[a], absolute[~a], equal_var=False, alternative="greater")
    row = result.loc["kind = 'a'"]
    assert row["metric"] == "mae" and row["n"] == a.sum()
    assert row["value"] == pytest.approx(absolute[a].mean(), rel=1e-6)
    assert row["p_value"] == pytest.approx(welch.pvalue, rel=1e-5, abs=1e-300)
    assert result.loc["kind = 'a'", "significant"]
    empty = store.worst_slices("price", where="kind = 'zzz'")
    assert empty.num_rows == 0 and "predicate" in empty.column_names
    store.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metric": "roc_auc"}, "not a mean of per-row outcomes"),
        ({"metric": "mae"}, "cannot be searched for a binary model"),
        ({"min_support": 0}, "min_support"),
        ({"min_support": 1.5}, "min_support"),
        ({"alpha": 1}, "alpha"),
        ({"correction": "holm"}, "correction"),
        ({"features": ["nope"]}, "not feature columns"),
        ({"max_pairs": -1}, "max_pairs"),
        ({"top": 0}, "top"),
        ({"where": "nope = 1"}, "unknown column"),
        ({"threshold": 2}, r"threshold=2 must be a number in \[0, 1\]"),
        ({"since": "2026-04-01", "until": "2026-03-01"}, "earlier"),
    ],
)
def test_errors(binary, options, message):
    store, _, _ = binary
    with pytest.raises(InvalidParameterError, match=message):
        store.worst_slices("fraud", **options)


def test_cli_slices(binary, tmp_path):
    from click.testing import CliRunner

    from evalstore.cli import main

    store, _, _ = binary
    path = tmp_path / "s.duckdb"
    store.sql(f"ATTACH '{path}' AS copy")
    catalog = store.sql("SELECT current_database() AS c").to_pylist()[0]["c"]
    store.sql(f"COPY FROM DATABASE {catalog} TO copy")  # blank<N>: no quoting needed
    store.sql("DETACH copy")
    runner = CliRunner()
    result = runner.invoke(
        main, ["-s", str(path), "slices", "-m", "fraud", "-v", "v1", "--no-pairs", "--top", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "region = 'north'" in result.output
    assert "predicates (pass as --where):" in result.output
    assert "#1: " in result.output
    as_json = runner.invoke(
        main, ["-s", str(path), "slices", "-m", "fraud", "--metric", "brier", "-f", "json"]
    )
    assert as_json.exit_code == 0, as_json.output
    bad = runner.invoke(main, ["-s", str(path), "slices", "-m", "fraud", "--metric", "roc_auc"])
    assert bad.exit_code == 1 and "not a mean of per-row outcomes" in bad.output
