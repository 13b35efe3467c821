"""Monitors, alerts and notification channels over HTTP (issue 26).

Thin calls of the Store's monitoring methods (:mod:`evalstore.facade.monitoring`):

- ``/v1/models/{model}/monitors``: list (GET, read) and create (POST, write);
  ``/{name}``: read (GET), change (PATCH) and delete (DELETE); ``/{name}/backtest`` (POST,
  read: writes nothing; ``/monitors/backtest`` backtests an unsaved definition); ``/run``
  (POST, write: one pass over the model's monitors, as the background loop does);
- ``/v1/alerts``: the alert episodes (GET, filters ``model``, ``monitor``, ``state``,
  ``limit``); ``/{alert_id}/acknowledge`` and ``/{alert_id}/silence`` (POST, write);
- ``/v1/channels``: list (GET, read; header values and command arguments hidden), create
  (POST, write) and delete (``/{name}``, DELETE, write);
- ``/v1/models/{model}/history``: the stored metric series (GET, read; ``Store.history``).

A write token never becomes code execution on the server's machine: ``command`` channels
are refused (403 ``command_channel_refused``) — the library is called with
``trusted=False`` — and a command channel made locally cannot be replaced or deleted over
HTTP either. Webhook URLs are checked against the server's ``webhook_allow`` host patterns
(:func:`check_webhook_url`) to keep a write token from pointing the server at internal
services (SSRF).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import urllib.parse
from datetime import datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from evalstore.core.identifiers import MODEL_NAME, RESERVED_SCHEMAS
from evalstore.monitors.history import DEFAULT_HISTORY_ROWS, MAX_HISTORY_ROWS
from server.auth import require
from server.errors import ApiError
from server.formats import json_result, negotiate, render
from server.query import check_result_size
from server.routes_query import RESULT_DOC

router = APIRouter()
read = [Depends(require("read"))]
write = [Depends(require("write"))]
FORMAT = Query(None, description="json, csv or arrow; overrides Accept.")
ResultFormat = Literal["json", "csv", "arrow"]
OPTIONAL_BODY = Body(None)
#: Longest ``where`` predicate, subject list and alert list an HTTP request may ask for.
MAX_WHERE_CHARS = 10_000
MAX_SUBJECTS = 1_000
MAX_ALERTS = 10_000
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
HIDDEN = "<hidden>"


# ---------------------------------------------------------------------- bodies


class MonitorFields(BaseModel):
    """What a monitor computes and its rule: the arguments of ``Store.add_monitor``
    (docs/monitoring.md). The model comes from the path."""

    model_config = ConfigDict(extra="forbid")

    family: str = Field(
        max_length=32,
        description="drift, quality, performance, health, skew, summary_stats or "
        "estimated_performance.",
    )
    metric: str = Field(
        max_length=64,
        description="A drift method, quality check, performance metric, health or skew "
        "metric, summary statistic or estimated metric.",
    )
    rule: dict[str, Any] | str = Field(
        description='The rule, e.g. {"type": "fixed", "direction": "above", "value": 0.2}.'
    )
    subjects: str | list[str] | None = Field(
        "*",
        description="Features (drift, quality, skew, summary_stats) or versions "
        "(performance, estimated_performance), or '*'.",
    )
    window: str = Field("1 day", max_length=64, description="A time interval.")
    reference: Any = Field(None, description="The family's reference (default: training).")
    where: str | None = Field(None, max_length=MAX_WHERE_CHARS, description="A slice predicate.")
    version: str | None = Field(None, max_length=256)
    options: dict[str, Any] | None = Field(
        None, description="Other keyword parameters of the family."
    )
    learn_period: list[Any] | None = Field(
        None, min_length=2, max_length=2, description="(start, end) of a learned rule."
    )
    enabled: bool = True


class NewMonitor(MonitorFields):
    """The body of ``POST /v1/models/{model}/monitors``."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique across the store.")


class MonitorChanges(BaseModel):
    """The body of ``PATCH …/monitors/{name}``: the fields to change (others are kept)."""

    model_config = ConfigDict(extra="forbid")

    family: str | None = Field(None, max_length=32)
    metric: str | None = Field(None, max_length=64)
    rule: dict[str, Any] | str | None = None
    subjects: str | list[str] | None = None
    window: str | None = Field(None, max_length=64)
    reference: Any = None
    where: str | None = Field(None, max_length=MAX_WHERE_CHARS)
    version: str | None = Field(None, max_length=256)
    options: dict[str, Any] | None = None
    learn_period: list[Any] | None = Field(None, min_length=2, max_length=2)
    enabled: bool | None = None


