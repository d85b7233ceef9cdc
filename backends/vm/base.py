"""The bootable base disk: a debootstrap Debian with the cloud kernel, built without root-only
kernel features (no loop devices, no mounts) and cached by suite, packages, mirror and size.

The recipe (measured here): debootstrap minbase with linux-image-cloud-amd64, systemd-sysv and
python3; an initramfs holding the virtio and common disk drivers (not the build host's); a FAT
boot partition made as a file (`mkfs.vfat -C`, `syslinux --install`, `mcopy`); the root
filesystem written straight into the disk at its offset (`mkfs.ext4 -E offset= -d`); an MBR
(`sfdisk`, syslinux's mbr.bin); then `qemu-img convert` to qcow2. Two flavors: "gradient"
carries gradient's one-shot provisioning unit (communicator none: the Packer build runs it once
and it removes itself); "cloud" is what a vendor cloud image is instead (openssh-server, sudo,
cloud-init reading a NoCloud seed, DHCP by systemd-networkd, no gradient unit), for
communicator ssh. The recipe is plain data, so the tests build the same base without a build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gradient_build.backend import BuildContext, BuildFailed, Runner
from gradient_build.helpers import build_once

if TYPE_CHECKING:
    from . import VmOptions

RECIPE = "vm-debootstrap-base v3"
KERNEL = "linux-image-cloud-amd64"
# what a vendor cloud image has that gradient's own base does not need
CLOUD_PACKAGES = ("openssh-server", "sudo", "cloud-init",
                  "python3-cffi-backend")  # debootstrap resolves no virtual package (its api-min)
BOOT_START = 2048            # sectors: the boot partition at 1 MiB
BOOT_SECTORS = 131072        # 64 MiB of FAT for the kernel and initramfs
ROOT_START = BOOT_START + BOOT_SECTORS
SECTOR = 512
# drivers the initramfs needs to find its root on any common x86-64 hypervisor
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ahci", "ata_piix",
                     "ext4")
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "var/cache/apt/archives", "var/lib/apt/lists", "var/log")
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
# units that cost seconds of every boot under TCG (systemd-analyze blame) and do nothing on a
# VM disk without LVM, EFI, loop devices or a VGA console: masked in the base
MASKED = ("e2scrub_reap.service", "getty-static.service", "modprobe@dm_mod.service",
          "modprobe@efi_pstore.service", "modprobe@loop.service", "sys-kernel-debug.mount",
          "sys-kernel-tracing.mount")
Flavor = Literal["gradient", "cloud"]


@dataclass(frozen=True)
class Base:
    """A base image on disk and what gradient knows about it."""

    path: Path
    what: str
    meta: dict[str, str | int]


@dataclass(frozen=True)
class Recipe:
    """Everything a debootstrap base is made from: its cache key is the digest of this."""

    suite: str
    packages: tuple[str, ...] = ()
    mirror: str = "http://deb.debian.org/debian"
    disk_size: int = 2048
    flavor: Flavor = "gradient"

    def include(self) -> list[str]:
        extra = CLOUD_PACKAGES if self.flavor == "cloud" else ()
        return sorted({KERNEL, "systemd-sysv", "python3", *self.packages, *extra})

    def key(self) -> str:
        files = (("gradient-provision", "gradient-provision.service")
                 if self.flavor == "gradient" else ("cloud-standin.cfg", "cloud-wired.network"))
        text = json.dumps([RECIPE, self.suite, self.include(), self.mirror, self.disk_size,
                           self.flavor, MASKED, *(template(f) for f in files),
                           template("syslinux.cfg")])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def folder(self) -> str:
        flavor = "" if self.flavor == "gradient" else f"{self.flavor}-"
        return f"debootstrap-{flavor}{self.suite}-{self.key()}"


def template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text()


def recipe_of(options: VmOptions) -> Recipe:
    """The recipe `[tiers.vm]` asks for: communicator ssh gets the cloud flavor (sshd,
    cloud-init), as a vendor image would be; none gets gradient's provisioning unit."""
    flavor: Flavor = "cloud" if options.communicator == "ssh" else "gradient"
    return Recipe(options.base.partition(":")[2], tuple(sorted(options.packages)),
                  options.mirror, options.disk_size, flavor)


