"""Safe names and quoted identifiers.

User-supplied names never reach SQL unquoted. Model names become DuckDB schema
names, so they are restricted to lower-case identifiers; column names may be
any non-empty text and are always double-quoted.

>>> quote('income')
'"income"'
>>> quote('a"b')
'"a""b"'
>>> check_model_name("fraud_v2")
'fraud_v2'
"""

from __future__ import annotations

import re

from evalstore.errors import InvalidNameError

MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Schema names a model may not take: DuckDB's own and evalstore's system schema.
RESERVED_SCHEMAS = frozenset(
    {"evalstore", "main", "information_schema", "pg_catalog", "temp", "system", "memory"}
)


def quote(identifier: str) -> str:
    """Return ``identifier`` as a double-quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Return ``text`` as a SQL string literal, for statements that take no parameters
    (``COMMENT ON``, ``ATTACH``, ``SET``).

    >>> quote_literal("it's")
    "'it''s'"
    """
    return "'" + text.replace("'", "''") + "'"


def check_model_name(model: object) -> str:
    """Return ``model`` if it is a safe model name, else raise :class:`InvalidNameError`.

    A model name starts with a lower-case letter and continues with lower-case
    letters, digits or underscores (at most 63 characters); it becomes the name
    of the model's DuckDB schema.
    """
    if not isinstance(model, str) or not MODEL_NAME.match(model):
        raise InvalidNameError(
            f"model name {model!r} is not a safe identifier: use lower-case letters, digits "
            "and underscores, starting with a letter (for example 'credit_default')"
        )
    if model in RESERVED_SCHEMAS:
        raise InvalidNameError(
            f"model name {model!r} is reserved (it is a system schema); choose another name"
        )
    return model


def check_column_name(name: object, parameter: str = "column") -> str:
    """Return ``name`` if it can name a column: non-empty text without NUL characters."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise InvalidNameError(
            f"{parameter} name {name!r} is not usable: column names must be non-empty text "
            "without NUL characters"
        )
    return name
