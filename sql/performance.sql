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
CREATE OR REPLACE MACRO evalstore.label_horizon(model, delay_quantile, as_of) AS TABLE
    -- the earliest label ts of each labeled example: its current label's, unless a label
    -- it superseded came earlier (only corrected examples need a group)
    WITH corrected AS (
        SELECT l.example_key, min(l.ts) AS label_ts
        FROM evalstore.model_table(model, 'labels') AS l
        WHERE l.superseded_by IS NOT NULL
        GROUP BY l.example_key
    ),
    first_label AS (
        SELECT l.example_key, least(l.ts, c.label_ts) AS label_ts
        FROM evalstore.model_table(model, 'labels_latest') AS l
        LEFT JOIN corrected AS c ON c.example_key = l.example_key
    ),
    delays AS (
        SELECT evalstore.hours_between(p.ts, f.label_ts) AS delay_hours
        FROM evalstore.model_table(model, 'predictions') AS p
        JOIN first_label AS f ON f.example_key = p.example_key
    ),
    summary AS (
        SELECT CASE WHEN count(*) > 0
                    THEN greatest(quantile_cont(d.delay_hours, coalesce(delay_quantile, 0.9)),
                                  0.0) END
                   AS delay_hours,
               count(*) AS labeled
        FROM delays AS d
    )
    SELECT s.delay_hours, s.labeled,
           coalesce(CAST(as_of AS TIMESTAMPTZ),
                    (SELECT max(l.ts) FROM evalstore.model_table(model, 'labels') AS l)) AS as_of
    FROM summary AS s;
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
-- near-equal parts (index floor(rank * chunks / n)), predictions ranked by
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
            CASE WHEN chunk_rows IS NOT NULL THEN r.ordinal // chunk_rows
                 ELSE (r.ordinal * chunks) // (max(r.ordinal) OVER () + 1) END AS window_index
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

