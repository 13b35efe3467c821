"""Univariate drift statistics (sql/drift.sql via Store.drift) against scipy/numpy oracles.

Every method is recomputed here from the definition in the comments of ``sql/drift.sql``:
KS (statistic and p-value) with ``scipy.stats.ks_2samp(method='auto')``, W1 with
``scipy.stats.wasserstein_distance``, the binned scores (PSI, KL, JS, Hellinger, D1) with a
numpy histogram over edges built as documented (reference quantiles, ``numpy``'s Sturges
and Doane, fixed counts, given edges; bins ``[e_i, e_i+1)``, the last inner one closed, plus
two open-ended outer bins), chi-squared with ``scipy.stats.chi2_contingency``. Data include
heavy ties, a very skewed feature, NaN/±inf (ignored: the oracle sees finite values only),
constant references and windows, a one-row window, an empty window and an empty reference.
Each window is compared with the oracle on exactly that window's rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

import evalstore
from evalstore.core import udfs
from tests.conftest import blank_store

US_PER_DAY = 86_400_000_000
US_PER_MINUTE = 60_000_000
DAY0_US = int(datetime(2024, 3, 4, tzinfo=UTC).timestamp()) * 1_000_000
REF_US = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp()) * 1_000_000
NUMERIC_METHODS = ["ks", "wasserstein", "zscore", "psi", "kl", "js", "hellinger", "d1"]
CATEGORICAL_METHODS = ["chi2", "linf", "unseen", "psi", "js", "hellinger"]
NO_REFERENCE = "no finite reference values"
# a (start, end) reference of serving rows, years before any row of the fixtures
EMPTY_REFERENCE = ("2000-01-01", "2000-01-02")
NO_WINDOW = "no finite values in the window"


def close(actual: float | None, expected: float | None, tol: float = 1e-9) -> bool:
    if actual is None or expected is None:
        return actual is None and expected is None
    return math.isclose(actual, expected, rel_tol=tol, abs_tol=tol)


def ts_array(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC"))


def result_rows(table: pa.Table) -> list[dict]:
    """Rows of a drift result with window_start/window_end as epoch microseconds."""
    for name in ("window_start", "window_end"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).cast(pa.int64()))
    return table.to_pylist()


# --------------------------------------------------------------------------- oracles


def finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def oracle_edges(ref: np.ndarray, ana: np.ndarray, cfg: dict) -> np.ndarray:
    """Bin edges by the definitions of drift_numeric / bin_edges / quantile_edges."""
    binning, bins = cfg.get("binning", "quantile"), cfg.get("bins", 10)
    if binning == "edges":
        return np.unique(np.asarray(cfg["edges"], dtype=float))
    if binning == "quantile":
        inner = [np.quantile(ref, i / bins) for i in range(1, bins)]
        return np.unique(np.array([ref.min(), *inner, ref.max()]))
    sample = np.concatenate([ref, ana]) if cfg.get("pooled") else ref
    if sample.min() == sample.max():
        return np.array([sample.min()])  # documented: a single edge when hi = lo
    if binning == "fixed":
        return np.linspace(sample.min(), sample.max(), bins + 1)
    return np.histogram_bin_edges(sample, bins=binning)


def oracle_histogram(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Counts in (-inf, e0), [e0, e1), ..., [e_k-2, e_k-1] (closed), (e_k-1, inf)."""
    if len(e) == 1:
        return np.array([(x < e[0]).sum(), (x == e[0]).sum(), (x > e[0]).sum()])
    inner = [
        ((x >= e[i]) & ((x <= e[i + 1]) if i == len(e) - 2 else (x < e[i + 1]))).sum()
        for i in range(len(e) - 1)
    ]
    return np.array([(x < e[0]).sum(), *inner, (x > e[-1]).sum()])


