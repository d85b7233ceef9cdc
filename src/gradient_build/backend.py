"""The contract between the core and a tier: what a backend declares, and its two verbs.

This module and `gradient_build.helpers` are the whole public surface a backend uses; every
other module of the core is internal and may change. A backend is found through the
`gradient_build.backends` entry-point group, so a third party adds a tier the same way the
built-in ones do. It never prints, never writes to `dist/`, never reads another tier's
options: it gets everything from its context, typed by its own `Options`, and meets other
tiers only through the artifacts it consumes (their `meta` keys are named in `Meta`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from .artifact import JSON, ArchiveReader, Artifact, Level, Meta, Role, Verdict
from .errors import BuildFailed, ConfigError, GradientError, ToolMissing, VerifyFailed
from .events import Event
from .facts import Fact
from .inventory import Component, dist_component, dpkg_components, os_codename, purl
from .options import doc
from .project import App, Project
from .runner import Runner
from .sandbox import Result, Sandbox
from .smoke import Smoke
from .tools import Tool

__all__ = [
    "JSON", "App", "ArchiveReader", "Artifact", "Backend", "BuildContext", "BuildFailed",
    "Component", "ConfigError", "Event", "Fact", "GradientError", "Level", "Meta", "NoOptions",
    "Project", "Result", "Role", "Runner", "Sandbox", "Smoke", "Tool", "ToolMissing", "Verdict",
    "VerifyContext", "VerifyFailed", "dist_component", "doc", "dpkg_components",
    "os_codename", "purl"
]

OptionsT = TypeVar("OptionsT")


@dataclass
class NoOptions:
    """A tier with nothing to configure."""


@dataclass(kw_only=True)
class _Context(Generic[OptionsT]):
    tier: str
    project: Project
    app: App
    options: OptionsT
    inputs: dict[str, Artifact]
    env: dict[str, str]
    run: Runner
    emit: Callable[[Event], None]
    cache_dir: Path
    config_file: Path
    distros: tuple[str, ...] = ()
    """`[target] distros`: the userspaces ('debian:bookworm') a tier verifies in, if it can."""

    def tool_cache(self, name: str) -> Path:
        """A directory for a tool's own cache (base images, downloads), kept across builds."""
        path = self.cache_dir / "tools" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def option_error(self, message: str, *keys: str,
                     suggestion: str | None = None) -> ConfigError:
        """A ConfigError at `[tiers.TIER] KEY` in gradient.toml, with its line."""
        from .config import locate

        path = ("tiers", self.tier, *keys)
        text = self.config_file.read_text() if self.config_file.exists() else ""
        return ConfigError(message, file=str(self.config_file), line=locate(text, path),
                           key=".".join(path), suggestion=suggestion)


@dataclass(kw_only=True)
class BuildContext(_Context[OptionsT]):
    """Everything a backend may use while building: `work` is private scratch space, `out`
    is where the artifact's files go; it touches nothing else."""

    work: Path
    out: Path

    def source_copy(self) -> AbstractContextManager[Path]:
        """A copy of the project's sources for a build backend to run in (in memory when
        there is room: scratch.py), gone after the block; a failed build's stays in `work`."""
        from .scratch import source_copy

        assert self.project.sources is not None
        return source_copy(self.project.sources, self.tier, self.work, self.work / "src")


@dataclass(kw_only=True)
class VerifyContext(_Context[OptionsT]):
    """What a verification gets: the smoke test and a clean, offline sandbox to run it in."""

    smoke: Smoke
    sandbox: Sandbox


class Backend(Generic[OptionsT]):
    """One tier of the gradient. Subclasses set the class attributes and the two verbs."""

    name: ClassVar[str]
    rank: ClassVar[int]
    artifact: ClassVar[str] = ""
    target: ClassVar[str] = ""
    consumes: ClassVar[tuple[str, ...]] = ()
    tools: ClassVar[tuple[Tool, ...]] = ()
    Options: ClassVar[type[object]] = NoOptions
    uses_sources: ClassVar[bool] = True
    verify_options: ClassVar[frozenset[str]] = frozenset()
    """Option names that change only how the artifact is verified (a container runtime, the
    interpreters to try): they key the verification, and changing one rebuilds nothing."""
    ships_config: ClassVar[bool] = False
    """The artifact carries gradient.toml's text (an sdist holds every source file), so the
    file is part of its key; for every other tier only the options it reads are."""
    archive_readers: ClassVar[tuple[ArchiveReader, ...]] = ()
    """Archive formats this tier's artifacts hold that the secret scan must open too."""
    noop_safe: ClassVar[bool] = True
    """Its key_extra and verify_environment read only files, the environment, PATH and the
    installed packages, which the no-op stamp fingerprints (noop.py); False when they ask
    something else (a Docker daemon, KVM): a build with this tier always takes the full path."""
    cost: ClassVar[float] = 1.0
    """Seconds a build usually takes, until this machine has timed one: longest starts first."""
    needs: ClassVar[frozenset[str]] = frozenset()
    """What `gradient advise` requires before it recommends this tier: target facts ("python",
    "own_userspace"), project facts ("single_module", "stdlib_only", "pure", "app",
    "library"), or either of several ("downloads|library")."""
    facts: ClassVar[tuple[Fact, ...]] = ()
    """New facts this tier needs that the core does not know (declare them here: [target]
    then accepts them, and advise has the words for them)."""

    def skip(self, project: Project, app: App, options: OptionsT) -> str | None:
        """Why this tier does not apply to the project (`--all` then skips it), or None."""
        return None

    def key_extra(self, options: OptionsT, project_root: Path) -> dict[str, JSON]:
        """Identities of inputs from outside the project (a base image's digest, say) that
        belong in the cache key; keep it cheap, it runs on every build and plan."""
        return {}

    def requires(self, options: OptionsT) -> tuple[str, ...]:
        """The tiers whose artifacts this one consumes, which may depend on its options."""
        return self.consumes

    def tools_for(self, options: OptionsT) -> tuple[Tool, ...]:
        """The tools a build with these options runs (part of the cache key)."""
        return self.tools

    def verify_environment(self, options: OptionsT) -> dict[str, JSON]:
        """What the verification would run on here (which container runtime answers, which
        interpreters), part of the verification's cache key: a result proven with one runtime
        is not replayed once another is there. Keep it cheap."""
        return {}

    def build(self, ctx: BuildContext[OptionsT]) -> Artifact:
        raise NotImplementedError

    def verify(self, ctx: VerifyContext[OptionsT], artifact: Artifact) -> Verdict:
        raise NotImplementedError

    def inventory(self, artifact: Artifact) -> list[Component]:
        """What the artifact holds that only this tier can read (a PyInstaller archive, a
        disk image), for its SBOM; the core already reads zip, tar, ar and the registered
        `archive_readers` for `*.dist-info`, dpkg status and conda packages. It must read
        the artifact itself, never the build's inputs: `gradient verify` calls it again."""
        return []

    def deliver(self, options: OptionsT, artifact: Artifact, project_root: Path) -> list[Path]:
        """After promotion: place the verified artifact where the user asked (e.g. vendoring)."""
        return []
