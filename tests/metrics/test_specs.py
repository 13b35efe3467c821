"""The metric registries (evalstore.metrics.specs) are what the families compute.

Each registry is checked against the result rows of its family on a small store, so a spec
that names a method, kind, task or order the SQL does not produce fails here, and against
the installed SQL macros and the keyword defaults of the store methods.
"""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError
from evalstore.metrics import quality, specs
from evalstore.metrics.drift.two_sample import SAMPLE_TESTS
from evalstore.metrics.specs import (
    COMPARE_METRICS,
    DRIFT_METHODS,
    MULTIVARIATE_DRIFT_METHODS,
    PERFORMANCE_METRICS,
    QUALITY_CHECKS,
    REGISTRIES,
    TASKS,
    VALIDATION_CHECKS,
    DriftMethod,
    of_kind,
    task_metrics,
)
from tests.conftest import blank_store

START = datetime(2026, 5, 4, tzinfo=UTC)
N = 200


def _store(task: str) -> evalstore.Store:
    """Model ``m`` of ``task`` with versions v1 and v2, a numeric and a categorical feature."""
    rng = np.random.default_rng(7)
    store = blank_store()
    classes = ["a", "b", "c"] if task == "multiclass" else None
    for version in ("v1", "v2"):
        store.register_model("m", version, task, classes=classes)
    ts = [START + timedelta(hours=int(h)) for h in rng.integers(0, 48, N)]
    for env, prefix in (("training", "t"), ("serving", "e")):
        features = {
            "example_id": [f"{prefix}{i}" for i in range(N)],
            "ts": ts,
            "x": rng.normal(0, 1, N),
            "c": rng.choice(["u", "v", "w"], N).tolist(),
        }
        store.log_features("m", pa.table(features), env=env)
    ids = [f"e{i}" for i in range(N)]
    for version in ("v1", "v2"):
        columns: dict[str, object] = {"example_id": ids, "ts": ts}
        if task == "binary":
            score = rng.random(N)
            columns |= {"score": score, "prediction": (score > 0.5).astype(int).astype(str)}
        elif task == "multiclass":
            columns |= {"prediction": rng.choice(classes, N).tolist()}
        else:
            columns |= {"prediction": rng.normal(0, 1, N)}
        store.log_predictions("m", pa.table(columns), version)
    if task == "binary":
        labels: object = rng.integers(0, 2, N).astype(str)
    elif task == "multiclass":
        labels = rng.choice(classes, N)
    else:
        labels = rng.normal(0, 1, N)
    store.log_labels("m", pa.table({"example_id": ids, "label": labels, "ts": ts}))
    return store


@pytest.fixture(scope="module")
def binary() -> evalstore.Store:
    with _store("binary") as store:
        yield store


def _methods_by_kind(table: pa.Table, features: tuple[str, ...]) -> dict[str, list[str]]:
    rows = [r for r in table.to_pylist() if r["feature"] in features]
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["kind"], [])
        if row["method"] not in out[row["kind"]]:
            out[row["kind"]].append(row["method"])
    return {kind: sorted(names) for kind, names in out.items()}


def test_drift_computes_each_method_for_the_kinds_its_spec_names(binary):
    table = binary.drift("m", window="100 years", features=["x", "c"], methods=list(DRIFT_METHODS))
    assert _methods_by_kind(table, ("x", "c")) == {
        "numeric": sorted(of_kind(DRIFT_METHODS, "numeric")),
        "categorical": sorted(of_kind(DRIFT_METHODS, "categorical")),
    }
    # the p-value methods, and only they, carry a p-value (c has three categories: the
    # binary-only tests give NULL with a reason; tests/metrics/test_drift_two_sample.py
    # covers them on binary features)
    with_p = {r["method"] for r in table.to_pylist() if r["p_value"] is not None}
    binary_only = {"z_test", "fisher_exact"}
    assert with_p == {n for n, spec in DRIFT_METHODS.items() if spec.has_p_value} - binary_only
    assert {"ks", "chi2", "g_test", "chisquare_gof", "welch_t"} <= with_p


def test_drift_defaults_and_thresholds_are_the_specs(binary):
    table = binary.drift("m", window="100 years", features=["x", "c"])
    defaults = {name for name, spec in DRIFT_METHODS.items() if spec.default}
    assert defaults == {"ks", "chi2", "psi", "js", "wasserstein", "unseen"}
    assert {m for kind in _methods_by_kind(table, ("x", "c")).values() for m in kind} == defaults
    for row in table.to_pylist():
        spec = DRIFT_METHODS[row["method"]]
        assert (row["threshold_low"], row["threshold"]) == (spec.threshold_low, spec.threshold)
    assert DRIFT_METHODS["zscore"].direction == "outside"
    assert DRIFT_METHODS["ks"].direction == "below"
    assert DRIFT_METHODS["psi"].direction == "above"


def test_unknown_drift_method_lists_the_registry(binary):
    with pytest.raises(InvalidParameterError, match=r"unknown \['psl'\]; choose from ks, psi, js"):
        binary.drift("m", methods=["psl"])
    with pytest.raises(InvalidParameterError, match="choose from mmd, pca"):
        binary.multivariate_drift("m", methods=["pcx"])


