"""Figures about the shape of the package: import cycles, module sizes, function lengths.

Imports are read by grimp (the graph import-linter checks), which counts every import statement,
those inside functions and under ``TYPE_CHECKING`` included. Run ``python tests/_architecture.py``
for the figures; ``tests/test_architecture.py`` holds them to their limits.
"""

from __future__ import annotations

import ast
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import grimp

PACKAGE = "embedswitch"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its body)."""
    graph = grimp.build_graph(PACKAGE, include_external_packages=False, exclude_type_checking_imports=False)
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), and modules that import themselves.
    A package importing its own submodules (``pkg/__init__`` re-exporting) is not a cycle unless a
    submodule imports the package back."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@dataclass(frozen=True)
class Sizes:
    module_lines: dict[str, int]
    function_lines: list[int]

    @property
    def median_function(self) -> float:
        return statistics.median(self.function_lines)

    @property
    def p90_function(self) -> float:
        return statistics.quantiles(self.function_lines, n=10)[-1]

    def over(self, lines: int) -> dict[str, int]:
        return {name: n for name, n in sorted(self.module_lines.items()) if n > lines}


def sizes() -> Sizes:
    """Lines per module and per function (methods included, nested functions counted on their own)."""
    modules: dict[str, int] = {}
    functions: list[int] = []
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        modules[str(path.relative_to(ROOT.parent))] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                functions.append(node.end_lineno - node.lineno + 1)
    return Sizes(modules, functions)


def main() -> None:
    graph = import_graph()
    cycles = import_cycles(graph)
    found = sizes()
    print(f"modules: {len(found.module_lines)}, imports between them: {sum(map(len, graph.values()))}")
    print(f"import cycles: {len(cycles)}")
    for cycle in cycles:
        print("  " + " <-> ".join(cycle))
    print(f"modules over 500 lines: {found.over(500) or 'none'}")
    print(
        f"functions: {len(found.function_lines)}, median {found.median_function:g} lines, "
        f"p90 {found.p90_function:g}, longest {max(found.function_lines)}"
    )


if __name__ == "__main__":
    main()
