"""The supervisor package's imports point one way: the runners and their parts are handed a context, they do not
reach back into the supervisor, and no two of its modules import each other (directly or around a loop)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import wagate.supervisor

PACKAGE = Path(wagate.supervisor.__file__).parent


def imports() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports (type-checking imports too)."""
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    found: dict[str, set[str]] = {}
    for module in modules:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[module] = {m for m in modules if f"wagate.supervisor.{m}" in names and m != module}
    return found


def test_no_module_of_the_supervisor_package_is_in_an_import_cycle() -> None:
    graph = imports()
    assert {"runner", "context", "supervisor"} <= graph.keys()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {exc.args[1]}") from None
    assert order.index("context") < order.index("runner") < order.index("supervisor")


def test_only_the_composition_imports_the_supervisor() -> None:
    graph = imports()
    assert sorted(m for m, deps in graph.items() if "supervisor" in deps) == []
