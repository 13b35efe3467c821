"""Registry, ingest and health routes: ``/healthz``, ``/metrics``, ``/v1/models…``.

Ingest bodies are JSON records or an Arrow IPC stream (``application/vnd.apache.arrow.stream``);
the response is the library's :class:`evalstore.core.ingest_write.Receipt`, sent once the
batch is committed. Concurrent ingest requests are written together by the group commit
(:mod:`server.group_commit`), each validated alone; a rejected batch leaves nothing behind.
An ``Idempotency-Key`` header makes a retried request safe (``Store.log_*(batch_key=)``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from evalstore.core.formats import to_records
from evalstore.core.ingest_call import MAX_BATCH_KEY, LogCall, check_batch_key
from evalstore.core.ingest_group import Item
from evalstore.errors import InvalidParameterError
from server.auth import granted, require
from server.errors import ApiError
from server.formats import ARROW, JSON, PARQUET, body_to_data, json_result
from server.ingest_body import Body, read_body, release_memory
from server.prom import CONTENT_TYPE

router = APIRouter()
read = [Depends(require("read"))]
write = [Depends(require("write"))]

INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Rows as JSON records (an array of objects, or an object of columns) "
        "or as an Arrow IPC stream.",
        "content": {
            JSON: {"schema": {"type": "array", "items": {"type": "object"}}},
            ARROW: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


HEALTH = {
    200: {
        "description": "`status` for everyone; the details for a read or write token.",
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok"]},
                        "store": {"type": "string", "description": "The store file."},
                        "snapshot": {"type": "object"},
                        "checkpoints": {"type": "object"},
                        "ingest": {
                            "type": "object",
                            "description": "Group commit: whether it is on, groups "
                            "committed, requests answered in them (rejected: with an "
                            "error), the largest group, requests queued now.",
                        },
                    },
                }
            }
        },
    }
}


@router.get("/healthz", tags=["server"], responses=HEALTH)
def healthz(request: Request) -> dict[str, Any]:
    """Liveness: the store answers a query. With a token (or on a server without tokens):
    where the store is, the snapshot's and checkpoints' state, and the group commit's
    counters (``ingest``).

    Needs no token, so load balancers can probe it; it shows nothing about the store
    (not even its path) to a request without an accepted token.
    """
    store = request.app.state.store
    cursor = store.connection.cursor()
    try:
        cursor.execute("SELECT 1").fetchall()
    finally:
        cursor.close()
    if granted(request) is None:
        return {"status": "ok"}
    body: dict[str, Any] = {"status": "ok", "store": str(store.path or ":memory:")}
    snapshot = request.app.state.snapshot
    if snapshot is not None:
        body["snapshot"] = snapshot.status()
    checkpointer = request.app.state.checkpointer
    if checkpointer is not None:
        body["checkpoints"] = checkpointer.status()
    committer = request.app.state.committer
    body["ingest"] = {"group_commit": False} if committer is None else committer.status()
    return body


@router.get(
    "/metrics",
    tags=["server"],
    dependencies=read,
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(request: Request) -> Response:
    """Prometheus exposition: per model rows, coverage, staleness, latency; server latency."""
    return Response(request.app.state.monitor.exposition(), media_type=CONTENT_TYPE)


@router.get("/v1/models", tags=["registry"], dependencies=read)
def models(request: Request, model: str | None = None) -> list[dict[str, Any]]:
    """The registry: one record per model version (optionally of one ``model``)."""
    table = request.app.state.store.models(model)
    if model is not None and table.num_rows == 0:
        raise ApiError(404, "unknown_model", f"model {model!r} is not registered")
    return to_records(table)


class Version(BaseModel):
    """The body of ``POST /v1/models/{model}/versions``: ``Store.register_model``'s arguments."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    version: str
    task: str
    classes: list[Any] | None = None
    positive_class: Any = None
    threshold: float | None = None
    trained_at: str | None = None
    deployed_at: str | None = None
    retired_at: str | None = None
    stage: str | None = None
    training_dataset: str | None = None
    validation_dataset: str | None = None
    params: dict[str, Any] | None = None
    dependencies: dict[str, str] | None = None
    notes: str | None = None
    replace: bool = False


@router.post("/v1/models/{model}/versions", tags=["registry"], status_code=201, dependencies=write)
def register_version(request: Request, model: str, body: Version) -> dict[str, Any]:
    """Register a model version (idempotent for an identical definition); returns its row."""
    row = request.app.state.store.register_model(model, **body.model_dump())
    return json_result(row)


#: Bodies up to this size are parsed on the event loop (a thread hop costs more than
#: parsing a few records); larger ones on a worker thread.
INLINE_PARSE_BYTES = 64 * 1024

IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    description="A client-chosen id of this batch (1 to 128 printable characters, e.g. a "
    "UUID), sent again unchanged when the request is retried. If a batch with this key "
    "was already stored for this model and kind, nothing is written and the first "
    "request's receipt is returned with `duplicate: true`. Keys are kept in "
    "`evalstore.batches.batch_key` for good, so a retry is recognised even after a restart.",
)


def _batch_key(header: str | None) -> str | None:
    """The ``Idempotency-Key`` header as a batch key, or a 422 naming the header."""
    try:
        return check_batch_key(header)
    except InvalidParameterError:
        raise ApiError(
            422,
            "invalid_parameter",
            f"the Idempotency-Key header must be 1 to {MAX_BATCH_KEY} printable characters "
            f"(got {len(header or '')} characters); send a client-chosen id such as a UUID",
        ) from None


