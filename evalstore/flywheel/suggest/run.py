"""``suggest``: check the arguments, rank in one transaction (one snapshot), redo the picks
when one turns out not to be a candidate, describe and record them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.bounds import MAX_SUGGEST_K, MAX_SUGGEST_POOL, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name
from evalstore.core.label_requests import expire_requests
from evalstore.core.layout import schema_prefix
from evalstore.core.registry import to_timestamp
from evalstore.errors import InvalidParameterError, ReadOnlyError
from evalstore.flywheel.suggest.candidates import _confirmed
from evalstore.flywheel.suggest.context import STRATEGIES, _Context
from evalstore.flywheel.suggest.mix import _mix, _weights
from evalstore.flywheel.suggest.ranking import _check_available, _ranked
from evalstore.flywheel.suggest.record import _record
from evalstore.flywheel.suggest.result import _describe

if TYPE_CHECKING:
    from evalstore.core.context import Context


def suggest(
    context: Context,
    model: str,
    k: int = 100,
    strategy: str = "mix",
    version: str | None = None,
    since: Any = None,
    until: Any = None,
    window: str | None = None,
    where: str | None = None,
    seed: int = 0,
    *,
    weights: Mapping[str, float] | None = None,
    reference: Any = "training",
    by: str | Sequence[str] | None = None,
    prior: float = 10.0,
    pool: int | None = None,
    record: bool = True,
    expires_in: str | None = "14 days",
) -> pa.Table:
    """Suggest ``k`` unlabeled examples of ``model`` to label, best first.

    See the module docstring for the strategies. ``weights`` (``mix`` only) maps
    strategy names to weights; ``reference`` (``novelty``) is as in :meth:`Store.drift`;
    ``by`` (``slices``) names the categorical feature(s) that define slices (several:
    their combinations); ``prior`` is the pseudo-count shrinking a slice's error rate
    towards the overall one; ``pool`` bounds the candidates of ``diversity`` (default
    ``max(10 k, 5000)``, at most 50000; in ``mix`` 10 x diversity's share, at least
    2000). With ``record=True`` (the default) each
    suggestion becomes an open request in ``evalstore.label_requests`` that expires after
    ``expires_in`` (an interval; ``None``: never), and is not suggested again while open.

    Returns an Arrow table with columns :data:`RESULT_COLUMNS`: ``rank``, ``example_id``,
    ``version``, ``strategy``, ``picked_by`` (the strategy that chose the row; differs
    from ``strategy`` for ``mix``), ``priority`` (the ranking key), ``reason``, the scores
    ``least_confidence``, ``margin``, ``entropy``, ``committee``, ``novelty``,
    ``slice_need``, ``diversity`` (NULL where not applicable), the prediction and score,
    the ``slice`` and the ``request_id``. Fewer than ``k`` rows when fewer candidates exist;
    no rows (not an error) when there are none.
    """
    check_model_name(model)
    if strategy not in STRATEGIES:
        raise InvalidParameterError(f"strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")
    k = bounded_int(
        k, "k", most=MAX_SUGGEST_K, hint="label these first, then ask for more suggestions"
    )
    if record and context.read_only:
        raise ReadOnlyError(
            f"{context.name} is read-only; pass record=False to suggest without recording requests"
        )
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidParameterError(f"seed={seed!r} must be an integer")
    if prior < 0 or not math.isfinite(prior):
        raise InvalidParameterError(f"prior={prior!r} must be a non-negative number")
    pool_given = pool is not None
    if pool is None:
        pool = min(max(10 * k, 5000), 50_000)
    pool = bounded_int(
        pool, "pool", most=MAX_SUGGEST_POOL, hint="narrow the candidates with where= or since="
    )
    since_ts = to_timestamp(since, "since")
    until_ts = to_timestamp(until, "until")
    if window is not None and since is not None:
        raise InvalidParameterError("pass either window= or since=, not both")
    with context.lock:
        if record:  # its own short write, before the long read below
            expire_requests(context, model)
        # one transaction: every statement of the ranking sees one snapshot
        with transaction(context.connection), Cleanup() as later:
            if window is not None:
                since_ts = _window_start(context, model, window, until_ts)
            ctx = _Context(
                context,
                model,
                version,
                seed=seed,
                since=since_ts,
                until=until_ts,
                where=where,
                reference=reference,
                by=by,
                prior=float(prior),
                pool=int(pool),
                pool_given=pool_given,
            )
            later.add(ctx.close)
            if strategy == "mix":
                chosen = _weights(ctx, weights)
            else:
                _check_available(ctx, strategy)
            while True:
                if strategy == "mix":
                    picks = _mix(ctx, k, chosen)
                else:
                    picks = [(eid, pr, strategy) for eid, pr in _ranked(ctx, strategy, k, set())]
                if _confirmed(ctx, [eid for eid, _, _ in picks]):
                    break
            table = _describe(ctx, strategy, picks)
            if record and table.num_rows:
                table = _record(ctx, table, expires_in)
            return table


def _window_start(context: Context, model: str, window: str, until: datetime | None) -> datetime:
    try:
        rows = context.connection.execute(
            # a time beyond Python's datetime (a store written before the time range was
            # enforced) reads NULL here and is refused below, not an OverflowError
            "SELECT CASE WHEN s BETWEEN TIMESTAMPTZ '0002-01-01' AND TIMESTAMPTZ "
            "'9998-12-31' THEN s END, s IS NOT NULL FROM (SELECT max(ts) - CAST(? AS "
            f"INTERVAL) AS s FROM {schema_prefix(context.connection, model)}predictions "
            "WHERE ? IS NULL OR ts < ?)",
            [window, until, until],
        ).fetchall()
    except duckdb.Error as error:
        raise InvalidParameterError(
            f"window={window!r} is not an interval: use e.g. '1 day' or '7 days'"
        ) from error
    start, any_rows = rows[0]
    if start is None and any_rows:
        raise InvalidParameterError(
            f"window={window!r} starts outside the times Python can represent (the latest "
            f"prediction time of {model!r} is far off); pass since=/until= instead"
        )
    return start if start is not None else datetime(1970, 1, 1, tzinfo=UTC)
