-- evalstore macros: schema inference and validation of windows against a saved schema.
--
-- Input, windows and result columns as in quality.sql (installed first; its helpers
-- evalstore.feature_types, dtype_mismatch, category_set, schema_domain, missing_share and
-- check_failed are used here):
-- validation compares each window with the rules saved in evalstore.schemas (inferred by
-- evalstore.infer_schema or written by the user) instead of with a reference window.

-- evalstore.infer_schema(model, source_numeric, source_category, ref_env, ref_dataset,
--     ref_start, ref_end, max_domain)
-- A schema inferred from the reference rows (env / dataset / [ref_start, ref_end), NULL
-- meaning no filter) of each stored feature column of `model` (model outputs score,
-- prediction and label are left out), in the layout of the table evalstore.schemas:
--   kind              'numeric' (from source_numeric) | 'categorical' (source_category)
--   dtype             the column's current DuckDB type (evalstore.feature_types)
--   nullable          TRUE when some reference value is NULL
--   min, max          smallest and largest finite reference value (numeric; NULL when none)
--   domain            sorted distinct non-NULL reference values (categorical); NULL when
--                     there are more than max_domain of them (no domain check)
--   expected_missing  share of NULL values in the reference
--   inferred_at       current_timestamp; reference: text describing the reference
-- Features without reference rows do not appear.
CREATE OR REPLACE MACRO evalstore.infer_schema(
    model, source_numeric, source_category, ref_env, ref_dataset, ref_start, ref_end,
    max_domain
) AS TABLE
    WITH numeric_rows AS (
        SELECT feature, value FROM evalstore.relation(source_numeric)
        WHERE version IS NULL
          AND (ref_env IS NULL OR env = ref_env)
          AND (ref_dataset IS NULL OR dataset = ref_dataset)
          AND (ref_start IS NULL OR ts >= CAST(ref_start AS TIMESTAMPTZ))
          AND (ref_end IS NULL OR ts < CAST(ref_end AS TIMESTAMPTZ))
    ),
    category_rows AS (
        SELECT feature, value FROM evalstore.relation(source_category)
        WHERE version IS NULL
          AND (ref_env IS NULL OR env = ref_env)
          AND (ref_dataset IS NULL OR dataset = ref_dataset)
          AND (ref_start IS NULL OR ts >= CAST(ref_start AS TIMESTAMPTZ))
          AND (ref_end IS NULL OR ts < CAST(ref_end AS TIMESTAMPTZ))
    ),
    inferred AS (
        SELECT feature, 'numeric' AS kind, count(*) AS n, count(value) AS n_present,
               min(CASE WHEN isfinite(value) THEN value END) AS lo,
               max(CASE WHEN isfinite(value) THEN value END) AS hi,
               CAST(NULL AS VARCHAR[]) AS domain
        FROM numeric_rows GROUP BY feature
        UNION ALL
        SELECT feature, 'categorical', count(*), count(value), NULL, NULL,
               CASE WHEN max_domain IS NULL OR count(DISTINCT value) <= max_domain
                    THEN evalstore.category_set(value) END
        FROM category_rows GROUP BY feature
    ),
    described AS (
        SELECT coalesce(nullif(concat_ws(', ', 'env=' || ref_env, 'dataset=' || ref_dataset,
            CASE WHEN ref_start IS NOT NULL OR ref_end IS NOT NULL THEN 'ts in ['
                || coalesce(CAST(CAST(ref_start AS TIMESTAMPTZ) AS VARCHAR), '-infinity') || ', '
                || coalesce(CAST(CAST(ref_end AS TIMESTAMPTZ) AS VARCHAR), 'infinity') || ')'
            END), ''), 'all rows') AS reference
    )
    SELECT model AS model, i.feature, i.kind, t.dtype, i.n_present < i.n AS nullable,
           i.lo AS min, i.hi AS max, i.domain,
           CAST((i.n - i.n_present) / i.n AS DOUBLE) AS expected_missing,
           current_timestamp AS inferred_at, d.reference
    FROM inferred AS i
    JOIN evalstore.feature_types(model) AS t ON t.feature = i.feature
    CROSS JOIN described AS d
    ORDER BY i.feature;
