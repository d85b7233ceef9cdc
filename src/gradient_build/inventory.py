"""What an artifact holds, read from its bytes (never from the build's inputs).

Generic readers by format, so a tier that does not exist yet is covered by what it ships:
zip (wheels, pex, .conda), tar (any compression tarfile knows), ar (.deb) and every
`ArchiveReader` a tier registers (a .conda's zstd tars), opened recursively. Inside them three
things name a component: a `*.dist-info/METADATA` (a Python distribution), a dpkg `status`
file (a Debian userspace), a conda `info/index.json` (a conda package). What only a tier knows
(a PyInstaller archive, a disk image) comes from its `Backend.inventory` hook.

A Python distribution is identified the same way in every tier: purl `pkg:pypi/NAME@VERSION`
and the SHA-256 of its METADATA file, which installers copy byte for byte from the wheel, so
the wheelhouse's wheel, a tarball's installed copy and a frozen app's bundled metadata agree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath
from typing import IO

from . import inflate, member_digests
from .artifact import ArchiveReader
from .atomic import write_text_atomic

MAX_DEPTH = 4
MAX_MEMBER = 1 << 30
MEMO_MIN = 4 << 20
ARCHIVES = (".whl", ".zip", ".pex", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".conda",
            ".deb", ".egg", ".pyz", ".jar")
DPKG_STATUS = "var/lib/dpkg/status"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")


@dataclass(frozen=True)
class Component:
    """One thing an artifact contains. `ref` (the bom-ref) defaults to the purl; `depends`
    holds the names of what it requires, resolved to refs of what the artifact also holds."""

    kind: str  # "python", "deb", "conda", "interpreter", "library"
    name: str
    version: str
    purl: str
    sha256: str = ""
    license: str = ""
    depends: tuple[str, ...] = ()
    ref: str = ""
    where: str = field(default="", compare=False)
    """Where in the artifact it was found, for messages (not part of its identity)."""

    @property
    def bom_ref(self) -> str:
        return self.ref or self.purl

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


def purl(kind: str, name: str, version: str = "", namespace: str | None = None,
         **qualifiers: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL(kind, namespace, name, version or None,
                          {k: v for k, v in qualifiers.items() if v} or None).to_string())


def _short_license(text: str | None) -> str:
    line = (text or "").strip()
    return line if line and "\n" not in line and len(line) <= 80 else ""


_SEPARATORS = re.compile(r"[-_.]+")


def canonicalize_name(name: str) -> str:
    """A project name as PEP 503 normalises it (packaging.utils.canonicalize_name, whose
    module imports packaging.tags: ~10 ms of the helper's and the build's start-up)."""
    return _SEPARATORS.sub("-", name).lower()


def dist_component(metadata: bytes, where: str = "") -> Component | None:
    """A Python distribution from the bytes of its METADATA (or PKG-INFO) file."""
    headers = BytesHeaderParser().parsebytes(metadata)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    from packaging.requirements import InvalidRequirement, Requirement  # ~10 ms: read a dist

    requires: set[str] = set()
    for text in headers.get_all("Requires-Dist") or []:
        try:
            requires.add(canonicalize_name(Requirement(str(text)).name))
        except InvalidRequirement:
            continue
    norm = canonicalize_name(str(name))
    version = str(version).strip()
    return Component("python", norm, version, purl("pypi", norm, version),
                     hashlib.sha256(metadata).hexdigest(),
                     _short_license(headers.get("License-Expression") or headers.get("License")),
                     tuple(sorted(requires)), where=where)


def os_codename(os_release: bytes) -> str:
    found = re.search(rb"^VERSION_CODENAME=\"?([\w.-]+)", os_release, re.M)
    return found.group(1).decode() if found else ""


def dpkg_components(status: bytes, distro: str = "", where: str = "") -> list[Component]:
    """The installed packages of a dpkg status file, as `pkg:deb/debian/...` components."""
    found: list[Component] = []
    for stanza in status.decode(errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        last = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and last:
                fields[last] += "\n" + line
            elif ":" in line:
                last, _, value = line.partition(":")
                fields[last] = value.strip()
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version or not fields.get("Status", "").endswith(" installed"):
            continue
        arch = fields.get("Architecture", "")
        depends = {re.split(r"[\s(:]", alt.strip(), maxsplit=1)[0]
                   for key in ("Pre-Depends", "Depends")
                   for part in fields.get(key, "").split(",") for alt in part.split("|")
                   if alt.strip()}
        found.append(Component("deb", name, version,
                               purl("deb", name, version, "debian", arch=arch, distro=distro),
                               license="", depends=tuple(sorted(depends)), where=where))
    return found


def conda_component(index: bytes, package_sha256: str, where: str = "") -> Component | None:
    data = json.loads(index)
    name, version = data.get("name"), data.get("version")
    if not name or not version:
        return None
    return Component("conda", name, version,
                     purl("conda", name, version, build=str(data.get("build", "")),
                          subdir=str(data.get("subdir", ""))),
                     package_sha256, _short_license(data.get("license")),
                     tuple(sorted({str(d).split()[0] for d in data.get("depends", [])})),
                     where=where)


def _wanted(name: str) -> bool:
    rel = name.lstrip("./")
    return (rel.endswith(".dist-info/METADATA") or rel == DPKG_STATUS or rel in OS_RELEASE
            or rel == "info/index.json")


def _ar_members(data: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """Members of a Unix ar archive (a .deb: debian-binary, control.tar.*, data.tar.*)."""
    if data.read(8) != b"!<arch>\n":
        return
    while True:
        header = data.read(60)
        if len(header) < 60:
            return
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip() or 0)
        content = data.read(size)
        if size % 2:
            data.read(1)
        yield name, content


def members(data: IO[bytes], name: str, readers: Sequence[ArchiveReader],
            want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]] | None:
    """(name, content) of the members `want` picks, or None when `data` is no archive
    known here. A tier's registered reader wins over the generic formats."""
    reader = next((r for r in readers if name.endswith(r.suffixes)), None)
    if reader is not None:
        return ((n, c) for n, c in reader.members(data, MAX_MEMBER) if c is not None and want(n))
    head = data.read(8)
    data.seek(0)
    if head.startswith(b"!<arch>\n"):
        return ((n, c) for n, c in _ar_members(data) if want(n))
    if zipfile.is_zipfile(data):
        data.seek(0)
        return _zip_members(data, want)
    if head.startswith(b"\x1f\x8b") and data.seek(0, os.SEEK_END) >= inflate.CHUNK:
        data.seek(0)
        stream = inflate.ahead(data)  # a large .tar.gz: inflated beside the header walk
        try:
            tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115  (closed by its reader)
        except (tarfile.TarError, OSError, EOFError):
            stream.close()
            return None
        return _tar_members(tar, want, stream)
    data.seek(0)
    try:
        tar = tarfile.open(fileobj=data, mode="r:*")  # noqa: SIM115  (closed by its reader)
    except (tarfile.TarError, OSError, EOFError):
        return None
    return _tar_members(tar, want)


