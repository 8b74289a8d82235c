"""The shape of the package: no import cycle, and only public APIs of the libraries."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mogaqnn"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of mogaqnn (packages by __init__)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The mogaqnn modules that ``name`` imports, anywhere in it (lazy imports count too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mogaqnn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "mogaqnn":
                continue
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def _graph(unit) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        for target in _imports(name, path, modules):
            a, b = unit(name), unit(target)
            if a != b:
                graph.setdefault(a, set()).add(b)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _top_level(name: str) -> str:
    """mogaqnn.search._loop -> mogaqnn.search; mogaqnn.cli -> mogaqnn.cli."""
    return ".".join(name.split(".")[:2])


def test_the_import_graph_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_modules():
    graph = _graph(lambda name: name)
    assert "mogaqnn.run" in graph and "mogaqnn.search._loop" in graph  # the walk sees them
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_between_packages():
    graph = _graph(_top_level)
    assert "mogaqnn.run" in graph["mogaqnn.search"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_search_does_not_import_the_report_or_the_export():
    graph = _graph(_top_level)
    assert not graph["mogaqnn.search"] & {"mogaqnn.report", "mogaqnn.export"}
    assert not graph["mogaqnn.run"] & {"mogaqnn.search", "mogaqnn.report", "mogaqnn.export"}


PRIVATE = re.compile(r"optuna\._|\._storage\b|_get_generation_key|journal\._file")


def test_only_public_optuna_apis():
    hits = [
        f"{path}:{i}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert not hits, "\n".join(hits)
