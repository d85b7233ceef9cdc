"""Reproducible `.conda` files, and the secret scan's reader for their `.tar.zst` members.

A `.conda` is an uncompressed zip of `metadata.json`, `info-*.tar.zst` and `pkg-*.tar.zst`.
rattler-build ignores SOURCE_DATE_EPOCH (PITFALLS): `info/index.json`'s `timestamp`, every
tar member's mtime and the zip entries' dates carry the build time, and `info/about.json`
lists the channels of the build (gradient's scratch paths). Repacking with sorted members,
owner 0, the epoch as every date and the index timestamp, and no build channels, gives the
same bytes from the same inputs. File contents are untouched, so `info/paths.json` (which
lists each payload file's sha256) stays true.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import zstandard

LEVEL = 16
CANONICAL = "/opt/gradient-conda-build/host_env_placehold_" + "placehold_" * 30
TEXT_PROBE = 8192


def repack(src: Path, dest: Path, epoch: int, needles: list[Path]) -> list[tuple[str, str]]:
    """Write `src` reproducibly to `dest`; returns (member, path) for text members that name
    one of `needles` (build paths)."""
    words = [(re.compile(re.escape(str(n).encode()) + rb"(?![\w.-])"), str(n))
             for n in dict.fromkeys(needles) if len(n.parts) > 2]
    leaks: list[tuple[str, str]] = []
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        infos = zin.infolist()
        info_tar = next(i for i in infos if i.filename.startswith("info-"))
        fix = Placeholders(_read(zin.read(info_tar), "info/paths.json"))
        payload = {i.filename: _retar(zin.read(i), epoch, i.filename, words, leaks, fix)
                   for i in infos if i.filename.startswith("pkg-")}
        for info in infos:
            data = payload.get(info.filename) or zin.read(info)
            if info is info_tar:
                data = _retar(data, epoch, info.filename, words, leaks, fix)
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.external_attr = 0o644 << 16
            entry.create_system = 3
            zout.writestr(entry, data, zipfile.ZIP_STORED)
    return leaks


class Placeholders:
    """rattler-build's prefix placeholder is its host prefix, under the build's scratch dir:
    a different path in every build. Each one becomes a fixed path of the same length (255),
    in the files holding it and in info/paths.json, whose sha256 and sizes follow."""

    def __init__(self, paths_json: bytes | None) -> None:
        entries = json.loads(paths_json)["paths"] if paths_json else []
        self.map = {e["prefix_placeholder"].encode(): CANONICAL[:len(
            e["prefix_placeholder"])].encode() for e in entries if e.get("prefix_placeholder")}
        self.changed: dict[str, tuple[str, int]] = {}

    def payload(self, name: str, content: bytes) -> bytes:
        new = content
        for old, canonical in self.map.items():
            new = new.replace(old, canonical)
        if new != content:
            self.changed[name] = (hashlib.sha256(new).hexdigest(), len(new))
        return new

    def paths(self, content: bytes) -> bytes:
        if not self.map:
            return content
        data = json.loads(content)
        for entry in data["paths"]:
            old = entry.get("prefix_placeholder", "").encode()
            if old in self.map:
                entry["prefix_placeholder"] = self.map[old].decode()
            if entry["_path"] in self.changed:
                entry["sha256"], entry["size_in_bytes"] = self.changed[entry["_path"]]
        return (json.dumps(data, indent=2) + "\n").encode()


def _read(data: bytes, member: str) -> bytes | None:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        f = tar.extractfile(member) if member in tar.getnames() else None
        return f.read() if f else None


def _retar(data: bytes, epoch: int, name: str, words: list[tuple[re.Pattern[bytes], str]],
           leaks: list[tuple[str, str]], fix: Placeholders) -> bytes:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tin, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tout:
        members = sorted(tin.getmembers(), key=lambda m: m.name)
        for member in members:
            content = tin.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if content is not None:
                content = (fix.paths(content) if member.name == "info/paths.json" else
                           _patched(member.name, content, epoch) if name.startswith("info-")
                           else fix.payload(member.name, content))
                if b"\0" not in content[:TEXT_PROBE]:
                    leaks += [(f"{name}!{member.name}", text) for word, text in words
                              if word.search(content)]
                member.size = len(content)
            member.mtime = epoch
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {}
            tout.addfile(member, io.BytesIO(content) if content is not None else None)
    compressor = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True, threads=0)
    return compressor.compress(out.getvalue())


def _patched(name: str, content: bytes, epoch: int) -> bytes:
    if name == "info/index.json":
        index = json.loads(content)
        index["timestamp"] = epoch * 1000
        return (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
    if name == "info/about.json":
        about = json.loads(content)
        about.pop("channels", None)  # the build's own local channels: scratch paths
        return (json.dumps(about, indent=2, sort_keys=True) + "\n").encode()
    return content


def tar_zst_members(data: IO[bytes], limit: int) -> Iterator[tuple[str, bytes | None]]:
    """The secret scan's view of a `.tar.zst` (a .conda's members): (name, content)."""
    with zstandard.ZstdDecompressor().stream_reader(data) as raw, \
            tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if member.isreg():
                f = tar.extractfile(member)
                yield member.name, (f.read() if f and member.size <= limit else None)


def members(package: Path) -> dict[str, bytes]:
    """Every regular file of a .conda by `info/...` or payload path (for tests and checks)."""
    found: dict[str, bytes] = {}
    with zipfile.ZipFile(package) as zf:
        for name in zf.namelist():
            if name.endswith(".tar.zst"):
                found |= {n: c or b"" for n, c in
                          tar_zst_members(io.BytesIO(zf.read(name)), 1 << 30)}
    return found
