-- evalstore macros: the store's own tables (volume, label coverage, label delay).
--
-- Conventions shared by every file in sql/:
--   * each macro is preceded by a comment block that defines it exactly;
--   * the first parameter is the model name; a model's tables are reached through
--     evalstore.model_table(model, table), the one place that uses query_table;
--   * DuckDB-only constructs live in small helper macros (window_start, window_end,
--     hours_between) so the bodies stay CTEs, joins, CASE and explicit GROUP BY, and
--     transpile with sqlglot;
--   * parameter defaults live in Python, not in the macro headers.

-- evalstore.model_table(model, name) -> the rows of table or view <model>.<name>.
-- Helper: the only macro that reaches a model's schema by name (DuckDB's query_table).
-- The name is qualified with the current catalog (current_database()): a store file
-- called fraud.duckdb opens as catalog "fraud", and DuckDB refuses a bare fraud.<name>
-- as ambiguous between that catalog and the model's schema. Macros run only in the
-- connection's current catalog (a BI tool opens the file as its database, or USEs it).
CREATE OR REPLACE MACRO evalstore.model_table(model, name) AS TABLE
    SELECT * FROM query_table(
        '"' || replace(current_database(), '"', '""') || '"."' || model || '"."' || name || '"');
COMMENT ON MACRO TABLE evalstore.model_table IS
    'Rows of the table or view <model>.<name>; evalstore''s one use of query_table.';

-- evalstore.interval_us(width) -> BIGINT
-- Helper: length of a month-free interval (days, hours, ...) in microseconds.
CREATE OR REPLACE MACRO evalstore.interval_us(width) AS
    epoch_us(TIMESTAMP '1970-01-01' + CAST(width AS INTERVAL));
COMMENT ON MACRO evalstore.interval_us IS
    'Length of a month-free interval such as ''1 day'' in microseconds.';

-- evalstore.window_start(ts, width) -> TIMESTAMPTZ
-- Helper: start of the fixed-width time window holding ts. Windows are aligned as DuckDB's
-- time_bucket aligns them (origin 2000-01-03 00:00 UTC, a Monday: days and shorter widths
-- start at midnight UTC, '7 days' on Mondays; widths with months or years start on the
-- first of a month). Widths without months are computed with integer arithmetic on the
-- epoch in microseconds, which gives time_bucket's result about 7x faster on TIMESTAMPTZ;
-- width is an interval string such as '15 minutes' or '1 day'.
CREATE OR REPLACE MACRO evalstore.window_start(ts, width) AS
    CASE WHEN datepart('year', CAST(width AS INTERVAL)) = 0
              AND datepart('month', CAST(width AS INTERVAL)) = 0
         THEN ts - to_microseconds(
             ((epoch_us(ts) - 946857600000000) % evalstore.interval_us(width)
              + evalstore.interval_us(width)) % evalstore.interval_us(width))
         ELSE time_bucket(CAST(width AS INTERVAL), ts) END;
COMMENT ON MACRO evalstore.window_start IS
    'Start of the fixed-width window (as time_bucket) holding ts; width like ''1 day''.';

-- evalstore.window_end(start, width) -> TIMESTAMPTZ
-- Helper: start + width, added on the UTC calendar. (A plain TIMESTAMPTZ + INTERVAL adds
-- days in the session's time zone, so a '1 day' window would last 23 or 25 hours across a
-- daylight-saving change in a client whose TimeZone is not UTC.)
CREATE OR REPLACE MACRO evalstore.window_end(start, width) AS
    timezone('UTC', timezone('UTC', start) + CAST(width AS INTERVAL));
COMMENT ON MACRO evalstore.window_end IS
    'start + width on the UTC calendar (end of the window beginning at start).';

-- evalstore.hours_between(t0, t1) -> DOUBLE
-- Helper: (t1 - t0) in hours, fractional, negative when t1 precedes t0.
CREATE OR REPLACE MACRO evalstore.hours_between(t0, t1) AS
    (epoch(t1) - epoch(t0)) / 3600.0;
COMMENT ON MACRO evalstore.hours_between IS '(t1 - t0) in fractional hours.';

