"""Monitor definitions (``evalstore.monitors``): what a monitor computes and its rule.

A monitor is a named, persisted definition:

* ``model``, ``family`` (:data:`FAMILIES`: ``drift``, ``quality``, ``performance``, the
  families whose results the metric history persists, and ``health``, ``skew``,
  ``summary_stats`` and ``estimated_performance``, computed fresh on each run) and
  ``metric`` (a drift method, a quality check or a performance metric of the model's
  task, from the registries of :mod:`evalstore.metrics.specs`; a health metric of
  :data:`evalstore.monitors.health_series.METRICS`; a skew figure of
  :data:`evalstore.monitors.skew_series.METRICS`; a summary statistic of
  :mod:`evalstore.monitors.summary_series`, e.g. ``mean`` or ``q0.95``; an estimated
  metric of the model's task,
  :data:`evalstore.metrics.estimation.estimate.ESTIMATED_METRICS`);
* ``subjects``: the features (drift, quality, skew, summary_stats; the outputs ``score``,
  ``prediction``, ``label`` too for drift, quality and summary_stats), versions
  (performance, estimated_performance, and health's serving, age and event metrics) or
  ingest streams (health's volume and freshness) it watches, or ``None`` (``'*'``: every
  one the family reports);
* the family call: ``window`` (a time interval such as ``'1 day'``), ``reference``,
  ``where`` (a slice predicate, checked by the family as for any call), ``version`` and
  ``options`` (only keyword parameters the family takes, e.g. ``bins`` for drift,
  ``max_out_of_range`` for quality, ``by`` or ``delay_quantile`` for performance; none
  for health, whose clocks are the run's ``now``; health takes no ``reference`` or
  ``where`` either, and ``version`` only for its version metrics; skew takes
  ``tolerance``, ``rtol``, ``equal_nan`` and ``since``, and no ``reference``;
  estimated_performance takes ``method``, ``calibration``, ``reference_chunks``,
  ``threshold``, ``by`` and the other keyword parameters of ``estimate_performance``);
* ``rule`` (:func:`evalstore.monitors.rules.parse_rule`: stored with every default
  filled) and, for a ``learned`` rule, ``learn_period`` ``(start, end)``: the windows of
  the monitor's own series starting in that period are the reference chunks whose mean
  and sd set the band (NannyML's reference period, generalised to every metric).

Windows are time intervals only: alert cursors move forward in window time, and row
chunks (``5000``, ``{'chunks': n}``) shift as rows arrive, so they are refused.

:func:`check` validates a definition before anything is stored: unknown model, family,
metric (or one the model's task or the subjects' kinds do not have), unknown feature,
invalid rule, window or reference, an option the family does not take, a
``learned`` rule without ``learn_period`` (or a period given to another rule), a
``seasonal`` period that is not a whole number of windows, and ``unsupervised``
``method='share'`` on a metric that is not a share. It ends with a dry call of the
family over one empty day at the start of the store's time range, so every parameter
the family checks (``where``, thresholds, bins...) is checked now, not at the first run
(health has no such parameters: its window and version are checked here).

Versions (:mod:`evalstore.monitors.catalog` stores them): ``catalog.add`` stores version
1; ``catalog.update`` stores version + 1 when anything but ``enabled`` changed (alert
episodes record the version that opened them); ``catalog.delete`` removes the definition
and its alert cursors, and closes its open episodes as ``resolved`` without notifying (the
resolved ones stay as the record).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import duckdb

from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name
from evalstore.core.registry import to_timestamp
from evalstore.core.values import feature_kinds
from evalstore.core.windows import check_width, window_args
from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation.estimate import estimate_performance
from evalstore.metrics.skew import skew_windows
from evalstore.metrics.specs import DRIFT_METHODS, PERFORMANCE_METRICS, QUALITY_CHECKS
from evalstore.metrics.summary import summary_stats
from evalstore.monitors import estimation_series, health_series, skew_series, summary_series
from evalstore.monitors.history import FAMILIES as _PERSISTED
from evalstore.monitors.rules import Rule, parse_rule

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Families a monitor may watch: those the metric history persists, and ``health``,
#: ``skew``, ``summary_stats`` and ``estimated_performance`` (computed fresh on every run:
#: :mod:`evalstore.monitors.health_series`, :mod:`evalstore.monitors.skew_series`,
#: :mod:`evalstore.monitors.summary_series`, :mod:`evalstore.monitors.estimation_series`).
FAMILIES = (
    "drift", "quality", "performance", "health", "skew", "summary_stats",
    "estimated_performance",
)  # fmt: skip
#: Families whose subjects are the model's versions (slices and classes after them).
VERSION_FAMILIES = ("performance", "estimated_performance")
#: The function computing each family's windowed result (health is computed by
#: :mod:`evalstore.monitors.health_series`, from several calls).
_FAMILY_FUNCTIONS = {
    **_PERSISTED, "skew": skew_windows, "summary_stats": summary_stats,
    "estimated_performance": estimate_performance,
}  # fmt: skip
#: Keyword parameters of the families a monitor sets itself (not in ``options``).
STRUCTURAL = {
    "drift": ("reference", "window", "features", "methods", "version", "where", "until"),
    "quality": ("reference", "window", "features", "version", "where", "until"),
    "performance": ("metrics", "window", "version", "where", "until"),
    "health": ("window", "version", "sections", "as_of", "now"),
    "skew": ("window", "features", "version", "where", "until"),
    "summary_stats": (
        "reference", "window", "features", "stats", "quantiles", "version", "where", "until",
    ),
    "estimated_performance": ("reference", "metrics", "window", "version", "where", "until"),
}  # fmt: skip
#: Metrics whose value is a share of rows (``unsupervised`` ``method='share'``).
SHARE_METRICS = {
    "quality": ("missing", "out_of_range", "unseen"),
    "drift": ("unseen",),
    "health": ("error_rate",),
    "skew": ("share_mismatch",),
}
#: Model outputs quality and drift report beside the features.
OUTPUTS = ("score", "prediction", "label")
#: Most subjects one monitor lists.
MAX_SUBJECTS = 1_000
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_PERIOD_SECONDS = {"daily": 86_400, "weekly": 7 * 86_400}


@dataclass(frozen=True)
class Monitor:
    """A validated monitor definition (see the module docstring for each field).

    ``subjects`` is None for every subject (``'*'``); ``reference`` None for the
    family's default; ``learn_period`` ISO texts ``(start, end)`` or None."""

    name: str
    model: str
    family: str
    metric: str
    rule: Rule
    subjects: tuple[str, ...] | None = None
    window: str = "1 day"
    reference: Any = None
    where: str | None = None
    version: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    learn_period: tuple[str, str] | None = None
    enabled: bool = True
    definition_version: int = 1

    def call_arguments(self) -> dict[str, Any]:
        """The family's keyword arguments this monitor computes with (``persist=True``
        calls of :func:`evalstore.monitors.history.persisted` take them as they are; for
        ``health``, the ``window`` and ``version`` of :func:`evalstore.metrics.health.health`)."""
        arguments: dict[str, Any] = {"window": self.window, "version": self.version}
        if self.family == "health":
            return arguments
        arguments["where"] = self.where
        if self.family == "skew":
            arguments["features"] = list(self.subjects) if self.subjects else None
            return {**arguments, **self.options}
        if self.family in VERSION_FAMILIES:
            arguments["metrics"] = [self.metric]
        elif self.family == "summary_stats":
            arguments["features"] = list(self.subjects) if self.subjects else None
            arguments.update(summary_series.stat_arguments(self.metric))
        else:
            arguments["features"] = list(self.subjects) if self.subjects else None
            if self.family == "drift":
                arguments["methods"] = [self.metric]
        if self.reference is not None:
            arguments["reference"] = _reference_value(self.reference)
        return {**arguments, **self.options}

    def stored_options(self) -> dict[str, Any]:
        """The ``options`` JSON column: the call settings besides family, metric, subjects
        and rule."""
        return {
            "window": self.window,
            "reference": self.reference,
            "where": self.where,
            "version": self.version,
            "learn_period": list(self.learn_period) if self.learn_period else None,
            "options": dict(self.options),
        }

    def definition(self) -> dict[str, Any]:
        """Everything that defines the monitor, as JSON values (what ``apply`` compares
        and ``monitor list`` shows); ``enabled`` included, the version not."""
        return {
            "name": self.name,
            "model": self.model,
            "family": self.family,
            "metric": self.metric,
            "subjects": list(self.subjects) if self.subjects else "*",
            **self.stored_options(),
            "rule": self.rule.to_json(),
            "enabled": self.enabled,
        }


