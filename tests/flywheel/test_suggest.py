"""store.suggest, label requests and the suggest macros, against numpy oracles."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.errors import InvalidParameterError, ReadOnlyError, ValidationError
from evalstore.flywheel.suggest import RESULT_COLUMNS, k_center
from tests.conftest import blank_store


def _entropy(p: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return h / np.log(p.shape[1])


def make_binary(n: int = 400, seed: int = 0, versions: int = 1) -> evalstore.Store:
    rng = np.random.default_rng(seed)
    store = blank_store()
    for v in range(versions):
        store.register_model("m", f"v{v + 1}", "binary")
    ids = [f"e{i:04d}" for i in range(n)]
    store.log_features(
        "m",
        pa.table(
            {
                "example_id": [f"t{i}" for i in range(n)],
                "x": rng.normal(size=n),
                "y": rng.normal(size=n),
                "region": rng.choice(["a", "b", "c"], n),
            }
        ),
        env="training",
    )
    x = rng.normal(size=n)
    x[7] = 50.0  # far out of the reference range
    region = rng.choice(["a", "b", "c"], n).astype(object)
    region[11] = "zz"  # unseen category
    store.log_features(
        "m", pa.table({"example_id": ids, "x": x, "y": rng.normal(size=n), "region": region})
    )
    score = rng.uniform(size=n)
    score[:3] = 0.5  # ties at the top
    for v in range(versions):
        s = score if v == 0 else np.clip(score + rng.normal(0, 0.4, n), 0, 1)
        store.log_predictions("m", pa.table({"example_id": ids, "score": s}), version=f"v{v + 1}")
    return store


@pytest.fixture
def binary():
    store = make_binary()
    yield store
    store.close()


# ---------------------------------------------------------------- macros vs numpy


@pytest.fixture(scope="module")
def sql_store():
    store = blank_store()
    yield store
    store.close()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0]), min_size=2, max_size=2).map(
            lambda r: [*r, 1.0]
        ),
        min_size=1,
        max_size=20,
    )
)
def test_multiclass_uncertainty_macros_match_numpy(sql_store, rows):
    p = np.array(rows, dtype=float)
    got = sql_store.sql(
        "SELECT evalstore.least_confidence(NULL, MAP(['a','b','c'], r)) AS lc, "
        "evalstore.margin(NULL, MAP(['a','b','c'], r)) AS margin, "
        "evalstore.entropy(NULL, MAP(['a','b','c'], r)) AS h "
        "FROM (SELECT unnest(?) AS r, generate_subscripts(?, 1) AS i) ORDER BY i",
        [rows, rows],
    ).to_pydict()
    q = p / p.sum(axis=1, keepdims=True)
    top = -np.sort(-q, axis=1)
    np.testing.assert_allclose(got["lc"], (1 - top[:, 0]) * 3 / 2, atol=1e-12)
    np.testing.assert_allclose(got["margin"], 1 - (top[:, 0] - top[:, 1]), atol=1e-12)
    np.testing.assert_allclose(got["h"], _entropy(p), atol=1e-12)


def test_binary_uncertainty_macros_match_numpy():
    s = np.array([0.0, 1.0, 0.5, 0.2, 0.8, 0.999, 1e-9])
    with blank_store() as store:
        got = store.sql(
            "SELECT evalstore.least_confidence(s, NULL) AS lc, evalstore.margin(s, NULL) AS m, "
            "evalstore.entropy(s, NULL) AS h, evalstore.entropy(NULL, NULL) AS none "
            "FROM (SELECT unnest(?) AS s, generate_subscripts(?, 1) AS i) ORDER BY i",
            [s.tolist(), s.tolist()],
        ).to_pydict()
    np.testing.assert_allclose(got["lc"], 1 - np.abs(2 * s - 1), atol=1e-12)
    np.testing.assert_allclose(got["m"], got["lc"])
    np.testing.assert_allclose(got["h"], _entropy(np.column_stack([s, 1 - s])), atol=1e-9)
    assert got["none"] == [None] * len(s)


GRID = np.array([0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1])


def _rarity_sql(q: np.ndarray, n: int, xs: np.ndarray) -> np.ndarray:
    with blank_store() as store:
        return (
            store.sql(
                "SELECT evalstore.numeric_rarity(x, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) AS r "
                "FROM (SELECT unnest(?) AS x, generate_subscripts(?, 1) AS i) ORDER BY i",
                [*map(float, q), n, xs.tolist(), xs.tolist()],
            )
            .column("r")
            .to_numpy(zero_copy_only=False)
        )


def _rarity_numpy(q: np.ndarray, n: int, xs: np.ndarray) -> np.ndarray:
    """The definition: F linear between the grid quantiles, at a run of tied quantiles the
    middle of the run's probabilities (numpy.interp takes the run's last one; on the
    mirrored axis its first), t = 2 min(F, 1 - F), 0 out of range; ln(1 / max(t, f)) /
    ln(n + 1) with f = 1 / (n + 1)."""
    last = np.interp(xs, q, GRID)
    first = np.interp(-xs, -q[::-1], GRID[::-1])
    f = (first + last) / 2
    t = np.where((xs < q[0]) | (xs > q[-1]), 0.0, 2 * np.minimum(f, 1 - f))
    return np.log(1 / np.maximum(t, 1 / (n + 1))) / np.log(n + 1)


def test_numeric_rarity_matches_numpy_interpolation():
    rng = np.random.default_rng(3)
    ref = np.round(rng.normal(size=500), 1)  # ties
    q = np.quantile(ref, GRID)
    # random values, every quantile exactly (ties included) and values out of range
    xs = np.concatenate([rng.normal(size=200) * 1.5, q, [q[0] - 1, q[-1] + 1]])
    got = _rarity_sql(q, len(ref), xs)
    np.testing.assert_allclose(got, _rarity_numpy(q, len(ref), xs), atol=1e-9)
    assert got[-2] == 1.0 and got[-1] == 1.0  # out of range
    assert np.all((got >= 0) & (got <= 1))


@pytest.mark.parametrize(
    "ref",
    [
        np.repeat([0, 1, 2, 3, 5, 8, 13, 19], [300, 200, 150, 100, 100, 80, 50, 20]),  # counts
        np.concatenate([np.zeros(700), np.arange(1, 301)]),  # 70% zeros
        np.full(50, 4.0),  # constant
    ],
    ids=["counts", "mostly-zero", "constant"],
)
def test_numeric_rarity_of_values_many_reference_rows_share(ref):
    q = np.quantile(ref, GRID)
    values, counts = np.unique(ref, return_counts=True)
    got = _rarity_sql(q, len(ref), values.astype(float))
    np.testing.assert_allclose(got, _rarity_numpy(q, len(ref), values.astype(float)), atol=1e-9)
    # the most common value (30% to 100% of the reference) is not rare: the middle of
    # its run of tied quantiles is at F >= 0.125 from either end, t >= 0.25 (before ties
    # were handled, a value shared by the lowest quantiles got t = 0.001: rarity ~1)
    most = np.argmax(counts)
    assert got[most] <= np.log(4) / np.log(len(ref) + 1) + 1e-12, (values[most], got[most])


def test_category_rarity_is_the_tail_share():
    with blank_store() as store:
        store.register_model("c", "v1", "binary")
        cats = ["a"] * 6 + ["b"] * 3 + ["c"] * 1
        store.log_features(
            "c", pa.table({"example_id": [str(i) for i in range(10)], "k": cats}), env="training"
        )
        rows = store.sql(
            "SELECT category, share, tail, rarity FROM "
            "evalstore.novelty_categories('c', 'training', NULL, NULL, NULL) ORDER BY category"
        ).to_pylist()
    tails = {r["category"]: r["tail"] for r in rows}
    assert tails == pytest.approx({"a": 1.0, "b": 0.4, "c": 0.1})
    rarity = {r["category"]: r["rarity"] for r in rows}
    assert rarity["a"] == pytest.approx(0.0)
    assert rarity["c"] == pytest.approx(np.log(10) / np.log(11))


def test_committee_vote_entropy_and_spread():
    with blank_store() as store:
        for v in ("v1", "v2", "v3"):
            store.register_model("m", v, "binary")
        ids = ["a", "b", "c"]
        scores = {"v1": [0.9, 0.9, 0.2], "v2": [0.8, 0.1, 0.3], "v3": [0.7, 0.2, 0.6]}
        for v, s in scores.items():
            store.log_predictions("m", pa.table({"example_id": ids, "score": s}), version=v)
        rows = {
            r["example_id"]: r
            for r in store.sql(
                "SELECT * FROM evalstore.suggest_committee('m', NULL, NULL)"
            ).to_pylist()
        }
    # a: all vote 1 -> 0 entropy; spread 0.9 - 0.7
    assert rows["a"]["vote_entropy"] == pytest.approx(0.0)
    assert rows["a"]["score_spread"] == pytest.approx(0.2)
    # b: votes 1, 0, 0 -> -(1/3 ln 1/3 + 2/3 ln 2/3) / ln 2 (min(V=3, K=2) = 2)
    h = -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)) / np.log(2)
    assert rows["b"]["vote_entropy"] == pytest.approx(h)
    assert rows["b"]["majority"] == "0"
    assert rows["b"]["committee"] == pytest.approx((h + 0.8) / 2)
    assert rows["c"]["versions"] == 3


# ---------------------------------------------------------------- strategies


@pytest.mark.parametrize("strategy", ["least_confidence", "margin", "entropy"])
def test_uncertainty_ranking_is_numpy_top_k(binary, strategy):
    table = binary.suggest("m", k=25, strategy=strategy, record=False)
    scores = binary.sql("SELECT example_id, score FROM m.predictions").to_pydict()
    s = np.array(scores["score"])
    h = _entropy(np.column_stack([s, 1 - s])) if strategy == "entropy" else 1 - np.abs(2 * s - 1)
    order = np.argsort(-h, kind="stable")
    kth = h[order[24]]
    got = table.column(strategy).to_numpy()
    assert np.all(np.diff(got) <= 1e-15)  # best first
    expected = {scores["example_id"][i] for i in order[:25] if h[i] > kth + 1e-12}
    assert expected <= set(table.column("example_id").to_pylist())
    assert table.column_names == list(RESULT_COLUMNS)
    assert table.column("rank").to_pylist() == list(range(1, 26))
    assert all(r.startswith("uncertain prediction") for r in table.column("reason").to_pylist())


def test_uncertainty_skips_labeled_and_requested_examples_at_the_top():
    """The most uncertain 2,400 of 5,000 are labeled or requested: the search for the
    top k goes past them (several rounds) and still returns numpy's top k."""
    rng = np.random.default_rng(11)
    n = 5000
    ids = np.array([f"e{i:05d}" for i in range(n)])
    score = rng.uniform(size=n)
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.log_predictions("m", pa.table({"example_id": ids, "score": score}), version="v1")
        lc = 1 - np.abs(2 * score - 1)
        order = np.lexsort((ids, -lc))
        store.log_labels("m", pa.table({"example_id": ids[order[:2000]], "label": ["1"] * 2000}))
        first = store.suggest("m", k=400, strategy="least_confidence", record=True)
        assert first.column("example_id").to_pylist() == ids[order[2000:2400]].tolist()
        table = store.suggest("m", k=25, strategy="margin", record=False)
    assert table.column("example_id").to_pylist() == ids[order[2400:2425]].tolist()
    assert table.column("margin").to_numpy() == pytest.approx(lc[order[2400:2425]])


