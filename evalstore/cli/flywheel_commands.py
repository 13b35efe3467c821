"""The labeling flywheel's commands: ``suggest`` examples to label, manage the label
``requests`` it records, ``select`` training data and record it as a named ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from evalstore.cli.common import emit, open_store, output_options, parse_names, parse_reference

if TYPE_CHECKING:
    import pyarrow as pa

    from evalstore.store import Store


def _weights(text: str | None) -> dict[str, float] | None:
    """--weights entropy=0.5,novelty=0.5"""
    if not text:
        return None
    weights = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter("use NAME=WEIGHT,NAME=WEIGHT", param_hint="'--weights'")
    return weights


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("-k", "k", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--strategy",
    default="mix",
    show_default=True,
    type=click.Choice(
        ["least_confidence", "margin", "entropy", "committee", "novelty", "slices",
         "diversity", "mix", "random"]
    ),
)  # fmt: skip
@click.option("--version", "-v", "version", help="Version whose predictions are ranked.")
@click.option("--since", help="Only predictions at or after this ISO time.")
@click.option("--until", help="Only predictions before this ISO time.")
@click.option("--window", help="Only the last interval of predictions, e.g. '7 days'.")
@click.option("--where", help="SQL predicate over the serving features.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weights", help="mix weights, e.g. entropy=0.6,novelty=0.4.")
@click.option("--by", help="slices: comma-separated categorical features.")
@click.option("--reference", "-r", default="training", show_default=True)
@click.option("--expires-in", default="14 days", show_default=True, help="'never' to keep open.")
@click.option("--no-record", is_flag=True, help="Do not record label requests.")
@output_options()
@click.pass_context
def suggest(ctx: click.Context, model: str, k: int, strategy: str, **options: Any) -> None:
    """Suggest examples to label (best first) and record them as open label requests.

    \b
    Example:
      evalstore suggest --model fraud -k 200 --strategy mix --weights entropy=0.6,novelty=0.4
    """
    fmt, limit = options.pop("fmt"), options.pop("limit")
    record = not options.pop("no_record")
    expires = options.pop("expires_in")
    with open_store(ctx, read_only=not record) as store:
        table = store.suggest(
            model,
            k=k,
            strategy=strategy,
            version=options["version"],
            since=options["since"],
            until=options["until"],
            window=options["window"],
            where=options["where"],
            seed=options["seed"],
            weights=_weights(options["weights"]),
            by=parse_names(options["by"]),
            reference=parse_reference(options["reference"]),
            record=record,
            expires_in=None if expires == "never" else expires,
        )
    emit(
        table,
        fmt,
        limit,
        columns=["rank", "example_id", "picked_by", "priority", "request_id", "reason"],
        wrap=("reason",),
        drop_empty=True,
    )


@click.group()
def requests() -> None:
    """List, cancel and expire label requests (what `suggest` asked labelers for).

    \b
    Example:
      evalstore requests list --model fraud --status open
    """


@requests.command("list")
@click.option("--model", "-m", help="Only this model.")
@click.option(
    "--status", type=click.Choice(["open", "fulfilled", "expired", "cancelled"]), multiple=True
)
@click.option("--strategy", help="Only requests picked by this strategy.")
@output_options()
@click.pass_context
def requests_list(
    ctx: click.Context,
    model: str | None,
    status: tuple[str, ...],
    strategy: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """List label requests, newest first (overdue open ones are marked expired first).

    \b
    Example:
      evalstore requests list --model fraud --status open --status expired -f csv
    """
    with open_store(ctx) as store:
        table = store.label_requests(model, status=list(status) or None, strategy=strategy)
    shown = ["request_id", "model", "example_id", "strategy", "priority", "status",
             "requested_at", "expires_at", "fulfilled_at", "reason"]  # fmt: skip
    emit(table, fmt, limit, columns=shown, wrap=("reason",), drop_empty=True)


@requests.command("cancel")
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--example-id", "example_ids", multiple=True, help="Cancel this example's request.")
@click.option("--request-id", "request_ids", type=int, multiple=True, help="Cancel this request.")
@click.option("--strategy", help="Cancel the open requests of this strategy.")
@click.option("--all", "everything", is_flag=True, help="Cancel every open request of the model.")
@click.pass_context
def requests_cancel(
    ctx: click.Context,
    model: str,
    example_ids: tuple[str, ...],
    request_ids: tuple[int, ...],
    strategy: str | None,
    everything: bool,
) -> None:
    """Cancel open label requests (cancelled examples may be suggested again).

    \b
    Example:
      evalstore requests cancel --model fraud --request-id 17 --request-id 18
    """
    if not (example_ids or request_ids or strategy or everything):
        raise click.UsageError(
            "name what to cancel: --example-id, --request-id, --strategy or --all"
        )
    with open_store(ctx) as store:
        n = store.cancel_requests(
            model,
            example_ids=list(example_ids) or None,
            request_ids=list(request_ids) or None,
            strategy=strategy,
        )
    click.echo(f"cancelled {n} request{'s' if n != 1 else ''}")


@requests.command("expire")
@click.option("--model", "-m", help="Only this model.")
@click.option("--now", help="Expire as if it were this ISO time (default: now).")
@click.pass_context
def requests_expire(ctx: click.Context, model: str | None, now: str | None) -> None:
    """Mark open requests past their expiry time as expired.

    \b
    Example:
      evalstore requests expire --model fraud
    """
    with open_store(ctx) as store:
        n = store.expire_requests(model, now=now)
    click.echo(f"expired {n} request{'s' if n != 1 else ''}")


def _selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options defining a training-data selection (select, snapshot create)."""
    for decorator in reversed(
        [
            click.option("--model", "-m", required=True, help="Registered model name."),
            click.option("--where", help="SQL predicate over the feature columns."),
            click.option(
                "--env",
                multiple=True,
                type=click.Choice(["training", "validation", "serving"]),
                help="Only rows of this env (repeatable; default: all).",
            ),
            click.option("--since", help="Feature rows at or after this ISO time."),
            click.option("--until", help="Feature rows before this ISO time."),
            click.option("--unlabeled", is_flag=True, help="Keep rows without a label too."),
            click.option("--version", "-v", "version", help="Predictions of this version."),
            click.option("--columns", help="Comma-separated feature columns (default: all)."),
            click.option("--as-of", help="Labels and rows as committed at this ISO time."),
        ]
    ):
        command = decorator(command)
    return command


