"""Serving histograms of the numeric features on the reference's bin edges, kept for ``/metrics``.

Prometheus histograms of the features let a team compute drift in PromQL (e.g. a KS
distance between two ``increase(evalstore_feature_bucket[...])`` ranges). A scrape must
not scan the store, so the server's monitor loop (:mod:`server.monitor_loop`) keeps the
counts here and the scrape reads them:

- **edges**: for each numeric feature of a model, ``evalstore.quantile_edges(value,``
  :data:`BINS` ``)`` over the finite *training* values (env ``training``, the drift
  family's default reference and default quantile binning with 10 bins): the distinct
  ``[min, q(1/10), …, q(9/10), max]``. They are recomputed when training rows arrive
  (a new highest training batch id), and the counts then start again from zero (a
  counter reset, which PromQL's ``increase``/``rate`` handle);
- **counts**: serving rows (env ``serving``) with a finite value, cumulative over every
  batch ingested since the edges were set: ``le=e`` counts values ``<= e`` (Prometheus'
  bucket rule; the drift family's bins are ``[e_i, e_{i+1})``, so a value equal to an
  inner edge is one bin higher there), ``+Inf`` and ``_count`` every finite value,
  ``_sum`` their sum. NULL, NaN and ±inf values are not observations here: they are
  the invalid-value counters of :mod:`server.prom`. Each refresh counts only the batches
  above the last one counted (the highest serving batch id), in one read snapshot, so a
  refresh costs the new rows, not the table. A row replaced by a later batch
  (``on_conflict='replace'``) is counted again, as ingested rows are.

A model with more than :data:`MAX_FEATURES` numeric features gets histograms for the
first :data:`MAX_FEATURES` (by column order). Counts live in the server's memory: a
restarted server recounts from the stored rows on its first pass (a counter reset).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import duckdb

from evalstore.core.db import transaction
from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.values import feature_kinds

#: Quantile bins of the reference (the drift family's default ``bins``).
BINS = 10
#: Most numeric features per model with a histogram.
MAX_FEATURES = 200


@dataclass
class Histogram:
    """One feature's serving histogram: ``edges`` (ascending), ``buckets[i]`` = finite
    values ``<= edges[i]``, ``count`` finite values, ``total`` their sum."""

    edges: list[float]
    buckets: list[int]
    count: int = 0
    total: float = 0.0


@dataclass
class _Model:
    training_batch: int | None
    serving_batch: int
    histograms: dict[str, Histogram] = field(default_factory=dict)
    features: tuple[str, ...] = ()

    def copy(self) -> _Model:
        return _Model(
            self.training_batch,
            self.serving_batch,
            {k: _copy(h) for k, h in self.histograms.items()},
            self.features,
        )


def _copy(h: Histogram) -> Histogram:
    return Histogram(list(h.edges), list(h.buckets), h.count, h.total)


class FeatureHistograms:
    """The histograms of every model, refreshed by :meth:`refresh`, read by :meth:`samples`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}

    def refresh(self, con: duckdb.DuckDBPyConnection, model: str) -> None:
        """Count the serving batches of ``model`` ingested since the last refresh (and
        set the edges first when the training rows changed), on ``con`` (a session's
        connection, in one read transaction)."""
        numeric = [f for f, kind in feature_kinds(con, model).items() if kind == "numeric"]
        numeric = numeric[:MAX_FEATURES]
        features = f"{schema_prefix(con, model)}features"
        with self._lock:
            kept = self._models.get(model)
        state = None if kept is None else kept.copy()  # scrapes read the kept one meanwhile
        with transaction(con):  # one snapshot: the edges, the counts and the watermark
            training, serving = con.execute(
                f"SELECT max(batch_id) FILTER (WHERE env = 'training'), "
                f"max(batch_id) FILTER (WHERE env = 'serving') FROM {features}"
            ).fetchall()[0]
            if (
                state is None
                or state.training_batch != training
                or state.features != tuple(numeric)
            ):
                state = _Model(training, -1, _edges(con, features, numeric), tuple(numeric))
            if serving is not None and serving > state.serving_batch:
                _count(con, features, state, state.serving_batch, serving)
                state.serving_batch = serving
        with self._lock:
            self._models[model] = state

    def samples(self) -> list[tuple[str, str, Histogram]]:
        """``(model, feature, histogram)`` for every kept histogram (copies)."""
        with self._lock:
            return [
                (model, feature, _copy(h))
                for model, state in sorted(self._models.items())
                for feature, h in sorted(state.histograms.items())
            ]

    def forget(self, model: str) -> None:
        with self._lock:
            self._models.pop(model, None)


def _finite(column: str) -> str:
    return f"isfinite(CAST({column} AS DOUBLE))"


def _edges(
    con: duckdb.DuckDBPyConnection, features: str, numeric: list[str]
) -> dict[str, Histogram]:
    """The reference edges of each feature with finite training values."""
    if not numeric:
        return {}
    parts = [
        f"(SELECT evalstore.quantile_edges(CAST({quote(f)} AS DOUBLE), {BINS}) FROM {features} "
        f"WHERE env = 'training' AND {_finite(quote(f))})"
        for f in numeric
    ]
    row = con.execute(f"SELECT {', '.join(parts)}").fetchall()[0]
    out = {}
    for feature, edges in zip(numeric, row, strict=True):
        if edges:
            clean = [float(e) for e in edges if e is not None and math.isfinite(e)]
            out[feature] = Histogram(clean, [0] * len(clean))
    return out


def _count(
    con: duckdb.DuckDBPyConnection, features: str, state: _Model, after: int, upto: int
) -> None:
    """Add the finite serving values of batches ``(after, upto]`` to the histograms."""
    names = list(state.histograms)
    if not names:
        return
    parts: list[str] = []
    for name in names:
        column = f"CAST({quote(name)} AS DOUBLE)"
        finite = _finite(quote(name))
        parts += [
            f"count(*) FILTER (WHERE {finite} AND {column} <= {float(edge)!r})"
            for edge in state.histograms[name].edges
        ]
        parts += [f"count(*) FILTER (WHERE {finite})", f"sum({column}) FILTER (WHERE {finite})"]
    row = con.execute(
        f"SELECT {', '.join(parts)} FROM {features} "
        "WHERE env = 'serving' AND batch_id > ? AND batch_id <= ?",
        [after, upto],
    ).fetchall()[0]
    values: list[Any] = list(row)
    for name in names:
        histogram = state.histograms[name]
        n = len(histogram.edges)
        counts, values = values[:n], values[n:]
        histogram.buckets = [b + int(c) for b, c in zip(histogram.buckets, counts, strict=True)]
        histogram.count += int(values[0])
        histogram.total += float(values[1] or 0.0)
        values = values[2:]
