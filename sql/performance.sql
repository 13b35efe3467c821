-- evalstore macros: realized (labeled) performance per window x version x slice.
--
-- Input: a relation with the columns of <model>.evaluations (example_id, version, ts,
-- prediction, score, probabilities, label; predictions joined with the latest labels),
-- named by `source`, optionally with a `slice` column (any type; rows are grouped by it).
-- Python's store.performance() passes a temporary view of the evaluations restricted to
-- a version / `where` predicate whose `slice` is an integer code of the slice keys
-- (decoded in Python); SQL users pass e.g. 'fraud.evaluations' (one slice: NULL) or a
-- view of their own with a `slice` column.
--
-- Windows are over PREDICTION time ts: `width` (an interval: time buckets aligned by
-- evalstore.window_start), or `chunk_rows` predictions per chunk, or `chunks` equal chunks
-- (predictions ordered by ts, example_id, version), within [since, until) (NULL: open).
-- A cell is (window, version, slice). Every macro returns one row per cell and metric:
--   window_index (a key of the window that increases with time, see
--   evalstore.performance_rows), window_start, window_end, version, slice, metric,
--   class (per-class multiclass rows, else NULL), value, ci_low, ci_high,
--   n            labeled rows the metric used,
--   n_excluded   labeled rows it left out (no score for score metrics, no prediction,
--                zero targets for mape),
--   predictions  predictions in the cell, labeled = those with a label (latest label wins),
--   label_coverage = labeled / predictions,
--   labels_due, labels_complete   see evalstore.label_horizon,
--   reason       why value is NULL (undefined metric), else NULL,
--   variant      the exact definition and interval method,
--   stats        the counts a Python bootstrap resamples (NULL for analytic intervals).
-- Intervals take z (e.g. 1.959964 for 95%): Wilson score intervals for proportions,
-- mean +- z sd / sqrt(n) (sample sd) for means, DeLong for ROC AUC, logit for average
-- precision, delta method for R2 and for F1 (binary and per class, evalstore.f1_se);
-- macro_f1, weighted_f1 and ece get NULL here and a seeded bootstrap in the Python
-- front-end (from `stats`). Intervals of metrics that
-- cannot be negative (losses, errors) are floored at 0, proportions and R2 capped at 1.

-- evalstore.add_hours(ts, hours) -> TIMESTAMPTZ
-- Helper: ts + hours (fractional, rounded to the microsecond).
CREATE OR REPLACE MACRO evalstore.add_hours(ts, hours) AS
    ts + to_microseconds(CAST(round(hours * 3600000000.0) AS BIGINT));
COMMENT ON MACRO evalstore.add_hours IS 'ts plus a fractional number of hours.';

