"""What tiers hand each other: an Artifact (files plus named facts) and a Verdict (the proof).

A leaf module: it imports nothing of gradient's, so every other module can use these types
without an import cycle. The keys tiers read from each other's `Artifact.meta` are named in
`Meta`, in one place (GoReleaser's `artifact.Extra*` constants are the model): a tier that
writes a key says so here, and a tier that reads one uses the constant, not a string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Literal, TypeAlias

JSON: TypeAlias = "str | int | float | bool | Sequence[JSON] | Mapping[str, JSON] | None"
"""What a manifest can record: the values of `Artifact.meta` and `Verdict.extra`."""


class Role:
    """What a file of an artifact is, as the manifest's `role` says."""

    ARTIFACT: Final = "artifact"      # the tier's deliverable: exactly one, listed first
    DEPENDENCY: Final = "dependency"  # e.g. a wheel of the wheelhouse beside the app's wheel
    LICENSE: Final = "license"        # a license file shipped with a copy
    MODULE: Final = "module"          # one more module file of a copy
    SCRIPT: Final = "script"          # one more executable, one per console script (exe)
    SBOM: Final = "sbom"              # the CycloneDX SBOM of the artifact (written at promotion)
    PROVENANCE: Final = "provenance"  # its in-toto/SLSA provenance (written at promotion)


class Meta:
    """The `Artifact.meta` keys one tier writes and another reads. Each says who writes it."""

    TOP_LEVEL: Final = "top_level"  # wheel: importable top-level names it installs (list)
    TOP: Final = "top"              # tarball, exe onedir: the folder the archive unpacks to
    LIB: Final = "lib"              # tarball: the installed tree's folder under TOP
    LAUNCHER: Final = "launcher"    # tarball, exe onedir: the main launcher, under TOP
    LAUNCHERS: Final = "launchers"  # tarball: every console script's launcher, under TOP
    PYTHON: Final = "python"        # tarball: the interpreter its launchers run
    PYTHON_VERSION: Final = "python_version"  # tarball: the X.Y it was installed for
    MODE: Final = "mode"            # exe: "onefile" or "onedir"
    ENTRY: Final = "entry"          # exe onefile: the executable's name; pex: its entry point
    SCRIPTS: Final = "scripts"      # exe: the other console scripts' executables
    GLIBC_FLOOR: Final = "glibc_floor"  # exe: the newest GLIBC_x.y its binaries need
    BASE_LAYERS: Final = "base_layers"  # oci: digests of the base's layers (provenance materials)


@dataclass
class Artifact:
    """What a tier built: a directory of files, one of which is the deliverable."""

    tier: str
    root: Path
    primary: str
    roles: dict[str, str] = field(default_factory=dict)
    meta: dict[str, JSON] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.root / self.primary

    def files(self) -> list[tuple[str, str]]:
        """(relative path, role) of every file, the deliverable first, the rest sorted."""
        rest = sorted(p for p in self.roles if p != self.primary)
        return [(self.primary, Role.ARTIFACT), *((p, self.roles[p]) for p in rest)]

    def of_role(self, role: str) -> list[Path]:
        return [self.root / p for p, r in self.files() if r == role]

    def text(self, key: str) -> str | None:
        """A text fact of `meta` (None when absent or empty)."""
        value = self.meta.get(key)
        return str(value) if value not in (None, "") else None

    def need(self, key: str) -> str:
        """A text fact the writing tier always records (KeyError names what is missing)."""
        value = self.text(key)
        if value is None:
            raise KeyError(f"the {self.tier} artifact records no {key!r}")
        return value

    def texts(self, key: str) -> list[str]:
        """A list-of-text fact of `meta` ([] when absent)."""
        value = self.meta.get(key)
        if isinstance(value, str) or not isinstance(value, Sequence):
            return []
        return [str(v) for v in value]

    def to_json(self) -> dict[str, JSON]:
        return {"tier": self.tier, "primary": self.primary, "roles": self.roles, "meta": self.meta}

    @classmethod
    def from_json(cls, root: Path, data: Mapping[str, JSON]) -> Artifact:
        roles, meta = data.get("roles"), data.get("meta")
        return cls(str(data["tier"]), root, str(data["primary"]),
                   {str(k): str(v) for k, v in roles.items()} if isinstance(roles, Mapping) else {},
                   dict(meta) if isinstance(meta, Mapping) else {})


@dataclass(frozen=True)
class ArchiveReader:
    """How the secret scan opens one more archive format that a tier ships (a .deb's ar, a
    .conda's zstd tars): the names it ends with, and a function yielding (member name,
    content, or None when larger than the limit it is given) from the archive's bytes."""

    suffixes: tuple[str, ...]
    members: Callable[[IO[bytes], int], Iterator[tuple[str, bytes | None]]]


Level = Literal["ran", "checked"]


@dataclass
class Verdict:
    """The outcome of running an artifact where it is going; the manifest records it.

    `level` says how far the proof went: "ran" (the artifact ran where it is going) or
    "checked" (only its structure was checked, because nothing here can run it; `why` says
    what was missing). Only a verdict that ran makes an artifact verified. `problem` is what
    went wrong, in words, when `ok` is false.
    """

    ok: bool
    command: list[str]
    exit_code: int | None
    seconds: float
    output: str = ""
    extra: dict[str, JSON] = field(default_factory=dict)
    level: Level = "ran"
    why: str = ""
    problem: str = ""

    @property
    def verified(self) -> bool:
        return self.ok and self.level == "ran"

    def blame(self, context: str) -> Verdict:
        """Say where the failure happened ("under Python 3.12: exited with 1")."""
        self.problem = f"{context}: {self.problem}" if self.problem else context
        return self

    def to_json(self) -> dict[str, JSON]:
        data: dict[str, JSON] = {"ok": self.ok, "command": self.command,
                                 "exit_code": self.exit_code, "seconds": self.seconds,
                                 "output": self.output, "level": self.level}
        data |= {k: v for k, v in (("why", self.why), ("problem", self.problem)) if v}
        return data | self.extra

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> Verdict:
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        return cls(**fields,  # type: ignore[arg-type]  # written by to_json, read back as is
                   extra={k: v for k, v in data.items() if k not in known})
