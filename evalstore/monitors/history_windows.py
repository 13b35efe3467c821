"""Which windows of a persisted metric call to recompute, and over which time ranges.

:func:`current_windows` lists every window a fresh call would list, with its serving
feature rows and predictions; :func:`stale_windows` the ones whose rows later batches
touched or whose counts changed; :func:`runs` the ``[since, until)`` of each run of
consecutive stale windows (one family call each). Quality's gaps (windows without
analysis rows, whose rows depend on every other window) are found by :func:`gaps`,
:func:`filled_windows` and :func:`stored_gaps`. See :mod:`evalstore.monitors.history`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from evalstore.core.layout import model_relation
from evalstore.core.values import feature_kinds
from evalstore.monitors import fingerprints, storage
from evalstore.monitors.fingerprints import Watermark
from evalstore.monitors.history_params import Plan
from evalstore.monitors.history_touched import TouchedPredictions


def filled_windows(part: pa.Table) -> set[datetime]:
    """The window starts a family result has rows for."""
    return set(part.column("window_start").to_pylist()) if part.num_rows else set()


def gaps(part: pa.Table) -> bool:
    """Whether a quality result holds a window without analysis rows (gap)."""
    if not part.num_rows:
        return False
    most = part.group_by("window_start").aggregate([("n_analysis", "max")])
    return any(not n for n in most.column("n_analysis_max").to_pylist())


def stored_gaps(con: duckdb.DuckDBPyConnection, key: Sequence[str], dropped: set[datetime]) -> bool:
    """Whether the stored windows that stay (not in ``dropped``) hold a gap."""
    rows = con.execute(
        f"SELECT window_start FROM evalstore.metric_history WHERE {storage.CALL_KEY} "
        "AND NOT list_contains(?::TIMESTAMPTZ[], window_start) "
        "GROUP BY window_start HAVING coalesce(max(n_analysis), 0) = 0 LIMIT 1",
        [*key, sorted(dropped)],
    ).fetchall()
    return bool(rows)


def totals(con: duckdb.DuckDBPyConnection, model: str) -> list[int]:
    """Serving feature rows and predictions of the model (removals show only here)."""
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    s = con.execute(
        f"SELECT (SELECT count(*) FROM {features} WHERE env = 'serving'), "
        f"(SELECT count(*) FROM {predictions})"
    ).fetchall()[0]
    return [int(s[0]), int(s[1])]


@dataclass(frozen=True)
class Counted:
    """When a stored call's window counts (``metric_history_windows``) were taken: its
    watermark and the model's rows then (features of every env, predictions; None for
    a call stored before these were recorded)."""

    key: tuple[str, str, str]
    mark: Watermark
    feature_rows: int | None
    prediction_rows: int | None


def row_totals(con: duckdb.DuckDBPyConnection, model: str) -> tuple[int, int]:
    """Rows of the model's features (every env) and predictions: ``count(*)`` without a
    filter, which DuckDB answers from the tables' row counts without a scan."""
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    f, p = con.execute(
        f"SELECT (SELECT count(*) FROM {features}), (SELECT count(*) FROM {predictions})"
    ).fetchall()[0]
    return int(f), int(p)


def current_windows(
    con: duckdb.DuckDBPyConnection,
    model: str,
    plan: Plan,
    counted: Counted | None = None,
    totals: tuple[int, int] | None = None,
) -> dict[datetime, tuple[int, int]]:
    """Every window the fresh call lists, with its row counts: the non-empty windows,
    and for quality the empty ones between them (or across ``[since, until)``).

    With ``counted`` (the stored call) and ``totals`` (:func:`row_totals` now), the
    counts are the stored ones plus those of the rows of later batches, unless rows
    were removed since (features replaced with ``on_conflict='replace'``: the totals do
    not add up); otherwise, and for a call stored without counts, every row's ``ts`` is
    scanned."""
    assert plan.width is not None
    counts = None
    if counted is not None and totals is not None:
        counts = _counts_since(con, model, plan, counted, totals)
    if counts is None:
        counts = fingerprints.bucket_counts(con, model, plan.width, plan.since, plan.until)
    if not plan.fill:
        return counts
    has_features = bool(feature_kinds(con, model))
    seen = [s for s, (f, p) in counts.items() if p or (f and has_features)]
    first, last = (min(seen), max(seen)) if seen else (None, None)
    starts = con.execute(
        "SELECT unnest(evalstore.analysis_window_starts(?, ?, ?, ?, ?))",
        [plan.since, plan.until, first, last, plan.width],
    ).fetchall()
    filled = {start: counts.get(start, (0, 0)) for (start,) in starts}
    return {**filled, **counts}


