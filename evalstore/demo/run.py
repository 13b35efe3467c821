"""The demo: a credit-default model's store built from a seeded scenario, then described.

``evalstore demo`` (and ``make demo``) calls :func:`run_demo`. The scenario is
documented in :mod:`evalstore.demo.scenario`; the output is deterministic for a seed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

import evalstore
from evalstore.cli.render import render_grid, render_table, terminal_width, wrap_lines
from evalstore.core.layout import schema_prefix
from evalstore.demo.scenario import Scenario, credit_default_scenario

#: Features whose distribution the scenario shifts (data drift, as opposed to the
#: concept drift and the corrupted values it also injects).
DRIFTED_FEATURES = ("income", "utilization", "transaction_amount", "channel", "employment")


def build_store(store: evalstore.Store, scenario: Scenario) -> None:
    """Log the whole scenario into ``store``: registry, features, predictions, labels."""
    model = scenario.model
    for registration in scenario.versions:
        store.register_model(**registration)
    store.log_features(model, scenario.training, env="training", dataset="train_2026_08")
    store.log_features(model, scenario.validation, env="validation", dataset="valid_2026_08")
    store.log_labels(model, scenario.reference_labels, source="historical")
    store.log_features(model, scenario.serving, env="serving")
    for version, predictions in scenario.predictions.items():
        store.log_predictions(model, predictions, version, latency_column="latency_ms")
    for batch in scenario.label_batches:
        store.log_labels(model, batch, source="repayment_records")


def drifting_features(table: pa.Table, last: int = 2) -> list[str]:
    """Features flagged by any method in any of the ``last`` windows: what drifts now."""
    recent = sorted(set(table.column("window_start").to_pylist()))[-last:]
    return sorted(
        {
            row["feature"]
            for row in table.to_pylist()
            if row["drifted"] and row["window_start"] in recent
        }
    )


def _drift_section(store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]) -> None:
    model = scenario.model
    features = [f for f in scenario.training.column_names if f not in ("example_id", "ts")]
    table = store.drift(model, reference="training", window="7 days", features=features)
    echo("\n== Feature drift per week against the training set (store.drift)\n")
    echo(render_grid(table, meaning="drifted by at least one method"))
    flagged = drifting_features(table)
    injected = sorted(f for f in scenario.drift_notes if f in DRIFTED_FEATURES)
    echo(f"\nDrifting in the last two weeks: {', '.join(flagged)}")
    echo(f"Injected by the scenario: {', '.join(injected)}")
    joint = store.multivariate_drift(model, reference="training", window="7 days")
    echo(
        "\n== Multivariate drift per week "
        "(MMD permutation test, PCA reconstruction, domain classifier)\n"
    )
    echo(
        render_table(
            joint.select(["window_start", "method", "value", "p_value", "threshold", "drifted"]),
            limit=40,
        )
    )
    scores = store.drift(
        model, reference={"previous": 2}, window="7 days", features=["score"],
        methods=["ks", "psi"], version="v1",
    )  # fmt: skip
    echo("\n== Prediction drift of v1's score, each week against the two before\n")
    echo(
        render_table(
            scores.select(["window_start", "method", "value", "p_value", "drifted", "reason"]),
            limit=40,
        )
    )


def _quality_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    model = scenario.model
    table = store.quality(model, reference="training", window="1 day", since=scenario.start)
    failed = table.filter(pa.compute.fill_null(table.column("drifted"), False))
    echo("\n== Data-quality checks that failed, per day (store.quality)\n")
    echo(
        render_table(
            failed.select(["window_start", "feature", "method", "value", "count", "threshold"]),
            limit=60,
        )
    )
    schema = store.infer_schema(model, reference="training")
    echo(f"\n== Schema inferred from the training set: {schema.num_rows} features saved in "
         "evalstore.schemas; violations per week (store.validate)\n")  # fmt: skip
    echo(render_grid(store.validate(model, window="7 days"), meaning="the schema is violated"))


def _performance_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    table = store.performance(scenario.model, metrics=["roc_auc", "f1"], window="7 days")
    echo("\n== Realized performance per week and version (store.performance)\n")
    echo(
        render_table(
            table.select(
                ["window_start", "version", "metric", "value", "ci_low", "ci_high", "n",
                 "label_coverage", "labels_complete"]
            ),
            limit=60,
        )
    )  # fmt: skip


def _slices_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    """Worst slices since the concept drift began, and what the top one's predicate selects."""
    from datetime import timedelta

    from evalstore.demo.synthetic import CONCEPT_DRIFT_DAY

    model = scenario.model
    since = scenario.start + timedelta(days=CONCEPT_DRIFT_DAY)
    found = store.worst_slices(model, metric="log_loss", since=since, top=5)
    echo(
        f"\n== Worst slices by log loss since day {CONCEPT_DRIFT_DAY} ({since:%Y-%m-%d}), "
        "singles and pairs, Welch t-test + Benjamini-Hochberg (store.worst_slices)\n"
    )
    echo(
        render_table(
            found.select(["rank", "slice", "n", "value", "rest_value", "effect", "q_value"]),
            limit=5,
        )
    )
    if not found.num_rows:
        return
    top = found.to_pylist()[0]
    injected = "debt_to_income" in top["features"]
    echo(
        f"Top finding: {top['slice']} (the scenario degrades debt_to_income, above 0.45 "
        f"most, from day {CONCEPT_DRIFT_DAY}: {'found' if injected else 'NOT found'})"
    )
    echo(f"Its predicate, usable as where= everywhere: {top['predicate']}")
    weekly = store.performance(
        model, metrics="roc_auc", window="14 days", version=top["version"], where=top["predicate"]
    )
    echo(f"ROC AUC of that slice per fortnight (store.performance(where=...), {top['version']}):")
    echo(render_table(weekly.select(["window_start", "value", "ci_low", "ci_high", "n"]), limit=10))


