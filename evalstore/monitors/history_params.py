"""What a persisted metric call is: its normalised parameters, their hash, and its plan.

:func:`normalise` fills a family call's defaults and turns its arguments into canonical
JSON values (times as UTC ISO text, keyword order irrelevant); :func:`params_hash` keys
the call in the metric history. :func:`plan` reads the arguments once more to decide how
the call's windows are refreshed (:class:`Plan`: window width, whether windows are
coupled, what windows read besides their own rows, the reference rows); the
rules are in :mod:`evalstore.monitors.history`'s docstring.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.registry import to_timestamp
from evalstore.core.windows import Selection, checked_window_args, reference_args, resolve
from evalstore.errors import InvalidParameterError
from evalstore.metrics import performance as _performance
from evalstore.metrics import quality as _quality
from evalstore.metrics.bootstrap import BOOTSTRAP_METRICS
from evalstore.metrics.drift import univariate as _drift
from evalstore.metrics.specs import chosen_names
from evalstore.monitors.fingerprints import Reads

#: The persisted families and the functions that compute them.
FAMILIES: dict[str, Callable[..., pa.Table]] = {
    "drift": _drift.drift,
    "quality": _quality.quality,
    "performance": _performance.performance,
}
#: Parameters that are times (normalised to UTC ISO text before hashing).
TIME_PARAMETERS = ("since", "until", "as_of")

# ---------------------------------------------------------------------- parameters


def normalise(family: str, model: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The call's parameters with defaults filled, as canonical JSON values.

    Times (``since``, ``until``, ``as_of``, the ends of a ``(start, end)`` reference)
    become UTC ISO text, tuples lists, mappings key-sorted dicts; a value that has no
    JSON form raises :class:`InvalidParameterError` (nothing is computed or stored).
    """
    compute = family_function(family)
    try:
        bound = inspect.signature(compute).bind(None, model, **arguments)
    except TypeError as error:
        raise InvalidParameterError(
            f"{family}(persist=True): {error}; pass the parameters {family}() takes"
        ) from None
    bound.apply_defaults()
    params = {k: v for k, v in bound.arguments.items() if k not in ("ctx", "model")}
    out = {}
    for name, value in params.items():
        if name in TIME_PARAMETERS:
            stamp = to_timestamp(value, name)
            out[name] = None if stamp is None else stamp.isoformat()
        elif name == "reference" and isinstance(value, tuple | list) and len(value) == 2:
            ends = [
                to_timestamp(v, f"reference {e}")
                for v, e in zip(value, ("start", "end"), strict=True)
            ]
            out[name] = {"range": [None if t is None else t.isoformat() for t in ends]}
        else:
            out[name] = _canonical(name, value)
    return out


def _canonical(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, datetime | date):
        stamp = to_timestamp(value, name)
        return {"time": stamp.isoformat() if stamp else None}
    if isinstance(value, Mapping):
        items = [(json.dumps(_canonical(name, k)), _canonical(name, v)) for k, v in value.items()]
        return {"map": sorted(items, key=lambda kv: kv[0])}
    if isinstance(value, tuple | list):
        return [_canonical(name, v) for v in value]
    raise InvalidParameterError(
        f"persist=True cannot record {name}={value!r} ({type(value).__name__}): pass "
        "numbers, text, times, lists or dicts of them"
    )


def params_hash(family: str, model: str, params: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 32 characters) of the family, model and normalised parameters."""
    text = json.dumps({"family": family, "model": model, "params": params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def family_function(family: str) -> Callable[..., pa.Table]:
    if family not in FAMILIES:
        raise InvalidParameterError(
            f"family={family!r} cannot be persisted; choose from {', '.join(FAMILIES)}"
        )
    return FAMILIES[family]


# ---------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """How a call's windows are refreshed (see the module docstring)."""

    width: str | None
    coupled: bool
    since: datetime | None
    until: datetime | None
    reads: Reads
    fill: bool
    #: the reference rows the call reads (its fingerprint is part of the context)
    selection: Selection


def plan(
    con: duckdb.DuckDBPyConnection,
    family: str,
    model: str,
    arguments: Mapping[str, Any],
    registration: Mapping[str, Any],
) -> Plan:
    args = dict(inspect.signature(family_function(family)).bind(None, model, **arguments).arguments)
    get = args.get
    window = get("window", "1 day")
    windows = checked_window_args(con, window)
    width = windows.get("width")
    since, until = to_timestamp(get("since"), "since"), to_timestamp(get("until"), "until")
    where, version = get("where"), get("version")
    reference = get("reference", "training")
    pinned = registration if version else None
    if family == "performance":
        by = get("by")
        task = registration["task"]
        available = _performance.TASK_METRICS[task]
        problem = f"not available for a {task} model; choose from {', '.join(available)}"
        chosen = chosen_names(get("metrics"), available, "metrics", problem)
        bootstrap = bool(set(chosen) & set(BOOTSTRAP_METRICS)) and get("n_boot", 200) != 0
        # the reference matters only for the bin edges of numeric ``by`` keys; without
        # ``by`` it is not read at all (its fingerprint would otherwise cover every row
        # of the model and turn each new batch into a whole recomputation)
        if by is None:
            selection = Selection(previous=1)
        else:
            ref = reference_args(reference, pinned)
            selection = Selection(**ref) if "previous" not in ref else Selection(previous=1)
        coupled = by is not None or bootstrap
        reads = Reads(False, False, where is not None or by is not None)
        fill = False
    else:
        selection = resolve(con, reference, window, pinned, since, until)
        # quality lists in a window without rows each feature and output its whole
        # analysis has (rows = 0): calls with such a gap are recomputed whole (``fill``)
        coupled = bool(selection.previous)
        reads = Reads(True, version is not None, where is not None)
        fill = family == "quality"
    return Plan(
        width=width,
        coupled=coupled or width is None,
        since=since,
        until=until,
        reads=reads,
        fill=fill,
        selection=selection,
    )
