"""The data flywheel: label suggestions and requests, training-data selections and snapshots.

Thin calls of ``Store.suggest``, ``label_requests``, ``cancel_requests``, ``select``,
``snapshot``, ``snapshots`` and ``load_snapshot``; a route whose method this evalstore lacks
answers 404 ``not_available``. Selections and snapshots download as Arrow IPC, Parquet, CSV
or JSON (``Accept`` header or ``format=``). Labels that fulfil requests are posted to
``POST /v1/models/{model}/labels``: the library marks the requests fulfilled in the same
transaction as the labels.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from server.auth import require
from server.dispatch import call, convert, store_method
from server.errors import ApiError
from server.formats import DOWNLOAD_TYPES, json_result, negotiate, render
from server.query import check_result_size
from server.routes_query import RESULT_DOC

router = APIRouter()
read = [Depends(require("read"))]
write = [Depends(require("write"))]
FORMAT = Query(None, description="json, csv, arrow or parquet; overrides Accept.")
KWARGS = Body(None, description="Keyword arguments of the library call, as a JSON object.")


def _kwargs(body: dict[str, Any] | None) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_json", "the body must be a JSON object of keyword arguments")
    if "model" in body:
        raise ApiError(422, "invalid_parameter", "the model comes from the path, not the body")
    return body


@router.get(
    "/v1/models/{model}/suggestions", tags=["flywheel"], dependencies=read, responses=RESULT_DOC
)
async def suggestions(
    request: Request,
    model: str,
    accept: str | None = Header(None),
    format: str | None = Query(None),
) -> Response:
    """Examples to label next (``Store.suggest``; query parameters are its arguments).

    By default the library records each suggestion as an open label request, a write: that
    needs a ``write`` token unless ``record=false``. With ``record=false`` the suggestion
    is a read: it runs on a session of its own within the time limit, beside ingest. A
    recording suggestion writes, so it runs on the store's writer connection, in turn with
    ingest (bounded by the library's limits on ``k`` and ``pool``, not interrupted: the
    writer connection is shared).
    """
    media = negotiate(accept, fmt=format)
    store = request.app.state.store
    reads = request.app.state.reads
    method = store_method(store, "suggest", "label suggestion")
    kwargs = convert(method, request.query_params.multi_items())
    filename = f"{model}_suggestions"
    if kwargs.get("record", True) is not False:
        require("write")(request)
        return await reads.run(lambda: render(call(method, model, **kwargs), media, filename))

    def work(session: Any) -> Response:
        suggest = store_method(session, "suggest", "label suggestion")
        return render(call(suggest, model, **kwargs), media, filename=filename)

    return await reads.on_session(store, work)


@router.get(
    "/v1/models/{model}/requests", tags=["flywheel"], dependencies=read, responses=RESULT_DOC
)
def label_requests(
    request: Request,
    model: str,
    accept: str | None = Header(None),
    format: str | None = Query(None),
) -> Response:
    """Label requests of ``model``, newest first (filters: status, strategy, example_ids)."""
    media = negotiate(accept, fmt=format)
    method = store_method(request.app.state.store, "label_requests", "the label request list")
    kwargs = convert(method, request.query_params.multi_items())
    return render(call(method, model, **kwargs), media, filename=f"{model}_requests")


@router.post("/v1/models/{model}/requests/cancel", tags=["flywheel"], dependencies=write)
def cancel_requests(
    request: Request, model: str, body: dict[str, Any] | None = KWARGS
) -> dict[str, Any]:
    """Cancel open requests: all, or by ``example_ids`` / ``request_ids`` / ``strategy``."""
    method = store_method(request.app.state.store, "cancel_requests", "request cancellation")
    cancelled = call(method, model, **_kwargs(body))
    return {"model": model, "cancelled": json_result(cancelled)}


@router.post(
    "/v1/models/{model}/selections",
    tags=["flywheel"],
    dependencies=read,
    responses={200: {"description": "The selected rows: Arrow IPC, Parquet, CSV or JSON."}},
)
async def select(
    request: Request,
    model: str,
    body: dict[str, Any] | None = KWARGS,
    accept: str | None = Header(None),
    format: str | None = FORMAT,
) -> Response:
    """Select training data (``Store.select(model, **body)``) and download it."""
    media = negotiate(accept, DOWNLOAD_TYPES, fmt=format)
    store_method(request.app.state.store, "select", "training data selection")
    kwargs = _kwargs(body)

    def work(session: Any) -> Response:
        table = call(store_method(session, "select", "selection"), model, **kwargs)
        return respond_table(request, table, media, f"{model}_selection")

    return await request.app.state.reads.on_session(request.app.state.store, work)


@router.post("/v1/models/{model}/snapshots", tags=["flywheel"], status_code=201, dependencies=write)
def create_snapshot(
    request: Request, model: str, body: dict[str, Any] | None = KWARGS
) -> JSONResponse:
    """Save a named, reproducible selection: ``Store.snapshot(name, selection, replace)``.

    Body: ``{"name": …, "replace": false, "selection": {…}}`` where ``selection`` holds the
    keyword arguments of ``Store.select`` (the model comes from the path); the selection's
    arguments may also be given at the top level next to ``name``.
    """
    method = store_method(request.app.state.store, "snapshot", "snapshot creation")
    options = dict(_kwargs(body))
    name = options.pop("name", None)
    if not isinstance(name, str) or not name:
        raise ApiError(422, "invalid_parameter", "the body needs a 'name' for the snapshot")
    replace = bool(options.pop("replace", False))
    selection = options.pop("selection", None)
    if selection is None:
        selection = options
    elif options:
        raise ApiError(
            422,
            "invalid_parameter",
            f"give the selection's arguments inside 'selection' or at the top level, not both "
            f"(found {sorted(options)})",
        )
    if not isinstance(selection, dict) or "model" in selection:
        raise ApiError(
            422, "invalid_parameter", "'selection' must be an object without 'model' (the path)"
        )
    info = call(method, name, {**selection, "model": model}, replace=replace)
    return JSONResponse(json_result(info), status_code=201)


@router.get("/v1/snapshots", tags=["flywheel"], dependencies=read, responses=RESULT_DOC)
def list_snapshots(
    request: Request,
    accept: str | None = Header(None),
    format: str | None = Query(None),
) -> Response:
    """The saved snapshots (``Store.snapshots``), optionally of one ``model``."""
    media = negotiate(accept, fmt=format)
    method = store_method(request.app.state.store, "snapshots", "the snapshot list")
    model = request.query_params.get("model")
    return render(call(method, model), media, filename="snapshots")


@router.get("/v1/snapshots/{name}", tags=["flywheel"], dependencies=read)
async def download_snapshot(
    request: Request,
    name: str,
    accept: str | None = Header(None),
    format: str | None = FORMAT,
) -> Response:
    """A snapshot's rows, re-read and verified by the library (``Store.load_snapshot``)."""
    media = negotiate(accept, DOWNLOAD_TYPES, fmt=format)
    store_method(request.app.state.store, "load_snapshot", "snapshot download")

    def work(session: Any) -> Response:
        table = call(store_method(session, "load_snapshot", "snapshot download"), name)
        return respond_table(request, table, media, name)

    return await request.app.state.reads.on_session(request.app.state.store, work)


def respond_table(request: Request, table: Any, media: str, filename: str) -> Response:
    """A downloaded table as ``media``, within ``Settings.max_result_bytes``."""
    check_result_size(table.nbytes, request.app.state.settings.max_result_bytes)
    return render(table, media, filename=filename)
