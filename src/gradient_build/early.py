"""A cold build's wheel, started before the rest of gradient has loaded.

On a cold `gradient build` the project's metadata comes from building its wheel (project.py),
and that build is most of the run. Typer, Rich, the backends and validating gradient.toml
take ~0.3 s before it would start; here it starts first, in a thread, from a scan of the
sources made with the stdlib and gradient.toml read by tomllib alone. The full path then
claims it (project.load) when it wants a wheel of the same sources, with the same frontend
and environment; a build that is not claimed (a config error, tiers that need no wheel, an
interrupt) is killed and its temporary folder removed.

When the command builds the sdist tier too, its sdist starts beside the wheel, on the other
CPU; an sdist-only build starts its sdist alone, and reads the metadata that sdist states
(stated.py) instead of building a wheel for it. The sdist tier takes it
(Project.take_sdist) or builds its own.

Speculation is cheap to lose: it runs only when no metadata of these sources is cached, and
on a miss it costs the other CPU a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .events import Emit, Event
from .sources import SourceTree

if TYPE_CHECKING:
    from .project import Project

# The build options after which a cold run reads metadata with the wheel tier's frontend.
_VALUED = {"--tier", "-t", "--jobs", "-j", "--cache-dir", "--config", "--log-format", "--out",
           "--shard", "--cache-mode"}


@dataclass
class _Early:
    kind: str
    """"wheel" (the metadata, and the wheel tier's wheel) or "sdist" (the sdist tier's)."""
    root: Path
    digest: str
    frontend: str
    env: dict[str, str]
    events: list[Event] = field(default_factory=list)
    sink: Emit | None = None
    """Where events go once claimed (the renderer: a long build shows as running)."""
    groups: list[int] = field(default_factory=list)
    result: Project | Path | None = None
    error: BaseException | None = None
    cancelled: bool = False
    thread: threading.Thread | None = None
    running: threading.Event = field(default_factory=threading.Event)

    def built_exactly(self, root: Path, digest: str, frontend: str,
                      env: dict[str, str]) -> bool:
        """Whether this build is of these sources, with this frontend and environment."""
        return (self.root, self.digest, self.frontend, self.env) == (root, digest, frontend, env)


_lock = threading.Lock()
_pending: dict[str, _Early] = {}
_scanned: dict[tuple[str, frozenset[str]], SourceTree] = {}


def scanned(root: Path, exclude: set[str]) -> SourceTree | None:
    """The source tree `start` scanned for this project a moment ago, handed over once: the
    session then does not hash every source file a second time (~7 ms on a small project)."""
    return _scanned.pop(_scan_key(root, exclude), None)


def _scan_key(root: Path, exclude: set[str]) -> tuple[str, frozenset[str]]:
    return str(root.resolve()), frozenset(exclude)


def _options(argv: list[str]) -> dict[str, list[str]] | None:
    """The options of a `gradient build` that may read metadata cold; None otherwise."""
    if "build" not in argv or "--help" in argv or "--check-reproducible" in argv:
        return None
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        key, eq, value = argv[i].partition("=")
        if eq and key in _VALUED:
            found.setdefault(key, []).append(value)
        elif argv[i] in _VALUED and i + 1 < len(argv):
            found.setdefault(argv[i], []).append(argv[i + 1])
            i += 1
        i += 1
    return found


def start(argv: list[str]) -> bool:
    """Start the wheel build a cold `gradient build` will want, when that is likely (True
    when it started), and its sdist when the command builds the sdist tier."""
    opts = _options(argv)
    if opts is None:
        return False
    from .cache import Cache, project_id
    from .noop import paths
    from .project import is_buildable, is_cached
    from .runner import tool_environment
    from .sources import scan

    config, cache_dir = paths(opts)
    try:
        with config.open("rb") as f:
            raw: dict[str, Any] = tomllib.load(f)
        frontends = {kind: str(raw.get("tiers", {}).get(kind, {}).get("frontend", "auto"))
                     for kind in ("wheel", "sdist")}
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return False  # the full path reports it, in its own words
    root = config.parent
    if not is_buildable(root):
        return False  # a single module reads no metadata
    cache = Cache(cache_dir)
    exclude = set(cache.delivered(project_id(root)))
    tree = scan(root, exclude=exclude)
    _scanned[_scan_key(root, exclude)] = tree
    named = _named_tiers(argv, opts, raw)
    alone = named == {"sdist"}  # its metadata is what its own sdist states (stated.py)
    if is_cached(cache.root, tree.digest, sdist_alone=alone):
        return False  # metadata is cached: the wheel tier builds (or reuses) its own
    env = tool_environment(cache.root, tree.epoch)
    sdist = _Early("sdist", root, tree.digest, frontends["sdist"], env)
    if alone and _states_metadata(root):
        _begin(sdist, tree, cache.root).running.wait(timeout=10)
        return True
    wheel = _Early("wheel", root, tree.digest, frontends["wheel"], env)
    both = (named is None or "sdist" in named) and _spare_cpu(opts)
    # an sdist alone reads its metadata from the sdist first (the wheel is the fallback)
    order = ([sdist, wheel] if alone else [wheel, sdist]) if both else [wheel]
    _begin(order[0], tree, cache.root).running.wait(timeout=10)  # the copy and the spawn
    for later in order[1:]:  # alone, uncontended: then the imports go on while it runs
        _begin(later, tree, cache.root)
    return True


def _named_tiers(argv: list[str], opts: dict[str, list[str]],
                 raw: dict[str, Any]) -> set[str] | None:
    """The tiers this build names (--tier, else gradient.toml's `tier`); None for --all."""
    if "--all" in argv:
        return None
    named = [*opts.get("--tier", []), *opts.get("-t", [])]
    if not named:
        configured = raw.get("tier", [])
        named = [configured] if isinstance(configured, str) else list(configured or [])
    return {str(n) for n in named}


def _states_metadata(root: Path) -> bool:
    """Whether the sdist will likely state the metadata for certain (else the early wheel
    reads it too, on the other CPU, as for any build): a [project] table whose requirements
    and scripts are static, or setuptools' own configuration with no install_requires in a
    setup.py (setuptools marks only what setup() is passed as Dynamic; setup.cfg's fields
    and its egg-info's entry points are stated: httpie's, pyfiglet's)."""
    try:
        with (root / "pyproject.toml").open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        data = {}
    except (OSError, tomllib.TOMLDecodeError):
        return False
    table = data.get("project")
    if isinstance(table, dict):
        return not {"dependencies", "optional-dependencies", "scripts"} & set(
            table.get("dynamic") or [])
    system = data.get("build-system") or {}
    backend = str(system.get("build-backend", "setuptools.build_meta:__legacy__"))
    pinned = [r for r in system.get("requires") or [] if str(r).lower().startswith(
        "setuptools") and any(op in str(r) for op in ("<", "==", "~="))]
    if not backend.startswith("setuptools.") or pinned:  # an old setuptools states nothing
        return False
    try:
        setup_py = (root / "setup.py").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        setup_py = ""
    except OSError:
        return False
    configured = bool(setup_py) or (root / "setup.cfg").exists()
    return configured and "install_requires" not in setup_py


def _spare_cpu(opts: dict[str, list[str]]) -> bool:
    """Whether a second build may run beside the wheel (not with --jobs 1 or one CPU)."""
    jobs = (opts.get("--jobs") or opts.get("-j") or [""])[-1]
    return jobs != "1" and (os.cpu_count() or 1) >= 2


def _begin(early: _Early, tree: SourceTree, cache_root: Path) -> _Early:
    early.thread = threading.Thread(target=_build, args=(early, tree, cache_root),
                                    name=f"gradient-early-{early.kind}", daemon=True)
    with _lock:
        _pending[early.kind] = early
    early.thread.start()
    return early


def _build(early: _Early, tree: SourceTree, cache_root: Path) -> None:
    try:
        if early.kind == "wheel":
            from .project import metadata_from_wheel

            early.result = metadata_from_wheel(
                early.root, tree, early.env, early.frontend, cache_root,
                lambda event: _emit(early, event),
                on_start=lambda group: _started(early, group))
        else:
            early.result = _sdist(early, tree, cache_root)
    except BaseException as exc:  # handed to whoever claims it
        early.error = exc
    finally:
        early.running.set()


def _sdist(early: _Early, tree: SourceTree, cache_root: Path) -> Path:
    """The sdist tier's build of these sources, in a folder of its own under CACHE/tmp (the
    sdist is taken from there by a rename, and the folder goes with it)."""
    from .pep517 import pep517_build
    from .runner import Runner
    from .scratch import source_copy

    scratch = cache_root / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix="early-sdist-", dir=scratch))
    try:
        runner = Runner("sdist", dict(early.env), lambda event: _emit(early, event),
                        on_start=lambda group: _started(early, group))
        with source_copy(tree, "early-sdist", where) as src:
            built = pep517_build(runner, src, where / "dist", "sdist", early.frontend)
        kept = built.rename(where / built.name)  # alone in its folder: taken with it
        shutil.rmtree(where / "dist", ignore_errors=True)
        return kept
    except BaseException:
        shutil.rmtree(where, ignore_errors=True)
        raise


