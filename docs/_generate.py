"""Generators for the reference pages of docs/, run by cog (``make docs``).

``docs/sql-reference.md``, ``docs/cli-reference.md`` and the statuses table of
``docs/http.md`` hold cog blocks that call these functions; the text between ``[[[end]]]``
markers is their output, so the pages say what the code says:

* :func:`sql_reference`: every macro of the SQL files evalstore installs, in installation
  order, with the comment block written above its ``CREATE MACRO`` (the definition) and each
  file's header comment;
* :func:`cli_reference`: the ``--help`` text of ``evalstore`` and of every command, as click
  prints it at a fixed width;
* :func:`http_statuses`: the error statuses the server declares in its OpenAPI description.

Regenerate with ``.venv/bin/cog -r -I docs docs/*.md``; ``tests/test_docs.py`` runs
``cog --check`` so a reference that no longer matches the code fails the suite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
SQL_DIR = PROJECT / "sql"
#: Width the CLI help is rendered at (click wraps to it whatever the terminal).
HELP_WIDTH = 96

MACRO = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?MACRO\s+(?:evalstore\.)?(\w+)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Macro:
    """One ``CREATE MACRO`` of a SQL file: its name and the ``--`` comment block above it."""

    file: str
    name: str
    comment: str


def sql_files() -> tuple[str, ...]:
    """The SQL files a store installs, in installation order (``macros.SQL_FILES``)."""
    try:
        from evalstore.core.macros import SQL_FILES
    except ImportError:  # the layout before evalstore/core/
        from evalstore.macros import SQL_FILES
    return tuple(SQL_FILES)


def _comment_lines(lines: list[str]) -> list[str]:
    """The ``--`` lines at the end of ``lines`` (a comment block), without the dashes."""
    block: list[str] = []
    while lines and lines[-1].lstrip().startswith("--"):
        text = lines.pop().lstrip()[2:]
        block.insert(0, text[1:] if text.startswith(" ") else text)
    return block


def file_macros(path: Path) -> list[Macro]:
    """Every macro of one SQL file with the comment block right above its ``CREATE``."""
    text = path.read_text(encoding="utf-8")
    macros = []
    for match in MACRO.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        macros.append(Macro(path.name, match.group(1), "\n".join(_comment_lines(before))))
    return macros


def file_header(path: Path) -> str:
    """The comment block a SQL file starts with (up to its first blank or code line)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("--"):
            break
        text = line.lstrip()[2:]
        lines.append(text[1:] if text.startswith(" ") else text)
    return "\n".join(lines).strip("\n")


def all_macros() -> list[Macro]:
    """Every macro of every installed SQL file, in installation order."""
    return [macro for name in sql_files() for macro in file_macros(SQL_DIR / name)]


def _fenced(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```\n"


def sql_reference() -> str:
    """The SQL macro reference: per installed file, its header and each macro's comment."""
    files = sql_files()
    out = ["Files, in the order a store installs them:\n\n"]
    out.extend(f"- [`{name}`](#{name.replace('.', '')})\n" for name in files)
    for name in files:
        path = SQL_DIR / name
        out.append(f"\n## {name}\n\n")
        header = file_header(path)
        if header:
            out.append(_fenced(header))
        for macro in file_macros(path):
            out.append(f"\n### evalstore.{macro.name}\n\n")
            out.append(_fenced(macro.comment) if macro.comment else "(no comment)\n")
    return "".join(out)


def cli_commands() -> Iterator[tuple[str, object]]:
    """``(name, click command)`` for ``evalstore`` and every command and subcommand."""
    import click

    from evalstore.cli import main

    def walk(group: click.Group, prefix: tuple[str, ...]):
        for name in sorted(group.commands):
            command = group.commands[name]
            yield (*prefix, name), command
            if isinstance(command, click.Group):
                yield from walk(command, (*prefix, name))

    yield (), main
    yield from walk(main, ())


def _help(path: tuple[str, ...], command) -> str:
    """``evalstore <path> --help`` as click prints it, at :data:`HELP_WIDTH` columns."""
    import click

    from evalstore.cli import main

    ctx = click.Context(
        main, info_name="evalstore", terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH
    )
    group = main
    for name in path:
        group = group.commands[name]
        ctx = click.Context(group, info_name=name, parent=ctx)
    return command.get_help(ctx)


def cli_reference() -> str:
    """The CLI reference: every command's ``--help``, in command order."""
    commands = list(cli_commands())
    out = ["Commands:\n\n"]
    out.extend(
        f"- [`evalstore {' '.join(path)}`](#{'-'.join(('evalstore', *path))})\n"
        for path, _ in commands[1:]
    )
    for path, command in commands:
        out.append(f"\n## {' '.join(('evalstore', *path))}\n\n")
        out.append(_fenced(_help(path, command)))
    return "".join(out)


def http_statuses() -> str:
    """The error statuses of the HTTP API as a Markdown table (``server.openapi``)."""
    from server.openapi import DESCRIPTIONS

    rows = ["| status | meaning (`error` codes) |\n", "| --- | --- |\n"]
    for status in sorted(DESCRIPTIONS):
        meaning = DESCRIPTIONS[status].replace("|", "\\|")
        rows.append(f"| {status} | {meaning} |\n")
    return "".join(rows)


def registry_table(family: str) -> str:
    """The registered methods of a metric family as a Markdown table, from
    ``evalstore.metrics.specs.REGISTRIES[family]`` (drift, multivariate_drift, quality,
    validate, performance, compare): name, kinds or tasks, default and definition."""
    from evalstore.metrics.specs import REGISTRIES

    specs = REGISTRIES[family]
    rows = ["| name | applies to | default | definition |\n", "| --- | --- | --- | --- |\n"]
    for name, spec in specs.items():
        applies = ", ".join(getattr(spec, "kinds", None) or spec.tasks)
        if hasattr(spec, "direction") and hasattr(spec, "default_limit"):
            limit = spec.default_limit
            default = {
                "learned": "learned from the reference",
                "below": f"p < {limit}" + (" after correction" if family == "drift" else ""),
                "outside": f"outside [{limit[0] if isinstance(limit, tuple) else ''}, "
                f"{limit[1] if isinstance(limit, tuple) else ''}]",
                "above": f"value > {limit}",
            }[spec.direction]
            if getattr(spec, "variant_prefix", None):
                default += f" ({spec.variant_prefix})"
        elif hasattr(spec, "threshold_parameter"):
            sign = "<" if spec.direction == "below" else ">"
            schema = family == "validate" and spec.threshold_parameter != "tolerance"
            source = "the schema's" if schema else "keyword"
            default = f"fails when value {sign} limit ({source} `{spec.threshold_parameter}`"
            default += ")" if schema else f", default {spec.default_threshold})"
        else:
            default = {True: "higher is better", False: "lower is better"}.get(
                spec.higher_is_better, "closer to 0 is better"
            )
        definition = spec.definition.replace("|", "\\|")
        rows.append(f"| `{name}` | {applies} | {default} | {definition} |\n")
    return "".join(rows)
