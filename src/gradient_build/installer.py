"""One installer abstraction: uv when it is here (venvs and installs ~15x faster), else pip.

Every place that makes a virtual environment or installs wheels asks `installer()` for the
command lines, so the choice between uv and pip is made once (pypa/build's `env.py` with its
`_UvBackend`/`_PipBackend` is the model). Commands are returned, not run: a build runs them
through its Runner, a verification through the sandbox.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .tools import uv_path

Command = list[str | Path]
Choice = Literal["auto", "uv", "pip"]


def _links(find_links: Sequence[Path]) -> Command:
    return [arg for path in find_links for arg in ("--find-links", path)]


class Installer(ABC):
    """Makes virtual environments and installs local wheels into them, never from an index."""

    name: str

    @abstractmethod
    def venv(self, where: Path, python: str) -> Command:
        """A new, empty virtual environment of `python` at `where` (no system site-packages)."""

    @abstractmethod
    def install(self, python: Path, targets: Sequence[Path],
                find_links: Sequence[Path]) -> Command:
        """Install `targets` into `python`'s environment from `find_links` only."""

    @abstractmethod
    def install_target(self, dest: Path, targets: Sequence[Path],
                       find_links: Sequence[Path]) -> Command:
        """Install `targets` and their dependencies as a plain tree at `dest` (`--target`)."""

    def env(self, cache: Path) -> dict[str, str]:
        """Variables the commands need: their own cache, and no interpreter downloads."""
        return {"UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never"}


class _Uv(Installer):
    name = "uv"

    def __init__(self, uv: Path) -> None:
        self.uv = uv

    def venv(self, where: Path, python: str) -> Command:
        return [self.uv, "venv", "--quiet", "--python", python, where]

    def install(self, python: Path, targets: Sequence[Path],
                find_links: Sequence[Path]) -> Command:
        return [self.uv, "pip", "install", "--python", python, "--no-index", "--offline",
                *_links(find_links), *targets]

    def install_target(self, dest: Path, targets: Sequence[Path],
                       find_links: Sequence[Path]) -> Command:
        return [self.uv, "pip", "install", "--python", sys.executable, "--no-index",
                "--offline", "--no-compile", *_links(find_links), "--target", dest, *targets]


class _Pip(Installer):
    name = "pip"

    def venv(self, where: Path, python: str) -> Command:
        return [python, "-m", "venv", "--without-pip", where]

    def install(self, python: Path, targets: Sequence[Path],
                find_links: Sequence[Path]) -> Command:
        # pip from gradient's own Python installs into the other environment (pip >= 22.3)
        return [sys.executable, "-m", "pip", "--python", python, "install", "--isolated",
                "--no-index", "--no-compile", "--disable-pip-version-check",
                *_links(find_links), *targets]

    def install_target(self, dest: Path, targets: Sequence[Path],
                       find_links: Sequence[Path]) -> Command:
        return [sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir",
                "--no-index", *_links(find_links), "--target", dest, "--no-compile",
                "--no-warn-script-location", *targets]


def installer(choice: Choice = "auto") -> Installer:
    """uv when `choice` allows it and it is installed, else pip."""
    uv = uv_path() if choice in ("auto", "uv") else None
    return _Uv(uv) if uv else _Pip()
