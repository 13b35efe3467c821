"""Documentation coverage: public API docstrings, CLI examples, SQL macro comments, docs/."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import pytest

import evalstore
from evalstore.cli import main
from evalstore.core.macros import SQL_FILES
from tests.conftest import blank_store

PROJECT = Path(__file__).parents[1]
SQL_DIR = PROJECT / "sql"
MACRO = re.compile(
    r"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?MACRO\s+(?:evalstore\.)?(\w+)",
    re.IGNORECASE | re.MULTILINE,
)


def _docstring(obj: object) -> str | None:
    """The object's own docstring (not inherited, not a dataclass's generated signature)."""
    if isinstance(obj, property):
        obj = obj.fget
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if doc and isinstance(obj, type) and doc.startswith(f"{obj.__name__}("):
        return None  # dataclass placeholder
    return doc.strip() if doc else None


PUBLIC_NAMES = [name for name in evalstore.__all__ if not name.startswith("_")]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_names_have_docstrings(name):
    assert _docstring(getattr(evalstore, name)), f"evalstore.{name} has no docstring"


#: Store's own members and those it inherits from the mixins of evalstore.facade
STORE_VARS = {
    name: member
    for klass in reversed(evalstore.Store.__mro__[:-1])
    for name, member in vars(klass).items()
}
STORE_MEMBERS = [
    name
    for name, member in STORE_VARS.items()
    if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
]


def test_store_members_are_found():
    assert {"close", "sql", "register_model", "models", "log_features"} <= set(STORE_MEMBERS)
    assert {"log_predictions", "log_labels", "connection"} <= set(STORE_MEMBERS)


@pytest.mark.parametrize("name", STORE_MEMBERS)
def test_store_methods_have_docstrings(name):
    assert _docstring(STORE_VARS[name]), f"Store.{name} has no docstring"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


CLI_COMMANDS = [(" ".join(path), command) for path, command in _commands(main)]


@pytest.mark.parametrize(("name", "command"), [("", main), *CLI_COMMANDS])
def test_cli_commands_have_help_with_an_example(name, command):
    text = inspect.cleandoc(command.help or "")
    assert text, f"`evalstore {name}` has no help text"
    summary, _, rest = text.partition("\n")
    assert len(summary) > 10, f"`evalstore {name}` has no one-line summary"
    assert "Example:" in rest, f"`evalstore {name}` help has no Example: section"
    example = rest.split("Example:", 1)[1]
    commands = [
        line.strip() for line in example.splitlines() if line.strip().startswith("evalstore")
    ]
    assert any(name in line for line in commands), (
        f"`evalstore {name}` example does not show the command: {example!r}"
    )


def _sql_macros() -> dict[str, list[tuple[str, str, str]]]:
    """``{file: [(macro, comment block before it, file text)]}`` for every CREATE MACRO."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        entries = []
        for match in MACRO.finditer(text):
            before = text[: match.start()].rstrip("\n").splitlines()
            block: list[str] = []
            while before and before[-1].lstrip().startswith("--"):
                block.insert(0, before.pop().lstrip()[2:].strip())
            entries.append((match.group(1), "\n".join(block), text))
        found[path.name] = entries
    return found


SQL_MACROS = _sql_macros()
ALL_MACROS = sorted({name for entries in SQL_MACROS.values() for name, _, _ in entries})


def test_sql_files_are_the_installed_ones():
    assert set(SQL_FILES) == set(SQL_MACROS), "sql/*.sql and macros.SQL_FILES disagree"


def test_every_installed_macro_is_parsed_from_sql_files():
    """The regex is not vacuous: it finds exactly the macros a store's catalog holds."""
    with blank_store() as store:
        catalog = store.sql(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE schema_name = 'evalstore' AND function_type IN ('macro', 'table_macro')"
        )
    assert sorted(catalog.column(0).to_pylist()) == ALL_MACROS
    assert {"volume", "label_coverage", "label_delay"} <= set(ALL_MACROS)


@pytest.mark.parametrize(
    ("file", "name", "block", "text"),
    [(file, *entry) for file, entries in SQL_MACROS.items() for entry in entries],
    ids=[f"{file}:{entry[0]}" for file, entries in SQL_MACROS.items() for entry in entries],
)
def test_sql_macros_have_a_comment_block_and_comment_on(file, name, block, text):
    assert block, f"{file}: macro {name} is not preceded by a -- comment block"
    assert f"evalstore.{name}(" in block.splitlines()[0], (
        f"{file}: the comment block before {name} should start with its signature"
    )
    assert len(block.splitlines()) >= 2, f"{file}: the comment block of {name} is one line"
    comment_on = re.compile(
        rf"^COMMENT\s+ON\s+MACRO\s+(?:TABLE\s+)?evalstore\.{name}\s+IS\s+'(?:[^']|'')+'",
        re.IGNORECASE | re.MULTILINE,
    )
    assert comment_on.search(text), f"{file}: macro {name} has no COMMENT ON MACRO statement"


def test_sql_files_parse_as_duckdb():
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA evalstore")
        for name in SQL_FILES:
            con.execute((SQL_DIR / name).read_text(encoding="utf-8"))
    finally:
        con.close()


DOCS = PROJECT / "docs"
#: Pages cog writes from the code (docs/_generate.py); the rest are written by hand.
GENERATED = ("sql-reference.md", "cli-reference.md")