-- evalstore.volume(model, width)
-- Rows landed per time window, by table and environment:
--   kind         'features' | 'predictions' | 'labels'
--   env          training | validation | serving for features, 'serving' for
--                predictions, NULL for labels
--   window_start, window_end   [start, start + width) of the event time ts
--   rows         number of rows whose ts falls in the window
-- Empty windows do not appear (no row rather than a zero row).
CREATE OR REPLACE MACRO evalstore.volume(model, width) AS TABLE
    WITH landed AS (
        SELECT 'features' AS kind, env, ts FROM evalstore.model_table(model, 'features')
        UNION ALL
        SELECT 'predictions' AS kind, 'serving' AS env, ts
        FROM evalstore.model_table(model, 'predictions')
        UNION ALL
        SELECT 'labels' AS kind, NULL AS env, ts FROM evalstore.model_table(model, 'labels')
    ),
    windowed AS (
        SELECT kind, env, evalstore.window_start(ts, width) AS window_start FROM landed
    )
    SELECT
        model AS model, kind, env, window_start,
        evalstore.window_end(window_start, width) AS window_end,
        count(*) AS rows
    FROM windowed
    GROUP BY kind, env, window_start
    ORDER BY kind, env, window_start;
COMMENT ON MACRO TABLE evalstore.volume IS
    'Rows per time window by kind (features/predictions/labels) and env. Args: model, width.';

-- evalstore.label_coverage(model, width)
-- Share of predictions that have a label, per window of prediction time and version:
--   predictions  number of predictions in the window
--   labeled      number of them whose example has a label (any time up to now)
--   coverage     labeled / predictions, in [0, 1]
-- A window's coverage rises as late labels arrive; compare it with label_delay before
-- reading a drop in performance into an incompletely labeled window.
CREATE OR REPLACE MACRO evalstore.label_coverage(model, width) AS TABLE
    WITH joined AS (
        SELECT
            p.version,
            evalstore.window_start(p.ts, width) AS window_start,
            l.example_key AS labeled_key
        FROM evalstore.model_table(model, 'predictions') AS p
        LEFT JOIN evalstore.model_table(model, 'labels_latest') AS l
            ON l.example_key = p.example_key
    )
    SELECT
        model AS model, version, window_start,
        evalstore.window_end(window_start, width) AS window_end,
        count(*) AS predictions,
        count(labeled_key) AS labeled,
        count(labeled_key) / count(*) AS coverage
    FROM joined
    GROUP BY version, window_start
    ORDER BY version, window_start;
COMMENT ON MACRO TABLE evalstore.label_coverage IS
    'Labeled share of predictions per window of prediction time and version. Args: model, width.';

-- evalstore.label_delay(model, width)
-- How late labels arrive: for each labeled prediction, delay = ts of the example's
-- first label minus ts of the prediction, in hours (corrections do not reset it).
-- Per window of prediction time and version:
--   labeled                        predictions with at least one label
--   delay_mean_hours               arithmetic mean of delay
--   delay_p50_hours, delay_p90_hours   linear-interpolated quantiles (quantile_cont,
--                                  numpy.quantile's default 'linear' method)
--   delay_max_hours                largest delay
-- Windows without any labeled prediction do not appear.
CREATE OR REPLACE MACRO evalstore.label_delay(model, width) AS TABLE
    WITH first_label AS (
        SELECT example_key, min(ts) AS label_ts
        FROM evalstore.model_table(model, 'labels')
        GROUP BY example_key
    ),
    delays AS (
        SELECT
            p.version,
            evalstore.window_start(p.ts, width) AS window_start,
            evalstore.hours_between(p.ts, f.label_ts) AS delay_hours
        FROM evalstore.model_table(model, 'predictions') AS p
        JOIN first_label AS f ON f.example_key = p.example_key
    )
    SELECT
        model AS model, version, window_start,
        evalstore.window_end(window_start, width) AS window_end,
        count(*) AS labeled,
        avg(delay_hours) AS delay_mean_hours,
        quantile_cont(delay_hours, 0.5) AS delay_p50_hours,
        quantile_cont(delay_hours, 0.9) AS delay_p90_hours,
        max(delay_hours) AS delay_max_hours
    FROM delays
    GROUP BY version, window_start
    ORDER BY version, window_start;
COMMENT ON MACRO TABLE evalstore.label_delay IS
    'Label delay (first label ts - prediction ts, hours) per window and version. Args: model, width.';
