"""Monitor rules: when is one window of a metric series a breach?

One registry, :data:`RULE_TYPES`, declares every rule type once (name, parameters with
their types, bounds and defaults, definition, docs anchor), as
:mod:`evalstore.metrics.specs` declares metrics. A rule definition is a mapping such as
``{"type": "trailing", "n": 7, "k": 3}``; :func:`parse_rule` validates it against the
registry (unknown type, missing or extra parameter, out-of-bounds value, ``low > high``)
and fills the defaults, so the stored JSON (:meth:`Rule.to_json`) states every value the
rule used. :func:`evaluate` applies a rule to a :class:`Series` (window starts, values,
rows per window, label completeness) and returns one verdict per window:

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
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

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
                f"{where} must be {relation} {_num(self.least)}; got {_num(value)}"
            )
        if self.most is not None and value > self.most:
            raise InvalidParameterError(
                f"{where} must be <= {_num(self.most)}; got {_num(value)} (use a smaller value)"
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
            f"rule 'range': low={_num(params['low'])} is above high={_num(params['high'])}; "
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
                f"in [0, 1]; got {_num(params['threshold'])}"
            )
    else:
        if params["n"] is None:
            params["n"] = 14
        if params["threshold"] is None:
            params["threshold"] = 3.5
        if params["threshold"] <= 0:
            raise InvalidParameterError(
                "rule 'unsupervised' with method 'mad': threshold must be > 0; "
                f"got {_num(params['threshold'])}"
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


@dataclass(frozen=True)
class Series:
    """One metric's values per window, oldest first.

    ``window_start`` strictly increasing (datetime64 or datetimes), ``value`` the metric
    (NaN: no value), ``n`` the rows the window's value was computed from,
    ``labels_complete`` whether the window's labels are complete (None: the metric does
    not need labels), ``window_end`` optional (carried into verdicts).
    """

    window_start: npt.ArrayLike
    value: npt.ArrayLike
    n: npt.ArrayLike
    labels_complete: npt.ArrayLike | None = None
    window_end: npt.ArrayLike | None = None


@dataclass(frozen=True)
class Verdict:
    """The verdict of one window: ``status`` in :data:`STATUSES`; ``lower``/``upper`` the
    bounds used (NaN: that side not checked or not computable); ``breached`` whether the
    value is outside them (also for ``pending`` windows: a provisional breach; False when
    no bound could be computed); ``reason`` a readable sentence."""

    window_start: datetime
    window_end: datetime | None
    status: str
    value: float
    n: int
    lower: float
    upper: float
    breached: bool
    reason: str


@dataclass(frozen=True)
class Verdicts:
    """Verdicts of a whole series, as arrays (one entry per window, series order)."""

    window_start: np.ndarray
    window_end: np.ndarray | None
    status: np.ndarray
    value: np.ndarray
    n: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    breached: np.ndarray
    reason: list[str]

    def __len__(self) -> int:
        return len(self.status)

    def rows(self) -> list[Verdict]:
        """One :class:`Verdict` per window (what the alert engine consumes)."""
        starts = self.window_start.astype("datetime64[us]").astype(datetime)
        ends = (
            self.window_end.astype("datetime64[us]").astype(datetime)
            if self.window_end is not None
            else [None] * len(self)
        )
        return [
            Verdict(
                starts[i],
                ends[i],
                str(self.status[i]),
                float(self.value[i]),
                int(self.n[i]),
                float(self.lower[i]),
                float(self.upper[i]),
                bool(self.breached[i]),
                self.reason[i],
            )
            for i in range(len(self))
        ]


def _num(x: float) -> str:
    """A number as the reasons print it (6 significant digits)."""
    return f"{x:.6g}"


def _as_series(series: Series) -> tuple[np.ndarray, ...]:
    starts = np.asarray(series.window_start).astype("datetime64[us]")
    values = np.asarray(series.value, dtype=float)
    rows = np.asarray(series.n)
    count = len(starts)
    if count > MAX_WINDOWS:
        raise InvalidParameterError(
            f"series has {count} windows, above the limit of {MAX_WINDOWS}; evaluate a "
            "shorter period (since=/until=) or wider windows"
        )
    for name, array in (("value", values), ("n", rows)):
        if array.shape != (count,):
            raise InvalidParameterError(
                f"series.{name} has shape {array.shape}; expected one entry per window ({count})"
            )
    if count and np.isnat(starts).any():
        raise InvalidParameterError("series.window_start has a missing (NaT) window start")
    if count > 1 and not (np.diff(starts) > np.timedelta64(0, "us")).all():
        raise InvalidParameterError(
            "series.window_start must be strictly increasing (one row per window, oldest "
            "first); sort the series and drop duplicate windows"
        )
    if series.labels_complete is None:
        complete = np.ones(count, dtype=bool)
    else:
        complete = np.asarray(series.labels_complete, dtype=bool)
        if complete.shape != (count,):
            raise InvalidParameterError(
                f"series.labels_complete has shape {complete.shape}; expected ({count},)"
            )
    ends = None
    if series.window_end is not None:
        ends = np.asarray(series.window_end).astype("datetime64[us]")
        if ends.shape != (count,):
            raise InvalidParameterError(
                f"series.window_end has shape {ends.shape}; expected ({count},)"
            )
    rows = np.nan_to_num(rows.astype(float), nan=0.0).astype(np.int64)
    return starts, ends, values, rows, complete


def _side_bounds(direction: str, low: float, high: float) -> tuple[float, float]:
    """Keep the bound(s) ``direction`` checks; NaN for the other side."""
    if direction == "above":
        return math.nan, high
    if direction == "below":
        return low, math.nan
    return low, high


def evaluate(
    rule: Rule | Mapping[str, Any],
    series: Series,
    reference: npt.ArrayLike | None = None,
) -> Verdicts:
    """Apply ``rule`` to every window of ``series``; ``reference`` is the metric's values
    over the reference chunks (``learned`` only, required there).

    The order of checks per window: no finite value, or fewer than ``min_rows`` rows ->
    ``insufficient``; labels incomplete (when ``wait_for_labels``) -> ``pending`` (bounds
    still computed, ``breached`` provisional); bounds not computable (too little history
    or reference) -> ``insufficient``; otherwise ``breach`` when the value is outside a
    checked bound, else ``ok``.
    """
    rule = parse_rule(rule)
    starts, ends, values, rows, complete = _as_series(series)
    p = rule.params
    count = len(starts)
    finite = np.isfinite(values)
    enough = rows >= p["min_rows"]
    labelled = complete | (not p["wait_for_labels"])
    usable = finite & enough & labelled
    lower = np.full(count, math.nan)
    upper = np.full(count, math.nan)
    why = [""] * count  # why bounds could not be computed, or how they were
    if rule.type == "learned":
        why = _learned(p, reference, lower, upper, count)
    elif reference is not None:
        raise InvalidParameterError(
            f"rule {rule.type!r} takes no reference values; pass reference=None"
        )
    if rule.type == "fixed":
        if p["direction"] == "above":
            upper[:] = p["value"]
        else:
            lower[:] = p["value"]
        why = [f"fixed {p['direction']} {_num(p['value'])}"] * count
    elif rule.type == "range":
        lower[:], upper[:] = p["low"], p["high"]
        why = [f"range [{_num(p['low'])}, {_num(p['high'])}]"] * count
    elif rule.type == "trailing":
        why = _trailing(p, values, usable, lower, upper)
    elif rule.type == "seasonal":
        why = _seasonal(p, starts, values, usable, lower, upper)
    elif rule.type == "unsupervised":
        why = _unsupervised(p, values, usable, lower, upper)
    if rule.type in ("learned", "trailing", "seasonal", "unsupervised"):
        for i in range(count):
            lower[i], upper[i] = _side_bounds(p["direction"], lower[i], upper[i])
    computable = ~(np.isnan(lower) & np.isnan(upper))
    with np.errstate(invalid="ignore"):
        outside = (values < np.where(np.isnan(lower), -np.inf, lower)) | (
            values > np.where(np.isnan(upper), np.inf, upper)
        )
    breached = finite & computable & outside
    status = np.empty(count, dtype=object)
    reasons = []
    for i in range(count):
        value = values[i]
        if not finite[i]:
            status[i], text = "insufficient", f"no value ({value})"
        elif not enough[i]:
            status[i] = "insufficient"
            text = f"{rows[i]} rows < min_rows={p['min_rows']}"
        elif not labelled[i]:
            status[i] = "pending"
            if not computable[i]:
                text = f"labels incomplete; no bound yet: {why[i]}"
            else:
                verdict = "would breach" if breached[i] else "would be ok"
                text = f"labels incomplete; value {_num(value)} {verdict} ({why[i]})"
        elif not computable[i]:
            status[i], text = "insufficient", why[i]
        elif breached[i]:
            side = "below" if not np.isnan(lower[i]) and value < lower[i] else "above"
            bound = lower[i] if side == "below" else upper[i]
            status[i] = "breach"
            text = f"value {_num(value)} {side} {_num(bound)} ({why[i]})"
        else:
            status[i], text = "ok", f"value {_num(value)} within bounds ({why[i]})"
        reasons.append(text)
    return Verdicts(starts, ends, status, values, rows, lower, upper, breached, reasons)


def _learned(
    p: Mapping[str, Any],
    reference: npt.ArrayLike | None,
    lower: np.ndarray,
    upper: np.ndarray,
    count: int,
) -> list[str]:
    if reference is None:
        raise InvalidParameterError(
            "rule 'learned' needs reference=: the metric's values over the reference "
            "chunks (e.g. the reference split into 10 contiguous chunks)"
        )
    ref = np.asarray(reference, dtype=float).ravel()
    if len(ref) > MAX_REFERENCE:
        raise InvalidParameterError(
            f"reference has {len(ref)} values, above the limit of {MAX_REFERENCE}; use "
            "fewer reference chunks"
        )
    ref = ref[np.isfinite(ref)]
    if len(ref) < 2:
        return [f"reference has {len(ref)} finite values; learned needs at least 2"] * count
    mean, sd = float(ref.mean()), float(ref.std())
    lower[:], upper[:] = mean - p["k"] * sd, mean + p["k"] * sd
    text = f"learned mean {_num(mean)} ± {_num(p['k'])}·sd {_num(sd)} of {len(ref)} chunks"
    return [text] * count


def _trailing(
    p: Mapping[str, Any],
    values: np.ndarray,
    usable: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> list[str]:
    n, k = p["n"], p["k"]
    why = []
    for i in range(len(values)):
        window = values[max(0, i - n) : i][usable[max(0, i - n) : i]]
        if len(window) < 2:
            why.append(f"{len(window)} usable of the previous {n} windows; trailing needs 2")
            continue
        mean, sd = float(window.mean()), float(window.std(ddof=1))
        lower[i], upper[i] = mean - k * sd, mean + k * sd
        why.append(f"trailing mean {_num(mean)} ± {_num(k)}·sd {_num(sd)} of {len(window)} windows")
    return why


def _seasonal(
    p: Mapping[str, Any],
    starts: np.ndarray,
    values: np.ndarray,
    usable: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> list[str]:
    count = len(starts)
    period = np.timedelta64(1 if p["period"] == "daily" else 7, "D").astype("timedelta64[us]")
    if count < 2:
        return ["one window: no season to forecast from"] * count
    steps = np.diff(starts)
    width = steps.min()
    per_season = int(period // width)
    if period % width != np.timedelta64(0, "us") or per_season < 2:
        raise InvalidParameterError(
            f"rule 'seasonal': period {p['period']!r} is not a whole number (at least 2) "
            f"of windows of {width.astype('timedelta64[s]')}; use shorter windows or the "
            "other period"
        )
    earlier = starts - period
    at = np.searchsorted(starts, earlier)
    has = (at < count) & (starts[np.minimum(at, count - 1)] == earlier)
    prev_usable = has & usable[np.minimum(at, count - 1)]
    forecast = np.where(prev_usable, values[np.minimum(at, count - 1)], np.nan)
    residual = np.where(usable & prev_usable, values - forecast, np.nan)
    span = period * p["seasons"]
    first = np.searchsorted(starts, starts - span)
    q_low, q_high = (1 - p["coverage"]) / 2, (1 + p["coverage"]) / 2
    why = []
    for i in range(count):
        if not prev_usable[i]:
            why.append("no usable value one season earlier to forecast from")
            continue
        pool = residual[first[i] : i]
        pool = pool[~np.isnan(pool)]
        if len(pool) < per_season:
            why.append(
                f"{len(pool)} residuals in the previous {p['seasons']} season(s); seasonal "
                f"needs one season ({per_season})"
            )
            continue
        lo, hi = np.quantile(pool, [q_low, q_high])
        lower[i], upper[i] = forecast[i] + lo, forecast[i] + hi
        why.append(
            f"seasonal-naive forecast {_num(forecast[i])}, {_num(p['coverage'])} interval "
            f"from {len(pool)} residuals"
        )
    return why


def _unsupervised(
    p: Mapping[str, Any],
    values: np.ndarray,
    usable: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> list[str]:
    threshold = p["threshold"]
    if p["method"] == "share":
        upper[:] = threshold
        lower[:] = math.nan
        return [f"share of invalid rows above {_num(threshold)}"] * len(values)
    n = p["n"]
    why = []
    for i in range(len(values)):
        window = values[max(0, i - n) : i][usable[max(0, i - n) : i]]
        if len(window) < 3:
            why.append(f"{len(window)} usable of the previous {n} windows; mad needs 3")
            continue
        median = float(np.median(window))
        scale = MAD_SCALE * float(np.median(np.abs(window - median)))
        lower[i], upper[i] = median - threshold * scale, median + threshold * scale
        why.append(
            f"median {_num(median)} ± {_num(threshold)}·1.4826·MAD {_num(scale / MAD_SCALE)} "
            f"of {len(window)} windows"
        )
    return why
