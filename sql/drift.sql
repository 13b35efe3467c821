-- evalstore macros: univariate drift between a reference and windows of analysis rows.
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
-- renormalisation, as Evidently); 'leftover' folds every bin that is empty on one side
-- into one leftover bin (epsilon again if that is still empty on one side).
--   psi       = sum (q - p) ln(q / p)
--   kl        = sum p log_b(p / q)            KL(reference || analysis), scipy.stats.entropy(p, q, base)
--   js        = sqrt(JSD) ('distance', scipy.spatial.distance.jensenshannon) or JSD
--               ('divergence'), JSD = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2, base b
--   hellinger = sqrt(sum (sqrt p - sqrt q)^2) / sqrt 2
--   d1        = sum |p - q|
-- js, hellinger and d1 use the raw proportions (they are finite with empty bins).
CREATE OR REPLACE MACRO evalstore.binned_scores(
    ref_p, ana_p, zero_bins, epsilon, log_base, js_variant
) AS (
    WITH bins AS (
        SELECT unnest(ref_p) AS p, unnest(ana_p) AS q
    ),
    kept AS (SELECT * FROM bins WHERE p > 0 OR q > 0),
    folded AS (
        SELECT p, q FROM kept WHERE zero_bins = 'epsilon' OR (p > 0 AND q > 0)
        UNION ALL
        SELECT sum(p), sum(q) FROM kept
        WHERE zero_bins = 'leftover' AND (p = 0 OR q = 0) HAVING count(*) > 0
    ),
    guarded AS (
        SELECT CASE WHEN p = 0 THEN epsilon ELSE p END AS p,
               CASE WHEN q = 0 THEN epsilon ELSE q END AS q
        FROM folded
    ),
    mixed AS (
        SELECT p, q, (p + q) / 2 AS m FROM kept
    )
    SELECT {
        'psi': (SELECT sum((q - p) * ln(q / p)) FROM guarded),
        'kl': (SELECT sum(p * ln(p / q)) / ln(log_base) FROM guarded),
        'js': (SELECT CASE WHEN js_variant = 'divergence' THEN jsd ELSE sqrt(greatest(jsd, 0)) END
               FROM (SELECT (sum(CASE WHEN p > 0 THEN p * ln(p / m) ELSE 0 END)
                           + sum(CASE WHEN q > 0 THEN q * ln(q / m) ELSE 0 END))
                           / 2 / ln(log_base) AS jsd FROM mixed) AS j),
        'hellinger': (SELECT sqrt(sum(power(sqrt(p) - sqrt(q), 2))) / sqrt(2) FROM kept),
        'd1': (SELECT sum(abs(p - q)) FROM kept)
    }
);
COMMENT ON MACRO evalstore.binned_scores IS
    'PSI, KL, Jensen-Shannon, Hellinger and D1 between two aligned proportion lists.';

-- evalstore.numeric_methods(ks, w1, scores, n_analysis, sd, sd_pop, ref_mean, ana_mean,
--     reason, binning, bins, pooled, zero_bins, epsilon, log_base, js_variant)
--   -> STRUCT(method, variant, value, reason)[]
-- Helper: the method rows of one (window, feature) cell of numeric drift from its
-- statistics: ks (D), w1 (W1), the binned scores (evalstore.binned_scores), the
-- reference's sample and population sd and mean, the window's mean and size. Shared by
-- evalstore.drift_numeric and evalstore's sorted-array path (evalstore/metrics/drift/numeric.py),
-- so every numeric method is named, normalised and explained in one place. value is NULL
-- when the cell has a reason (no finite values on a side), when the reference is
-- constant for wasserstein 'normed', and when its sd is 0 or undefined for zscore.
-- wasserstein appears twice: variant 'raw: ...' and 'normed: ...' (evalstore keeps one).
CREATE OR REPLACE MACRO evalstore.numeric_methods(
    ks, w1, scores, n_analysis, sd, sd_pop, ref_mean, ana_mean, reason,
    binning, bins, pooled, zero_bins, epsilon, log_base, js_variant
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
         'value': scores.d1, 'reason': NULL}
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
--   psi, kl, js, hellinger, d1   on histograms (evalstore.binned_scores) with bins from
--                `binning`: 'quantile' ([min, reference quantiles i/bins, max]), 'doane',
--                'sturges', 'fixed' (equal width over [min, max] of the reference, or of
--                reference and window together when pooled), or 'edges' (the given list).
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
               evalstore.quantile_edges(value, bins) AS quantile_edges
        FROM ref_values GROUP BY ref_key, feature, version
    ),
    ana_stats AS (
        SELECT ref_key, window_index, feature, version, count(*) AS n, avg(value) AS mean,
               min(value) AS lo, max(value) AS hi
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
               nx.g AS next_g
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
                      value) AS w1
        FROM (SELECT st.*, t.total_all FROM stepped AS st
              JOIN ref_total AS t USING (ref_key, feature, version)) AS x
        GROUP BY ref_key, window_index, feature, version
    ),
    -- histogram edges: reference-only, pooled with the window, or given
    edge_lists AS (
        SELECT c.ref_key, c.window_index, c.feature, c.version,
            CASE
                WHEN binning = 'edges' THEN list_sort(list_distinct(edges))
                WHEN binning = 'quantile' THEN s.quantile_edges
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
               s.sd, s.sd_pop, s.mean AS ref_mean, a.mean AS ana_mean,
               e.ks, e.w1, b.scores, b.n_bins,
               CASE WHEN s.n IS NULL THEN 'no finite reference values'
                    WHEN a.n IS NULL THEN 'no finite values in the window' END AS reason
        FROM cells AS c
        LEFT JOIN ref_stats AS s USING (ref_key, feature, version)
        LEFT JOIN ana_stats AS a USING (ref_key, window_index, feature, version)
        LEFT JOIN exact AS e USING (ref_key, window_index, feature, version)
        LEFT JOIN binned AS b USING (ref_key, window_index, feature, version)
    ),
    methods AS (
        SELECT s.*, unnest(evalstore.numeric_methods(
            s.ks, s.w1, s.scores, s.n_analysis, s.sd, s.sd_pop, s.ref_mean, s.ana_mean,
            s.reason, binning, bins, pooled, zero_bins, epsilon, log_base, js_variant)) AS m
        FROM scored AS s
    )
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, m.method, m.variant, m.value, n_reference,
        n_analysis, CAST(NULL AS BIGINT) AS dof, m.reason
    FROM methods;
COMMENT ON MACRO TABLE evalstore.drift_numeric IS
    'Numeric drift per window and feature: ks, wasserstein, zscore, psi, kl, js, hellinger, d1.';

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
            ELSE 'empty categories set to ' || epsilon END,
         'value': scores.psi, 'dof': NULL, 'reason': NULL},
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
--   psi, js, hellinger   evalstore.binned_scores over the categories
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
