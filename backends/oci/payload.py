"""What goes on top of the base: the payload split the way Jib splits it, and the system layer.

Dependencies (third-party packages, or the shared libraries a frozen binary loads) go in
one layer and the app's own code in another, so a code change rebuilds and ships only the
small top layer. The system layer makes the non-root user (and /tmp on `scratch`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

from gradient_build.backend import Artifact, BuildFailed, Meta, Project
from gradient_build.helpers import elf_files, elf_walk, safe_extract

from .fsindex import FsIndex
from .layout import LayerBuilder

# The C library's own files (PyInstaller never bundles them: it expects the target's), plus
# the few libraries nearly every frozen Python loads from the system.
C_LIBRARY = ("libc.so.6", "libm.so.6", "libmvec.so.1", "libdl.so.2", "libpthread.so.0",
             "librt.so.1", "libutil.so.1", "libresolv.so.2", "libanl.so.1", "libnss_files.so.2",
             "libnss_dns.so.2", "libcrypt.so.1", "libgcc_s.so.1", "libz.so.1")


@dataclass
class Payload:
    """The payload's two layers and how the image runs it."""

    deps: LayerBuilder
    app: LayerBuilder
    entrypoint: list[str]
    env: dict[str, str] = field(default_factory=dict)
    binaries: list[Path] = field(default_factory=list)
    bundle_dirs: list[Path] = field(default_factory=list)
    glibc_floor: str | None = None


def _split(top: Path, workdir: str, is_own: Callable[[str], bool]) -> tuple[LayerBuilder,
                                                                           LayerBuilder]:
    deps, app = LayerBuilder(), LayerBuilder()
    deps.tree(workdir, top, keep=lambda rel: not is_own(rel))
    app.tree(workdir, top, keep=is_own)
    return deps, app


def _with_ancestors(paths: set[str]) -> set[str]:
    found = set(paths)
    for path in paths:
        parts = path.split("/")
        found |= {"/".join(parts[:i]) for i in range(1, len(parts))}
    return found


def own_files(lib: Path, project: Project) -> set[str]:
    """Paths (relative to `lib`) the project's own distribution installed, from its RECORD;
    its top-level names when no dist-info of it is found."""
    for dist_info in sorted(lib.glob("*.dist-info")):
        meta = dist_info / "METADATA"
        if not meta.is_file():
            continue
        name = Parser().parsestr(meta.read_text(encoding="utf-8"), headersonly=True)["Name"]
        if re.sub(r"[-_.]+", "_", str(name)).lower() != project.dist_name:
            continue
        own = {p.relative_to(lib).as_posix() for p in dist_info.rglob("*")}
        record = dist_info / "RECORD"
        if record.is_file():
            for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
                if row and not row[0].startswith(("..", "/")):
                    own.add(row[0])
        own.add(dist_info.name)
        return own
    names = project.top_level or [project.import_name]
    return {p.relative_to(lib).as_posix() for n in names
            for p in [*lib.glob(n), *lib.glob(f"{n}.*"), *lib.glob(f"{n}/**/*")]}


def from_tarball(artifact: Artifact, project: Project, workdir: str, work: Path) -> Payload:
    """The tarball tier's tree at `workdir`: packages in lib/ split by owner, the rest is app."""
    dest = work / "payload"
    dest.mkdir(parents=True, exist_ok=True)
    safe_extract(artifact.path, dest)
    top = dest / (artifact.text(Meta.TOP) or _only_dir(dest))
    lib = (artifact.text(Meta.LIB) or "lib").strip("/")
    own = _with_ancestors(own_files(top / lib, project))

    def is_own(rel: str) -> bool:
        if rel == lib or not rel.startswith(lib + "/"):
            return True
        return rel[len(lib) + 1:] in own

    deps, app = _split(top, workdir, is_own)
    launcher = artifact.text(Meta.LAUNCHER)
    if launcher:
        return Payload(deps, app, [f"{workdir}/{launcher}"])
    return Payload(deps, app, [artifact.text(Meta.PYTHON) or "python3"],
                   {"PYTHONPATH": f"{workdir}/{lib}"})


