"""The smoke test: what every tier runs against its own artifact, and how its result is judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .artifact import JSON, Verdict
from .entrypoints import run_lines
from .runner import tail
from .sandbox import Result

if TYPE_CHECKING:
    from .config import Config
    from .project import Project


@dataclass(frozen=True)
class Smoke:
    """Either run the app (`script` with `args`) or run Python `code` with the target's python."""

    script: str | None
    entry: str | None
    args: list[str] = field(default_factory=list)
    expect: str | None = None
    code: str | None = None
    timeout: int = 120
    default: bool = False
    """No [verify] args or code were given: the smoke is the default (`--help`, imports)."""

    @property
    def runs_app(self) -> bool:
        return self.code is None and bool(self.script or self.entry)

    def python_code(self, fallback_modules: list[str]) -> str:
        """Python for targets that can only import: the configured code, else imports."""
        if self.code is not None:
            return self.code
        return project_imports(fallback_modules)

    def judge(self, result: Result, *, extra: dict[str, JSON] | None = None) -> Verdict:
        ok = result.exit_code == 0
        problem = ""
        if not ok:
            problem = ("timed out" if result.timed_out
                       else f"exited with {result.exit_code}, expected 0")
        elif self.expect is not None and self.expect not in result.output:
            ok, problem = False, f"output does not contain {self.expect!r}"
        return Verdict(ok, result.command, result.exit_code, round(result.seconds, 3),
                       tail(result.output, 60), dict(extra or {}), problem=problem)


def smoke_for(config: Config, project: Project) -> Smoke:
    """[verify] when given; otherwise `SCRIPT --help` for an app, imports for a library."""
    verify = config.verify
    script, entry = project.entry_point(config)
    default = verify.args is None and verify.code is None
    if verify.code is not None:
        return Smoke(script, entry, [], verify.expect, verify.code, verify.timeout)
    if script or entry:
        args = verify.args if verify.args is not None else ["--help"]
        return Smoke(script, entry, list(args), verify.expect, None, verify.timeout, default)
    return Smoke(None, None, [], verify.expect, None, verify.timeout, default)


def project_imports(modules: list[str]) -> str:
    """A library's default smoke: import every top-level module it installs."""
    return "\n".join(f"import {m}" for m in modules) or "pass"


def entry_code(entry: str, script: str) -> str:
    """Python that runs `module:function` the way a console-script wrapper does."""
    return run_lines(script, entry)


def command_in_env(smoke: Smoke, python: str, bin_dir: str | None,
                   modules: list[str] | None = None) -> list[str]:
    """The smoke as a command line inside an installed environment (a venv, a prefix)."""
    if not smoke.runs_app:
        return [python, "-I", "-c", smoke.python_code(modules or [])]
    if bin_dir and smoke.script and _has_script(bin_dir, smoke.script):
        return [f"{bin_dir}/{smoke.script}", *smoke.args]
    return [python, "-I", "-c", entry_code(smoke.entry or "", smoke.script or "app"), *smoke.args]


def _has_script(bin_dir: str, name: str) -> bool:
    from pathlib import Path

    return (Path(bin_dir) / name).exists()