def _compare_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    """The shadow challenger v2 against the production v1 on the examples both scored."""
    model = scenario.model
    overall = {
        r["metric"]: r for r in store.compare(model, "v1", "v2", window={"chunks": 1}).to_pylist()
    }
    if not overall:
        echo("\n== Challenger v2: no example scored by both versions yet (v2 starts on day 30)")
        return
    weekly = store.compare(
        model, "v1", "v2", window="7 days", metric=["disagreement", "accuracy", "log_loss"]
    )
    echo("\n== Challenger v2 (shadow from day 30) against production v1 (store.compare)\n")
    echo(
        render_table(
            weekly.select(
                ["window_start", "metric", "value", "ci_low", "ci_high", "p_value", "value_a",
                 "value_b", "n", "test"]
            ),
            limit=30,
        )
    )  # fmt: skip
    d, acc, ll = overall["disagreement"], overall["accuracy"], overall["log_loss"]
    echo(
        f"Over all {d['paired']} examples both scored, v2 disagrees with v1 on "
        f"{d['value']:.2%}; on the {acc['n']} labeled ones accuracy changes by "
        f"{acc['value']:+.4f} (95% CI {acc['ci_low']:+.4f} .. {acc['ci_high']:+.4f}, McNemar "
        f"p = {acc['p_value']:.3g}: {acc['n_b_only']} examples only v2 gets right, "
        f"{acc['n_a_only']} only v1) and log loss by {ll['value']:+.5f} (p = {ll['p_value']:.3g})."
    )


