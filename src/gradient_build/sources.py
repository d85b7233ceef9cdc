"""The project's source files as the build backend would see them, their digest and their date."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Caches and VCS data: never a source, wherever they are.
ANYWHERE = {".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
            ".ruff_cache"}
# Output and environment folders at the top of the project. Below the root these names are
# ordinary package folders (`src/app/build/`), and a file git tracks is always a source.
TOP_LEVEL = {".venv", "venv", "dist", "build", ".gradient", ".gradient-cache", "node_modules",
             ".eggs"}
# The fallback SOURCE_DATE_EPOCH outside a VCS: a date fixed by content (none), never a file's
# mtime, so two unpacked copies of one sdist build the same bytes. 1980-01-01, zip's first day.
FIXED_EPOCH = 315532800


@dataclass
class SourceTree:
    root: Path
    files: dict[str, str]
    digest: str
    epoch: int
    epoch_source: str = "fixed"
    in_git: bool = False

    def copy_to(self, dest: Path) -> Path:
        """A copy of exactly these files, so builds never write into the user's tree (each
        folder made once: a mkdir per file was most of the copy's time)."""
        made: set[Path] = set()
        for rel in self.files:
            target = dest / rel
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            shutil.copy2(self.root / rel, target)
        return dest


def _skip(rel: str) -> bool:
    parts = rel.split("/")
    return (parts[0] in TOP_LEVEL or rel.endswith(".pyc")
            or any(p in ANYWHERE or p.endswith(".egg-info") for p in parts))


def _git_files(root: Path) -> list[str] | None:
    """Tracked files (always sources) and untracked ones git does not ignore (unless they are
    outputs or caches), or None outside a git work tree."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-t", "-c", "-o", "--exclude-standard",
             "--", "."], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    found: set[str] = set()
    for item in proc.stdout.decode().split("\0"):
        tag, _, name = item.partition(" ")
        if not name or not (root / name).is_file():
            continue
        if tag == "?" and _skip(name):  # untracked: leave outputs and caches out
            continue
        found.add(name)
    return sorted(found)


def _walk(root: Path) -> list[str]:
    """Outside git: every file but caches and the top-level output folders."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        top = os.path.samefile(dirpath, root)
        dirnames[:] = [d for d in dirnames if d not in ANYWHERE and not d.endswith(".egg-info")
                       and not (top and d in TOP_LEVEL)]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if not _skip(rel):
                found.append(rel)
    return sorted(found)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scan(root: Path, exclude: set[str] | None = None) -> SourceTree:
    """The files the build backend would see (git's view where there is one), and their date;
    `exclude` names files gradient itself delivered into the project."""
    rels, in_git = source_files(root, exclude)
    files = {rel: file_digest(root / rel) for rel in rels}
    total = hashlib.sha256()
    for rel, digest in files.items():
        total.update(f"{rel}\0{digest}\n".encode())
    epoch, where = source_date_epoch(root)
    return SourceTree(root, files, total.hexdigest(), epoch, where, in_git)


def source_files(root: Path, exclude: set[str] | None = None) -> tuple[list[str], bool]:
    """The source files' paths (without hashing them), and whether git listed them."""
    tracked = _git_files(root)
    rels = [r for r in (tracked if tracked is not None else _walk(root))
            if r not in (exclude or ())]
    return rels, tracked is not None


def source_date_epoch(root: Path) -> tuple[int, str]:
    """(SOURCE_DATE_EPOCH, where it came from): the variable if set, else the last commit's
    time, else a fixed date. Never a file's mtime: content alone decides the bytes."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"]), "the SOURCE_DATE_EPOCH variable"
    try:
        proc = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct %h", "--",
                               "."], capture_output=True, text=True, timeout=30)
        stamp, _, commit = proc.stdout.strip().partition(" ")
        if proc.returncode == 0 and stamp.isdigit():
            return int(stamp), f"the last commit ({commit})"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return FIXED_EPOCH, "fixed: no version control here (1980-01-01)"