COMMENT ON MACRO TABLE evalstore.infer_schema IS
    'Schema rows (type, nullability, range, domain, missing rate) inferred from reference rows.';

-- evalstore.validate_numeric(model, schemas, source, ana_env, ana_dataset, ana_start,
--     ana_end, width, chunk_rows, chunks, tolerance)
-- Every analysis window (evalstore.drift_windows) against the numeric rows of `model`
-- in the schema table named `schemas` (normally 'evalstore.schemas'; a copy lets you try
-- edits). For a window W and schema row s, n = rows of the feature in W (NULLs included),
-- p = its non-NULL values:
--   missing       value = NULL count;            fails when s.nullable = FALSE and > 0
--   missing_rate  value = NULL count / n;        fails when > s.expected_missing + tolerance
--   below_min     value = share of p below s.min (-inf included, NaN never);  fails when > 0
--   above_max     value = share of p above s.max (+inf included, NaN never);  fails when > 0
--   type          value = 1 when the column's stored type (evalstore.feature_types)
--                 differs from s.dtype (case-insensitive) or the column is gone, else 0;
--                 fails when 1; reported for every window
-- A NULL schema entry (nullable, expected_missing, min, max, dtype) disables its check
-- (threshold NULL, drifted FALSE). count = rows behind the value; n_reference is NULL.
-- Every window lists every schema feature (n = 0 where the feature has no rows in W).
CREATE OR REPLACE MACRO evalstore.validate_numeric(
    model, schemas, source, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows,
    chunks, tolerance
) AS TABLE
    WITH analysis AS (
        SELECT * FROM evalstore.drift_windows(
            source, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks)
    ),
    saved AS (
        SELECT s.feature, s.dtype, s.nullable, s.min AS lo, s.max AS hi, s.expected_missing
        FROM evalstore.relation(schemas) AS s
        WHERE s.model = model AND s.kind = 'numeric'
    ),
    windows AS (SELECT DISTINCT window_index, window_start, window_end FROM analysis),
    counted AS (
        SELECT a.window_index, a.feature, count(*) AS n, count(a.value) AS n_present,
               count(CASE WHEN NOT isnan(a.value) AND a.value < s.lo THEN 1 END) AS n_below,
               count(CASE WHEN NOT isnan(a.value) AND a.value > s.hi THEN 1 END) AS n_above
        FROM analysis AS a JOIN saved AS s ON s.feature = a.feature
        WHERE a.version = ''
        GROUP BY a.window_index, a.feature
    ),
    cells AS (
        SELECT w.window_index, w.window_start, w.window_end, s.feature, s.dtype,
               t.dtype AS stored_dtype, s.nullable, s.lo, s.hi, s.expected_missing,
               coalesce(c.n, 0) AS n, coalesce(c.n_present, 0) AS n_present,
               coalesce(c.n_below, 0) AS n_below, coalesce(c.n_above, 0) AS n_above
        FROM windows AS w
        CROSS JOIN saved AS s
        LEFT JOIN counted AS c ON c.window_index = w.window_index AND c.feature = s.feature
        LEFT JOIN evalstore.feature_types(model) AS t ON t.feature = s.feature
    ),
    checks AS (
        SELECT * FROM (VALUES
            ('missing', 'number of NULL values; the schema allows none when nullable = false'),
            ('missing_rate', 'share of NULL values; fails above expected_missing + tolerance'),
            ('below_min', 'share of non-NULL values below the schema min'),
            ('above_max', 'share of non-NULL values above the schema max'),
            ('type', '1 when the stored column type differs from the schema dtype, else 0')
        ) AS m(method, variant)
    ),
    scored AS (
        SELECT c.*, m.method, m.variant,
            CAST(CASE m.method
                WHEN 'missing' THEN c.n - c.n_present
                WHEN 'missing_rate' THEN evalstore.missing_share(c.n, c.n_present)
                WHEN 'below_min' THEN CASE WHEN c.lo IS NOT NULL
                    THEN c.n_below / nullif(c.n_present, 0) END
                WHEN 'above_max' THEN CASE WHEN c.hi IS NOT NULL
                    THEN c.n_above / nullif(c.n_present, 0) END
                WHEN 'type' THEN evalstore.dtype_mismatch(c.dtype, c.stored_dtype)
            END AS DOUBLE) AS value,
            CAST(CASE m.method
                WHEN 'missing' THEN CASE WHEN NOT c.nullable THEN 0 END
                WHEN 'missing_rate' THEN c.expected_missing + tolerance
                WHEN 'below_min' THEN CASE WHEN c.lo IS NOT NULL THEN 0 END
                WHEN 'above_max' THEN CASE WHEN c.hi IS NOT NULL THEN 0 END
                WHEN 'type' THEN CASE WHEN c.dtype IS NOT NULL THEN 0 END
            END AS DOUBLE) AS threshold,
            'schema: ' || CASE m.method
                WHEN 'missing' THEN 'nullable = ' || coalesce(CAST(c.nullable AS VARCHAR), 'NULL')
                WHEN 'missing_rate' THEN 'expected_missing = '
                    || coalesce(CAST(c.expected_missing AS VARCHAR), 'NULL')
                    || ' + tolerance ' || tolerance
                WHEN 'below_min' THEN 'min = ' || coalesce(CAST(c.lo AS VARCHAR), 'NULL')
                WHEN 'above_max' THEN 'max = ' || coalesce(CAST(c.hi AS VARCHAR), 'NULL')
                WHEN 'type' THEN 'dtype = ' || coalesce(c.dtype, 'NULL') || ', stored '
                    || coalesce(c.stored_dtype, 'no such column')
            END AS threshold_source,
            CAST(CASE m.method
                WHEN 'missing' THEN c.n - c.n_present
                WHEN 'missing_rate' THEN c.n - c.n_present
                WHEN 'below_min' THEN CASE WHEN c.lo IS NOT NULL THEN c.n_below END
                WHEN 'above_max' THEN CASE WHEN c.hi IS NOT NULL THEN c.n_above END
            END AS BIGINT) AS count,
            CASE
                WHEN m.method = 'missing_rate' AND c.n = 0 THEN 'no rows in the window'
                WHEN m.method = 'below_min' AND c.lo IS NULL THEN 'no min in the schema'
                WHEN m.method = 'above_max' AND c.hi IS NULL THEN 'no max in the schema'
                WHEN m.method IN ('below_min', 'above_max') AND c.n_present = 0
                    THEN 'no values in the window'
                WHEN m.method = 'type' AND c.dtype IS NULL THEN 'no dtype in the schema'
            END AS reason
        FROM cells AS c CROSS JOIN checks AS m
    )
    SELECT CAST(NULL AS BIGINT) AS ref_key, window_index, window_start, window_end, feature,
        CAST(NULL AS VARCHAR) AS version, 'numeric' AS kind, method, variant, value,
        CAST(NULL AS DOUBLE) AS p_value, threshold, threshold_source,
        evalstore.check_failed(value, threshold, false) AS drifted,
        CAST(NULL AS BIGINT) AS n_reference, n AS n_analysis, count, reason
    FROM scored;
