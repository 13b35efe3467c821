"""The one exception hierarchy of evalstore.

Every error a user can cause derives from :class:`EvalstoreError`, so
``except evalstore.EvalstoreError`` catches them all. Messages name the
column or parameter at fault, what was expected, and what to do about it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any


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


class QueryError(EvalstoreError):
    """DuckDB could not run a statement: the SQL given to :meth:`Store.sql`, or one that
    evalstore built for a call. The message is DuckDB's (which names the table, column or
    function at fault), prefixed with the call; the DuckDB exception is ``__cause__``."""


class StoreInUseError(EvalstoreError):
    """Another process holds the store file (a DuckDB file has one owner at a time, for
    reading too): while ``evalstore serve`` runs, ask the server or read its BI snapshot."""


class EvalstoreWarning(UserWarning):
    """A call succeeded, but its result is probably not what was meant (for example an
    ``as_of`` earlier than every batch, which selects nothing)."""


def warn(message: str) -> None:
    """Issue an :class:`EvalstoreWarning` attributed to the first caller outside the
    evalstore package (the user's line, whatever the depth of the call inside)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, EvalstoreWarning, stacklevel=level)


#: DuckDB's text when another process holds the file (kept verbatim in the message).
_LOCKED = "Could not set lock on file"
#: One class per (evalstore class, DuckDB class) pair, made on first use.
_COMBINED: dict[tuple[type, type], type] = {}


def _combined(ours: type[EvalstoreError], theirs: type[Exception]) -> type[EvalstoreError]:
    """A subclass of both ``ours`` and DuckDB's ``theirs``, named like ``ours``: code that
    catches ``duckdb.Error`` (or ``duckdb.CatalogException``, ...) keeps working."""
    key = (ours, theirs)
    if key not in _COMBINED:
        namespace = {"__module__": __name__, "__doc__": ours.__doc__}
        _COMBINED[key] = type(ours.__name__, (ours, theirs), namespace)
    return _COMBINED[key]


def from_duckdb(error: Exception, call: str, arguments: Mapping[str, Any]) -> EvalstoreError:
    """The :class:`EvalstoreError` to raise for DuckDB's ``error`` in ``call``.

    ``arguments`` are the call's parameters by name: when DuckDB's message quotes the
    text of one of them (``Could not convert string 'x' to INTERVAL``), the error names
    that parameter and is an :class:`InvalidParameterError`. A lock held by another
    process is a :class:`StoreInUseError`; anything else a :class:`QueryError` carrying
    DuckDB's message. The error is also an instance of ``error``'s DuckDB class, and the
    caller raises it ``from error``.
    """
    message = str(error).strip() or type(error).__name__
    if _LOCKED in message:
        return _combined(StoreInUseError, type(error))(
            f"{call}: the store file is in use by another process ({message}). A DuckDB "
            "file has one owner at a time, even for reading: while `evalstore serve` runs, "
            "query the server (HTTP) or read the BI snapshot it writes (serve --snapshot)"
        )
    if re.search(r"[Cc]onnection (has )?already (been )?closed", message):
        return _combined(QueryError, type(error))(
            f"{call}: the store is closed; open it again with evalstore.open(path)"
        )
    name = _culprit(message, arguments)
    if name is not None:
        return _combined(InvalidParameterError, type(error))(
            f"{call}: {name}={arguments[name]!r} was refused by DuckDB: {message.splitlines()[0]}"
        )
    prefix = "" if call == "sql()" else f"{call}: "  # the user's own SQL: DuckDB's words
    return _combined(QueryError, type(error))(prefix + message)


def _culprit(message: str, arguments: Mapping[str, Any]) -> str | None:
    """The parameter DuckDB's ``message`` is about: one whose value it quotes whole
    (``'banana'``), else a text parameter containing a value it quotes or a column it
    names (``where="x1 > 'abc'"`` for "Could not convert string 'abc' to DOUBLE")."""
    quoted = {a or b for a, b in re.findall(r"'([^']+)'|\"([^\"]+)\"", message)}
    quoted |= set(re.findall(r"\bcolumn \"?(\w+)", message))
    values = {
        name: str(value)
        for name, value in arguments.items()
        if not isinstance(value, bool) and isinstance(value, str | int | float)
    }
    for name, text in values.items():
        if text in quoted:
            return name
    for name, text in values.items():
        if isinstance(arguments[name], str) and any(
            re.search(rf"(?<!\w){re.escape(q)}(?!\w)", text) for q in quoted
        ):
            return name
    return None


def translate_duckdb_errors(cls: type) -> type:
    """Class decorator: every public method of ``cls`` (and its constructor) raises an
    :class:`EvalstoreError` (see :func:`from_duckdb`) where DuckDB raised, with DuckDB's
    exception as ``__cause__``. ``sql`` reports DuckDB's message as a :class:`QueryError`
    (the user wrote that SQL), never as a parameter error."""
    for name, member in list(vars(cls).items()):
        if (name.startswith("_") and name != "__init__") or not inspect.isfunction(member):
            continue
        setattr(cls, name, _translating(member, cls.__name__))
    return cls


def _translating(method: Callable[..., Any], owner: str) -> Callable[..., Any]:
    signature = inspect.signature(method)
    call = f"{owner}()" if method.__name__ == "__init__" else f"{method.__name__}()"
    names_parameters = method.__name__ != "sql"

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except EvalstoreError:
            raise
        except Exception as error:
            duckdb = sys.modules.get("duckdb")
            if duckdb is None or not isinstance(error, duckdb.Error):
                raise
            arguments: dict[str, Any] = {}
            if names_parameters:
                with contextlib.suppress(TypeError):
                    arguments = dict(signature.bind_partial(*args, **kwargs).arguments)
                arguments.pop("self", None)
            raise from_duckdb(error, call, arguments) from error

    return wrapper
