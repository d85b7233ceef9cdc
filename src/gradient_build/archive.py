"""Deterministic archives: sorted entries, owner 0, fixed times and modes, gzip without a date.

Every tier that packs files (sdist repacking, tarball, oci layers) uses these, so the same
inputs give the same bytes whatever the build machine's clock, umask or user.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

# gzip's own default (and `tar czf`'s, and Docker's layers'): level 9 is ~7x slower on a few MB
# of package data for ~4% smaller files. A tier that wants the smallest archive passes 9.
GZIP_LEVEL = 6
GzipLevel = Literal[1, 2, 3, 4, 5, 6, 7, 8, 9]

# gzip_bytes deflates chunks of this size side by side. Fixed, never the CPU count: the
# archive's bytes depend on it. Each chunk is primed with the window before it, as pigz does.
CHUNK = 1 << 20
_WINDOW = 32 * 1024


def _normalize(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = min(int(info.mtime), epoch) if info.mtime else epoch
    if info.isdir():
        info.mode = 0o755
    elif info.isreg():
        info.mode = 0o755 if info.mode & stat.S_IXUSR else 0o644
    info.pax_headers = {}
    return info


def tree_entries(root: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """(archive name, path) for every directory and file below `root`, sorted by name."""
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            entries.append((f"{prefix}{rel}" if prefix else rel, path))
    return sorted(entries)


def write_tar(dest: Path, entries: Iterable[tuple[str, Path]], epoch: int, *,
              gz: bool = True, level: int = GZIP_LEVEL) -> None:
    """Write `entries` (name, path) as a reproducible tar or tar.gz at `dest`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in entries:
            info = tar.gettarinfo(str(path), arcname=name)
            info.mtime = epoch
            info = _normalize(info, epoch)
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    _write_bytes(dest, raw.getvalue(), gz, level)


def _write_bytes(dest: Path, data: bytes, gz: bool, level: int = GZIP_LEVEL) -> None:
    with dest.open("wb") as out:
        out.write(gzip_bytes(data, level) if gz else data)


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """A gzip member of `data` with no name and no date, deflated on every CPU.

    Compressing is most of packing MBs of package data (7.4 MB of pyfiglet's fonts: ~0.2 s
    at level 6 on one core). zlib releases the GIL, so CHUNK-sized pieces deflate in threads,
    each primed with the 32 KiB before it and ended by a sync flush (pigz's stream): one
    valid member, the same bytes on any machine, within ~0.1% of one stream's size. Data of
    two chunks or less is one ordinary stream."""
    if len(data) <= 2 * CHUNK:
        return gzip.compress(data, level, mtime=0)
    view = memoryview(data)
    starts = range(0, len(data), CHUNK)

    def deflate(start: int) -> bytes:
        if start:
            packer = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS,
                                      zdict=view[start - _WINDOW:start])
        else:
            packer = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        last = start + CHUNK >= len(data)
        return packer.compress(view[start:start + CHUNK]) + packer.flush(
            zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        body = b"".join(pool.map(deflate, starts))
    extra = 2 if level == 9 else 4 if level == 1 else 0  # XFL, as gzip.compress sets it
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([extra, 255])
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def repack_tar_gz(src: Path, dest: Path, epoch: int, level: int = GZIP_LEVEL) -> None:
    """Rewrite a .tar.gz with sorted members, owner 0, mtimes clamped, and no gzip date."""
    raw = io.BytesIO()
    with tarfile.open(src, "r:*") as old, tarfile.open(
        fileobj=raw, mode="w", format=tarfile.PAX_FORMAT
    ) as new:
        members = sorted(old.getmembers(), key=lambda m: m.name)
        for member in members:
            data = old.extractfile(member) if member.isreg() else None
            new.addfile(_normalize(member, epoch), data)
    _write_bytes(dest, raw.getvalue(), True, level)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive refusing absolute paths and links out of `dest`."""
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter="data")