async def _ingest(
    request: Request,
    kind: str,
    model: str,
    origin: str | None,
    idempotency_key: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Read the body, parse it, and log it: through the group commit
    (:mod:`server.group_commit`) when the server has one, else with ``Store.log_<kind>``
    on a worker thread. Either way the receipt is sent after the commit."""
    content_type = request.headers.get("content-type")
    batch_key = _batch_key(idempotency_key)
    state = request.app.state
    if state.committer is not None:
        body = await read_body(request)
        return await submit(state, kind, model, origin, batch_key, options, content_type, body)
    if origin is None:
        origin = "http:arrow" if (content_type or "").startswith(ARROW) else "http:json"
    holder = [await read_body(request)]  # the worker takes the body: nothing here keeps it
    call = getattr(state.store, f"log_{kind}")
    kwargs = {"model": model, "origin": origin, **options}
    if batch_key is not None:
        kwargs["batch_key"] = batch_key
    receipt = await run_in_threadpool(_parse_and_log, holder, content_type, call, kwargs)
    state.monitor_loop.notify([model])  # the group commit's on_commit
    return json_result(receipt)


async def submit(
    state: Any,
    kind: str,
    model: str,
    origin: str | None,
    batch_key: str | None,
    options: dict[str, Any],
    content_type: str | None,
    body: Body,
) -> dict[str, Any]:
    """Parse ``body`` and write it through the app's group commit (``state.committer``);
    return the receipt as JSON, once committed. Shared by the routes and their fast path
    (:mod:`server.fast_ingest`)."""
    if origin is None:
        origin = "http:arrow" if (content_type or "").startswith(ARROW) else "http:json"
    holder = [body]
    del body  # the worker takes the body: nothing here keeps it
    if len(holder[0]) <= INLINE_PARSE_BYTES:
        data = body_to_data(holder.pop(), content_type)
    else:
        data = await run_in_threadpool(_parse, holder, content_type)
    item = Item(
        LogCall(kind, model, options, state.store.limits.time_range),
        data,
        source=origin,
        batch_key=batch_key,
    )
    return json_result(await state.committer.submit(item))


def ingest_options(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The ``Store.log_<kind>`` options of an ingest request's query parameters
    (``values``: every parameter of the route but ``origin``, defaults filled in)."""
    options = dict(values)
    if kind == "predictions":
        columns = options["probability_columns"]
        if columns:
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        options["probability_columns"] = columns or None
        options["score_column"] = options["score_column"] or None
    return options


def _parse(holder: list[Body], content_type: str | None) -> Any:
    """Parse the body taken from ``holder``, giving a JSON parse's memory back after."""
    body = holder.pop()
    data = body_to_data(body, content_type)
    del body
    if not (content_type or "").startswith((ARROW, PARQUET)):
        release_memory()
    return data


def _parse_and_log(
    holder: list[Body], content_type: str | None, call: Any, kwargs: dict[str, Any]
) -> Any:
    """Parse the body taken from ``holder`` and ``call`` the store with it.

    A JSON body is dropped (and its memory and the parser's scratch memory given back to
    the operating system) before the store writes, so they do not stack on the write; an
    Arrow or Parquet table may reference the body's buffer (zero-copy) and keeps it.
    """
    return call(**kwargs, data=_parse(holder, content_type))


@router.post(
    "/v1/models/{model}/features", tags=["ingest"], dependencies=write, openapi_extra=INGEST_BODY
)
async def log_features(
    request: Request,
    model: str,
    env: str = "serving",
    dataset: str | None = None,
    id_column: str = "example_id",
    ts_column: str = "ts",
    on_conflict: str = "error",
    origin: str | None = None,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> dict[str, Any]:
    """Log feature rows (``Store.log_features``); returns the receipt after commit."""
    options = ingest_options(
        "features",
        {
            "env": env,
            "dataset": dataset,
            "id_column": id_column,
            "ts_column": ts_column,
            "on_conflict": on_conflict,
        },
    )
    return await _ingest(request, "features", model, origin, idempotency_key, options)


@router.post(
    "/v1/models/{model}/predictions",
    tags=["ingest"],
    dependencies=write,
    openapi_extra=INGEST_BODY,
)
async def log_predictions(
    request: Request,
    model: str,
    version: str = Query(..., description="A registered version of the model."),
    id_column: str = "example_id",
    ts_column: str = "ts",
    prediction_column: str = "prediction",
    score_column: str | None = "score",
    probability_columns: str | None = Query(
        None, description="Comma-separated columns named after the classes (multiclass)."
    ),
    latency_column: str | None = None,
    origin: str | None = None,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> dict[str, Any]:
    """Log what ``version`` predicted (``Store.log_predictions``); returns the receipt."""
    options = ingest_options(
        "predictions",
        {
            "version": version,
            "id_column": id_column,
            "ts_column": ts_column,
            "prediction_column": prediction_column,
            "score_column": score_column,
            "probability_columns": probability_columns,
            "latency_column": latency_column,
        },
    )
    return await _ingest(request, "predictions", model, origin, idempotency_key, options)


@router.post(
    "/v1/models/{model}/labels", tags=["ingest"], dependencies=write, openapi_extra=INGEST_BODY
)
async def log_labels(
    request: Request,
    model: str,
    id_column: str = "example_id",
    label_column: str = "label",
    ts_column: str = "ts",
    source: str | None = None,
    origin: str | None = None,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> dict[str, Any]:
    """Log labels (``Store.log_labels``); open label requests of these examples are fulfilled."""
    options = ingest_options(
        "labels",
        {
            "id_column": id_column,
            "label_column": label_column,
            "ts_column": ts_column,
            "source": source,
        },
    )
    return await _ingest(request, "labels", model, origin, idempotency_key, options)
