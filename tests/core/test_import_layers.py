"""The package's import graph points only back down the layers (see DESIGN.md, "Layering"), and
has no cycles. Walks every module's imports with ast, the ones inside functions included, so a
cycle cannot hide in a function-local import.

Rules (a module matches a layer by name prefix):
1. the IR core (graphcnn.ir, verify, printer, errors, tensor_type, digests, ops) imports no
   passes, backends, frontends, dsl or api;
2. passes import no backends;
3. backends import no graphcnn.api, cli, dsl or frontends;
4. no two modules import each other, directly or through others.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# source folder -> the package it is installed as (pyproject.toml's package-dir)
PACKAGES = {"graphcnn": "graphcnn", "passes": "graphcnn.passes", "backends": "graphcnn.backends"}

IR_CORE = ("graphcnn.ir", "graphcnn.verify", "graphcnn.printer", "graphcnn.errors",
           "graphcnn.tensor_type", "graphcnn.digests", "graphcnn.ops")
RULES = [
    ("rule 1: the IR core imports nothing above it", IR_CORE,
     ("graphcnn.passes", "graphcnn.backends", "graphcnn.frontends", "graphcnn.dsl",
      "graphcnn.api")),
    ("rule 2: passes import no backend", ("graphcnn.passes",), ("graphcnn.backends",)),
    ("rule 3: backends import no front door", ("graphcnn.backends",),
     ("graphcnn.api", "graphcnn.cli", "graphcnn.dsl", "graphcnn.frontends")),
]


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _modules() -> dict[str, tuple[Path, bool]]:
    """module name -> (file, is a package's __init__)."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            init = parts[-1] == "__init__"
            if init:
                parts.pop()
            found[".".join([package, *parts])] = (path, init)
    return found


def _imports(name: str, path: Path, init: bool, known: set[str]) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file that names one of `known`."""
    package = name if init else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import sub` imports the submodule where there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import graphcnn.ops.conv.x` -> the module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, node.lineno))
    return out


def _graph() -> dict[str, list[tuple[str, int]]]:
    modules = _modules()
    return {name: _imports(name, path, init, set(modules))
            for name, (path, init) in modules.items()}


def test_imports_point_down_the_layers():
    graph, modules = _graph(), _modules()
    broken = []
    for rule, layer, forbidden in RULES:
        for name, edges in graph.items():
            if not _under(name, layer):
                continue
            for target, line in edges:
                if _under(target, forbidden):
                    broken.append(f"{modules[name][0].relative_to(ROOT)}:{line}: {name} imports "
                                  f"{target} ({rule})")
    assert not broken, "\n".join(broken)


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of `graph` (module -> imported modules), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                return path[path.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        path.pop()
        state[m] = 2
        return None
    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    # a package's __init__ re-exports its submodules: importing a package from one of its own
    # modules is an edge into the __init__, which counts like any other
    graph = {m: sorted({t for t, _ in edges}) for m, edges in _graph().items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_walk_sees_function_local_imports(tmp_path):
    """The checker itself: an import inside a function is an edge."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from graphcnn import api\n")
    assert ("graphcnn.api", 2) in _imports("graphcnn.ops.m", src, False, {"graphcnn.api"})
