"""Call a :class:`evalstore.Store` method by name with HTTP query parameters as keyword arguments.

The server holds no metric logic: a metric route is ``getattr(store, method)(model, **kwargs)``.
Query strings are text, so each value is converted by the method's signature:

- a parameter annotated ``str`` (or ``str | None``) keeps the text as it is (``version=2``
  stays ``"2"``);
- a sequence parameter takes repeated keys (``features=a&features=b``), a JSON array or a
  comma-separated list;
- anything else is read as JSON when it parses (``window=5000``, ``threshold=0.3``,
  ``reference={"dataset":"train_2026_08"}``, ``by=["segment"]``; JSON arrays become tuples,
  e.g. a ``(start, end)`` reference) and kept as text otherwise (``window=1 day``).

>>> from urllib.parse import parse_qsl
>>> def f(model: str, window: Any = "1 day", features: Sequence[str] | None = None,
...       version: str | None = None, threshold: float | None = None, **options: Any):
...     pass
>>> query = parse_qsl("window=5000&features=a,b&version=2&threshold=0.3&seed=7")
>>> sorted(convert(f, query).items())
[('features', ['a', 'b']), ('seed', 7), ('threshold', 0.3), ('version', '2'), ('window', 5000)]
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from server.errors import ApiError

#: Query parameters that steer the response, not the library call.
RESERVED = frozenset({"format"})
#: Python's message for a keyword argument a function does not take.
UNEXPECTED = re.compile(r"got an unexpected keyword argument '(.*)'$", re.DOTALL)


def store_method(store: Any, name: str, what: str) -> Callable[..., Any]:
    """``store.<name>``, or a 404 saying this evalstore has no such method (yet)."""
    method = getattr(store, name, None)
    if method is None or name.startswith("_"):
        raise ApiError(
            404,
            "not_available",
            f"{what} is not available in this evalstore version (Store.{name} does not exist); "
            "upgrade evalstore on the server",
        )
    return method


def call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``method(*args, **kwargs)``, with arguments it does not take refused as 422.

    A method with ``**options`` passes them on to the function that implements it; an
    option that function does not take is refused too (422 ``unknown_parameter``), not
    answered as a server error.
    """
    name = getattr(method, "__name__", "the call")
    try:
        inspect.signature(method).bind(*args, **kwargs)
    except TypeError as error:
        raise ApiError(422, "invalid_parameter", f"{name}: {error}") from None
    try:
        return method(*args, **kwargs)
    except TypeError as error:
        refused = unexpected_keyword(error, kwargs)
        if refused is None:
            raise
        raise ApiError(
            422,
            "unknown_parameter",
            f"unknown parameter {refused!r} for {name}; accepted: "
            f"{', '.join(named_parameters(method)[len(args) :])} and the options documented "
            f"for Store.{name}",
        ) from None


def unexpected_keyword(error: TypeError, kwargs: dict[str, Any]) -> str | None:
    """The caller's keyword that ``error`` (Python's binding error) refuses, if it is one.

    >>> unexpected_keyword(TypeError("drift() got an unexpected keyword argument 'evil'"),
    ...                    {"evil": 1})
    'evil'
    >>> unexpected_keyword(TypeError("unsupported operand"), {"evil": 1}) is None
    True
    """
    match = UNEXPECTED.search(str(error))
    if match is None or match.group(1) not in kwargs:
        return None
    return match.group(1)


def named_parameters(method: Callable[..., Any]) -> list[str]:
    """The names of ``method``'s parameters, without ``*args``/``**options``."""
    return [
        n
        for n, p in inspect.signature(method).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def convert(method: Callable[..., Any], pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Keyword arguments for ``method`` from query ``pairs`` (see the module docstring)."""
    signature = inspect.signature(method)
    parameters = dict(signature.parameters)
    positional = [
        n for n, p in parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if positional:
        parameters.pop(positional[0])  # the model, taken from the path
    open_ended = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        if key not in RESERVED:
            grouped.setdefault(key, []).append(value)
    kwargs: dict[str, Any] = {}
    for key, values in grouped.items():
        parameter = parameters.get(key)
        if parameter is None and not open_ended:
            raise ApiError(
                422,
                "unknown_parameter",
                f"unknown query parameter {key!r}; accepted: "
                f"{', '.join(n for n, p in parameters.items() if p.kind != p.VAR_KEYWORD)}",
            )
        annotation = str(parameter.annotation) if parameter is not None else "Any"
        kwargs[key] = _value(key, values, annotation)
    return kwargs


def _value(key: str, values: list[str], annotation: str) -> Any:
    text_only = annotation.replace(" ", "") in ("str", "str|None", "<class'str'>")
    sequence = "Sequence" in annotation or "list" in annotation
    if text_only:
        if len(values) > 1:
            raise ApiError(422, "invalid_parameter", f"query parameter {key!r} takes one value")
        return values[0]
    if sequence:
        if len(values) > 1:
            return [_json_or_text(v) for v in values]
        value = values[0]
        parsed = _json_or_text(value)
        if isinstance(parsed, list | tuple | dict):
            return list(parsed) if isinstance(parsed, tuple) else parsed
        if isinstance(parsed, str) and "str |" in annotation and "," not in value:
            return parsed  # e.g. by: str | Sequence[str]
        return [part.strip() for part in value.split(",") if part.strip()]
    if len(values) > 1:
        return tuple(_json_or_text(v) for v in values)
    return _json_or_text(values[0])


def _json_or_text(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return tuple(value) if isinstance(value, list) else value
