"""Which windows of a persisted metric call later batches touched.

A persisted call (:mod:`evalstore.monitors.history`) remembers, per call, the input
*watermark* it was last refreshed at (the highest batch id of the model's features,
predictions and labels in ``evalstore.batches``) and, per time window, how many serving
feature rows and predictions fell in it. On the next call the windows to recompute are
the union of (``b(ts)`` is the window holding ``ts``):

* ``b(f.ts)`` of serving feature rows of batches after the watermark (new rows, and the
  new side of rows replaced with ``on_conflict='replace'``);
* ``b(p.ts)`` of predictions of batches after the watermark;
* for calls cut on feature time (drift, quality), ``b(f.ts)`` of the serving feature
  rows of examples that got a label after the watermark (a late label or a correction:
  these families read the label at its example's feature time) and, with ``version=``,
  of examples predicted after it: found by
  :func:`evalstore.monitors.history_windows.feature_time_windows`, which looks up
  among the older rows only the examples whose serving feature row is older than the
  watermark;
* for calls cut on prediction time (performance; :func:`touched_windows`), ``b(p.ts)``
  of the predictions of examples that got a label after the watermark (performance
  reads labels at prediction time) and, when a ``where``/``by`` predicate reads
  features beside predictions, of examples whose serving features changed;
* windows whose row counts differ from the stored ones: the old side of a replaced row
  leaves its window without adding a later batch id there, and only the count shows it.

Every reader of the raw tables filters ``batch_id > watermark`` first, which DuckDB
answers from the row groups' min/max statistics (batch ids grow as rows are appended),
so finding the touched windows costs the new rows plus a probe of the example keys that
new labels and predictions point to, not a pass over every value (for performance, the
predictions of the touched examples are read from the table
:class:`~evalstore.monitors.history_touched.TouchedPredictions` shares with the label
horizon). The window counts are the stored ones plus those of the new rows
(:func:`bucket_counts` with ``after``) unless rows were removed since; only then is
every row's ``ts`` scanned. What cannot be attributed to a window (the reference rows,
the registry, the feature columns, the macros) is summarised in one *context hash*;
when it changes every window is recomputed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from evalstore.core.layout import model_columns, model_relation
from evalstore.core.windows import Selection
from evalstore.monitors.history_touched import TouchedPredictions

#: Input tables whose highest batch id makes the watermark, as ``evalstore.batches.kind``.
KINDS = ("features", "predictions", "labels")
#: The origin of ``evalstore.window_start`` (2000-01-03 00:00 UTC) in epoch microseconds.
WINDOW_ORIGIN_US = 946_857_600_000_000


@dataclass(frozen=True)
class Watermark:
    """The highest batch id of each input table of a model (None: no batch yet)."""

    features: int | None
    predictions: int | None
    labels: int | None

    def as_list(self) -> list[int | None]:
        return [self.features, self.predictions, self.labels]


def watermark(con: duckdb.DuckDBPyConnection, model: str) -> Watermark:
    """The model's :class:`Watermark` now, from ``evalstore.batches`` (a small table)."""
    rows = dict(
        con.execute(
            "SELECT kind, max(batch_id) FROM evalstore.batches WHERE model = ? GROUP BY kind",
            [model],
        ).fetchall()
    )
    return Watermark(*(rows.get(kind) for kind in KINDS))


def bucket_counts(
    con: duckdb.DuckDBPyConnection,
    model: str,
    width: str,
    since: datetime | None,
    until: datetime | None,
    after: Watermark | None = None,
) -> dict[datetime, tuple[int, int]]:
    """``{window_start: (serving feature rows, predictions)}`` of every non-empty time
    window of ``width`` with rows in ``[since, until)`` (None: open); with ``after``,
    of the rows of later batches only.

    This scan of every row's ``ts`` is the largest fixed cost of a refresh: rows are
    grouped by an integer window number (the floor of the microseconds since
    ``evalstore.window_start``'s origin over the width, exact integer arithmetic) and
    only each group's first ``ts`` goes through ``evalstore.window_start``, about six
    times faster than the macro on every row. Widths with months or years (not a fixed
    number of microseconds) group by the macro itself.
    """
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    bucket = _bucket(con, width)
    params: dict[str, Any] = {"w": width, "since": since, "until": until}
    newer = {"features": "", "predictions": ""}
    if after is not None:
        params |= {"wf": _floor(after.features), "wp": _floor(after.predictions)}
        newer = {"features": " AND batch_id > $wf", "predictions": " AND batch_id > $wp"}
    sql = f"""
        SELECT evalstore.window_start(min(first_ts), $w), sum(f) AS f, sum(p) AS p FROM (
            SELECT {bucket} AS bucket, min(ts) AS first_ts, count(*) AS f, 0 AS p
            FROM {features}
            WHERE env = 'serving' AND ($since IS NULL OR ts >= $since)
              AND ($until IS NULL OR ts < $until){newer["features"]}
            GROUP BY bucket
            UNION ALL
            SELECT {bucket}, min(ts), 0, count(*)
            FROM {predictions}
            WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until)
              {newer["predictions"]}
            GROUP BY 1
        ) GROUP BY bucket
    """
    return {
        start: (int(f), int(p))
        for start, f, p in con.execute(sql, params).fetchall()
        if start is not None
    }


