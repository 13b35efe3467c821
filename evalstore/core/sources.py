"""Turn what users pass to ``log_*`` into one Arrow stream.

Accepted: anything exposing the Arrow C stream or array interface (pyarrow Table,
RecordBatch, RecordBatchReader; pandas and polars DataFrames; DuckDB relations) or a
path to a Parquet, CSV or Arrow IPC file. Files are read batch by batch, so large
inputs never need to fit in memory at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from evalstore.errors import NotTabularError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv")
IPC_SUFFIXES = (".arrow", ".arrows", ".ipc", ".feather")
#: Rows per batch when reading Parquet files.
BATCH_ROWS = 256_000


def describe(data: object) -> str:
    """A short description of the data's origin, recorded in ``evalstore.batches.source``."""
    if isinstance(data, str | os.PathLike):
        return str(data)
    kind = type(data)
    return f"{kind.__module__.split('.')[0]}.{kind.__qualname__}"


def to_reader(data: object) -> pa.RecordBatchReader:
    """Return a :class:`pyarrow.RecordBatchReader` over ``data``.

    Raises :class:`NotTabularError` for anything that is not a table or a readable file.
    """
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return data.to_reader()
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data]).to_reader()
    if isinstance(data, str | os.PathLike):
        return read_file(Path(data))
    if hasattr(data, "__arrow_c_stream__"):
        try:
            reader = pa.RecordBatchReader.from_stream(data)
        except (TypeError, ValueError, pa.ArrowException) as error:
            raise _not_tabular(data, str(error)) from error
        return _drop_unnamed_index(reader)
    if hasattr(data, "__arrow_c_array__"):
        try:
            batch = pa.record_batch(data)
        except (TypeError, ValueError, pa.ArrowException) as error:
            raise _not_tabular(data, str(error)) from error
        return pa.Table.from_batches([batch]).to_reader()
    raise _not_tabular(data)


def _drop_unnamed_index(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Drop the ``__index_level_N__`` columns pandas exports for an unnamed, non-range index.

    They are row positions, not data: kept, a filtered DataFrame would add a feature
    column ``__index_level_0__`` to the store. A named index stays a column.
    """
    metadata = reader.schema.pandas_metadata or {}
    unnamed = {
        name
        for name in metadata.get("index_columns", [])
        if isinstance(name, str) and re.fullmatch(r"__index_level_\d+__", name)
    }
    if not unnamed:
        return reader
    keep = [i for i, name in enumerate(reader.schema.names) if name not in unnamed]
    schema = pa.schema([reader.schema.field(i) for i in keep])
    return pa.RecordBatchReader.from_batches(schema, (batch.select(keep) for batch in reader))


def _not_tabular(data: object, detail: str = "") -> NotTabularError:
    return NotTabularError(
        f"data of type {type(data).__name__} is not tabular"
        + (f" ({detail})" if detail else "")
        + ": pass a pyarrow Table, RecordBatch or RecordBatchReader, a pandas or polars "
        "DataFrame, or the path of a Parquet, CSV or Arrow IPC file"
    )


def read_file(path: Path) -> pa.RecordBatchReader:
    """Open a Parquet, CSV or Arrow IPC file as a stream of record batches."""
    if not path.is_file():
        raise NotTabularError(f"file {str(path)!r} does not exist or is not a regular file")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            parquet = pq.ParquetFile(path)
            return pa.RecordBatchReader.from_batches(
                parquet.schema_arrow, parquet.iter_batches(batch_size=BATCH_ROWS)
            )
        if suffix in CSV_SUFFIXES:
            delimiter = "\t" if suffix == ".tsv" else ","
            return pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter))
        if suffix in IPC_SUFFIXES:
            return _open_ipc(path)
    except (pa.ArrowException, OSError) as error:
        raise NotTabularError(f"cannot read {str(path)!r} as {suffix[1:]}: {error}") from error
    raise NotTabularError(
        f"file {str(path)!r} has an unknown extension {suffix!r}: expected one of "
        + ", ".join(PARQUET_SUFFIXES + CSV_SUFFIXES + IPC_SUFFIXES)
    )


def _open_ipc(path: Path) -> pa.RecordBatchReader:
    """Arrow IPC: the random-access file format, or else the streaming format."""
    try:
        file_reader = ipc.open_file(path)
    except pa.ArrowInvalid:
        return ipc.open_stream(path)

    def batches() -> Iterator[pa.RecordBatch]:
        for index in range(file_reader.num_record_batches):
            yield file_reader.get_batch(index)

    return pa.RecordBatchReader.from_batches(file_reader.schema, batches())
