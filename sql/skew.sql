-- evalstore macros: training/serving skew, per feature, for examples logged in both envs.
--
-- Input: the long-format views <model>.numeric_values and <model>.category_values
-- (example_id, env, dataset, ts, version, feature, value), named by `numeric_source` and
-- `category_source`. Python's store.skew() passes the model's views, or temporary views
-- restricted to a `where` predicate / the examples one version predicted; SQL users pass
-- e.g. 'fraud.numeric_values', 'fraud.category_values'.
--
-- An example is compared when the same example_id has a training row and a serving row
-- (ids are unique per env, so there is at most one pair per example); training rows are
-- those of dataset `train_dataset` (NULL: every training row). Each feature of the pair
-- is compared, the training value being the reference:
--   numeric      values match when serving = training (also the same infinity), or both
--                are finite and |serving - training| <= atol + rtol * |training|: exactly
--                numpy.isclose(serving, training, rtol=rtol, atol=atol, equal_nan=equal_nan)
--                (an infinity matches only the same infinity; NaN matches NaN when
--                equal_nan, else never). Values are compared as DOUBLE.
--   categorical  exact equality of the text (booleans as 'true' / 'false'); case and
--                whitespace count.
--   nulls        NULL vs NULL matches; NULL vs a value (NaN included) is a mismatch of
--                kind 'null'; every other mismatch is of kind 'value'.
-- The model's outputs (score, prediction, label) are not features and are left out.

