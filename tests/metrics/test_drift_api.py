"""Store.drift: what is compared with what, thresholds, corrections, errors, plain SQL.

References (rolling, time range, dataset, validation, version), slices (``where``) and
``since``/``until`` are checked by recomputing KS, W1 and chi-squared with scipy on exactly
the rows each should select. Thresholds are checked against the table in
``evalstore/metrics/drift/univariate.py``; learned ones against a numpy re-implementation of
the chunking;
Bonferroni and Benjamini-Hochberg against numpy. A store with injected drift in 4 of 13
features must flag exactly those features, in exactly the shifted windows. Finally the
macros are called from a plain ``duckdb`` process (no evalstore import) on the file.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import stats

import evalstore
from evalstore.core.values import value_rows
from evalstore.errors import InvalidParameterError, UnknownModelError
from tests.conftest import blank_store

US_PER_DAY = 86_400_000_000
DAY0 = datetime(2024, 3, 4, tzinfo=UTC)
DAY0_US = int(DAY0.timestamp()) * 1_000_000
REF_US = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp()) * 1_000_000
SERVING_DAYS = (0, 1, 3, 4)  # day 2 has no rows: windows are 0..3 over days 0, 1, 3, 4


def close(actual: float | None, expected: float | None, tol: float = 1e-9) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return math.isclose(actual, expected, rel_tol=tol, abs_tol=tol)


def ts_array(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC"))


def day(d: int) -> datetime:
    return datetime.fromtimestamp((DAY0_US + d * US_PER_DAY) / 1e6, tz=UTC)


def window_us(table: pa.Table) -> list[int]:
    return table.column("window_start").cast(pa.int64()).to_pylist()


# --------------------------------------------------------------------------- oracles


def ks_oracle(ref: np.ndarray, ana: np.ndarray) -> tuple[float, float]:
    ref, ana = ref[np.isfinite(ref)], ana[np.isfinite(ana)]
    result = stats.ks_2samp(ref, ana, method="auto")
    return float(result.statistic), float(result.pvalue)


def w1_oracle(ref: np.ndarray, ana: np.ndarray, normed: bool = True) -> float | None:
    ref, ana = ref[np.isfinite(ref)], ana[np.isfinite(ana)]
    w1 = float(stats.wasserstein_distance(ref, ana))
    if not normed:
        return w1
    sd = float(np.std(ref))
    return w1 / sd if sd > 0 else None


def chi2_oracle(ref: np.ndarray, ana: np.ndarray) -> tuple[float, float, int]:
    cats = sorted(set(ref) | set(ana))
    table = np.array([[np.sum(ref == c) for c in cats], [np.sum(ana == c) for c in cats]])
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def linf_oracle(ref: np.ndarray, ana: np.ndarray) -> float:
    cats = sorted(set(ref) | set(ana))
    return max(abs(np.mean(ref == c) - np.mean(ana == c)) for c in cats)


def bh_oracle(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (step-up, as statsmodels' fdr_bh)."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adjusted
    return out


def chunks_of(ts: np.ndarray, ids: np.ndarray, n_chunks: int) -> np.ndarray:
    """Chunk of each row: rank in (ts, example_id) order, (rank * n) // total."""
    order = np.lexsort((ids, ts))
    rank = np.empty(len(ts), dtype=np.int64)
    rank[order] = np.arange(len(ts))
    return (rank * n_chunks) // len(ts)


# --------------------------------------------------------------------------- the store


