"""Project metadata from the project's own build backend (PEP 517), never from parsing by hand."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli

from .atomic import write_text_atomic
from .errors import BuildFailed, ConfigError
from .events import Emit, discard
from .installer import installer as chosen_installer
from .options import nearest
from .runner import Runner
from .scratch import source_copy
from .sources import SourceTree

if TYPE_CHECKING:
    from .config import Config

_TAKE = threading.Lock()


@dataclass(frozen=True)
class App:
    """What the artifact runs, resolved once from [app] and the project's console scripts:
    `entry` ('module:function') is None for a library; `module` is a single-module project's
    file; `scripts` is every console script the distribution declares."""

    script: str | None = None
    entry: str | None = None
    module: str | None = None
    scripts: dict[str, str] = field(default_factory=dict)


@dataclass
class Project:
    root: Path
    name: str
    version: str
    requires_python: str | None = None
    requires: list[str] = field(default_factory=list)
    scripts: dict[str, str] = field(default_factory=dict)
    license_files: list[str] = field(default_factory=list)
    top_level: list[str] = field(default_factory=list)
    buildable: bool = True
    backend_warnings: list[str] = field(default_factory=list)
    """What the build backend warned about while preparing metadata (deprecations, say):
    shown with -v, kept out of the way otherwise."""
    sources: SourceTree | None = None
    wheel: str | None = None
    """A wheel of exactly these sources, built while reading the metadata (when the wheel
    tier was about to build one anyway), and the frontend that built it."""
    wheel_frontend: str | None = None
    early_sdist: Callable[[str], Path | None] | None = field(
        default=None, repr=False, compare=False, metadata={"stored": False})
    """An sdist of these sources started with the cold metadata read (early.py), given the
    sdist tier's frontend: it waits for it, None when there is none of that frontend."""

    def take_wheel(self, frontend: str, dest: Path) -> Path | None:
        """The wheel reading the metadata built, moved into `dest`, if `frontend` built it:
        the build backend then runs once per cold build, not twice. Taken once."""
        with _TAKE:
            if not self.wheel or self.wheel_frontend != frontend or not Path(self.wheel).is_file():
                return None
            built, self.wheel = Path(self.wheel), None
        return _take(built, dest)

    def take_sdist(self, frontend: str, dest: Path) -> Path | None:
        """The sdist built beside the cold metadata read, moved into `dest`, if `frontend`
        built it (it may still be running: this waits). Taken once."""
        with _TAKE:
            claim, self.early_sdist = self.early_sdist, None
        built = claim(frontend) if claim else None
        return None if built is None or not built.is_file() else _take(built, dest)

    @property
    def import_name(self) -> str:
        return re.sub(r"[-.]+", "_", self.name).lower()

    @property
    def dist_name(self) -> str:
        return re.sub(r"[-_.]+", "_", self.name).lower()

    def entry_point(self, config: Config) -> tuple[str | None, str | None]:
        """(console script name, 'module:function') the app runs, or (None, None) for a library."""
        app = config.app
        if app.entry:
            return app.script or self.name, app.entry
        if app.script:
            if app.script not in self.scripts:
                listed = ", ".join(self.scripts) or "none"
                raise config.error(f"{self.name} has no console script {app.script!r} "
                                   f"(its [project.scripts]: {listed})", "app", "script",
                                   suggestion=nearest(app.script, self.scripts))
            return app.script, self.scripts[app.script]
        if len(self.scripts) == 1:
            (name, entry), = self.scripts.items()
            return name, entry
        if len(self.scripts) > 1:
            raise config.error(f"{self.name} has several console scripts "
                               f"({', '.join(self.scripts)}): name one in [app] script", "app")
        return None, None

    def app(self, config: Config) -> App:
        """The app this configuration ships (ConfigError when [app] names none that exists)."""
        script, entry = self.entry_point(config)
        return App(script, entry, config.app.module, dict(self.scripts))

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "sources" and f.metadata.get("stored", True)}
        data["root"] = str(self.root)
        return data


