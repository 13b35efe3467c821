"""The monitoring tables of the store layout: the metric history and the monitors.

Migrations 10, 11 and 12 of :data:`evalstore.core.layout.MIGRATIONS` create them; the code that
reads and writes them is :mod:`evalstore.monitors` (core owns the layout, the monitors layer
its use). Kept apart from ``layout.py`` so that each module stays one concern: the model
tables and the system tables there, the monitoring ones here.
"""

from __future__ import annotations

import duckdb


def create_metric_history(con: duckdb.DuckDBPyConnection) -> None:
    """The metric history (issue 26): persisted results of windowed metric calls.

    ``metric_history_calls`` has one row per persisted call (model, family and the hash
    of its normalised parameters, with a readable JSON copy, the Arrow schema of its
    result and the input watermark it was last refreshed at); ``metric_history_windows``
    one row per window of a call with the row counts it saw; ``metric_history`` one long
    row per result row, the columns of every family side by side (see
    :mod:`evalstore.monitors.history`). No primary keys: rows are replaced by DELETE and
    INSERT in one transaction, which DuckDB's unique indexes refuse."""
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS evalstore.metric_history_calls (
            model VARCHAR NOT NULL,
            family VARCHAR NOT NULL,
            params_hash VARCHAR NOT NULL,
            params JSON NOT NULL,
            result_schema BLOB NOT NULL,
            width VARCHAR,
            coupled BOOLEAN NOT NULL,
            context_hash VARCHAR NOT NULL,
            features_batch BIGINT,
            predictions_batch BIGINT,
            labels_batch BIGINT,
            created_at TIMESTAMPTZ NOT NULL,
            refreshed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE IF NOT EXISTS evalstore.metric_history_windows (
            model VARCHAR NOT NULL,
            family VARCHAR NOT NULL,
            params_hash VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ,
            feature_rows BIGINT,
            prediction_rows BIGINT,
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE IF NOT EXISTS evalstore.metric_history (
            model VARCHAR NOT NULL,
            family VARCHAR NOT NULL,
            params_hash VARCHAR NOT NULL,
            window_start TIMESTAMPTZ,
            window_end TIMESTAMPTZ,
            row_index INTEGER NOT NULL,
            version VARCHAR,
            subject VARCHAR,
            kind VARCHAR,
            metric VARCHAR,
            "class" VARCHAR,
            variant VARCHAR,
            value DOUBLE,
            p_value DOUBLE,
            threshold DOUBLE,
            threshold_low DOUBLE,
            threshold_source VARCHAR,
            flagged BOOLEAN,
            ci_low DOUBLE,
            ci_high DOUBLE,
            n_reference BIGINT,
            n_analysis BIGINT,
            "count" BIGINT,
            n BIGINT,
            n_excluded BIGINT,
            predictions BIGINT,
            labeled BIGINT,
            label_coverage DOUBLE,
            labels_complete BOOLEAN,
            labels_due TIMESTAMPTZ,
            reason VARCHAR,
            slices MAP(VARCHAR, VARCHAR),
            features_batch BIGINT,
            predictions_batch BIGINT,
            labels_batch BIGINT,
            computed_at TIMESTAMPTZ NOT NULL
        );
        COMMENT ON TABLE evalstore.metric_history_calls IS
            'Persisted metric calls: model, family, parameters (hash and JSON), watermark.';
        COMMENT ON TABLE evalstore.metric_history_windows IS
            'Windows of persisted metric calls and the row counts they were computed on.';
        COMMENT ON TABLE evalstore.metric_history IS
            'Metric history: one row per persisted result row (every family, one long table).';
        """
    )


def create_monitor_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Monitors, alert episodes, per-subject alert cursors, notification channels and the
    outbox (issue 26; the rules and the alert state machine are ``evalstore.monitors``)."""
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS evalstore.monitors (
            name VARCHAR NOT NULL PRIMARY KEY,
            model VARCHAR NOT NULL,
            family VARCHAR NOT NULL,
            metric VARCHAR NOT NULL,
            subjects VARCHAR[],
            options JSON,
            rule JSON NOT NULL,
            definition_version INTEGER NOT NULL DEFAULT 1,
            enabled BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            last_run TIMESTAMPTZ,
            last_error VARCHAR
        );
        CREATE SEQUENCE IF NOT EXISTS evalstore.alert_ids START 1;
        CREATE TABLE IF NOT EXISTS evalstore.alerts (
            alert_id BIGINT NOT NULL PRIMARY KEY,
            monitor VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            state VARCHAR NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
            first_window_start TIMESTAMPTZ,
            window_start TIMESTAMPTZ,
            window_end TIMESTAMPTZ,
            value DOUBLE,
            lower DOUBLE,
            upper DOUBLE,
            reason VARCHAR,
            first_seen TIMESTAMPTZ NOT NULL,
            last_seen TIMESTAMPTZ NOT NULL,
            fired_at TIMESTAMPTZ,
            resolved_at TIMESTAMPTZ,
            acknowledged_at TIMESTAMPTZ,
            acknowledged_by VARCHAR,
            silenced_until TIMESTAMPTZ,
            definition_version INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS evalstore.alert_cursors (
            monitor VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            last_window_start TIMESTAMPTZ NOT NULL,
            last_status VARCHAR NOT NULL,
            last_breached BOOLEAN NOT NULL,
            base_breaches INTEGER NOT NULL,
            base_clean INTEGER NOT NULL,
            alert_id BIGINT,
            silenced_until TIMESTAMPTZ,
            PRIMARY KEY (monitor, subject)
        );
        CREATE TABLE IF NOT EXISTS evalstore.channels (
            name VARCHAR NOT NULL PRIMARY KEY,
            kind VARCHAR NOT NULL CHECK (kind IN ('webhook', 'command')),
            config JSON NOT NULL,
            enabled BOOLEAN NOT NULL DEFAULT true,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE SEQUENCE IF NOT EXISTS evalstore.outbox_ids START 1;
        CREATE TABLE IF NOT EXISTS evalstore.outbox (
            outbox_id BIGINT NOT NULL PRIMARY KEY,
            alert_id BIGINT NOT NULL,
            channel VARCHAR NOT NULL,
            change VARCHAR NOT NULL,
            payload JSON NOT NULL,
            state VARCHAR NOT NULL CHECK (state IN ('due', 'delivered', 'failed')),
            created_at TIMESTAMPTZ NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMPTZ NOT NULL,
            delivered_at TIMESTAMPTZ,
            last_error VARCHAR
        );
        COMMENT ON TABLE evalstore.monitors IS
            'Monitor definitions: what to compute (family, metric, subjects, options) and a rule.';
        COMMENT ON TABLE evalstore.alerts IS
            'Alert episodes: one row per (monitor, subject) episode: pending, firing, resolved.';
        COMMENT ON TABLE evalstore.alert_cursors IS
            'Per (monitor, subject): the last window evaluated and the streak counters.';
        COMMENT ON TABLE evalstore.channels IS
            'Notification channels: webhook (URL, secret reference, headers) or local command.';
        COMMENT ON TABLE evalstore.outbox IS
            'Notifications, written with the alert change: due, delivered or failed; attempts.';
        """
    )


def create_monitor_values(con: duckdb.DuckDBPyConnection) -> None:
    """``evalstore.monitor_values``: per monitor and subject, the latest window with a
    finite value at the monitor's last run (written in the run's transaction by
    :mod:`evalstore.monitors.latest`): what ``/metrics`` exports as
    ``evalstore_monitor_value`` for every monitor, the ``health`` ones included (their
    series are computed at each run and kept nowhere else)."""
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS evalstore.monitor_values (
            monitor VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            window_start TIMESTAMPTZ,
            window_end TIMESTAMPTZ,
            value DOUBLE NOT NULL,
            lower DOUBLE,
            upper DOUBLE,
            verdict VARCHAR NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (monitor, subject)
        );
        COMMENT ON TABLE evalstore.monitor_values IS
            'Per monitor and subject: the latest finite value of its series at its last run.';
        """
    )


def add_refresh_summaries(con: duckdb.DuckDBPyConnection) -> None:
    """What lets a persisted metric call refresh in time that follows the new rows, not
    the stored ones (issue 26 point 1).

    ``metric_history_calls`` gains ``feature_rows`` and ``prediction_rows`` (the rows of
    the model's features, every env, and of its predictions at the call's watermark: a
    refresh counts only the rows of later batches per window, unless rows were removed
    since) and ``reference`` (the reference fingerprint the call last saw, JSON).

    ``label_horizons`` holds, per model and ``delay_quantile``, the label-delay quantile
    behind performance's ``labels_due``/``labels_complete`` and the watermark it was
    computed at (highest batch id of labels and of predictions), with the *band* that
    lets it be refreshed from new labels and predictions alone: the exact delays between
    ``band_low`` and ``band_high`` are in ``label_delay_band`` (distinct value, count),
    the others are counted in ``below`` and ``above``. ``evalstore.label_horizon`` reads
    the row whose watermark is the model's current one, and computes from every label
    otherwise (see :mod:`evalstore.monitors.history_horizon`)."""
    con.execute(
        """
        ALTER TABLE evalstore.metric_history_calls ADD COLUMN IF NOT EXISTS feature_rows BIGINT;
        ALTER TABLE evalstore.metric_history_calls
            ADD COLUMN IF NOT EXISTS prediction_rows BIGINT;
        ALTER TABLE evalstore.metric_history_calls ADD COLUMN IF NOT EXISTS reference JSON;
        CREATE TABLE IF NOT EXISTS evalstore.label_horizons (
            model VARCHAR NOT NULL,
            delay_quantile DOUBLE NOT NULL,
            labels_batch BIGINT,
            predictions_batch BIGINT,
            labeled BIGINT NOT NULL,
            delay_hours DOUBLE,
            band_low DOUBLE,
            band_high DOUBLE,
            below BIGINT NOT NULL,
            above BIGINT NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE IF NOT EXISTS evalstore.label_delay_band (
            model VARCHAR NOT NULL,
            delay_quantile DOUBLE NOT NULL,
            delay_hours DOUBLE NOT NULL,
            n BIGINT NOT NULL
        );
        COMMENT ON TABLE evalstore.label_horizons IS
            'Label-delay quantile per model and delay_quantile at a watermark, and its band.';
        COMMENT ON TABLE evalstore.label_delay_band IS
            'Exact label delays (hours, count) near the stored quantile of label_horizons.';
        """
    )