def test_candidates_macro_drops_labeled_and_requested_examples_by_key():
    """Plain SQL: evalstore.suggest_candidates leaves out labeled examples and open
    requests (compared by example_key) and returns the key, MD5 of the id."""
    import hashlib
    import uuid

    with make_binary(n=50) as store:
        store.log_labels("m", pa.table({"example_id": ["e0001", "e0002"], "label": ["1", "0"]}))
        store.suggest("m", k=3, strategy="random", seed=1)  # three open requests
        requested = store.sql(
            "SELECT example_id FROM evalstore.label_requests WHERE status = 'open'"
        ).column(0)
        rows = store.sql(
            "SELECT example_id, example_key FROM evalstore.suggest_candidates('m', NULL, NULL, "
            "NULL) ORDER BY example_id"
        ).to_pylist()
        with_where = store.suggest(
            "m", k=50, strategy="random", where="region = 'a'", record=False
        ).column("example_id")
        region_a = store.sql(
            "SELECT example_id FROM m.features WHERE env = 'serving' AND region = 'a'"
        ).column(0)
    excluded = {"e0001", "e0002", *requested.to_pylist()}
    assert len(excluded) == 5
    assert [r["example_id"] for r in rows] == [
        f"e{i:04d}" for i in range(50) if f"e{i:04d}" not in excluded
    ]
    for row in rows:
        digest = hashlib.md5(row["example_id"].encode()).digest()
        assert row["example_key"] == str(uuid.UUID(bytes=digest[::-1]))  # read back as text
    assert set(with_where.to_pylist()) == set(region_a.to_pylist()) - excluded


