"""The build graph and its cache: hits, misses explained by `plan`, concurrency, reproducibility,
and a third-party tier registered through the entry-point group like the built-in ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry, manifest, run_gradient

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def plan(gradient: Gradient, project: Path, *args: str, **kw: object) -> dict[str, dict[str, Any]]:
    result = gradient(project, "plan", "--json", *args, **kw)
    assert result.returncode == 0, result.stderr
    return {item["node"]: item for item in json.loads(result.stdout)["nodes"]}


def test_noop_rebuild_is_all_hits_and_edits_are_explained(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    project = example("hello-app")
    cache = tmp_path / "own-cache"
    assert gradient(project, "build", cache_dir=cache).returncode == 0
    assert {n: i["status"] for n, i in plan(gradient, project, cache_dir=cache).items()} == {
        "sdist": "hit", "wheel": "hit"}
    again = gradient(project, "build", cache_dir=cache)
    assert again.returncode == 0
    assert all(a["cached"] for a in manifest(project)["artifacts"])

    cli = project / "src/hello_app/cli.py"
    cli.write_text(cli.read_text() + "\n# a one-line change\n")
    items = plan(gradient, project, cache_dir=cache)
    assert items["wheel"]["status"] == "miss"
    assert "src/hello_app/cli.py changed" in items["wheel"]["reasons"]

    assert gradient(project, "build", cache_dir=cache).returncode == 0
    (project / "gradient.toml").write_text(
        (project / "gradient.toml").read_text() + '\n[tiers.wheel]\nfrontend = "build"\n')
    items = plan(gradient, project, cache_dir=cache)
    assert items["wheel"]["status"] == "miss"
    assert "[tiers] options changed: frontend" in items["wheel"]["reasons"]


def test_two_concurrent_builds_end_with_a_valid_manifest(
        example: Callable[..., Path], tmp_path: Path) -> None:
    project = example("hello-app")
    cache = tmp_path / "shared-cache"
    env = {**os.environ, "GRADIENT_CACHE_DIR": str(cache)}
    env.pop("CI", None)
    gradient_cmd = str(Path(sys.executable).parent / "gradient")
    procs = [subprocess.Popen([gradient_cmd, "build"], cwd=project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    data = manifest(project)
    assert {a["tier"] for a in data["artifacts"] if a["role"] == "artifact"} == {"sdist", "wheel"}
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=project / "dist/gradient",
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    leftovers = [p.name for p in (project / "dist/gradient").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_check_reproducible_passes_for_sdist_and_wheel(example: Callable[..., Path],
                                                       gradient: Gradient) -> None:
    project = example("hello-app")
    result = gradient(project, "build", "--check-reproducible", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sdist"]["identical"] and data["wheel"]["identical"]
    assert not (project / "dist").exists()


def test_check_reproducible_catches_a_build_that_writes_the_time(
        tmp_path: Path, gradient: Gradient) -> None:
    project = tmp_path / "stamped"
    (project / "stamped").mkdir(parents=True)
    (project / "stamped/__init__.py").write_text("from ._stamp import BUILT\n")
    (project / "setup.py").write_text(textwrap.dedent("""\
        import time
        from setuptools import setup
        with open("stamped/_stamp.py", "w") as f:
            f.write(f"BUILT = {time.time_ns()}\\n")
        setup(name="stamped", version="1.0", packages=["stamped"])
        """))
    (project / "gradient.toml").write_text('tier = "wheel"\n')
    result = gradient(project, "build", "--check-reproducible", "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert not data["wheel"]["identical"]
    assert "stamped/_stamp.py" in data["wheel"]["difference"]


THIRD_PARTY = '''
"""A tier from another distribution: registered through the same entry-point group."""
import shutil
import sys
from dataclasses import dataclass

from gradient_build.backend import Artifact, Backend, Fact, Tool, doc


@dataclass
class ZipappOptions:
    compress: bool = doc("compress the archive", False)


class ZipappBackend(Backend):
    name = "zipapp"
    rank = 45
    artifact = ".pyz"
    target = "a Python interpreter"
    consumes = ("wheel",)
    tools = (Tool("fakezip", "put fakezip on PATH", command="fakezip"),)
    Options = ZipappOptions
    facts = (Fact("runs_pyz", "runs .pyz files", "runs no .pyz files", True),)
    needs = frozenset({"runs_pyz"})

    def build(self, ctx):
        import zipapp, zipfile
        tree = ctx.work / "tree"
        with zipfile.ZipFile(ctx.inputs["wheel"].path) as zf:
            zf.extractall(tree)
        for dep in ctx.inputs["wheel"].of_role("dependency"):
            with zipfile.ZipFile(dep) as zf:
                zf.extractall(tree)
        target = ctx.out / f"{ctx.project.name}.pyz"
        zipapp.create_archive(tree, target, interpreter="/usr/bin/env python3", main=ctx.app.entry,
                              compressed=ctx.options.compress)
        return Artifact(self.name, ctx.out, target.name)

    def verify(self, ctx, artifact):
        place = ctx.sandbox.fresh_dir()
        shutil.copy2(artifact.path, place / "app.pyz")
        result = ctx.sandbox.run([sys.executable, "-I", str(place / "app.pyz"), *ctx.smoke.args],
                                 cwd=place, env={"PATH": "/usr/bin:/bin"})
        return ctx.smoke.judge(result)
'''


@pytest.fixture
def third_party(tmp_path: Path) -> dict[str, str]:
    """Install a tiny plugin distribution into a --target dir and a `fakezip` tool on PATH."""
    src = tmp_path / "plugin-src"
    (src / "gradient_zipapp").mkdir(parents=True)
    (src / "gradient_zipapp/__init__.py").write_text(THIRD_PARTY)
    (src / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gradient-zipapp"
        version = "1.0"
        [project.entry-points."gradient_build.backends"]
        zipapp = "gradient_zipapp:ZipappBackend"
        """))
    target = tmp_path / "plugin-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(src)], check=True, capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "fakezip"
    tool.write_text("#!/bin/sh\necho fakezip 1.0\n")
    tool.chmod(0o755)
    return {"PYTHONPATH": str(target), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_third_party_tier_registers_builds_and_tool_versions_key_the_cache(
        example: Callable[..., Path], tmp_path: Path, third_party: dict[str, str]) -> None:
    project = example("hello-app", toml='tier = "zipapp"\n[target]\nruns_pyz = true\n'
                                        '[verify]\nargs = ["plugin"]\n'
                                        'expect = "hello, plugin!"\n')
    cache = tmp_path / "plugin-cache"
    tiers = run_gradient(project, "tiers", "--json", cache_dir=cache, env=third_party)
    assert "zipapp" in [row["tier"] for row in json.loads(tiers.stdout)]
    built = run_gradient(project, "build", cache_dir=cache, env=third_party)
    assert built.returncode == 0, built.stderr
    assert artifact_entry(project, "zipapp")["verified"]
    assert artifact_entry(project, "wheel")["verified"]
    tool = Path(third_party["PATH"].split(":")[0]) / "fakezip"
    tool.write_text("#!/bin/sh\necho fakezip 2.0.1\n")  # an upgraded tool
    result = run_gradient(project, "plan", "--json", cache_dir=cache, env=third_party)
    items = {i["node"]: i for i in json.loads(result.stdout)["nodes"]}
    assert items["wheel"]["status"] == "hit"
    assert items["zipapp"]["status"] == "miss"
    assert "fakezip fakezip 1.0 -> fakezip 2.0.1" in items["zipapp"]["reasons"]
    missing_tool = {**third_party, "PATH": "/usr/bin:/bin"}
    result = run_gradient(project, "build", cache_dir=cache, env=missing_tool)
    assert result.returncode == 3
    assert "fakezip: put fakezip on PATH" in result.stderr


def test_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    from gradient_build.backend import Artifact
    from gradient_build.cache import Cache, parse_size

    cache = Cache(tmp_path / "cache")
    for n, key in enumerate(("a" * 64, "b" * 64, "c" * 64)):
        out = tmp_path / f"out-{n}"
        out.mkdir()
        (out / "blob").write_bytes(bytes(1000))
        cache.store(key, Artifact("t", out, "blob"), {"n": n})
        os.utime(cache._entry_dir(key), (1000 + n, 1000 + n))
    assert cache.lookup("a" * 64) is not None  # using an entry makes it recent
    entry = sum(f.stat().st_size for f in cache._entry_dir("c" * 64).rglob("*") if f.is_file())
    removed = cache.prune(2 * entry + 100)
    assert removed == 1
    assert cache.lookup("b" * 64) is None
    assert cache.lookup("a" * 64) is not None and cache.lookup("c" * 64) is not None
    assert parse_size("1.5G") == 3 << 29 and parse_size("500M") == 500 << 20
    with pytest.raises(ValueError):
        parse_size("lots")


def test_an_installed_wheel_finds_every_backend(tmp_path: Path) -> None:
    """Not only the editable install: gradient-build's own wheel carries and registers each
    tier."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "dist"
    subprocess.run([str(Path(sys.executable).parent / "uv"), "build", "--wheel", "--out-dir",
                    str(out), "--python", sys.executable, str(root)], check=True,
                   capture_output=True)
    (wheel,) = out.glob("gradient_build-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--isolated", "--no-deps",
                    "--target", str(site), str(wheel)], check=True, capture_output=True)
    probe = ("import json, gradient_build, gradient_backends.pex as p\n"
             "from gradient_build.registry import discover\n"
             "found, broken = discover()\n"
             "print(json.dumps([sorted(found), broken, gradient_build.__file__, p.__file__]))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    tiers, broken, core_file, pex_file = json.loads(ran.stdout)
    assert tiers == sorted(["copy", "sdist", "wheel", "pex", "tarball", "exe", "conda", "oci",
                            "vm", "mpy", "deb", "rpm"])
    assert broken == {}
    assert core_file.startswith(str(site)) and pex_file.startswith(str(site))


def test_consumers_key_on_what_they_consume_not_on_the_sources(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    """A file no wheel ships rebuilds the wheel, which comes out byte-identical, so the
    tarball made from it is a hit: nodes are keyed by the digests of their inputs."""
    project = example("hello-app")
    git = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=project, env=git, check=True)
    cache = tmp_path / "content-cache"
    assert gradient(project, "build", "--tier", "tarball", cache_dir=cache).returncode == 0
    (project / "NOTES.txt").write_text("not shipped in the wheel\n")
    result = gradient(project, "build", "--tier", "tarball", cache_dir=cache)
    assert result.returncode == 0, result.stderr
    assert "wheel    building (NOTES.txt added)" in result.stderr
    cached = {a["tier"]: a["cached"] for a in manifest(project)["artifacts"]
              if a["role"] == "artifact"}
    assert cached == {"wheel": False, "tarball": True}


def test_two_distributions_claiming_one_tier_is_an_error_naming_both(
        example: Callable[..., Path], tmp_path: Path) -> None:
    src = tmp_path / "clone-src"
    (src / "gradient_wheel_clone").mkdir(parents=True)
    (src / "gradient_wheel_clone/__init__.py").write_text(
        "from gradient_backends.wheel import WheelBackend\n\n\nclass Clone(WheelBackend):\n"
        "    pass\n")
    (src / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gradient-wheel-clone"
        version = "2.0"
        [project.entry-points."gradient_build.backends"]
        wheel = "gradient_wheel_clone:Clone"
        """))
    target = tmp_path / "clone-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(src)], check=True, capture_output=True)
    env = {"PYTHONPATH": str(target)}
    project = example("hello-app", toml='tier = "wheel"\n')
    rows = json.loads(run_gradient(project, "tiers", "--json", cache_dir=tmp_path / "c",
                                   env=env).stdout)
    wheel = next(r for r in rows if r["tier"] == "wheel")
    assert "gradient-wheel-clone 2.0" in wheel["broken"]
    assert "gradient-build" in wheel["broken"]
    built = run_gradient(project, "build", cache_dir=tmp_path / "c", env=env)
    assert built.returncode == 2
    assert "two backends register tier 'wheel'" in built.stderr
