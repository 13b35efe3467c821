-- evalstore macros: data quality per window and feature (validation against a saved schema,
-- which shares this file's helpers, is in validation.sql).
--
-- Input: the long-format relations drift.sql reads (<model>.numeric_values,
-- <model>.category_values, or a temporary view restricted to a slice or a version),
-- named by `source`; windows and references come from evalstore.drift_windows and
-- evalstore.drift_pairs (common.sql) with the same arguments as drift_numeric, so a
-- window means the same thing in every family.
--
-- Every result is long format with the columns shared with drift:
--   ref_key, window_index, window_start, window_end, feature, version, kind
--   ('numeric' | 'categorical'), method (the check's name), variant (its definition),
--   value, p_value (always NULL: checks are not tests), threshold, threshold_source (how
--   the threshold was obtained), drifted (TRUE when the check fails; FALSE when it passes
--   or cannot be evaluated, i.e. when value or threshold is NULL), n_reference,
--   n_analysis, count (the number of rows behind the value), reason (why value is NULL).
-- Missing means SQL NULL. NaN and +-inf are values, counted by their own checks and
-- left out of range comparisons (a NaN is neither below nor above anything).

-- evalstore.window_starts(first_start, last_start, width) -> TIMESTAMPTZ[]
-- Helper: the starts of the consecutive windows of `width` from first_start to
-- last_start (both window starts, inclusive), stepped on the UTC calendar as
-- evalstore.window_end steps; empty when either bound is NULL or first > last.
CREATE OR REPLACE MACRO evalstore.window_starts(first_start, last_start, width) AS
    list_transform(
        coalesce(generate_series(timezone('UTC', first_start), timezone('UTC', last_start),
                                 CAST(width AS INTERVAL)), []),
        lambda s: timezone('UTC', s));
COMMENT ON MACRO evalstore.window_starts IS
    'Starts of the consecutive width-windows from first_start to last_start (UTC calendar).';

-- evalstore.analysis_window_starts(ana_start, ana_end, first_seen, last_seen, width)
--     -> TIMESTAMPTZ[]
-- Helper: the start of every time window a quality result lists, gaps included (as
-- evalstore.window_starts): from the window holding ana_start (NULL: first_seen, the
-- first non-empty window's start) to the window holding the last instant before ana_end
-- (NULL: last_seen); [] when both ends are NULL (no analysis rows, no range).
CREATE OR REPLACE MACRO evalstore.analysis_window_starts(
    ana_start, ana_end, first_seen, last_seen, width
) AS
    evalstore.window_starts(
        evalstore.window_start(coalesce(CAST(ana_start AS TIMESTAMPTZ), first_seen), width),
        evalstore.window_start(
            coalesce(CAST(ana_end AS TIMESTAMPTZ) - INTERVAL 1 MICROSECOND, last_seen), width),
        width);
COMMENT ON MACRO evalstore.analysis_window_starts IS
    'Every window start of [ana_start, ana_end), else of the first to the last seen window.';

-- evalstore.missing_share(n, n_present) -> DOUBLE
-- Helper: the share of NULL values among n rows of which n_present are non-NULL,
-- (n - n_present) / n; NULL when n = 0.
CREATE OR REPLACE MACRO evalstore.missing_share(n, n_present) AS
    (n - n_present) / nullif(n, 0);
COMMENT ON MACRO evalstore.missing_share IS '(n - n_present) / n: the NULL share; NULL for n = 0.';

-- evalstore.missing_threshold(ref_n, ref_present, tolerance) -> DOUBLE
-- Helper: the quality `missing` check's threshold, the reference's missing share
-- (evalstore.missing_share; 0 when the reference has no rows) + tolerance.
CREATE OR REPLACE MACRO evalstore.missing_threshold(ref_n, ref_present, tolerance) AS
    coalesce(evalstore.missing_share(ref_n, ref_present), 0) + tolerance;
COMMENT ON MACRO evalstore.missing_threshold IS
    'Reference missing share (0 without reference rows) + tolerance.';

-- evalstore.missing_threshold_source(ref_n, ref_present, tolerance) -> VARCHAR
-- Helper: the threshold_source text of the `missing` check: 'reference missing share '
-- and the share rounded to 6 decimals (or 'n/a (no reference rows): 0'), then
-- ' + tolerance ' and the tolerance.
CREATE OR REPLACE MACRO evalstore.missing_threshold_source(ref_n, ref_present, tolerance) AS
    'reference missing share '
    || coalesce(CAST(round(evalstore.missing_share(ref_n, ref_present), 6) AS VARCHAR),
                'n/a (no reference rows): 0')
    || ' + tolerance ' || tolerance;
COMMENT ON MACRO evalstore.missing_threshold_source IS
    'How the missing check''s threshold was obtained (text).';

-- evalstore.share_over(method, value, count, n_analysis, denominator) -> DOUBLE
-- Helper: the value of a quality check under `denominator`. 'present' (evalstore's
-- default) keeps the check's value: out_of_range over the window's finite values, unseen
-- over its non-NULL values. 'rows' divides their count by every row of the window, NULLs
-- (and NaN, +-inf) included, as NannyML's data-quality calculators (normalize=True):
-- count / n_analysis, NULL when count is NULL (no reference values) or the window has no
-- rows; 0 for a window of rows without a finite (non-NULL) value. Other checks unchanged.
CREATE OR REPLACE MACRO evalstore.share_over(method, value, count, n_analysis, denominator) AS
    CASE WHEN denominator = 'rows' AND method IN ('out_of_range', 'unseen')
         THEN CAST(count AS DOUBLE) / nullif(n_analysis, 0) ELSE value END;
COMMENT ON MACRO evalstore.share_over IS
    'A quality check''s value over its own values (''present'') or all rows (''rows'').';

-- evalstore.dtype_mismatch(dtype, stored_dtype) -> INTEGER
-- Helper: the value of the validation `type` check: 0 when the stored column type equals
-- the schema's dtype (case-insensitive; a missing column differs), 1 when it differs,
-- NULL when the schema has no dtype.
CREATE OR REPLACE MACRO evalstore.dtype_mismatch(dtype, stored_dtype) AS
    CASE WHEN dtype IS NOT NULL THEN CASE
        WHEN upper(stored_dtype) IS NOT DISTINCT FROM upper(dtype) THEN 0 ELSE 1 END END;
COMMENT ON MACRO evalstore.dtype_mismatch IS
    '0 when stored_dtype equals the schema dtype (case-insensitive), 1 if not, NULL without dtype.';

-- evalstore.check_failed(value, threshold, fails_below) -> BOOLEAN
-- Helper: a quality or validation check's `drifted`: value < threshold when fails_below
-- (the `rows` check), else value > threshold; FALSE when value or threshold is NULL (the
-- check cannot be evaluated).
CREATE OR REPLACE MACRO evalstore.check_failed(value, threshold, fails_below) AS
    coalesce(CASE WHEN fails_below THEN value < threshold ELSE value > threshold END, false);
COMMENT ON MACRO evalstore.check_failed IS
    'value < threshold (fails_below) or value > threshold; FALSE when either is NULL.';

-- evalstore.feature_types(model)
-- Helper: the stored feature columns of <model>.features with their DuckDB type:
--   feature  column name
--   dtype    data type as duckdb_columns() spells it ('DOUBLE', 'BIGINT', 'VARCHAR', ...)
-- System columns (example_id, env, dataset, ts, batch_id) are left out.
CREATE OR REPLACE MACRO evalstore.feature_types(model) AS TABLE
    SELECT column_name AS feature, data_type AS dtype
    FROM duckdb_columns()
    WHERE database_name = current_database() AND schema_name = model
      AND table_name = 'features'
      AND column_name NOT IN ('example_id', 'env', 'dataset', 'ts', 'batch_id');
COMMENT ON MACRO TABLE evalstore.feature_types IS
    'Feature columns of <model>.features and their DuckDB types (from duckdb_columns()).';

-- evalstore.category_set(value) -> VARCHAR[]
-- Helper (an aggregate): the distinct non-NULL values of `value` in the group, sorted
-- ascending; [] when every value is NULL.
CREATE OR REPLACE MACRO evalstore.category_set(value) AS
    list_sort(list_distinct(list(value)));
COMMENT ON MACRO evalstore.category_set IS
    'Aggregate: sorted distinct non-NULL values of value.';

-- evalstore.schema_domain(schemas, model)
-- Helper: the categorical domains of `model` in the schema table named `schemas`
-- (normally 'evalstore.schemas'), one row per (feature, category); NULL entries and
-- duplicates of a domain list are dropped. Features whose domain is NULL have no rows.
CREATE OR REPLACE MACRO evalstore.schema_domain(schemas, model) AS TABLE
    SELECT DISTINCT feature, category
    FROM (
        SELECT s.feature, unnest(s.domain) AS category
        FROM evalstore.relation(schemas) AS s
        WHERE s.model = model AND s.kind = 'categorical'
    ) AS listed
    WHERE category IS NOT NULL;
COMMENT ON MACRO TABLE evalstore.schema_domain IS
    'Rows (feature, category) of the categorical domains saved for a model in a schema table.';

-- evalstore.quality_numeric_checks(source, ref_env, ref_dataset, ref_start, ref_end,
--     ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
--     min_rows, missing_tolerance, max_nonfinite, max_out_of_range)
-- Helper: data quality of every numeric feature in every analysis window (windows and
-- references as evalstore.drift_pairs). For a window W of a feature, with n = rows of
-- the feature in W (NULLs included) and R the reference's rows of the feature:
--   rows          value = n;                              fails when n < min_rows
--   missing       value = NULL count / n;                 fails when above
--                 (NULL count / row count of R) + missing_tolerance (R empty: 0 + tolerance)
--   nan           value = number of NaN values;           fails when > max_nonfinite
--   posinf        value = number of +inf values;          fails when > max_nonfinite
--   neginf        value = number of -inf values;          fails when > max_nonfinite
--   out_of_range  value = share of W's finite values outside [min, max] of R's finite
--                 values;                                 fails when > max_out_of_range
-- count is the number of rows behind the value (n, NULLs, NaNs, ..., values outside).
-- n_reference = row count of R, n_analysis = n. With time windows (`width`), each
-- feature also has a template row per check for a window without rows: window_start,
-- window_end and window_index NULL, rows = 0 and the other checks' values 0 or NULL
-- ('no rows in the window'); evalstore.quality_fill places it in every empty window.
CREATE OR REPLACE MACRO evalstore.quality_numeric_checks(
    source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, previous,
    min_rows, missing_tolerance, max_nonfinite, max_out_of_range
) AS TABLE
    -- tagged is read twice (reference, then analysis); NOT MATERIALIZED: each read is
    -- one streaming pass (the reference read keeps only its side), where a materialized
    -- CTE would buffer every value of every window (and spill) before the first group
    WITH tagged AS NOT MATERIALIZED (
        SELECT * FROM evalstore.drift_pairs(
            source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous)
    ),
    ref_stats AS (
        SELECT ref_key, feature, version, count(*) AS n, count(value) AS n_present,
               min(CASE WHEN isfinite(value) THEN value END) AS lo,
               max(CASE WHEN isfinite(value) THEN value END) AS hi
        FROM tagged WHERE side = 'reference'
        GROUP BY ref_key, feature, version
    ),
    ana_stats AS (
        SELECT t.ref_key, t.window_index, min(t.window_start) AS window_start,
               max(t.window_end) AS window_end, t.feature, t.version,
               count(*) AS n, count(t.value) AS n_present,
               count(CASE WHEN isnan(t.value) THEN 1 END) AS n_nan,
               count(CASE WHEN t.value = CAST('Infinity' AS DOUBLE) THEN 1 END) AS n_posinf,
               count(CASE WHEN t.value = CAST('-Infinity' AS DOUBLE) THEN 1 END) AS n_neginf,
               count(CASE WHEN isfinite(t.value) THEN 1 END) AS n_finite,
               count(CASE WHEN isfinite(t.value) AND (t.value < r.lo OR t.value > r.hi)
                          THEN 1 END) AS n_outside
        FROM tagged AS t
        LEFT JOIN ref_stats AS r
          ON r.ref_key = t.ref_key AND r.feature = t.feature AND r.version = t.version
        WHERE t.side = 'analysis'
        GROUP BY t.ref_key, t.window_index, t.feature, t.version
    ),
    pairs AS (
        SELECT feature, version FROM ana_stats
        UNION
        SELECT feature, version FROM ref_stats
    ),
    cells AS (
        SELECT ref_key, window_index, window_start, window_end, feature, version, n,
               n_present, n_nan, n_posinf, n_neginf, n_finite, n_outside
        FROM ana_stats
        UNION ALL
        -- the template of an empty window (window_start NULL; evalstore.quality_fill)
        SELECT CASE WHEN previous = 0 THEN 0 END, CAST(NULL AS BIGINT),
               CAST(NULL AS TIMESTAMPTZ), CAST(NULL AS TIMESTAMPTZ), feature, version,
               0, 0, 0, 0, 0, 0, 0
        FROM pairs WHERE width IS NOT NULL
    ),
    checks AS (
        SELECT * FROM (VALUES
            ('rows', 'rows of the feature in the window, NULLs included; fails below min_rows'),
            ('missing', 'share of NULL values; fails above the reference share + tolerance'),
            ('nan', 'number of NaN values'),
            ('posinf', 'number of +inf values'),
            ('neginf', 'number of -inf values'),
            ('out_of_range', 'share of finite values outside the reference [min, max]')
        ) AS m(method, variant)
    ),
    scored AS (
        SELECT c.ref_key, c.window_index, c.window_start, c.window_end, c.feature,
            c.version, m.method, m.variant,
            CAST(CASE m.method
                WHEN 'rows' THEN c.n
                WHEN 'missing' THEN evalstore.missing_share(c.n, c.n_present)
                WHEN 'nan' THEN c.n_nan
                WHEN 'posinf' THEN c.n_posinf
                WHEN 'neginf' THEN c.n_neginf
                WHEN 'out_of_range' THEN CASE WHEN r.lo IS NOT NULL
                    THEN c.n_outside / nullif(c.n_finite, 0) END
            END AS DOUBLE) AS value,
            CAST(CASE m.method
                WHEN 'rows' THEN min_rows
                WHEN 'missing'
                    THEN evalstore.missing_threshold(r.n, r.n_present, missing_tolerance)
                WHEN 'out_of_range' THEN max_out_of_range
                ELSE max_nonfinite
            END AS DOUBLE) AS threshold,
            CASE m.method
                WHEN 'rows' THEN 'fixed: min_rows = ' || min_rows
                WHEN 'missing'
                    THEN evalstore.missing_threshold_source(r.n, r.n_present, missing_tolerance)
                WHEN 'out_of_range' THEN 'fixed: max share ' || max_out_of_range
                    || '; reference range [' || coalesce(CAST(r.lo AS VARCHAR), '?') || ', '
                    || coalesce(CAST(r.hi AS VARCHAR), '?') || ']'
                ELSE 'fixed: max count ' || max_nonfinite
            END AS threshold_source,
            coalesce(r.n, 0) AS n_reference, c.n AS n_analysis,
            CAST(CASE m.method
                WHEN 'rows' THEN c.n
                WHEN 'missing' THEN c.n - c.n_present
                WHEN 'nan' THEN c.n_nan
                WHEN 'posinf' THEN c.n_posinf
                WHEN 'neginf' THEN c.n_neginf
                WHEN 'out_of_range' THEN CASE WHEN r.lo IS NOT NULL THEN c.n_outside END
            END AS BIGINT) AS count,
            CASE
                WHEN m.method = 'missing' AND c.n = 0 THEN 'no rows in the window'
                WHEN m.method = 'out_of_range' AND c.n = 0 THEN 'no rows in the window'
                WHEN m.method = 'out_of_range' AND r.lo IS NULL THEN 'no finite reference values'
                WHEN m.method = 'out_of_range' AND c.n_finite = 0
                    THEN 'no finite values in the window'
            END AS reason
        FROM cells AS c
        CROSS JOIN checks AS m
        LEFT JOIN ref_stats AS r
          ON r.ref_key = c.ref_key AND r.feature = c.feature AND r.version = c.version
    )
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, 'numeric' AS kind, method, variant, value,
        CAST(NULL AS DOUBLE) AS p_value, threshold, threshold_source,
        evalstore.check_failed(value, threshold, method = 'rows') AS drifted,
        n_reference, n_analysis, count, reason
    FROM scored;
COMMENT ON MACRO TABLE evalstore.quality_numeric_checks IS
    'Numeric quality checks per non-empty window and feature, plus each feature''s empty-window template.';

-- evalstore.quality_categorical_checks(source, ref_env, ref_dataset, ref_start, ref_end,
--     ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
--     min_rows, missing_tolerance, max_unseen)
-- Helper: data quality of every categorical feature in every analysis window; same
-- columns, windows, templates and `rows` / `missing` checks as quality_numeric_checks, plus:
--   unseen   value = share of W's non-NULL values whose category never occurs (non-NULL)
--            in R; fails when > max_unseen; NULL when R has no non-NULL value
--            ('no reference values') or W has none ('no values in the window')
-- count for unseen is the number of such values.
CREATE OR REPLACE MACRO evalstore.quality_categorical_checks(
    source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, previous,
    min_rows, missing_tolerance, max_unseen
) AS TABLE
    -- tagged is read twice (reference, then analysis); NOT MATERIALIZED: each read is
    -- one streaming pass (the reference read keeps only its side), where a materialized
    -- CTE would buffer every value of every window (and spill) before the first group
    WITH tagged AS NOT MATERIALIZED (
        SELECT * FROM evalstore.drift_pairs(
            source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous)
    ),
    ref_stats AS (
        SELECT ref_key, feature, version, count(*) AS n, count(value) AS n_present
        FROM tagged WHERE side = 'reference'
        GROUP BY ref_key, feature, version
    ),
    ref_categories AS (
        SELECT DISTINCT ref_key, feature, version, value AS category
        FROM tagged WHERE side = 'reference' AND value IS NOT NULL
    ),
    ana_stats AS (
        SELECT t.ref_key, t.window_index, min(t.window_start) AS window_start,
               max(t.window_end) AS window_end, t.feature, t.version,
               count(*) AS n, count(t.value) AS n_present,
               count(CASE WHEN t.value IS NOT NULL AND k.category IS NULL THEN 1 END)
                   AS n_unseen
        FROM tagged AS t
        LEFT JOIN ref_categories AS k
          ON k.ref_key = t.ref_key AND k.feature = t.feature AND k.version = t.version
         AND k.category = t.value
        WHERE t.side = 'analysis'
        GROUP BY t.ref_key, t.window_index, t.feature, t.version
    ),
    pairs AS (
        SELECT feature, version FROM ana_stats
        UNION
        SELECT feature, version FROM ref_stats
    ),
    cells AS (
        SELECT ref_key, window_index, window_start, window_end, feature, version, n,
               n_present, n_unseen
        FROM ana_stats
        UNION ALL
        -- the template of an empty window (window_start NULL; evalstore.quality_fill)
        SELECT CASE WHEN previous = 0 THEN 0 END, CAST(NULL AS BIGINT),
               CAST(NULL AS TIMESTAMPTZ), CAST(NULL AS TIMESTAMPTZ), feature, version, 0, 0, 0
        FROM pairs WHERE width IS NOT NULL
    ),
    checks AS (
        SELECT * FROM (VALUES
            ('rows', 'rows of the feature in the window, NULLs included; fails below min_rows'),
            ('missing', 'share of NULL values; fails above the reference share + tolerance'),
            ('unseen', 'share of non-NULL values in categories absent from the reference')
        ) AS m(method, variant)
    ),
    scored AS (
        SELECT c.ref_key, c.window_index, c.window_start, c.window_end, c.feature,
            c.version, m.method, m.variant,
            CAST(CASE m.method
                WHEN 'rows' THEN c.n
                WHEN 'missing' THEN evalstore.missing_share(c.n, c.n_present)
                WHEN 'unseen' THEN CASE WHEN r.n_present > 0
                    THEN c.n_unseen / nullif(c.n_present, 0) END
            END AS DOUBLE) AS value,
            CAST(CASE m.method
                WHEN 'rows' THEN min_rows
                WHEN 'missing'
                    THEN evalstore.missing_threshold(r.n, r.n_present, missing_tolerance)
                WHEN 'unseen' THEN max_unseen
            END AS DOUBLE) AS threshold,
            CASE m.method
                WHEN 'rows' THEN 'fixed: min_rows = ' || min_rows
                WHEN 'missing'
                    THEN evalstore.missing_threshold_source(r.n, r.n_present, missing_tolerance)
                WHEN 'unseen' THEN 'fixed: max share ' || max_unseen
            END AS threshold_source,
            coalesce(r.n, 0) AS n_reference, c.n AS n_analysis,
            CAST(CASE m.method
                WHEN 'rows' THEN c.n
                WHEN 'missing' THEN c.n - c.n_present
                WHEN 'unseen' THEN CASE WHEN r.n_present > 0 THEN c.n_unseen END
            END AS BIGINT) AS count,
            CASE
                WHEN m.method IN ('missing', 'unseen') AND c.n = 0 THEN 'no rows in the window'
                WHEN m.method = 'unseen' AND coalesce(r.n_present, 0) = 0
                    THEN 'no reference values'
                WHEN m.method = 'unseen' AND c.n_present = 0 THEN 'no values in the window'
            END AS reason
        FROM cells AS c
        CROSS JOIN checks AS m
        LEFT JOIN ref_stats AS r
          ON r.ref_key = c.ref_key AND r.feature = c.feature AND r.version = c.version
    )
    SELECT ref_key, window_index, window_start, window_end, feature,
        nullif(version, '') AS version, 'categorical' AS kind, method, variant, value,
        CAST(NULL AS DOUBLE) AS p_value, threshold, threshold_source,
        evalstore.check_failed(value, threshold, method = 'rows') AS drifted,
        n_reference, n_analysis, count, reason
    FROM scored;
COMMENT ON MACRO TABLE evalstore.quality_categorical_checks IS
    'Categorical quality checks per non-empty window and feature, plus each feature''s empty-window template.';

-- evalstore.quality_fill(checks, ana_start, ana_end, width)
-- Helper: the rows of the relation named `checks` (rows of quality_numeric_checks and/or
-- quality_categorical_checks, a table, view or CTE name) with every empty window filled:
-- a window of `width` holding no row of any feature (between the first and the last
-- non-empty window, or inside [ana_start, ana_end) when given) lists the template rows
-- (window_start NULL) with that window's start and end, so every feature and check shows
-- rows = 0 there. A window with rows of some feature is not empty: the other features do
-- not appear in it. No time windows (width NULL): the rows as they are, templates dropped.
CREATE OR REPLACE MACRO evalstore.quality_fill(checks, ana_start, ana_end, width) AS TABLE
    WITH checked AS MATERIALIZED (SELECT * FROM evalstore.relation(checks)),
    seen AS (SELECT DISTINCT window_start FROM checked WHERE window_start IS NOT NULL),
    grid AS (
        SELECT unnest(evalstore.analysis_window_starts(
                   ana_start, ana_end, min(window_start), max(window_start), width))
                   AS window_start
        FROM seen HAVING width IS NOT NULL
    ),
    gaps AS (
        SELECT g.window_start
        FROM grid AS g LEFT JOIN seen AS s ON s.window_start = g.window_start
        WHERE s.window_start IS NULL
    )
    SELECT * FROM checked WHERE window_start IS NOT NULL
    UNION ALL
    SELECT t.* REPLACE (
        g.window_start AS window_start, evalstore.window_end(g.window_start, width) AS window_end)
    FROM gaps AS g CROSS JOIN (SELECT * FROM checked WHERE window_start IS NULL) AS t;
COMMENT ON MACRO TABLE evalstore.quality_fill IS
    'Quality check rows with their empty-window templates placed in every window without rows.';

-- evalstore.quality_numeric(source, ref_env, ref_dataset, ref_start, ref_end, ana_env,
--     ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
--     min_rows, missing_tolerance, max_nonfinite, max_out_of_range)
-- Data quality of every numeric feature in every analysis window: the checks of
-- evalstore.quality_numeric_checks (definitions there), and with time windows (`width`)
-- the windows without any row (between the first and last non-empty window, or inside
-- [ana_start, ana_end) when given), with window_index NULL, rows = 0 for every feature
-- seen, and the other checks' values 0 or NULL ('no rows in the window').
CREATE OR REPLACE MACRO evalstore.quality_numeric(
    source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, previous,
    min_rows, missing_tolerance, max_nonfinite, max_out_of_range
) AS TABLE
    WITH checks AS MATERIALIZED (
        SELECT * FROM evalstore.quality_numeric_checks(
            source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous,
            min_rows, missing_tolerance, max_nonfinite, max_out_of_range)
    )
    SELECT * FROM evalstore.quality_fill('checks', ana_start, ana_end, width);
COMMENT ON MACRO TABLE evalstore.quality_numeric IS
    'Numeric data quality per window and feature: rows, missing, nan, posinf, neginf, out_of_range.';

-- evalstore.quality_categorical(source, ref_env, ref_dataset, ref_start, ref_end, ana_env,
--     ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
--     min_rows, missing_tolerance, max_unseen)
-- Data quality of every categorical feature in every analysis window: the checks of
-- evalstore.quality_categorical_checks (definitions there), with the empty windows of
-- evalstore.quality_numeric.
CREATE OR REPLACE MACRO evalstore.quality_categorical(
    source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, previous,
    min_rows, missing_tolerance, max_unseen
) AS TABLE
    WITH checks AS MATERIALIZED (
        SELECT * FROM evalstore.quality_categorical_checks(
            source, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous,
            min_rows, missing_tolerance, max_unseen)
    )
    SELECT * FROM evalstore.quality_fill('checks', ana_start, ana_end, width);
COMMENT ON MACRO TABLE evalstore.quality_categorical IS
    'Categorical data quality per window and feature: rows, missing, unseen.';

-- evalstore.quality(source_numeric, source_category, ref_env, ref_dataset, ref_start,
--     ref_end, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks,
--     previous, min_rows, missing_tolerance, max_nonfinite, max_out_of_range, max_unseen)
-- Both families in one table: evalstore.quality_numeric_checks over source_numeric and
-- evalstore.quality_categorical_checks over source_category (definitions there), with the
-- empty windows of evalstore.quality_fill: a window empty of both kinds lists every
-- feature with rows = 0; a window with rows of either kind is not empty. Ordered by
-- window_start, feature, version (NULL first), method. Example, daily windows of serving
-- rows against the training rows, with evalstore's default thresholds:
--   SELECT * FROM evalstore.quality('fraud.numeric_values', 'fraud.category_values',
--       'training', NULL, NULL, NULL, 'serving', NULL, NULL, NULL, '1 day', NULL, NULL, 0,
--       1, 0.05, 0, 0.01, 0.01) WHERE drifted;
CREATE OR REPLACE MACRO evalstore.quality(
    source_numeric, source_category, ref_env, ref_dataset, ref_start, ref_end, ana_env,
    ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous,
    min_rows, missing_tolerance, max_nonfinite, max_out_of_range, max_unseen
) AS TABLE
    WITH checks AS MATERIALIZED (
        SELECT * FROM evalstore.quality_numeric_checks(
            source_numeric, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous,
            min_rows, missing_tolerance, max_nonfinite, max_out_of_range)
        UNION ALL
        SELECT * FROM evalstore.quality_categorical_checks(
            source_category, ref_env, ref_dataset, ref_start, ref_end, ana_env, ana_dataset,
            ana_start, ana_end, width, chunk_rows, chunks, previous,
            min_rows, missing_tolerance, max_unseen)
    )
    SELECT * FROM evalstore.quality_fill('checks', ana_start, ana_end, width)
    ORDER BY window_start, feature, version NULLS FIRST, method;
COMMENT ON MACRO TABLE evalstore.quality IS
    'Data quality per window and feature (numeric and categorical checks); drifted = check fails.';

-- evalstore.data_quality(model, width)
-- Short form of evalstore.quality for SQL users (a BI tool, the duckdb shell), with
-- store.quality's defaults: every feature of `model` and the outputs its task defines
-- (score only for binary models), serving rows in time windows of `width` (e.g. '1 day')
-- against the training rows, all of time, every version, and the default thresholds
-- min_rows 1, missing_tolerance 0.05, max_nonfinite 0, max_out_of_range 0.01, max_unseen
-- 0.01. Columns and order of store.quality: window_start, window_end, feature, kind,
-- version, method, variant, value, p_value (always NULL), threshold, threshold_source,
-- drifted (the check fails), n_reference, n_analysis, count, reason, e.g.
--   SELECT window_start, feature, method, value, threshold
--   FROM evalstore.data_quality('fraud', '1 day') WHERE drifted
CREATE OR REPLACE MACRO evalstore.data_quality(model, width) AS TABLE
    WITH task AS (
        SELECT any_value(r.task) AS task
        FROM evalstore.relation('evalstore.models') AS r
        WHERE r.model = model
    )
    SELECT window_start, window_end, feature, kind, version, method, variant, value, p_value,
           threshold, threshold_source, drifted, n_reference, n_analysis, count, reason
    FROM evalstore.quality(
        model || '.numeric_values', model || '.category_values', 'training', NULL, NULL, NULL,
        'serving', NULL, NULL, NULL, width, NULL, NULL, 0, 1, 0.05, 0, 0.01, 0.01)
    WHERE feature <> 'score' OR (SELECT t.task FROM task AS t) = 'binary'
    ORDER BY window_start, feature, version NULLS FIRST, method;
COMMENT ON MACRO TABLE evalstore.data_quality IS
    'Data quality per time window and feature against the training rows, with the Python defaults. Args: model, width.';
