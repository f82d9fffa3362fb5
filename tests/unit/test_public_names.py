"""Every module of wagate declares its public names in ``__all__``, and the declaration is true: each name it lists
is defined (or, in a package's face, imported) there, and each class, function and module-level value without a
leading underscore is listed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "wagate"
PRIVATE_VALUES = {"log", "logger"}  # a module's logger is its own
MODULES = sorted(
    p for p in SRC.rglob("*.py") if p.name != "__main__.py" and "migrations" not in p.relative_to(SRC).parts
)


def _declared(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(name) for name in value]
    return None


def _typevar(value: ast.expr | None) -> bool:
    return (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in {"TypeVar", "ParamSpec"}
    )


def _defined(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names a module defines without an underscore, every name bound at its top level)."""
    public: set[str] = set()
    bound: set[str] = set()
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Assign) and not _typevar(node.value):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names = [node.target.id]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        bound.update(names)
        public.update(n for n in names if not n.startswith("_") and n not in PRIVATE_VALUES)
    return public - {"__all__"}, bound


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_the_module_declares_what_it_offers(path: Path) -> None:
    tree = ast.parse(path.read_text())
    public, bound = _defined(tree)
    declared = _declared(tree)
    if declared is None:
        assert not public, f"{path.relative_to(SRC)} defines {sorted(public)} but declares no __all__"
        return
    assert len(declared) == len(set(declared)), "a name listed twice"
    assert set(declared) <= bound, f"listed but not there: {sorted(set(declared) - bound)}"
    assert public <= set(declared), f"public but not listed: {sorted(public - set(declared))}"