def oracle_scores(p: np.ndarray, q: np.ndarray, cfg: dict) -> dict[str, float]:
    """psi, kl, js, hellinger, d1 as defined at evalstore.binned_scores."""
    eps, base = cfg.get("epsilon", 1e-4), {"e": math.e, 2: 2.0}[cfg.get("log_base", "e")]
    keep = (p > 0) | (q > 0)
    p, q = p[keep], q[keep]
    if cfg.get("zero_bins", "epsilon") == "leftover":
        both = (p > 0) & (q > 0)
        gp, gq = p[both], q[both]
        if (~both).any():
            gp, gq = np.append(gp, p[~both].sum()), np.append(gq, q[~both].sum())
    else:
        gp, gq = p.copy(), q.copy()
    gp, gq = np.where(gp == 0, eps, gp), np.where(gq == 0, eps, gq)
    js_distance = float(jensenshannon(p, q, base=base))
    m = (p + q) / 2
    jsd = (np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / 2 / math.log(base)
    assert math.isclose(js_distance**2, jsd, rel_tol=1e-9, abs_tol=1e-12)  # the definition
    kl = float(np.sum(gp * np.log(gp / gq)) / math.log(base))
    if len(gp) == len(p) and (gp == p).all() and (gq == q).all():  # scipy's entropy applies
        assert math.isclose(kl, stats.entropy(p, q, base=base), rel_tol=1e-9, abs_tol=1e-12)
    return {
        "psi": float(np.sum((gq - gp) * np.log(gq / gp))),
        "kl": kl,
        "js": js_distance**2 if cfg.get("js") == "divergence" else js_distance,
        "hellinger": float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / math.sqrt(2)),
        "d1": float(np.sum(np.abs(p - q))),
    }


def numeric_oracle(ref: np.ndarray, ana: np.ndarray, cfg: dict) -> dict:
    """Expected value (or None) and reason of every numeric method, plus the KS p-value."""
    ref, ana = finite(ref), finite(ana)
    out: dict = {"n_reference": len(ref), "n_analysis": len(ana)}
    if len(ref) == 0 or len(ana) == 0:
        reason = NO_REFERENCE if len(ref) == 0 else NO_WINDOW
        out.update({m: (None, reason) for m in NUMERIC_METHODS}, ks_p=None)
        return out
    edges = oracle_edges(ref, ana, cfg)
    p = oracle_histogram(ref, edges) / len(ref)
    q = oracle_histogram(ana, edges) / len(ana)
    out.update({m: (v, None) for m, v in oracle_scores(p, q, cfg).items()})
    ks = stats.ks_2samp(ref, ana, method="auto")
    out["ks"], out["ks_p"] = (float(ks.statistic), None), float(ks.pvalue)
    w1, sd = stats.wasserstein_distance(ref, ana), float(np.std(ref))
    if cfg.get("wasserstein", "normed") == "raw":
        out["wasserstein"] = (w1, None)
    elif sd > 0:
        out["wasserstein"] = (w1 / sd, None)
    else:
        out["wasserstein"] = (None, "constant reference: standard deviation is 0")
    sd1 = float(np.std(ref, ddof=1)) if len(ref) > 1 else 0.0
    if sd1 > 0:
        out["zscore"] = ((ana.mean() - ref.mean()) / (sd1 / math.sqrt(len(ana))), None)
    else:
        out["zscore"] = (None, "reference standard deviation is 0 or undefined")
    return out


def categorical_oracle(ref: list, ana: list, yates: bool = True) -> dict:
    ref = [v for v in ref if v is not None]
    ana = [v for v in ana if v is not None]
    out: dict = {"n_reference": len(ref), "n_analysis": len(ana), "dof": None, "chi2_p": None}
    if not ref or not ana:
        reason = "no reference values" if not ref else "no values in the window"
        out.update({m: (None, reason) for m in CATEGORICAL_METHODS})
        return out
    cats = sorted(set(ref) | set(ana))
    r = np.array([ref.count(c) for c in cats])
    a = np.array([ana.count(c) for c in cats])
    p, q = r / r.sum(), a / a.sum()
    scores = oracle_scores(p, q, {})
    out.update({m: (scores[m], None) for m in ("psi", "js", "hellinger")})
    out["linf"] = (float(np.max(np.abs(p - q))), None)
    out["unseen"] = (float(a[r == 0].sum() / a.sum()), None)
    if len(cats) < 2:
        out["chi2"] = (None, "a single category: chi-squared undefined")
        out["dof"] = 0
    else:
        result = stats.chi2_contingency(np.array([r, a]), correction=yates)
        out["chi2"] = (float(result.statistic), None)
        out["chi2_p"], out["dof"] = float(result.pvalue), int(result.dof)
    return out


