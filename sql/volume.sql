-- evalstore macros: what landed in a model's tables and how fast labels follow (volume,
-- label coverage, label delay), per window of event time. Conventions and the helpers
-- used here (model_table, window_start, window_end, hours_between): common.sql.

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
