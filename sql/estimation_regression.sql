-- evalstore macros: regression performance estimated before labels arrive (DLE), per
-- window x version x slice, beside the realized value where labels exist.
--
-- Inputs, windows, result columns and the final assembly (evalstore.estimation_result)
-- are described in estimation.sql (installed first).

-- evalstore.estimation_regression(source, estimates, model, width, chunk_rows, chunks,
--     since, until, z, as_of, delay_quantile, metrics)
-- DLE (direct loss estimation, NannyML's DLE) for a regression model. `estimates` holds
-- one row per prediction (example_id, version, abs_error, sq_error, sd_abs, sd_sq): the
-- absolute and squared errors predicted by the loss models the Python front-end trained
-- on the labeled reference (features and prediction -> |y - yhat|, (y - yhat)^2), and
-- the reference's sample sd of each loss (constant per version). Over the n predictions
-- of a cell that have an estimate (n_excluded: those without, e.g. no prediction):
--   mae    mean abs_error            band mae -+ z sd_abs / sqrt(n)
--   mse    mean sq_error             band mse -+ z sd_sq / sqrt(n)
--   rmse   sqrt(mse)                 band the square roots of mse's band (se: the delta
--                                    method's sd_sq / (2 rmse sqrt(n)), for `diverged`)
-- (NannyML's DLE band: the reference loss's sd / sqrt(chunk size), as here.) Bands are
-- floored at 0. NULL with a reason: no estimated rows in the cell.
CREATE OR REPLACE MACRO evalstore.estimation_regression(
    source, estimates, model, width, chunk_rows, chunks, since, until, z, as_of,
    delay_quantile, metrics
) AS TABLE
    WITH base AS (
        SELECT w.window_index, w.version, w.slice, w.ts,
            CASE WHEN w.label IS NOT NULL THEN 1 ELSE 0 END AS has_label,
            e.abs_error, e.sq_error, e.sd_abs, e.sd_sq
        FROM evalstore.performance_rows(source, width, chunk_rows, chunks, since, until) AS w
        LEFT JOIN evalstore.relation(estimates) AS e
          ON e.example_id = w.example_id AND e.version = w.version
    ),
    cells AS (
        SELECT b.window_index, b.version, b.slice, min(b.ts) AS first_ts, max(b.ts) AS last_ts,
            count(*) AS predictions, count(CASE WHEN b.has_label = 1 THEN 1 END) AS labeled,
            count(b.abs_error) AS n,
            count(CASE WHEN b.abs_error IS NOT NULL AND b.has_label = 1 THEN 1 END) AS n_labeled,
            avg(b.abs_error) AS mae, avg(b.sq_error) AS mse,
            max(b.sd_abs) AS sd_abs, max(b.sd_sq) AS sd_sq
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
    metric_list AS (
        SELECT m.metric, m.position FROM (VALUES ('mae', 1), ('mse', 2), ('rmse', 3))
            AS m(metric, position)
        WHERE metrics IS NULL OR list_contains(metrics, m.metric)
    ),
    estimated AS (
        SELECT c.*, w.window_start, w.window_end, m.metric, m.position,
            CASE WHEN c.n = 0 THEN 'no predictions with an estimated loss in this cell '
                || '(no loss model for this version, or no prediction): nothing to estimate'
            END AS reason,
            CASE WHEN c.n > 0 THEN CASE m.metric
                WHEN 'mae' THEN c.mae WHEN 'mse' THEN c.mse WHEN 'rmse' THEN sqrt(c.mse)
            END END AS value,
            CASE WHEN c.n > 0 THEN CASE m.metric
                WHEN 'mae' THEN c.sd_abs / sqrt(c.n)
                WHEN 'mse' THEN c.sd_sq / sqrt(c.n)
                WHEN 'rmse' THEN c.sd_sq / (2 * nullif(sqrt(c.mse), 0) * sqrt(c.n))
            END END AS se,
            CASE WHEN c.n > 0 THEN CASE m.metric
                WHEN 'rmse' THEN sqrt(greatest(c.mse - z * c.sd_sq / sqrt(c.n), 0.0))
                ELSE greatest(CASE m.metric WHEN 'mae' THEN c.mae ELSE c.mse END
                    - z * CASE m.metric WHEN 'mae' THEN c.sd_abs ELSE c.sd_sq END
                    / sqrt(c.n), 0.0)
            END END AS band_low,
            CASE WHEN c.n > 0 THEN CASE m.metric
                WHEN 'rmse' THEN sqrt(c.mse + z * c.sd_sq / sqrt(c.n))
                WHEN 'mae' THEN c.mae + z * c.sd_abs / sqrt(c.n)
                ELSE c.mse + z * c.sd_sq / sqrt(c.n)
            END END AS band_high
        FROM cells AS c
        JOIN windows AS w ON w.window_index = c.window_index
        CROSS JOIN metric_list AS m
    ),
    estimation_regression_rows AS (
        SELECT e.window_index, e.window_start, e.window_end, e.version, e.slice, e.metric,
            NULL AS "class", e.value, e.band_low AS ci_low, e.band_high AS ci_high, e.se,
            e.n, e.predictions, e.labeled, e.n_labeled, e.reason,
            'DLE (loss model on the reference: features and prediction -> '
                || CASE e.metric WHEN 'mae' THEN '|y - prediction|'
                        ELSE '(y - prediction)^2' END
                || '); band reference loss sd / sqrt(n)' AS variant,
            true AS comparable, e.position
        FROM estimated AS e
    ),
    estimation_regression_realized AS (
        SELECT r.window_index, r.version, r.slice, r.metric, NULL AS "class", r.value,
               r.ci_low, r.ci_high, r.labels_due, r.labels_complete
        FROM evalstore.performance_regression(source, model, width, chunk_rows, chunks,
            since, until, z, as_of, delay_quantile, metrics) AS r
    )
    SELECT * FROM evalstore.estimation_result('estimation_regression_rows',
        'estimation_regression_realized', model, z, as_of, delay_quantile);
COMMENT ON MACRO TABLE evalstore.estimation_regression IS
    'DLE estimate of regression metrics per window x version x slice, beside the realized value.';
