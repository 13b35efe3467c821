"""Drift thresholds learned from the reference (``thresholds={method: 'learned'}``).

The reference is cut into ``learn_chunks`` chunks in time order (:func:`learning_selection`:
``chunks`` in the macros, with ``previous = -1``: each chunk compared with all the other
chunks); the alert range of a (method, feature) is the mean ± ``learn_k`` population
standard deviations (ddof 0) of the statistic over those chunks (:data:`SUMMARY_SQL`,
:func:`limits`), NannyML's rule for its univariate drift thresholds. A pair with fewer
than two chunk values gets no learned range. The store (:mod:`.univariate`) and the Spark
engine (:mod:`evalstore.engines.spark`) compute the chunks' statistics each their own way
and share these steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evalstore.core.bounds import MAX_LEARN_CHUNKS, bounded_int
from evalstore.core.windows import Selection
from evalstore.errors import InvalidParameterError

#: The per-(method, feature) mean, population sd and count of the chunks' values, over
#: a relation of statistics rows (``{rows}``: a subquery or a registered name).
SUMMARY_SQL = (
    "SELECT method, feature, avg(value) AS mean, stddev_pop(value) AS sd, "
    "count(value) AS n FROM ({rows}) GROUP BY method, feature"
)


def learning_selection(selection: Selection, learn_chunks: int) -> Selection:
    """The selection whose analysis windows are ``learn_chunks`` chunks of ``selection``'s
    reference, each compared with the others (``previous = -1``). Raises
    :class:`InvalidParameterError` for a rolling reference or an out-of-range count."""
    if selection.previous:
        raise InvalidParameterError(
            "learned thresholds need a fixed reference, not {'previous': n}"
        )
    learn_chunks = bounded_int(learn_chunks, "learn_chunks", least=2, most=MAX_LEARN_CHUNKS)
    return Selection(
        ana_env=selection.ref_env,
        ana_dataset=selection.ref_dataset,
        ana_start=selection.ref_start,
        ana_end=selection.ref_end,
        chunks=learn_chunks,
        previous=-1,
    )


def limits(
    summary: Iterable[Mapping[str, Any]], learn_chunks: int, learn_k: float
) -> dict[tuple[str, str], tuple[float, float, str]]:
    """``{(method, feature): (low, high, how)}`` from the rows of :data:`SUMMARY_SQL`:
    ``mean ∓ learn_k * sd``, for pairs with at least two chunk values."""
    how = f"learned: mean ± {learn_k} sd over {learn_chunks} reference chunks"
    return {
        (row["method"], row["feature"]): (
            row["mean"] - learn_k * row["sd"],
            row["mean"] + learn_k * row["sd"],
            how,
        )
        for row in summary
        if row["n"] >= 2
    }
