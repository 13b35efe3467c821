-- evalstore macros: summary-statistics series per window and feature, with alert ranges
-- learned on chunks of the reference (NannyML's summary-statistics calculators: mean,
-- median, standard deviation, sum and row count; evalstore adds min, max and quantiles).
--
-- Input: the long-format relations of a model (<model>.numeric_values and
-- <model>.category_values, or restricted views of them: example_id, env, dataset, ts,
-- version, feature, value). Analysis windows are those of evalstore.drift_windows (time
-- buckets of `width`, `chunk_rows` rows per chunk, `chunks` near-equal chunks, NannyML's
-- split with chunk_rows = 0), over the rows matching ana_env / ana_dataset / [ana_start,
-- ana_end). The reference is the rows matching ref_env / ref_dataset / [ref_start,
-- ref_end), cut into chunks by the same window (learn_chunks NULL: as NannyML fits a
-- calculator on the reference cut by the calculator's chunker), or, with learn_chunks = n,
-- each series (feature, version) of the reference cut into n near-equal chunks in
-- (ts, example_id) order (evalstore.chunk_index's default rule), for a reference logged
-- at one time.

-- evalstore.summary_quantiles(value, quantiles) -> DOUBLE[]
-- Helper (an aggregate): the `quantiles` (a DOUBLE[] of levels in [0, 1]) of `value` in
-- the group, linear interpolation between order statistics (numpy.quantile's default,
-- pandas Series.quantile). The DuckDB-specific list form of quantile_cont kept in one place.
CREATE OR REPLACE MACRO evalstore.summary_quantiles(value, quantiles) AS
    quantile_cont(value, quantiles);
COMMENT ON MACRO evalstore.summary_quantiles IS
    'Quantiles (linear interpolation, as numpy.quantile) of value for a list of levels.';

-- evalstore.summary_cells(source, kind, env, dataset, start_ts, end_ts, width, chunk_rows,
--     chunks, learn_chunks, quantiles)
-- Helper: one row per window (evalstore.drift_windows of the rows matching env / dataset /
-- [start_ts, end_ts); with learn_chunks = n instead each (feature, version) series of
-- those rows cut into n near-equal chunks in (ts, example_id) order) and (feature,
-- version) with the statistics of that window's values:
-- rows (every row, NULL and NaN included), n (the values counted: not NULL, and not NaN
-- for a numeric source), and for kind 'numeric' mean, median, sd (sample, ddof 1), min,
-- max, sum (0 when n = 0, as numpy.nansum) and qs (the `quantiles`); NULL for a
-- 'categorical' source, whose values are only counted. Columns: window_index,
-- window_start, window_end, feature, version, rows, n, mean, median, sd, min, max, sum, qs.
CREATE OR REPLACE MACRO evalstore.summary_cells(
    source, kind, env, dataset, start_ts, end_ts, width, chunk_rows, chunks, learn_chunks,
    quantiles
) AS TABLE
    WITH windowed AS (
        SELECT w.window_index, w.window_start, w.window_end, w.feature, w.version, w.value
        FROM evalstore.drift_windows(
            source, env, dataset, start_ts, end_ts, width, chunk_rows, chunks) AS w
        WHERE learn_chunks IS NULL
    ),
    series AS (
        SELECT v.feature, coalesce(v.version, '') AS version, v.value, v.ts,
            row_number() OVER (PARTITION BY v.feature, coalesce(v.version, '')
                               ORDER BY v.ts, v.example_id) - 1 AS ordinal,
            count(*) OVER (PARTITION BY v.feature, coalesce(v.version, '')) AS n_rows
        FROM evalstore.relation(source) AS v
        WHERE learn_chunks IS NOT NULL
          AND (env IS NULL OR v.env = env)
          AND (dataset IS NULL OR v.dataset = dataset)
          AND (start_ts IS NULL OR v.ts >= CAST(start_ts AS TIMESTAMPTZ))
          AND (end_ts IS NULL OR v.ts < CAST(end_ts AS TIMESTAMPTZ))
    ),
    chunked AS (
        SELECT evalstore.chunk_index(s.ordinal, s.n_rows, NULL, learn_chunks) AS window_index,
            min(s.ts) OVER (PARTITION BY s.feature, s.version,
                evalstore.chunk_index(s.ordinal, s.n_rows, NULL, learn_chunks)) AS window_start,
            max(s.ts) OVER (PARTITION BY s.feature, s.version,
                evalstore.chunk_index(s.ordinal, s.n_rows, NULL, learn_chunks)) AS window_end,
            s.feature, s.version, s.value
        FROM series AS s
    ),
    rows_ AS (
        SELECT w.window_index, w.window_start, w.window_end, w.feature, w.version,
            CASE WHEN kind = 'numeric' AND NOT isnan(TRY_CAST(w.value AS DOUBLE))
                 THEN TRY_CAST(w.value AS DOUBLE) END AS x,
            w.value IS NOT NULL AS present
        FROM (SELECT * FROM windowed UNION ALL SELECT * FROM chunked) AS w
    )
    SELECT r.window_index, any_value(r.window_start) AS window_start,
        any_value(r.window_end) AS window_end, r.feature, r.version,
        count(*) AS rows,
        CASE WHEN kind = 'numeric' THEN count(r.x)
             ELSE count(CASE WHEN r.present THEN 1 END) END AS n,
        avg(r.x) AS mean, quantile_cont(r.x, 0.5) AS median, stddev_samp(r.x) AS sd,
        min(r.x) AS min, max(r.x) AS max,
        CASE WHEN kind = 'numeric' THEN coalesce(sum(r.x), 0.0) END AS sum,
        CASE WHEN kind = 'numeric' AND len(quantiles) > 0
             THEN evalstore.summary_quantiles(r.x, quantiles) END AS qs
    FROM rows_ AS r
    GROUP BY r.window_index, r.feature, r.version;
COMMENT ON MACRO TABLE evalstore.summary_cells IS
    'Rows, values and (numeric) mean, median, sd, min, max, sum, quantiles per window and feature.';

-- evalstore.summary_stats(source_numeric, source_category, ref_env, ref_dataset, ref_start,
--     ref_end, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks,
--     learn_chunks, stats, quantiles, k)
-- One row per analysis window, feature (and version: a model output such as score has
-- one series per version, features have version '') and statistic. For the window's
-- values (numeric: not NULL and not NaN; +-inf are values and propagate as in numpy):
--   count    the window's rows of the feature, NULL and NaN included (NannyML's
--            SummaryStatsRowCountCalculator); numeric and categorical features
--   mean     numpy.nanmean (pandas Series.mean)
--   median   numpy.nanmedian (Series.median)
--   sd       sample standard deviation, ddof 1 (Series.std, as NannyML's
--            SummaryStatsStdCalculator; numpy.nanstd(ddof=1)); NULL with fewer than 2 values
--   min, max numpy.nanmin, numpy.nanmax
--   sum      numpy.nansum (Series.sum): 0 when the window has no value
--   q<level> numpy.nanquantile(values, level) (linear), one row per level of `quantiles`
--            (stat 'quantile' in `stats`), named e.g. 'q0.05'
-- `stats` lists the statistics (NULL: all); mean ... quantiles are numeric-only. A value
-- is NULL with a reason when the window has no value (or one, for sd).
-- Alert range (NannyML's StandardDeviationThreshold): the statistic of each reference
-- chunk (the reference cut by the window, or per series into learn_chunks chunks), then
-- threshold_low = mean - k sd and threshold_high = mean + k sd over the chunks' values
-- (NULL and NaN ones skipped; sd the population sd, ddof 0, numpy.nanstd), the low end
-- floored at 0 for count and sd (NannyML's lower_threshold_value_limit; NannyML reports
-- None there, with the same alerts). NULL with a
-- reason when fewer than 2 reference chunks have a value. alert = value < threshold_low
-- OR value > threshold_high (outside the closed range; NannyML alerts when NOT (low <
-- value < high), also on a bound, so a statistic constant over the reference chunks
-- (sd 0) alerts there on every window that equals it: evalstore does not); NULL when the
-- value or the range is.
-- Columns: window_start, window_end, feature, kind, version, stat, variant, value,
-- threshold_low, threshold_high, threshold_source, alert, n (values behind value;
-- count: the rows), rows, reference_chunks (chunks with a value), reason; window_index
-- orders the windows.
CREATE OR REPLACE MACRO evalstore.summary_stats(
    source_numeric, source_category, ref_env, ref_dataset, ref_start, ref_end,
    ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks,
    learn_chunks, stats, quantiles, k
) AS TABLE
    WITH stat_list AS (
        SELECT s.stat, s.numeric_only, s.floor_zero, s.position FROM (VALUES
            ('count', false, true, 1), ('mean', true, false, 2), ('median', true, false, 3),
            ('sd', true, true, 4), ('min', true, false, 5), ('max', true, false, 6),
            ('sum', true, false, 7)
        ) AS s(stat, numeric_only, floor_zero, position)
        WHERE stats IS NULL OR list_contains(stats, s.stat)
    ),
    levels AS (
        SELECT unnest(coalesce(quantiles, [])) AS level,
               unnest(range(1, len(coalesce(quantiles, [])) + 1)) AS i
        WHERE stats IS NULL OR list_contains(stats, 'quantile')
    ),
    cells AS (
        SELECT 'analysis' AS side, 'numeric' AS kind, c.*
        FROM evalstore.summary_cells(source_numeric, 'numeric', ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, NULL, quantiles) AS c
        UNION ALL
        SELECT 'analysis', 'categorical', c.*
        FROM evalstore.summary_cells(source_category, 'categorical', ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, NULL, quantiles) AS c
        UNION ALL
        SELECT 'reference', 'numeric', c.*
        FROM evalstore.summary_cells(source_numeric, 'numeric', ref_env, ref_dataset,
            ref_start, ref_end, width, chunk_rows, chunks, learn_chunks, quantiles) AS c
        UNION ALL
        SELECT 'reference', 'categorical', c.*
        FROM evalstore.summary_cells(source_category, 'categorical', ref_env, ref_dataset,
            ref_start, ref_end, width, chunk_rows, chunks, learn_chunks, quantiles) AS c
    ),
    long AS (
        SELECT c.side, c.kind, c.window_index, c.window_start, c.window_end, c.feature,
            c.version, s.stat, s.position, s.floor_zero, c.rows,
            CASE WHEN s.stat = 'count' THEN c.rows ELSE c.n END AS n,
            CASE s.stat WHEN 'count' THEN CAST(c.rows AS DOUBLE) WHEN 'mean' THEN c.mean
                WHEN 'median' THEN c.median WHEN 'sd' THEN c.sd WHEN 'min' THEN c.min
                WHEN 'max' THEN c.max WHEN 'sum' THEN c.sum END AS value
        FROM cells AS c JOIN stat_list AS s ON c.kind = 'numeric' OR NOT s.numeric_only
        UNION ALL
        SELECT c.side, c.kind, c.window_index, c.window_start, c.window_end, c.feature,
            c.version, 'q' || CAST(l.level AS VARCHAR), 7 + l.i, false, c.rows, c.n,
            c.qs[l.i]
        FROM cells AS c CROSS JOIN levels AS l
        WHERE c.kind = 'numeric'
    ),
    learned AS (
        SELECT r.feature, r.version, r.stat, any_value(r.floor_zero) AS floor_zero,
            avg(r.value) AS center, stddev_pop(r.value) AS spread, count(*) AS chunks_
        FROM long AS r
        WHERE r.side = 'reference' AND r.value IS NOT NULL AND NOT isnan(r.value)
        GROUP BY r.feature, r.version, r.stat
    ),
    ranged AS (
        SELECT a.*, coalesce(l.chunks_, 0) AS reference_chunks,
            CASE WHEN l.chunks_ >= 2 THEN CASE WHEN l.floor_zero
                THEN greatest(l.center - k * l.spread, 0.0)
                ELSE l.center - k * l.spread END END AS threshold_low,
            CASE WHEN l.chunks_ >= 2 THEN l.center + k * l.spread END AS threshold_high
        FROM long AS a
        LEFT JOIN learned AS l
          ON l.feature = a.feature AND l.version = a.version AND l.stat = a.stat
        WHERE a.side = 'analysis'
    )
    SELECT r.window_index, r.window_start, r.window_end, r.feature, r.kind,
        nullif(r.version, '') AS version, r.stat,
        evalstore.split_variant(CASE
            WHEN r.stat = 'count' THEN 'rows of the window, NULL and NaN included'
            WHEN r.stat = 'mean' THEN 'mean of the non-NULL, non-NaN values (numpy.nanmean)'
            WHEN r.stat = 'median' THEN 'median (numpy.nanmedian)'
            WHEN r.stat = 'sd' THEN 'sample standard deviation, ddof 1 (pandas Series.std)'
            WHEN r.stat = 'min' THEN 'minimum (numpy.nanmin)'
            WHEN r.stat = 'max' THEN 'maximum (numpy.nanmax)'
            WHEN r.stat = 'sum' THEN 'sum, 0 without values (numpy.nansum)'
            ELSE 'quantile ' || substr(r.stat, 2) || ', linear interpolation (numpy.nanquantile)'
        END, chunk_rows) AS variant,
        r.value, r.threshold_low, r.threshold_high,
        CASE WHEN r.threshold_high IS NULL THEN NULL
            ELSE 'learned: mean +- ' || k || ' sd (ddof 0) of the statistic over '
                || r.reference_chunks || ' reference chunks'
                || CASE WHEN learn_chunks IS NULL THEN ' (cut by the window)'
                        ELSE ' (each series cut into ' || learn_chunks || ')' END
                || CASE WHEN r.floor_zero THEN ', low end floored at 0' ELSE '' END END
            AS threshold_source,
        CASE WHEN r.value IS NULL OR isnan(r.value) OR r.threshold_high IS NULL THEN NULL
             ELSE r.value < r.threshold_low OR r.value > r.threshold_high END AS alert,
        r.n, r.rows, r.reference_chunks,
        CASE
            WHEN r.value IS NULL AND r.n = 0 THEN 'no values in the window (all NULL or NaN)'
            WHEN r.value IS NULL AND r.stat = 'sd' THEN 'sd needs at least 2 values'
            WHEN r.threshold_high IS NULL THEN 'fewer than 2 reference chunks with a value ('
                || r.reference_chunks || '): no alert range'
        END AS reason,
        r.position
    FROM ranged AS r;
COMMENT ON MACRO TABLE evalstore.summary_stats IS
    'Summary statistics per window and feature with alert ranges learned on reference chunks.';
