"""The per-feature monitors: ``drift``, ``quality`` and ``validate`` (with ``schema``,
the saved feature schema ``validate`` checks against).

The monitors share their options (model, reference, window, features, version, where)
and the ``grid`` format: features by windows, flagged cells marked, switched to weekly
windows when the default daily ones do not fit the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from evalstore.cli.common import (
    echo_wrapped,
    emit,
    open_store,
    output_options,
    parse_names,
    parse_reference,
    parse_window,
    reference_option,
    stacked,
    window_option,
)
from evalstore.metrics.presets import PRESETS
from evalstore.metrics.specs import DRIFT_METHODS

if TYPE_CHECKING:
    import pyarrow as pa

    from evalstore.store import Store


#: Options shared by the monitors (drift, quality, validate).
_monitor_options = stacked(
    click.option("--model", "-m", required=True, help="Registered model name."),
    reference_option("training, validation, dataset:TAG, previous:N or START..END."),
    window_option(),
    click.option("--features", help="Comma-separated features (default: all)."),
    click.option("--version", "-v", "version", help="Only examples this version predicted."),
    click.option("--where", help="SQL predicate over feature columns, e.g. \"region = 'north'\"."),
    output_options(grid=True),
)


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


def _monitor_table(
    ctx: click.Context,
    family: str,
    model: str,
    window: str,
    fmt: str,
    features: str | None,
    version: str | None,
    where: str | None,
    reference: str | None = None,
    **options: Any,
) -> tuple[pa.Table, str | None]:
    """Run the Store method ``family`` over the monitors' shared options, with the grid's
    window (see :func:`_grid_window`); returns its table and the grid's note.

    ``reference`` (text of --reference; None for a family without one) is parsed once
    the store is open, so a store that cannot be opened is reported first.
    """
    with open_store(ctx, read_only=True) as store:
        window, note = _grid_window(ctx, store, model, window, fmt)
        if reference is not None:
            options["reference"] = parse_reference(reference)
        table = getattr(store, family)(
            model,
            window=parse_window(window),
            features=parse_names(features),
            version=version,
            where=where,
            **options,
        )
    return table, note


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
            echo_wrapped(note)
    else:
        emit(table, fmt, limit, columns=MONITOR_VIEW, drop_empty=True)


@click.command()
@_monitor_options
@click.option(
    "--methods",
    help=f"Comma-separated: {', '.join(DRIFT_METHODS)}.",
)
@click.option(
    "--correction",
    type=click.Choice(["bonferroni", "bh", "none"]),
    help="Multiple-testing correction of p-values  [default: bonferroni; a preset's own].",
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    help="A peer's definitions (NannyML 0.13 or Evidently 0.7); --methods among the ones "
    "it has, no --correction.",
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
    correction: str | None,
    preset: str | None,
) -> None:
    """Univariate drift of each feature per window against a reference.

    \b
    Example:
      evalstore drift --model fraud --reference training --window "1 day" --methods ks,psi
      evalstore drift --model fraud --window chunks:10:nannyml --preset nannyml
    """
    table, note = _monitor_table(
        ctx,
        "drift",
        model,
        window,
        fmt,
        features,
        version,
        where,
        reference=reference,
        methods=parse_names(methods),
        # given only when asked for: a preset refuses an explicit correction it overrides
        **({"correction": correction} if correction else {}),
        preset=preset,
    )
    _emit_monitor(table, fmt, limit, note=note)


@click.command()
@_monitor_options
@click.option("--failed", is_flag=True, help="Only the checks that failed.")
@click.option(
    "--preset",
    type=click.Choice(["nannyml"]),
    help="NannyML 0.13's checks (missing, unseen, out_of_range), shares of all rows.",
)
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
    preset: str | None,
) -> None:
    """Data quality per window: volume, missing, NaN/inf, out of range, unseen categories.

    \b
    Example:
      evalstore quality --model fraud --window "1 day" --failed -f table
    """
    table, note = _monitor_table(
        ctx, "quality", model, window, fmt, features, version, where, reference, preset=preset
    )
    _emit_monitor(_failed_only(table) if failed else table, fmt, limit, "a check failed", note=note)


def _failed_only(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.fill_null(table.column("drifted"), False))


@click.command()
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
    table, note = _monitor_table(
        ctx, "validate", model, window, fmt, features, version, where, tolerance=tolerance
    )
    _emit_monitor(
        _failed_only(table) if failed else table, fmt, limit, "the schema is violated", note
    )


@click.group()
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
@output_options()
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
    with open_store(ctx) as store:
        table = store.infer_schema(
            model,
            reference=parse_reference(reference),
            version=version,
            features=parse_names(features),
        )
    emit(table, fmt, limit)


@schema.command("show")
@click.option("--model", "-m", required=True, help="Registered model name.")
@output_options()
@click.pass_context
def schema_show(ctx: click.Context, model: str, fmt: str, limit: int | None) -> None:
    """Print the model's saved schema (edit it with UPDATE evalstore.schemas ...).

    \b
    Example:
      evalstore schema show --model fraud -f csv
    """
    with open_store(ctx, read_only=True) as store:
        table = store.schema(model)
    emit(table, fmt, limit)
