"""The oci tier ships the tarball's tree (backends/oci/payload.py `from_tarball`): with a
launcher per console script and site on, every script is in the image and runs there, and an
app ending with the builtin exit() runs in the container as it does from the tarball."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import artifact_entry, docker_available, run_gradient
from scripted_app import SCRIPTS, scripted_app

TOML = ('tier = "oci"\n[app]\nscript = "exit-app"\n'
        '[tiers.oci]\nbase = "debootstrap:bookworm"\ntag = "gradient-test/exit-app:{version}"\n')


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)


def test_every_tarball_launcher_is_in_the_image_and_runs(tmp_path: Path,
                                                         cache_dir: Path) -> None:
    if not docker_available():
        pytest.skip("runs the image: needs a Docker daemon")
    project = scripted_app(tmp_path, TOML)
    proc = run_gradient(project, "build", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = artifact_entry(project, "oci")
    assert entry["verified"], entry["verify"]
    assert "exit-app: site=on lib-first=True pth=yes" in entry["verify"]["output"]
    tag = "gradient-test/exit-app:0.1.0"
    loaded = docker("load", "-i", str(project / entry["path"]))
    assert loaded.returncode == 0, loaded.stderr
    try:
        for name in SCRIPTS:
            ran = docker("run", "--rm", "--network", "none", "--entrypoint",
                         f"/app/bin/{name}", tag, "in-image")
            assert ran.returncode == 0, (name, ran.stderr)
            assert ran.stdout == f"{name}: site=on lib-first=True pth=yes args=['in-image']\n"
    finally:
        docker("rmi", "--force", tag)
