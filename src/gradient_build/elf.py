"""Reading ELF executables and shared libraries with pyelftools, never by running them.

The exe tier needs the glibc floor of a frozen app and the host libraries it loads (for a
C-library-only container); the oci tier needs the host C library a scratch image lacks and
whether an entrypoint's loader is in the image. `ldd` answers the second question, but it
may execute the binary it is asked about, so `walk` resolves DT_NEEDED from the files the
way the dynamic loader does (auditwheel's lddtree is the model). Every reader returns
None or an empty answer for a file that is not ELF or is truncated: callers ask about
whatever files a bundle or an image holds.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # pyelftools loads on the first ELF file read (~50 ms of every start)
    from elftools.elf.elffile import ELFFile

Source = Path | str | bytes
MAGIC = b"\x7fELF"
STRING_TAGS = ("DT_NEEDED", "DT_RPATH", "DT_RUNPATH", "DT_SONAME")
GLIBC = re.compile(r"GLIBC_(\d+(?:\.\d+)+)")


@functools.cache
def _broken() -> tuple[type[BaseException], ...]:
    """What a damaged or truncated file makes pyelftools raise."""
    from elftools.common.exceptions import ELFError
    from elftools.construct.core import ConstructError

    return (ELFError, ConstructError, OSError, ValueError, IndexError, KeyError,
            AssertionError, EOFError, AttributeError, TypeError, ArithmeticError)


LD_SO_CONF = "/etc/ld.so.conf"
# Debian's multiarch directory names ($LIB of its loader), by ELF machine and class.
TRIPLETS = {("EM_X86_64", 64): "x86_64-linux-gnu", ("EM_386", 32): "i386-linux-gnu",
            ("EM_AARCH64", 64): "aarch64-linux-gnu", ("EM_ARM", 32): "arm-linux-gnueabihf",
            ("EM_PPC64", 64): "powerpc64le-linux-gnu", ("EM_S390", 64): "s390x-linux-gnu",
            ("EM_RISCV", 64): "riscv64-linux-gnu"}
# The loader each psABI fixes, which ldd uses for a shared library (it has no PT_INTERP).
LOADERS = {("EM_X86_64", 64): "/lib64/ld-linux-x86-64.so.2", ("EM_386", 32): "/lib/ld-linux.so.2",
           ("EM_AARCH64", 64): "/lib/ld-linux-aarch64.so.1"}


@dataclass(frozen=True)
class Info:
    """What the dynamic loader reads from one file: its platform, loader and dynamic tags
    (RPATH/RUNPATH as written, $ORIGIN not yet expanded)."""

    platform: tuple[int, bool, str]  # ELF class, little-endian, machine
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    soname: str | None


@contextmanager
def _elffile(source: Source) -> Iterator[ELFFile]:
    from elftools.elf.elffile import ELFFile

    stream: IO[bytes]
    stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    with stream:
        yield ELFFile(stream)


def is_elf(source: Source) -> bool:
    """The ELF magic: cheap, for picking the files worth reading out of a tree."""
    if isinstance(source, bytes):
        return source[:4] == MAGIC
    try:
        with open(source, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split(":")) if value else ()


def _read(source: Source) -> Info | None:
    if not is_elf(source):
        return None
    from elftools.elf.dynamic import DynamicSegment
    from elftools.elf.segments import InterpSegment

    try:
        with _elffile(source) as elf:
            platform = (elf.elfclass, elf.little_endian, str(elf["e_machine"]))
            interp: str | None = None
            needed: list[str] = []
            rpath: tuple[str, ...] = ()
            runpath: tuple[str, ...] = ()
            soname: str | None = None
            for segment in elf.iter_segments():
                if isinstance(segment, InterpSegment):
                    interp = segment.get_interp_name()
                elif isinstance(segment, DynamicSegment):
                    for tag in segment.iter_tags():
                        kind = str(tag.entry.d_tag)
                        if kind not in STRING_TAGS:
                            continue
                        # pyelftools sets the tag's string as an attribute named after it
                        value = str(getattr(tag, kind[3:].lower()))
                        if kind == "DT_NEEDED":
                            needed.append(value)
                        elif kind == "DT_RPATH":
                            rpath += _split(value)
                        elif kind == "DT_RUNPATH":
                            runpath += _split(value)
                        else:
                            soname = value
            return Info(platform, interp, tuple(needed), rpath, runpath, soname)
    except _broken():
        return None


@functools.lru_cache(maxsize=4096)
def _read_file(path: str, _mtime_ns: int, _size: int) -> Info | None:
    return _read(path)


def read(source: Source) -> Info | None:
    """The file's loader facts, or None when it is not a readable ELF file (files on disk
    are remembered while they stay unchanged: a walk reads libc once, not per binary)."""
    if isinstance(source, bytes):
        return _read(source)
    try:
        st = os.stat(source)
    except OSError:
        return None
    return _read_file(os.fspath(source), st.st_mtime_ns, st.st_size)


def interpreter(source: Source) -> str | None:
    """The PT_INTERP path (the dynamic loader), None for a static binary or a non-ELF."""
    info = read(source)
    return info.interpreter if info else None


def needed(source: Source) -> list[str]:
    """The DT_NEEDED names, in the order the loader loads them."""
    info = read(source)
    return list(info.needed) if info else []


@dataclass(frozen=True)
class SearchPaths:
    """DT_RPATH and DT_RUNPATH directories, $ORIGIN and $LIB expanded."""

    rpath: list[str]
    runpath: list[str]


def _expand(entries: Iterable[str], origin: str, lib: str | None) -> list[str]:
    """Directories as the loader reads them: $ORIGIN is the object's folder, an empty entry
    the working directory; an entry naming a variable we cannot expand is dropped."""
    dirs: list[str] = []
    for entry in entries:
        value = re.sub(r"\$(ORIGIN\b|\{ORIGIN\})", lambda _: origin, entry)
        if lib:
            value = re.sub(r"\$(LIB\b|\{LIB\})", lambda _: lib, value)
        if "$" in value:
            continue
        dirs.append(os.path.normpath(value or os.getcwd()))
    return dirs


def _lib_dir(platform: tuple[int, bool, str]) -> str | None:
    triplet = TRIPLETS.get((platform[2], platform[0]))
    return f"lib/{triplet}" if triplet else None


def rpaths(source: Path | str, info: Info | None = None) -> SearchPaths:
    """The file's RPATH and RUNPATH directories, expanded against where it is."""
    info = info or read(source)
    if info is None:
        return SearchPaths([], [])
    origin = os.path.dirname(os.path.abspath(source))
    lib = _lib_dir(info.platform)
    return SearchPaths(_expand(info.rpath, origin, lib), _expand(info.runpath, origin, lib))


