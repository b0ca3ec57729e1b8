"""The house itself: no import cycles between modules or packages, no private name imported across
modules, and tests that read no private names. The layers are checked by ``lint-imports`` (pyproject)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("daq", "drivers", "protocols", "simulators")
# argparse offers no public way to list a parser's arguments; the CLI fuzzer reads them there.
ARGPARSE_INTERNALS = {"_actions", "_SubParsersAction"}


@pytest.fixture(scope="module")
def graph():
    # Imports for type annotations only (under TYPE_CHECKING) never run, so they cannot form a cycle.
    return grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _edges(graph, key) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = key(module), key(imported)
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                edges.setdefault(a, set()).add(b)
    return edges


def test_no_import_cycle_between_modules(graph):
    assert _cycles(_edges(graph, lambda m: m)) == []


def test_no_import_cycle_between_packages(graph):
    def package(module: str) -> str:
        return module if _is_package(module) else module.rpartition(".")[0]

    assert _cycles(_edges(graph, package)) == []


def _is_package(module: str) -> bool:
    return (ROOT / Path(*module.split(".")) / "__init__.py").exists()


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_no_private_name_imported_across_modules():
    """A private module (``pkg._common``) serves its own package only; a private name never leaves its module."""
    offences = []
    for path in _sources(*PACKAGES, "tests", "scripts", "benchmarks"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                names = [a.name for a in node.names]
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                own_package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
                for i, part in enumerate(parts):
                    if part.startswith("_") and not part.startswith("__") and ".".join(parts[:i]) != own_package:
                        private.append(part)
                if private:
                    offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}: {', '.join(private)}")
    assert offences == []


def test_tests_read_no_private_names():
    offences = []
    for path in _sources("tests"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "sys", "os"))
                and node.attr not in ARGPARSE_INTERNALS
            ):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert offences == []
