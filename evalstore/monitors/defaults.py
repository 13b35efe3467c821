"""Default monitors: the ML Test Score set a model gets from its registry and its data.

:func:`add_default_monitors` defines, for one model, the monitors a team running it in
production wants first (Breck et al., *The ML Test Score*, 2017, section 5 "Monitoring
tests"), named ``<model>.<family>.<metric>`` (monitor names cannot hold ``:``), all on
``window`` (``'1 day'``) windows of serving time against the ``reference``
(``'training'``):

============================ ========================================================
monitor                      what and rule
============================ ========================================================
``performance.<headline>``   prediction quality per version (subjects: every
                             version): the task's headline metric (:data:`HEADLINE`:
                             roc_auc, macro_f1, mae) against a trailing baseline,
                             ``trailing`` n=14, k=3, on the side that is worse; a
                             window is ``pending`` until its labels are complete, and
                             judged only with at least 100 labelled predictions
``drift.wasserstein``        drift of each numeric feature against training:
                             normed Wasserstein-1 above its registry threshold (0.1)
``drift.js``                 drift of each categorical feature: Jensen-Shannon
                             distance above its registry threshold (0.1); the pair is
                             Evidently's default for samples over 1,000 rows; a drift
                             alert resolves after 3 clean windows (hysteresis)
``quality.nan``              NaN values of each numeric feature: count above 0
``quality.posinf``,          +inf / -inf values: count above 0
``quality.neginf``
``quality.out_of_range``     share of finite values outside the reference's [min, max]
                             above 0.01 (``unsupervised``, method ``share``)
``quality.unseen``           share of categorical values the reference never had,
                             above 0.01 (``unsupervised``, method ``share``)
``health.latency_p99``       p99 latency per version against its trailing baseline:
                             ``trailing`` n=14, k=3, above, from 100 predictions a
                             window, firing after 2 breaching windows in a row
``health.throughput``        predictions per second per version: ``trailing`` n=14,
                             k=3, both sides (a drop and a surge), every window judged
                             (``min_rows`` 0: a window without traffic reads 0)
``health.error_rate``        share of predictions logged as failed (NULL prediction)
                             per version above 0.01, from 100 predictions a window
``health.freshness``         staleness of the serving streams (``features/serving``,
                             ``predictions``): hours since the last committed batch
                             above two window widths (48 for daily windows)
``health.dependency_changed`` a version whose dependencies differ from the previous
                             version's: ``fixed`` above 0, once per version
``skew.share_mismatch``      training/serving skew of every feature, when the model
                             has examples logged in both training and serving: the
                             share of the examples served in a window whose serving
                             value differs from their training value (numpy's
                             ``isclose`` for numbers), ``fixed`` above 0 (as
                             ``store.skew`` flags a feature)
``estimated_performance.``   the headline metric estimated before labels arrive
``<headline>``               (``store.estimate_performance``: CBPE, DLE) per
                             version, when the ``reference`` holds labeled predictions
                             of some version: the rule of ``performance.<headline>``
                             (``trailing`` n=14, k=3, worse side, 100 scored
                             predictions a window), judged as soon as a window has
                             predictions instead of when its labels are complete
============================ ========================================================

Why an estimated headline monitor, and when. Labels arrive late, so the performance
monitor says ``pending`` for the label delay; the estimate (which needs no label) shows a
drop in those days, with the same trailing rule, so the two monitors agree once labels
arrive unless the reference's score-to-label relationship stopped holding (which the
estimate cannot see: it is why the realized monitor stays). The estimate learns from
labeled predictions of the reference examples: a model whose reference has none (the
demo's, which logs predictions for serving traffic only) gets no such monitor (a user
adds one with a labeled serving range as ``reference``), and ``replace=True`` adds it
once the reference holds some.

Why these health rules. Latency p99 of one window is noisy (its top 1% of a few thousand
calls), so one high window is not a regression: two in a row are (the episode still
starts at the first). Throughput has no absolute scale, so only its own history can say
what is abnormal; both sides, since a surge (a retry storm, a client loop) is as much a
finding as a drop. Error rates of a healthy service sit near 0, where a trailing band of
sd 0 would fire on the first failed call: a fixed 1% (the error budget of a 99%
availability objective) is the rule a team states anyway. Staleness is fixed at two
windows rather than learned from a stream's typical interval: a stream silent for two
whole windows leaves at least one window without data, which every other monitor reads
as ``insufficient`` (not as an alert), so this is the monitor that turns that silence
into one; a learned interval would need one limit per stream, which a rule does not
hold, and would stretch with a stream that slows down. The training and validation
streams (logged once) and ``labels`` (whose cadence is the label delay, weeks for some
models; the performance monitor reports its windows ``pending`` meanwhile) are left out.

Health and skew monitors are computed fresh on each run
(:mod:`evalstore.monitors.health_series`, :mod:`evalstore.monitors.skew_series`). Skew
needs the same example in both envs (serving features recomputed offline into the
training set, or training rows logged with the serving ids): a model without such pairs
gets no skew monitor (its distribution-level skew is what the drift monitors watch), and
``replace=True`` adds one once pairs exist.
Drift and share monitors judge a window only from :data:`MIN_ROWS` rows on (a 20-row day
is noise, not drift); count monitors from one row (a single NaN is a finding). Features
are those logged when the defaults are made: a feature added later gets monitors when
``add_default_monitors(model, replace=True)`` runs again.

Checks of the ML Test Score set that the monitor engine cannot evaluate honestly yet are
not faked; :data:`NOT_MONITORED` says, for each, what is missing.

Idempotent: a default monitor that exists with the same definition is left as it is; one
whose definition differs (edited by a user, or the data gained features) is kept unless
``replace=True``, which redefines it (its ``definition_version`` goes up, its alert state
carries over). Every definition is checked before anything is written, and all are
written in one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name
from evalstore.core.layout import schema_prefix
from evalstore.core.values import feature_kinds
from evalstore.errors import InvalidParameterError
from evalstore.metrics.estimation.estimate import NoReferenceError
from evalstore.metrics.specs import DRIFT_METHODS, PERFORMANCE_METRICS
from evalstore.monitors import catalog, definitions
from evalstore.monitors.definitions import Monitor

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: The headline performance metric of each task (the one a default monitor watches).
HEADLINE = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "mae"}
#: Rows (drift, shares) or labelled predictions (performance) a window needs to be judged.
MIN_ROWS = 100
#: Clean windows before a drift alert resolves: a gradual drift that hovers around the
#: threshold stays one episode instead of flapping.
DRIFT_RESOLVE_AFTER = 3
#: Drift method per feature kind (Evidently's default for more than 1,000 rows).
DRIFT_DEFAULTS = {"numeric": "wasserstein", "categorical": "js"}
#: Share limit of the out-of-range and unseen-category monitors (the quality family's
#: ``max_out_of_range`` and ``max_unseen`` defaults).
SHARE_LIMIT = 0.01
#: Checks of the ML Test Score set that are not default monitors, and why (what the
#: monitor engine lacks to evaluate them honestly).
NOT_MONITORED = {
    "model age": (
        "version_age, model_age and training_data_age can be monitored (family 'health', "
        "fixed rules in days), but no limit suits every model: retraining cadences range "
        "from hours to years, so a default would be a guess; add one with your cadence"
    ),
}
#: Staleness limit of the serving streams, in window widths.
STALE_WINDOWS = 2
#: Error-rate limit (the error budget of a 99% availability objective).
ERROR_RATE_LIMIT = 0.01
#: Ingest streams the default staleness monitor watches.
SERVING_STREAMS = ("features/serving", "predictions")
#: Columns of :func:`add_default_monitors`' table: the monitor columns and ``change``.
CHANGES = ("created", "unchanged", "replaced", "kept")


def name_of(model: str, family: str, metric: str) -> str:
    """The default monitor's name: ``<model>.<family>.<metric>``."""
    return f"{model}.{family}.{metric}"


