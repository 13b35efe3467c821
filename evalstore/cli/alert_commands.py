"""Monitors, alerts and channels on the command line: ``evalstore monitor add|list|run|
delete|backtest|apply``, ``evalstore alerts [list|ack|silence]`` and ``evalstore channel
add|list|delete``.

Each command hands its options to the store's monitoring methods
(:mod:`evalstore.facade.monitoring`). The CLI is a local, trusted caller: it may create
command channels, which the HTTP server never can.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click

from evalstore.cli.common import emit, open_store, output_options, parse_names, parse_reference

#: Columns shown with --format table.
MONITORS_VIEW = ["name", "model", "family", "metric", "subjects", "rule", "definition_version",
                 "enabled", "last_run", "last_error"]  # fmt: skip
RUN_VIEW = ["monitor", "subject", "window_start", "value", "lower", "upper", "verdict",
            "transitions", "state", "error"]  # fmt: skip
ALERTS_VIEW = ["alert_id", "monitor", "subject", "state", "window_start", "value", "lower",
               "upper", "fired_at", "resolved_at", "acknowledged_by", "silenced_until"]  # fmt: skip
EPISODES_VIEW = ["subject", "state", "first_window_start", "fired_at", "resolved_at",
                 "breaching_windows", "value", "reason"]  # fmt: skip


def _json_value(text: str) -> Any:
    """``text`` as JSON when it parses, else the text itself (``bins=20`` is 20)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} must be NAME=VALUE", param_hint="--option")
        out[name] = _json_value(value)
    return out


