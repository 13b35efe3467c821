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

-- evalstore.yates_observed(observed, expected, yates) -> DOUBLE
-- Helper: an observed count moved by min(0.5, |E - O|) towards its expected count E under
-- Yates' correction (as scipy.stats.chi2_contingency does before any lambda_), else O.
CREATE OR REPLACE MACRO evalstore.yates_observed(observed, expected, yates) AS
    observed + CASE WHEN yates
        THEN sign(expected - observed) * least(0.5, abs(expected - observed)) ELSE 0 END;
COMMENT ON MACRO evalstore.yates_observed IS
    'An observed count moved towards its expected count by Yates'' correction, when asked.';

-- evalstore.g_term(observed, expected, yates) -> DOUBLE
-- Helper: one cell's 2 O' ln(O' / E) (0 when O' = 0), O' = evalstore.yates_observed.
CREATE OR REPLACE MACRO evalstore.g_term(observed, expected, yates) AS
    CASE WHEN evalstore.yates_observed(observed, expected, yates) > 0
        THEN 2 * evalstore.yates_observed(observed, expected, yates)
             * ln(evalstore.yates_observed(observed, expected, yates) / expected)
        ELSE 0 END;
COMMENT ON MACRO evalstore.g_term IS
    'One term of the G (log-likelihood ratio) statistic, with Yates'' correction when asked.';

-- evalstore.g_sum(ref_n, ana_n, n_reference, n_analysis, yates) -> DOUBLE
-- Helper: the G statistic 2 sum O ln(O / E) of the 2 x K table of two aligned count lists,
-- expected counts as evalstore.chi2_sum (scipy.stats.chi2_contingency with
-- lambda_='log-likelihood').
CREATE OR REPLACE MACRO evalstore.g_sum(ref_n, ana_n, n_reference, n_analysis, yates) AS
    list_sum(list_transform(ref_n, lambda r, i: CASE WHEN r + ana_n[i] > 0 THEN
        evalstore.g_term(r, (r + ana_n[i]) * n_reference / (n_reference + n_analysis), yates)
        + evalstore.g_term(
            ana_n[i], (r + ana_n[i]) * n_analysis / (n_reference + n_analysis), yates)
        ELSE 0 END));
COMMENT ON MACRO evalstore.g_sum IS
    'G statistic (log-likelihood ratio) of two aligned category count lists.';

-- evalstore.gof_sum(ref_n, ana_n, n_reference, n_analysis) -> DOUBLE
-- Helper: Pearson's goodness-of-fit statistic of the window's counts a against the counts
-- the reference's proportions expect, sum (a - E)^2 / E with E = r (A / R), as
-- scipy.stats.chisquare(a, r * A / R): +inf when a category has window values but no
-- reference count (E = 0).
CREATE OR REPLACE MACRO evalstore.gof_sum(ref_n, ana_n, n_reference, n_analysis) AS
    list_sum(list_transform(ref_n, lambda r, i: CASE
        WHEN r = 0 THEN CASE WHEN ana_n[i] > 0 THEN CAST('inf' AS DOUBLE) ELSE 0 END
        ELSE power(ana_n[i] - r * (n_analysis / n_reference), 2)
             / (r * (n_analysis / n_reference)) END));
COMMENT ON MACRO evalstore.gof_sum IS
    'Chi-squared goodness of fit of window counts to the reference proportions (scipy chisquare).';

-- evalstore.binary_table(ref_n, ana_n) -> BIGINT[]
-- Helper: when exactly two categories of two aligned count lists have a count on either
-- side, the 2 x 2 table [r_1, r_2, a_1, a_2] of those two (in list order, the categories'
-- sort order in drift_categorical), else NULL.
CREATE OR REPLACE MACRO evalstore.binary_table(ref_n, ana_n) AS
    CASE WHEN evalstore.seen_categories(ref_n, ana_n) = 2 THEN list_concat(
        list_filter(ref_n, lambda r, i: r + ana_n[i] > 0),
        list_filter(ana_n, lambda a, i: a + ref_n[i] > 0)) END;
COMMENT ON MACRO evalstore.binary_table IS
    'The 2 x 2 table [r1, r2, a1, a2] of two aligned count lists with exactly two categories seen.';

