"""``evalstore.Client``: log predictions, features and labels from a service, in batches.

In background mode (the default) a ``log_*`` call appends one tuple to an in-memory buffer
under a lock and returns; a daemon thread (the flusher) turns buffered records into Arrow
batches (:mod:`evalstore.client.batches`) and sends them (:mod:`evalstore.client.transport`)
when ``flush_rows`` records are waiting, every ``flush_interval`` seconds, on :meth:`flush`,
on :meth:`close` (or the end of a ``with`` block) and at interpreter exit. In sync mode each
call sends at once and returns the receipts.

Counting (:meth:`Client.stats`) is in records: one ``log_prediction``/``log_label``/
``log_features`` call is one record (a prediction with features is one record, written as a
features row and a predictions row); a table given to a batch form counts its rows. A record
is acknowledged when every batch it went into was committed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from evalstore.client.batches import FEATURES, LABEL, PREDICTION, TABLE, build, timestamp_us
from evalstore.client.pipeline import ClientStats, Pipeline
from evalstore.client.transport import HttpTransport, StoreTransport, Transport
from evalstore.errors import InvalidParameterError

MODES = ("background", "sync")
ON_FULL = ("drop_oldest", "block")
#: Attempts per batch in sync mode when ``retries`` is None (background mode: unlimited).
SYNC_RETRIES = 3


class Client:
    """Log predictions, features and labels to an evalstore server or an in-process Store.

    ``target``: the server's URL (``"http://127.0.0.1:8000"``) or an open
    :class:`evalstore.Store`; ``token``: a write token of the server (``--tokens``).

    ``mode="background"``: calls buffer and return at once; ``"sync"``: each call sends at
    once, returns the list of receipts and raises the store's error.
    ``flush_rows``: send when this many records wait (also the most records in one drained
    chunk). ``flush_interval``: seconds between sends of what is waiting (the longest a
    record waits before it is sent, when the server keeps up). ``max_buffer_rows``: the most
    records buffered; with ``on_full="drop_oldest"`` a call on a full buffer discards the
    oldest buffered records (counted in ``stats().dropped``), with ``"block"`` it waits for
    room, at most ``block_timeout`` seconds (None: no limit) before :class:`BufferFullError`.
    Memory holds at most ``max_buffer_rows + flush_rows`` records (the buffer, plus one chunk
    being sent).
    ``retries``: attempts after the first, per batch, on connection errors, timeouts, 5xx and
    429 (None: unlimited in background mode, 3 in sync mode); waits grow from ``backoff``
    seconds, doubling up to ``max_backoff``, with random jitter (half to all of the wait).
    ``timeout``: seconds to connect and for each wait on the server. ``close_timeout``: the
    longest :meth:`close` and interpreter exit wait for delivery.
    """

    def __init__(
        self,
        target: Any,
        token: str | None = None,
        *,
        mode: str = "background",
        flush_rows: int = 20_000,
        flush_interval: float = 1.0,
        max_buffer_rows: int = 100_000,
        on_full: str = "drop_oldest",
        block_timeout: float | None = None,
        retries: int | None = None,
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        timeout: float = 30.0,
        close_timeout: float = 10.0,
    ) -> None:
        _choice("mode", mode, MODES)
        _choice("on_full", on_full, ON_FULL)
        for name, value in (("flush_rows", flush_rows), ("max_buffer_rows", max_buffer_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name} must be a positive integer, not {value!r}")
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            raise InvalidParameterError(f"retries must be None or an integer >= 0, not {retries!r}")
        for name, value in (
            ("flush_interval", flush_interval),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
            ("timeout", timeout),
            ("close_timeout", close_timeout),
            ("block_timeout", 1.0 if block_timeout is None else block_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidParameterError(
                    f"{name} must be a positive number of seconds, not {value!r}"
                )
        self._transport: Transport
        if isinstance(target, str):
            self._transport = HttpTransport(target, token, timeout)
            self.target = self._transport.url
        elif _is_store(target):
            if token is not None:
                raise InvalidParameterError(
                    "token is for a server URL; an in-process Store needs none"
                )
            self._transport = StoreTransport(target)
            self.target = target
        else:
            raise InvalidParameterError(
                f"target must be a server URL such as 'http://127.0.0.1:8000' or an open "
                f"evalstore.Store, not {type(target).__name__}"
            )
        self.mode = mode
        # pyarrow imports pandas (when installed) on its first conversion; done here, not at
        # interpreter exit, when the last flush runs and imports can no longer start threads
        build([(LABEL, "m", "e", 0, 0, None)])
        self._sync = mode == "sync"
        if retries is None and self._sync:
            retries = SYNC_RETRIES
        self._pipeline = Pipeline(
            self._transport,
            background=not self._sync,
            flush_rows=flush_rows,
            flush_interval=flush_interval,
            max_buffer_rows=max_buffer_rows,
            drop_oldest=on_full == "drop_oldest",
            block_timeout=block_timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            close_timeout=close_timeout,
        )
        self._max = max_buffer_rows
        self._append = self._pipeline.append
        self._send_now = self._pipeline.send_now

    # ----------------------------------------------------------------- single records

    def log_prediction(
        self,
        model: str,
        version: str,
        example_id: str | int,
        features: Mapping[str, Any] | None,
        prediction: Any,
        score: float | None = None,
        latency_ms: float | None = None,
        ts: Any = None,
    ) -> list[Any] | None:
        """Log what ``version`` of ``model`` predicted for ``example_id``.

        ``features`` (a dict, or None) becomes a row of the model's serving features;
        ``prediction`` (None: derived from ``score`` by a binary model's threshold),
        ``score`` (the positive-class probability) and ``latency_ms`` a predictions row.
        ``ts`` is the event time: a datetime (naive means UTC), ISO-8601 text or seconds
        since the epoch; default now. Background mode returns None; sync mode the receipts
        (features first, then predictions).
        """
        record = (
            PREDICTION,
            model,
            version,
            example_id,
            dict(features) if features else None,
            prediction,
            score,
            latency_ms,
            time.time_ns() // 1000 if ts is None else timestamp_us(ts),
        )
        if model.__class__ is not str or version.__class__ is not str:
            raise InvalidParameterError(
                f"model and version must be text, not {type(model).__name__} and "
                f"{type(version).__name__}"
            )
        if self._sync:
            return self._send_now([record])
        self._append(record, 1)
        return None

    def log_label(
        self,
        model: str,
        example_id: str | int,
        label: Any,
        ts: Any = None,
        source: str | None = None,
    ) -> list[Any] | None:
        """Log the ground truth of ``example_id``; ``ts`` is when the label became known
        (default now); ``source`` tags it (``'chargeback'``, ``'annotator'``)."""
        if model.__class__ is not str:
            raise InvalidParameterError(f"model must be text, not {type(model).__name__}")
        record = (
            LABEL,
            model,
            example_id,
            label,
            time.time_ns() // 1000 if ts is None else timestamp_us(ts),
            source,
        )
        if self._sync:
            return self._send_now([record])
        self._append(record, 1)
        return None

    def log_features(
        self,
        model: str,
        example_id: str | int,
        features: Mapping[str, Any],
        ts: Any = None,
        env: str = "serving",
    ) -> list[Any] | None:
        """Log one example's features (in ``env``: serving, training or validation)."""
        if model.__class__ is not str or not isinstance(features, Mapping):
            raise InvalidParameterError(
                f"model must be text and features a mapping of feature name to value, not "
                f"{type(model).__name__} and {type(features).__name__}"
            )
        record = (
            FEATURES,
            model,
            example_id,
            dict(features),
            time.time_ns() // 1000 if ts is None else timestamp_us(ts),
            env,
        )
        if self._sync:
            return self._send_now([record])
        self._append(record, 1)
        return None

    # ----------------------------------------------------------------- batch forms

    def log_predictions(
        self,
        model: str,
        version: str,
        data: Any,
        *,
        id_column: str = "example_id",
        ts_column: str = "ts",
        prediction_column: str = "prediction",
        score_column: str | None = "score",
        probability_columns: Sequence[str] | None = None,
        latency_column: str | None = None,
    ) -> list[Any] | None:
        """Log a table of predictions (pyarrow, pandas, polars, anything with
        ``__arrow_c_stream__``, or a Parquet/CSV/Arrow file path) as one batch; the options
        are ``Store.log_predictions``'s."""
        options = {
            "version": version,
            "id_column": id_column,
            "ts_column": ts_column,
            "prediction_column": prediction_column,
            "score_column": score_column,
            "probability_columns": probability_columns,
            "latency_column": latency_column,
        }
        return self._log_table("predictions", model, data, options)

    def log_labels(
        self,
        model: str,
        data: Any,
        *,
        id_column: str = "example_id",
        label_column: str = "label",
        ts_column: str = "ts",
        source: str | None = None,
    ) -> list[Any] | None:
        """Log a table of labels as one batch (options as ``Store.log_labels``)."""
        options = {
            "id_column": id_column,
            "label_column": label_column,
            "ts_column": ts_column,
            "source": source,
        }
        return self._log_table("labels", model, data, options)

    def log_features_batch(
        self,
        model: str,
        data: Any,
        *,
        env: str = "serving",
        dataset: str | None = None,
        id_column: str = "example_id",
        ts_column: str = "ts",
        on_conflict: str = "error",
    ) -> list[Any] | None:
        """Log a table of feature rows as one batch (options as ``Store.log_features``)."""
        options = {
            "env": env,
            "dataset": dataset,
            "id_column": id_column,
            "ts_column": ts_column,
            "on_conflict": on_conflict,
        }
        return self._log_table("features", model, data, options)

    def _log_table(
        self, kind: str, model: str, data: Any, options: dict[str, Any]
    ) -> list[Any] | None:
        from evalstore.core.sources import to_reader

        if model.__class__ is not str:
            raise InvalidParameterError(f"model must be text, not {type(model).__name__}")
        table = to_reader(data).read_all()
        record = (TABLE, table.num_rows, kind, model, table, options)
        if self._sync:
            return self._send_now([record])
        if table.num_rows > self._max:
            raise InvalidParameterError(
                f"data has {table.num_rows} rows, more than max_buffer_rows={self._max}: log "
                "it in parts, raise max_buffer_rows, or use a client with mode='sync'"
            )
        self._append(record, table.num_rows)
        return None

    # ----------------------------------------------------------------- lifecycle

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything logged so far and wait until it is acknowledged, refused or
        dropped; False if ``timeout`` seconds passed first (sync mode: True at once)."""
        return self._pipeline.flush(timeout)

    def stats(self) -> ClientStats:
        """The counts so far, in records (see :class:`ClientStats`)."""
        return self._pipeline.stats()

    def close(self, timeout: float | None = None) -> ClientStats:
        """Send what is buffered and stop; wait at most ``timeout`` seconds (default the
        client's ``close_timeout``). Records still unsent then are counted as dropped.
        Returns the final :meth:`stats`. Closing twice is harmless."""
        return self._pipeline.close(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"<evalstore.Client {self.mode} to {self.target!r}: {s.acknowledged} acknowledged, "
            f"{s.pending} pending, {s.dropped} dropped, {s.failed} failed>"
        )


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidParameterError(
            f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}"
        )


def _is_store(target: Any) -> bool:
    from evalstore.store import Store

    return isinstance(target, Store)
