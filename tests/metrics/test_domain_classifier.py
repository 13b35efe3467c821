"""Domain-classifier drift and categorical encodings of multivariate drift (issue 23, point 7).

The pieces are compared with scikit-learn (StratifiedKFold, LogisticRegression,
roc_auc_score, PolynomialFeatures, PCA) on random data with ties and missing values; the
store's rows with the same pieces applied by hand to the rows it read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import PolynomialFeatures

import evalstore
from evalstore.errors import InvalidParameterError
from evalstore.metrics.drift.domain_classifier import (
    MAX_PRODUCT_FEATURES,
    NEWTON_MAX_COLUMNS,
    DomainScorer,
    cross_validated_auc,
    design_matrix,
    domain_auc,
    fit_logistic,
    reference_chunk_aucs,
    roc_auc,
    stratified_folds,
)
from evalstore.metrics.drift.encoding import ONEHOT_MAX_LEVELS, CategoricalEncoding
from tests.conftest import blank_store

START = datetime(2026, 5, 1, tzinfo=UTC)
N_REFERENCE, N_SERVING = 400, 240
GOLDENS = Path(__file__).parent / "goldens"


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("n0", "n1", "k", "first"), [(17, 9, 5, 0), (100, 5, 5, 1), (5, 100, 3, 0), (50, 50, 5, 1)]
)
def test_folds_are_sklearns_stratified_kfold(n0, n1, k, first):
    rng = np.random.default_rng(n0 + n1)
    y = np.r_[np.zeros(n0), np.ones(n1)]
    rng.shuffle(y)
    y[0] = first  # the class seen first is numbered 0, as sklearn does
    expected = np.empty(len(y), dtype=int)
    for fold, (_, test) in enumerate(StratifiedKFold(k).split(np.zeros(len(y)), y)):
        expected[test] = fold
    np.testing.assert_array_equal(stratified_folds(y, k), expected)


def test_roc_auc_is_roc_auc_score_with_ties_and_nan_for_one_class():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    scores = rng.integers(0, 8, 300).astype(float)  # many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-15)
    assert np.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


@pytest.mark.parametrize(
    ("c", "columns"), [(0.05, 6), (1.0, 6), (20.0, 6), (1.0, NEWTON_MAX_COLUMNS + 1)]
)
def test_logistic_fit_is_sklearns_logistic_regression(c, columns):
    # Newton's method up to NEWTON_MAX_COLUMNS columns, L-BFGS above
    rng = np.random.default_rng(11)
    x = rng.normal(size=(400, columns))
    x[:, 1] = x[:, 0] + 0.01 * x[:, 1]  # nearly collinear columns, as degree-2 terms are
    y = (x[:, :6] @ rng.normal(size=6) + rng.logistic(size=400) > 0.3).astype(int)
    w, b = fit_logistic(x, y, c)
    reference = LogisticRegression(C=c, tol=1e-12, max_iter=10_000).fit(x, y)
    # both minimise the same strictly convex objective; tolerance = their stopping rules
    np.testing.assert_allclose(w, reference.coef_[0], atol=1e-5)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-5)


def test_cross_validated_auc_is_sklearns_pipeline_on_the_fold_predictions():
    rng = np.random.default_rng(5)
    x = np.vstack([rng.normal(size=(120, 4)), rng.normal(0.3, 1.2, size=(80, 4))])
    y = np.r_[np.zeros(120), np.ones(80)]
    predictions = np.empty(len(y))
    for train, test in StratifiedKFold(5).split(x, y):
        model = LogisticRegression(C=0.7, tol=1e-12, max_iter=10_000).fit(x[train], y[train])
        predictions[test] = model.predict_proba(x[test])[:, 1]
    assert cross_validated_auc(x, y, 5, 0.7) == pytest.approx(
        roc_auc_score(y, predictions), abs=1e-4
    )


def test_design_matrix_standardises_imputes_and_adds_polynomial_terms():
    rng = np.random.default_rng(8)
    reference = rng.normal(2.0, 3.0, size=(50, 4))
    reference[3, 1] = np.nan
    reference[:, 3] = 5.0  # a constant column keeps scale 1
    rows = rng.normal(size=(7, 4))
    rows[2, 0] = np.nan
    design = design_matrix(reference, n_numeric=3)
    mean = np.nanmean(reference, axis=0)
    imputed = np.where(np.isnan(reference), mean, reference)
    scale = imputed.std(axis=0)
    scale[3] = 1.0
    z = (np.where(np.isnan(rows), mean, rows) - mean) / scale
    missing = np.isnan(rows[:, :3]).astype(float)  # the indicators of the numeric features
    expected = np.hstack(
        [PolynomialFeatures(2, include_bias=False).fit_transform(z[:, :3]), z[:, 3:], missing]
    )
    np.testing.assert_allclose(design.transform(rows), expected, atol=1e-12)
    linear = design_matrix(reference, 3, "linear").transform(rows)
    np.testing.assert_allclose(linear, np.hstack([z, missing]), atol=1e-12)
    wide = design_matrix(rng.normal(size=(30, MAX_PRODUCT_FEATURES + 1)), MAX_PRODUCT_FEATURES + 1)
    assert wide.transform(np.zeros((2, MAX_PRODUCT_FEATURES + 1))).shape[1] == 3 * (
        MAX_PRODUCT_FEATURES + 1
    )  # squares only, and the indicators
    assert "pairwise products left out" in wide.describe()


def test_same_distribution_gives_about_half_and_a_variance_shift_near_one():
    rng = np.random.default_rng(21)
    reference = rng.normal(size=(600, 3))
    same = rng.normal(size=(600, 3))
    wider = rng.normal(size=(600, 3)) * np.array([3.0, 1.0, 1.0])  # same mean, more spread
    design = design_matrix(reference, 3)
    assert abs(domain_auc(design, reference, same) - 0.5) < 0.05
    # the best classifier of N(0, 1) against N(0, 9) thresholds |x|: AUC = 2/π atan(3)
    assert domain_auc(design, reference, wider) == pytest.approx(2 / np.pi * np.arctan(3), abs=0.03)
    far = np.vstack([rng.normal(2.0, 1.0, size=(300, 3)), rng.normal(size=(300, 3)) * 4])
    assert domain_auc(design, reference, far) > 0.9
    # a linear classifier cannot see a change of spread: why the squares are there
    assert abs(domain_auc(design_matrix(reference, 3, "linear"), reference, wider) - 0.5) < 0.06


def test_a_change_in_missingness_alone_is_seen():
    rng = np.random.default_rng(9)
    reference, window = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    window[rng.uniform(size=500) < 0.3, 0] = np.nan  # 30% of x0 missing, none before
    design = design_matrix(reference, 2)
    # the indicator column tells 30% of the window apart: AUC = 0.5 + 0.3 / 2
    assert domain_auc(design, reference, window) == pytest.approx(0.65, abs=0.03)


def test_reference_chunk_aucs_label_each_chunk_against_the_rest():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(100, 2))
    design = design_matrix(reference, 2)
    values = reference_chunk_aucs(design, reference, 4)
    x = design.transform(reference)
    labels = np.zeros(100, dtype=bool)
    labels[25:50] = True
    assert values[1] == cross_validated_auc(x, labels)
    with pytest.raises(InvalidParameterError, match=r"learn_chunks=30 needs at least 5 reference"):
        reference_chunk_aucs(design, reference, 30)


def test_a_fit_too_large_is_refused_before_it_runs():
    options = dict(
        classifier_folds=5, learn_chunks=4, learn_k=3.0, classifier_rows=100_000, seed=0,
        classifier_terms="quadratic", classifier_range=(0.45, 0.65), classifier_c=1.0,
    )  # fmt: skip
    reference = np.random.default_rng(1).normal(size=(50, 20))  # 20 + 210 + 20 terms
    with pytest.raises(InvalidParameterError, match=(
        r"^domain_classifier: classifier_rows=100000 with 250 terms is too much work for one "
        r"fit \(2 x rows x \(terms \+ 1\)² = 1.26e\+10 > 2e\+09\); lower classifier_rows"
    )):  # fmt: skip
        DomainScorer.fit(reference, 20, options)
    assert DomainScorer.fit(reference, 20, {**options, "classifier_terms": "linear"}).design


def test_scorer_gives_null_with_a_reason_for_empty_and_one_row_windows():
    rng = np.random.default_rng(3)
    options = dict(
        classifier_folds=5, learn_chunks=4, learn_k=3.0, classifier_rows=100, seed=0,
        classifier_terms="quadratic", classifier_range=None, classifier_c=1.0,
    )  # fmt: skip
    scorer = DomainScorer.fit(rng.normal(size=(60, 2)), 2, options)
    empty = scorer.row(np.empty((0, 2)))
    assert empty["value"] is None and empty["drifted"] is None
    assert empty["reason"] == "no rows in the window"
    one = scorer.row(rng.normal(size=(1, 2)))
    assert one["value"] is None and one["drifted"] is None
    assert one["reason"] == (
        "the domain classifier needs at least 5 rows on each side (one per cross-validation "
        "fold); the window has 1"
    )


# --------------------------------------------------------------------------- encodings


def test_count_and_onehot_encodings_are_the_hand_built_matrices():
    reference = [["b", "a", None, "b", "c", "a", "b"], ["x", "y", "y", None, None, None, "x"]]
    rows = [["a", "z", None, "c"], [None, "x", "y", "w"]]
    count = CategoricalEncoding.fit(reference, "count")
    # missing -> most frequent reference category (ties: smallest text): 'b' and 'x'
    b, a, c = 4 / 7, 2 / 7, 1 / 7
    x, y = 5 / 7, 2 / 7
    expected = np.array([[a, x], [0.0, x], [b, y], [c, 0.0]])
    np.testing.assert_allclose(count.transform(rows), expected)
    onehot = CategoricalEncoding.fit(reference, "onehot")
    assert onehot.column_names(["f", "g"]) == ["f=b", "f=a", "f=c", "g=x", "g=y"]
    expected = np.array(
        [[0, 1, 0, 1, 0], [0, 0, 0, 1, 0], [1, 0, 0, 0, 1], [0, 0, 1, 0, 0]], dtype=float
    )
    np.testing.assert_array_equal(onehot.transform(rows), expected)
    many = [[f"v{i:03d}" for i in range(ONEHOT_MAX_LEVELS + 10)] + ["v059"]]
    capped = CategoricalEncoding.fit(many, "onehot")
    assert capped.width == ONEHOT_MAX_LEVELS and capped.levels[0][0] == "v059"


def test_encoding_errors_name_the_parameter_and_feature():
    with pytest.raises(InvalidParameterError, match=r"categorical_encoding='ordinal' is not an"):
        CategoricalEncoding.fit([["a"]], "ordinal")
    with pytest.raises(InvalidParameterError, match=r"categorical feature 'g' has no non-missing"):
        CategoricalEncoding.fit([[None, None]], "count", ["g"])


# --------------------------------------------------------------------------- the store


def _features(rng: np.random.Generator, n: int, prefix: str, start: datetime, shift: float):
    x = rng.normal(size=(n, 2))
    x[:, 1] = 0.6 * x[:, 0] + 0.8 * x[:, 1]
    x[:, 0] += shift
    p = [0.5, 0.3, 0.2] if shift == 0 else [0.2, 0.3, 0.5]
    kind = rng.choice(["a", "b", "c"], size=n, p=p).astype(object)
    kind[::13] = None
    a = np.round(x[:, 0], 1)  # ties
    a[5::29] = np.nan
    return pa.table({
        "example_id": [f"{prefix}{i:05d}" for i in range(n)],
        "ts": [start + timedelta(minutes=30 * i) for i in range(n)],
        "a": a, "b": x[:, 1], "kind": pa.array(kind, pa.string()),
    })  # fmt: skip


@pytest.fixture(scope="module")
def store():
    """Model m: 400 training rows; 240 serving rows over 5 days, the last 120 shifted
    (mean of a, and the shares of kind), then one lone row on day 9."""
    rng = np.random.default_rng(23)
    s = blank_store()
    s.register_model("m", "v1", "binary")
    s.log_features("m", _features(rng, N_REFERENCE, "t", START - timedelta(days=30), 0.0),
                   env="training")  # fmt: skip
    serving = pa.concat_tables([
        _features(rng, N_SERVING // 2, "s", START, 0.0),
        _features(rng, N_SERVING // 2, "u", START + timedelta(hours=60), 1.5),
        _features(rng, 1, "z", START + timedelta(days=9), 0.0),
    ])  # fmt: skip
    s.log_features("m", serving)
    yield s
    s.close()


def _sides(store: evalstore.Store) -> tuple[np.ndarray, dict[str, list], np.ndarray, dict]:
    """Reference (time order = id order here) and serving rows as the store reads them."""
    rows = store.sql(
        "SELECT env, ts, a, b, kind FROM m.features ORDER BY env, ts, example_id"
    ).to_pandas()
    ref, srv = rows[rows.env == "training"], rows[rows.env == "serving"]

    def kinds(frame):
        return [v if isinstance(v, str) else None for v in frame.kind]  # NULL: None

    return ref[["a", "b"]].to_numpy(float), kinds(ref), srv, kinds(srv)


def test_store_domain_classifier_is_the_core_on_the_encoded_rows(store):
    result = store.multivariate_drift(
        "m", window="1 day", features=["a", "b", "kind"], methods=["domain_classifier"],
        learn_chunks=5,
    ).to_pylist()  # fmt: skip
    reference, ref_kinds, serving, srv_kinds = _sides(store)
    encoding = CategoricalEncoding.fit([ref_kinds], "count")
    ref_matrix = np.hstack([reference, encoding.transform([ref_kinds])])
    srv_matrix = np.hstack([serving[["a", "b"]].to_numpy(float), encoding.transform([srv_kinds])])
    design = design_matrix(ref_matrix, 2)
    chunks = reference_chunk_aucs(design, ref_matrix, 5)
    low = max(0.0, chunks.mean() - 3 * chunks.std())
    high = min(1.0, chunks.mean() + 3 * chunks.std())
    days = serving.ts.dt.floor("D").to_numpy()
    assert len(result) == len(np.unique(days))
    for row, day in zip(result, np.unique(days), strict=True):
        window = srv_matrix[days == day]
        assert row["n_analysis"] == len(window)
        assert row["threshold_low"] == pytest.approx(low, abs=1e-12)
        assert row["threshold"] == pytest.approx(high, abs=1e-12)
        assert "count-encoded" in row["variant"] and "5-fold stratified" in row["variant"]
        if len(window) < 5:  # the lone row of day 9
            assert row["value"] is None and row["drifted"] is None
            assert "the window has 1" in row["reason"]
            continue
        assert row["value"] == pytest.approx(domain_auc(design, ref_matrix, window), abs=1e-12)
        assert row["drifted"] == (not low <= row["value"] <= high)
    values = [r["value"] for r in result if r["value"] is not None]
    assert max(values[:2]) < 0.65 and min(values[-2:]) > 0.8  # quiet days, then shifted ones
    assert result[-2]["drifted"] is True


def test_store_pca_with_categoricals_is_sklearns_reconstruction_of_the_encoded_matrix(store):
    reference, ref_kinds, serving, srv_kinds = _sides(store)
    for encoding_name in ("count", "onehot"):
        result = store.multivariate_drift(
            "m", window="100 days", features=["kind", "a", "b"], methods=["pca"],
            categorical_encoding=encoding_name,
        ).to_pylist()  # fmt: skip
        encoding = CategoricalEncoding.fit([ref_kinds], encoding_name)
        ref = np.hstack([reference, encoding.transform([ref_kinds])])
        srv = np.hstack([serving[["a", "b"]].to_numpy(float), encoding.transform([srv_kinds])])
        mean = np.nanmean(ref, axis=0)
        ref, srv = (np.where(np.isnan(m), mean, m) for m in (ref, srv))
        scale = ref.std(axis=0)
        pca = PCA(n_components=0.65, svd_solver="full").fit((ref - mean) / scale)
        z = (srv - mean) / scale
        error = np.linalg.norm(z - pca.inverse_transform(pca.transform(z)), axis=1).mean()
        assert result[0]["value"] == pytest.approx(error, abs=1e-9)
        assert f"categorical features {encoding_name}-encoded" in result[0]["variant"]


def test_store_caps_rows_per_side_with_a_seed_and_takes_a_given_range(store):
    first = store.multivariate_drift(
        "m", window="100 days", methods=["domain_classifier"], classifier_rows=60,
        classifier_range=(0.45, 0.65), classifier_terms="linear",
    ).to_pylist()[0]  # fmt: skip
    reference, _, serving, _ = _sides(store)
    rng = np.random.default_rng(0)
    ref = reference[np.sort(rng.choice(len(reference), 60, replace=False))]
    rng = np.random.default_rng(0)
    srv = serving[["a", "b"]].to_numpy(float)
    srv = srv[np.sort(rng.choice(len(srv), 60, replace=False))]
    expected = domain_auc(design_matrix(ref, 2, "linear"), ref, srv)
    assert first["value"] == pytest.approx(expected, abs=1e-12)
    assert (first["threshold_low"], first["threshold"]) == (0.45, 0.65)
    assert first["threshold_source"] == "given: classifier_range"
    assert (
        "linear terms, missing-value indicators of the numeric features; up to 60 rows per "
        "side (seed 0)"
    ) in first["variant"]


def test_a_reference_too_small_to_learn_a_range_keeps_the_value_and_says_why(store):
    row = store.multivariate_drift(
        "m", window="100 days", methods=["domain_classifier"], classifier_rows=40,
        learn_chunks=10,
    ).to_pylist()[0]  # fmt: skip
    assert row["value"] is not None and row["drifted"] is None and row["threshold"] is None
    assert row["reason"].startswith(
        "the alert range is learned from 10 reference chunks of at least 5 rows, so the "
        "reference needs 50 rows (it has 40)"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"categorical_encoding": "ordinal"}, r"categorical_encoding='ordinal' is not an enc"),
        ({"classifier_terms": "cubic"}, r"classifier_terms='cubic' is not a set of classifier"),
        ({"classifier_range": (0.7, 0.6)}, r"classifier_range=\(0.7, 0.6\) must be a pair"),
        ({"classifier_folds": 1}, r"classifier_folds=1 must be an int >= 2"),
        ({"classifier_rows": 10**9}, r"classifier_rows=1000000000 is above the limit"),
        ({"classifier_c": 0}, r"classifier_c=0 must be a finite number > 0"),
    ],
)
def test_option_errors_name_the_parameter(store, options, message):
    with pytest.raises(InvalidParameterError, match=message):
        store.multivariate_drift("m", methods=["domain_classifier"], **options)


def test_pca_with_categoricals_equals_nannymls_data_reconstruction_golden():
    """NannyML 0.13's DataReconstructionDriftCalculator on mixed features with ties and
    missing values (golden written by benchmarks/bench_multivariate.py --golden): evalstore's
    pca with count-encoded categoricals, the same chunks, gives its values and range."""
    golden = json.loads((GOLDENS / "multivariate_nannyml.json").read_text())
    features = golden["features"]
    s = blank_store()
    s.register_model("g", "v1", "binary")
    for env, rows in (("training", golden["reference"]), ("serving", golden["analysis"])):
        s.log_features("g", pa.table({
            "example_id": [f"{env[0]}{i:04d}" for i in range(len(rows))],
            "ts": [START + timedelta(minutes=i) for i in range(len(rows))],
            **{f: pa.array([r[f] for r in rows], pa.float64() if f[0] == "x" else pa.string())
               for f in features},
        }), env=env)  # fmt: skip
    result = s.multivariate_drift(
        "g", window={"chunks": 4, "split": "nannyml"}, features=features, methods=["pca"],
        learn_chunks=10, categorical_encoding="count",
    ).to_pylist()  # fmt: skip
    s.close()
    np.testing.assert_allclose([r["value"] for r in result], golden["values"], atol=1e-9)
    assert result[0]["threshold_low"] == pytest.approx(golden["lower_threshold"], abs=1e-9)
    assert result[0]["threshold"] == pytest.approx(golden["upper_threshold"], abs=1e-9)