-- evalstore.two_proportion_z(t) -> DOUBLE
-- Helper: the two-proportion z statistic of the first category of the 2 x 2 table
-- t = [r_1, r_2, a_1, a_2] (R = r_1 + r_2, A = a_1 + a_2), pooled variance:
-- (r_1 / R - a_1 / A) / sqrt(P (1 - P) (1 / R + 1 / A)), P = (r_1 + a_1) / (R + A);
-- z^2 is the uncorrected chi-squared of the table. NULL for a NULL table.
CREATE OR REPLACE MACRO evalstore.two_proportion_z(t) AS
    (t[1] / (t[1] + t[2]) - t[3] / (t[3] + t[4]))
    / sqrt((t[1] + t[3]) / (t[1] + t[2] + t[3] + t[4])
           * (1 - (t[1] + t[3]) / (t[1] + t[2] + t[3] + t[4]))
           * (1 / (t[1] + t[2]) + 1 / (t[3] + t[4])));
COMMENT ON MACRO evalstore.two_proportion_z IS
    'Two-proportion z statistic (pooled variance) of the first category of a 2 x 2 table.';

-- evalstore.odds_ratio(t) -> DOUBLE
-- Helper: the sample odds ratio r_1 a_2 / (r_2 a_1) of the 2 x 2 table
-- t = [r_1, r_2, a_1, a_2], +inf when r_2 a_1 = 0 (as scipy.stats.fisher_exact's
-- statistic). NULL for a NULL table.
CREATE OR REPLACE MACRO evalstore.odds_ratio(t) AS
    CASE WHEN t IS NULL THEN NULL
         WHEN t[2] > 0 AND t[3] > 0
             THEN CAST(t[1] AS DOUBLE) * t[4] / (CAST(t[2] AS DOUBLE) * t[3])
         ELSE CAST('inf' AS DOUBLE) END;
COMMENT ON MACRO evalstore.odds_ratio IS
    'Sample odds ratio of a 2 x 2 table (+inf with a zero off the diagonal, as scipy).';

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
--   g         the G statistic of the same table (evalstore.g_sum), Yates as chi2
--   gof       the goodness-of-fit statistic of the window against the reference
--             proportions (evalstore.gof_sum)
--   k         K
--   table     for K = 2, the 2 x 2 table [r_1, r_2, a_1, a_2] of the two categories
--             (evalstore.binary_table), else NULL: z_test and fisher_exact take it
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
        ELSE 0 END)) / n_analysis,
    'g': CASE WHEN correction AND evalstore.seen_categories(ref_n, ana_n) = 2
        THEN evalstore.g_sum(ref_n, ana_n, n_reference, n_analysis, true)
        ELSE evalstore.g_sum(ref_n, ana_n, n_reference, n_analysis, false) END,
    'gof': evalstore.gof_sum(ref_n, ana_n, n_reference, n_analysis),
    'k': evalstore.seen_categories(ref_n, ana_n),
    'table': evalstore.binary_table(ref_n, ana_n)
};
COMMENT ON MACRO evalstore.category_tests IS
    'Chi-squared (statistic, dof), G, goodness of fit, 2 x 2 table, L-infinity and unseen share from aligned category counts.';