def from_exe(artifact: Artifact, project: Project, workdir: str, work: Path) -> Payload:
    """The exe tier's binary (onefile) or folder (onedir) at `workdir`."""
    floor = artifact.text(Meta.GLIBC_FLOOR)
    if artifact.text(Meta.MODE) != "onedir":
        name = artifact.text(Meta.ENTRY) or artifact.primary
        app = LayerBuilder()
        app.file(f"{workdir}/{name}", source=artifact.path, mode=0o755)
        for other in artifact.texts(Meta.SCRIPTS):  # every console script's executable
            if other != name and (artifact.root / other).is_file():
                app.file(f"{workdir}/{other}", source=artifact.root / other, mode=0o755)
        return Payload(LayerBuilder(), app, [f"{workdir}/{name}"], binaries=[artifact.path],
                       glibc_floor=floor)
    dest = work / "payload"
    dest.mkdir(parents=True, exist_ok=True)
    safe_extract(artifact.path, dest)
    top = dest / (artifact.text(Meta.TOP) or _only_dir(dest))
    launcher = artifact.need(Meta.LAUNCHER)
    names = project.top_level or [project.import_name]
    mine = (*(f"_internal/{n}" for n in names), f"_internal/{project.dist_name}-")

    def is_own(rel: str) -> bool:
        return rel in (launcher, "_internal") or rel.startswith(mine)

    deps, app = _split(top, workdir, is_own)
    elves = elf_files(top)
    dirs = sorted({p.parent for p in elves})
    return Payload(deps, app, [f"{workdir}/{launcher}"], binaries=elves, bundle_dirs=dirs,
                   glibc_floor=floor)


def _only_dir(dest: Path) -> str:
    dirs = [p.name for p in dest.iterdir() if p.is_dir()]
    if len(dirs) != 1:
        raise BuildFailed(f"oci: expected one top folder in the payload, found {dirs}")
    return dirs[0]


def host_libraries(binaries: list[Path], bundle_dirs: list[Path]) -> list[str]:
    """Absolute paths (as the loader names them) of the host libraries `binaries` load,
    with the C library's own files and everything those load in turn. Read from the files,
    never by running them: the bundle's folders play LD_LIBRARY_PATH, as the bootloader's."""
    inside = tuple(str(d) + "/" for d in bundle_dirs)
    tree = elf_walk(binaries, extra_dirs=bundle_dirs)
    found = {str(p) for p in tree.paths if not str(p).startswith(inside)}
    libc_dirs = {str(Path(p).parent) for p in found if Path(p).name == "libc.so.6"}
    extra = sorted({f"{d}/{n}" for d in libc_dirs for n in C_LIBRARY if Path(d, n).exists()})
    more = elf_walk(extra, extra_dirs=bundle_dirs, loader=tree.interpreter)
    found |= set(extra) | {str(p) for p in more.paths if not str(p).startswith(inside)}
    missing = {m for m in tree.missing | more.missing
               if not any((d / m).exists() for d in bundle_dirs)}
    if missing:
        raise BuildFailed(f"oci: the host has no {', '.join(sorted(missing))}, which "
                          "the executable loads")
    return sorted(found)


def add_libraries(layer: LayerBuilder, libs: list[str], fs: FsIndex | None) -> list[str]:
    """Put the host's `libs` that the base lacks into `layer`; returns those added."""
    added = []
    for lib in libs:
        if fs is not None and fs.resolve(lib) is not None:
            continue
        parent, _, name = lib.strip("/").rpartition("/")
        where = fs.resolve(parent) if fs is not None else None
        layer.file(f"{where if where is not None else parent}/{name}",
                   source=Path(lib).resolve(), mode=0o755)
        added.append(lib)
    return added


def passwd_uid(passwd: str, user: str) -> int | None:
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == user and fields[2].isdigit():
            return int(fields[2])
    return None


def system_layer(fs: FsIndex | None, user: str, uid: int, workdir: str) -> tuple[LayerBuilder,
                                                                                 int]:
    """The user account (added to the base's /etc/passwd), a home, /tmp if missing, `workdir`.

    Returns the layer and the uid the image runs as."""
    layer = LayerBuilder()
    layer.dir(workdir)
    if fs is None or fs.resolve("tmp") is None:
        layer.dir("tmp", 0o1777)
    name = user.split(":")[0]
    if name.isdigit():
        return layer, int(name)
    passwd = (fs.read("etc/passwd") if fs else None) or b"root:x:0:0:root:/root:/sbin/nologin\n"
    known = passwd_uid(passwd.decode(), name)
    if known is not None:
        return layer, known
    group = (fs.read("etc/group") if fs else None) or b"root:x:0:\n"
    shell = "/usr/sbin/nologin" if fs and fs.resolve("usr/sbin/nologin") else "/sbin/nologin"
    passwd = passwd.rstrip(b"\n") + f"\n{name}:x:{uid}:{uid}::/home/{name}:{shell}\n".encode()
    group = group.rstrip(b"\n") + f"\n{name}:x:{uid}:\n".encode()
    layer.file("etc/passwd", data=passwd, mode=0o644)
    layer.file("etc/group", data=group, mode=0o644)
    layer.dir(f"home/{name}", 0o755, uid, uid)
    return layer, uid
