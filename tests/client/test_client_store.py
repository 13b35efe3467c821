"""evalstore.Client against an in-process Store: the same API, writes through Store.log_* with
batch keys; a retry after a lost answer is stored once."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

import evalstore
from evalstore.client import transport as transport_module
from evalstore.client.transport import Retryable, StoreTransport
from evalstore.errors import InvalidParameterError

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_values_arrive_exactly_in_process(store):
    with evalstore.Client(store, flush_interval=3600) as client:
        client.log_prediction("fraud", "v1", "a", {"amount": 9.5, "channel": "web"}, 1,
                              score=0.75, latency_ms=3.5, ts=T0)  # fmt: skip
        client.log_prediction("fraud", "v1", 7, {"amount": 1.25, "channel": "app"}, 0,
                              score=0.125, ts=T0)  # fmt: skip
        client.log_label("fraud", "a", 1, ts=T0, source="chargeback")
        assert client.flush(60)
        stats = client.stats()
    # four calls: the features of both predictions, the prediction with a latency, the one
    # without (predictions are grouped by which optional fields they carry), the label
    assert (stats.logged, stats.acknowledged, stats.batches, stats.duplicates) == (3, 3, 4, 0)
    rows = store.sql(
        "SELECT p.example_id, p.prediction, p.score, p.latency_ms, p.ts, f.amount, f.channel, "
        "l.label, l.source FROM fraud.predictions p JOIN fraud.features f USING (example_id) "
        "LEFT JOIN fraud.labels l USING (example_id) ORDER BY p.example_id"
    ).to_pylist()
    assert rows == [
        {"example_id": "7", "prediction": "0", "score": 0.125, "latency_ms": None, "ts": T0,
         "amount": 1.25, "channel": "app", "label": None, "source": None},
        {"example_id": "a", "prediction": "1", "score": 0.75, "latency_ms": 3.5, "ts": T0,
         "amount": 9.5, "channel": "web", "label": "1", "source": "chargeback"},
    ]  # fmt: skip
    keys = store.sql("SELECT batch_key, source FROM evalstore.batches ORDER BY batch_id")
    assert keys.column("source").to_pylist() == ["evalstore.Client"] * 4
    assert len(set(keys.column("batch_key").to_pylist())) == 4


def test_sync_batch_forms_take_pandas_polars_and_arrow(store):
    import polars as pl  # here, not at collection: every xdist worker collects this file

    client = evalstore.Client(store, mode="sync")
    (receipt,) = client.log_features_batch(
        "fraud", pd.DataFrame({"example_id": ["p1", "p2"], "amount": [1.0, 2.0]})
    )
    assert (receipt.kind, receipt.rows, receipt.columns_added) == ("features", 2, ("amount",))
    (receipt,) = client.log_predictions(
        "fraud", "v1", pl.DataFrame({"example_id": ["p1", "p2"], "score": [0.2, 0.9]})
    )
    assert (receipt.kind, receipt.rows) == ("predictions", 2)
    (receipt,) = client.log_labels("fraud", pa.table({"example_id": ["p2"], "label": [1]}))
    assert (receipt.kind, receipt.rows) == ("labels", 1)
    predicted = store.sql("SELECT prediction FROM fraud.predictions ORDER BY example_id")
    assert predicted.column(0).to_pylist() == ["0", "1"]  # derived from the scores
    with pytest.raises(evalstore.DuplicateIdError, match="already stored"):
        client.log_features("fraud", "p1", {"amount": 3.0})


def test_lost_answer_is_retried_under_the_same_key_and_stored_once(store, monkeypatch):
    """The first send commits and then 'loses' its answer: the retry carries the same batch
    key, the store answers with the first receipt marked duplicate, and rows are not doubled."""
    real_send = StoreTransport.send
    keys: list[str] = []

    def commit_then_lose_answer(self, batch):
        keys.append(batch.key)
        receipt = real_send(self, batch)
        if len(keys) == 1:
            raise Retryable(evalstore.client.ServerUnavailableError("answer lost"))
        return receipt

    monkeypatch.setattr(StoreTransport, "send", commit_then_lose_answer)
    with evalstore.Client(store, flush_interval=3600, backoff=0.01) as client:
        for i in range(5):
            client.log_label("fraud", f"e{i}", i % 2, ts=T0)
        assert client.flush(60)
        stats = client.stats()
    assert keys == [keys[0], keys[0]]  # one batch, sent twice under one key
    assert (stats.acknowledged, stats.retried, stats.batches, stats.duplicates) == (5, 1, 1, 1)
    assert store.sql("SELECT count(*) FROM fraud.labels").column(0).to_pylist() == [5]
    assert store.sql("SELECT count(*) FROM evalstore.batches WHERE kind = 'labels'").column(
        0
    ).to_pylist() == [1]


def test_sync_mode_gives_up_after_retries(store, monkeypatch):
    def always_down(self, batch):
        raise Retryable(evalstore.client.ServerUnavailableError("disk gone"))

    monkeypatch.setattr(StoreTransport, "send", always_down)
    client = evalstore.Client(store, mode="sync", retries=2, backoff=0.01)
    with pytest.raises(evalstore.client.ServerUnavailableError, match="disk gone"):
        client.log_label("fraud", "a", 1)
    stats = client.stats()
    assert (stats.retried, stats.failed, stats.acknowledged) == (2, 1, 0)


def test_parameters_are_checked(store):
    with pytest.raises(InvalidParameterError, match="on_full='newest'"):
        evalstore.Client(store, on_full="newest")
    with pytest.raises(InvalidParameterError, match="flush_rows must be a positive integer"):
        evalstore.Client(store, flush_rows=0)
    with pytest.raises(InvalidParameterError, match="target must be a server URL"):
        evalstore.Client(42)
    with pytest.raises(InvalidParameterError, match="target='ftp://x' is not"):
        evalstore.Client("ftp://x")
    with pytest.raises(InvalidParameterError, match="token is for a server URL"):
        evalstore.Client(store, token="x" * 20)
    with evalstore.Client(store, max_buffer_rows=3) as client:
        with pytest.raises(InvalidParameterError, match="ts='yesterday' is not an ISO-8601"):
            client.log_label("fraud", "a", 1, ts="yesterday")
        with pytest.raises(InvalidParameterError, match="data has 4 rows, more than"):
            client.log_labels("fraud", pa.table({"example_id": list("abcd"), "label": [1] * 4}))
        assert client.stats().logged == 0
    assert transport_module.ORIGIN == "evalstore.Client"
