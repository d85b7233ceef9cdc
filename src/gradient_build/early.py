"""A cold build's wheel, started before the rest of gradient has loaded.

On a cold `gradient build` the project's metadata comes from building its wheel (project.py),
and that build is most of the run. Typer, Rich, the backends and validating gradient.toml
take ~0.3 s before it would start; here it starts first, in a thread, from a scan of the
sources made with the stdlib and gradient.toml read by tomllib alone. The full path then
claims it (project.load) when it wants a wheel of the same sources, with the same frontend
and environment; a build that is not claimed (a config error, tiers that need no wheel, an
interrupt) is killed and its temporary folder removed.

Speculation is cheap to lose: it runs only when no metadata of these sources is cached, and
on a miss it costs the other CPU a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
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
    root: Path
    digest: str
    frontend: str
    env: dict[str, str]
    events: list[Event] = field(default_factory=list)
    sink: Emit | None = None
    """Where events go once claimed (the renderer: a long build shows as running)."""
    groups: list[int] = field(default_factory=list)
    result: Project | None = None
    error: BaseException | None = None
    cancelled: bool = False
    thread: threading.Thread | None = None
    running: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_current: _Early | None = None


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
    when it started)."""
    global _current
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
        frontend = str(raw.get("tiers", {}).get("wheel", {}).get("frontend", "auto"))
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return False  # the full path reports it, in its own words
    root = config.parent
    if not is_buildable(root):
        return False  # a single module reads no metadata
    cache = Cache(cache_dir)
    tree = scan(root, exclude=set(cache.delivered(project_id(root))))
    if is_cached(cache.root, tree.digest):
        return False  # metadata is cached: the wheel tier builds (or reuses) its own
    early = _Early(root, tree.digest, frontend, tool_environment(cache.root, tree.epoch))
    early.thread = threading.Thread(target=_build, args=(early, tree, cache.root),
                                    name="gradient-early-wheel", daemon=True)
    with _lock:
        _current = early
    early.thread.start()
    early.running.wait(timeout=10)  # the copy and the spawn alone, uncontended: then the
    return True  # imports go on while the tool runs


def _build(early: _Early, tree: SourceTree, cache_root: Path) -> None:
    from .project import metadata_from_wheel

    try:
        early.result = metadata_from_wheel(early.root, tree, early.env, early.frontend,
                                           cache_root,
                                           lambda event: _emit(early, event),
                                           on_start=lambda group: _started(early, group))
    except BaseException as exc:  # handed to whoever claims it
        early.error = exc
    finally:
        early.running.set()


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


def claim(root: Path, digest: str, frontend: str, env: dict[str, str],
          emit: Emit) -> Project | None:
    """The early build's Project if it built exactly this; it raises what the build raised.
    None (and the early build stopped) when there is none or it built something else."""
    global _current
    with _lock:
        early, _current = _current, None
    if early is None or early.thread is None:
        return None
    if (early.root, early.digest, early.frontend, early.env) != (root, digest, frontend, env):
        _stop(early)
        return None
    with _lock:  # what it said so far, then the rest as it happens
        kept, early.events, early.sink = early.events, [], emit
    for event in kept:
        emit(event)
    early.thread.join()
    if early.error is not None:
        raise early.error
    return early.result


def pending_frontend() -> str | None:
    """The frontend of the early build under way, if there is one."""
    with _lock:
        return None if _current is None else _current.frontend


def cancel() -> None:
    """Stop an early build nobody claimed (called when the command ends, however it ends)."""
    global _current
    with _lock:
        early, _current = _current, None
    if early is not None:
        _stop(early)


def _stop(early: _Early) -> None:
    with _lock:
        early.cancelled = True
        groups = list(early.groups)
    for group in groups:
        _kill(group)
    if early.thread is not None:
        early.thread.join(timeout=30)  # its temporary folder goes with the failed build


def _kill(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
