"""evalstore: an embeddable evaluation store for ML models in production.

Predictions, features, labels and model versions land in one DuckDB database; sliced
performance, drift, data quality and skew are SQL macros persisted in that database.

>>> import evalstore
>>> store = evalstore.open()          # in memory; pass a path for a file
>>> store.close()
"""

from __future__ import annotations

__version__ = "0.1.0"

from evalstore.errors import (
    DuplicateIdError,
    EvalstoreError,
    EvalstoreWarning,
    InvalidNameError,
    InvalidParameterError,
    ModelConflictError,
    NotTabularError,
    QueryError,
    ReadOnlyError,
    SchemaConflictError,
    SnapshotError,
    StoreInUseError,
    StoreVersionError,
    UnknownModelError,
    ValidationError,
)

#: Names loaded on first use (PEP 562), so that ``import evalstore`` (and the CLI's
#: ``--help``) does not load DuckDB, Arrow and SciPy before anything needs them.
_LAZY = {
    "Client": "evalstore.client",
    "Receipt": "evalstore.core.ingest_write",
    "Store": "evalstore.store",
    "open": "evalstore.store",
}

__all__ = [
    "Client",
    "DuplicateIdError",
    "EvalstoreError",
    "EvalstoreWarning",
    "InvalidNameError",
    "InvalidParameterError",
    "ModelConflictError",
    "NotTabularError",
    "QueryError",
    "ReadOnlyError",
    "Receipt",
    "SchemaConflictError",
    "SnapshotError",
    "Store",
    "StoreInUseError",
    "StoreVersionError",
    "UnknownModelError",
    "ValidationError",
    "__version__",
    "open",
]


def __getattr__(name: str) -> object:
    """Load ``Store``, ``open``, ``Receipt`` and ``Client`` (and submodules) on first access."""
    import importlib
    import importlib.util

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
