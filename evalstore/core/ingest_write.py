"""Executing a planned ingest batch in one transaction, and the :class:`Receipt` it returns.

A batch (planned by :mod:`evalstore.core.ingest`) is written in one transaction: new
feature columns are added, the rows are inserted straight from the Arrow stream (DuckDB
scans it in parallel, with no Python per row), and then validated inside the same
transaction by the plan's checks. Any violation, and any failure midway, rolls the whole
transaction back, so a rejected batch leaves the store exactly as it was. On success the
conflicts are resolved (``on_conflict``), superseded labels are marked, and the batch is
recorded in ``evalstore.batches``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.db import one, transaction, used_params
from evalstore.core.identifiers import quote
from evalstore.core.ingest import Plan
from evalstore.core.layout import model_relation
from evalstore.core.values import refresh_value_views
from evalstore.errors import ValidationError

_incoming_names = count()


@dataclass(frozen=True)
class Receipt:
    """What an accepted batch did to the store.

    ``rows`` is the number of rows written; ``columns_added`` the feature columns the
    batch created; ``columns_ignored`` incoming columns that were not stored (a new
    column with no values and hence no type, or a column a predictions/labels batch
    does not use); ``replaced``/``skipped`` count rows handled by ``on_conflict``.
    ``warnings`` says what was accepted but is probably not what was meant (labels
    without a time, which get the time of ingest).
    """

    batch_id: int
    model: str
    kind: str
    rows: int
    columns_added: tuple[str, ...] = ()
    columns_ignored: tuple[str, ...] = ()
    replaced: int = 0
    skipped: int = 0
    warnings: tuple[str, ...] = ()


def execute(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    reader: pa.RecordBatchReader,
    *,
    source: str,
) -> Receipt:
    """Write one planned batch in a transaction; roll everything back on any failure."""
    table = model_relation(con, plan.model, plan.table)
    received_at = datetime.now(UTC)
    incoming = f"__evalstore_incoming_{next(_incoming_names)}"
    con.register(incoming, reader)
    try:
        with transaction(con):
            batch_id = one(con, "SELECT nextval('evalstore.batch_ids')")[0]
            params = {**plan.params, "batch_id": batch_id, "received_at": received_at}
            for name, kind in plan.add_columns:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {quote(name)} {kind}")
            if plan.add_columns:
                refresh_value_views(con, plan.model)
            insert = (
                f"INSERT INTO {table} ({', '.join(map(quote, plan.columns))}) "
                f"SELECT {', '.join(plan.expressions)} FROM {quote(incoming)}"
            )
            try:
                con.execute(insert, used_params(insert, params))
            except duckdb.ConversionException as error:
                raise ValidationError(f"a value could not be converted: {error}") from error
            for check in plan.checks:
                sql = check.sql.format(table=table)
                n, examples = one(con, sql, used_params(sql, params))
                if n:
                    raise check.error(
                        check.message.format(n=n, examples=examples),
                        column=check.column,
                        rows=n,
                        examples=examples,
                    )
            replaced, skipped = _resolve_conflicts(con, plan, table, params)
            if plan.kind == "labels":
                _supersede_labels(con, table, batch_id)
                # open label requests of these examples are fulfilled
                from evalstore.core.label_requests import fulfil_requests

                fulfil_requests(con, plan.model, table, batch_id, datetime.now(UTC))
            rows = one(
                con,
                f"SELECT count(*) FROM {table} WHERE batch_id = $batch_id",
                {"batch_id": batch_id},
            )[0]
            con.execute(
                "INSERT INTO evalstore.batches VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                [
                    batch_id,
                    plan.model,
                    plan.kind,
                    plan.env,
                    plan.version,
                    plan.dataset,
                    rows,
                    [name for name, _ in plan.add_columns],
                    received_at,
                    datetime.now(UTC),
                    source,
                ],
            )
    finally:
        con.unregister(incoming)
    return Receipt(
        batch_id=batch_id,
        model=plan.model,
        kind=plan.kind,
        rows=rows,
        columns_added=tuple(name for name, _ in plan.add_columns),
        columns_ignored=tuple(plan.ignored),
        replaced=replaced,
        skipped=skipped,
        warnings=tuple(plan.warnings),
    )


def _supersede_labels(con: duckdb.DuckDBPyConnection, table: str, batch_id: int) -> None:
    """Mark the current labels of this batch's examples as superseded by it.

    ``labels_latest`` is then the labels with ``superseded_by IS NULL``, and a label was
    the latest as of batch ``b`` when ``batch_id <= b`` and ``superseded_by`` is NULL or
    later than ``b`` (see ``evalstore.labels_as_of``).
    """
    con.execute(
        f"UPDATE {table} SET superseded_by = $batch_id WHERE superseded_by IS NULL "
        f"AND batch_id < $batch_id AND example_key IN "
        f"(SELECT example_key FROM {table} WHERE batch_id = $batch_id)",
        {"batch_id": batch_id},
    )


def _resolve_conflicts(
    con: duckdb.DuckDBPyConnection, plan: Plan, table: str, params: dict[str, Any]
) -> tuple[int, int]:
    """Apply ``on_conflict='replace'|'ignore'``; return (rows replaced, rows skipped)."""
    if plan.on_conflict == "error":
        return 0, 0
    new = f"SELECT example_key FROM {table} WHERE batch_id = $batch_id"
    old = f"SELECT example_key FROM {table} WHERE env = $env AND batch_id <> $batch_id"
    if plan.on_conflict == "replace":
        sql = (
            f"DELETE FROM {table} WHERE env = $env AND batch_id <> $batch_id "
            f"AND example_key IN ({new})"
        )
        replaced = one(con, sql, used_params(sql, params))[0]
        return replaced, 0
    sql = f"DELETE FROM {table} WHERE batch_id = $batch_id AND example_key IN ({old})"
    skipped = one(con, sql, used_params(sql, params))[0]
    return 0, skipped
