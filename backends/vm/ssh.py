"""The SSH-communicator flow's pieces: a throw-away login key, the NoCloud seed that hands it to
cloud-init, and a look inside a disk-file base before Packer boots it, so a base that cannot
work with the chosen communicator fails at once with what to change instead of at a timeout.

The key pair lives in the build's work dir and never in the artifact: the shell provisioner
removes the public key from the user's authorized_keys and runs `cloud-init clean`, so the
image's first real boot is a new instance that reads its user's own seed.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from gradient_build.backend import BuildContext

from .boot import kernel_of, root_offset

if TYPE_CHECKING:
    from . import VmOptions

KEY_COMMENT = "gradient-build-throwaway"
UNIT = "/etc/systemd/system/gradient-provision.service"
SSHD = ("/usr/sbin/sshd", "/sbin/sshd")
CLOUD_INIT = ("/usr/bin/cloud-init",)


def keypair(ctx: BuildContext[VmOptions]) -> tuple[Path, str]:
    """(the private key file, the public key line): ed25519, made for this build only."""
    folder = ctx.work / "ssh"
    folder.mkdir(mode=0o700)
    key = folder / "id_ed25519"
    ctx.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", KEY_COMMENT, "-f", key],
            what="ssh-keygen (a throw-away key for Packer)")
    return key, key.with_suffix(".pub").read_text().strip()


def seed(ctx: BuildContext[VmOptions], public_key: str) -> Path:
    """The NoCloud seed (user-data, meta-data) Packer puts on a disc labelled cidata: the
    login user with passwordless sudo and the throw-away key, nothing else."""
    folder = ctx.work / "seed"
    folder.mkdir()
    user = ctx.options.ssh_username
    (folder / "user-data").write_text("\n".join([
        "#cloud-config", "users:", f"  - name: {user}", "    shell: /bin/bash",
        "    lock_passwd: true", '    sudo: "ALL=(ALL) NOPASSWD:ALL"',
        "    ssh_authorized_keys:", f"      - {public_key}", ""]))
    (folder / "meta-data").write_text(
        f"instance-id: gradient-build-{secrets.token_hex(6)}\nlocal-hostname: gradient-vm\n")
    return folder


def look_inside(image: Path, work: Path) -> tuple[dict[str, bool] | None, Path | None]:
    """(which of gradient's unit, sshd and cloud-init a disk-file base holds, its kernel for
    the KVM probe), read with debugfs from a sparse raw copy; (None, None) when no ext4 root
    filesystem was found (LVM, xfs...)."""
    raw = work / "base-inspect.raw"
    try:
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True,
                       capture_output=True, timeout=600)
        offset = root_offset(raw)
        if offset is None:
            return None, None
        found: dict[str, bool] = {}
        for name, paths in (("unit", (UNIT,)), ("sshd", SSHD), ("cloud-init", CLOUD_INIT)):
            found[name] = any(_exists(raw, offset, path) for path in paths)
        return found, kernel_of(raw, work)
    except (subprocess.SubprocessError, OSError):
        return None, None
    finally:
        raw.unlink(missing_ok=True)


def _exists(raw: Path, offset: int, path: str) -> bool:
    proc = subprocess.run(["debugfs", "-R", f"stat {path}", f"{raw}?offset={offset}"],
                          capture_output=True, text=True, timeout=60)
    return "Inode:" in proc.stdout


def mismatch(ctx: BuildContext[VmOptions], base: str, found: dict[str, bool]) -> str | None:
    """Why this base cannot work with `[tiers.vm] communicator`, with what to do; or None."""
    if ctx.options.communicator == "none" and not found["unit"]:
        hint = (' It has sshd: set communicator = "ssh" (ssh_username = "..." if its login '
                'user is not "debian").') if found["sshd"] else ""
        return (f"base {base!r} carries no gradient provisioning unit ({UNIT}): with "
                "communicator = \"none\" nothing in it would install the payload or power off."
                f"{hint} Or use base = \"debootstrap:bookworm\".")
    if ctx.options.communicator == "ssh" and not found["sshd"]:
        hint = (' It carries gradient\'s unit: use communicator = "none".' if found["unit"]
                else "")
        return (f"base {base!r} has no SSH server (/usr/sbin/sshd): with communicator = "
                "\"ssh\" Packer could never log in. Use a cloud image with openssh-server "
                f"and cloud-init, or base = \"debootstrap:bookworm\".{hint}")
    return None
