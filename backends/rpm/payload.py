"""An .rpm's files, read from its bytes: how the secret scan and the SBOM see inside one.

An rpm is a lead, a signature header, the main header and a compressed cpio archive (the
payload). Neither the stdlib nor the scan's other readers open it, so without this reader an
.rpm would be one opaque blob: a key in its payload unscanned, its bundled distributions
missing from its SBOM. Only what nfpm writes is needed here: newc cpio, gzip (the tier asks
for it), and xz or zstd when a user's nfpm.yaml says so and the module is importable.
"""

from __future__ import annotations

import gzip
import io
import lzma
import struct
from collections.abc import Iterator
from typing import IO

LEAD_SIZE = 96
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
CPIO_MAGIC = b"070701"
CPIO_HEADER = 110
TRAILER = "TRAILER!!!"


class NotAnRpm(ValueError):
    """The bytes are not an rpm this reader understands (the scan then skips them)."""


def _header_end(data: bytes, start: int, pad: bool) -> int:
    """Where the header starting at `start` ends (the signature header is 8-aligned)."""
    if data[start:start + 4] != HEADER_MAGIC:
        raise NotAnRpm(f"no rpm header at byte {start}")
    entries, size = struct.unpack(">II", data[start + 8:start + 16])
    end: int = start + 16 + entries * 16 + size
    return (end + 7) // 8 * 8 if pad else end


def _decompressed(payload: bytes) -> io.BufferedIOBase | IO[bytes]:
    if payload[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=io.BytesIO(payload))
    if payload[:6] == b"\xfd7zXZ\x00":
        return io.BytesIO(lzma.decompress(payload))
    if payload[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload))
    raise NotAnRpm("the payload is neither gzip, xz nor zstd")


def _read(stream: io.BufferedIOBase | IO[bytes], size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = stream.read(size - len(chunks))
        if not chunk:
            raise NotAnRpm("the cpio payload ends early")
        chunks += chunk
    return bytes(chunks)


def rpm_members(data: IO[bytes], limit: int) -> Iterator[tuple[str, bytes | None]]:
    """(path inside the package, content or None when over `limit`) of every regular file."""
    raw = data.read()
    if raw[:4] != b"\xed\xab\xee\xdb":
        raise NotAnRpm("no rpm lead")
    payload_at = _header_end(raw, _header_end(raw, LEAD_SIZE, pad=True), pad=False)
    stream = _decompressed(raw[payload_at:])
    while True:
        head = _read(stream, CPIO_HEADER)
        if head[:6] != CPIO_MAGIC:
            raise NotAnRpm("the payload is not a newc cpio archive")
        fields = [int(head[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name = _read(stream, name_size)[:-1].decode("utf-8", "replace")
        _read(stream, (4 - (CPIO_HEADER + name_size) % 4) % 4)
        if name == TRAILER:
            return
        content = _read(stream, size)
        _read(stream, (4 - size % 4) % 4)
        if mode & 0o170000 == 0o100000:  # a regular file
            yield name.removeprefix("."), (content if size <= limit else None)
