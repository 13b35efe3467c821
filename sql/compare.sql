-- evalstore macros: comparing two versions of a model on the same examples (champion /
-- challenger, shadow deployments).
--
-- Input: a relation with the columns of <model>.evaluations (example_id, version, ts,
-- prediction, score, probabilities, label: predictions joined with the latest labels),
-- named by `source`, optionally with a `slice` column (rows are grouped by it; see
-- evalstore.with_slice). Python's store.compare() passes a temporary view restricted to
-- a `where` predicate whose `slice` is a struct of the `by` keys; SQL users pass e.g.
-- 'fraud.evaluations'.
--
-- Version a is the baseline (champion), b the challenger. An example is PAIRED when both
-- versions predicted it (in the same slice); only paired examples are compared. Windows
-- are over a's prediction time: `width` (an interval, windows aligned by
-- evalstore.window_start), or `chunk_rows` paired examples per chunk, or `chunks` equal
-- chunks (ordered by a's ts, example_id), within [since, until) of a's ts (NULL: open).
-- Every difference is b - a (positive accuracy difference: b is more accurate; negative
-- loss difference: b has the smaller loss).
--
-- Result rows (one per window, slice and metric):
--   window_index, window_start, window_end, slice, metric,
--   value            disagreement: the rate; other metrics: the paired difference b - a
--   ci_low, ci_high  interval of value at z (see each metric)
--   value_a, value_b the metric of each version on the same n examples
--   statistic, test  McNemar's test for accuracy, the paired z-test for mean losses
--                    (p-values are added by the Python front-end from scipy)
--   n                examples the metric used
--   n_a_only         accuracy: examples only a got right; n_b_only: only b got right
--   paired           paired examples in the cell; labeled: those with a label
--   reason           why value is NULL, else NULL
--   variant          the exact definition
--
-- Metrics (classification: evalstore.compare_classification):
--   decisions     disagreement and accuracy judge each version's decision: by default
--                 its logged prediction (variant 'decision=logged'; a pair missing one
--                 is left out); for a binary model with `threshold` given (a what-if,
--                 variant 'decision=score>=<threshold>'), score >= threshold is the
--                 positive class and score < threshold the other one, the logged
--                 prediction for a row without a score, as evalstore.performance_binary
--   disagreement  share of paired examples with both decisions non-NULL whose
--                 decisions differ (labels not needed); Wilson score interval
--                 (evalstore.wilson_low / wilson_high)
--   accuracy      on labeled pairs with both predictions non-NULL: a_only = a right and
--                 b wrong, b_only = the reverse; difference (b_only - a_only) / n; Wald
--                 interval of a paired difference of proportions, difference -+ z
--                 sqrt(a_only + b_only - (b_only - a_only)^2 / n) / n (the normal interval
--                 of the mean of d_i = right_b - right_a with the population sd), clipped
--                 to [-1, 1]. McNemar's test on the discordant counts: exact binomial
--                 (statistic min(a_only, b_only), two-sided p = min(1, 2 P(X <= statistic)),
--                 X ~ Binomial(a_only + b_only, 1/2), = scipy.stats.binomtest) when
--                 a_only + b_only < exact_below, else chi-squared with continuity
--                 correction, statistic max(|a_only - b_only| - 1, 0)^2 / (a_only + b_only),
--                 p = scipy.stats.chi2.sf(statistic, 1).
--   log_loss      on labeled pairs where both versions have a probability: per example
--                 loss = -ln p(label), p clipped to [eps, 1 - eps] (eps = 2.220446e-16, as
--                 evalstore.performance_binary); binary from score (p of the positive
--                 class), multiclass from probabilities[label] (0 when absent).
--   brier         (binary) per example (score - y)^2, y = 1 for the positive class.
-- Regression (evalstore.compare_regression):
--   disagreement  share of pairs whose predictions differ beyond numpy.isclose(b, a,
--                 rtol, atol): |b - a| > atol + rtol |a|
--   mae, mse      per example |error| / error^2, error = prediction - label.
-- Mean-loss metrics: d_i = loss_b - loss_a; value = mean(d), interval mean -+ z sd / sqrt(n)
-- (sample sd, n >= 2), statistic = mean / (sd / sqrt(n)) (NULL when sd = 0), test
-- 'paired z'.

-- evalstore.compare_pairs(source, version_a, version_b, width, chunk_rows, chunks, since,
--                         until)
-- The paired examples with their window: window_index (the windows' order), window_start,
-- window_end (time windows: [start, start + width); chunks: [first ts, last ts] of a's
-- predictions in the chunk), example_id, ts (a's), slice, label, prediction_a,
-- prediction_b, score_a, score_b, probabilities_a, probabilities_b.
CREATE OR REPLACE MACRO evalstore.compare_pairs(
    source, version_a, version_b, width, chunk_rows, chunks, since, until
) AS TABLE
    WITH picked AS (
        SELECT e.example_id, e.version, e.ts, e.prediction, e.score, e.probabilities,
               e.label, e.slice
        FROM evalstore.with_slice(source) AS e
        WHERE e.version = version_a OR e.version = version_b
    ),
    paired AS (
        SELECT a.example_id, a.ts, a.slice, a.label,
               a.prediction AS prediction_a, b.prediction AS prediction_b,
               a.score AS score_a, b.score AS score_b,
               a.probabilities AS probabilities_a, b.probabilities AS probabilities_b
        FROM picked AS a
        JOIN picked AS b
          ON b.example_id = a.example_id AND b.slice IS NOT DISTINCT FROM a.slice
         AND b.version = version_b
        WHERE a.version = version_a
          AND (since IS NULL OR a.ts >= CAST(since AS TIMESTAMPTZ))
          AND (until IS NULL OR a.ts < CAST(until AS TIMESTAMPTZ))
    ),
    timed AS (
        SELECT p.*, evalstore.window_start(p.ts, width) AS window_start
        FROM paired AS p WHERE width IS NOT NULL
    ),
    time_windows AS (
        SELECT s.window_start, evalstore.window_end(s.window_start, width) AS window_end,
               row_number() OVER (ORDER BY s.window_start) - 1 AS window_index
        FROM (SELECT DISTINCT window_start FROM timed) AS s
    ),
    ranked AS (
        SELECT p.*, dense_rank() OVER (ORDER BY p.ts, p.example_id) - 1 AS ordinal
        FROM paired AS p WHERE width IS NULL
    ),
    chunked AS (
        SELECT r.*,
            evalstore.chunk_index(r.ordinal, max(r.ordinal) OVER () + 1, chunk_rows, chunks)
                AS window_index
        FROM ranked AS r
    ),
    chunk_bounds AS (
        SELECT window_index, min(ts) AS window_start, max(ts) AS window_end
        FROM chunked GROUP BY window_index
    )
    SELECT w.window_index, w.window_start, w.window_end, t.example_id, t.ts, t.slice,
           t.label, t.prediction_a, t.prediction_b, t.score_a, t.score_b,
           t.probabilities_a, t.probabilities_b
    FROM timed AS t JOIN time_windows AS w ON w.window_start = t.window_start
    UNION ALL
    SELECT c.window_index, b.window_start, b.window_end, c.example_id, c.ts, c.slice,
           c.label, c.prediction_a, c.prediction_b, c.score_a, c.score_b,
           c.probabilities_a, c.probabilities_b
    FROM chunked AS c JOIN chunk_bounds AS b ON b.window_index = c.window_index;
COMMENT ON MACRO TABLE evalstore.compare_pairs IS
    'Examples both versions predicted, with their window (over a''s prediction time). Args: source, version_a, version_b, width, chunk_rows, chunks, since, until.';

-- evalstore.paired_sd(sum_d, sum_dd, n) -> DOUBLE
-- Helper: sample standard deviation (ddof 1) of n paired differences d from their sum and
-- sum of squares, sqrt(max(sum_dd - sum_d^2 / n, 0) / (n - 1)); NULL when n < 2.
CREATE OR REPLACE MACRO evalstore.paired_sd(sum_d, sum_dd, n) AS
    CASE WHEN n > 1 THEN sqrt(greatest(sum_dd - sum_d * sum_d / n, 0.0) / (n - 1)) END;
COMMENT ON MACRO evalstore.paired_sd IS
    'Sample sd (ddof 1) of n differences from their sum and sum of squares; NULL if n < 2.';

-- evalstore.paired_z(sum_d, sum_dd, n) -> DOUBLE
-- Helper: the paired z statistic mean(d) / (sd(d) / sqrt(n)) (evalstore.paired_sd);
-- NULL when n < 2 or sd = 0.
CREATE OR REPLACE MACRO evalstore.paired_z(sum_d, sum_dd, n) AS
    CASE WHEN n > 1 AND evalstore.paired_sd(sum_d, sum_dd, n) > 0
         THEN (sum_d / n) / (evalstore.paired_sd(sum_d, sum_dd, n) / sqrt(n)) END;
COMMENT ON MACRO evalstore.paired_z IS
    'Paired z statistic mean(d) / (sd(d) / sqrt(n)); NULL when n < 2 or sd = 0.';

-- evalstore.what_if_decision(decision, score, threshold, positive_class) -> VARCHAR
-- Helper: a binary row's decision as compare_classification compares it: `decision` as
-- logged when threshold or positive_class is NULL; else '1' (positive class) when
-- score >= threshold, and for a row without a score '1' when decision = positive_class;
-- '0' otherwise; NULL when neither a score nor a decision is there. A label is decided
-- alike with score NULL.
CREATE OR REPLACE MACRO evalstore.what_if_decision(decision, score, threshold, positive_class) AS
    CASE WHEN threshold IS NULL OR positive_class IS NULL THEN decision
         WHEN score IS NOT NULL THEN CASE WHEN score >= threshold THEN '1' ELSE '0' END
         WHEN decision IS NOT NULL
             THEN CASE WHEN decision = positive_class THEN '1' ELSE '0' END
    END;
COMMENT ON MACRO evalstore.what_if_decision IS
    'A decision as logged, or under a binary what-if threshold (1 positive, 0 other).';

-- evalstore.compare_classification(source, version_a, version_b, positive_class, width,
--                                  chunk_rows, chunks, since, until, z, exact_below,
--                                  threshold)
-- Binary and multiclass comparison: metrics disagreement, accuracy, log_loss and (binary,
-- when positive_class is not NULL) brier, as defined in the file header; `threshold`
-- (binary, NULL: the logged predictions) the what-if decision rule. Columns: see the
-- header; `variant` names each definition, and the chunk split when it is NannyML's
-- (chunk_rows = 0, evalstore.split_variant). Cells without paired examples do not
-- appear; a metric without usable pairs has value NULL and a reason.
CREATE OR REPLACE MACRO evalstore.compare_classification(
    source, version_a, version_b, positive_class, width, chunk_rows, chunks, since, until, z,
    exact_below, threshold
) AS TABLE
    WITH decided AS (
        -- d_a, d_b, d_y: the decisions and the label as the accuracy and disagreement
        -- compare them: as logged, or under a binary what-if threshold '1' (positive
        -- class) / '0' (any other)
        SELECT p.*,
            evalstore.what_if_decision(p.prediction_a, p.score_a, threshold, positive_class)
                AS d_a,
            evalstore.what_if_decision(p.prediction_b, p.score_b, threshold, positive_class)
                AS d_b,
            evalstore.what_if_decision(p.label, NULL, threshold, positive_class) AS d_y,
            CASE WHEN threshold IS NULL OR positive_class IS NULL
                     THEN 'decision=logged (the logged predictions)'
                 ELSE 'decision=score>=' || CAST(threshold AS DOUBLE)
                     || ' (what-if: positive class ' || positive_class || ' when score >= '
                     || CAST(threshold AS DOUBLE)
                     || '; rows without a score: the logged prediction)'
            END AS rule
        FROM evalstore.compare_pairs(
            source, version_a, version_b, width, chunk_rows, chunks, since, until) AS p
    ),
    pairs AS (
        SELECT p.*,
               CASE WHEN p.label IS NULL THEN NULL
                    WHEN positive_class IS NOT NULL
                    THEN evalstore.clip_probability(CASE WHEN p.label = positive_class
                                                         THEN p.score_a ELSE 1 - p.score_a END)
                    ELSE evalstore.clip_probability(
                        evalstore.class_probability(p.probabilities_a, p.label)) END AS p_a,
               CASE WHEN p.label IS NULL THEN NULL
                    WHEN positive_class IS NOT NULL
                    THEN evalstore.clip_probability(CASE WHEN p.label = positive_class
                                                         THEN p.score_b ELSE 1 - p.score_b END)
                    ELSE evalstore.clip_probability(
                        evalstore.class_probability(p.probabilities_b, p.label)) END AS p_b,
               CASE WHEN p.label = positive_class THEN 1.0 ELSE 0.0 END AS y
        FROM decided AS p
    ),
    cells AS (
        SELECT window_index, window_start, window_end, slice,
               any_value(rule) AS rule,
               count(*) AS paired,
               sum(CASE WHEN label IS NOT NULL THEN 1 ELSE 0 END) AS labeled,
               sum(CASE WHEN d_a IS NOT NULL AND d_b IS NOT NULL
                        THEN 1 ELSE 0 END) AS n_predicted,
               sum(CASE WHEN d_a <> d_b THEN 1 ELSE 0 END) AS disagreements,
               sum(CASE WHEN d_y IS NOT NULL AND d_a IS NOT NULL
                             AND d_b IS NOT NULL THEN 1 ELSE 0 END) AS n_acc,
               sum(CASE WHEN d_y IS NOT NULL AND d_a = d_y
                             AND d_b IS NOT NULL THEN 1 ELSE 0 END) AS right_a,
               sum(CASE WHEN d_y IS NOT NULL AND d_b = d_y
                             AND d_a IS NOT NULL THEN 1 ELSE 0 END) AS right_b,
               sum(CASE WHEN d_a = d_y AND d_b <> d_y
                        THEN 1 ELSE 0 END) AS a_only,
               sum(CASE WHEN d_b = d_y AND d_a <> d_y
                        THEN 1 ELSE 0 END) AS b_only,
               sum(CASE WHEN label IS NOT NULL AND p_a IS NOT NULL AND p_b IS NOT NULL
                        THEN 1 ELSE 0 END) AS n_ll,
               sum(CASE WHEN label IS NOT NULL AND p_b IS NOT NULL THEN -ln(p_a) END)
                   AS ll_a,
               sum(CASE WHEN label IS NOT NULL AND p_a IS NOT NULL THEN -ln(p_b) END)
                   AS ll_b,
               sum(ln(p_a) - ln(p_b)) AS ll_d,
               sum((ln(p_a) - ln(p_b)) * (ln(p_a) - ln(p_b))) AS ll_dd,
               sum(CASE WHEN positive_class IS NOT NULL AND label IS NOT NULL
                             AND score_a IS NOT NULL AND score_b IS NOT NULL
                        THEN 1 ELSE 0 END) AS n_br,
               sum(CASE WHEN label IS NOT NULL AND score_b IS NOT NULL
                        THEN (score_a - y) * (score_a - y) END) AS br_a,
               sum(CASE WHEN label IS NOT NULL AND score_a IS NOT NULL
                        THEN (score_b - y) * (score_b - y) END) AS br_b,
               sum(CASE WHEN label IS NOT NULL
                        THEN (score_b - y) * (score_b - y) - (score_a - y) * (score_a - y) END)
                   AS br_d,
               sum(CASE WHEN label IS NOT NULL
                        THEN ((score_b - y) * (score_b - y) - (score_a - y) * (score_a - y))
                             * ((score_b - y) * (score_b - y) - (score_a - y) * (score_a - y))
                        END) AS br_dd
        FROM pairs
        GROUP BY window_index, window_start, window_end, slice
    ),
    counted AS (
        SELECT c.*, CAST(c.n_acc AS DOUBLE) AS m,
               CAST(c.a_only + c.b_only AS BIGINT) AS discordant
        FROM cells AS c
    ),
    mean_cells AS (
        SELECT window_index, window_start, window_end, slice, paired, labeled,
               'log_loss' AS metric,
               n_ll AS n, ll_a AS sum_a, ll_b AS sum_b, ll_d AS sum_d, ll_dd AS sum_dd
        FROM counted
        UNION ALL
        SELECT window_index, window_start, window_end, slice, paired, labeled, 'brier', n_br,
               br_a, br_b, br_d, br_dd
        FROM counted WHERE positive_class IS NOT NULL
    )
    SELECT window_index, window_start, window_end, slice, 'disagreement' AS metric,
           CASE WHEN n_predicted > 0 THEN disagreements / n_predicted END AS value,
           evalstore.wilson_low(disagreements, n_predicted, z) AS ci_low,
           evalstore.wilson_high(disagreements, n_predicted, z) AS ci_high,
           CAST(NULL AS DOUBLE) AS value_a, CAST(NULL AS DOUBLE) AS value_b,
           CAST(NULL AS DOUBLE) AS statistic, CAST(NULL AS VARCHAR) AS test,
           CAST(n_predicted AS BIGINT) AS n, CAST(NULL AS BIGINT) AS n_a_only,
           CAST(NULL AS BIGINT) AS n_b_only, CAST(paired AS BIGINT) AS paired,
           CAST(labeled AS BIGINT) AS labeled,
           CASE WHEN n_predicted = 0 THEN 'no pair with both predictions' END AS reason,
           evalstore.split_variant(
               rule || '; share of paired decisions that differ; Wilson interval', chunk_rows)
               AS variant
    FROM counted
    UNION ALL
    SELECT window_index, window_start, window_end, slice, 'accuracy',
           CASE WHEN m > 0 THEN (b_only - a_only) / m END,
           CASE WHEN m > 0 THEN greatest(-1.0, (b_only - a_only) / m
               - z * sqrt(greatest(discordant - (b_only - a_only) * (b_only - a_only) / m, 0.0))
                 / m) END,
           CASE WHEN m > 0 THEN least(1.0, (b_only - a_only) / m
               + z * sqrt(greatest(discordant - (b_only - a_only) * (b_only - a_only) / m, 0.0))
                 / m) END,
           CASE WHEN m > 0 THEN right_a / m END, CASE WHEN m > 0 THEN right_b / m END,
           CASE WHEN m = 0 THEN NULL
                WHEN discordant < exact_below THEN CAST(least(a_only, b_only) AS DOUBLE)
                ELSE greatest(abs(b_only - a_only) - 1.0, 0.0)
                     * greatest(abs(b_only - a_only) - 1.0, 0.0) / discordant END,
           CASE WHEN m = 0 THEN NULL
                WHEN discordant < exact_below THEN 'mcnemar exact'
                ELSE 'mcnemar chi2 corrected' END,
           CAST(n_acc AS BIGINT), CAST(a_only AS BIGINT), CAST(b_only AS BIGINT),
           CAST(paired AS BIGINT), CAST(labeled AS BIGINT),
           CASE WHEN m = 0 THEN 'no labeled pair with both predictions' END,
           evalstore.split_variant(rule || '; accuracy difference b - a on labeled pairs; '
               || 'Wald paired interval; McNemar', chunk_rows)
    FROM counted
    UNION ALL
    SELECT window_index, window_start, window_end, slice, metric,
           CASE WHEN n > 0 THEN sum_d / n END,
           CASE WHEN n > 1 THEN sum_d / n - z * evalstore.paired_sd(sum_d, sum_dd, n) / sqrt(n) END,
           CASE WHEN n > 1 THEN sum_d / n + z * evalstore.paired_sd(sum_d, sum_dd, n) / sqrt(n) END,
           CASE WHEN n > 0 THEN sum_a / n END, CASE WHEN n > 0 THEN sum_b / n END,
           evalstore.paired_z(sum_d, sum_dd, n), 'paired z',
           CAST(n AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
           CAST(paired AS BIGINT), CAST(labeled AS BIGINT),
           CASE WHEN n = 0 THEN 'no labeled pair with both values'
                WHEN n = 1 THEN 'one labeled pair: no interval or test' END,
           evalstore.split_variant(CASE WHEN metric = 'log_loss'
                THEN 'mean log loss difference b - a, p clipped to [eps, 1 - eps]; paired z'
                ELSE 'mean Brier score difference b - a; paired z' END, chunk_rows)
    FROM mean_cells;
COMMENT ON MACRO TABLE evalstore.compare_classification IS
    'Two versions on the same examples: disagreement, paired accuracy (McNemar), log loss and Brier differences per window and slice.';

-- evalstore.compare_regression(source, version_a, version_b, width, chunk_rows, chunks,
--                              since, until, z, atol, rtol)
-- Regression comparison: metrics disagreement (beyond numpy.isclose tolerance), mae and
-- mse differences b - a with paired z intervals, as defined in the file header; the
-- variant names NannyML's chunk split (chunk_rows = 0) as compare_classification's.
CREATE OR REPLACE MACRO evalstore.compare_regression(
    source, version_a, version_b, width, chunk_rows, chunks, since, until, z, atol, rtol
) AS TABLE
    WITH pairs AS (
        SELECT p.*, abs(p.prediction_a - p.label) AS ae_a, abs(p.prediction_b - p.label) AS ae_b
        FROM evalstore.compare_pairs(
            source, version_a, version_b, width, chunk_rows, chunks, since, until) AS p
    ),
    cells AS (
        SELECT window_index, window_start, window_end, slice,
               count(*) AS paired,
               sum(CASE WHEN label IS NOT NULL THEN 1 ELSE 0 END) AS labeled,
               sum(CASE WHEN prediction_a IS NOT NULL AND prediction_b IS NOT NULL
                        THEN 1 ELSE 0 END) AS n_predicted,
               sum(CASE WHEN abs(prediction_b - prediction_a) > atol + rtol * abs(prediction_a)
                        THEN 1 ELSE 0 END) AS disagreements,
               sum(CASE WHEN ae_a IS NOT NULL AND ae_b IS NOT NULL THEN 1 ELSE 0 END) AS n,
               sum(CASE WHEN ae_b IS NOT NULL THEN ae_a END) AS mae_a,
               sum(CASE WHEN ae_a IS NOT NULL THEN ae_b END) AS mae_b,
               sum(ae_b - ae_a) AS mae_d,
               sum((ae_b - ae_a) * (ae_b - ae_a)) AS mae_dd,
               sum(CASE WHEN ae_b IS NOT NULL THEN ae_a * ae_a END) AS mse_a,
               sum(CASE WHEN ae_a IS NOT NULL THEN ae_b * ae_b END) AS mse_b,
               sum(ae_b * ae_b - ae_a * ae_a) AS mse_d,
               sum((ae_b * ae_b - ae_a * ae_a) * (ae_b * ae_b - ae_a * ae_a)) AS mse_dd
        FROM pairs
        GROUP BY window_index, window_start, window_end, slice
    ),
    mean_cells AS (
        SELECT window_index, window_start, window_end, slice, paired, labeled, 'mae' AS metric,
               n, mae_a AS sum_a, mae_b AS sum_b, mae_d AS sum_d, mae_dd AS sum_dd
        FROM cells
        UNION ALL
        SELECT window_index, window_start, window_end, slice, paired, labeled, 'mse', n,
               mse_a, mse_b, mse_d, mse_dd
        FROM cells
    )
    SELECT window_index, window_start, window_end, slice, 'disagreement' AS metric,
           CASE WHEN n_predicted > 0 THEN disagreements / n_predicted END AS value,
           evalstore.wilson_low(disagreements, n_predicted, z) AS ci_low,
           evalstore.wilson_high(disagreements, n_predicted, z) AS ci_high,
           CAST(NULL AS DOUBLE) AS value_a, CAST(NULL AS DOUBLE) AS value_b,
           CAST(NULL AS DOUBLE) AS statistic, CAST(NULL AS VARCHAR) AS test,
           CAST(n_predicted AS BIGINT) AS n, CAST(NULL AS BIGINT) AS n_a_only,
           CAST(NULL AS BIGINT) AS n_b_only, CAST(paired AS BIGINT) AS paired,
           CAST(labeled AS BIGINT) AS labeled,
           CASE WHEN n_predicted = 0 THEN 'no pair with both predictions' END AS reason,
           evalstore.split_variant(
               'share of paired predictions with |b - a| > atol + rtol |a|; Wilson interval',
               chunk_rows) AS variant
    FROM cells
    UNION ALL
    SELECT window_index, window_start, window_end, slice, metric,
           CASE WHEN n > 0 THEN sum_d / n END,
           CASE WHEN n > 1 THEN sum_d / n - z * evalstore.paired_sd(sum_d, sum_dd, n) / sqrt(n) END,
           CASE WHEN n > 1 THEN sum_d / n + z * evalstore.paired_sd(sum_d, sum_dd, n) / sqrt(n) END,
           CASE WHEN n > 0 THEN sum_a / n END, CASE WHEN n > 0 THEN sum_b / n END,
           evalstore.paired_z(sum_d, sum_dd, n), 'paired z',
           CAST(n AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
           CAST(paired AS BIGINT), CAST(labeled AS BIGINT),
           CASE WHEN n = 0 THEN 'no labeled pair with both values'
                WHEN n = 1 THEN 'one labeled pair: no interval or test' END,
           evalstore.split_variant(
               CASE WHEN metric = 'mae' THEN 'mean absolute error difference b - a; paired z'
                    ELSE 'mean squared error difference b - a; paired z' END, chunk_rows)
    FROM mean_cells;
COMMENT ON MACRO TABLE evalstore.compare_regression IS
    'Two regression versions on the same examples: disagreement, MAE and MSE differences per window and slice.';

-- evalstore.compare_versions(model, a, b, width)
-- Short form of evalstore.compare_classification for SQL users (a BI tool, the duckdb
-- shell), with store.compare's defaults: version b of a binary or multiclass `model`
-- against version a on the examples both predicted, time windows of `width` (e.g.
-- '1 day') over a's prediction time, all of time, no slices, every metric of the task
-- (disagreement, accuracy, log_loss, and for binary models brier with a's registered
-- positive class), 95% intervals (z = 1.9599639845400536), McNemar's exact test below 25
-- discordant pairs. Regression models: evalstore.compare_regression_versions (their
-- predictions and labels are numbers). Columns: window_start, window_end, version_a,
-- version_b, metric, value, ci_low, ci_high, value_a, value_b, statistic, test, n,
-- n_a_only, n_b_only, paired, labeled, reason, variant; ordered by window, then metric in
-- the order above. The p-values need scipy (store.compare, `evalstore compare` or the
-- server add them), e.g.
--   SELECT window_start, metric, value, ci_low, ci_high
--   FROM evalstore.compare_versions('fraud', 'v1', 'v2', '7 days')
CREATE OR REPLACE MACRO evalstore.compare_versions(model, a, b, width) AS TABLE
    WITH registered AS (
        SELECT any_value(r.task) AS task, any_value(r.positive_class) AS positive_class
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model AND r.version = a
    )
    SELECT window_start, window_end, a AS version_a, b AS version_b, metric, value, ci_low,
           ci_high, value_a, value_b, statistic, test, n, n_a_only, n_b_only, paired, labeled,
           reason, variant
    FROM evalstore.compare_classification(
        model || '.evaluations', a, b,
        (SELECT g.positive_class FROM registered AS g WHERE g.task = 'binary'), width, NULL,
        NULL, NULL, NULL, 1.9599639845400536, 25, NULL)
    WHERE (SELECT g.task FROM registered AS g) IN ('binary', 'multiclass')
    ORDER BY window_index, list_position(['disagreement', 'accuracy', 'log_loss', 'brier'],
                                         metric);
COMMENT ON MACRO TABLE evalstore.compare_versions IS
    'Binary or multiclass version b against version a on the examples both predicted, per time window, with the Python defaults. Args: model, a, b, width.';

-- evalstore.compare_regression_versions(model, a, b, width)
-- The short form of evalstore.compare_regression, with store.compare's defaults (all of
-- time, no slices, every metric: disagreement beyond numpy.isclose(b, a, rtol=1e-5,
-- atol=1e-8), mae, mse; 95% intervals) and the columns of evalstore.compare_versions,
-- ordered by window, then disagreement, mae, mse, e.g.
--   SELECT window_start, metric, value FROM evalstore.compare_regression_versions(
--       'demand', 'v1', 'v2', '1 day')
CREATE OR REPLACE MACRO evalstore.compare_regression_versions(model, a, b, width) AS TABLE
    SELECT window_start, window_end, a AS version_a, b AS version_b, metric, value, ci_low,
           ci_high, value_a, value_b, statistic, test, n, n_a_only, n_b_only, paired, labeled,
           reason, variant
    FROM evalstore.compare_regression(
        model || '.evaluations', a, b, width, NULL, NULL, NULL, NULL, 1.9599639845400536,
        1e-8, 1e-5)
    ORDER BY window_index, list_position(['disagreement', 'mae', 'mse'], metric);
COMMENT ON MACRO TABLE evalstore.compare_regression_versions IS
    'Regression version b against version a on the examples both predicted, per time window, with the Python defaults. Args: model, a, b, width.';
