-- evalstore macros: binary classification performance per window x version x slice.
--
-- Inputs, windows, cells, result columns and interval conventions are described in
-- performance.sql (installed first; its helpers performance_rows, cell_key, label_horizon
-- and f1_se are used here). Multiclass metrics and evalstore.performance, the short form
-- for SQL users, are in performance_multiclass.sql (installed after this file).

-- evalstore.performance_binary(source, model, threshold, width, chunk_rows, chunks, since,
--     until, ece_bins, z, as_of, delay_quantile, metrics, normalize_confusion_matrix,
--     business_value_matrix, normalize_business_value)
-- Binary classification metrics per window x version x slice (columns: see the top of
-- performance.sql). y = 1 when the label is the model's positive class (registry), else 0.
-- The decision yhat of the threshold metrics: with threshold NULL (variant
-- 'decision=logged'), the logged prediction (yhat = 1 when it is the positive class), as
-- sklearn's accuracy_score(y, y_pred) scores the deployed decision; a row without a
-- logged prediction uses score >= the version's registered threshold. With a threshold
-- given (a what-if, variant 'decision=score>=<threshold>'), score >= threshold; a row
-- without a score uses its logged prediction. A row without a score is left out of the
-- score metrics. Rows without a label are unlabeled (label_coverage); rows with neither
-- score nor prediction are left out (n_excluded).
-- With tp, fp, fn, tn counted over labeled rows with a yhat:
--   accuracy           (tp + tn) / n                  sklearn accuracy_score
--   precision          tp / (tp + fp)                 precision_score; NULL without
--                                                     predicted positives
--   recall             tp / (tp + fn)                 recall_score; NULL without positives
--   specificity        tn / (tn + fp)                 from confusion_matrix; NULL without
--                                                     negatives
--   f1                 2 tp / (2 tp + fp + fn)        f1_score; NULL when tp+fp+fn = 0
--                                                     (sklearn returns 0 with a warning)
--   tp, fp, fn, tn     the confusion-matrix cells (sklearn confusion_matrix(y, yhat,
--                      labels=[0, 1]).ravel() = tn, fp, fn, tp), by
--                      normalize_confusion_matrix (NannyML's parameter, the values of
--                      sklearn's normalize=): NULL the counts; 'all' each / n; 'true' each
--                      / its true class's rows (tp, fn / (tp + fn); tn, fp / (tn + fp));
--                      'pred' each / its predicted class's rows (tp, fp / (tp + fp); tn, fn
--                      / (tn + fn)); NULL with a reason when that denominator is 0
--                      (sklearn gives 0 there)
--   business_value     v_tn tn + v_fp fp + v_fn fn + v_tp tp with business_value_matrix =
--                      [[v_tn, v_fp], [v_fn, v_tp]] (NannyML's layout, rows the true class
--                      0 / 1, columns the decision 0 / 1, as confusion_matrix); divided by
--                      n when normalize_business_value = 'per_prediction' (the mean value
--                      of a decision); NULL with a reason without a matrix
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
-- Intervals: Wilson for accuracy (x = tp + tn of n), precision, recall, specificity and
-- the normalised confusion cells (x the cell of its denominator; counts have none);
-- business_value: normal, n (mean +- z sd / sqrt n) with sd the sample sd of the
-- per-row values (the total: n times the mean's interval; NULL for n < 2);
-- normal (mean +- z sd / sqrt n, sample sd, NULL for n < 2) for log_loss and brier;
-- DeLong (1988) for roc_auc: A +- z sqrt(S10 / n_pos + S01 / n_neg), S10 / S01 the sample
-- variances of the positives' / negatives' placement values, clipped to [0, 1], NULL when
-- a class has fewer than 2 rows; logit interval for average_precision (Boyd, Eng & Page
-- 2013): expit(logit(AP) -+ z / sqrt(n_pos AP (1 - AP))), NULL when AP is 0 or 1.
-- f1: F1 +- z evalstore.f1_se(tp, fp, fn) (delta method), clipped to [0, 1].
-- ece carries stats = [n_b..., sum(y - s)_b...,
-- sum((y - s)^2)_b...] over its non-empty bins. `metrics` (a list; NULL = the default
-- ones: all but tp, fp, fn, tn and business_value, which are asked for by name) skips
-- the work of metrics not asked for. With chunk_rows = 0 (NannyML's chunk split) the
-- variant names the split (evalstore.split_variant).
CREATE OR REPLACE MACRO evalstore.performance_binary(
    source, model, threshold, width, chunk_rows, chunks, since, until, ece_bins, z,
    as_of, delay_quantile, metrics, normalize_confusion_matrix, business_value_matrix,
    normalize_business_value
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
            CASE WHEN w.score IS NOT NULL AND (threshold IS NOT NULL OR w.prediction IS NULL)
                     THEN CASE WHEN w.score >= g.cutoff THEN 1 ELSE 0 END
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
    -- the business value matrix [[v_tn, v_fp], [v_fn, v_tp]] (NULLs without one; the outer
    -- casts keep them DOUBLE where DuckDB 1.4 types an element of a NULL list as VARCHAR)
    worth AS (
        SELECT CAST(CAST(business_value_matrix AS DOUBLE[][])[1][1] AS DOUBLE) AS v_tn,
               CAST(CAST(business_value_matrix AS DOUBLE[][])[1][2] AS DOUBLE) AS v_fp,
               CAST(CAST(business_value_matrix AS DOUBLE[][])[2][1] AS DOUBLE) AS v_fn,
               CAST(CAST(business_value_matrix AS DOUBLE[][])[2][2] AS DOUBLE) AS v_tp
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
            evalstore.add_hours(w.window_end, h.delay_hours) AS labels_due, h.as_of,
            v.v_tn * c.tn + v.v_fp * c.fp + v.v_fn * c.fn + v.v_tp * c.tp AS bv_total,
            v.v_tn * v.v_tn * c.tn + v.v_fp * v.v_fp * c.fp + v.v_fn * v.v_fn * c.fn
                + v.v_tp * v.v_tp * c.tp AS bv_squares,
            '[[' || v.v_tn || ', ' || v.v_fp || '], [' || v.v_fn || ', ' || v.v_tp || ']]'
                AS bv_matrix
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
        CROSS JOIN worth AS v
    ),
    -- DeLong variance of the AUC: S10 / n_pos + S01 / n_neg with
    -- S10 = (n_pos sum pos j^2 - (sum pos j)^2) / (n_pos 4 n_neg^2 (n_pos - 1)) and
    -- S01 = (n_neg sum neg k^2 - (sum neg k)^2) / (n_neg 4 n_pos^2 (n_neg - 1))
    finished AS (
        SELECT s.*,
            CASE WHEN s.n_pos > 1 AND s.n_neg > 1 THEN sqrt(greatest(
                s.ss10 / (s.p_ * 4.0 * s.q_ * s.q_ * (s.p_ - 1)) / s.p_
                + s.ss01 / (s.q_ * 4.0 * s.p_ * s.p_ * (s.q_ - 1)) / s.q_, 0.0)) END AS auc_se,
            CASE s.cutoff_source
                WHEN 'given' THEN 'decision=score>=' || s.cutoff
                    || ' (what-if: positive class ' || s.positive_class
                    || ' when score >= ' || s.cutoff
                    || '; rows without a score: the logged prediction)'
                ELSE 'decision=logged (positive class ' || s.positive_class
                    || ' as logged; rows without a logged prediction: score >= '
                    || s.cutoff || ', the registered threshold)'
            END AS rule,
            -- business value per row: mean and sample sd
            s.bv_total / s.n_class AS bv_mean,
            CASE WHEN s.n_class > 1 THEN sqrt(greatest(
                s.bv_squares - s.bv_total * s.bv_total / s.n_class, 0.0) / (s.n_class - 1))
            END AS bv_sd
        FROM scored AS s
    ),
    metric_list AS (
        SELECT m.metric, m.family FROM (VALUES
            ('accuracy', 'class', true), ('precision', 'class', true),
            ('recall', 'class', true), ('f1', 'class', true), ('specificity', 'class', true),
            ('roc_auc', 'score', true), ('average_precision', 'score', true),
            ('log_loss', 'score', true), ('brier', 'score', true), ('ece', 'score', true),
            ('tp', 'class', false), ('fp', 'class', false), ('fn', 'class', false),
            ('tn', 'class', false), ('business_value', 'class', false)
        ) AS m(metric, family, is_default)
        WHERE (metrics IS NULL AND m.is_default) OR list_contains(metrics, m.metric)
    ),
    -- a confusion cell (tp, fp, fn, tn) as x of the denominator d its normalisation asks
    -- for (the count itself: d NULL)
    cells_of AS (
        SELECT f.*, m.metric, m.family,
            CASE m.metric WHEN 'tp' THEN f.tp WHEN 'fp' THEN f.fp WHEN 'fn' THEN f.fn
                          WHEN 'tn' THEN f.tn END AS cm_x,
            CASE WHEN m.metric NOT IN ('tp', 'fp', 'fn', 'tn') THEN NULL
                 WHEN normalize_confusion_matrix = 'all' THEN f.n_class
                 WHEN normalize_confusion_matrix = 'true'
                     THEN CASE WHEN m.metric IN ('tp', 'fn') THEN f.tp + f.fn
                               ELSE f.tn + f.fp END
                 WHEN normalize_confusion_matrix = 'pred'
                     THEN CASE WHEN m.metric IN ('tp', 'fp') THEN f.tp + f.fp
                               ELSE f.tn + f.fn END
            END AS cm_d
        FROM finished AS f CROSS JOIN metric_list AS m
    ),
    valued AS (
        SELECT f.*,
            CASE WHEN f.family = 'class' THEN f.n_class ELSE f.n_score END AS n,
            CASE
                WHEN f.labeled = 0 THEN 'no labeled predictions in this cell (label coverage 0)'
                WHEN f.family = 'class' AND f.n_class = 0
                    THEN 'no labeled rows with a score or a prediction'
                WHEN f.family = 'score' AND f.n_score = 0 THEN 'no labeled rows with a score'
                WHEN f.metric = 'precision' AND f.tp + f.fp = 0
                    THEN 'no predicted positives: precision undefined'
                WHEN f.metric = 'recall' AND f.tp + f.fn = 0
                    THEN 'no positive labels: recall undefined'
                WHEN f.metric = 'specificity' AND f.tn + f.fp = 0
                    THEN 'no negative labels: specificity undefined'
                WHEN f.metric = 'f1' AND f.tp + f.fp + f.fn = 0
                    THEN 'no positive labels and no predicted positives: f1 undefined'
                WHEN f.metric = 'roc_auc' AND f.n_pos = 0
                    THEN 'single-class cell (no positive labels): ROC AUC undefined'
                WHEN f.metric = 'roc_auc' AND f.n_neg = 0
                    THEN 'single-class cell (no negative labels): ROC AUC undefined'
                WHEN f.metric = 'average_precision' AND f.n_pos = 0
                    THEN 'no positive labels: average precision undefined'
                WHEN f.cm_d = 0 AND normalize_confusion_matrix = 'true'
                    THEN 'no ' || CASE WHEN f.metric IN ('tp', 'fn') THEN 'positive'
                                       ELSE 'negative' END
                         || ' labels: ' || f.metric || ' normalised by the true class undefined'
                WHEN f.cm_d = 0 AND normalize_confusion_matrix = 'pred'
                    THEN 'no predicted ' || CASE WHEN f.metric IN ('tp', 'fp') THEN 'positives'
                                                 ELSE 'negatives' END
                         || ': ' || f.metric || ' normalised by the predicted class undefined'
                WHEN f.metric = 'business_value' AND f.bv_matrix IS NULL
                    THEN 'no business_value_matrix given'
            END AS reason
        FROM cells_of AS f
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
            WHEN 'business_value' THEN CASE WHEN normalize_business_value = 'per_prediction'
                THEN v.bv_mean ELSE v.bv_total END
            ELSE CASE WHEN v.cm_d IS NULL THEN v.cm_x ELSE v.cm_x / v.cm_d END
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
            WHEN 'business_value' THEN (v.bv_mean - z * v.bv_sd / sqrt(v.n_class))
                * CASE WHEN normalize_business_value = 'per_prediction' THEN 1 ELSE v.n_class END
            WHEN 'ece' THEN NULL
            ELSE evalstore.wilson_low(v.cm_x, v.cm_d, z)
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
            WHEN 'business_value' THEN (v.bv_mean + z * v.bv_sd / sqrt(v.n_class))
                * CASE WHEN normalize_business_value = 'per_prediction' THEN 1 ELSE v.n_class END
            WHEN 'ece' THEN NULL
            ELSE evalstore.wilson_high(v.cm_x, v.cm_d, z)
        END END AS ci_high,
        v.n, v.labeled - v.n AS n_excluded, v.predictions, v.labeled,
        v.labeled / v.predictions AS label_coverage,
        v.labels_due, coalesce(v.labels_due <= v.as_of, false) AS labels_complete,
        v.reason,
        evalstore.split_variant(CASE v.metric
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
            WHEN 'business_value' THEN v.rule || '; business value sum of confusion counts x '
                || coalesce(v.bv_matrix, '(no matrix)') || ' ([[tn, fp], [fn, tp]])'
                || CASE WHEN normalize_business_value = 'per_prediction'
                        THEN ' / n (per prediction)' ELSE ' (total)' END
                || '; CI normal (sample sd of the per-row values)'
            ELSE v.rule || '; ' || v.metric || CASE normalize_confusion_matrix
                WHEN 'all' THEN ' / n (confusion_matrix normalize=all); CI Wilson score'
                WHEN 'true' THEN ' / rows of its true class (confusion_matrix normalize=true); '
                    || 'CI Wilson score'
                WHEN 'pred' THEN ' / rows of its predicted class (confusion_matrix '
                    || 'normalize=pred); CI Wilson score'
                ELSE ' count (confusion_matrix); no CI' END
        END, chunk_rows) AS variant,
        CASE v.metric WHEN 'ece' THEN v.ece_stats END AS stats
    FROM valued AS v;
COMMENT ON MACRO TABLE evalstore.performance_binary IS
    'Binary metrics per window x version x slice (accuracy ... roc_auc, average_precision, ece).';
