"""The metadata an sdist states for certain (PEP 643), for builds of the sdist tier alone.

Building a wheel only to read its metadata doubles the backend's work of an sdist-only build;
the sdist that build makes anyway says most of it, and from Metadata-Version 2.2 says so
bindingly. project.load keeps what is read here apart from what a wheel said.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from email.parser import HeaderParser
from pathlib import Path

import tomli

from .project import Project, from_dist_info

# What an sdist-only build uses of the metadata (its wheelhouse, its verification's smoke):
# these must not be Dynamic. License-File may be (setuptools marks files it found by its
# default globs so): the sdist lists what it found, and only the copy and mpy tiers use it.
# Requires-Python may be too: setuptools marks every field a setup.py passes as Dynamic
# (pyfiglet's), only the pex tier reads it, and a Dynamic one is left out (None), not guessed.
_CERTAIN = {"name", "version", "requires-dist"}


def metadata_from_sdist(root: Path, sdist: Path) -> Project | None:
    """The metadata an sdist states for certain, read as a wheel's would be, or None.

    PEP 643: from Metadata-Version 2.2 on, a field of PKG-INFO that is not marked Dynamic is
    what every wheel built from the sdist carries. The console scripts are not core metadata:
    they come from setuptools' egg-info/entry_points.txt, or from a static [project.scripts]
    of the sdist's pyproject.toml; without either this is None (prepare_metadata decides)."""
    with tarfile.open(sdist) as tar:
        top = {m.name.split("/")[0] for m in tar.getmembers()}
        if len(top) != 1:
            return None
        (base,) = top
        members = {m.name[len(base) + 1:]: m for m in tar.getmembers() if m.isreg()}

        def read(rel: str) -> str | None:
            member = members.get(rel)
            handle = tar.extractfile(member) if member else None
            return handle.read().decode("utf-8", errors="replace") if handle else None

        pkg_info = read("PKG-INFO")
        if pkg_info is None:
            return None
        meta = HeaderParser().parsestr(pkg_info)
        version = tuple(int(p) for p in re.findall(r"\d+", meta.get("Metadata-Version", "0")))
        dynamic = {d.strip().lower() for d in meta.get_all("Dynamic") or []}
        if version < (2, 2) or dynamic & _CERTAIN:
            return None
        egg = [rel for rel in members if rel.count("/") == 1
               and rel.split("/")[0].endswith(".egg-info") and rel.endswith("/PKG-INFO")]
        info = egg[0].split("/")[0] if len(egg) == 1 else None
        entry_points = read(f"{info}/entry_points.txt") if info else None
        if entry_points is None:
            entry_points = _static_entry_points(read("pyproject.toml"))
        if entry_points is None:
            return None
        top_level = read(f"{info}/top_level.txt") if info else None
    with tempfile.TemporaryDirectory(prefix="gradient-stated-") as tmp:
        dist_info = Path(tmp) / "stated.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(pkg_info, encoding="utf-8")
        (dist_info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
        if top_level is not None:
            (dist_info / "top_level.txt").write_text(top_level, encoding="utf-8")
        project = from_dist_info(root, dist_info)
    if "requires-python" in dynamic:
        project.requires_python = None
    return project


def _static_entry_points(pyproject: str | None) -> str | None:
    """entry_points.txt of a static [project] table's scripts, or None when they may be
    dynamic (no [project] table, or "scripts" named in its dynamic list)."""
    if pyproject is None:
        return None
    try:
        table = tomli.loads(pyproject).get("project")
    except tomli.TOMLDecodeError:
        return None
    if not isinstance(table, dict) or {"scripts", "gui-scripts", "entry-points"} & set(
            table.get("dynamic", [])):
        return None
    lines = []
    for group, key in (("console_scripts", "scripts"), ("gui_scripts", "gui-scripts")):
        entries = table.get(key) or {}
        if entries:
            lines += [f"[{group}]", *(f"{n} = {v}" for n, v in entries.items()), ""]
    return "\n".join(lines)
