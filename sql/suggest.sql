-- evalstore macros: which unlabeled examples are worth a labeler's time (store.suggest).
--
-- Every score is in [0, 1], higher = more worth labeling. The Python front-end
-- (evalstore/flywheel/suggest/) ranks with these macros, merges strategies (`mix`), runs the
-- greedy k-center of the `diversity` strategy in numpy over a bounded candidate pool, and
-- records the chosen examples in evalstore.label_requests.
--
-- Inside a macro an unqualified name that is also a parameter (version, model, since)
-- means the parameter, so such columns are always qualified.
--
-- Candidates are predictions of one model version with no label (in labels) and no open
-- request (evalstore.label_requests with status 'open'), optionally within a time range of
-- prediction time [since, until) (NULL: open).
--
-- Uncertainty (Settles 2009, "Active Learning Literature Survey", section 3.1), from the
-- positive-class score s of a binary model or the class probabilities p_1 >= p_2 >= ...
-- >= p_K of a multiclass model (renormalised to sum to 1), each scaled to [0, 1]:
--   least_confidence = (1 - p_1) * K / (K - 1)
--   margin           = 1 - (p_1 - p_2)
--   entropy          = -sum_i p_i ln p_i / ln K        (0 ln 0 = 0)
-- For binary models (K = 2, p_1 = max(s, 1 - s)) least confidence and margin coincide:
-- both are 1 - |2s - 1|. NULL when the prediction has no score/probabilities.

-- evalstore.prob_least_confidence(ps) -> DOUBLE
-- Helper (DuckDB-only: list lambdas): (1 - max p) K / (K - 1) of a probability list ps,
-- renormalised to sum 1; NULL when ps has fewer than 2 entries or sums to 0.
CREATE OR REPLACE MACRO evalstore.prob_least_confidence(ps) AS
    CASE WHEN len(ps) > 1 AND list_sum(ps) > 0 THEN
        (1.0 - list_max(ps) / list_sum(ps)) * len(ps) / (len(ps) - 1.0) END;
COMMENT ON MACRO evalstore.prob_least_confidence IS
    'Least confidence (1 - max p) K/(K-1) of a probability list, renormalised.';

-- evalstore.prob_margin(ps) -> DOUBLE
-- Helper (DuckDB-only: list functions): 1 - (p_1 - p_2) of the two largest entries of the
-- probability list ps (renormalised to sum 1); NULL when ps has fewer than 2 entries.
CREATE OR REPLACE MACRO evalstore.prob_margin(ps) AS
    CASE WHEN len(ps) > 1 AND list_sum(ps) > 0 THEN
        1.0 - (list_sort(ps, 'DESC')[1] - list_sort(ps, 'DESC')[2]) / list_sum(ps) END;
COMMENT ON MACRO evalstore.prob_margin IS
    'Margin 1 - (p1 - p2) of the two largest probabilities of a list, renormalised.';

-- evalstore.prob_entropy(ps) -> DOUBLE
-- Helper (DuckDB-only: list lambdas): Shannon entropy of the probability list ps
-- (renormalised to sum 1) divided by ln K, so in [0, 1]; zero entries contribute 0.
CREATE OR REPLACE MACRO evalstore.prob_entropy(ps) AS
    CASE WHEN len(ps) > 1 AND list_sum(ps) > 0 THEN
        list_sum(list_transform(ps, lambda p: CASE WHEN p > 0
            THEN -(p / list_sum(ps)) * ln(p / list_sum(ps)) ELSE 0.0 END)) / ln(len(ps)) END;
COMMENT ON MACRO evalstore.prob_entropy IS
    'Entropy of a probability list / ln K (renormalised), in [0, 1].';

-- evalstore.least_confidence(score, probabilities) -> DOUBLE
-- Least-confidence score of one prediction: from the class probabilities (a MAP) when
-- there are at least two, else from the binary score s as 1 - |2s - 1|.
CREATE OR REPLACE MACRO evalstore.least_confidence(score, probabilities) AS
    CASE WHEN probabilities IS NOT NULL AND cardinality(probabilities) > 1
        THEN evalstore.prob_least_confidence(map_values(probabilities))
        WHEN score IS NOT NULL THEN 1.0 - abs(2.0 * score - 1.0) END;
