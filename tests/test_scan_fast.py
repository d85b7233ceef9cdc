"""The secret scan's shortcuts find what the plain scan finds: the literal pre-check never
hides a match, a large archive scanned from its file finds what reading it whole finds, and
an image's base layer known clean by its address is the only thing passed over."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

from gradient_build.scan import (
    COMBINED,
    LITERALS,
    SECRET_PATTERNS,
    STREAM_MIN,
    scan_artifact,
    secret_in,
)

SAMPLES = [
    b"-----BEGIN RSA PRIVATE KEY-----", b"-----BEGIN PRIVATE KEY-----",
    b"-----BEGIN PGP PRIVATE KEY BLOCK-----", b"key = AKIA" + b"ABCDEFGHIJKLMNOP",
    b"ghp_" + b"a1B2" * 9, b"gho_" + b"Z" * 40, b"ghs_" + b"0" * 36,
    b"pypi-AgEIcHlwaS5vcmc" + b"x" * 60, b"xoxb-1234567890-abc", b"glpat-" + b"q" * 20,
]


def test_every_pattern_has_its_literal_in_every_sample_it_matches() -> None:
    for sample in SAMPLES:
        match = COMBINED.search(sample)
        assert match is not None and match.lastgroup, sample
        _, what, literals = SECRET_PATTERNS[int(match.lastgroup[1:])]
        assert any(lit in match.group(0) for lit in literals), sample
        assert secret_in(b"x = 1\n" + sample + b"\n") == what


def test_the_pre_check_agrees_with_the_pattern_on_near_misses() -> None:
    rng = random.Random(7)
    pieces = [*LITERALS, b"-----BEGIN ", b"PRIVATE KEY-----", b"AKIA", b"gh", b"_", b"xox",
              b"pypi-", b"glpat", b"A" * 16, b"a1B2" * 10, b" ", b"\n", b"-", b"b-"]
    for _ in range(3000):
        text = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        match = COMBINED.search(text)
        expected = (SECRET_PATTERNS[int(match.lastgroup[1:])][1]
                    if match and match.lastgroup else None)
        assert secret_in(text) == expected, text


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _layer(secret: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = os.urandom(1 << 20) + b"\n" + secret
        info = tarfile.TarInfo("etc/conf")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=1)  # as an image's layers are


def test_a_large_image_is_scanned_from_its_file_and_finds_a_secret_in_a_layer(
        tmp_path: Path) -> None:
    token = SAMPLES[4]
    layer = _layer(token)
    name = f"blobs/sha256/{hashlib.sha256(layer).hexdigest()}"
    _tar(tmp_path / "img.tar", [(name, layer), ("pad", os.urandom(STREAM_MIN)),
                                ("index.json", b"{}")])
    clean: set[str] = set()
    digests, findings = scan_artifact(tmp_path, ["img.tar"], [], clean)
    assert digests["img.tar"] == hashlib.sha256((tmp_path / "img.tar").read_bytes()).hexdigest()
    assert [(f.where, f.what) for f in findings] == [(f"img.tar!{name}!etc/conf",
                                                     "a GitHub token")]
    assert clean == set()  # nothing found clean


def test_only_a_blob_known_clean_by_its_address_is_passed_over(tmp_path: Path) -> None:
    token = SAMPLES[4]
    base = _layer(b"")
    base_digest = hashlib.sha256(base).hexdigest()
    app = _layer(token)
    members = [(f"blobs/sha256/{base_digest}", base),
               (f"blobs/sha256/{hashlib.sha256(app).hexdigest()}", app),
               ("pad", os.urandom(STREAM_MIN))]
    _tar(tmp_path / "img.tar", members)
    clean = {base_digest}  # the base layer, found clean by an earlier build
    _, findings = scan_artifact(tmp_path, ["img.tar"], [], clean)
    assert [f.where.split("!")[1] for f in findings] == [members[1][0]]
    # and the same image without the app layer's secret is clean, and remembered so
    _tar(tmp_path / "img.tar", [members[0], members[2]])
    digests, findings = scan_artifact(tmp_path, ["img.tar"], [], clean)
    assert findings == [] and digests["img.tar"] in clean


def test_a_blob_is_known_by_its_address_unread(tmp_path: Path) -> None:
    """The name is trusted as every image reader checks it on load: planted under a clean
    digest, other bytes are not read (which is what makes a base layer free to rescan)."""
    claimed = hashlib.sha256(b"the real base layer").hexdigest()
    planted = _layer(SAMPLES[4])
    _tar(tmp_path / "img.tar", [(f"blobs/sha256/{claimed}", planted),
                                ("pad", os.urandom(STREAM_MIN))])
    assert scan_artifact(tmp_path, ["img.tar"], [], {claimed})[1] == []
    assert scan_artifact(tmp_path, ["img.tar"], [], set())[1] != []  # unknown: read