def _reference_value(reference: Any) -> Any:
    """A stored reference as the families take it (a two-item list is a time range)."""
    if isinstance(reference, list):
        return tuple(reference)
    return reference


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterError(
            f"monitor name {name!r} must start with a letter and hold at most 64 letters, "
            "digits, '_', '.' or '-'"
        )
    return name


def _check_subjects(subjects: Any) -> tuple[str, ...] | None:
    if subjects is None or subjects == "*" or subjects == ["*"]:
        return None
    items = [subjects] if isinstance(subjects, str) else subjects
    if not isinstance(items, Sequence) or not items:
        raise InvalidParameterError(
            f"subjects={subjects!r} must be '*' (every subject) or a non-empty list of names"
        )
    if len(items) > MAX_SUBJECTS:
        raise InvalidParameterError(
            f"subjects has {len(items)} names, above the limit of {MAX_SUBJECTS}; use '*'"
        )
    if not all(isinstance(s, str) and s for s in items):
        raise InvalidParameterError(f"subjects={subjects!r} must hold non-empty strings")
    return tuple(dict.fromkeys(items))


def checked_window(con: duckdb.DuckDBPyConnection, window: Any) -> str:
    """``window`` if it is a time interval a monitor takes, else an error saying why."""
    if not isinstance(window, str):
        window_args(window)  # names what it is if it is not a window at all
        raise InvalidParameterError(
            f"window={window!r}: a monitor needs a time interval such as '1 hour' or "
            "'1 day' (row chunks shift as rows arrive, and alerts move forward in time)"
        )
    check_width(con, window)
    return window