def planned(
    ctx: Context, model: str, *, window: str = "1 day", reference: Any = "training"
) -> list[Monitor]:
    """The default monitors of ``model``, checked (nothing is written); see the module
    docstring for the set. A model without logged features gets the performance
    monitor only."""
    check_model_name(model)
    task = ctx.registration(model)["task"]
    headline = HEADLINE[task]
    worse = "below" if PERFORMANCE_METRICS[headline].higher_is_better else "above"
    with ctx.lock:
        kinds = feature_kinds(ctx.connection, model)
    numeric = [f for f, kind in kinds.items() if kind == "numeric"]
    categorical = [f for f, kind in kinds.items() if kind == "categorical"]
    options: dict[str, Any] = {"n_boot": 0} if PERFORMANCE_METRICS[headline].needs_bootstrap else {}
    specs: list[tuple[str, str, dict[str, Any], list[str] | None, dict[str, Any]]] = [
        ("performance", headline,
         {"type": "trailing", "n": 14, "k": 3.0, "direction": worse, "min_rows": MIN_ROWS},
         None, options),
    ]  # fmt: skip
    for kind, subjects in (("numeric", numeric), ("categorical", categorical)):
        method = DRIFT_DEFAULTS[kind]
        if subjects:
            limit = DRIFT_METHODS[method].threshold
            rule = {"type": "fixed", "direction": "above", "value": limit,
                    "min_rows": MIN_ROWS, "resolve_after": DRIFT_RESOLVE_AFTER}  # fmt: skip
            specs.append(("drift", method, rule, subjects, {}))
    if numeric:
        for check in ("nan", "posinf", "neginf"):
            rule = {"type": "fixed", "direction": "above", "value": 0.0}
            specs.append(("quality", check, rule, numeric, {}))
        share = {"type": "unsupervised", "method": "share", "threshold": SHARE_LIMIT,
                 "min_rows": MIN_ROWS}  # fmt: skip
        specs.append(("quality", "out_of_range", share, numeric, {}))
    if categorical:
        share = {"type": "unsupervised", "method": "share", "threshold": SHARE_LIMIT,
                 "min_rows": MIN_ROWS}  # fmt: skip
        specs.append(("quality", "unseen", share, categorical, {}))
    specs += _health_specs(ctx, window)
    if kinds and _has_pairs(ctx, model):
        specs.append(("skew", "share_mismatch",
                      {"type": "fixed", "direction": "above", "value": 0.0}, None, {}))  # fmt: skip
    family_reference = {
        "drift": reference, "quality": reference, "performance": None, "health": None,
        "skew": None,
    }  # fmt: skip
    checked = []
    for family, metric, rule, subjects, opts in specs:
        checked.append(
            definitions.check(
                ctx,
                name_of(model, family, metric),
                model,
                family,
                metric,
                rule,
                subjects=subjects or "*",
                window=window,
                reference=family_reference[family],
                options=opts or None,
            )
        )
    estimated = _estimated(ctx, model, headline, specs[0][2], window, reference)
    return checked if estimated is None else [*checked, estimated]


