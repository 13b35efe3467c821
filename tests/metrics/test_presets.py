"""Presets reproduce the peers: every number NannyML 0.13 and Evidently 0.7 wrote into the
golden files (``benchmarks/parity/run_peers.py``, run in the peers' own environment on the
data of ``benchmarks/parity/data.py``) equals evalstore's under ``preset=`` to 1e-9, on
data with ties, empty bins, low-cardinality numerics, NULLs, an unseen category and
uneven chunks (a last chunk of 5 rows); plus the registry's rules (unknown preset, a
method the peer lacks, a conflicting option) and the new options on their own.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
import scipy.stats

from evalstore.errors import InvalidParameterError
from evalstore.metrics import presets
from evalstore.metrics.drift.binned_cdf import ks_estimate, w1_estimate
from evalstore.metrics.specs import DRIFT_METHODS
from tests.conftest import blank_store

TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def parity(load_benchmark):  # type: ignore[no-untyped-def]
    return load_benchmark("parity/compare")


@pytest.fixture(scope="module")
def store(parity):  # type: ignore[no-untyped-def]
    s = blank_store()
    for model in parity.MODELS:
        parity.load(s, model)
    yield s
    s.close()


@pytest.fixture(scope="module")
def runs():  # type: ignore[no-untyped-def]
    """Each preset's result table by (model, peer, family), computed once."""
    return {}


@pytest.fixture(scope="module")
def compared(parity, store, runs):  # type: ignore[no-untyped-def]
    return {model: parity.pairs(store, model, runs) for model in parity.MODELS}


def test_goldens_were_computed_on_this_data(parity):  # type: ignore[no-untyped-def]
    for model in parity.MODELS:
        golden = parity.golden(model)
        assert golden["digest"] == parity.data.digest(model)
        assert golden["peers"] == {"nannyml": "0.13.1", "evidently": "0.7.23"}
        _, n_rows, chunks, _ = parity.data.SHAPES[model]
        split = parity.data.nannyml_chunks(n_rows, chunks)
        assert [tuple(c) for c in golden["chunks"]] == split
    assert parity.data.nannyml_chunks(5003, 7)[-1] == (4998, 5003)  # a last chunk of 5 rows


@pytest.mark.parametrize("model", ["big", "small"])
@pytest.mark.parametrize(
    ("peer", "family"),
    [
        ("nannyml", "drift"),
        ("nannyml", "quality"),
        ("nannyml", "performance"),
        ("nannyml", "multivariate_drift"),
        ("evidently", "drift"),
    ],
)
def test_preset_equals_golden(compared, model, peer, family):  # type: ignore[no-untyped-def]
    pairs = [p for p in compared[model] if p["peer"] == peer and p["family"] == family]
    covered = {spec.peer_name for spec in presets.PRESETS[peer].families[family].values()}
    if family == "drift":  # only methods this evalstore registers (all of them, once landed)
        covered = {
            spec.peer_name
            for name, spec in presets.PRESETS[peer].families[family].items()
            if name in DRIFT_METHODS
        }
    assert {p["peer_method"] for p in pairs} >= covered
    # NannyML's NaN where evalstore has a value: only performance, only the last chunk of
    # 5 rows, whose labels hold one class (see the preset's notes)
    undefined = [p for p in pairs if p["diff"] is None]
    assert all(p["family"] == "performance" and p["chunk"] == 7 for p in undefined), undefined
    off = [p for p in pairs if p["peer_method"] in covered and p["diff"] is not None
           and not p["diff"] <= TOLERANCE]  # fmt: skip
    assert not off, off[:5]
    # the golden numbers are not degenerate: every method has non-zero, non-NULL ones
    for method in covered:
        values = [p["golden"] for p in pairs if p["peer_method"] == method]
        assert sum(v not in (None, 0.0) for v in values) >= len(values) / 4, method


