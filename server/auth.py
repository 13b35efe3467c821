"""Bearer-token authentication: tokens with a ``read`` or ``write`` scope from a token file.

The token file has one token per line: ``TOKEN SCOPE [NAME]``, where SCOPE is ``read``
(queries, metrics, downloads) or ``write`` (everything ``read`` allows, plus ingest,
registration, suggestions, cancellations and snapshots). Blank lines and lines starting with
``#`` are ignored. Tokens need at least 16 characters and are compared in constant time.
A token file that breaks these rules raises :class:`evalstore.errors.InvalidParameterError`
naming the file and line (``evalstore serve`` prints it as one line).

>>> tokens = Tokens.parse("# comment\\nr3ad-0123456789abcdef read dashboards\\n"
...                        "wr1te-0123456789abcdef write ingest\\n")
>>> tokens.scope_of("r3ad-0123456789abcdef"), tokens.scope_of("wr1te-0123456789abcdef")
('read', 'write')
>>> tokens.scope_of("nope")
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from fastapi import Request

from evalstore.errors import InvalidParameterError
from server.errors import ApiError

SCOPES = ("read", "write")


@dataclass(frozen=True)
class Token:
    """One accepted bearer token."""

    secret: str
    scope: str
    name: str


class Tokens:
    """The set of accepted tokens (see the module docstring for the file format)."""

    def __init__(self, tokens: list[Token]) -> None:
        if not tokens:
            raise InvalidParameterError(
                "the token file holds no token; add lines 'TOKEN read|write [NAME]'"
            )
        self._tokens = tokens

    @classmethod
    def parse(cls, text: str, origin: str = "token file") -> Tokens:
        tokens = []
        for number, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) < 2 or parts[1] not in SCOPES:
                raise InvalidParameterError(
                    f"{origin} line {number}: expected 'TOKEN read|write [NAME]', got "
                    f"{len(parts)} field(s) with scope {parts[1] if len(parts) > 1 else None!r}"
                )
            if len(parts[0]) < 16:
                raise InvalidParameterError(
                    f"{origin} line {number}: a token needs at least 16 characters "
                    f"(this one has {len(parts[0])}); generate one, e.g. with "
                    "'python -c \"import secrets; print(secrets.token_urlsafe(24))\"'"
                )
            tokens.append(Token(parts[0], parts[1], " ".join(parts[2:]) or f"line {number}"))
        return cls(tokens)

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Tokens:
        path = Path(path)
        return cls.parse(path.read_text(encoding="utf-8"), origin=str(path))

    def scope_of(self, secret: str) -> str | None:
        """The scope of ``secret``, or ``None`` if it is not an accepted token."""
        found = None
        for token in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(token.secret.encode(), secret.encode()):
                found = token.scope
        return found


def granted(request: Request) -> str | None:
    """The scope ``request``'s bearer token grants: ``read``, ``write`` or ``None``.

    Without configured tokens every request is granted ``write`` (the server then only
    listens on loopback). Never raises: for routes that answer everyone, but say more to
    token holders (``/healthz``).
    """
    tokens: Tokens | None = request.app.state.settings.tokens
    if tokens is None:
        return "write"
    kind, _, secret = request.headers.get("authorization", "").partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        return None
    return tokens.scope_of(secret.strip())


def require(scope: str):
    """A FastAPI dependency admitting requests whose bearer token has ``scope``.

    ``write`` tokens may also read. Without configured tokens every request is admitted.
    The dependency carries ``scope`` as an attribute (read by :mod:`server.openapi`).
    """

    def check(request: Request) -> None:
        tokens: Tokens | None = request.app.state.settings.tokens
        if tokens is None:
            return
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401,
                "unauthenticated",
                "this server requires a bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        granted = tokens.scope_of(secret.strip())
        if granted is None:
            raise ApiError(
                401,
                "invalid_token",
                "the bearer token is not accepted by this server",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scope == "write" and granted != "write":
            raise ApiError(
                403, "forbidden", "this request writes to the store and needs a 'write' token"
            )

    check.scope = scope  # type: ignore[attr-defined]
    return check