def width_seconds(con: duckdb.DuckDBPyConnection, window: str) -> float:
    """The width of the interval ``window`` in seconds (a month counts 30 days)."""
    return float(con.execute("SELECT epoch(CAST(? AS INTERVAL))", [window]).fetchall()[0][0])


def _check_reference(reference: Any) -> Any:
    """The reference as a JSON value (a time range's ends as UTC ISO text)."""
    if reference is None or isinstance(reference, str):
        return reference
    if isinstance(reference, Mapping):
        return {str(k): v for k, v in reference.items()}
    if isinstance(reference, tuple | list) and len(reference) == 2:
        ends = [to_timestamp(v, "reference") for v in reference]
        return [None if t is None else t.isoformat() for t in ends]
    raise InvalidParameterError(
        f"reference={reference!r} is not understood: pass 'training', 'validation', "
        "{'dataset': tag}, {'previous': n} or a (start, end) time range"
    )


def _check_period(period: Any) -> tuple[str, str]:
    if not isinstance(period, tuple | list) or len(period) != 2:
        raise InvalidParameterError(
            f"learn_period={period!r} must be (start, end): the windows whose metric values "
            "are the learned rule's reference chunks"
        )
    start, end = (
        to_timestamp(v, f"learn_period {e}") for v, e in zip(period, ("start", "end"), strict=True)
    )
    if start is None or end is None or start >= end:
        raise InvalidParameterError(
            f"learn_period={period!r} must have a start before its end (both given)"
        )
    return start.isoformat(), end.isoformat()


