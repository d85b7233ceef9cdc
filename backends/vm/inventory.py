"""What a VM disk holds, for its SBOM: read from the qcow2 itself, without mounting it.

A raw copy (`qemu-img convert`) is opened at its root partition's offset by e2fsprogs'
`debugfs`, as the verification does: the userspace's dpkg status and os-release, and the
`*.dist-info` of the app's tree under its install dir and of Python's site directories.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from gradient_build.backend import (
    Artifact,
    BuildFailed,
    Component,
    dist_component,
    dpkg_components,
    os_codename,
)

from .boot import root_offset

PYTHON_DIRS = ("/usr/lib/python3/dist-packages", "/usr/local/lib")


def _debugfs(fs: str, request: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["debugfs", "-R", request, fs], capture_output=True, timeout=300)


def components(artifact: Artifact) -> list[Component]:
    disk = artifact.path
    with tempfile.TemporaryDirectory(prefix="gradient-sbom-vm-") as tmp:
        raw = Path(tmp) / "disk.raw"
        converted = subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)],
                                   capture_output=True, text=True, timeout=600)
        if converted.returncode != 0:
            raise BuildFailed(f"vm: cannot read {disk.name} for its SBOM: "
                              f"{converted.stderr.strip()}")
        offset = root_offset(raw)
        if offset is None:
            raise BuildFailed(f"vm: {disk.name} has no ext4 root partition to list for its SBOM")
        fs = f"{raw}?offset={offset}"
        where = f"{artifact.primary}!/"
        release = b""
        for name in ("/usr/lib/os-release", "/etc/os-release"):
            release = _debugfs(fs, f"cat {name}").stdout
            if b"=" in release:
                break
        status = _debugfs(fs, "cat /var/lib/dpkg/status").stdout
        found = dpkg_components(status, os_codename(release), where + "var/lib/dpkg/status")
        tree = Path(tmp) / "tree"
        install = artifact.text("install_dir")
        for n, folder in enumerate([*([install] if install else []), *PYTHON_DIRS]):
            dest = tree / str(n)
            dest.mkdir(parents=True)
            _debugfs(fs, f'rdump "{folder}" "{dest}"')
            for metadata in sorted(dest.rglob("*.dist-info/METADATA")):
                rel = metadata.relative_to(dest).as_posix()
                comp = dist_component(metadata.read_bytes(), f"{where}{folder.strip('/')}/{rel}")
                found += [comp] if comp else []
        return found
