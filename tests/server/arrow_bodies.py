"""Request bodies in the Arrow IPC stream format, for the server tests that POST tables
(``Content-Type: application/vnd.apache.arrow.stream``)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.ipc as ipc


def arrow_body(table: pa.Table) -> bytes:
    """``table`` as one Arrow IPC stream (schema, then its record batches)."""
    sink = io.BytesIO()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
