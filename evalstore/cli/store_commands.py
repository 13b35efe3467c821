"""Commands that build the store and put data in it: ``init``, ``register``, ``models``,
``ingest features|predictions|labels`` and ``sql`` to query it.

File reading, the early duplicate check, the progress bar and the receipt of
``ingest`` live in :mod:`evalstore.cli.ingest_files`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from evalstore.cli.common import connect, emit, open_store, output_options


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create a store (or bring an existing one up to date: migrations and macros).

    \b
    Example:
      evalstore init monitoring.duckdb
    """
    target = path or ctx.obj["store"]
    with connect(ctx, target) as store:
        version = store.sql("SELECT value FROM evalstore.meta WHERE key = 'schema_version'")
    click.echo(f"store {target} ready (schema version {version.column(0)[0]})")


@click.command()
@click.option("--model", "-m", required=True, help="Model name (lower-case identifier).")
@click.option("--version", "-v", "version", required=True, help="Version label, e.g. v3.")
@click.option("--task", required=True, type=click.Choice(["binary", "multiclass", "regression"]))
@click.option("--classes", help="Comma-separated class labels, e.g. 0,1 or cat,dog,bird.")
@click.option("--positive-class", help="Binary only: the positive class (default: the second).")
@click.option("--threshold", type=float, help="Binary only: score threshold (default 0.5).")
@click.option("--trained-at", help="ISO-8601 time the version was trained.")
@click.option("--deployed-at", help="ISO-8601 time the version was deployed.")
@click.option("--stage", help="e.g. development, shadow, production, retired.")
@click.option("--training-dataset", help="Tag of the dataset it was trained on.")
@click.option("--params", help="JSON object of hyper-parameters.")
@click.option("--dependencies", help='JSON object of package versions, e.g. {"numpy": "2.1"}.')
@click.option("--replace", is_flag=True, help="Overwrite an existing version's metadata.")
@click.pass_context
def register(ctx: click.Context, **options: Any) -> None:
    """Register a model version (the first version creates the model's tables).

    \b
    Example:
      evalstore register --model fraud --version v1 --task binary --classes 0,1 \\
          --threshold 0.3 --stage production --dependencies '{"xgboost": "2.1.0"}'
    """
    classes = options.pop("classes")
    for key in ("params", "dependencies"):
        if options[key] is not None:
            try:
                options[key] = json.loads(options[key])
            except json.JSONDecodeError as error:
                raise click.ClickException(f"--{key} is not valid JSON: {error}") from error
    with open_store(ctx) as store:
        row = store.register_model(
            options.pop("model"),
            options.pop("version"),
            options.pop("task"),
            classes=[_class_value(c) for c in classes.split(",")] if classes else None,
            positive_class=_class_value(options.pop("positive_class")),
            **options,
        )
    click.echo(f"registered {row['model']} {row['version']} ({row['task']})")


