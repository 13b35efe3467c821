"""Storage layout and migrations.

The system schema ``evalstore`` holds the registry, the ingest audit trail and the
store's metadata; each monitored model gets a schema of its own (see
``../shared/DESIGN.md``). The layout is versioned: :data:`MIGRATIONS` lists every
change in order, each applied once, in a transaction, and recorded in
``evalstore.migrations``; ``evalstore.meta`` holds the resulting
``schema_version``. A file written by this version therefore opens with every
later one, which applies only the migrations the file has not seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from evalstore.core.db import transaction
from evalstore.core.identifiers import quote, quote_literal
from evalstore.core.layout_monitoring import (
    add_refresh_summaries,
    create_metric_history,
    create_monitor_tables,
    create_monitor_values,
)
from evalstore.errors import InvalidParameterError, StoreVersionError

#: Columns evalstore writes itself in each model table; users' columns may not take these names.
FEATURE_SYSTEM_COLUMNS = ("example_id", "env", "dataset", "ts", "batch_id")
#: The join key of an example, beside ``example_id`` in features, predictions and labels:
#: the 128-bit MD5 digest of the id (``md5_number``, typed ``UUID`` so that it stays exact
#: and readable through Arrow and BI tools), computed at ingest. Joins between the model's
#: tables compare it rather than the text id: DuckDB then pushes the keys of a small side
#: (the labels, a few thousand picks) into the scan of a big table, which it does not do
#: for text. It needs no lookup at ingest (a digest, not a dictionary) and is the same for
#: the same id in every DuckDB version; two ids share a key with probability 2^-128 per
#: pair. Not a feature, and not in selections.
EXAMPLE_KEY = "example_key"
#: Names reserved for features because ``evaluations`` puts them beside the features.
RESERVED_FEATURE_NAMES = frozenset(
    {*FEATURE_SYSTEM_COLUMNS, EXAMPLE_KEY, "version", "prediction", "score", "probabilities"}
    | {"latency_ms", "label", "label_ts", "label_source"}
)
#: The tables that carry ``example_key``.
KEYED_TABLES = ("features", "predictions", "labels")


def example_key_sql(text_id: str) -> str:
    """SQL: the ``example_key`` of the VARCHAR expression ``text_id``.

    >>> example_key_sql("r.example_id")
    'CAST(md5_number(r.example_id) AS UUID)'
    """
    return f"CAST(md5_number({text_id}) AS UUID)"


ENVS = ("training", "validation", "serving")
INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
NUMERIC_TYPES = INTEGER_TYPES | {"FLOAT", "DOUBLE"}
#: Feature types analysed as categories (cast to text).
CATEGORICAL_TYPES = frozenset({"VARCHAR", "BOOLEAN"})
TASKS = ("binary", "multiclass", "regression")


def catalog(con: duckdb.DuckDBPyConnection) -> str:
    """The DuckDB catalog the store is open as: the file's stem (``fraud`` for
    ``fraud.duckdb``), ``memory`` for an in-memory store."""
    return con.execute("SELECT current_database()").fetchall()[0][0]


def schema_prefix(con: duckdb.DuckDBPyConnection, model: str) -> str:
    """``"<catalog>"."<model>".``: the prefix of a model's tables in SQL built by Python.

    A store file named like a model (``fraud.duckdb`` holding model ``fraud``) opens as
    catalog ``fraud``, and DuckDB refuses ``fraud.features`` as "Ambiguous reference to
    catalog or schema". Every statement evalstore builds therefore names a model's tables
    with the catalog too. Persistent views inside a model's schema name its tables
    unqualified instead (DuckDB resolves them in the view's own schema, whatever catalog
    name the file is later opened under), and the SQL macros qualify names with
    ``current_database()`` (``evalstore.model_table``, ``evalstore.relation``).

    >>> con = duckdb.connect()
    >>> schema_prefix(con, "fraud")
    '"memory"."fraud".'
    >>> con.close()
    """
    return f"{quote(catalog(con))}.{quote(model)}."


def model_relation(con: duckdb.DuckDBPyConnection, model: str, table: str) -> str:
    """``"<catalog>"."<model>"."<table>"``: one of a model's tables or views, unambiguous
    whatever the store file is called (see :func:`schema_prefix`)."""
    return schema_prefix(con, model) + quote(table)


#: Catalog names a store file may not open as: evalstore's system schema (every macro
#: calls ``evalstore.<macro>``, which DuckDB would find ambiguous) and DuckDB's own.
RESERVED_CATALOGS = frozenset({"evalstore"})


def check_catalog(con: duckdb.DuckDBPyConnection, path: object = None) -> str:
    """Return the store's catalog name, or raise :class:`InvalidParameterError` when it
    is one a store cannot use (a file named ``evalstore.duckdb`` opens as catalog
    ``evalstore``, which clashes with the system schema of that name)."""
    name = catalog(con)
    if name.lower() in RESERVED_CATALOGS:
        raise InvalidParameterError(
            f"path={str(path)!r} opens as DuckDB catalog {name!r}, the name of evalstore's "
            "system schema, which makes every evalstore.<name> reference ambiguous; "
            "choose another file name (for example 'monitoring.duckdb')"
        )
    return name


@dataclass(frozen=True)
class Migration:
    """One step of the storage layout: ``apply`` runs inside the migration's transaction."""

    version: int
    description: str
    apply: Callable[[duckdb.DuckDBPyConnection], None]