def _check_metric(
    ctx: Context, model: str, family: str, metric: Any, subjects: tuple[str, ...] | None
) -> str:
    if family == "health":
        if metric not in health_series.METRICS:
            raise InvalidParameterError(
                f"metric={metric!r} is not a health metric; choose from "
                f"{', '.join(health_series.METRICS)}"
            )
        health_series.check_subjects(metric, subjects, list(ctx.versions(model)))
        return metric
    if family == "skew":
        return _check_skew_metric(ctx, model, metric, subjects)
    if family == "summary_stats":
        return summary_series.check_metric(metric)
    if family == "estimated_performance":
        return estimation_series.check_metric(ctx, model, metric)
    if family == "performance":
        task = ctx.registration(model)["task"]
        available = [n for n, spec in PERFORMANCE_METRICS.items() if task in spec.tasks]
        if metric not in available:
            raise InvalidParameterError(
                f"metric={metric!r} is not a performance metric of a {task} model; choose "
                f"from {', '.join(available)}"
            )
        return metric
    registry = DRIFT_METHODS if family == "drift" else QUALITY_CHECKS
    if metric not in registry:
        what = "drift method" if family == "drift" else "quality check"
        raise InvalidParameterError(
            f"metric={metric!r} is not a {what}; choose from {', '.join(registry)}"
        )
    kinds = feature_kinds(ctx.connection, model)
    if subjects is not None:
        unknown = [s for s in subjects if s not in kinds and s not in OUTPUTS]
        if unknown:
            raise InvalidParameterError(
                f"subjects: {unknown[0]!r} is not a feature of model {model!r} (features: "
                f"{', '.join(kinds) or 'none logged yet'}); log its features first or fix "
                "the name"
            )
        applies = registry[metric].kinds
        if not any(kinds.get(s) in applies for s in subjects if s in kinds) and not any(
            s in OUTPUTS for s in subjects
        ):
            raise InvalidParameterError(
                f"metric {metric!r} applies to {' and '.join(applies)} features only; none of "
                f"subjects {list(subjects)} is one"
            )
    return metric


def _check_skew_metric(
    ctx: Context, model: str, metric: Any, subjects: tuple[str, ...] | None
) -> str:
    """A skew metric, on features of the model (numeric ones for ``max_abs_diff``)."""
    if metric not in skew_series.METRICS:
        raise InvalidParameterError(
            f"metric={metric!r} is not a skew metric; choose from {', '.join(skew_series.METRICS)}"
        )
    kinds = feature_kinds(ctx.connection, model)
    if subjects is not None:
        unknown = [s for s in subjects if s not in kinds]
        if unknown:
            raise InvalidParameterError(
                f"subjects: {unknown[0]!r} is not a feature of model {model!r} (features: "
                f"{', '.join(kinds) or 'none logged yet'}); skew compares features only"
            )
        if metric in skew_series.NUMERIC_ONLY and not any(kinds[s] == "numeric" for s in subjects):
            raise InvalidParameterError(
                f"metric {metric!r} applies to numeric features only; none of subjects "
                f"{list(subjects)} is one"
            )
    return metric


def _check_rule_fit(
    con: duckdb.DuckDBPyConnection, family: str, metric: str, rule: Rule, window: str, period: Any
) -> None:
    if rule.type == "learned" and period is None:
        raise InvalidParameterError(
            "rule 'learned' needs learn_period=(start, end): the period whose windows are "
            "the reference chunks of the band"
        )
    if rule.type != "learned" and period is not None:
        raise InvalidParameterError(
            f"learn_period is for rule 'learned' only; remove it for rule {rule.type!r}"
        )
    if rule.type == "unsupervised" and rule["method"] == "share":
        shares = SHARE_METRICS.get(family, ())
        if metric not in shares:
            raise InvalidParameterError(
                f"rule 'unsupervised' with method 'share' needs a metric that is a share of "
                f"rows ({family}: {', '.join(shares) or 'none'}); {metric!r} is not one"
            )
    if rule.type == "seasonal":
        width = width_seconds(con, window)
        season = _PERIOD_SECONDS[rule["period"]]
        if season % width or season // width < 2:
            raise InvalidParameterError(
                f"rule 'seasonal' with period {rule['period']!r}: window={window!r} must "
                "divide the period at least twice; use shorter windows or the other period"
            )


def _check_options(family: str, options: Any) -> dict[str, Any]:
    import inspect

    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidParameterError(f"options={options!r} must be a mapping of parameters")
    if family == "health":
        if options:
            raise InvalidParameterError(
                f"options: health monitors take none (got {', '.join(map(str, options))}); "
                "their window and version are monitor fields and their clocks are the run's"
            )
        return {}
    parameters = inspect.signature(_FAMILY_FUNCTIONS[family]).parameters
    taken = [n for n in parameters if n not in ("ctx", "model", *STRUCTURAL[family], "since")]
    taken.append("since")
    for name in options:
        if name in STRUCTURAL[family] and name != "until":
            raise InvalidParameterError(
                f"options: {name!r} is a monitor field; pass it as {name}= (not in options)"
            )
        if name not in taken:
            raise InvalidParameterError(
                f"options: {family} takes no parameter {name!r}; its options are "
                f"{', '.join(sorted(taken))}"
            )
        try:
            json.dumps(options[name])
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"options: {name}={options[name]!r} has no JSON form; pass numbers, text, "
                "lists or mappings of them"
            ) from None
    return dict(options)


