"""Package layout: every module imports, the import graph has no cycle, layers point down.

The layers, lowest first: the foundation (``analogsim.fields``, ``analogsim.seeding`` and
the package's other top-level modules), ``kernels``, ``hardware``, ``oracle``, ``layers``,
``rules``, ``experiments`` (see the package docstring). A module may import its own layer
and the ones below, never one above. Every import statement counts, including the ones
inside functions (a lazy import still makes the importing module depend on the imported one
at run time).

The package root ``analogsim/__init__.py`` is the curated public API: it sits *above* every
layer (it may name anything, loaded lazily on first use) and nothing imports it back — not
even ``from .. import __version__`` (that lives in ``analogsim._version``).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import analogsim

ROOT = Path(analogsim.__file__).resolve().parent
PACKAGE = "analogsim"
#: Rank of each layer; a module may import modules of equal or lower rank. ``analogsim``
#: ranks the package's other top-level modules; the root module itself is :data:`TOP`.
RANKS = {"analogsim": 0, "analogsim.fields": 0, "analogsim.seeding": 0,
         "analogsim.kernels": 1, "analogsim.hardware": 2, "analogsim.oracle": 3,
         "analogsim.layers": 4, "analogsim.rules": 5, "analogsim.experiments": 6}
#: Rank of the package root (the public API), above every layer.
TOP = 100


def _modules() -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules one import statement of module ``name`` loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in MODULES}
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1])
        target = f"{base}.{node.module}" if node.module else base
    else:
        target = node.module or ""
    # `from pkg import sub` loads the submodule pkg.sub; `from mod import name` loads mod.
    found = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES}
    if len(found) < len(node.names) and target in MODULES:
        found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` from the source, with :mod:`ast`."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _targets(name, path, node)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (``[a, b, ..., a]``), or ``[]`` if it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def rank(module: str) -> int:
    """The layer rank of a module: that of its longest listed prefix (the root: TOP)."""
    if module == PACKAGE:
        return TOP
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANKS:
            return RANKS[".".join(parts[:n])]
    raise AssertionError(f"module {module} is in no layer; add its package to RANKS")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert graph["analogsim.experiments.cli"], "the graph builder found no imports"
    assert find_cycle(graph) == []


def test_lower_layers_never_import_upper_ones() -> None:
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                    if rank(b) > rank(a))
    assert upward == []


def test_the_foundation_imports_nothing_of_the_package() -> None:
    graph = import_graph()
    for name in ("analogsim.fields", "analogsim.seeding"):
        assert graph[name] == set(), name


def test_nothing_imports_the_package_root() -> None:
    # The root is the public API, above every layer: a module importing it would import
    # (lazily) everything, and make a cycle of any upper module it names.
    importers = sorted(a for a, targets in import_graph().items() if PACKAGE in targets)
    assert importers == []


def test_the_public_names_resolve_lazily() -> None:
    import subprocess
    import sys

    code = ("import sys, analogsim as a; assert 'numba' not in sys.modules, 'eager'; "
            "assert 'matplotlib' not in sys.modules; "
            "missing = [n for n in a.__all__ if getattr(a, n, None) is None]; "
            "assert not missing, missing; print(len(a.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 40
    with pytest.raises(AttributeError, match="no attribute 'nope'.*__all__"):
        analogsim.nope  # noqa: B018


def test_the_checker_sees_cycles_and_upward_imports() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    assert rank("analogsim") > rank("analogsim.experiments.cli") > rank(
        "analogsim.rules.base") > rank("analogsim.layers.network") > rank(
        "analogsim.hardware.config") > rank("analogsim.kernels.read") > rank("analogsim.fields")
    assert rank("analogsim._version") == rank("analogsim.fields")