-- evalstore.performance_binary(source, model, threshold, width, chunk_rows, chunks, since,
--     until, ece_bins, z, as_of, delay_quantile, metrics)
-- Binary classification metrics per window x version x slice (columns: see the top of
-- the file). y = 1 when the label is the model's positive class (registry), else 0.
-- Predicted positive (yhat = 1) when score >= threshold, threshold = the given one or,
-- when NULL, the version's registered threshold; a row with a prediction but no score
-- uses its prediction (yhat = 1 when it is the positive class) for the threshold
-- metrics and is left out of the score metrics. Rows without a label are unlabeled
-- (label_coverage); rows with neither score nor prediction are left out (n_excluded).
-- With tp, fp, fn, tn counted over labeled rows with a yhat:
--   accuracy           (tp + tn) / n                  sklearn accuracy_score
--   precision          tp / (tp + fp)                 precision_score; NULL without
--                                                     predicted positives
--   recall             tp / (tp + fn)                 recall_score; NULL without positives
--   specificity        tn / (tn + fp)                 from confusion_matrix; NULL without
--                                                     negatives
--   f1                 2 tp / (2 tp + fp + fn)        f1_score; NULL when tp+fp+fn = 0
--                                                     (sklearn returns 0 with a warning)
-- and over labeled rows with a score s:
--   roc_auc            P(s_pos > s_neg) + P(s_pos = s_neg) / 2 = U / (n_pos n_neg),
--                      sklearn roc_auc_score; NULL for a single-class cell. Computed from
--                      a ranking of the cell's rows and one of its positives by
--                      descending score (rank() and a RANGE count(*), so tied scores
--                      share their counts).
--   average_precision  sum over distinct scores t (descending) of (R(t) - R(t_prev)) P(t),
--                      P/R the precision/recall of "s >= t" (sklearn
--                      average_precision_score); NULL without positives
--   log_loss           mean of -ln p(label), p = s for y = 1 and 1 - s for y = 0, clipped
--                      to [eps, 1 - eps], eps = 2.220446049250313e-16 (float64 machine
--                      epsilon, as sklearn >= 1.5 log_loss)
--   brier              mean (s - y)^2                 brier_score_loss
--   ece                sum over bins b of (n_b / n) |mean(y)_b - mean(s)_b|, bin =
--                      min(floor(s * ece_bins), ece_bins - 1) (equal-width bins of [0, 1],
--                      the last closed; empty bins add nothing)
-- Intervals: Wilson for accuracy (x = tp + tn of n), precision, recall, specificity;
-- normal (mean +- z sd / sqrt n, sample sd, NULL for n < 2) for log_loss and brier;
-- DeLong (1988) for roc_auc: A +- z sqrt(S10 / n_pos + S01 / n_neg), S10 / S01 the sample
-- variances of the positives' / negatives' placement values, clipped to [0, 1], NULL when
-- a class has fewer than 2 rows; logit interval for average_precision (Boyd, Eng & Page
-- 2013): expit(logit(AP) -+ z / sqrt(n_pos AP (1 - AP))), NULL when AP is 0 or 1.
-- f1: F1 +- z evalstore.f1_se(tp, fp, fn) (delta method), clipped to [0, 1].
-- ece carries stats = [n_b..., sum(y - s)_b...,
-- sum((y - s)^2)_b...] over its non-empty bins. `metrics` (a list, NULL = all) skips
-- the work of metrics not asked for.
CREATE OR REPLACE MACRO evalstore.performance_binary(
    source, model, threshold, width, chunk_rows, chunks, since, until, ece_bins, z,
    as_of, delay_quantile, metrics
) AS TABLE
    WITH registry AS (
        SELECT r.version, r.positive_class,
               coalesce(CAST(threshold AS DOUBLE), r.threshold) AS cutoff,
               CASE WHEN threshold IS NULL THEN 'registered' ELSE 'given' END AS cutoff_source,
               row_number() OVER (ORDER BY r.version) AS vcode
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    ),
    -- one row per prediction: y (NULL when unlabeled), yhat, the score s of a labeled
    -- row, and vcode (an integer key of the version: windows partition faster by it)
    base AS (
        SELECT w.window_index, w.version, g.vcode, w.slice, w.ts,
            CASE WHEN w.label = g.positive_class THEN 1
                 WHEN w.label <> g.positive_class THEN 0 END AS y,
            CASE WHEN w.score IS NOT NULL THEN CASE WHEN w.score >= g.cutoff THEN 1 ELSE 0 END
                 WHEN w.prediction IS NOT NULL THEN
                     CASE WHEN w.prediction = g.positive_class THEN 1 ELSE 0 END
            END AS yhat,
            CASE WHEN w.label IS NOT NULL THEN w.score END AS s
        FROM evalstore.performance_rows(source, width, chunk_rows, chunks, since, until) AS w
        LEFT JOIN registry AS g ON g.version = w.version
    ),
    -- per-row losses of the labeled scored rows: squared error and -ln p(label)
    losses AS (
        SELECT b.*, (b.s - b.y) * (b.s - b.y) AS sq,
            evalstore.log_loss_term(CASE b.y WHEN 1 THEN b.s WHEN 0 THEN 1 - b.s END) AS nll
        FROM base AS b
    ),
    cells AS (
        SELECT x.window_index, x.version, x.slice, any_value(x.vcode) AS vcode,
            min(x.ts) AS first_ts, max(x.ts) AS last_ts,
            count(*) AS predictions,
            count(x.y) AS labeled,
            count(CASE WHEN x.yhat IS NOT NULL THEN x.y END) AS n_class,
            count(CASE WHEN x.s IS NOT NULL THEN x.y END) AS n_score,
            count(CASE WHEN x.yhat = 1 AND x.y = 1 THEN 1 END) AS tp,
            count(CASE WHEN x.yhat = 1 AND x.y = 0 THEN 1 END) AS fp,
            count(CASE WHEN x.yhat = 0 AND x.y = 1 THEN 1 END) AS fn,
            count(CASE WHEN x.yhat = 0 AND x.y = 0 THEN 1 END) AS tn,
            count(CASE WHEN x.s IS NOT NULL AND x.y = 1 THEN 1 END) AS n_pos,
            count(CASE WHEN x.s IS NOT NULL AND x.y = 0 THEN 1 END) AS n_neg,
            sum(x.sq) AS brier_sum, sum(x.sq * x.sq) AS brier_sq,
            sum(x.nll) AS loss_sum, sum(x.nll * x.nll) AS loss_sq
        FROM losses AS x
        GROUP BY x.window_index, x.version, x.slice
    ),
    windows AS (
        SELECT c.window_index,
            evalstore.cell_window_start(c.window_index, width, min(c.first_ts)) AS window_start,
            evalstore.cell_window_end(c.window_index, width, max(c.last_ts)) AS window_end
        FROM cells AS c
        GROUP BY c.window_index
    ),
    -- the ranking windows partition by one exact integer key per cell (evalstore.cell_key:
    -- one integer sorts much faster than three columns, 2 s of 15 at 10M rows): the
    -- window's offset in steps of the smallest gap between window keys, the version code,
    -- and the slice's number: an integer slice's offset from the smallest, else its rank
    -- among the distinct slices (slice_numbers, empty for integer slices). The key is an
    -- INTEGER when every key of the query fits one (narrow: a 4-byte key sorts about 20%
    -- faster than a BIGINT), else a BIGINT (ranked has a branch for each)
    slice_numbers AS (
        SELECT d.slice, row_number() OVER (ORDER BY d.slice) AS slice_no
        FROM (SELECT DISTINCT c.slice FROM cells AS c
              WHERE c.slice IS NOT NULL AND evalstore.integer_value(c.slice) IS NULL) AS d
    ),
    gaps AS (
        SELECT w.window_index
               - lag(w.window_index) OVER (ORDER BY w.window_index) AS gap
        FROM windows AS w
    ),
    geometry AS (
        SELECT e.*,
            -- in DOUBLE: the bound itself must not overflow
            CAST((e.w_last - e.w0) // e.step + 1 AS DOUBLE) * e.versions * e.slices
                < 2147483647 AS narrow
        FROM (
            SELECT min(c.window_index) AS w0, max(c.window_index) AS w_last,
                (SELECT coalesce(min(g.gap), 1) FROM gaps AS g) AS step,
                max(c.vcode) + 1 AS versions,
                min(evalstore.integer_value(c.slice)) AS s0,
                coalesce(max(evalstore.integer_value(c.slice))
                         - min(evalstore.integer_value(c.slice)), 0) + 2
                    + (SELECT count(*) FROM slice_numbers) AS slices
            FROM cells AS c
        ) AS e
    ),
    keyed AS NOT MATERIALIZED (
        SELECT g.narrow, evalstore.cell_key(b.window_index, b.vcode,
                   coalesce(n.slice_no, evalstore.integer_value(b.slice) - g.s0 + 1),
                   g.w0, g.step, g.versions, g.slices) AS cell,
               b.y, b.s
        FROM base AS b
        CROSS JOIN geometry AS g
        LEFT JOIN slice_numbers AS n ON n.slice = b.slice
        WHERE b.s IS NOT NULL AND b.y IS NOT NULL
          AND (metrics IS NULL OR list_contains(metrics, 'roc_auc')
               OR list_contains(metrics, 'average_precision'))
    ),
    -- the labeled scored rows of a cell in descending score order: rank() = 1 + the rows
    -- scored above s, count(*) = the rows scored >= s (RANGE frame: ties included); first
    -- over the cell (w; keyed is read by both branches, one of them empty), then over the
    -- cell's positives alone (wp): only positives need their rank in their class, a
    -- second window over a quarter of the rows when a quarter is positive (the
    -- negatives' sums follow from the positives', below)
    ranked AS (
        SELECT CAST(k.cell AS BIGINT) AS cell, k.y, k.s, rank() OVER w AS first_at,
            count(*) OVER w AS at_or_above
        FROM (SELECT CAST(x.cell AS INTEGER) AS cell, x.y, x.s FROM keyed AS x
              WHERE x.narrow) AS k
        WINDOW w AS (PARTITION BY k.cell ORDER BY k.s DESC)
        UNION ALL
        SELECT k.cell, k.y, k.s, rank() OVER w AS first_at, count(*) OVER w AS at_or_above
        FROM keyed AS k
        WHERE NOT k.narrow
        WINDOW w AS (PARTITION BY k.cell ORDER BY k.s DESC)
    ),
    positives AS (
        SELECT r.cell, r.first_at, r.at_or_above,
            rank() OVER wp AS class_first_at, count(*) OVER wp AS class_at_or_above
        FROM ranked AS r
        WHERE r.y = 1
        WINDOW wp AS (PARTITION BY r.cell ORDER BY r.s DESC)
    ),
    -- Per positive p at score s: a = positives above s, t = positives at s, e = negatives
    -- above s, g = negatives at or above s (e = first_at - class_first_at, g = at_or_above
    -- - class_at_or_above). Its j = 2 e + (g - e) = e + g, its placement value 1 - j / (2
    -- n_neg), its precision class_at_or_above / at_or_above. A negative's k = 2 (positives
    -- above) + (positives at its score), its placement value k / (2 n_pos); summing over
    -- the positives instead: sum k = 2 n_pos n_neg - sum j, and sum k^2 = sum over ordered
    -- pairs of positives (p, q) of the negatives' sum of phi(p) phi(q), phi = 2 below the
    -- positive's score, 1 at it; a pair whose lower score is s adds 4 (negatives below s)
    -- + (2 if the other lies above s, else 1) (negatives at s); grouped by p as the lower
    -- one: sum k^2 = n_neg sum (8 a + 4 t) - sum (4 a g + 4 a e + 3 t g + t e). All
    -- sums exact (HUGEINT).
    placed AS (
        SELECT x.cell, x.class_at_or_above, x.at_or_above,
            x.class_first_at - 1 AS a, x.class_at_or_above - x.class_first_at + 1 AS t,
            x.first_at - x.class_first_at AS e, x.at_or_above - x.class_at_or_above AS g
        FROM positives AS x
    ),
    ranking AS (
        SELECT x.cell,
            sum(x.e + x.g) AS spj,
            sum(CAST(x.e + x.g AS HUGEINT) * (x.e + x.g)) AS spj2,
            sum(CAST(8 * x.a + 4 * x.t AS HUGEINT)) AS k2_scale,
            sum(CAST(x.a AS HUGEINT) * (4 * x.g + 4 * x.e)
                + CAST(x.t AS HUGEINT) * (3 * x.g + x.e)) AS k2_less,
            sum(x.class_at_or_above / x.at_or_above) AS ap_sum
        FROM placed AS x
        GROUP BY x.cell
    ),
    calibration AS (
        SELECT b.window_index, b.version, b.slice,
               least(CAST(floor(b.s * ece_bins) AS BIGINT), ece_bins - 1) AS bin,
               count(*) AS n_bin, sum(b.y - b.s) AS gap,
               sum((b.y - b.s) * (b.y - b.s)) AS gap2
        FROM base AS b
        WHERE b.s IS NOT NULL AND b.y IS NOT NULL
          AND (metrics IS NULL OR list_contains(metrics, 'ece'))
        GROUP BY b.window_index, b.version, b.slice,
                 least(CAST(floor(b.s * ece_bins) AS BIGINT), ece_bins - 1)
    ),
    ece AS (
        SELECT c.window_index, c.version, c.slice, sum(abs(c.gap)) / sum(c.n_bin) AS ece,
               list_concat(list(CAST(c.n_bin AS DOUBLE) ORDER BY c.bin),
                           list(c.gap ORDER BY c.bin), list(c.gap2 ORDER BY c.bin)) AS ece_stats
        FROM calibration AS c
        GROUP BY c.window_index, c.version, c.slice
    ),
    horizon AS (
        SELECT * FROM evalstore.label_horizon(model, delay_quantile, as_of)
    ),
    scored AS (
        SELECT c.*, w.window_start, w.window_end, g.positive_class, g.cutoff, g.cutoff_source,
            CAST(c.n_pos AS DOUBLE) AS p_, CAST(c.n_neg AS DOUBLE) AS q_,
            c.brier_sum / c.n_score AS brier,
            sqrt(greatest(c.brier_sq - c.brier_sum * c.brier_sum / c.n_score, 0.0)
                 / nullif(c.n_score - 1, 0)) AS brier_sd,
            c.loss_sum / c.n_score AS log_loss,
            sqrt(greatest(c.loss_sq - c.loss_sum * c.loss_sum / c.n_score, 0.0)
                 / nullif(c.n_score - 1, 0)) AS log_loss_sd,
            1 - r.spj / (2 * CAST(c.n_pos AS DOUBLE) * c.n_neg) AS auc,
            CAST(CAST(c.n_pos AS DECIMAL(38, 0)) * r.spj2 - CAST(r.spj AS DECIMAL(38, 0))
                 * CAST(r.spj AS DECIMAL(38, 0)) AS DOUBLE) AS ss10,
            CAST(CAST(c.n_neg AS DECIMAL(38, 0)) * (c.n_neg * r.k2_scale - r.k2_less)
                 - CAST(2 * c.n_pos * c.n_neg - r.spj AS DECIMAL(38, 0))
                 * CAST(2 * c.n_pos * c.n_neg - r.spj AS DECIMAL(38, 0)) AS DOUBLE) AS ss01,
            r.ap_sum / c.n_pos AS ap,
            e.ece, e.ece_stats,
            evalstore.add_hours(w.window_end, h.delay_hours) AS labels_due, h.as_of
        FROM cells AS c
        JOIN windows AS w ON w.window_index = c.window_index
        LEFT JOIN registry AS g ON g.version = c.version
        CROSS JOIN geometry AS gm
        LEFT JOIN slice_numbers AS sn ON sn.slice = c.slice
        LEFT JOIN ranking AS r ON r.cell = evalstore.cell_key(c.window_index, c.vcode,
            coalesce(sn.slice_no, evalstore.integer_value(c.slice) - gm.s0 + 1),
            gm.w0, gm.step, gm.versions, gm.slices)
        LEFT JOIN ece AS e ON e.window_index = c.window_index AND e.version = c.version
             AND e.slice IS NOT DISTINCT FROM c.slice
        CROSS JOIN horizon AS h
    ),
    -- DeLong variance of the AUC: S10 / n_pos + S01 / n_neg with
    -- S10 = (n_pos sum pos j^2 - (sum pos j)^2) / (n_pos 4 n_neg^2 (n_pos - 1)) and
    -- S01 = (n_neg sum neg k^2 - (sum neg k)^2) / (n_neg 4 n_pos^2 (n_neg - 1))
    finished AS (
        SELECT s.*,
            CASE WHEN s.n_pos > 1 AND s.n_neg > 1 THEN sqrt(greatest(
                s.ss10 / (s.p_ * 4.0 * s.q_ * s.q_ * (s.p_ - 1)) / s.p_
                + s.ss01 / (s.q_ * 4.0 * s.p_ * s.p_ * (s.q_ - 1)) / s.q_, 0.0)) END AS auc_se,
            'positive class ' || s.positive_class || ', predicted positive when score >= '
                || s.cutoff || ' (' || s.cutoff_source || ' threshold)' AS rule
        FROM scored AS s
    ),
    metric_list AS (
        SELECT m.metric, m.family FROM (VALUES
            ('accuracy', 'class'), ('precision', 'class'), ('recall', 'class'),
            ('f1', 'class'), ('specificity', 'class'), ('roc_auc', 'score'),
            ('average_precision', 'score'), ('log_loss', 'score'), ('brier', 'score'),
            ('ece', 'score')
        ) AS m(metric, family)
        WHERE metrics IS NULL OR list_contains(metrics, m.metric)
    ),
    valued AS (
        SELECT f.*, m.metric, m.family,
            CASE WHEN m.family = 'class' THEN f.n_class ELSE f.n_score END AS n,
            CASE
                WHEN f.labeled = 0 THEN 'no labeled predictions in this cell (label coverage 0)'
                WHEN m.family = 'class' AND f.n_class = 0
                    THEN 'no labeled rows with a score or a prediction'
                WHEN m.family = 'score' AND f.n_score = 0 THEN 'no labeled rows with a score'
                WHEN m.metric = 'precision' AND f.tp + f.fp = 0
                    THEN 'no predicted positives: precision undefined'
                WHEN m.metric = 'recall' AND f.tp + f.fn = 0
                    THEN 'no positive labels: recall undefined'
                WHEN m.metric = 'specificity' AND f.tn + f.fp = 0
                    THEN 'no negative labels: specificity undefined'
                WHEN m.metric = 'f1' AND f.tp + f.fp + f.fn = 0
                    THEN 'no positive labels and no predicted positives: f1 undefined'
                WHEN m.metric = 'roc_auc' AND f.n_pos = 0
                    THEN 'single-class cell (no positive labels): ROC AUC undefined'
                WHEN m.metric = 'roc_auc' AND f.n_neg = 0
                    THEN 'single-class cell (no negative labels): ROC AUC undefined'
                WHEN m.metric = 'average_precision' AND f.n_pos = 0
                    THEN 'no positive labels: average precision undefined'
            END AS reason
        FROM finished AS f CROSS JOIN metric_list AS m
    )
    SELECT v.window_index, v.window_start, v.window_end, v.version, v.slice, v.metric,
        CAST(NULL AS VARCHAR) AS "class",
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'accuracy' THEN (v.tp + v.tn) / v.n_class
            WHEN 'precision' THEN v.tp / (v.tp + v.fp)
            WHEN 'recall' THEN v.tp / (v.tp + v.fn)
            WHEN 'specificity' THEN v.tn / (v.tn + v.fp)
            WHEN 'f1' THEN 2 * v.tp / (2 * v.tp + v.fp + v.fn)
            WHEN 'roc_auc' THEN v.auc
            WHEN 'average_precision' THEN v.ap
            WHEN 'log_loss' THEN v.log_loss
            WHEN 'brier' THEN v.brier
            WHEN 'ece' THEN v.ece
        END END AS value,
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'accuracy' THEN evalstore.wilson_low(v.tp + v.tn, v.n_class, z)
            WHEN 'precision' THEN evalstore.wilson_low(v.tp, v.tp + v.fp, z)
            WHEN 'recall' THEN evalstore.wilson_low(v.tp, v.tp + v.fn, z)
            WHEN 'specificity' THEN evalstore.wilson_low(v.tn, v.tn + v.fp, z)
            WHEN 'f1' THEN evalstore.at_least(
                2 * v.tp / (2 * v.tp + v.fp + v.fn) - z * evalstore.f1_se(v.tp, v.fp, v.fn), 0.0)
            WHEN 'roc_auc' THEN evalstore.at_least(v.auc - z * v.auc_se, 0.0)
            WHEN 'average_precision' THEN CASE WHEN v.ap > 0 AND v.ap < 1 THEN
                1 / (1 + exp(-(ln(v.ap / (1 - v.ap)) - z / sqrt(v.n_pos * v.ap * (1 - v.ap)))))
                END
            WHEN 'log_loss'
                THEN evalstore.at_least(v.log_loss - z * v.log_loss_sd / sqrt(v.n_score), 0.0)
            WHEN 'brier' THEN evalstore.at_least(v.brier - z * v.brier_sd / sqrt(v.n_score), 0.0)
        END END AS ci_low,
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'accuracy' THEN evalstore.wilson_high(v.tp + v.tn, v.n_class, z)
            WHEN 'precision' THEN evalstore.wilson_high(v.tp, v.tp + v.fp, z)
            WHEN 'recall' THEN evalstore.wilson_high(v.tp, v.tp + v.fn, z)
            WHEN 'specificity' THEN evalstore.wilson_high(v.tn, v.tn + v.fp, z)
            WHEN 'f1' THEN evalstore.at_most(
                2 * v.tp / (2 * v.tp + v.fp + v.fn) + z * evalstore.f1_se(v.tp, v.fp, v.fn), 1.0)
            WHEN 'roc_auc' THEN evalstore.at_most(v.auc + z * v.auc_se, 1.0)
            WHEN 'average_precision' THEN CASE WHEN v.ap > 0 AND v.ap < 1 THEN
                1 / (1 + exp(-(ln(v.ap / (1 - v.ap)) + z / sqrt(v.n_pos * v.ap * (1 - v.ap)))))
                END
            WHEN 'log_loss' THEN v.log_loss + z * v.log_loss_sd / sqrt(v.n_score)
            WHEN 'brier' THEN v.brier + z * v.brier_sd / sqrt(v.n_score)
        END END AS ci_high,
        v.n, v.labeled - v.n AS n_excluded, v.predictions, v.labeled,
        v.labeled / v.predictions AS label_coverage,
        v.labels_due, coalesce(v.labels_due <= v.as_of, false) AS labels_complete,
        v.reason,
        CASE v.metric
            WHEN 'accuracy' THEN v.rule || '; CI Wilson score'
            WHEN 'precision' THEN v.rule || '; CI Wilson score'
            WHEN 'recall' THEN v.rule || '; CI Wilson score'
            WHEN 'specificity' THEN v.rule || '; CI Wilson score'
            WHEN 'f1' THEN v.rule || '; CI delta method (Takahashi 2022)'
            WHEN 'roc_auc' THEN 'Mann-Whitney U / (n_pos n_neg), ties count 1/2; CI DeLong'
            WHEN 'average_precision'
                THEN 'sum (R_k - R_k-1) P_k over distinct scores; CI logit (Boyd 2013)'
            WHEN 'log_loss'
                THEN 'mean -ln p(label), p clipped to [eps, 1 - eps], eps = 2.22e-16; '
                    || 'CI normal (sample sd)'
            WHEN 'brier' THEN 'mean (score - y)^2; CI normal (sample sd)'
            WHEN 'ece' THEN ece_bins || ' equal-width score bins, sum n_b / n |mean y - mean '
                || 'score|; CI bootstrap (Python front-end)'
        END AS variant,
        CASE v.metric WHEN 'ece' THEN v.ece_stats END AS stats
    FROM valued AS v;
