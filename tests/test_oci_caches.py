"""The oci native writer's two caches give exactly what a fresh read or write gives: a layer
compressed once and kept by its diff_id, and a base layer's listing kept by its digest."""

from __future__ import annotations

import gzip
from pathlib import Path

from gradient_backends.oci.fsindex import KEPT, FsIndex, read_layer, read_layer_cached
from gradient_backends.oci.layout import LayerBuilder


def _layer(tmp: Path) -> LayerBuilder:
    (tmp / "tree/bin").mkdir(parents=True)
    (tmp / "tree/bin/tool").write_text("#!/bin/sh\necho hi\n")
    (tmp / "tree/bin/tool").chmod(0o755)
    builder = LayerBuilder()
    builder.tree("usr", tmp / "tree")
    builder.symlink("bin", "usr/bin")
    builder.file("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    builder.dir("tmp", mode=0o1777)
    return builder


def test_a_layer_kept_by_diff_id_is_the_same_blob_and_is_not_compressed_again(
        tmp_path: Path) -> None:
    builder = _layer(tmp_path)
    fresh = builder.write(tmp_path / "fresh", 1700000000, kind="deps", created_by="t")
    cache = tmp_path / "cache"
    first = builder.write(tmp_path / "one", 1700000000, kind="deps", created_by="t", cache=cache)
    assert (first.digest, first.size, first.diff_id) == (fresh.digest, fresh.size, fresh.diff_id)
    assert first.blob.read_bytes() == fresh.blob.read_bytes()
    kept = cache / first.blob.name
    kept.write_bytes(gzip.compress(b"a marker: only a reuse hands this out", mtime=0))
    again = builder.write(tmp_path / "two", 1700000000, kind="deps", created_by="t", cache=cache)
    assert again.digest == fresh.digest
    assert again.blob.read_bytes() == kept.read_bytes(), "it was compressed again"
    other = builder.write(tmp_path / "three", 1600000000, kind="deps", created_by="t",
                          cache=cache)  # another date: another diff_id, compressed anew
    assert other.diff_id != fresh.diff_id and other.blob.read_bytes() != kept.read_bytes()


def test_a_kept_listing_indexes_the_layer_as_reading_it_does(tmp_path: Path) -> None:
    layer = _layer(tmp_path).write(tmp_path / "blobs", 1700000000, kind="base",
                                   created_by="t")
    with layer.blob.open("rb") as f:
        members, _, kept = read_layer(f, KEPT)
    direct = FsIndex()
    direct.apply(members, kept)
    cache = tmp_path / "listings"
    for _ in range(2):  # the first reads and keeps, the second answers from the listing
        listed, contents = read_layer_cached(layer.blob, layer.digest, KEPT, cache)
        index = FsIndex()
        index.apply(listed, contents)
        assert index.nodes == direct.nodes
        assert index.kept == direct.kept
        assert index.which("tool", "/bin") == "/bin/tool"
        assert index.is_executable_file("bin/tool")
    assert len(list(cache.glob("*.json"))) == 1