def test_novelty_ranks_by_mean_rarity_and_explains(binary):
    table = binary.suggest("m", k=400, strategy="novelty", record=False)
    ref = binary.sql("SELECT x, y, region FROM m.features WHERE env = 'training'").to_pydict()
    serving = binary.sql(
        "SELECT example_id, x, y, region FROM m.features WHERE env = 'serving'"
    ).to_pydict()
    grid = np.array([0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1])
    n = len(ref["x"])

    def rarity_numeric(values, reference):
        q = np.quantile(reference, grid)
        f = np.interp(values, q, grid)
        t = np.where((values < q[0]) | (values > q[-1]), 0.0, 2 * np.minimum(f, 1 - f))
        return np.log(1 / np.maximum(t, 1 / (n + 1))) / np.log(n + 1)

    cats, counts = np.unique(ref["region"], return_counts=True)
    share = dict(zip(cats, counts / n, strict=True))
    tail = {c: sum(v for v in share.values() if v <= share[c]) for c in share}
    r_region = np.array(
        [np.log(1 / max(tail.get(c, 0.0), 1 / (n + 1))) / np.log(n + 1) for c in serving["region"]]
    )
    expected = (
        rarity_numeric(np.array(serving["x"]), ref["x"])
        + rarity_numeric(np.array(serving["y"]), ref["y"])
        + r_region
    ) / 3
    by_id = dict(zip(serving["example_id"], expected, strict=True))
    got = dict(
        zip(
            table.column("example_id").to_pylist(), table.column("novelty").to_pylist(), strict=True
        )
    )
    assert len(got) == 400
    for eid, value in got.items():
        assert value == pytest.approx(by_id[eid], abs=1e-9)
    values = table.column("novelty").to_pylist()
    assert values == sorted(values, reverse=True)
    # a small k takes the pruned path (rows within the 1%..99% band skipped): same answer
    top = binary.suggest("m", k=3, strategy="novelty", record=False)
    best = sorted(by_id.values(), reverse=True)[:3]
    assert top.column("novelty").to_pylist() == pytest.approx(best, abs=1e-9)
    reasons = dict(
        zip(table.column("example_id").to_pylist(), table.column("reason").to_pylist(), strict=True)
    )
    assert "x=50 is out of the reference range" in reasons["e0007"]
    assert "region='zz' is a category unseen in the reference" in reasons["e0011"]


