"""Proving a tree does not lean on the machine that built it.

Two checks, because each misses what the other catches:

- a scan of every text file for the build's paths (the project's source tree, gradient's
  cache where the build ran): a literal path baked into a module, a `.pth` pointing at the
  sources, a `direct_url.json`;
- a run with those paths *hidden*: the command runs in a mount namespace of its own where an
  empty tmpfs is mounted over each build path, so a file the app reaches through a build
  path, however the path was spelled, is simply not there, as on the target. Without this,
  a verify on the build machine passes because the source tree is still on disk.

Compiled files are not scanned: debug info names the compiler's working directory, which is
never opened at run time (the hidden run covers what is).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

HIDE_SCRIPT = r"""
mount=$1; n=$2; shift 2
while [ "$n" -gt 0 ]; do
    "$mount" -t tmpfs -o size=64k,mode=0555 gradient-hidden "$1" || {
        echo "gradient: could not hide $1" >&2; exit 125; }
    shift; n=$((n - 1))
done
exec "$@"
"""

TEXT_PROBE = 8192


def build_paths(project_root: Path, cache_dir: Path) -> list[Path]:
    """The paths of the build machine a shipped tree must neither name nor need (the
    project, the cache, gradient's venv, where the backends' source copies are)."""
    from .scratch import build_roots

    return unique(p.resolve() for p in [project_root, cache_dir, *venv_prefix(),
                                        *build_roots()])


def venv_prefix() -> list[Path]:
    """The virtual environment gradient runs in, if any: the tree must not lean on it."""
    return [Path(sys.prefix)] if sys.prefix != sys.base_prefix else []


def unique(paths: Iterable[Path]) -> list[Path]:
    seen: list[Path] = []
    for path in paths:
        if path not in seen:
            seen.append(path)
    return seen


def find_paths(root: Path, needles: Sequence[Path]) -> list[tuple[str, str]]:
    """(file relative to root, path it names) for every text file naming one of `needles`."""
    words = [(re.compile(re.escape(str(n).encode()) + rb"(?![\w.-])"), str(n))
             for n in unique(needles) if len(n.parts) > 2]
    found: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:TEXT_PROBE]:
            continue
        for word, text in words:
            if word.search(data):
                found.append((path.relative_to(root).as_posix(), text))
    return found


@functools.cache
def hide_prefix() -> tuple[str, ...] | None:
    """`unshare` flags for a private mount namespace, or None where none can be made."""
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if not unshare or not mount:
        return None
    flags = ("-m",) if os.geteuid() == 0 else ("-r", "-m")
    with tempfile.TemporaryDirectory(prefix="gradient-probe-") as probe:
        cmd = [unshare, *flags, "/bin/sh", "-c", HIDE_SCRIPT, "hide", mount, "1", probe, "true"]
        try:
            ok = subprocess.run(cmd, capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return None
    return (unshare, *flags, mount) if ok else None


def hideable(paths: Sequence[Path], keep: Sequence[Path]) -> list[Path]:
    """The build paths that can be hidden without hiding what the run itself needs.

    A path is kept visible when it holds (or is) something in `keep`: the sandbox dirs and
    the interpreter the run uses. Only existing directories can be covered by a mount.
    """
    kept = [x for k in keep for x in (k.absolute(), k.resolve())]
    return [p for p in paths if p.is_dir() and len(p.parts) > 2
            and not any(k == p or p in k.parents for k in kept)]


def hidden(cmd: Sequence[str], paths: Sequence[Path]) -> list[str]:
    """`cmd` wrapped to run with an empty tmpfs over each of `paths` (or as is)."""
    prefix = hide_prefix()
    if not prefix or not paths:
        return list(cmd)
    *unshare, mount = prefix
    # exec through env(1), so a command that cannot start fails as it would unwrapped
    # ("No such file or directory"), not with the shell's own wording.
    runner = [env] if (env := shutil.which("env")) else []
    return [*unshare, "/bin/sh", "-c", HIDE_SCRIPT, "hide", mount, str(len(paths)),
            *map(str, paths), *runner, *cmd]
