"""evalstore's HTTP server: a thin FastAPI layer over :class:`evalstore.Store`.

It holds no metric logic: every route calls the library. Build the app with
:func:`create_app` and serve it with uvicorn.
"""

from server.app import create_app

__all__ = ["create_app"]