def _novelty_store(rng: np.random.Generator, n: int) -> evalstore.Store:
    """Serving rows with heavy ties, NaN, +-inf, NULLs and an unseen category."""
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.log_features(
        "m",
        pa.table(
            {
                "example_id": [f"t{i}" for i in range(n)],
                "x": rng.normal(size=n),
                "c": rng.integers(0, 4, n),  # a count: the grid quantiles tie
                "region": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
            }
        ),
        env="training",
    )
    x = rng.standard_t(2, size=n)
    x[rng.uniform(size=n) < 0.03] = np.nan
    x[:3] = [np.inf, -np.inf, 1e9]
    xs = pa.array(x, mask=rng.uniform(size=n) < 0.05)  # NULLs besides NaN
    region = rng.choice(["a", "b", "c", "zz"], n, p=[0.5, 0.3, 0.15, 0.05])
    ids = [f"e{i:05d}" for i in range(n)]
    store.log_features(
        "m",
        pa.table({"example_id": ids, "x": xs, "c": rng.integers(0, 6, n), "region": region}),
    )
    store.log_predictions(
        "m", pa.table({"example_id": ids, "score": rng.uniform(size=n)}), version="v1"
    )
    return store


def _novelty_context(store: evalstore.Store):
    """A suggest context of model 'm' (training reference), for the novelty internals."""
    from evalstore.flywheel.suggest import context as module

    return module._Context(
        store._context(), "m", None, seed=0, since=None, until=None, where=None,
        reference="training", by=None, prior=10.0, pool=10, pool_given=False,
    )  # fmt: skip


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), threshold=st.sampled_from([0.05, 0.1, 0.2, 0.3, 0.45, 0.6]))
def test_novelty_prune_keeps_every_row_above_the_threshold(seed, threshold):
    from evalstore.flywheel.suggest import novelty as module

    rng = np.random.default_rng(seed)
    with _novelty_store(rng, 3000) as store:
        ctx = _novelty_context(store)
        try:
            expression, params = module._novelty_expression(ctx)
            condition, extra = module._novelty_prune(ctx, threshold)
            rows = store.connection.sql(
                f"SELECT {expression} AS novelty, {condition} AS kept "
                "FROM m.features AS f WHERE f.env = 'serving'",
                params={**params, **extra},
            ).fetchall()
        finally:
            ctx.close()
    above = [kept for novelty, kept in rows if novelty is not None and novelty > threshold]
    assert above and all(above)  # no row that can beat the threshold is pruned
    pruned = sum(1 for _, kept in rows if not kept)
    # and the test prunes something once T is above the least possible bound mean (the
    # count c is never strictly inside its reference's 25%..75% band: about 0.13)
    assert pruned > 0 or threshold < 0.2


@pytest.mark.parametrize("k", [1, 10, 150])
def test_novelty_search_with_thresholds_is_the_full_ranking(monkeypatch, k):
    from evalstore.flywheel.suggest import novelty as module

    with _novelty_store(np.random.default_rng(k), 4000) as store:
        full = store.suggest("m", k=k, strategy="novelty", record=False)
        # the whole table as the "sample": the first threshold is the 2m-th novelty
        monkeypatch.setattr(module, "NOVELTY_SAMPLE_PERCENT", 100)
        calls = []
        prune = module._novelty_prune
        monkeypatch.setattr(
            module, "_novelty_prune", lambda ctx, t: calls.append(t) or prune(ctx, t)
        )
        pruned = store.suggest("m", k=k, strategy="novelty", record=False)
    assert calls and calls[0] > 0  # the search ran with a threshold
    assert pruned.column("example_id").to_pylist() == full.column("example_id").to_pylist()
    assert pruned.column("novelty").to_pylist() == full.column("novelty").to_pylist()


@pytest.mark.parametrize("n", [9, 499, 200_000])
def test_band_bounds_are_the_rarity_at_each_bands_edge(sql_store, n):
    from evalstore.flywheel.suggest import NOVELTY_GRID, band_bounds

    rng = np.random.default_rng(n)
    q = np.quantile(rng.normal(size=n), NOVELTY_GRID)
    bounds = band_bounds(n)
    assert bounds == sorted(bounds, reverse=True)
    args = ", ".join(f"$q{i}" for i in range(11))
    for k, bound in zip((1, 2, 3, 4), bounds, strict=True):
        inside = np.linspace(q[k], q[10 - k], 2001)[1:-1]  # strictly inside band k
        rarity = sql_store.connection.execute(
            f"SELECT max(evalstore.numeric_rarity(x, {args}, $n)) FROM unnest($x) AS t(x)",
            {**{f"q{i}": float(v) for i, v in enumerate(q)}, "n": n, "x": inside.tolist()},
        ).fetchall()[0][0]  # fetchall: fetchone leaves the module's shared connection busy
        assert rarity <= bound  # an upper bound ...
        assert rarity > bound - 0.02  # ... reached at the band's edges