def test_nannyml_estimates_differ_from_exact(compared, store):  # type: ignore[no-untyped-def]
    """On the 12,000-row reference NannyML's KS and W1 are binned estimates: the goldens
    differ from evalstore's exact values (so the estimate is what the preset reproduces);
    on the 1,500-row reference they are the exact values."""
    for model, estimated in (("big", True), ("small", False)):
        chunks = {"big": 7, "small": 4}[model]
        window = {"chunks": chunks, "split": "nannyml"}
        exact = store.drift(
            model,
            window=window,
            features=["x_norm", "x_shift"],
            methods=["ks", "wasserstein"],
            wasserstein="raw",
        ).to_pylist()
        starts = sorted({r["window_start"] for r in exact})
        by_key = {(r["method"], r["feature"], starts.index(r["window_start"])): r["value"]
                  for r in exact}  # fmt: skip
        gaps = [abs(by_key[(p["method"], p["feature"], p["chunk"])] - p["golden"])
                for p in compared[model]
                if p["peer"] == "nannyml" and p["method"] in ("ks", "wasserstein")
                and p["feature"] in ("x_norm", "x_shift")]  # fmt: skip
        assert gaps
        assert (max(gaps) > 1e-6) == estimated, max(gaps)


def test_variant_names_the_preset_and_options(compared, runs):  # type: ignore[no-untyped-def]
    table = runs["big", "nannyml", "drift"].to_pylist()
    variants = {r["method"]: r["variant"] for r in table if r["feature"] == "x_norm"}
    assert all(v.startswith("preset=nannyml; ") for v in variants.values())
    assert "log2" in variants["js"] and "doane bins of the reference" in variants["js"]
    assert "estimated on 10000 equal-width bins" in variants["ks"]
    assert variants["wasserstein"].startswith("preset=nannyml; raw")
    small = runs["small", "nannyml", "drift"].to_pylist()
    assert not any("estimated" in r["variant"] for r in small)
    evidently = runs["big", "evidently", "drift"].to_pylist()
    psi = {r["feature"]: r["variant"] for r in evidently if r["method"] == "psi"}
    assert "sturges bins of the pooled samples" in psi["x_norm"]
    # 7 distinct reference values: binned by value
    assert "one bin per distinct value of both samples" in psi["x_int"]
    assert "smallest share / 1e6" in psi["x_norm"]
    quality = runs["big", "nannyml", "quality"].to_pylist()
    assert {r["method"] for r in quality} == {"missing", "unseen", "out_of_range"}
    unseen = next(r for r in quality if r["method"] == "unseen")
    assert unseen["variant"].startswith("preset=nannyml; share of the window's rows, NULLs")


def test_evidently_thresholds_and_no_correction(compared, runs, store):  # type: ignore[no-untyped-def]
    table = runs["small", "evidently", "drift"].to_pylist()
    psi = next(r for r in table if r["method"] == "psi")
    assert psi["threshold"] == 0.1
    ks = next(r for r in table if r["method"] == "ks")
    assert "no correction" in ks["threshold_source"]
    custom = store.drift("small", window={"chunks": 4, "split": "nannyml"}, features=["x_norm"],
                         methods=["psi"], preset="evidently", thresholds={"psi": 0.3})  # fmt: skip
    assert set(custom.column("threshold").to_pylist()) == {0.3}


@pytest.mark.parametrize(
    ("family", "options", "match"),
    [
        ("drift", {"preset": "whylogs"}, r"preset='whylogs' is not one of nannyml"),
        ("quality", {"preset": "whylogs"}, r"preset='whylogs' is not one of"),
        # a method the peer lacks
        ("drift", {"methods": ["psi"], "preset": "nannyml"},
         r"methods=\['psi'\] with preset='nannyml': \['psi'\] has no NannyML 0.13 "
         r"counterpart; the preset covers ks, wasserstein, js, hellinger, chi2, linf"),
        # a family the peer lacks
        ("quality", {"preset": "evidently"},
         r"preset='evidently': Evidently 0.7 has no counterpart of quality; "
         r"this preset covers: drift"),
        # an option the preset sets otherwise
        ("drift", {"methods": ["js"], "preset": "nannyml", "binning": "fixed"},
         r"binning='fixed' conflicts with preset='nannyml', which sets binning='doane' "
         r"for js \(NannyML 0.13's definition\); drop binning= or the preset"),
        ("drift", {"methods": ["ks"], "preset": "nannyml", "correction": "bh"},
         r"correction='bh' conflicts with preset"),
        ("quality", {"preset": "nannyml", "denominator": "other"},
         r"denominator='other' conflicts with"),
    ],
)  # fmt: skip
def test_preset_errors(store, family, options, match):  # type: ignore[no-untyped-def]
    """An unknown preset, a method or family the peer lacks, an option the preset sets."""
    with pytest.raises(InvalidParameterError, match=match):
        getattr(store, family)("small", window=1000, **options)


