"""How a built batch reaches the store: over HTTP, or by a call on an in-process Store.

Both transports send one :class:`~evalstore.client.batches.Batch` and return the
:class:`~evalstore.Receipt` of its commit, with the batch's key as the idempotency key (HTTP
header ``Idempotency-Key``, ``Store.log_*(batch_key=...)``): a batch sent again after a
lost answer is written once, and the replay's receipt says ``duplicate``.

Failures come in two kinds. :class:`Retryable` wraps those worth another attempt with the
same key: the connection failed or timed out, HTTP 5xx, 429 (the server's ``Retry-After``
is kept). Anything else is an :class:`~evalstore.errors.EvalstoreError` (the library's class
for the server's error code, see :mod:`evalstore.client.errors`) and is final: sending the
same rows again would be refused again.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import pyarrow as pa
import pyarrow.ipc as ipc

from evalstore.client.batches import Batch
from evalstore.client.errors import ServerUnavailableError, from_response
from evalstore.core.ingest_write import Receipt
from evalstore.errors import EvalstoreError, InvalidParameterError

ARROW = "application/vnd.apache.arrow.stream"
#: What the batches table records as each batch's ``source``.
ORIGIN = "evalstore.Client"
_RECEIPT_FIELDS = {f.name for f in dataclasses.fields(Receipt)}


class Retryable(Exception):
    """A failed attempt worth repeating with the same batch key.

    ``error`` is what the caller sees if every attempt fails; ``retry_after`` the seconds
    the server asked to wait (``Retry-After`` of a 429 or 503), else None.
    """

    def __init__(self, error: EvalstoreError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class Transport(Protocol):
    """Sends one batch; returns its receipt, raises :class:`Retryable` or a final error."""

    def send(self, batch: Batch) -> Receipt: ...

    def close(self) -> None: ...


def receipt_from_json(body: dict[str, Any]) -> Receipt:
    """The :class:`Receipt` of a JSON receipt (fields this evalstore lacks are ignored)."""
    values = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in body.items()
        if name in _RECEIPT_FIELDS
    }
    return Receipt(**values)


def arrow_stream(table: pa.Table) -> pa.Buffer:
    """``table`` in the Arrow IPC stream format (the ingest routes' binary body)."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def query_parameters(options: dict[str, Any]) -> dict[str, str]:
    """The ingest route's query parameters for ``Store.log_*`` keyword ``options``.

    ``None`` leaves a parameter out, except ``score_column``, which the route reads as
    "no score column" when empty; a list of ``probability_columns`` is comma-separated.
    """
    params: dict[str, str] = {"origin": ORIGIN}
    for name, value in options.items():
        if value is None:
            if name == "score_column":
                params[name] = ""
            continue
        if name == "probability_columns":
            if isinstance(value, dict):
                raise InvalidParameterError(
                    "probability_columns: over HTTP, pass the list of columns named after "
                    "the classes (a {class: column} mapping is for an in-process Store)"
                )
            value = ",".join(value)
        params[name] = str(value)
    return params


class HttpTransport:
    """Batches to ``evalstore serve`` at ``url`` over one keep-alive connection.

    ``url`` is ``http://host:port`` or ``https://...``, optionally with a path prefix (a
    reverse proxy's); ``token`` is sent as ``Authorization: Bearer``; ``timeout`` bounds
    connecting and each wait for data, in seconds.
    """

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterError(
                f"target={url!r} is not an evalstore server URL: pass 'http://host:port' "
                "(or https://...), or an evalstore.Store for in-process writes"
            )
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": ARROW, "Accept": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = cls(self._host, self._port, timeout=self._timeout)
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def send(self, batch: Batch) -> Receipt:
        path = f"{self._prefix}/v1/models/{quote(batch.model, safe='')}/{batch.kind}"
        path += "?" + urlencode(query_parameters(batch.options))
        body = memoryview(arrow_stream(batch.table))
        headers = {**self._headers, "Idempotency-Key": batch.key}
        status, data, retry_after = self._request(path, body, headers)
        if status == 200:
            return receipt_from_json(json.loads(data))
        error = from_response(status, data, f"POST {path.split('?')[0]}")
        if status >= 500 or status == 429:
            raise Retryable(error, retry_after)
        raise error

    def _request(
        self, path: str, body: memoryview, headers: dict[str, str]
    ) -> tuple[int, bytes, float | None]:
        """POST once; a kept-alive connection the server has closed meanwhile is replaced
        and the request sent again at once (same key, so never written twice)."""
        for fresh in (self._connection is None, True):
            try:
                if self._connection is None:
                    self._connection = self._connect()
                self._connection.request("POST", path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if fresh or isinstance(error, TimeoutError):
                    raise Retryable(
                        ServerUnavailableError(f"POST {self.url}{path.split('?')[0]}: {error!r}")
                    ) from error
                continue
            if response.will_close:
                self.close()
            return response.status, data, _seconds(response.getheader("Retry-After"))
        raise AssertionError("unreachable: the second attempt returns or raises")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class StoreTransport:
    """Batches to an open :class:`evalstore.Store` in this process (``Store.log_*``)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._calls = {
            "features": store.log_features,
            "predictions": store.log_predictions,
            "labels": store.log_labels,
        }

    def send(self, batch: Batch) -> Receipt:
        call = self._calls[batch.kind]
        try:
            return call(
                batch.model, batch.table, **batch.options, batch_key=batch.key, origin=ORIGIN
            )
        except OSError as error:  # the disk, not the batch: worth another attempt
            raise Retryable(
                ServerUnavailableError(f"{batch.kind} of {batch.model!r}: {error!r}")
            ) from error

    def close(self) -> None:
        """The store stays open: it belongs to the caller."""
