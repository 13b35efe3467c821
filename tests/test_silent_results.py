"""Results that looked wrong without a word now come with one (issue 25, point 5)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalstore.errors import EvalstoreWarning, InvalidParameterError
from tests.conftest import blank_store

START = datetime(2026, 4, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def store():
    rng = np.random.default_rng(4)
    with blank_store() as store:
        store.register_model("m", "v1", "binary", training_dataset="train")
        n = 200
        ts = [START + timedelta(hours=int(h)) for h in rng.integers(0, 72, n)]
        for env, prefix, dataset in (("training", "t", "train"), ("serving", "s", None)):
            table = pa.table(
                {
                    "example_id": [f"{prefix}{i}" for i in range(n)],
                    "ts": ts,
                    "x": rng.normal(size=n),
                }
            )
            store.log_features("m", table, env=env, dataset=dataset)
        score = rng.random(n)
        store.log_predictions(
            "m",
            pa.table(
                {
                    "example_id": [f"s{i}" for i in range(n)],
                    "ts": ts,
                    "score": score,
                    "prediction": (score > 0.5).astype(int).astype(str),
                }
            ),
            "v1",
        )
        store.log_labels(
            "m",
            pa.table(
                {
                    "example_id": [f"s{i}" for i in range(n)],
                    "label": rng.integers(0, 2, n).astype(str),
                    "ts": ts,
                }
            ),
        )
        yield store


@pytest.mark.parametrize("reference", [{"dataset": "nosuch"}, "dataset:nosuch"])
def test_an_unknown_reference_dataset_lists_the_known_ones(store, reference):
    message = r"reference dataset 'nosuch' holds no rows of model 'm'; known datasets: 'train'"
    with pytest.raises(InvalidParameterError, match=message):
        store.drift("m", reference=reference)
    with pytest.raises(InvalidParameterError, match=message):
        store.quality("m", reference=reference)
    with pytest.raises(InvalidParameterError, match=message):
        store.multivariate_drift("m", reference=reference, methods=("pca",))
    # the known tag, in either form, is a reference with rows
    rows = store.drift("m", reference="dataset:train", window="1 day", features=["x"])
    assert min(rows.column("n_reference").to_pylist()) == 200


@pytest.mark.parametrize("window", [5000, "5000", " 5000 "])
def test_health_refuses_a_bare_number_window(store, window):
    with pytest.raises(
        InvalidParameterError,
        match=r"health needs an interval.*write the unit, e\.g\. '5000 seconds'",
    ):
        store.health("m", window=window)


def test_output_drift_against_training_says_it_has_no_predictions(store):
    table = store.drift("m", window="1 day", features=["score", "prediction", "x"]).to_pylist()
    outputs = [r for r in table if r["feature"] in ("score", "prediction")]
    assert outputs and all(r["value"] is None and r["n_reference"] == 0 for r in outputs)
    for row in outputs:
        assert row["reason"] == (
            f"the reference (training) has no predictions: {row['feature']} exists only for "
            "served rows; compare with earlier serving windows, reference={'previous': n}, "
            "or a (start, end) range of serving time"
        )
    assert all(r["reason"] is None for r in table if r["feature"] == "x")
    # the suggested reference has predictions: values, and no such reason
    rolling = store.drift("m", window="1 day", reference={"previous": 1}, features=["score"])
    assert rolling.column("value").to_pylist()[-1] is not None
    assert not any("has no predictions" in (r or "") for r in rolling.column("reason").to_pylist())


def test_an_as_of_before_every_batch_warns(store, tmp_path):
    with pytest.warns(
        EvalstoreWarning, match=r"as_of='2020-01-01T00:00:00\+00:00' precedes"
    ) as got:
        selection = store.selection("m", as_of="2020-01-01")
    (record,) = got.list
    assert record.filename == __file__  # attributed to the caller's line
    assert "as_of is the time rows were committed to the store" in str(record.message)
    assert "use since=/until=" in str(record.message)
    assert selection.extra["warnings"] == [str(record.message)]
    target = tmp_path / "empty.parquet"
    store.export(selection, target)
    assert pq.read_table(target).num_rows == 0
    # an as_of after the batches selects rows, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        later = store.selection("m", as_of=datetime.now(UTC) + timedelta(days=1))
    assert later.extra == {}
    assert store.select("m", as_of=datetime.now(UTC)).num_rows == 200
