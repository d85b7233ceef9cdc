"""Secrets never ship: look through an artifact (and the archives inside it) before promotion."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from . import member_digests
from .artifact import ArchiveReader
from .sources import file_digest

MAX_SCANNED = 64 << 20
MAX_DEPTH = 3

SECRET_NAMES = {
    ".env": "a dotenv file", ".pypirc": "a PyPI credentials file", ".netrc": "a netrc file",
    "id_rsa": "an SSH private key", "id_dsa": "an SSH private key",
    "id_ecdsa": "an SSH private key", "id_ed25519": "an SSH private key",
    ".git-credentials": "a git credentials file",
}
SECRET_PATTERNS = [  # (pattern, what it is, the literals one of which every match holds)
    (re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY"
                rb"( BLOCK)?-----"), "a private key", (b"-----BEGIN ",)),
    (re.compile(rb"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id", (b"AKIA",)),
    (re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token",
     (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_")),
    (re.compile(rb"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"), "a PyPI API token",
     (b"pypi-AgEIcHlwaS5vcmc",)),
    (re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token", (b"xox",)),
    (re.compile(rb"\bglpat-[A-Za-z0-9_-]{20,}"), "a GitLab token", (b"glpat-",)),
]
# One pass over each file instead of one per pattern: a base image holds thousands of files.
COMBINED = re.compile(b"|".join(b"(?P<p%d>%s)" % (i, pattern.pattern)
                                for i, (pattern, _, _) in enumerate(SECRET_PATTERNS)))
LITERALS = tuple(lit for _, _, lits in SECRET_PATTERNS for lit in lits)
"""No match without one of these: `bytes.find` looks for them at memory speed, where the
combined pattern (alternatives behind `\\b`, no literal prefix to skip to) ran ~11 MB/s:
9.6 ms for one 106 kB Python file, most of a tarball's scan."""


def secret_in(content: bytes) -> str | None:
    """What secret `content` holds (the first match's kind), or None."""
    if not any(lit in content for lit in LITERALS):
        return None
    match = COMBINED.search(content)
    return SECRET_PATTERNS[int(match.lastgroup[1:])][1] if match and match.lastgroup else None


MEMO_MIN = 1 << 20
STREAM_MIN = 4 << 20
"""Archives this large are scanned from the file, not read whole into memory first."""
ARCHIVE_SUFFIXES = (".whl", ".zip", ".pex", ".tar", ".tar.gz", ".tgz", ".conda")


@dataclass(frozen=True)
class Finding:
    where: str
    what: str


def _is_secret_name(name: str) -> str | None:
    base = PurePosixPath(name).name
    if base in SECRET_NAMES:
        return SECRET_NAMES[base]
    if base.startswith(".env.") and base not in (".env.example", ".env.sample", ".env.template"):
        return "a dotenv file"
    return None


def _named(where: str, name: str | None = None) -> list[Finding]:
    """The finding `name` (default: `where`) gives by its name alone, at `where`."""
    return [Finding(where, w) for w in [_is_secret_name(where if name is None else name)] if w]


def _reader(name: str, readers: Sequence[ArchiveReader]) -> ArchiveReader | None:
    return next((r for r in readers if name.endswith(r.suffixes)), None)


def _members(data: IO[bytes], name: str, readers: Sequence[ArchiveReader] = (),
             known_clean: Callable[[str], bool] = lambda member: False
             ) -> Iterator[tuple[str, bytes | None]]:
    """(member name, content or None when too large) of an archive: a format a tier
    registered, else zip or tar. A tar member `known_clean` by its name alone is passed
    over unread."""
    reader = _reader(name, readers)
    if reader is not None:
        try:
            yield from reader.members(data, MAX_SCANNED)
        except Exception:  # a tier's reader refusing these bytes: scanned as plain bytes
            return
        return
    try:
        if zipfile.is_zipfile(data):
            data.seek(0)
            with zipfile.ZipFile(data) as zf:
                for info in zf.infolist():
                    if not info.is_dir():
                        yield info.filename, (zf.read(info) if info.file_size <= MAX_SCANNED
                                              else None)
            return
        data.seek(0)
        with tarfile.open(fileobj=data, mode="r:*") as tar:
            for member in tar:
                if member.isreg() and not known_clean(member.name):
                    f = tar.extractfile(member)
                    yield member.name, (f.read() if f and member.size <= MAX_SCANNED else None)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        return


def _looks_like_archive(name: str, content: bytes, readers: Sequence[ArchiveReader]) -> bool:
    return (name.endswith(ARCHIVE_SUFFIXES) or _reader(name, readers) is not None
            or content[:4] == b"PK\x03\x04" or content[:2] == b"\x1f\x8b")


def scan_bytes(name: str, content: bytes, depth: int = 0, clean: set[str] | None = None,
               readers: Sequence[ArchiveReader] = (), digest: str | None = None
               ) -> Iterator[Finding]:
    """Findings in `content`; `clean` holds digests of large archives already found clean
    (a base image layer is the same in every build), and gains the ones found clean now.
    `digest` is the sha256 of `content` when the caller has it (not hashed a second time)."""
    what = _is_secret_name(name)
    if what:
        yield Finding(name, what)
    if depth < MAX_DEPTH and _looks_like_archive(name, content, readers):
        if digest is None and len(content) >= MEMO_MIN:
            digest = hashlib.sha256(content).hexdigest()
        if digest and clean is not None and digest in clean:
            return
        findings, opened = _scan_archive(name, io.BytesIO(content), depth, clean, readers,
                                         digest)
        yield from findings
        if opened:
            return
    found = secret_in(content)
    if found:
        yield Finding(name, found)