def _create_system_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS evalstore.models (
            model VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            task VARCHAR NOT NULL,
            classes VARCHAR[],
            positive_class VARCHAR,
            threshold DOUBLE,
            created_at TIMESTAMPTZ NOT NULL,
            trained_at TIMESTAMPTZ,
            deployed_at TIMESTAMPTZ,
            retired_at TIMESTAMPTZ,
            stage VARCHAR,
            training_dataset VARCHAR,
            validation_dataset VARCHAR,
            params JSON,
            dependencies JSON,
            notes VARCHAR,
            PRIMARY KEY (model, version)
        );
        CREATE SEQUENCE IF NOT EXISTS evalstore.batch_ids START 1;
        CREATE TABLE IF NOT EXISTS evalstore.batches (
            batch_id BIGINT PRIMARY KEY,
            model VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            env VARCHAR,
            version VARCHAR,
            dataset VARCHAR,
            rows BIGINT NOT NULL,
            columns_added VARCHAR[],
            received_at TIMESTAMPTZ NOT NULL,
            committed_at TIMESTAMPTZ NOT NULL,
            source VARCHAR
        );
        COMMENT ON TABLE evalstore.models IS
            'Model registry: one row per model version (task, classes, threshold, lineage).';
        COMMENT ON TABLE evalstore.batches IS
            'Audit trail: one row per accepted ingest batch; basis of freshness and volume.';
        """
    )


def _create_value_views(con: duckdb.DuckDBPyConnection) -> None:
    from evalstore.core.values import refresh_value_views

    for (model,) in con.execute("SELECT DISTINCT model FROM evalstore.models").fetchall():
        refresh_value_views(con, model)


def _create_schemas_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS evalstore.schemas (
            model VARCHAR NOT NULL,
            feature VARCHAR NOT NULL,
            kind VARCHAR NOT NULL CHECK (kind IN ('numeric', 'categorical')),
            dtype VARCHAR,
            nullable BOOLEAN,
            min DOUBLE,
            max DOUBLE,
            domain VARCHAR[],
            expected_missing DOUBLE,
            inferred_at TIMESTAMPTZ,
            reference VARCHAR,
            PRIMARY KEY (model, feature)
        );
        COMMENT ON TABLE evalstore.schemas IS
            'Editable feature schemas per model (type, nulls, range, domain) read by validate.';
        """
    )


def _create_label_requests_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE SEQUENCE IF NOT EXISTS evalstore.label_request_ids START 1;
        CREATE TABLE IF NOT EXISTS evalstore.label_requests (
            request_id BIGINT NOT NULL DEFAULT nextval('evalstore.label_request_ids'),
            model VARCHAR NOT NULL,
            example_id VARCHAR NOT NULL,
            strategy VARCHAR NOT NULL,
            priority DOUBLE,
            reason VARCHAR,
            requested_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ,
            status VARCHAR NOT NULL
                CHECK (status IN ('open', 'fulfilled', 'expired', 'cancelled')),
            fulfilled_at TIMESTAMPTZ,
            label_batch_id BIGINT
        );
        COMMENT ON TABLE evalstore.label_requests IS
            'Examples suggested for labeling: open until a label arrives, expires or is cancelled.';
        """
    )


def _create_snapshots_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS evalstore.snapshots (
            name VARCHAR NOT NULL PRIMARY KEY,
            model VARCHAR NOT NULL,
            definition VARCHAR NOT NULL,
            as_of TIMESTAMPTZ NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            row_count BIGINT NOT NULL,
            content_hash VARCHAR NOT NULL
        );
        COMMENT ON TABLE evalstore.snapshots IS
            'Named, reproducible data selections: definition, as-of time, rows, content hash.';
        """
    )


