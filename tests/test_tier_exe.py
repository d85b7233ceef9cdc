"""The exe tier for real: PyInstaller freezes the examples, and the executables run with no
Python reachable (an empty PATH, `env -i`, another directory; in a container with only the
C library: Docker when a daemon answers, runc when none does)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EXAMPLES,
    IGNORED,
    artifact_entry,
    docker_available,
    manifest,
    run_gradient,
)
from elf_oracle import readelf_glibc
from gradient_backends.exe.freeze import unpack_binaries
from scripted_app import SCRIPTS, scripted_app

from gradient_build.elf import elf_files, glibc_versions, highest

pytestmark = pytest.mark.slow

Gradient = Callable[..., subprocess.CompletedProcess[str]]

PLUGIN_TOML = (EXAMPLES / "plugin-app" / "gradient.toml").read_text()
PLUGIN_TOML_WITHOUT_SUBMODULES = """\
tier = ["wheel", "exe"]

[app]
script = "plugin-app"

[verify]
args = ["shout", "gradient"]
expect = "[plugin-app 0.1.0] shout: GRADIENT!"
"""
PLUGIN_TOML_ONEDIR = PLUGIN_TOML_WITHOUT_SUBMODULES + """
[tiers.exe]
mode = "onedir"
hidden_imports = ["plugin_app.plugins.shout"]
datas = ["LICENSE:licenses"]
"""


def run_bare(exe: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`env -i` with PATH an empty directory: nothing from this machine's session."""
    empty = cwd / "empty-path"
    empty.mkdir(exist_ok=True)
    return subprocess.run(["env", "-i", f"PATH={empty}", str(exe), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def check_container_verdict(entry: dict[str, Any]) -> None:
    verdict = entry["verify"]
    assert verdict["container"] == "verified", verdict
    if docker_available():
        assert verdict["container_runtime"] == "docker"
        assert "--network" in verdict["container_command"]
    else:
        assert verdict["container_runtime"] == "runc"


def path_without(where: Path, *names: str) -> str:
    """A PATH with every command on this one except `names`."""
    farm = where / "path-without"
    farm.mkdir(exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name not in names and not (farm / name).exists():
                (farm / name).symlink_to(Path(directory) / name)
    return str(farm)


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """hello-app frozen once (onefile) through the real CLI, for the tests below."""
    project = tmp_path_factory.mktemp("exe") / "hello-app"
    shutil.copytree(EXAMPLES / "hello-app", project, ignore=IGNORED)
    proc = run_gradient(project, "build", "--tier", "exe", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project


def test_hello_onefile_runs_without_python(hello: Path, tmp_path: Path) -> None:
    entry = artifact_entry(hello, "exe")
    assert entry["path"] == "dist/gradient/exe/hello"
    assert entry["verified"] is True
    assert entry["mode"] == "onefile" and entry["entry"] == "hello"
    assert entry["verify"]["output"].strip() == "hello, gradient! (from hello-app 0.1.0)"
    assert re.fullmatch(r"2\.\d+(\.\d+)?", entry["glibc_floor"])
    host = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 99.0"
    assert highest([entry["glibc_floor"], host.split()[1]]) == host.split()[1]
    check_container_verdict(entry)

    # our own run: a copy elsewhere, env -i, an empty PATH, from another directory; the
    # greeting's template is package data read through importlib.resources
    exe = tmp_path / "bin" / "hello"
    exe.parent.mkdir()
    shutil.copy2(hello / entry["path"], exe)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_bare(exe, "gradient", cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "hello, gradient! (from hello-app 0.1.0)\n"


def test_in_image_check_runs_under_runc_without_a_daemon(hello: Path, tmp_path: Path,
                                                         cache_dir: Path) -> None:
    project = tmp_path / "hello-app"
    shutil.copytree(hello, project)
    proc = run_gradient(project, "build", "--tier", "exe", cache_dir=cache_dir, env=NO_DAEMON)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = artifact_entry(project, "exe")
    verdict = entry["verify"]
    assert entry["verified"] is True and verdict["level"] == "ran", verdict
    assert verdict["container"] == "verified" and verdict["container_runtime"] == "runc"
    command = verdict["container_command"]
    assert command[1:3] == ["run", "--bundle"] and command[-2:] == ["/app/hello", "gradient"]
    listed = subprocess.run(["runc", "list", "--quiet"], capture_output=True, text=True,
                            timeout=60)
    # this verification's container (the name after the bundle), not another build's
    assert command[3] and command[4].startswith("gradient-exe-")
    assert command[4] not in listed.stdout.split()

    # neither a daemon nor runc: the first run (env -i, no Python) still ran, and the verdict
    # says why the second could not
    proc = run_gradient(project, "verify", "--tier", "exe", "--json", cache_dir=cache_dir,
                        env={**NO_DAEMON, "PATH": path_without(tmp_path, "runc")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["exe"]
    assert verdict["ok"] is True and verdict["level"] == "ran", verdict
    assert verdict["container"].startswith("not available: no Docker daemon answers")
    assert "runc is not installed (apt-get install runc)" in verdict["container"]


def test_glibc_floor_covers_everything_the_onefile_carries(hello: Path, tmp_path: Path) -> None:
    exe = hello / "dist/gradient/exe/hello"
    carried = unpack_binaries(exe, tmp_path / "unpacked")
    assert any(p.name.startswith("libpython") for p in carried)
    every = [exe, *carried]
    by_reader = set().union(*(glibc_versions(p) for p in every))
    if shutil.which("readelf"):
        assert by_reader == set().union(*(readelf_glibc(p) for p in every))
    assert highest(by_reader) == artifact_entry(hello, "exe")["glibc_floor"]


def test_plugin_app_verifies_with_collect_submodules(example: Callable[..., Path],
                                                     gradient: Gradient, tmp_path: Path) -> None:
    project = example("plugin-app")
    assert "collect_submodules" in PLUGIN_TOML
    proc = gradient(project, "build")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = artifact_entry(project, "exe")
    assert entry["verified"] is True and entry["path"] == "dist/gradient/exe/plugin-app"
    check_container_verdict(entry)
    # the plugin the smoke did not load is in the bundle too
    proc = run_bare(project / entry["path"], "reverse", "abc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "[plugin-app 0.1.0] reverse: cba\n"


def test_plugin_app_without_collect_submodules_fails_and_keeps_dist(
        example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("plugin-app", toml=PLUGIN_TOML_WITHOUT_SUBMODULES)
    first = gradient(project, "build", "--tier", "wheel")
    assert first.returncode == 0, first.stdout + first.stderr
    dist = project / "dist/gradient"
    before = {p: p.read_bytes() for p in sorted(dist.rglob("*")) if p.is_file()}

    proc = gradient(project, "build")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "ModuleNotFoundError: No module named 'plugin_app.plugins'" in output
    assert "collect_submodules" in output  # the failure says what to do
    assert not (dist / "exe").exists()
    after = {p: p.read_bytes() for p in sorted(dist.rglob("*")) if p.is_file()}
    manifests = [dist / "manifest.json", dist / "SHA256SUMS"]
    assert {p: b for p, b in after.items() if p not in manifests} == {
        p: b for p, b in before.items() if p not in manifests}  # the wheel is as it was
    states = json.loads((dist / "manifest.json").read_text())["tiers"]
    assert states["exe"]["state"] == "failed" and states["wheel"]["state"] == "verified"


def test_onedir_with_hidden_imports_and_datas(example: Callable[..., Path], gradient: Gradient,
                                              tmp_path: Path) -> None:
    project = example("plugin-app", toml=PLUGIN_TOML_ONEDIR)
    proc = gradient(project, "build")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = artifact_entry(project, "exe")
    assert entry["path"] == "dist/gradient/exe/plugin-app-0.1.0-onedir.tar.gz"
    assert entry["verified"] is True
    assert (entry["mode"], entry["top"], entry["launcher"]) == (
        "onedir", "plugin-app-0.1.0", "plugin-app")
    check_container_verdict(entry)

    with tarfile.open(project / entry["path"]) as tar:
        members = tar.getmembers()
        assert {m.name.split("/")[0] for m in members} == {"plugin-app-0.1.0"}
        assert all(m.uid == 0 and m.gid == 0 for m in members)
        assert len({m.mtime for m in members}) == 1
        tar.extractall(tmp_path / "x", filter="data")
    top = tmp_path / "x" / "plugin-app-0.1.0"
    license_text = (EXAMPLES / "plugin-app" / "LICENSE").read_text()
    assert (top / "_internal/licenses/LICENSE").read_text() == license_text
    floor = highest(set().union(*(glibc_versions(p) for p in elf_files(top))))
    assert floor == entry["glibc_floor"]

    launcher = top / "plugin-app"
    proc = run_bare(launcher, "shout", "gradient", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "[plugin-app 0.1.0] shout: GRADIENT!\n"
    # hidden_imports named one plugin: exactly that one was bundled
    proc = run_bare(launcher, "reverse", "abc", cwd=tmp_path)
    assert proc.returncode != 0
    assert "No module named 'plugin_app.plugins.reverse'" in proc.stderr


def test_library_project_is_refused(example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("pure-package")
    proc = gradient(project, "build", "--tier", "exe")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "is a library" in output and "console script" in output
    assert not (project / "dist/gradient/exe").exists()


def test_frozen_app_calling_exit_fails_and_names_the_fix(tmp_path: Path, cache_dir: Path) -> None:
    """exit() works from the wheel (site is on there), but a frozen app has no site: the exe's
    verification fails, and says why and what to write instead."""
    project = scripted_app(tmp_path)
    proc = run_gradient(project, "build", "--tier", "exe", "--json", cache_dir=cache_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert list(data["failures"]) == ["exe"]
    failure = data["failures"]["exe"]
    assert "NameError: name 'exit' is not defined" in failure["detail"]
    assert "no site builtins" in failure["message"] and "sys.exit()" in failure["message"]
    assert "wheel" not in data["skipped"]  # the wheel (site on there) verified: exe ran
    assert not (project / "dist/gradient/exe").exists()


def test_every_console_script_ships_in_onedir(tmp_path: Path, cache_dir: Path) -> None:
    """Three console scripts, one freeze: the folder holds the launcher and a symlink to it per
    other script; each starts its own entry point, checked by the verification too."""
    project = scripted_app(tmp_path, '[app]\nscript = "exit-app"\n[tiers.exe]\nmode = "onedir"\n',
                           builtins=False)
    proc = run_gradient(project, "build", "--tier", "exe", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = artifact_entry(project, "exe")
    assert entry["verified"] and entry["scripts"] == list(SCRIPTS)
    checks = {(c["script"], c["check"]) for c in entry["verify"]["scripts"]}
    assert checks == {(n, c) for n in SCRIPTS for c in ("entry check", "--help")}
    with tarfile.open(project / entry["path"]) as tar:
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
        tar.extractall(tmp_path / "x", filter="data")
    assert links == {"exit-app-0.1.0/exit-app-quit": "exit-app",
                     "exit-app-0.1.0/exit-app-tools": "exit-app"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in SCRIPTS:
        run = run_bare(tmp_path / "x/exit-app-0.1.0" / name, "a", cwd=elsewhere)
        assert run.returncode == 0, (name, run.stderr)
        assert run.stdout.startswith(f"{name}: site=off ") and run.stdout.endswith("['a']\n")


def test_every_console_script_ships_as_onefile(tmp_path: Path, cache_dir: Path) -> None:
    """onefile: the executable plus a copy of it under each other script's name, each listed
    in the manifest (role "script") and each running its own entry point."""
    project = scripted_app(tmp_path, builtins=False)
    proc = run_gradient(project, "build", "--tier", "exe", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = [a for a in manifest(project)["artifacts"] if a["tier"] == "exe"
               and a["role"] not in ("sbom", "provenance")]
    assert [(a["role"], a["path"]) for a in entries] == [
        ("artifact", "dist/gradient/exe/exit-app"),
        ("script", "dist/gradient/exe/exit-app-quit"),
        ("script", "dist/gradient/exe/exit-app-tools")]
    assert entries[0]["verified"] and entries[0]["scripts"] == list(SCRIPTS)
    for name in SCRIPTS:
        exe = tmp_path / "bin" / name
        exe.parent.mkdir(exist_ok=True)
        shutil.copy2(project / "dist/gradient/exe" / name, exe)
        run = run_bare(exe, "b", cwd=tmp_path)
        assert run.returncode == 0, (name, run.stderr)
        assert run.stdout.startswith(f"{name}: site=off ") and run.stdout.endswith("['b']\n")
    # under a name that is no script of the app, the main script runs
    renamed = tmp_path / "bin" / "renamed"
    shutil.copy2(project / "dist/gradient/exe/exit-app-tools", renamed)
    assert run_bare(renamed, cwd=tmp_path).stdout.startswith("exit-app: ")
