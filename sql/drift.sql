-- evalstore macros: univariate drift between a reference and windows of analysis rows
-- (the numeric methods are in drift_numeric.sql, installed first; the categorical methods,
-- the default thresholds and the short form evalstore.drift are here).
--
-- Input: a relation in the long format of <model>.numeric_values / <model>.category_values
-- (example_id, env, dataset, ts, version, feature, value), named by `source`. Python's
-- store.drift() passes the model's view, or a temporary view restricted to a slice or to
-- the examples one version predicted; SQL users pass e.g. 'credit_default.numeric_values'.
--
-- Reference and analysis are both selections of `source`, made by evalstore.drift_pairs
-- and evalstore.drift_windows (common.sql, where the ref_* / ana_* / width / chunk_rows /
-- chunks / previous arguments are defined; quality.sql uses the same two macros).
-- Statistics use finite values only: NULL, NaN and +-inf are data-quality findings
-- (evalstore.quality), not drift. A (window, feature) whose reference or analysis has no
-- finite value gets value NULL and a `reason`.

-- evalstore.chi2_term(observed, expected, yates) -> DOUBLE
-- Helper: one cell's (|O - E| - c)^2 / E with c = min(0.5, |O - E|) under Yates'
-- correction, else 0.
CREATE OR REPLACE MACRO evalstore.chi2_term(observed, expected, yates) AS
    power(abs(observed - expected)
          - CASE WHEN yates THEN least(0.5, abs(observed - expected)) ELSE 0 END, 2) / expected;
COMMENT ON MACRO evalstore.chi2_term IS
    'One term of Pearson''s chi-squared, with Yates'' continuity correction when asked.';

-- evalstore.chi2_sum(ref_n, ana_n, n_reference, n_analysis, yates) -> DOUBLE
-- Helper: Pearson's chi-squared of the 2 x K table of two aligned count lists with
-- totals R and A, over the categories counted on either side: expected counts
-- (r + a) R / (R + A) and (r + a) A / (R + A), evalstore.chi2_term of each.
CREATE OR REPLACE MACRO evalstore.chi2_sum(ref_n, ana_n, n_reference, n_analysis, yates) AS
    list_sum(list_transform(ref_n, lambda r, i: CASE WHEN r + ana_n[i] > 0 THEN
        evalstore.chi2_term(r, (r + ana_n[i]) * n_reference / (n_reference + n_analysis), yates)
        + evalstore.chi2_term(
            ana_n[i], (r + ana_n[i]) * n_analysis / (n_reference + n_analysis), yates)
        ELSE 0 END));
COMMENT ON MACRO evalstore.chi2_sum IS
    'Pearson''s chi-squared statistic of two aligned category count lists.';

-- evalstore.seen_categories(ref_n, ana_n) -> BIGINT
-- Helper: how many categories of two aligned count lists have a count on either side.
CREATE OR REPLACE MACRO evalstore.seen_categories(ref_n, ana_n) AS
    CAST(list_sum(list_transform(ref_n, lambda r, i: CASE WHEN r + ana_n[i] > 0 THEN 1
        ELSE 0 END)) AS BIGINT);
COMMENT ON MACRO evalstore.seen_categories IS
    'Categories with a count on either side of two aligned count lists.';

