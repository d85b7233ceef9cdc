"""External tools: where they are, which version, and how to get them when they are missing.

A version is part of every cache key, so probing must be cheap: a Python tool's version
comes from its distribution metadata, a binary's from running it once per (path, size,
mtime), remembered in gradient's cache.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .atomic import write_text_atomic


@dataclass(frozen=True)
class Tool:
    """One tool a tier runs. `dist` names its Python distribution, `command` its executable."""

    name: str
    get: str
    command: str | None = None
    dist: str | None = None
    version_args: tuple[str, ...] = ("--version",)
    required: bool = True

    def path(self) -> Path | None:
        if not self.command:
            return None
        beside = Path(sys.executable).parent / self.command
        if beside.exists():
            return beside
        found = shutil.which(self.command)
        return Path(found) if found else None

    def present(self) -> bool:
        if self.dist and _dist_version(self.dist) is None:
            return False
        return self.command is None or self.path() is not None

    def version(self, cache: Path | None = None) -> str | None:
        if self.dist:
            return _dist_version(self.dist)
        path = self.path()
        return _binary_version(path, self.version_args, cache) if path else None



def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _binary_version(path: Path, args: tuple[str, ...], cache: Path | None) -> str | None:
    stat = path.resolve().stat()
    token = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{' '.join(args)}"
    store = cache / "tool-versions.json" if cache else None
    known: dict[str, str] = {}
    if store and store.exists():
        try:
            known = json.loads(store.read_text())
        except ValueError:
            known = {}
    if token in known:
        return known[token]
    try:
        proc = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    version = lines[0].strip() if lines else "unknown"
    if store:
        known[token] = version
        write_text_atomic(store, json.dumps(known, indent=1, sort_keys=True))
    return version



UV = Tool("uv", "pip install uv", command="uv", dist="uv", required=False)


def uv_path() -> Path | None:
    """uv's executable: beside this Python, on PATH, or inside the `uv` distribution."""
    found = UV.path()
    if found:
        return found
    try:
        import uv

        return Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None
