"""Named, reproducible training-data selections: ``evalstore.snapshots``.

A snapshot records a selection's definition with its ``as_of_batch`` pinned (the last
batch committed when it was taken, or the last one at or before the ``as_of`` it was
given), the as-of time, the row count and a content hash. Loading it re-runs the pinned
definition: rows and labels committed later (new examples, label corrections, new
prediction versions' rows) are left out by batch id, so the same rows and labels come
back. The hash is checked on load: the one way the store can lose a snapshot's rows is
a later ``on_conflict='replace'`` feature batch (which deletes the replaced rows), and
then loading raises :class:`SnapshotError` instead of returning different data.

Content hash: ``'<rows>:<hex>'`` where hex is the bit_xor over the rows of
``evalstore.row_digest`` (MD5 of each row's text form, feature columns as listed in the
definition, then the outcome columns): independent of row order, sensitive to any value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.errors import InvalidParameterError, SnapshotError
from evalstore.flywheel.training_data import TrainingSelection, quiet, selection_of, to_sql
from evalstore.flywheel.training_data import select as run_selection

if TYPE_CHECKING:
    from evalstore.core.context import Context


def content_hash(ctx: Context, selection: TrainingSelection) -> tuple[int, str]:
    """``(rows, hash)`` of a selection's rows (see the module docstring)."""
    sql, params = to_sql(selection)
    con = ctx.connection
    with quiet(con):
        rows, digest = con.execute(
            f"SELECT count(*), coalesce(bit_xor(evalstore.row_digest(t)), 0) FROM ({sql}) AS t",
            params,
        ).fetchall()[0]
    return int(rows), f"{int(rows)}:{int(digest):032x}"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(f"snapshot name {name!r} must be a non-empty string")


def create(ctx: Context, name: str, selection: Any, replace: bool = False) -> dict[str, Any]:
    """Record snapshot ``name`` of ``selection`` (pinned to the last committed batch)."""
    _check_name(name)
    ctx.check_writable()
    with ctx.lock:
        chosen = selection_of(ctx, selection)
        if chosen.as_of_batch is None:
            chosen = selection_of(
                ctx,
                {
                    "model": chosen.model,
                    "where": chosen.where,
                    "env": chosen.env,
                    "since": chosen.since,
                    "until": chosen.until,
                    "labeled_only": chosen.labeled_only,
                    "version": chosen.version,
                    "columns": chosen.columns,
                    "pin": True,
                },
            )
        existing = ctx.connection.execute(
            "SELECT count(*) FROM evalstore.snapshots WHERE name = ?", [name]
        ).fetchall()[0][0]
        if existing and not replace:
            raise InvalidParameterError(
                f"snapshot {name!r} exists; pick another name, delete it, or pass replace=True"
            )
        rows, digest = content_hash(ctx, chosen)
        now = datetime.now(UTC)
        as_of = datetime.fromisoformat(chosen.as_of) if chosen.as_of else now
        with transaction(ctx.connection):
            ctx.connection.execute("DELETE FROM evalstore.snapshots WHERE name = ?", [name])
            ctx.connection.execute(
                "INSERT INTO evalstore.snapshots VALUES (?, ?, ?, ?, ?, ?, ?)",
                [name, chosen.model, chosen.to_json(), as_of, now, rows, digest],
            )
        return info(ctx, name)


def info(ctx: Context, name: str) -> dict[str, Any]:
    """The snapshot's row of ``evalstore.snapshots`` as a dict (definition parsed)."""
    _check_name(name)
    rows = ctx.sql("SELECT * FROM evalstore.snapshots WHERE name = ?", [name]).to_pylist()
    if not rows:
        known = ctx.sql("SELECT name FROM evalstore.snapshots ORDER BY name").column(0)
        raise SnapshotError(
            f"no snapshot named {name!r}; known snapshots: "
            + (", ".join(known.to_pylist()) or "none (create one with store.snapshot)")
        )
    row = rows[0]
    row["definition"] = TrainingSelection.from_json(row["definition"])
    return row


def load(ctx: Context, name: str, stream: bool = False, verify: bool = True) -> Any:
    """The snapshot's rows, exactly as when it was taken (Arrow table or reader)."""
    with ctx.lock:
        row = info(ctx, name)
        selection: TrainingSelection = row["definition"]
        if verify:
            rows, digest = content_hash(ctx, selection)
            if digest != row["content_hash"]:
                raise SnapshotError(
                    f"snapshot {name!r} cannot be reproduced: it had {row['row_count']} rows "
                    f"(hash {row['content_hash']}), the store now gives {rows} (hash {digest}). "
                    "Feature rows it read were replaced or deleted since (on_conflict='replace'"
                    " deletes the old rows); export snapshots you must keep to Parquet"
                )
        return run_selection(ctx, selection, stream=stream)


def listing(ctx: Context, model: str | None = None) -> pa.Table:
    """Every snapshot (optionally of one model), newest first."""
    return ctx.sql(
        "SELECT name, model, as_of, created_at, row_count, content_hash, definition "
        "FROM evalstore.snapshots WHERE ? IS NULL OR model = ? ORDER BY created_at DESC, name",
        [model, model],
    )


def delete(ctx: Context, name: str) -> bool:
    """Delete snapshot ``name``'s record (the data it selected is untouched)."""
    _check_name(name)
    ctx.check_writable()
    with ctx.lock:
        rows = ctx.connection.execute(
            "DELETE FROM evalstore.snapshots WHERE name = ? RETURNING name", [name]
        ).fetchall()
    if not rows:
        raise SnapshotError(f"no snapshot named {name!r} to delete")
    return True