COMMENT ON MACRO TABLE evalstore.validate_numeric IS
    'Numeric windows against a saved schema: missing, missing_rate, below_min, above_max, type.';

-- evalstore.validate_categorical(model, schemas, source, ana_env, ana_dataset, ana_start,
--     ana_end, width, chunk_rows, chunks, tolerance)
-- As validate_numeric for the categorical rows of the schema (values compared as the
-- text in <model>.category_values: booleans are 'true' / 'false'), with
--   out_of_domain  value = share of non-NULL values not in s.domain; fails when > 0;
--                  NULL (no check) when s.domain is NULL ('no domain in the schema')
-- in place of below_min / above_max; count = number of such values.
CREATE OR REPLACE MACRO evalstore.validate_categorical(
    model, schemas, source, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows,
    chunks, tolerance
) AS TABLE
    WITH analysis AS (
        SELECT * FROM evalstore.drift_windows(
            source, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks)
    ),
    saved AS (
        SELECT s.feature, s.dtype, s.nullable, s.domain IS NOT NULL AS has_domain,
               len(s.domain) AS domain_size, s.expected_missing
        FROM evalstore.relation(schemas) AS s
        WHERE s.model = model AND s.kind = 'categorical'
    ),
    domains AS (SELECT * FROM evalstore.schema_domain(schemas, model)),
    windows AS (SELECT DISTINCT window_index, window_start, window_end FROM analysis),
    counted AS (
        SELECT a.window_index, a.feature, count(*) AS n, count(a.value) AS n_present,
               count(CASE WHEN a.value IS NOT NULL AND d.category IS NULL THEN 1 END)
                   AS n_outside
        FROM analysis AS a
        JOIN saved AS s ON s.feature = a.feature
        LEFT JOIN domains AS d ON d.feature = a.feature AND d.category = a.value
        WHERE a.version = ''
        GROUP BY a.window_index, a.feature
    ),
    cells AS (
        SELECT w.window_index, w.window_start, w.window_end, s.feature, s.dtype,
               t.dtype AS stored_dtype, s.nullable, s.has_domain, s.domain_size,
               s.expected_missing,
               coalesce(c.n, 0) AS n, coalesce(c.n_present, 0) AS n_present,
               coalesce(c.n_outside, 0) AS n_outside
        FROM windows AS w
        CROSS JOIN saved AS s
        LEFT JOIN counted AS c ON c.window_index = w.window_index AND c.feature = s.feature
        LEFT JOIN evalstore.feature_types(model) AS t ON t.feature = s.feature
    ),
    checks AS (
        SELECT * FROM (VALUES
            ('missing', 'number of NULL values; the schema allows none when nullable = false'),
            ('missing_rate', 'share of NULL values; fails above expected_missing + tolerance'),
            ('out_of_domain', 'share of non-NULL values outside the schema domain'),
            ('type', '1 when the stored column type differs from the schema dtype, else 0')
        ) AS m(method, variant)
    ),
    scored AS (
        SELECT c.*, m.method, m.variant,
            CAST(CASE m.method
                WHEN 'missing' THEN c.n - c.n_present
                WHEN 'missing_rate' THEN evalstore.missing_share(c.n, c.n_present)
                WHEN 'out_of_domain' THEN CASE WHEN c.has_domain
                    THEN c.n_outside / nullif(c.n_present, 0) END
                WHEN 'type' THEN evalstore.dtype_mismatch(c.dtype, c.stored_dtype)
            END AS DOUBLE) AS value,
            CAST(CASE m.method
                WHEN 'missing' THEN CASE WHEN NOT c.nullable THEN 0 END
                WHEN 'missing_rate' THEN c.expected_missing + tolerance
                WHEN 'out_of_domain' THEN CASE WHEN c.has_domain THEN 0 END
                WHEN 'type' THEN CASE WHEN c.dtype IS NOT NULL THEN 0 END
            END AS DOUBLE) AS threshold,
            'schema: ' || CASE m.method
                WHEN 'missing' THEN 'nullable = ' || coalesce(CAST(c.nullable AS VARCHAR), 'NULL')
                WHEN 'missing_rate' THEN 'expected_missing = '
                    || coalesce(CAST(c.expected_missing AS VARCHAR), 'NULL')
                    || ' + tolerance ' || tolerance
                WHEN 'out_of_domain' THEN CASE WHEN c.has_domain
                    THEN 'domain of ' || c.domain_size || ' categories' ELSE 'domain = NULL' END
                WHEN 'type' THEN 'dtype = ' || coalesce(c.dtype, 'NULL') || ', stored '
                    || coalesce(c.stored_dtype, 'no such column')
            END AS threshold_source,
            CAST(CASE m.method
                WHEN 'missing' THEN c.n - c.n_present
                WHEN 'missing_rate' THEN c.n - c.n_present
                WHEN 'out_of_domain' THEN CASE WHEN c.has_domain THEN c.n_outside END
            END AS BIGINT) AS count,
            CASE
                WHEN m.method = 'missing_rate' AND c.n = 0 THEN 'no rows in the window'
                WHEN m.method = 'out_of_domain' AND NOT c.has_domain
                    THEN 'no domain in the schema'
                WHEN m.method = 'out_of_domain' AND c.n_present = 0
                    THEN 'no values in the window'
                WHEN m.method = 'type' AND c.dtype IS NULL THEN 'no dtype in the schema'
            END AS reason
        FROM cells AS c CROSS JOIN checks AS m
    )
    SELECT CAST(NULL AS BIGINT) AS ref_key, window_index, window_start, window_end, feature,
        CAST(NULL AS VARCHAR) AS version, 'categorical' AS kind, method, variant, value,
        CAST(NULL AS DOUBLE) AS p_value, threshold, threshold_source,
        evalstore.check_failed(value, threshold, false) AS drifted,
        CAST(NULL AS BIGINT) AS n_reference, n AS n_analysis, count, reason
    FROM scored;