def check(
    ctx: Context,
    name: str,
    model: str,
    family: str,
    metric: str,
    rule: Mapping[str, Any] | Rule | str,
    *,
    subjects: Any = None,
    window: Any = "1 day",
    reference: Any = None,
    where: str | None = None,
    version: str | None = None,
    options: Mapping[str, Any] | None = None,
    learn_period: Any = None,
    enabled: bool = True,
    definition_version: int = 1,
) -> Monitor:
    """A :class:`Monitor` from its fields, validated (see the module docstring), or
    :class:`~evalstore.errors.InvalidParameterError` /
    :class:`~evalstore.errors.UnknownModelError` naming the field and what to do.
    Writes nothing."""
    _check_name(name)
    check_model_name(model)
    if family not in FAMILIES:
        raise InvalidParameterError(
            f"family={family!r} cannot be monitored; choose from {', '.join(FAMILIES)}"
        )
    if not isinstance(enabled, bool):
        raise InvalidParameterError(f"enabled={enabled!r} must be true or false")
    if where is not None and not isinstance(where, str):
        raise InvalidParameterError(f"where={where!r} must be a SQL predicate (text) or None")
    if version is not None and not isinstance(version, str):
        raise InvalidParameterError(f"version={version!r} must be a version name or None")
    parsed = parse_rule(rule)
    chosen = _check_subjects(subjects)
    con = ctx.connection
    with ctx.lock, transaction(con):
        ctx.registration(model, version)
        window = checked_window(con, window)
        metric = _check_metric(
            ctx, model, family, metric, chosen if family not in VERSION_FAMILIES else None
        )
        if family == "health":
            _check_health_fields(metric, reference, where, version)
        if family == "skew" and reference is not None:
            raise InvalidParameterError(
                f"reference={reference!r}: skew monitors take no reference (each serving "
                "example is compared with its own training row); remove it"
            )
        if family in VERSION_FAMILIES and chosen is not None:
            ctx_versions = ctx.versions(model)
            unknown = [s for s in chosen if s not in ctx_versions]
            if unknown:
                raise InvalidParameterError(
                    f"subjects: {unknown[0]!r} is not a version of model {model!r} "
                    f"(registered: {', '.join(ctx_versions)}); {family} subjects are versions"
                )
        period = None if learn_period is None else _check_period(learn_period)
        _check_rule_fit(con, family, metric, parsed, window, period)
        monitor = Monitor(
            name=name,
            model=model,
            family=family,
            metric=metric,
            rule=parsed,
            subjects=chosen,
            window=window,
            reference=_check_reference(reference),
            where=where,
            version=version,
            options=_check_options(family, options),
            learn_period=period,
            enabled=enabled,
            definition_version=definition_version,
        )
        if family != "health":
            _dry_call(ctx, monitor)
    return monitor


def _check_health_fields(metric: str, reference: Any, where: Any, version: Any) -> None:
    """Health monitors have no reference or slice, and streams no version."""
    for name, value in (("reference", reference), ("where", where)):
        if value is not None:
            raise InvalidParameterError(
                f"{name}={value!r}: health monitors take no {name} (health compares a "
                "metric with its rule, not with a reference, and cannot be sliced); remove it"
            )
    if version is not None and metric in health_series.STREAM_METRICS:
        raise InvalidParameterError(
            f"version={version!r}: {metric} is per ingest stream, not per version; remove "
            "version (the 'predictions' stream counts every version's batches)"
        )


def _dry_call(ctx: Context, monitor: Monitor) -> None:
    """Call the family over one empty day at the start of the store's time range: it
    checks every parameter it takes and computes nothing of size."""
    start = ctx.limits.time_range[0]
    arguments = {**monitor.call_arguments(), "since": start, "until": start + timedelta(days=1)}
    _FAMILY_FUNCTIONS[monitor.family](ctx, monitor.model, **arguments)