def test_novelty_prune_rates_tied_outer_quantiles_exactly():
    """A count's 0 held by 30% of the reference is outside every band (q0 = q1 = 0) but
    not rare: the prune uses its exact rarity, so a threshold above it drops those rows."""
    from evalstore.flywheel.suggest import novelty as module

    rng = np.random.default_rng(3)
    reference = np.where(rng.uniform(size=5000) < 0.3, 0, rng.integers(1, 40, 5000))
    serving = np.array([0] * 60 + [20] * 30 + [500] * 10)  # 500 is out of range
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({"example_id": [f"r{i}" for i in range(5000)],
                                          "c": reference}), env="training")  # fmt: skip
        ids = [f"e{i}" for i in range(100)]
        store.log_features("m", pa.table({"example_id": ids, "c": serving}))
        ctx = _novelty_context(store)
        try:
            expression, params = module._novelty_expression(ctx)
            ((_, _, _, ties),) = ctx.novelty_bands
            zero = store.connection.execute(
                f"SELECT {expression} FROM (SELECT 0 AS c) AS f", params
            ).fetchall()[0][0]
            assert ties[0] == pytest.approx(zero, abs=1e-12)  # (39 = q9 = q10 is tied too)
            assert 0.0 < zero < 0.2
            condition, extra = module._novelty_prune(ctx, 0.2)
            kept = store.connection.execute(
                f"SELECT f.c, count(*) FROM m.features AS f WHERE f.env = 'serving' "
                f"AND {condition} GROUP BY f.c ORDER BY f.c",
                {name: extra[name] for name in set(re.findall(r"\$(\w+)", condition))},
            ).fetchall()
        finally:
            ctx.close()
    assert kept == [(500, 10)]  # zeros (exact rarity < 0.2) and 20s (central) pruned


def test_committee_strategy_needs_versions_and_ranks_disagreement():
    with make_binary(versions=3) as store:
        table = store.suggest("m", k=10, strategy="committee", record=False)
        assert table.num_rows == 10
        values = table.column("committee").to_pylist()
        assert values == sorted(values, reverse=True)
        best = (
            store.sql("SELECT max(committee) FROM evalstore.suggest_committee('m', NULL, NULL)")
            .column(0)[0]
            .as_py()
        )
        assert values[0] == pytest.approx(best)


def test_slices_spread_budget_by_need():
    rng = np.random.default_rng(5)
    with blank_store() as store:
        store.register_model("s", "v1", "binary")
        n = 3000
        ids = [f"e{i}" for i in range(n)]
        region = np.array(["bad", "good", "rare"])[rng.choice(3, n, p=[0.45, 0.45, 0.1])]
        store.log_features("s", pa.table({"example_id": ids, "region": region}))
        score = rng.uniform(size=n)
        pred = (score >= 0.5).astype(int).astype(str)
        store.log_predictions("s", pa.table({"example_id": ids, "score": score}), version="v1")
        labeled = rng.choice(n, 600, replace=False)
        truth = pred[labeled].copy()
        flip = (region[labeled] == "bad") & (rng.uniform(size=600) < 0.5)
        truth[flip] = np.where(truth[flip] == "1", "0", "1")
        store.log_labels("s", pa.table({"example_id": [ids[i] for i in labeled], "label": truth}))
        table = store.suggest("s", k=90, strategy="slices", record=False)
        counts = {}
        for key in table.column("slice").to_pylist():
            counts[key] = counts.get(key, 0) + 1
        need = {}
        for key, value in zip(
            table.column("slice").to_pylist(), table.column("slice_need").to_pylist(), strict=True
        ):
            need[key] = value
    assert set(counts) == {"region=bad", "region=good", "region=rare"}
    assert need["region=bad"] > need["region=good"]
    assert counts["region=bad"] > counts["region=good"]
    # D'Hondt: seats proportional to need (within one seat)
    total = sum(need.values())
    for key, seats in counts.items():
        assert abs(seats - 90 * need[key] / total) <= 1.0 + 1e-9


def test_k_center_matches_brute_force():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    x[10] = x[0]  # a duplicate of the first pick is never chosen early
    ids = [str(i) for i in range(60)]
    got, scores = k_center(ids, x, 8)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    picked = [0]
    for _ in range(7):
        d = np.min([np.linalg.norm(z - z[p], axis=1) for p in picked], axis=0)
        d[picked] = -1
        picked.append(int(np.argmax(d)))
    assert got == [ids[i] for i in picked]
    assert "10" not in got
    assert scores[0] == 1.0 and scores[1] == 1.0
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(scores))


def test_k_center_edge_cases():
    ids, scores = k_center(["a"], np.array([[1.0]]), 5)
    assert ids == ["a"] and scores == [1.0]
    ids, _ = k_center(["a", "b", "c"], np.array([[1.0, np.nan], [1.0, 2.0], [1.0, np.inf]]), 3)
    assert sorted(ids) == ["a", "b", "c"]


def test_diversity_strategy_avoids_duplicates(binary):
    table = binary.suggest("m", k=20, strategy="diversity", record=False, pool=200)
    ids = table.column("example_id").to_pylist()
    assert len(set(ids)) == 20
    assert table.column("diversity").to_pylist()[0] == 1.0


def test_random_is_seeded(binary):
    a = binary.suggest("m", k=10, strategy="random", seed=1, record=False)
    b = binary.suggest("m", k=10, strategy="random", seed=1, record=False)
    c = binary.suggest("m", k=10, strategy="random", seed=2, record=False)
    assert a.column("example_id").equals(b.column("example_id"))
    assert not a.column("example_id").equals(c.column("example_id"))


