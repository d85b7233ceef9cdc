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

from .errors import ToolMissing
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


def runtime_requirements(requires: list[str]) -> list[str]:
    """The requirements that apply without extras on this interpreter."""
    from packaging.requirements import InvalidRequirement, Requirement  # ~10 ms: at use

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
    """Wheels for `requirements` and everything they need, downloaded or built into `dest`.

    Nothing runs when the requirements need nothing (a wheel without runtime dependencies).
    With uv the set is resolved by `uv pip compile`; wheels gradient fetched before come
    from its wheel store (under pip's cache dir), and pip fetches only the rest, unresolved
    (`--no-deps`). Without uv, or when uv cannot resolve, `pip wheel` does it all."""
    dest.mkdir(parents=True, exist_ok=True)
    wanted = [r for r in requirements if not (isinstance(r, Path) and r.suffix == ".whl"
                                             and not runtime_requirements(wheel_requires(r)))]
    if not wanted:
        return []
    if importlib.util.find_spec("pip") is None:  # else the tool's output: "No module named pip"
        raise ToolMissing(f"{run.tier}: pip is not installed for {sys.executable}: {PIP.get}")
    pins = _uv_pins(run, requirements, dest) if uv_path() else None
    if pins is None:
        run([sys.executable, "-m", "pip", "wheel", "--wheel-dir", dest, "--prefer-binary",
             "--find-links", dest, *requirements], what="pip wheel (wheelhouse)")
    else:
        store = Path(run.env["PIP_CACHE_DIR"]) / "gradient-wheels" if run.env.get(
            "PIP_CACHE_DIR") else None
        missing = [pin for pin in pins if not (store and _link_stored(store, pin, dest))]
        if missing:
            run([sys.executable, "-m", "pip", "wheel", "--wheel-dir", dest, "--prefer-binary",
                 "--no-deps", *missing], what="pip wheel --no-deps (wheelhouse)")
            if store is not None:
                _keep(dest, store)
    if exclude is not None:
        (dest / exclude.name).unlink(missing_ok=True)
    return sorted(dest.glob("*.whl"))


def wheel_requires(wheel: Path) -> list[str]:
    """A wheel's Requires-Dist lines, read from its METADATA."""
    from email.parser import HeaderParser

    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.count("/") == 1
                     and n.endswith(".dist-info/METADATA")), None)
        if name is None:
            return []
        meta = HeaderParser().parsestr(zf.read(name).decode("utf-8", errors="replace"))
    return [str(r) for r in meta.get_all("Requires-Dist") or []]


def _uv_pins(run: Runner, requirements: list[str | Path], work: Path) -> list[str] | None:
    """`name==version` of everything `requirements` need (local wheels left out), resolved
    by uv for this interpreter; None when uv cannot resolve (pip then does it all)."""
    listing = work.parent / f".{work.name}-requirements.in"
    listing.write_text("".join(f"{r}\n" for r in requirements))
    compile_ = [uv_path() or "uv", "pip", "compile", "--quiet", "--no-header", "--no-annotate",
                "--python", sys.executable, listing]
    try:  # from uv's cache first (~20 ms), from the index only when that cannot resolve
        done = run([*compile_, "--offline"], check=False, what="uv pip compile (wheelhouse)")
        if done.returncode != 0:
            done = run(compile_, check=False, what="uv pip compile (wheelhouse, online)")
    finally:
        listing.unlink(missing_ok=True)
    if done.returncode != 0:
        return None
    pins = [line.split(";")[0].strip() for line in done.stdout.splitlines()]
    return [p for p in pins if "==" in p and " @ " not in p and not p.startswith("#")]


def _link_stored(store: Path, pin: str, dest: Path) -> bool:
    """Hard-link (or copy) a stored wheel matching `pin` for this interpreter into `dest`."""
    from packaging.tags import sys_tags
    from packaging.utils import canonicalize_name, parse_wheel_filename

    name, _, version = pin.partition("==")
    supported = list(sys_tags())
    candidates = []
    for wheel in store.glob(f"{canonicalize_name(name).replace('-', '_')}-*.whl"):
        try:
            _, ver, _, tags = parse_wheel_filename(wheel.name)
        except ValueError:
            continue
        if str(ver) == version and not tags.isdisjoint(supported):
            candidates.append((min(supported.index(t) for t in tags if t in supported), wheel))
    if not candidates:
        return False
    best = min(candidates)[1]
    _link(best, dest / best.name)
    return True


def _keep(dest: Path, store: Path) -> None:
    """Put a wheelhouse's wheels in the store, under their normalized names."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    store.mkdir(parents=True, exist_ok=True)
    for wheel in dest.glob("*.whl"):
        dist = canonicalize_name(parse_wheel_filename(wheel.name)[0]).replace("-", "_")
        kept = store / f"{dist}-{wheel.name.split('-', 1)[1]}"
        if not kept.exists():
            _link(wheel, kept)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileExistsError:
        pass
    except OSError:
        shutil.copy2(source, target)


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
    from packaging.utils import parse_wheel_filename

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
