"""The dashboard: HTML pages at ``/`` and ``/dashboard/models/{model}``, their scripts, and
the JSON API the pages read (:mod:`evalstore.dashboard`).

- ``GET /``: the models overview; ``GET /dashboard/models/{model}``: a model's page. Both
  are page shells without data, served to anyone: the data comes from the API below.
- ``GET /dashboard/static/{name}``: the vendored Vega scripts, the dashboard's script and
  style sheet, from the installed package (no CDN).
- ``GET /dashboard/api/overview``, ``/dashboard/api/models/{model}`` (query: the page's
  ``window``, ``since``, ``until``, ``metric``, ``method``) and
  ``/dashboard/api/models/{model}/distribution`` (plus ``feature`` and ``window_start``):
  the panels as JSON (Vega-Lite specs, the calls that reproduce them). They need a
  ``read`` token when the server has tokens, and run on the read pool like every read.
  They are the pages' own API, not in ``/openapi.json``: programs read the ``/v1`` routes
  each panel names.

A model page's drift, quality and performance calls go through the metric history (see
:mod:`evalstore.dashboard.panels`): the first view computes and stores their windows (a
cache of what the same calls return; no data, monitor or alert changes), later views
read them. On a read-only store they are kept in memory instead.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from evalstore.core.identifiers import MODEL_NAME
from evalstore.dashboard import pages, panels
from server.auth import require
from server.errors import ApiError

router = APIRouter()
read = [Depends(require("read"))]
MODEL = Path(pattern=MODEL_NAME.pattern, description="A registered model's name.")
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
async def overview_page() -> HTMLResponse:
    """The models overview page."""
    return HTMLResponse(pages.overview_page())


@router.get("/dashboard/models/{model}", include_in_schema=False, response_class=HTMLResponse)
async def model_page(model: str = MODEL) -> HTMLResponse:
    """A model's page (its panels load from the API)."""
    return HTMLResponse(pages.model_page(model))


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    """One of the dashboard's script or style files."""
    if name not in pages.STATIC_FILES:
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    suffix = name[name.rfind(".") :]
    return Response(
        pages.static_file(name),
        media_type=STATIC_TYPES[suffix],
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _view_query(request: Request, model: str) -> panels.View:
    return panels.View.parse(model, dict(request.query_params))


@router.get("/dashboard/api/overview", dependencies=read, include_in_schema=False)
async def overview(request: Request) -> Response:
    """Every model: versions and stages, serving volume, label coverage, latest realized
    performance, alert counts, stream freshness and a status."""

    def work(session: Any) -> Response:
        return _json({"models": panels.overview(session)})

    return await request.app.state.reads.on_session(request.app.state.store, work)


@router.get("/dashboard/api/models/{model}", dependencies=read, include_in_schema=False)
async def model_panels(
    request: Request,
    model: str = MODEL,
    window: str = Query("1 day", description="One of " + ", ".join(panels.WINDOWS)),
    since: str | None = Query(None, description="Windows starting at or after (ISO)."),
    until: str | None = Query(None, description="Windows starting before (ISO)."),
    metric: str | None = Query(None, description="Performance metric (default: headline)."),
    method: str = Query("js", description="Drift method of the heatmap."),
) -> Response:
    """The panels of a model's page for the given view."""
    view = _view_query(request, model)

    def work(session: Any) -> Response:
        return _json(panels.model_page(session, view))

    return await request.app.state.reads.on_session(request.app.state.store, work)


@router.get(
    "/dashboard/api/models/{model}/distribution", dependencies=read, include_in_schema=False
)
async def distribution(
    request: Request,
    model: str = MODEL,
    feature: str = Query(..., min_length=1, max_length=256),
    window_start: str = Query(..., min_length=4, max_length=64),
    version: str | None = Query(None, min_length=1, max_length=256, description="Of outputs."),
) -> Response:
    """The reference and window distributions of one drift heatmap cell."""
    view = _view_query(request, model)

    def work(session: Any) -> Response:
        return _json(
            panels.distribution_panel(session, view, feature, window_start, version).to_json()
        )

    return await request.app.state.reads.on_session(request.app.state.store, work)


def _json(content: Any) -> Response:
    # the specs hold datetimes and numpy numbers: default=str writes them as text
    return Response(json.dumps(content, default=str), media_type="application/json")
