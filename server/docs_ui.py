"""``/docs``: Swagger UI served from the package's own files, so it works offline.

FastAPI's default ``/docs`` page loads Swagger UI's JavaScript and CSS from a CDN (and its
favicon from FastAPI's site), so it is blank on a machine without internet access. This
follows FastAPI's documented self-hosting recipe (``docs_url=None``, then a route returning
``get_swagger_ui_html`` with local asset URLs): the assets come from the
``swagger-ui-bundle-v2`` package (Swagger UI 5, which renders the OpenAPI 3.1 document
FastAPI writes) and are served under ``/docs/assets``. Swagger UI's online validator badge
is turned off too (``validatorUrl: null``), so the page contacts no host but this server.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

#: Where the Swagger UI files are mounted.
ASSETS = "/docs/assets"


def install(app: FastAPI, docs_url: str = "/docs") -> None:
    """Serve Swagger UI at ``docs_url`` from local files (build ``app`` with ``docs_url=None``).

    >>> from fastapi.testclient import TestClient
    >>> app = FastAPI(docs_url=None, redoc_url=None)
    >>> install(app)
    >>> page = TestClient(app).get("/docs").text
    >>> "/docs/assets/swagger-ui-bundle.js" in page and "https://" not in page
    True
    """
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui-assets")
    redirect_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=redirect_url,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
