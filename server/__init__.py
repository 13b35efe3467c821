"""evalstore's HTTP server: a thin FastAPI layer over :class:`evalstore.Store`.

It holds no metric logic: every route calls the library. Build the app with
:func:`create_app` and serve it with uvicorn.

``create_app`` is imported on first use (PEP 562), so a process that needs only part of
the package (a ``--http-workers`` front: :mod:`server.front`) does not load the app, its
routes and the metric families behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.app import create_app

        return create_app
    raise AttributeError(f"module 'server' has no attribute {name!r}")