-- evalstore.smallest(x, n) -> LIST
-- Helper (aggregate; DuckDB's top-n min): the n smallest non-NULL values of x in the
-- group, ascending; NULL when there is none. The deterministic sample of offending ids.
CREATE OR REPLACE MACRO evalstore.smallest(x, n) AS min(x, n);
COMMENT ON MACRO evalstore.smallest IS
    'Aggregate: the n smallest non-NULL values of x, ascending (NULL when none).';

-- evalstore.listed(x, xs) -> BOOLEAN
-- Helper: true when the list xs is NULL (no restriction) or holds x (DuckDB's
-- list_contains; `x IN (...)` of a literal list elsewhere).
CREATE OR REPLACE MACRO evalstore.listed(x, xs) AS
    xs IS NULL OR list_contains(xs, x);
COMMENT ON MACRO evalstore.listed IS 'True when xs is NULL or contains x.';

-- evalstore.skew_pairs(numeric_source, category_source, train_dataset, features, atol,
--                      rtol, equal_nan)
-- One row per example logged in both training and serving and per feature (of the list
-- `features`; NULL: every feature):
--   feature, kind ('numeric' | 'categorical'), example_id,
--   training_value, serving_value   as text (numbers cast from DOUBLE),
--   abs_diff       |serving - training| for numeric pairs (NULL otherwise),
--   mismatch_kind  NULL when the values match, 'null' when exactly one side is NULL,
--                  'value' when both are present and differ (see the file header for
--                  the tolerance),
--   serving_ts     the serving row's event time (ts): the time the pair is windowed by.
CREATE OR REPLACE MACRO evalstore.skew_pairs(
    numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan
) AS TABLE
    WITH numeric_training AS (
        SELECT v.example_id, v.feature, v.value FROM evalstore.relation(numeric_source) AS v
        WHERE v.env = 'training' AND v.version IS NULL AND v.feature <> 'label'
          AND evalstore.listed(v.feature, features)
          AND (train_dataset IS NULL OR v.dataset = train_dataset)
    ),
    numeric_serving AS (
        SELECT v.example_id, v.feature, v.value, v.ts
        FROM evalstore.relation(numeric_source) AS v
        WHERE v.env = 'serving' AND v.version IS NULL AND v.feature <> 'label'
          AND evalstore.listed(v.feature, features)
    ),
    category_training AS (
        SELECT v.example_id, v.feature, v.value FROM evalstore.relation(category_source) AS v
        WHERE v.env = 'training' AND v.version IS NULL AND v.feature <> 'label'
          AND evalstore.listed(v.feature, features)
          AND (train_dataset IS NULL OR v.dataset = train_dataset)
    ),
    category_serving AS (
        SELECT v.example_id, v.feature, v.value, v.ts
        FROM evalstore.relation(category_source) AS v
        WHERE v.env = 'serving' AND v.version IS NULL AND v.feature <> 'label'
          AND evalstore.listed(v.feature, features)
    )
    SELECT t.feature, 'numeric' AS kind, t.example_id,
           CAST(t.value AS VARCHAR) AS training_value, CAST(s.value AS VARCHAR) AS serving_value,
           abs(s.value - t.value) AS abs_diff,
           CASE WHEN t.value IS NULL AND s.value IS NULL THEN NULL
                WHEN t.value IS NULL OR s.value IS NULL THEN 'null'
                WHEN isnan(t.value) AND isnan(s.value) THEN
                     CASE WHEN equal_nan THEN NULL ELSE 'value' END
                WHEN isnan(t.value) OR isnan(s.value) THEN 'value'
                WHEN s.value = t.value THEN NULL
                WHEN isinf(t.value) OR isinf(s.value) THEN 'value'
                WHEN abs(s.value - t.value) <= atol + rtol * abs(t.value) THEN NULL
                ELSE 'value' END AS mismatch_kind,
           s.ts AS serving_ts
    FROM numeric_training AS t
    JOIN numeric_serving AS s ON s.example_id = t.example_id AND s.feature = t.feature
    UNION ALL
    SELECT t.feature, 'categorical' AS kind, t.example_id, t.value, s.value,
           CAST(NULL AS DOUBLE),
           CASE WHEN t.value IS NULL AND s.value IS NULL THEN NULL
                WHEN t.value IS NULL OR s.value IS NULL THEN 'null'
                WHEN t.value = s.value THEN NULL
                ELSE 'value' END,
           s.ts
    FROM category_training AS t
    JOIN category_serving AS s ON s.example_id = t.example_id AND s.feature = t.feature;
COMMENT ON MACRO TABLE evalstore.skew_pairs IS
    'Training vs serving value of each feature for examples in both envs, with mismatch_kind and the serving ts. Args: numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan.';

-- evalstore.skew_windows(numeric_source, category_source, train_dataset, features, atol,
--                        rtol, equal_nan, width)
-- The counts of evalstore.skew per feature and window of serving time: each pair of
-- evalstore.skew_pairs is counted in the window of `width` (an interval string such as
-- '1 hour'; aligned as evalstore.window_start) holding its serving row's ts. Pairs whose
-- serving ts is NULL are left out. Per feature and window with at least one pair:
--   feature, kind, window_start, window_end,
--   n_compared, n_mismatch, n_null_mismatch, share_mismatch (n_mismatch / n_compared),
--   max_abs_diff   as in evalstore.skew, over the window's pairs.
-- So a window's share is the share of the examples served in it whose serving value
-- differs from the training value: the series a skew monitor judges.
CREATE OR REPLACE MACRO evalstore.skew_windows(
    numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan, width
) AS TABLE
    WITH pairs AS (
        SELECT p.feature, p.kind, p.mismatch_kind, p.abs_diff,
               evalstore.window_start(p.serving_ts, width) AS window_start
        FROM evalstore.skew_pairs(
            numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan)
            AS p
        WHERE p.serving_ts IS NOT NULL
    )
    SELECT feature, kind, window_start, evalstore.window_end(window_start, width) AS window_end,
           count(*) AS n_compared,
           CAST(sum(CASE WHEN mismatch_kind IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT)
               AS n_mismatch,
           CAST(sum(CASE WHEN mismatch_kind = 'null' THEN 1 ELSE 0 END) AS BIGINT)
               AS n_null_mismatch,
           sum(CASE WHEN mismatch_kind IS NOT NULL THEN 1 ELSE 0 END) / count(*)
               AS share_mismatch,
           max(CASE WHEN mismatch_kind = 'value' AND NOT isnan(abs_diff) THEN abs_diff END)
               AS max_abs_diff
    FROM pairs
    GROUP BY feature, kind, window_start
    ORDER BY window_start, feature;
COMMENT ON MACRO TABLE evalstore.skew_windows IS
    'Training/serving skew counts per feature and window of serving time. Args: numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan, width.';

-- evalstore.skew(numeric_source, category_source, train_dataset, features, atol, rtol,
--                equal_nan, n_sample)
-- Per feature, one pass (one GROUP BY) over evalstore.skew_pairs:
--   n_compared        examples in both envs (pairs compared)
--   n_mismatch        pairs whose values differ (mismatch_kind not NULL)
--   n_null_mismatch   of them, pairs where exactly one side is NULL
--   share_mismatch    n_mismatch / n_compared
--   max_abs_diff      largest |serving - training| over the numeric mismatches of kind
--                     'value' (NULL for categorical features or without such mismatches;
--                     +inf when an infinity is involved, NaN pairs skipped)
--   sample_ids        the n_sample smallest offending example_ids (sorted; NULL if none)
-- Features without any pair do not appear (the Python front-end adds them with
-- n_compared = 0).
CREATE OR REPLACE MACRO evalstore.skew(
    numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan, n_sample
) AS TABLE
    SELECT p.feature, p.kind,
           count(*) AS n_compared,
           CAST(sum(CASE WHEN p.mismatch_kind IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT)
               AS n_mismatch,
           CAST(sum(CASE WHEN p.mismatch_kind = 'null' THEN 1 ELSE 0 END) AS BIGINT)
               AS n_null_mismatch,
           sum(CASE WHEN p.mismatch_kind IS NOT NULL THEN 1 ELSE 0 END) / count(*)
               AS share_mismatch,
           max(CASE WHEN p.mismatch_kind = 'value' AND NOT isnan(p.abs_diff)
                    THEN p.abs_diff END) AS max_abs_diff,
           evalstore.smallest(CASE WHEN p.mismatch_kind IS NOT NULL THEN p.example_id END,
                              n_sample) AS sample_ids
    FROM evalstore.skew_pairs(
        numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan) AS p
    GROUP BY p.feature, p.kind
    ORDER BY p.feature;
COMMENT ON MACRO TABLE evalstore.skew IS
    'Per feature: pairs compared, mismatches (and nulls among them), share, max |diff|, sample ids. Args: numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan, n_sample.';

-- evalstore.skew_summary(numeric_source, category_source, train_dataset, features, atol,
--                        rtol, equal_nan, max_share)
-- One row over every feature of evalstore.skew_pairs:
--   n_examples           examples logged in both training and serving
--   n_examples_skewed    of them, examples with a mismatch in at least one feature
--   share_examples_skewed   n_examples_skewed / n_examples (NULL when no example)
--   n_features           features compared
--   n_features_skewed    features whose share_mismatch > max_share (0: any mismatch)
CREATE OR REPLACE MACRO evalstore.skew_summary(
    numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan, max_share
) AS TABLE
    WITH pairs AS (
        SELECT * FROM evalstore.skew_pairs(
            numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan)
    ),
    per_example AS (
        SELECT example_id, max(CASE WHEN mismatch_kind IS NOT NULL THEN 1 ELSE 0 END) AS skewed
        FROM pairs GROUP BY example_id
    ),
    per_feature AS (
        SELECT feature,
               sum(CASE WHEN mismatch_kind IS NOT NULL THEN 1 ELSE 0 END) / count(*) AS share
        FROM pairs GROUP BY feature
    )
    SELECT e.n_examples, CAST(e.n_examples_skewed AS BIGINT) AS n_examples_skewed,
           CASE WHEN e.n_examples > 0 THEN e.n_examples_skewed / e.n_examples END
               AS share_examples_skewed,
           f.n_features, CAST(f.n_features_skewed AS BIGINT) AS n_features_skewed
    FROM (SELECT count(*) AS n_examples, coalesce(sum(skewed), 0) AS n_examples_skewed
          FROM per_example) AS e
    CROSS JOIN (SELECT count(*) AS n_features,
                       coalesce(sum(CASE WHEN share > max_share THEN 1 ELSE 0 END), 0)
                           AS n_features_skewed
                FROM per_feature) AS f;
COMMENT ON MACRO TABLE evalstore.skew_summary IS
    'Examples and features with training/serving skew (one row). Args: numeric_source, category_source, train_dataset, features, atol, rtol, equal_nan, max_share.';

-- evalstore.feature_skew(model)
-- Short form of evalstore.skew for SQL users (a BI tool, the duckdb shell), with
-- store.skew's defaults: every feature of `model`, every training row (any dataset),
-- numeric values compared as numpy.isclose with atol 1e-8 and rtol 1e-5, NaN matching
-- NaN, 5 sample ids, a feature `skewed` when any pair mismatches (max_share 0). One row
-- per feature, in the model's column order, features without a shared example included
-- (n_compared 0, a reason): feature, kind, n_compared, n_mismatch, n_null_mismatch,
-- share_mismatch, max_abs_diff, skewed, sample_ids ([] when none), reason. The
-- training-vs-serving distribution distance of store.skew is evalstore.drift(model,
-- 'training', width) here. E.g.
--   SELECT feature, share_mismatch, sample_ids FROM evalstore.feature_skew('fraud')
--   WHERE skewed
CREATE OR REPLACE MACRO evalstore.feature_skew(model) AS TABLE
    WITH features AS (
        SELECT v.feature, v.kind, min(c.column_index) AS position
        FROM (
            SELECT DISTINCT feature, 'numeric' AS kind
            FROM evalstore.relation(model || '.numeric_values')
            UNION ALL
            SELECT DISTINCT feature, 'categorical' AS kind
            FROM evalstore.relation(model || '.category_values')
        ) AS v
        JOIN duckdb_columns() AS c
          ON c.database_name = current_database() AND c.schema_name = model
         AND c.table_name = 'features' AND c.column_name = v.feature
        GROUP BY v.feature, v.kind
    ),
    counted AS (
        SELECT * FROM evalstore.skew(
            model || '.numeric_values', model || '.category_values', NULL, NULL, 1e-8, 1e-5,
            true, 5)
    )
    SELECT f.feature, f.kind,
           coalesce(s.n_compared, 0) AS n_compared,
           coalesce(s.n_mismatch, 0) AS n_mismatch,
           coalesce(s.n_null_mismatch, 0) AS n_null_mismatch,
           s.share_mismatch, s.max_abs_diff,
           s.share_mismatch > 0.0 AS skewed,
           coalesce(s.sample_ids, CAST([] AS VARCHAR[])) AS sample_ids,
           CASE WHEN s.feature IS NULL
                THEN 'no example_id is in both training and serving' END AS reason
    FROM features AS f
    LEFT JOIN counted AS s ON s.feature = f.feature
    ORDER BY f.position;
COMMENT ON MACRO TABLE evalstore.feature_skew IS
    'Training/serving skew per feature, with the Python defaults. Args: model.';

-- evalstore.feature_skew_summary(model)
-- Short form of evalstore.skew_summary, with store.skew_summary's defaults (those of
-- evalstore.feature_skew): one row, n_examples, n_examples_skewed,
-- share_examples_skewed, n_features, n_features_skewed, e.g.
--   SELECT * FROM evalstore.feature_skew_summary('fraud')
CREATE OR REPLACE MACRO evalstore.feature_skew_summary(model) AS TABLE
    SELECT * FROM evalstore.skew_summary(
        model || '.numeric_values', model || '.category_values', NULL, NULL, 1e-8, 1e-5, true,
        0.0);
COMMENT ON MACRO TABLE evalstore.feature_skew_summary IS
    'Examples and features with training/serving skew (one row), with the Python defaults. Args: model.';
