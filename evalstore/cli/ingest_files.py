"""File ingest for the command line: a progress bar, an early duplicate check, the receipt.

``evalstore ingest`` streams a Parquet, CSV or Arrow IPC file into the store. The
library checks ids only after DuckDB has scanned the whole stream (inside the batch's
transaction), so a file ingested a second time would run the progress bar to the end
before being refused. The command line therefore reads the file's first record batch,
asks the store whether those ids are already stored in the batch's scope (the env for
features, the version for predictions), and refuses at once when they are: with
``on_conflict='error'`` the library would reject that batch anyway, so the answer is
the same, only sooner. Nothing needs hashing the file (which would itself read it all).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from evalstore.core import sources
from evalstore.core.identifiers import quote
from evalstore.core.layout import example_key_sql
from evalstore.errors import DuplicateIdError, InvalidParameterError

if TYPE_CHECKING:
    from evalstore.core.ingest_write import Receipt
    from evalstore.store import Store

#: Ids of the first record batch the early duplicate check looks up, at most.
PROBE_IDS = 10_000


def read(path: str) -> tuple[pa.RecordBatch | None, pa.RecordBatchReader]:
    """Open ``path`` as a stream; return its first batch (None if empty) and the whole
    stream, first batch included."""
    reader = sources.read_file(Path(path))
    try:
        first = reader.read_next_batch()
    except StopIteration:
        return None, reader

    def batches() -> Iterator[pa.RecordBatch]:
        yield first
        yield from reader

    return first, pa.RecordBatchReader.from_batches(reader.schema, batches())


def model_table(store: Store, model: str, table: str) -> str:
    """``"<catalog>"."<model>"."<table>"``: unambiguous when the file is named like the model
    (``fraud.duckdb`` opens as catalog ``fraud``, and ``fraud.features`` is then ambiguous)."""
    catalog = store.sql("SELECT current_database()").column(0)[0].as_py()
    return f"{quote(catalog)}.{quote(model)}.{quote(table)}"


def refuse_stored_ids(
    store: Store,
    model: str,
    first: pa.RecordBatch | None,
    *,
    file: str,
    id_column: str,
    kind: str,
    scope: str,
    value: str,
    remedy: str,
) -> None:
    """Raise :class:`DuplicateIdError` when ids of the file's first batch are stored already.

    ``kind`` is ``features`` or ``predictions``; ``scope`` the column ids are unique
    within (``env`` or ``version``) and ``value`` its value for this batch.
    """
    if first is None or id_column not in first.schema.names:
        return  # the library names the missing column
    registered = store.models(model)
    if registered.num_rows == 0:
        return  # the library names the unknown model
    ids = first.column(id_column).slice(0, PROBE_IDS).drop_null().to_pylist()
    if not ids:
        return
    text_id = "CAST(id AS VARCHAR)"
    hits = store.sql(
        f"SELECT count(DISTINCT example_key) AS n, "
        f"list(DISTINCT example_id ORDER BY example_id)[1:5] AS examples, "
        f"list(DISTINCT batch_id ORDER BY batch_id) AS batches "
        f"FROM {model_table(store, model, kind)} WHERE {quote(scope)} = ? AND example_key IN "
        f"(SELECT {example_key_sql(text_id)} FROM (SELECT unnest(?) AS id))",
        [value, ids],
    ).to_pylist()[0]
    if not hits["n"]:
        return
    batches = store.sql(
        "SELECT batch_id, source FROM evalstore.batches WHERE list_contains(?, batch_id) "
        "ORDER BY batch_id",
        [hits["batches"]],
    ).to_pylist()
    where = ", ".join(f"batch {b['batch_id']} from {b['source']}" for b in batches[:3])
    raise DuplicateIdError(
        f"{hits['n']:,} of the first {len(ids):,} ids in {file} are already stored for "
        f"{scope} {value!r} ({where}), for example {hits['examples']}; this file looks "
        f"ingested already. Nothing was written; {remedy}",
        column=id_column,
        rows=hits["n"],
        examples=hits["examples"],
    )


def parse_labeled_at(labeled_at: str) -> datetime:
    """The ``--labeled-at`` text as an aware UTC time (a time without an offset is UTC)."""
    try:
        when = datetime.fromisoformat(labeled_at.strip())
    except ValueError:
        raise InvalidParameterError(
            f"--labeled-at {labeled_at!r} is not an ISO-8601 time; write e.g. "
            "2026-11-30 or 2026-11-30T12:00:00Z"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def progress_stream() -> Any:
    """Where the progress bar goes: standard error when it is a terminal, else nowhere."""
    return sys.stderr if sys.stderr.isatty() else None


def run_with_progress(
    path: str, reader: pa.RecordBatchReader, log: Callable[[pa.RecordBatchReader], Receipt]
) -> Receipt:
    """Call ``log(reader)`` with a progress bar on standard error when it is a terminal.

    The bar needs the row count up front, which only Parquet files state; other files
    get a one-line "ingesting …" notice instead. Either is finished (its line ended)
    before this returns, so what the caller prints next starts on a line of its own.
    """
    stream = progress_stream()
    if stream is None:
        return log(reader)
    total = _row_count(Path(path))
    if total is None:
        click.echo(f"ingesting {path} …", file=stream)
        return log(reader)
    with click.progressbar(length=total, label="ingesting", file=stream, show_pos=True) as bar:

        def counted() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                bar.update(batch.num_rows)
                yield batch

        return log(pa.RecordBatchReader.from_batches(reader.schema, counted()))


def _row_count(path: Path) -> int | None:
    if path.suffix.lower() in sources.PARQUET_SUFFIXES:
        return pq.ParquetFile(path).metadata.num_rows
    return None


def receipt_lines(receipt: Receipt) -> list[str]:
    """What an accepted batch did, as the lines the command prints."""
    parts = [f"batch {receipt.batch_id}: {receipt.rows} {receipt.kind} rows"]
    if receipt.columns_added:
        parts.append(f"added columns {', '.join(receipt.columns_added)}")
    if receipt.columns_ignored:
        parts.append(f"ignored columns {', '.join(receipt.columns_ignored)}")
    if receipt.replaced:
        parts.append(f"replaced {receipt.replaced}")
    if receipt.skipped:
        parts.append(f"skipped {receipt.skipped} already stored")
    lines = ["; ".join(parts)]
    lines.extend(f"warning: {w}" for w in receipt.warnings)
    return lines