-- evalstore.category_tests(ref_n, ana_n, n_reference, n_analysis, correction)
--   -> STRUCT(chi2, dof, linf, unseen)
-- Helper: the count-based categorical statistics of one cell from aligned lists of
-- category counts, ref_n (reference) and ana_n (window), and their totals R and A.
-- All four must be columns or constants: DuckDB evaluates an expression inside a lambda
-- once per element, so a list_sum there would make this quadratic. Categories empty on
-- both sides do not count; of the K others:
--   chi2      Pearson's chi-squared of the 2 x K table (evalstore.chi2_sum), with Yates'
--             correction when dof = 1 and `correction` (as scipy.stats.chi2_contingency)
--   dof       K - 1
--   linf      max_c |r_c / R - a_c / A|
--   unseen    share of the window's values whose category has no reference count
CREATE OR REPLACE MACRO evalstore.category_tests(
    ref_n, ana_n, n_reference, n_analysis, correction
) AS {
    'chi2': CASE WHEN correction AND evalstore.seen_categories(ref_n, ana_n) = 2
        THEN evalstore.chi2_sum(ref_n, ana_n, n_reference, n_analysis, true)
        ELSE evalstore.chi2_sum(ref_n, ana_n, n_reference, n_analysis, false) END,
    'dof': evalstore.seen_categories(ref_n, ana_n) - 1,
    'linf': list_max(list_transform(ref_n, lambda r, i:
        abs(r / n_reference - ana_n[i] / n_analysis))),
    'unseen': list_sum(list_transform(ref_n, lambda r, i: CASE WHEN r = 0 THEN ana_n[i]
        ELSE 0 END)) / n_analysis
};
COMMENT ON MACRO evalstore.category_tests IS
    'Chi-squared (statistic, dof), L-infinity and unseen share from aligned category counts.';

-- evalstore.categorical_rows(tests, scores, reason, zero_bins, epsilon, log_base,
--     js_variant, correction) -> STRUCT(method, variant, value, dof, reason)[]
-- Helper of evalstore.categorical_methods: the rows from the cell's statistics.
CREATE OR REPLACE MACRO evalstore.categorical_rows(
    tests, scores, reason, zero_bins, epsilon, log_base, js_variant, correction
) AS list_transform(
    [
        {'method': 'chi2', 'variant': 'Pearson chi-squared of the 2 x K table, '
            || CASE WHEN correction THEN 'Yates-corrected when dof = 1' ELSE 'uncorrected' END,
         'value': tests.chi2, 'dof': tests.dof,
         'reason': CASE WHEN tests.dof < 1 THEN 'a single category: chi-squared undefined' END},
        {'method': 'linf', 'variant': 'max |p - q|', 'value': tests.linf, 'dof': NULL,
         'reason': CAST(NULL AS VARCHAR)},
        {'method': 'unseen',
         'variant': 'share of window values in categories unseen in the reference',
         'value': tests.unseen, 'dof': NULL, 'reason': NULL},
        {'method': 'psi', 'variant': 'psi, ln; categories; ' || CASE zero_bins
            WHEN 'leftover' THEN 'empty categories folded into a leftover bin'
            WHEN 'smallest' THEN evalstore.zero_bins_text(zero_bins, epsilon)
            ELSE 'empty categories set to ' || epsilon END,
         'value': scores.psi, 'dof': NULL, 'reason': NULL},
        {'method': 'kl', 'variant': 'KL(reference || analysis), '
            || CASE WHEN log_base = 2 THEN 'log2' ELSE 'ln' END || '; categories; '
            || evalstore.zero_bins_text(zero_bins, epsilon),
         'value': scores.kl, 'dof': NULL, 'reason': NULL},
        {'method': 'js', 'variant': 'JS ' || CASE WHEN js_variant = 'divergence'
            THEN 'divergence' ELSE 'distance' END || ', '
            || CASE WHEN log_base = 2 THEN 'log2' ELSE 'ln' END || '; categories',
         'value': scores.js, 'dof': NULL, 'reason': NULL},
        {'method': 'hellinger', 'variant': 'Hellinger distance; categories',
         'value': scores.hellinger, 'dof': NULL, 'reason': NULL}
    ],
    lambda m: {'method': m.method, 'variant': m.variant,
               'value': CASE WHEN reason IS NULL AND m.reason IS NULL
                             THEN CAST(m.value AS DOUBLE) END,
               'dof': CASE WHEN m.method = 'chi2' THEN CAST(m.dof AS BIGINT) END,
               'reason': coalesce(reason, m.reason)});
COMMENT ON MACRO evalstore.categorical_rows IS
    'Method rows of one categorical drift cell from its tests and scores.';