def test_mix_shares_budget_by_weight_and_explains(binary):
    table = binary.suggest("m", k=40, strategy="mix", record=False)
    assert table.num_rows == 40
    assert len(set(table.column("example_id").to_pylist())) == 40
    by = table.column("picked_by").to_pylist()
    # committee drops out (one version): the rest renormalised, seats by D'Hondt
    weights = {"entropy": 0.4, "novelty": 0.15, "slices": 0.15, "diversity": 0.1}
    for name, weight in weights.items():
        assert abs(by.count(name) - 40 * weight / 0.8) <= 1.0, (name, by.count(name))
    assert sum(by.count(name) for name in weights) == 40
    assert set(table.column("strategy").to_pylist()) == {"mix"}
    assert all(r.startswith("mix/") for r in table.column("reason").to_pylist())
    assert table.column("entropy").null_count == 0 and table.column("novelty").null_count == 0
    priorities = table.column("priority").to_pylist()
    assert priorities == sorted(priorities, reverse=True)
    custom = binary.suggest(
        "m", k=10, strategy="mix", weights={"entropy": 1, "random": 1}, record=False
    )
    assert sorted(custom.column("picked_by").to_pylist()) == ["entropy"] * 5 + ["random"] * 5


def test_regression_mix_and_errors():
    rng = np.random.default_rng(2)
    with blank_store() as store:
        store.register_model("r", "v1", "regression")
        ids = [str(i) for i in range(200)]
        store.log_features(
            "r", pa.table({"example_id": ids, "x": rng.normal(size=200)}), env="training"
        )
        store.log_features("r", pa.table({"example_id": ids, "x": rng.normal(size=200)}))
        store.log_predictions(
            "r", pa.table({"example_id": ids, "prediction": rng.normal(size=200)}), version="v1"
        )
        table = store.suggest("r", k=10, record=False)
        assert table.num_rows == 10
        assert set(table.column("picked_by").to_pylist()) <= {"novelty", "diversity"}
        with pytest.raises(InvalidParameterError, match="regression"):
            store.suggest("r", k=5, strategy="entropy")


def test_regression_diversity_pool_is_the_most_novel_candidates():
    """A regression model's diversity pool is its most novel candidates: rows v1 did not
    predict are not in it, and the picks are numpy k-center over that pool."""
    rng = np.random.default_rng(4)
    n = 900
    with blank_store() as store:
        store.register_model("r", "v1", "regression")
        ids = [f"{i:04d}" for i in range(n)]
        train = {"x": rng.normal(size=n), "y": rng.normal(size=n)}
        store.log_features("r", pa.table({"example_id": ids, **train}), env="training")
        serving = {"x": rng.standard_t(3, size=n), "y": rng.standard_t(3, size=n)}
        store.log_features("r", pa.table({"example_id": ids, **serving}))
        predicted = ids[1::2]  # the most novel rows include many v1 did not predict
        store.log_predictions(
            "r",
            pa.table({"example_id": predicted, "prediction": rng.normal(size=len(predicted))}),
            version="v1",
        )
        novel = store.suggest("r", k=len(predicted), strategy="novelty", record=False)
        got = store.suggest("r", k=15, strategy="diversity", pool=60, record=False)
    pool = novel.column("example_id").to_pylist()[:60]
    assert set(pool) <= set(predicted)
    at = {e: i for i, e in enumerate(ids)}
    x = np.column_stack([serving["x"], serving["y"]])[[at[e] for e in pool]]
    expected, scores = k_center(pool, x, 15)
    assert got.column("example_id").to_pylist() == expected
    assert got.column("diversity").to_pylist() == pytest.approx(scores)


def test_parameter_errors(binary):
    with pytest.raises(InvalidParameterError, match="strategy='nope'"):
        binary.suggest("m", strategy="nope")
    with pytest.raises(InvalidParameterError, match="k=0"):
        binary.suggest("m", k=0)
    with pytest.raises(InvalidParameterError, match="weights has unknown strategy"):
        binary.suggest("m", weights={"bogus": 1.0})
    with pytest.raises(InvalidParameterError, match="unknown column"):
        binary.suggest("m", where="nope > 1")
    with pytest.raises(InvalidParameterError, match="by='zz'"):
        binary.suggest("m", strategy="slices", by="zz")
    with pytest.raises(InvalidParameterError, match="expires_in"):
        binary.suggest("m", k=1, expires_in="soon")


def test_where_since_until_restrict_candidates(binary):
    table = binary.suggest("m", k=500, strategy="entropy", where="region = 'a'", record=False)
    regions = (
        binary.sql(
            "SELECT DISTINCT region FROM m.features WHERE env = 'serving' AND list_contains(?, "
            "example_id)",
            [table.column("example_id").to_pylist()],
        )
        .column(0)
        .to_pylist()
    )
    assert regions == ["a"]
    far = binary.suggest("m", k=5, strategy="entropy", since="2100-01-01", record=False)
    assert far.num_rows == 0