def test_multivariate_drift_computes_the_registered_methods(binary):
    table = binary.multivariate_drift("m", window="1 day", features=["x"])
    assert sorted(set(table.column("method").to_pylist())) == sorted(MULTIVARIATE_DRIFT_METHODS)


def test_quality_checks_per_kind_are_the_specs(binary):
    table = binary.quality("m", window="100 years", features=["x", "c"])
    assert _methods_by_kind(table, ("x", "c")) == {
        "numeric": sorted(of_kind(QUALITY_CHECKS, "numeric")),
        "categorical": sorted(of_kind(QUALITY_CHECKS, "categorical")),
    }


def test_validation_checks_per_kind_are_the_specs(binary):
    binary.infer_schema("m")
    table = binary.validate("m", window="100 years", features=["x", "c"])
    assert _methods_by_kind(table, ("x", "c")) == {
        "numeric": sorted(of_kind(VALIDATION_CHECKS, "numeric")),
        "categorical": sorted(of_kind(VALIDATION_CHECKS, "categorical")),
    }


@pytest.mark.parametrize(
    ("function", "registry"),
    [(quality.quality, QUALITY_CHECKS), (quality.validate, VALIDATION_CHECKS)],
)
def test_quality_default_thresholds_are_the_keyword_defaults(function, registry):
    parameters = inspect.signature(function).parameters
    keyword = [s for s in registry.values() if s.threshold_parameter in parameters]
    assert keyword, "each function takes at least one of its checks' limits as a keyword"
    for spec in keyword:
        assert parameters[spec.threshold_parameter].default == spec.default_threshold, spec.name


@pytest.mark.parametrize("task", TASKS)
def test_performance_metrics_in_result_order_per_task(task, binary):
    store = binary if task == "binary" else _store(task)
    try:
        table = store.performance("m", window="100 years", version="v1", n_boot=0)
        compared = store.compare("m", "v1", "v2", window="100 years")
    finally:
        if store is not binary:
            store.close()
    metrics = list(dict.fromkeys(table.column("metric").to_pylist()))
    assert metrics == [m for m in task_metrics(PERFORMANCE_METRICS, task)
                       if PERFORMANCE_METRICS[m].default]  # fmt: skip
    per_class = {r["metric"] for r in table.to_pylist() if r["class"] is not None}
    assert per_class == {n for n, s in PERFORMANCE_METRICS.items() if task in s.per_class_tasks}
    assert list(dict.fromkeys(compared.column("metric").to_pylist())) == list(
        task_metrics(COMPARE_METRICS, task)
    )


def test_bootstrap_metrics_get_a_bootstrap_interval(binary):
    table = binary.performance("m", window="100 years", version="v1", n_boot=20)
    boot = {r["metric"] for r in table.to_pylist() if "bootstrap" in (r["variant"] or "")}
    assert boot == {
        n for n, s in PERFORMANCE_METRICS.items() if s.needs_bootstrap and "binary" in s.tasks
    }
    assert boot == {"ece"}


def test_worst_slices_searches_the_decomposable_metrics_only(binary):
    for name, spec in PERFORMANCE_METRICS.items():
        if "binary" not in spec.tasks:
            continue
        if "binary" in spec.slice_tasks:
            matrix = [[1, 0], [0, 1]] if name == "business_value" else None
            found = binary.worst_slices(
                "m", metric=name, version="v1", include_all=True, business_value_matrix=matrix
            )
            assert set(found.column("metric").to_pylist()) <= {name}
        else:
            with pytest.raises(InvalidParameterError, match=rf"metric='{name}' "):
                binary.worst_slices("m", metric=name, version="v1")
    assert not PERFORMANCE_METRICS["roc_auc"].decomposable
    assert PERFORMANCE_METRICS["brier"].decomposable


def test_sql_macros_of_the_specs_are_installed(binary):
    installed = set(
        binary.sql(
            "SELECT DISTINCT 'evalstore.' || function_name AS name FROM duckdb_functions() "
            "WHERE schema_name = 'evalstore'"
        )
        .column("name")
        .to_pylist()
    )
    named = set()
    for registry in REGISTRIES.values():
        for spec in registry.values():
            macro = spec.sql_macro
            if macro is None:  # Python only: multivariate, and the numeric fast path's tests
                assert isinstance(spec, DriftMethod)
                assert spec.name in MULTIVARIATE_DRIFT_METHODS or spec.name in SAMPLE_TESTS
                continue
            for task in TASKS:
                named.update(m.strip().replace("<task>", task) for m in macro.split(","))
    assert named, "some specs name macros"
    assert named <= installed, sorted(named - installed)


def test_registries_declare_each_fact_once():
    for name, registry in REGISTRIES.items():
        for key, spec in registry.items():
            assert key == spec.name
            assert re.fullmatch(r"[a-z0-9_]+", key), (name, key)
            assert spec.definition and "\n" not in spec.definition, (name, key)
            kinds = getattr(spec, "kinds", None)
            if kinds is not None:
                assert set(kinds) <= set(specs.KINDS), (name, key)
            else:
                assert set(spec.tasks) <= set(TASKS) and set(spec.slice_tasks) <= set(spec.tasks)
    with pytest.raises(ValueError, match="duplicate spec names"):
        specs._registry(DRIFT_METHODS["ks"], DRIFT_METHODS["ks"])
