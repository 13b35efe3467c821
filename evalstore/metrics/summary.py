"""Summary-statistics series per window and feature: the Python front-end of ``sql/summary.sql``.

NannyML's summary-statistics calculators (``SummaryStatsAvgCalculator``, ``...Median...``,
``...Std...``, ``...Sum...``, ``SummaryStatsRowCountCalculator``) follow a statistic of a
column chunk by chunk and alert when it leaves a range learned on the reference. evalstore
computes the same series, plus min, max and quantiles, for every feature (and model
output) in one SQL pass (``evalstore.summary_stats``; its comment defines each statistic):

========== =========== ==================================================================
stat       kinds       value in a window (NULL and NaN values are missing)
========== =========== ==================================================================
count      both        rows of the window, NULL and NaN included (NannyML's row count)
mean       numeric     ``numpy.nanmean``
median     numeric     ``numpy.nanmedian``
sd         numeric     sample standard deviation, ddof 1 (``numpy.nanstd(ddof=1)``, pandas
                       ``Series.std`` as NannyML); NULL with fewer than 2 values
min, max   numeric     ``numpy.nanmin``, ``numpy.nanmax``
sum        numeric     ``numpy.nansum`` (0 for a window without values)
q<level>   numeric     ``numpy.nanquantile(values, level)`` (linear), one per ``quantiles``
                       level (stat ``'quantile'``), e.g. ``q0.05``
========== =========== ==================================================================

``+inf``/``-inf`` are values and propagate as in numpy (a mean of +inf is +inf; with
both signs NaN). A statistic without values is NULL with a ``reason``.

**Alert range** (NannyML's default ``StandardDeviationThreshold``): the reference (the
training rows by default) is cut into chunks (``learn_chunks=None``: by the same
``window`` as the analysis, as NannyML fits a calculator on the reference cut by its own
chunker; an int ``n``: each series (feature, version) into ``n`` near-equal chunks in time
order, for a reference logged at one time), the statistic is computed on each chunk, and
``threshold_low, threshold_high = mean ∓ k·sd`` of the chunk values (``k`` = 3; sd the
population sd, ddof 0, as ``numpy.nanstd``; chunks without a value skipped). The low end
of ``count`` and ``sd`` is floored at 0, as NannyML's ``lower_threshold_value_limit``
(NannyML then reports None for it; the alerts are the same). ``alert`` is ``value <
threshold_low or value > threshold_high``; NULL when the value or the range is (fewer
than 2 reference chunks with a value: ``reason`` says so). NannyML alerts on ``not (low <
value < high)``, on a bound too: a statistic constant over the reference chunks (a
discrete feature's median, say) would alert on every window equal to it; evalstore's
closed range does not. Checked against NannyML 0.13 (``chunk_number=5`` on both sides,
``window={"chunks": 5, "split": "nannyml"}``): values and ranges agree to 1e-13.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.bounds import MAX_BINS, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.macros import call
from evalstore.core.time_limits import VALUE_TABLES, check_window_count
from evalstore.core.values import feature_kinds
from evalstore.core.windows import (
    Reference,
    Window,
    check_reference,
    resolve,
    value_views,
)
from evalstore.errors import InvalidParameterError
from evalstore.metrics.quality import TASK_OUTPUTS
from evalstore.metrics.specs import SUMMARY_STATS, chosen_names

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Statistics, in result order (quantiles last, one row per level).
STATS = tuple(SUMMARY_STATS)
#: Quantile levels of the stat ``'quantile'`` by default.
DEFAULT_QUANTILES = (0.05, 0.95)
#: Result columns, in order.
RESULT_COLUMNS = (
    "window_start", "window_end", "feature", "kind", "version", "stat", "variant", "value",
    "threshold_low", "threshold_high", "threshold_source", "alert", "n", "rows",
    "reference_chunks", "reason",
)  # fmt: skip
#: Most chunks ``learn_chunks`` may ask for.
MAX_LEARN_CHUNKS = 1_000


def summary_stats(
    ctx: Context,
    model: str,
    reference: Reference = "training",
    window: Window = "1 day",
    features: Sequence[str] | None = None,
    stats: Sequence[str] | str | None = None,
    version: str | None = None,
    where: str | None = None,
    since: Any = None,
    until: Any = None,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    learn_chunks: int | None = None,
    k: float = 3.0,
) -> pa.Table:
    """Summary statistics of each feature (and score, prediction, label) per window, with
    alert ranges learned on reference chunks (see the module docstring for the definitions).

    ``reference``, ``window``, ``version``, ``where``, ``since`` and ``until`` select rows as
    for :func:`evalstore.metrics.quality.quality` (``reference={'previous': n}`` is
    refused: the range is learned from a fixed reference). ``features``: feature names
    (default: every feature and the task's outputs); categorical ones get ``count`` only.
    ``stats``: names of :data:`STATS` (default: all), ``'quantile'`` meaning one row per
    level of ``quantiles`` (default 0.05 and 0.95). ``learn_chunks``: how the reference is
    cut (None: by ``window``; an int: that many near-equal chunks in time order); ``k``:
    the sd multiplier (3).

    Returns one row per window, feature (and version for model outputs) and statistic:
    ``window_start, window_end, feature, kind, version, stat, variant, value,
    threshold_low, threshold_high, threshold_source, alert, n (values behind value; count:
    the rows), rows, reference_chunks, reason``, in window, feature, version, stat order.

    >>> import evalstore, pyarrow as pa
    >>> store = evalstore.open()
    >>> _ = store.register_model("m", "v1", "binary")
    >>> train = pa.table({"example_id": list("abcdefgh"), "x": [1.0, 2, 3, 4, 5, 6, 7, 8]})
    >>> _ = store.log_features("m", train, env="training")
    >>> _ = store.log_features("m", pa.table({"example_id": ["i", "j"], "x": [10.0, 20.0]}))
    >>> table = store.summary_stats("m", window="100 years", features="x", stats="mean",
    ...                             learn_chunks=2)
    >>> table.select(["stat", "value", "threshold_low", "threshold_high", "alert"]).to_pylist()
    [{'stat': 'mean', 'value': 15.0, 'threshold_low': -1.5, 'threshold_high': 10.5, 'alert': True}]
    >>> store.close()
    """
    chosen_stats = chosen_names(
        stats, STATS, "stats", f"are not summary statistics; choose from {', '.join(STATS)}"
    )
    levels = _check_quantiles(quantiles) if "quantile" in chosen_stats else []
    if learn_chunks is not None:
        learn_chunks = bounded_int(learn_chunks, "learn_chunks", least=2, most=MAX_LEARN_CHUNKS)
    if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k < 0:
        raise InvalidParameterError(f"k={k!r} must be a finite number >= 0 (the sd multiplier)")
    if isinstance(reference, dict) and "previous" in reference:
        raise InvalidParameterError(
            "reference={'previous': n} cannot learn an alert range: pass a fixed reference "
            "('training', 'validation', {'dataset': tag} or a (start, end) range of serving rows)"
        )
    con = ctx.connection
    with ctx.lock, transaction(con), Cleanup() as later:  # one snapshot
        registration = ctx.registration(model, version)
        kinds = feature_kinds(con, model)
        available = [*kinds, *TASK_OUTPUTS[registration["task"]]]
        chosen = chosen_names(
            features, available, "features",
            f"not among the features and outputs of this model; known: "
            f"{', '.join(available) or '(none)'}",
        )  # fmt: skip
        selection = resolve(con, reference, window, registration if version else None, since, until)
        check_reference(con, model, reference, selection)
        check_window_count(con, model, VALUE_TABLES, selection, max_windows=ctx.limits.max_windows)
        views = value_views(con, model, where, version, list(kinds), later)
        args = [*views, *selection.args()[:-1], learn_chunks, chosen_stats, levels, float(k)]
        args.append(chosen)
        marks = ", ".join("?" for _ in range(len(args) - 1))
        return call(
            con,
            f"SELECT {', '.join(RESULT_COLUMNS)} FROM evalstore.summary_stats({marks}) "
            "WHERE list_contains(?, feature) "
            "ORDER BY window_index, window_start, feature, version NULLS FIRST, position",
            args,
        )


def _check_quantiles(quantiles: Any) -> list[float]:
    values = (
        list(quantiles)
        if isinstance(quantiles, Sequence) and not isinstance(quantiles, str)
        else []
    )
    ok = 0 < len(values) <= MAX_BINS and all(
        isinstance(q, int | float) and not isinstance(q, bool) and 0 <= q <= 1 for q in values
    )
    if not ok:
        raise InvalidParameterError(
            f"quantiles={quantiles!r} must be a non-empty list of levels in [0, 1] (at most "
            f"{MAX_BINS}), e.g. [0.05, 0.95]"
        )
    return sorted({float(q) for q in values})
