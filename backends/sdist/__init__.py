"""The sdist tier: a reproducible source distribution, proven complete by building a wheel."""

from __future__ import annotations

import sys
import tarfile
import tomllib
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gradient_build.backend import (
    App,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Project,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    GZIP_LEVEL,
    PIP,
    GzipLevel,
    fetch_wheelhouse,
    minimal_env,
    pep517_build,
    repack_tar_gz,
    runtime_requirements,
    stage,
    uv_path,
    verify_installed,
    wheel_top_level,
)

LEGACY_REQUIRES = ["setuptools>=40.8.0", "wheel"]


@dataclass
class SdistOptions:
    frontend: Literal["auto", "uv", "build"] = doc(
        "PEP 517 frontend: uv when present (auto), or pypa/build", "auto")
    gzip_level: GzipLevel = doc(
        "gzip level of the re-packed sdist: 6 (gzip's default) or 9 (setuptools' and "
        "hatchling's, ~4% smaller and several times slower on MBs of package data)", GZIP_LEVEL)


class SdistBackend(Backend[SdistOptions]):
    name = "sdist"
    rank = 20
    artifact = ".tar.gz source distribution"
    target = "Python, build tools, index access"
    tools = (
        Tool("build", "pip install build", dist="build"),
        Tool("uv", "pip install uv (optional: a faster frontend)", command="uv", dist="uv",
             required=False),
        PIP,  # the wheelhouse of build requirements is fetched with `python -m pip wheel`
    )
    needs = frozenset({"python", "downloads", "pure"})
    Options = SdistOptions
    ships_config = True  # the sdist holds gradient.toml itself

    def skip(self, project: Project, app: App, options: SdistOptions) -> str | None:
        return None if project.buildable else "the project has no pyproject.toml or setup.py"

    def build(self, ctx: BuildContext[SdistOptions]) -> Artifact:
        assert ctx.project.sources is not None
        if not ctx.project.buildable:
            raise BuildFailed("sdist: the project has no pyproject.toml or setup.py; "
                              "a single module ships with the copy tier")
        # the wheelhouse (uv resolving, a subprocess) fills while the sdist builds and
        # re-packs, from the [build-system] the sources declare: the built sdist's own
        # pyproject.toml says the same unless the backend rewrote it, and then it is
        # fetched again for what the sdist says
        runtime = runtime_requirements(ctx.project.requires)
        declared = _requires_of(_read_toml(ctx.project.root / "pyproject.toml"))
        house_dir = ctx.tool_cache("wheelhouse")
        with ThreadPoolExecutor(max_workers=1) as pool:
            house = pool.submit(fetch_wheelhouse, ctx.run, [*declared, *runtime], house_dir)
            # a cold build started this very sdist beside the metadata read (other CPU)
            built = ctx.project.take_sdist(ctx.options.frontend, ctx.work / "dist")
            if built is None:
                with ctx.source_copy() as src:
                    built = pep517_build(ctx.run, src, ctx.work / "dist", "sdist",
                                         ctx.options.frontend)
            target = ctx.out / built.name
            requires = build_requires(built)  # the same members as the re-packed one
            if requires != declared:
                wait([house])  # what it fetched stays; its failure is not this one's
                house = pool.submit(fetch_wheelhouse, ctx.run, [*requires, *runtime],
                                    house_dir)
            repack_tar_gz(built, target, int(ctx.env["SOURCE_DATE_EPOCH"]),
                          ctx.options.gzip_level)
            house.result()
        return Artifact(self.name, ctx.out, target.name, {}, {"build_requires": requires})

    def verify(self, ctx: VerifyContext[SdistOptions], artifact: Artifact) -> Verdict:
        where = ctx.sandbox.fresh_dir()
        links = stage(ctx.cache_dir / "tools" / "wheelhouse", where / "index")
        sdist = stage(artifact.path, where / "sdist")
        out = where / "wheel"
        uv = uv_path()
        env = minimal_env(UV_CACHE_DIR=str(where / "uv-cache"), UV_PYTHON_DOWNLOADS="never",
                          PIP_NO_INDEX="1", PIP_FIND_LINKS=str(links))
        if uv:
            cmd: list[str | Path] = [uv, "build", "--wheel", "--offline", "--no-index",
                                     "--find-links", links, "--python", sys.executable,
                                     "--out-dir", out, sdist]
        else:
            with tarfile.open(sdist) as tar:
                tar.extractall(where / "src", filter="data")
            (top,) = list((where / "src").iterdir())
            cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", out, top]
        result = ctx.sandbox.run(cmd, cwd=where, env=env, timeout=900)
        wheels = sorted(out.glob("*.whl"))
        if result.exit_code != 0 or not wheels:
            verdict = ctx.smoke.judge(result)
            verdict.problem = "building a wheel from the sdist failed"
            verdict.ok = False
            return verdict
        return verify_installed(ctx, wheels, [links], wheel_top_level(wheels[0]))


def build_requires(sdist: Path) -> list[str]:
    """[build-system] requires of the sdist's pyproject.toml (the legacy default without one)."""
    with tarfile.open(sdist) as tar:
        names = [m for m in tar.getmembers() if m.name.count("/") == 1
                 and m.name.endswith("/pyproject.toml")]
        if not names:
            return list(LEGACY_REQUIRES)
        handle = tar.extractfile(names[0])
        return _requires_of(tomllib.loads(handle.read().decode()) if handle else {})


def _read_toml(path: Path) -> dict[str, Any] | None:
    """A pyproject.toml's tables; None when there is none (or it does not parse: the build
    then says why)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def _requires_of(data: dict[str, Any] | None) -> list[str]:
    """[build-system] requires, or the legacy default a project without one builds with."""
    requires = (data or {}).get("build-system", {}).get("requires")
    return [str(r) for r in requires] if requires is not None else list(LEGACY_REQUIRES)