#: The latest label of each example: the one no later batch has superseded. A labels
#: batch holds an example at most once, so "latest" is "highest batch_id" and the
#: ingest of a batch marks the labels it supersedes
#: (:func:`evalstore.core.ingest_write.execute`).
#: ``{s}`` is the prefix of the model's tables: empty in the model's own views (DuckDB
#: resolves their names in the view's schema, whatever the file's catalog is called),
#: :func:`schema_prefix` in queries.
LABELS_LATEST = (
    "SELECT example_id, label, ts, source, batch_id, example_key FROM {s}labels "
    "WHERE superseded_by IS NULL"
)
#: Predictions with the latest labels and the serving features (joined on the key);
#: ``{features}`` is the model's features table or a query over it adding columns.
EVALUATIONS = """
    SELECT
        p.example_id, p.version, p.ts, p.prediction, p.score, p.probabilities, p.latency_ms,
        l.label, l.ts AS label_ts, l.source AS label_source,
        f.* EXCLUDE (example_id, env, dataset, ts, batch_id, example_key), p.example_key
    FROM {s}predictions AS p
    LEFT JOIN {s}labels_latest AS l ON l.example_key = p.example_key
    LEFT JOIN {features} AS f ON f.example_key = p.example_key AND f.env = 'serving'
"""
EVALUATIONS_COMMENT = "Predictions joined with the latest labels and the serving features."
LABELS_COMMENT = (
    "Ground truth, append-only: a correction adds a row and the latest batch wins; "
    "superseded_by is the batch of the label that replaced this one (NULL: current)."
)
LABELS_LATEST_COMMENT = "The latest label of each example (highest batch_id)."


def _mark_superseded_labels(con: duckdb.DuckDBPyConnection) -> None:
    """Add ``labels.superseded_by`` (filled from the stored labels) and re-create
    ``labels_latest`` as it was at version 6; migration 7 re-creates the views that read
    it (a store is always migrated to the latest version in one transaction)."""
    for (model,) in con.execute("SELECT DISTINCT model FROM evalstore.models").fetchall():
        s = schema_prefix(con, model).removesuffix(".")
        con.execute(f"ALTER TABLE {s}.labels ADD COLUMN superseded_by BIGINT")
        con.execute(
            f"""
            UPDATE {s}.labels AS l SET superseded_by = n.next_batch
            FROM (
                SELECT example_id, batch_id,
                       lead(batch_id) OVER (PARTITION BY example_id ORDER BY batch_id)
                           AS next_batch
                FROM {s}.labels
            ) AS n
            WHERE n.example_id = l.example_id AND n.batch_id = l.batch_id
              AND n.next_batch IS NOT NULL
            """
        )
        con.execute(
            f"CREATE OR REPLACE VIEW {s}.labels_latest AS SELECT example_id, label, ts, source, "
            "batch_id FROM labels WHERE superseded_by IS NULL"
        )
        con.execute(f"COMMENT ON TABLE {s}.labels IS {quote_literal(LABELS_COMMENT)}")


EXAMPLE_KEY_COMMENT = "Join key: the MD5 digest of example_id as a UUID, written at ingest."