def _estimated(
    ctx: Context, model: str, headline: str, rule: dict[str, Any], window: str, reference: Any
) -> Monitor | None:
    """The estimated headline monitor (the performance monitor's rule), or None when the
    reference holds no labeled prediction of any version to learn the estimate from (or
    is ``{'previous': n}``, which is not a labeled reference)."""
    if isinstance(reference, dict) and "previous" in reference:
        return None
    try:
        return definitions.check(
            ctx, name_of(model, "estimated_performance", headline), model,
            "estimated_performance", headline, rule, window=window, reference=reference,
        )  # fmt: skip
    except NoReferenceError:
        return None


def _has_pairs(ctx: Context, model: str) -> bool:
    """Whether some example of ``model`` is logged in both training and serving (what
    training/serving skew compares)."""
    with ctx.lock:
        con = ctx.connection
        features = f"{schema_prefix(con, model)}features"
        rows = con.execute(
            f"SELECT 1 FROM {features} AS t JOIN {features} AS s "
            "ON s.example_key = t.example_key AND s.example_id = t.example_id "
            "WHERE t.env = 'training' AND s.env = 'serving' LIMIT 1"
        ).fetchall()
    return bool(rows)


def _health_specs(
    ctx: Context, window: str
) -> list[tuple[str, str, dict[str, Any], list[str] | None, dict[str, Any]]]:
    """The health defaults (module docstring); the staleness limit in hours is
    :data:`STALE_WINDOWS` widths of ``window``."""
    with ctx.lock:
        con = ctx.connection
        hours = (
            STALE_WINDOWS
            * definitions.width_seconds(con, definitions.checked_window(con, window))
            / 3600
        )
    above = {"type": "fixed", "direction": "above"}
    return [
        ("health", "latency_p99",
         {"type": "trailing", "n": 14, "k": 3.0, "direction": "above", "min_rows": MIN_ROWS,
          "fire_after": 2}, None, {}),
        ("health", "throughput",
         {"type": "trailing", "n": 14, "k": 3.0, "direction": "both", "min_rows": 0},
         None, {}),
        ("health", "error_rate", {**above, "value": ERROR_RATE_LIMIT, "min_rows": MIN_ROWS},
         None, {}),
        ("health", "freshness", {**above, "value": hours}, list(SERVING_STREAMS), {}),
        ("health", "dependency_changed", {**above, "value": 0.0}, None, {}),
    ]  # fmt: skip