class Data:
    """All feature rows (one array per column) and prediction rows, as logged."""

    def __init__(self, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        ids, env, dataset, ts, x, y, region, c = [], [], [], [], [], [], [], []

        def add(prefix, n, e, ds, times, x_mean, c_probs):
            ids.extend(f"{prefix}{i:03d}" for i in range(n))
            env.extend([e] * n)
            dataset.extend([ds] * n)
            ts.extend(times)
            x.extend(np.round(rng.normal(x_mean, 1, n), 1))
            y.extend(rng.lognormal(0, 1, n))
            region.extend(rng.choice(["north", "south"], n))
            c.extend(rng.choice(["a", "b", "c"], n, p=c_probs))

        ref_times = REF_US + rng.integers(0, 30, 600) * US_PER_DAY
        add("ta", 200, "training", "tr1", ref_times[:200], 0.0, [0.5, 0.3, 0.2])
        add("tb", 200, "training", "tr2", ref_times[200:400], 0.5, [0.3, 0.3, 0.4])
        add("va", 100, "validation", "va1", ref_times[400:500], 0.2, [0.5, 0.3, 0.2])
        add("vb", 100, "validation", "va2", ref_times[500:], 0.7, [0.2, 0.4, 0.4])
        for d in SERVING_DAYS:
            times = DAY0_US + d * US_PER_DAY + rng.integers(0, 24, 40) * 3_600_000_000
            add(
                f"s{d}_",
                40,
                "serving",
                None,
                times,
                0.25 * d,
                [0.5 - 0.05 * d, 0.3, 0.2 + 0.05 * d],
            )
        self.features = {
            "example_id": np.array(ids),
            "env": np.array(env),
            "dataset": np.array(dataset),
            "ts": np.array(ts, dtype=np.int64),
            "x": np.array(x),
            "y": np.array(y),
            "region": np.array(region),
            "c": np.array(c),
        }
        self.features["x"][rng.choice(len(ids), 30, replace=False)] = np.nan
        serving = np.flatnonzero(self.features["env"] == "serving")
        self.predictions = {}
        for version, chosen in (("v1", serving[::2]), ("v2", serving[::3])):
            self.predictions[version] = {
                "example_id": self.features["example_id"][chosen],
                "ts": self.features["ts"][chosen],
                "score": rng.random(len(chosen)),
            }

    def mask(self, **conditions) -> np.ndarray:
        keep = np.ones(len(self.features["ts"]), dtype=bool)
        for column, value in conditions.items():
            keep &= self.features[column] == value
        return keep

    def day_mask(self, d: int) -> np.ndarray:
        t = self.features["ts"]
        return (t >= DAY0_US + d * US_PER_DAY) & (t < DAY0_US + (d + 1) * US_PER_DAY)

    def log(self, store: evalstore.Store) -> None:
        store.register_model("m", "v1", "binary", training_dataset="tr1", validation_dataset="va1")
        store.register_model("m", "v2", "binary", training_dataset="tr2", validation_dataset="va2")
        f = self.features
        for env in ("training", "validation", "serving"):
            for ds in dict.fromkeys(f["dataset"][f["env"] == env]):
                keep = (f["env"] == env) & (f["dataset"] == ds)
                table = pa.table(
                    {
                        "example_id": f["example_id"][keep],
                        "ts": ts_array(f["ts"][keep]),
                        "x": f["x"][keep],
                        "y": f["y"][keep],
                        "region": f["region"][keep],
                        "c": f["c"][keep],
                    }
                )
                store.log_features("m", table, env=env, dataset=ds)
        for version, p in self.predictions.items():
            store.log_predictions(
                "m",
                pa.table(
                    {"example_id": p["example_id"], "ts": ts_array(p["ts"]), "score": p["score"]}
                ),
                version=version,
            )


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


@pytest.fixture(scope="module")
def shop(data: Data) -> Iterator[evalstore.Store]:
    with blank_store() as store:
        data.log(store)
        yield store


def by_key(table: pa.Table) -> dict:
    rows = table.to_pylist()
    starts = window_us(table)
    return {
        (s, r["feature"], r["method"], r["version"]): r for s, r in zip(starts, rows, strict=True)
    }


def check_windows(result: pa.Table, data: Data, ref_mask_for, ana_masks: dict) -> None:
    """Compare ks (value, p), raw W1 and chi2 of x and c in each window with scipy."""
    rows = by_key(result)
    f = data.features
    for start, ana_mask in ana_masks.items():
        ref_mask = ref_mask_for(start)
        for feature in ("x", "c"):
            methods = ("ks", "wasserstein") if feature == "x" else ("chi2",)
            for method in methods:
                row = rows[(start, feature, method, None)]
                ref, ana = f[feature][ref_mask], f[feature][ana_mask]
                if not ref_mask.any():
                    assert row["value"] is None and row["reason"].startswith("no ")
                    assert row["drifted"] is None and row["n_reference"] == 0
                    continue
                assert row["reason"] is None, (start, feature, method)
                if method == "ks":
                    d, p = ks_oracle(ref, ana)
                    assert close(row["value"], d) and close(row["p_value"], p), (start, row)
                    assert row["n_reference"] == np.isfinite(ref).sum()
                    assert row["n_analysis"] == np.isfinite(ana).sum()
                elif method == "wasserstein":
                    assert close(row["value"], w1_oracle(ref, ana, normed=False))
                else:
                    statistic, p, _ = chi2_oracle(ref, ana)
                    assert close(row["value"], statistic) and close(row["p_value"], p)
                    assert (row["n_reference"], row["n_analysis"]) == (len(ref), len(ana))


RAW = {
    "methods": ["ks", "wasserstein", "chi2"],
    "features": ["x", "c"],
    "wasserstein": "raw",
    "correction": "none",
}


# --------------------------------------------------------------------------- references


def test_training_reference_per_day(shop, data: Data) -> None:
    result = shop.drift("m", **RAW)
    masks = {DAY0_US + d * US_PER_DAY: data.day_mask(d) for d in SERVING_DAYS}
    assert sorted(set(window_us(result))) == list(masks)
    check_windows(result, data, lambda _: data.mask(env="training"), masks)


def test_rolling_reference_uses_previous_non_empty_windows(shop, data: Data) -> None:
    result = shop.drift("m", reference={"previous": 2}, **RAW)
    starts = [DAY0_US + d * US_PER_DAY for d in SERVING_DAYS]
    masks = {s: data.day_mask(d) for s, d in zip(starts, SERVING_DAYS, strict=True)}

    def reference(start: int) -> np.ndarray:
        i = starts.index(start)  # window i vs windows i-2, i-1 (day 2 is no window)
        keep = np.zeros(len(data.features["ts"]), dtype=bool)
        for d in SERVING_DAYS[max(0, i - 2) : i]:
            keep |= data.day_mask(d)
        return keep

    check_windows(result, data, reference, masks)
    first = [
        r for r, s in zip(result.to_pylist(), window_us(result), strict=True) if s == starts[0]
    ]
    assert first and all(r["value"] is None and r["reason"] for r in first)


def test_rolling_reference_over_chunks(shop, data: Data) -> None:
    result = shop.drift("m", reference={"previous": 1}, window={"chunks": 4}, **RAW)
    serving = data.mask(env="serving")
    chunk = np.full(len(serving), -99)
    chunk[serving] = chunks_of(
        data.features["ts"][serving], data.features["example_id"][serving], 4
    )
    starts = [int(data.features["ts"][chunk == k].min()) for k in range(4)]
    assert sorted(set(window_us(result))) == starts
    check_windows(
        result,
        data,
        lambda s: chunk == starts.index(s) - 1,
        {s: chunk == k for k, s in enumerate(starts)},
    )


def test_time_range_reference(shop, data: Data) -> None:
    result = shop.drift("m", reference=(day(0), "2024-03-06"), **RAW)
    ref = data.mask(env="serving") & (data.features["ts"] < DAY0_US + 2 * US_PER_DAY)
    masks = {DAY0_US + d * US_PER_DAY: data.day_mask(d) for d in SERVING_DAYS}
    check_windows(result, data, lambda _: ref, masks)


@pytest.mark.parametrize(
    ("reference", "version", "ref_conditions"),
    [
        ({"dataset": "tr2"}, None, {"dataset": "tr2"}),
        ("validation", None, {"env": "validation"}),
        ("validation", "v2", {"env": "validation", "dataset": "va2"}),
        ("training", "v1", {"env": "training", "dataset": "tr1"}),
    ],
)
def test_dataset_validation_and_version_references(
    shop, data: Data, reference, version, ref_conditions
) -> None:
    result = shop.drift("m", reference=reference, version=version, **RAW)
    serving = data.mask(env="serving")
    if version is not None:  # only the examples that version predicted
        serving &= np.isin(data.features["example_id"], data.predictions[version]["example_id"])
    masks = {DAY0_US + d * US_PER_DAY: serving & data.day_mask(d) for d in SERVING_DAYS}
    check_windows(result, data, lambda _: data.mask(**ref_conditions), masks)


def test_version_keeps_its_own_scores_only(shop, data: Data) -> None:
    both = shop.drift("m", reference=(day(0), day(1)), features=["score"], methods=["ks"])
    assert set(both.column("version").to_pylist()) == {"v1", "v2"}
    result = shop.drift(
        "m",
        reference=(day(0), day(1)),
        version="v2",
        features=["score"],
        methods=["ks"],
        correction="none",
    )
    p = data.predictions["v2"]
    ref = p["score"][(p["ts"] >= DAY0_US) & (p["ts"] < DAY0_US + US_PER_DAY)]
    rows = result.to_pylist()
    assert {r["version"] for r in rows} == {"v2"} and len(rows) == len(SERVING_DAYS)
    for row, start in zip(rows, window_us(result), strict=True):
        ana = p["score"][(p["ts"] >= start) & (p["ts"] < start + US_PER_DAY)]
        d, pv = ks_oracle(ref, ana)
        assert close(row["value"], d) and close(row["p_value"], pv)


SLICES = {
    "region = 'north'": lambda f: f["region"] == "north",
    "region <> 'north' AND y > 1": lambda f: (f["region"] != "north") & (f["y"] > 1),
}


@pytest.mark.parametrize("where", list(SLICES))
def test_where_slice_restricts_both_sides(shop, data: Data, where: str) -> None:
    result = shop.drift("m", where=where, **RAW)
    keep = SLICES[where](data.features)
    masks = {DAY0_US + d * US_PER_DAY: keep & data.day_mask(d) for d in SERVING_DAYS}
    check_windows(result, data, lambda _: keep & data.mask(env="training"), masks)


def test_since_until_bound_the_analysis(shop, data: Data) -> None:
    result = shop.drift("m", since=day(1), until="2024-03-08T00:00:00+00:00", **RAW)
    masks = {DAY0_US + d * US_PER_DAY: data.day_mask(d) for d in (1, 3)}
    assert sorted(set(window_us(result))) == list(masks)
    check_windows(result, data, lambda _: data.mask(env="training"), masks)


# --------------------------------------------------------------------------- thresholds

DEFAULTS = {
    "ks": (None, 0.05),
    "chi2": (None, 0.05),
    "psi": (None, 0.2),
    "js": (None, 0.1),
    "kl": (None, 0.1),
    "hellinger": (None, 0.1),
    "wasserstein": (None, 0.1),
    "d1": (None, 0.2),
    "zscore": (-3.0, 3.0),
    "linf": (None, 0.1),
    "unseen": (None, 0.0),
}
ALL_METHODS = list(DEFAULTS)


def expected_drifted(row: dict) -> bool | None:
    if row["value"] is None or row["threshold"] is None:
        return None
    if row["method"] in ("ks", "chi2"):
        return row["p_value"] < row["threshold"]
    if row["threshold_low"] is not None:
        return row["value"] < row["threshold_low"] or row["value"] > row["threshold"]
    return row["value"] > row["threshold"]


def test_default_thresholds(shop) -> None:
    rows = shop.drift("m", methods=ALL_METHODS, reference={"previous": 1}).to_pylist()
    assert {r["method"] for r in rows} == set(ALL_METHODS)
    assert any(r["drifted"] for r in rows) and any(r["drifted"] is False for r in rows)
    for row in rows:
        low, high = DEFAULTS[row["method"]]
        assert (row["threshold_low"], row["threshold"]) == (low, high), row["method"]
        assert row["drifted"] == expected_drifted(row), row
        source = row["threshold_source"]
        if row["method"] in ("ks", "chi2"):
            assert source.startswith("p-value < 0.05 (Bonferroni correction over ")
        elif low is not None:
            assert source == "fixed range [-3.0, 3.0]"
        else:
            assert source == f"fixed: value > {high}"
    nulls = [r for r in rows if r["value"] is None]
    assert nulls and all(r["drifted"] is None and r["reason"] for r in nulls)


def test_raw_wasserstein_has_no_default_threshold(shop) -> None:
    rows = shop.drift("m", methods=["wasserstein"], wasserstein="raw").to_pylist()
    assert rows and all(r["value"] is not None for r in rows if r["feature"] == "x")
    assert all(r["threshold"] is None and r["drifted"] is None for r in rows)
    rows = shop.drift(
        "m", methods=["wasserstein"], wasserstein="raw", thresholds={"wasserstein": 0.3}
    ).to_pylist()
    assert all(r["drifted"] == expected_drifted(r) for r in rows)
    assert {r["threshold"] for r in rows} == {0.3}


def test_fixed_and_range_thresholds(shop) -> None:
    thresholds = {"psi": 0.05, "ks": 0.2, "zscore": (-1, 0.5), "linf": [0.0, 0.05], "chi2": 0.5}
    rows = shop.drift(
        "m", methods=["psi", "ks", "zscore", "linf", "chi2"], thresholds=thresholds, alpha=0.01
    ).to_pylist()
    for row in rows:
        limit = thresholds[row["method"]]
        low, high = limit if isinstance(limit, tuple | list) else (None, limit)
        assert (row["threshold_low"], row["threshold"]) == (low, high)
        assert row["drifted"] == expected_drifted(row)
        if row["method"] in ("zscore", "linf"):
            assert row["threshold_source"] == f"fixed range [{float(low)}, {float(high)}]"
    assert {r["drifted"] for r in rows} >= {True, False}
    # alpha sets the level of p-value methods without their own threshold
    rows = shop.drift("m", methods=["ks"], alpha=0.01).to_pylist()
    assert {r["threshold"] for r in rows} == {0.01}


@pytest.mark.parametrize(("chunks", "k"), [(10, 3.0), (5, 1.5)])
def test_learned_thresholds(shop, data: Data, chunks: int, k: float) -> None:
    result = shop.drift(
        "m",
        features=["x", "c"],
        methods=["wasserstein", "linf"],
        thresholds={"wasserstein": "learned", "linf": "learned"},
        learn_chunks=chunks,
        learn_k=k,
    )
    f = data.features
    train = data.mask(env="training")
    chunk = chunks_of(f["ts"][train], f["example_id"][train], chunks)
    expected = {}
    for feature, method in (("x", "wasserstein"), ("c", "linf")):
        values = f[feature][train]
        scores = []
        for j in range(chunks):
            ref, ana = values[chunk != j], values[chunk == j]
            scores.append(w1_oracle(ref, ana) if method == "wasserstein" else linf_oracle(ref, ana))
        scores = np.array(scores)
        expected[method] = (scores.mean() - k * scores.std(), scores.mean() + k * scores.std())
    for row in result.to_pylist():
        low, high = expected[row["method"]]
        assert close(row["threshold_low"], low) and close(row["threshold"], high), row
        assert row["threshold_source"] == f"learned: mean ± {k} sd over {chunks} reference chunks"
        assert row["drifted"] == expected_drifted(row)


def correction_store() -> evalstore.Store:
    """Six numeric features (x0, x1, x3 identical: tied p-values) and two categorical."""
    rng = np.random.default_rng(21)
    store = blank_store()
    store.register_model("k", "v1", "binary")
    ref = rng.normal(size=300)
    cats = rng.choice(["a", "b"], 300)
    store.log_features(
        "k",
        pa.table(
            {
                "example_id": np.arange(300),
                **{f"x{i}": ref for i in range(6)},
                "c0": cats,
                "c1": cats,
            }
        ),
        env="training",
    )
    for d, shifts in enumerate([(0.3, 0.3, 0.1, 0.3, 0.0, 0.5), (0.0, 0.0, 0.4, 0.0, 0.2, 0.1)]):
        base = rng.normal(size=60)
        times = ts_array(np.full(60, DAY0_US + d * US_PER_DAY))
        store.log_features(
            "k",
            pa.table(
                {
                    "example_id": np.arange(60) + 1000 * (d + 1),
                    "ts": times,
                    **{f"x{i}": base + s for i, s in enumerate(shifts)},
                    "c0": rng.choice(["a", "b"], 60, p=[0.3, 0.7]),
                    "c1": rng.choice(["a", "b"], 60),
                }
            ),
        )
    return store


@pytest.mark.parametrize("correction", ["bonferroni", "bh", "none"])
def test_corrections(correction: str) -> None:
    with correction_store() as store:
        raw = store.drift("k", methods=["ks", "chi2"], correction="none").to_pylist()
        adjusted = store.drift("k", methods=["ks", "chi2"], correction=correction).to_pylist()
    assert [r["feature"] for r in raw] == [r["feature"] for r in adjusted]
    for start in {r["window_start"] for r in raw}:
        for method in ("ks", "chi2"):
            idx = [
                i for i, r in enumerate(raw) if r["window_start"] == start and r["method"] == method
            ]
            p = np.array([raw[i]["p_value"] for i in idx])
            m = len(p)
            expected = {"none": p, "bonferroni": np.minimum(1, p * m), "bh": bh_oracle(p)}
            for i, e in zip(idx, expected[correction], strict=True):
                row = adjusted[i]
                assert close(row["p_value"], float(e)), (correction, row["feature"])
                assert row["drifted"] == (row["p_value"] < 0.05)
                name = {"bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg", "none": "no"}[
                    correction
                ]
                assert row["threshold_source"] == (
                    f"p-value < 0.05 ({name} correction over {m} tests)"
                )
    ties = [r["p_value"] for r in adjusted if r["feature"] in ("x0", "x1", "x3")]
    assert len(set(ties)) == 2  # tied raw p-values get one adjusted value per window


# --------------------------------------------------------------------------- injected drift


def test_injected_drift_flags_exactly_the_shifted_features_and_windows() -> None:
    """4 of 13 features shift from day 3 on; default methods and thresholds find exactly those.

    Without drift each (window, p-value method) family still has a 5% false-alarm rate after
    Bonferroni, by design, so the seed is fixed; the shifted cells are flagged by a wide
    margin (p-values below 1e-10, PSI far above 0.2).
    """
    rng = np.random.default_rng(2024)
    numeric = [f"n{i}" for i in range(10)]
    categorical = ["k0", "k1", "k2"]
    probs = {"k0": [0.5, 0.3, 0.2], "k1": [0.4, 0.4, 0.2], "k2": [0.25, 0.25, 0.5]}

    def batch(n: int, shifted: bool) -> dict:
        cols = {f: rng.normal(10 + i, 1 + i / 10, n) for i, f in enumerate(numeric)}
        cols.update({f: rng.choice(["a", "b", "c"], n, p=probs[f]) for f in categorical})
        if shifted:
            cols["n0"] = cols["n0"] + 1.0  # mean shift of one sd
            cols["n5"] = 15 + (cols["n5"] - 15) * 2.5  # scale change
            cols["k0"] = rng.choice(["a", "b", "c"], n, p=[0.2, 0.3, 0.5])  # mix change
            new = rng.random(n) < 0.1
            cols["k1"] = np.where(new, "zz", cols["k1"])  # a category never seen
        return cols

    injected = {"n0", "n5", "k0", "k1"}
    with blank_store() as store:
        store.register_model("d", "v1", "binary")
        ref = batch(4000, False)
        store.log_features("d", pa.table({"example_id": np.arange(4000), **ref}), env="training")
        for d in range(6):
            cols = batch(1500, shifted=d >= 3)
            times = ts_array(DAY0_US + d * US_PER_DAY + rng.integers(0, US_PER_DAY, 1500))
            store.log_features(
                "d",
                pa.table({"example_id": np.arange(1500) + 10_000 * (d + 1), "ts": times, **cols}),
            )
        result = store.drift("d")
    rows = result.to_pylist()
    starts = window_us(result)
    assert set(r["method"] for r in rows) == {"ks", "chi2", "psi", "js", "wasserstein", "unseen"}
    assert all(r["drifted"] is not None for r in rows)
    flagged = {
        (r["feature"], (s - DAY0_US) // US_PER_DAY)
        for r, s in zip(rows, starts, strict=True)
        if r["drifted"]
    }
    assert {f for f, _ in flagged} == injected
    assert flagged == {(f, d) for f in injected for d in (3, 4, 5)}
    shifted = {
        (r["feature"], r["method"])
        for r, s in zip(rows, starts, strict=True)
        if r["drifted"] and s >= DAY0_US + 3 * US_PER_DAY
    }
    for feature in ("n0", "n5"):
        assert {(feature, m) for m in ("ks", "psi", "js", "wasserstein")} <= shifted
    assert {("k0", "chi2"), ("k0", "psi"), ("k1", "chi2"), ("k1", "unseen")} <= shifted
    assert ("k0", "unseen") not in shifted


# --------------------------------------------------------------------------- errors

T0, T1 = "2024-03-05", "2024-03-04"
ERRORS = [
    ({"methods": ["bogus"]}, r"unknown \['bogus'\]"),
    ({"methods": []}, "choose from"),
    ({"binning": "equal"}, "binning='equal' is not one of"),
    ({"bins": 0}, "bins=0 must be a positive int"),
    ({"bins": 2.5}, "bins=2.5 must be a positive int"),
    ({"bins": True}, "bins=True must be a positive int"),
    ({"binning": "edges"}, "needs edges="),
    ({"binning": "edges", "edges": [0.0, math.nan]}, "needs edges="),
    ({"binning": "edges", "edges": ["a"]}, "needs edges="),
    ({"edges": [1.0, 2.0]}, "only used with binning='edges'"),
    ({"zero_bins": "drop"}, "zero_bins='drop'"),
    ({"epsilon": 0}, "epsilon=0 must be a number in"),
    ({"epsilon": 1.5}, "epsilon=1.5 must be"),
    ({"log_base": 10}, "log_base=10 must be 'e' or 2"),
    ({"js": "jsd"}, "js='jsd' is not"),
    ({"wasserstein": "scaled"}, "wasserstein='scaled' is not"),
    ({"correction": "holm"}, "correction='holm' is not one of"),
    ({"alpha": 0}, "alpha=0 must be a number in"),
    ({"alpha": 1.0}, "alpha=1.0 must be"),
    ({"thresholds": {"bogus": 1}}, "unknown method 'bogus'"),
    ({"thresholds": {"ks": "learned"}}, "p-value methods take a significance level"),
    ({"thresholds": {"psi": "high"}}, "use a number, a \\(low, high\\) range or 'learned'"),
    ({"thresholds": {"psi": (0.3, 0.1)}}, "use a number"),
    ({"thresholds": {"psi": (1, 2, 3)}}, "use a number"),
    ({"thresholds": {"psi": "learned"}, "learn_chunks": 1}, "learn_chunks=1 must be an int"),
    ({"thresholds": {"psi": "learned"}, "reference": {"previous": 1}}, "fixed reference"),
    ({"window": 0}, "rows per chunk must be at least 1"),
    ({"window": "banana"}, "is not an interval"),
    ({"window": "-1 day"}, "must be a positive interval"),
    ({"window": {"chunks": 0}}, "needs a positive int"),
    ({"window": 2.5}, "is not understood"),
    ({"window": {"rows": 3}}, "is not understood"),
    ({"reference": "production"}, "is not understood"),
    ({"reference": {"previous": 0}}, "needs a positive int n"),
    ({"reference": {"dataset": 3}}, "needs a string tag"),
    ({"reference": (T0, T1)}, "time range .* is empty"),
    ({"reference": ("last week", T0)}, "is not an ISO-8601 time"),
    ({"since": "yesterday"}, "since='yesterday' is not an ISO-8601 time"),
    ({"features": ["nope"]}, r"features \['nope'\] are not analysable"),
    ({"where": "x IN (SELECT 1)"}, "may not contain statements or subqueries"),
    ({"where": "nope > 1"}, "unknown column 'nope'"),
    ({"where": "m.x > 1"}, "unknown column"),
    ({"where": "read_csv('/etc/passwd') IS NOT NULL"}, "may not call"),
    ({"where": "x > 0; DROP TABLE m.features"}, "single predicate"),
    ({"where": "DROP TABLE m.features"}, "single predicate"),
    ({"where": "SET threads = 1"}, "single predicate"),
    ({"where": "ATTACH 'other.duckdb'"}, "single predicate"),
    ({"where": "  "}, "non-empty SQL predicate"),
    ({"where": "x >"}, "is not valid SQL"),
]


@pytest.mark.parametrize(("kwargs", "match"), ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_parameter_errors(shop, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        shop.drift("m", **kwargs)


def test_unknown_model_or_version(shop) -> None:
    with pytest.raises(UnknownModelError, match="is not registered"):
        shop.drift("nobody")
    with pytest.raises(UnknownModelError, match="has no version 'v9'"):
        shop.drift("m", version="v9")


# --------------------------------------------------------------------------- plain duckdb

PLAIN = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
common = ("'m.{rel}', 'training', NULL, NULL, NULL, 'serving', NULL, NULL, NULL, '1 day', "
          "NULL, NULL, 0, ")
# store.drift = the building-block macros + evalstore.reference_reason (an output without
# reference rows says why: the training set has no predictions)
head = ("SELECT epoch_us(window_start) AS start, * EXCLUDE (window_start, window_end) "
        "REPLACE (evalstore.reference_reason(feature, reason, n_reference, 'training') "
        "AS reason) FROM ")
numeric = con.sql(head + "evalstore.drift_numeric(" + common.format(rel="numeric_values")
                  + "'quantile', 10, NULL, false, 'epsilon', 0.0001, exp(1), 'distance')")
categorical = con.sql(head + "evalstore.drift_categorical("
                      + common.format(rel="category_values")
                      + "'epsilon', 0.0001, exp(1), 'distance', true)")
out = {"columns": numeric.columns, "rows": []}
for relation in (numeric, categorical):
    names = relation.columns
    out["rows"] += [dict(zip(names, row)) for row in relation.fetchall()]
out["evalstore_imported"] = "evalstore" in sys.modules
con.close()
print(json.dumps(out, default=str))
"""


def test_macros_work_from_plain_duckdb(tmp_path, data: Data) -> None:
    path = tmp_path / "plain.duckdb"
    methods = [
        "ks",
        "wasserstein",
        "zscore",
        "psi",
        "kl",
        "js",
        "hellinger",
        "d1",
        "chi2",
        "linf",
        "unseen",
    ]
    with evalstore.open(path) as store:
        data.log(store)
        expected = store.drift("m", methods=methods)
        starts = window_us(expected)
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(done.stdout)
    assert not out["evalstore_imported"]
    assert "p_value" not in out["columns"]
    got = {
        (r["start"], r["feature"], r["method"], r["version"], r["variant"]): r for r in out["rows"]
    }
    compared = 0
    for row, start in zip(expected.to_pylist(), starts, strict=True):
        plain = got[(start, row["feature"], row["method"], row["version"], row["variant"])]
        assert close(plain["value"], row["value"]), row
        assert plain["reason"] == row["reason"]
        assert (plain["n_reference"], plain["n_analysis"]) == (
            row["n_reference"],
            row["n_analysis"],
        )
        compared += 1
    assert compared == len(expected) > 100
    # dof (a macro column) as scipy's chi2_contingency has it
    f = data.features
    for row in out["rows"]:
        if row["method"] == "chi2" and row["feature"] == "c":
            ana = f["c"][(f["ts"] >= row["start"]) & (f["ts"] < row["start"] + US_PER_DAY)]
            statistic, _, dof = chi2_oracle(f["c"][data.mask(env="training")], ana)
            assert row["dof"] == dof and close(row["value"], statistic)


def test_value_rows_of_chosen_features(shop) -> None:
    """The long-format rows drift reads for a feature subset are exactly those rows of the
    model's value view (so a numeric-only call never unpivots the categorical columns)."""
    con = shop.connection

    def rows(sql: str) -> list[tuple]:
        return sorted(con.execute(f"SELECT feature, example_id, value FROM ({sql})").fetchall())

    view = "SELECT * FROM m.category_values"
    assert rows(value_rows(con, "m", "VARCHAR")) == rows(view)
    chosen = rows(value_rows(con, "m", "VARCHAR", ["c", "x", "prediction"]))
    assert {f for f, _, _ in chosen} == {"c", "prediction"}
    assert chosen == rows(f"{view} WHERE feature IN ('c', 'prediction')")
    assert rows(value_rows(con, "m", "VARCHAR", ["x", "score"])) == []
    numeric = rows(value_rows(con, "m", "DOUBLE", ["score", "y"]))
    assert numeric == rows("SELECT * FROM m.numeric_values WHERE feature IN ('score', 'y')")
    assert len(numeric) > 0


def test_unbinned_call_gives_the_binned_calls_rows(shop) -> None:
    """A call without a binned method scores its cells without evalstore.binned_scores
    (numeric.UNBINNED_ROWS_SQL); its rows equal those of the same call with a binned method
    added (numeric.ROWS_SQL), column for column, with daily and rolling references."""
    for reference in ("training", {"previous": 1}):
        unbinned = ["ks", "wasserstein", "zscore", "cramer_von_mises", "energy_distance"]
        alone = shop.drift("m", reference=reference, methods=unbinned)
        with_psi = shop.drift("m", reference=reference, methods=[*unbinned, "psi", "js"])
        keep = pc.is_in(with_psi.column("method"), pa.array(unbinned))
        assert alone.num_rows > 0
        assert alone.to_pylist() == with_psi.filter(keep).to_pylist()
