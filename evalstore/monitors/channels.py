"""Notification channels (``evalstore.channels``): where alert changes are sent.

Two kinds:

* ``webhook`` -- ``POST`` of the notification as JSON (``Content-Type:
  application/json``) to ``url`` (http or https). The body carries the alert, the change
  and a Slack-compatible ``text`` field, so a Slack incoming webhook shows it as is. With
  ``secret_env`` (the *name* of an environment variable holding the secret; the secret
  itself is never stored in the file, which BI snapshots copy), the request carries
  ``X-Evalstore-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body with that
  secret, so the receiver can verify it (:func:`signature`; compare with
  ``hmac.compare_digest``). ``headers`` adds fixed headers (e.g. an ``Authorization``
  for the receiver). ``timeout`` (seconds, at most :data:`MAX_TIMEOUT`) bounds the whole
  request; a 2xx answer is a delivery, anything else (3xx included: redirects are not
  followed) a failure.
* ``command`` -- runs ``argv`` (a list; no shell) with the notification JSON on stdin,
  within ``timeout`` seconds; exit status 0 is a delivery. A command is code run on the
  store's machine, so only a *trusted* caller may create or change one:
  :func:`add_channel` refuses ``kind='command'`` unless ``trusted=True``. The Python API
  and the CLI (local users, who can run commands anyway) pass ``trusted=True``; the HTTP
  server must call :func:`add_channel` with ``trusted=False`` (its default), so a write
  token never becomes remote code execution.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.errors import EvalstoreError, InvalidParameterError

KINDS = ("webhook", "command")
SIGNATURE_HEADER = "X-Evalstore-Signature"
#: Upper bound of a channel's ``timeout`` (seconds).
MAX_TIMEOUT = 60.0
#: Bytes of a receiver's answer or a command's stderr kept in ``last_error``.
MAX_ERROR_TEXT = 500
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_RESERVED_HEADERS = {"content-type", "content-length", "host", SIGNATURE_HEADER.lower()}
_KEYS = {
    "webhook": {"url", "secret_env", "headers", "timeout"},
    "command": {"argv", "timeout"},
}


@dataclass(frozen=True)
class Channel:
    """A stored channel: ``config`` as validated by :func:`check_config`."""

    name: str
    kind: str
    config: Mapping[str, Any]
    enabled: bool = True


def check_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The channel configuration with defaults filled (``timeout``: 5 s for a webhook,
    10 s for a command), or :class:`InvalidParameterError` naming the key at fault."""
    if kind not in KINDS:
        raise InvalidParameterError(f"kind={kind!r} must be one of {', '.join(map(repr, KINDS))}")
    if not isinstance(config, Mapping):
        raise InvalidParameterError(f"config must be a mapping; got {type(config).__name__}")
    extra = sorted(set(config) - _KEYS[kind])
    if extra:
        raise InvalidParameterError(
            f"config of a {kind} channel takes no key {extra[0]!r}; its keys are "
            f"{', '.join(sorted(_KEYS[kind]))}"
        )
    out: dict[str, Any] = {"timeout": 5.0 if kind == "webhook" else 10.0}
    timeout = config.get("timeout", out["timeout"])
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidParameterError(f"config.timeout={timeout!r} must be a number of seconds")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise InvalidParameterError(
            f"config.timeout={timeout!r} must be in (0, {MAX_TIMEOUT:g}] seconds"
        )
    out["timeout"] = float(timeout)
    if kind == "webhook":
        url = config.get("url")
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterError(
                f"config.url={url!r} must be an http:// or https:// URL with a host"
            )
        out["url"] = url
        secret_env = config.get("secret_env")
        if secret_env is not None:
            if not isinstance(secret_env, str) or not _ENV.match(secret_env):
                raise InvalidParameterError(
                    f"config.secret_env={secret_env!r} must be the name of an environment "
                    "variable holding the signing secret (the secret itself is not stored)"
                )
            out["secret_env"] = secret_env
        headers = config.get("headers", {})
        if not isinstance(headers, Mapping) or len(headers) > 20:
            raise InvalidParameterError("config.headers must be a mapping of at most 20 headers")
        for key, value in headers.items():
            if not isinstance(key, str) or not _HEADER.match(key):
                raise InvalidParameterError(f"config.headers: {key!r} is not a header name")
            if key.lower() in _RESERVED_HEADERS:
                raise InvalidParameterError(
                    f"config.headers: {key!r} is set by evalstore; remove it"
                )
            if not isinstance(value, str) or len(value) > 4096 or "\n" in value or "\r" in value:
                raise InvalidParameterError(
                    f"config.headers[{key!r}] must be one line of text (at most 4096 characters)"
                )
        out["headers"] = dict(headers)
    else:
        argv = config.get("argv")
        if (
            not isinstance(argv, list | tuple)
            or not argv
            or len(argv) > 100
            or not all(isinstance(a, str) and a for a in argv)
        ):
            raise InvalidParameterError(
                f"config.argv={argv!r} must be a non-empty list of at most 100 non-empty "
                "strings (the program and its arguments; no shell)"
            )
        out["argv"] = list(argv)
    return out


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterError(
            f"name={name!r} must start with a letter and hold at most 64 letters, digits, "
            "'_', '.' or '-'"
        )
    return name


