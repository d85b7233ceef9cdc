"""The private environment PyInstaller analyses, the entry script it freezes, and its command line.

The app and its dependencies are installed offline from the wheel tier's wheelhouse into a
fresh venv; PyInstaller (with its hooks) comes from gradient's own environment through a
directory of links to exactly its distributions, so the analysis sees the app's packages and
PyInstaller's, and nothing else gradient happens to have installed (an app's optional
`try: import rich` must not pick up gradient's rich).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import glob
import hashlib
import io
import os
import re
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from gradient_build.backend import BuildContext, BuildFailed
from gradient_build.helpers import exclusive, import_lines, installer, remove_tree

if TYPE_CHECKING:
    from . import ExeOptions

TOOL_DISTS = ("pyinstaller", "pyinstaller-hooks-contrib")


def tool_closure(roots: tuple[str, ...] = TOOL_DISTS) -> list[metadata.Distribution]:
    """The installed distributions PyInstaller needs on this interpreter (its requirements)."""
    from packaging.requirements import Requirement  # ~10 ms: when the exe tier is keyed
    from packaging.utils import canonicalize_name

    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in roots:
                raise BuildFailed(f"exe: {name} is not installed: pip install "
                                  "'gradient-build[exe]'") from None
            continue
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return [seen[k] for k in sorted(seen)]


def link_tools(dest: Path) -> Path:
    """A directory of symlinks to the top-level entries of PyInstaller's distributions."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in tool_closure():
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or []}
        for top in sorted(tops):
            if top in ("..", "__pycache__") or top.endswith(".pth"):
                continue
            link = dest / top
            if not link.exists():
                link.symlink_to(base / top)
    return dest


def build_env(ctx: BuildContext[ExeOptions], app_wheel: Path, wheelhouses: list[Path]) -> Path:
    """A venv in ctx.work holding the app and its dependencies, plus PyInstaller's links."""
    venv = ctx.work / "venv"
    python = venv / "bin" / "python"
    tool = installer()
    env = {**ctx.env, "UV_PYTHON_DOWNLOADS": "never"}
    ctx.run(tool.venv(venv, sys.executable), env=env, what=f"{tool.name} venv (exe build env)")
    ctx.run(tool.install(python, [app_wheel], wheelhouses), env=env,
            what="install the app offline")
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    if not site.is_dir():
        found = sorted(venv.glob("lib/python*/site-packages"))
        if not found:
            raise BuildFailed(f"exe: no site-packages in the build venv {venv}")
        site = found[0]
    scrub_install_records(site)
    tools = link_tools(ctx.work / "pyinstaller-tools")
    (site / "_gradient_pyinstaller.pth").write_text(f"{tools}\n")
    return python


@contextlib.contextmanager
def pyinstaller_cache(ctx: BuildContext[ExeOptions]) -> Iterator[None]:
    """PyInstaller's config directory to this build alone while PyInstaller runs.

    Its bincache (the stripped copies of collected libraries) is updated in place with no
    locking: its index.dat is rewritten after each binary, so a second PyInstaller reading it
    meanwhile finds it empty and fails with "bincache may be corrupted" (pyinstaller#5195,
    #2210). Two gradient runs on one machine share the directory, so they take turns. A
    bincache of our own whose index an interrupted run left unreadable is dropped before the
    run; a directory the user named (PYINSTALLER_CONFIG_DIR) is theirs, left to them."""
    config = Path(ctx.env["PYINSTALLER_CONFIG_DIR"])
    tag = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:16]
    with exclusive(ctx.cache_dir / "locks" / f"pyinstaller-{tag}.lock"):
        if config.resolve().is_relative_to(ctx.cache_dir.resolve()):
            for index in sorted(config.glob("bincache*/**/index.dat")):
                if not readable_index(index):
                    remove_tree(index.parent)
        yield