-- evalstore.categorical_rows(tests, scores, reason, zero_bins, epsilon, log_base,
--     js_variant, correction) -> STRUCT(method, variant, value, dof, reason, counts)[]
-- Helper of evalstore.categorical_methods: the rows from the cell's statistics (counts:
-- the 2 x 2 table [r1, r2, a1, a2] of fisher_exact, whose p-value needs it).
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
         'value': scores.hellinger, 'dof': NULL, 'reason': NULL},
        {'method': 'tvd', 'variant': 'total variation distance, 0.5 sum |p - q|; categories',
         'value': scores.d1 / 2, 'dof': NULL, 'reason': NULL},
        {'method': 'g_test', 'variant': 'G-test (log-likelihood ratio) of the 2 x K table, '
            || CASE WHEN correction THEN 'Yates-corrected when dof = 1' ELSE 'uncorrected' END,
         'value': tests.g, 'dof': tests.dof,
         'reason': CASE WHEN tests.dof < 1 THEN 'a single category: the G-test is undefined' END},
        {'method': 'chisquare_gof', 'variant': 'chi-squared goodness of fit of the window '
            || 'counts to the reference proportions (scipy chisquare)',
         'value': tests.gof, 'dof': tests.dof,
         'reason': CASE WHEN tests.dof < 1
                        THEN 'a single category: the goodness-of-fit test is undefined' END},
        {'method': 'z_test', 'variant': 'two-proportion z-test, pooled variance; '
            || 'share of the first category (in sort order), reference - window',
         'value': evalstore.two_proportion_z(tests.table), 'dof': NULL,
         'reason': CASE WHEN tests.k < 2 THEN 'a single category: the z-test is undefined'
             WHEN len(tests.table) IS NULL THEN tests.k || ' categories: the two-proportion '
                 || 'z-test needs a binary feature (use chi2 or g_test)' END},
        {'method': 'fisher_exact', 'variant': 'Fisher''s exact test of the 2 x 2 table, '
            || 'two-sided; value: odds ratio (r1 a2) / (r2 a1)',
         'value': evalstore.odds_ratio(tests.table), 'dof': NULL,
         'reason': CASE WHEN tests.k < 2 THEN 'a single category: Fisher''s test is undefined'
             WHEN len(tests.table) IS NULL THEN tests.k || ' categories: Fisher''s exact test '
                 || 'needs a binary feature (use chi2 or g_test)' END}
    ],
    lambda m: {'method': m.method, 'variant': m.variant,
               'value': CASE WHEN reason IS NULL AND m.reason IS NULL
                             THEN CAST(m.value AS DOUBLE) END,
               'dof': CASE WHEN m.method IN ('chi2', 'g_test', 'chisquare_gof')
                           THEN CAST(m.dof AS BIGINT) END,
               'reason': coalesce(reason, m.reason),
               'counts': CASE WHEN m.method = 'fisher_exact' AND reason IS NULL
                              AND m.reason IS NULL THEN tests.table END});
COMMENT ON MACRO evalstore.categorical_rows IS
    'Method rows of one categorical drift cell from its tests and scores.';

-- evalstore.categorical_methods(ref_n, ana_n, n_reference, n_analysis, zero_bins, epsilon,
--     log_base, js_variant, correction)
--   -> STRUCT(method, variant, value, dof, reason, counts)[]
-- Helper: the method rows of one (window, feature) cell of categorical drift from its
-- aligned category counts and their totals (list_sum of each list, passed as columns so
-- that they are summed once, not once per category); see evalstore.drift_categorical for
-- the definitions, which it computes, names and explains through this macro. Callable on
-- any pre-aggregated counts, e.g.
--   SELECT unnest(evalstore.categorical_methods([90, 10], [50, 50], 100, 100, 'epsilon',
--                 1e-4, exp(1), 'distance', true))
-- value is NULL with a reason when a side has no values, for chi2, g_test and
-- chisquare_gof with a single category, and for z_test and fisher_exact unless there
-- are exactly two categories.
CREATE OR REPLACE MACRO evalstore.categorical_methods(
    ref_n, ana_n, n_reference, n_analysis, zero_bins, epsilon, log_base, js_variant,
    correction
) AS list_transform(
    -- bound to a lambda parameter, the statistics are computed (and planned) once, not
    -- once per field of evalstore.categorical_rows that reads them (macros expand text)
    [{'tests': evalstore.category_tests(ref_n, ana_n, n_reference, n_analysis, correction),
      'scores': evalstore.binned_scores(
          list_transform(ref_n, lambda x: x / n_reference),
          list_transform(ana_n, lambda x: x / n_analysis),
          zero_bins, epsilon, log_base, js_variant)}],
    lambda cell: evalstore.categorical_rows(
        cell.tests, cell.scores,
        CASE WHEN coalesce(n_reference, 0) = 0 THEN 'no reference values'
             WHEN coalesce(n_analysis, 0) = 0 THEN 'no values in the window' END,
        zero_bins, epsilon, log_base, js_variant, correction))[1];
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
--   tvd       total variation distance 0.5 sum_c |p_c - q_c|
--   g_test    the G statistic 2 sum O ln(O / E) of the same 2 x K table as chi2, with
--             Yates' correction of O when dof = 1 and `correction` (as
--             scipy.stats.chi2_contingency(lambda_='log-likelihood')); dof = K - 1
--   chisquare_gof  goodness of fit of the window's counts a_c to the counts the reference
--             proportions expect, sum (a_c - E_c)^2 / E_c, E_c = r_c A / R (Evidently's
--             chisquare: scipy.stats.chisquare(a, r A / R)); dof = K - 1; +inf when the
--             window has a category the reference lacks (p-value 0)
--   z_test    binary features (K = 2): the two-proportion z statistic of the first
--             category in sort order, reference minus window, pooled variance; a
--             feature with K > 2 gets NULL with a reason (a one-vs-rest test of an
--             arbitrary category is not a test of the distribution: use chi2 or g_test)
--   fisher_exact  binary features: the odds ratio of [[r_1, r_2], [a_1, a_2]] (+inf when
--             r_2 a_1 = 0), `counts` that table for the p-value of
--             scipy.stats.fisher_exact (two-sided), which evalstore's Python UDF
--             evalstore_fisher_pvalue adds; K > 2 as z_test
-- The p-values of chi2, g_test and chisquare_gof are chi2.sf(value, dof), z_test's
-- 2 norm.sf(|value|); evalstore's Python UDFs add them.
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
        n_reference, n_analysis, m.dof, m.reason, m.counts
    FROM method_rows;
