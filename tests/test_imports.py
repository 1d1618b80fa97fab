"""The module graph of credhelper/: no import cycles, and the wire imports only the standard library.

Read from the source with ``ast``, so an import inside a function counts (it runs the first time
that function does); one under ``if TYPE_CHECKING:`` does not (it never runs).
"""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "credhelper"
# What runs inside every git and pip process (DESIGN §2): the standard library only.
WIRE = ["credhelper.errors", "credhelper.paths", "credhelper.protocol", "credhelper.client",
        "credhelper.flatjson", "credhelper.frontends.git", "credhelper.frontends.git_main",
        "credhelper.frontends.common", "credhelper.environment", "credhelper.socketpath"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """Every module ``name`` imports (credhelper's own resolved to modules, others by top name)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: Set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return found


def _graph() -> Dict[str, Set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(name, path, set(modules)) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: List[str] = []

    def walk(node: str) -> Optional[List[str]]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = walk(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = walk(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_reader_skips_type_checking_imports_and_resolves_relative_ones(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("from typing import TYPE_CHECKING\nfrom . import x\nfrom .y import z\n"
                   "if TYPE_CHECKING:\n    from .w import v\nelse:\n    import json\n"
                   "def f():\n    from ..up import thing\n")
    found = _imports("credhelper.sub.mod", src, {"credhelper.sub.x"})
    assert found == {"typing", "credhelper.sub.x", "credhelper.sub.y", "json", "credhelper.up"}


def test_no_import_cycle_in_credhelper():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", WIRE)
def test_the_wire_imports_only_the_standard_library(module):
    graph, modules = _graph(), _modules()
    seen, todo = set(), [module]
    while todo:  # everything the module pulls in, transitively, within credhelper
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    foreign = set()
    for name in seen:
        for imported in _imports(name, modules[name], set(modules)):
            top = imported.split(".")[0]
            if top not in ("credhelper", "__future__") and top not in sys.stdlib_module_names:
                foreign.add(f"{name} imports {imported}")
    assert not foreign, sorted(foreign)


# The helpers a tool starts as a process of their own: what they load, checked by loading it.
FRONT_ENDS = ["credhelper.frontends.git", "credhelper.frontends.keyring_cli",
              "credhelper.frontends.docker", "credhelper.frontends.cargo"]


@pytest.mark.parametrize("module", FRONT_ENDS)
def test_a_front_end_loads_only_the_standard_library(module):
    code = ("import sys\nbefore = set(sys.modules)\n"
            f"import {module}\n"
            "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            # Python 3.9 has no stdlib_module_names: there, name the dependencies to keep out
            "known = getattr(sys, 'stdlib_module_names', None)\n"
            "foreign = {'click', 'msal', 'keyring', 'cryptography', 'watchdog', 'requests', "
            "'jaraco'}\n"
            "print(sorted(new - set(known) - {'credhelper'} if known else new & foreign))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"


def test_only_the_command_line_imports_commands():
    graph = _graph()
    inside = ("credhelper.commands", "credhelper.cli")
    offenders = sorted(f"{name} imports {target}" for name, targets in graph.items()
                       if not name.startswith(inside) for target in targets
                       if target.startswith("credhelper.commands"))
    assert not offenders, offenders
