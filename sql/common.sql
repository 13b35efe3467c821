-- evalstore macros: the helpers every other file uses, installed first.
--
-- Conventions shared by every file in sql/:
--   * each macro is preceded by a comment block that defines it exactly;
--   * a macro's first parameter is the model name or the relation it reads; tables are
--     reached through three helpers, the only macros that call DuckDB's query_table:
--     evalstore.model_table(model, name) for a model's tables and views,
--     evalstore.system_table(model, name) for evalstore.models / evalstore.batches, and
--     evalstore.relation(name) for a relation named by the caller (a model's view, a
--     temporary view restricted to a slice or version, a BI user's own view);
--   * DuckDB-only constructs (query_table, UNION ALL BY NAME, map subscripts, time
--     arithmetic on epoch microseconds, list lambdas) live in small helper macros such
--     as these, so the metric bodies stay CTEs, joins, window functions, CASE and
--     explicit GROUP BY, and transpile with sqlglot;
--   * parameter defaults live in Python, not in the macro headers.
--
-- Sections: relations; time windows; numbers (probabilities, clipped bounds, Wilson
-- intervals); analysis windows and references (evalstore.drift_windows / drift_pairs,
-- shared by drift.sql and quality.sql).

-- ---- Relations ------------------------------------------------------------------------

-- evalstore.model_table(model, name) -> the rows of table or view <model>.<name>.
-- Helper (DuckDB's query_table): a model's table or view, reached by the model's name.
-- The name is qualified with the current catalog (current_database()): a store file
-- called fraud.duckdb opens as catalog "fraud", and DuckDB refuses a bare fraud.<name>
-- as ambiguous between that catalog and the model's schema. Macros run only in the
-- connection's current catalog (a BI tool opens the file as its database, or USEs it).
CREATE OR REPLACE MACRO evalstore.model_table(model, name) AS TABLE
    SELECT * FROM query_table(
        '"' || replace(current_database(), '"', '""') || '"."' || model || '"."' || name || '"');
COMMENT ON MACRO TABLE evalstore.model_table IS
    'Rows of the table or view <model>.<name> (wraps query_table). Args: model, name.';

-- evalstore.system_table(model, name) -> the rows of evalstore.<name> (models, batches).
-- Helper (DuckDB's query_table): the table is looked up when the calling macro runs, not
-- when it is created (the name depends on the model argument only to defer that lookup;
-- the rows are the whole table), so the macros install before the system tables exist
-- and always see their current columns.
CREATE OR REPLACE MACRO evalstore.system_table(model, name) AS TABLE
    SELECT * FROM query_table(
        'evalstore.' || name || CASE WHEN model IS NULL THEN '' ELSE '' END);
COMMENT ON MACRO TABLE evalstore.system_table IS
    'Rows of the system table evalstore.<name>, looked up at call time. Args: model, name.';

-- evalstore.relation(name) -> the rows of the table or view called name.
-- Helper (DuckDB's query_table): a relation named by the caller. A two-part name of a
-- schema in the current catalog ('credit_default.numeric_values', 'evalstore.models') is
-- qualified with current_database(), as in model_table, so it stays unambiguous in a
-- store file named like the model; other names ('temp.main.v', a view's name, a quoted
-- three-part name) are used as given.
CREATE OR REPLACE MACRO evalstore.relation(name) AS TABLE
    SELECT * FROM query_table(
        CASE WHEN regexp_full_match(name, '[a-z][a-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*')
                  AND split_part(name, '.', 1) NOT IN ('temp', 'system')
             THEN '"' || replace(current_database(), '"', '""') || '".' || name
             ELSE name END);
COMMENT ON MACRO TABLE evalstore.relation IS
    'Rows of the table or view whose (qualified) name is given; wraps query_table.';

-- evalstore.with_slice(source) -> the rows of source, plus a NULL `slice` column when it
-- has none.
-- Helper (DuckDB-only: UNION ALL BY NAME), so the metric macros can group by `slice`
-- whether or not the relation carries slice keys.
CREATE OR REPLACE MACRO evalstore.with_slice(source) AS TABLE
    SELECT * FROM evalstore.relation(source)
    UNION ALL BY NAME SELECT NULL AS slice WHERE false;
COMMENT ON MACRO TABLE evalstore.with_slice IS
    'Rows of the named relation, with a NULL slice column added when it has none.';

-- ---- Time windows ---------------------------------------------------------------------

-- evalstore.interval_us(width) -> BIGINT
-- Helper: length of a month-free interval (days, hours, ...) in microseconds.
CREATE OR REPLACE MACRO evalstore.interval_us(width) AS
    epoch_us(TIMESTAMP '1970-01-01' + CAST(width AS INTERVAL));
COMMENT ON MACRO evalstore.interval_us IS
    'Length of a month-free interval such as ''1 day'' in microseconds.';

-- evalstore.window_start(ts, width) -> TIMESTAMPTZ
-- Helper: start of the fixed-width time window holding ts. Windows are aligned as DuckDB's
-- time_bucket aligns them (origin 2000-01-03 00:00 UTC, a Monday: days and shorter widths
-- start at midnight UTC, '7 days' on Mondays; widths with months or years start on the
-- first of a month). Widths without months are computed with integer arithmetic on the
-- epoch in microseconds, which gives time_bucket's result about 7x faster on TIMESTAMPTZ;
-- width is an interval string such as '15 minutes' or '1 day'.
CREATE OR REPLACE MACRO evalstore.window_start(ts, width) AS
    CASE WHEN datepart('year', CAST(width AS INTERVAL)) = 0
              AND datepart('month', CAST(width AS INTERVAL)) = 0
         THEN ts - to_microseconds(
             ((epoch_us(ts) - 946857600000000) % evalstore.interval_us(width)
              + evalstore.interval_us(width)) % evalstore.interval_us(width))
         ELSE time_bucket(CAST(width AS INTERVAL), ts) END;
COMMENT ON MACRO evalstore.window_start IS
    'Start of the fixed-width window (as time_bucket) holding ts; width like ''1 day''.';

-- evalstore.window_end(start, width) -> TIMESTAMPTZ
-- Helper: start + width, added on the UTC calendar. (A plain TIMESTAMPTZ + INTERVAL adds
-- days in the session's time zone, so a '1 day' window would last 23 or 25 hours across a
-- daylight-saving change in a client whose TimeZone is not UTC.)
CREATE OR REPLACE MACRO evalstore.window_end(start, width) AS
    timezone('UTC', timezone('UTC', start) + CAST(width AS INTERVAL));
COMMENT ON MACRO evalstore.window_end IS
    'start + width on the UTC calendar (end of the window beginning at start).';

-- evalstore.chunk_index(ordinal, n, chunk_rows, chunks) -> BIGINT
-- Helper: the row window (0, 1, ...) of the row of 0-based rank `ordinal` among n rows in
-- time order. chunk_rows > 0: chunks of chunk_rows rows, ordinal // chunk_rows.
-- chunk_rows NULL: `chunks` near-equal chunks, (ordinal * chunks) // n (the remainder of
-- n / chunks spread one row each over the chunks; evalstore's default).
-- chunk_rows = 0: NannyML's CountBasedChunker (incomplete='keep'): chunks of
-- floor(n / chunks) rows, ordinal // floor(n / chunks), so the remainder rows form a last,
-- partial chunk (and a remainder of at least floor(n / chunks) rows more full chunks);
-- when chunks > n, which NannyML refuses (chunk size 0), one row per chunk.
CREATE OR REPLACE MACRO evalstore.chunk_index(ordinal, n, chunk_rows, chunks) AS
    CASE WHEN chunk_rows > 0 THEN ordinal // chunk_rows
         WHEN chunk_rows = 0 THEN ordinal // greatest(1, n // chunks)
         ELSE (ordinal * chunks) // n END;
COMMENT ON MACRO evalstore.chunk_index IS
    'Row window of the row ranked ordinal of n: chunk_rows per chunk, or chunks near-equal (chunk_rows NULL) or NannyML (chunk_rows = 0) chunks.';

-- evalstore.split_variant(variant, chunk_rows) -> VARCHAR
-- Helper: a result's `variant` with the chunk split named when it is NannyML's
-- (chunk_rows = 0, evalstore.chunk_index's code for it): variant || '; chunks split as
-- NannyML (floor(rows / n) rows each, remainder last)' (the text alone for an empty or
-- NULL variant); any other window leaves variant as it is.
CREATE OR REPLACE MACRO evalstore.split_variant(variant, chunk_rows) AS
    CASE WHEN chunk_rows = 0
         THEN coalesce(nullif(variant, '') || '; ', '')
              || 'chunks split as NannyML (floor(rows / n) rows each, remainder last)'
         ELSE variant END;
COMMENT ON MACRO evalstore.split_variant IS
    'variant with NannyML''s chunk split named when chunk_rows = 0, else variant.';

-- evalstore.hours_between(t0, t1) -> DOUBLE
-- Helper: (t1 - t0) in hours, fractional, negative when t1 precedes t0.
CREATE OR REPLACE MACRO evalstore.hours_between(t0, t1) AS
    (epoch(t1) - epoch(t0)) / 3600.0;
COMMENT ON MACRO evalstore.hours_between IS '(t1 - t0) in fractional hours.';

-- ---- Numbers --------------------------------------------------------------------------

-- evalstore.class_probability(probabilities, class) -> DOUBLE
-- Helper: the probability a MAP(VARCHAR, DOUBLE) gives `class`; 0 when the map lacks the
-- class, NULL when the map is NULL. (DuckDB map subscript; element_at elsewhere.)
CREATE OR REPLACE MACRO evalstore.class_probability(probabilities, class) AS
    CASE WHEN probabilities IS NOT NULL THEN coalesce(probabilities[class], 0.0) END;
COMMENT ON MACRO evalstore.class_probability IS
    'Probability of class in a MAP(VARCHAR, DOUBLE); 0 when absent, NULL for a NULL map.';

-- evalstore.clip_probability(p) -> DOUBLE
-- Helper: p clipped to [eps, 1 - eps], eps = 2.220446049250313e-16 (float64 machine
-- epsilon, scikit-learn's log_loss); NULL stays NULL.
CREATE OR REPLACE MACRO evalstore.clip_probability(p) AS
    CASE WHEN p IS NULL THEN NULL
         WHEN p < 2.220446049250313e-16 THEN 2.220446049250313e-16
         WHEN p > 1 - 2.220446049250313e-16 THEN 1 - 2.220446049250313e-16
         ELSE p END;
COMMENT ON MACRO evalstore.clip_probability IS 'p clipped to [eps, 1 - eps], eps = 2.22e-16.';

-- evalstore.log_loss_term(p) -> DOUBLE
-- Helper: one row's log loss -ln p, p (the probability the model gave the true label)
-- clipped by evalstore.clip_probability; NULL when p is NULL (a row without a score or
-- probabilities adds nothing). Used by performance_binary, performance_multiclass and
-- slice_outcomes.
CREATE OR REPLACE MACRO evalstore.log_loss_term(p) AS
    -ln(evalstore.clip_probability(p));
COMMENT ON MACRO evalstore.log_loss_term IS
    '-ln p with p clipped to [eps, 1 - eps] (eps = 2.22e-16); NULL when p is NULL.';

-- evalstore.at_least(x, bound) / evalstore.at_most(x, bound) -> DOUBLE
-- Helpers: x clipped from below / above to bound, NULL when x is NULL (unlike greatest /
-- least, which skip NULLs). Interval ends of non-negative metrics and of proportions.
CREATE OR REPLACE MACRO evalstore.at_least(x, bound) AS
    CASE WHEN x IS NULL THEN NULL WHEN x < bound THEN bound ELSE x END;
COMMENT ON MACRO evalstore.at_least IS 'x raised to bound when below it; NULL stays NULL.';

-- evalstore.at_most(x, bound) -> DOUBLE: x lowered to bound when above it, NULL when x
-- is NULL (see evalstore.at_least).
CREATE OR REPLACE MACRO evalstore.at_most(x, bound) AS
    CASE WHEN x IS NULL THEN NULL WHEN x > bound THEN bound ELSE x END;
COMMENT ON MACRO evalstore.at_most IS 'x lowered to bound when above it; NULL stays NULL.';

-- evalstore.wilson_low(x, m, z) / evalstore.wilson_high(x, m, z) -> DOUBLE
-- Wilson score interval of a proportion p = x / m (Wilson 1927; statsmodels
-- proportion_confint(method='wilson')):
--   (p + z^2 / 2m -+ z sqrt(p (1 - p) / m + z^2 / 4m^2)) / (1 + z^2 / m);
-- NULL when m = 0.
CREATE OR REPLACE MACRO evalstore.wilson_low(x, m, z) AS
    CASE WHEN m > 0 THEN greatest(0.0,
        (x / m + z * z / (2.0 * m)
         - z * sqrt((x / m) * (1 - x / m) / m + z * z / (4.0 * m * m))) / (1 + z * z / m)) END;
COMMENT ON MACRO evalstore.wilson_low IS 'Lower end of the Wilson score interval of x / m.';

-- evalstore.wilson_high(x, m, z) -> DOUBLE: upper end of the interval defined above
-- (evalstore.wilson_low).
CREATE OR REPLACE MACRO evalstore.wilson_high(x, m, z) AS
    CASE WHEN m > 0 THEN least(1.0,
        (x / m + z * z / (2.0 * m)
         + z * sqrt((x / m) * (1 - x / m) / m + z * z / (4.0 * m * m))) / (1 + z * z / m)) END;
COMMENT ON MACRO evalstore.wilson_high IS 'Upper end of the Wilson score interval of x / m.';

-- ---- Analysis windows and references -------------------------------------------------
-- Input: a relation in the long format of <model>.numeric_values / <model>.category_values
-- (example_id, env, dataset, ts, version, feature, value), named by `source`.
-- Reference and analysis are both selections of `source`:
--   analysis  rows matching ana_env / ana_dataset / [ana_start, ana_end) (NULL: no filter),
--             cut into windows: `width` (an interval: time buckets), or `chunk_rows` rows
--             per chunk, or `chunks` equal chunks (rows ordered by ts, example_id; with
--             chunk_rows = 0, NannyML's split: see drift_windows);
--   reference previous = 0: rows matching ref_env / ref_dataset / [ref_start, ref_end);
--             previous = N > 0: the N preceding non-empty analysis windows (rolling);
--             previous = -1: every other analysis window (leave one out; evalstore uses it
--             to learn thresholds from chunks of the reference).
-- drift.sql and quality.sql read their windows and references from these two macros, so a
-- window means the same thing in every family.

-- evalstore.drift_windows(source, ana_env, ana_dataset, ana_start, ana_end, width,
--                         chunk_rows, chunks)
-- Analysis rows with their window: window_index (0, 1, ... in time order, empty windows
-- skipped), window_start, window_end. Time windows are [start, start + width) aligned
-- by evalstore.window_start; row windows hold chunk_rows consecutive (ts, example_id)
-- rows, or split them into `chunks` near-equal parts (chunk_rows NULL: index
-- floor(rank * chunks / n), the remainder spread one row each over the chunks), or, with
-- chunk_rows = 0, as NannyML's CountBasedChunker (chunks of floor(n / chunks) rows, index
-- floor(rank / floor(n / chunks)), the remainder a last partial chunk; when chunks > n,
-- which NannyML refuses, one row per chunk); rank is 0-based and n the number of rows.
-- Row windows span [first ts, last ts] of their rows. Columns: window_index, window_start,
-- window_end, example_id, feature, version ('' for features), value, ts (the row's time).
-- The CTEs read more than once are NOT MATERIALIZED: DuckDB would otherwise buffer every
-- value (for a packed source, every feature of every row) before the first window is out;
-- inlined, the window bounds come from a scan of ts alone and the values stream.
CREATE OR REPLACE MACRO evalstore.drift_windows(
    source, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks
) AS TABLE
    WITH picked AS NOT MATERIALIZED (
        SELECT example_id, ts, feature, coalesce(version, '') AS version, value
        FROM evalstore.relation(source)
        WHERE (ana_env IS NULL OR env = ana_env)
          AND (ana_dataset IS NULL OR dataset = ana_dataset)
          AND (ana_start IS NULL OR ts >= CAST(ana_start AS TIMESTAMPTZ))
          AND (ana_end IS NULL OR ts < CAST(ana_end AS TIMESTAMPTZ))
    ),
    timed AS NOT MATERIALIZED (
        SELECT *, evalstore.window_start(ts, width) AS window_start
        FROM picked WHERE width IS NOT NULL
    ),
    time_windows AS (
        SELECT window_start, evalstore.window_end(window_start, width) AS window_end,
               row_number() OVER (ORDER BY window_start) - 1 AS window_index
        FROM (SELECT DISTINCT window_start FROM timed) AS starts
    ),
    -- row windows are cut on the distinct (ts, example_id) keys alone, ranked in that
    -- order; the rows (with their values) then join their key's window
    keys AS (
        SELECT DISTINCT ts, example_id FROM picked WHERE width IS NULL
    ),
    key_windows AS (
        SELECT ts, example_id,
            evalstore.chunk_index(ordinal, n_keys, chunk_rows, chunks) AS window_index
        FROM (
            SELECT ts, example_id, row_number() OVER (ORDER BY ts, example_id) - 1 AS ordinal,
                   count(*) OVER () AS n_keys
            FROM keys
        )
    ),
    chunked AS NOT MATERIALIZED (
        SELECT p.*, k.window_index
        FROM picked AS p JOIN key_windows AS k
          ON k.ts IS NOT DISTINCT FROM p.ts AND k.example_id IS NOT DISTINCT FROM p.example_id
        WHERE width IS NULL
    ),
    chunk_bounds AS (
        SELECT window_index, min(ts) AS window_start, max(ts) AS window_end
        FROM key_windows GROUP BY window_index
    )
    SELECT w.window_index, t.window_start, w.window_end, t.example_id, t.feature, t.version,
           t.value, t.ts
    FROM timed AS t JOIN time_windows AS w ON w.window_start = t.window_start
    UNION ALL
    SELECT c.window_index, b.window_start, b.window_end, c.example_id, c.feature, c.version,
           c.value, c.ts
    FROM chunked AS c JOIN chunk_bounds AS b ON b.window_index = c.window_index;
COMMENT ON MACRO TABLE evalstore.drift_windows IS
    'Analysis rows of a long-format relation with their window (time buckets or row chunks).';

-- evalstore.drift_pairs(source, ref_env, ref_dataset, ref_start, ref_end, ana_env,
--                       ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous)
-- Every value tagged with its side ('reference' | 'analysis') and ref_key, the reference it
-- is compared with or belongs to: 0 for a fixed reference, else the analysis window's
-- index (rolling and leave-one-out references copy a window's rows to the windows that
-- use them). Analysis rows also carry window_index, window_start, window_end; every row
-- carries its ts (so a reference can be cut into chunks in time order, as multivariate
-- drift's learned thresholds are).
-- analysis is NOT MATERIALIZED (see drift_windows): with a fixed reference (previous = 0)
-- its other two readers are empty, and its rows stream.
CREATE OR REPLACE MACRO evalstore.drift_pairs(
    source, ref_env, ref_dataset, ref_start, ref_end,
    ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks, previous
) AS TABLE
    WITH analysis AS NOT MATERIALIZED (
        SELECT * FROM evalstore.drift_windows(
            source, ana_env, ana_dataset, ana_start, ana_end, width, chunk_rows, chunks)
    ),
    window_keys AS (SELECT DISTINCT window_index FROM analysis WHERE previous <> 0),
    shared_reference AS (
        SELECT 0 AS ref_key, example_id, feature, coalesce(version, '') AS version, value, ts
        FROM evalstore.relation(source)
        WHERE previous = 0
          AND (ref_env IS NULL OR env = ref_env)
          AND (ref_dataset IS NULL OR dataset = ref_dataset)
          AND (ref_start IS NULL OR ts >= CAST(ref_start AS TIMESTAMPTZ))
          AND (ref_end IS NULL OR ts < CAST(ref_end AS TIMESTAMPTZ))
    ),
    window_reference AS (
        SELECT k.window_index AS ref_key, a.example_id, a.feature, a.version, a.value, a.ts
        FROM analysis AS a JOIN window_keys AS k
          ON (previous > 0 AND k.window_index > a.window_index
              AND k.window_index <= a.window_index + previous)
          OR (previous < 0 AND k.window_index <> a.window_index)
    )
    SELECT 'reference' AS side, ref_key, CAST(NULL AS BIGINT) AS window_index,
           CAST(NULL AS TIMESTAMPTZ) AS window_start, CAST(NULL AS TIMESTAMPTZ) AS window_end,
           example_id, feature, version, value, ts
    FROM shared_reference
    UNION ALL
    SELECT 'reference', ref_key, NULL, NULL, NULL, example_id, feature, version, value, ts
    FROM window_reference
    UNION ALL
    SELECT 'analysis', CASE WHEN previous = 0 THEN 0 ELSE window_index END, window_index,
           window_start, window_end, example_id, feature, version, value, ts
    FROM analysis;
COMMENT ON MACRO TABLE evalstore.drift_pairs IS
    'Reference and analysis values tagged with side, ref_key and window.';