def resolve(ctx: BuildContext[VmOptions]) -> Base:
    """The base `[tiers.vm] base` names: a debootstrap:SUITE built and cached, or a disk file."""
    base = ctx.options.base
    if base.startswith("debootstrap:"):
        return debootstrap(recipe_of(ctx.options), ctx.tool_cache("vm-bases"), ctx.run, ctx.env)
    path = (ctx.project.root / base).resolve()
    if not path.is_file():
        raise BuildFailed(f"vm: base {base!r} names no disk image file (looked at {path})")
    return Base(path, base, {})


def base_key(options: VmOptions, suite: str) -> str:
    return recipe_of(options).key()


def debootstrap(recipe: Recipe, cache: Path, run: Runner, env: Mapping[str, str]) -> Base:
    """The base for `recipe`, built once into `cache` (gradient's tool cache `vm-bases`)."""
    final = cache / recipe.folder
    what = f"debootstrap:{recipe.suite}" + ("" if recipe.flavor == "gradient" else
                                            f" ({recipe.flavor} flavor)")
    if not (final / "base.json").exists():
        if os.geteuid() != 0:
            raise BuildFailed(f"vm: base {what} runs debootstrap, which needs root; build it "
                              "once as root (the cache keeps it) or give a disk image as base")
        build_once(final, lambda tmp: _fill(recipe, tmp, run, env))
    meta = json.loads((final / "base.json").read_text())
    return Base(final / "base.qcow2", what, meta)


def _fill(recipe: Recipe, tmp: Path, run: Runner, env: Mapping[str, str]) -> None:
    include = recipe.include()
    key = recipe.key()
    rootfs = tmp / "rootfs"
    started = time.monotonic()
    run(["debootstrap", "--variant=minbase", f"--include={','.join(include)}", recipe.suite,
         rootfs, recipe.mirror], timeout=1800,
        what=f"debootstrap {recipe.suite} (+{', '.join(include)})")
    debootstrapped = time.monotonic() - started
    kernels = sorted((rootfs / "lib/modules").iterdir())
    if not kernels:
        raise BuildFailed(f"vm: debootstrap {recipe.suite} installed no kernel ({KERNEL})")
    kver = kernels[-1].name
    root_uuid = str(uuid.UUID(hex=hashlib.sha256(key.encode()).hexdigest()[:32]))
    _configure(run, rootfs, kver, root_uuid, recipe.flavor)
    configured = time.monotonic() - started
    boot = tmp / "boot.img"
    run(["mkfs.vfat", "-C", "-n", "BOOT", boot, str(BOOT_SECTORS * SECTOR // 1024)],
        what="mkfs.vfat (boot partition)")
    run(["syslinux", "--install", boot], what="syslinux --install")
    cfg = tmp / "syslinux.cfg"
    cfg.write_text(template("syslinux.cfg").replace("@UUID@", root_uuid))
    for src, dest in ((rootfs / f"boot/vmlinuz-{kver}", "vmlinuz"),
                      (rootfs / f"boot/initrd.img-{kver}", "initrd.img"), (cfg, "syslinux.cfg")):
        run(["mcopy", "-i", boot, src, f"::/{dest}"], what=f"mcopy {dest}")
    shutil.copy2(rootfs / f"boot/vmlinuz-{kver}", tmp / "vmlinuz")  # for the KVM probe
    disk = tmp / "disk.raw"
    size = recipe.disk_size * 1024 * 1024
    with disk.open("wb") as f:
        f.truncate(size)
    table = (f"label: dos\nlabel-id: 0x{key[:8]}\n"
             f"start={BOOT_START}, size={BOOT_SECTORS}, type=c, bootable\n"
             f"start={ROOT_START}, type=83\n")
    run(["sh", "-c", f"printf '%s' \"$0\" | sfdisk -q {disk}", table], what="sfdisk")
    with disk.open("r+b") as f:
        f.write(MBR.read_bytes()[:440])
        f.seek(BOOT_START * SECTOR)
        with boot.open("rb") as b:
            shutil.copyfileobj(b, f)
    blocks = (size - ROOT_START * SECTOR) // 4096
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", root_uuid, "-E",
         f"offset={ROOT_START * SECTOR}", "-d", rootfs, disk, str(blocks)],
        env={**env, "E2FSPROGS_FAKE_TIME": env.get("SOURCE_DATE_EPOCH", "0")},
        what="mkfs.ext4 -d (root filesystem)")
    shutil.rmtree(rootfs)
    run(["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", disk,
         tmp / "base.qcow2"], what="qemu-img convert (base)")
    disk.unlink()
    boot.unlink()
    meta = {"suite": recipe.suite, "flavor": recipe.flavor, "kernel": kver,
            "root_uuid": root_uuid, "root_offset": ROOT_START * SECTOR,
            "disk_size_mib": recipe.disk_size, "packages": ",".join(include),
            "mirror": recipe.mirror, "seconds": round(time.monotonic() - started, 1),
            "debootstrap_seconds": round(debootstrapped, 1),
            "configure_seconds": round(configured - debootstrapped, 1)}
    (tmp / "base.json").write_text(json.dumps(meta, indent=1, sort_keys=True))