def _counts_since(
    con: duckdb.DuckDBPyConnection,
    model: str,
    plan: Plan,
    counted: Counted,
    totals: tuple[int, int],
) -> dict[datetime, tuple[int, int]] | None:
    """The stored window counts of ``counted`` plus those of later batches' rows, or
    None when a row the counts saw is gone (rows of later batches have higher batch
    ids, so the totals add up exactly when no row at or below the watermark was
    removed)."""
    assert plan.width is not None
    if counted.feature_rows is None or counted.prediction_rows is None:
        return None
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    mark = counted.mark
    newer = con.execute(
        f"SELECT (SELECT count(*) FROM {features} WHERE batch_id > $wf), "
        f"(SELECT count(*) FROM {predictions} WHERE batch_id > $wp)",
        {
            "wf": -1 if mark.features is None else mark.features,
            "wp": -1 if mark.predictions is None else mark.predictions,
        },
    ).fetchall()[0]
    if (counted.feature_rows + newer[0], counted.prediction_rows + newer[1]) != totals:
        return None
    counts = {s: c for s, c in stored_counts(con, counted.key).items() if c != (0, 0)}
    added = fingerprints.bucket_counts(con, model, plan.width, plan.since, plan.until, after=mark)
    for start, (f, p) in added.items():
        old_f, old_p = counts.get(start, (0, 0))
        counts[start] = (old_f + f, old_p + p)
    return counts


def stored_counts(
    con: duckdb.DuckDBPyConnection, key: Sequence[str]
) -> dict[datetime, tuple[int, int]]:
    """The windows a stored call recorded, with their row counts."""
    return {
        start: (int(f), int(p))
        for start, f, p in con.execute(
            "SELECT window_start, feature_rows, prediction_rows FROM "
            f"evalstore.metric_history_windows WHERE {storage.CALL_KEY}",
            list(key),
        ).fetchall()
    }


def stale_windows(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    model: str,
    plan: Plan,
    mark: Watermark,
    current: Mapping[datetime, tuple[int, int]],
    shared: TouchedPredictions | None = None,
) -> set[datetime]:
    """Starts of the windows to recompute: touched by batches after ``mark``
    (:func:`.fingerprints.touched_windows`, reading ``shared``'s predictions when
    given; for drift and quality :func:`feature_time_windows`) or whose row counts
    differ from the stored ones."""
    assert plan.width is not None
    stored = stored_counts(con, key)
    if plan.reads.feature_time:
        touched = feature_time_windows(con, model, plan, mark)
    else:
        touched = fingerprints.touched_windows(
            con, model, plan.width, plan.since, plan.until, mark, plan.reads, shared
        )
    changed = {s for s, counts in current.items() if stored.get(s) != counts}
    return (touched & set(current)) | changed


def stored_starts(con: duckdb.DuckDBPyConnection, key: Sequence[str]) -> set[datetime]:
    rows = con.execute(
        f"SELECT window_start FROM evalstore.metric_history_windows WHERE {storage.CALL_KEY} "
        f"UNION SELECT window_start FROM evalstore.metric_history WHERE {storage.CALL_KEY}",
        [*key, *key],
    ).fetchall()
    return {start for (start,) in rows}


def runs(
    con: duckdb.DuckDBPyConnection, starts: Sequence[datetime], stale: set[datetime], plan: Plan
) -> list[tuple[datetime, datetime]]:
    """``[since, until)`` of each run of consecutive stale windows, clipped to the call's
    own ``since``/``until``."""
    runs: list[list[datetime]] = []
    previous_stale = False
    for start in starts:
        if start in stale:
            if previous_stale:
                runs[-1].append(start)
            else:
                runs.append([start])
        previous_stale = start in stale
    out = []
    for run in runs:
        end = con.execute(
            "SELECT evalstore.window_end(CAST(? AS TIMESTAMPTZ), ?)", [run[-1], plan.width]
        ).fetchall()[0][0]
        low = run[0] if plan.since is None else max(run[0], plan.since)
        high = end if plan.until is None else min(end, plan.until)
        out.append((low, high))
    return out