def _scan_archive(name: str, data: IO[bytes], depth: int, clean: set[str] | None,
                  readers: Sequence[ArchiveReader], digest: str | None
                  ) -> tuple[list[Finding], bool]:
    """(findings in the members of the archive `data`, whether it opened as one at all)."""
    findings: list[Finding] = []
    opened = False
    names: set[str] = set()
    twice: set[str] = set()
    hashed: dict[str, str] = {}
    passed_over: list[str] = []

    def known_clean(member: str) -> bool:  # an image's base layer, by its address
        address = member_digests.addressed(member) if depth == 0 else None
        if address is None or clean is None or address not in clean:
            return False
        passed_over.append(member)
        return True

    for member, data_of in _members(data, name, readers, known_clean):
        opened = True
        inner = f"{name}!{member}"
        (twice if member in names else names).add(member)
        if data_of is None:
            findings += _named(inner, member)
            continue
        inner_digest = None
        if (depth == 0 and digest and len(data_of) >= MEMO_MIN
                and _looks_like_archive(inner, data_of, readers)):
            inner_digest = hashed[member] = hashlib.sha256(data_of).hexdigest()
        findings += scan_bytes(inner, data_of, depth + 1, clean, readers, inner_digest)
    opened = opened or bool(passed_over)
    if depth == 0 and digest and hashed:  # the SBOM's reader opens the same members
        member_digests.publish(digest, hashed, twice)
    if digest and clean is not None and not findings and opened:
        clean.add(digest)
    return findings, opened


def is_archive(display: str, readers: Sequence[ArchiveReader] = ()) -> bool:
    """Named like an archive the scan opens (a large one is read whole, not just its head)."""
    return display.endswith(ARCHIVE_SUFFIXES) or _reader(display, readers) is not None


def scan_bytes_allowed(display: str, content: bytes, allow: list[str],
                       clean: set[str] | None = None, readers: Sequence[ArchiveReader] = (),
                       digest: str | None = None) -> tuple[list[Finding], bool]:
    """Secrets in `content` of a file already read, skipping `allow` patterns; and whether
    there was any finding at all before the allow-list (a file without is clean for any)."""
    if len(content) > MAX_SCANNED and not is_archive(display, readers):
        found = _named(display)
    else:
        found = list(scan_bytes(display, content, clean=clean, readers=readers, digest=digest))
    return _allowed(found, allow), bool(found)


def _allowed(findings: list[Finding], allow: list[str]) -> list[Finding]:
    return [f for f in findings
            if not any(fnmatch.fnmatch(f.where.split("!")[-1], pat) or fnmatch.fnmatch(f.where, pat)
                       for pat in allow)]


def scan_file(display: str, path: str, allow: list[str], clean: set[str] | None = None,
              readers: Sequence[ArchiveReader] = ()) -> list[Finding]:
    """Secrets in the file at `path` (shown as `display`), skipping `allow` glob patterns."""
    with open(path, "rb") as f:
        head = f.read(MAX_SCANNED + 1)
        if len(head) > MAX_SCANNED and not (display.endswith(ARCHIVE_SUFFIXES)
                                            or _reader(display, readers)):
            findings = _named(display)
        else:
            content = head + f.read()
            findings = list(scan_bytes(display, content, clean=clean, readers=readers))
    return _allowed(findings, allow)


def scan_artifact(root: Path, rels: list[str], allow: list[str], clean: set[str],
                  readers: Sequence[ArchiveReader] = ()) -> tuple[dict[str, str], list[Finding]]:
    """(sha256 of each file, the findings of the first file that has some) for an artifact's
    files, each read once; a file whose digest is in `clean` (found clean before: the same
    dependency wheels in every wheelhouse) is not scanned again, and one found clean now
    joins it. FileNotFoundError names a file that is not there."""
    digests: dict[str, str] = {}
    for rel in rels:
        path = root / rel
        if not path.is_file():
            raise FileNotFoundError(rel)
        size = path.stat().st_size
        if size > MAX_SCANNED and not is_archive(rel, readers):
            digests[rel] = file_digest(path)  # a disk image: its name is what is scanned
            findings, raw = scan_file(rel, str(path), allow), True
        elif size >= STREAM_MIN and is_archive(rel, readers):
            digests[rel] = digest = file_digest(path)
            if digest in clean:
                continue
            found = _scan_large_archive(rel, path, clean, readers, digest)
            findings, raw = _allowed(found, allow), bool(found)
        else:
            content = path.read_bytes()
            digests[rel] = digest = hashlib.sha256(content).hexdigest()
            if digest in clean:
                continue
            findings, raw = scan_bytes_allowed(rel, content, allow, clean, readers, digest)
        if findings:
            return digests, findings
        if not raw:
            clean.add(digest)
    return digests, []


def _scan_large_archive(rel: str, path: Path, clean: set[str],
                        readers: Sequence[ArchiveReader], digest: str) -> list[Finding]:
    """scan_bytes of a large archive, from the file: its members are read one at a time and
    a member known clean by its address is seeked past, never read (an image tar's 36 MB
    base layer: read whole and hashed, it was most of an oci build's scan)."""
    with path.open("rb") as f:
        head = f.read(4)
        f.seek(0)
        findings = _named(rel)
        if _looks_like_archive(rel, head, readers):
            found, opened = _scan_archive(rel, f, 0, clean, readers, digest)
            if opened:
                return findings + found
        f.seek(0)
        content = f.read(MAX_SCANNED + 1)
    if len(content) > MAX_SCANNED:  # named like an archive, but not one: too large to read
        return findings
    return findings + [Finding(rel, w) for w in [secret_in(content)] if w]
