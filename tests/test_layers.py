"""The import rule of evalstore's layers, checked on the source with ``ast``.

Layers, lowest first: ``evalstore.core`` < ``evalstore.metrics`` < ``evalstore.flywheel`` <
``evalstore.monitors`` < the top: ``evalstore.store`` and its mixins ``evalstore.facade``,
``evalstore.demo``, ``evalstore.cli``, the package ``evalstore`` and any other subpackage.
A module may import its own layer and any lower one; ``evalstore.errors`` is importable
by all. Only the CLI may import ``server`` (``evalstore serve``); ``server`` imports
evalstore and itself. Every import counts: module level, inside functions and under
``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

CORE, METRICS, FLYWHEEL, MONITORS, TOP = 0, 1, 2, 3, 4
LAYER_NAMES = {
    CORE: "core",
    METRICS: "metrics",
    FLYWHEEL: "flywheel",
    MONITORS: "monitors",
    TOP: "store/facade/demo/cli",
}
#: What ``from evalstore import X`` loads when X is not a submodule (``evalstore._LAZY``).
LAZY = {
    "Store": "evalstore.store",
    "open": "evalstore.store",
    "Receipt": "evalstore.core.ingest_write",
}


def module_name(path: Path) -> str:
    """``evalstore/core/db.py`` -> ``evalstore.core.db``; an ``__init__`` -> its package."""
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int | None:
    """The layer of an evalstore module; None for ``evalstore.errors`` (importable by all)."""
    if module == "evalstore.errors" or module.startswith("evalstore.errors."):
        return None
    for prefix, rank in (
        ("evalstore.core", CORE),
        ("evalstore.metrics", METRICS),
        ("evalstore.flywheel", FLYWHEEL),
        ("evalstore.monitors", MONITORS),
    ):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return TOP  # evalstore itself, evalstore.store, evalstore.facade, evalstore.demo, evalstore.cli


def imported(module: str, source: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module ``source`` imports, as ``(line, dotted name)``, relative ones resolved.

    ``from evalstore import X`` names the submodule ``evalstore.X`` when X is one (or the
    module a lazy name loads); other names (errors, ``__version__``) are ``evalstore.errors``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if base == "evalstore" and alias.name in LAZY:
                    found.append((node.lineno, LAZY[alias.name]))
                elif base == "evalstore" and not _is_module(candidate):
                    found.append((node.lineno, "evalstore.errors"))
                elif _is_module(candidate):
                    found.append((node.lineno, candidate))
                else:
                    found.append((node.lineno, base))
    return found


def _is_module(dotted: str) -> bool:
    path = PROJECT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """The imports of ``module`` that break the rule, one message each."""
    found = []
    for line, target in imported(module, source, is_package):
        top = target.split(".")[0]
        if module.startswith("server"):
            continue  # server imports evalstore and itself, nothing imports server but cli
        if top == "server":
            if not (module == "evalstore.cli" or module.startswith("evalstore.cli.")):
                found.append(f"{module} (line {line}) imports {target}: only the CLI may")
            continue
        if top != "evalstore":
            continue
        mine, theirs = layer(module), layer(target)
        if mine is None:
            if theirs is not None:
                found.append(f"{module} (line {line}) imports {target}: errors imports nothing")
            continue
        if theirs is not None and theirs > mine:
            found.append(
                f"{module} (line {line}) imports {target}: the {LAYER_NAMES[mine]} layer "
                f"must not import the {LAYER_NAMES[theirs]} layer"
            )
    return found


def sources() -> list[Path]:
    return sorted([*(PROJECT / "evalstore").rglob("*.py"), *(PROJECT / "server").rglob("*.py")])


def test_every_layer_imports_only_downwards():
    broken = []
    for path in sources():
        broken += violations(module_name(path), path.read_text(encoding="utf-8"),
                             path.name == "__init__.py")  # fmt: skip
    assert broken == [], "\n".join(broken)


def test_each_layer_is_a_package_stating_its_rule():
    for package in (
        "core",
        "metrics",
        "metrics/drift",
        "flywheel",
        "monitors",
        "facade",
        "demo",
        "cli",
    ):
        init = PROJECT / "evalstore" / package / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "Import rule" in doc, f"{init} must say what the layer is and its import rule"


@pytest.mark.parametrize(
    ("module", "source", "message"),
    [
        (
            "evalstore.core.ingest",
            "def f():\n    from evalstore.flywheel.suggest import fulfil_requests\n",
            "evalstore.core.ingest (line 2) imports evalstore.flywheel.suggest: the core "
            "layer must not import the flywheel layer",
        ),
        (
            "evalstore.metrics.skew",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from evalstore.store import Store\n",
            "evalstore.metrics.skew (line 3) imports evalstore.store: the metrics layer "
            "must not import the store/facade/demo/cli layer",
        ),
        (
            "evalstore.metrics.drift.univariate",
            "from ...flywheel import suggest\n",
            "evalstore.metrics.drift.univariate (line 1) imports evalstore.flywheel.suggest: "
            "the metrics layer must not import the flywheel layer",
        ),
        (
            "evalstore.core.db",
            "from evalstore import Store\n",
            "evalstore.core.db (line 1) imports evalstore.store: the core layer must not "
            "import the store/facade/demo/cli layer",
        ),
        (
            "evalstore.flywheel.snapshots",
            "from evalstore.facade.analysis import AnalysisMethods\n",
            "evalstore.flywheel.snapshots (line 1) imports evalstore.facade.analysis: the "
            "flywheel layer must not import the store/facade/demo/cli layer",
        ),
        (
            "evalstore.monitors.run",
            "from evalstore.store import Store\n",
            "evalstore.monitors.run (line 1) imports evalstore.store: the monitors layer "
            "must not import the store/facade/demo/cli layer",
        ),
        (
            "evalstore.flywheel.suggest",
            "from evalstore.monitors import history\n",
            "evalstore.flywheel.suggest (line 1) imports evalstore.monitors.history: the "
            "flywheel layer must not import the monitors layer",
        ),
        (
            "evalstore.store",
            "import server.app\n",
            "evalstore.store (line 1) imports server.app: only the CLI may",
        ),
    ],
)
def test_violations_are_named(module, source, message):
    assert violations(module, source) == [message]


def test_downward_and_error_imports_are_allowed():
    source = (
        "from evalstore import InvalidParameterError, __version__\n"
        "from evalstore.core.db import transaction\n"
        "from evalstore.metrics import performance\n"
        "import numpy\n"
    )
    assert violations("evalstore.flywheel.suggest", source) == []
    assert imported("evalstore.flywheel.suggest", source) == [
        (1, "evalstore.errors"),
        (1, "evalstore.errors"),
        (2, "evalstore.core.db"),
        (3, "evalstore.metrics.performance"),
        (4, "numpy"),
    ]