#: The temporary table of the keys :func:`feature_time_windows` looks up in old rows.
LATE_KEYS = "evalstore_late_keys"


def feature_time_windows(
    con: duckdb.DuckDBPyConnection, model: str, plan: Plan, stored: Watermark
) -> set[datetime]:
    """Starts of the windows of a call cut on feature time (drift, quality) that batches
    after ``stored`` touched (the set the :mod:`.fingerprints` module docstring describes
    for such a call), found without a pass over every serving feature's key when no new label
    (or, with ``version=``, no new prediction) points to an example whose serving
    feature row is older than the watermark.

    What the windows of these families read (:mod:`evalstore.core.values`): feature
    values and labels at their example's serving feature ``ts``, ``score``/``prediction``
    values at the prediction's own ``ts``; ``where`` reads feature columns only, and
    ``version`` keeps the examples the version predicted. So the touched windows are
    those holding, within ``[since, until)``:

    * the ``ts`` of predictions of later batches (new output values);
    * the ``ts`` of serving feature rows of later batches (new rows, the new side of
      replaced rows; the old side shows only in the window counts, compared by the
      caller);
    * the serving feature ``ts`` of the examples that got a label (and, with
      ``version``, a prediction) in a later batch: a late label or a correction changes
      the label value at that ``ts``. An example has at most one serving feature row
      (ingest refuses, replaces or skips a repeated id per env), so an example whose
      serving row is itself of a later batch is covered by the item above; only the
      others (*late* keys, usually none when labels arrive with their day's features)
      are looked up among the older rows, a semi-join over every serving key;
    * with ``where``, the ``ts`` of predictions of examples whose serving features
      changed (the predicate decides whether their output values are analysed). A new
      label changes no prediction's window here: outputs are not filtered by labels.
    """
    assert plan.width is not None
    features = model_relation(con, model, "features")
    predictions = model_relation(con, model, "predictions")
    labels = model_relation(con, model, "labels")
    params: dict[str, object] = {
        "wf": -1 if stored.features is None else stored.features,
        "wp": -1 if stored.predictions is None else stored.predictions,
        "wl": -1 if stored.labels is None else stored.labels,
    }
    new_features = f"{features} WHERE env = 'serving' AND batch_id > $wf"
    pointed = [f"SELECT example_key FROM {labels} WHERE batch_id > $wl"]
    if plan.reads.version:
        pointed.append(f"SELECT example_key FROM {predictions} WHERE batch_id > $wp")
    sql = (
        f"CREATE OR REPLACE TEMP TABLE {LATE_KEYS} AS "
        f"SELECT example_key FROM ({' UNION '.join(pointed)}) "
        f"EXCEPT SELECT example_key FROM {new_features}"
    )
    con.execute(sql, _used(sql, params))
    try:
        parts = [
            f"SELECT ts FROM {predictions} WHERE batch_id > $wp",
            f"SELECT ts FROM {new_features}",
        ]
        late = con.execute(f"SELECT count(*) FROM {LATE_KEYS}").fetchall()[0][0]
        if late:
            parts.append(
                f"SELECT f.ts FROM {features} AS f JOIN {LATE_KEYS} AS k "
                "ON k.example_key = f.example_key WHERE f.env = 'serving'"
            )
        if plan.reads.features_beside_predictions:
            parts.append(
                f"SELECT ts FROM {predictions} WHERE example_key IN "
                f"(SELECT example_key FROM {new_features})"
            )
        # grouped by window number; only each window's first ts goes through the macro
        sql = f"""
            SELECT evalstore.window_start(min(ts), $w) FROM ({" UNION ALL ".join(parts)})
            WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until)
            GROUP BY {fingerprints._bucket(con, plan.width)}
        """
        params |= {"w": plan.width, "since": plan.since, "until": plan.until}
        rows = con.execute(sql, _used(sql, params)).fetchall()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {LATE_KEYS}")
    return {start for (start,) in rows if start is not None}


def _used(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The named parameters ``sql`` refers to (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
