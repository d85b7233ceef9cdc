"""The build graph: the nodes a request needs, their order, and what each key is made of."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .backend import Backend
from .cache import digest_of
from .cache import project_id as project_id  # where it was before (cache.py needs it too)
from .config import Config
from .errors import ConfigError
from .options import as_dict, nearest
from .project import Project


@dataclass(frozen=True)
class Node:
    """One thing to build. Identity is (tier, variant): one variant per tier today."""

    tier: str
    backend: Backend[Any]
    options: Any
    needs: tuple[str, ...]
    variant: str = "default"

    @property
    def id(self) -> str:
        return self.tier if self.variant == "default" else f"{self.tier}@{self.variant}"


def resolve(wanted: list[str], config: Config, backends: dict[str, Backend[Any]]) -> list[Node]:
    """The nodes `wanted` needs, dependencies first (gradient order among equals)."""
    nodes: dict[str, Node] = {}
    visiting: list[str] = []

    def visit(tier: str, needed_by: str | None) -> None:
        if tier in nodes:
            return
        if tier not in backends:
            who = f" (needed by {needed_by})" if needed_by else ""
            raise ConfigError(f"unknown tier {tier!r}{who}; tiers here: {', '.join(backends)}",
                              suggestion=nearest(tier, backends))
        if tier in visiting:
            raise ConfigError(f"tiers depend on each other in a cycle: {' -> '.join(visiting)}")
        visiting.append(tier)
        backend = backends[tier]
        options = config.tier_options.get(tier) or backend.Options()
        needs = backend.requires(options)
        for dep in needs:
            visit(dep, tier)
        visiting.pop()
        nodes[tier] = Node(tier, backend, options, tuple(needs))

    for tier in sorted(wanted, key=lambda t: backends[t].rank if t in backends else 0):
        visit(tier, None)
    return list(nodes.values())


def key_inputs(node: Node, project: Project, config: Config, consumed: dict[str, str],
               tool_versions: dict[str, str | None]) -> dict[str, Any]:
    """Everything that can change a node's output; its digest is the node's cache key."""
    sources = project.sources
    files = dict(sources.files) if sources and node.backend.uses_sources else {}
    if not node.backend.ships_config:  # [verify], [secrets]: they key the checks, not the build
        files.pop(_config_rel(config, project), None)
    return {
        "gradient": __version__,
        "backend": backend_identity(type(node.backend).__module__,
                                    type(node.backend).__qualname__),
        "node": node.id,
        "python": sys.version.split()[0],
        "sources": files,
        "epoch": sources.epoch if sources else 0,
        "options": {k: v for k, v in as_dict(node.options).items()
                    if k not in node.backend.verify_options},
        "app": dataclasses.asdict(config.app),
        "tools": tool_versions,
        "inputs": consumed,
        "extra": node.backend.key_extra(node.options, project.root),
    }


def _config_rel(config: Config, project: Project) -> str:
    try:
        return config.path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        return config.path.name


@functools.cache
def backend_identity(module_name: str, qualname: str) -> str:
    """The backend class and a digest of its package's files: editing a backend misses."""
    module = sys.modules[module_name]
    path = Path(module.__file__ or "")
    files = sorted(p for p in path.parent.rglob("*") if p.is_file() and "__pycache__" not in
                   p.parts) if path.name == "__init__.py" else [path]
    code = hashlib.sha256()
    for file in files:
        code.update(file.name.encode() + b"\0" + file.read_bytes())
    return f"{module_name}.{qualname}@{code.hexdigest()[:16]}"


def verify_key(node: Node, config: Config, key: str) -> str:
    """What a verification's result depends on: the artifact, the smoke, and what runs it."""
    options = as_dict(node.options)
    where = {"distros": list(config.target.distros)} if config.target.distros else {}
    return digest_of({"key": key, "verify": dataclasses.asdict(config.verify),
                      "options": {k: options.get(k) for k in sorted(node.backend.verify_options)},
                      "environment": node.backend.verify_environment(node.options), **where})


def explain(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Why a node's key changed, in words a user recognises ("src/app/cli.py changed")."""
    if old is None:
        return ["never built with this cache"]
    reasons: list[str] = []
    old_src, new_src = old.get("sources", {}), new.get("sources", {})
    for path in sorted(set(old_src) | set(new_src)):
        if path not in old_src:
            reasons.append(f"{path} added")
        elif path not in new_src:
            reasons.append(f"{path} removed")
        elif old_src[path] != new_src[path]:
            reasons.append(f"{path} changed")
    for name in sorted(set(old.get("tools", {})) | set(new.get("tools", {}))):
        before, after = old.get("tools", {}).get(name), new.get("tools", {}).get(name)
        if before != after:
            reasons.append(f"{name} {before} -> {after}")
    for section, label in (("options", "[tiers] options"), ("app", "[app]")):
        if old.get(section) != new.get(section):
            changed = _changed_keys(old.get(section), new.get(section))
            reasons.append(f"{label} changed: {', '.join(changed)}" if changed else
                           f"{label} changed")
    for name in _changed_keys(old.get("extra", {}), new.get("extra", {})):
        reasons.append(f"{name} changed")
    for dep in sorted(set(old.get("inputs", {})) | set(new.get("inputs", {}))):
        if old.get("inputs", {}).get(dep) != new.get("inputs", {}).get(dep):
            reasons.append(f"input {dep} changed")
    if old.get("backend") != new.get("backend"):
        reasons.append(f"the {new.get('node')} backend's code changed")
    for field in ("gradient", "python", "epoch"):
        if old.get(field) != new.get(field):
            reasons.append(f"{field} {old.get(field)} -> {new.get(field)}")
    return reasons or ["inputs changed"]


def _changed_keys(old: Any, new: Any) -> list[str]:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