def _bucket(con: duckdb.DuckDBPyConnection, width: str) -> str:
    """SQL of the window number of a row's ``ts`` for windows of ``width`` (the
    parameter ``$w``): an integer for widths of a fixed number of microseconds (rows of
    one window share it), ``evalstore.window_start`` itself for widths with months or
    years."""
    fixed = con.execute(
        "SELECT datepart('year', CAST(? AS INTERVAL)) = 0 "
        "AND datepart('month', CAST(? AS INTERVAL)) = 0",
        [width, width],
    ).fetchall()[0][0]
    if not fixed:
        return "evalstore.window_start(ts, $w)"
    offset = f"(epoch_us(ts) - {WINDOW_ORIGIN_US})"
    size = "evalstore.interval_us($w)"
    return f"({offset} - (({offset} % {size}) + {size}) % {size}) // {size}"


def _floor(batch_id: int | None) -> int:
    """A watermark's batch id, -1 for none (every batch id is later)."""
    return -1 if batch_id is None else batch_id


@dataclass(frozen=True)
class Reads:
    """What a family's windows read besides their own rows (see the module docstring)."""

    #: windows are cut on feature time (drift, quality) rather than prediction time
    feature_time: bool
    #: the family keeps only the examples ``version`` predicted (drift, quality)
    version: bool
    #: a predicate reads serving features beside predictions (``where``, ``by``)
    features_beside_predictions: bool


def touched_windows(
    con: duckdb.DuckDBPyConnection,
    model: str,
    width: str,
    since: datetime | None,
    until: datetime | None,
    stored: Watermark,
    reads: Reads,
    touched: TouchedPredictions | None = None,
) -> set[datetime]:
    """Starts of the windows of a call cut on prediction time (performance) holding
    rows that batches after ``stored`` added or changed (the items of the module
    docstring but the feature-time one; counts are compared by the caller). Calls cut
    on feature time go through
    :func:`evalstore.monitors.history_windows.feature_time_windows`; ``reads`` says
    only whether a predicate reads features beside predictions.

    With ``touched`` (and no predicate reading features beside predictions), the
    predictions of examples that got a label after ``stored`` are read from its table
    (shared with the label horizon) instead of a scan of every prediction's key."""
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    labels = model_relation(con, model, "labels")
    new = {
        "wf": -1 if stored.features is None else stored.features,
        "wp": -1 if stored.predictions is None else stored.predictions,
        "wl": -1 if stored.labels is None else stored.labels,
    }
    new_labels = f"SELECT example_key FROM {labels} WHERE batch_id > $wl"
    new_features = f"SELECT example_key FROM {features} WHERE env = 'serving' AND batch_id > $wf"
    parts = [
        f"SELECT ts FROM {predictions} WHERE batch_id > $wp",
        f"SELECT ts FROM {features} WHERE env = 'serving' AND batch_id > $wf",
    ]
    if touched is not None and not reads.features_beside_predictions:
        _, shared = touched.tables(new["wl"], new["wp"])
        parts.append(f"SELECT ts FROM {shared} WHERE new_label")
    else:
        keys = [new_labels, *([new_features] if reads.features_beside_predictions else [])]
        parts.append(
            f"SELECT ts FROM {predictions} WHERE example_key IN ({' UNION ALL '.join(keys)})"
        )
    # grouped by window number; only each window's first ts goes through the macro
    sql = f"""
        SELECT evalstore.window_start(min(ts), $w) FROM ({" UNION ALL ".join(parts)})
        WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until)
        GROUP BY {_bucket(con, width)}
    """
    params = {**new, "w": width, "since": since, "until": until}
    if "$wl" not in sql:  # the new labels' keys are read from ``touched`` alone
        del params["wl"]
    return {start for (start,) in con.execute(sql, params).fetchall() if start is not None}