-- evalstore.categorical_methods(ref_n, ana_n, n_reference, n_analysis, zero_bins, epsilon,
--     log_base, js_variant, correction) -> STRUCT(method, variant, value, dof, reason)[]
-- Helper: the method rows of one (window, feature) cell of categorical drift from its
-- aligned category counts and their totals (list_sum of each list, passed as columns so
-- that they are summed once, not once per category); see evalstore.drift_categorical for
-- the definitions, which it computes, names and explains through this macro. Callable on
-- any pre-aggregated counts, e.g.
--   SELECT unnest(evalstore.categorical_methods([90, 10], [50, 50], 100, 100, 'epsilon',
--                 1e-4, exp(1), 'distance', true))
-- value is NULL with a reason when a side has no values, and for chi2 with a single
-- category.
CREATE OR REPLACE MACRO evalstore.categorical_methods(
    ref_n, ana_n, n_reference, n_analysis, zero_bins, epsilon, log_base, js_variant,
    correction
) AS evalstore.categorical_rows(
    evalstore.category_tests(ref_n, ana_n, n_reference, n_analysis, correction),
    evalstore.binned_scores(
        list_transform(ref_n, lambda x: x / n_reference),
        list_transform(ana_n, lambda x: x / n_analysis),
        zero_bins, epsilon, log_base, js_variant),
    CASE WHEN coalesce(n_reference, 0) = 0 THEN 'no reference values'
         WHEN coalesce(n_analysis, 0) = 0 THEN 'no values in the window' END,
    zero_bins, epsilon, log_base, js_variant, correction);
COMMENT ON MACRO evalstore.categorical_methods IS
    'Method rows (method, variant, value, dof, reason) of one categorical drift cell from its counts.';

-- evalstore.drift_categorical(source, ref_env, ref_dataset, ref_start, ref_end, ana_env,
--     ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
--     zero_bins, epsilon, log_base, js_variant, correction)
-- Drift of every categorical feature in every analysis window; same columns as
-- drift_numeric. NULL values are left out (they are missing values, see quality).
-- Categories are the union of those seen in the reference and the window, and p, q
-- their shares in each (evalstore.categorical_methods computes the rows):
--   chi2      Pearson's chi-squared statistic of the 2 x K contingency table (reference
--             counts, window counts) over categories seen in either, dof = K - 1, with
--             Yates' continuity correction when dof = 1 and `correction` (as
--             scipy.stats.chi2_contingency, whose p-value evalstore's Python UDF adds);
--             NULL with a reason when K < 2
--   linf      max_c |p_c - q_c|
--   unseen    share of the window's values whose category never occurs in the reference
--   psi, kl, js, hellinger   evalstore.binned_scores over the categories
CREATE OR REPLACE MACRO evalstore.drift_categorical(
    source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, previous,
    zero_bins, epsilon, log_base, js_variant, correction
) AS TABLE
    WITH tagged AS (
        SELECT * FROM evalstore.drift_pairs(
            source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous)
    ),
    -- one pass over the values (the only reference to tagged, so it streams): counts per
    -- side, reference or window, feature, version and category (NULL values included, so
    -- that a window of NULLs still is a cell)
    counts AS (
        SELECT side, ref_key, window_index, feature, version, value AS category,
               count(*) AS n, min(window_start) AS window_start, max(window_end) AS window_end
        FROM tagged
        GROUP BY side, ref_key, window_index, feature, version, value
    ),
    cells AS (
        SELECT ref_key, window_index, min(window_start) AS window_start,
               max(window_end) AS window_end, feature, version
        FROM counts WHERE side = 'analysis'
        GROUP BY ref_key, window_index, feature, version
    ),
    ref_counts AS (
        SELECT ref_key, feature, version, category, n
        FROM counts WHERE side = 'reference' AND category IS NOT NULL
    ),
    ana_counts AS (
        SELECT ref_key, window_index, feature, version, category, n
        FROM counts WHERE side = 'analysis' AND category IS NOT NULL
    ),
    -- one row per (window, category seen on either side), then the cell's aligned counts
    keys AS (
        SELECT c.ref_key, c.window_index, c.feature, c.version, r.category
        FROM cells AS c JOIN ref_counts AS r USING (ref_key, feature, version)
        UNION
        SELECT ref_key, window_index, feature, version, category FROM ana_counts
    ),
    aligned AS (
        SELECT k.ref_key, k.window_index, k.feature, k.version,
               list(coalesce(r.n, 0) ORDER BY k.category) AS ref_n,
               list(coalesce(a.n, 0) ORDER BY k.category) AS ana_n,
               CAST(sum(r.n) AS BIGINT) AS n_reference, CAST(sum(a.n) AS BIGINT) AS n_analysis
        FROM keys AS k
        LEFT JOIN ref_counts AS r USING (ref_key, feature, version, category)
        LEFT JOIN ana_counts AS a USING (ref_key, window_index, feature, version, category)
        GROUP BY k.ref_key, k.window_index, k.feature, k.version
    ),
    totals AS (
        SELECT c.*, coalesce(l.ref_n, []) AS ref_n, coalesce(l.ana_n, []) AS ana_n,
               coalesce(l.n_reference, 0) AS n_reference, coalesce(l.n_analysis, 0) AS n_analysis
        FROM cells AS c LEFT JOIN aligned AS l USING (ref_key, window_index, feature, version)
    ),
    method_rows AS (
        SELECT *, unnest(evalstore.categorical_methods(
                   ref_n, ana_n, n_reference, n_analysis, zero_bins, epsilon, log_base,
                   js_variant, correction)) AS m
        FROM totals
    )
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, m.method, m.variant, m.value,
        n_reference, n_analysis, m.dof, m.reason
    FROM method_rows;
