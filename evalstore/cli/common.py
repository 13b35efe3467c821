"""What every command module of the ``evalstore`` CLI shares.

Opening the store named by ``--store`` (with a helpful message when another process holds
it), the ``--format``/``--limit`` options and printing a table in the chosen format,
the options several commands declare alike (``--window``, ``--reference``, ``--by``/
``--slice``, ``--since``/``--until``, ``--threshold``), and parsing the option values
they take (``--reference``, ``--window``, comma-separated names, ``--by``/``--slice``
slice keys).

Like the rest of the CLI, importing this module loads neither DuckDB nor Arrow: the
functions import them when they run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from evalstore.cli.errors import CommandError, locked_store_message

if TYPE_CHECKING:
    import pyarrow as pa

    from evalstore.store import Store

#: Output formats of the tabular commands (the monitors add ``grid``).
FORMATS = ("table", "csv", "json", "arrow")

#: A click decorator: takes a command function, returns it with options added.
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: --window's help on the commands that take every form :func:`parse_window` reads.
WINDOW_HELP = "An interval ('1 day'), rows per chunk (5000), chunks:N or chunks:N:nannyml."


def connect(ctx: click.Context, path: str | Path, read_only: bool = False) -> Store:
    """Open the store at ``path``; a file another process holds gets a helpful message."""
    import evalstore

    try:
        return evalstore.open(path, read_only=read_only)
    except Exception as error:
        message = locked_store_message(error, ctx)
        if message is None:
            raise
        raise CommandError(message) from error


def open_store(ctx: click.Context, read_only: bool = False) -> Store:
    """Open the store of ``--store``, which must exist (``evalstore init`` creates one)."""
    path = Path(ctx.obj["store"])
    if not path.exists():
        raise click.ClickException(
            f"store {str(path)!r} does not exist; create it with `evalstore init {path}` "
            "or pass --store"
        )
    return connect(ctx, path, read_only=read_only)


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


def output_options(grid: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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


def stacked(*decorators: Decorator) -> Decorator:
    """The ``decorators`` applied as if written one above the other in this order (so
    ``--help`` lists their options in this order)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


def window_option(help_text: str = WINDOW_HELP) -> Decorator:
    """``--window``/``-w``, default ``1 day`` (read by :func:`parse_window`)."""
    return click.option("--window", "-w", default="1 day", show_default=True, help=help_text)


def reference_option(help_text: str) -> Decorator:
    """``--reference``/``-r``, default ``training`` (read by :func:`parse_reference`)."""
    return click.option("--reference", "-r", default="training", show_default=True, help=help_text)


def slice_options(by_help: str = "Comma-separated feature columns to slice by.") -> Decorator:
    """``--by`` and ``--slice NAME=PREDICATE`` (read by :func:`parse_slice_keys`)."""
    return stacked(
        click.option("--by", help=by_help),
        click.option("--slice", "slices", multiple=True, help="NAME=PREDICATE, a named slice."),
    )


def performance_options() -> Decorator:
    """The cells of the performance family (performance, estimate): ``--window`` over
    prediction time, ``--by``/``--slice``, ``--version`` and ``--where``."""
    return stacked(
        window_option("Over prediction time."),
        slice_options(),
        click.option("--version", "-v", "version", help="Only this version."),
        click.option("--where", help="SQL predicate over feature columns."),
    )


def prediction_time_options() -> Decorator:
    """``--since`` and ``--until``: a range of prediction time, [since, until)."""
    return stacked(
        click.option("--since", help="Only predictions at or after this ISO-8601 time."),
        click.option("--until", help="Only predictions before this ISO-8601 time."),
    )


def threshold_option() -> Decorator:
    """``--threshold``: a binary model's what-if decision rule."""
    return click.option(
        "--threshold",
        type=float,
        help="Binary what-if: decide by score >= it (default: the logged predictions).",
    )


def cell_arguments(
    metrics: str | None,
    window: str,
    by: str | None,
    slices: tuple[str, ...],
    version: str | None,
    where: str | None,
) -> dict[str, Any]:
    """The keyword arguments of ``Store.performance`` and ``Store.estimate_performance``
    that ``--metrics`` and :func:`performance_options` give, parsed (a bad ``--slice`` is
    refused here, before the store is opened)."""
    return dict(
        metrics=parse_names(metrics),
        window=parse_window(window),
        by=parse_slice_keys(by, slices),
        version=version,
        where=where,
    )


def slice_columns(table: pa.Table) -> list[str]:
    """The slice-key columns of a performance-shaped table (those between ``version`` and
    ``metric``; none when either is missing)."""
    names = table.column_names
    if "version" not in names or "metric" not in names:
        return []
    return names[names.index("version") + 1 : names.index("metric")]


def run_analysis(
    ctx: click.Context,
    method: str,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    **arguments: Any,
) -> pa.Table:
    """``Store.<method>(model, reference=, window=, features=, **arguments)`` on the store
    of ``--store`` opened read-only, the text of ``--reference``, ``--window`` and
    ``--features`` parsed (once the store is open, so a store that cannot be opened is
    reported first)."""
    with open_store(ctx, read_only=True) as store:
        return getattr(store, method)(
            model,
            reference=parse_reference(reference),
            window=parse_window(window),
            features=parse_names(features),
            **arguments,
        )


def emit(
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


def echo_wrapped(text: str) -> None:
    """Print ``text`` wrapped to the terminal's width."""
    from evalstore.cli import render as cli_render

    click.echo("\n".join(cli_render.wrap_lines(text, cli_render.terminal_width())))


def parse_reference(text: str) -> Any:
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


def parse_window(text: str) -> Any:
    """--window: an interval ('1 day'), rows per chunk (5000), chunks:N (N near-equal
    chunks) or chunks:N:nannyml (NannyML's split: floor(rows / N) rows, remainder last).

    >>> parse_window("5000"), parse_window("chunks:10"), parse_window("chunks:4:nannyml")
    (5000, {'chunks': 10}, {'chunks': 4, 'split': 'nannyml'})
    >>> parse_window("1 day")
    '1 day'
    """
    if text.isdigit():
        return int(text)
    if text.startswith("chunks:"):
        count, _, split = text.removeprefix("chunks:").partition(":")
        if count.isdigit() and not split:
            return {"chunks": int(count)}
        if count.isdigit() and split:
            return {"chunks": int(count), "split": split}
    return text


def parse_names(text: str | None) -> list[str] | None:
    """A comma-separated option as a list of names, blanks dropped; None when not given."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def parse_slice_keys(by: str | None, slices: tuple[str, ...]) -> list[Any] | None:
    """``--by`` columns and ``--slice NAME=PREDICATE`` options as the ``by=`` argument of
    performance and compare: the columns, then one dict of the named slices."""
    keys: list[Any] = parse_names(by) or []
    named = dict(s.split("=", 1) for s in slices if "=" in s)
    if len(named) != len(slices):
        raise click.BadParameter("use NAME=PREDICATE", param_hint="'--slice'")
    if named:
        keys.append(named)
    return keys or None
