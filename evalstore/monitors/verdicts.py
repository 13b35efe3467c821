"""Verdicts: a rule (:mod:`evalstore.monitors.rules`) applied to a metric series.

:func:`evaluate` takes a :class:`Series` (window starts, values, rows per window, label
completeness) and returns :class:`Verdicts`, one per window, with the bounds each rule
type computes (``fixed``, ``range``, ``learned``, ``trailing``, ``seasonal``,
``unsupervised``; definitions in the rules module and docs/monitoring.md). Pure numpy over
one series (no store access), so backtests and property tests reuse it; the series length
is bounded (:data:`evalstore.monitors.rules.MAX_WINDOWS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from evalstore.errors import InvalidParameterError
from evalstore.monitors.rules import (
    MAD_SCALE,
    MAX_REFERENCE,
    MAX_WINDOWS,
    Rule,
    fmt,
    parse_rule,
)


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
        why = [f"fixed {p['direction']} {fmt(p['value'])}"] * count
    elif rule.type == "range":
        lower[:], upper[:] = p["low"], p["high"]
        why = [f"range [{fmt(p['low'])}, {fmt(p['high'])}]"] * count
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
                text = f"labels incomplete; value {fmt(value)} {verdict} ({why[i]})"
        elif not computable[i]:
            status[i], text = "insufficient", why[i]
        elif breached[i]:
            side = "below" if not np.isnan(lower[i]) and value < lower[i] else "above"
            bound = lower[i] if side == "below" else upper[i]
            status[i] = "breach"
            text = f"value {fmt(value)} {side} {fmt(bound)} ({why[i]})"
        else:
            status[i], text = "ok", f"value {fmt(value)} within bounds ({why[i]})"
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
    text = f"learned mean {fmt(mean)} ± {fmt(p['k'])}·sd {fmt(sd)} of {len(ref)} chunks"
    return [text] * count


def _previous(
    values: np.ndarray, usable: np.ndarray, n: int, need: int, rule: str, why: list[str]
) -> Iterator[tuple[int, np.ndarray]]:
    """For each window ``i`` in order, the usable values of the ``n`` windows before it:
    yields ``(i, those values)`` when there are at least ``need`` of them; otherwise
    appends to ``why`` the reason window ``i`` gets no band (the caller appends its own
    reason after each yield, so ``why`` keeps one entry per window, in order)."""
    for i in range(len(values)):
        window = values[max(0, i - n) : i][usable[max(0, i - n) : i]]
        if len(window) < need:
            why.append(f"{len(window)} usable of the previous {n} windows; {rule} needs {need}")
            continue
        yield i, window


def _trailing(
    p: Mapping[str, Any],
    values: np.ndarray,
    usable: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> list[str]:
    k = p["k"]
    why: list[str] = []
    for i, window in _previous(values, usable, p["n"], 2, "trailing", why):
        mean, sd = float(window.mean()), float(window.std(ddof=1))
        lower[i], upper[i] = mean - k * sd, mean + k * sd
        why.append(f"trailing mean {fmt(mean)} ± {fmt(k)}·sd {fmt(sd)} of {len(window)} windows")
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
            f"seasonal-naive forecast {fmt(forecast[i])}, {fmt(p['coverage'])} interval "
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
        return [f"share of invalid rows above {fmt(threshold)}"] * len(values)
    why: list[str] = []
    for i, window in _previous(values, usable, p["n"], 3, "mad", why):
        median = float(np.median(window))
        scale = MAD_SCALE * float(np.median(np.abs(window - median)))
        lower[i], upper[i] = median - threshold * scale, median + threshold * scale
        why.append(
            f"median {fmt(median)} ± {fmt(threshold)}·1.4826·MAD {fmt(scale / MAD_SCALE)} "
            f"of {len(window)} windows"
        )
    return why
