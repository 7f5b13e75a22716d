"""The package's import graph: no cycles, and each layer imports only the layers below it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import langchain_coasty

ROOT = Path(langchain_coasty.__file__).parent
PACKAGE = "langchain_coasty"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> Iterator[str]:
    """Package modules imported by ``path`` at any level (function-level and TYPE_CHECKING too)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                yield target


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = {t for t in _imports(path, name) if t in modules and t != name}
        graph[name] = deps
    return graph


def _without_faces(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exporting its own modules is not a cycle between layers.
    out: dict[str, set[str]] = {}
    for name, deps in graph.items():
        out[name] = {d for d in deps if not name.startswith(d + ".")}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = _cycle(_without_faces(_graph()))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_layers_only_look_down() -> None:
    graph = _graph()
    for name, deps in graph.items():
        if name.startswith(f"{PACKAGE}.client"):
            assert all(d.startswith(f"{PACKAGE}.client") or d.endswith("_version") for d in deps)
        if name.startswith(f"{PACKAGE}.sandbox"):
            assert all(d.startswith(f"{PACKAGE}.sandbox") for d in deps), (name, deps)
        if name.startswith(f"{PACKAGE}._engine"):
            assert not deps & {f"{PACKAGE}.runnable", f"{PACKAGE}.tools", f"{PACKAGE}.durable"}
    tools = graph[f"{PACKAGE}.tools"]
    assert f"{PACKAGE}.runnable" not in tools, "tools import the engine, not the runnable"
    for leaf in ("human", "callbacks", "_lru"):
        inside = {d for d in graph[f"{PACKAGE}.{leaf}"] if not d.endswith("client")}
        assert not inside - {f"{PACKAGE}._lru"}, (leaf, inside)
