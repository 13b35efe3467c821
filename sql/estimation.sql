-- evalstore macros: performance estimated before labels arrive (CBPE and DLE), per window x
-- version x slice, beside the realized value where labels exist.
--
-- Inputs as performance.sql (a `source` relation with the columns of <model>.evaluations,
-- optionally a `slice`; windows over prediction time by width, chunk_rows or chunks;
-- [since, until)), plus a relation the Python front-end fits on the labeled reference
-- (store.estimate_performance; evalstore.metrics.estimation): the calibration pieces
-- (CBPE) or each prediction's estimated loss (DLE). Result columns: those of the
-- performance macros (window_index, window_start, window_end, version, slice, metric,
-- class, value, ci_low, ci_high, n, n_excluded, predictions, labeled, label_coverage,
-- labels_due, labels_complete, reason, variant) where value is the ESTIMATE over every
-- scored prediction of the cell (labeled or not) and [ci_low, ci_high] its sampling band
-- (value -+ z se: where the realized value over all n rows falls when the reference's
-- score-label relationship holds), plus
--   se                the band's standard error,
--   realized, realized_ci_low, realized_ci_high   the performance macro's value and
--                     interval over the labeled rows (NULL without labels), joined on
--                     (window, version, slice, metric): one implementation of each
--                     realized metric,
--   n_labeled         estimated rows that carry a label,
--   diverged          true when the realized value lies outside value -+ z se
--                     sqrt(n / n_labeled) (the band widened to the labeled rows' count,
--                     taking them as a random subset): the assumption (calibration and
--                     error model learned on the reference still hold, i.e. no concept
--                     drift) fails here; NULL without a realized value (and for
--                     confusion counts before every row is labeled).
-- The ASOF join (calibration) is DuckDB-only. The three macros (DLE for regression in
-- estimation_regression.sql) share their final assembly (evalstore.estimation_result: the
-- realized join, labels due/complete, diverged).

-- evalstore.hanley_mcneil_se(auc, n_pos, n_neg) -> DOUBLE
-- Standard error of a ROC AUC A from Hanley & McNeil (1982): with Q1 = A / (2 - A),
-- Q2 = 2 A^2 / (1 + A), Var = (A (1 - A) + (n_pos - 1)(Q1 - A^2) + (n_neg - 1)(Q2 - A^2))
-- / (n_pos n_neg) (counts may be fractional: expected counts). NULL when n_pos or n_neg
-- is 0; floored at 0.
CREATE OR REPLACE MACRO evalstore.hanley_mcneil_se(auc, n_pos, n_neg) AS
    CASE WHEN n_pos > 0 AND n_neg > 0 THEN sqrt(greatest(
        (auc * (1 - auc) + (n_pos - 1) * (auc / (2 - auc) - auc * auc)
         + (n_neg - 1) * (2 * auc * auc / (1 + auc) - auc * auc)) / (n_pos * n_neg), 0.0)) END;
COMMENT ON MACRO evalstore.hanley_mcneil_se IS
    'Hanley-McNeil (1982) standard error of a ROC AUC. Args: auc, n_pos, n_neg.';

-- evalstore.estimation_result(estimated, realized, model, z, as_of, delay_quantile)
-- Helper: the final assembly the three estimation macros share. `estimated` and
-- `realized` name relations of the calling macro (its CTEs, read by name through
-- evalstore.relation): `estimated` has one row per window x version x slice x metric x
-- class with columns window_index, window_start, window_end, version, slice, metric,
-- class, value, ci_low, ci_high, se, n, predictions, labeled, n_labeled, reason, variant,
-- comparable (false where `diverged` must stay NULL though both values exist) and
-- position; `realized` the performance macro's rows (window_index, version, slice,
-- metric, class, value, ci_low, ci_high, labels_due, labels_complete), joined on
-- (window, version, slice, metric, class). Adds n_excluded = predictions - n,
-- label_coverage = labeled / predictions, labels_due and labels_complete (the realized
-- row's, else from evalstore.label_horizon(model, delay_quantile, as_of) as
-- performance does), realized, realized_ci_low, realized_ci_high, and diverged =
-- |realized - value| > z se sqrt(n / n_labeled), NULL when either value or se is NULL,
-- no row is labeled or the row is not comparable.
CREATE OR REPLACE MACRO evalstore.estimation_result(
    estimated, realized, model, z, as_of, delay_quantile
) AS TABLE
    WITH horizon AS (SELECT * FROM evalstore.label_horizon(model, delay_quantile, as_of))
    SELECT e.window_index, e.window_start, e.window_end, e.version, e.slice, e.metric,
        CAST(e."class" AS VARCHAR) AS "class", e.value, e.ci_low, e.ci_high, e.se, e.n,
        e.predictions - e.n AS n_excluded, e.predictions, e.labeled,
        e.labeled / e.predictions AS label_coverage, e.n_labeled,
        coalesce(r.labels_due, evalstore.add_hours(e.window_end, h.delay_hours)) AS labels_due,
        coalesce(r.labels_complete,
                 evalstore.add_hours(e.window_end, h.delay_hours) <= h.as_of, false)
            AS labels_complete,
        e.reason, e.variant,
        r.value AS realized, r.ci_low AS realized_ci_low, r.ci_high AS realized_ci_high,
        CASE WHEN r.value IS NULL OR e.value IS NULL OR e.se IS NULL OR e.n_labeled = 0
                  OR NOT e.comparable THEN NULL
             ELSE abs(r.value - e.value) > z * e.se * sqrt(e.n / e.n_labeled)
        END AS diverged,
        e.position
    FROM evalstore.relation(estimated) AS e
    CROSS JOIN horizon AS h
    LEFT JOIN evalstore.relation(realized) AS r ON r.window_index = e.window_index
         AND r.version = e.version AND r.slice IS NOT DISTINCT FROM e.slice
         AND r.metric = e.metric AND r."class" IS NOT DISTINCT FROM e."class";
