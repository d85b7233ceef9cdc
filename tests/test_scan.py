"""The secret scan opens archive formats a tier registers, not only zip and tar."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import IO

from gradient_build.backend import ArchiveReader
from gradient_build.scan import scan_bytes

TOKEN = b"TOKEN=ghp_" + b"a1B2" * 9


def _reversed_zip(members: dict[str, bytes]) -> bytes:
    """A made-up format: a zip stored backwards (neither zip nor tar to look at)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()[::-1]


def _read_reversed(data: IO[bytes], limit: int) -> Iterator[tuple[str, bytes | None]]:
    with zipfile.ZipFile(io.BytesIO(data.read()[::-1])) as zf:
        for info in zf.infolist():
            yield info.filename, zf.read(info) if info.file_size <= limit else None


def test_a_registered_archive_format_is_opened() -> None:
    blob = _reversed_zip({"app/settings.py": TOKEN, "app/.env": b"A=1\n"})
    assert list(scan_bytes("pkg.rzip", blob)) == []  # unopened, nothing can be seen
    reader = ArchiveReader((".rzip",), _read_reversed)
    found = {(f.where, f.what) for f in scan_bytes("pkg.rzip", blob, readers=[reader])}
    assert ("pkg.rzip!app/settings.py", "a GitHub token") in found
    assert ("pkg.rzip!app/.env", "a dotenv file") in found


def test_bytes_a_reader_refuses_are_still_scanned_as_bytes() -> None:
    reader = ArchiveReader((".rzip",), _read_reversed)
    assert list(scan_bytes("pkg.rzip", b"not an archive", readers=[reader])) == []
    found = list(scan_bytes("pkg.rzip", b"not an archive " + TOKEN, readers=[reader]))
    assert [f.what for f in found] == ["a GitHub token"]
