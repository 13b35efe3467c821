"""Recording suggestions as open requests in ``evalstore.label_requests`` (``record=True``),
each expiring after ``expires_in``."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.core.identifiers import quote
from evalstore.errors import InvalidParameterError
from evalstore.flywheel.suggest.context import _Context


def _record(ctx: _Context, table: pa.Table, expires_in: str | None) -> pa.Table:
    now = datetime.now(UTC)
    expires = None
    if expires_in is not None:
        try:
            expires = ctx.con.execute(
                "SELECT CAST(? AS TIMESTAMPTZ) + CAST(? AS INTERVAL)", [now, expires_in]
            ).fetchall()[0][0]
        except duckdb.Error as error:
            raise InvalidParameterError(
                f"expires_in={expires_in!r} is not an interval: use e.g. '14 days' or None"
            ) from error
    rows = ctx.register(table.select(["example_id", "picked_by", "priority", "reason", "rank"]))
    with transaction(ctx.con):
        ids = ctx.con.execute(
            "INSERT INTO evalstore.label_requests (model, example_id, strategy, priority, "
            "reason, requested_at, expires_at, status) "
            f"SELECT ?, example_id, picked_by, priority, reason, ?, ?, 'open' FROM {quote(rows)} "
            "ORDER BY rank RETURNING example_id, request_id",
            [ctx.model, now, expires],
        ).fetchall()
    by_id = dict(ids)
    table = table.set_column(
        table.schema.get_field_index("request_id"),
        "request_id",
        pa.array([by_id.get(e) for e in table.column("example_id").to_pylist()], pa.int64()),
    )
    return table.set_column(
        table.schema.get_field_index("expires_at"),
        "expires_at",
        pa.array([expires] * table.num_rows, pa.timestamp("us", tz="UTC")),
    )
