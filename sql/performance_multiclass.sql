-- evalstore macros: multiclass performance per window x version x slice, and
-- evalstore.performance, the short form for SQL users of binary and multiclass models.
--
-- Inputs, windows, cells, result columns and interval conventions are described in
-- performance.sql (installed first; its helpers performance_rows, cell_key, label_horizon
-- and f1_se are used here). evalstore.performance calls evalstore.performance_binary from
-- performance_binary.sql, which must be installed before this file (a table macro binds
-- the macros it calls when it is created).

-- evalstore.performance_multiclass(source, model, width, chunk_rows, chunks, since, until,
--     z, as_of, delay_quantile, metrics)
-- Multiclass metrics per window x version x slice (columns: see the top of performance.sql).
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
-- With chunk_rows = 0 (NannyML's chunk split) the variant names the split
-- (evalstore.split_variant).
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
        evalstore.split_variant(CASE v.metric
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
        END, chunk_rows) AS variant,
        CASE
            WHEN v.reason IS NOT NULL THEN NULL
            WHEN v.metric IN ('macro_f1', 'weighted_f1') THEN v.matrix
        END AS stats
    FROM valued AS v;
COMMENT ON MACRO TABLE evalstore.performance_multiclass IS
    'Multiclass metrics per window x version x slice: accuracy, F1 averages, log_loss, per class.';

-- evalstore.performance(model, width)
-- Short form for SQL users (a BI tool, the duckdb shell) of a classification model's
-- performance, with store.performance's defaults: the task's default metrics (binary:
-- not the confusion cells or business_value, asked for by name), the logged
-- decisions (the registered threshold for rows without one), 10 ECE bins, 95% intervals
-- (z = 1.9599639845400536), labels_complete judged with the 0.9 quantile of the label
-- delays at the latest label's time, all of time, time windows of `width` (e.g. '7 days'),
-- no slices. Dispatches on the model's registered
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
            1.9599639845400536, NULL, 0.9, NULL, NULL, NULL, NULL)
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