def _take(built: Path, dest: Path) -> Path | None:
    """`built` moved into `dest`, and the temporary folder it was built in removed."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        taken = Path(shutil.move(built, dest / built.name))
    except OSError:
        return None
    shutil.rmtree(built.parent, ignore_errors=True)
    return taken


def is_buildable(root: Path) -> bool:
    return (root / "pyproject.toml").exists() or (root / "setup.py").exists()


def _stored(cache_dir: Path, digest: str, suffix: str = ".json") -> Path:
    """Where the metadata of sources with this digest is kept (suffix "-wheel": the wheel
    reading it built)."""
    return cache_dir / "metadata" / f"v2-{digest}{suffix}"


def is_cached(cache_dir: Path, digest: str, *, sdist_alone: bool = False) -> bool:
    """Whether these sources' metadata is in the cache (load then runs no build backend);
    for an sdist-only build, the metadata its sdist stated counts too."""
    return _stored(cache_dir, digest).exists() or (
        sdist_alone and _stored(cache_dir, digest, SDIST_STATED).exists())


SDIST_STATED = "-sdist.json"
"""The metadata an sdist stated, kept apart: only sdist-only builds read it, so what any
other build reads is always what a wheel (or prepare_metadata) said."""


def load(root: Path, sources: SourceTree, config: Config, cache_dir: Path,
         env: dict[str, str], *, wheel_frontend: str | None = None,
         emit: Emit = discard,
         started: Callable[[], Project | None] | None = None,
         stated: Callable[[], Project | None] | None = None) -> Project:
    """Metadata for the project at `root`, cached by the digest of its sources.

    With `wheel_frontend` (the wheel tier is about to build), a cold read builds the wheel
    with that frontend and takes METADATA and entry_points.txt from it, keeping the wheel
    for the tier; otherwise it asks prepare_metadata_for_build_wheel alone. `started` is a
    wheel build already under way (early.py): its Project, or None to build here. `stated`
    (an sdist-only build) is what the sdist under way states for certain, or None."""
    if not is_buildable(root):
        return _module_project(root, sources, config)
    store = _stored(cache_dir, sources.digest)
    side = _stored(cache_dir, sources.digest, SDIST_STATED)
    for found in (store, side) if stated else (store,):
        if found.exists():
            data = json.loads(found.read_text())
            data["root"] = root
            return Project(**data, sources=sources)
    project = stated() if stated else None
    if project is not None:
        project.sources = sources
        write_text_atomic(side, json.dumps(project.to_json(), indent=1))
        return project
    if wheel_frontend is not None:
        try:
            project = (started() if started else None) or \
                metadata_from_wheel(root, sources, env, wheel_frontend, cache_dir, emit)
        except BuildFailed:  # the wheel tier builds it again, and reports it as its failure
            project = None  # (its work directory kept); its metadata may still be there
    if project is None:
        project = _prepare_metadata(root, sources, env)
    project.sources = sources
    write_text_atomic(store, json.dumps(project.to_json(), indent=1))
    return project


def _module_project(root: Path, sources: SourceTree, config: Config) -> Project:
    """A single module with no build configuration: the copy (and mpy) tiers' shape."""
    if not config.app.module:
        raise ConfigError("no pyproject.toml or setup.py here: for a single module, set "
                          "[app] module = \"path/to/module.py\"", file=str(config.path))
    module = root / config.app.module
    if not module.is_file():
        raise config.error(f"module file {config.app.module!r} does not exist", "app", "module")
    version = "0"
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ) and isinstance(node.value, ast.Constant):
            version = str(node.value.value)
    licenses = [p for p in ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING")
                if (root / p).exists()]
    return Project(root, module.stem, version, license_files=licenses, top_level=[module.stem],
                   buildable=False, sources=sources)


def _prepare_metadata(root: Path, sources: SourceTree, env: dict[str, str]) -> Project:
    from build import BuildBackendException, ProjectBuilder
    from build.env import DefaultIsolatedEnv

    installer = chosen_installer().name
    with tempfile.TemporaryDirectory(prefix="gradient-meta-") as tmp, \
            source_copy(sources, "meta", Path(tmp)) as src:
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            with warnings.catch_warnings(record=True) as caught, \
                    DefaultIsolatedEnv(installer=installer) as iso:  # type: ignore[arg-type]
                warnings.simplefilter("always")
                builder = ProjectBuilder.from_isolated_env(iso, src, runner=_quiet)
                iso.install(builder.build_system_requires)
                iso.install(builder.get_requires_for_build("wheel"))
                dist_info = Path(builder.metadata_path(Path(tmp) / "meta"))
                if not (dist_info / "entry_points.txt").exists() and not _build_backend(
                    root).startswith(COMPLETE_METADATA):
                    dist_info = _dist_info_of_wheel(builder, Path(tmp))
        except BuildBackendException as exc:
            raise BuildFailed(f"the project's build backend could not prepare its metadata: {exc}",
                              detail=str(exc.exception)) from None
        except Exception as exc:  # build's env errors carry the installer's output
            raise BuildFailed(f"could not set up the build backend: {exc}") from None
        finally:
            os.environ.clear()
            os.environ.update(saved)
        project = from_dist_info(root, dist_info)
        project.backend_warnings = list(dict.fromkeys(str(w.message).strip() for w in caught))
        return project


