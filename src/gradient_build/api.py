"""The small public API: open a project (config, metadata, backends) and get an Engine for it."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config as config_mod
from . import early, sources
from . import project as project_mod
from .backend import Backend
from .cache import Cache, default_dir
from .config import Config
from .engine import Engine
from .errors import GradientError
from .events import Emit, discard
from .graph import Node, project_id, resolve
from .project import Project
from .registry import backends as registered
from .registry import broken, facts
from .runner import tool_environment
from .sbom import warm_in_background
from .smoke import smoke_for


@dataclass
class Session:
    config: Config
    project: Project
    backends: dict[str, Backend[Any]]
    cache: Cache
    out_dir: Path

    def engine(self, emit: Emit = discard, *, jobs: int | None = None,
               verify: bool = True, require_run: bool = False, atomic: bool = False) -> Engine:
        return Engine(self.config, self.project, self.backends, self.cache, emit, self.out_dir,
                      jobs=jobs or os.cpu_count() or 1, verify=verify, require_run=require_run,
                      atomic=atomic)


def load_config(path: Path) -> Config:
    found = registered()
    return config_mod.load(path, {name: b.Options for name, b in found.items()}, broken(),
                           facts())


def open_project(config_path: Path | None = None, *, cache_dir: Path | None = None,
                 out_dir: Path | None = None, tiers: list[str] | None = None,
                 emit: Emit | None = None) -> Session:
    """Validate gradient.toml and read the project's metadata through its build backend;
    `tiers` (what will be built) lets a cold read build the wheel the wheel tier needs."""
    path = (config_path or Path.cwd() / config_mod.CONFIG_NAME).resolve()
    config = load_config(path)
    cache = Cache((cache_dir or default_dir()).resolve())
    exclude = set(cache.delivered(project_id(config.root)))
    tree = early.scanned(config.root, exclude) or sources.scan(config.root, exclude=exclude)
    env = tool_environment(cache.root, tree.epoch)
    nodes = _nodes(config, tiers)
    frontend = _wheel_frontend(nodes)
    alone = _sdist_alone(nodes)  # its sdist's frontend, when that is all it builds
    if frontend is None and tiers is not None and not _compiles(config.root, tree):
        frontend = early.pending_frontend()  # pure Python: the wheel the CLI started is as
        # quick a way to the metadata as a prepare_metadata pass would be, and it is ahead
    if (frontend or alone) and not project_mod.is_cached(cache.root, tree.digest,
                                                          sdist_alone=alone is not None):
        warm_in_background()  # a cold read builds the wheel (or the sdist): its SBOM follows
    emit = emit or discard
    try:
        project = project_mod.load(
            config.root, tree, config, cache.root, env, wheel_frontend=frontend, emit=emit,
            started=None if frontend is None else functools.partial(
                early.claim, config.root, tree.digest, frontend, env, emit),
            stated=None if alone is None else functools.partial(
                early.stated, config.root, tree.digest, env, emit, alone))
    finally:
        early.cancel("wheel")  # one the CLI started for tiers that build no wheel
    project.early_sdist = functools.partial(early.claim_sdist, config.root, tree.digest, env,
                                            emit)
    smoke_for(config, project)
    out = (out_dir or config.root / "dist" / "gradient").resolve()
    return Session(config, project, registered(), cache, out)


def _compiles(root: Path, tree: sources.SourceTree) -> bool:
    """advise's `compiled` fact, from the sources: a wheel build of such a project may take
    minutes, so its metadata comes from prepare_metadata instead."""
    from .project_facts import compiles

    return compiles(root, list(tree.files))[0]


def _wheel_frontend(nodes: list[Node]) -> str | None:
    """The frontend of the wheel node among these (None when no wheel is built)."""
    wheel = next((n for n in nodes if n.tier == "wheel"), None)
    return None if wheel is None else str(getattr(wheel.options, "frontend", "auto"))


def _sdist_alone(nodes: list[Node]) -> str | None:
    """The sdist node's frontend when it is all these nodes are (else None)."""
    if [n.tier for n in nodes] != ["sdist"]:
        return None
    return str(getattr(nodes[0].options, "frontend", "auto"))


def _nodes(config: Config, tiers: list[str] | None) -> list[Node]:
    """The nodes a build of `tiers` resolves to (none without tiers, or for bad ones)."""
    if tiers is None:
        return []
    try:
        return resolve(tiers or config.tiers, config, registered())
    except GradientError:  # reported by the build itself, with its own words
        return []
