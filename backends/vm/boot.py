"""Verification: boot a copy of the image offline under qemu and read the smoke on ttyS0.

The smoke unit is written into a throw-away raw copy of the image with debugfs (no mounts:
e2fsprogs opens `disk.raw?offset=N`), so the artifact itself never carries it. The unit runs
the [verify] command as a dynamic non-root user; a root ExecStopPost prints a marker unique to
this run with the exit code and output to /dev/ttyS0 and powers off. The copy's serial getty is
masked: starting, it hangs up ttyS0 and a report being written is cut off. qemu runs with
`-nodefaults -nic none -no-reboot` and the disk as `snapshot=on`.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gradient_build.backend import JSON, Artifact, Result, Verdict, VerifyContext
from gradient_build.helpers import minimal_env, tail

from .base import template

if TYPE_CHECKING:
    from . import VmOptions

EXT_MAGIC_AT = 1080  # the ext2/3/4 superblock's magic 0xEF53, from the partition's start


def partitions(disk: Path) -> list[tuple[int, str]]:
    """(byte offset, type) of each partition of a raw disk (MBR or GPT)."""
    proc = subprocess.run(["sfdisk", "--json", str(disk)], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        return []
    table = json.loads(proc.stdout)["partitiontable"]
    size = int(table.get("sectorsize", 512))
    return [(int(p["start"]) * size, str(p.get("type", ""))) for p in table["partitions"]]


def root_offset(disk: Path) -> int | None:
    """The offset of the ext4 partition holding /etc/os-release (the root filesystem)."""
    with disk.open("rb") as f:
        for offset, _ in partitions(disk):
            f.seek(offset + EXT_MAGIC_AT)
            if f.read(2) != b"\x53\xef":
                continue
            proc = subprocess.run(["debugfs", "-R", "stat /etc/os-release",
                                   f"{disk}?offset={offset}"], capture_output=True, text=True,
                                  timeout=60)
            if "Inode:" in proc.stdout:
                return offset
    return None


def boot_offset(disk: Path) -> int | None:
    """The offset of the first FAT partition (the kernel lives there)."""
    fat = {"c", "b", "e", "6", "ef", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"}
    return next((off for off, kind in partitions(disk) if kind.lower() in fat), None)


def smoke_script(ctx: VerifyContext[VmOptions], artifact: Artifact) -> tuple[list[str], str]:
    """(the command the guest runs, a sh script running it)."""
    smoke = ctx.smoke
    launchers = artifact.texts("launchers_on_path")
    if smoke.runs_app:
        name = smoke.script or (launchers[0] if launchers else ctx.project.name)
        cmd = [name, *smoke.args]
    else:
        lib = artifact.text("pythonpath")
        code = smoke.python_code([ctx.project.import_name])
        if lib:
            code = f"import sys; sys.path.insert(0, {lib!r})\n" + code
        cmd = ["python3", "-I", "-c", code]
    return cmd, "exec " + " ".join(shlex.quote(c) for c in cmd) + " 2>&1\n"


def kernel_of(disk: Path, where: Path) -> Path | None:
    """The image's kernel (for the KVM probe): from gradient's FAT boot partition, else the
    newest /boot/vmlinuz-* of its ext4 root (a vendor cloud image)."""
    dest = where / "vmlinuz"
    offset = boot_offset(disk)
    if offset is not None:
        proc = subprocess.run(["mcopy", "-n", "-i", f"{disk}@@{offset}", "::/vmlinuz",
                               str(dest)], capture_output=True, timeout=60)
        if proc.returncode == 0 and dest.is_file():
            return dest
    root = root_offset(disk)
    if root is None:
        return None
    listing = subprocess.run(["debugfs", "-R", "ls -p /boot", f"{disk}?offset={root}"],
                             capture_output=True, text=True, timeout=60).stdout
    names = sorted(field for line in listing.splitlines() for field in line.split("/")
                   if field.startswith("vmlinuz-"))
    if not names:
        return None
    subprocess.run(["debugfs", "-R", f"dump /boot/{names[-1]} {dest}", f"{disk}?offset={root}"],
                   capture_output=True, timeout=120)
    return dest if dest.is_file() and dest.stat().st_size > 0 else None


def verify_image(ctx: VerifyContext[VmOptions], artifact: Artifact,
                 choose: Callable[[Path | None], tuple[str, str]]) -> Verdict:
    place = ctx.sandbox.fresh_dir("gradient-vm-")
    disk = place / "disk.raw"
    started = time.monotonic()
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(artifact.path), str(disk)],
                   check=True, capture_output=True, timeout=600)
    offset = root_offset(disk)
    if offset is None:
        return Verdict(False, [], None, 0.0, "", level="ran",
                       problem="the image has no ext4 partition holding /etc/os-release to add "
                               "the smoke unit to")
    marker = f"GRADIENT-SMOKE-{secrets.token_hex(8)}"
    cmd, run = smoke_script(ctx, artifact)
    files = {"run": run, "report": template("gradient-smoke-report").replace("@MARKER@", marker),
             "unit": template("gradient-smoke.service")}
    for name, text in files.items():
        (place / name).write_text(text)
    script = "\n".join([
        "mkdir /usr/local/lib/gradient-smoke",
        f"write {place / 'run'} /usr/local/lib/gradient-smoke/run",
        f"write {place / 'report'} /usr/local/lib/gradient-smoke/report",
        f"write {place / 'unit'} /etc/systemd/system/gradient-smoke.service",
        "mkdir /etc/systemd/system/multi-user.target.wants",
        "symlink /etc/systemd/system/multi-user.target.wants/gradient-smoke.service "
        "/etc/systemd/system/gradient-smoke.service",
        # a getty starting on ttyS0 hangs the line up under the report's open file: its END
        # line was lost once (vm-ssh bench, cloud-init delaying the getty into the report)
        "rm /etc/systemd/system/serial-getty@ttyS0.service",
        "symlink /etc/systemd/system/serial-getty@ttyS0.service /dev/null", ""])
    subprocess.run(["debugfs", "-w", "-f", "-", f"{disk}?offset={offset}"], input=script,
                   text=True, capture_output=True, check=True, timeout=120)
    accelerator, accel_why = choose(kernel_of(disk, place))
    prepared = time.monotonic() - started
    log = place / "console.log"
    qemu = ["qemu-system-x86_64", "-accel", accelerator, "-m", str(ctx.options.memory),
            "-nographic", "-nodefaults", "-no-reboot", "-nic", "none",
            "-serial", f"file:{log}", "-drive", f"file={disk},format=raw,if=virtio,snapshot=on"]
    timeout = ctx.options.boot_timeout + ctx.smoke.timeout
    result = ctx.sandbox.run(qemu, cwd=place, env=minimal_env(), timeout=timeout)
    console = log.read_text(errors="replace") if log.exists() else ""
    extra: dict[str, JSON] = {"accelerator": accelerator, "accelerator_why": accel_why,
                              "qemu": qemu, "boot_seconds": round(result.seconds, 1),
                              "prepare_seconds": round(prepared, 1)}
    found = re.search(rf"{marker}-END exit=(\S+) result=(\S+) out=(\S*)", console)
    if not found:
        why = ("timed out" if result.timed_out else f"qemu exited with {result.exit_code}")
        return Verdict(False, cmd, None, round(result.seconds, 3), tail(console, 40), extra,
                       problem=f"the smoke never reported on the serial console ({why} after "
                               f"{result.seconds:.0f} s of {timeout} s); the console's tail "
                               "is the output")
    code_text, service_result, encoded = found.groups()
    try:
        output = base64.b64decode(encoded).decode(errors="replace")
    except ValueError:
        output = console[console.find(f"{marker}-BEGIN"):found.start()]
    code = int(code_text) if code_text.isdigit() else None
    extra["service_result"] = service_result
    judged = ctx.smoke.judge(Result(cmd, code, output, result.seconds), extra=extra)
    if code is None:
        judged.ok = False
        judged.problem = f"the smoke unit ended with {service_result} (no exit code)"
    return judged
