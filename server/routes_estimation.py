"""``GET /v1/models/{model}/estimated_performance``: performance before labels arrive.

One call of :meth:`evalstore.Store.estimate_performance` (CBPE for classification, DLE
for regression) with the query parameters as its keyword arguments, converted, checked
and answered exactly as the metric families of :mod:`server.routes_query` are (JSON
records, CSV or Arrow IPC by the ``Accept`` header; the same error shapes). Registered
before the generic ``/v1/models/{model}/{family}`` route.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from server.auth import require
from server.dispatch import call, convert, store_method
from server.formats import negotiate
from server.routes_query import RESULT_DOC, respond

router = APIRouter()
FAMILY = "estimated_performance"


@router.get(
    f"/v1/models/{{model}}/{FAMILY}",
    tags=["metrics"],
    dependencies=[Depends(require("read"))],
    responses=RESULT_DOC,
)
async def estimated_performance(
    request: Request,
    model: str,
    accept: str | None = Header(None),
    format: str | None = Query(None, description="json, csv or arrow; overrides Accept."),
) -> Response:
    """Performance of ``model`` estimated before its labels arrive, beside the realized
    value where labels exist: ``Store.estimate_performance(model, **query parameters)``
    (``window=7 days``, ``metrics=roc_auc,f1``, ``reference=["2026-09-01","2026-09-22"]``,
    ``method=cbpe``...), on a session of its own."""
    media = negotiate(accept, fmt=format)
    pairs = request.query_params.multi_items()

    def work(session: Any) -> Response:
        estimate = store_method(session, "estimate_performance", f"the {FAMILY} family")
        kwargs = convert(estimate, pairs)
        # `method` (cbpe/dle) is also the name of call()'s first parameter: bind it first
        chosen = kwargs.pop("method", None)

        @functools.wraps(estimate)
        def bound(*args: Any, **options: Any) -> Any:
            return estimate(*args, method=chosen, **options)

        return respond(request, call(bound, model, **kwargs), media, model, FAMILY)

    return await request.app.state.reads.on_session(request.app.state.store, work)
