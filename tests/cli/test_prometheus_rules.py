"""``evalstore monitor prometheus-rules``: fixed and range monitors as Prometheus alerting rules.

The YAML is written without a YAML library; the test reads it back with PyYAML (a test
dependency only) to check it is the structure Prometheus expects, value by value.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

import evalstore
from evalstore.cli import main


def _monitors(store: evalstore.Store) -> None:
    store.register_model("fraud", "v1", "binary")
    store.log_features(
        "fraud",
        pa.table({"example_id": ["a"], "ts": [datetime(2024, 3, 1, tzinfo=UTC)],
                  "amount": [1.0]}),
    )  # fmt: skip
    store.add_monitor(
        "amount_psi", "fraud", "drift", "psi",
        {"type": "fixed", "direction": "above", "value": 0.2, "fire_after": 3,
         "resolve_after": 2},
        subjects=["amount"], window="1 hour",
    )  # fmt: skip
    store.add_monitor(
        "amount_missing", "fraud", "quality", "missing",
        {"type": "range", "low": 0, "high": 0.05},
    )  # fmt: skip
    store.add_monitor("amount_trend", "fraud", "drift", "psi", {"type": "trailing", "n": 7, "k": 3})
    store.add_monitor(
        "off", "fraud", "drift", "psi",
        {"type": "fixed", "direction": "above", "value": 1}, enabled=False,
    )  # fmt: skip
    store.add_monitor(
        "slow", "fraud", "health", "latency_p99",
        {"type": "fixed", "direction": "above", "value": 250},
    )  # fmt: skip


@pytest.fixture
def store_path(template, copy_template, tmp_path):
    """A store with model fraud and five monitors (a copy of a session template)."""
    return copy_template(template("cli-prometheus-rules", _monitors), tmp_path, "rules.duckdb")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="evalstore")


def test_fixed_and_range_monitors_become_alerting_rules(store_path, tmp_path):
    output = tmp_path / "rules.yml"
    result = invoke("-s", str(store_path), "monitor", "prometheus-rules", "-o", str(output))
    assert result.exit_code == 0, result.output
    assert "wrote 3 rule(s)" in result.output
    text = output.read_text()
    parsed = yaml.safe_load(text)
    [group] = parsed["groups"]
    assert group["name"] == "evalstore"
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert sorted(rules) == ["amount_missing", "amount_psi", "slow"]  # trailing, disabled: not

    psi = rules["amount_psi"]
    assert psi["expr"] == 'evalstore_monitor_value{model="fraud",monitor="amount_psi"} > 0.2'
    assert psi["for"] == "2h"  # fire_after 3 windows of 1 hour: 2 window widths after the first
    assert psi["keep_firing_for"] == "1h"  # resolve_after 2
    assert psi["labels"] == {"evalstore_model": "fraud", "evalstore_monitor": "amount_psi"}
    assert "{{ $labels.subject }}" in psi["annotations"]["summary"]

    missing = rules["amount_missing"]
    series = 'evalstore_monitor_value{model="fraud",monitor="amount_missing"}'
    assert missing["expr"] == f"{series} < 0.0 or {series} > 0.05"
    assert "for" not in missing and "keep_firing_for" not in missing

    assert "#   amount_trend (trailing)" in text  # skipped, and said so
    # a health monitor too: its runs record its latest value
    assert rules["slow"]["expr"] == 'evalstore_monitor_value{model="fraud",monitor="slow"} > 250.0'
    assert "#   slow" not in text
    assert "off" not in rules
    assert "min_rows, wait_for_labels" in text


def test_rules_go_to_stdout_and_an_empty_selection_is_valid_yaml(store_path):
    result = invoke("-s", str(store_path), "monitor", "prometheus-rules", "--model", "nobody")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == {"groups": [{"name": "evalstore", "rules": []}]}
    named = invoke("-s", str(store_path), "monitor", "prometheus-rules", "--group", 'a "q"')
    assert yaml.safe_load(named.output)["groups"][0]["name"] == 'a "q"'
