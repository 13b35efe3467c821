"""evalstore.Client against an `evalstore serve` server over HTTP: exact values, receipts, error
mapping, the buffer bound with the server down, and delivery once it is back."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

import evalstore
from evalstore.client import BufferFullError, ClientClosedError, ServerError

sys.path.insert(0, str(Path(__file__).parent))
from servers import READ_TOKEN, WRITE_TOKEN, wait_until

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_values_arrive_exactly(server):
    server.register("exact")
    with evalstore.Client(server.url, flush_interval=0.05) as client:
        client.log_prediction("exact", "v1", "a", {"amount": 9.5, "country": "FR"}, 1,
                              score=0.75, latency_ms=3.5, ts=T0)  # fmt: skip
        client.log_prediction("exact", "v1", "b", {"amount": 120.0, "country": "DE"}, 0,
                              score=0.25, ts="2026-11-01T11:00:00+01:00")  # fmt: skip
        client.log_prediction("exact", "v1", "c", None, None, score=0.9, ts=T0.timestamp())
        client.log_features("exact", "t1", {"amount": 1.0, "country": "IT"}, ts=T0, env="training")
        client.log_label("exact", "a", 1, ts=datetime(2026, 11, 3, 9, 30), source="chargeback")
        assert client.flush(60) is True
        stats = client.stats()
    assert (stats.logged, stats.sent, stats.acknowledged, stats.pending) == (5, 5, 5, 0)
    assert (stats.dropped, stats.failed, stats.last_error) == (0, 0, None)
    predictions = server.sql(
        "SELECT example_id, version, prediction, score, latency_ms, "
        "strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') AS ts "
        "FROM exact.predictions ORDER BY example_id"
    )
    assert predictions == [
        {"example_id": "a", "version": "v1", "prediction": "1", "score": 0.75,
         "latency_ms": 3.5, "ts": "2026-11-01 10:00:00"},
        {"example_id": "b", "version": "v1", "prediction": "0", "score": 0.25,
         "latency_ms": None, "ts": "2026-11-01 10:00:00"},
        # no prediction given: derived from the score by the threshold (0.5)
        {"example_id": "c", "version": "v1", "prediction": "1", "score": 0.9,
         "latency_ms": None, "ts": "2026-11-01 10:00:00"},
    ]  # fmt: skip
    features = server.sql(
        "SELECT example_id, env, amount, country, "
        "strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') AS ts "
        "FROM exact.features ORDER BY example_id"
    )
    assert features == [
        {"example_id": "a", "env": "serving", "amount": 9.5, "country": "FR",
         "ts": "2026-11-01 10:00:00"},
        {"example_id": "b", "env": "serving", "amount": 120.0, "country": "DE",
         "ts": "2026-11-01 10:00:00"},
        {"example_id": "t1", "env": "training", "amount": 1.0, "country": "IT",
         "ts": "2026-11-01 10:00:00"},
    ]  # fmt: skip
    labels = server.sql(
        "SELECT example_id, label, source, "
        "strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') AS ts FROM exact.labels"
    )
    assert labels == [
        {"example_id": "a", "label": "1", "source": "chargeback", "ts": "2026-11-03 09:30:00"}
    ]
    sources = server.sql("SELECT DISTINCT source FROM evalstore.batches WHERE model = 'exact'")
    assert sources == [{"source": "evalstore.Client"}]


def test_sync_receipts_and_batch_forms(server):
    server.register("sync")
    client = evalstore.Client(server.url, mode="sync")
    receipts = client.log_prediction("sync", "v1", "a", {"amount": 1.5}, 1, score=0.8)
    assert [(r.kind, r.rows, r.columns_added) for r in receipts] == [
        ("features", 1, ("amount",)),
        ("predictions", 1, ()),
    ]
    assert receipts[0].batch_id != receipts[1].batch_id
    ids = [f"b{i}" for i in range(6)]
    (receipt,) = client.log_predictions(
        "sync", "v1", pa.table({"example_id": ids, "score": [0.1, 0.2, 0.3, 0.6, 0.7, 0.8],
                                "ms": [1.0] * 6}), latency_column="ms")  # fmt: skip
    assert (receipt.kind, receipt.rows) == ("predictions", 6)
    labels = pa.table({"example_id": ids[:4], "label": [0, 0, 1, 1]})
    (receipt,) = client.log_labels("sync", labels, source="review")
    assert (receipt.kind, receipt.rows) == ("labels", 4)
    (receipt,) = client.log_features_batch(
        "sync", pa.table({"example_id": ids, "amount": [1.0] * 6}), env="validation"
    )
    assert (receipt.kind, receipt.rows) == ("features", 6)
    assert client.stats().acknowledged == 1 + 6 + 4 + 6
    counts = server.sql(
        "SELECT (SELECT count(*) FROM sync.predictions WHERE latency_ms = 1.0) AS p, "
        "(SELECT count(*) FROM sync.labels WHERE source = 'review') AS l, "
        "(SELECT count(*) FROM sync.features WHERE env = 'validation') AS f"
    )
    assert counts == [{"p": 6, "l": 4, "f": 6}]
    client.close()
    with pytest.raises(ClientClosedError, match="closed"):
        client.log_label("sync", "a", 1)


def test_errors_map_to_library_exceptions(server):
    server.register("errs")
    client = evalstore.Client(server.url, mode="sync")
    with pytest.raises(evalstore.UnknownModelError, match="model 'nobody' is not registered"):
        client.log_label("nobody", "a", 1)
    client.log_features("errs", "a", {"amount": 1.0})
    with pytest.raises(evalstore.DuplicateIdError, match=r"already stored .*\['a'\]") as info:
        client.log_features("errs", "a", {"amount": 2.0})
    assert (info.value.column, info.value.rows, info.value.examples) == ("example_id", 1, ["a"])
    assert (info.value.status, info.value.code) == (409, "duplicate_id")
    with pytest.raises(evalstore.ValidationError, match="score") as info:
        client.log_prediction("errs", "v1", "z", None, None, score=1.5)
    assert info.value.column == "score"
    with pytest.raises(evalstore.UnknownModelError, match="'v9'"):
        client.log_prediction("errs", "v9", "z", None, 1)
    stats = client.stats()
    assert (stats.acknowledged, stats.failed) == (1, 4)
    assert "v9" in stats.last_error
    with pytest.raises(evalstore.SchemaConflictError, match="'amount' is stored as DOUBLE") as info:
        client.log_features("errs", "m1", {"amount": "many"})
    assert (info.value.column, info.value.status, info.value.code) == (
        "amount",
        409,
        "schema_conflict",
    )


def test_unbuildable_group_is_counted_as_failed(server):
    server.register("mixed")
    with evalstore.Client(server.url, flush_interval=3600) as client:
        client.log_features("mixed", "m1", {"amount": 1.0})
        client.log_features("mixed", "m2", {"amount": "x"})  # one batch: float and text
        client.log_label("mixed", "m1", 1)
        assert client.flush(60)
        stats = client.stats()
    assert (stats.acknowledged, stats.failed) == (1, 2)
    assert "column 'amount' mixes value types (float, str)" in stats.last_error
    assert server.sql("SELECT count(*) AS n FROM mixed.features") == [{"n": 0}]


def test_background_refusal_is_counted_not_raised(server):
    server.register("refused")
    with evalstore.Client(server.url, flush_interval=3600) as client:
        client.log_label("refused", "a", 7)  # not a registered class
        client.log_label("refused", "b", 1, source="x")  # another batch: stored
        assert client.flush(60)
        stats = client.stats()
    assert (stats.acknowledged, stats.failed, stats.retried) == (1, 1, 0)
    assert "label" in stats.last_error
    assert server.sql("SELECT example_id FROM refused.labels") == [{"example_id": "b"}]


def test_tokens(new_server, tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{WRITE_TOKEN} write ingest\n{READ_TOKEN} read dashboards\n")
    server = new_server(tokens).start()
    server.register("auth")
    with pytest.raises(ServerError, match="HTTP 401") as info:
        evalstore.Client(server.url, mode="sync").log_label("auth", "a", 1)
    assert info.value.status == 401
    with pytest.raises(ServerError, match="HTTP 403") as info:
        evalstore.Client(server.url, READ_TOKEN, mode="sync").log_label("auth", "a", 1)
    assert info.value.status == 403
    (receipt,) = evalstore.Client(server.url, WRITE_TOKEN, mode="sync").log_label("auth", "a", 1)
    assert receipt.rows == 1


def test_server_down_drop_oldest_then_delivered_once(new_server):
    server = new_server()  # not started: nothing listens on its port yet
    with evalstore.open(server.path) as store:
        store.register_model("down", "v1", "binary", classes=[0, 1])
    client = evalstore.Client(server.url, flush_interval=3600, flush_rows=1000,
                              max_buffer_rows=5, backoff=0.02, max_backoff=0.1)  # fmt: skip
    for i in range(8):
        client.log_label("down", f"e{i}", i % 2)
    stats = client.stats()
    assert (stats.logged, stats.dropped, stats.pending, stats.sent) == (8, 3, 5, 0)
    assert client.flush(timeout=0.3) is False  # the server is down: nothing acknowledged
    stats = client.stats()
    assert stats.retried >= 1 and "127.0.0.1" in stats.last_error
    assert stats.acknowledged == 0 and stats.pending == 5
    server.start()
    assert client.flush(timeout=60) is True
    stats = client.close()
    assert (stats.acknowledged, stats.dropped, stats.failed, stats.pending) == (5, 3, 0, 0)
    labels = server.sql("SELECT example_id, label FROM down.labels ORDER BY example_id")
    assert labels == [{"example_id": f"e{i}", "label": str(i % 2)} for i in range(3, 8)]


def test_block_mode_waits_then_times_out(new_server):
    server = new_server()
    client = evalstore.Client(server.url, flush_interval=3600, max_buffer_rows=2,
                              on_full="block", block_timeout=0.2, backoff=0.02)  # fmt: skip
    client.log_label("blocked", "a", 1)
    client.log_label("blocked", "b", 0)
    with pytest.raises(BufferFullError, match=r"buffer \(2 records\) stayed full for 0.2 s"):
        client.log_label("blocked", "c", 1)
    stats = client.close(timeout=0.5)  # still down: what is left is dropped at close
    assert (stats.logged, stats.acknowledged, stats.dropped) == (2, 0, 2)


def test_outage_during_streaming_delivers_everything_once(new_server):
    server = new_server().start()
    server.register("outage")
    client = evalstore.Client(server.url, flush_interval=0.05, flush_rows=10,
                              backoff=0.02, max_backoff=0.2)  # fmt: skip
    for i in range(30):
        client.log_prediction("outage", "v1", f"x{i}", {"amount": float(i)}, i % 2)
    assert client.flush(60)
    server.stop()
    for i in range(30, 80):
        client.log_prediction("outage", "v1", f"x{i}", {"amount": float(i)}, i % 2)
    wait_until(lambda: client.stats().retried >= 2)
    server.start()
    assert client.flush(60)
    stats = client.close()
    assert (stats.logged, stats.acknowledged, stats.dropped, stats.failed) == (80, 80, 0, 0)
    counts = server.sql(
        "SELECT (SELECT count(*) FROM outage.predictions) AS p, "
        "(SELECT count(DISTINCT example_id) FROM outage.predictions) AS ids, "
        "(SELECT count(*) FROM outage.features) AS f, "
        "(SELECT sum(amount) FROM outage.features) AS total"
    )
    assert counts == [{"p": 80, "ids": 80, "f": 80, "total": float(sum(range(80)))}]
