"""The contract between the core and a tier: what a backend declares, and its two verbs.

A backend is found through the `gradient_build.backends` entry-point group, so a third
party adds a tier the same way the built-in ones do. It never prints, never writes to
`dist/`, never reads another tier's options: it gets everything from its context and
meets other tiers only through the artifacts it consumes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .tools import Tool

if TYPE_CHECKING:
    from .config import Config
    from .events import Event
    from .project import Project
    from .runner import Runner
    from .sandbox import Sandbox
    from .smoke import Smoke


@dataclass
class NoOptions:
    """A tier with nothing to configure."""


@dataclass
class Artifact:
    """What a tier built: a directory of files, one of which is the deliverable."""

    tier: str
    root: Path
    primary: str
    roles: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / self.primary

    def files(self) -> list[tuple[str, str]]:
        """(relative path, role) of every file, the deliverable first, the rest sorted."""
        rest = sorted(p for p in self.roles if p != self.primary)
        return [(self.primary, "artifact"), *((p, self.roles[p]) for p in rest)]

    def of_role(self, role: str) -> list[Path]:
        return [self.root / p for p, r in self.files() if r == role]

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "primary": self.primary, "roles": self.roles, "meta": self.meta}

    @classmethod
    def from_json(cls, root: Path, data: dict[str, Any]) -> Artifact:
        return cls(data["tier"], root, data["primary"], dict(data["roles"]), dict(data["meta"]))


Level = Literal["ran", "checked"]


@dataclass
class Verdict:
    """The outcome of running an artifact where it is going; the manifest records it.

    `level` says how far the proof went: "ran" (the artifact ran where it is going) or
    "checked" (only its structure was checked, because nothing here can run it; `why` says
    what was missing). Only a verdict that ran makes an artifact verified.
    """

    ok: bool
    command: list[str]
    exit_code: int | None
    seconds: float
    output: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    level: Level = "ran"
    why: str = ""

    @property
    def verified(self) -> bool:
        return self.ok and self.level == "ran"

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("extra", "why")}
        if self.why:
            data["why"] = self.why
        return data | self.extra

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


class ToolCaches:
    """What both contexts share: a persistent directory per tool under gradient's cache."""

    cache_dir: Path

    def tool_cache(self, name: str) -> Path:
        """A directory for a tool's own cache (base images, downloads), kept across builds."""
        path = self.cache_dir / "tools" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class BuildContext(ToolCaches):
    """Everything a backend may use while building; it touches nothing else."""

    tier: str
    project: Project
    config: Config
    options: Any
    inputs: dict[str, Artifact]
    work: Path
    out: Path
    env: dict[str, str]
    run: Runner
    emit: Callable[[Event], None]
    cache_dir: Path


@dataclass
class VerifyContext(ToolCaches):
    """What a verification gets: the smoke test, a clean offline sandbox, the options."""

    tier: str
    project: Project
    config: Config
    options: Any
    smoke: Smoke
    sandbox: Sandbox
    inputs: dict[str, Artifact]
    env: dict[str, str]
    run: Runner
    emit: Callable[[Event], None]
    cache_dir: Path


class Backend:
    """One tier of the gradient. Subclasses set the class attributes and the two verbs."""

    name: ClassVar[str]
    rank: ClassVar[int]
    artifact: ClassVar[str] = ""
    target: ClassVar[str] = ""
    consumes: ClassVar[tuple[str, ...]] = ()
    tools: ClassVar[tuple[Tool, ...]] = ()
    Options: ClassVar[type[Any]] = NoOptions
    uses_sources: ClassVar[bool] = True
    verify_options: ClassVar[frozenset[str]] = frozenset()
    """Option names that change only how the artifact is verified (a container runtime, the
    interpreters to try): they key the verification, and changing one rebuilds nothing."""
    ships_config: ClassVar[bool] = False
    """The artifact carries gradient.toml's text (an sdist holds every source file), so the
    file is part of its key; for every other tier only the options it reads are."""
    cost: ClassVar[float] = 1.0
    """Seconds a build usually takes, until this machine has timed one: longest starts first."""
    needs: ClassVar[frozenset[str]] = frozenset()
    """What the target must provide, for `gradient advise`: python, downloads, container."""

    def skip(self, project: Project, config: Config, options: Any) -> str | None:
        """Why this tier does not apply to the project (`--all` then skips it), or None."""
        return None

    def key_extra(self, options: Any, project_root: Path) -> dict[str, Any]:
        """Identities of inputs from outside the project (a base image's digest, say) that
        belong in the cache key; keep it cheap, it runs on every build and plan."""
        return {}

    def requires(self, options: Any) -> tuple[str, ...]:
        """The tiers whose artifacts this one consumes, which may depend on its options."""
        return self.consumes

    def tools_for(self, options: Any) -> tuple[Tool, ...]:
        """The tools a build with these options runs (part of the cache key)."""
        return self.tools

    def verify_environment(self, options: Any) -> dict[str, Any]:
        """What the verification would run on here (which container runtime answers, which
        interpreters), part of the verification's cache key: a result proven with one runtime
        is not replayed once another is there. Keep it cheap."""
        return {}

    def build(self, ctx: BuildContext) -> Artifact:
        raise NotImplementedError

    def verify(self, ctx: VerifyContext, artifact: Artifact) -> Verdict:
        raise NotImplementedError

    def deliver(self, options: Any, artifact: Artifact, project_root: Path) -> list[Path]:
        """After promotion: place the verified artifact where the user asked (e.g. vendoring)."""
        return []
