"""The ingest journal: acknowledged requests made durable before DuckDB holds them.

The server's journaled ingest (:mod:`server.journal`) validates each small ingest request
as the group commit does, converts its rows to the model table's columns, appends the
accepted requests of a group to ``<store>.journal`` with one ``os.fdatasync`` and answers
them; an applier thread later moves many journaled groups into DuckDB in one
transaction. This module is the part the library needs too: the file format, the apply
(one transaction: the rows, labels' supersession, fulfilled label requests, one
``evalstore.batches`` row per request) and the replay at open (:func:`replay`), which
:func:`evalstore.open` runs on a store whose journal holds requests not yet applied.

File format: a sequence of records, each ``MAGIC`` (4 bytes) | payload length (u32, little
endian) | CRC-32 of the payload (u32) | payload. The payload is a header length (u32), a
JSON header and, per segment, an Arrow IPC stream of converted rows (the table's columns,
``batch_id`` included). A record is one group: its sequence number, each request's batch
id, model, kind, rows, receipt time, source, client batch key and receipt details, and its
segments (rows of one model table). A record cut short or whose CRC does not match (a
write interrupted by a crash) is the torn tail: it was never acknowledged (the ack
follows the fsync), so it is dropped and the file truncated before it.

Applied is decided per record by ``evalstore.batches``: its rows and its requests'
``evalstore.batches`` rows commit in one transaction, so a record whose first batch id is
in ``evalstore.batches`` is applied whole and is skipped on replay (replay is idempotent;
a crash during an apply leaves the record unapplied, and it is applied again).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.core.identifiers import quote
from evalstore.core.ingest import Plan
from evalstore.core.ingest_write import (
    Receipt,
    Written,
    fulfil_requests,
    incoming_names,
    insert_batch_rows,
    receipt_details,
    record,
    supersede_labels,
)
from evalstore.core.journal_convert import UTC_MICROS
from evalstore.core.layout import model_relation
from evalstore.errors import EvalstoreError

MAGIC = b"ESJ1"
_FRAME = struct.Struct("<4sII")  # magic, payload length, CRC-32
_U32 = struct.Struct("<I")
SUFFIX = ".journal"


class JournalError(EvalstoreError):
    """The journal cannot be read or applied (the store is left as it was)."""


def journal_path(store_path: str | os.PathLike[str]) -> Path:
    """Where the journal of the store file ``store_path`` lives: ``<store>.journal``."""
    return Path(f"{store_path}{SUFFIX}")


@dataclass
class Request:
    """One journaled request: what its ``evalstore.batches`` row and receipt need."""

    batch_id: int
    model: str
    kind: str
    rows: int
    received_at: datetime
    source: str
    batch_key: str | None = None
    env: str | None = None
    version: str | None = None
    dataset: str | None = None
    columns_ignored: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def receipt(self) -> Receipt:
        """The request's receipt (final: its batch id is the one it is applied with)."""
        return Receipt(
            batch_id=self.batch_id,
            model=self.model,
            kind=self.kind,
            rows=self.rows,
            columns_ignored=self.columns_ignored,
            warnings=self.warnings,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "model": self.model,
            "kind": self.kind,
            "rows": self.rows,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "batch_key": self.batch_key,
            "env": self.env,
            "version": self.version,
            "dataset": self.dataset,
            "columns_ignored": list(self.columns_ignored),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Request:
        value = dict(value)
        value["received_at"] = datetime.fromisoformat(value["received_at"])
        value["columns_ignored"] = tuple(value["columns_ignored"])
        value["warnings"] = tuple(value["warnings"])
        return cls(**value)


@dataclass
class Segment:
    """Converted rows of one model table (``kind``'s), in batch-id order; each row's
    ``batch_id`` names its request."""

    model: str
    table: str
    kind: str
    rows: pa.Table


@dataclass
class Entry:
    """One journal record: a group's accepted requests and their rows."""

    seq: int
    requests: list[Request]
    segments: list[Segment] = field(default_factory=list)

    def encode(self) -> bytes:
        """The framed record (:data:`MAGIC`, length, CRC-32, payload)."""
        blobs = []
        for segment in self.segments:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, segment.rows.schema) as writer:
                writer.write_table(segment.rows)
            blobs.append(sink.getvalue().to_pybytes())
        header = json.dumps(
            {
                "seq": self.seq,
                "requests": [r.to_json() for r in self.requests],
                "segments": [
                    {"model": s.model, "table": s.table, "kind": s.kind, "bytes": len(b)}
                    for s, b in zip(self.segments, blobs, strict=True)
                ],
            },
            separators=(",", ":"),
        ).encode()
        payload = b"".join([_U32.pack(len(header)), header, *blobs])
        return _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes) -> Entry:
        """The record of a payload whose CRC matched."""
        (size,) = _U32.unpack_from(payload, 0)
        header = json.loads(payload[4 : 4 + size])
        at = 4 + size
        segments = []
        for s in header["segments"]:
            rows = pa.ipc.open_stream(pa.py_buffer(payload[at : at + s["bytes"]])).read_all()
            at += s["bytes"]
            segments.append(Segment(s["model"], s["table"], s["kind"], rows))
        requests = [Request.from_json(r) for r in header["requests"]]
        return cls(header["seq"], requests, segments)