COMMENT ON MACRO TABLE evalstore.drift_categorical IS
    'Categorical drift per window and feature: chi2, linf, unseen, psi, js, hellinger, tvd, g_test, chisquare_gof, z_test, fisher_exact.';

-- evalstore.drift_thresholds() -> the default alert range of each drift method
-- One row per method: method, variant_prefix (the threshold applies to the variants whose
-- name starts with it: wasserstein's default is for the 'normed' variant only; NULL: every
-- variant), threshold_low, threshold, compares ('value': drifted when value > threshold, or
-- outside [threshold_low, threshold]; 'p_value': drifted when the p-value, after
-- correction, is below threshold). The same numbers as the drift methods' specs in
-- evalstore/metrics/specs.py (tests/server/test_bi_snapshot.py keeps them equal). p-values
-- need evalstore's Python UDFs (evalstore_ks_pvalue, evalstore_chi2_pvalue, ...), so the
-- p-value methods decide only in store.drift, the CLI and the server.
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
        ('unseen', NULL, NULL, 0.0, 'value'),
        ('welch_t', NULL, NULL, 0.05, 'p_value'),
        ('anderson', NULL, NULL, 0.05, 'p_value'),
        ('cramer_von_mises', NULL, NULL, 0.05, 'p_value'),
        ('energy_distance', NULL, NULL, 0.1, 'value'),
        ('epps_singleton', NULL, NULL, 0.05, 'p_value'),
        ('mann_whitney', NULL, NULL, 0.05, 'p_value'),
        ('empirical_mmd', NULL, NULL, 0.05, 'p_value'),
        ('tvd', NULL, NULL, 0.1, 'value'),
        ('g_test', NULL, NULL, 0.05, 'p_value'),
        ('chisquare_gof', NULL, NULL, 0.05, 'p_value'),
        ('z_test', NULL, NULL, 0.05, 'p_value'),
        ('fisher_exact', NULL, NULL, 0.05, 'p_value')
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
-- raw Wasserstein variant, which has no default, and for the p-value methods (ks, chi2,
-- welch_t, g_test, chisquare_gof, z_test, fisher_exact), whose p-values need evalstore's
-- Python UDFs: store.drift, `evalstore drift` or the server add them), ordered by window,
-- feature and method, e.g.
--   SELECT feature, window_start, method, value, drifted
--   FROM evalstore.drift('fraud', 'training', '1 day')
CREATE OR REPLACE MACRO evalstore.drift(model, ref_env, width) AS TABLE
    WITH statistics AS (
        SELECT *, 'numeric' AS kind FROM evalstore.drift_numeric(
            model || '.numeric_values', ref_env, NULL, NULL, NULL, 'serving', NULL, NULL, NULL,
            width, NULL, NULL, 0, 'quantile', 10, CAST(NULL AS DOUBLE[]), false, 'epsilon',
            1e-4, exp(1), 'distance')
        UNION ALL
        SELECT * EXCLUDE (counts), 'categorical' AS kind FROM evalstore.drift_categorical(
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
