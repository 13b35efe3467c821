"""The link between the HTTP front processes and the one writer (``evalstore serve
--http-workers N``, :mod:`server.front`): ingest requests forwarded in groups over a local
Unix socket, answered per request once committed.

A front parses each single-example request as the one-process server does (the fast path,
:mod:`server.fast_ingest`: bearer token, query parameters, body limit, JSON or Arrow into
an Arrow table) and hands the resulting :class:`~evalstore.core.ingest_group.Item` to
:class:`LinkClient` instead of a group commit. The client collects the items handed to it
during one turn of the front's event loop and sends them as **one message**; the writer's
:class:`LinkServer` queues them on the group commit together
(:meth:`server.group_commit.GroupCommitter.enqueue_waiters`), so they reach the journal writer
as a group, and sends each request's answer back as soon as its commit (its journal
``fdatasync``) is done, several answers to a message. The front answers its client only
then: a receipt still means durable.

A message is a 4-byte big-endian length and a pickle (written by this module on both ends;
the socket is in a directory only the server's user can open). Front to writer:
``(requests, blobs)``, the rows of the group as Arrow IPC streams, one per distinct schema
(a service sends one shape, so usually one), with per request ``(id, blob, offset, rows,
kind, model, options, source, batch_key, received_at)``; the writer slices its rows out of
the blob (no copy) and builds the same ``Item`` the front had, with the writer's own
``time_range``. So the writer pays no HTTP, no JSON and no per-request Arrow decoding: about
2 us a request for the message (measured on 64 one-row requests). Writer to front: ``(id,
receipt fields, None)`` or ``(id, None, (status, code, detail, headers, extra))``, the
:class:`~server.errors.ApiError` the one-process server would have answered (a library or
DuckDB error converted as :func:`server.errors.error_response` converts it, anything else
as :class:`server.errors.Unexpected`'s 500), so a front's responses are the one-process
server's, byte for byte.

If the writer goes away (its process killed), every request waiting on it is answered 503
``writer_unavailable`` (whether it was committed is unknown to the front: a retry with the
same ``Idempotency-Key`` is stored once) and ``on_lost`` is called (the front exits).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import os
import pickle
import queue
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import duckdb
import pyarrow as pa
from pyarrow import ipc

from evalstore import errors as E
from evalstore.core.ingest_call import LogCall
from evalstore.core.ingest_group import Item
from evalstore.core.ingest_write import Receipt
from server.errors import ApiError, from_evalstore
from server.group_commit import Waiter, name_os_thread

log = logging.getLogger("evalstore.server")

HEADER = struct.Struct(">I")
_RECEIPT_FIELDS = tuple(f.name for f in fields(Receipt))


def unavailable(reason: str) -> ApiError:
    """The 503 of a request a front cannot get an answer for from the writer."""
    return ApiError(
        503,
        "writer_unavailable",
        f"the server's writer process is not reachable ({reason}); whether this request was "
        "stored is unknown: retry it (with the same Idempotency-Key, it is stored once)",
        headers={"Retry-After": "1"},
    )


# ---------------------------------------------------------------------- the messages


def encode_group(entries: list[tuple[int, Item]]) -> memoryview:
    """One message holding the requests ``entries`` (``(id, item)``): their rows as one
    Arrow IPC stream per distinct schema, their calls as plain tuples."""
    schemas: list[pa.Schema] = []
    tables: list[list[pa.Table]] = []
    offsets: list[int] = []
    requests = []
    sent: dict[int, dict[str, Any]] = {}  # options by id of the call (alive: in entries)
    for rid, item in entries:
        data = item.data
        if not isinstance(data, pa.Table):
            data = data.read_all() if isinstance(data, pa.RecordBatchReader) else pa.table(data)
        schema = data.schema
        index = next(
            (i for i, known in enumerate(schemas) if known.equals(schema, check_metadata=True)),
            len(schemas),
        )
        if index == len(schemas):
            schemas.append(schema)
            tables.append([])
            offsets.append(0)
        call = item.call
        options = sent.get(id(call))
        if options is None:  # one dict per call object: pickled once, shared on arrival
            options = sent[id(call)] = dict(call.options)
        requests.append(
            (rid, index, offsets[index], data.num_rows, call.kind, call.model,
             options, item.source, item.batch_key, item.received_at)
        )  # fmt: skip
        tables[index].append(data)
        offsets[index] += data.num_rows
    blobs = []
    for schema, group in zip(schemas, tables, strict=True):
        table = pa.concat_tables(group).combine_chunks() if len(group) > 1 else group[0]
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, schema) as writer:
            writer.write_table(table)
        blobs.append(pickle.PickleBuffer(sink.getvalue()))  # pickled without another copy
    return _framed((requests, blobs))


def decode_group(
    payload: bytes | bytearray | memoryview, time_range: Any
) -> list[tuple[int, Item]]:
    """The requests of a message of :func:`encode_group`, as the writer's items."""
    requests, blobs = pickle.loads(payload)
    tables = [ipc.open_stream(pa.py_buffer(blob)).read_all() for blob in blobs]
    items = []
    calls: dict[tuple[str, str, str], LogCall] = {}  # one call object per distinct call
    last: tuple[str, str, dict[str, Any], LogCall] | None = None
    for rid, index, offset, rows, kind, model, options, source, key, at in requests:
        data = tables[index].slice(offset, rows)
        if last is not None and kind == last[0] and model == last[1] and options is last[2]:
            call = last[3]  # (pickle shares an options dict sent once: the same call)
        else:
            name = (kind, model, repr(sorted(options.items())))
            call = calls.get(name) or calls.setdefault(
                name, LogCall(kind, model, options, time_range)
            )
            last = (kind, model, options, call)
        items.append((rid, Item(call, data, source=source, batch_key=key, received_at=at)))
    return items