def _configure(run: Runner, rootfs: Path, kver: str, root_uuid: str, flavor: Flavor) -> None:
    """An initramfs for hypervisors, fstab, hostname, an empty machine-id (each VM makes its
    own on first boot) and the flavor's first-boot machinery; docs and caches trimmed."""
    conf = rootfs / "etc/initramfs-tools"
    (conf / "conf.d").mkdir(parents=True, exist_ok=True)
    (conf / "conf.d/gradient.conf").write_text("MODULES=list\nCOMPRESS=gzip\n")
    (conf / "modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
    run(["chroot", rootfs, "update-initramfs", "-c", "-k", kver], check=False,
        what="update-initramfs (virtio drivers)")
    if not (rootfs / f"boot/initrd.img-{kver}").is_file():
        raise BuildFailed(f"vm: update-initramfs made no initrd for {kver}")
    # no boot-time fsck (pass 0): a journalled ext4 made fresh by mkfs; it cost ~4 s under TCG
    (rootfs / "etc/fstab").write_text(f"UUID={root_uuid} / ext4 defaults,errors=remount-ro 0 0\n")
    for unit in MASKED:
        masked = rootfs / "etc/systemd/system" / unit
        masked.parent.mkdir(parents=True, exist_ok=True)
        masked.unlink(missing_ok=True)
        masked.symlink_to("/dev/null")
    (rootfs / "etc/hostname").write_text("gradient-vm\n")
    (rootfs / "etc/machine-id").write_text("")
    if flavor == "gradient":
        script = rootfs / "usr/local/sbin/gradient-provision"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(template("gradient-provision"))
        script.chmod(0o755)
        units = rootfs / "etc/systemd/system"
        (units / "gradient-provision.service").write_text(template("gradient-provision.service"))
        wants = units / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "gradient-provision.service"
        link.unlink(missing_ok=True)
        link.symlink_to("/etc/systemd/system/gradient-provision.service")
    else:
        _cloud(run, rootfs)
    for rel in TRIM:
        folder = rootfs / rel
        if folder.is_dir() and not folder.is_symlink():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                elif child.name != "lock":
                    child.unlink()


def _cloud(run: Runner, rootfs: Path) -> None:
    """What a vendor cloud image does at first boot: cloud-init reads a NoCloud seed (the
    login user and its key) and only that datasource; the NIC gets DHCP from networkd,
    without waiting for a network that verification never gives it."""
    cfg = rootfs / "etc/cloud/cloud.cfg.d/90-gradient-standin.cfg"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(template("cloud-standin.cfg"))
    network = rootfs / "etc/systemd/network/20-wired.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text(template("cloud-wired.network"))
    run(["chroot", rootfs, "systemctl", "enable", "systemd-networkd.service"],
        what="systemctl enable systemd-networkd")
    run(["chroot", rootfs, "systemctl", "mask", "systemd-networkd-wait-online.service"],
        what="systemctl mask systemd-networkd-wait-online")