def test_options_the_preset_leaves_alone(store):  # type: ignore[no-untyped-def]
    """A binning given for a method the preset does not bin is no conflict; the result is
    the preset's for the chosen methods (ks: no binning)."""
    a = store.drift("small", window=1000, methods=["ks"], features=["x_norm"], preset="nannyml")
    b = store.drift("small", window=1000, methods=["ks"], features=["x_norm"], preset="nannyml",
                    binning="fixed")  # fmt: skip
    assert a.column("value").to_pylist() == b.column("value").to_pylist()


def test_denominator_rows_against_numpy(store, parity):  # type: ignore[no-untyped-def]
    """quality(denominator='rows'): out_of_range and unseen over every row (NULLs in)."""
    sides = parity.data.generate("small")
    ref, ana = sides["reference"], sides["analysis"]
    table = store.quality("small", window={"chunks": 4, "split": "nannyml"},
                          features=["x_shift", "cat"], denominator="rows").to_pylist()  # fmt: skip
    starts = sorted({r["window_start"] for r in table})
    lo, hi = np.nanmin(ref["x_shift"]), np.nanmax(ref["x_shift"])
    seen = {c for c in ref["cat"] if c is not None}
    for i, (a, b) in enumerate(parity.data.nannyml_chunks(len(ana["x_shift"]), 4)):
        x, c = ana["x_shift"][a:b], ana["cat"][a:b]
        unseen = np.mean([v is not None and v not in seen for v in c])
        expected = {("x_shift", "out_of_range"): np.mean((x < lo) | (x > hi)),
                    ("cat", "unseen"): unseen}  # fmt: skip
        for (feature, method), value in expected.items():
            row = next(r for r in table if (r["feature"], r["method"]) == (feature, method)
                       and r["window_start"] == starts[i])  # fmt: skip
            assert row["value"] == pytest.approx(value, abs=1e-15)
            assert row["drifted"] == (value > row["threshold"])
    with pytest.raises(InvalidParameterError, match=r"denominator='all' is not one of present"):
        store.quality("small", window=1000, denominator="all")


def test_smallest_fill_against_evidently_formula(store):  # type: ignore[no-untyped-def]
    """zero_bins='smallest' on the categories of `cat` (an unseen category: a reference share
    of 0), against Evidently's fill written out in numpy."""
    rows = store.drift("small", window=100_000, features=["cat"], methods=["psi", "kl"],
                       zero_bins="smallest", correction="none").to_pylist()  # fmt: skip
    counts = store.sql(
        "SELECT env, cat, count(*) AS n FROM small.features WHERE cat IS NOT NULL GROUP BY ALL"
    ).to_pylist()
    keys = sorted({r["cat"] for r in counts})
    p = np.array([sum(r["n"] for r in counts if r["env"] == "training" and r["cat"] == k)
                  for k in keys], dtype=float)  # fmt: skip
    q = np.array([sum(r["n"] for r in counts if r["env"] == "serving" and r["cat"] == k)
                  for k in keys], dtype=float)  # fmt: skip
    p, q = p / p.sum(), q / q.sum()
    for share in (p, q):
        smallest = share[share > 0].min()
        share[share == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    values = {r["method"]: r["value"] for r in rows}
    assert values["psi"] == pytest.approx(np.sum((p - q) * np.log(p / q)), abs=1e-12)
    assert values["kl"] == pytest.approx(scipy.stats.entropy(p, q), abs=1e-12)


def test_binned_cdf_constant_reference():
    """A constant reference: for W1 numpy's histogram widens it to [r - 0.5, r + 0.5]
    (W1 of [2, 3, 4] against 3s: 2/3, exact as scipy); KS's edges all equal r, the last
    bin [r, r] (D: 1/3, as ks_2samp)."""
    reference, window = np.full(12_000, 3.0), np.array([2.0, 3.0, 4.0])
    assert w1_estimate(reference, window, 10_000) == pytest.approx(2 / 3, abs=1e-12)
    assert scipy.stats.wasserstein_distance(reference, window) == pytest.approx(2 / 3)
    assert ks_estimate(reference, window, 10_000) == pytest.approx(1 / 3, abs=1e-12)
    assert scipy.stats.ks_2samp(reference, window).statistic == pytest.approx(1 / 3)


def test_binned_cdf_close_to_exact_inside_the_range():
    """Inside the reference's range the estimates differ from scipy by at most the binning
    (KS: a bin's share of either sample; W1: about a bin width)."""
    rng = np.random.default_rng(7)
    reference = np.sort(rng.normal(0, 1, 20_000))
    window = np.sort(np.clip(rng.normal(0.2, 1, 3_000), reference[0], reference[-1]))
    width = (reference[-1] - reference[0]) / 1_000
    ks = scipy.stats.ks_2samp(reference, window).statistic
    assert abs(ks_estimate(reference, window, 1_000) - ks) < 0.01
    w1 = scipy.stats.wasserstein_distance(reference, window)
    assert abs(w1_estimate(reference, window, 1_000) - w1) <= width


def test_option_errors(store):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError, match=r"few_values=20 needs an equal-width"):
        store.drift("small", window=1000, methods=["psi"], few_values=20)
    with pytest.raises(InvalidParameterError, match=r"cdf_bins=0 must be a positive int"):
        store.drift("small", window=1000, methods=["ks"], cdf_bins=0)
    with pytest.raises(InvalidParameterError, match=r"zero_bins='tiny' is not 'epsilon'"):
        store.drift("small", window=1000, methods=["psi"], zero_bins="tiny")
    with pytest.raises(InvalidParameterError, match=r"sd_floor=-1 must be a finite number"):
        store.drift("small", window=1000, methods=["wasserstein"], sd_floor=-1)


