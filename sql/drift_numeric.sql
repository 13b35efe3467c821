-- evalstore macros: numeric univariate drift (evalstore.drift_numeric) and its helpers.
--
-- Input and windows as described in drift.sql (the family's file): a long-format relation
-- of <model>.numeric_values (example_id, env, dataset, ts, version, feature, value) named
-- by `source`, reference and analysis selected by evalstore.drift_pairs and
-- evalstore.drift_windows (common.sql). Statistics use finite values only. Installed
-- before drift.sql, whose categorical methods and short form evalstore.drift build on it.

-- evalstore.bin_edges(lo, hi, n, g1, binning, bins) -> DOUBLE[]
-- Helper: equal-width edges over [lo, hi] as numpy.histogram_bin_edges computes them:
--   'sturges' k = ceil(ptp / (ptp / (log2(n) + 1)))
--   'doane'   k = ceil(ptp / (ptp / (1 + log2(n) + log2(1 + |g1| / sg1)))),
--             sg1 = sqrt(6 (n - 2) / ((n + 1) (n + 3))), g1 the population skewness
--   'fixed'   k = bins
-- edges lo + i (hi - lo) / k, i = 0..k-1, then hi itself (as numpy.linspace, so the
-- maximum falls in the last closed bin); a single edge when hi = lo; k = 1 for 'doane'
-- when n <= 2 (numpy's Doane width is 0 there).
CREATE OR REPLACE MACRO evalstore.bin_edges(lo, hi, n, g1, binning, bins) AS
    CASE WHEN hi = lo OR n < 1 THEN [lo] ELSE list_append(list_transform(
        range(0, CAST(CASE binning
            WHEN 'fixed' THEN bins
            WHEN 'sturges' THEN ceil((hi - lo) / ((hi - lo) / (log2(n) + 1)))
            WHEN 'doane' THEN CASE WHEN n <= 2 THEN 1 ELSE ceil((hi - lo) / ((hi - lo) / (
                1 + log2(n) + log2(1 + abs(coalesce(g1, 0))
                / sqrt(6.0 * (n - 2) / ((n + 1.0) * (n + 3.0))))))) END
        END AS BIGINT)),
        lambda i: lo + i * ((hi - lo) / CASE binning
            WHEN 'fixed' THEN bins
            WHEN 'sturges' THEN ceil((hi - lo) / ((hi - lo) / (log2(n) + 1)))
            WHEN 'doane' THEN CASE WHEN n <= 2 THEN 1 ELSE ceil((hi - lo) / ((hi - lo) / (
                1 + log2(n) + log2(1 + abs(coalesce(g1, 0))
                / sqrt(6.0 * (n - 2) / ((n + 1.0) * (n + 3.0))))))) END
        END)), hi) END;
COMMENT ON MACRO evalstore.bin_edges IS
    'Equal-width bin edges over [lo, hi] by Sturges, Doane (numpy) or a fixed count.';

-- evalstore.quantile_edges(value, bins) -> DOUBLE[]   (an aggregate)
-- Helper: [min, q(1/bins), ..., q((bins-1)/bins), max] of value, linear interpolation as
-- numpy.quantile's default; duplicates (ties) are removed, so heavy ties give fewer bins.
CREATE OR REPLACE MACRO evalstore.quantile_edges(value, bins) AS
    list_sort(list_distinct(list_concat(
        [min(value)],
        quantile_cont(value, list_transform(range(1, bins), lambda i: i / bins)),
        [max(value)])));
COMMENT ON MACRO evalstore.quantile_edges IS
    'Aggregate: distinct [min, reference quantiles at i/bins, max] of value.';

-- evalstore.binned_scores(ref_p, ana_p, zero_bins, epsilon, log_base, js_variant)
--   -> STRUCT(psi, kl, js, hellinger, d1)
-- Helper: distances between two histograms given as aligned lists of proportions
-- p = ref_p (reference) and q = ana_p (analysis). Bins empty on both sides are dropped first. PSI and KL
-- need non-empty bins: zero_bins = 'epsilon' replaces a zero proportion by epsilon (no
-- renormalisation); 'leftover' folds every bin that is empty on one side
-- into one leftover bin (epsilon again if that is still empty on one side); 'smallest'
-- (Evidently 0.7's get_binned_data) replaces a zero proportion of a side by that side's
-- smallest non-zero proportion / 1e6 when that is <= epsilon, else by epsilon, keeps the
-- inner bins empty on both sides (both filled; only the first and last bins, the
-- open-ended ones outside the edges, are dropped when empty on both sides), and
-- renormalises KL's filled proportions to sum 1 (scipy.stats.entropy; psi is not
-- renormalised, as Evidently's psi).
--   psi       = sum (q - p) ln(q / p)
--   kl        = sum p log_b(p / q)            KL(reference || analysis), scipy.stats.entropy(p, q, base)
--   js        = sqrt(JSD) ('distance', scipy.spatial.distance.jensenshannon) or JSD
--               ('divergence'), JSD = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2, base b
--   hellinger = sqrt(sum (sqrt p - sqrt q)^2) / sqrt 2
--   d1        = sum |p - q|
-- js, hellinger and d1 use the raw proportions (they are finite with empty bins).
-- List functions only, each intermediate list bound once as the parameter of a lambda over
-- a one-element list, so a cell costs time linear in its bins (the former subqueries over
-- unnest were decorrelated into joins and windows keyed on the lists themselves: quadratic
-- in the bins, 3 s for one cell of 8,000 distinct values with binning 'values').
CREATE OR REPLACE MACRO evalstore.binned_scores(
    ref_p, ana_p, zero_bins, epsilon, log_base, js_variant
) AS list_transform(
    -- kept: the bins non-empty on a side, and for 'smallest' the inner ones (neither first
    -- nor last) empty on both; the positions' flags come from lists, not from a lambda
    -- reading ref_p (DuckDB evaluates what a lambda reads again for every element)
    [list_filter(
        list_transform(
            list_zip(ref_p, ana_p, list_transform(range(len(ref_p)), lambda k: k > 0),
                     list_reverse(list_transform(range(len(ref_p)), lambda k: k > 0))),
            lambda b: {'p': b[1], 'q': b[2], 'inner': b[3] AND b[4]}),
        lambda b: b.p > 0 OR b.q > 0 OR (zero_bins = 'smallest' AND b.inner))],
    lambda kept: list_transform(
        -- folded: 'leftover' sums the bins empty on one side into one bin
        [list_concat(
            list_transform(
                list_filter(kept, lambda b: zero_bins IN ('epsilon', 'smallest')
                                            OR (b.p > 0 AND b.q > 0)),
                lambda b: {'p': b.p, 'q': b.q}),
            CASE WHEN zero_bins = 'leftover'
                      AND len(list_filter(kept, lambda b: b.p = 0 OR b.q = 0)) > 0
                 THEN [{'p': list_sum(list_transform(
                            list_filter(kept, lambda b: b.p = 0 OR b.q = 0), lambda b: b.p)),
                        'q': list_sum(list_transform(
                            list_filter(kept, lambda b: b.p = 0 OR b.q = 0), lambda b: b.q))}]
                 ELSE [] END)],
        -- guarded: a zero share replaced by epsilon, or for 'smallest' by the side's
        -- smallest non-zero share / 1e6 when that is <= epsilon (each side's replacement
        -- zipped beside the bins: computed once, not per bin)
        lambda folded: list_transform(
            [list_transform(
                list_zip(
                    folded,
                    list_resize(CAST([] AS DOUBLE[]), len(folded), CAST(CASE
                        WHEN zero_bins = 'smallest' AND list_min(list_filter(
                            list_transform(folded, lambda b: b.p), lambda x: x > 0)) <= epsilon
                        THEN list_min(list_filter(
                            list_transform(folded, lambda b: b.p), lambda x: x > 0)) / 1e6
                        ELSE epsilon END AS DOUBLE)),
                    list_resize(CAST([] AS DOUBLE[]), len(folded), CAST(CASE
                        WHEN zero_bins = 'smallest' AND list_min(list_filter(
                            list_transform(folded, lambda b: b.q), lambda x: x > 0)) <= epsilon
                        THEN list_min(list_filter(
                            list_transform(folded, lambda b: b.q), lambda x: x > 0)) / 1e6
                        ELSE epsilon END AS DOUBLE))),
                lambda z: {'p': CASE WHEN z[1].p > 0 THEN z[1].p ELSE z[2] END,
                           'q': CASE WHEN z[1].q > 0 THEN z[1].q ELSE z[3] END})],
            lambda guarded: {
                'psi': list_sum(list_transform(guarded, lambda b: (b.q - b.p) * ln(b.q / b.p))),
                -- 'smallest' renormalises KL's shares to sum 1 (the sums zipped beside them)
                'kl': list_sum(list_transform(
                    list_zip(guarded,
                             list_resize(CAST([] AS DOUBLE[]), len(guarded),
                                         list_sum(list_transform(guarded, lambda b: b.p))),
                             list_resize(CAST([] AS DOUBLE[]), len(guarded),
                                         list_sum(list_transform(guarded, lambda b: b.q)))),
                    lambda z: CASE WHEN zero_bins = 'smallest' THEN z[1].p / z[2] ELSE z[1].p END
                        * ln(CASE WHEN zero_bins = 'smallest' THEN z[1].p / z[2] ELSE z[1].p END
                             / CASE WHEN zero_bins = 'smallest' THEN z[1].q / z[3]
                                    ELSE z[1].q END)))
                    / ln(log_base),
                'js': list_transform(
                    -- JSD = (KL(p || m) + KL(q || m)) / 2 on the raw shares, m = (p + q) / 2
                    [(list_sum(list_transform(kept, lambda b: CASE WHEN b.p > 0
                          THEN b.p * ln(b.p / ((b.p + b.q) / 2)) ELSE 0 END))
                      + list_sum(list_transform(kept, lambda b: CASE WHEN b.q > 0
                          THEN b.q * ln(b.q / ((b.p + b.q) / 2)) ELSE 0 END)))
                     / 2 / ln(log_base)],
                    lambda jsd: CASE WHEN js_variant = 'divergence' THEN jsd
                                     ELSE sqrt(greatest(jsd, 0)) END)[1],
                'hellinger': sqrt(list_sum(list_transform(
                    kept, lambda b: power(sqrt(b.p) - sqrt(b.q), 2)))) / sqrt(2),
                'd1': list_sum(list_transform(kept, lambda b: abs(b.p - b.q)))
            })[1])[1])[1];
COMMENT ON MACRO evalstore.binned_scores IS
    'PSI, KL, Jensen-Shannon, Hellinger and D1 between two aligned proportion lists.';

-- evalstore.numeric_methods(ks, w1, scores, n_reference, n_analysis, sd, sd_pop, ref_mean,
--     ana_mean, ana_sd, energy, ranks, reason, binning, bins, pooled, zero_bins, epsilon,
--     log_base, js_variant) -> STRUCT(method, variant, value, reason)[]
-- Helper: the method rows of one (window, feature) cell of numeric drift from its
-- statistics: ks (D), w1 (W1), the binned scores (evalstore.binned_scores), the
-- reference's size, sample and population sd and mean, the window's size, mean and
-- sample sd, and energy = {cross: mean |r - a| over all pairs, ref: mean |r - r'|,
-- ana: mean |a - a'|} (self-pairs included), and ranks = {mw: Mann-Whitney U of the
-- reference, sum over its values r of (#a < r + 0.5 #a = r); cvm_u: the Cramer-von Mises
-- U = n_r sum_i (rank(r_(i)) - i)^2 + n_a sum_j (rank(a_(j)) - j)^2 over the pooled
-- midranks} (see evalstore.drift_numeric for both). Shared by
-- evalstore.drift_numeric and evalstore's sorted-array path (evalstore/metrics/drift/numeric.py),
-- so every numeric method is named, normalised and explained in one place. value is NULL
-- when the cell has a reason (no finite values on a side), when the reference is
-- constant for wasserstein 'normed', when its sd is 0 or undefined for zscore, and for
-- welch_t when a side has fewer than 2 values or both are constant with equal means
-- (both constant with different means: +-inf, as scipy).
-- wasserstein appears twice: variant 'raw: ...' and 'normed: ...' (evalstore keeps one).
CREATE OR REPLACE MACRO evalstore.numeric_methods(
    ks, w1, scores, n_reference, n_analysis, sd, sd_pop, ref_mean, ana_mean, ana_sd, energy,
    ranks, reason, binning, bins, pooled, zero_bins, epsilon, log_base, js_variant
) AS list_transform(
    [
        {'method': 'ks', 'variant': 'two-sided KS statistic D (scipy ks_2samp)',
         'value': ks, 'reason': CAST(NULL AS VARCHAR)},
        {'method': 'wasserstein', 'variant': 'raw: W1 (scipy wasserstein_distance)',
         'value': w1, 'reason': NULL},
        {'method': 'wasserstein', 'variant': 'normed: W1 / reference population sd',
         'value': w1 / nullif(sd_pop, 0),
         'reason': CASE WHEN sd_pop = 0 THEN 'constant reference: standard deviation is 0' END},
        {'method': 'zscore', 'variant': '(mean_a - mean_r) / (sd_r / sqrt(n_a)), sd ddof=1',
         'value': (ana_mean - ref_mean) / nullif(sd / sqrt(n_analysis), 0),
         'reason': CASE WHEN sd = 0 OR sd IS NULL
                        THEN 'reference standard deviation is 0 or undefined' END},
        {'method': 'psi', 'variant': 'psi, ln; ' || evalstore.bins_text(binning, bins, pooled)
            || '; ' || evalstore.zero_bins_text(zero_bins, epsilon),
         'value': scores.psi, 'reason': NULL},
        {'method': 'kl', 'variant': 'KL(reference || analysis), '
            || CASE WHEN log_base = 2 THEN 'log2' ELSE 'ln' END || '; '
            || evalstore.bins_text(binning, bins, pooled) || '; '
            || evalstore.zero_bins_text(zero_bins, epsilon),
         'value': scores.kl, 'reason': NULL},
        {'method': 'js', 'variant': 'JS ' || CASE WHEN js_variant = 'divergence'
            THEN 'divergence' ELSE 'distance' END || ', '
            || CASE WHEN log_base = 2 THEN 'log2' ELSE 'ln' END || '; '
            || evalstore.bins_text(binning, bins, pooled),
         'value': scores.js, 'reason': NULL},
        {'method': 'hellinger',
         'variant': 'Hellinger distance; ' || evalstore.bins_text(binning, bins, pooled),
         'value': scores.hellinger, 'reason': NULL},
        {'method': 'd1',
         'variant': 'L1 between binned PDFs; ' || evalstore.bins_text(binning, bins, pooled),
         'value': scores.d1, 'reason': NULL},
        {'method': 'tvd', 'variant': 'total variation distance, 0.5 sum |p - q|; '
            || evalstore.bins_text(binning, bins, pooled),
         'value': scores.d1 / 2, 'reason': NULL},
        {'method': 'welch_t',
         'variant': 'Welch t = (mean_r - mean_a) / sqrt(s_r^2 / n_r + s_a^2 / n_a) '
            || '(scipy ttest_ind(reference, window, equal_var=False))',
         'value': CASE WHEN power(sd, 2) / n_reference + power(ana_sd, 2) / n_analysis > 0
             THEN (ref_mean - ana_mean)
                  / sqrt(power(sd, 2) / n_reference + power(ana_sd, 2) / n_analysis)
             ELSE CAST(sign(ref_mean - ana_mean) AS DOUBLE) * CAST('inf' AS DOUBLE) END,
         'reason': CASE WHEN n_reference < 2 OR n_analysis < 2
                        THEN 'Welch''s t needs at least 2 values on each side'
                        WHEN sd = 0 AND ana_sd = 0 AND ref_mean = ana_mean
                        THEN 'both samples constant and equal: t is 0 / 0' END},
        {'method': 'energy_distance',
         'variant': 'energy distance sqrt(2 E|R - A| - E|R - R''| - E|A - A''|) '
            || '(scipy energy_distance)',
         'value': sqrt(greatest(2 * energy.cross - energy.ref - energy.ana, 0)),
         'reason': NULL},
        {'method': 'mann_whitney',
         'variant': 'Mann-Whitney U of the reference, two-sided (scipy mannwhitneyu, '
            || 'use_continuity=True, method=''auto'': exact without ties when a side has at '
            || 'most 8 values, else normal approximation with tie correction)',
         'value': ranks.mw, 'reason': NULL},
        {'method': 'cramer_von_mises',
         'variant': 'two-sample Cramér-von Mises T (scipy cramervonmises_2samp, '
            || 'method=''auto'': exact p-value up to 20 values per side, else asymptotic)',
         -- T = U / (k N) - (4 k - 1) / (6 N), k = n_r n_a, N = n_r + n_a
         'value': ranks.cvm_u / (CAST(n_reference AS DOUBLE) * n_analysis
                                 * (n_reference + n_analysis))
             - (4.0 * n_reference * n_analysis - 1) / (6.0 * (n_reference + n_analysis)),
         'reason': CASE WHEN n_reference < 2 OR n_analysis < 2
                        THEN 'Cramér-von Mises needs at least 2 values on each side' END}
    ],
    lambda r: {'method': r.method, 'variant': r.variant,
               'value': CASE WHEN reason IS NULL AND r.reason IS NULL
                             THEN CAST(r.value AS DOUBLE) END,
               'reason': coalesce(reason, r.reason)});
COMMENT ON MACRO evalstore.numeric_methods IS
    'Method rows (method, variant, value, reason) of one numeric drift cell from its statistics.';

-- evalstore.bins_text(binning, bins, pooled) -> VARCHAR
-- Helper: the binning part of a binned method's variant name.
CREATE OR REPLACE MACRO evalstore.bins_text(binning, bins, pooled) AS
    CASE binning
        WHEN 'quantile' THEN 'quantile(' || bins || ') bins of the reference'
        WHEN 'edges' THEN 'given edges'
        WHEN 'values' THEN 'one bin per distinct value of both samples'
        WHEN 'sturges_distinct' THEN 'sturges bins (count from the distinct values) of the '
            || CASE WHEN pooled THEN 'pooled samples' ELSE 'reference' END
        WHEN 'fixed' THEN bins || ' equal-width bins of the '
            || CASE WHEN pooled THEN 'pooled samples' ELSE 'reference' END
        ELSE binning || ' bins of the '
            || CASE WHEN pooled THEN 'pooled samples' ELSE 'reference' END
    END;
COMMENT ON MACRO evalstore.bins_text IS 'Binning part of a binned drift method''s variant.';

-- evalstore.zero_bins_text(zero_bins, epsilon) -> VARCHAR
-- Helper: how empty bins were treated, for a variant name.
CREATE OR REPLACE MACRO evalstore.zero_bins_text(zero_bins, epsilon) AS
    CASE zero_bins WHEN 'leftover' THEN 'empty bins folded into a leftover bin'
        WHEN 'smallest' THEN 'empty bins set to the smallest share / 1e6 when <= ' || epsilon
            || ', else ' || epsilon || '; KL renormalised'
        ELSE 'empty bins set to ' || epsilon END;
COMMENT ON MACRO evalstore.zero_bins_text IS 'Empty-bin treatment part of a variant name.';

-- evalstore.drift_numeric(source, ref_env, ref_dataset, ref_start, ref_end, ana_env,
--     ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
--     binning, bins, edges, pooled, zero_bins, epsilon, log_base, js_variant)
-- Drift of every numeric feature in every analysis window, long format: ref_key,
-- window_index, window_start, window_end, feature, version, method, variant, value,
-- n_reference, n_analysis, dof, reason. Methods (R = reference, A = analysis window,
-- F the empirical CDFs of their finite values):
--   ks           D = sup_x |F_R(x) - F_A(x)|, the two-sided statistic of
--                scipy.stats.ks_2samp (its p-value comes from evalstore's Python UDF)
--   wasserstein  W1 = integral |F_R - F_A| dx (scipy.stats.wasserstein_distance); variant
--                'normed' divides by the reference's population standard deviation
--                (NULL with a reason when that is 0)
--   zscore       (mean_A - mean_R) / (sd_R / sqrt(n_A)), sd_R the sample sd (ddof 1)
--   welch_t      Welch's t, (mean_R - mean_A) / sqrt(s_R^2 / n_R + s_A^2 / n_A), sample
--                variances (scipy.stats.ttest_ind(R, A, equal_var=False); its p-value,
--                with the Welch-Satterthwaite dof, comes from evalstore's Python UDF
--                evalstore_welch_pvalue)
--   tvd          total variation distance 0.5 sum |p - q| over the same bins as psi
--   energy_distance  sqrt(2 E|R - A| - E|R - R'| - E|A - A'|) over all pairs (self-pairs
--                included), which is scipy.stats.energy_distance's
--                sqrt(2) sqrt(integral (F_R - F_A)^2 dx); E|R - A| from the same ASOF
--                lookups as W1, E|X - X'| from each sample's sorted distinct values
--   mann_whitney U of the reference, sum over reference values r of
--                (#A < r + 0.5 #A = r) = n_R n_A - sum over window values a of
--                (#R < a + 0.5 #R = a), from the same lookups as KS: the statistic of
--                scipy.stats.mannwhitneyu(R, A) (its p-value, with the tie term
--                sum (t^3 - t) over the pooled tie groups, comes from evalstore's Python
--                UDF evalstore_mannwhitney_pvalue)
--   cramer_von_mises  T = U / (n_R n_A N) - (4 n_R n_A - 1) / (6 N), N = n_R + n_A,
--                U = n_R sum_i (rank(r_(i)) - i)^2 + n_A sum_j (rank(a_(j)) - j)^2 with
--                pooled midranks, scipy.stats.cramervonmises_2samp(R, A)'s statistic: a
--                run of c tied values of one side at v contributes c d^2 + c (c^2 - 1) / 12,
--                d = #other side < v + 0.5 #other side = v, read from the same lookups (its
--                p-value: evalstore_cvm_pvalue); NULL with a reason below 2 values a side
--   psi, kl, js, hellinger, d1   on histograms (evalstore.binned_scores) with bins from
--                `binning`: 'quantile' ([min, reference quantiles i/bins, max]), 'doane',
--                'sturges', 'fixed' (equal width over [min, max] of the reference, or of
--                reference and window together when pooled), 'sturges_distinct' (Sturges'
--                count from the number of distinct values, Evidently's hellinger),
--                'values' (one bin per distinct value of reference and window together,
--                edges the values and nextafter(max)), or 'edges' (the given list).
--                (few_values, and KS/W1 estimated on bins: store.drift only)
--                Bins are [e_i, e_i+1), the last inner one closed, plus open-ended bins
--                below the first and above the last edge that catch mass outside them.
-- KS and W1 are exact: each window's sorted distinct values are looked up (ASOF joins)
-- in the reference's cumulative counts and sums, so the reference is sorted once per
-- feature, not once per window. With G(t) = mean_R(max(t - r, 0)), the integral of F_R
-- up to t, W1 sums over the window's steps [a_j, a_j+1) with level c_j = F_A(a_j):
-- integral |F_R - c| = G(b) - G(a) - c (b - a) + 2 (c (m - a) - (G(m) - G(a))),
-- m = clamp(first r with F_R(r) >= c, a, b); plus G(a_1) below the first step and
-- mean_R(max(r - a_J, 0)) above the last. Sums of r are taken as sums of r - min_R, so
-- W1 keeps its precision when values sit far from 0.
CREATE OR REPLACE MACRO evalstore.drift_numeric(
    source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, previous,
    binning, bins, edges, pooled, zero_bins, epsilon, log_base, js_variant
) AS TABLE
    WITH tagged AS (
        SELECT * FROM evalstore.drift_pairs(
            source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous)
    ),
    cells AS (
        SELECT ref_key, window_index, min(window_start) AS window_start,
               max(window_end) AS window_end, feature, version
        FROM tagged WHERE side = 'analysis'
        GROUP BY ref_key, window_index, feature, version
    ),
    ref_values AS (
        SELECT ref_key, feature, version, value FROM tagged
        WHERE side = 'reference' AND isfinite(value)
    ),
    ana_values AS (
        SELECT ref_key, window_index, feature, version, value FROM tagged
        WHERE side = 'analysis' AND isfinite(value)
    ),
    ref_stats AS (
        SELECT ref_key, feature, version, count(*) AS n, avg(value) AS mean,
               stddev_samp(value) AS sd, stddev_pop(value) AS sd_pop,
               min(value) AS lo, max(value) AS hi,
               evalstore.quantile_edges(value, bins) AS quantile_edges,
               list(DISTINCT value) FILTER (WHERE binning IN ('values', 'sturges_distinct'))
                   AS distinct_values
        FROM ref_values GROUP BY ref_key, feature, version
    ),
    ana_stats AS (
        SELECT ref_key, window_index, feature, version, count(*) AS n, avg(value) AS mean,
               stddev_samp(value) AS sd, min(value) AS lo, max(value) AS hi,
               list(DISTINCT value) FILTER (WHERE binning IN ('values', 'sturges_distinct'))
                   AS distinct_values
        FROM ana_values GROUP BY ref_key, window_index, feature, version
    ),
    -- total: cumulative sum of (value - lo), centred on the reference minimum lo so that
    -- G keeps its precision when values sit far from 0 (e.g. 1e6 + noise)
    ref_ecdf AS (
        SELECT ref_key, feature, version, value, cnt,
               sum(cnt) OVER w AS cum, sum((value - lo) * cnt) OVER w AS total,
               sum(cnt) OVER w / sum(cnt) OVER (PARTITION BY ref_key, feature, version) AS p
        FROM (SELECT ref_key, feature, version, value, count(*) AS cnt,
                     min(value) OVER (PARTITION BY ref_key, feature, version) AS lo
              FROM ref_values GROUP BY ref_key, feature, version, value) AS d
        WINDOW w AS (PARTITION BY ref_key, feature, version ORDER BY value
                     ROWS UNBOUNDED PRECEDING)
    ),
    ref_total AS (
        SELECT ref_key, feature, version, max(total) AS total_all FROM ref_ecdf
        GROUP BY ref_key, feature, version
    ),
    ana_ecdf AS (
        SELECT ref_key, window_index, feature, version, value, cnt,
               sum(cnt) OVER w AS cum, lead(value) OVER w AS next_value
        FROM (SELECT ref_key, window_index, feature, version, value, count(*) AS cnt
              FROM ana_values GROUP BY ref_key, window_index, feature, version, value) AS d
        WINDOW w AS (PARTITION BY ref_key, window_index, feature, version ORDER BY value
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    -- each window point a: reference count/sum at or below a, and G(a)
    looked_up AS (
        SELECT a.*, s.n AS n_ref, na.n AS n_ana, s.lo AS ref_lo,
               coalesce(r.cum, 0) AS ref_le, coalesce(r.total, 0) AS ref_total,
               coalesce(r.cum, 0) - CASE WHEN r.value = a.value THEN r.cnt ELSE 0 END AS ref_lt,
               (coalesce(r.cum, 0) * (a.value - s.lo) - coalesce(r.total, 0)) / s.n AS g
        FROM ana_ecdf AS a
        JOIN ref_stats AS s USING (ref_key, feature, version)
        JOIN ana_stats AS na USING (ref_key, window_index, feature, version)
        ASOF LEFT JOIN ref_ecdf AS r
          ON r.ref_key = a.ref_key AND r.feature = a.feature AND r.version = a.version
         AND a.value >= r.value
    ),
    -- each step [a, next): the first reference value whose F_R reaches the level cum / n_ana
    stepped AS (
        SELECT l.*, c.value AS cross_value,
               (c.cum * (c.value - l.ref_lo) - c.total) / l.n_ref AS cross_g,
               nx.g AS next_g, nx.ref_lt AS next_ref_lt
        FROM looked_up AS l
        ASOF LEFT JOIN ref_ecdf AS c
          ON c.ref_key = l.ref_key AND c.feature = l.feature AND c.version = l.version
         AND l.cum / l.n_ana <= c.p
        LEFT JOIN looked_up AS nx
          ON nx.ref_key = l.ref_key AND nx.window_index = l.window_index
         AND nx.feature = l.feature AND nx.version = l.version AND nx.value = l.next_value
    ),
    exact AS (
        SELECT ref_key, window_index, feature, version,
            max(greatest(abs(ref_le / n_ref - cum / n_ana),
                         abs(ref_lt / n_ref - (cum - cnt) / n_ana))) AS ks,
            sum(CASE
                WHEN next_value IS NULL THEN 0
                ELSE next_g - g - (cum / n_ana) * (next_value - value)
                   + 2 * ((cum / n_ana) * (least(greatest(cross_value, value), next_value) - value)
                   - (CASE WHEN cross_value <= value THEN g
                           WHEN cross_value >= next_value THEN next_g
                           ELSE cross_g END - g))
            END)
            + arg_min(g, value)
            + arg_max((total_all - ref_total - (n_ref - ref_le) * (value - ref_lo)) / n_ref,
                      value) AS w1,
            -- energy: mean |a - r| over all pairs; sum_r |a - r| =
            -- (a - lo) (2 le - n) - 2 T(a) + T_all, T the reference's sums of r - lo
            sum(cnt * ((value - ref_lo) * (2 * ref_le - n_ref) - 2 * ref_total + total_all))
                / (any_value(n_ref) * any_value(n_ana)) AS e_cross,
            -- ranks: each window value a's reference counts below (ref_lt) and equal
            -- (ref_le - ref_lt); U of the window = sum cnt (ref_lt + 0.5 eq)
            sum(cnt * (ref_lt + 0.5 * (ref_le - ref_lt))) AS mw_window,
            -- pooled tie groups: the window's values change the reference's counts t
            sum(power(CAST(ref_le - ref_lt + cnt AS DOUBLE), 3) - (ref_le - ref_lt + cnt)
                - power(CAST(ref_le - ref_lt AS DOUBLE), 3) + (ref_le - ref_lt)) AS tie_delta,
            -- Cramer-von Mises: a run of c tied values at v has midrank rank(v) and sorted
            -- positions centred on rank(v) - d, d = #other < v + 0.5 #other = v, so
            -- sum (rank - i)^2 = c d^2 + c (c^2 - 1) / 12. Window values: d from the
            -- reference; reference values between two window values a < next: d = cum(a),
            -- equal to a: cum(a) - 0.5 cnt(a) (below the first window value d = 0)
            sum(cnt * power(ref_lt + 0.5 * (ref_le - ref_lt), 2)
                + cnt * (power(CAST(cnt AS DOUBLE), 2) - 1) / 12) AS cvm_window,
            sum((coalesce(next_ref_lt, n_ref) - ref_le) * power(CAST(cum AS DOUBLE), 2)
                + (ref_le - ref_lt) * power(cum - 0.5 * cnt, 2)) AS cvm_reference
        FROM (SELECT st.*, t.total_all FROM stepped AS st
              JOIN ref_total AS t USING (ref_key, feature, version)) AS x
        GROUP BY ref_key, window_index, feature, version
    ),
    -- mean |x - x'| over all pairs of a sample (self-pairs included), from its sorted
    -- distinct values v with counts c and cumulative counts: 2 / n^2 sum (v - lo) c
    -- (2 cum - c - n), lo any constant (the sample's minimum)
    ref_spread AS (
        SELECT r.ref_key, r.feature, r.version,
               2 * sum((r.value - s.lo) * r.cnt * (2 * r.cum - r.cnt - s.n))
                   / (any_value(s.n) * any_value(s.n)) AS e_ref,
               -- the reference's own tie groups and Cramer-von Mises runs
               sum(power(CAST(r.cnt AS DOUBLE), 3) - r.cnt) AS ref_ties,
               sum(r.cnt * (power(CAST(r.cnt AS DOUBLE), 2) - 1) / 12) AS ref_runs
        FROM ref_ecdf AS r JOIN ref_stats AS s USING (ref_key, feature, version)
        GROUP BY r.ref_key, r.feature, r.version
    ),
    ana_spread AS (
        SELECT a.ref_key, a.window_index, a.feature, a.version,
               2 * sum((a.value - s.lo) * a.cnt * (2 * a.cum - a.cnt - s.n))
                   / (any_value(s.n) * any_value(s.n)) AS e_ana
        FROM ana_ecdf AS a JOIN ana_stats AS s USING (ref_key, window_index, feature, version)
        GROUP BY a.ref_key, a.window_index, a.feature, a.version
    ),
    -- histogram edges: reference-only, pooled with the window, or given
    edge_lists AS (
        SELECT c.ref_key, c.window_index, c.feature, c.version,
            CASE
                WHEN binning = 'edges' THEN list_sort(list_distinct(edges))
                WHEN binning = 'quantile' THEN s.quantile_edges
                -- one bin per distinct value of both samples: the values, and one edge just
                -- above the largest so that the last (closed) bin holds it alone
                WHEN binning = 'values' THEN list_append(
                    list_sort(list_distinct(list_concat(s.distinct_values, a.distinct_values))),
                    nextafter(greatest(s.hi, a.hi), CAST('inf' AS DOUBLE)))
                -- Sturges' count from the number of distinct values (Evidently's hellinger)
                WHEN binning = 'sturges_distinct' AND pooled THEN evalstore.bin_edges(
                    least(s.lo, a.lo), greatest(s.hi, a.hi),
                    len(list_distinct(list_concat(s.distinct_values, a.distinct_values))),
                    NULL, 'sturges', bins)
                WHEN binning = 'sturges_distinct' THEN evalstore.bin_edges(
                    s.lo, s.hi, len(s.distinct_values), NULL, 'sturges', bins)
                WHEN pooled THEN evalstore.bin_edges(
                    least(s.lo, a.lo), greatest(s.hi, a.hi), s.n + a.n, p.g1, binning, bins)
                ELSE evalstore.bin_edges(s.lo, s.hi, s.n, r.g1, binning, bins)
            END AS edge_list
        FROM cells AS c
        JOIN ref_stats AS s USING (ref_key, feature, version)
        JOIN ana_stats AS a USING (ref_key, window_index, feature, version)
        LEFT JOIN (
            SELECT v.ref_key, v.feature, v.version,
                   avg(power((v.value - s2.mean) / nullif(s2.sd_pop, 0), 3)) AS g1
            FROM ref_values AS v JOIN ref_stats AS s2 USING (ref_key, feature, version)
            WHERE binning = 'doane' AND NOT pooled
            GROUP BY v.ref_key, v.feature, v.version
        ) AS r USING (ref_key, feature, version)
        LEFT JOIN (
            SELECT u.ref_key, u.window_index, u.feature, u.version,
                   avg(power((u.value - u.m) / nullif(u.sd, 0), 3)) AS g1
            FROM (
                SELECT w.ref_key, w.window_index, w.feature, w.version, v.value,
                       avg(v.value) OVER k AS m, stddev_pop(v.value) OVER k AS sd
                FROM (SELECT DISTINCT ref_key, window_index, feature, version FROM cells) AS w
                JOIN (SELECT ref_key, CAST(NULL AS BIGINT) AS window_index, feature, version,
                             value FROM ref_values
                      UNION ALL SELECT * FROM ana_values) AS v
                  ON v.ref_key = w.ref_key AND v.feature = w.feature AND v.version = w.version
                 AND (v.window_index IS NULL OR v.window_index = w.window_index)
                WHERE binning = 'doane' AND pooled
                WINDOW k AS (PARTITION BY w.ref_key, w.window_index, w.feature, w.version)
            ) AS u
            GROUP BY u.ref_key, u.window_index, u.feature, u.version
        ) AS p USING (ref_key, window_index, feature, version)
    ),
    -- cumulative counts at the bin boundaries: below each edge, and at or below the last
    boundaries AS (
        SELECT ref_key, window_index, feature, version, edge, i, len(edge_list) AS n_edges,
               i <= greatest(len(edge_list) - 1, 1) AS use_lt, i = len(edge_list) AS use_le
        FROM (SELECT *, unnest(edge_list) AS edge, generate_subscripts(edge_list, 1) AS i
              FROM edge_lists) AS e
    ),
    ref_at_edges AS (
        SELECT b.*, coalesce(r.cum, 0) AS le,
               coalesce(r.cum, 0) - CASE WHEN r.value = b.edge THEN r.cnt ELSE 0 END AS lt
        FROM boundaries AS b ASOF LEFT JOIN ref_ecdf AS r
          ON r.ref_key = b.ref_key AND r.feature = b.feature AND r.version = b.version
         AND b.edge >= r.value
    ),
    both_at_edges AS (
        SELECT b.*, coalesce(a.cum, 0) AS a_le,
               coalesce(a.cum, 0) - CASE WHEN a.value = b.edge THEN a.cnt ELSE 0 END AS a_lt
        FROM ref_at_edges AS b ASOF LEFT JOIN ana_ecdf AS a
          ON a.ref_key = b.ref_key AND a.window_index = b.window_index
         AND a.feature = b.feature AND a.version = b.version AND b.edge >= a.value
    ),
    cumulative AS (
        SELECT ref_key, window_index, feature, version, i * 2 AS pos, lt AS r, a_lt AS a
        FROM both_at_edges WHERE use_lt
        UNION ALL
        SELECT ref_key, window_index, feature, version, i * 2 + 1, le, a_le
        FROM both_at_edges WHERE use_le
    ),
    histograms AS (
        SELECT c.ref_key, c.window_index, c.feature, c.version,
               list_append(list(c.r - coalesce(c.prev_r, 0) ORDER BY c.pos),
                           any_value(s.n) - max(c.r)) AS r_counts,
               list_append(list(c.a - coalesce(c.prev_a, 0) ORDER BY c.pos),
                           any_value(a.n) - max(c.a)) AS a_counts,
               any_value(s.n) AS n_r, any_value(a.n) AS n_a
        FROM (SELECT *, lag(r) OVER w AS prev_r, lag(a) OVER w AS prev_a FROM cumulative
              WINDOW w AS (PARTITION BY ref_key, window_index, feature, version ORDER BY pos))
             AS c
        JOIN ref_stats AS s USING (ref_key, feature, version)
        JOIN ana_stats AS a USING (ref_key, window_index, feature, version)
        GROUP BY c.ref_key, c.window_index, c.feature, c.version
    ),
    binned AS (
        SELECT ref_key, window_index, feature, version, len(r_counts) AS n_bins,
            evalstore.binned_scores(
                list_transform(r_counts, lambda x: x / n_r),
                list_transform(a_counts, lambda x: x / n_a),
                zero_bins, epsilon, log_base, js_variant) AS scores
        FROM histograms
    ),
    scored AS (
        SELECT c.ref_key, c.window_index, c.window_start, c.window_end, c.feature, c.version,
               coalesce(s.n, 0) AS n_reference, coalesce(a.n, 0) AS n_analysis,
               s.sd, s.sd_pop, s.mean AS ref_mean, a.mean AS ana_mean, a.sd AS ana_sd,
               e.ks, e.w1, b.scores, b.n_bins,
               {'cross': e.e_cross, 'ref': rs.e_ref, 'ana': sa.e_ana} AS energy,
               {'mw': CAST(s.n AS DOUBLE) * a.n - e.mw_window,
                'ties': rs.ref_ties + e.tie_delta,
                'cvm_u': CAST(s.n AS DOUBLE) * (e.cvm_reference + rs.ref_runs)
                         + CAST(a.n AS DOUBLE) * e.cvm_window} AS ranks,
               CASE WHEN s.n IS NULL THEN 'no finite reference values'
                    WHEN a.n IS NULL THEN 'no finite values in the window' END AS reason
        FROM cells AS c
        LEFT JOIN ref_stats AS s USING (ref_key, feature, version)
        LEFT JOIN ana_stats AS a USING (ref_key, window_index, feature, version)
        LEFT JOIN exact AS e USING (ref_key, window_index, feature, version)
        LEFT JOIN binned AS b USING (ref_key, window_index, feature, version)
        LEFT JOIN ref_spread AS rs USING (ref_key, feature, version)
        LEFT JOIN ana_spread AS sa USING (ref_key, window_index, feature, version)
    ),
    methods AS (
        SELECT s.*, unnest(evalstore.numeric_methods(
            s.ks, s.w1, s.scores, s.n_reference, s.n_analysis, s.sd, s.sd_pop, s.ref_mean,
            s.ana_mean, s.ana_sd, s.energy, s.ranks, s.reason, binning, bins, pooled, zero_bins,
            epsilon, log_base, js_variant)) AS m
        FROM scored AS s
    )
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, m.method, m.variant, m.value, n_reference,
        n_analysis, CAST(NULL AS BIGINT) AS dof, m.reason
    FROM methods;
COMMENT ON MACRO TABLE evalstore.drift_numeric IS
    'Numeric drift per window and feature: ks, wasserstein, zscore, welch_t, energy_distance, mann_whitney, cramer_von_mises, psi, kl, js, hellinger, d1, tvd.';
