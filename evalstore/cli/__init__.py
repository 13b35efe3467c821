"""The ``evalstore`` command line: create a store, register models, ingest files, query.

Every command takes the store file from ``--store`` (or ``$EVALSTORE_STORE``,
default ``monitoring.duckdb``). Errors, usage errors included, print one line and exit
with status 1 (:mod:`evalstore.cli.errors`). Tables fit the terminal
(:mod:`evalstore.cli.render`).

Importing this module loads neither DuckDB nor Arrow: ``evalstore --help`` starts fast,
and each command imports what it needs when it runs.

Import rule: the CLI sits at the top with ``store`` and ``demo`` and may import any layer
(and ``server`` for ``evalstore serve``); nothing in evalstore imports the CLI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from evalstore import __version__
from evalstore.cli.errors import CommandError, OneLineErrors, locked_store_message

if TYPE_CHECKING:
    import pyarrow as pa

    from evalstore.store import Store

#: The store file when neither --store nor $EVALSTORE_STORE names one. Not
#: "evalstore.duckdb": a file opens as the DuckDB catalog of its stem, and "evalstore"
#: would clash with the system schema of that name (the library refuses it).
DEFAULT_STORE = "monitoring.duckdb"
#: Output formats of the tabular commands (the monitors add ``grid``).
FORMATS = ("table", "csv", "json", "arrow")


def _check_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Refuse ``--format arrow`` when standard output is a terminal (it is binary)."""
    from evalstore.cli.render import stdout_is_tty

    if value == "arrow" and stdout_is_tty():
        raise click.BadParameter(
            "arrow writes a binary Arrow IPC stream, not for a terminal; redirect it "
            "(> result.arrows, or | a program) or use --format csv or json",
            ctx,
            param,
        )
    return value