def answer_of(rid: int, outcome: Receipt | BaseException) -> tuple[Any, ...]:
    """What the writer sends back for request ``rid``: its receipt's fields, or its error
    as the one-process server would answer it."""
    if not isinstance(outcome, BaseException):
        return (rid, tuple(getattr(outcome, name) for name in _RECEIPT_FIELDS), None)
    error: BaseException = outcome
    if isinstance(error, E.EvalstoreError):
        error = from_evalstore(error)
    elif isinstance(error, duckdb.Error):
        error = ApiError(400, "query_error", str(error).strip())
    if isinstance(error, ApiError):
        return (rid, None, (error.status, error.code, error.detail, error.headers, error.extra))
    log.error("unhandled error of a forwarded ingest request", exc_info=error)
    detail = f"{type(error).__name__}: {error}"  # what server.errors.Unexpected answers
    return (rid, None, (500, "internal_error", detail, None, {}))


def outcome_of(answer: tuple[Any, ...]) -> Receipt | ApiError:
    """The receipt or the error of an answer of :func:`answer_of`."""
    _, values, error = answer
    if error is None:
        return Receipt(*values)
    status, code, detail, headers, extra = error
    return ApiError(status, code, detail, headers, **extra)


def _framed(value: Any) -> memoryview:
    """``value`` pickled after its 4-byte length, built in place (no copy to prepend it)."""
    out = io.BytesIO()
    out.write(bytes(HEADER.size))
    pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
    framed = out.getbuffer()
    HEADER.pack_into(framed, 0, len(framed) - HEADER.size)
    return framed


