"""Render Arrow results for a terminal: fit the width, cap the rows, say what was left out.

The CLI's ``--format table`` (and the drift grid) is for reading: it never prints a line
wider than the terminal, never splits or truncates a number, shortens long text cells
(with ``…``) or wraps the ones a command asks to keep whole, leaves out the right-most
columns that still do not fit, and shows at most ``limit`` rows. Every omission is named
on a closing line, with the option that shows it all (``--limit``, ``--format csv``).

The width is ``$COLUMNS`` when set, else the terminal's when standard output is one,
else 120.

>>> import pyarrow as pa
>>> t = pa.table({"feature": ["age", "income", "debt"], "psi": [0.01, 0.4, 0.123456789]})
>>> print(render_table(t, width=60, limit=2))
feature  psi
-------  ----
age      0.01
income   0.4
… 1 more row (3 in all); use --limit 3 or --format csv
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

import pyarrow as pa

from evalstore.core import formats

DEFAULT_WIDTH = 120
#: Rows ``--format table`` shows unless ``--limit`` says otherwise.
DEFAULT_TABLE_ROWS = 50
#: Text columns no wider than this are labels (ids, names, methods): never shortened;
#: right-most columns are left out instead.
LABEL_WIDTH = 24
#: Longer text cells are not shortened below this many characters (or their header's).
MIN_TEXT_WIDTH = 16
#: A wrapped column keeps at least this many characters per line.
MIN_WRAP_WIDTH = 24
GAP = "  "


def stdout_is_tty() -> bool:
    """Whether standard output is a terminal (patched in tests)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_width() -> int:
    """Columns to fit: ``$COLUMNS`` if set, the terminal's width on a TTY, else 120."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if stdout_is_tty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def more_rows_line(shown: int, total: int) -> str:
    """The closing line of a table cut to ``shown`` of ``total`` rows."""
    more = total - shown
    return (
        f"… {more:,} more row{'s' if more != 1 else ''} ({total:,} in all); "
        f"use --limit {total} or --format csv"
    )


def wrap_lines(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` wrapped to ``width`` columns at spaces (long words are kept whole)."""
    return textwrap.wrap(
        text,
        width=max(width, 20),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]


