"""The vm tier's SSH-communicator flow for real, on a stand-in for a vendor cloud image.

No vendor image can be downloaded here, so the tests build one that behaves like one:
gradient's debootstrap recipe in its cloud flavor (openssh-server, sudo, cloud-init reading
only a NoCloud seed, DHCP from systemd-networkd, and no gradient provisioning unit), cached by
its recipe in the session's gradient cache and copied out as a plain qcow2. The app's image is
built from it with `base = "/path/vendor.qcow2"` + `communicator = "ssh"`: Packer logs in with a
throw-away key handed over on a cidata disc, uploads and installs the payload, shuts down; the
image then boots offline to the same passing smoke as the none flow. Combinations that cannot
work fail at once with what to change (the base is looked into first), and a base whose sshd
never lets the key in fails at Packer's ssh_timeout, not never.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import artifact_entry, copy_example, manifest, run_gradient
from gradient_backends.vm.base import Recipe, debootstrap
from gradient_backends.vm.boot import root_offset

from gradient_build.backend import Runner

EXPECT = "hello, gradient! (from hello-app 0.1.0)"


def toml(base: Path, communicator: str = "ssh", extra: str = "") -> str:
    return f"""tier = "vm"

[app]
script = "hello"

[verify]
args = ["gradient"]
expect = "{EXPECT}"

[tiers.vm]
base = "{base}"
communicator = "{communicator}"
{extra}"""


@pytest.fixture(scope="module")
def vendor_image(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The stand-in vendor image, built once per gradient cache (keyed by its recipe)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "SOURCE_DATE_EPOCH": "1700000000"}
    base = debootstrap(Recipe("bookworm", flavor="cloud"), cache_dir / "tools" / "vm-bases",
                       Runner("vm", env, lambda event: None), env)
    dest = tmp_path_factory.mktemp("vendor") / "vendor.qcow2"
    shutil.copyfile(base.path, dest)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, vendor_image: Path) -> Path:
    project = copy_example(tmp_path_factory.mktemp("vm-ssh"), "hello-app", toml(vendor_image))
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project


def debugfs(raw: Path, request: str) -> str:
    offset = root_offset(raw)
    assert offset is not None, "no root filesystem in the image"
    return subprocess.run(["debugfs", "-R", request, f"{raw}?offset={offset}"],
                          capture_output=True, text=True, check=True).stdout


def edited_copy(image: Path, dest: Path, *requests: str) -> Path:
    """A copy of `image` with debugfs -w requests applied to its root filesystem."""
    raw = dest.with_suffix(".raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    offset = root_offset(raw)
    assert offset is not None
    subprocess.run(["debugfs", "-w", "-f", "-", f"{raw}?offset={offset}"],
                   input="\n".join(requests) + "\n", text=True, capture_output=True, check=True)
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(dest)], check=True)
    raw.unlink()
    return dest


@pytest.mark.slow
def test_ssh_build_on_a_vendor_image_boots_to_a_passing_smoke(built: Path) -> None:
    entry = artifact_entry(built, "vm")
    assert entry["verified"] and entry["communicator"] == "ssh"
    assert entry["base_holds"] == {"unit": False, "sshd": True, "cloud-init": True}
    verify = entry["verify"]
    assert verify["level"] == "ran" and verify["exit_code"] == 0
    assert verify["command"] == ["hello", "gradient"] and EXPECT in verify["output"]
    qemu = verify["qemu"]
    assert qemu[qemu.index("-nic") + 1] == "none"


@pytest.mark.slow
def test_ssh_template_is_kept_and_says_how(built: Path) -> None:
    hcl = (built / "dist/gradient/vm/app.pkr.hcl").read_text()
    for line in ('communicator         = "ssh"', 'ssh_username         = "debian"',
                 'cd_label             = "cidata"', 'provisioner "file"', 'provisioner "shell"',
                 "restrict=on,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"):
        assert line in hcl
    assert "/tmp" not in hcl.replace("/tmp/gradient-payload", "") and str(built) not in hcl
    files = [a["path"] for a in manifest(built)["artifacts"] if a["tier"] == "vm"]
    assert not [f for f in files if "id_ed25519" in f or "seed" in f], files


@pytest.mark.slow
def test_image_holds_the_app_but_not_the_build_key(built: Path, tmp_path: Path) -> None:
    """Installed as the none flow installs it; the throw-away key and cloud-init's record of
    the build instance are gone, so the first real boot takes its user's own seed."""
    raw = tmp_path / "image.raw"
    image = built / artifact_entry(built, "vm")["path"]
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    assert "Inode:" in debugfs(raw, "stat /opt/hello-app")
    assert "/opt/hello-app/" in debugfs(raw, "stat /usr/local/bin/hello")  # the launcher link
    keys = debugfs(raw, "cat /home/debian/.ssh/authorized_keys")
    assert "gradient-build-throwaway" not in keys
    assert "Inode:" in debugfs(raw, "stat /home/debian")  # the user was really made
    assert "Inode:" not in debugfs(raw, "stat /var/lib/cloud/instance")
    assert debugfs(raw, "cat /etc/machine-id").strip() == ""


@pytest.mark.slow
def test_communicator_none_on_a_vendor_image_fails_at_once(vendor_image: Path,
                                                           tmp_path: Path,
                                                           cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app", toml(vendor_image, "none"))
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "carries no gradient provisioning unit" in text and 'communicator = "ssh"' in text
    assert "communicator" in text and "gradient.toml" in text
    assert "packer build" not in text


@pytest.mark.slow
def test_ssh_on_a_base_without_sshd_fails_at_once(vendor_image: Path, tmp_path: Path,
                                                  cache_dir: Path) -> None:
    no_sshd = edited_copy(vendor_image, tmp_path / "no-sshd.qcow2", "rm /usr/sbin/sshd")
    project = copy_example(tmp_path, "hello-app", toml(no_sshd))
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "has no SSH server" in text and "packer build" not in text


@pytest.mark.slow
def test_sshd_that_never_takes_the_key_fails_at_ssh_timeout(vendor_image: Path,
                                                           tmp_path: Path,
                                                           cache_dir: Path) -> None:
    """sshd runs, but without cloud-init nothing installs the key: Packer gives up at
    ssh_timeout and the message says what the base must do."""
    no_cloud_init = edited_copy(vendor_image, tmp_path / "no-cloud-init.qcow2",
                                "rm /usr/bin/cloud-init")
    project = copy_example(tmp_path, "hello-app",
                           toml(no_cloud_init, extra="ssh_timeout = 40\n"))
    proc = run_gradient(project, "build", "--tier", "vm", "--no-verify", cache_dir=cache_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "never got an SSH login as 'debian' within ssh_timeout = 40 s" in text, text
    assert not (project / "dist/gradient/vm").exists()


def test_bad_ssh_username_is_a_config_error(tmp_path: Path, cache_dir: Path) -> None:
    image = tmp_path / "any.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    project = copy_example(tmp_path, "hello-app",
                           toml(image, extra='ssh_username = "Debian User"\n'))
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "ssh_username" in text and "not a login name" in text