@pytest.mark.parametrize("strategy", ["novelty", "slices", "mix"])
def test_picks_of_feature_rankings_are_candidates_of_the_version(monkeypatch, strategy):
    """Novelty and slices rank serving feature rows; only those v2 predicted (and not
    labeled) may come out, and novelty gives the same order as over every example."""
    from evalstore.flywheel.suggest import run as module

    checks = []
    confirmed = module._confirmed
    monkeypatch.setattr(
        module, "_confirmed", lambda ctx, ids: checks.append(confirmed(ctx, ids)) or checks[-1]
    )
    with make_binary(n=600, seed=3) as store:
        store.register_model("m", "v2", "binary")
        ids = [f"e{i:04d}" for i in range(0, 600, 3)]  # v2 predicted a third of them
        store.log_predictions(
            "m", pa.table({"example_id": ids, "score": np.linspace(0, 1, len(ids))}), version="v2"
        )
        store.log_labels("m", pa.table({"example_id": ids[:20], "label": ["1"] * 20}))
        got = store.suggest("m", k=40, strategy=strategy, version="v2", record=False)
        assert got.num_rows == 40
        picked = got.column("example_id").to_pylist()
        assert set(picked) <= set(ids[20:])
        assert set(got.column("version").to_pylist()) == {"v2"}
        # the first picks held rows v2 did not predict: redone with eager checks
        assert checks == [False, True]
        if strategy == "novelty":
            every = store.suggest("m", k=600, strategy="novelty", version="v1", record=False)
            allowed = set(ids[20:])
            expected = [e for e in every.column("example_id").to_pylist() if e in allowed]
            assert picked == expected[:40]


def test_mix_with_where_and_since_picks_only_such_candidates():
    rng = np.random.default_rng(9)
    n = 800
    ids = [f"e{i:04d}" for i in range(n)]
    late = ids[::2]  # predicted in 2030, the others in 2026: only these are in range
    ts = pa.array(
        [np.datetime64("2030-01-01" if i % 2 == 0 else "2026-01-01", "us") for i in range(n)]
    )
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        train = {"x": rng.normal(size=n), "region": rng.choice(["a", "b", "c"], n)}
        store.log_features("m", pa.table({"example_id": ids, **train}), env="training")
        serving = {"x": rng.standard_t(3, size=n), "region": rng.choice(["a", "b", "c"], n)}
        store.log_features("m", pa.table({"example_id": ids, **serving}))
        store.log_predictions(
            "m", pa.table({"example_id": ids, "score": rng.uniform(size=n), "ts": ts}), "v1"
        )
        store.log_labels("m", pa.table({"example_id": late[:30], "label": ["0"] * 30}))
        got = store.suggest(
            "m", k=60, strategy="mix", where="region <> 'a'", since="2029-12-31", record=False
        )
    region = dict(zip(ids, serving["region"], strict=True))
    picked = got.column("example_id").to_pylist()
    assert len(picked) == 60 == len(set(picked))
    assert set(picked) <= set(late[30:])
    assert all(region[e] != "a" for e in picked)
    assert {"entropy", "novelty", "slices"} <= set(got.column("picked_by").to_pylist())


# ---------------------------------------------------------------- requests


def test_requests_lifecycle(binary):
    first = binary.suggest("m", k=10, strategy="entropy")
    assert first.column("request_id").null_count == 0
    opened = binary.label_requests("m", status="open")
    assert opened.num_rows == 10
    # open requests are never suggested again
    second = binary.suggest("m", k=10, strategy="entropy")
    assert not set(first.column("example_id").to_pylist()) & set(
        second.column("example_id").to_pylist()
    )
    ids = first.column("example_id").to_pylist()
    # a label fulfils the request in the same transaction
    receipt = binary.log_labels("m", pa.table({"example_id": ids[:3], "label": ["1", "0", "1"]}))
    done = binary.label_requests("m", status="fulfilled")
    assert sorted(done.column("example_id").to_pylist()) == sorted(ids[:3])
    assert set(done.column("label_batch_id").to_pylist()) == {receipt.batch_id}
    # a rejected label batch fulfils nothing
    with pytest.raises(ValidationError):
        binary.log_labels("m", pa.table({"example_id": ids[3:5], "label": ["1", "maybe"]}))
    assert binary.label_requests("m", status="fulfilled").num_rows == 3
    # cancel, then the example can be suggested again
    assert binary.cancel_requests("m", example_ids=ids[3:5]) == 2
    assert binary.cancel_requests("m", example_ids=ids[3:5]) == 0
    assert binary.label_requests("m", status="cancelled").num_rows == 2
    # expiry
    assert binary.expire_requests("m", now="2100-01-01") == 15
    assert binary.label_requests("m", status="open").num_rows == 0
    third = binary.suggest("m", k=30, strategy="entropy", record=False)
    again = set(third.column("example_id").to_pylist())
    assert set(ids[3:5]) <= again  # cancelled and expired examples are candidates again
    assert not set(ids[:3]) & again  # labeled ones are not
    with pytest.raises(InvalidParameterError, match="status='nope'"):
        binary.label_requests(status="nope")


def test_never_expiring_and_read_only(tmp_path):
    path = tmp_path / "s.duckdb"
    with make_binary() as memory:
        table = memory.suggest("m", k=3, expires_in=None)
        assert table.column("expires_at").null_count == 3
    store = evalstore.open(path)
    store.register_model("m", "v1", "binary")
    store.close()
    with evalstore.open(path, read_only=True) as ro:
        with pytest.raises(ReadOnlyError, match="record=False"):
            ro.suggest("m", k=1)
        assert ro.suggest("m", k=1, record=False).num_rows == 0