def test_sd_floor_against_scipy(store, parity):  # type: ignore[no-untyped-def]
    """wasserstein 'normed' with sd_floor: W1 / max(reference population sd, floor), on a
    feature whose sd (2e-4) is below the floor, and unchanged on one above it."""
    rows = store.drift("small", window=100_000, features=["x_tiny", "x_norm"],
                       methods=["wasserstein"], sd_floor=0.001).to_pylist()  # fmt: skip
    sides = parity.data.generate("small")
    for row in rows:
        ref = sides["reference"][row["feature"]]
        ana = sides["analysis"][row["feature"]]
        ref, ana = ref[np.isfinite(ref)], ana[np.isfinite(ana)]
        w1 = scipy.stats.wasserstein_distance(ref, ana)
        assert row["value"] == pytest.approx(w1 / max(np.std(ref), 0.001), rel=1e-9)
        assert "max(reference population sd, 0.001)" in row["variant"]
    assert np.std(sides["reference"]["x_tiny"]) < 0.001 < np.nanstd(sides["reference"]["x_norm"])


def test_empty_and_single_valued_windows_under_presets():
    """A window with no finite value gets value NULL and a reason (as without a preset); a
    single-valued window against a single-valued reference gives 0 distances."""
    s = blank_store()
    s.register_model("m", "v1", "binary")
    s.log_features("m", pa.table({"example_id": ["r1", "r2", "r3"], "x": [1.0, 1.0, 1.0]}),
                   env="training")  # fmt: skip
    s.log_features("m", pa.table({"example_id": ["a1", "a2", "a3", "a4"],
                                  "x": [1.0, 1.0, None, None]}))  # fmt: skip
    for preset in ("nannyml", "evidently"):
        rows = s.drift("m", window=2, features=["x"], preset=preset).to_pylist()
        first = [r for r in rows if r["n_analysis"] == 2]
        empty = [r for r in rows if r["n_analysis"] == 0]
        assert empty and all(r["value"] is None and r["reason"] for r in empty)
        for r in first:
            if r["method"] in ("js", "hellinger", "psi", "kl", "ks", "linf"):
                assert r["value"] == pytest.approx(0.0, abs=1e-12), r
    s.close()


@pytest.mark.parametrize(
    ("family", "option", "value", "sets"),
    [
        ("drift", "binning", "quantile", "'doane'"),
        ("drift", "correction", "bonferroni", "'none'"),
        ("drift", "log_base", math.e, "2"),
        ("quality", "denominator", "present", "'rows'"),
    ],
)
def test_an_explicit_default_conflicting_with_the_preset_raises(store, family, option, value, sets):  # type: ignore[no-untyped-def]
    """evalstore's default, passed explicitly, is still a choice the preset would override."""
    with pytest.raises(
        InvalidParameterError,
        match=rf"{option}={value!r} conflicts with preset='nannyml', which sets {option}={sets}",
    ):
        getattr(store, family)("small", window={"chunks": 4, "split": "nannyml"},
                               preset="nannyml", **{option: value})  # fmt: skip


