"""Shared Python-packaging steps backends use: building with a PEP 517 frontend, wheelhouses,
fresh virtual environments. Core helpers, so backends share them without importing each other.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import parse_wheel_filename

from .errors import BuildFailed, ToolMissing
from .installer import installer
from .runner import Runner
from .sandbox import Result, Sandbox, minimal_env
from .smoke import command_in_env
from .tools import Tool, uv_path

if TYPE_CHECKING:
    from .backend import Verdict, VerifyContext

OptionsT = TypeVar("OptionsT")

PIP = Tool("pip", f"{sys.executable} -m ensurepip --upgrade (Debian: apt install python3-pip)",
           dist="pip")


def pep517_build(run: Runner, source: Path, out: Path, kind: str, frontend: str = "auto") -> Path:
    """Build a `kind` ("wheel" or "sdist") of `source` into `out` with uv or pypa/build."""
    uv = uv_path()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(run.env)
    for flags in ("CFLAGS", "CXXFLAGS"):  # compiled code must not record the temp build path
        env[flags] = f"{env.get(flags, '')} -ffile-prefix-map={source}=.".strip()
    if frontend == "uv" or (frontend == "auto" and uv):
        if not uv:
            raise BuildFailed("frontend = \"uv\" but uv is not installed (pip install uv)")
        run([uv, "build", f"--{kind}", "--out-dir", out, "--python", sys.executable, source],
            env=env, what=f"uv build --{kind}")
    else:
        installer = ["--installer", "uv"] if uv else []
        run([sys.executable, "-m", "build", f"--{kind}", "--outdir", out, *installer, source],
            env=env, what=f"python -m build --{kind}")
    suffix = ".whl" if kind == "wheel" else ".tar.gz"
    built = sorted(out.glob(f"*{suffix}"))
    if len(built) != 1:
        raise BuildFailed(f"expected one {suffix} from the build, found {len(built)}")
    return built[0]


def runtime_requirements(requires: list[str]) -> list[str]:
    """The requirements that apply without extras on this interpreter."""
    kept = []
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            kept.append(text)
    return kept


def fetch_wheelhouse(run: Runner, requirements: list[str | Path], dest: Path,
                     *, exclude: Path | None = None) -> list[Path]:
    """Wheels for `requirements` and everything they need, downloaded or built into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    if not requirements:
        return []
    if importlib.util.find_spec("pip") is None:  # else the tool's output: "No module named pip"
        raise ToolMissing(f"{run.tier}: pip is not installed for {sys.executable}: {PIP.get}")
    run([sys.executable, "-m", "pip", "wheel", "--wheel-dir", dest, "--prefer-binary",
         "--find-links", dest, *requirements], what="pip wheel (wheelhouse)")
    if exclude is not None:
        (dest / exclude.name).unlink(missing_ok=True)
    return sorted(dest.glob("*.whl"))


def fresh_venv(sandbox: Sandbox, where: Path, python: str = sys.executable) -> tuple[Path, Result]:
    """A new virtual environment at `where`; returns its python and how creating it went."""
    tool = installer()
    env = minimal_env(**tool.env(where.parent / "uv-cache"))
    result = sandbox.run(tool.venv(where, python), cwd=where.parent, env=env, timeout=300)
    return where / "bin" / "python", result


def offline_install(sandbox: Sandbox, python: Path, targets: list[Path],
                    find_links: list[Path]) -> Result:
    """Install `targets` into `python`'s environment from local wheels only, no index."""
    home = python.parent.parent.parent
    tool = installer()
    env = minimal_env(**tool.env(home / "uv-cache"))
    return sandbox.run(tool.install(python, targets, find_links), cwd=home, env=env, timeout=600)


def wheel_top_level(wheel: Path) -> list[str]:
    """Importable top-level names a wheel installs (from its file list)."""
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            first = name.split("/")[0]
            if first.endswith((".dist-info", ".data")) or first.startswith("_"):
                continue
            if "/" in name:
                names.add(first)
            elif name.endswith(".py"):
                names.add(name[:-3])
            elif ".cpython-" in name or name.endswith((".so", ".pyd")):
                names.add(name.split(".")[0])
    return sorted(n for n in names if n.isidentifier())


def wheel_is_pure_tag(wheel: Path) -> bool:
    _, _, _, tags = parse_wheel_filename(wheel.name)
    return all(t.abi == "none" and t.platform == "any" for t in tags)


def wheel_has_binaries(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return [n for n in zf.namelist() if n.endswith((".so", ".pyd", ".dylib"))]


def stage(path: Path, dest_dir: Path) -> Path:
    """A copy (hard-linked where possible) of a file, or a folder's files, inside `dest_dir`:
    verification reads its inputs from the sandbox, never from the build's cache."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for source in sources:
        try:
            os.link(source, dest_dir / source.name)
        except OSError:
            shutil.copy2(source, dest_dir / source.name)
    return dest_dir if path.is_dir() else dest_dir / path.name


def verify_installed(ctx: VerifyContext[OptionsT], targets: list[Path], find_links: list[Path],
                     modules: list[str]) -> Verdict:
    """Install into a fresh venv offline, then run the smoke from an empty directory."""
    where = ctx.sandbox.fresh_dir()
    targets = [stage(t, where / "inputs") for t in targets]
    find_links = [stage(p, where / f"links-{i}") for i, p in enumerate(find_links) if p.exists()]
    python, made = fresh_venv(ctx.sandbox, where / "venv")
    if made.exit_code != 0:
        return ctx.smoke.judge(made)
    installed = offline_install(ctx.sandbox, python, targets, find_links)
    if installed.exit_code != 0:
        verdict = ctx.smoke.judge(installed)
        verdict.problem = "offline install failed"
        return verdict
    empty = where / "run"
    empty.mkdir()
    cmd = command_in_env(ctx.smoke, str(python), str(python.parent),
                         modules or [ctx.project.import_name])
    result = ctx.sandbox.run(cmd, cwd=empty, env=minimal_env(), timeout=ctx.smoke.timeout)
    return ctx.smoke.judge(result)
