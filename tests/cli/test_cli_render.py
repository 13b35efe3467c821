"""Terminal rendering of the CLI (evalstore.cli.render): width, row cap, wrapping, grid."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from evalstore.cli import render as cli_render
from evalstore.cli.render import render_grid, render_table, terminal_width

LONG_REASON = (
    "mix/entropy: uncertain prediction '1' (score 0.500; entropy 1.000) (committee 0.00, "
    "novelty 0.12, slice_need 0.57); the model hesitates between both classes and three "
    "other strategies agree that a label here would teach it the most"
)


def _wide_table(rows: int = 3) -> pa.Table:
    return pa.table(
        {
            "window_start": [
                datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=i) for i in range(rows)
            ],
            "metric": ["log_loss"] * rows,
            "value": [-4.20867312e-05 * (i + 1) for i in range(rows)],
            "ci_low": [-0.000706937] * rows,
            "ci_high": [0.000622764] * rows,
            "n": [123456789] * rows,
            "variant": ["positive class 1, predicted positive when score >= 0.3 " * 2] * rows,
            "extra_one": ["x" * 30] * rows,
            "extra_two": ["y" * 30] * rows,
        }
    )


def _width(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("width", [80, 120])
def test_table_fits_the_width_and_never_splits_a_number(width):
    text = render_table(_wide_table(), width=width)
    assert _width(text) <= width
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["window_start", "metric", "value", "ci_low", "ci_high", "n"]
    # numbers appear whole, with 6 significant digits
    assert lines[2].split()[:6] == [
        "2026-09-01", "log_loss", "-4.20867e-05", "-0.000706937", "0.000622764", "123456789",
    ]  # fmt: skip
    assert "(3 rows)" in lines
    # what did not fit is named, with the way to see it
    note = " ".join(lines[lines.index("(3 rows)") + 1 :])
    assert note.startswith("not shown: ")
    assert "extra_two" in note
    assert note.endswith("(--format csv or json shows every column)")


def test_long_text_is_shortened_with_an_ellipsis_only_when_needed():
    table = pa.table({"name": ["a"], "variant": ["v" * 200]})
    wide = render_table(table, width=300).splitlines()
    assert wide[2] == "a     " + "v" * 200
    narrow = render_table(table, width=60).splitlines()
    assert narrow[2] == "a     " + "v" * 53 + "…"
    assert len(narrow[2]) == 60


def test_row_cap_says_how_many_more_rows_and_how_to_see_them():
    table = pa.table({"i": list(range(120))})
    lines = render_table(table, width=80, limit=50).splitlines()
    assert len(lines) == 2 + 50 + 1
    assert lines[2] == "0" and lines[51] == "49"
    assert lines[-1] == "… 70 more rows (120 in all); use --limit 120 or --format csv"
    everything = render_table(table, width=80, limit=0).splitlines()
    assert len(everything) == 2 + 120 + 1
    assert everything[-1] == "(120 rows)"
    one = render_table(pa.table({"i": [1, 2]}), width=80, limit=1).splitlines()
    assert one[-1] == "… 1 more row (2 in all); use --limit 2 or --format csv"


@pytest.mark.parametrize("width", [60, 80, 120])
def test_wrapped_column_shows_the_whole_text(width):
    table = pa.table(
        {"rank": [1, 2], "example_id": ["srv-1", "srv-2"], "reason": [LONG_REASON, "short"]}
    )
    text = render_table(table, width=width, wrap=("reason",))
    assert _width(text) <= width
    lines = text.splitlines()
    start = lines[0].index("reason")
    first_row = [lines[2]] + [line for line in lines[3:] if line[:start].strip() == ""]
    assert " ".join(line[start:].strip() for line in first_row) == LONG_REASON
    assert "…" not in text
    assert lines[-1] == "(2 rows)"


def test_drop_empty_leaves_out_null_columns_and_names_them():
    table = pa.table({"metric": ["f1"], "class": pa.array([None], pa.string()), "value": [0.5]})
    lines = render_table(table, width=80, drop_empty=True).splitlines()
    assert lines[0].split() == ["metric", "value"]
    assert lines[-1] == "not shown: class (--format csv or json shows every column)"
    kept = render_table(table, width=80).splitlines()
    assert kept[0].split() == ["metric", "class", "value"]
    assert kept[2].split() == ["f1", "NULL", "0.5"]


def test_columns_pick_and_order_what_is_shown():
    table = pa.table({"a": [1], "b": [2], "c": [3]})
    lines = render_table(table, width=80, columns=["c", "a", "missing"]).splitlines()
    assert lines[0].split() == ["c", "a"]
    assert lines[2].split() == ["3", "1"]
    assert lines[-1] == "not shown: b (--format csv or json shows every column)"


def test_times_are_dates_at_midnight_and_seconds_otherwise():
    midnight = pa.table({"t": [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)]})
    assert render_table(midnight, width=80).splitlines()[2:4] == ["2026-01-01", "2026-01-02"]
    tz = pa.timestamp("us", tz="UTC")
    stamps = pa.table(
        {"t": pa.array([datetime(2026, 1, 1, 13, 5, 9, 123456, tzinfo=UTC), None], tz)}
    )
    assert render_table(stamps, width=80).splitlines()[2:4] == ["2026-01-01 13:05:09", "NULL"]


def _daily_grid(days: int, features: int = 3) -> pa.Table:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    rows = [
        (start + timedelta(days=d), f"feature_{f}", d == days - 1 and f == 0)
        for d in range(days)
        for f in range(features)
    ]
    return pa.table(
        {
            "window_start": [r[0] for r in rows],
            "feature": [r[1] for r in rows],
            "drifted": [r[2] for r in rows],
        }
    )


@pytest.mark.parametrize("width", [80, 120])
def test_grid_shows_the_latest_windows_that_fit(width):
    text = render_grid(_daily_grid(60), meaning="drifted", width=width)
    assert _width(text) <= width
    lines = text.splitlines()
    header = lines[0].split()
    # "feature_0" is 9 wide; each window takes 2 + 5 ("10-30") characters
    shown = (width - 9) // 7
    assert len(header) - 1 == shown
    assert header[-1] == "10-30"  # the latest day is kept
    assert lines[2].split()[-1] == "X"
    legend = lines.index("X = drifted, . = not, ? = undefined")
    assert " ".join(lines[legend + 1 :]) == (
        f"showing the latest {shown} of 60 windows (all do not fit {width} columns); use a "
        "longer --window, or --format csv for every window"
    )


def test_grid_row_cap_counts_features():
    text = render_grid(_daily_grid(2, features=7), meaning="drifted", width=120, limit=3)
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[2:5]] == ["feature_0", "feature_1", "feature_2"]
    assert lines[5].startswith("X = drifted")
    assert lines[6] == "… 4 more features (7 in all); use --limit 7 or --format csv"


def test_grid_that_fits_has_no_note():
    lines = render_grid(_daily_grid(5), meaning="drifted", width=120).splitlines()
    assert lines[0].split() == ["feature", "09-01", "09-02", "09-03", "09-04", "09-05"]
    assert lines[-1] == "X = drifted, . = not, ? = undefined"


def test_terminal_width_from_columns_tty_or_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "93")
    assert terminal_width() == 93
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(cli_render, "stdout_is_tty", lambda: False)
    assert terminal_width() == 120
    monkeypatch.setattr(cli_render, "stdout_is_tty", lambda: True)
    monkeypatch.setattr(
        cli_render.shutil, "get_terminal_size", lambda fallback: os.terminal_size((77, 30))
    )
    assert terminal_width() == 77