def _fill(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``; False at end of stream."""
    got = 0
    while got < len(view):
        count = sock.recv_into(view[got:])
        if count == 0:
            return False
        got += count
    return True


#: Bytes a link reader asks the socket for at a time: a front's messages of small
#: requests (a few hundred bytes each) arrive several to a read, with their headers.
READ_CHUNK = 256 * 1024


class _Frames:
    """The messages of a socket, read a chunk at a time: one ``recv`` (and one return
    of the interpreter lock) brings whatever messages the front has sent, instead of
    two reads a message. A message larger than what is buffered is read into its own
    buffer (an Arrow batch is not copied again)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def next(self) -> bytearray | None:
        """The next message's payload; None at end of stream."""
        buffer = self.buffer
        while len(buffer) < HEADER.size:
            chunk = self.sock.recv(READ_CHUNK)
            if not chunk:
                return None
            buffer += chunk
        (size,) = HEADER.unpack_from(buffer)
        end = HEADER.size + size
        if len(buffer) >= end:
            payload = buffer[HEADER.size : end]
            del buffer[:end]
            return payload
        payload = bytearray(size)
        have = len(buffer) - HEADER.size
        payload[:have] = memoryview(buffer)[HEADER.size :]
        buffer.clear()
        return payload if _fill(self.sock, memoryview(payload)[have:]) else None


# ---------------------------------------------------------------------- the writer's end


class LinkServer:
    """The writer's end: accepts the fronts' connections on the Unix socket ``path`` and
    queues each message's requests on ``committer`` as one group (see the module).

    Per front, a thread reads its messages and one sends its answers (those of a commit go
    out in one message). Requests get ``time_range`` (the store's) in their calls.
    """

    def __init__(self, committer: Any, time_range: Any, path: str) -> None:
        self.committer = committer
        self.time_range = time_range
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(path)
        os.chmod(path, 0o600)
        self._socket.listen(64)
        self._closed = False
        self._connections: list[_Connection] = []
        self.messages = 0  # received (counted by the readers; a rough figure)
        self.requests = 0
        self.answer_messages = 0  # sent
        self._thread = threading.Thread(
            target=self._accept, name="evalstore-front-link", daemon=True
        )
        self._thread.start()

    def _accept(self) -> None:
        name_os_thread("es-link-accept")
        while True:
            try:
                sock, _ = self._socket.accept()
            except OSError:
                return  # closed
            connection = _Connection(self, sock)
            self._connections = [c for c in self._connections if c.alive] + [connection]
            connection.start()

    def close(self) -> None:
        """Stop accepting and drop the fronts' connections (their waiting requests get
        503 from their front)."""
        self._closed = True
        if self.messages:
            logging.getLogger("uvicorn.error").info(
                "HTTP fronts forwarded %d ingest requests in %d messages (%.1f a message), "
                "answered in %d messages",
                self.requests, self.messages, self.requests / self.messages,
                self.answer_messages,
            )  # fmt: skip
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in self._connections:
            connection.close()


class _Connection:
    """One front's connection to the writer."""

    def __init__(self, server: LinkServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.alive = True
        #: lists of (request id, receipt or error); None when the reader stops
        self._answers: queue.SimpleQueue[list[tuple[int, Any]] | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, name="evalstore-link-in", daemon=True)
        self._sender = threading.Thread(target=self._send, name="evalstore-link-out", daemon=True)

    def start(self) -> None:
        self._reader.start()
        self._sender.start()

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _read(self) -> None:
        name_os_thread("es-link-in")
        committer = self.server.committer
        try:
            frames = _Frames(self.sock)
            while True:
                payload = frames.next()
                if payload is None:
                    break
                entries = decode_group(payload, self.server.time_range)
                self.server.messages += 1
                self.server.requests += len(entries)
                sink = self._answers
                refusals = committer.enqueue_waiters(
                    [(item, _Answer(sink, rid)) for rid, item in entries]
                )
                refused = [(rid, r) for (rid, _), r in zip(entries, refusals, strict=True)
                           if r is not None]  # fmt: skip
                if refused:
                    sink.put(refused)
        except OSError:
            pass
        except Exception:
            log.exception("the link to an HTTP front process failed; dropping it")
        finally:
            self.alive = False
            self._answers.put(None)

    def _send(self) -> None:
        name_os_thread("es-link-out")
        answers = self._answers
        while True:
            done = [answers.get()]
            while True:
                try:
                    done.append(answers.get_nowait())
                except queue.Empty:
                    break
            stop = None in done
            message = [answer_of(rid, outcome) for batch in done if batch is not None
                       for rid, outcome in batch]  # fmt: skip
            if message and self.alive:
                try:
                    self.sock.sendall(_framed(message))
                    self.server.answer_messages += 1
                except OSError:
                    self.alive = False  # the front is gone: its requests' answers too
            if stop:
                self.sock.close()
                return


class _Answer(Waiter):
    """A forwarded request waiting for the writer: its answer goes to its front's
    sending thread (``sink``: the connection's queue of answer lists), those of a group
    as one list."""

    __slots__ = ("rid",)

    def __init__(self, sink: queue.SimpleQueue[Any], rid: int) -> None:
        super().__init__(sink)
        self.rid = rid

    @classmethod
    def deliver(cls, sink: Any, answers: list[tuple[Any, Any]]) -> None:
        sink.put([(waiter.rid, outcome) for waiter, outcome in answers])


# ---------------------------------------------------------------------- the front's end


class LinkClient:
    """A front's end, on its event loop: :meth:`submit` is the group commit's ``submit``
    for the fast path (:mod:`server.fast_ingest`), forwarded to the writer at ``path``.

    A message leaves at the end of the loop turn that queued its first request
    (``delay`` 0), or ``delay`` seconds later, or at once with ``max_group`` requests. At
    32 clients a 2 ms delay saved ~0.01 ms of CPU a request on the writer's link threads
    and cost the same in latency: the default is 0."""

    def __init__(
        self,
        path: str,
        on_lost: Callable[[], None] | None = None,
        delay: float = 0.0,
        max_group: int = 256,
    ) -> None:
        self.path = path
        self.on_lost = on_lost
        self.delay = delay
        self.max_group = max_group
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future[Receipt]] = {}
        self._outbox: list[tuple[int, Item]] = []
        self._scheduled = False
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._lost: str | None = "not connected"
        self.forwarded = 0
        self.messages = 0

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect to the writer (waiting up to ``timeout`` seconds for its socket)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                reader, self._writer = await asyncio.open_unix_connection(self.path)
                break
            except OSError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.05)
        self._lost = None
        self._reading = asyncio.create_task(self._read(reader))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)

    async def submit(self, item: Item) -> Receipt:
        """Forward ``item`` with the others of this turn of the loop; return its receipt
        once the writer committed it (or raise its error, as the writer's server would)."""
        if self._lost is not None:
            raise unavailable(self._lost)
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        rid = next(self._ids)
        self._pending[rid] = future
        self._outbox.append((rid, item))
        if len(self._outbox) >= self.max_group:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            if self.delay > 0:
                asyncio.get_running_loop().call_later(self.delay, self._flush)
            else:
                asyncio.get_running_loop().call_soon(self._flush)
        try:
            return await future
        finally:
            self._pending.pop(rid, None)

    def _flush(self) -> None:
        self._scheduled = False
        entries, self._outbox = self._outbox, []
        if not entries:
            return
        try:
            if self._lost is not None or self._writer is None:
                raise ConnectionError(self._lost)
            message = encode_group(entries)
            self._writer.write(message)
        except Exception as error:
            if not isinstance(error, ConnectionError):
                log.exception("forwarding ingest requests to the writer failed")
            for rid, _ in entries:
                future = self._pending.get(rid)
                if future is not None and not future.done():
                    future.set_exception(unavailable(str(error) or "connection lost"))
            return
        self.forwarded += len(entries)
        self.messages += 1

    async def _read(self, reader: asyncio.StreamReader) -> None:
        reason = "the writer closed the link"
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                payload = await reader.readexactly(HEADER.unpack(header)[0])
                for answer in pickle.loads(payload):
                    future = self._pending.get(answer[0])
                    if future is None or future.done():
                        continue
                    outcome = outcome_of(answer)
                    if isinstance(outcome, ApiError):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        except (asyncio.IncompleteReadError, OSError) as error:
            if isinstance(error, OSError):
                reason = str(error)
        except asyncio.CancelledError:
            reason = "the front is stopping"
        finally:
            self._lost = reason
            for future in list(self._pending.values()):
                if not future.done():
                    future.set_exception(unavailable(reason))
            if self.on_lost is not None:
                self.on_lost()
