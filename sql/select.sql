-- evalstore macros: selecting training data (store.select, store.export, snapshots).
--
-- "As of" a batch: a row belongs to the store's state after batch `as_of_batch` was
-- committed when its batch_id <= as_of_batch (batch ids grow in commit order; NULL: now).
-- Labels are append-only, so the label of an example as of a batch is the latest label
-- among those committed by then (the highest batch_id: a batch labels an example at most
-- once), exactly as <model>.labels_latest picks it today. The ingest of a labels batch
-- records, in labels.superseded_by, the batch that replaced each label, so that label is
-- the latest as of as_of_batch when batch_id <= as_of_batch and superseded_by is NULL or
-- later (no window over the labels needed). Feature rows replaced with
-- on_conflict='replace' are deleted, so a selection as of a batch before the replacement
-- cannot be recomputed (snapshots detect it through their content hash).

-- evalstore.labels_as_of(model, as_of_batch)
-- The latest label of each example among the label batches up to as_of_batch (all when
-- NULL): example_id, label, ts, source, batch_id, example_key.
CREATE OR REPLACE MACRO evalstore.labels_as_of(model, as_of_batch) AS TABLE
    SELECT example_id, label, ts, source, batch_id, example_key
    FROM evalstore.model_table(model, 'labels')
    WHERE (as_of_batch IS NULL AND superseded_by IS NULL)
       OR (batch_id <= as_of_batch AND (superseded_by IS NULL OR superseded_by > as_of_batch));
COMMENT ON MACRO TABLE evalstore.labels_as_of IS
    'Latest label per example among batches <= as_of_batch (NULL: all). Args: model, as_of_batch.';

-- evalstore.training_rows(model, version, env, since, until, labeled_only, as_of_batch)
-- Training data: every feature row (all columns of <model>.features) with
--   label, label_ts, label_source   the example's label as of as_of_batch
--                                   (evalstore.labels_as_of; NULL when unlabeled)
--   version, prediction, score, probabilities   what `version` predicted for the example
--                                   (NULL when it did not, or when version is NULL)
-- restricted to env (NULL: every env), since <= ts < until of the feature row (NULL:
-- open), feature and prediction rows of batches <= as_of_batch, and, when labeled_only,
-- to labeled rows.
CREATE OR REPLACE MACRO evalstore.training_rows(
    model, version, env, since, until, labeled_only, as_of_batch
) AS TABLE
    SELECT
        f.*,
        l.label, l.ts AS label_ts, l.source AS label_source,
        p.version, p.prediction, p.score, p.probabilities
    FROM evalstore.model_table(model, 'features') AS f
    LEFT JOIN evalstore.labels_as_of(model, as_of_batch) AS l ON l.example_key = f.example_key
    LEFT JOIN (
        SELECT pp.example_key, pp.version, pp.prediction, pp.score, pp.probabilities
        FROM evalstore.model_table(model, 'predictions') AS pp
        WHERE pp.version = version AND (as_of_batch IS NULL OR pp.batch_id <= as_of_batch)
    ) AS p ON p.example_key = f.example_key
    WHERE (env IS NULL OR f.env = env)
      AND (since IS NULL OR f.ts >= since)
      AND (until IS NULL OR f.ts < until)
      AND (as_of_batch IS NULL OR f.batch_id <= as_of_batch)
      AND (NOT labeled_only OR l.example_key IS NOT NULL);
COMMENT ON MACRO TABLE evalstore.training_rows IS
    'Features + label as of a batch + a version''s prediction. Args: model, version, env, since, until, labeled_only, as_of_batch.';

-- evalstore.row_digest(row) -> UHUGEINT
-- Note: inside a macro an unqualified name that is also a parameter means the parameter,
-- so columns sharing a parameter's name (version, env) are always qualified.
-- Helper (DuckDB-only: a row as a struct cast to text, md5_number): the MD5 of one row's
-- text form. A selection's content hash is bit_xor of its rows' digests (order does not
-- matter) together with its row count.
CREATE OR REPLACE MACRO evalstore.row_digest(row) AS md5_number(CAST(row AS VARCHAR));
COMMENT ON MACRO evalstore.row_digest IS
    'MD5 (as a number) of a row''s text form; bit_xor over rows gives a content hash.';
