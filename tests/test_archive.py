"""The gzip writer of every packed archive: pigz-style chunks deflated in threads."""

from __future__ import annotations

import gzip
import random
import subprocess
from pathlib import Path

import pytest

from gradient_build.archive import CHUNK, gzip_bytes


def _text_like(size: int) -> bytes:
    """Compressible data with long-range repeats (fonts, source): what the priming keeps."""
    rng = random.Random(7)
    words = [bytes(rng.choices(b"abcdefghij \n#_", k=rng.randint(3, 12))) for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


@pytest.mark.parametrize("size", [0, 1000, 2 * CHUNK, 2 * CHUNK + 1, 5 * CHUNK + 12345])
def test_gzip_bytes_is_one_member_every_gzip_reads(tmp_path: Path, size: int) -> None:
    data = _text_like(size)
    packed = gzip_bytes(data, 6)
    assert gzip.decompress(packed) == data
    (tmp_path / "x.gz").write_bytes(packed)
    checked = subprocess.run(["gzip", "-t", str(tmp_path / "x.gz")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert packed[4:8] == b"\0\0\0\0"  # no date: the same bytes whenever it is packed
    assert gzip_bytes(data, 6) == packed


def test_small_data_is_one_ordinary_stream() -> None:
    data = _text_like(CHUNK)
    assert gzip_bytes(data, 9) == gzip.compress(data, 9, mtime=0)


def test_chunked_stream_is_as_small_as_one_stream() -> None:
    """Each chunk is primed with the window before it: no loss worth the name."""
    data = _text_like(6 * CHUNK)
    single = len(gzip.compress(data, 6, mtime=0))
    assert len(gzip_bytes(data, 6)) <= single * 1.005
