"""Bounded memory of multivariate drift (issue 23, point 7): rows are encoded only after the
seeded subsample (mmd, domain_classifier) or a block at a time (pca), with the values of
encoding everything at once; a domain_classifier call too large in total is refused.

Compared with: CategoricalEncoding.transform on the Python values, PCAReconstruction.fit
on the whole matrix, numpy's mean/std, and the store's own one-block results.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from evalstore.errors import InvalidParameterError
from evalstore.metrics.drift import encoded_rows, multivariate
from evalstore.metrics.drift.domain_classifier import DomainScorer
from evalstore.metrics.drift.encoded_rows import EncodedRows, mean_and_std, subsample_index
from evalstore.metrics.drift.encoding import CategoricalEncoding
from evalstore.metrics.drift.kernels import PCAReconstruction
from tests.conftest import blank_store
from tests.metrics.test_domain_classifier import _features

START = datetime(2026, 5, 1, tzinfo=UTC)
FEATURES = ["a", "b", "kind"]


@pytest.fixture(scope="module")
def store():
    """Model m: 300 training rows, 300 serving rows (the last 100 shifted)."""
    rng = np.random.default_rng(5)
    s = blank_store()
    s.register_model("m", "v1", "binary")
    s.log_features("m", _features(rng, 300, "t", START - timedelta(days=30), 0.0),
                   env="training")  # fmt: skip
    s.log_features("m", pa.concat_tables([
        _features(rng, 200, "s", START, 0.0),
        _features(rng, 100, "u", START + timedelta(days=5), 1.5),
    ]))  # fmt: skip
    yield s
    s.close()


def _wide(n: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    kind = rng.choice(["x", "y", "z", "w"], size=n).astype(object)
    kind[::7] = None
    other = rng.choice(["p", "q"], size=n).astype(object)
    numeric = np.round(rng.normal(size=n), 1)
    numeric[3::11] = np.nan
    table = pa.table({
        "f0": numeric, "c0": pa.array(kind, pa.string()), "c1": pa.array(other, pa.string()),
    })  # fmt: skip
    reference = np.arange(n) < n // 2
    table = table.set_column(1, "c0", pa.array([*kind[: n // 2], *(["new"] * (n - n // 2))]))
    return table, reference


@pytest.mark.parametrize("encoding", ["count", "onehot"])
def test_encoded_rows_are_the_encoding_of_the_values(encoding):
    table, reference = _wide(60, 1)
    rows = EncodedRows.from_arrow(table, 1, ["kind", "other"], reference, encoding)
    columns = [table.column(c).to_pylist() for c in ("c0", "c1")]
    fitted = CategoricalEncoding.fit(
        [[v for v, r in zip(c, reference, strict=True) if r] for c in columns], encoding
    )
    assert rows.encoding == fitted
    expected = np.hstack([table.column("f0").to_numpy()[:, None], fitted.transform(columns)])
    index = np.array([0, 59, 3, 31, 7])
    np.testing.assert_array_equal(rows.take(index), expected[index])
    np.testing.assert_array_equal(np.vstack(list(rows.blocks(np.arange(60)))), expected)
    assert rows.width == expected.shape[1]
    np.testing.assert_array_equal(rows.finite(), np.isfinite(expected).all(axis=1))


def test_blocks_hold_at_most_block_cells(monkeypatch):
    monkeypatch.setattr(encoded_rows, "BLOCK_CELLS", 20)
    table, reference = _wide(60, 2)
    rows = EncodedRows.from_arrow(table, 1, ["kind", "other"], reference, "onehot")
    sizes = [b.shape for b in rows.blocks(np.arange(60))]
    assert rows.width == 1 + 4 + 2
    assert {s[0] for s in sizes[:-1]} == {20 // 7} and sum(s[0] for s in sizes) == 60
    finite = np.flatnonzero(rows.finite())
    mean, std = mean_and_std(rows, finite)
    x = rows.take(finite)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=0, atol=1e-14)
    np.testing.assert_allclose(std, x.std(axis=0), rtol=0, atol=1e-14)


def test_subsample_index_is_the_draw_on_the_rows():
    index = np.arange(10, 50)
    rng = np.random.default_rng(3)
    expected = index[np.sort(np.random.default_rng(3).choice(40, size=7, replace=False))]
    np.testing.assert_array_equal(subsample_index(index, 7, rng), expected)
    assert subsample_index(index, 40, rng) is index


def test_pca_fit_in_blocks_is_the_fit_of_the_whole_matrix():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    x[:, 4] = 2.0  # constant column
    x[::17, 1] = np.nan
    whole = PCAReconstruction.fit(x, 0.8)
    blocks = PCAReconstruction.fit_blocks(lambda: (x[i : i + 37] for i in range(0, 500, 37)), 0.8)
    assert blocks.n_components == whole.n_components == 2
    np.testing.assert_allclose(blocks.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(blocks.scale, whole.scale, rtol=1e-13)
    np.testing.assert_allclose(
        blocks.explained_variance_ratio, whole.explained_variance_ratio, rtol=1e-12
    )
    np.testing.assert_allclose(blocks.row_errors(x), whole.row_errors(x), atol=1e-12)
    with pytest.raises(InvalidParameterError, match="at least 2 rows"):
        PCAReconstruction.fit_blocks(lambda: iter([x[:1]]), 0.8)


def _drift(store, **options):
    return store.multivariate_drift(
        "m", window={"chunks": 3}, features=FEATURES, categorical_encoding="onehot", learn_chunks=5,
        max_rows=80, n_permutations=50, classifier_rows=70, **options,
    ).to_pylist()  # fmt: skip


def test_encoded_matrices_have_the_capped_rows_not_the_window_rows(store, monkeypatch):
    taken: list[int] = []
    take = EncodedRows.take

    def spy(self, index):
        taken.append(len(index))
        return take(self, index)

    monkeypatch.setattr(EncodedRows, "take", spy)
    monkeypatch.setattr(encoded_rows, "BLOCK_CELLS", 5 * 50)  # 50 rows of a, b, kind=a|b|c
    for method, cap in (("mmd", 80), ("domain_classifier", 70), ("pca", 50)):
        taken.clear()
        rows = _drift(store, methods=[method])
        assert [r["n_analysis"] for r in rows] == [100, 100, 100]
        assert rows[0]["n_reference"] == 300
        assert max(taken) == cap, method  # never a whole window (100) or reference (300)


def test_values_do_not_depend_on_the_block_size(store, monkeypatch):
    whole = _drift(store)
    monkeypatch.setattr(encoded_rows, "BLOCK_CELLS", 5 * 13)
    blocked = _drift(store)
    assert [r["method"] for r in blocked] == [r["method"] for r in whole]
    assert [r["value"] is None for r in whole] == [False] * 9
    for a, b in zip(whole, blocked, strict=True):
        for column in ("value", "p_value", "threshold", "threshold_low"):
            if a[column] is None:
                assert b[column] is None
            else:
                assert b[column] == pytest.approx(a[column], abs=1e-9), (a["method"], column)
        assert a["drifted"] == b["drifted"]


def test_a_domain_classifier_call_too_large_in_total_is_refused_before_any_fit(store, monkeypatch):
    fits: list[int] = []
    fit = DomainScorer.fit.__func__

    def spy(cls, *args, **kwargs):
        fits.append(1)
        return fit(cls, *args, **kwargs)

    monkeypatch.setattr(DomainScorer, "fit", classmethod(spy))
    # 3 windows of 70 capped rows + 70 reference rows, 5 learned chunks of 70: 770 rows;
    # terms: a, b, a², ab, b², the kind one-hot (3 levels), 2 missing indicators = 10
    work = 5 * 770 * 11**2
    monkeypatch.setattr(multivariate, "MAX_DOMAIN_CALL_WORK", work)
    assert len(_drift(store, methods=["domain_classifier"])) == 3
    monkeypatch.setattr(multivariate, "MAX_DOMAIN_CALL_WORK", work - 1)
    fits.clear()
    with pytest.raises(InvalidParameterError) as error:
        _drift(store, methods=["domain_classifier"])
    assert fits == []
    message = str(error.value)
    assert "3 windows with classifier_rows=70, classifier_folds=5 and 10 terms" in message
    assert f"= {work:.3g} > {work - 1:.3g}" in message
    for name in ("classifier_rows", "classifier_folds", "classifier_terms", "window=",
                 "classifier_range"):  # fmt: skip
        assert name in message
