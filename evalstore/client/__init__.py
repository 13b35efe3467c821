"""``evalstore.Client``: log predictions, features and labels from services, in batches.

A service calls ``client.log_prediction(...)`` on its request path; the client buffers the
record in memory and a background thread sends Arrow IPC batches to ``evalstore serve`` (or
writes them into an in-process :class:`evalstore.Store`), each under a batch key so that a
retry after a lost answer is stored once. See ``docs/services.md``.

Modules: :mod:`~evalstore.client.client` (the Client, its buffer and flusher thread),
:mod:`~evalstore.client.batches` (records to Arrow batches), :mod:`~evalstore.client.transport`
(HTTP and in-process sending, retry classification), :mod:`~evalstore.client.errors`.

Import rule: the client is a top-level layer beside ``evalstore.store`` (it may import
``evalstore.core`` and the Store; nothing in core, metrics or flywheel imports it) and never
imports the ``server`` package: it speaks to the server over HTTP only.
"""

from __future__ import annotations

from evalstore.client.client import Client, ClientStats
from evalstore.client.errors import (
    BufferFullError,
    ClientClosedError,
    ServerError,
    ServerUnavailableError,
)

__all__ = [
    "BufferFullError",
    "Client",
    "ClientClosedError",
    "ClientStats",
    "ServerError",
    "ServerUnavailableError",
]