COMMENT ON MACRO TABLE evalstore.validate_categorical IS
    'Categorical windows against a saved schema: missing, missing_rate, out_of_domain, type.';

-- evalstore.validate(model, schemas, source_numeric, source_category, ana_env,
--     ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, tolerance)
-- Both validations in one table: evalstore.validate_numeric over source_numeric and
-- evalstore.validate_categorical over source_category (definitions there), ordered by
-- window_start, feature, method. Example, daily serving windows against the saved
-- schema with a 5-point tolerance on missing rates:
--   SELECT * FROM evalstore.validate('fraud', 'evalstore.schemas', 'fraud.numeric_values',
--       'fraud.category_values', 'serving', NULL, NULL, NULL, '1 day', NULL, NULL, 0.05)
--   WHERE drifted;
CREATE OR REPLACE MACRO evalstore.validate(
    model, schemas, source_numeric, source_category, ana_env, ana_dataset, ana_start,
    ana_end, width, chunk_rows, chunks, tolerance
) AS TABLE
    SELECT * FROM (
        SELECT * FROM evalstore.validate_numeric(
            model, schemas, source_numeric, ana_env, ana_dataset, ana_start, ana_end, width,
            chunk_rows, chunks, tolerance)
        UNION ALL
        SELECT * FROM evalstore.validate_categorical(
            model, schemas, source_category, ana_env, ana_dataset, ana_start, ana_end, width,
            chunk_rows, chunks, tolerance)
    ) AS checked
    ORDER BY window_start, feature, method;
