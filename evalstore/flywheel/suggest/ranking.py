"""One ranking per strategy name: whether a model can use a strategy
(:func:`_check_available`) and its best candidates (:func:`_ranked`), shared by a single
strategy's call and by ``mix``."""

from __future__ import annotations

from evalstore.errors import InvalidParameterError
from evalstore.flywheel.suggest.committee import _top_committee, _version_count
from evalstore.flywheel.suggest.context import UNCERTAINTY, _Context
from evalstore.flywheel.suggest.diversity import _k_center
from evalstore.flywheel.suggest.novelty import _top_novelty
from evalstore.flywheel.suggest.random_sample import _top_random
from evalstore.flywheel.suggest.slices import _top_slices
from evalstore.flywheel.suggest.uncertainty import _top_uncertain


def _check_available(ctx: _Context, strategy: str) -> None:
    if strategy in UNCERTAINTY and ctx.task == "regression":
        raise InvalidParameterError(
            f"strategy={strategy!r} needs class probabilities; {ctx.model!r} is a regression "
            "model: use 'committee', 'novelty', 'slices', 'diversity', 'random' or 'mix'"
        )
    if strategy == "novelty" and not ctx.kinds:
        raise InvalidParameterError(
            f"strategy='novelty' needs feature columns; {ctx.model!r} has none logged"
        )
    if strategy == "committee" and (versions := _version_count(ctx)) < 2:
        raise InvalidParameterError(
            f"strategy='committee' needs predictions of at least two versions of "
            f"{ctx.model!r} (it has {versions}); log a challenger's predictions or use "
            "another strategy"
        )


def _ranked(ctx: _Context, strategy: str, n: int, exclude: set[str]) -> list[tuple[str, float]]:
    """Up to ``n`` candidates not in ``exclude``, best first, as (example_id, priority)."""
    fetch = n + len(exclude)
    if strategy in UNCERTAINTY:
        rows = _top_uncertain(ctx, strategy, fetch)
    elif strategy == "random":
        rows = _top_random(ctx, fetch)
    elif strategy == "committee":
        rows = _top_committee(ctx, fetch)
    elif strategy == "novelty":
        rows = _top_novelty(ctx, fetch)
    elif strategy == "slices":
        rows = _top_slices(ctx, fetch)
    elif strategy == "diversity":
        rows = _k_center(ctx, n, exclude)
    else:  # pragma: no cover - checked by the caller
        raise InvalidParameterError(f"unknown strategy {strategy!r}")
    out = [(eid, pr) for eid, pr in rows if eid not in exclude]
    return out[:n]
