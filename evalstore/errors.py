"""The one exception hierarchy of evalstore.

Every error a user can cause derives from :class:`EvalstoreError`, so
``except evalstore.EvalstoreError`` catches them all. Messages name the
column or parameter at fault, what was expected, and what to do about it.
"""

from __future__ import annotations


class EvalstoreError(Exception):
    """Base class of every error raised by evalstore."""


class InvalidParameterError(EvalstoreError, ValueError):
    """A parameter of an API call has a value outside what it accepts."""


class InvalidNameError(InvalidParameterError):
    """A model or column name is not a safe identifier."""


class UnknownModelError(EvalstoreError, LookupError):
    """The model, or the model version, is not registered."""


class ModelConflictError(EvalstoreError):
    """A registration contradicts what the registry already holds."""


class ValidationError(EvalstoreError, ValueError):
    """An ingest batch was rejected; nothing of it was written.

    ``column`` names the offending column when there is one, ``rows`` the number
    of offending rows when known, and ``examples`` up to five offending values.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        rows: int | None = None,
        examples: list | None = None,
    ) -> None:
        super().__init__(message)
        self.column = column
        self.rows = rows
        self.examples = examples or []


class NotTabularError(ValidationError, TypeError):
    """The data passed to an ingest call is not a table evalstore can read."""


class SchemaConflictError(ValidationError):
    """An incoming column's type does not fit the stored column."""


class DuplicateIdError(ValidationError):
    """Ids repeat within a batch, or collide with ids already stored."""


class StoreVersionError(EvalstoreError):
    """The store file was written by a newer evalstore, or needs migrating."""


class ReadOnlyError(EvalstoreError):
    """A write was attempted on a store opened with ``read_only=True``."""


class SnapshotError(EvalstoreError, LookupError):
    """A snapshot is unknown, or its rows can no longer be reproduced exactly."""
