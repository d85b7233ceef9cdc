"""Directories a tier builds once and keeps under gradient's cache (a debootstrap userspace, a
base image): filled in a temp folder beside their place and renamed in, so a reader never
sees half of one and two builds racing for it waste work but never break it. A directory a
tool updates in place (PyInstaller's bincache) cannot be renamed in: `exclusive` gives it to
one process at a time instead."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STALE = 24 * 3600  # a temp folder this old was left by an interrupted build


def build_once(final: Path, fill: Callable[[Path], None], *, mode: int | None = None) -> None:
    """Make `final` by `fill`ing a temp folder beside it and renaming; the first writer wins."""
    final.parent.mkdir(parents=True, exist_ok=True)
    stale = time.time() - STALE
    for old in final.parent.glob(f".{final.name}-*"):
        try:
            if old.stat().st_mtime < stale:
                remove_tree(old)
        except FileNotFoundError:
            continue
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        fill(tmp)
        if mode is not None:
            tmp.chmod(mode)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
    finally:
        remove_tree(tmp)


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` for the block, waiting for any other process
    (another gradient run on this machine) that holds it; the kernel drops it if we die."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_tree(path: Path) -> None:
    """rmtree, after unmounting what an interrupted debootstrap left mounted (/proc, /sys)."""
    if not path.exists():
        return
    inside = str(path.resolve()) + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        mounts = []
    for point in sorted((m for m in mounts if m.startswith(inside)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)