def _zip_members(data: IO[bytes], want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(data) as zf:
        for info in zf.infolist():
            if not info.is_dir() and want(info.filename):
                yield info.filename, zf.read(info)


def _tar_members(tar: tarfile.TarFile, want: Callable[[str], bool],
                 stream: IO[bytes] | None = None) -> Iterator[tuple[str, bytes]]:
    """Members in order (a forward-only `stream` allows no other), `stream` closed after."""
    try:
        with tar:
            for member in tar:
                if member.isreg() and want(member.name):
                    f = tar.extractfile(member)
                    if f is not None:
                        yield member.name, f.read()
    finally:
        if stream is not None:
            stream.close()


def _nested(name: str, readers: Sequence[ArchiveReader]) -> bool:
    """A member worth opening as an archive: by its name, or an OCI layout's blob."""
    rel = name.lstrip("./")
    return (rel.endswith(ARCHIVES) or any(rel.endswith(r.suffixes) for r in readers)
            or (rel.startswith("blobs/") and PurePosixPath(rel).suffix == ""))


class Memo:
    """The components of large nested archives by content digest, kept in `folder`: a base
    image's layer is the same bytes in every build, and reading it is most of an oci SBOM."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.seen: dict[str, list[dict[str, object]]] = {}

    def get(self, sha: str, where: str) -> list[Component] | None:
        items = self.seen.get(sha)
        if items is None and self.folder is not None:
            try:
                items = json.loads((self.folder / f"{sha}.json").read_text())
            except (OSError, ValueError):
                return None
        if items is None:
            return None
        self.seen[sha] = items
        return [Component(**{**item, "depends": tuple(item["depends"]),  # type: ignore[arg-type]
                             "where": f"{where}!{item['where']}"}) for item in items]

    def put(self, sha: str, where: str, found: list[Component]) -> None:
        items = [dataclasses.asdict(c) | {"where": c.where.removeprefix(f"{where}!")}
                 for c in found]
        self.seen[sha] = items
        if self.folder is not None:
            write_text_atomic(self.folder / f"{sha}.json", json.dumps(items))  # two nodes'
            # SBOMs may be read side by side, and hold the same base layer


def read_components(display: str, data: IO[bytes], readers: Sequence[ArchiveReader] = (),
                    depth: int = 0, package_sha: str = "", memo: Memo | None = None,
                    outer: str = "") -> list[Component]:
    """Every component inside the archive `data` (named `display`), recursively; `outer`
    is the digest of `data` when known (its members' digests may be known then)."""
    found: list[Component] = []

    def want(name: str) -> bool:
        if _wanted(name):
            return True
        if depth >= MAX_DEPTH or not _nested(name, readers):
            return False
        remembered = _by_address(name, f"{display}!{name}", memo)
        if remembered is None:
            return True
        found.extend(remembered)  # its components known: its bytes need not be read
        return False

    opened = members(data, display, readers, want)
    if opened is None:
        return []
    statuses: list[tuple[str, bytes]] = []
    codename = ""
    try:
        for member, content in opened:
            rel = member.lstrip("./")
            where = f"{display}!{member}"
            try:
                found += _component_of(rel, where, content, readers, depth, package_sha, memo,
                                       member_digests.known(outer, member))
            except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError):
                continue  # a member that only looks like an archive, or unreadable metadata
            if rel == DPKG_STATUS:
                statuses.append((where, content))
            elif rel in OS_RELEASE:
                codename = codename or os_codename(content)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        pass  # the rest of a truncated archive: what was read so far still counts
    for where, status in statuses:
        found += dpkg_components(status, codename, where)
    return found


def _by_address(name: str, where: str, memo: Memo | None) -> list[Component] | None:
    """The remembered components of an OCI layout's blob, found by its name
    (member_digests.addressed): a base layer seen before is not read again (36 MB read and
    hashed: most of an oci SBOM)."""
    digest = member_digests.addressed(name)
    return memo.get(digest, where) if memo is not None and digest else None


def _component_of(rel: str, where: str, content: bytes, readers: Sequence[ArchiveReader],
                  depth: int, package_sha: str, memo: Memo | None,
                  digest: str | None = None) -> list[Component]:
    """The components one member names: itself (metadata) or those inside it (an archive)."""
    if rel.endswith(".dist-info/METADATA"):
        comp = dist_component(content, where)
        return [comp] if comp else []
    if rel == "info/index.json":
        comp = conda_component(content, package_sha, where)
        return [comp] if comp else []
    if rel == DPKG_STATUS or rel in OS_RELEASE:
        return []  # read once the whole archive is seen (os-release may come after)
    sha = (hashlib.sha256(content).hexdigest() if rel.endswith((".conda", ".tar.bz2"))
           else package_sha)
    if memo is None or len(content) < MEMO_MIN:
        return read_components(where, io.BytesIO(content), readers, depth + 1, sha, memo)
    digest = digest or hashlib.sha256(content).hexdigest()  # the scan's, when it had it
    known = memo.get(digest, where)
    if known is None:
        known = read_components(where, io.BytesIO(content), readers, depth + 1, sha, memo)
        memo.put(digest, where, known)
    return known


def read_file(path: str, display: str, readers: Sequence[ArchiveReader] = (),
              memo: Memo | None = None, file_sha: str = "") -> list[Component]:
    """The components of one file of an artifact (none when it is no archive); `file_sha`
    is its digest when the caller has it."""
    sha = ""
    if display.endswith((".conda", ".tar.bz2")):
        if not file_sha:
            with open(path, "rb") as f:
                file_sha = hashlib.file_digest(f, "sha256").hexdigest()
        sha = file_sha
    with open(path, "rb") as f:
        return read_components(display, f, readers, 0, sha, memo, file_sha)


def unique(components: Iterable[Component]) -> list[Component]:
    """One entry per identity, sorted; the same purl with other bytes gets its own ref."""
    by_identity: dict[tuple[str, str, str], Component] = {}
    for comp in components:
        by_identity.setdefault((comp.bom_ref, comp.purl, comp.sha256), comp)
    result: list[Component] = []
    seen: set[str] = set()
    for key in sorted(by_identity):
        comp = by_identity[key]
        if comp.bom_ref in seen:
            comp = replace(comp, ref=f"{comp.bom_ref}#sha256:{comp.sha256[:16]}")
        seen.add(comp.bom_ref)
        result.append(comp)
    return result
