"""Label requests: the rows of ``evalstore.label_requests`` and their life cycle.

``store.suggest`` (the flywheel) records a request per suggested example; this module,
owned by core because core owns the table and the label ingest, lists, cancels, expires
and fulfils them. A request is ``open`` until a label for its example arrives (the label
ingest calls :func:`fulfil_requests` inside the batch's transaction, so a request is
fulfilled exactly when its label is committed), it ``expires`` (``expires_at`` reached,
:func:`expire_requests`) or is ``cancelled`` (:func:`cancel_requests`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.identifiers import check_model_name
from evalstore.core.registry import to_timestamp
from evalstore.errors import InvalidParameterError

if TYPE_CHECKING:
    import duckdb

    from evalstore.core.context import Context

#: The states of a request, in the order of its life cycle.
REQUEST_STATUSES = ("open", "fulfilled", "expired", "cancelled")


def label_requests(
    ctx: Context,
    model: str | None = None,
    status: str | Sequence[str] | None = None,
    strategy: str | None = None,
    example_ids: Sequence[str] | None = None,
) -> pa.Table:
    """Rows of ``evalstore.label_requests`` (newest first), optionally filtered.

    Overdue open requests are marked ``expired`` first (when the store is writable).
    """
    statuses = _statuses(status)
    with ctx.lock:
        if not ctx.read_only:
            expire_requests(ctx, model)
        return ctx.sql(
            "SELECT * FROM evalstore.label_requests WHERE ($model IS NULL OR model = $model) "
            "AND ($all_status OR list_contains($statuses, status)) "
            "AND ($strategy IS NULL OR strategy = $strategy) "
            "AND ($all_ids OR list_contains($ids, example_id)) "
            "ORDER BY requested_at DESC, request_id DESC",
            {
                "model": model,
                "all_status": statuses is None,
                "statuses": statuses or [],
                "strategy": strategy,
                "all_ids": example_ids is None,
                "ids": [str(e) for e in example_ids or []],
            },
        )


def _statuses(status: str | Sequence[str] | None) -> list[str] | None:
    """``status`` as a list of known statuses (None for all); unknown ones are refused."""
    if status is None:
        return None
    values = [status] if isinstance(status, str) else list(status)
    for value in values:
        if value not in REQUEST_STATUSES:
            raise InvalidParameterError(
                f"status={value!r} is not one of {', '.join(REQUEST_STATUSES)}"
            )
    return values


def cancel_requests(
    ctx: Context,
    model: str,
    example_ids: Sequence[str] | None = None,
    request_ids: Sequence[int] | None = None,
    strategy: str | None = None,
) -> int:
    """Cancel open requests of ``model`` (all, or those matching ids/strategy); return how many."""
    check_model_name(model)
    ctx.check_writable()
    with ctx.lock:
        rows = ctx.connection.execute(
            "UPDATE evalstore.label_requests SET status = 'cancelled' "
            "WHERE model = $model AND status = 'open' "
            "AND ($all_ids OR list_contains($ids, example_id)) "
            "AND ($all_requests OR list_contains($requests, request_id)) "
            "AND ($strategy IS NULL OR strategy = $strategy) RETURNING request_id",
            {
                "model": model,
                "all_ids": example_ids is None,
                "ids": [str(e) for e in example_ids or []],
                "all_requests": request_ids is None,
                "requests": [int(r) for r in request_ids or []],
                "strategy": strategy,
            },
        ).fetchall()
    return len(rows)


def expire_requests(ctx: Context, model: str | None = None, now: Any = None) -> int:
    """Mark open requests whose ``expires_at`` is at or before ``now`` as expired."""
    ctx.check_writable()
    at = to_timestamp(now, "now") or datetime.now(UTC)
    with ctx.lock:
        rows = ctx.connection.execute(
            "UPDATE evalstore.label_requests SET status = 'expired' "
            "WHERE ($model IS NULL OR model = $model) AND status = 'open' "
            "AND expires_at IS NOT NULL AND expires_at <= $now RETURNING request_id",
            {"model": model, "now": at},
        ).fetchall()
    return len(rows)


def fulfil_requests(
    con: duckdb.DuckDBPyConnection, model: str, table: str, batch_id: int, at: datetime
) -> int:
    """Mark the open (or expired) requests of the examples in a label batch fulfilled.

    Called by the label ingest inside the batch's transaction, so a request is fulfilled
    exactly when its label is committed.
    """
    rows = con.execute(
        "UPDATE evalstore.label_requests SET status = 'fulfilled', fulfilled_at = $at, "
        "label_batch_id = $batch_id WHERE model = $model AND status IN ('open', 'expired') "
        f"AND example_id IN (SELECT example_id FROM {table} WHERE batch_id = $batch_id) "
        "RETURNING request_id",
        {"model": model, "at": at, "batch_id": batch_id},
    ).fetchall()
    return len(rows)