def _emit(early: _Early, event: Event) -> None:
    with _lock:
        sink = early.sink
        if sink is None:
            early.events.append(event)
    if sink is not None:
        sink(event)


def _started(early: _Early, group: int) -> None:
    with _lock:
        early.groups.append(group)
        early.running.set()
        if not early.cancelled:
            return
    _kill(group)  # stopped while it was starting


def _claim(kind: str, root: Path, digest: str, frontend: str, env: dict[str, str],
           emit: Emit) -> Project | Path | None:
    """What the early build of `kind` made, if it built exactly this; it raises what the
    build raised. None (and the early build stopped) when there is none or it differs."""
    with _lock:
        early = _pending.pop(kind, None)
    if early is None or early.thread is None:
        return None
    if not early.built_exactly(root, digest, frontend, env):
        _stop(early)
        return None
    _attach(early, emit)
    early.thread.join()
    if early.error is not None:
        raise early.error
    return early.result


def _attach(early: _Early, emit: Emit) -> None:
    """Send the build's events to `emit`: what it said so far, then the rest as it happens
    (a long build shows as running)."""
    with _lock:
        kept, early.events, early.sink = early.events, [], emit
    for event in kept:
        emit(event)


def claim(root: Path, digest: str, frontend: str, env: dict[str, str],
          emit: Emit) -> Project | None:
    """The early wheel build's Project (project.load's `started`)."""
    found = _claim("wheel", root, digest, frontend, env, emit)
    return None if isinstance(found, Path) else found