def _output_options(grid: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--format`` and ``--limit``, the same on every command that prints a table."""
    choices = ["grid", *FORMATS] if grid else list(FORMATS)
    help_format = (
        "grid: features by windows with flagged cells marked; table: aligned text "
        "that fits the terminal; csv, json, arrow (IPC stream) carry every column."
        if grid
        else "table: aligned text that fits the terminal; csv, json, arrow (IPC stream) "
        "carry every column."
    )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--limit",
            type=click.IntRange(min=0),
            help="Rows to print, 0 for all (default: 50 for table and grid, all otherwise).",
        )(command)
        return click.option(
            "--format",
            "-f",
            "fmt",
            type=click.Choice(choices),
            default=choices[0],
            show_default=True,
            callback=_check_format,
            help=help_format,
        )(command)

    return decorate


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evalstore")
@click.option(
    "--store",
    "-s",
    "store_path",
    envvar="EVALSTORE_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The store's DuckDB file (or set EVALSTORE_STORE).",
)
@click.pass_context
def main(ctx: click.Context, store_path: str) -> None:
    """An evaluation store for ML models in production.

    \b
    Example:
      evalstore init monitoring.duckdb
      evalstore -s monitoring.duckdb register --model fraud --version v1 --task binary
    """
    ctx.obj = {"store": store_path}


def _connect(ctx: click.Context, path: str | Path, read_only: bool = False) -> Store:
    """Open the store at ``path``; a file another process holds gets a helpful message."""
    import evalstore

    try:
        return evalstore.open(path, read_only=read_only)
    except Exception as error:
        message = locked_store_message(error, ctx)
        if message is None:
            raise
        raise CommandError(message) from error


def _open(ctx: click.Context, read_only: bool = False) -> Store:
    path = Path(ctx.obj["store"])
    if not path.exists():
        raise click.ClickException(
            f"store {str(path)!r} does not exist; create it with `evalstore init {path}` "
            "or pass --store"
        )
    return _connect(ctx, path, read_only=read_only)


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create a store (or bring an existing one up to date: migrations and macros).

    \b
    Example:
      evalstore init monitoring.duckdb
    """
    target = path or ctx.obj["store"]
    with _connect(ctx, target) as store:
        version = store.sql("SELECT value FROM evalstore.meta WHERE key = 'schema_version'")
    click.echo(f"store {target} ready (schema version {version.column(0)[0]})")


@main.command()
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
    with _open(ctx) as store:
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


@main.command()
@click.option("--model", "-m", help="Only this model.")
@_output_options()
@click.pass_context
def models(ctx: click.Context, model: str | None, fmt: str, limit: int | None) -> None:
    """List registered model versions.

    \b
    Example:
      evalstore models --model fraud --format json
    """
    with _open(ctx, read_only=True) as store:
        table = store.models(model)
    _emit(table, fmt, limit, columns=MODELS_VIEW, drop_empty=True)


@main.group()
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

    with _open(ctx) as store:
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


@main.command()
@click.argument("query")
@click.option("--param", "-p", "params", multiple=True, help="A value for each ? (repeatable).")
@_output_options()
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
    with _open(ctx, read_only=True) as store:
        table = store.sql(query, list(params) or None)
    _emit(table, fmt, max_rows if limit is None else limit)


def _emit(
    table: pa.Table,
    fmt: str,
    limit: int | None,
    *,
    columns: list[str] | None = None,
    wrap: tuple[str, ...] = (),
    drop_empty: bool = False,
) -> None:
    """Print ``table`` as ``fmt``: ``table`` fits the terminal and shows at most ``limit``
    rows (default 50; 0 for all) and the ``columns`` chosen for reading; the other formats
    carry every column and, with ``limit``, the first ``limit`` rows."""
    from evalstore.cli import render as cli_render
    from evalstore.core import formats

    if fmt == "table":
        rows = cli_render.DEFAULT_TABLE_ROWS if limit is None else limit
        text = cli_render.render_table(
            table, limit=rows, columns=columns, wrap=wrap, drop_empty=drop_empty
        )
        click.echo(text)
        return
    if limit:
        table = table.slice(0, limit)
    if fmt == "json":
        click.echo(formats.to_json(table))
    elif fmt == "csv":
        sys.stdout.buffer.write(formats.to_csv(table))
    else:
        sys.stdout.buffer.write(formats.to_arrow_ipc(table))
    sys.stdout.flush()


def _echo_wrapped(text: str) -> None:
    """Print ``text`` wrapped to the terminal's width."""
    from evalstore.cli import render as cli_render

    click.echo("\n".join(cli_render.wrap_lines(text, cli_render.terminal_width())))


def _reference(text: str) -> Any:
    """--reference: training | validation | dataset:TAG | previous:N | START..END."""
    if text in ("training", "validation"):
        return text
    if text.startswith("dataset:"):
        return {"dataset": text.removeprefix("dataset:")}
    if text.startswith("previous:") and text.removeprefix("previous:").isdigit():
        return {"previous": int(text.removeprefix("previous:"))}
    if ".." in text:
        start, end = text.split("..", 1)
        return (start, end)
    raise click.BadParameter(
        "use training, validation, dataset:TAG, previous:N or START..END",
        param_hint="'--reference'",
    )


def _window(text: str) -> Any:
    """--window: an interval ('1 day'), rows per chunk (5000) or chunks:N."""
    if text.isdigit():
        return int(text)
    if text.startswith("chunks:") and text.removeprefix("chunks:").isdigit():
        return {"chunks": int(text.removeprefix("chunks:"))}
    return text


def _names(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _monitor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by the monitors (drift, quality, validate)."""
    for decorator in reversed(
        [
            click.option("--model", "-m", required=True, help="Registered model name."),
            click.option(
                "--reference",
                "-r",
                default="training",
                show_default=True,
                help="training, validation, dataset:TAG, previous:N or START..END.",
            ),
            click.option(
                "--window",
                "-w",
                default="1 day",
                show_default=True,
                help="An interval ('1 day'), rows per chunk (5000) or chunks:N.",
            ),
            click.option("--features", help="Comma-separated features (default: all)."),
            click.option(
                "--version", "-v", "version", help="Only examples this version predicted."
            ),
            click.option(
                "--where", help="SQL predicate over feature columns, e.g. \"region = 'north'\"."
            ),
            _output_options(grid=True),
        ]
    ):
        command = decorator(command)
    return command


#: Columns of the monitors' rows shown with --format table.
MONITOR_VIEW = ["window_start", "feature", "version", "method", "value", "p_value", "threshold",
                "drifted", "n_reference", "n_analysis", "count", "reason"]  # fmt: skip
#: Width of the window's label in the grid, per column.
GRID_LABEL = 5
#: Window of the grid when daily windows (the default) do not fit the terminal.
WEEKLY = "7 days"


def _grid_window(
    ctx: click.Context, store: Store, model: str, window: str, fmt: str
) -> tuple[str, str | None]:
    """The window to compute: weekly when the default daily grid would not fit.

    Only a --window left at its default changes; the note says so. The number of daily
    windows is counted from the serving feature times (one cheap query).
    """
    from evalstore.cli import render as cli_render
    from evalstore.cli.ingest_files import model_table

    if fmt != "grid" or ctx.get_parameter_source("window") != ParameterSource.DEFAULT:
        return window, None
    if store.models(model).num_rows == 0:
        return window, None  # the family names the unknown model
    features = model_table(store, model, "features")
    days = (
        store.sql(
            f"SELECT count(DISTINCT date_trunc('day', ts)) FROM {features} WHERE env = 'serving'"
        )
        .column(0)[0]
        .as_py()
    )
    width = cli_render.terminal_width()
    if cli_render.grid_fits(days, width, GRID_LABEL):
        return window, None
    return WEEKLY, (
        f"note: {days} daily windows do not fit {width} columns, so the windows are "
        f"{WEEKLY}; pass --window '1 day' for days (the latest that fit, or all with "
        "--format csv)"
    )


def _emit_monitor(
    table: pa.Table,
    fmt: str,
    limit: int | None,
    meaning: str = "drifted by at least one method",
    note: str | None = None,
) -> None:
    from evalstore.cli import render as cli_render

    if fmt == "grid":
        rows = cli_render.DEFAULT_TABLE_ROWS if limit is None else limit
        click.echo(cli_render.render_grid(table, meaning=meaning, limit=rows))
        if note:
            click.echo("\n".join(cli_render.wrap_lines(note, cli_render.terminal_width())))
    else:
        _emit(table, fmt, limit, columns=MONITOR_VIEW, drop_empty=True)


@main.command()
@_monitor_options
@click.option(
    "--methods",
    help="Comma-separated: ks, psi, js, kl, hellinger, wasserstein, d1, zscore, chi2, linf, "
    "unseen.",
)
@click.option(
    "--correction",
    type=click.Choice(["bonferroni", "bh", "none"]),
    default="bonferroni",
    show_default=True,
)
@click.pass_context
def drift(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    version: str | None,
    where: str | None,
    fmt: str,
    limit: int | None,
    methods: str | None,
    correction: str,
) -> None:
    """Univariate drift of each feature per window against a reference.

    \b
    Example:
      evalstore drift --model fraud --reference training --window "1 day" --methods ks,psi
    """
    with _open(ctx, read_only=True) as store:
        window, note = _grid_window(ctx, store, model, window, fmt)
        table = store.drift(
            model,
            reference=_reference(reference),
            window=_window(window),
            features=_names(features),
            methods=_names(methods),
            version=version,
            where=where,
            correction=correction,
        )
    _emit_monitor(table, fmt, limit, note=note)


@main.command()
@_monitor_options
@click.option("--failed", is_flag=True, help="Only the checks that failed.")
@click.pass_context
def quality(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    version: str | None,
    where: str | None,
    fmt: str,
    limit: int | None,
    failed: bool,
) -> None:
    """Data quality per window: volume, missing, NaN/inf, out of range, unseen categories.

    \b
    Example:
      evalstore quality --model fraud --window "1 day" --failed -f table
    """
    with _open(ctx, read_only=True) as store:
        window, note = _grid_window(ctx, store, model, window, fmt)
        table = store.quality(
            model,
            reference=_reference(reference),
            window=_window(window),
            features=_names(features),
            version=version,
            where=where,
        )
    _emit_monitor(_failed_only(table) if failed else table, fmt, limit, "a check failed", note=note)


def _failed_only(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.fill_null(table.column("drifted"), False))


@main.command()
@_monitor_options
@click.option("--failed", is_flag=True, help="Only the checks that failed.")
@click.option("--tolerance", type=float, default=0.05, show_default=True)
@click.pass_context
def validate(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    version: str | None,
    where: str | None,
    fmt: str,
    limit: int | None,
    failed: bool,
    tolerance: float,
) -> None:
    """Check serving windows against the model's saved schema (see `schema infer`).

    --reference is not used: the saved schema is the reference.

    \b
    Example:
      evalstore validate --model fraud --window "1 day" --failed
    """
    with _open(ctx, read_only=True) as store:
        window, note = _grid_window(ctx, store, model, window, fmt)
        table = store.validate(
            model,
            window=_window(window),
            features=_names(features),
            version=version,
            where=where,
            tolerance=tolerance,
        )
    _emit_monitor(
        _failed_only(table) if failed else table, fmt, limit, "the schema is violated", note
    )


@main.group()
def schema() -> None:
    """Infer, show and edit the saved feature schema that `validate` checks against.

    \b
    Example:
      evalstore schema infer --model fraud --reference training
    """


@schema.command("infer")
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--reference", "-r", default="training", show_default=True)
@click.option("--version", "-v", "version", help="Use the dataset this version trained on.")
@click.option("--features", help="Comma-separated features (default: all).")
@_output_options()
@click.pass_context
def schema_infer(
    ctx: click.Context,
    model: str,
    reference: str,
    version: str | None,
    features: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Infer each feature's schema from the reference rows and save it.

    \b
    Example:
      evalstore schema infer --model fraud --reference training
    """
    with _open(ctx) as store:
        table = store.infer_schema(
            model, reference=_reference(reference), version=version, features=_names(features)
        )
    _emit(table, fmt, limit)


@schema.command("show")
@click.option("--model", "-m", required=True, help="Registered model name.")
@_output_options()
@click.pass_context
def schema_show(ctx: click.Context, model: str, fmt: str, limit: int | None) -> None:
    """Print the model's saved schema (edit it with UPDATE evalstore.schemas ...).

    \b
    Example:
      evalstore schema show --model fraud -f csv
    """
    with _open(ctx, read_only=True) as store:
        table = store.schema(model)
    _emit(table, fmt, limit)


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--metrics", help="Comma-separated, e.g. roc_auc,f1 (default: all of the task).")
@click.option("--window", "-w", default="1 day", show_default=True, help="Over prediction time.")
@click.option("--by", help="Comma-separated feature columns to slice by.")
@click.option("--slice", "slices", multiple=True, help="NAME=PREDICATE, a named slice.")
@click.option("--version", "-v", "version", help="Only this version.")
@click.option("--where", help="SQL predicate over feature columns.")
@click.option("--threshold", type=float, help="Binary threshold (default: the registered one).")
@_output_options()
@click.pass_context
def performance(
    ctx: click.Context,
    model: str,
    metrics: str | None,
    window: str,
    by: str | None,
    slices: tuple[str, ...],
    version: str | None,
    where: str | None,
    threshold: float | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Realized performance per window, version and slice, with confidence intervals.

    \b
    Example:
      evalstore performance --model fraud --window "7 days" --by region --metrics roc_auc,f1
    """
    keys: list[Any] = _names(by) or []
    named = dict(s.split("=", 1) for s in slices if "=" in s)
    if len(named) != len(slices):
        raise click.BadParameter("use NAME=PREDICATE", param_hint="'--slice'")
    if named:
        keys.append(named)
    with _open(ctx, read_only=True) as store:
        table = store.performance(
            model,
            metrics=_names(metrics),
            window=_window(window),
            by=keys or None,
            version=version,
            where=where,
            threshold=threshold,
        )
    _emit(table, fmt, limit, columns=_performance_view(table), drop_empty=True)


def _performance_view(table: pa.Table) -> list[str]:
    """Columns of `performance` worth reading in a terminal: the slice keys included."""
    names = table.column_names
    keys = []
    if "version" in names and "metric" in names:
        keys = names[names.index("version") + 1 : names.index("metric")]
    return ["window_start", *keys, "version", "metric", "class", "value", "ci_low", "ci_high",
            "n", "label_coverage", "labels_complete", "reason"]  # fmt: skip


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--metric", help="accuracy, precision, recall, specificity, brier, log_loss, mae…")
@click.option("--since", help="Only predictions at or after this ISO-8601 time.")
@click.option("--until", help="Only predictions before this ISO-8601 time.")
@click.option("--version", "-v", "version", help="Version (default: the latest registered).")
@click.option("--where", help="SQL predicate over feature columns.")
@click.option("--features", help="Comma-separated features to slice (default: all).")
@click.option("--min-support", default="0.01", show_default=True, help="Rows (int) or share.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="False discovery rate.")
@click.option("--correction", type=click.Choice(["bh", "bonferroni", "none"]), default="bh")
@click.option("--no-pairs", is_flag=True, help="Search single features only.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True)
@_output_options()
@click.pass_context
def slices(
    ctx: click.Context,
    model: str,
    features: str | None,
    min_support: str,
    no_pairs: bool,
    fmt: str,
    limit: int | None,
    **options: Any,
) -> None:
    """Worst slices: feature values, bins and pairs where a metric is significantly worse.

    Prints the findings ranked by excess (effect x rows), then each one's SQL predicate,
    to pass as --where to performance, drift, suggest or select.

    \b
    Example:
      evalstore slices --model fraud --metric log_loss --since 2026-10-15
    """
    try:
        support: float = int(min_support) if min_support.isdigit() else float(min_support)
    except ValueError:
        raise click.BadParameter(
            "a row count or a share in (0, 1)", param_hint="'--min-support'"
        ) from None
    with _open(ctx, read_only=True) as store:
        table = store.worst_slices(
            model,
            features=_names(features),
            min_support=support,
            pairs=not no_pairs,
            **options,
        )
    if fmt != "table":
        _emit(table, fmt, limit)
        return
    if not table.num_rows:
        click.echo("No slice is significantly worse than the rest.")
        return
    from evalstore.cli import render as cli_render

    _emit(table, fmt, limit, columns=["rank", "slice", "n", "value", "rest_value", "effect",
                                      "q_value", "predicate"])  # fmt: skip
    first = table.slice(0, 1).to_pylist()[0]
    width = cli_render.terminal_width()
    _echo_wrapped(f"metric {first['metric']} of version {first['version']}; {first['test']}")
    click.echo("predicates (pass as --where):")
    shown = table if not limit else table.slice(0, limit)
    for row in shown.select(["rank", "predicate"]).to_pylist():
        line = f"  #{row['rank']}: {row['predicate']}"
        click.echo("\n".join(cli_render.wrap_lines(line, width, indent="      ")))


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--tolerance", type=float, default=1e-8, show_default=True, help="Absolute.")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance.")
@click.option("--features", help="Comma-separated features (default: all).")
@click.option("--version", "-v", "version", help="Its training dataset and predicted examples.")
@click.option("--where", help="SQL predicate both rows of an example must meet.")
@click.option("--method", default="js", show_default=True, help="Drift method of the distance.")
@click.option("--no-distance", is_flag=True, help="Only count mismatches (faster).")
@_output_options()
@click.pass_context
def skew(
    ctx: click.Context,
    model: str,
    tolerance: float,
    rtol: float,
    features: str | None,
    version: str | None,
    where: str | None,
    method: str,
    no_distance: bool,
    fmt: str,
    limit: int | None,
) -> None:
    """Training/serving skew per feature for examples logged in both envs.

    \b
    Example:
      evalstore skew --model fraud --tolerance 1e-6 --features amount,country
    """
    options = dict(features=_names(features), version=version, where=where)
    with _open(ctx, read_only=True) as store:
        table = store.skew(
            model, tolerance, rtol, method=None if no_distance else method, **options
        )
        summary = store.skew_summary(model, tolerance, rtol, **options).to_pylist()[0]
    shown = ["feature", "kind", "n_compared", "n_mismatch", "share_mismatch", "skewed",
             "distance", "method", "sample_ids"]  # fmt: skip
    _emit(table, fmt, limit, columns=shown)
    if fmt != "table":
        return
    _echo_wrapped(
        f"{summary['n_examples_skewed']} of {summary['n_examples']} examples in both training "
        f"and serving differ in at least one feature; {summary['n_features_skewed']} of "
        f"{summary['n_features']} compared features have mismatches"
    )


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--a", "-a", "a", required=True, help="Baseline version (champion).")
@click.option("--b", "-b", "b", required=True, help="Challenger version.")
@click.option(
    "--window", "-w", default="1 day", show_default=True, help="Over a's prediction time."
)
@click.option("--metrics", help="Comma-separated, e.g. disagreement,accuracy (default: all).")
@click.option("--by", help="Comma-separated categorical features to slice by.")
@click.option("--slice", "slices", multiple=True, help="NAME=PREDICATE, a named slice.")
@click.option("--where", help="SQL predicate over feature columns.")
@_output_options()
@click.pass_context
def compare(
    ctx: click.Context,
    model: str,
    a: str,
    b: str,
    window: str,
    metrics: str | None,
    by: str | None,
    slices: tuple[str, ...],
    where: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Compare two versions on the examples both predicted (champion/challenger, shadow).

    \b
    Example:
      evalstore compare --model fraud -a v1 -b v2 --window "7 days" --metrics accuracy
    """
    keys: list[Any] = _names(by) or []
    named = dict(s.split("=", 1) for s in slices if "=" in s)
    if len(named) != len(slices):
        raise click.BadParameter("use NAME=PREDICATE", param_hint="'--slice'")
    if named:
        keys.append(named)
    with _open(ctx, read_only=True) as store:
        table = store.compare(
            model, a, b, window=_window(window), by=keys or None, metric=_names(metrics),
            where=where,
        )  # fmt: skip
    names = table.column_names
    keys = names[4 : names.index("metric")] if "metric" in names else []
    shown = ["window_start", *keys, "metric", "value", "ci_low", "ci_high", "p_value",
             "value_a", "value_b", "n", "test"]  # fmt: skip
    _emit(table, fmt, limit, columns=shown)
    if fmt == "table":
        click.echo(f"value: disagreement rate, or the difference {b} - {a}")


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--window", "-w", default="1 day", show_default=True, help="An interval.")
@click.option("--version", "-v", "version", help="Only this version.")
@click.option("--sections", help="Comma-separated: staleness, serving, ingest, dependencies.")
@click.option("--as-of", help="Clock for staleness (default: the latest prediction ts).")
@click.option("--now", help="Clock for ingest freshness (default: the current time).")
@_output_options()
@click.pass_context
def health(
    ctx: click.Context,
    model: str,
    window: str,
    version: str | None,
    sections: str | None,
    as_of: str | None,
    now: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Production health: staleness, latency/throughput/errors, ingest, dependency changes.

    \b
    Example:
      evalstore health --model fraud --window "1 hour" --sections serving,ingest
    """
    from evalstore.metrics.health import wide

    with _open(ctx, read_only=True) as store:
        table = store.health(model, window, version, _names(sections), as_of=as_of, now=now)
    if fmt != "table":
        _emit(table, fmt, limit)
        return
    titles = {
        "staleness": "Staleness (days)",
        "serving": f"Serving per {window} (throughput in predictions/s, latency in ms)",
        "ingest": "Ingest (freshness in hours; batches and rows in total)",
        "dependencies": "Dependency changes between consecutive versions",
    }
    parts = wide(table)
    if not parts:
        click.echo("(no health figures: nothing logged yet)")
    for section, part in parts.items():
        click.echo(f"== {titles[section]}")
        _emit(part, fmt, limit)


@main.command()
@click.argument("path", required=False, default="demo.duckdb", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True)
def demo(path: str, overwrite: bool, seed: int, days: int) -> None:
    """Build a demo store from a seeded credit-default scenario and show what it holds.

    \b
    Example:
      evalstore demo demo.duckdb --overwrite
    """
    from evalstore.demo.run import run_demo

    target = Path(path)
    if target.exists():
        if not overwrite:
            raise click.ClickException(f"{path} exists; pass --overwrite to replace it")
        target.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    run_demo(target, seed=seed, days=days, echo=click.echo)


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--tokens",
    type=click.Path(exists=True, dir_okay=False),
    help="Token file: lines 'TOKEN read|write [NAME]'. Required to listen beyond loopback.",
)
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Write a BI copy here.")
@click.option("--snapshot-every", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--row-limit", type=int, default=1_000_000, show_default=True, help="POST /v1/sql.")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a read (SQL, metric family, selection) may run before it is interrupted.",
)
@click.option(
    "--max-result-mb", type=float, default=256, show_default=True, help="Largest read result."
)
@click.option(
    "--read-workers",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Reads running at once (healthz and ingest keep threads of their own).",
)
@click.option(
    "--read-queue",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Reads waiting for a worker; beyond that, 503 with Retry-After.",
)
@click.option(
    "--memory-limit",
    default="50%",
    show_default=True,
    help="DuckDB memory_limit for the whole store ('4GiB', '50%'); 'none' keeps DuckDB's.",
)
@click.option("--max-body-mb", type=float, default=512, show_default=True, help="Ingest bodies.")
@click.option(
    "--checkpoint-idle",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Checkpoint the WAL after this many seconds without a commit.",
)
@click.option(
    "--wal-limit", default="1GiB", show_default=True, help="Checkpoint inside a commit past this."
)
@click.option(
    "--time-range",
    metavar="LO,HI",
    help="Times ingest accepts, ISO-8601 (default 1900-01-01,2200-01-01 UTC).",
)
@click.option(
    "--max-windows",
    type=click.IntRange(min=1),
    help="Most windows one metric request builds (default 10,000).",
)
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def serve(ctx: click.Context, path: str | None, **options: Any) -> None:
    """Serve the store over HTTP (ingest, safe SQL, metrics, Prometheus) until Ctrl-C.

    The server owns the file (its single writer). Without --tokens it only listens on
    loopback. With --snapshot it refreshes a read-only copy for BI tools every
    --snapshot-every seconds, readable by DuckDB 1.4 and later. Committed batches
    are folded from the write-ahead log into the file on a background thread once
    ingest pauses for --checkpoint-idle seconds, so commits do not pay for it.

    \b
    Example:
      evalstore serve monitoring.duckdb --port 8000 --snapshot bi/monitoring.duckdb
    """
    from server.serve import run

    max_body = int(options.pop("max_body_mb") * 1024 * 1024)
    options["max_result_bytes"] = int(options.pop("max_result_mb") * 1024 * 1024)
    if options["memory_limit"].lower() == "none":
        options["memory_limit"] = None
    if options["time_range"] is not None:
        bounds = [part.strip() for part in options["time_range"].split(",")]
        if len(bounds) != 2 or not all(bounds):
            raise click.BadParameter(
                "give two ISO-8601 times, e.g. 1800-01-01,2300-01-01", param_hint="'--time-range'"
            )
        options["time_range"] = tuple(bounds)
    run(path or ctx.obj["store"], max_body_bytes=max_body, **options)


# ---------------------------------------------------------------- flywheel: suggest, select


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


@main.command()
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
@_output_options()
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
    with _open(ctx, read_only=not record) as store:
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
            by=_names(options["by"]),
            reference=_reference(options["reference"]),
            record=record,
            expires_in=None if expires == "never" else expires,
        )
    _emit(
        table,
        fmt,
        limit,
        columns=["rank", "example_id", "picked_by", "priority", "request_id", "reason"],
        wrap=("reason",),
        drop_empty=True,
    )


@main.group()
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
@_output_options()
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
    with _open(ctx) as store:
        table = store.label_requests(model, status=list(status) or None, strategy=strategy)
    shown = ["request_id", "model", "example_id", "strategy", "priority", "status",
             "requested_at", "expires_at", "fulfilled_at", "reason"]  # fmt: skip
    _emit(table, fmt, limit, columns=shown, wrap=("reason",), drop_empty=True)


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
    with _open(ctx) as store:
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
    with _open(ctx) as store:
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


def _selection(store: Store, options: dict[str, Any]) -> Any:
    return store.selection(
        options["model"],
        where=options["where"],
        env=list(options["env"]) or None,
        since=options["since"],
        until=options["until"],
        labeled_only=not options["unlabeled"],
        version=options["version"],
        columns=_names(options["columns"]),
        as_of=options["as_of"],
    )


@main.command("select")
@_selection_options
@click.option("--out", "-o", type=click.Path(dir_okay=True), help="Write Parquet here.")
@click.option("--partition-by", help="Comma-separated columns: a hive-partitioned directory.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@_output_options()
@click.pass_context
def select_rows(ctx: click.Context, **options: Any) -> None:
    """Select training data (features + latest labels + predictions); print or write Parquet.

    \b
    Example:
      evalstore select --model fraud --env serving --as-of 2026-11-30 --out train.parquet
    """
    with _open(ctx, read_only=options["out"] is None) as store:
        selection = _selection(store, options)
        if options["out"]:
            done = store.export(
                selection,
                options["out"],
                partition_by=_names(options["partition_by"]),
                overwrite=options["overwrite"],
            )
            click.echo(f"wrote {done['rows']:,} rows to {done['path']}")
            return
        table = store.select(
            options["model"],
            where=options["where"],
            env=list(options["env"]) or None,
            since=options["since"],
            until=options["until"],
            labeled_only=not options["unlabeled"],
            version=options["version"],
            columns=_names(options["columns"]),
            as_of=options["as_of"],
        )
    _emit(table, options["fmt"], options["limit"], columns=_selection_view(table), drop_empty=True)


def _selection_view(table: pa.Table) -> list[str]:
    """Columns of `select` in reading order: id, time, label and prediction, the features,
    then bookkeeping; the terminal's width decides how many are shown."""
    first = ["example_id", "ts", "label", "version", "prediction", "score"]
    last = ["env", "dataset", "batch_id", "label_ts", "label_source"]
    names = table.column_names
    middle = [n for n in names if n not in first and n not in last]
    return [n for n in first if n in names] + middle + [n for n in last if n in names]


@main.group()
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
    with _open(ctx) as store:
        info = store.snapshot(name, _selection(store, options), replace=replace)
    click.echo(
        f"snapshot {info['name']}: {info['row_count']:,} rows of {info['model']} as of "
        f"{info['as_of'].isoformat()} (hash {info['content_hash']})"
    )


@snapshot.command("list")
@click.option("--model", "-m", help="Only this model.")
@_output_options()
@click.pass_context
def snapshot_list(ctx: click.Context, model: str | None, fmt: str, limit: int | None) -> None:
    """List snapshots, newest first.

    \b
    Example:
      evalstore snapshot list --model fraud
    """
    with _open(ctx, read_only=True) as store:
        table = store.snapshots(model)
    shown = [n for n in table.column_names if n != "definition"]
    _emit(table, fmt, limit, columns=shown)


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
    with _open(ctx, read_only=True) as store:
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
    with _open(ctx) as store:
        store.delete_snapshot(name)
    click.echo(f"deleted snapshot {name}")
