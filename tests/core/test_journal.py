"""The ingest journal's file format, apply and replay (:mod:`evalstore.core.journal`)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

import evalstore
from evalstore.core.journal import (
    _FRAME,
    MAGIC,
    Entry,
    JournalError,
    JournalFile,
    Request,
    Segment,
    _distinct_chunks,
    journal_path,
    read,
    replay,
)

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def prediction_entry(store: evalstore.Store, seq: int, batch_id: int, ids: list[str]) -> Entry:
    """An entry as the journaled writer makes it: rows converted by the store's own SQL."""
    rows = store.sql(
        "SELECT CAST(e AS VARCHAR) AS example_id, CAST(md5_number(e) AS UUID) AS example_key, "
        "TIMESTAMPTZ '2026-01-01 00:00:00+00' AS ts, CAST(? AS BIGINT) AS batch_id, "
        "'v1' AS version, 0.25 AS score, CAST(NULL AS VARCHAR) AS prediction "
        "FROM unnest(?) AS t(e)",
        [batch_id, ids],
    )
    request = Request(batch_id, "fraud", "predictions", len(ids), AT, "http:json",
                      batch_key=f"k{batch_id}", version="v1", warnings=("w",))  # fmt: skip
    return Entry(seq, [request], [Segment("fraud", "predictions", "predictions", rows)])


def test_a_record_round_trips_and_frames_with_length_and_crc(store):
    entry = prediction_entry(store, 7, 100, ["a", "b"])
    data = entry.encode()
    magic, length, crc = _FRAME.unpack_from(data, 0)
    assert (magic, length, crc) == (MAGIC, len(data) - _FRAME.size, zlib.crc32(data[12:]))
    back = Entry.decode(data[_FRAME.size :])
    assert back.seq == 7
    assert back.requests == entry.requests  # received_at to the microsecond, tz-aware
    assert back.segments[0].rows.equals(entry.segments[0].rows)
    assert back.requests[0].receipt().batch_id == 100


@pytest.mark.parametrize(
    "damage",
    ["cut_payload", "cut_header", "flip_byte", "bad_magic"],
)
def test_reading_stops_at_a_torn_or_corrupt_tail(store, tmp_path, damage):
    path = tmp_path / "j.journal"
    good = [prediction_entry(store, n, 100 + n, [f"e{n}"]).encode() for n in (1, 2)]
    last = bytearray(prediction_entry(store, 3, 103, ["e3"]).encode())
    if damage == "cut_payload":
        last = last[: len(last) - 5]
    elif damage == "cut_header":
        last = last[:6]
    elif damage == "flip_byte":
        last[-3] ^= 0xFF
    else:
        last[:4] = b"XXXX"
    path.write_bytes(b"".join(good) + bytes(last))
    entries, valid, size = read(path)
    assert [e.seq for e in entries] == [1, 2]
    assert valid == sum(map(len, good))
    assert size == valid + len(last)


