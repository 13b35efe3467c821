-- evalstore macros: worst-slice discovery (the SQL half of store.worst_slices).
--
-- A slice is a set of rows defined by one feature's value (or quantile bin) or by a pair
-- of them. For a metric that is a mean of per-row outcomes x (a proportion such as
-- accuracy, or a mean loss such as brier), a slice's value and its test against the
-- rest of the rows follow from three sufficient statistics per slice: n, the mean of x
-- and M2 = sum (x - mean)^2. The Python front-end (evalstore/metrics/slices.py) counts them for
-- every slice of a level (single features, then pairs) in one GROUP BY GROUPING SETS
-- pass over evalstore.slice_outcomes, passes them to evalstore.slice_tests, and adds
-- p-values (scipy), the Benjamini-Hochberg correction, ranking and the predicates.
-- Non-decomposable metrics (roc_auc, average_precision, f1, ece, r2) are not searched:
-- their value on a slice does not follow from per-row outcomes, and a test of "slice
-- vs rest" for them would need a bootstrap per candidate slice.

-- evalstore.slice_outcomes(source, model, metric, threshold, business_value_matrix)
-- The rows of `source` (a relation with the columns of <model>.evaluations, e.g. a
-- temporary view of them with slice-code columns added) with x, each row's outcome for
-- `metric`, NULL when the row does not count for the metric (unlabeled, no prediction,
-- outside the metric's denominator). With y = 1 when the label is the version's positive
-- class (registry) and yhat the decision exactly as evalstore.performance_binary takes it:
-- with threshold NULL the logged prediction (yhat = 1 when it is the positive class),
-- score >= the version's registered threshold for rows without a logged prediction; with
-- a threshold given (a what-if) score >= threshold, the logged prediction for rows
-- without a score:
--   accuracy      binary: yhat = y (labeled rows with a yhat); multiclass / others:
--                 CAST(prediction AS VARCHAR) = CAST(label AS VARCHAR)      (1 or 0)
--   precision     y, over rows with yhat = 1                                 (binary)
--   recall        yhat, over rows with y = 1                                 (binary)
--   specificity   1 - yhat, over rows with y = 0                             (binary)
--   brier         (score - y)^2, over labeled rows with a score              (binary)
--   log_loss      -ln p(label) with p clipped to [eps, 1 - eps], eps = 2.220446049250313e-16:
--                 binary p = score (y = 1) or 1 - score (y = 0); multiclass p =
--                 probabilities[label] (0 when absent)
--   mae, mse      |e|, e^2 with e = prediction - label                       (regression)
--   mape          |e| / |label| over labels <> 0                             (regression)
--   business_value  business_value_matrix[y + 1][yhat + 1], the value of the row's cell of
--                 [[v_tn, v_fp], [v_fn, v_tp]] (NannyML's layout), over labeled rows with
--                 a yhat                                                     (binary)
-- The mean of x over a set of rows is the metric of that set (as performance computes it;
-- business_value: performance's normalize_business_value='per_prediction').
-- Each row also carries `variant`, the definition scored (the same for every row): for
-- the binary decision metrics (accuracy, precision, recall, specificity, business_value)
-- the decision rule as performance_binary names it ('decision=logged (...)' or
-- 'decision=score>=<threshold> (what-if: ...)'), else the outcome's definition.
CREATE OR REPLACE MACRO evalstore.slice_outcomes(
    source, model, metric, threshold, business_value_matrix
) AS TABLE
    WITH registry AS (
        SELECT r.version, r.task, r.positive_class,
               coalesce(CAST(threshold AS DOUBLE), r.threshold) AS cutoff,
               CASE WHEN threshold IS NOT NULL
                   THEN 'decision=score>=' || coalesce(CAST(threshold AS DOUBLE), r.threshold)
                       || ' (what-if: positive class ' || r.positive_class
                       || ' when score >= ' || coalesce(CAST(threshold AS DOUBLE), r.threshold)
                       || '; rows without a score: the logged prediction)'
                   ELSE 'decision=logged (positive class ' || r.positive_class
                       || ' as logged; rows without a logged prediction: score >= '
                       || r.threshold || ', the registered threshold)'
               END AS rule
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    ),
    coded AS (
        SELECT e.*, g.task AS task_, g.rule AS rule_,
            CASE WHEN e.label IS NULL THEN NULL
                 WHEN e.label = g.positive_class THEN 1 ELSE 0 END AS y_,
            CASE WHEN e.score IS NOT NULL AND (threshold IS NOT NULL OR e.prediction IS NULL)
                     THEN CASE WHEN e.score >= g.cutoff THEN 1 ELSE 0 END
                 WHEN e.prediction IS NOT NULL THEN
                     CASE WHEN e.prediction = g.positive_class THEN 1 ELSE 0 END
            END AS yhat_,
            TRY_CAST(e.prediction AS DOUBLE) - TRY_CAST(e.label AS DOUBLE) AS e_
        FROM evalstore.relation(source) AS e
        LEFT JOIN registry AS g ON g.version = e.version
    )
    SELECT c.* EXCLUDE (task_, rule_, y_, yhat_, e_),
        CAST(CASE metric
            WHEN 'accuracy' THEN CASE
                WHEN c.task_ = 'binary' THEN CASE
                    WHEN c.y_ IS NOT NULL AND c.yhat_ IS NOT NULL
                        THEN CASE WHEN c.y_ = c.yhat_ THEN 1 ELSE 0 END END
                WHEN c.label IS NOT NULL AND c.prediction IS NOT NULL THEN CASE
                    WHEN CAST(c.prediction AS VARCHAR) = CAST(c.label AS VARCHAR) THEN 1
                    ELSE 0 END END
            WHEN 'precision' THEN CASE WHEN c.yhat_ = 1 AND c.y_ IS NOT NULL THEN c.y_ END
            WHEN 'recall' THEN CASE WHEN c.y_ = 1 AND c.yhat_ IS NOT NULL THEN c.yhat_ END
            WHEN 'specificity' THEN CASE WHEN c.y_ = 0 AND c.yhat_ IS NOT NULL THEN 1 - c.yhat_ END
            WHEN 'brier' THEN CASE WHEN c.y_ IS NOT NULL AND c.score IS NOT NULL
                THEN (c.score - c.y_) * (c.score - c.y_) END
            WHEN 'log_loss' THEN CASE
                WHEN c.task_ = 'binary' THEN CASE WHEN c.y_ IS NOT NULL AND c.score IS NOT NULL
                    THEN evalstore.log_loss_term(
                        CASE WHEN c.y_ = 1 THEN c.score ELSE 1 - c.score END)
                    END
                WHEN c.label IS NOT NULL AND c.probabilities IS NOT NULL
                    THEN evalstore.log_loss_term(evalstore.class_probability(
                        c.probabilities, CAST(c.label AS VARCHAR)))
                END
            WHEN 'mae' THEN abs(c.e_)
            WHEN 'mse' THEN c.e_ * c.e_
            WHEN 'mape' THEN CASE WHEN TRY_CAST(c.label AS DOUBLE) <> 0
                THEN abs(c.e_) / abs(TRY_CAST(c.label AS DOUBLE)) END
            WHEN 'business_value' THEN CASE WHEN c.y_ IS NOT NULL AND c.yhat_ IS NOT NULL
                THEN CAST(CAST(business_value_matrix AS DOUBLE[][])[c.y_ + 1][c.yhat_ + 1]
                          AS DOUBLE) END  -- DuckDB 1.4 types an element of NULL as VARCHAR
        END AS DOUBLE) AS x,
        CASE
            WHEN metric = 'business_value' THEN c.rule_ || '; business value per prediction, '
                || 'mean of the row''s cell of ' || CAST(business_value_matrix AS VARCHAR)
                || ' ([[tn, fp], [fn, tp]])'
            WHEN c.task_ = 'binary' AND metric IN ('accuracy', 'precision', 'recall',
                                                   'specificity') THEN c.rule_
            WHEN metric = 'accuracy' THEN 'prediction = label (the logged predictions)'
            WHEN metric = 'brier' THEN 'mean (score - y)^2'
            WHEN metric = 'log_loss'
                THEN 'mean -ln p(label), p clipped to [eps, 1 - eps], eps = 2.22e-16'
            WHEN metric = 'mae' THEN 'mean |prediction - label|'
            WHEN metric = 'mse' THEN 'mean (prediction - label)^2'
            WHEN metric = 'mape' THEN 'mean |prediction - label| / |label| over labels <> 0'
        END AS variant
    FROM coded AS c;
COMMENT ON MACRO TABLE evalstore.slice_outcomes IS
    'Rows of source with x, their per-row outcome for a decomposable metric (NULL: not counted).';

-- evalstore.slice_tests(counts, total_n, total_mean, total_m2, kind, higher_is_better)
-- One row per row of `counts` (a relation with slice_id, n, mean, m2: a slice's number of
-- outcomes, their mean and their sum of squared deviations from it), given the same
-- statistics of all rows (total_*). The rest of a slice is every other row: n_r = N - n,
-- mean_r = (N mean_N - n mean) / n_r, and (Chan et al.'s parallel variance, exact
-- algebra without cancellation of raw sums) M2_r = M2_N - M2 - d^2 n n_r / N with
-- d = mean - mean_r. Columns: slice_id, n, value (= mean), rest_n, rest_value,
--   effect     how much worse the slice is, in the metric's units (> 0: worse):
--              rest_value - value when higher_is_better, else value - rest_value
--   excess     effect * n: errors (or total loss) beyond what the slice would have at the
--              rest's rate; ranks findings by effect size and size together
--   statistic  oriented so that large = slice worse:
--              kind 'proportion' (x in {0, 1}): the pooled two-proportion z-statistic
--                effect / sqrt(p (1 - p) (1 / n + 1 / n_r)), p = mean_N; NULL when p is
--                0 or 1 or n_r = 0
--              kind 'mean': Welch's t, effect / sqrt(s^2 / n + s_r^2 / n_r) with sample
--                variances s^2 = M2 / (n - 1); NULL when n < 2, n_r < 2 or both are 0
--   df         Welch-Satterthwaite degrees of freedom (kind 'mean'), else NULL
-- The front-end turns statistic into a one-sided p-value: the standard normal (z) or
-- Student t (df) survival function, as scipy.stats.ttest_ind(equal_var=False,
-- alternative='greater' / 'less').
CREATE OR REPLACE MACRO evalstore.slice_tests(
    counts, total_n, total_mean, total_m2, kind, higher_is_better
) AS TABLE
    WITH rest AS (
        SELECT c.slice_id, c.n, c.mean, c.m2,
            CAST(total_n - c.n AS DOUBLE) AS rest_n,
            CASE WHEN total_n > c.n
                 THEN (total_n * total_mean - c.n * c.mean) / (total_n - c.n) END AS rest_mean
        FROM evalstore.relation(counts) AS c
    ),
    spread AS (
        SELECT r.*,
            CASE WHEN higher_is_better THEN r.rest_mean - r.mean ELSE r.mean - r.rest_mean END
                AS effect,
            greatest(total_m2 - r.m2 - (r.mean - r.rest_mean) * (r.mean - r.rest_mean)
                     * r.n * r.rest_n / total_n, 0.0) AS rest_m2
        FROM rest AS r
    ),
    tested AS (
        SELECT s.*,
            CASE WHEN kind = 'proportion' THEN
                CASE WHEN s.rest_n > 0 AND total_mean > 0 AND total_mean < 1 THEN
                    s.effect / sqrt(total_mean * (1 - total_mean) * (1.0 / s.n + 1.0 / s.rest_n))
                END
            ELSE
                CASE WHEN s.n > 1 AND s.rest_n > 1
                      AND s.m2 / (s.n - 1) / s.n + s.rest_m2 / (s.rest_n - 1) / s.rest_n > 0 THEN
                    s.effect / sqrt(s.m2 / (s.n - 1) / s.n + s.rest_m2 / (s.rest_n - 1) / s.rest_n)
                END
            END AS statistic,
            CASE WHEN kind <> 'proportion' AND s.n > 1 AND s.rest_n > 1
                      AND s.m2 / (s.n - 1) / s.n + s.rest_m2 / (s.rest_n - 1) / s.rest_n > 0 THEN
                (s.m2 / (s.n - 1) / s.n + s.rest_m2 / (s.rest_n - 1) / s.rest_n)
                * (s.m2 / (s.n - 1) / s.n + s.rest_m2 / (s.rest_n - 1) / s.rest_n)
                / ((s.m2 / (s.n - 1) / s.n) * (s.m2 / (s.n - 1) / s.n) / (s.n - 1)
                   + (s.rest_m2 / (s.rest_n - 1) / s.rest_n)
                     * (s.rest_m2 / (s.rest_n - 1) / s.rest_n) / (s.rest_n - 1))
            END AS df
        FROM spread AS s
    )
    SELECT t.slice_id, t.n, t.mean AS value, CAST(t.rest_n AS BIGINT) AS rest_n,
        t.rest_mean AS rest_value, t.effect, t.effect * t.n AS excess, t.statistic, t.df
    FROM tested AS t;
COMMENT ON MACRO TABLE evalstore.slice_tests IS
    'Slice vs rest: value, effect (> 0 worse), excess, z or Welch t statistic, df per slice.';
