"""Which imports a module makes beyond the standard library, from its AST, and when they run.

The copy tier judges a module with it (beside a real import in a bare Python), and `gradient
advise` reports the same findings as project facts, so both see a lazy import alike.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

OPTIONAL_GUARDS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass(frozen=True)
class ImportUse:
    module: str
    file: str
    line: int
    kind: Literal["top", "lazy", "conditional"]


def third_party_imports(path: Path, own: set[str]) -> list[ImportUse]:
    """Imports of anything but the standard library and the copy's own modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[ImportUse] = []

    def visit(node: ast.AST, lazy: bool, guarded: bool, conditional: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in own or top == "__future__":
                    continue
                if guarded:
                    continue  # optional by design (try: ... except ImportError:)
                kind: Literal["top", "lazy", "conditional"] = (
                    "lazy" if lazy else "conditional" if conditional else "top")
                found.append(ImportUse(top, path.name, node.lineno, kind))
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lazy = True
        if isinstance(node, ast.Try | ast.TryStar):
            catches = {n.id for h in node.handlers for n in ast.walk(h.type or ast.Name(
                "BaseException")) if isinstance(n, ast.Name)}
            for stmt in node.body:
                visit(stmt, lazy, guarded or bool(catches & OPTIONAL_GUARDS), conditional)
            for rest in (*node.handlers, *node.orelse, *node.finalbody):
                visit(rest, lazy, guarded, conditional)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.orelse:
                visit(stmt, lazy, guarded, conditional)
            return
        if isinstance(node, ast.If) and not lazy:
            # a module-level branch (`if sys.version_info >= (3,): ... else: import cPickle`)
            # runs or not at import time: the real import is its judge, not the AST
            for child in ast.iter_child_nodes(node):
                visit(child, lazy, guarded, True)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, lazy, guarded, conditional)

    visit(tree, False, False, False)
    return [u for u in found if u.kind != "conditional"]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