COMMENT ON MACRO evalstore.least_confidence IS
    'Least confidence (1 - p_max) K/(K-1) of a prediction, in [0, 1].';

-- evalstore.margin(score, probabilities) -> DOUBLE
-- Margin score of one prediction, 1 - (p_1 - p_2): from the class probabilities when
-- there are at least two, else 1 - |2s - 1| from the binary score.
CREATE OR REPLACE MACRO evalstore.margin(score, probabilities) AS
    CASE WHEN probabilities IS NOT NULL AND cardinality(probabilities) > 1
        THEN evalstore.prob_margin(map_values(probabilities))
        WHEN score IS NOT NULL THEN 1.0 - abs(2.0 * score - 1.0) END;
COMMENT ON MACRO evalstore.margin IS
    'Margin 1 - (p1 - p2) of a prediction, in [0, 1].';

-- evalstore.entropy(score, probabilities) -> DOUBLE
-- Normalised entropy of one prediction: -sum p ln p / ln K from the class probabilities,
-- else -(s ln s + (1 - s) ln (1 - s)) / ln 2 from the binary score (0 at s in {0, 1}).
CREATE OR REPLACE MACRO evalstore.entropy(score, probabilities) AS
    CASE WHEN probabilities IS NOT NULL AND cardinality(probabilities) > 1
        THEN evalstore.prob_entropy(map_values(probabilities))
        WHEN score IS NOT NULL THEN
            (CASE WHEN score > 0 AND score < 1
                THEN -(score * ln(score) + (1.0 - score) * ln(1.0 - score)) / ln(2.0)
                ELSE 0.0 END) END;
COMMENT ON MACRO evalstore.entropy IS
    'Normalised entropy -sum p ln p / ln K of a prediction, in [0, 1].';

-- evalstore.suggest_candidates(model, version, since, until)
-- Predictions of `version` (every version when NULL) that may be suggested: their example
-- has no label in <model>.labels and no open request in evalstore.label_requests, and
-- since <= ts < until (NULL bounds are open). Columns: example_id, version, ts, prediction,
-- score, probabilities, example_key (examples are compared by their key; a request's key
-- is spelled out from the hex digits of md5_number, the same UUID as
-- CAST(md5_number(id) AS UUID) at ingest, because DuckDB 1.4 has no UHUGEINT -> UUID cast).
CREATE OR REPLACE MACRO evalstore.suggest_candidates(model, version, since, until) AS TABLE
    SELECT p.example_id, p.version, p.ts, p.prediction, p.score, p.probabilities,
           p.example_key
    FROM evalstore.model_table(model, 'predictions') AS p
    WHERE (version IS NULL OR p.version = version)
      AND (since IS NULL OR p.ts >= since)
      AND (until IS NULL OR p.ts < until)
      AND NOT EXISTS (
          SELECT 1 FROM evalstore.model_table(model, 'labels') AS l
          WHERE l.example_key = p.example_key)
      AND NOT EXISTS (
          SELECT 1 FROM evalstore.label_requests AS r
          WHERE r.model = model AND r.status = 'open'
            AND CAST(regexp_replace(lpad(to_hex(md5_number(r.example_id)), 32, '0'),
                                    '^(.{8})(.{4})(.{4})(.{4})', '\1-\2-\3-\4-') AS UUID)
                = p.example_key);
COMMENT ON MACRO TABLE evalstore.suggest_candidates IS
    'Unlabeled predictions without an open request. Args: model, version, since, until.';

-- evalstore.suggest_uncertainty(model, version, since, until)
-- The candidates (evalstore.suggest_candidates) with their uncertainty scores:
-- example_id, version, ts, prediction, score, probabilities, least_confidence, margin,
-- entropy, example_key.
CREATE OR REPLACE MACRO evalstore.suggest_uncertainty(model, version, since, until) AS TABLE
    SELECT
        c.example_id, c.version, c.ts, c.prediction, c.score, c.probabilities,
        evalstore.least_confidence(c.score, c.probabilities) AS least_confidence,
        evalstore.margin(c.score, c.probabilities) AS margin,
        evalstore.entropy(c.score, c.probabilities) AS entropy, c.example_key
    FROM evalstore.suggest_candidates(model, version, since, until) AS c;