-- evalstore.f1_se(tp, fp, fn) -> DOUBLE
-- Standard error of F1 = 2 tp / (2 tp + fp + fn) by the delta method over the multinomial
-- confusion-matrix proportions (Takahashi, Yamamoto, Kuchiba & Koyama 2022, "Confidence
-- interval for micro-averaged F1 and macro-averaged F1 scores", Applied Intelligence 52):
--   Var(F1) = 4 tp (fp + fn) (tp + fp + fn) / (2 tp + fp + fn)^4
-- (tn drops out: F1 does not depend on it). 0 when tp = 0 or fp + fn = 0 (every
-- resample then has the same F1), NULL when 2 tp + fp + fn = 0. Counts are cast to
-- DOUBLE (the product overflows BIGINT beyond ~2 million rows per cell).
CREATE OR REPLACE MACRO evalstore.f1_se(tp, fp, fn) AS
    CASE WHEN 2 * tp + fp + fn > 0 THEN
        2 * sqrt(CAST(tp AS DOUBLE) * CAST(fp + fn AS DOUBLE) * CAST(tp + fp + fn AS DOUBLE))
        / (CAST(2 * tp + fp + fn AS DOUBLE) * CAST(2 * tp + fp + fn AS DOUBLE)) END;
COMMENT ON MACRO evalstore.f1_se IS
    'Delta-method standard error of F1 from tp, fp, fn (Takahashi et al. 2022).';

-- evalstore.label_horizon(model, delay_quantile, as_of)
-- How long labels take to arrive, and the clock to judge windows by (one row):
--   delay_hours  quantile `delay_quantile` (NULL: 0.9, the Python default; linear
--                interpolation, numpy.quantile's default)
--                of the label delays of every labeled prediction of the model (all
--                versions, all time): ts of the example's FIRST label - ts of the
--                prediction, in hours, as evalstore.label_delay; floored at 0; NULL
--                when nothing is labeled yet
--   labeled      number of delays observed
--   as_of        the given as_of, else the latest label ts of the model (the store's
--                label clock: reproducible, and right for back-filled data)
-- A window [start, end) has labels_due = end + delay_hours, and labels_complete =
-- labels_due <= as_of: a window is complete once the delay that `delay_quantile` of all
-- labels met has passed since its end. Windows are incomplete (false) when no label
-- was ever observed.
-- delay_hours and labeled are read from evalstore.label_horizons when it holds them for
-- this model and quantile at the model's current watermark (the highest batch id of its
-- labels and of its predictions in evalstore.batches: labels and predictions are
-- append-only, so the same watermark means the same delays); persisted performance
-- calls keep that row current from the new batches alone. Otherwise (`missing`) they
-- are computed from every label, and the other branch reads nothing.
CREATE OR REPLACE MACRO evalstore.label_horizon(model, delay_quantile, as_of) AS TABLE
    WITH mark AS (
        SELECT max(CASE WHEN b.kind = 'labels' THEN b.batch_id END) AS labels_batch,
               max(CASE WHEN b.kind = 'predictions' THEN b.batch_id END) AS predictions_batch
        FROM evalstore.system_table(model, 'batches') AS b
        WHERE b.model = model
    ),
    stored AS (
        SELECT h.delay_hours, h.labeled
        FROM evalstore.system_table(model, 'label_horizons') AS h CROSS JOIN mark AS m
        WHERE h.model = model AND h.delay_quantile = coalesce(delay_quantile, 0.9)
          AND h.labels_batch IS NOT DISTINCT FROM m.labels_batch
          AND h.predictions_batch IS NOT DISTINCT FROM m.predictions_batch
    ),
    missing AS (SELECT count(*) = 0 AS compute FROM stored),
    -- the earliest label ts of each labeled example: its current label's, unless a label
    -- it superseded came earlier (only corrected examples need a group)
    corrected AS (
        SELECT l.example_key, min(l.ts) AS label_ts
        FROM evalstore.model_table(model, 'labels') AS l CROSS JOIN missing AS x
        WHERE x.compute AND l.superseded_by IS NOT NULL
        GROUP BY l.example_key
    ),
    first_label AS (
        SELECT l.example_key, least(l.ts, c.label_ts) AS label_ts
        FROM evalstore.model_table(model, 'labels_latest') AS l CROSS JOIN missing AS x
        LEFT JOIN corrected AS c ON c.example_key = l.example_key
        WHERE x.compute
    ),
    delays AS (
        SELECT evalstore.hours_between(p.ts, f.label_ts) AS delay_hours
        FROM evalstore.model_table(model, 'predictions') AS p CROSS JOIN missing AS x
        JOIN first_label AS f ON f.example_key = p.example_key
        WHERE x.compute
    ),
    summary AS (
        SELECT CASE WHEN count(*) > 0
                    THEN greatest(quantile_cont(d.delay_hours, coalesce(delay_quantile, 0.9)),
                                  0.0) END
                   AS delay_hours,
               count(*) AS labeled
        FROM delays AS d
    ),
    chosen AS (
        SELECT s.delay_hours, s.labeled FROM stored AS s
        UNION ALL
        SELECT s.delay_hours, s.labeled FROM summary AS s CROSS JOIN missing AS x
        WHERE x.compute
    )
    SELECT s.delay_hours, s.labeled,
           coalesce(CAST(as_of AS TIMESTAMPTZ),
                    (SELECT max(l.ts) FROM evalstore.model_table(model, 'labels') AS l)) AS as_of
    FROM chosen AS s;
COMMENT ON MACRO TABLE evalstore.label_horizon IS
    'Label delay quantile (hours) and as-of time behind labels_complete. Args: model, q, as_of.';

-- evalstore.bucket_index(ts, width) -> BIGINT
-- Helper: a key of the time window [start, start + width) holding ts, equal to
-- evalstore.window_start's bucketing but cheap per row: for widths without months,
-- floor((ts - 2000-01-03 UTC) / width) in microseconds (time_bucket's origin); for
-- widths with months, the epoch microseconds of evalstore.window_start(ts, width).
-- evalstore.bucket_start turns the key back into the window's start.
CREATE OR REPLACE MACRO evalstore.bucket_index(ts, width) AS
    CASE WHEN datepart('year', CAST(width AS INTERVAL)) = 0
              AND datepart('month', CAST(width AS INTERVAL)) = 0
         THEN ((epoch_us(ts) - 946857600000000)
               - (((epoch_us(ts) - 946857600000000)
                   % CAST(round(epoch(CAST(width AS INTERVAL)) * 1000000) AS BIGINT))
                  + CAST(round(epoch(CAST(width AS INTERVAL)) * 1000000) AS BIGINT))
                 % CAST(round(epoch(CAST(width AS INTERVAL)) * 1000000) AS BIGINT))
              // CAST(round(epoch(CAST(width AS INTERVAL)) * 1000000) AS BIGINT)
         ELSE epoch_us(evalstore.window_start(ts, width)) END;
COMMENT ON MACRO evalstore.bucket_index IS
    'Key of the time window holding ts (as evalstore.window_start, cheaper per row).';

-- evalstore.bucket_start(index, width) -> TIMESTAMPTZ
-- Helper: the start of the window whose evalstore.bucket_index is `index`.
CREATE OR REPLACE MACRO evalstore.bucket_start(index, width) AS
    timezone('UTC', make_timestamp(CAST(CASE
        WHEN datepart('year', CAST(width AS INTERVAL)) = 0
             AND datepart('month', CAST(width AS INTERVAL)) = 0
        THEN 946857600000000
             + index * CAST(round(epoch(CAST(width AS INTERVAL)) * 1000000) AS BIGINT)
        ELSE index END AS BIGINT)));
COMMENT ON MACRO evalstore.bucket_start IS
    'Start of the time window with the given evalstore.bucket_index.';

-- evalstore.cell_window_start(window_index, width, first_ts) -> TIMESTAMPTZ
-- Helper: the start of a performance window: for time windows (width given) the start of
-- the window whose evalstore.bucket_index is window_index; for chunks (width NULL)
-- first_ts, the earliest prediction ts of the chunk (callers pass min(ts)).
CREATE OR REPLACE MACRO evalstore.cell_window_start(window_index, width, first_ts) AS
    CASE WHEN width IS NULL THEN first_ts
         ELSE evalstore.bucket_start(window_index, width) END;
COMMENT ON MACRO evalstore.cell_window_start IS
    'Start of a performance window: bucket start (time windows) or first_ts (chunks).';

-- evalstore.cell_window_end(window_index, width, last_ts) -> TIMESTAMPTZ
-- Helper: the end of a performance window: for time windows evalstore.window_end of its
-- start (start + width on the UTC calendar); for chunks last_ts, the latest prediction ts
-- of the chunk (callers pass max(ts)).
CREATE OR REPLACE MACRO evalstore.cell_window_end(window_index, width, last_ts) AS
    CASE WHEN width IS NULL THEN last_ts
         ELSE evalstore.window_end(evalstore.bucket_start(window_index, width), width) END;
COMMENT ON MACRO evalstore.cell_window_end IS
    'End of a performance window: bucket start + width (time windows) or last_ts (chunks).';

-- evalstore.performance_rows(source, width, chunk_rows, chunks, since, until)
-- Rows of source (with evalstore.with_slice) inside [since, until) with the key of their
-- window, window_index: for time windows ([start, start + width), aligned as
-- evalstore.window_start) the evalstore.bucket_index of ts, increasing with time; for
-- chunks 0, 1, ...: `chunk_rows` consecutive predictions per chunk, or `chunks`
-- near-equal parts, or NannyML's split (evalstore.chunk_index), predictions ranked by
-- (ts, example_id, version) so one that falls in several slices counts once. Columns:
-- window_index, example_id, version, ts, prediction, score, probabilities, label, slice.
-- A time window spans [bucket_start, window_end(bucket_start, width)); a chunk spans
-- [first ts, last ts] of its predictions.
CREATE OR REPLACE MACRO evalstore.performance_rows(
    source, width, chunk_rows, chunks, since, until
) AS TABLE
    WITH ranked AS (
        SELECT e.*, dense_rank() OVER (ORDER BY e.ts, e.example_id, e.version) - 1 AS ordinal
        FROM evalstore.with_slice(source) AS e
        WHERE width IS NULL
          AND (since IS NULL OR e.ts >= CAST(since AS TIMESTAMPTZ))
          AND (until IS NULL OR e.ts < CAST(until AS TIMESTAMPTZ))
    ),
    chunked AS (
        SELECT r.*,
            evalstore.chunk_index(r.ordinal, max(r.ordinal) OVER () + 1, chunk_rows, chunks)
                AS window_index
        FROM ranked AS r
    )
    SELECT evalstore.bucket_index(e.ts, width) AS window_index, e.example_id, e.version,
           e.ts, e.prediction, e.score, e.probabilities, e.label, e.slice
    FROM evalstore.with_slice(source) AS e
    WHERE width IS NOT NULL
      AND (since IS NULL OR e.ts >= CAST(since AS TIMESTAMPTZ))
      AND (until IS NULL OR e.ts < CAST(until AS TIMESTAMPTZ))
    UNION ALL
    SELECT c.window_index, c.example_id, c.version, c.ts, c.prediction, c.score,
           c.probabilities, c.label, c.slice
    FROM chunked AS c;
COMMENT ON MACRO TABLE evalstore.performance_rows IS
    'Evaluation rows with the key of their window of prediction time (time buckets or chunks).';

-- evalstore.integer_value(x) -> BIGINT
-- Helper: x as a BIGINT when its type is a signed integer or an unsigned one narrower
-- than 64 bits, else NULL (the type is known when the query is bound).
CREATE OR REPLACE MACRO evalstore.integer_value(x) AS
    CASE WHEN typeof(x) IN ('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'UTINYINT',
                            'USMALLINT', 'UINTEGER')
         THEN TRY_CAST(x AS BIGINT) END;
COMMENT ON MACRO evalstore.integer_value IS
    'x as BIGINT for integer types narrower than UBIGINT, else NULL.';

-- evalstore.cell_key(window_index, vcode, slice_no, w0, step, versions, slices) -> BIGINT
-- Helper: one exact integer per (window, version, slice) of a metric query, for the
-- ranking windows to partition by (one BIGINT sorts much faster than three columns):
-- ((window_index - w0) // step * versions + vcode) * slices + slice_no, with w0 the
-- smallest window key and step the smallest gap between two window keys (distinct keys
-- give distinct quotients), vcode in [1, versions), slice_no in [0, slices) (NULL: 0).
-- NULL when the window or the version code is (those rows are not ranked). Keys lie in
-- [0, windows' span in steps x versions x slices); performance_binary ranks by their
-- INTEGER cast when that bound is below 2^31. An overflow (past 2^63) is an error, never
-- a collision.
CREATE OR REPLACE MACRO evalstore.cell_key(
    window_index, vcode, slice_no, w0, step, versions, slices
) AS
    ((window_index - w0) // step * versions + vcode) * slices + coalesce(slice_no, 0);
COMMENT ON MACRO evalstore.cell_key IS
    'Exact BIGINT key of (window, version, slice) for partitioning the ranking windows.';