def add_default_monitors(
    ctx: Context,
    model: str,
    *,
    window: str = "1 day",
    reference: Any = "training",
    replace: bool = False,
) -> pa.Table:
    """Create the default monitors of ``model`` (module docstring) and return their
    definitions table (the columns of ``store.monitors()``) with a ``change`` column:
    ``created``, ``unchanged`` (same definition stored), ``replaced`` (``replace=True``
    and the definition differed) or ``kept`` (it differed; ``replace=True`` redefines it).

    Everything is checked first; the writes happen in one transaction, so an error leaves
    the store as it was.
    """
    if not isinstance(replace, bool):
        raise InvalidParameterError(f"replace={replace!r} must be true or false")
    ctx.check_writable()
    wanted = planned(ctx, model, window=window, reference=reference)
    con = ctx.connection
    changes: dict[str, str] = {}
    with ctx.lock, transaction(con):
        for monitor in wanted:
            current = catalog.get(con, monitor.name)
            if current is None:
                catalog.add(ctx, monitor)
                changes[monitor.name] = "created"
            elif _same(current, monitor):
                changes[monitor.name] = "unchanged"
            elif replace:
                fields = {
                    "model": monitor.model, "family": monitor.family, "metric": monitor.metric,
                    "rule": monitor.rule, "subjects": monitor.subjects or "*",
                    "window": monitor.window, "reference": monitor.reference,
                    "where": monitor.where, "version": monitor.version,
                    "options": dict(monitor.options), "learn_period": monitor.learn_period,
                }  # fmt: skip
                catalog.update(ctx, monitor.name, fields)
                changes[monitor.name] = "replaced"
            else:
                changes[monitor.name] = "kept"
        table = catalog.list_monitors(con, model)
    keep = [name in changes for name in table.column("name").to_pylist()]
    table = table.filter(pa.array(keep, type=pa.bool_()))
    column = [changes[name] for name in table.column("name").to_pylist()]
    return table.append_column("change", pa.array(column, type=pa.string()))


def _same(stored: Monitor, wanted: Monitor) -> bool:
    """Whether the stored monitor has the wanted definition (``enabled`` aside: a user
    who disabled a default keeps it disabled)."""
    a, b = stored.definition(), wanted.definition()
    a.pop("enabled")
    b.pop("enabled")
    return a == b