def test_a_record_with_a_valid_crc_that_does_not_decode_is_an_error(tmp_path):
    payload = b"\x05\x00\x00\x00{bad}"
    path = tmp_path / "j.journal"
    path.write_bytes(_FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(JournalError, match="valid CRC but cannot be decoded"):
        read(path)


def test_the_file_appends_and_truncates(tmp_path):
    journal = JournalFile(tmp_path / "j.journal")
    try:
        journal.append([b"abc", b"de"])
        journal.append([b"f"])
        assert journal.size == 6 == (tmp_path / "j.journal").stat().st_size
        journal.truncate(0)
        assert journal.size == 0 == (tmp_path / "j.journal").stat().st_size
        journal.append([b"gh"])
        assert (tmp_path / "j.journal").read_bytes() == b"gh"
    finally:
        journal.close()


def test_replay_applies_what_is_missing_once_and_empties_the_journal(store):
    path = journal_path(store.path)
    first = prediction_entry(store, 1, 1000, ["a", "b"])
    second = prediction_entry(store, 2, 1001, ["c"])
    path.write_bytes(first.encode() + second.encode() + b"ESJ1\x00")  # + a torn tail
    assert replay(store.connection, store.path) == 2
    assert path.stat().st_size == 0
    # a kill after the apply's commit but before the truncation: nothing applied twice
    path.write_bytes(first.encode() + second.encode())
    assert replay(store.connection, store.path) == 0
    rows = store.sql(
        "SELECT example_id, batch_id FROM fraud.predictions ORDER BY example_id"
    ).to_pylist()
    assert rows == [
        {"example_id": "a", "batch_id": 1000},
        {"example_id": "b", "batch_id": 1000},
        {"example_id": "c", "batch_id": 1001},
    ]
    batches = store.sql(
        "SELECT batch_id, kind, rows, version, source, batch_key, received_at, receipt "
        "FROM evalstore.batches ORDER BY batch_id"
    ).to_pylist()
    assert [(b["batch_id"], b["rows"], b["batch_key"]) for b in batches] == [
        (1000, 2, "k1000"),
        (1001, 1, "k1001"),
    ]
    assert batches[0]["received_at"] == AT and batches[0]["version"] == "v1"
    # the stored receipt of a keyed batch answers a retry as without a journal
    again = store.log_predictions(
        "fraud", pa.table({"example_id": ["a"], "prediction": [1]}), version="v1", batch_key="k1000"
    )
    assert (again.duplicate, again.batch_id, again.rows, again.warnings) == (
        True,
        1000,
        2,
        ("w",),
    )


def test_open_replays_and_a_read_only_open_refuses_an_unapplied_journal(store, tmp_path):
    path = Path(store.path)
    entry = prediction_entry(store, 1, 2000, ["x"])
    store.close()
    journal_path(path).write_bytes(entry.encode())
    with pytest.raises(JournalError, match=r"1 acknowledged ingest requests .*\(evalstore\.open"):
        evalstore.open(path, read_only=True)
    with evalstore.open(path) as opened:
        assert opened.sql("SELECT batch_id FROM fraud.predictions").to_pylist() == [
            {"batch_id": 2000}
        ]
    assert journal_path(path).stat().st_size == 0
    with evalstore.open(path, read_only=True) as opened:  # empty journal: fine
        assert opened.sql("SELECT count(*) AS n FROM fraud.predictions").to_pylist() == [{"n": 1}]


def test_labels_applied_together_supersede_in_batch_order(store):
    """Two journaled requests labelling one example in one apply: the later supersedes
    the earlier (they are applied in chunks without repeats)."""

    def labels(seq: int, batch_id: int, example: str, label: str) -> Entry:
        rows = store.sql(
            "SELECT CAST(? AS VARCHAR) AS example_id, CAST(md5_number(?) AS UUID) AS "
            "example_key, TIMESTAMPTZ '2026-01-01 00:00:00+00' AS ts, CAST(? AS BIGINT) AS "
            "batch_id, CAST(? AS VARCHAR) AS label, CAST(NULL AS VARCHAR) AS source",
            [example, example, batch_id, label],
        )
        request = Request(batch_id, "fraud", "labels", 1, AT, "http:json")
        return Entry(seq, [request], [Segment("fraud", "labels", "labels", rows)])

    path = journal_path(store.path)
    path.write_bytes(
        labels(1, 10, "a", "0").encode()
        + labels(2, 11, "b", "1").encode()
        + labels(3, 12, "a", "1").encode()
    )
    assert replay(store.connection, store.path) == 3
    rows = store.sql(
        "SELECT example_id, label, batch_id, superseded_by FROM fraud.labels ORDER BY batch_id"
    ).to_pylist()
    assert [(r["batch_id"], r["superseded_by"]) for r in rows] == [(10, 12), (11, None), (12, None)]
    assert store.sql(
        "SELECT example_id, label FROM fraud.labels_latest ORDER BY 1"
    ).to_pylist() == [
        {"example_id": "a", "label": "1"},
        {"example_id": "b", "label": "1"},
    ]


def test_distinct_chunks_cut_at_the_request_that_repeats_an_example():
    rows = pa.table({"example_key": ["a", "b", "c", "a", "d", "b"], "batch_id": [1, 1, 2, 3, 3, 4]})
    chunks = _distinct_chunks(rows)
    assert [c.column("batch_id").to_pylist() for c in chunks] == [[1, 1, 2], [3, 3, 4]]
    assert _distinct_chunks(rows.slice(0, 3))[0].num_rows == 3
