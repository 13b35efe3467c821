"""Monitor rules: when is one window of a metric series a breach?

One registry, :data:`RULE_TYPES`, declares every rule type once (name, parameters with
their types, bounds and defaults, definition, docs anchor), as
:mod:`evalstore.metrics.specs` declares metrics. A rule definition is a mapping such as
``{"type": "trailing", "n": 7, "k": 3}``; :func:`parse_rule` validates it against the
registry (unknown type, missing or extra parameter, out-of-bounds value, ``low > high``)
and fills the defaults, so the stored JSON (:meth:`Rule.to_json`) states every value the
rule used. :func:`evalstore.monitors.verdicts.evaluate` applies a rule to a series
(window starts, values, rows per window, label completeness) and returns one verdict per
window:

* ``ok`` -- the value is inside the bound(s);
* ``breach`` -- outside them;
* ``pending`` -- the metric needs labels and the window's labels are not complete yet
  (``wait_for_labels``); the bounds are still computed, and ``breached`` says whether the
  value *would* breach, so the alert engine can show a provisional (pending) alert;
* ``insufficient`` -- no value (NaN/inf), fewer rows than ``min_rows``, or not enough
  history or reference to compute the bound.

Every verdict carries the bounds it used (``lower``/``upper``, NaN when a side is not
checked) and a readable ``reason``.

Which windows feed a baseline (``trailing``, ``seasonal``, ``unsupervised``): the
*usable* ones -- a finite value, at least ``min_rows`` rows and complete labels (when
waited for). Breaching windows stay in the baseline (as in WhyLabs' monitors): a level
shift that persists becomes the new normal after ``n`` windows.

The common parameters ``fire_after`` and ``resolve_after`` are not used here; they are
the alert engine's (:mod:`evalstore.monitors.alerts`): an episode fires after that many
consecutive breaching windows and resolves after that many consecutive clean ones.

Everything here is pure numpy over one series (no store access), so backtests and
property tests reuse it. Sizes are bounded before work starts (:data:`MAX_WINDOWS`,
per-parameter maxima).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalstore.errors import InvalidParameterError

STATUSES = ("ok", "breach", "pending", "insufficient")
#: Windows one series may hold (a year of 5-minute windows is 105,120).
MAX_WINDOWS = 200_000
#: Reference values a ``learned`` rule may take.
MAX_REFERENCE = 100_000
#: Sentinel of a parameter without a default (the definition must give it).
REQUIRED: Any = object()
#: The 1.4826 that makes the MAD a consistent estimator of a normal distribution's sd.
MAD_SCALE = 1.4826


@dataclass(frozen=True)
class Param:
    """One parameter of a rule type: ``kind`` is ``'float'``, ``'int'``, ``'bool'`` or
    ``'choice'``; numbers must lie in ``[least, most]`` (``positive``: strictly above
    ``least``); choices in ``choices``. ``default`` is :data:`REQUIRED` when the
    definition must give it, ``None`` when the value is derived from another parameter."""

    name: str
    kind: str
    doc: str
    default: Any = REQUIRED
    least: float | None = None
    most: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()

    def check(self, rule: str, value: Any) -> Any:
        """``value`` converted to this parameter's type, or :class:`InvalidParameterError`
        naming the rule, the parameter and what it accepts."""
        where = f"rule {rule!r}: parameter {self.name!r}"
        if self.kind == "choice":
            if value not in self.choices:
                raise InvalidParameterError(
                    f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}"
                )
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidParameterError(f"{where} must be true or false; got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InvalidParameterError(f"{where} must be a number ({self.doc}); got {value!r}")
        if self.kind == "int":
            if float(value) != int(value):
                raise InvalidParameterError(f"{where} must be a whole number; got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidParameterError(f"{where} must be finite; got {value!r}")
        if self.least is not None and (
            value <= self.least if self.positive else value < self.least
        ):
            relation = ">" if self.positive else ">="
            raise InvalidParameterError(
                f"{where} must be {relation} {fmt(self.least)}; got {fmt(value)}"
            )
        if self.most is not None and value > self.most:
            raise InvalidParameterError(
                f"{where} must be <= {fmt(self.most)}; got {fmt(value)} (use a smaller value)"
            )
        return value


@dataclass(frozen=True)
class RuleType:
    """A rule type of the registry: its parameters (the common ones included), its
    definition (the exact formula, shown in the docs) and whether it takes reference
    values (``learned``)."""

    name: str
    definition: str
    params: tuple[Param, ...]
    needs_reference: bool = False
    docs_anchor: str = "monitoring.md#rule-types"
    check: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)

    def param(self, name: str) -> Param:
        """The parameter called ``name`` (KeyError if there is none)."""
        return {p.name: p for p in self.params}[name]


#: Parameters every rule takes.
COMMON_PARAMS = (
    Param("min_rows", "int", "rows a window needs to be judged", 1, least=0, most=10**12),
    Param(
        "wait_for_labels",
        "bool",
        "report 'pending' instead of judging a window whose labels are incomplete",
        True,
    ),
    Param(
        "fire_after",
        "int",
        "consecutive breaching windows before an alert fires",
        1,
        least=1,
        most=1000,
    ),
    Param(
        "resolve_after",
        "int",
        "consecutive clean windows before an alert resolves",
        1,
        least=1,
        most=1000,
    ),
)
_DIRECTION = Param(
    "direction",
    "choice",
    "which side breaches: 'both', 'above' (upper bound only) or 'below' (lower only)",
    "both",
    choices=("both", "above", "below"),
)
_K = Param(
    "k", "float", "width of the band in standard deviations", 3.0, least=0, most=1000, positive=True
)


def _check_range(params: dict[str, Any]) -> None:
    if params["low"] > params["high"]:
        raise InvalidParameterError(
            f"rule 'range': low={fmt(params['low'])} is above high={fmt(params['high'])}; "
            "give low <= high"
        )


def _check_unsupervised(params: dict[str, Any]) -> None:
    if params["method"] == "share":
        if params["n"] is not None:
            raise InvalidParameterError(
                "rule 'unsupervised': parameter 'n' applies to method 'mad' only; "
                "remove it for method 'share' (a threshold on the share of invalid rows)"
            )
        if params["threshold"] is None:
            params["threshold"] = 0.0
        if not 0.0 <= params["threshold"] <= 1.0:
            raise InvalidParameterError(
                "rule 'unsupervised' with method 'share': threshold is a share and must be "
                f"in [0, 1]; got {fmt(params['threshold'])}"
            )
    else:
        if params["n"] is None:
            params["n"] = 14
        if params["threshold"] is None:
            params["threshold"] = 3.5
        if params["threshold"] <= 0:
            raise InvalidParameterError(
                "rule 'unsupervised' with method 'mad': threshold must be > 0; "
                f"got {fmt(params['threshold'])}"
            )


RULE_TYPES: dict[str, RuleType] = {
    rule.name: rule
    for rule in (
        RuleType(
            "fixed",
            "breach when value > value_limit ('above') or value < value_limit ('below'); "
            "strict: a value equal to the limit is ok",
            (
                Param("direction", "choice", "'above' or 'below'", choices=("above", "below")),
                Param("value", "float", "the limit"),
            ),
        ),
        RuleType(
            "range",
            "breach when value < low or value > high (the bounds themselves are ok)",
            (Param("low", "float", "lower bound"), Param("high", "float", "upper bound")),
            check=_check_range,
        ),
        RuleType(
            "learned",
            "breach when value is outside mean ± k·sd of the metric over the reference "
            "chunks (the reference values given); sd is the population standard deviation "
            "(ddof=0), as the drift engine's learned thresholds (NannyML's); needs 2 finite "
            "reference values",
            (_K, _DIRECTION),
            needs_reference=True,
        ),
        RuleType(
            "trailing",
            "breach when value is outside mean ± k·sd of the usable values among the "
            "previous n windows of the series (the current window excluded); sd is the "
            "sample standard deviation (ddof=1), as WhyLabs' stddev analyzer; needs 2 "
            "usable windows",
            (
                Param("n", "int", "previous windows of the baseline", 7, least=2, most=10_000),
                _K,
                _DIRECTION,
            ),
        ),
        RuleType(
            "seasonal",
            "seasonal-naive forecast x̂_t = x_{t-P} (P = one day or one week) with an "
            "empirical prediction interval: breach when value is outside x̂_t + "
            "[q_(1-c)/2, q_(1+c)/2] of the residuals r_s = x_s - x_{s-P} of the windows s "
            "in the previous `seasons` seasons (t excluded; numpy 'linear' quantiles); needs "
            "the value one season earlier and at least one season of residuals (P/width, "
            "at least 2)",
            (
                Param(
                    "period",
                    "choice",
                    "the season: 'daily' or 'weekly'",
                    "weekly",
                    choices=("daily", "weekly"),
                ),
                Param(
                    "coverage",
                    "float",
                    "coverage c of the prediction interval",
                    0.95,
                    least=0.5,
                    most=0.999,
                ),
                Param(
                    "seasons",
                    "int",
                    "past seasons whose residuals set the interval",
                    4,
                    least=1,
                    most=520,
                ),
                _DIRECTION,
            ),
        ),
        RuleType(
            "unsupervised",
            "method 'mad': robust score |x - median| / (1.4826·MAD) of the usable values "
            "among the previous n windows (current excluded); breach when score > "
            "threshold (default 3.5, Iglewicz-Hoaglin), i.e. outside median ± "
            "threshold·1.4826·MAD; with MAD = 0 any value other than the median breaches; "
            "needs 3 usable windows. Method 'share': the series is a share of invalid raw "
            "rows (out of range, unseen, NaN/inf from the quality family); breach when "
            "share > threshold (default 0)",
            (
                Param(
                    "method",
                    "choice",
                    "'mad' (score on the series) or 'share'",
                    "mad",
                    choices=("mad", "share"),
                ),
                Param(
                    "threshold",
                    "float",
                    "score (mad) or share (share) limit",
                    None,
                    least=0,
                    most=1e9,
                ),
                Param(
                    "n",
                    "int",
                    "previous windows of the baseline (mad only)",
                    None,
                    least=3,
                    most=10_000,
                ),
                _DIRECTION,
            ),
            check=_check_unsupervised,
        ),
    )
}


@dataclass(frozen=True)
class Rule:
    """A validated rule: its type name and every parameter (defaults filled)."""

    type: str
    params: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The definition as stored: ``{"type": ..., <every parameter>}``."""
        return {"type": self.type, **self.params}

    def dumps(self) -> str:
        """Canonical JSON text of :meth:`to_json` (sorted keys)."""
        return json.dumps(self.to_json(), sort_keys=True)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]