COMMENT ON MACRO TABLE evalstore.drift_categorical IS
    'Categorical drift per window and feature: chi2, linf, unseen, psi, js, hellinger.';

-- evalstore.drift_thresholds() -> the default alert range of each drift method
-- One row per method: method, variant_prefix (the threshold applies to the variants whose
-- name starts with it: wasserstein's default is for the 'normed' variant only; NULL: every
-- variant), threshold_low, threshold, compares ('value': drifted when value > threshold, or
-- outside [threshold_low, threshold]; 'p_value': drifted when the p-value, after
-- correction, is below threshold). The same numbers as the drift methods' specs in
-- evalstore/metrics/specs.py (tests/server/test_bi_snapshot.py keeps them equal). p-values need evalstore's Python UDFs (evalstore_ks_pvalue,
-- evalstore_chi2_pvalue), so ks and chi2 decide only in store.drift, the CLI and the server.
CREATE OR REPLACE MACRO evalstore.drift_thresholds() AS TABLE
    SELECT * FROM (VALUES
        ('ks', CAST(NULL AS VARCHAR), CAST(NULL AS DOUBLE), CAST(0.05 AS DOUBLE), 'p_value'),
        ('chi2', NULL, NULL, 0.05, 'p_value'),
        ('psi', NULL, NULL, 0.2, 'value'),
        ('js', NULL, NULL, 0.1, 'value'),
        ('kl', NULL, NULL, 0.1, 'value'),
        ('hellinger', NULL, NULL, 0.1, 'value'),
        ('wasserstein', 'normed', NULL, 0.1, 'value'),
        ('d1', NULL, NULL, 0.2, 'value'),
        ('zscore', NULL, -3.0, 3.0, 'value'),
        ('linf', NULL, NULL, 0.1, 'value'),
        ('unseen', NULL, NULL, 0.0, 'value')
    ) AS t(method, variant_prefix, threshold_low, threshold, compares);
COMMENT ON MACRO TABLE evalstore.drift_thresholds IS
    'Default drift thresholds per method (no args): value > threshold, outside a range, or p < alpha.';