def _add_example_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Add ``example_key`` to each model's features, predictions and labels (filled from
    the stored ids) and re-create the views that join on it."""
    from evalstore.core.values import refresh_value_views

    for (model,) in con.execute("SELECT DISTINCT model FROM evalstore.models").fetchall():
        s = schema_prefix(con, model).removesuffix(".")
        for table in KEYED_TABLES:
            con.execute(f"ALTER TABLE {s}.{table} ADD COLUMN example_key UUID")
            con.execute(f"UPDATE {s}.{table} SET example_key = {example_key_sql('example_id')}")
        con.execute(_keyed_views(s))
        refresh_value_views(con, model)


def _keyed_views(s: str) -> str:
    """SQL (re)creating the views of qualified schema ``s`` that join on ``example_key``,
    with the comments of the views and of the key columns. The views name the schema's
    tables unqualified (see :data:`LABELS_LATEST`)."""
    key_comments = " ".join(
        f"COMMENT ON COLUMN {s}.{table}.example_key IS {quote_literal(EXAMPLE_KEY_COMMENT)};"
        for table in KEYED_TABLES
    )
    evaluations = EVALUATIONS.format(s="", features="features")
    return (
        f"CREATE OR REPLACE VIEW {s}.labels_latest AS {LABELS_LATEST.format(s='')}; "
        f"CREATE OR REPLACE VIEW {s}.evaluations AS {evaluations}; "
        f"COMMENT ON VIEW {s}.labels_latest IS {quote_literal(LABELS_LATEST_COMMENT)}; "
        f"COMMENT ON VIEW {s}.evaluations IS {quote_literal(EVALUATIONS_COMMENT)}; " + key_comments
    )


def _unqualify_model_views(con: duckdb.DuckDBPyConnection) -> None:
    """Re-create each model's views with unqualified table names, so that they bind in a
    file whose catalog has the model's name (earlier views said ``"fraud".labels``)."""
    from evalstore.core.values import refresh_value_views

    for (model,) in con.execute("SELECT DISTINCT model FROM evalstore.models").fetchall():
        con.execute(_keyed_views(schema_prefix(con, model).removesuffix(".")))
        refresh_value_views(con, model)


def _add_batch_keys(con: duckdb.DuckDBPyConnection) -> None:
    """``evalstore.batches.batch_key``: the caller's idempotency key of a batch (NULL when
    none was given), and ``receipt``: the rest of that batch's receipt (columns ignored,
    rows replaced/skipped, warnings) as JSON, so that a retry with the same key, for the
    same model and kind, returns the first call's receipt instead of writing again. Keys
    are kept for good: they are part of the audit trail. A unique index on
    ``(model, kind, batch_key)`` refuses a key twice (NULL keys are never equal)."""
    con.execute(
        """
        ALTER TABLE evalstore.batches ADD COLUMN IF NOT EXISTS batch_key VARCHAR;
        ALTER TABLE evalstore.batches ADD COLUMN IF NOT EXISTS receipt JSON;
        CREATE UNIQUE INDEX IF NOT EXISTS batches_batch_key
            ON evalstore.batches (model, kind, batch_key);
        COMMENT ON COLUMN evalstore.batches.batch_key IS
            'Idempotency key of the batch (Idempotency-Key header or batch_key=); NULL if none.';
        COMMENT ON COLUMN evalstore.batches.receipt IS
            'Rest of the receipt of a keyed batch (JSON), returned to a replay of its key.';
        """
    )


def _add_history_engine(con: duckdb.DuckDBPyConnection) -> None:
    """``evalstore.metric_history.engine``: the engine that computed each stored row,
    ``'duckdb'`` (the store itself, the default, and every row stored before) or
    ``'spark'`` (rows written by ``SparkEngine.materialize``, :mod:`evalstore.engines.spark`)."""
    con.execute(
        """
        ALTER TABLE evalstore.metric_history ADD COLUMN IF NOT EXISTS engine VARCHAR
            DEFAULT 'duckdb';
        COMMENT ON COLUMN evalstore.metric_history.engine IS
            'Engine that computed the row: duckdb (the store) or spark (SparkEngine.materialize).';
        """
    )