def read(path: str | os.PathLike[str]) -> tuple[list[Entry], int, int]:
    """The records of the journal at ``path``: ``(entries, valid bytes, file bytes)``.

    Reading stops at the first record cut short, with a wrong magic or a CRC mismatch
    (the torn tail: bytes from ``valid`` to the end)."""
    data = Path(path).read_bytes() if Path(path).exists() else b""
    entries, at = [], 0
    while at + _FRAME.size <= len(data):
        magic, length, crc = _FRAME.unpack_from(data, at)
        start = at + _FRAME.size
        payload = data[start : start + length]
        if magic != MAGIC or len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            entries.append(Entry.decode(payload))
        except (ValueError, KeyError, TypeError, pa.ArrowInvalid) as error:
            raise JournalError(
                f"journal {str(path)!r}: the record at byte {at} has a valid CRC but cannot "
                f"be decoded ({error}); keep the file and report it"
            ) from error
        at = start + length
    return entries, at, len(data)


class JournalFile:
    """The append-only journal file (one writer): :meth:`append` framed records with one
    ``fdatasync``; :meth:`truncate` once everything in it is applied."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if created:  # the file's directory entry is durable too
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self.size = os.fstat(self._fd).st_size

    def append(self, records: Iterable[bytes]) -> None:
        """Write ``records`` at the end of the file and make them durable (one fsync)."""
        data = b"".join(records)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        self.size += len(data)

    def truncate(self, size: int = 0) -> None:
        """Cut the file to ``size`` bytes, durably."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = size

    def close(self) -> None:
        os.close(self._fd)


# ---------------------------------------------------------------------- apply


def apply(con: duckdb.DuckDBPyConnection, entries: Sequence[Entry]) -> set[str]:
    """Write ``entries`` in one transaction: rows, labels' supersession, fulfilled label
    requests and one ``evalstore.batches`` row per request. Return the models written."""
    with transaction(con):
        return apply_in_transaction(con, entries)


def apply_in_transaction(con: duckdb.DuckDBPyConnection, entries: Sequence[Entry]) -> set[str]:
    """:func:`apply` inside the caller's transaction."""
    by_table: dict[tuple[str, str, str], list[pa.Table]] = {}
    for entry in entries:
        for segment in entry.segments:
            key = (segment.model, segment.table, segment.kind)
            by_table.setdefault(key, []).append(segment.rows)
    for (model, table_name, kind), tables in by_table.items():
        relation = model_relation(con, model, table_name)
        rows = pa.concat_tables(tables, promote_options="permissive")
        chunks = _distinct_chunks(rows) if kind == "labels" else [rows]
        for chunk in chunks:
            _insert(con, relation, chunk)
            if kind == "labels":
                first, last = _id_range(chunk)
                supersede_labels(con, relation, {"first_batch_id": first, "last_batch_id": last})
        if kind == "labels":
            first, last = _id_range(rows)
            fulfil_requests(con, model, relation, first, last)
    requests = [r for entry in entries for r in entry.requests]
    _record(con, requests)
    return {r.model for r in requests}


def _record(con: duckdb.DuckDBPyConnection, requests: list[Request]) -> None:
    """One ``evalstore.batches`` row per request, all with one ``committed_at``: what
    :func:`evalstore.core.ingest_write.record` writes for them, built column by column
    from the requests (no receipt or plan object per request)."""
    if len(requests) < 2:  # (record's own single-row statement)
        record(
            con,
            [
                Written(
                    Plan(r.model, "", r.kind, env=r.env, version=r.version, dataset=r.dataset),
                    r.receipt(),
                    r.received_at,
                    r.source,
                    r.batch_key,
                )
                for r in requests
            ],
        )
        return
    n = len(requests)
    committed_at = datetime.now(UTC)
    text = pa.string()
    columns = {
        "batch_id": pa.array([r.batch_id for r in requests], pa.int64()),
        "model": pa.array([r.model for r in requests], text),
        "kind": pa.array([r.kind for r in requests], text),
        "env": pa.array([r.env for r in requests], text),
        "version": pa.array([r.version for r in requests], text),
        "dataset": pa.array([r.dataset for r in requests], text),
        "rows": pa.array([r.rows for r in requests], pa.int64()),
        "columns_added": pa.array([[]] * n, pa.list_(text)),
        "received_at": pa.array([r.received_at for r in requests], UTC_MICROS),
        "committed_at": pa.array([committed_at] * n, UTC_MICROS),
        "source": pa.array([r.source for r in requests], text),
        "batch_key": pa.array([r.batch_key for r in requests], text),
        "receipt": pa.array(
            [None if r.batch_key is None else receipt_details(r.receipt()) for r in requests],
            text,
        ),
    }
    insert_batch_rows(con, columns)


