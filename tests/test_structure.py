"""The package's layout holds by design: rooms by pipeline stage whose imports flow one way (nothing imports a
room above its own), no import cycles between modules, torch only where a model runs, small modules, and one
reader of `sql/`."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "toolkit"

ORDER = ["base", "store", "capture", "stats", "causal", "figures", "scale", "cli"]
"""The rooms from the bottom up; a module may import its own room and the rooms below it."""

TORCH_ROOMS = {"capture", "causal"}
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ORDER) else "base"


def imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in PATH (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {
    m: {i for i in imports(p) if i in MODULES and i != m and i != "toolkit"}
    for m, p in MODULES.items()
    if m not in ("toolkit", "toolkit.__main__")  # the package root re-exports; __main__ runs the CLI
}


def test_every_module_is_in_a_room():
    assert {room(m) for m in MODULES} <= set(ORDER)
    base = sorted(m for m in MODULES if room(m) == "base")
    assert base == ["toolkit", "toolkit.__main__", "toolkit.data", "toolkit.defaults", "toolkit.errors"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_nothing_imports_upward(module):
    mine = ORDER.index(room(module))
    upward = sorted(i for i in GRAPH[module] if ORDER.index(room(i)) > mine)
    assert not upward, f"{module} ({room(module)}) imports rooms above it: {upward}"


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for i in GRAPH.get(m, ()):
            if state.get(i) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(i) :], i]))
            if i not in state:
                visit(i, [*path, i])
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            visit(m, [m])


def test_torch_only_where_a_model_runs():
    users = sorted(m for m, p in MODULES.items() if any(i == "torch" or i.startswith("torch.") for i in imports(p)))
    assert users and all(room(m) in TORCH_ROOMS for m in users), users


def test_modules_are_small():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_one_reader_of_the_sql_folder():
    """Only the catalogue opens the files of sql/ (everyone else asks it)."""
    readers = sorted(m for m, p in MODULES.items() if "sql_dir()" in p.read_text() or '"toolkit.sql"' in p.read_text())
    assert readers == ["toolkit.store.catalog"], readers


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "toolkit.__main__"))
def test_every_module_imports(module):
    """Every name a module imports exists (a moved or renamed function fails here, not in a user's command)."""
    importlib.import_module(module)
