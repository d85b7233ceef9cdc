"""What the project is, found rather than asked: each fact with where it was seen.

`gradient advise` walks the gradient over these and the target's facts. They come from the
project's metadata (read through its own build backend), its sources (the AST, as the copy
tier reads a module), a wheel already built in dist/gradient, and the tiers' own checks
(MicroPython compatibility is the mpy tier's `skip()`, reached through the backend API).
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli

from .backend import Backend
from .config import Config
from .imports import ImportUse, third_party_imports
from .project import App, Project

COMPILED_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".pyx", ".rs", ".f90", ".so", ".pyd")
COMPILING_BACKENDS = ("maturin", "setuptools-rust", "setuptools_rust", "scikit-build",
                      "scikit_build", "meson-python", "mesonpy", "cython", "pybind11", "cffi")
NOT_SHIPPED = ("tests/", "test/", "docs/", "doc/", "examples/", "benchmarks/", "tools/")
NOT_MODULES = ("setup.py", "conftest.py", "noxfile.py", "fabfile.py")


LABELS = {"single_module": "a single module", "stdlib_only": "standard library only",
          "pure": "pure Python", "compiled": "compiled", "app": "an app", "library": "a library",
          "micropython": "MicroPython-compatible"}
"""What each project fact a tier's `needs` may name is, for "the project is not ..."."""


@dataclass(frozen=True)
class ProjectFact:
    """`value` answers the fact; `says` is it in words; `source` is where it was seen."""

    name: str
    value: bool | list[str]
    says: str
    source: str


def _fact(found: dict[str, ProjectFact], name: str, value: bool | list[str], says: str,
          source: str) -> None:
    found[name] = ProjectFact(name, value, says, source)


def gather(project: Project, app: App, config: Config, backends: dict[str, Backend[Any]],
           cache_dir: Path | None = None) -> dict[str, ProjectFact]:
    """Every project fact, by name: those `needs` may name are booleans."""
    found: dict[str, ProjectFact] = {}
    files = sorted(project.sources.files) if project.sources else []
    module = _single_module(project, config, files)
    meta = "pyproject.toml" if (project.root / "pyproject.toml").exists() else "setup.py"
    if not project.buildable:
        meta = "gradient.toml [app] module" if config.app.module else "the project root"
    if module:
        _fact(found, "single_module", True, f"a single module, {module}", meta)
    else:
        packages = _packages(project, files)
        _fact(found, "single_module", False,
              f"a package: {', '.join(packages) or project.import_name}",
              meta)
    code = [module] if module else [f for f in files if f.endswith(".py") and _shipped(f)
                                    and Path(f).name not in NOT_MODULES]
    own = {Path(module).stem} if module else {*_packages(project, files), project.import_name,
                                              *(Path(f).stem for f in code if "/" not in f)}
    uses = _imports(project.root, code, own)
    top = [u for u in uses if u.kind == "top"]
    lazy = [u for u in uses if u.kind == "lazy"]
    if top:
        first = top[0]
        names = sorted({u.module for u in top})
        _fact(found, "stdlib_only", False,
              f"imports third-party packages at import time: {', '.join(names[:8])}",
              f"{first.file}:{first.line}")
    else:
        _fact(found, "stdlib_only", True, "imports only the standard library at import time",
              f"the AST of {len(code)} file{'s' if len(code) != 1 else ''}")
    if lazy:
        names = sorted({u.module for u in lazy})
        _fact(found, "lazy_imports", names,
              f"imports {len(names)} optional package{'s' if len(names) > 1 else ''} lazily, "
              f"inside functions: {', '.join(names[:24])}{' ...' if len(names) > 24 else ''}",
              f"{lazy[0].file}:{lazy[0].line}")
    compiled, where = _compiled(project, files)
    _fact(found, "compiled", compiled,
          "has compiled extensions" if compiled else "pure Python (no compiled extensions)",
          where)
    _fact(found, "pure", not compiled, found["compiled"].says, where)
    _dependencies(found, project, cache_dir)
    _scripts(found, project, app, meta)
    _micropython(found, project, app, config, backends)
    return found


def _shipped(rel: str) -> bool:
    return not rel.startswith(NOT_SHIPPED) and "/tests/" not in rel


def _single_module(project: Project, config: Config, files: list[str]) -> str | None:
    """The module file when the project is one, as the copy tier finds it."""
    copy = config.tier_options.get("copy")
    named = list(getattr(copy, "modules", []) or []) or (
        [config.app.module] if config.app.module else [])
    if len(named) == 1 and (project.root / named[0]).is_file():
        return str(named[0])
    if named:
        return None
    singles = [f for f in files if f.endswith(".py") and f.count("/") <= (1 if f.startswith(
        "src/") else 0) and Path(f).name not in NOT_MODULES]
    packages = _packages(project, files)
    if len(singles) == 1 and not packages:
        return singles[0]
    return None


def _packages(project: Project, files: list[str]) -> list[str]:
    """Top-level packages (folders with an __init__.py, in the root or src/)."""
    found = set()
    for f in files:
        parts = f.split("/")
        if parts[0] == "src":
            parts = parts[1:]
        if len(parts) == 2 and parts[1] == "__init__.py" and _shipped(f):
            found.add(parts[0])
    return sorted(found)


