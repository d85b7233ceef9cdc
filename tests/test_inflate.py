"""The read-ahead gunzip the SBOM reads large .tar.gz archives through: the same bytes and
the same errors as the gzip module, and its thread gone once the reader is closed."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import threading
import time

import pytest

from gradient_build import inflate, inventory
from gradient_build.archive import gzip_bytes


def _noise(size: int, seed: int = 3) -> bytes:
    """Incompressible: a few MiB of it stay a few MiB of gzip, past inflate.CHUNK."""
    return random.Random(seed).randbytes(size)


def _read(packed: bytes) -> bytes:
    with inflate.ahead(io.BytesIO(packed)) as stream:
        return stream.read()


@pytest.mark.parametrize("packed", [
    pytest.param(gzip.compress(_noise(3 << 20), mtime=0), id="one member"),
    pytest.param(gzip_bytes(_noise(5 << 20)), id="pigz-style chunks"),
    pytest.param(gzip.compress(_noise(2 << 20, 1)) + gzip.compress(b"second member"),
                 id="concatenated members"),
    pytest.param(gzip.compress(_noise(1 << 20)) + b"\0" * 1000, id="zero padding"),
    pytest.param(gzip.compress(b""), id="empty"),
])
def test_it_reads_what_the_gzip_module_reads(packed: bytes) -> None:
    assert _read(packed) == gzip.decompress(packed)


def test_a_truncated_stream_raises_what_gzip_raises() -> None:
    packed = gzip.compress(_noise(2 << 20))[:-100]
    with pytest.raises(EOFError):
        gzip.decompress(packed)
    with pytest.raises(EOFError):
        _read(packed)


def test_garbage_after_a_member_is_a_bad_gzip_file() -> None:
    packed = gzip.compress(_noise(1 << 20)) + b"not gzip at all"
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(packed)
    with pytest.raises(gzip.BadGzipFile):
        _read(packed)


def _inflaters() -> int:
    return sum(t.name == "gradient-inflate" for t in threading.enumerate())


def test_closing_early_stops_its_thread() -> None:
    before = _inflaters()
    stream = inflate.ahead(io.BytesIO(gzip.compress(_noise(16 << 20), 1)))
    assert len(stream.read(1000)) == 1000
    stream.close()  # with most of 16 MiB unread: the thread must not wait on a full queue
    deadline = time.monotonic() + 5
    while _inflaters() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _inflaters() == before


def _tarball(members: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip_bytes(raw.getvalue())


def test_a_large_tarball_lists_the_same_components_either_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = b"Metadata-Version: 2.1\nName: inner\nVersion: 2.0\n\n"
    packed = _tarball({"app/blob.bin": _noise(3 << 20), "app/lib/inner-2.0.dist-info/METADATA":
                       metadata, "app/lib/other-1.0.dist-info/METADATA":
                       metadata.replace(b"inner", b"other").replace(b"2.0", b"1.0")})
    assert len(packed) >= inflate.CHUNK  # read ahead
    ahead = inventory.read_components("app.tar.gz", io.BytesIO(packed))
    monkeypatch.setattr(inflate, "CHUNK", len(packed) + 1)  # now read by tarfile's gzip
    plain = inventory.read_components("app.tar.gz", io.BytesIO(packed))
    assert sorted(c.name for c in ahead) == ["inner", "other"]
    assert ahead == plain
