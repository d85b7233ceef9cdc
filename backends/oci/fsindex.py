"""The filesystem an image's layers add up to, read from the layer tars without unpacking them.

Checks need it at build time (does the base have a C library, a python3, an /etc/passwd?)
and at verify time (is the entrypoint there, executable, is its interpreter there?); it
applies whiteouts the way overlayfs does and follows symlinks inside the image, never on
the host.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Small files every check reads: kept while the layers are first read, saving a pass each.
KEPT = {"etc/passwd", "etc/group"}
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


class _HashingReader:
    def __init__(self, src: IO[bytes] | gzip.GzipFile) -> None:
        self.src, self.hash = src, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.hash.update(data)
        return data


def read_layer(f: IO[bytes], want: set[str] | None = None
               ) -> tuple[list[tarfile.TarInfo], str, dict[str, bytes]]:
    """(members, diff_id, contents of the regular files named in `want`) of one layer blob,
    gzip or plain; the diff_id is the sha256 of the whole uncompressed tar."""
    magic = f.read(2)
    f.seek(0)
    src: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=f) if magic == b"\x1f\x8b" else f
    reader = _HashingReader(src)
    members: list[tarfile.TarInfo] = []
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            members.append(member)
            name = norm(member.name)
            if want and name in want and member.isreg():
                extracted = tar.extractfile(member)
                contents[name] = extracted.read() if extracted else b""
    while reader.read(1 << 20):
        pass
    return members, "sha256:" + reader.hash.hexdigest(), contents


def read_layer_cached(blob: Path, digest: str, want: set[str], cache: Path | None
                      ) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    """read_layer's members and `want` contents of a layer blob, kept in `cache` by the
    blob's digest: a base layer never changes, and reading it (gunzip, hash, walk a 100 MB
    tar) was 90% of a native build."""
    record = cache / f"{digest.replace(':', '-')}.json" if cache is not None else None
    if record is not None:
        try:
            data = json.loads(record.read_text())
            if data["size"] == blob.stat().st_size and set(data["kept"]) >= want:
                return ([_Member(*m) for m in data["members"]],  # type: ignore[misc]
                        {k: base64.b64decode(v) for k, v in data["kept"].items() if k in want})
        except (OSError, ValueError, KeyError, TypeError):
            pass
    with blob.open("rb") as f:
        members, _, kept = read_layer(f, want)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({
            "size": blob.stat().st_size,
            "members": [[m.name, m.type.decode(), m.mode, m.uid, m.linkname] for m in members],
            "kept": {k: base64.b64encode(v).decode() for k, v in kept.items()}}))
        os.replace(tmp, record)
    return members, kept


class _Member:
    """What FsIndex.apply reads of a tar member, rebuilt from a kept listing (a TarInfo
    costs ten times as much to make)."""

    __slots__ = ("linkname", "mode", "name", "type", "uid")

    def __init__(self, name: str, kind: str, mode: int, uid: int, linkname: str) -> None:
        self.name, self.type, self.mode, self.uid, self.linkname = (
            name, kind.encode(), mode, uid, linkname)

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE

    def islnk(self) -> bool:
        return self.type == tarfile.LNKTYPE

    def isreg(self) -> bool:
        return self.type in tarfile.REGULAR_TYPES


def norm(name: str) -> str:
    parts = [p for p in name.split("/") if p and p != "."]
    return "/".join(parts)


@dataclass
class Node:
    kind: str
    mode: int
    uid: int
    linkname: str
    layer: int


class FsIndex:
    """Paths (no leading slash) to what the topmost layer holding them says they are."""

    def __init__(self, opener: Callable[[int], IO[bytes]] | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.opener = opener
        self.layers = 0
        self.kept: dict[tuple[int, str], bytes] = {}

    def apply(self, members: list[tarfile.TarInfo], kept: dict[str, bytes] | None = None) -> None:
        """Lay one more layer on top: whiteouts delete, everything else replaces."""
        layer = self.layers
        self.layers += 1
        self.kept.update({(layer, name): data for name, data in (kept or {}).items()})
        for member in members:
            name = norm(member.name)
            parent, _, base = name.rpartition("/")
            if base == OPAQUE:
                self._remove_below(parent)
                continue
            if base.startswith(WHITEOUT):
                gone = f"{parent}/{base[len(WHITEOUT):]}" if parent else base[len(WHITEOUT):]
                self.nodes.pop(gone, None)
                self._remove_below(gone)
                continue
            kind = ("dir" if member.isdir() else "symlink" if member.issym()
                    else "hardlink" if member.islnk() else "file" if member.isreg() else "other")
            old = self.nodes.get(name)
            if old and old.kind == "dir" and kind != "dir":
                self._remove_below(name)
            linkname = norm(member.linkname) if kind == "hardlink" else member.linkname
            self.nodes[name] = Node(kind, member.mode, member.uid, linkname, layer)

    def _remove_below(self, name: str) -> None:
        prefix = f"{name}/" if name else ""
        for path in [p for p in self.nodes if p.startswith(prefix) and p != name]:
            del self.nodes[path]

    def resolve(self, path: str, follow: bool = True) -> str | None:
        """The path with every symlink inside the image followed, or None if it is not there."""
        todo = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/".join([*done, part])
            node = self.nodes.get(candidate)
            if node is None:
                return None
            if node.kind == "symlink" and (todo or follow):
                hops += 1
                if hops > 40:
                    return None
                target = node.linkname
                if target.startswith("/"):
                    done = []
                todo = [p for p in target.split("/") if p and p != "."] + todo
                continue
            done.append(part)
        return "/".join(done)

    def node(self, path: str) -> Node | None:
        """What `path` is once symlinks (and a hard link) are followed."""
        resolved = self.resolve(path)
        if resolved is None:
            return None
        node = self.nodes.get(resolved)
        if node and node.kind == "hardlink":
            target = self.nodes.get(node.linkname)
            if target is None:
                return None
            return Node("file", node.mode, node.uid, node.linkname, target.layer)
        if node is None and resolved == "":
            return Node("dir", 0o755, 0, "", 0)
        return node

    def real_name(self, path: str) -> str | None:
        """The member name whose bytes `path` reads (through symlinks and hard links)."""
        resolved = self.resolve(path)
        if resolved is None:
            return None
        node = self.nodes.get(resolved)
        return node.linkname if node and node.kind == "hardlink" else resolved

    def is_executable_file(self, path: str) -> bool:
        node = self.node(path)
        return node is not None and node.kind == "file" and bool(node.mode & 0o111)

    def which(self, command: str, search: str = DEFAULT_PATH) -> str | None:
        if "/" in command:
            return command if self.is_executable_file(command) else None
        for folder in search.split(":"):
            candidate = f"{folder.rstrip('/')}/{command}"
            if folder and self.is_executable_file(candidate):
                return candidate
        return None

    def read(self, path: str) -> bytes | None:
        """A file's bytes, read again from the layer that holds it."""
        name = self.real_name(path)
        node = self.node(path)
        if name is None or node is None or node.kind != "file" or self.opener is None:
            return None
        if (node.layer, name) in self.kept:
            return self.kept[(node.layer, name)]
        with self.opener(node.layer) as f:
            _, _, contents = read_layer(f, {name})
        return contents.get(name)