def _missing(text: str) -> tuple[list[str], list[str]]:
    """The macros and CLI commands that ``text`` never mentions."""
    macros = [m for m in ALL_MACROS if not re.search(rf"\b{m}\b", text)]
    commands = [
        name
        for name, _ in CLI_COMMANDS
        if not re.search(rf"evalstore\b[^\n]*?\b{re.escape(name)}\b", text)
    ]
    return macros, commands


def test_the_written_pages_mention_every_macro_and_cli_command():
    """The family pages' macro tables and examples cover every macro and command, not only
    the generated references."""
    pages = [p for p in sorted(DOCS.glob("*.md")) if p.name not in GENERATED]
    assert len(pages) >= 12, [p.name for p in pages]
    macros, commands = _missing("\n".join(p.read_text(encoding="utf-8") for p in pages))
    assert not (macros or commands), (
        "docs/ must document every SQL macro and CLI command (missing macros: "
        f"{macros}; missing commands, expected on a line starting a `evalstore ...` "
        f"invocation: {commands})"
    )


def test_generated_references_have_a_section_per_macro_and_command():
    sql_reference = (DOCS / "sql-reference.md").read_text(encoding="utf-8")
    sections = re.findall(r"^### evalstore\.(\w+)$", sql_reference, re.MULTILINE)
    assert sorted(sections) == ALL_MACROS
    files = re.findall(r"^## (\S+\.sql)$", sql_reference, re.MULTILINE)
    assert files == list(SQL_FILES)  # in installation order
    cli_reference = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    commands = re.findall(r"^## evalstore ?(.*)$", cli_reference, re.MULTILINE)
    assert sorted(commands) == sorted(["", *(name for name, _ in CLI_COMMANDS)])
    assert cli_reference.count("Example:") == len(commands)  # every --help, in full
    assert "Usage: evalstore drift [OPTIONS]" in cli_reference


def test_generated_pages_match_the_code():
    """`cog --check`: the references and the HTTP statuses table are what docs/_generate.py
    writes from the SQL files, the click commands and server.openapi today (fix: make docs)."""
    pages = [str(p) for p in sorted(DOCS.glob("*.md")) if "[[[cog" in p.read_text("utf-8")]
    assert {Path(p).name for p in pages} >= {*GENERATED, "http.md"}
    done = subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--diff", "-I", str(DOCS), *pages],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"docs out of date; run `make docs`\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    )


def test_swagger_ui_is_served_from_local_files():
    """/docs works offline: its page and assets come from this server, no CDN."""
    from fastapi.testclient import TestClient

    from server import create_app

    with blank_store() as store, TestClient(create_app(store, lockdown=False)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert "SwaggerUIBundle" in page.text and "'/openapi.json'" in page.text
        assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+", page.text), page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sorted(assets) == [
            "/docs/assets/favicon-32x32.png",
            "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui.css",
        ]
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 500, asset
        assert '"validatorUrl": null' in page.text  # no badge fetched from swagger.io
        redirect = client.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200 and "https://" not in redirect.text
        assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


#: A repository path written in prose: a test file, a module, a benchmark or an example.
REPO_PATH = re.compile(
    r"(?<![\w/])((?:tests|evalstore|server|benchmarks|examples|sql)/[\w/-]+\.(?:py|sql))\b"
)


@pytest.mark.parametrize(
    "page", sorted(p.relative_to(PROJECT).as_posix() for p in (PROJECT / "docs").glob("*.md"))
)
def test_paths_named_in_the_docs_exist(page):
    """Every `tests/...py`, `evalstore/...py`, `sql/...sql` a page names is a file of the tree."""
    text = (PROJECT / page).read_text()
    missing = sorted({p for p in REPO_PATH.findall(text) if not (PROJECT / p).exists()})
    assert not missing, f"{page} names files that do not exist: {missing}"


def _section(text: str, anchor: str) -> str | None:
    """The Markdown section whose heading's GitHub anchor is ``anchor`` (to the next heading
    of the same or a higher level), or None."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = re.match(r"^(#+) (.+)$", line)
        slug = heading and re.sub(r"[^\w\- ]", "", heading.group(2).strip().lower())
        if heading and slug.replace(" ", "-") == anchor:
            level = len(heading.group(1))
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if (m := re.match(r"^(#+) ", lines[j])) and len(m.group(1)) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[i:end])
    return None


def test_every_registered_metric_is_documented_at_its_anchor():
    """Each spec of evalstore.metrics.specs names a docs page and heading; that section
    mentions the spec's name in backticks, and the generated registry table lists it."""
    import importlib.util

    from evalstore.metrics.specs import REGISTRIES

    loader = importlib.util.spec_from_file_location("docs_generate", DOCS / "_generate.py")
    generate = importlib.util.module_from_spec(loader)
    sys.modules["docs_generate"] = generate  # dataclasses look their module up
    loader.loader.exec_module(generate)

    missing = []
    for family, registry in REGISTRIES.items():
        table = generate.registry_table(family)
        for name, spec in registry.items():
            page, _, anchor = spec.docs_anchor.partition("#")
            section = _section((DOCS / page).read_text(encoding="utf-8"), anchor)
            if section is None or f"`{name}`" not in section:
                missing.append(f"{family}.{name} -> {spec.docs_anchor}")
            assert f"| `{name}` |" in table
    assert not missing, f"undocumented registered metrics: {missing}"