def reference_fingerprint(
    con: duckdb.DuckDBPyConnection,
    model: str,
    selection: Selection,
    stored: list[Any] | None = None,
    labels_after: int | None = None,
) -> list[Any]:
    """Row count and order-free digest of a fixed reference: its feature rows, the
    latest labels of their examples and (a serving time range) the predictions in it.

    The digest is ``bit_xor(hash(example_key, batch_id))``: any row added, removed or
    replaced changes it (barring a 64-bit collision). None for a rolling reference
    (``{'previous': n}``), which is a function of the windows themselves.

    ``stored`` is the fingerprint a call saw at its watermark, whose labels batch is
    ``labels_after``: when the feature rows are the same and no later label batch
    labels one of their examples, the latest labels of the reference are those it
    saw, and its labels part is kept instead of joining every label with the
    reference. A reference that cannot hold predictions (another env, or a dataset
    tag) skips their scan; its part is the empty one, ``['0', 'None']``.
    """
    if selection.previous:
        return [None]
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    latest = model_relation(con, model, "labels_latest")
    labels = model_relation(con, model, "labels")
    condition = """($env IS NULL OR f.env = $env) AND ($dataset IS NULL OR f.dataset = $dataset)
        AND ($start IS NULL OR f.ts >= $start) AND ($end IS NULL OR f.ts < $end)"""
    params = {
        "env": selection.ref_env,
        "dataset": selection.ref_dataset,
        "start": selection.ref_start,
        "end": selection.ref_end,
    }
    digest = "[count(*), bit_xor(hash(f.example_key, f.batch_id))]"
    (feature_part,) = con.execute(
        f"SELECT {digest} FROM {features} AS f WHERE {condition}", params
    ).fetchall()[0]
    feature_part = [str(x) for x in feature_part]
    labels_part = None
    if stored is not None and len(stored) == 3 and stored[0] == feature_part:
        newer = con.execute(
            f"SELECT count(*) FROM {labels} AS l JOIN {features} AS f "
            f"ON f.example_key = l.example_key WHERE l.batch_id > $after AND {condition}",
            {**params, "after": -1 if labels_after is None else labels_after},
        ).fetchall()[0][0]
        if not newer:
            labels_part = stored[1]
    if labels_part is None:
        (labels_part,) = con.execute(
            f"SELECT [count(*), bit_xor(hash(l.example_key, l.batch_id))] "
            f"FROM {latest} AS l JOIN {features} AS f ON f.example_key = l.example_key "
            f"WHERE {condition}",
            params,
        ).fetchall()[0]
        labels_part = [str(x) for x in labels_part]
    prediction_part = ["0", "None"]
    if selection.ref_env in (None, "serving") and selection.ref_dataset is None:
        (prediction_part,) = con.execute(
            f"SELECT {digest} FROM {predictions} AS f "
            "WHERE ($start IS NULL OR f.ts >= $start) AND ($end IS NULL OR f.ts < $end)",
            {"start": selection.ref_start, "end": selection.ref_end},
        ).fetchall()[0]
        prediction_part = [str(x) for x in prediction_part]
    return [feature_part, labels_part, prediction_part]


def context_hash(
    con: duckdb.DuckDBPyConnection, model: str, params_hash: str, extra: Mapping[str, Any]
) -> str:
    """SHA-256 (hex) of what every window of a call depends on: the call's parameters,
    the evalstore version and the installed macros' hash and version, the model's
    registry rows and feature columns, and ``extra`` (the reference fingerprint; for
    coupled calls also the model's row totals)."""
    from evalstore import __version__

    # the macros' content and version, not their installation time: reinstalling the
    # same macros changes no result
    macros = con.execute(
        "SELECT key, value FROM evalstore.meta "
        "WHERE key IN ('macros_hash', 'macros_version') ORDER BY key"
    ).fetchall()
    registry = con.execute(
        "SELECT to_json(m) FROM evalstore.models AS m WHERE model = ? ORDER BY version", [model]
    ).fetchall()
    document = {
        "params": params_hash,
        "evalstore": __version__,
        "macros": macros,
        "registry": [row[0] for row in registry],
        "features": model_columns(con, model, "features"),
        **extra,
    }
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