def parse_rule(definition: Mapping[str, Any] | Rule | str) -> Rule:
    """Validate a rule definition (a mapping, its JSON text, or a :class:`Rule`) against
    :data:`RULE_TYPES` and return it with every default filled.

    >>> parse_rule({"type": "fixed", "direction": "above", "value": 0.2})["min_rows"]
    1
    >>> parse_rule({"type": "trailing", "k": 0})
    Traceback (most recent call last):
    ...
    evalstore.errors.InvalidParameterError: rule 'trailing': parameter 'k' must be > 0; got 0
    """
    if isinstance(definition, Rule):
        definition = definition.to_json()
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as error:
            raise InvalidParameterError(f"rule is not valid JSON: {error}") from None
    if not isinstance(definition, Mapping):
        raise InvalidParameterError(
            "rule must be a mapping such as {'type': 'fixed', 'direction': 'above', "
            f"'value': 0.2}}; got {type(definition).__name__}"
        )
    kind = definition.get("type")
    if kind not in RULE_TYPES:
        raise InvalidParameterError(
            f"rule type {kind!r} is unknown; give 'type' as one of "
            f"{', '.join(map(repr, RULE_TYPES))}"
        )
    rule_type = RULE_TYPES[kind]
    params = (*rule_type.params, *COMMON_PARAMS)
    names = {p.name for p in params}
    extra = [name for name in definition if name != "type" and name not in names]
    if extra:
        raise InvalidParameterError(
            f"rule {kind!r} takes no parameter {extra[0]!r}; its parameters are "
            f"{', '.join(p.name for p in params)}"
        )
    values: dict[str, Any] = {}
    for param in params:
        given = definition.get(param.name, param.default)
        if given is REQUIRED:
            raise InvalidParameterError(
                f"rule {kind!r} needs parameter {param.name!r} ({param.doc}); add it to "
                "the definition"
            )
        values[param.name] = None if given is None else param.check(kind, given)
    if rule_type.check is not None:
        rule_type.check(values)
    return Rule(kind, values)


def fmt(x: float) -> str:
    """A number as the reasons print it (6 significant digits)."""
    return f"{x:.6g}"
