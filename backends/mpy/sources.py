"""Which Python files a MicroPython build compiles, and where each lands on the board.

`[tiers.mpy] modules` names files or package folders; by default the `[app] module`, or
every top-level module or package the project has (in its root or `src/`). A package keeps
its folder structure (`pkg/sub.py` -> `pkg/sub.mpy`), as mip installs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradient_build.backend import App, ConfigError, Project

EXTENSION_SUFFIXES = (".c", ".cpp", ".pyx", ".so", ".pyd")


@dataclass(frozen=True)
class Source:
    rel: str      # the file, relative to the project root
    dest: str     # where it goes on the board, e.g. "pkg/sub.py"

    @property
    def mpy(self) -> str:
        return self.dest[: -len(".py")] + ".mpy"


def project_files(project: Project) -> list[str]:
    if project.sources is not None:
        return sorted(project.sources.files)
    return sorted(p.relative_to(project.root).as_posix() for p in project.root.rglob("*")
                  if p.is_file())


def find_sources(project: Project, app: App, modules: list[str]) -> tuple[list[Source],
                                                                        list[str]]:
    """(the .py files to compile, other files of those packages) or ConfigError saying why
    there is nothing to compile."""
    files = project_files(project)
    names = modules or ([app.module] if app.module else [])
    if not names:
        names = _top_level(project, files)
    found: list[Source] = []
    other: list[str] = []
    for name in names:
        rel = name.strip("/")
        path = project.root / rel
        if path.is_file() and path.suffix == ".py":
            found.append(Source(rel, path.name))
        elif path.is_dir():
            inside = [f for f in files if f.startswith(rel + "/") and "/__pycache__/" not in f]
            for f in inside:
                dest = f"{path.name}/{f[len(rel) + 1:]}"
                (found.append(Source(f, dest)) if f.endswith(".py") else other.append(f))
        else:
            raise ConfigError(f"mpy: {rel} is not a module file or a package folder",
                              key="tiers.mpy.modules")
    if not found:
        raise ConfigError("mpy: nothing to compile: no [app] module, no [tiers.mpy] modules, "
                          "and no top-level module or package of the project in its root or "
                          "src/", key="tiers.mpy.modules")
    return found, other


def _top_level(project: Project, files: list[str]) -> list[str]:
    names = project.top_level or [project.import_name]
    found = []
    for name in names:
        for base in ("", "src/"):
            if f"{base}{name}.py" in files:
                found.append(f"{base}{name}.py")
                break
            if f"{base}{name}/__init__.py" in files:
                found.append(f"{base}{name}")
                break
    return found


def extensions(other: list[str]) -> list[str]:
    """Files of the packages that are CPython extensions (or their sources)."""
    return [f for f in other if f.endswith(EXTENSION_SUFFIXES)]