def claim_sdist(root: Path, digest: str, env: dict[str, str], emit: Emit,
                frontend: str) -> Path | None:
    """The early sdist of these sources built with `frontend` (Project.take_sdist's claim);
    None when there is none, it differs, or it failed (the tier then builds and reports)."""
    try:
        found = _claim("sdist", root, digest, frontend, env, emit)
    except Exception:
        return None
    return found if isinstance(found, Path) else None


def stated(root: Path, digest: str, env: dict[str, str], emit: Emit,
           frontend: str) -> Project | None:
    """What the early sdist of exactly these sources states for certain (stated.py), once
    it is built; it stays for the sdist tier to take. None when there is none, it differs, it
    failed, or it states too little."""
    from .stated import metadata_from_sdist

    with _lock:
        early = _pending.get("sdist")
    if early is None or early.thread is None or not early.built_exactly(root, digest, frontend,
                                                                         env):
        return None
    _attach(early, emit)
    early.thread.join()
    return metadata_from_sdist(root, early.result) if isinstance(early.result, Path) else None


def pending_frontend() -> str | None:
    """The frontend of the early wheel build under way, if there is one."""
    with _lock:
        early = _pending.get("wheel")
        return None if early is None else early.frontend


def cancel(kind: str | None = None) -> None:
    """Stop an early build nobody claimed (the wheel's when `kind` says so, else every one:
    when the command ends, however it ends)."""
    with _lock:
        stopped = [_pending.pop(k) for k in list(_pending) if kind in (None, k)]
    for early in stopped:
        _stop(early)


def _stop(early: _Early) -> None:
    with _lock:
        early.cancelled = True
        groups = list(early.groups)
    for group in groups:
        _kill(group)
    if early.thread is not None:
        early.thread.join(timeout=30)  # its temporary folder goes with the failed build
    if isinstance(early.result, Path):  # a finished sdist nobody took
        shutil.rmtree(early.result.parent, ignore_errors=True)


def _kill(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