# ---------------------------------------------------------------- cells


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _keeps_whole(kind: pa.DataType) -> bool:
    """Cells that are never shortened: numbers, booleans, times."""
    return (
        _is_number(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_null(kind)
    )


def _time_text(value: datetime, date_only: bool) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    if date_only:
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _column_cells(column: pa.ChunkedArray) -> list[str]:
    """Readable text of each cell: UTC times without sub-seconds, dates when all midnight."""
    values = column.to_pylist()
    if pa.types.is_timestamp(column.type):
        stamps = [v for v in values if isinstance(v, datetime)]
        date_only = all(
            v.astimezone(UTC).time() == time(0) if v.tzinfo else v.time() == time(0) for v in stamps
        )
        return ["NULL" if v is None else _time_text(v, date_only) for v in values]
    if pa.types.is_date(column.type):
        return ["NULL" if v is None else v.isoformat() for v in values]
    cells = [formats._cell(v) for v in values]
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        cells = [" ".join(c.split()) for c in cells]  # no line breaks inside a table cell
    return cells


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------- tables


@dataclass(eq=False)
class _Column:
    name: str
    cells: list[str]
    whole: bool  # never shortened
    wrap: bool  # wrapped onto several lines instead of shortened
    width: int = 0

    def __post_init__(self) -> None:
        self.width = max([len(self.name), *(len(c) for c in self.cells)])

    @property
    def floor(self) -> int:
        """The narrowest this column gets: numbers, times and short labels (ids, names,
        up to ``LABEL_WIDTH`` characters) keep their width; longer text is shortened."""
        natural = max([len(self.name), *(len(c) for c in self.cells)])
        if self.whole or (natural <= LABEL_WIDTH and not self.wrap):
            return min(self.width, natural)
        least = MIN_WRAP_WIDTH if self.wrap else MIN_TEXT_WIDTH
        return min(self.width, max(len(self.name), least))


def _fit(columns: list[_Column], width: int) -> list[_Column]:
    """Make a line of ``columns`` fit ``width``; return the columns kept, in order.

    Columns come in reading order, most important first. Text columns are narrowed from
    the last one backwards (each down to its floor), then right-most columns are left
    out, wrapped columns last; a wrapped column then takes the width that is left.
    """

    def total(cols: list[_Column]) -> int:
        return sum(c.width for c in cols) + len(GAP) * (len(cols) - 1)

    for column in reversed(columns):
        excess = total(columns) - width
        if excess <= 0:
            break
        column.width = max(column.floor, column.width - excess)
    kept = list(columns)
    while len(kept) > 1 and total(kept) > width:
        plain = [i for i, c in enumerate(kept) if not c.wrap and i > 0]
        kept.pop(plain[-1] if plain else len(kept) - 1)
    spare = width - total(kept)
    for column in kept:
        if column.wrap and spare > 0:
            natural = max([len(column.name), *(len(c) for c in column.cells)])
            grow = min(spare, natural - column.width)
            column.width += max(grow, 0)
            spare -= max(grow, 0)
    return kept


def _lines_of_row(columns: list[_Column], row: int) -> list[str]:
    parts: list[list[str]] = []
    for column in columns:
        cell = column.cells[row]
        if column.wrap and len(cell) > column.width:
            parts.append(textwrap.wrap(cell, column.width, break_on_hyphens=False) or [""])
        else:
            parts.append([_shorten(cell, column.width)])
    height = max(len(p) for p in parts)
    return [
        GAP.join(
            (p[i] if i < len(p) else "").ljust(c.width) for p, c in zip(parts, columns, strict=True)
        ).rstrip()
        for i in range(height)
    ]


def render_table(
    table: pa.Table,
    *,
    width: int | None = None,
    limit: int | None = DEFAULT_TABLE_ROWS,
    columns: Sequence[str] | None = None,
    wrap: Sequence[str] = (),
    drop_empty: bool = False,
    total: int | None = None,
    footer: bool = True,
) -> str:
    """``table`` as aligned text no wider than ``width``, at most ``limit`` rows.

    ``columns`` picks and orders the columns to show (the others are named as not shown);
    ``wrap`` names text columns to wrap rather than shorten; ``drop_empty`` leaves out
    columns that are NULL in every shown row. ``total`` is the row count before the
    caller cut the table (the more-rows line counts from it). The closing line says how
    many rows there are, or how many more a larger ``--limit`` shows, and which columns
    were left out.
    """
    width = terminal_width() if width is None else width
    total = table.num_rows if total is None else total
    shown = table if limit is None or limit <= 0 else table.slice(0, limit)
    names = [n for n in (columns or table.column_names) if n in table.column_names]
    left_out = [n for n in table.column_names if n not in names]
    cols = []
    for name in names:
        column = shown.column(name)
        cells = _column_cells(column)
        if drop_empty and shown.num_rows and all(c == "NULL" for c in cells):
            left_out.append(name)
            continue
        whole = _keeps_whole(column.type)
        cols.append(_Column(name, cells, whole=whole, wrap=name in wrap and not whole))
    kept = _fit(cols, width) if cols else []
    left_out += [c.name for c in cols if c not in kept]
    lines = []
    if kept:
        lines.append(GAP.join(c.name.ljust(c.width) for c in kept).rstrip())
        lines.append(GAP.join("-" * c.width for c in kept))
        for row in range(shown.num_rows):
            lines.extend(_lines_of_row(kept, row))
    if footer:
        if shown.num_rows < total:
            lines.extend(wrap_lines(more_rows_line(shown.num_rows, total), width))
        else:
            lines.append(f"({total:,} row{'s' if total != 1 else ''})")
        if left_out:
            note = f"not shown: {', '.join(left_out)} (--format csv or json shows every column)"
            lines.extend(wrap_lines(note, width))
    return "\n".join(lines)


# ---------------------------------------------------------------- the features x windows grid


def grid_fits(n_windows: int, width: int, label_width: int = 5, name_width: int = 20) -> bool:
    """Whether a grid of ``n_windows`` columns of ``label_width`` fits ``width``."""
    return name_width + n_windows * (len(GAP) + label_width) <= width


def render_grid(
    table: pa.Table,
    *,
    meaning: str,
    width: int | None = None,
    limit: int | None = DEFAULT_TABLE_ROWS,
) -> str:
    """Features by windows (``X`` drifted / failed, ``.`` not, ``?`` undefined) that fits.

    When the windows do not fit ``width``, the latest ones that do are shown and a note
    says how many were left out; at most ``limit`` features (rows) are shown.
    """
    width = terminal_width() if width is None else width
    features = sorted(set(table.column("feature").to_pylist()), key=str)
    n_features = len(features)
    if limit is not None and 0 < limit < n_features:
        import pyarrow.compute as pc

        keep = pa.array(features[:limit], table.schema.field("feature").type)
        table = table.filter(pc.is_in(table.column("feature"), value_set=keep))
    n_windows = len(set(table.column("window_start").to_pylist()))
    fitting = max(n_windows, 1)
    text = formats.to_grid(table, max_columns=fitting, meaning=meaning)
    while fitting > 1 and max(len(line) for line in text.splitlines()) > width:
        fitting -= 1
        text = formats.to_grid(table, max_columns=fitting, meaning=meaning)
    lines = text.splitlines()
    legend = lines.pop()
    notes = []
    if limit is not None and 0 < limit < n_features:
        notes.append(
            f"… {n_features - limit:,} more features ({n_features:,} in all); "
            f"use --limit {n_features} or --format csv"
        )
    if fitting < n_windows:
        notes.append(
            f"showing the latest {fitting} of {n_windows} windows (all do not fit "
            f"{width} columns); use a longer --window, or --format csv for every window"
        )
    out = [*lines, *wrap_lines(legend, width)]
    for note in notes:
        out.extend(wrap_lines(note, width))
    return "\n".join(out)
