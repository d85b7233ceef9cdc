"""From a wheel's metadata to a conda package's: names, versions, and `depends` match specs.

conda has no extras and no environment markers: an extra is flattened into the extra's own
requirements, and a marker is evaluated for the target (linux, the build's Python). A noarch
package is installed on every platform and every Python its `python` spec admits, so a marker
that would come out differently there cannot be evaluated once: a platform marker makes the
package a linux-64 one, a Python-version marker pins it to the build's Python (see `Plan`).
"""

from __future__ import annotations

import email.parser
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

# PyPI names whose conda-forge package is called differently (normalized PyPI name -> conda).
# `[tiers.conda] names` adds to and overrides this table.
CONDA_NAMES: dict[str, str] = {
    "torch": "pytorch",
    "msgpack": "msgpack-python",
    "tables": "pytables",
    "opencv-python": "opencv",
    "opencv-python-headless": "opencv",
    "ruamel-yaml": "ruamel.yaml",
    "typing-extensions": "typing_extensions",
    "prompt-toolkit": "prompt_toolkit",
    "jupyter-core": "jupyter_core",
    "jupyter-client": "jupyter_client",
    "pyqt5": "pyqt",
    "tensorflow-cpu": "tensorflow",
    "graphviz": "python-graphviz",
    "kubernetes": "python-kubernetes",
    "build": "python-build",
    "docker": "docker-py",
    "setuptools-scm": "setuptools_scm",
    "duckdb": "python-duckdb",
}

LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
         "platform_machine": "x86_64"}
ELSEWHERE = ({"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
              "platform_machine": "AMD64"},
             {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
              "platform_machine": "arm64"})
PYTHONS = [f"3.{minor}" for minor in range(8, 16)]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class WheelInfo:
    """What a conda recipe needs from one wheel."""

    path: Path
    name: str
    version: str
    requires: list[str]
    requires_python: str | None
    scripts: dict[str, str]
    summary: str
    license: str | None
    pure: bool

    @property
    def key(self) -> str:
        return normalize(self.name)


def read_wheel(path: Path) -> WheelInfo:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        info = next(n.split("/")[0] for n in names
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        msg = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode("utf-8"))
        wheel_meta = zf.read(f"{info}/WHEEL").decode("utf-8")
        eps = zf.read(f"{info}/entry_points.txt").decode() if (
            f"{info}/entry_points.txt" in names) else ""
    pure = bool(re.search(r"^Root-Is-Purelib:\s*true", wheel_meta, re.M | re.I)) and not any(
        n.endswith((".so", ".pyd", ".dylib")) for n in names)
    license_text = msg.get("License-Expression") or msg.get("License")
    if license_text and ("\n" in license_text or len(license_text) > 60):
        license_text = None  # a whole license text in the field is not an identifier
    return WheelInfo(path, msg["Name"], msg["Version"], msg.get_all("Requires-Dist") or [],
                     msg.get("Requires-Python"), console_scripts(eps),
                     (msg.get("Summary") or "").strip(), license_text, pure)


def console_scripts(text: str) -> dict[str, str]:
    scripts: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif "=" in line and section == "console_scripts":
            name, value = (s.strip() for s in line.split("=", 1))
            scripts[name] = value.split("[")[0].strip()
    return dict(sorted(scripts.items()))


def conda_version(version: str) -> str:
    return version.replace("-", "_")


def match_spec(name: str, specifier: SpecifierSet) -> str:
    """PEP 440 specifiers as a conda match spec: `name >=1.2,<2`."""
    parts: list[str] = []
    for spec in sorted(specifier, key=str):
        op, version = spec.operator, conda_version(spec.version)
        if op == "~=":
            head = version.split(".")[:-1]
            parts += [f">={version}", f"{'.'.join(head)}.*"]
        elif op in ("==", "===") and version.endswith(".*"):
            parts.append(version)
        elif op == "===":
            parts.append(f"=={version}")
        elif op == "!=" and version.endswith(".*"):
            parts.append(f"!={version}")
        else:
            parts.append(f"{op}{version}")
    return f"{name} {','.join(parts)}" if parts else name


@dataclass
class Plan:
    """One conda package: its subdir, its depends, and why it is not a plain noarch one."""

    wheel: WheelInfo
    name: str
    noarch: bool
    depends: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _env(python: str, extra: str = "", **where: str) -> dict[str, str]:
    return {**LINUX, **where, "python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "extra": extra}


def _varies(marker: Marker, extra: str) -> tuple[bool, bool]:
    """(depends on the platform, depends on the Python version) for a marker."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    at_home = marker.evaluate(_env(here, extra))
    platform = any(marker.evaluate(_env(here, extra, **other)) != at_home for other in ELSEWHERE)
    python = any(marker.evaluate(_env(v, extra)) != at_home for v in PYTHONS)
    return platform, python


def plan_package(wheel: WheelInfo, wheels: dict[str, WheelInfo], names: dict[str, str]) -> Plan:
    """The conda package of `wheel`: markers evaluated for linux and this Python, extras
    flattened (from the extra's wheel when it is in the wheelhouse)."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    plan = Plan(wheel, conda_name(wheel.name, names), noarch=wheel.pure)
    pin_python = not wheel.pure
    depends: dict[str, None] = {}
    seen: set[tuple[str, str]] = set()

    def add(text: str, extra: str, via: str) -> None:
        nonlocal pin_python
        try:
            req = Requirement(text)
        except InvalidRequirement:
            return
        if req.marker is not None:
            # a marker false here but true elsewhere still matters: a noarch package goes there
            platform, python = _varies(req.marker, extra)
            if platform and plan.noarch:
                plan.noarch, pin_python = False, True  # its files sit in lib/pythonX.Y
                plan.reasons.append(f"{via}{text!r} depends on the platform: built for "
                                    f"linux-64 and Python {here}, not noarch")
            elif python and not pin_python:
                pin_python = True
                plan.reasons.append(f"{via}{text!r} depends on the Python version: pinned "
                                    f"to Python {here}")
            if not req.marker.evaluate(_env(here, extra)):
                return
        key = normalize(req.name)
        depends[match_spec(conda_name(req.name, names), req.specifier)] = None
        for wanted in sorted(req.extras):
            if (key, wanted) in seen:
                continue
            seen.add((key, wanted))
            other = wheels.get(key)
            if other is None:
                plan.reasons.append(f"extra [{wanted}] of {req.name} not flattened: its wheel "
                                    "is not in the wheelhouse")
                continue
            for inner in other.requires:
                add(inner, wanted, f"{req.name}[{wanted}]: ")

    for text in wheel.requires:
        add(text, "", "")
    python = (f"python >={here},<{sys.version_info[0]}.{sys.version_info[1] + 1}"
              if pin_python else match_spec("python", SpecifierSet(wheel.requires_python or "")))
    plan.depends = [python, *depends]
    return plan


def conda_name(name: str, names: dict[str, str]) -> str:
    key = normalize(name)
    table = {**CONDA_NAMES, **{normalize(k): v for k, v in names.items()}}
    return table.get(key, key)
