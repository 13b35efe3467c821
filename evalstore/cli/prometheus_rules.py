"""``evalstore monitor prometheus-rules``: the monitors as Prometheus alerting rules (YAML).

For users who alert from Prometheus rather than from evalstore's own alerts: ``evalstore
serve`` exports each monitor's latest value as ``evalstore_monitor_value{model,monitor,
subject}`` (server/prom.py; the value its last run recorded in
``evalstore.monitor_values``, for monitors of every family), and this command writes, for
every ``fixed`` and ``range`` monitor, the rule that compares that series with the same
bound:

======== ===================================================================
rule     PromQL ``expr`` (``v`` = ``evalstore_monitor_value{model=…,monitor=…}``)
======== ===================================================================
fixed    ``v > value`` (direction ``above``) or ``v < value`` (``below``)
range    ``v < low or v > high``
======== ===================================================================

``fire_after`` n > 1 becomes ``for: (n - 1) * window`` and ``resolve_after`` n > 1
``keep_firing_for: (n - 1) * window`` (Prometheus ≥ 2.42): the gauge holds the latest
window's value, so n consecutive breaching windows last at least (n - 1) window widths.
Bounds are strict in both (a value equal to the bound does not breach).

Skipped, with a comment in the file naming each monitor: ``learned``, ``trailing``,
``seasonal`` and ``unsupervised`` rules, whose bounds come from the metric's reference
chunks or its own history of windows (mean ± k·sd of previous windows, seasonal-naive
intervals, median/MAD), which the exported gauge does not carry: a PromQL
``avg_over_time``/``stddev_over_time`` would average scrapes, not windows, and give
another rule. ``min_rows`` and ``wait_for_labels`` have no PromQL form either: the
comment at the top of the file says so. Disabled monitors are left out. Every family is
translated, ``health`` included: its series are computed at each run, and the run
records their latest value like any other monitor's.

The YAML is written by hand (no YAML dependency): every string is a double-quoted scalar
made by :func:`json.dumps`, which YAML 1.2 reads as the same string.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import click

from evalstore.cli.common import open_store

#: Rule types with a PromQL equivalent.
TRANSLATED = ("fixed", "range")
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def duration(seconds: float) -> str:
    """A Prometheus duration: the largest unit dividing ``seconds`` (at least 1 s).

    >>> duration(86_400), duration(5_400), duration(45), duration(0.4)
    ('1d', '90m', '45s', '1s')
    """
    whole = max(1, round(seconds))
    for unit, size in _UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def _q(text: str) -> str:
    """A YAML (and PromQL) double-quoted string."""
    return json.dumps(text, ensure_ascii=True)


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise click.ClickException(f"bound {value!r} is not a finite number")
    return repr(float(value))


def expression(model: str, monitor: str, rule: Mapping[str, Any]) -> str:
    """The PromQL condition of a ``fixed`` or ``range`` rule on the monitor's gauge.

    >>> expression("fraud", "auc", {"type": "fixed", "direction": "below", "value": 0.8})
    'evalstore_monitor_value{model="fraud",monitor="auc"} < 0.8'
    >>> low, high = expression("f", "p", {"type": "range", "low": 0, "high": 1}).split(" or ")
    >>> print(low)
    evalstore_monitor_value{model="f",monitor="p"} < 0.0
    >>> print(high)
    evalstore_monitor_value{model="f",monitor="p"} > 1.0
    """
    series = f"evalstore_monitor_value{{model={_q(model)},monitor={_q(monitor)}}}"
    if rule["type"] == "fixed":
        operator = ">" if rule["direction"] == "above" else "<"
        return f"{series} {operator} {_number(rule['value'])}"
    return f"{series} < {_number(rule['low'])} or {series} > {_number(rule['high'])}"


def rules_yaml(
    monitors: Sequence[Mapping[str, Any]], widths: Mapping[str, float], group: str = "evalstore"
) -> str:
    """The rules file for ``monitors`` (rows of ``Store.monitors()``: ``rule`` and
    ``options`` as JSON text) with ``widths`` (window text -> seconds)."""
    lines = [
        "# Prometheus alerting rules written by `evalstore monitor prometheus-rules`.",
        "# Each rule compares evalstore_monitor_value (exported by `evalstore serve` on",
        "# /metrics: the latest value of the monitor's series, recorded by its last run)",
        "# with the monitor's bound.",
        "# Not expressible in PromQL, hence not applied here: min_rows, wait_for_labels.",
        "groups:",
        f"  - name: {_q(group)}",
        "    rules:",
    ]
    skipped = []
    written = 0
    for row in monitors:
        if not row.get("enabled", True):
            continue
        rule = json.loads(row["rule"]) if isinstance(row["rule"], str) else row["rule"]
        options = row.get("options") or {}
        if isinstance(options, str):
            options = json.loads(options)
        name, model = row["name"], row["model"]
        if rule["type"] not in TRANSLATED:
            skipped.append(f"{name} ({rule['type']})")
            continue
        width = widths[options.get("window", "1 day")]
        lines += [
            f"      - alert: {_q(name)}",
            f"        expr: {_q(expression(model, name, rule))}",
        ]
        if rule.get("fire_after", 1) > 1:
            lines.append(f"        for: {_q(duration((rule['fire_after'] - 1) * width))}")
        if rule.get("resolve_after", 1) > 1:
            keep = duration((rule["resolve_after"] - 1) * width)
            lines.append(f"        keep_firing_for: {_q(keep)}")
        lines += [
            "        labels:",
            f"          evalstore_model: {_q(model)}",
            f"          evalstore_monitor: {_q(name)}",
            "        annotations:",
            "          summary: "
            + _q(
                f"{row['family']} {row['metric']} of {{{{ $labels.subject }}}} "
                f"({model}) is {{{{ $value }}}}: outside the {rule['type']} rule of "
                f"monitor {name}"
            ),
        ]
        written += 1
    if written == 0:
        lines[-1] = "    rules: []"
    if skipped:
        lines += [
            "# Skipped: no PromQL equivalent (the bound comes from the metric's reference or",
            "# its own history of windows, which the exported gauge does not carry):",
            *(f"#   {text}" for text in skipped),
        ]
    return "\n".join(lines) + "\n"


@click.command("prometheus-rules")
@click.option("--model", "-m", help="Only this model's monitors.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write the YAML here (default: stdout)."
)
@click.option("--group", default="evalstore", show_default=True, help="The rule group's name.")
@click.pass_context
def prometheus_rules(ctx: click.Context, model: str | None, output: str | None, group: str) -> None:
    """Write Prometheus alerting rules equivalent to the fixed and range monitors.

    Each rule compares evalstore_monitor_value (on `evalstore serve`'s /metrics) with the
    monitor's bound; learned, trailing, seasonal and unsupervised monitors have no PromQL
    equivalent and are listed in a comment instead. Check the file with `promtool check
    rules`, then list it under rule_files in prometheus.yml.

    \b
    Example:
      evalstore monitor prometheus-rules --model fraud -o evalstore-rules.yml
      evalstore monitor prometheus-rules > all-rules.yml
    """
    with open_store(ctx, read_only=True) as store:
        rows = store.monitors(model).to_pylist()
        windows = {
            json.loads(r["options"]).get("window", "1 day") if r["options"] else "1 day"
            for r in rows
        }
        widths = {}
        for window in windows:
            (seconds,) = store.connection.execute(
                "SELECT epoch(CAST(? AS INTERVAL))", [window]
            ).fetchall()[0]
            widths[window] = float(seconds)
    text = rules_yaml(rows, widths, group)
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(text)
    translated = text.count("      - alert: ")
    click.echo(f"wrote {translated} rule(s) to {output}", err=True)