COMMENT ON MACRO TABLE evalstore.validate IS
    'Windows validated against a saved schema (evalstore.schemas); drifted = violation.';

-- evalstore.schema_validation(model, width)
-- Short form of evalstore.validate, with store.validate's defaults: serving rows of
-- `model` in time windows of `width` (e.g. '1 day'), all of time, every version, checked
-- against the model's rows of evalstore.schemas (saved by store.infer_schema or
-- `evalstore schema infer`; edit them with SQL) with a tolerance of 0.05 on the missing
-- rate. No rows when the model has no saved schema (store.validate says so as an
-- error). Columns and order of store.validate (those of evalstore.data_quality), e.g.
--   SELECT window_start, feature, method, value FROM evalstore.schema_validation('fraud', '1 day')
--   WHERE drifted
CREATE OR REPLACE MACRO evalstore.schema_validation(model, width) AS TABLE
    SELECT window_start, window_end, feature, kind, version, method, variant, value, p_value,
           threshold, threshold_source, drifted, n_reference, n_analysis, count, reason
    FROM evalstore.validate(
        model, 'evalstore.schemas', model || '.numeric_values', model || '.category_values',
        'serving', NULL, NULL, NULL, width, NULL, NULL, 0.05)
    ORDER BY window_start, feature, method;
COMMENT ON MACRO TABLE evalstore.schema_validation IS
    'Serving windows validated against the saved schema, with the Python defaults. Args: model, width.';
