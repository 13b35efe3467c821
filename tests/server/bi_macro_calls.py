"""One valid call of every persisted SQL macro, for the BI-snapshot tests.

``MACRO_CALLS`` maps each macro of ``sql/`` to a ``SELECT`` that calls it on the store built
by :func:`build_store` (a binary model ``bin`` with versions v1 and v2, a multiclass ``mc``
and a regression ``reg``, each with training and serving features, predictions and labels,
open label requests, a saved schema and a snapshot). ``tests/server/test_bi_snapshot.py`` runs
every call on the BI snapshot with DuckDB 1.4 and with DuckDB 2.x and compares the rows; a
macro added to ``sql/`` without a call here fails that test.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

TS = "TIMESTAMPTZ '2026-10-01 06:00:00+00'"
Q = ", ".join(str(q) for q in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))  # 11 reference quantiles
SELECTION = "'serving', NULL, NULL, NULL, '1 day', NULL, NULL"  # ana env..width, chunks
REFERENCE = "'training', NULL, NULL, NULL"
Z = "1.9599639845400536"

MACRO_CALLS: dict[str, str] = {
    # --- volume.sql: volume, coverage, delay
    "volume": "SELECT * FROM evalstore.volume('bin', '1 day')",
    "label_coverage": "SELECT * FROM evalstore.label_coverage('bin', '1 day')",
    "label_delay": "SELECT * FROM evalstore.label_delay('bin', '1 day')",
    # --- common.sql: the helpers every family uses
    "log_loss_term": "SELECT evalstore.log_loss_term(0.25)",
    "relation": "SELECT count(*) FROM evalstore.relation('evalstore.models')",
    "with_slice": "SELECT * FROM evalstore.with_slice('bin.evaluations')",
    "class_probability": "SELECT evalstore.class_probability(MAP {'a': 0.7, 'b': 0.3}, 'b')",
    "clip_probability": "SELECT evalstore.clip_probability(1.0)",
    "at_least": "SELECT evalstore.at_least(-0.5, 0.0)",
    "at_most": "SELECT evalstore.at_most(1.5, 1.0)",
    "wilson_low": f"SELECT evalstore.wilson_low(30, 40, {Z})",
    "wilson_high": f"SELECT evalstore.wilson_high(30, 40, {Z})",
    "chunk_index": "SELECT evalstore.chunk_index(10, 11, 0, 4)",
    "split_variant": "SELECT evalstore.split_variant('mean (score - y)^2', 0)",
    "drift_windows": f"SELECT * FROM evalstore.drift_windows('bin.numeric_values', {SELECTION})",
    "drift_pairs": (
        f"SELECT * FROM evalstore.drift_pairs('bin.numeric_values', {REFERENCE}, {SELECTION}, 0)"
    ),
    "model_table": "SELECT count(*) FROM evalstore.model_table('bin', 'labels')",
    "window_start": f"SELECT evalstore.window_start({TS}, '7 days')",
    "window_end": "SELECT evalstore.window_end(TIMESTAMPTZ '2026-10-01 00:00:00+00', '1 day')",
    "interval_us": "SELECT evalstore.interval_us('90 minutes')",
    "hours_between": f"SELECT evalstore.hours_between({TS}, {TS} + INTERVAL 90 MINUTES)",
    "system_table": "SELECT count(*) FROM evalstore.system_table('bin', 'models')",
    # --- drift.sql
    "drift": "SELECT * FROM evalstore.drift('bin', 'training', '1 day')",
    "drift_thresholds": "SELECT * FROM evalstore.drift_thresholds()",
    "reference_reason": (
        "SELECT evalstore.reference_reason('score', 'empty reference', 0, 'training')"
    ),
    "drift_numeric": (
        f"SELECT * FROM evalstore.drift_numeric('bin.numeric_values', {REFERENCE}, "
        f"{SELECTION}, 0, 'quantile', 4, NULL, false, 'epsilon', 0.0001, exp(1), 'distance')"
    ),
    "drift_categorical": (
        f"SELECT * FROM evalstore.drift_categorical('bin.category_values', {REFERENCE}, "
        f"{SELECTION}, 0, 'epsilon', 0.0001, exp(1), 'distance', true)"
    ),
    "numeric_methods": (
        "SELECT unnest(evalstore.numeric_methods(0.3, 1.5, evalstore.binned_scores("
        "[0.25, 0.25, 0.5], [0.2, 0.4, 0.4], 'epsilon', 0.0001, exp(1), 'distance'), 20, "
        "25, 2.0, 1.9, 5.0, 6.0, 2.1, {'cross': 1.5, 'ref': 1.0, 'ana': 1.2}, "
        "{'mw': 230.0, 'ties': 0.0, 'cvm_u': 80000.0}, NULL, "
        "'quantile', 3, false, 'epsilon', 0.0001, exp(1), 'distance'), recursive := true)"
    ),
    "binned_scores": (
        "SELECT evalstore.binned_scores([0.25, 0.25, 0.5], [0.2, 0.4, 0.4], 'epsilon', "
        "0.0001, 2, 'divergence')"
    ),
    "bins_text": "SELECT evalstore.bins_text('fixed', 8, true)",
    "zero_bins_text": "SELECT evalstore.zero_bins_text('epsilon', 0.0001)",
    "quantile_edges": "SELECT evalstore.quantile_edges(x, 4) FROM range(20) AS t(x)",
    "bin_edges": "SELECT evalstore.bin_edges(0.0, 10.0, 50, 0.2, 'doane', 10)",
    "categorical_methods": (
        "SELECT unnest(evalstore.categorical_methods([10, 20, 0], [15, 10, 5], 30, 30, "
        "'epsilon', 0.0001, exp(1), 'distance', true), recursive := true)"
    ),
    "categorical_rows": (
        "SELECT unnest(evalstore.categorical_rows(evalstore.category_tests([10, 20], "
        "[15, 15], 30, 30, true), evalstore.binned_scores([0.3333, 0.6667], [0.5, 0.5], "
        "'epsilon', 0.0001, exp(1), 'distance'), NULL, 'epsilon', 0.0001, exp(1), "
        "'distance', true), recursive := true)"
    ),
    "category_tests": "SELECT evalstore.category_tests([10, 20], [15, 15], 30, 30, false)",
    "chi2_sum": "SELECT evalstore.chi2_sum([10, 20], [15, 15], 30, 30, true)",
    "chi2_term": "SELECT evalstore.chi2_term(12, 10.0, true)",
    "seen_categories": "SELECT evalstore.seen_categories([1, 0, 0], [0, 2, 0])",
    "yates_observed": "SELECT evalstore.yates_observed(12, 10.3, true)",
    "g_term": "SELECT evalstore.g_term(12, 10.0, true)",
    "g_sum": "SELECT evalstore.g_sum([10, 20], [15, 15], 30, 30, true)",
    "gof_sum": "SELECT evalstore.gof_sum([10, 20, 0], [15, 15, 1], 30, 31)",
    "binary_table": "SELECT evalstore.binary_table([10, 0, 20], [15, 0, 15])",
    "two_proportion_z": "SELECT evalstore.two_proportion_z([10, 20, 15, 15])",
    "odds_ratio": "SELECT evalstore.odds_ratio([10, 20, 15, 15])",
    # --- summary.sql
    "summary_quantiles": "SELECT evalstore.summary_quantiles(x, [0.1, 0.9]) FROM range(5) t(x)",
    "summary_cells": (
        "SELECT * FROM evalstore.summary_cells('bin.numeric_values', 'numeric', 'serving', "
        "NULL, NULL, NULL, '1 day', NULL, NULL, NULL, [0.5])"
    ),
    "summary_stats": (
        f"SELECT * FROM evalstore.summary_stats('bin.numeric_values', 'bin.category_values', "
        f"{REFERENCE}, {SELECTION}, 2, NULL, [0.05, 0.95], 3.0)"
    ),
    # --- quality.sql
    "quality": (
        f"SELECT * FROM evalstore.quality('bin.numeric_values', 'bin.category_values', "
        f"{REFERENCE}, {SELECTION}, 0, 1, 0.05, 0, 0.01, 0.01)"
    ),
    "quality_numeric": (
        f"SELECT * FROM evalstore.quality_numeric('bin.numeric_values', {REFERENCE}, "
        f"{SELECTION}, 0, 1, 0.05, 0, 0.01)"
    ),
    "quality_categorical": (
        f"SELECT * FROM evalstore.quality_categorical('bin.category_values', {REFERENCE}, "
        f"{SELECTION}, 0, 1, 0.05, 0.01)"
    ),
    "quality_numeric_checks": (
        f"SELECT * FROM evalstore.quality_numeric_checks('bin.numeric_values', {REFERENCE}, "
        f"{SELECTION}, 0, 1, 0.05, 0, 0.01)"
    ),
    "quality_categorical_checks": (
        f"SELECT * FROM evalstore.quality_categorical_checks('bin.category_values', "
        f"{REFERENCE}, {SELECTION}, 0, 1, 0.05, 0.01)"
    ),
    "quality_fill": (
        f"WITH c AS (SELECT * FROM evalstore.quality_categorical_checks('bin.category_values', "
        f"{REFERENCE}, {SELECTION}, 0, 1, 0.05, 0.01)) "
        "SELECT * FROM evalstore.quality_fill('c', NULL, NULL, '1 day')"
    ),
    "data_quality": "SELECT * FROM evalstore.data_quality('mc', '1 day')",
    "schema_validation": "SELECT * FROM evalstore.schema_validation('bin', '1 day')",
    "infer_schema": (
        "SELECT model, feature, kind, dtype, nullable, min, max, domain, expected_missing "
        "FROM evalstore.infer_schema('bin', 'bin.numeric_values', 'bin.category_values', "
        f"{REFERENCE}, 1000)"
    ),
    "validate": (
        "SELECT * FROM evalstore.validate('bin', 'evalstore.schemas', 'bin.numeric_values', "
        f"'bin.category_values', {SELECTION}, 0.05)"
    ),
    "validate_numeric": (
        "SELECT * FROM evalstore.validate_numeric('bin', 'evalstore.schemas', "
        f"'bin.numeric_values', {SELECTION}, 0.05)"
    ),
    "validate_categorical": (
        "SELECT * FROM evalstore.validate_categorical('bin', 'evalstore.schemas', "
        f"'bin.category_values', {SELECTION}, 0.05)"
    ),
    "analysis_window_starts": (
        "SELECT evalstore.analysis_window_starts(NULL, TIMESTAMPTZ '2026-10-03 00:00:00+00', "
        "TIMESTAMPTZ '2026-10-01 06:00:00+00', TIMESTAMPTZ '2026-10-01 00:00:00+00', '1 day')"
    ),
    "missing_share": "SELECT evalstore.missing_share(8, 6)",
    "share_over": "SELECT evalstore.share_over('unseen', 0.5, 3, 8, 'rows')",
    "missing_threshold": "SELECT evalstore.missing_threshold(10, 9, 0.05)",
    "missing_threshold_source": "SELECT evalstore.missing_threshold_source(3, 1, 0.05)",
    "dtype_mismatch": "SELECT evalstore.dtype_mismatch('double', 'DOUBLE')",
    "check_failed": "SELECT evalstore.check_failed(3, 5, true)",
    "window_starts": (
        "SELECT evalstore.window_starts(TIMESTAMPTZ '2026-10-01 00:00:00+00', "
        "TIMESTAMPTZ '2026-10-03 00:00:00+00', '1 day')"
    ),
    "feature_types": "SELECT * FROM evalstore.feature_types('bin')",
    "category_set": "SELECT evalstore.category_set(c) FROM (VALUES ('b'), ('a'), ('b')) t(c)",
    "schema_domain": "SELECT * FROM evalstore.schema_domain('evalstore.schemas', 'bin')",
    # --- performance.sql
    "performance": "SELECT * FROM evalstore.performance('bin', '1 day')",
    "regression_performance": "SELECT * FROM evalstore.regression_performance('reg', '1 day')",
    "performance_binary": (
        "SELECT * FROM evalstore.performance_binary('bin.evaluations', 'bin', NULL, '1 day', "
        f"NULL, NULL, NULL, NULL, 10, {Z}, NULL, NULL, NULL, NULL, NULL, NULL)"
    ),
    "performance_multiclass": (
        "SELECT * FROM evalstore.performance_multiclass('mc.evaluations', 'mc', '1 day', "
        f"NULL, NULL, NULL, NULL, {Z}, NULL, 0.9, NULL)"
    ),
    "performance_regression": (
        "SELECT * FROM evalstore.performance_regression('reg.evaluations', 'reg', '1 day', "
        f"NULL, NULL, NULL, NULL, {Z}, NULL, 0.9, ['mae', 'r2'])"
    ),
    # --- estimation.sql: CBPE / DLE on the fits build_store keeps as tables (main.*)
    "estimation_binary": (
        "SELECT * FROM evalstore.estimation_binary('bin.evaluations', 'main.bin_calibration', "
        f"'bin', NULL, '1 day', NULL, NULL, NULL, NULL, {Z}, NULL, 0.9, NULL)"
    ),
    "estimation_multiclass": (
        "SELECT * FROM evalstore.estimation_multiclass('mc.evaluations', 'main.mc_calibration', "
        f"'mc', '1 day', NULL, NULL, NULL, NULL, {Z}, NULL, 0.9, NULL)"
    ),
    "estimation_regression": (
        "SELECT * FROM evalstore.estimation_regression('reg.evaluations', "
        f"'main.reg_loss_estimates', 'reg', '1 day', NULL, NULL, NULL, NULL, {Z}, NULL, 0.9, "
        "['mae', 'rmse'])"
    ),
    "hanley_mcneil_se": "SELECT evalstore.hanley_mcneil_se(0.8, 30, 50)",
    "expected_confusion_value": (
        "SELECT evalstore.expected_confusion_value('f1', 3.5, 1.2, 0.8, 4.5)"
    ),
    "expected_confusion_se": (
        "SELECT evalstore.expected_confusion_se('recall', 3.5, 1.2, 0.8, 4.5, 0.9, 0.6)"
    ),
    "expected_roc_areas": (
        "WITH s AS (SELECT 0 AS window_index, 'v1' AS version, NULL AS slice, "
        "NULL AS class_name, unnest([0.9, 0.5, 0.5, 0.2]) AS s, "
        "unnest([0.8, 0.6, 0.4, 0.1]) AS p) "
        "SELECT * FROM evalstore.expected_roc_areas('s')"
    ),
    "estimation_result": (
        "WITH e AS (SELECT 0 AS window_index, TIMESTAMPTZ '2026-10-01 00:00:00+00' AS "
        "window_start, TIMESTAMPTZ '2026-10-02 00:00:00+00' AS window_end, 'v1' AS version, "
        "NULL AS slice, 'accuracy' AS metric, NULL AS \"class\", 0.8 AS value, 0.7 AS ci_low, "
        "0.9 AS ci_high, 0.05 AS se, 100 AS n, 120 AS predictions, 60 AS labeled, "
        "50 AS n_labeled, NULL AS reason, 'v' AS variant, true AS comparable, 1 AS position), "
        "r AS (SELECT 0 AS window_index, 'v1' AS version, NULL AS slice, 'accuracy' AS metric, "
        'NULL AS "class", 0.5 AS value, 0.4 AS ci_low, 0.6 AS ci_high, '
        f"{TS} AS labels_due, false AS labels_complete) "
        f"SELECT * FROM evalstore.estimation_result('e', 'r', 'bin', {Z}, NULL, 0.9)"
    ),
    "performance_rows": (
        "SELECT * FROM evalstore.performance_rows('bin.evaluations', '1 day', NULL, NULL, "
        "NULL, NULL)"
    ),
    "f1_se": "SELECT evalstore.f1_se(40, 10, 5)",
    "label_horizon": "SELECT * FROM evalstore.label_horizon('bin', NULL, NULL)",
    "bucket_index": f"SELECT evalstore.bucket_index({TS}, '1 day')",
    "bucket_start": "SELECT evalstore.bucket_start(9769, '1 day')",
    "cell_window_start": "SELECT evalstore.cell_window_start(9769, '1 day', NULL)",
    "cell_window_end": f"SELECT evalstore.cell_window_end(0, NULL, {TS})",
    "cell_key": "SELECT evalstore.cell_key(12, 2, 3, 10, 1, 2, 4)",
    "integer_value": "SELECT evalstore.integer_value(CAST(7 AS INTEGER))",
    "add_hours": f"SELECT evalstore.add_hours({TS}, 2.5)",
    # --- slices.sql
    "slice_outcomes": (
        "SELECT * FROM evalstore.slice_outcomes('bin.evaluations', 'bin', 'accuracy', NULL, NULL)"
    ),
    "slice_tests": (
        "SELECT * FROM evalstore.slice_tests('slice_counts', 40, 0.6, 9.6, 'proportion', true)"
    ),
    # --- skew.sql
    "skew": (
        "SELECT * FROM evalstore.skew('bin.numeric_values', 'bin.category_values', NULL, "
        "NULL, 1e-08, 1e-05, true, 5)"
    ),
    "skew_summary": (
        "SELECT * FROM evalstore.skew_summary('bin.numeric_values', 'bin.category_values', "
        "NULL, NULL, 1e-08, 1e-05, true, 0.0)"
    ),
    "skew_pairs": (
        "SELECT * FROM evalstore.skew_pairs('bin.numeric_values', 'bin.category_values', "
        "NULL, NULL, 1e-08, 1e-05, true)"
    ),
    "skew_windows": (
        "SELECT * FROM evalstore.skew_windows('bin.numeric_values', 'bin.category_values', "
        "NULL, NULL, 1e-08, 1e-05, true, '1 day')"
    ),
    "feature_skew": "SELECT * FROM evalstore.feature_skew('bin')",
    "feature_skew_summary": "SELECT * FROM evalstore.feature_skew_summary('bin')",
    "smallest": "SELECT evalstore.smallest(x, 2) FROM range(5) AS t(x)",
    "listed": "SELECT evalstore.listed('x', ['x', 'y'])",
    # --- compare.sql
    "compare_classification": (
        "SELECT * FROM evalstore.compare_classification('bin.evaluations', 'v1', 'v2', '1', "
        f"'1 day', NULL, NULL, NULL, NULL, {Z}, 25, NULL)"
    ),
    "compare_regression": (
        "SELECT * FROM evalstore.compare_regression('reg.evaluations', 'v1', 'v2', '1 day', "
        f"NULL, NULL, NULL, NULL, {Z}, 1e-08, 1e-05)"
    ),
    "compare_versions": "SELECT * FROM evalstore.compare_versions('bin', 'v1', 'v2', '1 day')",
    "compare_regression_versions": (
        "SELECT * FROM evalstore.compare_regression_versions('reg', 'v1', 'v2', '1 day')"
    ),
    "compare_pairs": (
        "SELECT * FROM evalstore.compare_pairs('bin.evaluations', 'v1', 'v2', '1 day', NULL, "
        "NULL, NULL, NULL)"
    ),
    "paired_sd": "SELECT evalstore.paired_sd(3.0, 10.0, 20)",
    "paired_z": "SELECT evalstore.paired_z(3.0, 10.0, 20)",
    "what_if_decision": "SELECT evalstore.what_if_decision('0', 0.7, 0.5, '1')",
    # --- health.sql
    "health": (
        "SELECT * FROM evalstore.health('bin', '1 day', NULL, TIMESTAMPTZ '2026-10-10 00:00:00+00')"
    ),
    "health_serving": "SELECT * FROM evalstore.health_serving('bin', '1 day')",
    "health_staleness": "SELECT * FROM evalstore.health_staleness('bin', NULL)",
    "health_ingest": (
        "SELECT * FROM evalstore.health_ingest('bin', '1 day', "
        "TIMESTAMPTZ '2026-10-10 00:00:00+00')"
    ),
    "health_dependencies": "SELECT * FROM evalstore.health_dependencies('bin')",
    "time_grid": (
        "SELECT * FROM evalstore.time_grid(TIMESTAMPTZ '2026-10-01 00:00:00+00', "
        "TIMESTAMPTZ '2026-10-03 00:00:00+00', '1 day')"
    ),
    "dependency_rows": "SELECT * FROM evalstore.dependency_rows('bin')",
    # --- suggest.sql
    "suggest_candidates": "SELECT * FROM evalstore.suggest_candidates('bin', 'v1', NULL, NULL)",
    "suggest_uncertainty": ("SELECT * FROM evalstore.suggest_uncertainty('bin', 'v1', NULL, NULL)"),
    "suggest_committee": "SELECT * FROM evalstore.suggest_committee('bin', NULL, NULL)",
    "novelty_reference": (
        "SELECT * FROM evalstore.novelty_reference('bin', 'training', NULL, NULL, NULL)"
    ),
    "novelty_categories": (
        "SELECT * FROM evalstore.novelty_categories('bin', 'training', NULL, NULL, NULL)"
    ),
    "suggest_slice_needs": (
        "SELECT * FROM evalstore.suggest_slice_needs('bin', 'v1', 'slice_source', 10)"
    ),
    "least_confidence": "SELECT evalstore.least_confidence(0.3, NULL)",
    "margin": "SELECT evalstore.margin(NULL, MAP {'a': 0.5, 'b': 0.3, 'c': 0.2})",
    "entropy": "SELECT evalstore.entropy(NULL, MAP {'a': 0.5, 'b': 0.3, 'c': 0.2})",
    "prob_least_confidence": "SELECT evalstore.prob_least_confidence([0.5, 0.3, 0.2])",
    "prob_margin": "SELECT evalstore.prob_margin([0.5, 0.3, 0.2])",
    "prob_entropy": "SELECT evalstore.prob_entropy([0.5, 0.3, 0.2])",
    "numeric_rarity": f"SELECT evalstore.numeric_rarity(9.5, {Q}, 100)",
    "reference_cdf": f"SELECT evalstore.reference_cdf(4.5, {Q})",
    "reference_tail": f"SELECT evalstore.reference_tail(0.5, {Q}, 0.01)",
    "tie_mid": f"SELECT evalstore.tie_mid(5, {Q})",
    "surprisal": "SELECT evalstore.surprisal(0.05, 100)",
    "dhondt_priority": "SELECT evalstore.dhondt_priority(0.4, 3)",
    "pick_order": "SELECT evalstore.pick_order('e1', 7) IS NOT NULL",
    # --- select.sql
    "training_rows": (
        "SELECT * FROM evalstore.training_rows('bin', 'v1', NULL, NULL, NULL, true, NULL)"
    ),
    "labels_as_of": "SELECT * FROM evalstore.labels_as_of('bin', NULL)",
    "row_digest": "SELECT evalstore.row_digest(t) FROM (SELECT 1 AS a, 'x' AS b) AS t",
}

#: Statements run before the calls on every connection (temp views some macros read).
SETUP = (
    "CREATE TEMP VIEW slice_counts AS SELECT * FROM (VALUES (1, 10, 0.3, 2.1), "
    "(2, 30, 0.7, 6.3)) AS t(slice_id, n, mean, m2)",
    "CREATE TEMP VIEW slice_source AS SELECT example_id, example_key, CASE WHEN x < 20 "
    "THEN 'low' ELSE 'high' END AS slice FROM bin.features WHERE env = 'serving'",
)


def build_store(store: Any) -> None:
    """Fill ``store`` with the three models the calls read."""
    n = 40
    ids = [f"e{i}" for i in range(n)]
    ts = [f"2026-10-0{1 + i % 4}T{6 + i % 12:02d}:00:00Z" for i in range(n)]
    train_ts = [f"2026-09-0{1 + i % 9}T12:00:00Z" for i in range(n)]
    for version, numpy in (("v1", "2.0"), ("v2", "2.1")):
        store.register_model(
            "bin",
            version,
            task="binary",
            training_dataset="train",
            dependencies={"numpy": numpy},
            trained_at="2026-09-10T00:00:00Z",
            deployed_at="2026-09-30T00:00:00Z",
        )
    store.register_model("mc", "v1", task="multiclass", classes=["a", "b", "c"])
    store.register_model("reg", "v1", task="regression")
    store.register_model("reg", "v2", task="regression")
    for model in ("bin", "mc", "reg"):
        store.log_features(
            model,
            pa.table(
                {
                    # e0..e9 are also served: training/serving skew has pairs
                    "example_id": [f"e{i}" if i < 10 else f"t{i}" for i in range(n)],
                    "ts": train_ts,
                    "x": [float(i) for i in range(n)],
                    "c": ["u", "v"] * (n // 2),
                }
            ),
            env="training",
            dataset="train",
        )
        store.log_features(
            model,
            pa.table(
                {
                    "example_id": ids,
                    "ts": ts,
                    "x": [1.1 * i for i in range(n)],
                    "c": ["u", "w", "v", "v"] * (n // 4),
                }
            ),
        )
    for version, flip in (("v1", False), ("v2", True)):
        scores = [((n - i) if flip else i) / n for i in range(n)]
        store.log_predictions(
            "bin",
            pa.table({"example_id": ids, "ts": ts, "score": scores, "latency_ms": [2.0] * n}),
            version=version,
            latency_column="latency_ms",
        )
    store.log_labels("bin", pa.table({"example_id": ids[:30], "label": [i % 2 for i in range(30)]}))
    store.log_predictions(
        "mc",
        pa.table(
            {
                "example_id": ids,
                "ts": ts,
                "a": [0.5, 0.2] * (n // 2),
                "b": [0.3, 0.5] * (n // 2),
                "c": [0.2, 0.3] * (n // 2),
            }
        ),
        version="v1",
        probability_columns=["a", "b", "c"],
    )
    store.log_labels("mc", pa.table({"example_id": ids[:30], "label": ["a", "b", "c"] * 10}))
    for version, shift in (("v1", 0.5), ("v2", -0.25)):
        store.log_predictions(
            "reg",
            pa.table({"example_id": ids, "ts": ts, "prediction": [i + shift for i in range(n)]}),
            version=version,
        )
    store.log_labels(
        "reg", pa.table({"example_id": ids[:30], "label": [float(i) for i in range(30)]})
    )
    # what store.estimate_performance hands the estimation macros (identity calibration
    # pieces, constant estimated losses), kept as tables so a SQL client can call them
    pieces = "(VALUES (-1e308, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 1.0), (1.0, 1e308, 1.0, 1.0))"
    store.sql(
        f"CREATE TABLE main.bin_calibration AS SELECT v.version, p.* FROM {pieces} "
        "AS p(x_lo, x_hi, p_lo, p_hi), (VALUES ('v1'), ('v2')) AS v(version)"
    )
    store.sql(
        f"CREATE TABLE main.mc_calibration AS SELECT 'v1' AS version, c.class_name, p.* "
        f"FROM {pieces} AS p(x_lo, x_hi, p_lo, p_hi), (VALUES ('a'), ('b'), ('c')) "
        "AS c(class_name)"
    )
    store.sql(
        "CREATE TABLE main.reg_loss_estimates AS SELECT example_id, version, "
        "0.5 + (row_number() OVER (ORDER BY example_id, version) % 3) AS abs_error, "
        "1.0 AS sq_error, 0.25 AS sd_abs, 0.5 AS sd_sq FROM reg.predictions"
    )
    store.infer_schema("bin")
    store.suggest("bin", k=3, strategy="entropy")
