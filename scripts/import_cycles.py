#!/usr/bin/env python3
"""Import cycles among the project's own modules, read from the source (nothing is imported).

Every import statement counts, also one inside a function: a lazy import hides a cycle from Python,
not from the design. Imports under `if TYPE_CHECKING:` do not count (they never run). `from pkg
import name` counts as an import of `pkg` itself, since it reads the package's namespace (and runs
its `__init__`): a submodule that reaches a sibling through a package whose `__init__` imports the
submodule back is a cycle. import-linter's layer contracts (pyproject.toml) say which way imports
may point; this finds cycles anywhere, also inside one layer.

usage: python3 scripts/import_cycles.py [ROOT [PACKAGE ...]]   (default: . engine tui_lora)
Prints each cycle (its modules, largest first) and exits 1 when there is any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DEFAULT_PACKAGES = ("engine", "tui_lora")


def module_files(root: Path, packages: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file in the packages (`pkg/__init__.py` is `pkg`)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """The import statements that can run: all of them except those under `if TYPE_CHECKING:`."""
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        pending.extend(ast.iter_child_nodes(node))


def _named_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement may refer to (the caller keeps the ones that exist)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        # `from .` in a package's __init__ is the package itself; in a plain module, its package
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(root: Path, packages=DEFAULT_PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name that is not a module counts as its package)."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _import_nodes(tree):
            for name in _named_modules(module, path.name == "__init__.py", node):
                while name and name not in files:  # `from pkg.mod import func` imports pkg.mod
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each group of modules that import each other (directly or round a loop), sorted, largest first.

    Tarjan's strongly connected components, iterative so a deep import chain cannot hit Python's
    recursion limit.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups, key=lambda group: (-len(group), group))


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    packages = argv[1:] or list(DEFAULT_PACKAGES)
    cycles = find_cycles(import_graph(root, packages))
    for group in cycles:
        print(len(group), " ".join(group))
    print(f"cycles: {len(cycles)} ({sum(len(group) for group in cycles)} modules)")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