def test_multiclass_suggest_matches_numpy_entropy():
    rng = np.random.default_rng(0)
    with blank_store() as store:
        store.register_model("mc", "v1", "multiclass", classes=["a", "b", "c"])
        n = 300
        ids = [str(i) for i in range(n)]
        p = rng.dirichlet([1, 1, 1], n)
        store.log_features("mc", pa.table({"example_id": ids, "x": rng.normal(size=n)}))
        store.log_predictions(
            "mc",
            pa.table({"example_id": ids, "a": p[:, 0], "b": p[:, 1], "c": p[:, 2]}),
            version="v1",
            probability_columns=["a", "b", "c"],
        )
        table = store.suggest("mc", k=5, strategy="entropy", record=False)
        margin = store.suggest("mc", k=5, strategy="margin", record=False)
    h = _entropy(p)
    assert table.column("example_id").to_pylist() == [ids[i] for i in np.argsort(-h)[:5]]
    np.testing.assert_allclose(table.column("entropy").to_numpy(), np.sort(h)[::-1][:5])
    top = -np.sort(-p, axis=1)
    m = 1 - (top[:, 0] - top[:, 1])
    assert margin.column("example_id").to_pylist() == [ids[i] for i in np.argsort(-m)[:5]]


# ---------------------------------------------------------------- regressions found in review


def test_regression_mix_picks_only_candidates_of_the_version():
    """Novelty ranks examples v1 never predicted first; mix must not pick them (the
    regression diversity pool checks eagerly and rejects ids novelty took optimistically)."""
    with blank_store() as store:
        store.register_model("r", "v1", "regression")
        training = pa.table({"example_id": [f"t{i}" for i in range(20)], "x": np.arange(20.0)})
        store.log_features("r", training, env="training")
        ids = [f"e{i:02d}" for i in range(20)]
        x = np.concatenate([np.arange(10.0), 100.0 + np.arange(10.0)])  # e10.. most novel
        store.log_features("r", pa.table({"example_id": ids, "x": x}))
        predicted = ids[:10]
        store.log_predictions(
            "r", pa.table({"example_id": predicted, "prediction": [1.0] * 10}), version="v1"
        )
        table = store.suggest("r", k=5)
        picked = table.column("example_id").to_pylist()
        assert len(picked) == 5 and set(picked) <= set(predicted)
        assert table.column("prediction").to_pylist() == ["1.0"] * 5
        opened = store.label_requests("r", status="open").column("example_id").to_pylist()
        assert sorted(opened) == sorted(picked)
        everything = store.suggest("r", k=50, record=False).column("example_id").to_pylist()
        assert sorted(everything) == sorted(set(predicted) - set(picked))


def test_mix_without_reference_rows_leaves_novelty_out():
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        ids = [f"e{i}" for i in range(20)]
        store.log_features("m", pa.table({"example_id": ids, "x": np.arange(20.0)}))
        score = np.arange(20) / 20
        store.log_predictions("m", pa.table({"example_id": ids, "score": score}), version="v1")
        table = store.suggest("m", k=5, record=False)
        assert table.num_rows == 5
        assert "novelty" not in set(table.column("picked_by").to_pylist())
        with pytest.raises(InvalidParameterError, match="strategy='novelty' needs reference"):
            store.suggest("m", k=5, strategy="novelty", record=False)


def test_regression_committee_is_the_documented_value_spread():
    """Regression: vote entropy 0, committee = spread / 2 with spread = (max - min) /
    (max - min + |mean|); with three versions the order follows the spread."""
    preds = {"x": [1.0, 1.0, 1.5], "y": [10.0, 10.5, 11.0], "z": [2.0, 2.0, 2.0]}
    with blank_store() as store:
        for v in ("v1", "v2", "v3"):
            store.register_model("r", v, "regression")
        for j, v in enumerate(("v1", "v2", "v3")):
            values = [p[j] for p in preds.values()]
            store.log_predictions(
                "r", pa.table({"example_id": list(preds), "prediction": values}), version=v
            )
        rows = {
            r["example_id"]: r
            for r in store.sql(
                "SELECT * FROM evalstore.suggest_committee('r', NULL, NULL)"
            ).to_pylist()
        }
        table = store.suggest("r", k=3, strategy="committee", record=False)
    for eid, p in preds.items():
        spread = (max(p) - min(p)) / (max(p) - min(p) + abs(np.mean(p)))
        assert rows[eid]["vote_entropy"] == 0.0
        assert rows[eid]["score_spread"] == pytest.approx(spread, abs=1e-12)
        assert rows[eid]["committee"] == pytest.approx(spread / 2, abs=1e-12)
    assert table.column("example_id").to_pylist() == ["x", "y", "z"]


def test_committee_with_one_version_is_an_error():
    with (
        make_binary(n=50) as store,
        pytest.raises(InvalidParameterError, match=r"at least two versions.*\(it has 1\)"),
    ):
        store.suggest("m", k=5, strategy="committee", record=False)