def readable_index(index: Path) -> bool:
    """Whether PyInstaller can load this bincache index (it eval()s a pprint'ed dict)."""
    try:
        return isinstance(ast.literal_eval(index.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError, SyntaxError, UnicodeDecodeError, MemoryError,
            RecursionError):
        return False


def installed_dists(python: Path) -> list[str]:
    """The distributions installed in the build venv of `python` (the app and its deps)."""
    venv = python.parent.parent
    return sorted(p.name.partition("-")[0] for p in venv.glob("lib/python*/site-packages/"
                                                              "*.dist-info"))


INSTALL_RECORDS = ("direct_url.json", "uv_cache.json")


def scrub_install_records(site: Path) -> None:
    """Drop what the installer wrote about this install (the wheel's absolute path, a cache
    timestamp, scripts with the venv's shebang): bundled metadata would leak the build's
    paths and differ from run to run."""
    for dist_info in sorted(site.glob("*.dist-info")):
        gone = set()
        for name in INSTALL_RECORDS:
            if (dist_info / name).exists():
                (dist_info / name).unlink()
                gone.add(f"{dist_info.name}/{name}")
        record = dist_info / "RECORD"
        if record.exists():
            rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
            kept = [row for row in rows if row and row[0] not in gone
                    and not row[0].startswith("../")]
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(kept)
            record.write_text(text.getvalue(), encoding="utf-8")


def entry_script(dest: Path, entry: str, scripts: dict[str, str] | None = None) -> Path:
    """The script PyInstaller freezes: it runs the console script named by how the program was
    started (busybox style: each script ships as the same program under its own name), or
    `entry` under any other name, the way a console-script wrapper does. With
    GRADIENT_ENTRY_CHECK=1 it only imports the entry and checks it can be called."""
    branches = []
    for name, target in sorted((scripts or {}).items()):
        if target != entry:
            branches.append(f"    if name == {name!r}:\n{_import(target, 2)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(
        '"""Generated by gradient: runs the console script of the app."""\n'
        "import os\n"
        "import sys\n\n\n"
        "def _entry_point(name):\n"
        + "".join(branches) + _import(entry, 1) + "\n\n"
        'if __name__ == "__main__":\n'
        "    _main = _entry_point(os.path.basename(sys.argv[0]))\n"
        '    if os.environ.get("GRADIENT_ENTRY_CHECK") == "1":\n'
        '        sys.exit(0 if callable(_main) else "the entry point is not callable")\n'
        "    sys.exit(_main())\n"
    )
    return dest


def _import(entry: str, depth: int) -> str:
    """Lines that import `module:attr.path` (plain imports: the analysis must see them)."""
    inner = "    " * depth
    return import_lines(entry, inner, "_entry") + f"{inner}return _entry\n"


def wheel_packages(wheel: Path) -> list[str]:
    """Top-level packages (directories with Python code) a wheel installs: the app's own."""
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            parts = name.split("/")
            if len(parts) > 1 and not parts[0].endswith((".dist-info", ".data")) and (
                    name.endswith((".py", ".so")) and parts[0].isidentifier()):
                names.add(parts[0])
    return sorted(names)


def resolve_datas(ctx: BuildContext[ExeOptions], datas: list[str]) -> list[str]:
    """`SRC:DEST` pairs with SRC in a copy of the project's (non-ignored) files."""
    if not datas:
        return []
    assert ctx.project.sources is not None
    src_root = ctx.project.sources.copy_to(ctx.work / "src")
    resolved = []
    for item in datas:
        src, sep, dest = item.partition(":")
        if not sep or not src or not dest:
            raise ctx.option_error(f"datas entry {item!r} must look like 'SRC:DEST' (SRC relative "
                                   "to the project, DEST a folder inside the bundle)",
                                   "datas")
        if any(os.path.isabs(p) or ".." in Path(p).parts for p in (src, dest)):
            raise ctx.option_error(f"datas entry {item!r}: SRC must be inside the project and "
                                   "DEST inside the bundle (relative paths)",
                                   "datas")
        if not glob.glob(str(src_root / src)):
            hint = (" (it exists but git ignores it: builds only see files git does not ignore)"
                    if (ctx.project.root / src).exists() else "")
            raise ctx.option_error(f"datas source {src!r} matches no file of the project{hint}",
                                   "datas")
        resolved.append(f"{src_root / src}:{dest}")
    return resolved


def safe_name(name: str) -> str:
    """A file name for the executable: the script's name, kept to portable characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "app"


def unpack_binaries(exe: Path, dest: Path) -> list[Path]:
    """The ELF files a onefile executable carries (it unpacks them at run time), written to
    `dest` so their needs can be read. PyInstaller's own reader walks its archive format."""
    from PyInstaller.archive.readers import CArchiveReader

    reader = CArchiveReader(str(exe))
    written: list[Path] = []
    for name, (_off, _len, _ulen, _flag, typecode) in sorted(reader.toc.items()):
        rel = Path(name)
        if typecode not in ("b", "x") or rel.is_absolute() or ".." in rel.parts:
            continue
        data: bytes = reader.extract(name)
        if not data.startswith(b"\x7fELF"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755)
        written.append(target)
    return written
