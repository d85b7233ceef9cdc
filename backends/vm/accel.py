"""KVM or TCG: use KVM only when a guest really runs under it here, and never hang on it.

Measured here: /dev/kvm exists and answers, but the CPU shows no vmx/svm and a KVM guest hangs
after "Probing EDD". So the check is a probe: boot the base's kernel alone under KVM for at
most 10 s and look for "Linux version" on the serial console. Its outcome is remembered in
gradient's tool cache per host kernel, CPU and qemu, so it costs those seconds once.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gradient_build.backend import Tool

PROBE_SECONDS = 10


def _cpu() -> tuple[str, bool]:
    """(the CPU's model name, whether it shows vmx or svm)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown", False
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown")
    flags = {f for line in text.splitlines() if line.startswith("flags")
             for f in line.split(":", 1)[1].split()}
    return model, bool(flags & {"vmx", "svm"})


def precheck() -> tuple[bool, str]:
    """What can be told without booting anything: /dev/kvm usable, the CPU able to run it."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user"
    if shutil.which("qemu-system-x86_64") is None:
        return False, "no qemu-system-x86_64"
    model, virt = _cpu()
    if not virt:
        return False, f"/dev/kvm is there but the CPU ({model}) shows no vmx/svm: KVM guests hang"
    return True, "/dev/kvm usable and the CPU shows vmx/svm"


def _probe_key() -> str:
    qemu = shutil.which("qemu-system-x86_64") or ""
    stat = os.stat(qemu) if qemu else None
    text = json.dumps([platform.release(), _cpu()[0], qemu,
                       stat.st_size if stat else 0, stat.st_mtime_ns if stat else 0])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def probe(kernel: Path | None, cache: Path) -> tuple[bool, str]:
    """Whether a guest kernel boots under KVM here (cached); (False, why) otherwise."""
    store = cache / f"kvm-probe-{_probe_key()}.json"
    if store.exists():
        try:
            found = json.loads(store.read_text())
            return bool(found["ok"]), str(found["why"])
        except (ValueError, KeyError):
            pass
    ok, why = precheck()
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and shutil.which("qemu-system-x86_64"):
        if kernel is None or not kernel.is_file():
            return False, "no kernel to probe KVM with"
        booted, how = _boot_kernel(kernel)
        ok, why = booted, how if booted or ok else f"{how}; {why}"
    store.write_text(json.dumps({"ok": ok, "why": why}))
    return ok, why


def _boot_kernel(kernel: Path) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="gradient-kvm-probe-") as tmp:
        log = Path(tmp) / "console.log"
        cmd = ["qemu-system-x86_64", "-accel", "kvm", "-m", "256", "-nographic", "-nodefaults",
               "-no-reboot", "-nic", "none", "-serial", f"file:{log}", "-kernel", str(kernel),
               "-append", "console=ttyS0 panic=-1"]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while time.monotonic() - started < PROBE_SECONDS and proc.poll() is None:
            if log.exists() and b"Linux version" in log.read_bytes():
                proc.kill()
                proc.wait()
                return True, f"a kernel booted under KVM in {time.monotonic() - started:.1f} s"
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        seen = log.read_bytes() if log.exists() else b""
        if b"Linux version" in seen:
            return True, "a kernel booted under KVM"
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no console output"]
        return False, f"a kernel did not start under KVM within {PROBE_SECONDS} s ({detail[0]})"


def choose(setting: str, kernel: Path | None, cache: Path) -> tuple[str, str]:
    """("kvm" or "tcg", why) for `[tiers.vm] accelerator`."""
    if setting == "tcg":
        return "tcg", "[tiers.vm] accelerator = \"tcg\""
    ok, why = probe(kernel, cache)
    if setting == "kvm":
        return "kvm", "[tiers.vm] accelerator = \"kvm\"" + ("" if ok else f" (probe: {why})")
    return ("kvm" if ok else "tcg"), why


@dataclass(frozen=True)
class KvmTool(Tool):
    """KVM as `gradient tiers` shows it: present when the quick check passes (the real probe
    runs at build time, with the base's kernel)."""

    def present(self) -> bool:
        return precheck()[0]

    def version(self, cache: Path | None = None) -> str | None:
        ok, why = precheck()
        return why if ok else None


KVM = KvmTool("kvm", "hardware virtualization: vmx/svm in the CPU and a usable /dev/kvm; "
              "without it guests run under qemu's TCG (slower, same result)", required=False)
