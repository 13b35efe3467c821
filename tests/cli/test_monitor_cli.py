"""The monitoring commands: monitor add/list/run/delete/backtest/apply, alerts, channel.
``apply`` prints its diff, is idempotent and honours --dry-run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner, Result

import evalstore
from evalstore.cli import main

T0 = datetime(2024, 3, 1, tzinfo=UTC)
RULE = '{"type": "fixed", "direction": "above", "value": 0.5}'
TOML = """
[monitors.x_w]
model = "m"
family = "drift"
metric = "wasserstein"
subjects = ["x"]
rule = { type = "fixed", direction = "above", value = 0.5 }

[monitors.x_nan]
model = "m"
family = "quality"
metric = "nan"
subjects = ["x"]
window = "12 hours"
rule = { type = "fixed", direction = "above", value = 0 }
"""


def invoke(path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--store", str(path), *args], prog_name="evalstore")


def ok(path: Path, *args: str) -> str:
    result = invoke(path, *args)
    assert result.exit_code == 0, result.output
    return result.output


def _days(store: evalstore.Store) -> None:
    rng = np.random.default_rng(3)
    store.register_model("m", "v1", "binary")
    store.log_features(
        "m", pa.table({"example_id": [f"t{i}" for i in range(1000)],
                       "x": rng.normal(0, 1, 1000)}), env="training",
    )  # fmt: skip
    for d, shift in enumerate((0.0, 0.0, 2.0)):
        ids = [f"d{d}_{i}" for i in range(200)]
        ts = [T0 + timedelta(days=d, minutes=7 * i) for i in range(200)]
        store.log_features(
            "m", pa.table({"example_id": ids, "ts": ts, "x": rng.normal(shift, 1, 200)})
        )


@pytest.fixture
def path(template: Any, copy_template: Any, tmp_path: Path) -> Path:
    """A store file with model m: training rows and days 0-1 clean, day 2 shifted (a copy
    of a session template)."""
    return copy_template(template("cli-monitor-days", _days), tmp_path)


def test_add_list_run_alerts_ack_and_delete(path: Path) -> None:
    out = ok(path, "monitor", "add", "x_w", "-m", "m", "--family", "drift", "--metric",
             "wasserstein", "--subjects", "x", "--rule", RULE)  # fmt: skip
    assert out == "monitor 'x_w' added (version 1)\n"
    listed = json.loads(ok(path, "monitor", "list", "--format", "json"))
    assert [(r["name"], r["metric"], r["subjects"]) for r in listed] == [
        ("x_w", "wasserstein", ["x"])
    ]
    run = json.loads(ok(path, "monitor", "run", "--format", "json", "--no-deliver"))
    assert [(r["subject"], r["verdict"], r["transitions"]) for r in run] == [
        ("x", "breach", ["fired"])
    ]
    (alert,) = json.loads(ok(path, "alerts", "list", "--state", "firing", "--format", "json"))
    assert alert["monitor"] == "x_w"
    assert ok(path, "alerts", "ack", str(alert["alert_id"]), "--by", "alice") == (
        f"alert {alert['alert_id']} acknowledged by alice\n"
    )
    ok(path, "alerts", "silence", str(alert["alert_id"]), "--until", "2030-01-01T00:00:00Z")
    (alert,) = json.loads(ok(path, "alerts", "list", "--format", "json"))
    assert alert["acknowledged_by"] == "alice"
    assert alert["silenced_until"].startswith("2030-01-01")
    assert "x_w" in ok(path, "alerts")  # the group alone lists
    assert ok(path, "monitor", "delete", "x_w") == "monitor 'x_w' deleted\n"
    assert json.loads(ok(path, "monitor", "list", "--format", "json")) == []


def test_a_refused_definition_is_one_line_and_stores_nothing(path: Path) -> None:
    result = invoke(path, "monitor", "add", "x_w", "-m", "m", "--family", "drift",
                    "--metric", "psx", "--rule", RULE)  # fmt: skip
    assert result.exit_code == 1
    assert "metric='psx' is not a drift method" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = invoke(path, "monitor", "add", "x_w", "-m", "m", "--family", "drift",
                    "--metric", "psi", "--rule", "{not json")  # fmt: skip
    assert result.exit_code != 0
    assert "not valid JSON" in result.output
    assert json.loads(ok(path, "monitor", "list", "--format", "json")) == []


def test_apply_prints_the_diff_is_idempotent_and_dry_run_writes_nothing(
    path: Path, tmp_path: Path
) -> None:
    file = tmp_path / "monitors.toml"
    file.write_text(TOML)
    out = ok(path, "monitor", "apply", str(file), "--dry-run")
    assert out.splitlines() == [
        "+ create x_w (drift wasserstein on m, rule fixed)",
        "+ create x_nan (quality nan on m, rule fixed)",
        "dry run: 2 change(s), nothing written",
    ]
    assert json.loads(ok(path, "monitor", "list", "--format", "json")) == []
    out = ok(path, "monitor", "apply", str(file))
    assert out.splitlines()[-1] == "applied 2 change(s)"
    again = ok(path, "monitor", "apply", str(file))
    assert again.splitlines() == ["= unchanged x_w", "= unchanged x_nan", "nothing to change"]
    # change one rule, drop the other monitor
    edited = TOML.replace("value = 0.5", "value = 0.8").split("[monitors.x_nan]")[0]
    file.write_text(edited)
    out = ok(path, "monitor", "apply", str(file))
    assert out.splitlines()[0].startswith("~ update x_w: rule: ")
    assert "'value': 0.5" in out.splitlines()[0] and "'value': 0.8" in out.splitlines()[0]
    assert out.splitlines()[1] == "- delete x_nan (quality nan on m)"
    listed = json.loads(ok(path, "monitor", "list", "--format", "json"))
    assert [(r["name"], r["definition_version"]) for r in listed] == [("x_w", 2)]
    assert json.loads(listed[0]["rule"])["value"] == 0.8


def test_apply_with_a_bad_monitor_changes_nothing(path: Path, tmp_path: Path) -> None:
    file = tmp_path / "monitors.toml"
    file.write_text(TOML.replace('metric = "nan"', 'metric = "nope"'))
    result = invoke(path, "monitor", "apply", str(file))
    assert result.exit_code == 1
    assert "monitors.x_nan: metric='nope' is not a quality check" in result.output
    assert json.loads(ok(path, "monitor", "list", "--format", "json")) == []


def test_backtest_of_a_saved_and_of_an_unsaved_monitor(path: Path, tmp_path: Path) -> None:
    file = tmp_path / "monitors.toml"
    file.write_text(TOML)
    episodes = json.loads(
        ok(path, "monitor", "backtest", "x_w", "--from", str(file), "--format", "json")
    )
    assert [(e["first_window_start"][:10], e["state"]) for e in episodes] == [
        ("2024-03-03", "firing")
    ]
    assert json.loads(ok(path, "monitor", "list", "--format", "json")) == []
    ok(path, "monitor", "apply", str(file))
    saved = json.loads(ok(path, "monitor", "backtest", "x_w", "--format", "json",
                          "--until", "2024-03-03"))  # fmt: skip
    assert saved == []


def test_channels_add_list_delete(path: Path) -> None:
    assert ok(path, "channel", "add", "ops", "--url", "http://127.0.0.1:9/hook",
              "--secret-env", "OPS_SECRET", "--header", "X-Team: ml") == (
        "webhook channel 'ops' added\n"
    )  # fmt: skip
    ok(path, "channel", "add", "page", "--command", "/bin/cat --show-all")
    rows = json.loads(ok(path, "channel", "list", "--format", "json"))
    config = {r["name"]: json.loads(r["config"]) for r in rows}
    assert config["ops"]["headers"] == {"X-Team": "ml"}
    assert config["ops"]["secret_env"] == "OPS_SECRET"
    assert config["page"]["argv"] == ["/bin/cat", "--show-all"]
    result = invoke(path, "channel", "add", "both", "--url", "http://x", "--command", "ls")
    assert result.exit_code != 0
    assert "exactly one of --url (webhook) or --command" in result.output
    ok(path, "channel", "delete", "page")
    assert [r["name"] for r in json.loads(ok(path, "channel", "list", "--format", "json"))] == [
        "ops"
    ]
