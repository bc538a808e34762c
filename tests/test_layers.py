"""The packages depend one way (CONTRIBUTING.md, "Layers").

Every import counts, also those inside functions: a function-local import hides a cycle from
the interpreter, not from a reader. Imports under `if TYPE_CHECKING:` do not count: they name a
type for annotations and load nothing. An import of `a.b.c` counts as an edge to the deepest
module of ours it names (`from a.b import c` where `c` is a function is an edge to `a.b`).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flashswap", "analyzer")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _named(module: str, node: ast.Import | ast.ImportFrom, is_pkg: bool) -> list[str]:
    """Dotted names an import statement refers to, relative imports resolved."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    prefix = node.module or ""
    if node.level:
        base = module.split(".")[: None if is_pkg else -1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in `tree` but under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
              and node.test.id == "TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        out: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            for name in _named(mod, node, path.name == "__init__.py"):
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    out.add(name)
        graph[mod] = out
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_analyzer_never_imports_the_cli() -> None:
    bad = [(m, t) for m, ts in import_graph().items() if m.startswith("analyzer")
           for t in ts if t.startswith("flashswap.cli")]
    assert bad == []


def test_flashswap_core_never_imports_the_analyzer() -> None:
    bad = [(m, t) for m, ts in import_graph().items()
           if m.startswith("flashswap") and not m.startswith("flashswap.cli")
           for t in ts if t.startswith("analyzer")]
    assert bad == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []
