"""What binutils and ldd say about an ELF file: the oracles gradient_build.elf is checked
against. Tests may run ldd (on binaries of this machine and ones they built); the code never
does, since ldd may execute the binary it is asked about."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

LDD_LINE = re.compile(r"^\s*(?:(\S+)\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)", re.M)
LDD_MISSING = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)
GLIBC = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")


def ldd(path: Path, library_path: list[Path] | None = None) -> tuple[dict[str, str], set[str]]:
    """({name: path} of what ldd lists, the loader under its file name; names not found).
    Paths are normalized: ld.so keeps an RPATH's `bin/../lib` as written, gradient does not
    (the path may become a path in an image)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C"}
    if library_path:
        env["LD_LIBRARY_PATH"] = ":".join(str(d) for d in library_path)
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env,
                         timeout=60).stdout
    found = {(m.group(1) or os.path.basename(m.group(2))): os.path.normpath(m.group(2))
             for m in LDD_LINE.finditer(out)}
    return found, set(LDD_MISSING.findall(out))


def readelf_glibc(path: Path) -> set[str]:
    """The GLIBC versions `readelf -V` lists in the version-needs section."""
    out = subprocess.run(["readelf", "--version-info", "--wide", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    needs = out[out.find("'.gnu.version_r'"):] if "'.gnu.version_r'" in out else ""
    return set(GLIBC.findall(needs))


def objdump_glibc(path: Path) -> set[str]:
    """The GLIBC versions of the undefined dynamic symbols `objdump -T` lists."""
    out = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return {v for line in out.splitlines() if "*UND*" in line for v in GLIBC.findall(line)}


def readelf_needed(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "--dynamic", "--wide", str(path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def readelf_interpreter(path: Path) -> str | None:
    out = subprocess.run(["readelf", "--program-headers", "--wide", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    found = re.search(r"Requesting program interpreter: ([^\]]+)\]", out)
    return found.group(1) if found else None