COMMENT ON MACRO TABLE evalstore.performance_binary IS
    'Binary metrics per window x version x slice (accuracy ... roc_auc, average_precision, ece).';

-- evalstore.performance_multiclass(source, model, width, chunk_rows, chunks, since, until,
--     z, as_of, delay_quantile, metrics)
-- Multiclass metrics per window x version x slice (columns: see the top of the file).
-- Labels and predictions are class texts; the classes of a cell are those present in
-- its labels or predictions (sklearn's labels=None). Over the n labeled rows with a
-- prediction, with tp_c, predicted_c, actual_c the per-class counts:
--   accuracy      sum tp_c / n                               sklearn accuracy_score
--   micro_f1      2 sum tp / (2 sum tp + sum fp + sum fn), equal to accuracy for
--                 single-label data                          f1_score(average='micro')
--   macro_f1      mean over the cell's classes of f1_c       f1_score(average='macro')
--   weighted_f1   sum actual_c f1_c / sum actual_c           f1_score(average='weighted')
--   precision, recall, f1    one row per class (column "class"): tp_c / predicted_c,
--                 tp_c / actual_c, 2 tp_c / (predicted_c + actual_c); rows for every
--                 registered class and every class present, NULL with a reason when the
--                 class is never predicted (precision), never a label (recall), or
--                 neither (f1) in the cell (sklearn would report 0 with a warning)
--   log_loss      mean of -ln p, p = probabilities[label] from the stored map (0 when the
--                 map lacks the class), clipped to [eps, 1 - eps], eps =
--                 2.220446049250313e-16 (sklearn log_loss); rows without a map are left
--                 out (n_excluded)
-- Intervals: Wilson for accuracy, micro_f1 (x = sum tp of n), per-class precision and
-- recall; normal (sample sd) for log_loss; delta method (evalstore.f1_se, clipped to
-- [0, 1]) for per-class f1; macro_f1 and weighted_f1 carry stats = the cell's confusion
-- matrix (row-major, labels x predictions, classes sorted) for the Python bootstrap.
CREATE OR REPLACE MACRO evalstore.performance_multiclass(
    source, model, width, chunk_rows, chunks, since, until, z, as_of, delay_quantile,
    metrics
) AS TABLE
    WITH registered AS (
        SELECT DISTINCT unnest(r.classes) AS class_name
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    ),
    base AS (
        SELECT w.window_index, w.version, w.slice, w.ts, w.label AS y, w.prediction AS yhat,
            CASE WHEN w.label IS NOT NULL THEN evalstore.log_loss_term(
                evalstore.class_probability(w.probabilities, w.label)) END AS loss
        FROM evalstore.performance_rows(source, width, chunk_rows, chunks, since, until) AS w
    ),
    cells AS (
        SELECT b.window_index, b.version, b.slice,
            min(b.ts) AS first_ts, max(b.ts) AS last_ts,
            count(*) AS predictions,
            count(b.y) AS labeled,
            count(CASE WHEN b.y IS NOT NULL AND b.yhat IS NOT NULL THEN 1 END) AS n_class,
            count(CASE WHEN b.y = b.yhat THEN 1 END) AS correct,
            count(b.loss) AS n_prob, avg(b.loss) AS log_loss, stddev_samp(b.loss) AS log_loss_sd
        FROM base AS b
        GROUP BY b.window_index, b.version, b.slice
    ),
    windows AS (
        SELECT c.window_index,
            evalstore.cell_window_start(c.window_index, width, min(c.first_ts)) AS window_start,
            evalstore.cell_window_end(c.window_index, width, max(c.last_ts)) AS window_end
        FROM cells AS c
        GROUP BY c.window_index
    ),
    pairs AS (
        SELECT b.window_index, b.version, b.slice, b.y, b.yhat, count(*) AS cnt
        FROM base AS b
        WHERE b.y IS NOT NULL AND b.yhat IS NOT NULL
        GROUP BY b.window_index, b.version, b.slice, b.y, b.yhat
    ),
    present AS (
        SELECT p.window_index, p.version, p.slice, p.y AS class_name FROM pairs AS p
        UNION
        SELECT p.window_index, p.version, p.slice, p.yhat AS class_name FROM pairs AS p
    ),
    per_class AS (
        SELECT k.window_index, k.version, k.slice, k.class_name,
            sum(CASE WHEN q.y = k.class_name AND q.yhat = k.class_name THEN q.cnt ELSE 0 END)
                AS tp,
            sum(CASE WHEN q.yhat = k.class_name THEN q.cnt ELSE 0 END) AS predicted,
            sum(CASE WHEN q.y = k.class_name THEN q.cnt ELSE 0 END) AS actual
        FROM present AS k
        JOIN pairs AS q ON q.window_index = k.window_index AND q.version = k.version
         AND q.slice IS NOT DISTINCT FROM k.slice
        GROUP BY k.window_index, k.version, k.slice, k.class_name
    ),
    averages AS (
        SELECT c.window_index, c.version, c.slice,
            avg(2 * c.tp / (c.predicted + c.actual)) AS macro_f1,
            sum(c.actual * (2 * c.tp / (c.predicted + c.actual))) / sum(c.actual)
                AS weighted_f1
        FROM per_class AS c
        GROUP BY c.window_index, c.version, c.slice
    ),
    confusion AS (
        SELECT a.window_index, a.version, a.slice,
            list(CAST(coalesce(q.cnt, 0) AS DOUBLE) ORDER BY a.class_name, b.class_name)
                AS matrix
        FROM present AS a
        JOIN present AS b ON b.window_index = a.window_index AND b.version = a.version
         AND b.slice IS NOT DISTINCT FROM a.slice
        LEFT JOIN pairs AS q ON q.window_index = a.window_index AND q.version = a.version
         AND q.slice IS NOT DISTINCT FROM a.slice AND q.y = a.class_name
         AND q.yhat = b.class_name
        WHERE metrics IS NULL OR list_contains(metrics, 'macro_f1')
           OR list_contains(metrics, 'weighted_f1')
        GROUP BY a.window_index, a.version, a.slice
    ),
    horizon AS (
        SELECT * FROM evalstore.label_horizon(model, delay_quantile, as_of)
    ),
    scored AS (
        SELECT c.*, w.window_start, w.window_end, a.macro_f1, a.weighted_f1, m.matrix,
            evalstore.add_hours(w.window_end, h.delay_hours) AS labels_due, h.as_of
        FROM cells AS c
        JOIN windows AS w ON w.window_index = c.window_index
        LEFT JOIN averages AS a ON a.window_index = c.window_index AND a.version = c.version
             AND a.slice IS NOT DISTINCT FROM c.slice
        LEFT JOIN confusion AS m ON m.window_index = c.window_index AND m.version = c.version
             AND m.slice IS NOT DISTINCT FROM c.slice
        CROSS JOIN horizon AS h
    ),
    cell_classes AS (
        SELECT c.window_index, c.version, c.slice, r.class_name
        FROM cells AS c CROSS JOIN registered AS r
        UNION
        SELECT k.window_index, k.version, k.slice, k.class_name FROM present AS k
    ),
    metric_list AS (
        SELECT m.metric, m.per_class FROM (VALUES
            ('accuracy', false), ('macro_f1', false), ('micro_f1', false),
            ('weighted_f1', false), ('log_loss', false), ('precision', true),
            ('recall', true), ('f1', true)
        ) AS m(metric, per_class)
        WHERE metrics IS NULL OR list_contains(metrics, m.metric)
    ),
    valued AS (
        SELECT s.*, m.metric, CAST(NULL AS VARCHAR) AS class_name,
            CAST(NULL AS BIGINT) AS tp, CAST(NULL AS BIGINT) AS predicted,
            CAST(NULL AS BIGINT) AS actual,
            CASE WHEN m.metric = 'log_loss' THEN s.n_prob ELSE s.n_class END AS n,
            CASE
                WHEN s.labeled = 0 THEN 'no labeled predictions in this cell (label coverage 0)'
                WHEN m.metric = 'log_loss' AND s.n_prob = 0
                    THEN 'no labeled rows with class probabilities'
                WHEN m.metric <> 'log_loss' AND s.n_class = 0
                    THEN 'no labeled rows with a prediction'
            END AS reason
        FROM scored AS s CROSS JOIN metric_list AS m
        WHERE NOT m.per_class
        UNION ALL
        SELECT s.*, m.metric, k.class_name, coalesce(pc.tp, 0), coalesce(pc.predicted, 0),
            coalesce(pc.actual, 0), s.n_class,
            CASE
                WHEN s.labeled = 0 THEN 'no labeled predictions in this cell (label coverage 0)'
                WHEN s.n_class = 0 THEN 'no labeled rows with a prediction'
                WHEN m.metric = 'precision' AND coalesce(pc.predicted, 0) = 0
                    THEN 'class ' || k.class_name || ' never predicted: precision undefined'
                WHEN m.metric = 'recall' AND coalesce(pc.actual, 0) = 0
                    THEN 'class ' || k.class_name || ' absent from the labels: recall undefined'
                WHEN m.metric = 'f1' AND coalesce(pc.predicted, 0) + coalesce(pc.actual, 0) = 0
                    THEN 'class ' || k.class_name || ' neither labeled nor predicted: f1 undefined'
            END
        FROM scored AS s
        JOIN cell_classes AS k ON k.window_index = s.window_index AND k.version = s.version
         AND k.slice IS NOT DISTINCT FROM s.slice
        LEFT JOIN per_class AS pc ON pc.window_index = k.window_index
         AND pc.version = k.version AND pc.slice IS NOT DISTINCT FROM k.slice
         AND pc.class_name = k.class_name
        CROSS JOIN metric_list AS m
        WHERE m.per_class
    )
    SELECT v.window_index, v.window_start, v.window_end, v.version, v.slice, v.metric,
        v.class_name AS "class",
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'accuracy' THEN v.correct / v.n_class
            WHEN 'micro_f1' THEN v.correct / v.n_class
            WHEN 'macro_f1' THEN v.macro_f1
            WHEN 'weighted_f1' THEN v.weighted_f1
            WHEN 'log_loss' THEN v.log_loss
            WHEN 'precision' THEN v.tp / v.predicted
            WHEN 'recall' THEN v.tp / v.actual
            WHEN 'f1' THEN 2 * v.tp / (v.predicted + v.actual)
        END END AS value,
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'accuracy' THEN evalstore.wilson_low(v.correct, v.n_class, z)
            WHEN 'micro_f1' THEN evalstore.wilson_low(v.correct, v.n_class, z)
            WHEN 'log_loss'
                THEN evalstore.at_least(v.log_loss - z * v.log_loss_sd / sqrt(v.n_prob), 0.0)
            WHEN 'precision' THEN evalstore.wilson_low(v.tp, v.predicted, z)
            WHEN 'recall' THEN evalstore.wilson_low(v.tp, v.actual, z)
            WHEN 'f1' THEN evalstore.at_least(2 * v.tp / (v.predicted + v.actual)
                - z * evalstore.f1_se(v.tp, v.predicted - v.tp, v.actual - v.tp), 0.0)
        END END AS ci_low,
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'accuracy' THEN evalstore.wilson_high(v.correct, v.n_class, z)
            WHEN 'micro_f1' THEN evalstore.wilson_high(v.correct, v.n_class, z)
            WHEN 'log_loss' THEN v.log_loss + z * v.log_loss_sd / sqrt(v.n_prob)
            WHEN 'precision' THEN evalstore.wilson_high(v.tp, v.predicted, z)
            WHEN 'recall' THEN evalstore.wilson_high(v.tp, v.actual, z)
            WHEN 'f1' THEN evalstore.at_most(2 * v.tp / (v.predicted + v.actual)
                + z * evalstore.f1_se(v.tp, v.predicted - v.tp, v.actual - v.tp), 1.0)
        END END AS ci_high,
        v.n, v.labeled - v.n AS n_excluded, v.predictions, v.labeled,
        v.labeled / v.predictions AS label_coverage,
        v.labels_due, coalesce(v.labels_due <= v.as_of, false) AS labels_complete,
        v.reason,
        CASE v.metric
            WHEN 'accuracy' THEN 'share of rows whose prediction is the label; CI Wilson score'
            WHEN 'micro_f1' THEN 'micro-averaged F1 (= accuracy, single-label); CI Wilson score'
            WHEN 'macro_f1'
                THEN 'mean F1 over classes present in the cell; CI bootstrap (Python front-end)'
            WHEN 'weighted_f1' THEN 'F1 averaged with label-support weights; '
                || 'CI bootstrap (Python front-end)'
            WHEN 'log_loss' THEN 'mean -ln probabilities[label], clipped to [eps, 1 - eps], '
                || 'eps = 2.22e-16; CI normal (sample sd)'
            WHEN 'precision' THEN 'one class vs the rest; CI Wilson score'
            WHEN 'recall' THEN 'one class vs the rest; CI Wilson score'
            WHEN 'f1' THEN 'one class vs the rest; CI delta method (Takahashi 2022)'
        END AS variant,
        CASE
            WHEN v.reason IS NOT NULL THEN NULL
            WHEN v.metric IN ('macro_f1', 'weighted_f1') THEN v.matrix
        END AS stats
    FROM valued AS v;
COMMENT ON MACRO TABLE evalstore.performance_multiclass IS
    'Multiclass metrics per window x version x slice: accuracy, F1 averages, log_loss, per class.';

-- evalstore.performance_regression(source, model, width, chunk_rows, chunks, since, until,
--     z, as_of, delay_quantile, metrics)
-- Regression metrics per window x version x slice (columns: see the top of the file),
-- over the n labeled rows with a prediction, e = prediction - label:
--   mae    mean |e|                   sklearn mean_absolute_error
--   mse    mean e^2                   mean_squared_error
--   rmse   sqrt(mse)                  root_mean_squared_error
--   bias   mean e (positive: the model over-predicts)
--   mape   mean |e| / |label| over rows with label <> 0; zero targets are left out and
--          counted in n_excluded; NULL with a reason when every target is 0. (sklearn's
--          mean_absolute_percentage_error divides by max(|label|, eps) instead, so it
--          agrees when no |label| is below eps = 2.22e-16 and explodes on zeros.)
--   r2     1 - sum e^2 / sum (label - mean label)^2   r2_score; NULL with a reason when
--          the labels are constant (sklearn returns 1.0 or 0.0 there)
-- Intervals: normal (mean +- z sd / sqrt n, sample sd) for mae, mse, bias and mape; rmse
-- takes the square roots of the mse interval's ends; r2 the delta method: r2 +- z
-- sqrt(V / n), V = var(u) / B^2 - 2 A cov(u, v) / B^3 + A^2 var(v) / B^4 with
-- u = e^2, v = (label - mean label)^2, A = mean u, B = mean v (sample variances). All
-- NULL for n < 2.
CREATE OR REPLACE MACRO evalstore.performance_regression(
    source, model, width, chunk_rows, chunks, since, until, z, as_of, delay_quantile,
    metrics
) AS TABLE
    WITH base AS (
        SELECT w.window_index, w.version, w.slice, w.ts, w.label AS y,
               CAST(w.prediction AS DOUBLE) - CAST(w.label AS DOUBLE) AS e
        FROM evalstore.performance_rows(source, width, chunk_rows, chunks, since, until) AS w
    ),
    cells AS (
        SELECT b.window_index, b.version, b.slice,
            min(b.ts) AS first_ts, max(b.ts) AS last_ts,
            count(*) AS predictions,
            count(b.y) AS labeled,
            count(b.e) AS n_reg,
            avg(abs(b.e)) AS mae, stddev_samp(abs(b.e)) AS mae_sd,
            avg(b.e * b.e) AS mse, stddev_samp(b.e * b.e) AS mse_sd,
            avg(b.e) AS bias, stddev_samp(b.e) AS bias_sd,
            count(CASE WHEN b.y <> 0 THEN b.e END) AS n_mape,
            avg(CASE WHEN b.y <> 0 THEN abs(b.e) / abs(b.y) END) AS mape,
            stddev_samp(CASE WHEN b.y <> 0 THEN abs(b.e) / abs(b.y) END) AS mape_sd,
            avg(CASE WHEN b.e IS NOT NULL THEN b.y END) AS label_mean,
            var_pop(CASE WHEN b.e IS NOT NULL THEN b.y END) AS label_var
        FROM base AS b
        GROUP BY b.window_index, b.version, b.slice
    ),
    windows AS (
        SELECT c.window_index,
            evalstore.cell_window_start(c.window_index, width, min(c.first_ts)) AS window_start,
            evalstore.cell_window_end(c.window_index, width, max(c.last_ts)) AS window_end
        FROM cells AS c
        GROUP BY c.window_index
    ),
    spread AS (
        SELECT b.window_index, b.version, b.slice,
            var_samp(b.e * b.e) AS var_u,
            var_samp((b.y - c.label_mean) * (b.y - c.label_mean)) AS var_v,
            covar_samp(b.e * b.e, (b.y - c.label_mean) * (b.y - c.label_mean)) AS cov_uv
        FROM base AS b
        JOIN cells AS c ON c.window_index = b.window_index AND c.version = b.version
         AND c.slice IS NOT DISTINCT FROM b.slice
        WHERE b.e IS NOT NULL AND (metrics IS NULL OR list_contains(metrics, 'r2'))
        GROUP BY b.window_index, b.version, b.slice
    ),
    horizon AS (
        SELECT * FROM evalstore.label_horizon(model, delay_quantile, as_of)
    ),
    scored AS (
        SELECT c.*, w.window_start, w.window_end,
            1 - c.mse / nullif(c.label_var, 0) AS r2,
            sqrt(greatest(p.var_u / (c.label_var * c.label_var)
                - 2 * c.mse * p.cov_uv / (c.label_var * c.label_var * c.label_var)
                + c.mse * c.mse * p.var_v / (c.label_var * c.label_var * c.label_var
                                             * c.label_var), 0.0) / c.n_reg) AS r2_se,
            evalstore.add_hours(w.window_end, h.delay_hours) AS labels_due, h.as_of
        FROM cells AS c
        JOIN windows AS w ON w.window_index = c.window_index
        LEFT JOIN spread AS p ON p.window_index = c.window_index AND p.version = c.version
             AND p.slice IS NOT DISTINCT FROM c.slice
        CROSS JOIN horizon AS h
    ),
    metric_list AS (
        SELECT m.metric FROM (VALUES
            ('mae'), ('mse'), ('rmse'), ('mape'), ('r2'), ('bias')
        ) AS m(metric)
        WHERE metrics IS NULL OR list_contains(metrics, m.metric)
    ),
    valued AS (
        SELECT s.*, m.metric,
            CASE WHEN m.metric = 'mape' THEN s.n_mape ELSE s.n_reg END AS n,
            CASE
                WHEN s.labeled = 0 THEN 'no labeled predictions in this cell (label coverage 0)'
                WHEN s.n_reg = 0 THEN 'no labeled rows with a prediction'
                WHEN m.metric = 'mape' AND s.n_mape = 0
                    THEN 'every target is 0: MAPE undefined'
                WHEN m.metric = 'r2' AND s.label_var = 0
                    THEN 'labels are constant: R2 undefined'
            END AS reason
        FROM scored AS s CROSS JOIN metric_list AS m
    )
    SELECT v.window_index, v.window_start, v.window_end, v.version, v.slice, v.metric,
        CAST(NULL AS VARCHAR) AS "class",
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'mae' THEN v.mae
            WHEN 'mse' THEN v.mse
            WHEN 'rmse' THEN sqrt(v.mse)
            WHEN 'bias' THEN v.bias
            WHEN 'mape' THEN v.mape
            WHEN 'r2' THEN v.r2
        END END AS value,
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'mae' THEN evalstore.at_least(v.mae - z * v.mae_sd / sqrt(v.n_reg), 0.0)
            WHEN 'mse' THEN evalstore.at_least(v.mse - z * v.mse_sd / sqrt(v.n_reg), 0.0)
            WHEN 'rmse' THEN sqrt(evalstore.at_least(v.mse - z * v.mse_sd / sqrt(v.n_reg), 0.0))
            WHEN 'bias' THEN v.bias - z * v.bias_sd / sqrt(v.n_reg)
            WHEN 'mape' THEN evalstore.at_least(v.mape - z * v.mape_sd / sqrt(v.n_mape), 0.0)
            WHEN 'r2' THEN v.r2 - z * v.r2_se
        END END AS ci_low,
        CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
            WHEN 'mae' THEN v.mae + z * v.mae_sd / sqrt(v.n_reg)
            WHEN 'mse' THEN v.mse + z * v.mse_sd / sqrt(v.n_reg)
            WHEN 'rmse' THEN sqrt(v.mse + z * v.mse_sd / sqrt(v.n_reg))
            WHEN 'bias' THEN v.bias + z * v.bias_sd / sqrt(v.n_reg)
            WHEN 'mape' THEN v.mape + z * v.mape_sd / sqrt(v.n_mape)
            WHEN 'r2' THEN evalstore.at_most(v.r2 + z * v.r2_se, 1.0)
        END END AS ci_high,
        v.n, v.labeled - v.n AS n_excluded, v.predictions, v.labeled,
        v.labeled / v.predictions AS label_coverage,
        v.labels_due, coalesce(v.labels_due <= v.as_of, false) AS labels_complete,
        v.reason,
        CASE v.metric
            WHEN 'mae' THEN 'mean |prediction - label|; CI normal (sample sd)'
            WHEN 'mse' THEN 'mean (prediction - label)^2; CI normal (sample sd)'
            WHEN 'rmse' THEN 'sqrt(mse); CI square roots of the mse interval'
            WHEN 'bias' THEN 'mean (prediction - label); CI normal (sample sd)'
            WHEN 'mape' THEN 'mean |prediction - label| / |label| over labels <> 0 (zero '
                || 'targets in n_excluded); CI normal (sample sd)'
            WHEN 'r2' THEN '1 - SSE / SST; CI delta method'
        END AS variant,
        CAST(NULL AS DOUBLE[]) AS stats
    FROM valued AS v;
COMMENT ON MACRO TABLE evalstore.performance_regression IS
    'Regression metrics per window x version x slice: mae, mse, rmse, mape, r2, bias.';

-- evalstore.performance(model, width)
-- Short form for SQL users (a BI tool, the duckdb shell) of a classification model's
-- performance, with store.performance's defaults: every metric of the task, the registered
-- threshold, 10 ECE bins, 95% intervals (z = 1.9599639845400536), labels_complete judged
-- with the 0.9 quantile of the label delays at the latest label's time, all of time, time
-- windows of `width` (e.g. '7 days'), no slices. Dispatches on the model's registered
-- task: evalstore.performance_binary for binary models, performance_multiclass for
-- multiclass ones (regression models: evalstore.regression_performance, whose label and
-- prediction columns are numbers). Columns: window_start, window_end, version, metric,
-- class, value, ci_low, ci_high, n, n_excluded, predictions, labeled, label_coverage,
-- labels_due, labels_complete, reason, variant; ordered by window, version, metric,
-- class. The bootstrap intervals of macro_f1, weighted_f1 and ece are NULL here (they come
-- from store.performance), e.g.
--   SELECT window_start, version, value FROM evalstore.performance('fraud', '7 days')
--   WHERE metric = 'roc_auc'
CREATE OR REPLACE MACRO evalstore.performance(model, width) AS TABLE
    WITH task AS (
        SELECT any_value(r.task) AS task
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    ),
    results AS (
        SELECT * FROM evalstore.performance_binary(
            model || '.evaluations', model, NULL, width, NULL, NULL, NULL, NULL, 10,
            1.9599639845400536, NULL, 0.9, NULL)
        WHERE (SELECT t.task FROM task AS t) = 'binary'
        UNION ALL
        SELECT * FROM evalstore.performance_multiclass(
            model || '.evaluations', model, width, NULL, NULL, NULL, NULL, 1.9599639845400536,
            NULL, 0.9, NULL)
        WHERE (SELECT t.task FROM task AS t) = 'multiclass'
    )
    SELECT window_start, window_end, version, metric, "class", value, ci_low, ci_high, n,
           n_excluded, predictions, labeled, label_coverage, labels_due, labels_complete,
           reason, variant
    FROM results
    ORDER BY window_start, version, metric, "class" NULLS FIRST;
COMMENT ON MACRO TABLE evalstore.performance IS
    'Binary or multiclass performance per time window and version, with the Python defaults. Args: model, width.';

-- evalstore.regression_performance(model, width)
-- The short form of evalstore.performance_regression, with store.performance's defaults
-- (every metric, 95% intervals, labels_complete at the 0.9 delay quantile, all of time,
-- no slices) and the columns and order of evalstore.performance, e.g.
--   SELECT window_start, value FROM evalstore.regression_performance('demand', '1 day')
--   WHERE metric = 'mae'
CREATE OR REPLACE MACRO evalstore.regression_performance(model, width) AS TABLE
    SELECT window_start, window_end, version, metric, "class", value, ci_low, ci_high, n,
           n_excluded, predictions, labeled, label_coverage, labels_due, labels_complete,
           reason, variant
    FROM evalstore.performance_regression(
        model || '.evaluations', model, width, NULL, NULL, NULL, NULL, 1.9599639845400536,
        NULL, 0.9, NULL)
    ORDER BY window_start, version, metric, "class" NULLS FIRST;
COMMENT ON MACRO TABLE evalstore.regression_performance IS
    'Regression performance per time window and version, with the Python defaults. Args: model, width.';
