"""The secret scan's digests of large archive members reach the SBOM's reader, and only
when they cannot be wrong (the same path held twice is never shared)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

from gradient_build import member_digests
from gradient_build.inventory import Component, Memo, read_components
from gradient_build.scan import scan_bytes


def _layer(seed: bytes) -> bytes:
    """A gzipped tar of over 4 MB (above both memo thresholds) holding one distribution."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        meta = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
        for name, data in (("lib/demo-1.0.dist-info/METADATA", meta),
                           ("lib/noise.bin", seed + os.urandom(5 << 20))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=1)


def _image(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_scan_publishes_a_large_members_digest_for_the_sbom_reader() -> None:
    layer = _layer(b"a")
    image = _image([("blobs/sha256/x", layer), ("index.json", b"{}")])
    outer = hashlib.sha256(image).hexdigest()
    assert list(scan_bytes("img.tar", image, clean=set(), digest=outer)) == []
    assert member_digests.known(outer, "blobs/sha256/x") == hashlib.sha256(layer).hexdigest()
    assert member_digests.known(outer, "index.json") is None  # small: never hashed
    assert member_digests.known("0" * 64, "blobs/sha256/x") is None  # other bytes


def test_the_reader_uses_the_published_digest_and_gets_the_same_components() -> None:
    layer = _layer(b"b")
    image = _image([("blobs/sha256/y", layer)])
    outer = hashlib.sha256(image).hexdigest()
    alone = read_components("img.tar", io.BytesIO(image), memo=Memo())
    list(scan_bytes("img.tar", image, clean=set(), digest=outer))
    shared = read_components("img.tar", io.BytesIO(image), memo=Memo(), outer=outer)
    assert [c.purl for c in shared] == [c.purl for c in alone] == ["pkg:pypi/demo@1.0"]
    # the published digest is what the memo is asked for (not one hashed again): publish a
    # made-up one for other outer bytes and plant an answer under it
    other = "f" * 64
    member_digests.publish(other, {"blobs/sha256/y": "e" * 64}, set())
    memo = Memo()
    planted = Component("python", "planted", "9", "pkg:pypi/planted@9",
                        where="img.tar!blobs/sha256/y!x")
    memo.put("e" * 64, "img.tar!blobs/sha256/y", [planted])
    found = read_components("img.tar", io.BytesIO(image), memo=memo, outer=other)
    assert [c.name for c in found] == ["planted"]


def test_a_path_held_twice_is_never_shared() -> None:
    first, second = _layer(b"c"), _layer(b"d")
    image = _image([("blobs/sha256/z", first), ("blobs/sha256/z", second)])
    outer = hashlib.sha256(image).hexdigest()
    list(scan_bytes("img.tar", image, clean=set(), digest=outer))
    assert member_digests.known(outer, "blobs/sha256/z") is None


def test_a_large_member_next_to_a_small_one_of_the_same_name_is_not_shared() -> None:
    layer = _layer(b"e")
    image = _image([("blobs/sha256/w", layer), ("blobs/sha256/w", b"small")])
    outer = hashlib.sha256(image).hexdigest()
    list(scan_bytes("img.tar", image, clean=set(), digest=outer))
    assert member_digests.known(outer, "blobs/sha256/w") is None


def test_a_blob_named_by_its_digest_is_not_read_when_its_components_are_remembered() -> None:
    layer = _layer(b"f")
    address = hashlib.sha256(layer).hexdigest()
    image = _image([(f"blobs/sha256/{address}", layer), ("blobs/sha256/plain", layer)])
    first = read_components("img.tar", io.BytesIO(image), memo=Memo())
    assert [c.purl for c in first] == ["pkg:pypi/demo@1.0"] * 2
    # the memo is asked by the blob's name before its bytes are read: a planted answer under
    # the name of a blob that holds other bytes shows that they were not read (and a blob
    # whose name is no digest is read, hashed, and missed)
    planted = Component("python", "planted", "9", "pkg:pypi/planted@9", where="x")
    named = "a" * 64
    image = _image([(f"blobs/sha256/{named}", layer), ("blobs/sha256/plain", layer)])
    memo = Memo()
    memo.put(named, f"img.tar!blobs/sha256/{named}", [planted])
    found = read_components("img.tar", io.BytesIO(image), memo=memo)
    assert sorted(c.name for c in found) == ["demo", "planted"]
    assert next(c for c in found if c.name == "planted").where == (
        f"img.tar!blobs/sha256/{named}!x")