def _guard(kind: str, trusted: bool) -> None:
    if kind == "command" and trusted is not True:
        raise InvalidParameterError(
            "a command channel runs a program on the store's machine: create or change it "
            "from Python or the CLI on that machine (trusted=True), never over HTTP"
        )


def add_channel(
    con: duckdb.DuckDBPyConnection,
    name: str,
    kind: str,
    config: Mapping[str, Any],
    *,
    enabled: bool = True,
    replace: bool = False,
    trusted: bool = False,
) -> Channel:
    """Create (or, with ``replace=True``, overwrite) a channel. ``trusted`` must be True
    for a command channel, and for replacing one (see the module docstring: only the
    local API sets it; the HTTP layer never does)."""
    _check_name(name)
    _guard(kind, trusted)
    checked = check_config(kind, config)
    if not isinstance(enabled, bool):
        raise InvalidParameterError(f"enabled={enabled!r} must be true or false")
    with transaction(con):
        existing = get_channel(con, name)
        if existing is not None:
            if not replace:
                raise InvalidParameterError(
                    f"channel {name!r} exists; pass replace=True to overwrite it, or pick "
                    "another name"
                )
            _guard(existing.kind, trusted)
            con.execute("DELETE FROM evalstore.channels WHERE name = ?", [name])
        con.execute(
            "INSERT INTO evalstore.channels VALUES (?, ?, ?, ?, ?)",
            [name, kind, json.dumps(checked, sort_keys=True), enabled, datetime.now(UTC)],
        )
    return Channel(name, kind, checked, enabled)


def get_channel(con: duckdb.DuckDBPyConnection, name: str) -> Channel | None:
    """The channel called ``name``, or None."""
    rows = con.execute(
        "SELECT name, kind, config, enabled FROM evalstore.channels WHERE name = ?", [name]
    ).fetchall()
    if not rows:
        return None
    name, kind, config, enabled = rows[0]
    return Channel(name, kind, json.loads(config), enabled)


def list_channels(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Every channel (name, kind, config, enabled, created_at), by name."""
    return con.sql("SELECT * FROM evalstore.channels ORDER BY name").to_arrow_table()


def delete_channel(con: duckdb.DuckDBPyConnection, name: str, *, trusted: bool = False) -> None:
    """Delete a channel (a command channel only when ``trusted``); its delivered and
    failed outbox rows stay as the record of what was sent."""
    with transaction(con):
        existing = get_channel(con, name)
        if existing is None:
            raise InvalidParameterError(f"channel {name!r} does not exist")
        _guard(existing.kind, trusted)
        con.execute("DELETE FROM evalstore.channels WHERE name = ?", [name])


def body(payload: Mapping[str, Any]) -> bytes:
    """The raw bytes sent for ``payload``: compact JSON with sorted keys (the same bytes
    on every attempt, so a signature is stable)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def signature(raw: bytes, secret: str) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``raw`` with ``secret`` (the header's value)."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def send(channel: Channel, payload: Mapping[str, Any]) -> None:
    """Deliver ``payload`` on ``channel``; raise :class:`DeliveryError` (with a short
    reason) when the receiver did not take it."""
    raw = body(payload)
    config = channel.config
    if channel.kind == "webhook":
        headers = {"Content-Type": "application/json", "User-Agent": "evalstore-alerts"}
        headers.update(config.get("headers", {}))
        if config.get("secret_env"):
            secret = os.environ.get(config["secret_env"])
            if not secret:
                raise DeliveryError(
                    f"environment variable {config['secret_env']} (the signing secret) is not set"
                )
            headers[SIGNATURE_HEADER] = signature(raw, secret)
        request = urllib.request.Request(config["url"], data=raw, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=config["timeout"]) as response:
                response.read(MAX_ERROR_TEXT)
                status = response.status
        except urllib.error.HTTPError as error:
            text = error.read(MAX_ERROR_TEXT).decode(errors="replace")
            raise DeliveryError(f"HTTP {error.code}: {text}".strip()) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryError(f"{type(error).__name__}: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")
        return
    try:
        result = subprocess.run(
            config["argv"], input=raw, capture_output=True, timeout=config["timeout"], check=False
        )
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"command timed out after {config['timeout']:g} s") from None
    except OSError as error:
        raise DeliveryError(f"command could not start: {error}") from None
    if result.returncode != 0:
        stderr = result.stderr[-MAX_ERROR_TEXT:].decode(errors="replace").strip()
        raise DeliveryError(f"command exited with status {result.returncode}: {stderr}")


class DeliveryError(EvalstoreError):
    """A channel did not take a notification (kept in the outbox's ``last_error``)."""