def metadata_from_wheel(root: Path, sources: SourceTree, env: dict[str, str], frontend: str,
                        cache_dir: Path, emit: Emit,
                        on_start: Callable[[int], None] | None = None) -> Project:
    """Build the wheel once (as the wheel tier would) and read its .dist-info; the wheel
    is kept beside the metadata for the tier."""
    import zipfile

    from .pep517 import pep517_build

    keep = _stored(cache_dir, sources.digest, "-wheel")
    shutil.rmtree(keep, ignore_errors=True)
    scratch = cache_dir / "tmp"  # beside the nodes' work folders: one file system with the
    scratch.mkdir(parents=True, exist_ok=True)  # cache (the wheel is kept by a rename)
    with tempfile.TemporaryDirectory(prefix="meta-", dir=scratch) as tmp, \
            source_copy(sources, "meta", Path(tmp)) as src:
        runner = _Recording("wheel", dict(env), emit, on_start=on_start)
        wheel = pep517_build(runner, src, Path(tmp) / "dist", "wheel", frontend)
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist() if n.split("/")[0].endswith(".dist-info")]
            zf.extractall(Path(tmp) / "unpacked", names)
        project = from_dist_info(root, next((Path(tmp) / "unpacked").glob("*.dist-info")))
        keep.mkdir(parents=True, exist_ok=True)
        project.wheel = str(Path(shutil.move(wheel, keep / wheel.name)))
        project.wheel_frontend = frontend
        project.backend_warnings = backend_warnings(runner.output)
    return project


class _Recording(Runner):
    """A Runner that keeps what the tools printed (the backend's warnings are in there)."""

    output: str = ""

    def __call__(self, cmd: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = super().__call__(cmd, **kwargs)
        self.output += result.stdout or ""
        return result


_WARNING = re.compile(r"^\S.*?:\d+: \w*Warning: (.*)$")


def backend_warnings(output: str) -> list[str]:
    """The Python warnings a frontend's output shows, as `warnings` records them: the
    message (continued over the lines before the echoed source line), once each."""
    found: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = _WARNING.match(line)
        if not match:
            continue
        message = [match.group(1)]
        for more in lines[i + 1:]:  # a long message goes on over blank, "!!" and indented
            if more.strip() and not more.startswith(("!!", "    ")):  # lines; then the
                break  # echoed source line ("  code") or the tool's own output
            message.append(more)
        found.append("\n".join(message).strip())
    return list(dict.fromkeys(found))


# Backends whose prepare_metadata_for_build_wheel writes entry_points.txt too; for others
# (hatchling writes METADATA alone) the console scripts come from a built wheel.
COMPLETE_METADATA = ("setuptools", "flit_core", "poetry.core", "pdm.backend", "maturin")


def _dist_info_of_wheel(builder: Any, tmp: Path) -> Path:
    import zipfile

    wheel = Path(builder.build("wheel", tmp / "wheel"))
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.split("/")[0].endswith(".dist-info")]
        zf.extractall(tmp / "unpacked", names)
    return next((tmp / "unpacked").glob("*.dist-info"))


def _quiet(cmd: Any, cwd: Any = None, extra_environ: Any = None) -> None:
    import subprocess

    env = {**os.environ, **(extra_environ or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)


def _build_backend(root: Path) -> str:
    """The project's PEP 517 backend name (setuptools' legacy one when none is declared)."""
    try:
        with (root / "pyproject.toml").open("rb") as f:
            system = tomli.load(f).get("build-system", {})
    except (OSError, tomli.TOMLDecodeError):
        system = {}
    return str(system.get("build-backend", "setuptools.build_meta:__legacy__"))


def from_dist_info(root: Path, dist_info: Path) -> Project:
    """A Project from a .dist-info directory (prepared metadata or an unpacked wheel)."""
    dist = metadata.PathDistribution(dist_info)
    meta = dist.metadata
    scripts = {ep.name: ep.value for ep in dist.entry_points.select(group="console_scripts")}
    top = (dist.read_text("top_level.txt") or "").split()
    licenses = meta.get_all("License-File") or []
    return Project(
        root=root, name=str(meta["Name"]), version=str(meta["Version"]),
        requires_python=next(iter(meta.get_all("Requires-Python") or []), None),
        requires=[str(r) for r in meta.get_all("Requires-Dist") or []],
        scripts=scripts, license_files=[str(x) for x in licenses], top_level=top,
    )
