-- evalstore macros: production health of a model (staleness, golden signals, ingest,
-- dependency changes), in one long format:
--   section       'staleness' | 'serving' | 'ingest' | 'dependencies'
--   window_start, window_end   the window of a per-window figure; for a point-in-time
--                 figure window_start is NULL and window_end the instant it is measured at
--   version       the model version the row is about (NULL when none)
--   subject       what else the row is about: the ingest stream ('features/serving',
--                 'predictions', 'labels', ...) or the dependency's package (else NULL)
--   metric, value, unit   the figure (value NULL where undefined, e.g. the error rate of a
--                 window without predictions)
--   detail        text context: a version's stage, a dependency's old -> new versions
--
-- Two clocks: `as_of` (event time; NULL: the model's latest prediction ts, so results are
-- reproducible) measures staleness; `now` (wall-clock time; NULL: the current time) measures
-- ingest freshness, since batches are stamped with the time they were committed.

-- evalstore.time_grid(first, last, width)
-- Helper (DuckDB's generate_series): the starts of every width-wide window from the one
-- holding `first` to the one holding `last` (aligned as evalstore.window_start); one column,
-- window_start. Empty when first is NULL.
CREATE OR REPLACE MACRO evalstore.time_grid(first, last, width) AS TABLE
    SELECT unnest(generate_series(
        evalstore.window_start(first, width), evalstore.window_start(last, width),
        CAST(width AS INTERVAL))) AS window_start
    WHERE first IS NOT NULL;
COMMENT ON MACRO TABLE evalstore.time_grid IS
    'Every window start from the window of first to the window of last. Args: first, last, width.';

-- evalstore.health_serving(model, width)
-- The golden signals per version and window of prediction time ts ([start, start + width),
-- aligned as evalstore.window_start). Each version gets every window from the one of its
-- first prediction to the model's last window, so a window without traffic reads
-- predictions = 0 instead of disappearing. Metrics:
--   predictions  predictions logged                          (unit 'count')
--   throughput   predictions / width in seconds              ('predictions/s')
--   errors       predictions whose prediction is NULL        ('count')
--   error_rate   errors / predictions (NULL without predictions) ('share')
--   latency_p50, latency_p95, latency_p99   quantiles of latency_ms over the window's
--                non-NULL latencies, linear interpolation (quantile_cont: numpy.quantile's
--                default method 'linear'); NULL without latencies ('ms')
CREATE OR REPLACE MACRO evalstore.health_serving(model, width) AS TABLE
    WITH predictions AS (
        SELECT p.version, p.ts, p.prediction, p.latency_ms,
               evalstore.window_start(p.ts, width) AS window_start
        FROM evalstore.model_table(model, 'predictions') AS p
    ),
    bounds AS (
        SELECT min(ts) AS first_ts, max(ts) AS last_ts FROM predictions
    ),
    grid AS (
        SELECT g.window_start FROM bounds AS b,
               evalstore.time_grid(b.first_ts, b.last_ts, width) AS g
    ),
    versions AS (
        SELECT version, min(window_start) AS first_window FROM predictions GROUP BY version
    ),
    cells AS (
        SELECT v.version, g.window_start
        FROM versions AS v JOIN grid AS g ON g.window_start >= v.first_window
    ),
    stats AS (
        SELECT version, window_start,
               count(*) AS predictions,
               sum(CASE WHEN prediction IS NULL THEN 1 ELSE 0 END) AS errors,
               quantile_cont(latency_ms, 0.5) AS p50,
               quantile_cont(latency_ms, 0.95) AS p95,
               quantile_cont(latency_ms, 0.99) AS p99
        FROM predictions
        GROUP BY version, window_start
    ),
    joined AS (
        SELECT c.version, c.window_start,
               evalstore.window_end(c.window_start, width) AS window_end,
               coalesce(s.predictions, 0) AS predictions, coalesce(s.errors, 0) AS errors,
               s.p50, s.p95, s.p99
        FROM cells AS c
        LEFT JOIN stats AS s ON s.version = c.version AND s.window_start = c.window_start
    ),
    figures AS (
        SELECT version, window_start, window_end, 'predictions' AS metric,
               CAST(predictions AS DOUBLE) AS value, 'count' AS unit, 1 AS position
        FROM joined
        UNION ALL
        SELECT version, window_start, window_end, 'throughput',
               predictions / (epoch(window_end) - epoch(window_start)), 'predictions/s', 2
        FROM joined
        UNION ALL
        SELECT version, window_start, window_end, 'errors', CAST(errors AS DOUBLE), 'count', 3
        FROM joined
        UNION ALL
        SELECT version, window_start, window_end, 'error_rate',
               CASE WHEN predictions > 0 THEN errors / predictions END, 'share', 4
        FROM joined
        UNION ALL
        SELECT version, window_start, window_end, 'latency_p50', p50, 'ms', 5 FROM joined
        UNION ALL
        SELECT version, window_start, window_end, 'latency_p95', p95, 'ms', 6 FROM joined
        UNION ALL
        SELECT version, window_start, window_end, 'latency_p99', p99, 'ms', 7 FROM joined
    )
    SELECT 'serving' AS section, window_start, window_end, version,
           CAST(NULL AS VARCHAR) AS subject, metric, value, unit, CAST(NULL AS VARCHAR) AS detail
    FROM figures
    ORDER BY window_start, version, position;
COMMENT ON MACRO TABLE evalstore.health_serving IS
    'Predictions, throughput, errors (NULL predictions), error rate, latency p50/p95/p99 per version and window. Args: model, width.';

-- evalstore.health_staleness(model, as_of)
-- Per version deployed at as_of (deployed_at <= as_of and retired_at NULL or later), in
-- days (unit 'days') at as_of (NULL: the model's latest prediction ts):
--   version_age         as_of - deployed_at
--   model_age           as_of - trained_at (NULL when trained_at is not registered)
--   training_data_age   as_of - the newest ts of the version's training rows (env
--                       'training' of its registered training_dataset; every training row
--                       of the model when none is registered; NULL without training rows)
-- window_start is NULL, window_end = as_of, detail = the version's stage.
CREATE OR REPLACE MACRO evalstore.health_staleness(model, as_of) AS TABLE
    WITH clock AS (
        SELECT coalesce(CAST(as_of AS TIMESTAMPTZ),
                        (SELECT max(p.ts) FROM evalstore.model_table(model, 'predictions') AS p))
                   AS measured_at
    ),
    training AS (
        SELECT f.dataset, max(f.ts) AS newest
        FROM evalstore.model_table(model, 'features') AS f
        WHERE f.env = 'training'
        GROUP BY f.dataset
    ),
    deployed AS (
        SELECT m.version, m.stage, m.created_at, m.deployed_at, m.trained_at,
               m.training_dataset, c.measured_at
        FROM evalstore.system_table(model, 'models') AS m CROSS JOIN clock AS c
        WHERE m.model = model AND m.deployed_at IS NOT NULL AND m.deployed_at <= c.measured_at
          AND (m.retired_at IS NULL OR m.retired_at > c.measured_at)
    ),
    ages AS (
        SELECT d.version, d.stage, d.created_at, d.measured_at,
               (epoch(d.measured_at) - epoch(d.deployed_at)) / 86400.0 AS version_age,
               (epoch(d.measured_at) - epoch(d.trained_at)) / 86400.0 AS model_age,
               (epoch(d.measured_at) - epoch(
                   (SELECT max(t.newest) FROM training AS t
                    WHERE d.training_dataset IS NULL OR t.dataset = d.training_dataset)))
                   / 86400.0 AS training_data_age
        FROM deployed AS d
    ),
    figures AS (
        SELECT version, stage, created_at, measured_at, 'version_age' AS metric,
               version_age AS value, 1 AS position FROM ages
        UNION ALL
        SELECT version, stage, created_at, measured_at, 'model_age', model_age, 2 FROM ages
        UNION ALL
        SELECT version, stage, created_at, measured_at, 'training_data_age', training_data_age, 3
        FROM ages
    )
    SELECT 'staleness' AS section, CAST(NULL AS TIMESTAMPTZ) AS window_start,
           measured_at AS window_end, version, CAST(NULL AS VARCHAR) AS subject, metric, value,
           'days' AS unit, stage AS detail
    FROM figures
    ORDER BY created_at, version, position;
COMMENT ON MACRO TABLE evalstore.health_staleness IS
    'Age of each deployed version, of its model and of its newest training row, in days. Args: model, as_of.';

-- evalstore.health_ingest(model, width, now)
-- Ingest freshness and volume from evalstore.batches (the audit trail of accepted
-- batches), per stream: subject = kind || '/' || env for features ('features/serving'),
-- 'predictions' (version = the batch's version), 'labels'. Metrics:
--   freshness        hours from the stream's last committed batch to `now` (NULL: the
--                    current time); window_start NULL, window_end = now   ('hours')
--   ingest_batches, ingest_rows   batches and rows committed per window of committed_at
--                    ([start, start + width)); windows without batches do not appear
CREATE OR REPLACE MACRO evalstore.health_ingest(model, width, now) AS TABLE
    WITH batches AS (
        SELECT CASE WHEN b.kind = 'features' THEN b.kind || '/' || b.env ELSE b.kind END
                   AS subject,
               CASE WHEN b.kind = 'predictions' THEN b.version END AS version,
               b.rows, b.committed_at,
               evalstore.window_start(b.committed_at, width) AS window_start
        FROM evalstore.system_table(model, 'batches') AS b
        WHERE b.model = model
    ),
    clock AS (SELECT coalesce(CAST(now AS TIMESTAMPTZ), current_timestamp) AS now),
    freshness AS (
        SELECT b.subject, b.version, max(b.committed_at) AS last_commit
        FROM batches AS b GROUP BY b.subject, b.version
    ),
    volume AS (
        SELECT b.subject, b.version, b.window_start, count(*) AS n_batches,
               sum(b.rows) AS n_rows
        FROM batches AS b GROUP BY b.subject, b.version, b.window_start
    )
    SELECT 'ingest' AS section, CAST(NULL AS TIMESTAMPTZ) AS window_start,
           c.now AS window_end, f.version, f.subject, 'freshness' AS metric,
           (epoch(c.now) - epoch(f.last_commit)) / 3600.0 AS value, 'hours' AS unit,
           'last batch committed ' || CAST(f.last_commit AS VARCHAR) AS detail
    FROM freshness AS f CROSS JOIN clock AS c
    UNION ALL
    SELECT 'ingest', v.window_start, evalstore.window_end(v.window_start, width), v.version,
           v.subject, 'ingest_batches', CAST(v.n_batches AS DOUBLE), 'count', NULL
    FROM volume AS v
    UNION ALL
    SELECT 'ingest', v.window_start, evalstore.window_end(v.window_start, width), v.version,
           v.subject, 'ingest_rows', CAST(v.n_rows AS DOUBLE), 'rows', NULL
    FROM volume AS v
    ORDER BY window_start NULLS FIRST, subject, version, metric;
COMMENT ON MACRO TABLE evalstore.health_ingest IS
    'Ingest freshness (hours since the last batch) and batches/rows per window, per stream. Args: model, width, now.';

-- evalstore.dependency_rows(model)
-- Helper (DuckDB JSON functions): one row per version and package of the registry's
-- `dependencies` object: version, created_at, package, package_version (text).
CREATE OR REPLACE MACRO evalstore.dependency_rows(model) AS TABLE
    SELECT k.version, k.created_at, k.package,
           json_extract_string(k.dependencies, '$."' || k.package || '"') AS package_version
    FROM (SELECT m.version, m.created_at, m.dependencies,
                 unnest(json_keys(m.dependencies)) AS package
          FROM evalstore.system_table(model, 'models') AS m
          WHERE m.model = model AND m.dependencies IS NOT NULL) AS k;
COMMENT ON MACRO TABLE evalstore.dependency_rows IS
    'One row per version and package of the registry''s dependencies. Args: model.';

-- evalstore.health_dependencies(model)
-- Dependency changes between consecutive versions, in registration order (created_at,
-- then version): for each version after the first, every package added (metric
-- 'dependency_added', detail 'pkg new'), removed ('dependency_removed', 'pkg old') or
-- whose version text changed ('dependency_changed', 'pkg old -> new'), against the
-- version registered just before it (named in detail). value is NULL, unit NULL;
-- window_start NULL and window_end the newer version's created_at.
CREATE OR REPLACE MACRO evalstore.health_dependencies(model) AS TABLE
    WITH ordered AS (
        SELECT m.version, m.created_at,
               lag(m.version) OVER (ORDER BY m.created_at, m.version) AS previous
        FROM evalstore.system_table(model, 'models') AS m
        WHERE m.model = model
    ),
    pairs AS (
        SELECT o.version, o.created_at, o.previous FROM ordered AS o WHERE o.previous IS NOT NULL
    ),
    new_packages AS (
        SELECT p.version, p.created_at, p.previous, n.package, n.package_version
        FROM pairs AS p JOIN evalstore.dependency_rows(model) AS n ON n.version = p.version
    ),
    old_packages AS (
        SELECT p.version, p.created_at, p.previous, d.package, d.package_version
        FROM pairs AS p JOIN evalstore.dependency_rows(model) AS d ON d.version = p.previous
    ),
    changes AS (
        SELECT coalesce(n.version, o.version) AS version,
               coalesce(n.created_at, o.created_at) AS created_at,
               coalesce(n.previous, o.previous) AS previous,
               coalesce(n.package, o.package) AS package,
               o.package_version AS old_version, n.package_version AS new_version
        FROM new_packages AS n
        FULL OUTER JOIN old_packages AS o ON o.version = n.version AND o.package = n.package
    )
    SELECT 'dependencies' AS section, CAST(NULL AS TIMESTAMPTZ) AS window_start,
           c.created_at AS window_end, c.version, c.package AS subject,
           CASE WHEN c.old_version IS NULL THEN 'dependency_added'
                WHEN c.new_version IS NULL THEN 'dependency_removed'
                ELSE 'dependency_changed' END AS metric,
           CAST(NULL AS DOUBLE) AS value, CAST(NULL AS VARCHAR) AS unit,
           CASE WHEN c.old_version IS NULL THEN c.new_version
                WHEN c.new_version IS NULL THEN c.old_version
                ELSE c.old_version || ' -> ' || c.new_version END
               || ' (since ' || c.previous || ')' AS detail
    FROM changes AS c
    WHERE c.old_version IS DISTINCT FROM c.new_version
    ORDER BY c.created_at, c.version, c.package;
COMMENT ON MACRO TABLE evalstore.health_dependencies IS
    'Packages added, removed or changed between consecutive registered versions. Args: model.';

-- evalstore.health(model, width, as_of, now)
-- Every health figure of the model in the long format above: health_staleness(as_of),
-- health_serving(width), health_ingest(width, now), health_dependencies, in that order,
-- then by window_start (point-in-time rows first), version, subject and metric.
-- (The union sits in a FROM so that DuckDB 1.4, which cannot ORDER BY an expression over a
-- UNION, reads the BI snapshot's copy of this macro too.)
CREATE OR REPLACE MACRO evalstore.health(model, width, as_of, now) AS TABLE
    SELECT * FROM (
        SELECT * FROM evalstore.health_staleness(model, as_of)
        UNION ALL
        SELECT * FROM evalstore.health_serving(model, width)
        UNION ALL
        SELECT * FROM evalstore.health_ingest(model, width, now)
        UNION ALL
        SELECT * FROM evalstore.health_dependencies(model)
    ) AS h
    ORDER BY CASE section WHEN 'staleness' THEN 1 WHEN 'serving' THEN 2 WHEN 'ingest' THEN 3
                          ELSE 4 END,
             window_start NULLS FIRST, version NULLS FIRST, subject NULLS FIRST, metric;
COMMENT ON MACRO TABLE evalstore.health IS
    'All health figures (staleness, serving, ingest, dependencies) in one long table. Args: model, width, as_of, now.';
