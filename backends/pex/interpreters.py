"""Which Pythons a pex can run on, and which of those this machine has.

A pex holding a `cp311` wheel runs only on 3.11, whatever requires-python says (pex then
fails at boot with "Needed cp312-... compatible dependencies"). So the constraints a pex
records are derived from its wheels' tags, intersected with requires-python and the
user's own constraints. Verification then runs the pex under every interpreter found here
that those constraints admit, so "verified" covers each Python it claims.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

LAST = 39  # minors 3.0 .. 3.39 are modelled; 3.39 stands for "and every later one"
GRID = [Version(f"3.{m}.{p}") for m in range(LAST + 1) for p in range(25)]
TAG = re.compile(r"(cp|py)(\d)(\d*)")
CONSTRAINT = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)?\s*(.*)")
NAMES = {"cpython": "CPython", "pypy": "PyPy"}


class NoInterpreter(ValueError):
    """The wheels and the constraints admit no Python at all."""


def wheel_minors(filename: str) -> tuple[set[int], bool]:
    """(CPython 3 minors a wheel runs on, whether a tag ties it to CPython).

    `py3`/`py3X` tags and `abi3` wheels run on that minor and every later one; a
    `cp3X` tag with its own ABI (or none) runs on 3.X alone, as packaging.tags orders them.
    """
    try:
        _, _, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return set(range(LAST + 1)), False
    minors: set[int] = set()
    cpython = False
    for tag in tags:
        match = TAG.fullmatch(tag.interpreter)
        if not match or match.group(2) != "3":
            continue
        kind, _, minor = match.groups()
        cpython |= kind == "cp"
        if kind == "py" or tag.abi == "abi3":
            minors |= set(range(int(minor) if minor else 0, LAST + 1))
        else:
            minors.add(int(minor or 0))
    return minors, cpython


def tag_constraints(wheels: Iterable[Path]) -> list[str]:
    """The constraints the wheels' tags impose, e.g. ['CPython==3.11.*'] ([] when any)."""
    admitted = set(range(LAST + 1))
    cpython = False
    names = []
    for wheel in wheels:
        minors, tied = wheel_minors(wheel.name)
        admitted &= minors
        cpython |= tied
        names.append(wheel.name)
    if not admitted:
        raise NoInterpreter("no CPython 3 version can load every bundled wheel: "
                            + ", ".join(names))
    runs: list[tuple[int, int]] = []
    for minor in sorted(admitted):
        if runs and runs[-1][1] == minor - 1:
            runs[-1] = (runs[-1][0], minor)
        else:
            runs.append((minor, minor))
    if runs == [(0, LAST)]:
        return []
    prefix = "CPython" if cpython else ""
    pieces = []
    for lo, hi in runs:
        if hi == LAST:
            pieces.append(f"{prefix}>=3.{lo}")
        elif lo == hi:
            pieces.append(f"{prefix}==3.{lo}.*")
        else:
            pieces.append(f"{prefix}>=3.{lo},<3.{hi + 1}")
    return pieces


def split(constraint: str) -> tuple[str, list[Specifier]]:
    """('CPython', [>=3.10]) from 'CPython>=3.10'; the name is '' when none is given."""
    match = CONSTRAINT.fullmatch(constraint)
    assert match is not None
    name, rest = match.group(1) or "", match.group(2).strip()
    try:
        return name, list(SpecifierSet(rest)) if rest else []
    except InvalidSpecifier as exc:
        raise NoInterpreter(f"interpreter constraint {constraint!r} is not valid: {exc}") from exc


def on_grid(specs: Sequence[Specifier]) -> set[Version]:
    return {v for v in GRID if all(s.contains(v) for s in specs)}


def combine(bases: list[str], pieces: list[str]) -> list[str]:
    """Each base constraint ANDed with each tag-derived piece (pex ORs separate constraints),
    dropping any specifier the others already imply and any pair that admits nothing."""
    out: list[str] = []
    for base in bases or [""]:
        base_name, base_specs = split(base)
        for piece in pieces or [""]:
            piece_name, piece_specs = split(piece)
            if base_name and piece_name and base_name.lower() != piece_name.lower():
                continue
            specs = list(dict.fromkeys([*base_specs, *piece_specs]))
            if not on_grid(specs):
                continue
            for spec in list(specs):
                others = [s for s in specs if s != spec]
                if others and on_grid(others) <= on_grid([spec]):
                    specs = others
            text = (base_name or piece_name) + ",".join(str(s) for s in specs)
            if text and text not in out:
                out.append(text)
    if (bases or pieces) and not out:
        raise NoInterpreter("the bundled wheels need " + " or ".join(pieces or ["any Python"])
                            + ", but the constraints " + " or ".join(bases)
                            + " admit none of those")
    return out


@dataclass(frozen=True)
class Interpreter:
    path: str
    implementation: str
    version: str


def admits(constraints: list[str], python: Interpreter) -> bool:
    """Whether any of the (ORed) constraints admits this interpreter."""
    if not constraints:
        return True
    for constraint in constraints:
        name, specs = split(constraint)
        if name and NAMES.get(python.implementation, python.implementation) != name:
            continue
        if all(s.contains(python.version) for s in specs):
            return True
    return False


def candidates(extra: Sequence[str] = ()) -> list[str]:
    """Paths that may be Pythons: `extra`, every `python3.X` on PATH, and the base
    interpreter behind the running one (a venv's own python is only a link to it)."""
    found = [*extra]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and Path(folder).is_dir():
            found += sorted(str(p) for p in Path(folder).glob("python3.*")
                            if re.fullmatch(r"python3\.\d+", p.name))
    minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    found.append(str(Path(sys.base_prefix) / "bin" / minor))
    return list(dict.fromkeys(found))


PROBE = ("import os, sys; print(os.path.realpath(sys.executable)); "
         "print(sys.implementation.name); print('.'.join(map(str, sys.version_info[:3])))")


def probe(paths: Iterable[str]) -> list[Interpreter]:
    """The real interpreters behind `paths` (shims and links resolved), one per binary,
    oldest first; a path that does not answer as a Python is left out."""
    seen: dict[str, Interpreter] = {}
    for path in paths:
        try:
            proc = subprocess.run([path, "-I", "-c", PROBE], capture_output=True, text=True,
                                  timeout=20, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = proc.stdout.split("\n")
        if proc.returncode != 0 or len(lines) < 3 or not os.path.isabs(lines[0]):
            continue
        seen.setdefault(lines[0], Interpreter(lines[0], lines[1], lines[2]))
    return sorted(seen.values(), key=lambda i: (Version(i.version), i.path))