def _insert(con: duckdb.DuckDBPyConnection, relation: str, rows: pa.Table) -> None:
    incoming = f"__evalstore_journal_{next(incoming_names)}"
    columns = ", ".join(map(quote, rows.column_names))
    con.register(incoming, rows)
    try:
        con.execute(f"INSERT INTO {relation} ({columns}) SELECT {columns} FROM {quote(incoming)}")
    finally:
        con.unregister(incoming)


def _id_range(rows: pa.Table) -> tuple[int, int]:
    ids = rows.column("batch_id")
    return int(pa.compute.min(ids).as_py()), int(pa.compute.max(ids).as_py())


def _distinct_chunks(rows: pa.Table) -> list[pa.Table]:
    """``rows`` cut at request boundaries so that no chunk repeats an example: a label's
    supersession marks the labels of *earlier* chunks (``supersede_labels`` compares with
    the chunk's first batch id). (A request's own rows never repeat an id: checked.)"""
    keys = rows.column("example_key").to_pylist()
    ids = rows.column("batch_id").to_pylist()
    chunks, start, seen, at = [], 0, set(), 0
    while at < len(ids):
        end = at
        while end < len(ids) and ids[end] == ids[at]:
            end += 1
        run = set(keys[at:end])
        if seen & run:
            chunks.append(rows.slice(start, at - start))
            start, seen = at, set()
        seen |= run
        at = end
    chunks.append(rows.slice(start))
    return [c for c in chunks if c.num_rows]


# ---------------------------------------------------------------------- replay


def unapplied(con: duckdb.DuckDBPyConnection, entries: Sequence[Entry]) -> list[Entry]:
    """The entries whose requests are not in ``evalstore.batches`` (see the module)."""
    firsts = [e.requests[0].batch_id for e in entries if e.requests]
    if not firsts:
        return []
    stored = {
        row[0]
        for row in con.execute(
            "SELECT batch_id FROM evalstore.batches WHERE batch_id IN (SELECT unnest(?))",
            [firsts],
        ).fetchall()
    }
    return [e for e in entries if e.requests and e.requests[0].batch_id not in stored]


def replay(con: duckdb.DuckDBPyConnection, store_path: str | os.PathLike[str]) -> int:
    """Apply the journal of the store at ``store_path`` past what is applied, drop its
    torn tail and empty it; return the number of requests applied (0 without a journal).

    Run by :func:`evalstore.open` on a store opened for writing (and so by the server
    at start): a store always shows every acknowledged request once opened."""
    path = journal_path(store_path)
    if not path.exists():
        return 0
    entries, _, size = read(path)
    if size == 0:
        return 0
    todo = unapplied(con, entries)
    if todo:
        try:
            apply(con, todo)
        except duckdb.Error as error:
            raise JournalError(
                f"the journal {str(path)!r} holds {sum(len(e.requests) for e in todo)} "
                f"acknowledged requests that could not be applied ({error}); the store and "
                "the journal are unchanged: keep both and report it"
            ) from error
    journal = JournalFile(path)
    try:
        journal.truncate(0)
    finally:
        journal.close()
    return sum(len(e.requests) for e in todo)


def check_applied(con: duckdb.DuckDBPyConnection, store_path: str | os.PathLike[str]) -> None:
    """For a store opened read-only: raise :class:`JournalError` if its journal holds
    requests not yet applied (they would be missing from every read)."""
    path = journal_path(store_path)
    if not path.exists() or path.stat().st_size == 0:
        return
    entries, _, _ = read(path)
    todo = unapplied(con, entries)
    if todo:
        raise JournalError(
            f"{sum(len(e.requests) for e in todo)} acknowledged ingest requests of this store "
            f"wait in its journal {str(path)!r}: open the store for writing (evalstore.open"
            "(path), which applies them) or start `evalstore serve` on it, then read it"
        )
