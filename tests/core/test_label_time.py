"""Labels without a time get the time of ingest: the receipt warns, and ``labeled_at=``
gives one time for the whole batch (issue 25, point 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError

PREDICTED = datetime(2026, 3, 1, tzinfo=UTC)


def _predict(store: evalstore.Store) -> None:
    """Model ``m`` v1 with four predictions an hour apart from ``PREDICTED``, no labels."""
    store.register_model("m", "v1", "binary")
    ids = ["a", "b", "c", "d"]
    ts = [PREDICTED + timedelta(hours=h) for h in range(4)]
    receipt = store.log_predictions(
        "m", pa.table({"example_id": ids, "ts": ts, "prediction": ["1", "0", "1", "0"]}), "v1"
    )
    assert receipt.warnings == ()


@pytest.fixture
def store(template, open_copy):
    """A fresh copy of a store made by :func:`_predict` (built once per session)."""
    with open_copy(template("label-time", _predict)) as opened:
        yield opened


LABELS = pa.table({"example_id": ["a", "b", "c", "d"], "label": ["1", "0", "0", "0"]})


def test_labels_without_ts_warn_in_the_receipt(store):
    before = datetime.now(UTC)
    receipt = store.log_labels("m", LABELS)
    assert receipt.rows == 4
    (warning,) = receipt.warnings
    assert warning.startswith("the labels have no 'ts' column, so each gets the time of ingest")
    assert "ts_column=, or labeled_at= for the whole batch" in warning
    assert "--ts-column or --labeled-at" in warning
    (stored,) = store.sql("SELECT DISTINCT ts FROM m.labels").column("ts").to_pylist()
    assert before <= stored <= datetime.now(UTC)


def test_labeled_at_times_the_whole_batch(store):
    receipt = store.log_labels("m", LABELS, labeled_at="2026-03-03T12:00:00+00:00")
    assert receipt.warnings == ()
    stored = store.sql("SELECT DISTINCT ts FROM m.labels").column("ts").to_pylist()
    assert stored == [datetime(2026, 3, 3, 12, tzinfo=UTC)]
    # delays from predictions at 00:00..03:00 to the labels at day 2, 12:00
    delays = store.sql(
        "SELECT delay_p50_hours AS p50, delay_max_hours AS hi "
        "FROM evalstore.label_delay('m', '1 day')"
    ).to_pylist()
    assert delays == [{"p50": pytest.approx(58.5), "hi": pytest.approx(60.0)}]


def test_labels_with_a_ts_column_do_not_warn(store):
    ts = [PREDICTED + timedelta(days=1)] * 4
    receipt = store.log_labels("m", LABELS.append_column("ts", pa.array(ts)))
    assert receipt.warnings == ()


def test_labeled_at_and_a_time_column_are_refused(store):
    ts = [PREDICTED + timedelta(days=1)] * 4
    with pytest.raises(
        InvalidParameterError, match=r"labeled_at= and a time column \('ts'\) were both given"
    ):
        store.log_labels("m", LABELS.append_column("ts", pa.array(ts)), labeled_at=PREDICTED)
    with pytest.raises(InvalidParameterError, match=r"labeled_at='soon' is not an ISO-8601"):
        store.log_labels("m", LABELS, labeled_at="soon")
    with pytest.raises(InvalidParameterError, match=r"labeled_at='2300-01-01.*outside"):
        store.log_labels("m", LABELS, labeled_at=datetime(2300, 1, 1, tzinfo=UTC))
    assert store.sql("SELECT count(*) AS n FROM m.labels").to_pylist() == [{"n": 0}]
