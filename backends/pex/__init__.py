"""The pex tier: one executable zip holding the app and every dependency, built by `pex`
from the wheel tier's wheel and wheelhouse, so nothing is resolved online at this step.

Reproducible as measured with pex 2.105: zip entries are dated 1980-01-01 whatever
SOURCE_DATE_EPOCH says, and no `.pyc` is written unless `--compile`. What does vary is the
runtime PEX_ROOT pex bakes into the boot code, taken from the build's XDG_CACHE_HOME (under
gradient's cache): `--runtime-pex-root` pins it, and the build fails if a pex still names a
build path.
"""

from __future__ import annotations

import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gradient_build.backend import (
    JSON,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Meta,
    Result,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import minimal_env, venv_prefix

Shebang = Literal["sh-boot", "absolute", "env"]


@dataclass
class PexOptions:
    """How the pex starts and which interpreters it accepts.

    `shebang` defaults to "sh-boot": a `#!/bin/sh` preamble that looks for a compatible
    interpreter itself. It needs nothing from the caller's environment (it still starts under
    `env -i`, where pex's own `#!/usr/bin/env python3.X` dies with "argv first element
    cannot be empty"), it names no path of the build machine (an "absolute" shebang does), and
    it is pex's fastest boot on the second and later runs.
    """

    shebang: Shebang = doc(
        "how the pex starts: 'sh-boot' (a /bin/sh preamble picks a compatible Python; works "
        "under env -i), 'absolute' (#! an absolute interpreter path), 'env' (pex's default "
        "#!/usr/bin/env python3.X: needs PATH, fails under env -i)", "sh-boot")
    interpreter: str | None = doc(
        "the interpreter an 'absolute' shebang names (default: the real path of the Python "
        "that builds the pex)", None)
    runtime_pex_root: str = doc(
        "where the pex unpacks itself on the target (PEX_ROOT overrides it at run time); "
        "without it pex bakes in the build's own cache dir", "~/.cache/pex")
    interpreter_constraints: list[str] = doc(
        "interpreter constraints, e.g. ['CPython>=3.10,<3.14'] (default: the project's "
        "requires-python); either way narrowed to what the bundled wheels' tags support", [])
    interpreters: list[str] = doc(
        "more Pythons to verify the pex under, besides every python3.X on PATH and the one "
        "behind gradient's own (each one the constraints admit runs the smoke)", [])


class PexBackend(Backend[PexOptions]):
    name = "pex"
    rank = 40
    artifact = ".pex (an executable zip of the app and its dependencies)"
    target = "a Python interpreter"
    consumes = ("wheel",)
    tools = (Tool("pex", "pip install pex (or gradient-build[pex])", dist="pex"),)
    needs = frozenset({"python", "virtualenv"})
    Options = PexOptions
    verify_options = frozenset({"interpreters"})  # they change the proof, not the artifact
    uses_sources = False  # all it takes from the project comes in the artifacts it consumes
    cost = 3.0

    def build(self, ctx: BuildContext[PexOptions]) -> Artifact:
        options = ctx.options
        wheel = ctx.inputs["wheel"]
        dependencies = sorted(wheel.of_role("dependency"))
        out = ctx.out / f"{ctx.project.name}-{ctx.project.version}.pex"
        entry = entry_args(ctx)
        constraints = pex_constraints(ctx, options, [wheel.path, *dependencies])
        # The wheel tier resolved the set already: handed over as pre-resolved dists, pex
        # checks it is a closure for the root requirement and runs no pip resolve (httpie:
        # 2.4 s instead of 5 s, the same bytes as `-f WHEELHOUSE`)
        cmd: list[str | Path] = [
            sys.executable, "-m", "pex", "--no-pypi",
            f"{ctx.project.name}=={ctx.project.version}",
            *(arg for dist in (wheel.path, *dependencies)
              for arg in ("--pre-resolved-dists", dist)),
            "--python-path", Path(sys.executable).parent,
            *(arg for c in constraints for arg in ("--interpreter-constraint", c)),
            *shebang_args(options), *entry,
            "--runtime-pex-root", options.runtime_pex_root,
            "--no-compile", "--no-use-system-time", "-o", out,
        ]
        ctx.run(cmd, cwd=ctx.work, what="pex")
        chosen = Path(options.interpreter or "/")
        leaks = build_paths_in(out, [p for p in (ctx.cache_dir, ctx.work, ctx.project.root,
                                                 *venv_prefix())
                                     if not chosen.is_relative_to(p)])
        if leaks:
            raise BuildFailed("pex: the pex names a path of the build machine: "
                              + "; ".join(f"{m} names {p}" for m, p in leaks[:5]))
        meta: dict[str, Any] = {"entry": entry[1] if entry else None, "shebang": options.shebang,
                                "interpreter_constraints": constraints}
        return Artifact(self.name, ctx.out, out.name, {}, meta)

    def verify_environment(self, options: PexOptions) -> dict[str, JSON]:
        """The Pythons a verification may run the pex under (paths only: cheap)."""
        from .interpreters import candidates  # packaging's specifiers: at use, not import

        return {"interpreters": candidates(getattr(options, "interpreters", []))}

    def verify(self, ctx: VerifyContext[PexOptions], artifact: Artifact) -> Verdict:
        """Run a copy of the pex from another directory, offline, under a minimal env.

        Each run gets a throw-away PEX_ROOT, so the pex unpacks itself from scratch and
        nothing cached from the build helps it. Unless the shebang is "env" (which needs
        PATH by design), a second run with no PATH, HOME or LANG at all proves it boots
        under a bare `env -i`. Then every Python here that the constraints admit runs it.
        """
        place = ctx.sandbox.fresh_dir("gradient-pex-")
        pex = place / artifact.primary
        shutil.copy2(artifact.path, pex)
        pex.chmod(0o755)
        elsewhere = ctx.sandbox.fresh_dir("gradient-run-")
        cmd, extra_env = smoke_command(ctx, pex, artifact)
        env = minimal_env(PEX_ROOT=str(place / "pex-root"), **extra_env)
        result = ctx.sandbox.run(cmd, cwd=elsewhere, env=env, timeout=ctx.smoke.timeout)
        verdict = ctx.smoke.judge(result, extra={"env": "minimal"})
        if not verdict.ok:
            return verdict
        if ctx.options.shebang == "env":
            return self._every_interpreter(ctx, artifact, verdict, place, elsewhere)
        bare = {"PEX_ROOT": str(place / "pex-root-bare"), **extra_env}
        again = ctx.sandbox.run(cmd, cwd=elsewhere, env=bare, timeout=ctx.smoke.timeout)
        second = ctx.smoke.judge(again)
        if not second.ok:
            second.problem = ("does not start under env -i (no PATH, HOME or LANG): "
                                       + second.problem)
            return second
        verdict.extra["bare_env"] = bare_summary(again)
        return self._every_interpreter(ctx, artifact, verdict, place, elsewhere)

    def _every_interpreter(self, ctx: VerifyContext[PexOptions], artifact: Artifact,
                           verdict: Verdict, place: Path, elsewhere: Path) -> Verdict:
        """The smoke again under each Python here that the pex's constraints admit, forced
        with `/abs/python3.X app.pex` and PEX_PYTHON, under a bare `env -i`: a pex is only
        verified for the interpreters it was seen to run on."""
        from .interpreters import admits, candidates, probe

        constraints = artifact.texts("interpreter_constraints")
        found = probe(candidates(ctx.options.interpreters))
        ran: list[dict[str, Any]] = []
        for n, python in enumerate(p for p in found if admits(constraints, p)):
            cmd, extra_env = smoke_command(ctx, place / artifact.primary, artifact)
            env = {"PEX_ROOT": str(place / f"pex-root-{n}"), "PEX_PYTHON": python.path,
                   **extra_env}
            result = ctx.sandbox.run([python.path, *cmd], cwd=elsewhere, env=env,
                                     timeout=ctx.smoke.timeout)
            run = ctx.smoke.judge(result)
            ran.append({"python": python.path, "version": python.version,
                        **bare_summary(result)})
            if not run.ok:
                run.problem = (f"under Python {python.version} ({python.path}), which "
                                        f"its constraints {constraints} admit: "
                                        + run.problem)
                run.extra["interpreters"] = ran
                return run
        verdict.extra["interpreters"] = ran
        verdict.extra["interpreters_skipped"] = [
            f"{p.version} ({p.path})" for p in found if not admits(constraints, p)]
        return verdict


def pex_constraints(ctx: BuildContext[PexOptions], options: PexOptions,
                    wheels: list[Path]) -> list[str]:
    """The user's constraints (else requires-python) narrowed to what the wheels' tags allow."""
    from .interpreters import NoInterpreter, combine, tag_constraints

    bases = options.interpreter_constraints or (
        [ctx.project.requires_python] if ctx.project.requires_python else [])
    try:
        return combine(bases, tag_constraints(wheels))
    except NoInterpreter as exc:
        raise BuildFailed(f"pex: {exc}") from None


def entry_args(ctx: BuildContext[PexOptions]) -> list[str]:
    """`-c SCRIPT` for a console script, `-e MODULE:FUNC` for an explicit entry, else none."""
    script, entry = ctx.app.script, ctx.app.entry
    if script and ctx.project.scripts.get(script) == entry:
        return ["-c", script]
    if entry:
        return ["-e", entry.split("[")[0].strip()]
    return []


def shebang_args(options: PexOptions) -> list[str]:
    if options.shebang == "sh-boot":
        return ["--sh-boot"]
    if options.shebang == "absolute":
        return ["--python-shebang", options.interpreter or base_interpreter()]
    if options.interpreter:
        raise BuildFailed("pex: [tiers.pex] interpreter only applies to shebang = \"absolute\"")
    return []


def base_interpreter() -> str:
    """The real interpreter behind the building Python (a venv's python is a build path)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    candidate = Path(sys.base_prefix) / "bin" / version
    return str(candidate if candidate.exists() else Path(sys.executable).resolve())


def smoke_command(ctx: VerifyContext[PexOptions], pex: Path,
                  artifact: Artifact) -> tuple[list[str], dict[str, str]]:
    """The smoke as pex runs it: `./x.pex ARGS` for an app, `./x.pex -c CODE` otherwise.

    A pex with an entry point hands `-c` to the app; PEX_INTERPRETER=1 makes it act as the
    interpreter instead (pex strips PEX_* variables before the code runs).
    """
    smoke = ctx.smoke
    if smoke.runs_app:
        return [str(pex), *smoke.args], {}
    modules = ctx.inputs["wheel"].texts(Meta.TOP_LEVEL) or [ctx.project.import_name]
    extra = {"PEX_INTERPRETER": "1"} if artifact.text(Meta.ENTRY) else {}
    return [str(pex), "-c", smoke.python_code(list(modules))], extra


def build_paths_in(pex: Path, paths: list[Path]) -> list[tuple[str, str]]:
    """(member, path) for each text member of the pex (and its sh preamble) naming a build path.

    pex bakes its default PEX_ROOT in from the build's environment (XDG_CACHE_HOME), which is
    how a pex can come to name the build machine; compiled members are not scanned.
    """
    needles = [(re.compile(re.escape(str(p).encode()) + rb"(?![\w.-])"), str(p))
               for p in dict.fromkeys(paths) if len(p.parts) > 2]
    found: list[tuple[str, str]] = []
    with zipfile.ZipFile(pex) as zf, pex.open("rb") as raw:
        infos = zf.infolist()
        data = raw.read(infos[0].header_offset if infos else 0)
        for name, info in [("(preamble)", None), *((i.filename, i) for i in infos)]:
            if info is not None:
                if info.is_dir():
                    continue
                data = zf.read(info)
            if b"\0" not in data[:8192]:
                found += [(name, text) for word, text in needles if word.search(data)]
    return found


def bare_summary(result: Result) -> dict[str, Any]:
    return {"exit_code": result.exit_code, "seconds": round(result.seconds, 3)}