def glibc_versions(source: Source) -> set[str]:
    """The GLIBC_x.y versions the file's versioned symbol references need: the names in its
    version-needs section (.gnu.version_r), not the versions a library itself defines."""
    if not is_elf(source):
        return set()
    from elftools.elf.gnuversions import GNUVerNeedSection

    found: set[str] = set()
    try:
        with _elffile(source) as elf:
            for section in elf.iter_sections():
                if not isinstance(section, GNUVerNeedSection):
                    continue
                for _verneed, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        if match := GLIBC.fullmatch(aux.name):
                            found.add(match.group(1))
    except _broken():
        return found
    return found


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def highest(versions: Iterable[str]) -> str | None:
    found = list(versions)
    return max(found, key=version_key) if found else None


def glibc_floor(files: Iterable[Path]) -> str | None:
    """The highest GLIBC version any of the regular ELF files in `files` needs: the oldest
    glibc they all run on."""
    found: set[str] = set()
    for path in files:
        if path.is_file() and not path.is_symlink():
            found |= glibc_versions(path)
    return highest(found)


def elf_files(root: Path) -> list[Path]:
    """Regular ELF files below `root` (symlinks are counted once, as their target)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and is_elf(p))


@functools.cache
def _ld_so_conf(conf: str) -> tuple[str, ...]:
    """The directories /etc/ld.so.conf names, its `include` globs followed in order."""
    dirs: list[str] = []
    try:
        lines = Path(conf).read_text(errors="replace").splitlines()
    except OSError:
        return ()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap "):
            continue
        if line.startswith("include "):
            for pattern in line[len("include "):].split():
                pattern = os.path.join(os.path.dirname(conf), pattern)
                for included in sorted(glob.glob(pattern)):
                    dirs += _ld_so_conf(included)
        else:
            dirs.append(os.path.normpath(line))
    return tuple(dict.fromkeys(dirs))


def system_dirs(platform: tuple[int, bool, str]) -> list[str]:
    """Where the loader looks after LD_LIBRARY_PATH and RUNPATH: the ld.so.conf directories
    (what its cache holds), then the built-in defaults."""
    triplet = TRIPLETS.get((platform[2], platform[0]), "x86_64-linux-gnu")
    defaults = ["/lib64", "/usr/lib64", f"/lib/{triplet}", f"/usr/lib/{triplet}", "/lib",
                "/usr/lib"]
    return list(dict.fromkeys([*_ld_so_conf(LD_SO_CONF), *defaults]))


@dataclass
class _Loaded:
    path: str
    info: Info
    loader: _Loaded | None


@dataclass
class Tree:
    """What loading the files would bring in: each soname and where it was found (the first
    file's answer when two differ), every path any file resolved to, and what no directory
    held. Paths are as the loader names them (not resolved): a symlink stays a symlink."""

    libraries: dict[str, Path] = field(default_factory=dict)
    paths: set[Path] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    interpreter: str | None = None


def _search_dirs(obj: _Loaded, extra_dirs: list[str]) -> list[str]:
    """glibc's order: RPATH of the object and then of the objects that loaded it (unless the
    object has a RUNPATH), LD_LIBRARY_PATH, the object's RUNPATH, then the system's."""
    dirs: list[str] = []
    own = rpaths(obj.path, obj.info)
    if not own.runpath:
        chain: _Loaded | None = obj
        while chain is not None:
            if not chain.info.runpath:
                dirs += rpaths(chain.path, chain.info).rpath
            chain = chain.loader
    return [*dirs, *extra_dirs, *own.runpath, *system_dirs(obj.info.platform)]


def _find(name: str, dirs: list[str], platform: tuple[int, bool, str]) -> str | None:
    """The first `name` in `dirs` that is an ELF file of the same class and machine."""
    candidates = [os.path.abspath(name)] if "/" in name else [os.path.join(d, name)
                                                               for d in dirs]
    for candidate in candidates:
        info = read(candidate)
        if info is not None and info.platform == platform:
            return candidate
    return None


def _walk_one(root: str, extra_dirs: list[str], loader: str | None, tree: Tree) -> None:
    """Breadth first, as ld.so loads: a name already loaded (or an object's SONAME) is not
    looked up again. The loader is the file's PT_INTERP; a shared library's is `loader`, which
    then answers for its name when something (libc) needs it."""
    info = read(root)
    if info is None:
        return
    loaded: dict[str, str] = {}
    sonames: set[str] = set()
    interp = info.interpreter or loader or LOADERS.get((info.platform[2], info.platform[0]))
    if interp and not os.path.exists(interp):
        if info.interpreter:
            tree.missing.add(interp)
        interp = None
    elif interp and info.interpreter:
        loaded[os.path.basename(interp)] = interp
    queue = deque([_Loaded(os.path.abspath(root), info, None)])
    while queue:
        obj = queue.popleft()
        for name in obj.info.needed:
            if name in loaded or name in sonames:
                continue
            if interp and name == os.path.basename(interp):
                path: str | None = interp
            else:
                path = _find(name, _search_dirs(obj, extra_dirs), obj.info.platform)
            if path is None:
                tree.missing.add(name)
                continue
            loaded[name] = path
            lib = read(path)
            if lib is not None:
                sonames.add(lib.soname or name)
                queue.append(_Loaded(path, lib, obj))
    for name, path in loaded.items():
        tree.libraries.setdefault(name, Path(path))
        tree.paths.add(Path(path))


def walk(files: Iterable[Path | str], extra_dirs: Iterable[Path | str] = (),
         loader: str | None = None) -> Tree:
    """Resolve each file's DT_NEEDED recursively, reading files only (never running them).

    Each file is walked as its own process would load it. `extra_dirs` play the part of
    LD_LIBRARY_PATH; a file with no PT_INTERP (a shared library) is taken to be loaded by
    `loader`, by default the first interpreter among `files`."""
    roots = [os.fspath(f) for f in files]
    extra = [os.path.normpath(os.fspath(d)) for d in extra_dirs]
    tree = Tree()
    tree.interpreter = loader or next((i for r in roots if (i := interpreter(r))), None)
    for root in roots:
        _walk_one(root, extra, tree.interpreter, tree)
    return tree


def lddtree(files: Iterable[Path | str], extra_dirs: Iterable[Path | str] = ()
            ) -> dict[str, Path]:
    """soname -> path of every library loading `files` brings in, the loader included."""
    return walk(files, extra_dirs).libraries