COMMENT ON MACRO TABLE evalstore.suggest_uncertainty IS
    'Candidates with least_confidence, margin and entropy. Args: model, version, since, until.';

-- evalstore.suggest_committee(model, since, until)
-- Query-by-committee (Seung, Opper & Sompolinsky 1992; vote entropy of Dagan & Engelson
-- 1995) over the versions that predicted the same candidate example (at least two):
--   versions       V, the number of versions that predicted it
--   vote_entropy   -sum_c (v_c / V) ln (v_c / V) / ln min(V, K), K the number of classes
--                  voted anywhere in the model's candidates (>= 2), v_c the votes for
--                  class c; 0 when all agree, 1 when the votes spread evenly
--   score_spread   max - min over the versions of the score (binary: positive-class
--                  probability; multiclass: probability of the majority class, read
--                  from `probabilities`); 0 when scores are missing
--   committee      (vote_entropy + score_spread) / 2, in [0, 1]
--   majority       the most voted class (ties: the smallest class text)
--   example_key    the example's key (the examples are grouped by it)
-- Regression models (DOUBLE predictions): vote_entropy is 0 (distinct values are not
-- votes) and score_spread is (max - min) / (max - min + |mean|) of the predicted values.
CREATE OR REPLACE MACRO evalstore.suggest_committee(model, since, until) AS TABLE
    WITH c AS (
        SELECT example_id, example_key, version, CAST(prediction AS VARCHAR) AS vote, score,
               probabilities, TRY_CAST(prediction AS DOUBLE) AS value,
               typeof(prediction) = 'DOUBLE' AS regression
        FROM evalstore.suggest_candidates(model, NULL, since, until)
    ),
    multi AS (
        SELECT example_key, any_value(example_id) AS example_id, count(*) AS versions
        FROM c GROUP BY example_key HAVING count(*) > 1
    ),
    classes AS (SELECT greatest(count(DISTINCT vote), 2) AS k FROM c),
    votes AS (
        SELECT c.example_key, c.vote, count(*) AS n
        FROM c JOIN multi ON multi.example_key = c.example_key
        GROUP BY c.example_key, c.vote
    ),
    majority AS (
        SELECT example_key, vote AS majority FROM (
            SELECT example_key, vote, row_number() OVER (
                PARTITION BY example_key ORDER BY n DESC, vote) AS r
            FROM votes) AS ranked
        WHERE r = 1
    ),
    vote_stats AS (
        SELECT v.example_key, any_value(m.example_id) AS example_id, any_value(m.versions)
                   AS versions,
               sum(-(v.n * 1.0 / m.versions) * ln(v.n * 1.0 / m.versions)) AS h
        FROM votes AS v JOIN multi AS m ON m.example_key = v.example_key
        GROUP BY v.example_key
    ),
    spreads AS (
        SELECT c.example_key,
               max(CASE WHEN c.probabilities IS NOT NULL
                   THEN evalstore.class_probability(c.probabilities, mj.majority)
                   ELSE c.score END)
               - min(CASE WHEN c.probabilities IS NOT NULL
                   THEN evalstore.class_probability(c.probabilities, mj.majority)
                   ELSE c.score END) AS prob_spread,
               (max(c.value) - min(c.value))
               / nullif(max(c.value) - min(c.value) + abs(avg(c.value)), 0) AS value_spread,
               count(c.score) + count(c.probabilities) AS scored,
               bool_and(c.regression) AS regression
        FROM c JOIN majority AS mj ON mj.example_key = c.example_key
        GROUP BY c.example_key
    ),
    rated AS (
        SELECT s.example_key, s.example_id, s.versions,
               CASE WHEN sp.regression THEN 0.0 ELSE s.h / ln(least(s.versions, k.k)) END
                   AS vote_entropy,
               coalesce(CASE WHEN sp.scored > 0 THEN sp.prob_spread ELSE sp.value_spread END,
                        0.0) AS score_spread
        FROM vote_stats AS s
        CROSS JOIN classes AS k
        JOIN spreads AS sp ON sp.example_key = s.example_key
    )
    SELECT r.example_id, r.versions, r.vote_entropy, r.score_spread,
           (r.vote_entropy + r.score_spread) / 2.0 AS committee, mj.majority, r.example_key
    FROM rated AS r
    JOIN majority AS mj ON mj.example_key = r.example_key;