COMMENT ON MACRO TABLE evalstore.estimation_result IS
    'Helper: estimated rows beside the realized ones, labels due/complete and diverged.';

-- evalstore.expected_roc_areas(scored)
-- Helper of CBPE's estimated ROC AUC (estimation_binary, estimation_multiclass). `scored`
-- names a relation of the calling macro (read through evalstore.relation) with columns
-- window_index, version, slice, class_name, s (the raw score that orders the curve) and p
-- (the calibrated probability: the row's expected positive; rows with p NULL are left
-- out). Per window x version x slice x class_name, the ROC curve of the cumulative
-- expected positives and negatives by descending s, tied scores one step (one
-- trapezoid): area = sum over distinct s of q_g (p_above + p_g / 2), with p_g, q_g the
-- tie group's sums of p and 1 - p and p_above the sum of p over higher scores; pos = sum
-- p, neg = sum (1 - p). The estimated AUC is area / (pos neg).
CREATE OR REPLACE MACRO evalstore.expected_roc_areas(scored) AS TABLE
    WITH score_groups AS (
        SELECT x.window_index, x.version, x.slice, x.class_name, x.s, sum(x.p) AS gp,
            sum(1 - x.p) AS gq
        FROM evalstore.relation(scored) AS x
        WHERE x.p IS NOT NULL
        GROUP BY x.window_index, x.version, x.slice, x.class_name, x.s
    ),
    curve AS (
        SELECT g.window_index, g.version, g.slice, g.class_name, g.gp, g.gq,
            coalesce(sum(g.gp) OVER (
                PARTITION BY g.window_index, g.version, g.slice, g.class_name
                ORDER BY g.s DESC NULLS LAST
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS above
        FROM score_groups AS g
    )
    SELECT a.window_index, a.version, a.slice, a.class_name,
        sum(a.gq * (a.above + a.gp / 2)) AS area, sum(a.gp) AS pos, sum(a.gq) AS neg
    FROM curve AS a
    GROUP BY a.window_index, a.version, a.slice, a.class_name;
COMMENT ON MACRO TABLE evalstore.expected_roc_areas IS
    'Helper: CBPE area under the expected ROC curve per window x version x slice x class.';

-- evalstore.expected_confusion_value(metric, tp, fp, fn, tn) -> DOUBLE: a rate or count
-- of an expected confusion matrix (tp, fp, fn, tn: sums of probabilities, see
-- estimation_binary), shared by estimation_binary and estimation_multiclass (per class):
--   precision tp / (tp + fp); recall tp / (tp + fn); specificity tn / (tn + fp);
--   f1 2 tp / (2 tp + fp + fn); tp, fp, fn, tn the count.
-- NULL when the rate's denominator is 0 (undefined), or for any other metric.
CREATE OR REPLACE MACRO evalstore.expected_confusion_value(metric, tp, fp, fn, tn) AS
    CASE metric
        WHEN 'precision' THEN CASE WHEN tp + fp > 0 THEN tp / (tp + fp) END
        WHEN 'recall' THEN CASE WHEN tp + fn > 0 THEN tp / (tp + fn) END
        WHEN 'specificity' THEN CASE WHEN tn + fp > 0 THEN tn / (tn + fp) END
        WHEN 'f1' THEN CASE WHEN 2 * tp + fp + fn > 0 THEN 2 * tp / (2 * tp + fp + fn) END
        WHEN 'tp' THEN tp WHEN 'fp' THEN fp WHEN 'fn' THEN fn WHEN 'tn' THEN tn
    END;
COMMENT ON MACRO evalstore.expected_confusion_value IS
    'A rate (precision, recall, specificity, f1) or count (tp, fp, fn, tn) of an expected confusion matrix; NULL when undefined.';

-- evalstore.expected_confusion_se(metric, tp, fp, fn, tn, v1, v0) -> DOUBLE: the standard
-- error of expected_confusion_value, with v1 = Var tp = Var fp and v0 = Var fn = Var tn
-- (Poisson-binomial counts):
--   precision    sqrt(v1) / (tp + fp)  (exact)
--   recall       sqrt(fn^2 v1 + tp^2 v0) / (tp + fn)^2  (delta method)
--   specificity  sqrt(fp^2 v0 + tn^2 v1) / (tn + fp)^2  (delta method)
--   f1           2 sqrt((tp + fp + fn)^2 v1 + tp^2 v0) / (2 tp + fp + fn)^2  (delta method)
--   tp, fp sqrt(v1); fn, tn sqrt(v0)  (exact)
-- NULL where the value is NULL.
CREATE OR REPLACE MACRO evalstore.expected_confusion_se(metric, tp, fp, fn, tn, v1, v0) AS
    CASE metric
        WHEN 'precision' THEN CASE WHEN tp + fp > 0 THEN sqrt(v1) / (tp + fp) END
        WHEN 'recall' THEN CASE WHEN tp + fn > 0
            THEN sqrt(fn * fn * v1 + tp * tp * v0) / ((tp + fn) * (tp + fn)) END
        WHEN 'specificity' THEN CASE WHEN tn + fp > 0
            THEN sqrt(fp * fp * v0 + tn * tn * v1) / ((tn + fp) * (tn + fp)) END
        WHEN 'f1' THEN CASE WHEN 2 * tp + fp + fn > 0
            THEN 2 * sqrt((tp + fp + fn) * (tp + fp + fn) * v1 + tp * tp * v0)
                / ((2 * tp + fp + fn) * (2 * tp + fp + fn)) END
        WHEN 'tp' THEN sqrt(v1) WHEN 'fp' THEN sqrt(v1)
        WHEN 'fn' THEN sqrt(v0) WHEN 'tn' THEN sqrt(v0)
    END;
COMMENT ON MACRO evalstore.expected_confusion_se IS
    'The standard error of expected_confusion_value: exact for precision and counts, delta method for recall, specificity and f1 (Poisson-binomial counts, variances v1 of tp and fp, v0 of fn and tn).';

-- evalstore.estimation_binary(source, calibration, model, threshold, width, chunk_rows,
--     chunks, since, until, z, as_of, delay_quantile, metrics)
-- CBPE (confidence-based performance estimation, NannyML's CBPE) for a binary model.
-- p = the calibrated probability of the positive class: the row's score mapped through
-- its version's piece of `calibration` (columns version, x_lo, x_hi, p_lo, p_hi; a score s
-- in [x_lo, x_hi) gets p_lo + (p_hi - p_lo) (s - x_lo) / (x_hi - x_lo), constant on the
-- unbounded end pieces), fitted per version by isotonic regression on the labeled
-- reference. yhat is the decision of performance_binary (the logged prediction, else
-- score >= the registered threshold; with `threshold` given, score >= threshold). Over
-- the n scored predictions of a cell (labels not needed; rows without a score are left
-- out, n_excluded):
--   tp = sum p yhat, fp = sum (1 - p) yhat, fn = sum p (1 - yhat), tn = sum (1 - p)(1 - yhat)
--                      the expected confusion matrix (metrics tp, fp, fn, tn)
--   accuracy           (tp + tn) / n
--   precision          tp / (tp + fp); recall tp / (tp + fn); specificity tn / (tn + fp)
--   f1                 2 tp / (2 tp + fp + fn)
--   roc_auc            NannyML's estimate: rows sorted by descending raw score, the ROC
--                      curve of the cumulative expected positives (sum p) and negatives
--                      (sum 1 - p), area by trapezoids; tied scores form one step, so
--                      = sum over distinct scores g of q_g (p_above + p_g / 2) / (P N),
--                      p_g, q_g the group's sums of p and 1 - p, P = sum p, N = sum 1 - p
-- Bands: conditional on the scores, labels are independent Bernoulli(p), so the
-- confusion counts are Poisson-binomial: Var tp = Var fp = v1 = sum p (1 - p) yhat and
-- Var fn = Var tn = v0 = sum p (1 - p) (1 - yhat); accuracy's se sqrt(v1 + v0) / n
-- (exact), the other rates' and the counts' from evalstore.expected_confusion_se (exact
-- for counts and precision, delta method for recall, specificity and f1); Hanley &
-- McNeil (1982) for roc_auc with n_pos = P, n_neg = N. Bands of rates are clipped to
-- [0, 1], of counts floored at 0. NULL with a reason: no scored rows, a version
-- without calibration, precision without predicted positives, recall, f1 or roc_auc
-- without expected positives (P = 0), specificity or roc_auc without expected negatives.
CREATE OR REPLACE MACRO evalstore.estimation_binary(
    source, calibration, model, threshold, width, chunk_rows, chunks, since, until, z,
    as_of, delay_quantile, metrics
) AS TABLE
    WITH registry AS (
        SELECT r.version, r.positive_class,
               coalesce(CAST(threshold AS DOUBLE), r.threshold) AS cutoff,
               CASE WHEN threshold IS NULL THEN 'registered' ELSE 'given' END AS cutoff_source
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    ),
    pieces AS (
        SELECT k.version, k.x_lo, k.x_hi, k.p_lo, k.p_hi FROM evalstore.relation(calibration) AS k
    ),
    fitted AS (SELECT DISTINCT k.version FROM pieces AS k),
    base AS (
        SELECT w.window_index, w.version, w.slice, w.ts, w.score AS s,
            CASE WHEN w.label IS NOT NULL THEN 1 ELSE 0 END AS has_label,
            CASE WHEN w.score IS NOT NULL AND (threshold IS NOT NULL OR w.prediction IS NULL)
                     THEN CASE WHEN w.score >= g.cutoff THEN 1 ELSE 0 END
                 WHEN w.prediction IS NOT NULL THEN
                     CASE WHEN w.prediction = g.positive_class THEN 1 ELSE 0 END
            END AS yhat
        FROM evalstore.performance_rows(source, width, chunk_rows, chunks, since, until) AS w
        LEFT JOIN registry AS g ON g.version = w.version
    ),
    calibrated AS (
        SELECT b.*,
            CASE WHEN b.s IS NULL OR isnan(b.s) THEN NULL
                 WHEN isinf(k.x_lo) OR isinf(k.x_hi) OR k.x_hi = k.x_lo THEN k.p_lo
                 ELSE k.p_lo + (k.p_hi - k.p_lo) * (b.s - k.x_lo) / (k.x_hi - k.x_lo)
            END AS p
        FROM base AS b
        ASOF LEFT JOIN pieces AS k ON k.version = b.version AND b.s >= k.x_lo
    ),
    cells AS (
        SELECT c.window_index, c.version, c.slice, min(c.ts) AS first_ts, max(c.ts) AS last_ts,
            count(*) AS predictions, count(CASE WHEN c.has_label = 1 THEN 1 END) AS labeled,
            count(c.p) AS n,
            count(CASE WHEN c.p IS NOT NULL AND c.has_label = 1 THEN 1 END) AS n_labeled,
            sum(c.p * c.yhat) AS tp, sum((1 - c.p) * c.yhat) AS fp,
            sum(c.p * (1 - c.yhat)) AS fn, sum((1 - c.p) * (1 - c.yhat)) AS tn,
            sum(c.p * (1 - c.p) * c.yhat) AS v1, sum(c.p * (1 - c.p) * (1 - c.yhat)) AS v0,
            sum(c.p) AS pos, sum(1 - c.p) AS neg
        FROM calibrated AS c
        GROUP BY c.window_index, c.version, c.slice
    ),
    windows AS (
        SELECT c.window_index,
            evalstore.cell_window_start(c.window_index, width, min(c.first_ts)) AS window_start,
            evalstore.cell_window_end(c.window_index, width, max(c.last_ts)) AS window_end
        FROM cells AS c
        GROUP BY c.window_index
    ),
    estimation_binary_scored AS (
        SELECT c.window_index, c.version, c.slice, CAST(NULL AS VARCHAR) AS class_name, c.s,
            c.p
        FROM calibrated AS c
        WHERE metrics IS NULL OR list_contains(metrics, 'roc_auc')
    ),
    areas AS (SELECT * FROM evalstore.expected_roc_areas('estimation_binary_scored')),
    metric_list AS (
        SELECT m.metric, m.kind, m.position FROM (VALUES
            ('accuracy', 'rate', 1), ('precision', 'rate', 2), ('recall', 'rate', 3),
            ('f1', 'rate', 4), ('specificity', 'rate', 5), ('roc_auc', 'rate', 6),
            ('tp', 'count', 7), ('fp', 'count', 8), ('fn', 'count', 9), ('tn', 'count', 10)
        ) AS m(metric, kind, position)
        WHERE metrics IS NULL OR list_contains(metrics, m.metric)
    ),
    valued AS (
        SELECT c.*, w.window_start, w.window_end, m.metric, m.kind, m.position,
            a.area / (c.pos * c.neg) AS auc,
            g.positive_class, g.cutoff, g.cutoff_source,
            CASE
                WHEN f.version IS NULL THEN 'no calibration for this version (no labeled '
                    || 'reference rows with a score): not estimated'
                WHEN c.n = 0 THEN 'no scored predictions in this cell: nothing to estimate'
                WHEN m.metric = 'precision' AND c.tp + c.fp = 0
                    THEN 'no predicted positives: precision undefined'
                WHEN m.metric IN ('recall', 'f1') AND c.pos = 0
                    THEN 'no expected positives (calibrated p = 0 on every row): '
                        || m.metric || ' undefined'
                WHEN m.metric = 'specificity' AND c.neg = 0
                    THEN 'no expected negatives (calibrated p = 1 on every row): specificity undefined'
                WHEN m.metric = 'roc_auc' AND (c.pos = 0 OR c.neg = 0)
                    THEN 'expected single-class cell: ROC AUC undefined'
            END AS reason
        FROM cells AS c
        JOIN windows AS w ON w.window_index = c.window_index
        CROSS JOIN metric_list AS m
        LEFT JOIN areas AS a ON a.window_index = c.window_index AND a.version = c.version
             AND a.slice IS NOT DISTINCT FROM c.slice
        LEFT JOIN registry AS g ON g.version = c.version
        LEFT JOIN fitted AS f ON f.version = c.version
    ),
    estimated AS (
        SELECT v.*,
            CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
                WHEN 'accuracy' THEN (v.tp + v.tn) / v.n
                WHEN 'roc_auc' THEN v.auc
                ELSE evalstore.expected_confusion_value(v.metric, v.tp, v.fp, v.fn, v.tn)
            END END AS value,
            CASE WHEN v.reason IS NOT NULL THEN NULL ELSE CASE v.metric
                WHEN 'accuracy' THEN sqrt(v.v1 + v.v0) / v.n
                WHEN 'roc_auc' THEN evalstore.hanley_mcneil_se(v.auc, v.pos, v.neg)
                ELSE evalstore.expected_confusion_se(v.metric, v.tp, v.fp, v.fn, v.tn, v.v1, v.v0)
            END END AS se,
            CASE v.cutoff_source
                WHEN 'given' THEN 'decision=score>=' || v.cutoff
                ELSE 'decision=logged (rows without one: score >= ' || v.cutoff || ')'
            END AS rule
        FROM valued AS v
    ),
    estimation_binary_rows AS (
        SELECT e.window_index, e.window_start, e.window_end, e.version, e.slice, e.metric,
            NULL AS "class", e.value,
            CASE WHEN e.kind = 'rate' THEN evalstore.at_least(e.value - z * e.se, 0.0)
                 ELSE greatest(e.value - z * e.se, 0.0) END AS ci_low,
            CASE WHEN e.kind = 'rate' THEN evalstore.at_most(e.value + z * e.se, 1.0)
                 ELSE e.value + z * e.se END AS ci_high,
            e.se, e.n, e.predictions, e.labeled, e.n_labeled, e.reason,
            'CBPE (isotonic calibration on the reference); ' || CASE e.metric
                WHEN 'roc_auc' THEN 'ROC curve of expected counts by raw score (NannyML)'
                    || '; band Hanley-McNeil'
                ELSE e.rule || CASE WHEN e.kind = 'count' THEN '; expected count; band '
                        || 'Poisson-binomial'
                    ELSE '; expected confusion matrix; band delta method (Poisson-binomial '
                        || 'counts)' END
            END AS variant,
            -- an expected count is compared only once every row is labeled
            NOT (e.kind = 'count' AND e.n_labeled < e.n) AS comparable,
            e.position
        FROM estimated AS e
    ),
    estimation_binary_realized AS (
        SELECT r.window_index, r.version, r.slice, r.metric, NULL AS "class", r.value,
               r.ci_low, r.ci_high, r.labels_due, r.labels_complete
        FROM evalstore.performance_binary(source, model, threshold, width, chunk_rows, chunks,
            since, until, 10, z, as_of, delay_quantile, metrics, NULL, NULL, NULL) AS r
    )
    SELECT * FROM evalstore.estimation_result('estimation_binary_rows',
        'estimation_binary_realized', model, z, as_of, delay_quantile);
COMMENT ON MACRO TABLE evalstore.estimation_binary IS
    'CBPE estimate of binary metrics per window x version x slice, beside the realized value.';

-- evalstore.estimation_multiclass(source, calibration, model, width, chunk_rows, chunks,
--     since, until, z, as_of, delay_quantile, metrics)
-- CBPE for a multiclass model (NannyML's multiclass CBPE). For each registered class c,
-- the row's stored probability of c (evalstore.class_probability) is calibrated one-vs-rest
-- by its version's and class's piece of `calibration` (columns version, class_name, x_lo,
-- x_hi, p_lo, p_hi; as in estimation_binary), then the calibrated probabilities of a row
-- are divided by their sum (1/K each when the sum is 0), as NannyML does: p_c. Over the
-- n rows of a cell with a probability map and a logged prediction yhat (the others are
-- n_excluded), per class c:
--   tp_c = sum p_c [yhat = c], fp_c = sum (1 - p_c) [yhat = c], fn_c = sum p_c [yhat <> c]
--   precision, recall, f1 (column "class")   tp_c / (tp_c + fp_c), tp_c / (tp_c + fn_c),
--                 2 tp_c / (2 tp_c + fp_c + fn_c)
--   tn_c = sum (1 - p_c) [yhat <> c]
--   accuracy = micro_f1   sum_c tp_c / n (the expected share of correct predictions)
--   macro_f1     mean over the registered classes of f1_c (a class without expected
--                positives or predictions has no f1 and is left out of the mean)
--   weighted_f1  sum_c (tp_c + fn_c) f1_c / sum_c (tp_c + fn_c) (expected support weights)
--   specificity  per class (column "class") tn_c / (tn_c + fp_c); the row with class NULL
--                is their mean over the classes that have one (macro, as NannyML)
--   roc_auc      per class (column "class") the one-vs-rest estimate of estimation_binary
--                with p_c as the expected positives and the class's raw (uncalibrated)
--                probability as the score, tied probabilities one step; the row with
--                class NULL is their mean over the classes that have one (NannyML's
--                multiclass CBPE ROC AUC: the macro average of one-vs-rest AUCs)
--   tp, fp, fn, tn        per class (column "class"): the expected counts tp_c ... tn_c
-- performance_multiclass has no roc_auc, specificity or counts: their realized columns
-- and diverged are NULL.
-- Bands: per class, as estimation_binary's precision, recall, f1, specificity, counts
-- and roc_auc (Hanley-McNeil with n_pos = sum p_c, n_neg = sum 1 - p_c) with v1_c = sum
-- p_c (1 - p_c) [yhat = c] and v0_c = sum p_c (1 - p_c) [yhat <> c]; accuracy se =
-- sqrt(sum_c v1_c) / n (exact: each row is right with probability p_yhat); macro_f1,
-- weighted_f1 and the class-NULL specificity and roc_auc combine the classes' variances
-- with their weights, leaving out the covariances between classes (an approximation).
CREATE OR REPLACE MACRO evalstore.estimation_multiclass(
    source, calibration, model, width, chunk_rows, chunks, since, until, z, as_of,
    delay_quantile, metrics
) AS TABLE
    WITH registered AS (
        SELECT DISTINCT unnest(r.classes) AS class_name
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    ),
    pieces AS (
        SELECT k.version, k.class_name, k.x_lo, k.x_hi, k.p_lo, k.p_hi
        FROM evalstore.relation(calibration) AS k
    ),
    fitted AS (SELECT DISTINCT k.version FROM pieces AS k),
    base AS (
        SELECT w.window_index, w.version, w.slice, w.ts, w.example_id, w.probabilities,
            CAST(w.prediction AS VARCHAR) AS yhat,
            CASE WHEN w.label IS NOT NULL THEN 1 ELSE 0 END AS has_label,
            w.probabilities IS NOT NULL AND w.prediction IS NOT NULL
                AND EXISTS (SELECT 1 FROM fitted AS f WHERE f.version = w.version) AS usable
        FROM evalstore.performance_rows(source, width, chunk_rows, chunks, since, until) AS w
    ),
    long_rows AS (
        SELECT b.window_index, b.version, b.slice, b.example_id, b.yhat, k.class_name,
            evalstore.class_probability(b.probabilities, k.class_name) AS s
        FROM base AS b CROSS JOIN registered AS k
        WHERE b.usable
    ),
    calibrated AS (
        SELECT l.*,
            CASE WHEN l.s IS NULL OR isnan(l.s) THEN 0.0
                 WHEN isinf(k.x_lo) OR isinf(k.x_hi) OR k.x_hi = k.x_lo THEN k.p_lo
                 ELSE k.p_lo + (k.p_hi - k.p_lo) * (l.s - k.x_lo) / (k.x_hi - k.x_lo)
            END AS q
        FROM long_rows AS l
        ASOF LEFT JOIN pieces AS k ON k.version = l.version AND k.class_name = l.class_name
            AND l.s >= k.x_lo
    ),
    normalized AS (
        SELECT c.window_index, c.version, c.slice, c.yhat, c.class_name, c.s,
            CASE WHEN sum(c.q) OVER r > 0 THEN c.q / sum(c.q) OVER r
                 ELSE 1.0 / count(*) OVER r END AS p
        FROM calibrated AS c
        WINDOW r AS (PARTITION BY c.window_index, c.version, c.slice, c.example_id)
    ),
    per_class AS (
        SELECT x.window_index, x.version, x.slice, x.class_name,
            sum(CASE WHEN x.yhat = x.class_name THEN x.p ELSE 0 END) AS tp,
            sum(CASE WHEN x.yhat = x.class_name THEN 1 - x.p ELSE 0 END) AS fp,
            sum(CASE WHEN x.yhat = x.class_name THEN 0 ELSE x.p END) AS fn,
            sum(CASE WHEN x.yhat = x.class_name THEN 0 ELSE 1 - x.p END) AS tn,
            sum(CASE WHEN x.yhat = x.class_name THEN x.p * (1 - x.p) ELSE 0 END) AS v1,
            sum(CASE WHEN x.yhat = x.class_name THEN 0 ELSE x.p * (1 - x.p) END) AS v0
        FROM normalized AS x
        GROUP BY x.window_index, x.version, x.slice, x.class_name
    ),
    -- one-vs-rest ROC curve per class, by the class's raw probability
    estimation_multiclass_scored AS (
        SELECT x.window_index, x.version, x.slice, x.class_name, x.s, x.p
        FROM normalized AS x
        WHERE metrics IS NULL OR list_contains(metrics, 'roc_auc')
    ),
    areas AS (SELECT * FROM evalstore.expected_roc_areas('estimation_multiclass_scored')),
    class_values AS (
        SELECT c.*,
            evalstore.expected_confusion_value('specificity', c.tp, c.fp, c.fn, c.tn)
                AS specificity_,
            evalstore.expected_confusion_se('specificity', c.tp, c.fp, c.fn, c.tn, c.v1, c.v0)
                AS specificity_se,
            CASE WHEN a.pos > 0 AND a.neg > 0 THEN a.area / (a.pos * a.neg) END AS auc_,
            CASE WHEN a.pos > 0 AND a.neg > 0 THEN evalstore.hanley_mcneil_se(
                a.area / (a.pos * a.neg), a.pos, a.neg) END AS auc_se,
            evalstore.expected_confusion_value('precision', c.tp, c.fp, c.fn, c.tn)
                AS precision_,
            evalstore.expected_confusion_se('precision', c.tp, c.fp, c.fn, c.tn, c.v1, c.v0)
                AS precision_se,
            evalstore.expected_confusion_value('recall', c.tp, c.fp, c.fn, c.tn) AS recall_,
            evalstore.expected_confusion_se('recall', c.tp, c.fp, c.fn, c.tn, c.v1, c.v0)
                AS recall_se,
            evalstore.expected_confusion_value('f1', c.tp, c.fp, c.fn, c.tn) AS f1_,
            evalstore.expected_confusion_se('f1', c.tp, c.fp, c.fn, c.tn, c.v1, c.v0) AS f1_se
        FROM per_class AS c
        LEFT JOIN areas AS a ON a.window_index = c.window_index AND a.version = c.version
             AND a.slice IS NOT DISTINCT FROM c.slice AND a.class_name = c.class_name
    ),
    averages AS (
        SELECT c.window_index, c.version, c.slice,
            sum(c.tp) AS correct, sum(c.v1) AS v_correct,
            avg(c.f1_) AS macro_f1, sqrt(sum(c.f1_se * c.f1_se)) / count(c.f1_) AS macro_f1_se,
            sum((c.tp + c.fn) * c.f1_) / sum(CASE WHEN c.f1_ IS NOT NULL THEN c.tp + c.fn END)
                AS weighted_f1,
            sqrt(sum((c.tp + c.fn) * (c.tp + c.fn) * c.f1_se * c.f1_se))
                / sum(CASE WHEN c.f1_ IS NOT NULL THEN c.tp + c.fn END) AS weighted_f1_se,
            avg(c.specificity_) AS macro_specificity,
            sqrt(sum(c.specificity_se * c.specificity_se)) / count(c.specificity_)
                AS macro_specificity_se,
            avg(c.auc_) AS macro_auc,
            sqrt(sum(c.auc_se * c.auc_se)) / count(c.auc_) AS macro_auc_se
        FROM class_values AS c
        GROUP BY c.window_index, c.version, c.slice
    ),
    cells AS (
        SELECT b.window_index, b.version, b.slice, min(b.ts) AS first_ts, max(b.ts) AS last_ts,
            count(*) AS predictions,
            count(CASE WHEN b.has_label = 1 THEN 1 END) AS labeled,
            count(CASE WHEN b.usable THEN 1 END) AS n,
            count(CASE WHEN b.usable AND b.has_label = 1 THEN 1 END) AS n_labeled
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
        SELECT m.metric, m.per_class, m.kind, m.position FROM (VALUES
            ('accuracy', false, 'rate', 1), ('macro_f1', false, 'rate', 2),
            ('micro_f1', false, 'rate', 3), ('weighted_f1', false, 'rate', 4),
            ('precision', true, 'rate', 5), ('recall', true, 'rate', 6), ('f1', true, 'rate', 7),
            ('specificity', false, 'rate', 8), ('specificity', true, 'rate', 8),
            ('roc_auc', false, 'rate', 9), ('roc_auc', true, 'rate', 9),
            ('tp', true, 'count', 10), ('fp', true, 'count', 11), ('fn', true, 'count', 12),
            ('tn', true, 'count', 13)
        ) AS m(metric, per_class, kind, position)
        WHERE metrics IS NULL OR list_contains(metrics, m.metric)
    ),
    rows_ AS (
        SELECT c.*, m.metric, m.kind, m.position, NULL AS class_name,
            CASE m.metric WHEN 'macro_f1' THEN a.macro_f1 WHEN 'weighted_f1' THEN a.weighted_f1
                 WHEN 'specificity' THEN a.macro_specificity WHEN 'roc_auc' THEN a.macro_auc
                 ELSE a.correct / nullif(c.n, 0) END AS raw_value,
            CASE m.metric WHEN 'macro_f1' THEN a.macro_f1_se
                 WHEN 'weighted_f1' THEN a.weighted_f1_se
                 WHEN 'specificity' THEN a.macro_specificity_se WHEN 'roc_auc' THEN a.macro_auc_se
                 ELSE sqrt(a.v_correct) / nullif(c.n, 0) END AS raw_se
        FROM cells AS c
        CROSS JOIN metric_list AS m
        LEFT JOIN averages AS a ON a.window_index = c.window_index AND a.version = c.version
             AND a.slice IS NOT DISTINCT FROM c.slice
        WHERE NOT m.per_class
        UNION ALL BY NAME
        SELECT c.*, m.metric, m.kind, m.position, k.class_name,
            CASE m.metric WHEN 'precision' THEN v.precision_ WHEN 'recall' THEN v.recall_
                 WHEN 'specificity' THEN v.specificity_ WHEN 'roc_auc' THEN v.auc_
                 WHEN 'tp' THEN v.tp WHEN 'fp' THEN v.fp WHEN 'fn' THEN v.fn
                 WHEN 'tn' THEN v.tn ELSE v.f1_ END AS raw_value,
            CASE m.metric WHEN 'precision' THEN v.precision_se WHEN 'recall' THEN v.recall_se
                 WHEN 'specificity' THEN v.specificity_se WHEN 'roc_auc' THEN v.auc_se
                 WHEN 'f1' THEN v.f1_se
                 ELSE evalstore.expected_confusion_se(m.metric, v.tp, v.fp, v.fn, v.tn, v.v1, v.v0)
                 END AS raw_se
        FROM cells AS c
        CROSS JOIN metric_list AS m
        CROSS JOIN registered AS k
        LEFT JOIN class_values AS v ON v.window_index = c.window_index
             AND v.version = c.version AND v.slice IS NOT DISTINCT FROM c.slice
             AND v.class_name = k.class_name
        WHERE m.per_class
    ),
    estimated AS (
        SELECT x.*, w.window_start, w.window_end,
            CASE
                WHEN f.version IS NULL THEN 'no calibration for this version (no labeled '
                    || 'reference rows with probabilities): not estimated'
                WHEN x.n = 0 THEN 'no predictions with probabilities and a logged prediction '
                    || 'in this cell: nothing to estimate'
                WHEN x.raw_value IS NULL AND x.metric = 'precision'
                    THEN 'class never predicted in this cell: precision undefined'
                WHEN x.raw_value IS NULL AND x.metric = 'recall'
                    THEN 'no expected positives of this class: recall undefined'
                WHEN x.raw_value IS NULL AND x.metric = 'specificity' AND x.class_name IS NULL
                    THEN 'no class with expected negatives: specificity undefined'
                WHEN x.raw_value IS NULL AND x.metric = 'specificity'
                    THEN 'no expected negatives of this class: specificity undefined'
                WHEN x.raw_value IS NULL AND x.metric = 'roc_auc' AND x.class_name IS NULL
                    THEN 'no class with both expected positives and negatives: ROC AUC '
                        || 'undefined'
                WHEN x.raw_value IS NULL AND x.metric = 'roc_auc'
                    THEN 'expected single-class cell for this class (one against the rest): '
                        || 'ROC AUC undefined'
                WHEN x.raw_value IS NULL
                    THEN 'no expected positives or predictions: ' || x.metric || ' undefined'
            END AS reason
        FROM rows_ AS x
        JOIN windows AS w ON w.window_index = x.window_index
        LEFT JOIN fitted AS f ON f.version = x.version
    ),
    estimation_multiclass_rows AS (
        SELECT e.window_index, e.window_start, e.window_end, e.version, e.slice, e.metric,
            e.class_name AS "class",
            CASE WHEN e.reason IS NULL THEN e.raw_value END AS value,
            CASE WHEN e.reason IS NOT NULL THEN NULL
                 WHEN e.kind = 'rate' THEN evalstore.at_least(e.raw_value - z * e.raw_se, 0.0)
                 ELSE greatest(e.raw_value - z * e.raw_se, 0.0) END AS ci_low,
            CASE WHEN e.reason IS NOT NULL THEN NULL
                 WHEN e.kind = 'rate' THEN evalstore.at_most(e.raw_value + z * e.raw_se, 1.0)
                 ELSE e.raw_value + z * e.raw_se END AS ci_high,
            CASE WHEN e.reason IS NULL THEN e.raw_se END AS se,
            e.n, e.predictions, e.labeled, e.n_labeled, e.reason,
            'CBPE (isotonic calibration on the reference, one-vs-rest, rows renormalised); '
                || CASE WHEN e.metric = 'roc_auc' THEN 'ROC curve of expected counts by raw '
                        || 'probability, one-vs-rest (NannyML); band Hanley-McNeil'
                        || CASE WHEN e.class_name IS NULL THEN '; macro average' ELSE '' END
                   WHEN e.kind = 'count' THEN 'decision=logged; expected count; band '
                        || 'Poisson-binomial'
                   ELSE 'decision=logged; expected confusion matrix; band delta method '
                        || '(Poisson-binomial counts)'
                        || CASE WHEN e.metric = 'specificity' AND e.class_name IS NULL
                                THEN '; macro average' ELSE '' END
                   END
                || CASE WHEN e.metric IN ('macro_f1', 'weighted_f1')
                          OR (e.metric IN ('specificity', 'roc_auc') AND e.class_name IS NULL)
                        THEN ', classes taken as independent' ELSE '' END AS variant,
            NOT (e.kind = 'count' AND e.n_labeled < e.n) AS comparable, e.position
        FROM estimated AS e
    ),
    estimation_multiclass_realized AS (
        SELECT r.window_index, r.version, r.slice, r.metric, r."class", r.value, r.ci_low,
               r.ci_high, r.labels_due, r.labels_complete
        FROM evalstore.performance_multiclass(source, model, width, chunk_rows, chunks, since,
            until, z, as_of, delay_quantile, metrics) AS r
    )
    SELECT * FROM evalstore.estimation_result('estimation_multiclass_rows',
        'estimation_multiclass_realized', model, z, as_of, delay_quantile);
COMMENT ON MACRO TABLE evalstore.estimation_multiclass IS
    'CBPE estimate of multiclass metrics per window x version x slice, beside the realized value.';