def test_performance_and_multivariate_preset_errors(store):  # type: ignore[no-untyped-def]
    window = {"chunks": 4, "split": "nannyml"}
    with pytest.raises(InvalidParameterError, match=r"threshold=0.6 conflicts with preset="):
        store.performance("small", window=window, threshold=0.6, preset="nannyml")
    with pytest.raises(InvalidParameterError, match=r"preset= is not kept in the metric history"):
        store.performance("small", window=window, persist=True, preset="nannyml")
    with pytest.raises(InvalidParameterError, match=r"\['brier'\] has no NannyML 0.13"):
        store.performance("small", window=window, metrics=["brier"], preset="nannyml")
    with pytest.raises(InvalidParameterError, match=r"Evidently 0.7 has no counterpart of perf"):
        store.performance("small", window=window, preset="evidently")
    with pytest.raises(InvalidParameterError, match=r"variance=0.8 conflicts with preset="):
        store.multivariate_drift("small", window=window, variance=0.8, preset="nannyml")
    with pytest.raises(InvalidParameterError, match=r"\['mmd'\] has no NannyML 0.13"):
        store.multivariate_drift("small", window=window, methods=["mmd"], preset="nannyml")
    # NannyML count-encodes categorical features: one-hot is not its definition
    with pytest.raises(
        InvalidParameterError, match=r"categorical_encoding='onehot' conflicts with preset="
    ):
        store.multivariate_drift(
            "small", window=window, categorical_encoding="onehot", preset="nannyml"
        )


def test_performance_preset_binary_only():
    s = blank_store()
    s.register_model("mc", "v1", "multiclass", classes=["a", "b", "c"])
    with pytest.raises(
        InvalidParameterError,
        match=r"preset='nannyml' reproduces NannyML 0.13's performance for binary models, "
        r"not multiclass ones",
    ):
        s.performance("mc", preset="nannyml")
    s.close()


@pytest.mark.parametrize(
    ("binning", "pooled"),
    [("values", True), ("sturges_distinct", True), ("sturges_distinct", False)],
)
def test_sql_macro_agrees_on_the_new_binnings(store, binning, pooled):  # type: ignore[no-untyped-def]
    """evalstore.drift_numeric (what a BI tool calls) and store.drift's numpy path give the
    same values and variants for the binnings and the fill the presets added.

    The macro reads a view of the two compared features' rows of small.numeric_values:
    on the whole view, binning='values' also bins x_gap, x_shift and x_tiny (4,100
    distinct values each, one bin per value) before the WHERE drops them, ~20 s of CPU
    instead of 0.4 s; the macro computes each feature on its own rows either way."""
    options = dict(binning=binning, pooled=pooled, zero_bins="smallest")
    fast = store.drift("small", window={"chunks": 4}, features=["x_norm", "x_int"],
                       methods=["psi", "kl", "hellinger"], **options).to_pylist()  # fmt: skip
    store.sql(
        "CREATE OR REPLACE TEMP VIEW small_compared AS SELECT * FROM small.numeric_values "
        "WHERE feature IN ('x_norm', 'x_int')"
    )
    sql = store.sql(
        "SELECT feature, window_start, method, variant, value FROM evalstore.drift_numeric("
        "'temp.main.small_compared', 'training', NULL, NULL, NULL, 'serving', NULL, NULL, NULL, "
        "NULL, NULL, 4, 0, ?, 10, NULL, ?, 'smallest', 0.0001, 2.718281828459045, 'distance') "
        "WHERE method IN ('psi', 'kl', 'hellinger') AND feature IN ('x_norm', 'x_int')",
        params=[binning, pooled],
    ).to_pylist()
    by_key = {(r["feature"], r["window_start"], r["method"]): r for r in sql}
    assert len(fast) == len(sql) == 24
    for row in fast:
        other = by_key[row["feature"], row["window_start"], row["method"]]
        assert row["value"] == pytest.approx(other["value"], abs=1e-12)
        assert row["variant"] == other["variant"]
