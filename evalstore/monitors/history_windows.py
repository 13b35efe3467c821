"""Which windows of a persisted metric call to recompute, and over which time ranges.

:func:`current_windows` lists every window a fresh call would list, with its serving
feature rows and predictions; :func:`stale_windows` the ones whose rows later batches
touched or whose counts changed; :func:`runs` the ``[since, until)`` of each run of
consecutive stale windows (one family call each). Quality's gaps (windows without
analysis rows, whose rows depend on every other window) are found by :func:`gaps`,
:func:`filled_windows` and :func:`stored_gaps`. See :mod:`evalstore.monitors.history`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from evalstore.core.layout import model_relation
from evalstore.core.values import feature_kinds
from evalstore.monitors import fingerprints, storage
from evalstore.monitors.fingerprints import Watermark
from evalstore.monitors.history_params import Plan


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


def current_windows(
    con: duckdb.DuckDBPyConnection, model: str, plan: Plan
) -> dict[datetime, tuple[int, int]]:
    """Every window the fresh call lists, with its row counts: the non-empty windows,
    and for quality the empty ones between them (or across ``[since, until)``)."""
    assert plan.width is not None
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


def stale_windows(
    con: duckdb.DuckDBPyConnection,
    key: Sequence[str],
    model: str,
    plan: Plan,
    mark: Watermark,
    current: Mapping[datetime, tuple[int, int]],
) -> set[datetime]:
    assert plan.width is not None
    stored = {
        start: (int(f), int(p))
        for start, f, p in con.execute(
            "SELECT window_start, feature_rows, prediction_rows FROM "
            f"evalstore.metric_history_windows WHERE {storage.CALL_KEY}",
            list(key),
        ).fetchall()
    }
    touched = fingerprints.touched_windows(
        con, model, plan.width, plan.since, plan.until, mark, plan.reads
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
