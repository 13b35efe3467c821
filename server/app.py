"""The FastAPI application: routes map one-to-one onto :class:`evalstore.Store` calls."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException

import evalstore
from evalstore.formats import to_records


def create_app(store: evalstore.Store) -> FastAPI:
    """Return the HTTP app serving ``store`` (the process that runs it owns the file).

    Routes: ``GET /healthz`` (liveness and store location) and ``GET /v1/models``
    (the registry, as JSON records with ISO-8601 times).
    """
    app = FastAPI(title="evalstore", version=evalstore.__version__)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        store.sql("SELECT 1")
        return {"status": "ok", "store": str(store.path or ":memory:")}

    @app.get("/v1/models")
    def models(model: str | None = None) -> list[dict[str, Any]]:
        table = store.models(model)
        if model is not None and table.num_rows == 0:
            raise HTTPException(status_code=404, detail=f"model {model!r} is not registered")
        return to_records(table)

    return app