def _monitoring_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    """The default monitors, backtested over the serving period against the injected
    events (:mod:`evalstore.demo.events`)."""
    from evalstore.demo.events import backtest_defaults, event_table, false_alerts, rule_text
    from evalstore.monitors.defaults import NOT_MONITORED

    model = scenario.model
    made = store.add_default_monitors(model)
    echo(f"\n== Default monitors (store.add_default_monitors): {made.num_rows} monitors\n")
    shown = [
        {"name": row["name"],
         "subjects": f"{len(row['subjects'])} features" if row["subjects"] else "every version",
         "rule": rule_text(json.loads(row["rule"]))}
        for row in made.to_pylist()
    ]  # fmt: skip
    echo(render_table(pa.Table.from_pylist(shown), limit=20))
    echo(f"Not monitors yet: {', '.join(NOT_MONITORED)} (evalstore.monitors.defaults says why)")
    episodes = backtest_defaults(store, made.column("name").to_pylist(), scenario.start)
    echo(
        "\n== Backtest of the default monitors against the injected events "
        "(store.backtest_monitor; days since the first serving day)\n"
    )
    echo(render_table(event_table(episodes, scenario.start), limit=20))
    false = false_alerts(episodes, scenario.start)
    echo(
        f"False alerts (episodes no event explains): {false['total']} over the 60 days, "
        f"{false['clean_period']} in the clean period (days 0-{false['clean_until'] - 1})"
        + (f": {'; '.join(false['examples'])}" if false["examples"] else "")
        + ". transaction_amount's alerts are its weekly cycle seen by daily windows "
        "against an all-week reference."
    )


def _health_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    """Staleness, golden signals per week and dependency changes (ingest freshness, which
    reads the wall clock, is left to `evalstore health` so the demo stays deterministic)."""
    from evalstore.metrics.health import wide

    table = store.health(
        scenario.model, window="7 days", sections=["staleness", "serving", "dependencies"]
    )
    parts = wide(table)
    echo("\n== Production health (store.health): staleness in days at the latest prediction\n")
    echo(render_table(parts.get("staleness", table.slice(0, 0))))
    echo("\n== Golden signals per week and version (latency in ms, throughput per second)\n")
    echo(render_table(parts.get("serving", table.slice(0, 0)), limit=40))
    p95 = {}
    for row in table.to_pylist():
        if row["metric"] == "latency_p95" and row["value"] is not None:
            p95.setdefault(row["version"], []).append(row["value"])
    if {"v1", "v2"} <= set(p95):
        ratio = max(p95["v2"]) / max(p95["v1"])
        echo(f"Worst weekly p95 latency: v2 {max(p95['v2']):.1f} ms, {ratio:.1f}x v1's.")
    echo("\n== Dependency changes between consecutive versions\n")
    echo(render_table(parts.get("dependencies", table.slice(0, 0))))


def _skew_section(store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]) -> None:
    """Skew: the scenario logs no example in both training and serving (its ids are unique
    across envs), so only the distribution distance applies; examples/skew.py shows
    per-example mismatches."""
    table = store.skew(scenario.model)
    summary = store.skew_summary(scenario.model).to_pylist()[0]
    echo("\n== Training/serving skew (store.skew): JS distance, training set vs all serving\n")
    echo(
        render_table(
            table.select(["feature", "n_compared", "distance", "distance_drifted", "n_serving"]),
            limit=20,
        )
    )
    echo(
        f"Examples logged in both training and serving: {summary['n_examples']} (the scenario "
        "shares no example_id between envs; see examples/skew.py for per-example mismatches)"
    )


def _flywheel_section(
    store: evalstore.Store, scenario: Scenario, echo: Callable[[str], None]
) -> None:
    """What to label next (store.suggest, recorded as requests) and a training snapshot."""
    model = scenario.model
    picks = store.suggest(model, k=12, strategy="mix", window="14 days", expires_in="7 days")
    echo(
        "\n== Label next: 12 suggestions from the last 14 days, mix of uncertainty, novelty, "
        "slices and diversity (store.suggest)\n"
    )
    echo(
        render_table(
            picks.select(["rank", "example_id", "picked_by", "priority", "reason"]),
            limit=12,
        )
    )
    open_requests = store.label_requests(model, status="open").num_rows
    echo(f"Recorded as {open_requests} open requests in evalstore.label_requests (7-day expiry).")
    info = store.snapshot("demo-training-set", store.selection(model, env=["training", "serving"]))
    rows = store.load_snapshot("demo-training-set").num_rows
    echo(
        f"\n== Training snapshot 'demo-training-set' (store.snapshot): {info['row_count']:,} "
        f"labeled rows as of {info['as_of']:%Y-%m-%d %H:%M} UTC, hash {info['content_hash']}; "
        f"load_snapshot returns {rows:,} rows (export: evalstore select ... --out train.parquet)"
    )