def _imports(root: Path, code: list[str], own: set[str]) -> list[ImportUse]:
    uses: list[ImportUse] = []
    for rel in code:
        try:
            uses += [dataclasses.replace(u, file=rel)
                     for u in third_party_imports(root / rel, own)]
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # not Python this interpreter reads: the builds will say so
    return uses


def _compiled(project: Project, files: list[str]) -> tuple[bool, str]:
    """(compiled?, where that was seen): a built wheel's tag, extension sources, or a
    build backend that compiles."""
    wheel = _built_wheel(project.root)
    if wheel is not None:
        pure = wheel.name.endswith("-none-any.whl") and not _has_binaries(wheel)
        return not pure, f"the built wheel ({wheel.name})"
    return compiles(project.root, files)


def compiles(root: Path, files: list[str]) -> tuple[bool, str]:
    """(compiled?, where that was seen) from the sources alone, before any metadata:
    extension sources, a build backend that compiles, setup.py's ext_modules."""
    sources = [f for f in files if f.endswith(COMPILED_SUFFIXES) and _shipped(f)]
    if sources:
        return True, sources[0]
    pyproject = root / "pyproject.toml"
    if pyproject.exists():
        try:
            data = tomli.loads(pyproject.read_text(encoding="utf-8"))
        except (tomli.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        system = data.get("build-system", {})
        words = " ".join([str(system.get("build-backend", "")),
                          *map(str, system.get("requires", []))]).lower()
        hit = next((b for b in COMPILING_BACKENDS if b in words), None)
        if hit:
            return True, f"pyproject.toml [build-system] ({hit})"
    setup = root / "setup.py"
    if setup.exists() and re.search(r"\bExtension\s*\(|ext_modules", setup.read_text(
            encoding="utf-8", errors="replace")):
        return True, "setup.py (ext_modules)"
    return False, "the sources (no C, Cython or Rust files) and the build backend"


def _built_wheel(root: Path) -> Path | None:
    manifest = root / "dist" / "gradient" / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    for item in data.get("artifacts", []):
        if item.get("tier") == "wheel" and item.get("role") == "artifact":
            path = root / item["path"]
            return path if path.is_file() else None
    return None


def _has_binaries(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as zf:
        return any(n.endswith((".so", ".pyd", ".dylib")) or ".so." in n for n in zf.namelist())


def _dependencies(found: dict[str, ProjectFact], project: Project,
                  cache_dir: Path | None) -> None:
    """The runtime requirements, and for each whether a pure wheel of it is known here."""
    needed = [r for r in project.requires if "extra ==" not in r]
    if not needed:
        _fact(found, "dependencies", [], "no runtime dependencies",
              "the package metadata (Requires-Dist)")
        return
    wheels = _known_wheels(project.root, cache_dir)
    said = []
    for req in needed:
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
        key = re.sub(r"[-_.]+", "_", name).lower()
        tags = wheels.get(key)
        kind = ("wheel not fetched yet" if not tags else "pure wheel" if all(tags)
                else "compiled wheel")
        said.append(f"{name} ({kind})")
    _fact(found, "dependencies", [re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in needed],
          f"{len(needed)} runtime dependenc{'ies' if len(needed) > 1 else 'y'}: "
          + ", ".join(said[:12]) + (" ..." if len(said) > 12 else ""),
          "the package metadata (Requires-Dist) and the wheels fetched so far")


def _known_wheels(root: Path, cache_dir: Path | None) -> dict[str, list[bool]]:
    """Distribution name -> [is each wheel of it pure] among wheels already on this machine:
    this project's outputs and the wheelhouse gradient's cache keeps."""
    places = [root / "dist" / "gradient",
              *([cache_dir / "tools" / "wheelhouse"] if cache_dir else [])]
    found: dict[str, list[bool]] = {}
    for place in places:
        for wheel in place.rglob("*.whl") if place.is_dir() else ():
            name = wheel.name.split("-")[0].lower()
            found.setdefault(name, []).append(wheel.name.endswith("-none-any.whl"))
    return found


def _scripts(found: dict[str, ProjectFact], project: Project, app: App, meta: str) -> None:
    source = (f"the package metadata (entry_points.txt, from {meta})" if project.buildable
              else "a module without build configuration declares no console scripts")
    if project.scripts:
        names = sorted(project.scripts)
        _fact(found, "app", True, f"an app: console script{'s' if len(names) > 1 else ''} "
                                  f"{', '.join(names)}", source)
    elif app.entry:
        _fact(found, "app", True, f"an app: [app] entry {app.entry}", "gradient.toml [app]")
    else:
        _fact(found, "app", False, "a library (no console scripts)", source)
    _fact(found, "library", not found["app"].value, found["app"].says, found["app"].source)


def _micropython(found: dict[str, ProjectFact], project: Project, app: App, config: Config,
                 backends: dict[str, Backend[Any]]) -> None:
    """Whether the tiers for a microcontroller accept the project, by their own check."""
    judges = {n: b for n, b in backends.items() if "microcontroller" in _words(b.needs)}
    if not judges:
        return
    for name, backend in judges.items():
        why = backend.skip(project, app, config.tier_options.get(name) or backend.Options())
        if why:
            _fact(found, "micropython", False, f"not MicroPython-compatible: {why}",
                  f"the {name} tier's check")
            return
    _fact(found, "micropython", True, "MicroPython-compatible",
          f"the {', '.join(judges)} tier's check")


def _words(needs: frozenset[str]) -> set[str]:
    return {w for need in needs for w in need.split("|")}
