"""SHA-256 of large archive members, computed once per process and shared.

The secret scan and the SBOM's reader open the same artifact one after the other, and both
need the digest of its large members (an image tar's base layer: 37 MB, ~32 ms of SHA-256
here). The scan publishes what it computed; the SBOM's reader asks before hashing. Keyed by
the outer archive's digest and the member's path in it, so the same bytes give the same
answer; a path the archive holds twice (a tar may) is never published, since the reader
could meet the other content under that name.
"""

from __future__ import annotations

import re
import threading

LIMIT = 512
_known: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def publish(outer: str, digests: dict[str, str], duplicates: set[str]) -> None:
    """One whole pass over the archive whose digest is `outer`: its members' digests, and
    the paths it met more than once (left out)."""
    if not outer:
        return
    with _lock:
        for where, digest in digests.items():
            if where in duplicates:
                continue
            if len(_known) >= LIMIT:
                _known.pop(next(iter(_known)))
            _known[(outer, where)] = digest


def known(outer: str, where: str) -> str | None:
    """The digest published for that member, or None."""
    if not outer:
        return None
    with _lock:
        return _known.get((outer, where))


_BLOB = re.compile(r"(?:\./)?blobs/sha256/([0-9a-f]{64})")


def addressed(name: str) -> str | None:
    """The digest an OCI layout member's path names (`blobs/sha256/<hex>`), else None.

    A blob's path is its content's digest by the format's definition: every reader (docker
    load, umoci, skopeo) checks it on load, and `gradient verify` loads the image. So a base
    layer seen before is known by its name, not by reading and hashing 36 MB again. Only
    ever a key for what was remembered of those bytes, never reported as their digest."""
    found = _BLOB.fullmatch(name)
    return found.group(1) if found else None
