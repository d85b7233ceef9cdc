"""What a frozen executable holds, for its SBOM: read from PyInstaller's archive itself.

A onefile executable's table of contents (PyInstaller's own CArchive reader) lists the bundled
`*.dist-info` metadata, the interpreter's libpython and every shared library; a onedir tarball
holds the same files under `_internal/` (its dist-info the core reads already). A library is
attributed to the Debian package it came from when the build machine's file of that name has
the same bytes and `dpkg -S` knows it: the attribution is a purl, never part of its identity.
"""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from gradient_build.backend import Artifact, Component, dist_component, os_codename, purl

LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64",
            "/usr/lib", "/lib", "/usr/local/lib")
LIBPYTHON = re.compile(r"libpython(\d+\.\d+)")


def _onefile_entries(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """(name, PyInstaller typecode, content) of the entries of a onefile's CArchive."""
    from PyInstaller.archive.readers import CArchiveReader

    reader = CArchiveReader(str(path))
    for name, entry in sorted(reader.toc.items()):
        typecode = entry[-1]
        if name.endswith(".dist-info/METADATA") or (typecode == "b" and "/" not in name):
            yield name, typecode, reader.extract(name)


def _onedir_entries(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """The shared libraries directly in a onedir's `_internal/` (the same set)."""
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if member.isreg() and len(parts) == 3 and parts[1] == "_internal" and (
                    ".so" in parts[2]):
                f = tar.extractfile(member)
                if f is not None:
                    yield parts[2], "b", f.read()


def components(artifact: Artifact) -> list[Component]:
    path = artifact.path
    entries = (_onedir_entries(path) if artifact.text("mode") == "onedir"
               else _onefile_entries(path))
    found: list[Component] = []
    libraries: list[tuple[str, str, bytes, str]] = []
    for name, typecode, content in entries:
        where = f"{artifact.primary}!{name}"
        if name.endswith(".dist-info/METADATA"):
            comp = dist_component(content, where)
            found += [comp] if comp else []
        elif typecode == "b":
            libraries.append((name, hashlib.sha256(content).hexdigest(), content, where))
    packages = _debian_packages({(name, sha) for name, sha, _, _ in libraries})
    for name, sha, content, where in libraries:
        found += library(name, sha, content, where, packages.get((name, sha)))
    return found


def library(name: str, sha: str, content: bytes, where: str,
            package: tuple[str, str, str] | None) -> list[Component]:
    """A bundled shared library; libpython also names the interpreter (CPython X.Y.Z)."""
    locator = (purl("deb", package[0], package[1], "debian", arch=package[2],
                    distro=_codename()) if package else purl("generic", name))
    found = [Component("library", name, package[1] if package else "", locator, sha,
                       ref=f"library:{name}", where=where)]
    python = LIBPYTHON.match(name)
    if python:
        version = _python_version(content, python.group(1))
        found.append(Component("interpreter", "cpython", version,
                               purl("generic", "cpython", version), where=where))
    return found


def _python_version(content: bytes, short: str) -> str:
    """X.Y.Z from libpython's exported `Py_Version` (PY_VERSION_HEX, Python 3.11+), else X.Y."""
    import io

    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    try:
        elf = ELFFile(io.BytesIO(content))
        table = elf.get_section_by_name(".dynsym")
        symbols = (table.get_symbol_by_name("Py_Version")
                   if isinstance(table, SymbolTableSection) else None)
        if not symbols:
            return short
        address = symbols[0]["st_value"]
        for segment in elf.iter_segments():
            start, size = segment["p_vaddr"], segment["p_filesz"]
            if segment["p_type"] == "PT_LOAD" and start <= address < start + size:
                at = segment["p_offset"] + address - start
                value = int.from_bytes(content[at:at + 4], "little")
                version = f"{value >> 24}.{(value >> 16) & 0xFF}.{(value >> 8) & 0xFF}"
                return version if version.startswith(short + ".") else short
    except Exception:  # not an ELF this reader knows: the soname's X.Y is still true
        return short
    return short


@functools.cache
def _codename() -> str:
    try:
        return os_codename(Path("/etc/os-release").read_bytes())
    except OSError:
        return ""


def _host_copies(name: str, sha: str) -> list[str]:
    """Paths on this machine of a file named `name` with these bytes, as dpkg may list them
    (merged /usr: the database may say /lib/... for /usr/lib/...)."""
    for folder in LIB_DIRS:
        candidate = Path(folder) / name
        try:
            if hashlib.sha256(candidate.read_bytes()).hexdigest() != sha:
                continue
        except OSError:
            continue
        real = candidate.resolve()
        merged = [Path(str(p).replace("/usr/lib/", "/lib/", 1)) for p in (candidate, real)]
        return list(dict.fromkeys(str(p) for p in (candidate, real, *merged)))
    return []


def _debian_packages(libraries: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str,
                                                                                     str]]:
    """(package, version, arch) by (library name, sha256), for the libraries whose bytes are a
    file dpkg owns here: one `dpkg -S` and one `dpkg-query` for them all (each reads dpkg's
    whole database)."""
    paths = {lib: _host_copies(*lib) for lib in sorted(libraries)}
    wanted = sorted({p for found in paths.values() for p in found})
    if not wanted:
        return {}
    try:
        owners = subprocess.run(["dpkg", "-S", *wanted], capture_output=True, text=True,
                                timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    owner_of: dict[str, str] = {}
    for line in owners.splitlines():
        qualified, sep, owned = line.partition(": ")
        if sep and "," not in qualified:  # "pkg:arch: /path" (diversions list several)
            owner_of[owned.strip()] = qualified.strip()
    qualified_names = sorted(set(owner_of.values()))
    if not qualified_names:
        return {}
    try:
        shown = subprocess.run(["dpkg-query", "-W", "-f", "${binary:Package} ${Version} "
                                "${Architecture}\n", *qualified_names], capture_output=True,
                               text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    versions: dict[str, tuple[str, str]] = {}
    for line in shown.splitlines():
        parts = line.split()
        if len(parts) == 3:
            versions[parts[0]] = (parts[1], parts[2])
            versions[parts[0].partition(":")[0]] = (parts[1], parts[2])
    result: dict[tuple[str, str], tuple[str, str, str]] = {}
    for lib, found in paths.items():
        owner = next((owner_of[p] for p in found if p in owner_of), None)
        if owner and owner in versions:
            version, arch = versions[owner]
            result[lib] = (owner.partition(":")[0], version, arch)
    return result