def _selection_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """The selection options as the arguments of ``Store.selection`` and ``Store.select``."""
    return dict(
        model=options["model"],
        where=options["where"],
        env=list(options["env"]) or None,
        since=options["since"],
        until=options["until"],
        labeled_only=not options["unlabeled"],
        version=options["version"],
        columns=parse_names(options["columns"]),
        as_of=options["as_of"],
    )


def _selection(store: Store, options: dict[str, Any]) -> Any:
    """The selection the options define (for export and snapshots)."""
    return store.selection(**_selection_arguments(options))


@click.command("select")
@_selection_options
@click.option("--out", "-o", type=click.Path(dir_okay=True), help="Write Parquet here.")
@click.option("--partition-by", help="Comma-separated columns: a hive-partitioned directory.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@output_options()
@click.pass_context
def select_rows(ctx: click.Context, **options: Any) -> None:
    """Select training data (features + latest labels + predictions); print or write Parquet.

    \b
    Example:
      evalstore select --model fraud --env serving --as-of 2026-11-30 --out train.parquet
    """
    with open_store(ctx, read_only=options["out"] is None) as store:
        if options["out"]:
            done = store.export(
                _selection(store, options),
                options["out"],
                partition_by=parse_names(options["partition_by"]),
                overwrite=options["overwrite"],
            )
            click.echo(f"wrote {done['rows']:,} rows to {done['path']}")
            return
        table = store.select(**_selection_arguments(options))
    emit(table, options["fmt"], options["limit"], columns=_selection_view(table), drop_empty=True)


def _selection_view(table: pa.Table) -> list[str]:
    """Columns of `select` in reading order: id, time, label and prediction, the features,
    then bookkeeping; the terminal's width decides how many are shown."""
    first = ["example_id", "ts", "label", "version", "prediction", "score"]
    last = ["env", "dataset", "batch_id", "label_ts", "label_source"]
    names = table.column_names
    middle = [n for n in names if n not in first and n not in last]
    return [n for n in first if n in names] + middle + [n for n in last if n in names]


@click.group()
def snapshot() -> None:
    """Create, list, show and delete named, reproducible training-data snapshots.

    \b
    Example:
      evalstore snapshot create train-2026-11 --model fraud --env serving
    """


@snapshot.command("create")
@click.argument("name")
@_selection_options
@click.option("--replace", is_flag=True, help="Overwrite a snapshot of the same name.")
@click.pass_context
def snapshot_create(ctx: click.Context, name: str, replace: bool, **options: Any) -> None:
    """Record a snapshot: definition, as-of time, row count and content hash.

    \b
    Example:
      evalstore snapshot create train-2026-11 --model fraud --where "region = 'north'"
    """
    with open_store(ctx) as store:
        info = store.snapshot(name, _selection(store, options), replace=replace)
    click.echo(
        f"snapshot {info['name']}: {info['row_count']:,} rows of {info['model']} as of "
        f"{info['as_of'].isoformat()} (hash {info['content_hash']})"
    )


@snapshot.command("list")
@click.option("--model", "-m", help="Only this model.")
@output_options()
@click.pass_context
def snapshot_list(ctx: click.Context, model: str | None, fmt: str, limit: int | None) -> None:
    """List snapshots, newest first.

    \b
    Example:
      evalstore snapshot list --model fraud
    """
    with open_store(ctx, read_only=True) as store:
        table = store.snapshots(model)
    shown = [n for n in table.column_names if n != "definition"]
    emit(table, fmt, limit, columns=shown)


@snapshot.command("show")
@click.argument("name")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write its rows to Parquet.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.pass_context
def snapshot_show(ctx: click.Context, name: str, out: str | None, overwrite: bool) -> None:
    """Show a snapshot's record; with --out, write its rows (verified by hash) to Parquet.

    \b
    Example:
      evalstore snapshot show train-2026-11 --out train-2026-11.parquet
    """
    with open_store(ctx, read_only=True) as store:
        info = store.snapshot_info(name)
        for key, value in info.items():
            shown = value.to_json() if key == "definition" else value
            click.echo(f"{key}: {shown}")
        if out:
            rows = store.load_snapshot(name)
            done = store.export(rows, out, overwrite=overwrite)
            click.echo(f"wrote {done['rows']:,} rows to {done['path']}")


@snapshot.command("delete")
@click.argument("name")
@click.pass_context
def snapshot_delete(ctx: click.Context, name: str) -> None:
    """Delete a snapshot's record (the rows it selected stay in the store).

    \b
    Example:
      evalstore snapshot delete train-2026-11
    """
    with open_store(ctx) as store:
        store.delete_snapshot(name)
    click.echo(f"deleted snapshot {name}")
