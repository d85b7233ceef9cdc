"""The project's source files as the build backend would see them, their digest and their date."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NEVER = {".git", ".hg", ".svn", ".venv", "venv", "dist", "build", "__pycache__", ".tox", ".nox",
         ".mypy_cache", ".pytest_cache", ".ruff_cache", ".gradient", "node_modules", ".eggs"}


@dataclass
class SourceTree:
    root: Path
    files: dict[str, str]
    digest: str
    epoch: int

    def copy_to(self, dest: Path) -> Path:
        """A copy of exactly these files, so builds never write into the user's tree."""
        for rel in self.files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.root / rel, target)
        return dest


def _skip(rel: str) -> bool:
    parts = rel.split("/")
    return any(p in NEVER or p.endswith(".egg-info") for p in parts) or rel.endswith(".pyc")


def list_files(root: Path) -> list[str]:
    """Files not ignored by git (when `root` is in a work tree), else every file but caches."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "-c", "-o", "--exclude-standard", "--", "."],
            capture_output=True, timeout=60,
        )
        if proc.returncode == 0:
            names = [n for n in proc.stdout.decode().split("\0") if n]
            return sorted(n for n in names if not _skip(n) and (root / n).is_file())
    except (OSError, subprocess.TimeoutExpired):
        pass
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in NEVER and not d.endswith(".egg-info")]
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


def scan(root: Path) -> SourceTree:
    rels = list_files(root)
    files = {rel: file_digest(root / rel) for rel in rels}
    total = hashlib.sha256()
    for rel, digest in files.items():
        total.update(f"{rel}\0{digest}\n".encode())
    return SourceTree(root, files, total.hexdigest(), source_date_epoch(root, rels))


def source_date_epoch(root: Path, rels: list[str]) -> int:
    """SOURCE_DATE_EPOCH if set, else the last commit's time, else the newest source mtime."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        proc = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct", "--", "."],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip().isdigit():
            return int(proc.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    mtimes = [int((root / rel).stat().st_mtime) for rel in rels]
    return max(mtimes, default=315532800)
