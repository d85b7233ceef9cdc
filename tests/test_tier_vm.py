"""The vm tier for real: the example app's disk image built from debootstrap:bookworm with
Packer, booted offline under qemu to a passing smoke read from the serial console; the same
image with the payload never installed (the bare base, resealed) fails verification.

These need root (debootstrap), Packer, qemu and the disk tools (`make system` installs them);
without them they fail, they do not skip. One cold build per session: the base is cached in
the session's gradient cache, the second boot reuses it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry, copy_example, manifest, reseal, run_gradient

EXPECT = "hello, gradient! (from hello-app 0.1.0)"
TOML = f"""tier = "vm"

[app]
script = "hello"

[verify]
args = ["gradient"]
expect = "{EXPECT}"
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    project = copy_example(tmp_path_factory.mktemp("vm"), "hello-app", TOML)
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project


def vm_verify(project: Path) -> dict[str, Any]:
    verify: dict[str, Any] = artifact_entry(project, "vm")["verify"]
    return verify


@pytest.mark.slow
def test_image_boots_offline_to_a_passing_smoke(built: Path) -> None:
    entry = artifact_entry(built, "vm")
    assert entry["path"] == "dist/gradient/vm/hello-app-0.1.0.qcow2" and entry["verified"]
    verify = vm_verify(built)
    assert verify["level"] == "ran" and verify["exit_code"] == 0
    assert verify["command"] == ["hello", "gradient"]
    assert EXPECT in verify["output"]
    assert verify["accelerator"] in ("kvm", "tcg") and verify["accelerator_why"]
    assert verify["isolation"] == "netns"
    qemu = verify["qemu"]
    assert "-nic" in qemu and qemu[qemu.index("-nic") + 1] == "none" and "-nodefaults" in qemu
    assert any("snapshot=on" in arg for arg in qemu)
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", str(built / entry["path"])],
        capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 2048 * 1024 * 1024
    assert info["format-specific"]["data"]["compression-type"] == "zstd"


@pytest.mark.slow
def test_packer_template_is_kept_and_validates(built: Path, tmp_path: Path) -> None:
    files = {a["path"]: a["role"] for a in manifest(built)["artifacts"] if a["tier"] == "vm"}
    assert files["dist/gradient/vm/app.pkr.hcl"] == "template"
    hcl = (built / "dist/gradient/vm/app.pkr.hcl").read_text()
    for line in ('disk_image       = true', 'communicator     = "none"',
                 'cd_label         = "PAYLOAD"', 'disk_size        = "2048M"',
                 'compression_type=zstd', 'user,id=user.0,restrict=on'):
        assert line in hcl
    assert "/tmp" not in hcl and str(built) not in hcl  # no path of the build machine
    base = tmp_path / "base.qcow2"
    base.write_bytes(b"")
    (tmp_path / "payload").mkdir()
    proc = subprocess.run(["packer", "validate", "-var", f"base={base}", "-var",
                           f"payload_dir={tmp_path / 'payload'}", "app.pkr.hcl"],
                          cwd=built / "dist/gradient/vm", capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "CHECKPOINT_DISABLE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_image_without_the_payload_fails_verification(built: Path, tmp_path: Path,
                                                       cache_dir: Path) -> None:
    """The bare base boots fine, but `hello` was never installed: the smoke must fail."""
    project = tmp_path / "broken"
    shutil.copytree(built, project)
    bases = sorted((cache_dir / "tools" / "vm-bases").glob("debootstrap-bookworm-*/base.qcow2"))
    assert bases, "the build cached no debootstrap base"
    image = project / artifact_entry(project, "vm")["path"]
    shutil.copyfile(bases[0], image)
    reseal(project, "vm")
    proc = run_gradient(project, "verify", "--tier", "vm", cache_dir=cache_dir)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "exited with 127" in text, text  # sh: exec: hello: not found


def test_tiers_reports_packer_qemu_and_kvm(cache_dir: Path, tmp_path: Path) -> None:
    proc = run_gradient(tmp_path, "tiers", "--json", cache_dir=cache_dir)
    rows = {r["tier"]: r for r in json.loads(proc.stdout)}
    tools = {t["name"]: t for t in rows["vm"]["tools"]}
    assert tools["packer"]["present"] and "1." in tools["packer"]["version"]
    assert tools["qemu"]["present"] and "QEMU" in tools["qemu"]["version"]
    assert "kvm" in tools and tools["kvm"]["required"] is False


def test_bad_payload_is_a_config_error(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app", 'tier = "vm"\n[tiers.vm]\npayload = "wheel"\n')
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "payload" in proc.stdout + proc.stderr
