"""The no-op path: `gradient build` run again with nothing changed, answered in a few tens of
milliseconds instead of ~0.3 s (Typer, Rich and every backend imported, the config validated,
each node's key computed), the way make answers "nothing to be done".

When a build of a command found every node in the cache (and every verdict replayed), it
leaves a stamp: a fingerprint of everything that build read, and what it printed. The next
run of the same command recomputes the fingerprint from the file system alone (stat, never
hashing, and two `git` calls) and, when nothing differs, prints the same and touches the
cache entries it used. Anything else, or any doubt, takes the full path. Only this module
and the stdlib are imported before the decision.

The fingerprint: the command line, the directory, the environment a tool can see, whether
the output is a terminal, the Python, gradient's own code (stat of its files), the
directories of PATH and sys.path (an install or upgrade changes them), gradient.toml's
bytes, the source files' list and stat, SOURCE_DATE_EPOCH's git date, and the stat of every
file of dist/gradient, of the delivered files and of the cache entries the build used.
Tiers whose keys read state outside all that (a Docker daemon, KVM: `Backend.noop_safe`
False) never leave a stamp.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

STAMP_VERSION = 1
CONFIG_FILE = "gradient.toml"  # config.CONFIG_NAME, without importing the config's parser
VALUED = ("--tier", "-t", "--jobs", "-j", "--cache-dir", "--config", "--log-format")
FLAGS = ("--no-verify", "--quiet", "-q", "--verbose", "-v", "--require-run",
         "--no-require-run", "--atomic", "--all")
SEEN_ENV = ("CI", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM", "PATH", "HOME",
            "XDG_CACHE_HOME")


def _parse(argv: list[str]) -> dict[str, list[str]] | None:
    """The options of a plain `gradient build` (human output); None for anything else."""
    opts: dict[str, list[str]] = {}
    seen_build = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, value = arg.partition("=")
        if arg == "build" and not seen_build:
            seen_build = True
        elif eq and key in VALUED:
            opts.setdefault(key, []).append(value)
        elif arg in VALUED and i + 1 < len(argv):
            opts.setdefault(arg, []).append(argv[i + 1])
            i += 1
        elif arg not in FLAGS:
            return None
        i += 1
    fmt = opts.get("--log-format", ["json" if os.environ.get("CI") else "human"])[-1]
    return opts if seen_build and fmt == "human" else None


def paths(opts: dict[str, list[str]]) -> tuple[Path, Path]:
    """(gradient.toml, the cache dir) as the full path would find them."""
    config = Path(opts["--config"][-1]) if "--config" in opts else Path.cwd() / CONFIG_FILE
    if "--cache-dir" in opts:
        cache = Path(opts["--cache-dir"][-1])
    elif os.environ.get("GRADIENT_CACHE_DIR"):  # cache.default_dir(), without its imports
        cache = Path(os.environ["GRADIENT_CACHE_DIR"])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = Path(base) / "gradient-build"
    return config.resolve(), cache.resolve()


def _stamp_path(cache: Path, argv: list[str]) -> Path:
    name = hashlib.sha256(json.dumps([os.getcwd(), argv]).encode()).hexdigest()[:24]
    return cache / "noop" / f"{name}.json"


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _tree(root: Path) -> dict[str, list[int] | None]:
    found: dict[str, list[int] | None] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            found[str(path)] = _stat(path)
    return found


def _code() -> str:
    """gradient's own files, core and backends, by stat: editing either takes the full path."""
    import importlib.util

    h = hashlib.sha256()
    roots = [Path(__file__).parent]
    spec = importlib.util.find_spec("gradient_backends")  # found, not imported
    if spec and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    for root in roots:
        for path, stat in sorted(_tree(root).items()):
            if "__pycache__" not in path:
                h.update(f"{path}{stat}".encode())
    return h.hexdigest()


def _common(opts: dict[str, list[str]], argv: list[str], config: Path) -> dict[str, Any]:
    """The part of the fingerprint that needs no record of the last build."""
    from .runner import PASSED_THROUGH

    dirs = {*os.environ.get("PATH", "").split(os.pathsep), *sys.path,
            str(Path(sys.executable).parent)}
    try:
        config_digest: str | None = hashlib.sha256(config.read_bytes()).hexdigest()
    except OSError:
        config_digest = None
    return {
        "version": STAMP_VERSION, "argv": argv, "cwd": os.getcwd(),
        "env": {k: v for k, v in sorted(os.environ.items())
                if k in PASSED_THROUGH or k in SEEN_ENV or k.startswith("GRADIENT_")},
        "tty": [sys.stdout.isatty(), sys.stderr.isatty()],
        "python": [sys.version, sys.executable], "code": _code(),
        "dirs": {d: _stat(Path(d)) for d in sorted(dirs) if d},
        "config": [str(config), config_digest],
    }


def _sources(root: Path, exclude: Iterable[str]) -> dict[str, Any]:
    from .sources import source_date_epoch, source_files

    rels, _ = source_files(root, set(exclude))
    return {"files": {rel: _stat(root / rel) for rel in rels},
            "epoch": source_date_epoch(root)[0]}


def replay(argv: list[str]) -> int | None:
    """The exit code of a replayed no-op, or None: take the full path."""
    opts = _parse(argv)
    if opts is None:
        return None
    try:
        config, cache = paths(opts)
        stamp = json.loads(_stamp_path(cache, argv).read_text())
        if stamp["common"] != _common(opts, argv, config):
            return None
        if _sources(config.parent, stamp["exclude"]) != stamp["sources"]:
            return None
        if _tree(Path(stamp["out_dir"])) != stamp["out"]:
            return None
        if any(_stat(Path(p)) != s for p, s in stamp["files"].items()):
            return None
        for entry in stamp["entries"]:  # used now: the least recently used go first
            os.utime(entry)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sys.stdout.write(stamp["stdout"])
    sys.stderr.write(stamp["stderr"])
    return 0


class Tee(io.TextIOBase):
    """A stream that also keeps what was written (the output a stamp replays)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def eligible(argv: list[str]) -> bool:
    return _parse(argv) is not None


def record(argv: list[str], started: float, stdout: str, stderr: str, *, config: Path,
           cache: Path, out_dir: Path, exclude: list[str], entries: list[Path],
           delivered: list[Path]) -> None:
    """Leave the stamp of a no-op build of `argv` (started at `started`, a time.time())."""
    opts = _parse(argv)
    if opts is None:
        return
    sources = _sources(config.parent, exclude)
    if any(s is None or s[1] >= started * 1e9 for s in sources["files"].values()):
        return  # a source changed while the build ran: its digest may not be this one
    files: dict[str, list[int] | None] = {}
    for entry in entries:
        files.update(_tree(entry))
    files.update({str(p): _stat(p) for p in delivered})
    stamp = {"common": _common(opts, argv, config), "sources": sources, "exclude": exclude,
             "out_dir": str(out_dir), "out": _tree(out_dir), "files": files,
             "entries": [str(e) for e in entries], "stdout": stdout, "stderr": stderr}
    path = _stamp_path(cache, argv)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, path)


def forget(argv: list[str]) -> None:
    """Drop the stamp of `argv`: a build that was not a no-op changed what it fingerprints."""
    opts = _parse(argv)
    if opts is None:
        return
    with contextlib.suppress(OSError):
        _stamp_path(paths(opts)[1], argv).unlink()
