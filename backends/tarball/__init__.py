"""The tarball tier: a self-contained directory (the app, every dependency, compiled ones too,
and a launcher) packed as a reproducible NAME-VERSION.tar.gz, for targets that have a Python.

The tree is installed from the wheel tier's wheelhouse with `--target`, offline: by uv when it
is there (~4x quicker than pip on MBs of package data), else by pip. Both leave traces of the
build machine in such a tree (PITFALLS): `direct_url.json` with the wheel's absolute path,
`bin/` scripts with the build venv's shebang; pip's `.pyc` files embed the temp path, uv adds a
`.lock` and a timestamped `uv_cache.json`. They are dropped, and the build fails if any text
file still names a build path.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradient_build.backend import (
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Event,
    Meta,
    Smoke,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    GZIP_LEVEL,
    UV,
    GzipLevel,
    build_paths,
    find_paths,
    hide_prefix,
    installer,
    minimal_env,
    safe_extract,
    tree_entries,
    venv_prefix,
    write_tar,
)

from .launcher import launcher_script, python_prelude, q

COMPILED = (".so", ".pyd", ".dylib")


@dataclass
class TarballOptions:
    python: str = doc(
        "the interpreter the launcher runs: a name looked up on PATH, or an absolute path. "
        "With compiled dependencies it must be the Python version the tree was built for",
        "python3")
    gzip_level: GzipLevel = doc("gzip level of the tarball: 6 (gzip's default) to 9 (a few "
                                "% smaller, several times slower)", GZIP_LEVEL)


class TarballBackend(Backend[TarballOptions]):
    name = "tarball"
    rank = 50
    artifact = ".tar.gz of a self-contained directory: app + dependencies + launcher"
    target = "a Python interpreter"
    consumes = ("wheel",)
    tools = (Tool("pip", "python -m ensurepip", dist="pip"), UV)
    needs = frozenset({"python"})
    Options = TarballOptions
    uses_sources = False  # all it takes from the project comes in the artifacts it consumes

    def build(self, ctx: BuildContext[TarballOptions]) -> Artifact:
        options = ctx.options
        wheel = ctx.inputs["wheel"]
        top_name = f"{ctx.project.name}-{ctx.project.version}"
        stage = ctx.work / "tree"
        top = stage / top_name
        lib = top / "lib"
        houses = sorted({p.parent for p in wheel.of_role("dependency")})
        chosen = installer()  # what either leaves in a --target tree is known and tidied
        ctx.run(chosen.install_target(lib, [wheel.path], houses), cwd=ctx.work,
                what=f"{chosen.name} install --target")
        tidy(lib)
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        launcher, scripts = launchers(ctx)
        for name, entry in scripts.items():
            path = top / "bin" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(launcher_script(name, entry, options.python,
                                            compiled_for(lib, version), top_name))
            path.chmod(0o755)
        leaks = find_paths(top, [ctx.cache_dir, ctx.work, *venv_prefix()])
        if leaks:
            raise BuildFailed("tarball: the installed tree still names a build path: "
                              + describe(leaks))
        tarball = ctx.out / f"{top_name}.tar.gz"
        write_tar(tarball, tree_entries(stage), int(ctx.env["SOURCE_DATE_EPOCH"]),
                  level=options.gzip_level)
        meta: dict[str, Any] = {"top": top_name, "launcher": launcher, "lib": "lib",
                                "python": options.python, "python_version": version,
                                "launchers": [f"bin/{name}" for name in scripts]}
        return Artifact(self.name, ctx.out, tarball.name, {}, meta)

    def verify(self, ctx: VerifyContext[TarballOptions], artifact: Artifact) -> Verdict:
        """Extract to a fresh random path, then run the smoke offline under a minimal env
        with the build's paths hidden; an app runs again through a symlink elsewhere.
        """
        place = ctx.sandbox.fresh_dir("gradient-tarball-")
        safe_extract(artifact.path, place)
        top = place / artifact.need(Meta.TOP)
        lib = top / artifact.need(Meta.LIB)
        leaks = find_paths(top, build_paths(ctx.project.root, ctx.cache_dir))
        if leaks:
            return Verdict(False, [], None, 0.0, "\n".join(f"{f}: {p}" for f, p in leaks),
                           problem="the tree names a path of the build machine, which will "
                                   "not exist where it is going: " + describe(leaks))
        env = minimal_env()
        run_dir = ctx.sandbox.fresh_dir("gradient-run-")
        links = ctx.sandbox.fresh_dir("gradient-link-")
        python = artifact.need(Meta.PYTHON)
        interpreter = shutil.which(python, path=env["PATH"])
        keep = [Path(interpreter)] if interpreter else []
        smoke = ctx.smoke
        extra: dict[str, Any] = {}
        if not hide_prefix():
            ctx.emit(Event("warning", self.name, "no mount namespace here: the smoke runs "
                           "with the build paths still visible (only the scan checks them)"))
        launcher = artifact.text(Meta.LAUNCHER)
        if launcher and smoke.runs_app:
            cmd = [str(top / launcher), *smoke.args]
        else:
            modules = ctx.inputs["wheel"].texts(Meta.TOP_LEVEL) or [ctx.project.import_name]
            prelude = python_prelude(ctx.project.name,
                                     compiled_for(lib, artifact.need(Meta.PYTHON_VERSION)),
                                     q(str(lib)))
            cmd = [python, "-I", "-c",
                   prelude + smoke.python_code(list(modules))]
        result = ctx.sandbox.run(cmd, cwd=run_dir, env=env, timeout=smoke.timeout, keep=keep)
        verdict = smoke.judge(result, extra=extra)
        if not verdict.ok:
            return verdict
        every = artifact.texts(Meta.LAUNCHERS) or ([launcher] if launcher else [])
        if launcher and smoke.runs_app:
            link = symlink_chain(links, top / launcher)
            again = ctx.sandbox.run([str(link), *smoke.args], cwd=run_dir, env=env,
                                    timeout=smoke.timeout, keep=keep)
            second = smoke.judge(again, extra=extra)
            if not second.ok:
                second.problem = ("through a symlink to the launcher: "
                                           + second.problem)
                return second
            verdict.extra["symlink"] = {"command": again.command, "exit_code": again.exit_code}
        return self._every_launcher(ctx, top, every, verdict, run_dir, keep)

    def _every_launcher(self, ctx: VerifyContext[TarballOptions], top: Path, every: list[str],
                        verdict: Verdict, run_dir: Path, keep: list[Path]) -> Verdict:
        """Every script's launcher must start: each imports its entry point (and exits before
        calling it, GRADIENT_ENTRY_CHECK=1) and, when [verify] is the default `--help`, also
        runs `--help`, which must exit 0. The main one has already run the smoke."""
        default_help = ctx.smoke.default and ctx.smoke.args == ["--help"]
        checks: list[tuple[str, list[str], dict[str, str]]] = []
        for launcher in every:
            path = str(top / launcher)
            checks.append((launcher, [path], minimal_env(GRADIENT_ENTRY_CHECK="1")))
            if default_help:
                checks.append((launcher, [path, "--help"], minimal_env()))
        ran: list[dict[str, Any]] = []
        for launcher, cmd, env in checks:
            result = ctx.sandbox.run(cmd, cwd=run_dir, env=env, timeout=ctx.smoke.timeout,
                                     keep=keep)
            what = "--help" if cmd[1:] else "entry check"
            ran.append({"launcher": launcher, "check": what, "exit_code": result.exit_code})
            if result.exit_code != 0:
                failed = Smoke(None, None, timeout=ctx.smoke.timeout).judge(result)
                failed.problem = (f"{launcher} ({what}): "
                                           + failed.problem)
                failed.extra["launchers"] = ran
                return failed
        verdict.extra["launchers"] = ran
        return verdict


def launchers(ctx: BuildContext[TarballOptions]) -> tuple[str | None, dict[str, str]]:
    """(the main launcher, {name: entry} of every launcher): one per [project.scripts] entry
    of the distribution, and the app's own when [app] names an entry of its own."""
    script, entry = ctx.app.script, ctx.app.entry
    scripts = dict(ctx.app.scripts) if entry else {}
    main = None
    if entry:
        main = script or ctx.project.name
        scripts[main] = entry
    for name in scripts:
        if "/" in name or name.startswith(".") or not name.strip():
            raise BuildFailed(f"tarball: the console script name {name!r} is not a file name")
    return (f"bin/{main}" if main else None), dict(sorted(scripts.items()))


