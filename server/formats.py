"""Request bodies in, results out: JSON records, CSV, Arrow IPC streams and Parquet.

Results follow the ``Accept`` header (or a ``format`` query parameter, handy in browsers and
Grafana): ``application/json`` (default: an array of records with ISO-8601 times, the shape
Grafana's Infinity data source reads), ``text/csv``, ``application/vnd.apache.arrow.stream``
and, for downloads, ``application/vnd.apache.parquet``.

>>> negotiate("text/csv;q=0.5, application/vnd.apache.arrow.stream")
'application/vnd.apache.arrow.stream'
>>> negotiate("*/*"), negotiate(None), negotiate("text/html", fmt="csv")
('application/json', 'application/json', 'text/csv')
"""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from fastapi.responses import Response

from evalstore.core.formats import json_value, to_arrow_ipc, to_csv, to_records
from server.errors import ApiError
from server.ingest_body import Body
from server.json_body import NDJSON, read_json_table

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
#: ``format=`` query values and the media types they stand for.
FORMATS = {"json": JSON, "csv": CSV, "arrow": ARROW, "parquet": PARQUET}
RESULT_TYPES = (JSON, CSV, ARROW)
DOWNLOAD_TYPES = (JSON, CSV, ARROW, PARQUET)


def negotiate(
    accept: str | None, allowed: tuple[str, ...] = RESULT_TYPES, fmt: str | None = None
) -> str:
    """The media type to answer with: ``fmt`` if given, else the best match of ``accept``."""
    if fmt is not None:
        media = FORMATS.get(fmt.lower())
        if media not in allowed:
            names = [k for k, v in FORMATS.items() if v in allowed]
            raise ApiError(
                406, "unsupported_format", f"format {fmt!r} is not offered here; use {names}"
            )
        return media
    if not accept:
        return allowed[0]
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, _, rest = part.strip().partition(";")
        quality = 1.0
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, media.strip().lower()))
    for _, _, media in sorted(ranked):
        if media in allowed:
            return media
        if media in ("*/*", "application/*"):
            return allowed[0]
        if media == "text/*" and CSV in allowed:
            return CSV
    raise ApiError(
        406,
        "unsupported_format",
        f"cannot answer with any of {accept!r}; this endpoint offers {', '.join(allowed)}",
    )


def render(table: pa.Table, media: str, filename: str = "result") -> Response:
    """``table`` as a response of type ``media`` (see :func:`negotiate`)."""
    headers = {"X-Evalstore-Rows": str(table.num_rows)}
    if media == JSON:
        body = json.dumps(to_records(table), separators=(",", ":")).encode()
        return Response(body, media_type=JSON, headers=headers)
    if media == CSV:
        return Response(to_csv(table), media_type="text/csv; charset=utf-8", headers=headers)
    if media == ARROW:
        return Response(to_arrow_ipc(table), media_type=ARROW, headers=headers)
    if media == PARQUET:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        headers["Content-Disposition"] = f'attachment; filename="{filename}.parquet"'
        return Response(sink.getvalue(), media_type=PARQUET, headers=headers)
    raise AssertionError(f"unknown media type {media}")


def json_result(value: Any) -> Any:
    """A JSON-able form of a library result that is not a table (dicts, receipts, lists).

    Dataclasses and named tuples become objects, Arrow tables arrays of records, times
    ISO-8601 text; anything else unknown becomes its ``str``.
    """
    if isinstance(value, pa.Table):
        return to_records(value)
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        value = {name: getattr(value, name) for name in value.__dataclass_fields__}
    elif hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {str(k): json_result(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_result(v) for v in value]
    converted = json_value(value)
    if converted is None or isinstance(converted, str | int | float | bool | list | dict):
        return converted
    return str(converted)


def body_to_data(body: Body | bytes, content_type: str | None) -> pa.Table | pa.RecordBatchReader:
    """Parse an ingest body: an Arrow IPC stream, Parquet, or JSON records.

    JSON may be an array of records (``[{"example_id": "a", "x": 1.5}, …]``), an object of
    columns (``{"example_id": ["a"], "x": [1.5]}``) or ``{"records": [...]}``, or
    newline-delimited records (``application/x-ndjson``); it is read into Arrow columns
    directly (:mod:`server.json_body`), without a Python object per value. Every
    refusal is a 422 naming what is wrong (a truncated Arrow stream, JSON nested too deeply,
    an integer beyond 64 bits, a batch without rows), or 415 for a media type it cannot read.
    ``body`` is best a :class:`~server.ingest_body.Body` (:func:`server.ingest_body.read_body`);
    an Arrow or Parquet table may reference its buffer (zero-copy), a JSON one does not.
    """
    media = (content_type or JSON).split(";")[0].strip().lower()
    if not len(body):
        raise ApiError(422, "empty_body", "the request body is empty; send JSON records or Arrow")
    if media == ARROW:
        try:  # read whole (zero-copy from the body): a truncated stream is refused here
            table = ipc.open_stream(pa.py_buffer(_bytes_of(body))).read_all()
        except (pa.ArrowException, OSError) as error:
            raise ApiError(
                422,
                "invalid_arrow",
                f"the body is not a complete Arrow IPC stream: {error}; send the whole "
                "stream (schema, record batches and end-of-stream marker)",
            ) from None
        return _not_empty(_valid(table, "invalid_arrow"))
    if media == PARQUET:
        try:
            table = pq.read_table(pa.BufferReader(_bytes_of(body)))
        except pa.ArrowException as error:
            raise ApiError(422, "invalid_parquet", f"the body is not Parquet: {error}") from None
        return _not_empty(_valid(table, "invalid_parquet"))
    if media not in (JSON, "text/json", *NDJSON):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"cannot ingest {media!r}; send {JSON} (records) or {ARROW} (an Arrow IPC stream)",
        )
    return _not_empty(read_json_table(body, media))


def _bytes_of(body: Body | bytes) -> memoryview | bytes:
    """The bytes of ``body`` (no copy)."""
    return body.view() if isinstance(body, Body) else body


def _valid(table: pa.Table, error: str) -> pa.Table:
    """``table``, or 422 ``error`` when its values are not valid Arrow: reading a stream does
    not check its buffers, so text that is not UTF-8 (or offsets out of range) would reach
    DuckDB, whose insert fails with an aborted transaction that hides the cause. Full
    validation reads every value once (~40 us per 1,000 rows)."""
    try:
        table.validate(full=True)
    except pa.ArrowInvalid as invalid:
        raise ApiError(
            422,
            error,
            f"the body's values are not valid Arrow ({invalid}); text columns must hold "
            "UTF-8: send binary data as a binary column",
        ) from None
    return table


def _not_empty(table: pa.Table) -> pa.Table:
    """``table``, or 422 ``empty_batch`` when it has no rows (``[]``, ``{"records": []}``)."""
    if table.num_rows == 0:
        raise ApiError(
            422,
            "empty_batch",
            "the batch holds no rows; send at least one record (a batch is written whole, "
            "so an empty one has nothing to write)",
        )
    return table
