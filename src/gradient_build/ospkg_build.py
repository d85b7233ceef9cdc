"""A deb or rpm tier's build: check its options, stage the payload, write the docs Debian
wants (copyright, changelog) and the optional systemd unit, write nfpm.yaml and run nfpm.
The rules of names, versions and control fields it applies are in `ospkg`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .artifact import JSON, Artifact, Meta
from .errors import BuildFailed
from .options import doc

if TYPE_CHECKING:
    from .backend import BuildContext
    from .ospkg import Format, Package, Run


class NoMaintainer(BuildFailed):
    """Nobody to name as a .deb's Maintainer (the tier's table can name one)."""


HOOKS = ("preinstall", "postinstall", "preremove", "postremove")


@dataclass(frozen=True)
class Choices:
    """What a deb or rpm tier's table may override (empty: from the project's metadata)."""

    depends: Sequence[str] = ()
    conflicts: Sequence[str] = ()
    replaces: Sequence[str] = ()
    maintainer: str = ""
    section: str = ""
    scripts: Mapping[str, Path] = field(default_factory=dict)
    service: bool = False
    service_args: Sequence[str] = ()


def pack(fmt: Format, run: Run, nfpm: Path, *, project: str, version: str, wheel: Path,
         source: Artifact, choices: Choices, work: Path, out: Path, epoch: int,
         script: str, patchelf: Path | None = None) -> tuple[Path, Package]:
    """Stage the payload, write nfpm.yaml into `out` (beside the package) and run nfpm in
    `work`; returns the package file and what it says."""
    from .ospkg import (  # with packaging and the ELF reader: only when a package is built
        Control,
        Package,
        machine_arch,
        nfpm_config,
        package_name,
        package_version,
        set_times,
        stage_payload,
        wheel_control,
    )

    name = package_name(project)
    payload = stage_payload(source, name, work, epoch, run, patchelf)
    control = wheel_control(wheel)
    if choices.maintainer:
        control = Control(control.summary, control.description, control.license,
                          control.homepage, choices.maintainer)
    if fmt == "deb" and "@" not in control.maintainer:
        raise NoMaintainer(f"{project} names no author with an email address, and a .deb must "
                           "say who maintains it")
    pure = not payload.compiled and payload.kind == "tarball"
    arch = ("all" if fmt == "deb" else "noarch") if pure else machine_arch(fmt)
    pkg = Package(fmt, name, package_version(version), arch, control, payload,
                  depends=[*payload.depends(fmt), *choices.depends],
                  conflicts=list(choices.conflicts), replaces=list(choices.replaces),
                  section=choices.section or ("utils" if fmt == "deb" else "Applications"))
    extras = work / "extras"
    extras.mkdir()
    for hook, path in sorted(choices.scripts.items()):
        dest = extras / f"{hook}.sh"
        shutil.copyfile(path, dest)
        dest.chmod(0o755)
        pkg.scripts[hook] = f"extras/{dest.name}"
    if choices.service:
        unit = extras / f"{name}.service"
        unit.write_text(service_unit(pkg, script, choices.service_args))
        pkg.extra_files[f"/usr/lib/systemd/system/{name}.service"] = f"extras/{unit.name}"
    if fmt == "deb":
        doc = extras / "copyright"
        doc.write_text(copyright_text(pkg, wheel))
        pkg.extra_files[f"/usr/share/doc/{name}/copyright"] = "extras/copyright"
        changelog = extras / "changelog.Debian.gz"
        changelog.write_bytes(_gzip(changelog_text(pkg, epoch).encode()))
        pkg.extra_files[f"/usr/share/doc/{name}/changelog.Debian.gz"] = \
            "extras/changelog.Debian.gz"
    set_times(extras, epoch)
    config = nfpm_config(pkg, epoch)
    (out / "nfpm.yaml").write_text(config)
    (work / "nfpm.yaml").write_text(config)
    target = out / (f"{name}_{pkg.version.deb().partition(':')[2] or pkg.version.deb()}"
                    f"_{arch}.deb" if fmt == "deb" else
                    f"{name}-{pkg.version.version}-{pkg.version.release}.{arch}.rpm")
    run([nfpm, "package", "--config", "nfpm.yaml", "--packager", fmt, "--target", target],
        cwd=work, env={"SOURCE_DATE_EPOCH": str(epoch), "PATH": os.environ.get("PATH", ""),
                       "HOME": str(work)}, what=f"nfpm package ({fmt})")
    if not target.is_file():
        raise BuildFailed(f"{fmt}: nfpm wrote no {target.name}")
    return target, pkg


def service_unit(pkg: Package, script: str, args: Sequence[str]) -> str:
    argv = " ".join([f"/usr/bin/{script}", *(json.dumps(a) for a in args)])
    return "\n".join([
        "[Unit]", f"Description={pkg.control.summary or pkg.name}", "After=network.target", "",
        "[Service]", "DynamicUser=yes", f"ExecStart={argv}", "Restart=on-failure", "",
        "[Install]", "WantedBy=multi-user.target", ""])


# SPDX names whose text every Debian system has in /usr/share/common-licenses (Debian
# policy 12.5: refer to it there, never copy it; lintian makes that an error for the GPLs).
COMMON_LICENSES = {"GPL-1.0": "GPL-1", "GPL-2.0": "GPL-2", "GPL-3.0": "GPL-3",
                   "LGPL-2.0": "LGPL-2", "LGPL-2.1": "LGPL-2.1", "LGPL-3.0": "LGPL-3",
                   "Apache-2.0": "Apache-2.0", "MPL-1.1": "MPL-1.1", "MPL-2.0": "MPL-2.0",
                   "CC0-1.0": "CC0-1.0", "GFDL-1.2": "GFDL-1.2", "GFDL-1.3": "GFDL-1.3"}


def common_license(expression: str) -> tuple[str, str] | None:
    """(Debian's short name, its file under /usr/share/common-licenses) for a single SPDX
    license Debian ships the text of: 'GPL-3.0-or-later' -> ('GPL-3+', 'GPL-3')."""
    found = re.fullmatch(r"([A-Za-z]+-\d\.\d)(-only|-or-later|\+)?", expression.strip())
    if not found or found.group(1) not in COMMON_LICENSES:
        return None
    file = COMMON_LICENSES[found.group(1)]
    later = found.group(2) in ("-or-later", "+")
    return (f"{file}+" if later else file), file


def copyright_text(pkg: Package, wheel: Path) -> str:
    """A machine-readable debian/copyright naming the license: a reference to Debian's copy
    of a common license, else the license files the wheel ships."""
    texts = []
    with zipfile.ZipFile(wheel) as zf:
        for item in sorted(zf.namelist()):
            parts = item.split("/")
            if (len(parts) >= 2 and parts[0].endswith(".dist-info")
                    and (parts[1] == "licenses" or parts[1].upper().startswith(
                        ("LICEN", "COPYING")))):
                texts.append(zf.read(item).decode("utf-8", "replace"))
    license_name = pkg.control.license or "unknown"
    common = common_license(license_name)
    if common:
        license_name = common[0]
        texts = [f"On Debian systems, the complete text of this license can be found in "
                 f"/usr/share/common-licenses/{common[1]}."]
    body = "\n".join(" " + (line if line.strip() else ".")
                     for text in texts for line in text.strip().splitlines())
    lines = ["Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
             f"Upstream-Name: {pkg.name}"]
    if pkg.control.homepage:
        lines.append(f"Source: {pkg.control.homepage}")
    lines += ["", "Files: *", f"Copyright: {pkg.control.maintainer}",
              f"License: {license_name}"]
    if body:
        lines.append(body)
    return "\n".join(lines) + "\n"


def changelog_text(pkg: Package, epoch: int) -> str:
    from email.utils import formatdate

    return (f"{pkg.name} ({pkg.version.deb()}) unstable; urgency=medium\n\n"
            f"  * Packaged by gradient-build.\n\n"
            f" -- {pkg.control.maintainer}  {formatdate(epoch, usegmt=False)}\n")


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=9, mtime=0)


@dataclass
class PackageOptions:
    """The options the deb and rpm tiers' tables share (each tier adds its own)."""

    payload: Literal["tarball", "exe"] = doc(
        "what goes under /opt/<name>: the tarball tier's tree (the package then depends on the "
        "system's python3) or the exe tier's onedir folder ([tiers.exe] mode = \"onedir\"; "
        "it brings its own Python and depends only on the C library)", "tarball")
    depends: list[str] = doc("more dependencies, in the format's syntax (deb: 'libpq5 (>= "
                             "15)', rpm: 'libpq >= 15')", [])
    conflicts: list[str] = doc("packages this one conflicts with, in the format's syntax", [])
    replaces: list[str] = doc("packages this one replaces (rpm: obsoletes)", [])
    maintainer: str = doc("'Name <email>' (default: the project's first author with an "
                          "email; a .deb needs one)", "")
    section: str = doc("the Section (deb, default utils) or Group (rpm, default "
                       "Applications)", "")
    scripts: dict[str, str] = doc(
        "maintainer scripts: preinstall, postinstall, preremove, postremove = a file "
        "relative to the project", {})
    service: bool = doc("also install a systemd unit running the app (not enabled)", False)
    service_args: list[str] = doc("arguments the service gives the app", [])


def build_os_package(ctx: BuildContext[Any], fmt: Format, nfpm: Path,
                     patchelf: Path | None = None) -> tuple[Path, Package, dict[str, JSON]]:
    """A deb or rpm tier's build: check the options, pack with nfpm, and the facts its
    verification reads (package name, install dir, links, the payload's kind)."""
    options: PackageOptions = ctx.options
    source = ctx.inputs[options.payload]
    if source.tier == "exe" and source.text(Meta.MODE) != "onedir":
        raise ctx.option_error(
            "payload = \"exe\" packs the exe tier's onedir folder, but that tier built a "
            "onefile executable (it unpacks itself into a temp dir on every start): set "
            "[tiers.exe] mode = \"onedir\", or use payload = \"tarball\"", "payload")
    scripts: dict[str, Path] = {}
    for hook, rel in sorted(options.scripts.items()):
        if hook not in HOOKS:
            raise ctx.option_error(f"{hook!r} is not a maintainer script (one of "
                                   f"{', '.join(HOOKS)})", "scripts", hook,
                                   suggestion=_nearest(hook, HOOKS))
        path = ctx.project.root / rel
        if not path.is_file():
            raise ctx.option_error(f"{rel!r} names no file (looked at {path})", "scripts", hook)
        scripts[hook] = path
    script = ctx.app.script or ctx.project.name
    choices = Choices(options.depends, options.conflicts, options.replaces,
                      options.maintainer, options.section, scripts, options.service,
                      options.service_args)
    epoch = int(ctx.env.get("SOURCE_DATE_EPOCH", "315532800"))
    try:
        target, pkg = pack(fmt, ctx.run, nfpm, project=ctx.project.name,
                           version=ctx.project.version, wheel=ctx.inputs["wheel"].path,
                           source=source, choices=choices, work=ctx.work, out=ctx.out,
                           epoch=epoch, script=script, patchelf=patchelf)
    except NoMaintainer as exc:
        raise ctx.option_error(f"{exc.message}: set it here, e.g. maintainer = \"Jane Doe "
                               "<jane@example.org>\", or add an author with an email to the "
                               "project's metadata", "maintainer") from None
    if f"/usr/bin/{script}" not in pkg.payload.links:
        raise BuildFailed(f"{fmt}: the payload has no launcher for {script!r} (it has "
                          f"{', '.join(sorted(pkg.payload.links)) or 'none'})")
    meta: dict[str, JSON] = {
        "package": pkg.name, "version": pkg.version.deb(), "arch": pkg.arch,
        "payload": pkg.payload.kind, "install_dir": pkg.payload.install_dir,
        "links": dict(sorted(pkg.payload.links.items())), "script": script,
        "depends": pkg.depends, "maintainer": pkg.control.maintainer,
        "license": pkg.control.license}
    if pkg.payload.glibc_floor:
        meta[Meta.GLIBC_FLOOR] = pkg.payload.glibc_floor
    if pkg.payload.python_version:
        meta[Meta.PYTHON_VERSION] = pkg.payload.python_version
    return target, pkg, meta


def _nearest(word: str, choices: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def scripts_key(scripts: Mapping[str, str], root: Path) -> dict[str, JSON]:
    """The maintainer scripts' digests: project files the build reads (the cache key)."""
    found: dict[str, JSON] = {}
    for hook, rel in sorted(scripts.items()):
        path = root / rel
        found[hook] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"scripts": found} if found else {}
