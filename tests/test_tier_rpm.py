"""The rpm tier for real: nfpm packs the example app; rpm -K and rpm -qpl check it; Debian's rpm
installs it with --root into a debootstrap userspace (offline, in an overlay), into a separate
rpmdb when `dbpath` says so; the smoke runs as nobody; rpm -e removes it and nothing is left."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry, copy_example, run_gradient, sha256

pytestmark = pytest.mark.slow

BASE = """\
tier = "rpm"

[app]
script = "hello"

[verify]
args = ["gradient"]
expect = "hello, gradient! (from hello-app 0.1.0)"
"""
TARBALL = BASE + '\n[tiers.rpm]\ndbpath = "/opt/hello-org/rpmdb"\n'
EXE = BASE + '\n[tiers.rpm]\npayload = "exe"\n\n[tiers.exe]\nmode = "onedir"\n'
POSTINST = "#!/bin/sh\nset -e\nmkdir -p /var/lib/hello-app\necho seen > /var/lib/hello-app/state\n"


def build(project: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_gradient(project, "build", "--json", *args, cache_dir=cache)


def built_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def rpm_of(project: Path) -> tuple[Path, dict[str, Any]]:
    entry = artifact_entry(project, "rpm")
    return project / entry["path"], entry


def query(rpm: Path, *what: str, home: Path) -> str:
    return subprocess.run(["rpm", "--dbpath", str(home), "-qp", *what, str(rpm)],
                          capture_output=True, text=True, check=True,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"}).stdout


@pytest.fixture(scope="module")
def tarball_rpm(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("rpm-tarball"), "hello-app", TARBALL)
    built_ok(build(project, cache_dir))
    return project


def test_tarball_payload_goes_into_its_own_rpmdb_runs_and_is_erased(
        tarball_rpm: Path, tmp_path: Path) -> None:
    rpm, entry = rpm_of(tarball_rpm)
    assert rpm.name == "hello-app-0.1.0-1.noarch.rpm"
    verdict = entry["verify"]
    assert entry["verified"] and verdict["level"] == "ran", verdict
    assert verdict["dbpath"] == "/opt/hello-org/rpmdb" and verdict["user"] == "65534:65534"
    install = verdict["steps"][0]["command"]
    assert install[0] == "rpm" and "--nodeps" in install and "--root" in install
    assert install[install.index("--dbpath") + 1] == "/opt/hello-org/rpmdb"
    assert [s["step"] for s in verdict["steps"]][-2:] == ["remove", "query after removal"]
    assert verdict["steps"][-1]["exit_code"] != 0  # rpm -q: not installed
    assert "hello, gradient!" in verdict["output"]
    assert query(rpm, "--requires", home=tmp_path).splitlines()[0] == "python3 >= 3.11"
    files = query(rpm, "-l", home=tmp_path).split()
    assert "/opt/hello-app/bin/hello" in files and "/usr/bin/hello" in files
    assert query(rpm, "--qf", "%{VERSION}-%{RELEASE}", home=tmp_path) == "0.1.0-1"


def test_its_sbom_lists_the_distributions_inside_the_payload(tarball_rpm: Path) -> None:
    """The .rpm's cpio payload is read (not opaque bytes): the SBOM names what it carries."""
    rpm, _ = rpm_of(tarball_rpm)
    doc = json.loads(rpm.with_name(rpm.name + ".cdx.json").read_text())
    found = {c["purl"] for c in doc.get("components", []) if "purl" in c}
    assert any(p.startswith("pkg:pypi/attrs@") for p in found), found
    assert doc["metadata"]["component"]["purl"] == "pkg:pypi/hello-app@0.1.0"


def test_same_inputs_elsewhere_give_the_same_bytes(tarball_rpm: Path, tmp_path: Path) -> None:
    again = copy_example(tmp_path / "elsewhere", "hello-app", TARBALL)
    built_ok(build(again, tmp_path / "cache", "--no-verify"))
    assert sha256(rpm_of(again)[0]) == sha256(rpm_of(tarball_rpm)[0])


def test_a_scriptlet_that_leaves_a_file_fails_verification(tmp_path: Path,
                                                           cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app", TARBALL + 'scripts = {postinstall = '
                           '"packaging/post.sh"}\n')
    (project / "packaging").mkdir()
    (project / "packaging/post.sh").write_text(POSTINST)
    proc = build(project, cache_dir)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "the removal left /var/lib/hello-app/" in proc.stdout + proc.stderr


def test_a_relative_dbpath_is_a_config_error(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app", BASE + '\n[tiers.rpm]\ndbpath = "rpmdb"\n')
    proc = build(project, cache_dir, "--no-verify")
    assert proc.returncode == 2 and "tiers.rpm.dbpath" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def exe_rpm(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("rpm-exe"), "hello-app", EXE)
    built_ok(build(project, cache_dir))
    return project


def test_exe_onedir_payload_requires_only_glibc(exe_rpm: Path, tmp_path: Path) -> None:
    rpm, entry = rpm_of(exe_rpm)
    floor = artifact_entry(exe_rpm, "exe")["glibc_floor"]
    assert entry["verified"] and rpm.name.endswith(".x86_64.rpm")
    assert query(rpm, "--requires", home=tmp_path).splitlines()[0] == f"glibc >= {floor}"


def test_a_payload_needing_a_newer_glibc_fails_with_the_loaders_message(
        exe_rpm: Path, cache_dir: Path, tmp_path: Path) -> None:
    """rpm --nodeps installs it into bullseye (glibc 2.31); the dynamic loader refuses it."""
    floor = artifact_entry(exe_rpm, "exe")["glibc_floor"]
    assert tuple(int(x) for x in floor.split(".")) > (2, 31), floor  # measured: 2.35 here
    project = tmp_path / "bullseye"
    shutil.copytree(exe_rpm, project)
    text = (project / "gradient.toml").read_text()
    (project / "gradient.toml").write_text(
        text.replace("[tiers.rpm]", '[target]\ndistros = ["debian:bullseye"]\n\n[tiers.rpm]'))
    proc = run_gradient(project, "verify", "--tier", "rpm", cache_dir=cache_dir)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "in debian:bullseye: /usr/bin/hello as a non-root user" in out
    assert "version `GLIBC_2." in out and "not found" in out