COMMENT ON MACRO TABLE evalstore.suggest_committee IS
    'Disagreement between versions on each candidate (vote entropy, score spread). Args: model, since, until.';

-- Novelty: how unusual an example's features are against a reference (training rows by
-- default). For a numeric feature, F(x) is the reference ECDF approximated by linear
-- interpolation between the reference quantiles at the grid
--   0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1
-- (quantile_cont, numpy's 'linear'), and the two-sided tail t = 2 min(F, 1 - F); outside
-- the reference's [min, max] t = 0 (out of range). For a categorical feature, t is the
-- reference share of all categories at most as frequent as the example's (the p-value of
-- drawing a category this rare), 0 for a category never seen in the reference.
-- The feature's rarity is the surprisal of t, scaled to [0, 1] by the largest surprisal
-- an n-row reference can resolve:
--   rarity = ln(1 / max(t, 1 / (n + 1))) / ln(n + 1)
-- so out-of-range values and unseen categories score 1 and the median scores 0. An
-- example's novelty is the mean rarity over its non-NULL features (the mean -ln p of
-- Fisher's combination, rescaled).

-- evalstore.surprisal(t, n) -> DOUBLE
-- Rarity of a tail probability t against an n-row reference: ln(1 / max(t, 1/(n+1))) /
-- ln(n + 1), in [0, 1]; NULL when t is NULL or n < 1.
CREATE OR REPLACE MACRO evalstore.surprisal(t, n) AS
    CASE WHEN t IS NOT NULL AND n >= 1
        THEN ln(1.0 / greatest(t, 1.0 / (n + 1.0))) / ln(n + 1.0) END;
COMMENT ON MACRO evalstore.surprisal IS
    'ln(1/max(t, 1/(n+1))) / ln(n+1): rarity of tail probability t, in [0, 1].';

-- evalstore.tie_mid(v, q0, ..., q10) -> DOUBLE
-- Helper: for v one of the 11 reference quantiles q0..q10 at the novelty grid (0, .001,
-- .01, .05, .25, .5, .75, .95, .99, .999, 1), the middle of the grid probabilities of the
-- quantiles equal to v: (first + last) / 2. A value many reference rows share (0 of a
-- count) is several quantiles at once; F there is the middle of that run. NULL when v
-- is none of them. Its arguments are the call's constants, so it folds.
CREATE OR REPLACE MACRO evalstore.tie_mid(v, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10) AS
    (CASE
        WHEN q0 = v THEN 0
        WHEN q1 = v THEN 0.001
        WHEN q2 = v THEN 0.01
        WHEN q3 = v THEN 0.05
        WHEN q4 = v THEN 0.25
        WHEN q5 = v THEN 0.5
        WHEN q6 = v THEN 0.75
        WHEN q7 = v THEN 0.95
        WHEN q8 = v THEN 0.99
        WHEN q9 = v THEN 0.999
        WHEN q10 = v THEN 1 END
     + CASE
        WHEN q10 = v THEN 1
        WHEN q9 = v THEN 0.999
        WHEN q8 = v THEN 0.99
        WHEN q7 = v THEN 0.95
        WHEN q6 = v THEN 0.75
        WHEN q5 = v THEN 0.5
        WHEN q4 = v THEN 0.25
        WHEN q3 = v THEN 0.05
        WHEN q2 = v THEN 0.01
        WHEN q1 = v THEN 0.001
        WHEN q0 = v THEN 0 END) / 2.0;
COMMENT ON MACRO evalstore.tie_mid IS
    'Middle grid probability of the run of reference quantiles equal to v (ties).';