def _fitting(echo: Callable[[str], None], width: int) -> Callable[[str], None]:
    """``echo`` that wraps each line longer than ``width`` at spaces (indenting the rest)."""

    def fitted(text: str) -> None:
        lines = text.split("\n")
        echo("\n".join(part for line in lines for part in _wrapped(line, width)))

    return fitted


def _wrapped(line: str, width: int) -> list[str]:
    return [line] if len(line) <= width else wrap_lines(line, width, indent="  ")


def run_demo(
    path: str | Path | None, seed: int = 7, days: int = 60, echo: Callable[[str], None] = print
) -> None:
    """Build the demo store at ``path`` (None: in memory) and print what it holds.

    Every line fits the terminal (:func:`evalstore.cli.render.terminal_width`): tables are
    fitted by :mod:`evalstore.cli.render`, longer prose is wrapped.
    """
    echo = _fitting(echo, terminal_width())
    scenario = credit_default_scenario(seed=seed, days=days)
    model = scenario.model
    with evalstore.open(path) as store:
        build_store(store, scenario)

        def section(title: str, query: str, params: list | None = None) -> None:
            echo(f"\n== {title}\n")
            echo(render_table(store.sql(query, params), limit=40))

        echo(
            f"evalstore demo: model {model!r}, {days} days of serving "
            f"from {scenario.start:%Y-%m-%d}"
        )
        echo("Injected drift:")
        for feature, note in scenario.drift_notes.items():
            echo(f"- {feature}: {note}")
        section(
            "Model registry",
            "SELECT model, version, task, classes, positive_class, threshold, stage, "
            "training_dataset, deployed_at FROM evalstore.models ORDER BY version",
        )
        section(
            "Ingest audit trail (evalstore.batches), by kind and env",
            "SELECT kind, env, version, count(*) AS batches, sum(rows) AS rows "
            "FROM evalstore.batches GROUP BY ALL ORDER BY kind, env, version",
        )
        section(
            "Serving volume per week (evalstore.volume)",
            "SELECT window_start::DATE AS week, kind, rows "
            "FROM evalstore.volume(?, '7 days') WHERE env = 'serving' OR kind = 'labels' "
            "ORDER BY kind, week",
            [model],
        )
        section(
            "Label coverage per week and version (evalstore.label_coverage)",
            "SELECT window_start::DATE AS week, version, predictions, labeled, "
            "round(coverage, 3) AS coverage FROM evalstore.label_coverage(?, '7 days') "
            "ORDER BY version, week",
            [model],
        )
        section(
            "Label delay per week, hours (evalstore.label_delay, v1)",
            "SELECT window_start::DATE AS week, labeled, round(delay_p50_hours, 1) AS p50, "
            "round(delay_p90_hours, 1) AS p90, round(delay_max_hours, 1) AS max "
            "FROM evalstore.label_delay(?, '7 days') WHERE version = 'v1' ORDER BY week",
            [model],
        )
        section(
            "Corrupted serving values the store kept as sent",
            "SELECT count(*) FILTER (isnan(debt_to_income)) AS nan_debt_to_income, "
            "count(*) FILTER (isinf(credit_limit)) AS inf_credit_limit, "
            "count(*) FILTER (age < 18 OR age > 120) AS age_out_of_range, "
            "count(*) FILTER (employment = 'gig_worker') AS unseen_employment, "
            "count(*) FILTER (region IS NULL) AS missing_region "
            f"FROM {schema_prefix(store.connection, model)}features WHERE env = 'serving'",
        )
        _drift_section(store, scenario, echo)
        _quality_section(store, scenario, echo)
        _performance_section(store, scenario, echo)
        _monitoring_section(store, scenario, echo)
        _slices_section(store, scenario, echo)
        _compare_section(store, scenario, echo)
        _health_section(store, scenario, echo)
        _skew_section(store, scenario, echo)
        _flywheel_section(store, scenario, echo)
        where = "memory" if path is None else str(path)
        echo(
            f"\nStore written to {where}. Try:\n"
            f"  evalstore -s {where} sql "
            f"\"SELECT * FROM evalstore.label_coverage('{model}', '1 day')\""
        )