def _class_value(text: str | None) -> str | int | None:
    """Class labels typed on the command line: integers stay integers."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


#: Columns of `models` shown as a table (csv and json carry all of them).
MODELS_VIEW = ["model", "version", "task", "stage", "classes", "threshold", "trained_at",
               "deployed_at", "retired_at", "training_dataset"]  # fmt: skip


@click.command()
@click.option("--model", "-m", help="Only this model.")
@output_options()
@click.pass_context
def models(ctx: click.Context, model: str | None, fmt: str, limit: int | None) -> None:
    """List registered model versions.

    \b
    Example:
      evalstore models --model fraud --format json
    """
    with open_store(ctx, read_only=True) as store:
        table = store.models(model)
    emit(table, fmt, limit, columns=MODELS_VIEW, drop_empty=True)


@click.group()
def ingest() -> None:
    """Ingest features, predictions or labels from a Parquet, CSV or Arrow IPC file.

    \b
    Example:
      evalstore ingest predictions --model fraud --version v1 preds.parquet
    """


def _ingest_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.argument("file", type=click.Path(exists=True, dir_okay=False))(command)
    command = click.option(
        "--ts-column",
        default="ts",
        show_default=True,
        help="Column of event times; without it, rows get the time of ingest.",
    )(command)
    command = click.option("--id-column", default="example_id", show_default=True)(command)
    command = click.option("--model", "-m", required=True, help="Registered model name.")(command)
    return command


def _ingest(ctx: click.Context, file: str, log: Callable[..., Any], **probe: Any) -> None:
    """Stream ``file`` into the store with ``log(store, reader)``; print the receipt.

    ``probe`` (kind, scope, value, remedy, id_column) turns on the early duplicate check
    (:func:`evalstore.cli.ingest_files.refuse_stored_ids`) before anything is streamed.
    """
    from evalstore.cli import ingest_files as cli_ingest

    with open_store(ctx) as store:
        first, reader = cli_ingest.read(file)
        if probe:
            cli_ingest.refuse_stored_ids(store, ctx.params["model"], first, file=file, **probe)
        if ctx.params.get("labeled_at"):
            when = cli_ingest.parse_labeled_at(ctx.params["labeled_at"])
            if ctx.params["ts_column"] in reader.schema.names:
                raise click.UsageError(
                    f"{file} has a time column {ctx.params['ts_column']!r} and --labeled-at "
                    "was given: keep one (drop --labeled-at to use the column)",
                    ctx,
                )
            log = _with_labeled_at(log, when)
        receipt = cli_ingest.run_with_progress(file, reader, lambda r: log(store, r))
    for line in cli_ingest.receipt_lines(receipt):
        click.echo(line)


def _with_labeled_at(log: Callable[..., Any], when: Any) -> Callable[..., Any]:
    return lambda store, reader: log(store, reader, labeled_at=when)


@ingest.command("features")
@_ingest_options
@click.option("--env", type=click.Choice(["training", "validation", "serving"]), default="serving")
@click.option("--dataset", help="Tag for these rows, e.g. train_2026_08.")
@click.option("--on-conflict", type=click.Choice(["error", "replace", "ignore"]), default="error")
@click.pass_context
def ingest_features(ctx: click.Context, model: str, file: str, **options: Any) -> None:
    """Ingest feature rows (one column per feature).

    \b
    Example:
      evalstore ingest features --model fraud --env training --dataset train_q3 train.parquet
    """
    probe = {}
    if options["on_conflict"] == "error":
        probe = dict(
            kind="features",
            scope="env",
            value=options["env"],
            id_column=options["id_column"],
            remedy="pass --on-conflict replace to overwrite them or --on-conflict ignore "
            "to keep the stored rows",
        )
    _ingest(
        ctx,
        file,
        lambda store, reader, **ts: store.log_features(
            model, reader, origin=file, **{**options, **ts}
        ),
        **probe,
    )


@ingest.command("predictions")
@_ingest_options
@click.option("--version", "-v", "version", required=True, help="Registered model version.")
@click.option("--prediction-column", default="prediction", show_default=True)
@click.option("--score-column", default="score", show_default=True)
@click.option("--probability-columns", help="Comma-separated columns named after the classes.")
@click.option("--latency-column", help="Column of latency in milliseconds.")
@click.pass_context
def ingest_predictions(ctx: click.Context, model: str, file: str, **options: Any) -> None:
    """Ingest predictions of a registered model version.

    \b
    Example:
      evalstore ingest predictions --model fraud --version v1 --latency-column ms preds.csv
    """
    columns = options.pop("probability_columns")
    options["probability_columns"] = columns.split(",") if columns else None
    _ingest(
        ctx,
        file,
        lambda store, reader: store.log_predictions(model, reader, origin=file, **options),
        kind="predictions",
        scope="version",
        value=options["version"],
        id_column=options["id_column"],
        remedy="a version predicts an example once; leave out the rows already stored",
    )


@ingest.command("labels")
@_ingest_options
@click.option("--label-column", default="label", show_default=True)
@click.option("--source", help="Where the labels come from, e.g. chargebacks.")
@click.option(
    "--labeled-at",
    help="ISO-8601 time every label of the file was given (UTC unless it has an offset); "
    "for a file without a time column, instead of the time of ingest.",
)
@click.pass_context
def ingest_labels(
    ctx: click.Context, model: str, file: str, labeled_at: str | None, **options: Any
) -> None:
    """Ingest ground-truth labels (append-only; a later label corrects an earlier one).

    Label times drive label delay and completeness. A column of the file gives them
    (--ts-column, default ts), or one time for the whole file does (--labeled-at);
    without either, labels get the time of ingest, so old labels look late.

    \b
    Example:
      evalstore ingest labels --model fraud --source chargebacks --labeled-at 2026-11-30 l.csv
    """
    if labeled_at and ctx.get_parameter_source("ts_column") != ParameterSource.DEFAULT:
        raise click.UsageError("give either --ts-column or --labeled-at, not both", ctx)
    _ingest(
        ctx,
        file,
        lambda store, reader, **ts: store.log_labels(
            model, reader, origin=file, **{**options, **ts}
        ),
    )


@click.command()
@click.argument("query")
@click.option("--param", "-p", "params", multiple=True, help="A value for each ? (repeatable).")
@output_options()
@click.option("--max-rows", type=click.IntRange(min=0), hidden=True, help="Old name of --limit.")
@click.pass_context
def sql(
    ctx: click.Context,
    query: str,
    params: tuple[str, ...],
    fmt: str,
    limit: int | None,
    max_rows: int | None,
) -> None:
    """Run a SQL query against the store (opened read-only) and print the result.

    \b
    Example:
      evalstore sql "SELECT * FROM evalstore.label_coverage(?, '1 day')" -p fraud -f csv
    """
    with open_store(ctx, read_only=True) as store:
        table = store.sql(query, list(params) or None)
    emit(table, fmt, max_rows if limit is None else limit)
