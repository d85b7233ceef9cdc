"""The three lines the import graph keeps, checked on the code itself: the core never imports a
backend, a backend never imports another backend, backends use only the public surface
(`gradient_build.backend` and `gradient_build.helpers`), and no module imports in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "src" / "gradient_build"
BACKENDS = ROOT / "backends"
PUBLIC = {"gradient_build", "gradient_build.backend", "gradient_build.helpers"}
TIERS = sorted(p.name for p in BACKENDS.iterdir() if (p / "__init__.py").exists())


def imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names `path` imports (relative ones resolved), type-only ones included."""
    me = _package_of(path)
    package = (me if path.name == "__init__.py" else me.rpartition(".")[0]).split(".")
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
                if node.module is None:
                    found += [(f"{module}.{a.name}", node.lineno) for a in node.names]
                    continue
            else:
                module = node.module or ""
            found.append((module, node.lineno))
    return found


def _package_of(path: Path) -> str:
    if path.is_relative_to(CORE):
        parts = ["gradient_build", *path.relative_to(CORE).parts]
    else:
        parts = ["gradient_backends", *path.relative_to(BACKENDS).parts]
    parts[-1] = parts[-1].removesuffix(".py")
    return ".".join(parts).removesuffix(".__init__")


def _tier_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] in ("gradient_backends", "backends") and len(parts) > 1 and parts[1] in TIERS:
        return parts[1]
    return None


def test_the_core_never_imports_a_backend() -> None:
    crossings = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in sorted(CORE.rglob("*.py"))
                 for m, line in imports(p) if _tier_of(m)]
    assert crossings == []


def test_backends_import_only_the_public_surface_and_never_each_other() -> None:
    crossings = []
    for tier in TIERS:
        for path in sorted((BACKENDS / tier).rglob("*.py")):
            for module, line in imports(path):
                where = f"{path.relative_to(ROOT)}:{line} imports {module}"
                other = _tier_of(module)
                if other and other != tier:
                    crossings.append(where + f" (backend {tier!r} imports backend {other!r})")
                if module.startswith("gradient_build") and module not in PUBLIC:
                    crossings.append(where + " (a private module of the core)")
    assert crossings == []


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    files = [*CORE.rglob("*.py"), *BACKENDS.rglob("*.py")]
    modules = {_package_of(p) for p in files}
    for path in files:
        me = _package_of(path)
        graph[me] = set()
        for module, _ in imports(path):
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != me and not me.startswith(module + "."):
                graph[me].add(module)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], node, nxt] if nxt in stack
                              else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_the_helpers_named_for_type_checkers_are_the_ones_loaded_on_use() -> None:
    """helpers.py imports its names lazily (a backend's import then pays only for what it
    names): the typed imports, the lazy table and __all__ must list the same objects."""
    import importlib

    import gradient_build.helpers as helpers

    typed: dict[str, tuple[str, str]] = {}
    tree = ast.parse((CORE / "helpers.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            typed |= {a.asname or a.name: (node.module, a.name) for a in node.names}
    assert typed == helpers._WHERE
    assert sorted(helpers.__all__) == sorted(typed)
    for name, (module, original) in typed.items():
        value = getattr(helpers, name)
        assert value is getattr(importlib.import_module(f"gradient_build.{module}"), original)
