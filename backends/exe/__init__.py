"""The exe tier: a frozen executable made by PyInstaller from the wheel tier's wheel and wheelhouse.

The target provides only the OS and its C library, so the proof runs the executable with no
Python reachable: an empty PATH from another directory offline, then in a container whose
root holds nothing but the C library: under Docker when a daemon answers, else under runc,
else the verdict says `container: "not available: <why>"` (the first run still ran).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gradient_build.backend import (
    JSON,
    App,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Component,
    Meta,
    Project,
    Result,
    Smoke,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    PASSED_THROUGH,
    elf_files,
    file_digest,
    glibc_floor,
    safe_extract,
    tree_entries,
    write_tar,
)

from . import container, runc
from .freeze import (
    build_env,
    entry_script,
    installed_dists,
    pyinstaller_cache,
    resolve_datas,
    safe_name,
    unpack_binaries,
    wheel_packages,
)

MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")
NO_SITE_BUILTIN = re.compile(r"NameError: name '(exit|quit)' is not defined")


@dataclass
class ExeOptions:
    mode: Literal["onefile", "onedir"] = doc(
        "one self-extracting file, or a directory shipped as NAME-VERSION-onedir.tar.gz",
        "onefile")
    hidden_imports: list[str] = doc("modules the analysis cannot see (imported by name)", [])
    collect_submodules: list[str] = doc(
        "packages whose every submodule is bundled (plugins imported by name)", [])
    collect_data: list[str] = doc(
        "more packages whose data files are bundled (the app's own packages always are)", [])
    copy_metadata: list[str] = doc(
        "more distributions whose metadata is bundled (the app's own always is)", [])
    datas: list[str] = doc("extra files, 'SRC:DEST': SRC relative to the project, DEST a "
                           "folder in the bundle", [])
    excludes: list[str] = doc("modules left out of the bundle", [])
    strip: bool = doc("strip symbols from the bundled binaries (about half the size)", True)
    scripts: Literal["all", "main"] = doc(
        "which console scripts ship: 'all' (one freeze; each script is the same program under "
        "its own name, which picks the entry it was started as: onedir adds a symlink per "
        "script, onefile a copy of the executable per script: measured with three scripts, "
        "21 MB instead of 6.8 MB and +2.5 s) or 'main' ([app] script only)", "all")


class ExeBackend(Backend[ExeOptions]):
    name = "exe"
    rank = 60
    artifact = "frozen executable (onefile, or onedir as a .tar.gz)"
    target = "the OS and its C library"
    consumes = ("wheel",)
    tools = (
        Tool("pyinstaller", "pip install 'gradient-build[exe]'", dist="pyinstaller"),
        Tool("pyinstaller-hooks-contrib", "pip install 'gradient-build[exe]'",
             dist="pyinstaller-hooks-contrib"),
        Tool("uv", "pip install uv (optional: a faster installer)", command="uv", dist="uv",
             required=False),
        runc.RUNC,
    )
    Options = ExeOptions
    uses_sources = False  # the app comes in the wheel; only `datas` files come from the project
    cost = 10.0
    noop_safe = False  # its keys ask a container runtime (or KVM) what is there

    def key_extra(self, options: ExeOptions, project_root: Path) -> dict[str, JSON]:
        """The project files `datas` bundles: the only sources this tier reads directly."""
        found: dict[str, str] = {}
        for item in getattr(options, "datas", []):
            for match in sorted(project_root.glob(item.partition(":")[0])):
                files = sorted(match.rglob("*")) if match.is_dir() else [match]
                for file in (f for f in files if f.is_file()):
                    found[file.relative_to(project_root).as_posix()] = file_digest(file)
        return {"datas": found} if found else {}

    def tools_for(self, options: ExeOptions) -> tuple[Tool, ...]:
        """What a build runs (runc only verifies: it must not key the build)."""
        return tuple(tool for tool in self.tools if tool is not runc.RUNC)

    def verify_environment(self, options: ExeOptions) -> dict[str, JSON]:
        """What the in-image check would run on here: a verdict without it (or with runc) is not
        replayed once a daemon answers, nor a Docker one where only runc is left."""
        env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}  # what ctx.env has
        return {"container_runtime": container.runtime(env)[0]}

    def skip(self, project: Project, app: App, options: ExeOptions) -> str | None:
        return None if app.entry else "a library: a frozen executable needs a console script"

    def build(self, ctx: BuildContext[ExeOptions]) -> Artifact:
        options = ctx.options
        script, entry = ctx.app.script, ctx.app.entry
        if not entry:
            raise BuildFailed(
                f"exe: {ctx.project.name} is a library (it has no console script), and a frozen "
                "executable needs an app to run: add a [project.scripts] entry or set [app] "
                "entry = \"package.module:function\" in gradient.toml; ship a library with the "
                "wheel or pex tier")
        name = safe_name(script or ctx.project.import_name)
        scripts = {safe_name(k): v for k, v in ctx.project.scripts.items()
                   if options.scripts == "all"}
        scripts[name] = entry
        wheel = ctx.inputs["wheel"]
        wheelhouses = sorted({p.parent for p in wheel.of_role("dependency")})
        python = build_env(ctx, wheel.path, wheelhouses)
        main = entry_script(ctx.work / "entry" / "gradient_entry.py", entry, scripts)
        cmd: list[str | Path] = [
            python, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
            f"--{options.mode}", "--name", name, "--distpath", ctx.work / "dist",
            "--workpath", ctx.work / "build", "--specpath", ctx.work / "spec"]
        for package in dict.fromkeys([*wheel_packages(wheel.path), *options.collect_data]):
            cmd += ["--collect-data", package]
        # every installed distribution's metadata: importlib.metadata works in the frozen app,
        # and the SBOM reads from the executable itself what it bundles
        for dist in dict.fromkeys([ctx.project.name, *installed_dists(python),
                                   *options.copy_metadata]):
            cmd += ["--copy-metadata", dist]
        for module in options.hidden_imports:
            cmd += ["--hidden-import", module]
        for package in options.collect_submodules:
            cmd += ["--collect-submodules", package]
        for pair in resolve_datas(ctx, options.datas):
            cmd += ["--add-data", pair]
        for module in options.excludes:
            cmd += ["--exclude-module", module]
        if options.strip:
            cmd.append("--strip")
        with pyinstaller_cache(ctx):
            ctx.run([*cmd, main], cwd=ctx.work, what=f"pyinstaller --{options.mode}")
        others = sorted(set(scripts) - {name})
        if options.mode == "onefile":
            return self._onefile(ctx, name, others)
        return self._onedir(ctx, name, others)

    def _onefile(self, ctx: BuildContext[ExeOptions], name: str, others: list[str]) -> Artifact:
        """The executable, and a copy of it under each other script's name (role "script")."""
        built = ctx.work / "dist" / name
        target = ctx.out / name
        shutil.move(built, target)
        target.chmod(0o755)
        for other in others:
            shutil.copy2(target, ctx.out / other)
        floor = glibc_floor([target, *unpack_binaries(target, ctx.work / "unpacked")])
        _check_floor(floor, name)
        return Artifact(self.name, ctx.out, name, dict.fromkeys(others, "script"),
                        {"mode": "onefile", "glibc_floor": floor, "entry": name,
                         "scripts": sorted([name, *others])})

    def _onedir(self, ctx: BuildContext[ExeOptions], name: str, others: list[str]) -> Artifact:
        """The folder as a tarball; each other script is a relative symlink to the launcher
        beside it (the bootloader resolves it and finds _internal/ next to the real file)."""
        folder = ctx.work / "dist" / name
        for other in others:
            (folder / other).symlink_to(name)
        top = f"{name}-{ctx.project.version}"
        tar = ctx.out / f"{top}-onedir.tar.gz"
        epoch = int(ctx.env.get("SOURCE_DATE_EPOCH", "0"))
        write_tar(tar, [(top, folder), *tree_entries(folder, prefix=f"{top}/")], epoch)
        floor = glibc_floor(elf_files(folder))
        _check_floor(floor, name)
        return Artifact(self.name, ctx.out, tar.name, {},
                        {"mode": "onedir", "top": top, "launcher": name, "glibc_floor": floor,
                         "scripts": sorted([name, *others])})

    def inventory(self, artifact: Artifact) -> list[Component]:
        """The interpreter, shared libraries and bundled metadata PyInstaller's archive holds."""
        from .inventory import components

        return components(artifact)

    def verify(self, ctx: VerifyContext[ExeOptions], artifact: Artifact) -> Verdict:
        smoke = ctx.smoke
        note: dict[str, Any] = {}
        if not smoke.runs_app:
            smoke = dataclasses.replace(smoke, code=None, args=["--help"], expect=None)
            note["note"] = "a Python-code smoke cannot run in a frozen executable: ran --help"
        box = ctx.sandbox.fresh_dir("gradient-verify-exe-")
        app, home, tmp, empty, run = (box / d for d in ("app", "home", "tmp", "path", "run"))
        for directory in (app, home, tmp, empty, run):
            directory.mkdir()
        if artifact.text(Meta.MODE) == "onedir":
            safe_extract(artifact.path, app)
            payload = app / artifact.need(Meta.TOP)
            launcher = payload / artifact.need(Meta.LAUNCHER)
            scripts = [payload / n for n in artifact.texts(Meta.SCRIPTS)]
            inside = f"/app/{artifact.need(Meta.TOP)}/{artifact.need(Meta.LAUNCHER)}"
            bundle = payload
            elves = elf_files(payload)
        else:
            payload = launcher = app / artifact.primary
            shutil.copyfile(artifact.path, launcher)
            launcher.chmod(0o755)
            scripts = []
            for other in artifact.texts(Meta.SCRIPTS):
                if other != artifact.primary:
                    shutil.copyfile(artifact.root / other, app / other)
                    (app / other).chmod(0o755)
                scripts.append(app / other)
            inside = f"/app/{artifact.primary}"
            bundle = box / "unpacked"
            elves = [launcher, *unpack_binaries(launcher, bundle)]
        env = {"PATH": str(empty), "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
        result = ctx.sandbox.run([launcher, *smoke.args], cwd=run, env=env,
                                 timeout=smoke.timeout)
        verdict = smoke.judge(result, extra={**note, "python_on_path": "none"})
        if not verdict.ok:
            return _explain(verdict, result.output)
        default_help = ctx.smoke.default
        checked = _every_script(ctx, scripts, default_help, run, env)
        if not checked.ok:
            return _explain(checked, checked.output)
        verdict.extra["scripts"] = checked.extra["scripts"]
        return self._in_container(ctx, smoke, verdict, payload, [inside, *smoke.args],
                                  (elves, bundle), box)

    def _in_container(self, ctx: VerifyContext[ExeOptions], smoke: Smoke, verdict: Verdict,
                      payload: Path, command: list[str], elves: tuple[list[Path], Path],
                      box: Path) -> Verdict:
        """Run again inside a root with only the C library: in Docker when a daemon answers,
        else with runc; with neither the primary run stands and the verdict says why."""
        env = container.docker_env(ctx.env, box / "home")
        runtime, why = container.runtime(env)
        if runtime is None:
            verdict.extra["container"] = f"not available: {why}"
            return verdict
        libs = container.host_libraries(*elves)
        if not any(p.name.startswith("ld-linux") for p in libs):
            verdict.extra["container"] = ("not available: no dynamic loader (PT_INTERP) found "
                                          "for the executable")
            return verdict
        if runtime == "runc":
            result, create = runc.run_in_bundle(ctx.sandbox, libs, payload, command, box,
                                                smoke.timeout)
            return _container_verdict(smoke, verdict, result, create, "runc", {})
        tag, why = container.base_image(ctx.sandbox, env, ctx.tool_cache("exe-base"),
                                        libs, box)
        if tag is None:
            failed = Verdict(False, verdict.command, None, verdict.seconds, why,
                             {"container": "failed"}, problem=f"no base image: {why}")
            return failed
        result, create = container.run_in_container(ctx.sandbox, env, tag, payload, command, box,
                                                    smoke.timeout)
        return _container_verdict(smoke, verdict, result, create, "docker",
                                  {"container_image": tag})


def _container_verdict(smoke: Smoke, verdict: Verdict, result: Result, create: list[str],
                       runtime: str, more: dict[str, Any]) -> Verdict:
    """The primary verdict with the in-image run recorded, or the in-image run's failure."""
    inner = smoke.judge(result)
    if not inner.ok:
        inner.extra.update(container="failed", container_runtime=runtime, **more)
        inner.problem = ("in a container with no Python (only the C library): "
                                  + (inner.problem or "failed"))
        return _explain(inner, result.output)
    verdict.extra.update(container="verified", container_runtime=runtime,
                         container_command=create, container_seconds=round(result.seconds, 3),
                         **more)
    return verdict


def _check_floor(floor: str | None, name: str) -> None:
    """On a glibc system every PyInstaller bootloader needs some GLIBC version: none found
    means the reading went wrong (on musl there is no glibc floor to find)."""
    if floor is None and os.confstr_names.get("CS_GNU_LIBC_VERSION") is not None and (
            os.confstr("CS_GNU_LIBC_VERSION")):
        raise BuildFailed(f"exe: could not read the glibc versions {name} needs")


def _every_script(ctx: VerifyContext[ExeOptions], scripts: list[Path], default_help: bool,
                  run: Path, env: dict[str, str]) -> Verdict:
    """Each shipped script must start: it imports its entry point and exits before calling it
    (GRADIENT_ENTRY_CHECK=1), and with the default [verify] it must also answer `--help`
    with exit 0. Only the main script runs the configured smoke: other scripts' CLIs are
    unknown."""
    ran: list[dict[str, Any]] = []
    started = Smoke(None, None, timeout=ctx.smoke.timeout)
    for script in scripts:
        checks: list[tuple[str, list[str], dict[str, str]]] = [
            ("entry check", [], {**env, "GRADIENT_ENTRY_CHECK": "1"})]
        if default_help:
            checks.append(("--help", ["--help"], env))
        for what, args, run_env in checks:
            result = ctx.sandbox.run([script, *args], cwd=run, env=run_env,
                                     timeout=ctx.smoke.timeout)
            ran.append({"script": script.name, "check": what, "exit_code": result.exit_code})
            if result.exit_code != 0:
                failed = started.judge(result, extra={"scripts": ran})
                failed.problem = (f"script {script.name} ({what}): "
                                           + failed.problem)
                return failed
    return Verdict(True, [], 0, 0.0, "", {"scripts": ran})


def _explain(verdict: Verdict, output: str) -> Verdict:
    """Name the usual causes of a frozen app failing: a module the analysis could not see,
    or the builtin exit()/quit(), which `site` provides and a frozen app never imports."""
    missing = MISSING_MODULE.search(output)
    if missing:
        verdict.problem = (
            f"{verdict.extra.get('problem', 'failed')}: module {missing.group(1)!r} is not in "
            "the bundle (imported by name?): add it to [tiers.exe] hidden_imports, or its "
            "package to collect_submodules")
    builtin = NO_SITE_BUILTIN.search(output)
    if builtin:
        verdict.problem = (
            f"{verdict.extra.get('problem', 'failed')}: the app calls the builtin "
            f"{builtin.group(1)}(), which only the site module provides, and a frozen "
            "(PyInstaller) app has no site builtins: call sys.exit() instead (it works in "
            "every tier)")
    return verdict
