"""The glibc floor: the newest GLIBC_x.y symbol version an ELF file asks its C library for.

A frozen executable runs on any Linux whose glibc is at least that version, so the floor is
what the oci tier (and a user choosing a base image) needs to know. `readelf` or `objdump`
read it when binutils is installed; otherwise a small reader of the `.gnu.version_r` section.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
SHT_GNU_VERNEED = 0x6FFFFFFE
GLIBC = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")


def is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def highest(versions: Iterable[str]) -> str | None:
    found = list(versions)
    return max(found, key=version_key) if found else None


def needed_versions(data: bytes) -> set[str]:
    """Every version name in the ELF image's version-needs section (`.gnu.version_r`)."""
    if data[:4] != ELF_MAGIC or len(data) < 64:
        raise ValueError("not an ELF file")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x3A)
        section = end + "IIQQQQIIQQ"
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", data, 0x2E)
        section = end + "IIIIIIIIII"
    headers = [struct.unpack_from(section, data, shoff + i * shentsize) for i in range(shnum)]
    names: set[str] = set()
    for header in headers:
        if header[1] != SHT_GNU_VERNEED:
            continue
        offset, link, count = header[4], header[6], header[7]
        strtab = headers[link][4]

        def string(at: int, base: int = strtab) -> str:
            stop = data.index(b"\0", base + at)
            return data[base + at:stop].decode("ascii", "replace")

        entry = offset
        for _ in range(count):
            _ver, cnt, _file, aux, nxt = struct.unpack_from(end + "HHIII", data, entry)
            at = entry + aux
            for _ in range(cnt):
                _hash, _flags, _other, name, aux_next = struct.unpack_from(end + "IHHII", data, at)
                names.add(string(name))
                if not aux_next:
                    break
                at += aux_next
            if not nxt:
                break
            entry += nxt
    return names


def glibc_versions_python(path: Path) -> set[str]:
    return {m.group(1) for name in needed_versions(path.read_bytes())
            if (m := GLIBC.fullmatch(name))}


def glibc_versions(path: Path) -> set[str]:
    """GLIBC versions `path` needs: readelf, else objdump, else the reader above."""
    readelf, objdump = shutil.which("readelf"), shutil.which("objdump")
    if readelf:
        cmd = [readelf, "--version-info", "--wide", str(path)]
    elif objdump:
        cmd = [objdump, "-T", str(path)]
    else:
        return glibc_versions_python(path)
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=60)
    if proc.returncode != 0:
        return glibc_versions_python(path)
    text = proc.stdout
    if readelf:
        # only the needs (.gnu.version_r), not the versions a library itself defines
        start = text.find("'.gnu.version_r'")
        text = text[start:] if start >= 0 else ""
    return {m.group(1) for m in GLIBC.finditer(text)}


def glibc_floor(paths: Iterable[Path]) -> str | None:
    """The highest GLIBC version any of the ELF files in `paths` needs."""
    found: set[str] = set()
    for path in paths:
        if path.is_file() and not path.is_symlink() and is_elf(path):
            found |= glibc_versions(path)
    return highest(found)


def elf_files(root: Path) -> list[Path]:
    """Regular ELF files below `root` (symlinks are counted once, as their target)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))