def _period(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    start, sep, end = text.partition("..")
    if not sep or not start or not end:
        raise click.BadParameter(f"{text!r} must be START..END", param_hint="--learn-period")
    return start, end


def _rule(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not valid JSON: {error}", param_hint="--rule") from None


# ---------------------------------------------------------------------- monitor


@click.group()
def monitor() -> None:
    """Monitors: named definitions of a metric and a rule that raise alerts.

    \b
    Example:
      evalstore monitor add income_psi --model fraud --family drift --metric psi \\
        --subjects income --rule '{"type": "fixed", "direction": "above", "value": 0.2}'
      evalstore monitor run
      evalstore monitor apply monitors.toml --dry-run
    """


@monitor.command("add")
@click.argument("name")
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option(
    "--family",
    required=True,
    type=click.Choice(["drift", "quality", "performance", "health", "skew", "summary_stats",
                       "estimated_performance"]),
)  # fmt: skip
@click.option(
    "--metric",
    required=True,
    help="Drift method, quality check, performance, health or skew metric, summary "
    "statistic, estimated metric.",
)
@click.option("--rule", "rule_text", required=True, help="The rule as JSON (docs: monitoring).")
@click.option(
    "--subjects", default="*", show_default=True,
    help="Comma-separated features (drift, quality) or versions (performance, "
    "estimated_performance), or '*'.",
)  # fmt: skip
@click.option("--window", "-w", default="1 day", show_default=True, help="A time interval.")
@click.option("--reference", "-r", help="training, validation, dataset:TAG, previous:N, A..B.")
@click.option("--where", help="SQL predicate over feature columns (a slice).")
@click.option("--version", "-v", "version", help="Only examples this version predicted.")
@click.option("--option", "option_pairs", multiple=True, help="Family option NAME=VALUE.")
@click.option("--learn-period", help="START..END: the windows a 'learned' rule learns from.")
@click.option("--disabled", is_flag=True, help="Store it disabled (not run).")
@click.pass_context
def monitor_add(
    ctx: click.Context,
    name: str,
    model: str,
    family: str,
    metric: str,
    rule_text: str,
    subjects: str,
    window: str,
    reference: str | None,
    where: str | None,
    version: str | None,
    option_pairs: tuple[str, ...],
    learn_period: str | None,
    disabled: bool,
) -> None:
    """Define a monitor NAME (checked before it is stored).

    \b
    Example:
      evalstore monitor add auc --model fraud --family performance --metric roc_auc \\
        --rule '{"type": "trailing", "n": 14, "k": 3, "direction": "below"}'
    """
    with open_store(ctx) as store:
        row = store.add_monitor(
            name, model, family, metric, _rule(rule_text),
            subjects="*" if subjects == "*" else parse_names(subjects),
            window=window,
            reference=None if reference is None else parse_reference(reference),
            where=where, version=version, options=_options(option_pairs),
            learn_period=_period(learn_period), enabled=not disabled,
        )  # fmt: skip
    click.echo(f"monitor {row['name']!r} added (version {row['definition_version']})")


@monitor.command("list")
@click.option("--model", "-m", help="Only this model's monitors.")
@output_options()
@click.pass_context
def monitor_list(ctx: click.Context, model: str | None, fmt: str, limit: int | None) -> None:
    """List the monitors with their last run and last error.

    \b
    Example:
      evalstore monitor list --model fraud
    """
    with open_store(ctx, read_only=True) as store:
        table = store.monitors(model)
    emit(table, fmt, limit, columns=MONITORS_VIEW, wrap=("rule", "last_error"))


@monitor.command("run")
@click.option("--model", "-m", help="Only this model's monitors.")
@click.option("--name", "names", multiple=True, help="Only this monitor (repeatable).")
@click.option("--deliver/--no-deliver", default=True, show_default=True,
              help="Send the due notifications after the run.")  # fmt: skip
@output_options()
@click.pass_context
def monitor_run(
    ctx: click.Context,
    model: str | None,
    names: tuple[str, ...],
    deliver: bool,
    fmt: str,
    limit: int | None,
) -> None:
    """Run every enabled monitor once (for cron), then send the due notifications.

    A failing monitor is reported (verdict 'error') and the others run; the exit
    status is 1 when any monitor failed.

    \b
    Example:
      evalstore monitor run --model fraud
    """
    with open_store(ctx) as store:
        table = store.run_monitors(model, names=list(names) or None)
        sent = store.deliver_notifications() if deliver else None
    emit(table, fmt, limit, columns=RUN_VIEW, wrap=("error",))
    if sent is not None and sent.num_rows and fmt == "table":
        states = sent.column("state").to_pylist()
        click.echo(
            f"notifications: {states.count('delivered')} delivered, "
            f"{states.count('due')} to retry, {states.count('failed')} failed"
        )
    if "error" in table.column("verdict").to_pylist():
        ctx.exit(1)


@monitor.command("defaults")
@click.argument("model")
@click.option("--window", "-w", default="1 day", show_default=True, help="A time interval.")
@click.option("--reference", "-r", default="training", show_default=True,
              help="training, validation, dataset:TAG, previous:N, A..B.")  # fmt: skip
@click.option("--replace", is_flag=True, help="Redefine defaults whose definition differs.")
@output_options()
@click.pass_context
def monitor_defaults(
    ctx: click.Context,
    model: str,
    window: str,
    reference: str,
    replace: bool,
    fmt: str,
    limit: int | None,
) -> None:
    """Create MODEL's default monitors (performance per version, drift per feature,
    NaN/inf, out-of-range, unseen categories), named MODEL.FAMILY.METRIC. A second
    run changes nothing; the change column says what happened to each.

    \b
    Example:
      evalstore monitor defaults fraud
      evalstore monitor defaults fraud --replace
    """
    with open_store(ctx) as store:
        table = store.add_default_monitors(
            model, window=window, reference=parse_reference(reference), replace=replace
        )
    emit(
        table, fmt, limit, columns=["name", "subjects", "rule", "change"], wrap=("subjects", "rule")
    )


@monitor.command("delete")
@click.argument("name")
@click.pass_context
def monitor_delete(ctx: click.Context, name: str) -> None:
    """Delete monitor NAME (its open alerts are closed without a notification).

    \b
    Example:
      evalstore monitor delete income_psi
    """
    with open_store(ctx) as store:
        store.delete_monitor(name)
    click.echo(f"monitor {name!r} deleted")


@monitor.command("backtest")
@click.argument("name")
@click.option("--from", "source", type=click.Path(exists=True, dir_okay=False),
              help="Take NAME's definition from this monitors file (unsaved).")  # fmt: skip
@click.option("--since", help="First window start (ISO time).")
@click.option("--until", help="End of the windows (ISO time, exclusive).")
@output_options()
@click.pass_context
def monitor_backtest(
    ctx: click.Context,
    name: str,
    source: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """When monitor NAME would have fired and resolved on the stored data.

    Writes nothing. With --from, NAME is read from a monitors file, so a rule can be
    tuned before it is applied.

    \b
    Example:
      evalstore monitor backtest income_psi --since 2024-01-01
      evalstore monitor backtest income_psi --from monitors.toml
    """
    from evalstore.monitors import apply

    definition: Any = name
    if source is not None:
        wanted = apply.parse(Path(source).read_text())
        if name not in wanted:
            raise click.ClickException(f"{source} has no [monitors.{name}]")
        definition = {"name": name, **wanted[name]}
    with open_store(ctx, read_only=True) as store:
        table = store.backtest_monitor(definition, since, until)
    emit(table, fmt, limit, columns=EPISODES_VIEW, wrap=("reason",))


@monitor.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the changes, write nothing.")
@click.pass_context
def monitor_apply(ctx: click.Context, path: str, dry_run: bool) -> None:
    """Make the stored monitors match the TOML file PATH (monitors as code).

    Prints the diff first (+ create, ~ update, - delete), then applies it in one
    transaction; monitors not in the file are deleted. Applying the same file again
    changes nothing.

    \b
    Example:
      evalstore monitor apply monitors.toml --dry-run
      evalstore monitor apply monitors.toml
    """
    text = Path(path).read_text()
    with open_store(ctx) as store:
        plan = store.apply_monitors(text, dry_run=True)
        for line in plan.column("line").to_pylist():
            click.echo(line)
        changed = [a for a in plan.column("action").to_pylist() if a != "unchanged"]
        if dry_run:
            click.echo(f"dry run: {len(changed)} change(s), nothing written")
            return
        if changed:
            store.apply_monitors(text)
        click.echo(f"applied {len(changed)} change(s)" if changed else "nothing to change")


# ---------------------------------------------------------------------- alerts


@click.group(invoke_without_command=True)
@click.pass_context
def alerts(ctx: click.Context) -> None:
    """Alert episodes: list them (the default), acknowledge or silence one.

    \b
    Example:
      evalstore alerts
      evalstore alerts list --state firing
      evalstore alerts ack 12 --by alice
      evalstore alerts silence 12 --until 2024-06-01T00:00:00Z
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(alerts_list)


@alerts.command("list")
@click.option("--model", "-m", help="Only this model's alerts.")
@click.option("--monitor", help="Only this monitor's alerts.")
@click.option("--state", type=click.Choice(["pending", "firing", "resolved"]))
@output_options()
@click.pass_context
def alerts_list(
    ctx: click.Context,
    model: str | None = None,
    monitor: str | None = None,
    state: str | None = None,
    fmt: str = "table",
    limit: int | None = None,
) -> None:
    """List alert episodes, newest first.

    \b
    Example:
      evalstore alerts list --model fraud --state firing
    """
    with open_store(ctx, read_only=True) as store:
        table = store.alerts(model, state, monitor=monitor)
    emit(table, fmt, limit, columns=ALERTS_VIEW)


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who acknowledges.")
@click.pass_context
def alerts_ack(ctx: click.Context, alert_id: int, by: str) -> None:
    """Acknowledge alert ALERT_ID (its state does not change).

    \b
    Example:
      evalstore alerts ack 12 --by alice
    """
    with open_store(ctx) as store:
        store.acknowledge_alert(alert_id, by)
    click.echo(f"alert {alert_id} acknowledged by {by}")


@alerts.command("silence")
@click.argument("alert_id", type=int)
@click.option("--until", required=True, help="ISO time; 'none' lifts the silence.")
@click.pass_context
def alerts_silence(ctx: click.Context, alert_id: int, until: str) -> None:
    """Send no notification for alert ALERT_ID (and later episodes of its monitor and
    subject) until a time.

    \b
    Example:
      evalstore alerts silence 12 --until 2024-06-01T00:00:00Z
    """
    stamp = None if until.lower() == "none" else until
    with open_store(ctx) as store:
        store.silence_alert(alert_id, stamp)
    click.echo(
        f"alert {alert_id} silenced until {stamp}" if stamp else f"alert {alert_id} unsilenced"
    )


# ---------------------------------------------------------------------- channel


@click.group()
def channel() -> None:
    """Notification channels: webhooks and local commands.

    \b
    Example:
      evalstore channel add ops --url https://hooks.example.com/x --secret-env OPS_SECRET
      evalstore channel add pager --command "/usr/local/bin/page --team ml"
      evalstore channel list
    """


@channel.command("add")
@click.argument("name")
@click.option("--url", help="Webhook URL (http or https).")
@click.option("--secret-env", help="Environment variable holding the HMAC secret.")
@click.option("--header", "headers", multiple=True, help="Extra header NAME:VALUE.")
@click.option("--command", "command_line", help="A program and its arguments (no shell).")
@click.option("--timeout", type=float, help="Seconds (webhook default 5, command 10).")
@click.option("--replace", is_flag=True, help="Overwrite a channel of that name.")
@click.pass_context
def channel_add(
    ctx: click.Context,
    name: str,
    url: str | None,
    secret_env: str | None,
    headers: tuple[str, ...],
    command_line: str | None,
    timeout: float | None,
    replace: bool,
) -> None:
    """Add channel NAME: a webhook (--url) or a command (--command).

    \b
    Example:
      evalstore channel add ops --url https://hooks.slack.com/services/T/B/X
    """
    if (url is None) == (command_line is None):
        raise click.UsageError("give exactly one of --url (webhook) or --command")
    config: dict[str, Any]
    if url is not None:
        kind, config = "webhook", {"url": url}
        if secret_env:
            config["secret_env"] = secret_env
        if headers:
            pairs = [h.partition(":") for h in headers]
            if any(not sep for _, sep, _ in pairs):
                raise click.BadParameter("must be NAME:VALUE", param_hint="--header")
            config["headers"] = {k.strip(): v.strip() for k, _, v in pairs}
    else:
        if secret_env or headers:
            raise click.UsageError("--secret-env and --header are for webhooks (--url)")
        kind, config = "command", {"argv": shlex.split(command_line or "")}
    if timeout is not None:
        config["timeout"] = timeout
    with open_store(ctx) as store:
        store.add_channel(name, kind, config, replace=replace)
    click.echo(f"{kind} channel {name!r} added")


@channel.command("list")
@output_options()
@click.pass_context
def channel_list(ctx: click.Context, fmt: str, limit: int | None) -> None:
    """List the notification channels.

    \b
    Example:
      evalstore channel list --format json
    """
    with open_store(ctx, read_only=True) as store:
        table = store.channels()
    emit(table, fmt, limit, wrap=("config",))


@channel.command("delete")
@click.argument("name")
@click.pass_context
def channel_delete(ctx: click.Context, name: str) -> None:
    """Delete channel NAME (its outbox rows stay).

    \b
    Example:
      evalstore channel delete ops
    """
    with open_store(ctx) as store:
        store.delete_channel(name)
    click.echo(f"channel {name!r} deleted")