-- evalstore.reference_cdf(x, q0, ..., q10) -> DOUBLE
-- Helper: F(x) for q0 <= x <= q10 against the 11 reference grid quantiles: linear
-- between two distinct quantiles (each branch divides by q(k+1) - q(k) > 0), and at a
-- quantile the middle of its run of ties (evalstore.tie_mid), so F is p(k) at an untied
-- quantile. Split at q5 so that a value takes about 6 comparisons.
CREATE OR REPLACE MACRO evalstore.reference_cdf(x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10) AS
    CASE
        WHEN x <= q5 THEN CASE
            WHEN x = q0 THEN evalstore.tie_mid(q0, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q1 THEN 0.001 * (x - q0) / (q1 - q0)
            WHEN x = q1 THEN evalstore.tie_mid(q1, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q2 THEN 0.001 + 0.009 * (x - q1) / (q2 - q1)
            WHEN x = q2 THEN evalstore.tie_mid(q2, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q3 THEN 0.01 + 0.04 * (x - q2) / (q3 - q2)
            WHEN x = q3 THEN evalstore.tie_mid(q3, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q4 THEN 0.05 + 0.2 * (x - q3) / (q4 - q3)
            WHEN x = q4 THEN evalstore.tie_mid(q4, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q5 THEN 0.25 + 0.25 * (x - q4) / (q5 - q4)
            ELSE evalstore.tie_mid(q5, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10) END
        ELSE CASE
            WHEN x < q6 THEN 0.5 + 0.25 * (x - q5) / (q6 - q5)
            WHEN x = q6 THEN evalstore.tie_mid(q6, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q7 THEN 0.75 + 0.2 * (x - q6) / (q7 - q6)
            WHEN x = q7 THEN evalstore.tie_mid(q7, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q8 THEN 0.95 + 0.04 * (x - q7) / (q8 - q7)
            WHEN x = q8 THEN evalstore.tie_mid(q8, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q9 THEN 0.99 + 0.009 * (x - q8) / (q9 - q8)
            WHEN x = q9 THEN evalstore.tie_mid(q9, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10)
            WHEN x < q10 THEN 0.999 + 0.001 * (x - q9) / (q10 - q9)
            ELSE evalstore.tie_mid(q10, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10) END
    END;
COMMENT ON MACRO evalstore.reference_cdf IS
    'F(x) between 11 reference grid quantiles; at a quantile, the middle of its run of ties.';

-- evalstore.reference_tail(x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, floor) -> DOUBLE
-- Helper: max(t, floor) for the two-sided tail t = 2 min(F(x), 1 - F(x)) of x against the
-- 11 reference quantiles q0..q10 at the novelty grid, F interpolated linearly between
-- them; at a run of tied quantiles (x equal to a value many reference rows share) F is
-- the middle of the run's grid probabilities (evalstore.reference_cdf): a value held by
-- 30% of the reference is not rare. t = 0 outside [q0, q10] (out of range). NULL when x
-- is NULL. Scalar quantiles (not a list) so that
-- they fold into constants: this runs once per serving value. For x strictly between
-- q(k) and q(10 - k), F lies between their grid probabilities (the bound the novelty
-- search prunes with).
CREATE OR REPLACE MACRO evalstore.reference_tail(
    x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, floor
) AS
    CASE
        WHEN x IS NULL THEN NULL
        WHEN x < q0 OR x > q10 THEN floor  -- NaN sorts above every number
        ELSE greatest(floor, 1.0 - abs(2.0 * evalstore.reference_cdf(
            x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10) - 1.0))
    END;
COMMENT ON MACRO evalstore.reference_tail IS
    'max(floor, two-sided tail of x) against 11 reference grid quantiles; floor out of range.';

-- evalstore.numeric_rarity(x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, n) -> DOUBLE
-- Rarity of numeric value x against a reference of n finite values with grid quantiles
-- q0..q10 (the list q of evalstore.novelty_reference): evalstore.surprisal of its
-- two-sided tail (evalstore.reference_tail), written as ln(max(t, f)) / ln(f) with f = 1 / (n + 1); 1
-- outside the reference range (NaN and +-inf included); NULL for NULL x or n < 1.
CREATE OR REPLACE MACRO evalstore.numeric_rarity(
    x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, n
) AS
    CASE WHEN n >= 1 THEN
        ln(evalstore.reference_tail(x, q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, q10,
            1.0 / (n + 1.0))) / ln(1.0 / (n + 1.0)) END;
COMMENT ON MACRO evalstore.numeric_rarity IS
    'Rarity in [0, 1] of x against reference grid quantiles q0..q10 of n values; 1 out of range.';

-- evalstore.novelty_reference(model, ref_env, ref_dataset, ref_start, ref_end)
-- Reference statistics of each numeric feature for evalstore.numeric_rarity: rows of
-- <model>.numeric_values (features only) with env = ref_env, dataset = ref_dataset,
-- ref_start <= ts < ref_end (each filter skipped when NULL), finite values only:
--   feature, n (finite values), q (the 11 grid quantiles, quantile_cont), lo, hi.
-- Features without a finite reference value do not appear.
CREATE OR REPLACE MACRO evalstore.novelty_reference(
    model, ref_env, ref_dataset, ref_start, ref_end
) AS TABLE
    SELECT
        feature, count(*) AS n,
        quantile_cont(value, [0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0])
            AS q,
        min(value) AS lo, max(value) AS hi
    FROM evalstore.model_table(model, 'numeric_values')
    WHERE version IS NULL AND feature NOT IN ('score', 'prediction', 'label')
      AND isfinite(value)
      AND (ref_env IS NULL OR env = ref_env)
      AND (ref_dataset IS NULL OR dataset = ref_dataset)
      AND (ref_start IS NULL OR ts >= ref_start)
      AND (ref_end IS NULL OR ts < ref_end)
    GROUP BY feature;
COMMENT ON MACRO TABLE evalstore.novelty_reference IS
    'Grid quantiles of each numeric feature in the reference. Args: model, ref_env, ref_dataset, ref_start, ref_end.';

-- evalstore.novelty_categories(model, ref_env, ref_dataset, ref_start, ref_end)
-- Reference statistics of each categorical feature: one row per (feature, category) of
-- the reference rows (filters as in evalstore.novelty_reference; NULLs left out):
--   feature, category, n (non-NULL reference values of the feature), share (category's
--   share), tail (sum of the shares of the categories with share <= this one's), rarity
--   (evalstore.surprisal(tail, n)). A category absent here is unseen: rarity 1.
CREATE OR REPLACE MACRO evalstore.novelty_categories(
    model, ref_env, ref_dataset, ref_start, ref_end
) AS TABLE
    WITH counts AS (
        SELECT feature, value AS category, count(*) AS c
        FROM evalstore.model_table(model, 'category_values')
        WHERE version IS NULL AND feature NOT IN ('prediction', 'label')
          AND value IS NOT NULL
          AND (ref_env IS NULL OR env = ref_env)
          AND (ref_dataset IS NULL OR dataset = ref_dataset)
          AND (ref_start IS NULL OR ts >= ref_start)
          AND (ref_end IS NULL OR ts < ref_end)
        GROUP BY feature, value
    ),
    shares AS (
        SELECT feature, category, sum(c) OVER (PARTITION BY feature) AS n,
               c * 1.0 / sum(c) OVER (PARTITION BY feature) AS share
        FROM counts
    ),
    tails AS (
        SELECT feature, category, n, share,
               sum(share) OVER (PARTITION BY feature ORDER BY share
                   RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS tail
        FROM shares
    )
    SELECT feature, category, n, share, least(tail, 1.0) AS tail,
           evalstore.surprisal(least(tail, 1.0), n) AS rarity
    FROM tails;
COMMENT ON MACRO TABLE evalstore.novelty_categories IS
    'Share, tail and rarity of each reference category. Args: model, ref_env, ref_dataset, ref_start, ref_end.';

-- evalstore.suggest_slice_needs(model, version, slice_source, prior)
-- Which slices most need labels. slice_source names a relation (example_key, slice) of the
-- serving examples (the Python front-end passes a view of one or more feature columns),
-- e.g. SELECT example_key, region AS slice FROM fraud.features WHERE env = 'serving'.
-- The joins compare example_key (md5_number(example_id), see evalstore/core/layout.py).
-- Per slice:
--   examples   serving examples in the slice
--   labeled    of them, with a label (latest label wins)
--   coverage   labeled / examples
--   errors     labeled examples `version` got wrong (classification: the logged prediction
--              <> label; a binary row logged with a score but no prediction is decided by
--              score >= the version's registered threshold, as
--              evalstore.performance_binary does; regression: sum of |prediction - label|)
--   error_rate (errors + prior * overall) / (labeled + prior): the slice's error rate
--              (mean absolute error for regression) shrunk towards the overall one
--   need       (1 - coverage) / 2 + relative / 2, relative = error_rate / (error_rate +
--              overall) (0.5 when the slice is average or nothing is labeled), in [0, 1]
-- A NULL slice value is a slice of its own.
CREATE OR REPLACE MACRO evalstore.suggest_slice_needs(model, version, slice_source, prior) AS TABLE
    WITH s AS NOT MATERIALIZED (
        SELECT example_key, slice FROM evalstore.relation(slice_source)
    ),
    sizes AS (SELECT slice, count(*) AS examples FROM s GROUP BY slice),
    labeled AS (
        SELECT s.slice,
               CASE WHEN p.example_key IS NULL THEN NULL
                    WHEN TRY_CAST(l.label AS DOUBLE) IS NOT NULL
                         AND typeof(l.label) = 'DOUBLE'
                    THEN abs(TRY_CAST(p.prediction AS DOUBLE) - TRY_CAST(l.label AS DOUBLE))
                    WHEN p.prediction IS NULL AND p.score IS NOT NULL AND g.task = 'binary'
                    THEN CASE WHEN (p.score >= g.threshold)
                                   = (CAST(l.label AS VARCHAR) = g.positive_class)
                              THEN 0.0 ELSE 1.0 END
                    WHEN CAST(p.prediction AS VARCHAR) = CAST(l.label AS VARCHAR) THEN 0.0
                    ELSE 1.0 END AS err
        FROM evalstore.model_table(model, 'labels_latest') AS l
        JOIN s ON s.example_key = l.example_key
        LEFT JOIN evalstore.model_table(model, 'predictions') AS p
            ON p.example_key = l.example_key AND p.version = version
        LEFT JOIN evalstore.relation('evalstore.models') AS g
            ON g.model = model AND g.version = version
    ),
    per_slice AS (
        SELECT slice, count(*) AS labeled, count(err) AS judged, sum(err) AS errors
        FROM labeled GROUP BY slice
    ),
    overall AS (SELECT sum(err) / nullif(count(err), 0) AS rate FROM labeled),
    joined AS (
        SELECT z.slice, z.examples, coalesce(ps.labeled, 0) AS labeled,
               coalesce(ps.judged, 0) AS judged, coalesce(ps.errors, 0.0) AS errors,
               o.rate AS overall
        FROM sizes AS z
        CROSS JOIN overall AS o
        LEFT JOIN per_slice AS ps ON ps.slice IS NOT DISTINCT FROM z.slice
    ),
    rated AS (
        SELECT *, labeled * 1.0 / examples AS coverage,
               (errors + prior * overall) / nullif(judged + prior, 0) AS error_rate
        FROM joined
    )
    SELECT slice, examples, labeled, coverage, errors, error_rate,
           (1.0 - least(coverage, 1.0)) / 2.0
           + coalesce(error_rate / nullif(error_rate + overall, 0), 0.5) / 2.0 AS need
    FROM rated;
COMMENT ON MACRO TABLE evalstore.suggest_slice_needs IS
    'Label coverage, shrunk error rate and need of each slice. Args: model, version, slice_source, prior.';

-- evalstore.dhondt_priority(need, rank) -> DOUBLE
-- Highest-averages (D'Hondt) apportionment: the rank-th pick of a slice (or strategy) with
-- weight `need` gets priority need / rank; taking the k largest priorities gives each
-- slice a share of k proportional to its need (as far as it has candidates).
CREATE OR REPLACE MACRO evalstore.dhondt_priority(need, rank) AS need / rank;
COMMENT ON MACRO evalstore.dhondt_priority IS
    'need / rank: D''Hondt priority spreading a budget in proportion to need.';

-- evalstore.pick_order(example_id, seed) -> UBIGINT
-- Helper (DuckDB-only: hash): a pseudo-random but reproducible order of examples for a
-- seed, from their id or their example_key (cheaper to hash); random picks and ties are
-- ordered by it.
CREATE OR REPLACE MACRO evalstore.pick_order(example_id, seed) AS
    hash(example_id, seed);
COMMENT ON MACRO evalstore.pick_order IS
    'Reproducible pseudo-random order of example ids for a seed (hash).';