class Period(BaseModel):
    """Windows starting in ``[since, until)`` (ISO times; omitted: unbounded)."""

    model_config = ConfigDict(extra="forbid")

    since: str | None = Field(None, max_length=64)
    until: str | None = Field(None, max_length=64)


class UnsavedBacktest(MonitorFields):
    """The body of ``POST …/monitors/backtest``: a definition and the period."""

    since: str | None = Field(None, max_length=64)
    until: str | None = Field(None, max_length=64)


class RunRequest(BaseModel):
    """The body of ``POST …/monitors/run``: which monitors (default: every enabled one)."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] | None = Field(None, max_length=MAX_SUBJECTS)


class Acknowledgement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200, description="Who acknowledges.")


class Silence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: str | None = Field(
        max_length=64, description="ISO time with a zone; null lifts the silence."
    )


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http:// or https:// URL.")
    secret_env: str | None = Field(
        None, max_length=128, description="Name of the environment variable holding the secret."
    )
    headers: dict[str, str] | None = Field(None, max_length=20)
    timeout: float | None = Field(None, description="Seconds, at most 60.")


class NewChannel(BaseModel):
    """The body of ``POST /v1/channels``: webhooks only (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["webhook", "command"] = "webhook"
    config: WebhookConfig | dict[str, Any]
    enabled: bool = True
    replace: bool = False


# ---------------------------------------------------------------------- helpers


def _store(request: Request) -> Any:
    return request.app.state.store


def _rows(request: Request, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """A short read of the store's system tables on a cursor of its own."""
    cursor = _store(request).connection.cursor()
    try:
        return cursor.execute(sql, params).fetchall()
    finally:
        cursor.close()


def _require_monitor(request: Request, model: str, name: str) -> None:
    """404 ``unknown_monitor`` unless monitor ``name`` exists and watches ``model``."""
    rows = _rows(request, "SELECT model FROM evalstore.monitors WHERE name = ?", [name])
    if not rows or rows[0][0] != model:
        raise ApiError(
            404,
            "unknown_monitor",
            f"model {model!r} has no monitor {name!r}; list them with "
            f"GET /v1/models/{model}/monitors",
        )


def _monitor_row(request: Request, model: str, name: str) -> dict[str, Any]:
    table = _store(request).monitors(model)
    rows = [row for row in table.to_pylist() if row["name"] == name]
    if not rows:
        raise ApiError(404, "unknown_monitor", f"model {model!r} has no monitor {name!r}")
    return json_result(rows[0])


def _definition(fields: BaseModel) -> dict[str, Any]:
    given = fields.model_dump(exclude_unset=True)
    subjects = given.get("subjects")
    if isinstance(subjects, list) and len(subjects) > MAX_SUBJECTS:
        raise ApiError(
            422,
            "invalid_parameter",
            f"subjects lists {len(subjects)} names; at most {MAX_SUBJECTS}, or '*' for all",
        )
    if isinstance(given.get("learn_period"), list):
        given["learn_period"] = tuple(given["learn_period"])
    if isinstance(given.get("reference"), list):
        given["reference"] = tuple(given["reference"])
    return given


async def _backtest(
    request: Request,
    monitor: str | dict[str, Any],
    since: Any,
    until: Any,
    media: str,
    filename: str,
) -> Response:
    """``Store.backtest_monitor(monitor, since, until)`` (a saved monitor's name or an
    unsaved definition) on a read session, rendered as ``media``."""

    def work(session: Any) -> Response:
        return render(session.backtest_monitor(monitor, since, until), media, filename=filename)

    return await request.app.state.reads.on_session(_store(request), work)


def _require_alert(request: Request, alert_id: int) -> None:
    if not _rows(request, "SELECT 1 FROM evalstore.alerts WHERE alert_id = ?", [alert_id]):
        raise ApiError(
            404, "unknown_alert", f"there is no alert {alert_id}; list them with GET /v1/alerts"
        )


def check_webhook_url(url: str, allow: tuple[str, ...]) -> None:
    """Refuse (403 ``webhook_not_allowed``) a webhook URL a write token may not set.

    With ``allow`` (the server's ``--webhook-allow`` host patterns, shell-style:
    ``hooks.slack.com``, ``*.internal.example``, ``127.0.0.1``) the URL's host must match
    one of them. Without it, a host written as an IP address in a loopback, link-local,
    private, multicast, reserved or unspecified range is refused (the cloud metadata
    address 169.254.169.254 among them), and ``localhost``. Host *names* are not resolved
    here (their address can change after the check): a server whose write tokens are not
    fully trusted should set ``--webhook-allow``. The scheme (http or https) is the
    library's check.

    >>> check_webhook_url("https://hooks.slack.com/services/x", ())
    >>> check_webhook_url("http://10.0.0.5/hook", ("10.0.0.5",))
    >>> check_webhook_url("http://169.254.169.254/latest", ())
    Traceback (most recent call last):
    ...
    server.errors.ApiError: webhook host '169.254.169.254' is a private, loopback, ...
    """
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if not host:
        return  # the library refuses a URL without a host, with its own message
    if allow:
        if not any(fnmatch.fnmatchcase(host, pattern.lower()) for pattern in allow):
            raise ApiError(
                403,
                "webhook_not_allowed",
                f"webhook host {host!r} is not in this server's allow-list "
                f"({', '.join(allow)}); ask its operator to add it with --webhook-allow",
            )
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    internal = host == "localhost" or (
        address is not None
        and (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        )
    )
    if internal:
        raise ApiError(
            403,
            "webhook_not_allowed",
            f"webhook host {host!r} is a private, loopback, link-local or reserved address; "
            "the server accepts those only when its operator lists them with --webhook-allow",
        )


def _public_channels(table: pa.Table) -> list[dict[str, Any]]:
    """Channels as a read token may see them: webhook header values and command
    arguments (which may carry credentials) replaced by ``<hidden>``."""
    import json

    out = []
    for row in table.to_pylist():
        config = json.loads(row["config"]) if isinstance(row["config"], str) else row["config"]
        if row["kind"] == "webhook" and config.get("headers"):
            config["headers"] = dict.fromkeys(config["headers"], HIDDEN)
        if row["kind"] == "command":
            config["argv"] = config["argv"][:1] + [HIDDEN] * (len(config["argv"]) - 1)
        out.append({**row, "config": config})
    return json_result(out)


# ---------------------------------------------------------------------- monitors


@router.get(
    "/v1/models/{model}/monitors", tags=["monitors"], dependencies=read, responses=RESULT_DOC
)
def list_monitors(
    request: Request,
    model: str,
    accept: str | None = Header(None),
    format: ResultFormat | None = FORMAT,
) -> Response:
    """The monitors of ``model`` (``Store.monitors``): definition, version, last run/error."""
    media = negotiate(accept, fmt=format)
    return render(_store(request).monitors(model), media, filename=f"{model}_monitors")


@router.post("/v1/models/{model}/monitors", tags=["monitors"], status_code=201, dependencies=write)
def create_monitor(request: Request, model: str, body: NewMonitor) -> JSONResponse:
    """Define a monitor (``Store.add_monitor``); everything is checked before it is
    stored. Returns the definition with ``definition_version`` 1."""
    fields = _definition(body)
    name = fields.pop("name")
    family, metric, rule = fields.pop("family"), fields.pop("metric"), fields.pop("rule")
    row = _store(request).add_monitor(name, model, family, metric, rule, **fields)
    return JSONResponse(json_result(row), status_code=201)


@router.post(
    "/v1/models/{model}/monitors/run", tags=["monitors"], dependencies=write, responses=RESULT_DOC
)
async def run_monitors(
    request: Request,
    model: str,
    body: RunRequest | None = OPTIONAL_BODY,
    accept: str | None = Header(None),
    format: ResultFormat | None = FORMAT,
) -> Response:
    """Run the model's enabled monitors once (``Store.run_monitors``) and deliver the
    notifications that are due; one row per monitor and subject. Runs in turn with the
    server's background loop (:mod:`server.monitor_loop`), on a session (ingest goes on)."""
    media = negotiate(accept, fmt=format)
    names = None if body is None else body.names
    loop = request.app.state.monitor_loop
    table = await request.app.state.reads.run(lambda: loop.run_once(model, names=names))
    return render(table, media, filename=f"{model}_run")


@router.post(
    "/v1/models/{model}/monitors/backtest",
    tags=["monitors"],
    dependencies=read,
    responses=RESULT_DOC,
)
async def backtest_unsaved(
    request: Request,
    model: str,
    body: UnsavedBacktest,
    accept: str | None = Header(None),
    format: ResultFormat | None = FORMAT,
) -> Response:
    """Backtest an unsaved definition (``Store.backtest_monitor``): when it would have
    fired and resolved over the stored data, windows starting in ``[since, until)``.
    Writes nothing."""
    media = negotiate(accept, fmt=format)
    fields = _definition(body)
    since, until = fields.pop("since", None), fields.pop("until", None)
    definition = {**fields, "model": model}
    return await _backtest(request, definition, since, until, media, f"{model}_backtest")


@router.get("/v1/models/{model}/monitors/{name}", tags=["monitors"], dependencies=read)
def get_monitor(request: Request, model: str, name: str) -> dict[str, Any]:
    """One monitor of ``model``: its definition, version, last run and last error."""
    return _monitor_row(request, model, name)


@router.patch("/v1/models/{model}/monitors/{name}", tags=["monitors"], dependencies=write)
def update_monitor(request: Request, model: str, name: str, body: MonitorChanges) -> dict[str, Any]:
    """Change fields of a monitor (``Store.update_monitor``); the new definition is
    checked whole, and its version goes up unless only ``enabled`` changed."""
    _require_monitor(request, model, name)
    changes = _definition(body)
    if not changes:
        raise ApiError(422, "invalid_parameter", "the body names no field to change")
    return json_result(_store(request).update_monitor(name, **changes))


@router.delete("/v1/models/{model}/monitors/{name}", tags=["monitors"], dependencies=write)
def delete_monitor(request: Request, model: str, name: str) -> dict[str, Any]:
    """Delete a monitor (``Store.delete_monitor``): its open alerts are closed as
    resolved without a notification; resolved alerts stay."""
    _require_monitor(request, model, name)
    _store(request).delete_monitor(name)
    return {"model": model, "deleted": name}


@router.post(
    "/v1/models/{model}/monitors/{name}/backtest",
    tags=["monitors"],
    dependencies=read,
    responses=RESULT_DOC,
)
async def backtest_monitor(
    request: Request,
    model: str,
    name: str,
    body: Period | None = OPTIONAL_BODY,
    accept: str | None = Header(None),
    format: ResultFormat | None = FORMAT,
) -> Response:
    """When a saved monitor would have fired and resolved over the stored data
    (``Store.backtest_monitor``), one row per episode. Writes nothing."""
    media = negotiate(accept, fmt=format)
    _require_monitor(request, model, name)
    period = body or Period()
    return await _backtest(request, name, period.since, period.until, media, f"{name}_backtest")


# ---------------------------------------------------------------------- history

#: A metric or subject name in a history filter (a subject may be a slice's text).
HistoryName = Annotated[str, Field(min_length=1, max_length=1_000)]
METRICS = Query(
    None, max_length=MAX_SUBJECTS, description="Repeat for several: metric=psi&metric=ks."
)
SUBJECTS = Query(
    None, max_length=MAX_SUBJECTS, description="A subject (feature, output or slice text)."
)
SINCE = Query(None, description="Windows starting at or after this time.")
MODEL = Path(pattern=MODEL_NAME.pattern, description="A registered model's name.")
UNTIL = Query(None, description="Windows starting before this time.")


@router.get(
    "/v1/models/{model}/history", tags=["monitors"], dependencies=read, responses=RESULT_DOC
)
async def metric_history(
    request: Request,
    model: str = MODEL,
    family: Literal["drift", "quality", "performance"] | None = None,
    metric: list[HistoryName] | None = METRICS,
    feature: list[HistoryName] | None = SUBJECTS,
    version: str | None = Query(None, min_length=1, max_length=256),
    since: datetime | None = SINCE,
    until: datetime | None = UNTIL,
    limit: int = Query(DEFAULT_HISTORY_ROWS, ge=1, le=MAX_HISTORY_ROWS),
    accept: str | None = Header(None),
    format: ResultFormat | None = FORMAT,
) -> Response:
    """The stored metric series of ``model`` (``Store.history``): one row per window,
    subject and metric of the persisted drift, quality and performance calls (monitors
    persist theirs), with the batch ids each row saw. Reads only; more than ``limit``
    matching rows is a 422 (narrow the filters)."""
    media = negotiate(accept, fmt=format)
    if model in RESERVED_SCHEMAS:  # a name no model can take: there is no such model
        raise ApiError(404, "unknown_model", f"model {model!r} is not registered (reserved name)")
    filters = {"family": family, "metric": metric, "feature": feature, "version": version}

    def work(session: Any) -> Response:
        table = session.history(model, since=since, until=until, limit=limit, **filters)
        check_result_size(table.nbytes, request.app.state.settings.max_result_bytes)
        return render(table, media, filename=f"{model}_history")

    return await request.app.state.reads.on_session(_store(request), work)


# ---------------------------------------------------------------------- alerts


@router.get("/v1/alerts", tags=["alerts"], dependencies=read, responses=RESULT_DOC)
def list_alerts(
    request: Request,
    model: str | None = Query(None, max_length=256),
    monitor: str | None = Query(None, max_length=64),
    state: Literal["pending", "firing", "resolved"] | None = None,
    limit: int = Query(1000, ge=1, le=MAX_ALERTS),
    accept: str | None = Header(None),
    format: ResultFormat | None = FORMAT,
) -> Response:
    """Alert episodes, newest first (``Store.alerts``)."""
    media = negotiate(accept, fmt=format)
    table = _store(request).alerts(model, state, monitor=monitor, limit=limit)
    return render(table, media, filename="alerts")


@router.post("/v1/alerts/{alert_id}/acknowledge", tags=["alerts"], dependencies=write)
def acknowledge_alert(request: Request, alert_id: int, body: Acknowledgement) -> dict[str, Any]:
    """Acknowledge a pending or firing alert (who, and when); its state is unchanged."""
    _require_alert(request, alert_id)
    return json_result(_store(request).acknowledge_alert(alert_id, body.by))


@router.post("/v1/alerts/{alert_id}/silence", tags=["alerts"], dependencies=write)
def silence_alert(request: Request, alert_id: int, body: Silence) -> dict[str, Any]:
    """Send no notification for this alert (and later episodes of its monitor and
    subject) until ``until``; ``null`` lifts the silence."""
    _require_alert(request, alert_id)
    return json_result(_store(request).silence_alert(alert_id, body.until))


# ---------------------------------------------------------------------- channels


@router.get("/v1/channels", tags=["alerts"], dependencies=read)
def list_channels(request: Request) -> list[dict[str, Any]]:
    """The notification channels; webhook header values and command arguments are
    shown as ``<hidden>``."""
    return _public_channels(_store(request).channels())


def _refuse_command(what: str) -> ApiError:
    return ApiError(
        403,
        "command_channel_refused",
        f"{what}: a command channel runs a program on the server's machine, so it is "
        "created, replaced and deleted only from Python or the CLI on that machine "
        "(`evalstore channel add`), never over HTTP; use a webhook",
    )


def _channel_kind(request: Request, name: str) -> str | None:
    rows = _rows(request, "SELECT kind FROM evalstore.channels WHERE name = ?", [name])
    return rows[0][0] if rows else None


@router.post("/v1/channels", tags=["alerts"], status_code=201, dependencies=write)
def create_channel(request: Request, body: NewChannel) -> JSONResponse:
    """Add a webhook channel (``kind`` ``command`` is refused: 403). ``config``: ``url``,
    optional ``secret_env`` (the name of an environment variable on the server holding
    the HMAC secret), ``headers`` and ``timeout``. The URL's host must pass the server's
    webhook policy (``--webhook-allow``)."""
    if body.kind == "command":
        raise _refuse_command(f"channel {body.name!r}")
    if body.replace and _channel_kind(request, body.name) == "command":
        raise _refuse_command(f"channel {body.name!r} is a command channel")
    config = body.config
    given = config.model_dump(exclude_none=True) if isinstance(config, BaseModel) else config
    url = given.get("url")
    if isinstance(url, str):
        check_webhook_url(url, request.app.state.settings.webhook_allow)
    store = _store(request)
    store._writable()
    context = store._context()
    from evalstore.monitors import channels

    with context.lock:
        channel = channels.add_channel(
            context.connection, body.name, "webhook", given, enabled=body.enabled,
            replace=body.replace, trusted=False,
        )  # fmt: skip
    row = {"name": channel.name, "kind": channel.kind, "config": channel.config,
           "enabled": channel.enabled}  # fmt: skip
    return JSONResponse(_public_channels(pa.Table.from_pylist([row]))[0], status_code=201)


@router.delete("/v1/channels/{name}", tags=["alerts"], dependencies=write)
def delete_channel(request: Request, name: str) -> dict[str, Any]:
    """Delete a webhook channel; its delivered and failed notifications stay in the
    outbox. A command channel cannot be deleted over HTTP (403)."""
    kind = _channel_kind(request, name)
    if kind is None:
        raise ApiError(
            404, "unknown_channel", f"there is no channel {name!r}; list them: GET /v1/channels"
        )
    if kind == "command":
        raise _refuse_command(f"channel {name!r} is a command channel")
    store = _store(request)
    store._writable()
    context = store._context()
    from evalstore.monitors import channels

    with context.lock:
        channels.delete_channel(context.connection, name, trusted=False)
    return {"deleted": name}