def tidy(lib: Path) -> None:
    """Drop what an install `--target` leaves that names the build machine or is not needed:
    its `bin/` (scripts with the build venv's shebang), `direct_url.json` (the wheel's absolute
    path), any `__pycache__`, uv's `.lock` and `uv_cache.json` (the install's time), and their
    RECORD lines, so RECORD still lists exactly the tree.
    """
    shutil.rmtree(lib / "bin", ignore_errors=True)
    (lib / ".lock").unlink(missing_ok=True)
    for cache in sorted(lib.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for info in sorted(lib.glob("*.dist-info")):
        for trace in ("direct_url.json", "uv_cache.json"):
            (info / trace).unlink(missing_ok=True)
        record = info / "RECORD"
        if record.exists():
            rows = list(csv.reader(record.read_text(encoding="utf-8").splitlines()))
            kept = [row for row in rows if row and (row[0] == f"{info.name}/RECORD"
                                                    or inside(lib, row[0]))]
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(kept)
            record.unlink()
            record.write_text(text.getvalue(), encoding="utf-8")


def inside(lib: Path, rel: str) -> bool:
    """Whether a RECORD path names a file that is still in the tree (not `../../bin/...`)."""
    path = (lib / rel).resolve()
    return path.is_relative_to(lib.resolve()) and path.is_file()


def compiled_for(lib: Path, version: str) -> tuple[str, str] | None:
    """(cache tag, version) the tree's compiled extensions need, or None for a pure tree."""
    if not any(p.name.endswith(COMPILED) or ".so." in p.name for p in lib.rglob("*")):
        return None
    return f"{sys.implementation.name}-{version.replace('.', '')}", version


def symlink_chain(where: Path, target: Path) -> Path:
    """`where/bin/NAME` -> `../via/NAME` (relative) -> `target` (absolute): both link kinds."""
    (where / "bin").mkdir()
    (where / "via").mkdir()
    (where / "via" / target.name).symlink_to(target)
    link = where / "bin" / target.name
    link.symlink_to(Path("..") / "via" / target.name)
    return link


def describe(leaks: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{f} names {p}" for f, p in leaks[:5])
    more = f" (and {len(leaks) - 5} more)" if len(leaks) > 5 else ""
    return shown + more