-- evalstore.reference_reason(feature, reason, n_reference, reference) -> VARCHAR
-- The reason of a result row, told in the user's terms when the row is an output whose
-- fixed reference has no rows: predictions (score, prediction) exist only for served
-- rows, so a training or validation reference has none, and labels only where logged.
-- `reference` names the reference ('training'); other rows keep their reason.
CREATE OR REPLACE MACRO evalstore.reference_reason(feature, reason, n_reference, reference) AS
    CASE WHEN reason IS NULL OR coalesce(n_reference, 0) > 0 THEN reason
         WHEN feature IN ('score', 'prediction')
             THEN 'the reference (' || reference || ') has no predictions: ' || feature
                  || ' exists only for served rows; compare with earlier serving windows, '
                  || 'reference={''previous'': n}, or a (start, end) range of serving time'
         WHEN feature = 'label'
             THEN 'the reference (' || reference || ') has no labels: log labels for its '
                  || 'examples, or compare with earlier serving windows, '
                  || 'reference={''previous'': n}'
         ELSE reason END;
COMMENT ON MACRO evalstore.reference_reason IS
    'A result row''s reason, saying why an output has no reference rows (no predictions in training).';

-- evalstore.drift(model, ref_env, width)
-- Convenience for SQL users (a BI tool, the duckdb shell): every numeric and categorical
-- drift method of every feature and output of `model`, reference = the rows of env
-- `ref_env` (e.g. 'training'), analysis = serving rows in time windows of `width` (e.g.
-- '1 day'), with evalstore's default variants (quantile(10) bins of the reference, empty
-- bins set to 0.0001, ln, JS distance, Yates' correction). Columns as drift_numeric plus
-- `kind` and the default decision (evalstore.drift_thresholds): `threshold`,
-- `threshold_low`, `threshold_source` and `drifted` (NULL where the value is NULL, for the
-- raw Wasserstein variant, which has no default, and for ks and chi2, whose p-values need
-- evalstore's Python UDFs: store.drift, `evalstore drift` or the server add them), ordered
-- by window, feature and method, e.g.
--   SELECT feature, window_start, method, value, drifted
--   FROM evalstore.drift('fraud', 'training', '1 day')
CREATE OR REPLACE MACRO evalstore.drift(model, ref_env, width) AS TABLE
    WITH statistics AS (
        SELECT *, 'numeric' AS kind FROM evalstore.drift_numeric(
            model || '.numeric_values', ref_env, NULL, NULL, NULL, 'serving', NULL, NULL, NULL,
            width, NULL, NULL, 0, 'quantile', 10, CAST(NULL AS DOUBLE[]), false, 'epsilon',
            1e-4, exp(1), 'distance')
        UNION ALL
        SELECT *, 'categorical' AS kind FROM evalstore.drift_categorical(
            model || '.category_values', ref_env, NULL, NULL, NULL, 'serving', NULL, NULL, NULL,
            width, NULL, NULL, 0, 'epsilon', 1e-4, exp(1), 'distance', true)
    )
    SELECT s.* REPLACE (
            evalstore.reference_reason(s.feature, s.reason, s.n_reference, ref_env) AS reason),
        t.threshold, t.threshold_low,
        CASE WHEN t.method IS NULL THEN NULL
             WHEN t.compares = 'p_value'
                 THEN 'p-value < ' || t.threshold || ' (the p-value needs evalstore: store.drift)'
             WHEN t.threshold_low IS NOT NULL
                 THEN 'fixed range [' || t.threshold_low || ', ' || t.threshold || ']'
             ELSE 'fixed: value > ' || t.threshold END AS threshold_source,
        CASE WHEN t.compares = 'value' AND s.value IS NOT NULL THEN
            CASE WHEN t.threshold_low IS NOT NULL
                 THEN s.value < t.threshold_low OR s.value > t.threshold
                 ELSE s.value > t.threshold END
        END AS drifted
    FROM statistics AS s
    LEFT JOIN evalstore.drift_thresholds() AS t
      ON t.method = s.method
     AND (t.variant_prefix IS NULL OR starts_with(s.variant, t.variant_prefix))
    ORDER BY s.window_start, s.feature, s.method, s.variant;
COMMENT ON MACRO TABLE evalstore.drift IS
    'Every drift method of every feature of a model against an env, per time window, with default thresholds and drifted.';
