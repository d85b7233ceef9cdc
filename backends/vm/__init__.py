"""The vm tier: a qcow2 disk that boots by itself on an x86-64 hypervisor, with the app under
/opt/<name> and its launchers on PATH, built by Packer and proven by booting it offline.

The base is a bootable disk: gradient's own debootstrap Debian (cloud kernel, systemd,
python3; built once and cached, see base.py) or a disk image file (a vendor cloud image).
Two ways to provision it. communicator none: Packer (qemu builder) boots a base carrying
gradient's provisioning unit with the payload on a disc labelled PAYLOAD; the unit installs it,
reports on the serial console and powers off. communicator ssh (what Packer users know, for
bases with sshd and cloud-init): a throw-away key goes to cloud-init on a NoCloud seed disc,
Packer logs in over its user-mode network (forwarded from 127.0.0.1 only, restrict=on: the
guest reaches nothing else), uploads the payload with a file provisioner and installs it with
a shell provisioner, then shuts down (see ssh.py). Either way Packer compresses the disk.
The generated app.pkr.hcl is kept beside the image. Verification boots a throw-away copy under
qemu, offline, with a one-shot smoke unit, and reads the result from ttyS0. KVM is used only
when a probe boots a kernel under it here; otherwise TCG, and the manifest says which.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gradient_build.backend import (
    JSON,
    Artifact,
    Backend,
    BuildContext,
    Component,
    Meta,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import file_digest

from .accel import KVM, choose, precheck

DEBIAN_MIRROR = "http://deb.debian.org/debian"


def _apt(name: str, command: str, package: str, args: tuple[str, ...] = ("--version",),
         required: bool = True) -> Tool:
    return Tool(name, f"apt-get install {package}", command=command, version_args=args,
                required=required)


PACKER = _apt("packer", "packer", "packer", ("version",))
QEMU = _apt("qemu", "qemu-system-x86_64", "qemu-system-x86")
QEMU_IMG = _apt("qemu-img", "qemu-img", "qemu-utils")
XORRISO = _apt("xorriso", "xorriso", "xorriso (Packer's cd_files)", ("-version",))
DEBUGFS = _apt("debugfs", "debugfs", "e2fsprogs", ("-V",))
SFDISK = _apt("sfdisk", "sfdisk", "fdisk")
SSH_KEYGEN = _apt("ssh-keygen", "ssh-keygen", "openssh-client", ("-V",))
BASE_TOOLS = (_apt("debootstrap", "debootstrap", "debootstrap"),
              _apt("mkfs.vfat", "mkfs.vfat", "dosfstools"),
              _apt("syslinux", "syslinux", "syslinux syslinux-common", ("-v",)),
              _apt("mcopy", "mcopy", "mtools"),
              _apt("mkfs.ext4", "mkfs.ext4", "e2fsprogs", ("-V",)))


@dataclass
class VmOptions:
    base: str = doc(
        "the bootable base disk: 'debootstrap:SUITE' (Debian with the cloud kernel, systemd and "
        "python3, built once and cached) or a qcow2/raw file (relative to the project): one "
        "carrying gradient's provisioning unit (communicator none) or a vendor cloud image "
        "with sshd and cloud-init (communicator ssh)", "debootstrap:bookworm")
    communicator: Literal["none", "ssh"] = doc(
        "how Packer provisions the base: none boots it with the payload on a PAYLOAD disc "
        "for gradient's provisioning unit; ssh logs in with a throw-away key given to "
        "cloud-init (a NoCloud seed) and runs file + shell provisioners (vendor cloud "
        "images; a debootstrap: base is then built with sshd and cloud-init instead of the "
        "unit)", "none")
    ssh_username: str = doc("the user Packer logs in as (communicator ssh); cloud-init "
                            "creates it with passwordless sudo if the image lacks it",
                            "debian")
    ssh_timeout: int = doc("seconds Packer waits for SSH on the booted base before giving up "
                           "(communicator ssh)", 600)
    payload: Literal["tarball", "exe"] = doc(
        "what is installed under /opt/<name>: the tarball tier's tree (runs on the image's "
        "python3) or the exe tier's frozen app (brings its own Python)", "tarball")
    service: bool = doc("also install and enable a systemd unit running the app (servers)",
                        False)
    service_args: list[str] = doc("arguments the service gives the app", [])
    packages: list[str] = doc("more Debian packages in a debootstrap: base", [])
    mirror: str = doc("the Debian mirror a debootstrap: base is built from", DEBIAN_MIRROR)
    disk_size: int = doc("the disk's size in MiB (the root filesystem fills it; qcow2 stores "
                         "only what is used)", 2048)
    memory: int = doc("MiB of memory of the build and verification VMs", 1024)
    accelerator: Literal["auto", "kvm", "tcg"] = doc(
        "how qemu runs guests: auto is KVM when a probe boots a kernel under it here, else "
        "TCG (software emulation)", "auto")
    build_timeout: int = doc("seconds the provisioning boot may take before Packer gives up",
                             900)
    boot_timeout: int = doc("seconds the verification boot may take, on top of [verify] "
                            "timeout", 240)


class VmBackend(Backend[VmOptions]):
    name = "vm"
    rank = 90
    artifact = "bootable qcow2 disk image + the Packer template that built it"
    target = "a hypervisor (x86-64)"
    consumes = ("tarball",)
    tools = (PACKER, QEMU, QEMU_IMG, XORRISO, DEBUGFS, SFDISK, *BASE_TOOLS, KVM)
    Options = VmOptions
    verify_options = frozenset({"accelerator", "boot_timeout"})
    uses_sources = False
    needs = frozenset({"own_userspace|own_kernel"})
    cost = 120.0
    noop_safe = False  # its keys ask a container runtime (or KVM) what is there

    def requires(self, options: VmOptions) -> tuple[str, ...]:
        return (options.payload,)

    def tools_for(self, options: VmOptions) -> tuple[Tool, ...]:
        found = [PACKER, QEMU, QEMU_IMG, XORRISO, DEBUGFS, SFDISK]
        if options.base.startswith("debootstrap:"):
            found += BASE_TOOLS
        if options.communicator == "ssh":
            found.append(SSH_KEYGEN)
        return tuple(found)

    def key_extra(self, options: VmOptions, project_root: Path) -> dict[str, JSON]:
        if options.base.startswith("debootstrap:"):
            from .base import recipe_of

            return {"base recipe": recipe_of(options).key()}
        path = project_root / options.base
        return {"base image": file_digest(path) if path.is_file() else None}

    def verify_environment(self, options: VmOptions) -> dict[str, JSON]:
        """Whether KVM could run it here: a run under TCG is redone once KVM works."""
        ok, why = precheck()
        return {"kvm": ok, "kvm_why": why, "accelerator": options.accelerator}

    def build(self, ctx: BuildContext[VmOptions]) -> Artifact:
        from . import packer
        from .base import resolve

        opts = ctx.options
        source = ctx.inputs[opts.payload]
        base = resolve(ctx)
        inside, kernel = self._check_base(ctx, base.path)
        accelerator, why = choose(opts.accelerator, kernel, ctx.tool_cache("vm"))
        image_name = f"{ctx.project.name}-{ctx.project.version}.qcow2"
        template_file = ctx.out / "app.pkr.hcl"
        template_file.write_text(packer.render(ctx, accelerator, image_name))
        payload = ctx.work / "payload"
        launchers = packer.payload_dir(ctx, source, payload)
        ssh_vars: list[str] = []
        if opts.communicator == "ssh":
            from .ssh import keypair, seed

            key, public = keypair(ctx)
            ssh_vars = ["-var", f"seed_dir={seed(ctx, public)}", "-var", f"ssh_key={key}"]
        image, seconds, console = packer.build(ctx, template_file, base.path, payload,
                                               image_name, ssh_vars)
        shutil.move(image, ctx.out / image_name)
        meta: dict[str, JSON] = {
            "base": base.what, "base_meta": dict(base.meta), "payload": opts.payload,
            "install_dir": f"/opt/{ctx.project.name}", "launchers_on_path": launchers,
            "accelerator": accelerator, "accelerator_why": why, "disk_size_mib": opts.disk_size,
            "packer_seconds": round(seconds, 1), "provision_console": console,
            "service": opts.service, "communicator": opts.communicator}
        if opts.communicator == "ssh":
            meta["ssh_username"] = opts.ssh_username
        if inside is not None:
            meta["base_holds"] = dict(inside)
        if opts.payload == "tarball":
            meta["pythonpath"] = f"/opt/{ctx.project.name}/{source.text(Meta.LIB) or 'lib'}"
        return Artifact(self.name, ctx.out, image_name, {"app.pkr.hcl": "template"}, meta)

    def inventory(self, artifact: Artifact) -> list[Component]:
        """The disk's Debian packages and Python distributions, read from its ext4 root."""
        from .inventory import components

        return components(artifact)

    @staticmethod
    def _check_base(ctx: BuildContext[VmOptions],
                    path: Path) -> tuple[dict[str, JSON] | None, Path | None]:
        """(what a disk-file base holds, its kernel): it is looked into first, so a
        communicator it cannot work with is a configuration error now, not a Packer timeout
        later. gradient's own base keeps its kernel beside it."""
        if ctx.options.base.startswith("debootstrap:"):
            beside = path.parent / "vmlinuz"
            return None, beside if beside.is_file() else None
        from .ssh import look_inside, mismatch

        found, kernel = look_inside(path, ctx.work)
        if found is None:
            return None, None  # no ext4 root to read: Packer's bounded waits decide
        problem = mismatch(ctx, ctx.options.base, found)
        if problem:
            raise ctx.option_error(problem, "communicator")
        return dict(found), kernel

    def verify(self, ctx: VerifyContext[VmOptions], artifact: Artifact) -> Verdict:
        from .boot import verify_image

        return verify_image(ctx, artifact, lambda kernel: choose(
            ctx.options.accelerator, kernel, ctx.tool_cache("vm")))
