"""The ``evalstore`` command line: create a store, register models, ingest files, query.

Every command takes the store file from ``--store`` (or ``$EVALSTORE_STORE``,
default ``evalstore.duckdb``). Errors print one line and exit with status 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

import evalstore
from evalstore import formats, sources
from evalstore.errors import EvalstoreError

DEFAULT_STORE = "evalstore.duckdb"


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn evalstore and DuckDB errors into one clear line and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import duckdb

        try:
            return command(*args, **kwargs)
        except (EvalstoreError, duckdb.Error, OSError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise click.ClickException(message) from error

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(evalstore.__version__, prog_name="evalstore")
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


def _open(ctx: click.Context, read_only: bool = False) -> evalstore.Store:
    path = Path(ctx.obj["store"])
    if not path.exists():
        raise click.ClickException(
            f"store {str(path)!r} does not exist; create it with `evalstore init {path}` "
            "or pass --store"
        )
    return evalstore.open(path, read_only=read_only)


@main.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
@friendly_errors
def init(ctx: click.Context, path: str | None) -> None:
    """Create a store (or bring an existing one up to date: migrations and macros).

    \b
    Example:
      evalstore init monitoring.duckdb
    """
    target = path or ctx.obj["store"]
    with evalstore.open(target) as store:
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
@friendly_errors
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


@main.command()
@click.option("--model", "-m", help="Only this model.")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def models(ctx: click.Context, model: str | None, fmt: str) -> None:
    """List registered model versions.

    \b
    Example:
      evalstore models --model fraud --format json
    """
    with _open(ctx, read_only=True) as store:
        _emit(store.models(model), fmt)


@main.group()
def ingest() -> None:
    """Ingest features, predictions or labels from a Parquet, CSV or Arrow IPC file.

    \b
    Example:
      evalstore ingest predictions --model fraud --version v1 preds.parquet
    """


def _ingest_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.argument("file", type=click.Path(exists=True, dir_okay=False))(command)
    command = click.option("--ts-column", default="ts", show_default=True)(command)
    command = click.option("--id-column", default="example_id", show_default=True)(command)
    command = click.option("--model", "-m", required=True, help="Registered model name.")(command)
    return command


@ingest.command("features")
@_ingest_options
@click.option("--env", type=click.Choice(["training", "validation", "serving"]), default="serving")
@click.option("--dataset", help="Tag for these rows, e.g. train_2026_08.")
@click.option("--on-conflict", type=click.Choice(["error", "replace", "ignore"]), default="error")
@click.pass_context
@friendly_errors
def ingest_features(ctx: click.Context, model: str, file: str, **options: Any) -> None:
    """Ingest feature rows (one column per feature).

    \b
    Example:
      evalstore ingest features --model fraud --env training --dataset train_q3 train.parquet
    """
    with _open(ctx) as store, _progress(file) as reader:
        _receipt(store.log_features(model, reader, origin=file, **options))


@ingest.command("predictions")
@_ingest_options
@click.option("--version", "-v", "version", required=True, help="Registered model version.")
@click.option("--prediction-column", default="prediction", show_default=True)
@click.option("--score-column", default="score", show_default=True)
@click.option("--probability-columns", help="Comma-separated columns named after the classes.")
@click.option("--latency-column", help="Column of latency in milliseconds.")
@click.pass_context
@friendly_errors
def ingest_predictions(ctx: click.Context, model: str, file: str, **options: Any) -> None:
    """Ingest predictions of a registered model version.

    \b
    Example:
      evalstore ingest predictions --model fraud --version v1 --latency-column ms preds.csv
    """
    columns = options.pop("probability_columns")
    options["probability_columns"] = columns.split(",") if columns else None
    with _open(ctx) as store, _progress(file) as reader:
        _receipt(store.log_predictions(model, reader, origin=file, **options))


@ingest.command("labels")
@_ingest_options
@click.option("--label-column", default="label", show_default=True)
@click.option("--source", help="Where the labels come from, e.g. chargebacks.")
@click.pass_context
@friendly_errors
def ingest_labels(ctx: click.Context, model: str, file: str, **options: Any) -> None:
    """Ingest ground-truth labels (append-only; a later label corrects an earlier one).

    \b
    Example:
      evalstore ingest labels --model fraud --source chargebacks labels.parquet
    """
    with _open(ctx) as store, _progress(file) as reader:
        _receipt(store.log_labels(model, reader, origin=file, **options))


class _progress:
    """Open ``file`` as a record-batch stream with a progress bar on a terminal."""

    def __init__(self, file: str) -> None:
        self.reader = sources.read_file(Path(file))
        self.total = _row_count(Path(file))
        self.bar: Any = None

    def __enter__(self) -> pa.RecordBatchReader:
        if not sys.stderr.isatty():
            return self.reader
        self.bar = click.progressbar(
            length=self.total, label="ingesting", file=sys.stderr, show_pos=True
        ).__enter__()

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in self.reader:
                self.bar.update(batch.num_rows)
                yield batch

        return pa.RecordBatchReader.from_batches(self.reader.schema, batches())

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)


def _row_count(path: Path) -> int | None:
    if path.suffix.lower() in sources.PARQUET_SUFFIXES:
        return pq.ParquetFile(path).metadata.num_rows
    return None


def _receipt(receipt: evalstore.Receipt) -> None:
    parts = [f"batch {receipt.batch_id}: {receipt.rows} {receipt.kind} rows"]
    if receipt.columns_added:
        parts.append(f"added columns {', '.join(receipt.columns_added)}")
    if receipt.columns_ignored:
        parts.append(f"ignored columns {', '.join(receipt.columns_ignored)}")
    if receipt.replaced:
        parts.append(f"replaced {receipt.replaced}")
    if receipt.skipped:
        parts.append(f"skipped {receipt.skipped} already stored")
    click.echo("; ".join(parts))


@main.command()
@click.argument("query")
@click.option("--param", "-p", "params", multiple=True, help="A value for each ? (repeatable).")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.option("--max-rows", type=int, default=100, show_default=True, help="For --format table.")
@click.pass_context
@friendly_errors
def sql(ctx: click.Context, query: str, params: tuple[str, ...], fmt: str, max_rows: int) -> None:
    """Run a SQL query against the store (opened read-only) and print the result.

    \b
    Example:
      evalstore sql "SELECT * FROM evalstore.label_coverage(?, '1 day')" -p fraud -f csv
    """
    with _open(ctx, read_only=True) as store:
        _emit(store.sql(query, list(params) or None), fmt, max_rows)


def _emit(table: pa.Table, fmt: str, max_rows: int = 100) -> None:
    if fmt == "table":
        click.echo(formats.to_text(table, max_rows=max_rows))
    elif fmt == "json":
        click.echo(formats.to_json(table))
    elif fmt == "csv":
        sys.stdout.buffer.write(formats.to_csv(table))
    else:
        sys.stdout.buffer.write(formats.to_arrow_ipc(table))
    sys.stdout.flush()


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
        "use training, validation, dataset:TAG, previous:N or START..END", param_hint="--reference"
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
            click.option(
                "--format",
                "-f",
                "fmt",
                type=click.Choice(["grid", *formats.FORMATS]),
                default="grid",
                show_default=True,
                help="grid: features by windows with drifted cells marked.",
            ),
        ]
    ):
        command = decorator(command)
    return command


def _emit_monitor(
    table: pa.Table, fmt: str, meaning: str = "drifted by at least one method"
) -> None:
    if fmt == "grid":
        click.echo(formats.to_grid(table, meaning=meaning))
    else:
        _emit(table, fmt, max_rows=table.num_rows)


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
@friendly_errors
def drift(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    version: str | None,
    where: str | None,
    fmt: str,
    methods: str | None,
    correction: str,
) -> None:
    """Univariate drift of each feature per window against a reference.

    \b
    Example:
      evalstore drift --model fraud --reference training --window "1 day" --methods ks,psi
    """
    with _open(ctx, read_only=True) as store:
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
    _emit_monitor(table, fmt)


@main.command()
@_monitor_options
@click.option("--failed", is_flag=True, help="Only the checks that failed.")
@click.pass_context
@friendly_errors
def quality(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    version: str | None,
    where: str | None,
    fmt: str,
    failed: bool,
) -> None:
    """Data quality per window: volume, missing, NaN/inf, out of range, unseen categories.

    \b
    Example:
      evalstore quality --model fraud --window "1 day" --failed -f table
    """
    with _open(ctx, read_only=True) as store:
        table = store.quality(
            model,
            reference=_reference(reference),
            window=_window(window),
            features=_names(features),
            version=version,
            where=where,
        )
    _emit_monitor(_failed_only(table) if failed else table, fmt, "a check failed")


def _failed_only(table: pa.Table) -> pa.Table:
    return table.filter(pa.compute.fill_null(table.column("drifted"), False))


@main.command()
@_monitor_options
@click.option("--failed", is_flag=True, help="Only the checks that failed.")
@click.option("--tolerance", type=float, default=0.05, show_default=True)
@click.pass_context
@friendly_errors
def validate(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    version: str | None,
    where: str | None,
    fmt: str,
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
        table = store.validate(
            model,
            window=_window(window),
            features=_names(features),
            version=version,
            where=where,
            tolerance=tolerance,
        )
    _emit_monitor(_failed_only(table) if failed else table, fmt, "the schema is violated")


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
@click.pass_context
@friendly_errors
def schema_infer(
    ctx: click.Context, model: str, reference: str, version: str | None, features: str | None
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
    click.echo(formats.to_text(table, max_rows=table.num_rows))


@schema.command("show")
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def schema_show(ctx: click.Context, model: str, fmt: str) -> None:
    """Print the model's saved schema (edit it with UPDATE evalstore.schemas ...).

    \b
    Example:
      evalstore schema show --model fraud -f csv
    """
    with _open(ctx, read_only=True) as store:
        table = store.schema(model)
    _emit(table, fmt, max_rows=table.num_rows)


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--metrics", help="Comma-separated, e.g. roc_auc,f1 (default: all of the task).")
@click.option("--window", "-w", default="1 day", show_default=True, help="Over prediction time.")
@click.option("--by", help="Comma-separated feature columns to slice by.")
@click.option("--slice", "slices", multiple=True, help="NAME=PREDICATE, a named slice.")
@click.option("--version", "-v", "version", help="Only this version.")
@click.option("--where", help="SQL predicate over feature columns.")
@click.option("--threshold", type=float, help="Binary threshold (default: the registered one).")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
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
) -> None:
    """Realized performance per window, version and slice, with confidence intervals.

    \b
    Example:
      evalstore performance --model fraud --window "7 days" --by region --metrics roc_auc,f1
    """
    keys: list[Any] = _names(by) or []
    named = dict(s.split("=", 1) for s in slices if "=" in s)
    if len(named) != len(slices):
        raise click.BadParameter("use NAME=PREDICATE", param_hint="--slice")
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
    _emit(table, fmt, max_rows=table.num_rows)


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
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def slices(
    ctx: click.Context,
    model: str,
    features: str | None,
    min_support: str,
    no_pairs: bool,
    fmt: str,
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
        raise click.BadParameter("a row count or a share in (0, 1)", "--min-support") from None
    with _open(ctx, read_only=True) as store:
        table = store.worst_slices(
            model,
            features=_names(features),
            min_support=support,
            pairs=not no_pairs,
            **options,
        )
    if fmt != "table":
        _emit(table, fmt, max_rows=table.num_rows)
        return
    if not table.num_rows:
        click.echo("No slice is significantly worse than the rest.")
        return
    shown = table.select(["rank", "slice", "n", "value", "rest_value", "effect", "q_value"])
    click.echo(formats.to_text(shown, max_rows=table.num_rows, max_width=70))
    first = table.slice(0, 1).to_pylist()[0]
    click.echo(f"\nmetric {first['metric']} of version {first['version']}; {first['test']}")
    click.echo("predicates (pass as --where):")
    for row in table.select(["rank", "predicate"]).to_pylist():
        click.echo(f"  #{row['rank']}: {row['predicate']}")


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--tolerance", type=float, default=1e-8, show_default=True, help="Absolute.")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance.")
@click.option("--features", help="Comma-separated features (default: all).")
@click.option("--version", "-v", "version", help="Its training dataset and predicted examples.")
@click.option("--where", help="SQL predicate both rows of an example must meet.")
@click.option("--method", default="js", show_default=True, help="Drift method of the distance.")
@click.option("--no-distance", is_flag=True, help="Only count mismatches (faster).")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
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
    if fmt != "table":
        _emit(table, fmt, max_rows=table.num_rows)
        return
    shown = ["feature", "kind", "n_compared", "n_mismatch", "share_mismatch", "skewed",
             "distance", "method", "sample_ids"]  # fmt: skip
    click.echo(formats.to_text(table.select(shown), max_rows=table.num_rows))
    click.echo(
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
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
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
) -> None:
    """Compare two versions on the examples both predicted (champion/challenger, shadow).

    \b
    Example:
      evalstore compare --model fraud -a v1 -b v2 --window "7 days" --metrics accuracy
    """
    keys: list[Any] = _names(by) or []
    named = dict(s.split("=", 1) for s in slices if "=" in s)
    if len(named) != len(slices):
        raise click.BadParameter("use NAME=PREDICATE", param_hint="--slice")
    if named:
        keys.append(named)
    with _open(ctx, read_only=True) as store:
        table = store.compare(
            model, a, b, window=_window(window), by=keys or None, metric=_names(metrics),
            where=where,
        )  # fmt: skip
    if fmt != "table":
        _emit(table, fmt, max_rows=table.num_rows)
        return
    leading = ["window_start", *table.column_names[4 : table.column_names.index("metric")]]
    shown = [*leading, "metric", "value", "ci_low", "ci_high", "p_value", "value_a", "value_b",
             "n", "test"]  # fmt: skip
    click.echo(formats.to_text(table.select(shown), max_rows=table.num_rows))
    click.echo(f"value: disagreement rate, or the difference {b} - {a}")


@main.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--window", "-w", default="1 day", show_default=True, help="An interval.")
@click.option("--version", "-v", "version", help="Only this version.")
@click.option("--sections", help="Comma-separated: staleness, serving, ingest, dependencies.")
@click.option("--as-of", help="Clock for staleness (default: the latest prediction ts).")
@click.option("--now", help="Clock for ingest freshness (default: the current time).")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def health(
    ctx: click.Context,
    model: str,
    window: str,
    version: str | None,
    sections: str | None,
    as_of: str | None,
    now: str | None,
    fmt: str,
) -> None:
    """Production health: staleness, latency/throughput/errors, ingest, dependency changes.

    \b
    Example:
      evalstore health --model fraud --window "1 hour" --sections serving,ingest
    """
    from evalstore.health import wide

    with _open(ctx, read_only=True) as store:
        table = store.health(model, window, version, _names(sections), as_of=as_of, now=now)
    if fmt != "table":
        _emit(table, fmt, max_rows=table.num_rows)
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
        click.echo(formats.to_text(part, max_rows=part.num_rows))


@main.command()
@click.argument("path", required=False, default="demo.duckdb", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True)
@friendly_errors
def demo(path: str, overwrite: bool, seed: int, days: int) -> None:
    """Build a demo store from a seeded credit-default scenario and show what it holds.

    \b
    Example:
      evalstore demo demo.duckdb --overwrite
    """
    from evalstore.demo import run_demo

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
@click.option("--time-limit", type=float, default=30.0, show_default=True, help="POST /v1/sql, s.")
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
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
@friendly_errors
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
            raise click.BadParameter("use NAME=WEIGHT,NAME=WEIGHT", param_hint="--weights")
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
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def suggest(ctx: click.Context, model: str, k: int, strategy: str, **options: Any) -> None:
    """Suggest examples to label (best first) and record them as open label requests.

    \b
    Example:
      evalstore suggest --model fraud -k 200 --strategy mix --weights entropy=0.6,novelty=0.4
    """
    fmt = options.pop("fmt")
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
    if fmt == "table":
        table = table.select(
            ["rank", "example_id", "picked_by", "priority", "reason", "request_id"]
        )
    _emit(table, fmt, max_rows=table.num_rows)


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
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def requests_list(
    ctx: click.Context, model: str | None, status: tuple[str, ...], strategy: str | None, fmt: str
) -> None:
    """List label requests, newest first (overdue open ones are marked expired first).

    \b
    Example:
      evalstore requests list --model fraud --status open --status expired -f csv
    """
    with _open(ctx) as store:
        table = store.label_requests(model, status=list(status) or None, strategy=strategy)
    _emit(table, fmt, max_rows=table.num_rows)


@requests.command("cancel")
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--example-id", "example_ids", multiple=True, help="Cancel this example's request.")
@click.option("--request-id", "request_ids", type=int, multiple=True, help="Cancel this request.")
@click.option("--strategy", help="Cancel the open requests of this strategy.")
@click.option("--all", "everything", is_flag=True, help="Cancel every open request of the model.")
@click.pass_context
@friendly_errors
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
@friendly_errors
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


def _selection(store: evalstore.Store, options: dict[str, Any]) -> Any:
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
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to print.")
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
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
    _emit(table.slice(0, options["limit"]), options["fmt"], max_rows=options["limit"])
    if options["fmt"] == "table" and table.num_rows > options["limit"]:
        click.echo(f"({table.num_rows:,} rows selected; --out FILE.parquet writes them all)")


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
@friendly_errors
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
@click.option("--format", "-f", "fmt", type=click.Choice(formats.FORMATS), default="table")
@click.pass_context
@friendly_errors
def snapshot_list(ctx: click.Context, model: str | None, fmt: str) -> None:
    """List snapshots, newest first.

    \b
    Example:
      evalstore snapshot list --model fraud
    """
    with _open(ctx, read_only=True) as store:
        table = store.snapshots(model)
    if fmt == "table":
        table = table.drop_columns(["definition"])
    _emit(table, fmt, max_rows=table.num_rows)


@snapshot.command("show")
@click.argument("name")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write its rows to Parquet.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.pass_context
@friendly_errors
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
@friendly_errors
def snapshot_delete(ctx: click.Context, name: str) -> None:
    """Delete a snapshot's record (the rows it selected stay in the store).

    \b
    Example:
      evalstore snapshot delete train-2026-11
    """
    with _open(ctx) as store:
        store.delete_snapshot(name)
    click.echo(f"deleted snapshot {name}")
