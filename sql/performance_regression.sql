-- evalstore macros: regression performance per window x version x slice.
--
-- Inputs, windows, cells, result columns and interval conventions are described in
-- performance.sql (installed first). evalstore.regression_performance is the short form
-- for SQL users.

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
-- With chunk_rows = 0 (NannyML's chunk split) the variant names the split
-- (evalstore.split_variant).
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
        evalstore.split_variant(CASE v.metric
            WHEN 'mae' THEN 'mean |prediction - label|; CI normal (sample sd)'
            WHEN 'mse' THEN 'mean (prediction - label)^2; CI normal (sample sd)'
            WHEN 'rmse' THEN 'sqrt(mse); CI square roots of the mse interval'
            WHEN 'bias' THEN 'mean (prediction - label); CI normal (sample sd)'
            WHEN 'mape' THEN 'mean |prediction - label| / |label| over labels <> 0 (zero '
                || 'targets in n_excluded); CI normal (sample sd)'
            WHEN 'r2' THEN '1 - SSE / SST; CI delta method'
        END, chunk_rows) AS variant,
        CAST(NULL AS DOUBLE[]) AS stats
    FROM valued AS v;
COMMENT ON MACRO TABLE evalstore.performance_regression IS
    'Regression metrics per window x version x slice: mae, mse, rmse, mape, r2, bias.';

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