#: Every layout change, in order. Append only; never edit a released migration.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "system tables: models, batches", _create_system_tables),
    Migration(2, "long-format value views per model", _create_value_views),
    Migration(3, "feature schemas for validation: evalstore.schemas", _create_schemas_table),
    Migration(
        4, "suggested examples to label: evalstore.label_requests", _create_label_requests_table
    ),
    Migration(5, "reproducible selections: evalstore.snapshots", _create_snapshots_table),
    Migration(
        6, "labels.superseded_by: the latest labels without a window", _mark_superseded_labels
    ),
    Migration(7, "example_key: joins on a 128-bit digest of the id", _add_example_keys),
    Migration(
        8, "model views name their tables unqualified: any file name", _unqualify_model_views
    ),
    Migration(9, "idempotent ingest: evalstore.batches.batch_key, receipt", _add_batch_keys),
    Migration(10, "metric history: evalstore.metric_history and its calls", create_metric_history),
    Migration(11, "monitors, alerts, channels and the notification outbox", create_monitor_tables),
    Migration(12, "latest monitor values: evalstore.monitor_values", create_monitor_values),
    Migration(13, "metric history refresh summaries, label horizons", add_refresh_summaries),
    Migration(14, "metric history: the engine that computed each row", _add_history_engine),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def _bootstrap(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE SCHEMA IF NOT EXISTS evalstore;
        CREATE TABLE IF NOT EXISTS evalstore.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
        CREATE TABLE IF NOT EXISTS evalstore.migrations (
            version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMPTZ
        );
        COMMENT ON TABLE evalstore.meta IS 'Store metadata: schema version, installed macros.';
        """
    )


def stored_schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the schema version recorded in the file, 0 for a new (empty) store."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'evalstore' "
        "AND table_name = 'meta'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    # fetchall, not fetchone: DuckDB 2.0 refuses con.sql() while a result is unfinished.
    rows = con.execute("SELECT value FROM evalstore.meta WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else 0


def check_readable(con: duckdb.DuckDBPyConnection, read_only: bool = False) -> int:
    """Raise :class:`StoreVersionError` if this library cannot read the store as it is:
    a newer layout, or (``read_only``: nothing can be migrated) an older one."""
    version = stored_schema_version(con)
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"this store has schema version {version}, newer than this evalstore "
            f"understands ({SCHEMA_VERSION}); upgrade evalstore to open it"
        )
    if read_only and 0 < version < SCHEMA_VERSION:
        raise StoreVersionError(
            f"this store has schema version {version}, older than this evalstore's "
            f"({SCHEMA_VERSION}), and a read-only store cannot be migrated; open it once "
            "without read_only (evalstore.open(path)) to migrate it"
        )
    return version


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply pending migrations in one transaction; return the versions applied."""
    current = check_readable(con)
    pending = [m for m in MIGRATIONS if m.version > current]
    if not pending:
        return []
    with transaction(con):
        _bootstrap(con)
        for migration in pending:
            migration.apply(con)
            con.execute(
                "INSERT INTO evalstore.migrations VALUES (?, ?, ?)",
                [migration.version, migration.description, datetime.now(UTC)],
            )
        con.execute(
            "INSERT OR REPLACE INTO evalstore.meta VALUES ('schema_version', ?)",
            [str(pending[-1].version)],
        )
    return [m.version for m in pending]


def create_model_schema(con: duckdb.DuckDBPyConnection, model: str, task: str) -> None:
    """Create a model's schema with its tables and views (the caller holds a transaction).

    ``model`` has been checked by :func:`evalstore.core.identifiers.check_model_name`; it is
    quoted all the same. Labels and predictions are ``DOUBLE`` for regression and
    ``VARCHAR`` (the canonical text of the class) for classification.
    """
    s = schema_prefix(con, model).removesuffix(".")
    value_type = "DOUBLE" if task == "regression" else "VARCHAR"
    con.execute(
        f"""
        CREATE SCHEMA {s};
        CREATE TABLE {s}.features (
            example_id VARCHAR, env VARCHAR, dataset VARCHAR, ts TIMESTAMPTZ, batch_id BIGINT,
            example_key UUID
        );
        CREATE TABLE {s}.predictions (
            example_id VARCHAR, version VARCHAR, ts TIMESTAMPTZ, prediction {value_type},
            score DOUBLE, probabilities MAP(VARCHAR, DOUBLE), latency_ms DOUBLE, batch_id BIGINT,
            example_key UUID
        );
        CREATE TABLE {s}.labels (
            example_id VARCHAR, label {value_type}, ts TIMESTAMPTZ, source VARCHAR,
            batch_id BIGINT, superseded_by BIGINT, example_key UUID
        );
        {_keyed_views(s)}
        COMMENT ON TABLE {s}.features IS
            'Feature rows, one column per feature; unique per (example_id, env).';
        COMMENT ON TABLE {s}.predictions IS
            'Predictions, one row per (example_id, version); score = positive-class probability.';
        COMMENT ON TABLE {s}.labels IS {quote_literal(LABELS_COMMENT)};
        """
    )


def model_columns(con: duckdb.DuckDBPyConnection, model: str, table: str) -> dict[str, str]:
    """Return ``{column: duckdb type}`` of one of a model's tables, in table order."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
        "ORDER BY column_index",
        [model, table],
    ).fetchall()
    return dict(rows)


def feature_columns(con: duckdb.DuckDBPyConnection, model: str) -> dict[str, str]:
    """``{feature: duckdb type}`` of a model's feature columns (not the system columns
    nor the join key), in table order."""
    return {
        name: kind
        for name, kind in model_columns(con, model, "features").items()
        if name not in FEATURE_SYSTEM_COLUMNS and name != EXAMPLE_KEY
    }
