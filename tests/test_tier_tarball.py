"""The tarball tier, built from the real wheelhouse with pip --target, unpacked and run the way
a user would: through a symlink to its launcher, under `env -i`, with nothing from the build.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry, copy_example, reseal, run_gradient, sha256
from scripted_app import SCRIPTS, scripted_app

GREETING = "hello, gradient! (from hello-app 0.1.0)"
TARBALL = "dist/gradient/tarball/hello-app-0.1.0.tar.gz"
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def unpack(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")
    return dest


def env_i(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A real `env -i`: no PATH, HOME or LANG from this session."""
    return subprocess.run(["env", "-i", *cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """hello-app's tarball, built and verified once for the module's tests."""
    base = tmp_path_factory.mktemp("tarball")
    project = copy_example(base, "hello-app")
    cache = base / "cache-a"
    result = run_gradient(project, "build", "--tier", "tarball", cache_dir=cache)
    return {"project": project, "result": result, "cache": cache, "base": base}


def test_tarball_app_is_built_verified_and_keeps_its_contract(built: dict[str, Any]) -> None:
    project = built["project"]
    assert built["result"].returncode == 0, built["result"].stderr
    entry = artifact_entry(project, "tarball")
    assert entry["path"] == TARBALL and entry["verified"]
    verify = entry["verify"]
    assert GREETING in verify["output"]
    assert verify["symlink"]["exit_code"] == 0
    assert str(project) in verify["hidden"] and str(built["cache"]) in verify["hidden"]
    assert {k: entry[k] for k in ("top", "launcher", "lib", "python", "python_version")} == {
        "top": "hello-app-0.1.0", "launcher": "bin/hello", "lib": "lib", "python": "python3",
        "python_version": VERSION}
    with tarfile.open(project / TARBALL) as tar:
        members = tar.getmembers()
    assert {m.name.split("/")[0] for m in members} == {"hello-app-0.1.0"}
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert len({m.mtime for m in members}) == 1
    assert (project / TARBALL).read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    # what the installer leaves of the build machine is gone (uv's or pip's)
    traces = [m.name for m in members if m.name.rsplit("/", 1)[-1] in (
        ".lock", "uv_cache.json", "direct_url.json") or "__pycache__" in m.name]
    assert traces == [], traces


def test_tarball_names_no_build_path(built: dict[str, Any], tmp_path: Path) -> None:
    project = built["project"]
    assert built["result"].returncode == 0, built["result"].stderr
    tree = unpack(project / TARBALL, tmp_path / "x") / "hello-app-0.1.0"
    files = [p for p in tree.rglob("*") if p.is_file()]
    assert {p.relative_to(tree).as_posix() for p in files} >= {
        "bin/hello", "lib/hello_app/cli.py", "lib/hello_app/data/greeting.txt",
        "lib/attrs/__init__.py", "lib/attr/_make.py"}
    needles = [str(built["cache"]), str(project), str(built["base"]), "/tmp/gradient-",
               sys.prefix, "__pycache__"]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, (path, needle)
    names = [p.relative_to(tree).as_posix() for p in tree.rglob("*")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.endswith("direct_url.json") or n.startswith("lib/bin")]
    record = (tree / "lib/hello_app-0.1.0.dist-info/RECORD").read_text()
    assert "direct_url.json" not in record and "bin/hello" not in record
    listed = {line.split(",")[0] for line in record.splitlines()}
    assert all((tree / "lib" / rel).is_file() for rel in listed)


def test_launcher_runs_through_a_symlink_under_env_i(built: dict[str, Any],
                                                     tmp_path: Path) -> None:
    project = built["project"]
    assert built["result"].returncode == 0, built["result"].stderr
    tree = unpack(project / TARBALL, tmp_path / "opt") / "hello-app-0.1.0"
    launcher = tree / "bin/hello"
    assert launcher.read_text().startswith("#!/bin/sh\n")
    bindir = tmp_path / "usr-local-bin"
    bindir.mkdir()
    (bindir / "hello").symlink_to(os.path.relpath(launcher, bindir))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = env_i([str(bindir / "hello"), "gradient"], elsewhere)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == GREETING
    direct = env_i(["sh", "hello", "--version"], tree / "bin")
    assert direct.stdout.strip() == "hello-app 0.1.0", direct.stderr


def test_tarball_is_byte_reproducible_across_caches(built: dict[str, Any]) -> None:
    project = built["project"]
    assert built["result"].returncode == 0, built["result"].stderr
    first = sha256(project / TARBALL)
    again = run_gradient(project, "build", "--tier", "tarball",
                         cache_dir=built["base"] / "cache-b")
    assert again.returncode == 0, again.stderr
    assert artifact_entry(project, "tarball")["cached"] is False
    assert sha256(project / TARBALL) == first


def test_compiled_library_tarball(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "compiled-ext")
    result = run_gradient(project, "build", "--tier", "tarball", cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "tarball")
    assert entry["verified"] and "sum ok" in entry["verify"]["output"]
    assert entry["launcher"] is None and entry["top"] == "fastsum-0.3.0"
    tree = unpack(project / "dist/gradient/tarball/fastsum-0.3.0.tar.gz", tmp_path / "x")
    lib = tree / "fastsum-0.3.0/lib"
    assert list(lib.glob("fastsum/_speedups.cpython-*.so"))
    assert not (tree / "fastsum-0.3.0/bin").exists()
    code = (f"import sys; sys.path.insert(0, {str(lib)!r}); import fastsum; "
            "print(fastsum.total([2, 40]))")
    run = env_i(["python3", "-I", "-S", "-c", code], tmp_path)
    assert run.stdout.strip() == "42", run.stderr


def other_python() -> str | None:
    """A CPython of another minor version on this machine, if there is one."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(8, 15)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*")))
    for candidate in filter(None, candidates):
        if not re.fullmatch(r"python3\.\d+", Path(candidate).name):
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[1])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() != str(sys.version_info[1]):
            return candidate
    return None


def test_interpreter_version_mismatch_is_caught(tmp_path: Path, cache_dir: Path) -> None:
    """Compiled extensions for 3.X and a launcher python of 3.Y: verify fails, saying why."""
    python = other_python()
    if python is None:
        pytest.skip("needs a CPython of another minor version on this machine")
    cli = 'import fastsum\n\ndef main():\n    print("total", fastsum.total(range(5)))\n'
    project = copy_example(tmp_path, "compiled-ext",
                           f'[verify]\nargs = []\nexpect = "total 10"\n'
                           f'[tiers.tarball]\npython = "{python}"\n')
    (project / "src/fastsum/cli.py").write_text(cli)
    with (project / "setup.cfg").open("a") as cfg:
        cfg.write("\n[options.entry_points]\nconsole_scripts =\n    fastsum = fastsum.cli:main\n")
    bad = run_gradient(project, "build", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert bad.returncode == 1
    failures = json.loads(bad.stdout)["failures"]
    assert list(failures) == ["tarball"]
    assert f"built for cpython-{VERSION.replace('.', '')} (Python {VERSION})" in (
        failures["tarball"]["detail"])
    assert not (project / "dist/gradient/tarball").exists()
    (project / "gradient.toml").write_text('[verify]\nargs = []\nexpect = "total 10"\n')
    good = run_gradient(project, "build", "--tier", "tarball", cache_dir=cache_dir)
    assert good.returncode == 0, good.stderr
    assert artifact_entry(project, "tarball")["launcher"] == "bin/fastsum"


def leaky_project(where: Path) -> Path:
    """An app that reads a file of its source tree through an absolute path."""
    project = where / "leaky-app"
    (project / "src/leaky_app").mkdir(parents=True)
    (project / "data.txt").write_text("secret sauce\n")
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "leaky-app"\nversion = "0.1.0"\n'
        '[project.scripts]\nleaky = "leaky_app:main"\n')
    (project / "gradient.toml").write_text('[verify]\nargs = []\nexpect = "sauce"\n')
    (project / "src/leaky_app/__init__.py").write_text(
        f"DATA = {str(project / 'data.txt')!r}\n\n\ndef main():\n"
        "    print(open(DATA).read().strip())\n")
    return project


def test_build_paths_are_hidden_from_every_verification(tmp_path: Path, cache_dir: Path) -> None:
    """The source tree still exists on this machine, but no verification may lean on it: the
    wheel's smoke, the first to run the app, already fails, and nothing is promoted."""
    project = leaky_project(tmp_path)
    result = run_gradient(project, "build", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert list(data["failures"]) == ["wheel"]
    assert f"No such file or directory: '{project / 'data.txt'}'" in (
        data["failures"]["wheel"]["detail"])
    assert "tarball" in data["skipped"]
    assert not (project / "dist").exists()


def leak_into_tarball(project: Path, tmp_path: Path, cache_dir: Path, spell: str) -> Path:
    """Build hello-app's tarball, then rewrite it so its app reads a file of the source tree by
    absolute path, spelled literally or backwards (which no scan can see); returns that file."""
    built = run_gradient(project, "build", "--tier", "tarball", cache_dir=cache_dir)
    assert built.returncode == 0, built.stderr
    data = project / "data.txt"
    data.write_text("secret sauce\n")
    literal = repr(str(data)) if spell == "literal" else f"{str(data)[::-1]!r}[::-1]"
    tarball = project / TARBALL
    tree = unpack(tarball, tmp_path / f"tree-{spell}")
    cli = tree / "hello-app-0.1.0/lib/hello_app/cli.py"
    cli.write_text(cli.read_text().replace(
        "    print(Greeting(args.name).render())", f"    print(open({literal}).read().strip())"))
    tarball.unlink()  # a new file: the old one is a hard link into gradient's cache
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree / "hello-app-0.1.0", arcname="hello-app-0.1.0")
    naive = env_i([str(tree / "hello-app-0.1.0/bin/hello")], tmp_path)
    assert naive.stdout.strip() == "secret sauce", naive.stderr  # runs here, as built
    reseal(project, "tarball")
    return data


def test_a_tarball_naming_a_build_path_fails_verification(tmp_path: Path,
                                                          cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app")
    data = leak_into_tarball(project, tmp_path, cache_dir, "literal")
    result = run_gradient(project, "verify", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    verdict = json.loads(result.stdout)["tarball"]
    assert not verdict["verified"]
    assert "names a path of the build machine" in verdict["problem"]
    assert f"lib/hello_app/cli.py: {project}" in verdict["output"]
    assert data.exists()


def test_a_tarball_reaching_a_build_path_fails_verification(tmp_path: Path,
                                                            cache_dir: Path) -> None:
    """Spelled backwards the path escapes the scan; the run with build paths hidden fails."""
    project = copy_example(tmp_path, "hello-app")
    data = leak_into_tarball(project, tmp_path, cache_dir, "reversed")
    result = run_gradient(project, "verify", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    verdict = json.loads(result.stdout)["tarball"]
    assert not verdict["verified"]
    assert f"No such file or directory: '{data}'" in verdict["output"]


def test_tarball_scripts_have_site_builtins_and_every_script_ships(tmp_path: Path,
                                                                   cache_dir: Path) -> None:
    """The launchers start Python like a normal installation (site on, so `exit()` and
    `quit()` exist; the .pth the wheel installs works) but with the tree's lib ahead of the
    interpreter's site-packages; and each of the three console scripts has its launcher,
    each one checked by the verification (the default [verify] runs --help on all)."""
    project = scripted_app(tmp_path)
    result = run_gradient(project, "build", "--tier", "tarball", cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "tarball")
    assert entry["verified"]
    assert "exit-app: site=on lib-first=True pth=yes args=['--help']" in entry["verify"]["output"]
    assert entry["launcher"] == "bin/exit-app"
    assert entry["launchers"] == [f"bin/{name}" for name in SCRIPTS]
    checked = {(c["launcher"], c["check"]) for c in entry["verify"]["launchers"]}
    assert checked == {(f"bin/{n}", c) for n in SCRIPTS for c in ("entry check", "--help")}
    tree = unpack(project / "dist/gradient/tarball/exit-app-0.1.0.tar.gz", tmp_path / "x")
    bindir = tree / "exit-app-0.1.0/bin"
    assert sorted(p.name for p in bindir.iterdir()) == list(SCRIPTS)
    for name in SCRIPTS:
        run = env_i([str(bindir / name), "a b"], tmp_path)
        assert run.returncode == 0, (name, run.stderr)
        assert run.stdout == f"{name}: site=on lib-first=True pth=yes args=['a b']\n"
    # the system interpreter's own site-packages are still there, behind the tree's lib
    code = ("import sys, site; print([p for p in site.getsitepackages() if p in sys.path])")
    probe = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() != "[]"


def test_a_script_that_cannot_start_fails_the_tarball(tmp_path: Path, cache_dir: Path) -> None:
    """The main script runs its smoke fine, but another script names a function that does not
    exist: the wheel's smoke never runs it, the tarball's launcher check does."""
    project = scripted_app(tmp_path, '[app]\nscript = "exit-app"\n[verify]\nargs = ["x"]\n')
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '[project.scripts]\n', '[project.scripts]\nexit-app-broken = "exit_app.cli:nowhere"\n'))
    result = run_gradient(project, "build", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert result.returncode == 1, result.stdout
    failure = json.loads(result.stdout)["failures"]["tarball"]
    assert "bin/exit-app-broken (entry check)" in failure["message"]
    assert "cannot import name 'nowhere'" in failure["detail"]
    assert not (project / "dist/gradient/tarball").exists()