def chunk_index(ts: np.ndarray, ids: np.ndarray, window: int | dict) -> np.ndarray:
    """Chunk of each row as drift_windows assigns it: rows ordered by (ts, example_id)."""
    order = np.lexsort((ids, ts))
    rank = np.empty(len(ts), dtype=np.int64)
    rank[order] = np.arange(len(ts))
    if isinstance(window, int):
        return rank // window
    return (rank * window["chunks"]) // len(ts)


# --------------------------------------------------------------------------- numeric data


def make_numeric(seed: int = 7) -> tuple[dict, dict]:
    """Reference (training) and serving columns; serving days hold 50, 1, 70 and 30 rows."""
    rng = np.random.default_rng(seed)

    def columns(n: int, shift: float) -> dict[str, np.ndarray]:
        dirty = rng.normal(shift, 1, n)
        spots = rng.choice(n, max(1, n // 5), replace=False)
        dirty[spots] = rng.choice([np.nan, np.inf, -np.inf], len(spots))
        return {
            "normal": rng.normal(shift, 1, n),
            "tied": rng.integers(0, 4, n).astype(float),
            "rounded": np.round(rng.normal(shift, 1, n), 1),
            "skewed": rng.lognormal(0, 3, n),
            "dirty": dirty,
            "const_ref": rng.normal(2.0, 1.0, n),
            "const_win": rng.integers(0, 3, n).astype(float),
            "sparse": rng.normal(shift, 2, n),
            "ref_nan": rng.normal(0, 1, n),
        }

    n_ref = 240
    ref = columns(n_ref, 0.0)
    ref["const_ref"][:] = 2.0
    ref["ref_nan"][:] = np.nan
    ref["ref_nan"][:5] = np.inf
    ref["example_id"] = np.array([f"r{i:04d}" for i in range(n_ref)])
    ref["ts"] = REF_US + rng.integers(0, 20, n_ref) * US_PER_DAY

    parts = []
    for day, n in enumerate([50, 1, 70, 30]):
        part = columns(n, 0.4 * day)
        if day == 0:
            part["const_win"][:] = 1.0  # constant window, a value the reference holds
        if day == 2:
            part["sparse"][:] = np.nan  # an empty window for this feature
            part["sparse"][: n // 2] = np.inf
        # heavy ties in ts so chunk boundaries fall inside a tie, broken by example_id
        part["ts"] = DAY0_US + day * US_PER_DAY + rng.integers(0, 12, n) * 60 * US_PER_MINUTE
        parts.append(part)
    ana = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    ana["example_id"] = np.array([f"s{i:04d}" for i in rng.permutation(len(ana["ts"]))])
    return ref, ana


NUMERIC_FEATURES = [
    "normal",
    "tied",
    "rounded",
    "skewed",
    "dirty",
    "const_ref",
    "const_win",
    "sparse",
    "ref_nan",
]


def to_table(columns: dict) -> pa.Table:
    data = {k: (ts_array(v) if k == "ts" else v) for k, v in columns.items()}
    return pa.table(data)


@pytest.fixture(scope="module")
def numeric() -> Iterator[tuple[evalstore.Store, dict, dict]]:
    ref, ana = make_numeric()
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", to_table(ref), env="training")
        store.log_features("m", to_table(ana))
        yield store, ref, ana


def check_numeric(rows: list[dict], ref: dict, ana: dict, windows: dict, cfg: dict) -> int:
    """Compare every result row with the oracle on its window; return the number checked.

    ``windows`` maps (window_start, window_end) to the boolean mask of that window's rows.
    """
    checked = 0
    seen = set()
    oracles: dict[tuple, dict] = {}  # one oracle per (feature, window) serves its 8 methods
    for row in rows:
        feature, method = row["feature"], row["method"]
        window = (row["window_start"], row["window_end"])
        if (feature, window) not in oracles:
            oracles[feature, window] = numeric_oracle(
                ref[feature], ana[feature][windows[window]], cfg
            )
        expected = oracles[feature, window]
        value, reason = expected[method]
        where = (feature, method, row["window_start"], cfg)
        assert close(row["value"], value), (*where, row["value"], value)
        assert row["reason"] == reason, (*where, row["reason"])
        assert row["n_reference"] == expected["n_reference"], where
        assert row["n_analysis"] == expected["n_analysis"], where
        assert row["kind"] == "numeric"
        if method == "ks":
            assert close(row["p_value"], expected["ks_p"]), (*where, row["p_value"])
        else:
            assert row["p_value"] is None
        if value is None:
            assert row["drifted"] is None, where
        seen.add((feature, method, row["window_start"]))
        checked += 1
    assert len(seen) == len(rows) == len(windows) * len(NUMERIC_FEATURES) * len(NUMERIC_METHODS)
    return checked


def day_windows(ana: dict) -> dict:
    days = (ana["ts"] - DAY0_US) // US_PER_DAY
    return {
        (DAY0_US + d * US_PER_DAY, DAY0_US + (d + 1) * US_PER_DAY): days == d
        for d in np.unique(days)
    }


CONFIGS = [
    {},
    {"bins": 4, "zero_bins": "leftover"},
    {"bins": 1},
    {"bins": 25, "epsilon": 1e-6},
    {"binning": "sturges"},
    {"binning": "sturges", "pooled": True, "log_base": 2, "js": "divergence"},
    {"binning": "doane", "wasserstein": "raw"},
    {"binning": "doane", "pooled": True, "zero_bins": "leftover", "epsilon": 1e-3},
    {"binning": "fixed", "bins": 7},
    {"binning": "fixed", "bins": 3, "pooled": True, "log_base": 2},
    {"binning": "edges", "edges": [2.0, -1, 0, 0.5, 0.0]},
    {"binning": "edges", "edges": [1.0], "zero_bins": "leftover"},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_numeric_methods_match_oracle_per_day(numeric, cfg: dict) -> None:
    store, ref, ana = numeric
    table = store.drift("m", window="1 day", methods=NUMERIC_METHODS, correction="none", **cfg)
    rows = result_rows(table)
    windows = day_windows(ana)
    assert [w for w in windows] == sorted({(r["window_start"], r["window_end"]) for r in rows})
    check_numeric(rows, ref, ana, windows, cfg)


@pytest.mark.parametrize(
    ("window", "cfg"),
    [
        (30, {}),
        (30, {"binning": "doane", "pooled": True, "wasserstein": "raw"}),
        ({"chunks": 4}, {}),
        ({"chunks": 7}, {"binning": "sturges", "zero_bins": "leftover", "js": "divergence"}),
        ({"chunks": 1}, {"binning": "fixed", "bins": 5}),
    ],
)
def test_numeric_methods_match_oracle_per_chunk(numeric, window, cfg: dict) -> None:
    store, ref, ana = numeric
    rows = result_rows(
        store.drift("m", window=window, methods=NUMERIC_METHODS, correction="none", **cfg)
    )
    chunk = chunk_index(ana["ts"], ana["example_id"], window)
    # chunks span [first ts, last ts] of their rows, in chunk order
    windows = {
        (int(ana["ts"][chunk == c].min()), int(ana["ts"][chunk == c].max())): chunk == c
        for c in np.unique(chunk)
    }
    assert len(windows) == len(np.unique(chunk))
    starts = list(dict.fromkeys((r["window_start"], r["window_end"]) for r in rows))
    assert starts == list(windows)
    check_numeric(rows, ref, ana, windows, cfg)
    if window == 30:  # 151 rows: the last chunk holds a single row
        assert rows[-1]["n_analysis"] <= 1


def test_numeric_edge_cases_give_null_and_reason(numeric) -> None:
    store, _, _ = numeric
    rows = result_rows(store.drift("m", methods=NUMERIC_METHODS, correction="none"))
    by = {(r["feature"], r["method"], r["window_start"]): r for r in rows}
    day = [DAY0_US + d * US_PER_DAY for d in range(4)]
    # one-row window: every statistic defined (a single value is a valid sample)
    assert all(by[(f, "ks", day[1])]["n_analysis"] == 1 for f in ("normal", "skewed", "tied"))
    assert by[("normal", "ks", day[1])]["value"] is not None
    # empty window for one feature (NaN and inf only)
    for method in NUMERIC_METHODS:
        row = by[("sparse", method, day[2])]
        assert (row["value"], row["reason"], row["drifted"]) == (None, NO_WINDOW, None)
        assert row["n_analysis"] == 0
        assert by[("sparse", method, day[1])]["reason"] is None
    # reference without finite values
    for method in NUMERIC_METHODS:
        row = by[("ref_nan", method, day[0])]
        assert (row["value"], row["reason"], row["n_reference"]) == (None, NO_REFERENCE, 0)
    # constant reference: normalised measures undefined, the others defined
    assert by[("const_ref", "wasserstein", day[0])]["reason"].startswith("constant reference")
    assert by[("const_ref", "zscore", day[0])]["value"] is None
    assert by[("const_ref", "ks", day[0])]["value"] is not None
    # constant window
    assert by[("const_win", "psi", day[0])]["value"] is not None


def test_reference_without_rows_gives_null_and_reason(numeric) -> None:
    store, _, _ = numeric
    # a reference time range before every row: an empty reference (an unknown dataset
    # tag is an error now, see tests/test_silent_results.py)
    table = store.drift("m", reference=EMPTY_REFERENCE, methods=["ks", "psi", "wasserstein"])
    rows = table.to_pylist()
    assert rows and all(r["value"] is None and r["reason"] == NO_REFERENCE for r in rows)
    assert all(r["drifted"] is None and r["p_value"] is None for r in rows)
    assert all(r["n_reference"] == 0 for r in rows)


def test_variant_names_the_definition(numeric) -> None:
    store, _, _ = numeric
    rows = store.drift("m", window="100 years", features=["normal"], methods=NUMERIC_METHODS)
    variants = dict(
        zip(rows.column("method").to_pylist(), rows.column("variant").to_pylist(), strict=True)
    )
    assert variants["wasserstein"] == "normed: W1 / reference population sd"
    assert variants["psi"] == (
        "psi, ln; quantile(10) bins of the reference; empty bins set to 0.0001"
    )
    assert variants["js"] == "JS distance, ln; quantile(10) bins of the reference"
    assert variants["kl"].startswith("KL(reference || analysis), ln;")
    rows = store.drift(
        "m",
        window="100 years",
        features=["normal"],
        methods=["js", "wasserstein"],
        binning="sturges",
        pooled=True,
        log_base=2,
        js="divergence",
        wasserstein="raw",
    )
    variants = dict(
        zip(rows.column("method").to_pylist(), rows.column("variant").to_pylist(), strict=True)
    )
    assert variants["js"] == "JS divergence, log2; sturges bins of the pooled samples"
    assert variants["wasserstein"] == "raw: W1 (scipy wasserstein_distance)"


def test_ks_asymptotic_above_10000_rows() -> None:
    """Above 10 000 values scipy's 'auto' switches to the asymptotic distribution."""
    rng = np.random.default_rng(11)
    ref = np.round(rng.normal(0, 1, 12_000), 2)
    ana = np.round(rng.normal(0.03, 1, 3_000), 2)
    with blank_store() as store:
        store.register_model("big", "v1", "regression")
        store.log_features(
            "big", pa.table({"example_id": np.arange(12_000), "x": ref}), env="training"
        )
        store.log_features("big", pa.table({"example_id": np.arange(3_000), "x": ana}))
        rows = store.drift(
            "big",
            window={"chunks": 1},
            features=["x"],
            methods=["ks", "wasserstein"],
            wasserstein="raw",
        ).to_pylist()
    expected = stats.ks_2samp(ref, ana, method="auto")
    ks = next(r for r in rows if r["method"] == "ks")
    assert close(ks["value"], float(expected.statistic))
    assert close(ks["p_value"], float(expected.pvalue))
    assert 1e-6 < ks["p_value"] < 0.999  # an informative p-value, not a saturated one
    w1 = next(r for r in rows if r["method"] == "wasserstein")
    assert close(w1["value"], stats.wasserstein_distance(ref, ana))


@pytest.mark.parametrize("offset", [1e6, -3e8, 1e9])
def test_wasserstein_precision_with_a_large_offset(offset: float) -> None:
    """Values far from 0 relative to their spread: W1 still agrees with scipy to 1e-9."""
    rng = np.random.default_rng(1)
    ref, ana = offset + rng.normal(0, 1, 5000), offset + rng.normal(0.05, 1, 500)
    with blank_store() as store:
        store.register_model("o", "v1", "regression")
        store.log_features("o", pa.table({"example_id": np.arange(5000), "x": ref}), env="training")
        store.log_features("o", pa.table({"example_id": np.arange(500), "x": ana}))
        raw = store.drift(
            "o", window={"chunks": 1}, features=["x"], methods=["wasserstein"], wasserstein="raw"
        ).to_pylist()
        normed = store.drift("o", window={"chunks": 1}, features=["x"], methods=["wasserstein"])
    w1 = stats.wasserstein_distance(ref, ana)
    assert close(raw[0]["value"], w1)
    assert close(normed.column("value")[0].as_py(), w1 / np.std(ref))


KSTWO_GRID = [
    (n, c)
    for n in (141, 997, 10_007, 90_909)
    for c in (0.9, 1.4833, 1.6, 2.5, 4.0, 7.0, 12.0, 19.2, 19.3)
] + [(100, 2.0)]
# scipy's exact kstwo.sf takes seconds at these n
KSTWO_GRID += [
    pytest.param(n, c, marks=pytest.mark.slow)
    for n, c in [(400_000, 1.6), (400_000, 12.0), (1_000_000, 2.0), (1_000_001, 2.0)]
]


@pytest.mark.parametrize(("n", "c"), KSTWO_GRID)
def test_kstwo_sf_matches_scipy(n: int, c: float) -> None:
    """evalstore's kstwo.sf equals scipy's to 1e-10 relative at d = c / sqrt(n), inside the
    branch it sums itself (n > 140, 2.2 <= n d^2 < 370, n <= 1e6) and around its edges;
    results below double's normal range agree absolutely (scipy's precision ends there)."""
    d = c / math.sqrt(n)
    expected = float(stats.kstwo.sf(d, n))
    actual = udfs.kstwo_sf(d, n)
    assert math.isclose(actual, expected, rel_tol=1e-10, abs_tol=1e-300)


def test_kstwo_sf_without_extended_precision_is_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where long double is plain double the series would lose digits: scipy answers."""
    monkeypatch.setattr(udfs, "EXTENDED", False)
    d = 4.0 / math.sqrt(90_909)
    assert udfs.kstwo_sf(d, 90_909) == float(stats.kstwo.sf(d, 90_909))


def test_ks_pvalue_of_a_large_drifted_window_matches_ks_2samp() -> None:
    """Samples above scipy's exact limit with a clear shift: the p-value comes from the
    Birnbaum-Tingey branch (n_eff = 12 000, n d^2 in [2.2, 370)) and equals ks_2samp's."""
    rng = np.random.default_rng(5)
    ref, ana = rng.normal(0, 1, 30_000), rng.normal(0.08, 1, 20_000)
    expected = stats.ks_2samp(ref, ana, method="auto")
    n_eff = round(30_000 * 20_000 / 50_000)
    assert 2.2 <= n_eff * expected.statistic**2 < 370
    with blank_store() as store:
        store.register_model("shift", "v1", "regression")
        store.log_features(
            "shift", pa.table({"example_id": np.arange(30_000), "x": ref}), env="training"
        )
        store.log_features("shift", pa.table({"example_id": np.arange(20_000), "x": ana}))
        rows = store.drift("shift", window={"chunks": 1}, methods=["ks"]).to_pylist()
    assert math.isclose(rows[0]["value"], float(expected.statistic), rel_tol=1e-12)
    assert math.isclose(rows[0]["p_value"], float(expected.pvalue), rel_tol=1e-10)
    assert rows[0]["p_value"] < 1e-6


# --------------------------------------------------------------------------- property


def long_table(ref: list[float], ana: list[float]) -> pa.Table:
    n, m = len(ref), len(ana)
    return pa.table(
        {
            "example_id": [f"r{i}" for i in range(n)] + [f"a{i}" for i in range(m)],
            "env": ["training"] * n + ["serving"] * m,
            "dataset": pa.nulls(n + m, pa.string()),
            "ts": ts_array(np.full(n + m, DAY0_US)),
            "version": pa.nulls(n + m, pa.string()),
            "feature": ["x"] * (n + m),
            "value": pa.array(ref + ana, pa.float64()),
        }
    )


MACRO_CALL = """
    SELECT method, value, n_reference, n_analysis,
           CASE WHEN method = 'ks'
               THEN evalstore_ks_pvalue(value, n_reference, n_analysis) END AS ks_p
    FROM evalstore.drift_numeric('hyp', 'training', NULL, NULL, NULL, 'serving', NULL, NULL,
        NULL, '1 day', NULL, NULL, 0, ?, ?, NULL::DOUBLE[], ?, 'epsilon', 1e-4, exp(1),
        'distance')
    WHERE variant NOT LIKE 'normed%'
"""

values = st.one_of(
    st.integers(-3, 3).map(float),
    st.sampled_from([0.5, 1e6, -1e-3, math.nan, math.inf, -math.inf]),
)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
def test_property_random_tied_samples_match_scipy() -> None:
    """Small samples with heavy ties and NaN/±inf: KS, W1 and binned scores match."""
    with blank_store() as store:
        con = store.connection

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            st.lists(values, min_size=1, max_size=25),
            st.lists(values, min_size=1, max_size=25),
            st.integers(1, 6),
            st.sampled_from(["quantile", "sturges", "doane", "fixed"]),
            st.booleans(),
        )
        def check(
            ref: list[float], ana: list[float], bins: int, binning: str, pooled: bool
        ) -> None:
            con.register("hyp_source", long_table(ref, ana))
            con.execute("CREATE OR REPLACE TEMP TABLE hyp AS SELECT * FROM hyp_source")
            con.unregister("hyp_source")
            rows = con.execute(MACRO_CALL, [binning, bins, pooled]).fetchall()
            got = {row[0]: row for row in rows}
            cfg = {"binning": binning, "bins": bins, "pooled": pooled, "wasserstein": "raw"}
            expected = numeric_oracle(np.array(ref), np.array(ana), cfg)
            for method in ("ks", "wasserstein", "psi", "js", "hellinger", "d1", "kl"):
                assert close(got[method][1], expected[method][0]), (method, got[method])
            assert close(got["ks"][4], expected["ks_p"])
            assert got["ks"][2:4] == (expected["n_reference"], expected["n_analysis"])

        check()


# --------------------------------------------------------------------------- categorical


@pytest.fixture(scope="module")
def categorical() -> Iterator[tuple[evalstore.Store, dict, dict]]:
    rng = np.random.default_rng(3)

    def pick(n: int, labels: list[str], probs: list[float]) -> list:
        return list(rng.choice(labels, n, p=probs))

    n_ref = 300
    ref = {
        "multi": pick(n_ref, ["a", "b", "c"], [0.5, 0.3, 0.2]),
        "two": pick(n_ref, ["x", "y"], [0.7, 0.3]),
        "single": ["k"] * n_ref,
        "nulls": pick(n_ref, ["p", "q"], [0.6, 0.4]),
        "flag": [bool(v) for v in rng.random(n_ref) < 0.3],
    }
    for i in rng.choice(n_ref, 40, replace=False):
        ref["nulls"][i] = None
    parts = []
    for day, n in enumerate([60, 1, 40]):
        part = {
            "multi": pick(n, ["a", "b", "c", "new"], [0.3, 0.3, 0.2, 0.2]),
            "two": pick(n, ["x", "y"], [0.6, 0.4]),
            "single": ["k"] * n,
            "nulls": pick(n, ["p", "q", "z"], [0.3, 0.3, 0.4]),
            "flag": [bool(v) for v in rng.random(n) < 0.5],
        }
        part["nulls"][: n // 3] = [None] * (n // 3)
        if day == 2:
            part["nulls"] = [None] * n  # no values in this window
        part["ts"] = DAY0_US + day * US_PER_DAY + rng.integers(0, 1440, n) * US_PER_MINUTE
        parts.append(part)
    ana = {k: [v for p in parts for v in list(p[k])] for k in parts[0]}
    ana["ts"] = np.array(ana["ts"])
    with blank_store() as store:
        store.register_model("c", "v1", "binary")
        store.log_features(
            "c", pa.table({"example_id": [f"r{i}" for i in range(n_ref)], **ref}), env="training"
        )
        serving = {k: v for k, v in ana.items() if k != "ts"}
        store.log_features(
            "c",
            pa.table(
                {
                    "example_id": [f"s{i}" for i in range(len(ana["ts"]))],
                    "ts": ts_array(ana["ts"]),
                    **serving,
                }
            ),
        )
        yield store, ref, ana


def as_text(values: list) -> list:
    return [None if v is None else (str(v).lower() if isinstance(v, bool) else v) for v in values]


@pytest.mark.parametrize("yates", [True, False])
def test_categorical_methods_match_oracle(categorical, yates: bool) -> None:
    store, ref, ana = categorical
    rows = result_rows(
        store.drift("c", methods=CATEGORICAL_METHODS, correction="none", yates=yates)
    )
    windows = day_windows(ana)
    assert len(rows) == len(windows) * len(ref) * len(CATEGORICAL_METHODS)
    oracles: dict[tuple, dict] = {}  # one oracle per (feature, window) serves its 6 methods
    for row in rows:
        f, method = row["feature"], row["method"]
        window = (row["window_start"], row["window_end"])
        if (f, window) not in oracles:
            mask = windows[window]
            oracles[f, window] = categorical_oracle(
                as_text(ref[f]), as_text([v for v, k in zip(ana[f], mask, strict=True) if k]), yates
            )
        expected = oracles[f, window]
        value, reason = expected[method]
        where = (f, method, row["window_start"], yates)
        assert row["kind"] == "categorical"
        assert close(row["value"], value), (*where, row["value"], value)
        assert row["reason"] == reason, (*where, row["reason"])
        assert (row["n_reference"], row["n_analysis"]) == (
            expected["n_reference"],
            expected["n_analysis"],
        ), where
        if method == "chi2":
            assert close(row["p_value"], expected["chi2_p"]), (*where, row["p_value"])
            assert row["variant"].endswith(
                "Yates-corrected when dof = 1" if yates else "uncorrected"
            )
        if value is None:
            assert row["drifted"] is None


def test_categorical_special_cases(categorical) -> None:
    store, _, _ = categorical
    rows = store.drift("c", methods=CATEGORICAL_METHODS, correction="none").to_pylist()
    day0 = [r for r in rows if r["window_start"].day == 4]
    by = {(r["feature"], r["method"]): r for r in day0}
    assert by[("single", "chi2")]["value"] is None
    assert by[("single", "chi2")]["reason"] == "a single category: chi-squared undefined"
    assert by[("single", "psi")]["value"] == 0.0  # other methods are defined
    # two categories: Yates' correction makes chi2 smaller than the uncorrected one
    plain = store.drift("c", features=["two"], methods=["chi2"], yates=False).to_pylist()
    assert by[("two", "chi2")]["value"] < plain[0]["value"]
    assert by[("multi", "unseen")]["value"] > 0  # 'new' never occurs in the reference
    assert by[("two", "unseen")]["value"] == 0.0
    empty = store.drift("c", reference=EMPTY_REFERENCE, methods=["chi2", "js"]).to_pylist()
    assert empty and all(r["n_reference"] == 0 for r in empty)
    assert all(r["value"] is None and r["reason"] == "no reference values" for r in empty)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ref=st.lists(st.integers(0, 30), min_size=1, max_size=6),
    ana=st.lists(st.integers(0, 30), min_size=1, max_size=6),
    yates=st.booleans(),
)
def test_categorical_methods_on_pre_aggregated_counts(ref, ana, yates) -> None:
    """evalstore.categorical_methods from plain SQL on counts, against scipy/numpy."""
    size = min(len(ref), len(ana))
    r, a = np.array(ref[:size], dtype=float), np.array(ana[:size], dtype=float)
    con = _macro_connection()
    rows = {
        m["method"]: m
        for (m,) in con.execute(
            "SELECT unnest(evalstore.categorical_methods(?::BIGINT[], ?::BIGINT[], ?, ?, "
            "'epsilon', 1e-4, exp(1), 'distance', ?))",
            [r.astype(int).tolist(), a.astype(int).tolist(), int(r.sum()), int(a.sum()), yates],
        ).fetchall()
    }
    if r.sum() == 0 or a.sum() == 0:
        side = "no reference values" if r.sum() == 0 else "no values in the window"
        assert {m["reason"] for m in rows.values()} == {side}
        assert all(m["value"] is None for m in rows.values())
        return
    seen = (r + a) > 0
    p, q = r / r.sum(), a / a.sum()
    assert rows["linf"]["value"] == pytest.approx(np.abs(p - q).max(), abs=1e-12)
    assert rows["unseen"]["value"] == pytest.approx(a[r == 0].sum() / a.sum(), abs=1e-12)
    assert rows["js"]["value"] == pytest.approx(jensenshannon(p, q), abs=1e-9)
    if seen.sum() < 2:
        assert rows["chi2"]["value"] is None
        assert rows["chi2"]["reason"] == "a single category: chi-squared undefined"
        return
    oracle = stats.chi2_contingency(np.vstack([r[seen], a[seen]]), correction=yates)
    assert rows["chi2"]["value"] == pytest.approx(oracle.statistic, rel=1e-9, abs=1e-12)
    assert rows["chi2"]["dof"] == oracle.dof


@functools.cache
def _macro_connection():
    """A store's connection, for calling evalstore's SQL macros directly."""
    return evalstore.open(":memory:").connection
