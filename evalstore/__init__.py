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
    InvalidNameError,
    InvalidParameterError,
    ModelConflictError,
    NotTabularError,
    ReadOnlyError,
    SchemaConflictError,
    SnapshotError,
    StoreVersionError,
    UnknownModelError,
    ValidationError,
)
from evalstore.ingest import Receipt
from evalstore.store import Store, open

__all__ = [
    "DuplicateIdError",
    "EvalstoreError",
    "InvalidNameError",
    "InvalidParameterError",
    "ModelConflictError",
    "NotTabularError",
    "ReadOnlyError",
    "Receipt",
    "SchemaConflictError",
    "SnapshotError",
    "Store",
    "StoreVersionError",
    "UnknownModelError",
    "ValidationError",
    "__version__",
    "open",
]
