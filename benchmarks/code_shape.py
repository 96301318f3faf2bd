"""Code-shape figures for issue 9: largest files, import cycles, function-local imports, longest api/ function.

    .venv/bin/python benchmarks/code_shape.py [--json] [--root DIR]

`--root` may be any checkout (e.g. a `git worktree` of an older commit): the
walker reads source files with `ast` and imports nothing from them, so it
measures old layouts as well as the current one. tests/test_import_graph.py
loads this file to assert that the package has no import cycle, so the figure
printed here and the test's verdict come from the same walker.

Edges: every `import` / `from ... import` of an `artefact.embed|index|api`
module, at module level, inside functions and under `if TYPE_CHECKING:` alike
(a type-only import still ties two modules together in the design), resolved to
files in embed/ index/ api/. An import of `a.b.c` also counts as importing the
packages `a.b` and `a` (Python runs their `__init__` first), except the importer's
own parent packages, which have run already (see `_targets`). Dynamic imports
(`importlib.import_module("...")`, e.g. embed/loader's backend registry) are
not seen: they are the deliberate late-bound seams.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[1]
# Source folder -> import name, as mapped in pyproject.toml's [tool.setuptools.package-dir].
PACKAGES = {"embed": "artefact.embed", "index": "artefact.index", "api": "artefact.api"}


@dataclass(frozen=True)
class ImportEdge:
    """One import statement of a package module, pointing at another package module."""

    source: str
    target: str
    line: int
    function_local: bool  # inside a def (runs on call, not on import)
    type_only: bool  # under `if TYPE_CHECKING:`


@dataclass
class ModuleInfo:
    name: str
    path: Path
    file: str  # relative to the measured root, e.g. "index/library.py"
    lines: int
    tree: ast.Module
    local_imports: int = 0  # import statements inside a function, of any module
    local_package_imports: int = 0  # ... of which import this package's own modules
    edges: list[ImportEdge] = field(default_factory=list)


def module_name(folder: str, rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[folder], *parts])


def read_modules(root: Path) -> dict[str, ModuleInfo]:
    """Every .py file of embed/ index/ api/ under root, parsed, by import name."""
    modules: dict[str, ModuleInfo] = {}
    for folder in PACKAGES:
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts):
                continue
            text = path.read_text(encoding="utf-8")
            name = module_name(folder, path.relative_to(base))
            modules[name] = ModuleInfo(
                name, path, path.relative_to(root).as_posix(), len(text.splitlines()), ast.parse(text, str(path))
            )
    for info in modules.values():
        _collect_imports(info, modules)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _package_of(info: ModuleInfo) -> str:
    return info.name if info.path.name == "__init__.py" else info.name.rpartition(".")[0]


def _targets(node: ast.Import | ast.ImportFrom, info: ModuleInfo, known: dict[str, ModuleInfo]) -> set[str]:
    """Package modules an import statement runs: the modules it names and their parent packages.

    The importer's own parent packages are left out unless the statement takes a name from
    one of them: Python runs them before the importer anyway, and a package `__init__` that
    re-exports its submodules (a facade) is not a cycle with them.
    """
    named: list[tuple[str, bool]] = []  # (module, a name is taken from the module itself)
    if isinstance(node, ast.Import):
        named = [(alias.name, True) for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative import: resolve against the importer's package
            anchor = _package_of(info).split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        # `from pkg import mod` imports the submodule; `from mod import name` takes a name from mod.
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
        named = [(base, len(submodules) < len(node.names)), *((m, True) for m in submodules)]
    parts = info.name.split(".")
    own_parents = {".".join(parts[:i]) for i in range(1, len(parts))}
    if info.path.name == "__init__.py":
        own_parents.add(info.name)
    out: set[str] = set()
    for name, takes_names in named:
        name_parts = name.split(".")
        for i in range(len(name_parts), 0, -1):
            candidate = ".".join(name_parts[:i])
            if candidate not in known or candidate == info.name:
                continue
            if candidate in own_parents and not (takes_names and i == len(name_parts)):
                continue
            out.add(candidate)
    return out


def _collect_imports(info: ModuleInfo, known: dict[str, ModuleInfo]) -> None:
    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                targets = _targets(child, info, known)
                if in_function:
                    info.local_imports += 1
                    info.local_package_imports += bool(targets)
                for target in sorted(targets):
                    info.edges.append(ImportEdge(info.name, target, child.lineno, in_function, type_only))
                continue
            child_in_function = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), child_in_function, True)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), child_in_function, type_only)
                continue
            visit(child, child_in_function, type_only)

    visit(info.tree, False, False)


def graph(modules: dict[str, ModuleInfo]) -> dict[str, set[str]]:
    return {name: {e.target for e in info.edges} for name, info in modules.items()}


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); returns components of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(g):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out)


def shortest_cycle(g: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, as a path that ends where it starts."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(g[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    nxt.append(child)
        frontier = nxt
    return component  # unreachable for a true component


def cycles(modules: dict[str, ModuleInfo]) -> list[dict[str, Any]]:
    """Each import cycle: its modules, one shortest loop, and the edges inside it."""
    g = graph(modules)
    out = []
    for component in strongly_connected(g):
        members = set(component)
        edges = [
            {"from": e.source, "to": e.target, "line": e.line, "function_local": e.function_local, "type_only": e.type_only}
            for m in component
            for e in modules[m].edges
            if e.target in members
        ]
        out.append({"modules": component, "loop": shortest_cycle(g, component), "edges": edges})
    return out


def longest_functions(modules: dict[str, ModuleInfo], package: str, n: int = 1) -> list[dict[str, Any]]:
    found = []
    for info in modules.values():
        if not info.name.startswith(package + ".") and info.name != package:
            continue

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qualname = f"{prefix}{child.name}"
                    found.append(((child.end_lineno or child.lineno) - child.lineno + 1, info, qualname, child.lineno))
                    visit(child, qualname + ".")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(info.tree, "")
    found.sort(key=lambda f: (-f[0], f[1].name, f[3]))
    return [
        {"function": f"{info.name}.{qualname}", "file": info.file, "line": line, "lines": length}
        for length, info, qualname, line in found[:n]
    ]


def measure(root: Path) -> dict[str, Any]:
    modules = read_modules(root)
    largest = sorted(modules.values(), key=lambda m: (-m.lines, m.name))[:5]
    return {
        "root": str(root),
        "files": len(modules),
        "lines": sum(m.lines for m in modules.values()),
        "largest_files": [{"file": m.file, "lines": m.lines} for m in largest],
        "import_cycles": cycles(modules),
        "function_local_imports": {
            "all": sum(m.local_imports for m in modules.values()),
            "of_package_modules": sum(m.local_package_imports for m in modules.values()),
        },
        "longest_api_function": longest_functions(modules, PACKAGES["api"])[0] if any(
            n.startswith(PACKAGES["api"] + ".") for n in modules
        ) else None,
    }


def _print(figures: dict[str, Any]) -> None:
    print(f"code shape of {figures['root']}: {figures['files']} modules, {figures['lines']} lines")
    print("\nlargest files")
    for f in figures["largest_files"]:
        print(f"  {f['lines']:6d}  {f['file']}")
    print(f"\nimport cycles: {len(figures['import_cycles'])}")
    for c in figures["import_cycles"]:
        print("  " + " -> ".join(c["loop"]) + f"   ({len(c['modules'])} modules in the component)")
    local = figures["function_local_imports"]
    print(f"\nfunction-local imports: {local['all']} ({local['of_package_modules']} of the package's own modules)")
    longest = figures["longest_api_function"]
    if longest:
        print(f"longest function in api/: {longest['function']} ({longest['file']}:{longest['line']}), {longest['lines']} lines")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="checkout to measure (default: this one)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    figures = measure(args.root.resolve())
    if args.json:
        json.dump(figures, sys.stdout, indent=1)
        print()
    else:
        _print(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
