"""The label horizon behind performance's ``labels_due``/``labels_complete``, kept current
from new labels and predictions alone.

``evalstore.label_horizon(model, q, as_of)`` defines it: ``delay_hours`` is the linear
(``quantile_cont``) quantile ``q`` of the label delays of every labeled prediction of the
model (first label ts - prediction ts, in hours), floored at 0; ``labeled`` counts the
labeled predictions. Computed from scratch, it joins every prediction with the first
label of its example: on a store of 60 million predictions that join is most of what a
performance call over one day costs. :func:`refresh` keeps, per model and ``q``, the
answer at the model's current watermark (highest batch id of labels and of predictions)
in ``evalstore.label_horizons``; the macro reads that row when its watermark is the
current one and computes from every label otherwise.

Between two watermarks the multiset of delays changes only for the examples that got a
label or a prediction since (labels and predictions are append-only): their delays as
of the old watermark are removed, their delays now are added. To find the quantile of
the new multiset exactly without the rest of it, the row keeps a *band*: the exact
delays between ``band_low`` and ``band_high`` (``evalstore.label_delay_band``, distinct
value and count) and how many lie ``below`` and ``above`` it. As long as the two order
statistics the quantile interpolates between fall inside the band, they are read from
it and interpolated by DuckDB's ``quantile_cont`` itself (over the two values, at the
same fraction): the same double, bit for bit. When they leave it (the
distribution moved by more than :data:`BAND_SHARE` of its ranks), the band is rebuilt
from every delay, once. A refresh thus costs a probe of the labels' and predictions'
example keys for the touched examples, plus a pass over the band (about 2% of the
delays), instead of a join of every prediction with every label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from evalstore.core.layout import model_relation
from evalstore.monitors.history_touched import TouchedPredictions

#: Half the band's width, as a share of the delays: the band holds the delays whose rank
#: is within ``BAND_SHARE * n`` of the quantile's when it is built (at least
#: :data:`MIN_BAND` ranks each side).
BAND_SHARE = 0.01
MIN_BAND = 1_000
_KEY = "model = ? AND delay_quantile = ?"


@dataclass(frozen=True)
class Horizon:
    """``delay_hours`` (None: no delay observed) and ``labeled`` of a model and ``q``."""

    delay_hours: float | None
    labeled: int


@dataclass(frozen=True)
class _Row:
    labels_batch: int | None
    predictions_batch: int | None
    labeled: int
    delay_hours: float | None
    band_low: float | None
    band_high: float | None
    below: int
    above: int


def refresh(
    con: duckdb.DuckDBPyConnection,
    model: str,
    delay_quantile: float,
    touched: TouchedPredictions | None = None,
) -> Horizon:
    """Bring the stored horizon of ``model`` and ``delay_quantile`` to the current
    watermark (incrementally when its band still holds the quantile, else from every
    delay) and return it. The caller holds a writing transaction.

    ``touched`` holds (or builds) the predictions of the examples touched since the
    stored watermark; the caller passes its own to share them (and drops it), else one
    is built here and dropped."""
    q = float(delay_quantile)
    mark = _watermark(con, model)
    row = _stored(con, model, q)
    if row is not None and (row.labels_batch, row.predictions_batch) == mark:
        return Horizon(row.delay_hours, row.labeled)
    if row is not None and row.band_low is not None:
        own = touched is None
        shared = TouchedPredictions(con, model) if touched is None else touched
        try:
            horizon = _advance(con, model, q, row, mark, shared)
        finally:
            if own:
                shared.drop()
        if horizon is not None:
            return horizon
    return _rebuild(con, model, q, mark)


def _watermark(con: duckdb.DuckDBPyConnection, model: str) -> tuple[int | None, int | None]:
    rows = con.execute(
        "SELECT max(batch_id) FILTER (WHERE kind = 'labels'), "
        "max(batch_id) FILTER (WHERE kind = 'predictions') "
        "FROM evalstore.batches WHERE model = ?",
        [model],
    ).fetchall()
    return rows[0][0], rows[0][1]


def _stored(con: duckdb.DuckDBPyConnection, model: str, q: float) -> _Row | None:
    rows = con.execute(
        "SELECT labels_batch, predictions_batch, labeled, delay_hours, band_low, band_high, "
        f"below, above FROM evalstore.label_horizons WHERE {_KEY}",
        [model, q],
    ).fetchall()
    return _Row(*rows[0]) if len(rows) == 1 else None


def _interpolate(con: duckdb.DuckDBPyConnection, lo: float, hi: float, n: int, q: float) -> float:
    """DuckDB's ``quantile_cont(x, q)`` of n values whose order statistics of ranks
    ``floor((n - 1) q)`` and ``ceil((n - 1) q)`` are ``lo`` and ``hi``, floored at 0 as
    ``evalstore.label_horizon`` does.

    DuckDB interpolates ``lo`` and ``hi`` at ``d = RN - floor(RN)``, ``RN = (n - 1) q``
    (computed here as it does, one IEEE operation each); how it combines them (the
    order of the operations, fused or not) depends on its build. So the combination is
    left to it: ``quantile_cont`` of the two values ``[lo, hi]`` at ``d`` has
    ``RN = (2 - 1) d = d`` and interpolates the same two values at the same ``d``."""
    rn = (n - 1) * q
    d = rn - math.floor(rn)
    if d == 0:
        return max(lo, 0.0)
    value = con.execute(
        "SELECT quantile_cont(v, $d) FROM (SELECT unnest([$lo, $hi]::DOUBLE[]) AS v)",
        {"d": d, "lo": lo, "hi": hi},
    ).fetchall()[0][0]
    return max(value, 0.0)


def _ranks(n: int, q: float) -> tuple[int, int]:
    rn = (n - 1) * q
    return math.floor(rn), math.ceil(rn)


def _advance(
    con: duckdb.DuckDBPyConnection,
    model: str,
    q: float,
    row: _Row,
    mark: tuple[int | None, int | None],
    touched: TouchedPredictions,
) -> Horizon | None:
    """Apply the delays that changed since ``row``'s watermark to its band and counts;
    the new horizon, or None when its order statistics left the band (the band is then
    rebuilt by the caller)."""
    old_labels = -1 if row.labels_batch is None else row.labels_batch
    old_predictions = -1 if row.predictions_batch is None else row.predictions_batch
    # the examples whose delays may have changed (touched), every prediction and label
    # of theirs (one scan of each table's keys, shared with the touched windows and the
    # recomputed windows), their first label ts then and now: the delays they had
    # (removed) and have (added)
    _, touched_predictions = touched.tables(old_labels, old_predictions)
    touched_labels = touched.labels()
    sql = f"""
        WITH firsts AS (
            SELECT l.example_key, min(l.ts) FILTER (WHERE l.batch_id <= $wl) AS old_ts,
                   count(*) FILTER (WHERE l.batch_id <= $wl) AS old_labels,
                   min(l.ts) AS new_ts
            FROM {touched_labels} AS l
            GROUP BY l.example_key
        ),
        pairs AS MATERIALIZED (
            SELECT p.ts, p.batch_id, f.old_ts, f.old_labels, f.new_ts
            FROM {touched_predictions} AS p JOIN firsts AS f ON f.example_key = p.example_key
        ),
        changes AS (
            SELECT evalstore.hours_between(ts, old_ts) AS delay_hours, -1 AS n
            FROM pairs WHERE batch_id <= $wp AND old_labels > 0
            UNION ALL
            SELECT evalstore.hours_between(ts, new_ts), 1 FROM pairs
        )
        SELECT delay_hours, n FROM changes
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE evalstore_horizon_changes AS {sql}",
        {"wl": old_labels, "wp": old_predictions},
    )
    band = {"low": row.band_low, "high": row.band_high, "model": model, "q": q}
    try:
        counts = con.execute(
            """SELECT coalesce(sum(n), 0),
                      coalesce(sum(n) FILTER (WHERE delay_hours < $low), 0),
                      coalesce(sum(n) FILTER (WHERE delay_hours > $high), 0)
               FROM evalstore_horizon_changes""",
            {"low": row.band_low, "high": row.band_high},
        ).fetchall()[0]
        labeled = row.labeled + int(counts[0])
        below, above = row.below + int(counts[1]), row.above + int(counts[2])
        # only the band's values that changed are rewritten (with their new counts)
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE evalstore_horizon_merge AS
            WITH c AS (
                SELECT delay_hours, sum(n) AS n FROM evalstore_horizon_changes
                WHERE delay_hours BETWEEN $low AND $high
                GROUP BY delay_hours HAVING sum(n) <> 0
            )
            SELECT c.delay_hours, c.n + coalesce(b.n, 0) AS n FROM c
            LEFT JOIN (SELECT delay_hours, n FROM evalstore.label_delay_band
                       WHERE model = $model AND delay_quantile = $q) AS b
              ON b.delay_hours = c.delay_hours
            """,
            band,
        )
        if con.execute("SELECT count(*) FROM evalstore_horizon_merge").fetchall()[0][0]:
            con.execute(
                f"DELETE FROM evalstore.label_delay_band WHERE {_KEY} AND delay_hours IN "
                "(SELECT delay_hours FROM evalstore_horizon_merge)",
                [model, q],
            )
            con.execute(
                "INSERT INTO evalstore.label_delay_band "
                "SELECT ?, ?, delay_hours, n FROM evalstore_horizon_merge WHERE n <> 0",
                [model, q],
            )
    finally:
        con.execute("DROP TABLE IF EXISTS evalstore_horizon_changes")
        con.execute("DROP TABLE IF EXISTS evalstore_horizon_merge")
    pivot = row.band_low if row.delay_hours is None else row.delay_hours
    horizon = _from_band(con, model, q, labeled, below, above, pivot)
    if horizon is not None:  # else the caller rebuilds the band (in this transaction)
        _save(con, model, q, mark, horizon, row.band_low, row.band_high, below, above)
    return horizon


def _from_band(
    con: duckdb.DuckDBPyConnection,
    model: str,
    q: float,
    labeled: int,
    below: int,
    above: int,
    pivot: float | None,
) -> Horizon | None:
    """The horizon from the stored band of ``model`` and ``q`` and the counts beside it;
    None when a needed order statistic is outside the band.

    The two order statistics are found near ``pivot`` (the previous quantile; None: the
    band's low end) instead of a running sum over the whole sorted band: the band's
    count below the pivot places it, and only the few values between it and the
    wanted ranks are sorted (``ORDER BY ... LIMIT``, each value counting at least
    once)."""
    where = "model = $model AND delay_quantile = $q"
    band = {"model": model, "q": q}
    inside, before = con.execute(
        "SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE delay_hours < $pivot), 0) "
        f"FROM evalstore.label_delay_band WHERE {where}",
        {**band, "pivot": pivot},
    ).fetchall()[0]
    inside, before = int(inside), int(before)
    n = below + inside + above
    if n == 0:
        return Horizon(None, labeled)
    first, second = _ranks(n, q)
    if first < below or second >= below + inside:
        return None
    k1, k2 = first - below, second - below  # ranks within the band
    lower = con.execute(
        f"SELECT delay_hours, n FROM evalstore.label_delay_band WHERE {where} "
        "AND delay_hours < $pivot ORDER BY delay_hours DESC LIMIT $m",
        {**band, "pivot": pivot, "m": max(before - k1, 0)},
    ).fetchall()
    upper = con.execute(
        f"SELECT delay_hours, n FROM evalstore.label_delay_band WHERE {where} "
        "AND ($pivot IS NULL OR delay_hours >= $pivot) ORDER BY delay_hours LIMIT $m",
        {**band, "pivot": pivot, "m": max(k2 - before + 1, 0)},
    ).fetchall()
    upto = before - sum(int(count) for _, count in lower)  # values before the first fetched
    lo = hi = None
    for value, count in [*reversed(lower), *upper]:
        upto += int(count)
        if lo is None and upto > k1:
            lo = value
        if upto > k2:
            hi = value
            break
    assert lo is not None and hi is not None
    return Horizon(_interpolate(con, lo, hi, n, q), labeled)


def _rebuild(
    con: duckdb.DuckDBPyConnection, model: str, q: float, mark: tuple[int | None, int | None]
) -> Horizon:
    """The horizon from every delay (as ``evalstore.label_horizon`` computes it), and a
    new band around it."""
    labels = model_relation(con, model, "labels")
    predictions = model_relation(con, model, "predictions")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE evalstore_horizon_delays AS
        SELECT evalstore.hours_between(p.ts, f.label_ts) AS delay_hours
        FROM {predictions} AS p
        JOIN (SELECT example_key, min(ts) AS label_ts FROM {labels} GROUP BY example_key) AS f
          ON f.example_key = p.example_key
        """
    )
    try:
        labeled, n, exact = con.execute(
            "SELECT count(*), count(delay_hours), quantile_cont(delay_hours, ?) "
            "FROM evalstore_horizon_delays",
            [q],
        ).fetchall()[0]
        if not n:
            horizon = Horizon(None, int(labeled))
            _save(con, model, q, mark, horizon, None, None, 0, 0)
            con.execute(f"DELETE FROM evalstore.label_delay_band WHERE {_KEY}", [model, q])
            return horizon
        horizon = Horizon(max(float(exact), 0.0), int(labeled))
        width = max(MIN_BAND, math.ceil(n * BAND_SHARE))
        first, second = _ranks(n, q)
        low_share = max(first - width, 0) / max(n - 1, 1)
        high_share = min(second + width, n - 1) / max(n - 1, 1)
        low, high = con.execute(
            "SELECT quantile_disc(delay_hours, ?), quantile_disc(delay_hours, ?) "
            "FROM evalstore_horizon_delays",
            [low_share, high_share],
        ).fetchall()[0]
        below, above = con.execute(
            "SELECT count(*) FILTER (WHERE delay_hours < ?), "
            "count(*) FILTER (WHERE delay_hours > ?) FROM evalstore_horizon_delays",
            [low, high],
        ).fetchall()[0]
        con.execute(f"DELETE FROM evalstore.label_delay_band WHERE {_KEY}", [model, q])
        con.execute(
            "INSERT INTO evalstore.label_delay_band "
            "SELECT ?, ?, delay_hours, count(*) FROM evalstore_horizon_delays "
            "WHERE delay_hours BETWEEN ? AND ? GROUP BY delay_hours",
            [model, q, low, high],
        )
        _save(con, model, q, mark, horizon, low, high, int(below), int(above))
        return horizon
    finally:
        con.execute("DROP TABLE IF EXISTS evalstore_horizon_delays")


def _save(
    con: duckdb.DuckDBPyConnection,
    model: str,
    q: float,
    mark: tuple[int | None, int | None],
    horizon: Horizon,
    low: float | None,
    high: float | None,
    below: int,
    above: int,
) -> None:
    con.execute(f"DELETE FROM evalstore.label_horizons WHERE {_KEY}", [model, q])
    con.execute(
        "INSERT INTO evalstore.label_horizons (model, delay_quantile, labels_batch, "
        "predictions_batch, labeled, delay_hours, band_low, band_high, below, above, "
        "computed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [model, q, *mark, horizon.labeled, horizon.delay_hours, low, high, below, above,
         datetime.now(UTC)],
    )  # fmt: skip
