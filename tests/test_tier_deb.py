"""The deb tier for real: nfpm packs the example app, lintian checks the .deb, and dpkg installs
it into a debootstrap userspace (offline, in an overlay), the smoke runs as nobody, dpkg purges
it and nothing of it may be left."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry, copy_example, manifest, run_gradient, sha256

pytestmark = pytest.mark.slow

MAINTAINER = 'maintainer = "Hello Maintainers <hello@example.org>"'
BASE = """\
tier = "deb"

[app]
script = "hello"

[verify]
args = ["gradient"]
expect = "hello, gradient! (from hello-app 0.1.0)"
"""
TARBALL = BASE + f"\n[tiers.deb]\n{MAINTAINER}\n"
EXE = BASE + f'\n[tiers.deb]\npayload = "exe"\n{MAINTAINER}\n\n[tiers.exe]\nmode = "onedir"\n'
POSTINST = "#!/bin/sh\nset -e\nmkdir -p /var/lib/hello-app\necho seen > /var/lib/hello-app/state\n"


def build(project: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_gradient(project, "build", "--json", *args, cache_dir=cache)


def built_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def deb_of(project: Path) -> tuple[Path, dict[str, Any]]:
    entry = artifact_entry(project, "deb")
    return project / entry["path"], entry


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def tarball_deb(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("deb-tarball"), "hello-app", TARBALL)
    built_ok(build(project, cache_dir))
    return project


def test_tarball_payload_installs_runs_as_nobody_and_purges_clean(tarball_deb: Path) -> None:
    deb, entry = deb_of(tarball_deb)
    assert deb.name == "hello-app_0.1.0-1_all.deb"
    verdict = entry["verify"]
    assert entry["verified"] and verdict["level"] == "ran", verdict
    assert verdict["user"] == "65534:65534" and verdict["isolation"] == "netns"
    assert "hello, gradient!" in verdict["output"]
    assert [s["step"] for s in verdict["steps"]] == [
        "install", "smoke", "remove", "query after removal"]
    assert verdict["steps"][0]["command"][-3:-1] == ["dpkg", "-i"]
    assert verdict["steps"][-1]["exit_code"] != 0  # dpkg -s: not installed any more
    assert field(deb, "Depends") == "python3 (>= 3.11)"
    assert field(deb, "Version") == "0.1.0-1"
    assert field(deb, "Maintainer") == "Hello Maintainers <hello@example.org>"
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    assert "./opt/hello-app/bin/hello" in listing
    assert "./usr/bin/hello -> /opt/hello-app/bin/hello" in listing
    assert "root/root" in listing and str(tarball_deb) not in listing
    assert isinstance(entry["lintian_warnings"], list)
    recipe = tarball_deb / "dist/gradient/deb/nfpm.yaml"
    assert recipe.is_file() and str(tarball_deb) not in recipe.read_text()
    assert "nfpm.yaml" in (tarball_deb / "dist/gradient/SHA256SUMS").read_text()


def test_same_inputs_elsewhere_give_the_same_bytes(tarball_deb: Path, tmp_path: Path) -> None:
    """Another checkout, another cache, the default SOURCE_DATE_EPOCH: identical .deb."""
    again = copy_example(tmp_path / "elsewhere", "hello-app", TARBALL)
    built_ok(build(again, tmp_path / "cache", "--no-verify"))
    assert sha256(deb_of(again)[0]) == sha256(deb_of(tarball_deb)[0])


def test_a_postinst_that_leaves_a_file_fails_verification(tmp_path: Path,
                                                          cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app", TARBALL + 'scripts = {postinstall = '
                           '"packaging/postinst.sh"}\n')
    (project / "packaging").mkdir()
    (project / "packaging/postinst.sh").write_text(POSTINST)
    proc = build(project, cache_dir)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "the removal left /var/lib/hello-app/" in proc.stdout + proc.stderr
    assert "/var/lib/hello-app/state" in proc.stdout + proc.stderr
    assert not (project / "dist/gradient/deb").exists()


def test_lintian_errors_fail_the_build(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app",
                           BASE + '\n[tiers.deb]\nmaintainer = "Someone <someone@localhost>"\n')
    proc = build(project, cache_dir, "--no-verify")
    assert proc.returncode == 1
    assert "lintian found errors: bogus-mail-host" in proc.stdout + proc.stderr


def test_no_maintainer_is_a_config_error_naming_the_key(tmp_path: Path,
                                                        cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app", BASE)
    proc = build(project, cache_dir, "--no-verify")
    assert proc.returncode == 2
    assert "tiers.deb.maintainer" in proc.stdout + proc.stderr


def test_a_onefile_exe_payload_is_a_config_error(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app",
                           BASE + f'\n[tiers.deb]\npayload = "exe"\n{MAINTAINER}\n')
    proc = build(project, cache_dir, "--no-verify")
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "gradient.toml:11: tiers.deb.payload" in out and 'mode = \\"onedir\\"' in out


@pytest.fixture(scope="module")
def exe_deb(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = copy_example(tmp_path_factory.mktemp("deb-exe"), "hello-app", EXE)
    built_ok(build(project, cache_dir))
    return project


def test_exe_onedir_payload_brings_its_own_python(exe_deb: Path) -> None:
    deb, entry = deb_of(exe_deb)
    assert entry["verified"] and entry["payload"] == "exe"
    floor = artifact_entry(exe_deb, "exe")["glibc_floor"]
    assert field(deb, "Depends") == f"libc6 (>= {floor})" == entry["depends"][0]
    assert field(deb, "Architecture") == "amd64"
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    assert "./opt/hello-app/_internal/" in listing and "python3 " not in field(deb, "Depends")


def test_a_payload_needing_a_newer_glibc_than_the_suite_fails_there(
        exe_deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    """Built on bookworm, the frozen app needs a glibc above bullseye's 2.31: dpkg refuses it
    there on the declared libc6 dependency (no --force), naming both versions."""
    floor = artifact_entry(exe_deb, "exe")["glibc_floor"]
    assert tuple(int(x) for x in floor.split(".")) > (2, 31), floor  # measured: 2.35 here
    project = tmp_path / "two-suites"
    shutil.copytree(exe_deb, project)
    text = (project / "gradient.toml").read_text()
    (project / "gradient.toml").write_text(
        text.replace("[tiers.deb]", '[target]\ndistros = ["debian:bookworm", '
                                    '"debian:bullseye"]\n\n[tiers.deb]'))
    proc = run_gradient(project, "verify", "--tier", "deb", "--json", cache_dir=cache_dir)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "in debian:bullseye: the install failed" in out
    assert f"libc6 (>= {floor})" in out and "2.31" in out


def test_manifest_lists_the_recipe(tarball_deb: Path) -> None:
    roles = {a["path"].rsplit("/", 1)[-1]: a["role"] for a in manifest(tarball_deb)["artifacts"]
             if a["tier"] == "deb" and a["role"] not in ("sbom", "provenance")}
    assert roles == {"hello-app_0.1.0-1_all.deb": "artifact", "nfpm.yaml": "recipe"}


def test_gradient_tiers_lists_both_with_their_tools(tmp_path: Path) -> None:
    proc = run_gradient(tmp_path, "tiers", "--json", cache_dir=tmp_path / "cache")
    tiers = {t["tier"]: t for t in json.loads(proc.stdout)}
    assert tiers["deb"]["rank"] == 70 and tiers["rpm"]["rank"] == 75
    assert tiers["conda"]["rank"] < 70 and tiers["oci"]["rank"] > 75
    assert {"nfpm", "lintian", "dpkg", "debootstrap"} <= {t["name"] for t in tiers["deb"]["tools"]}
    assert {"nfpm", "rpm"} <= {t["name"] for t in tiers["rpm"]["tools"]}
