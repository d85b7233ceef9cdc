"""Backends are found through the `gradient_build.backends` entry-point group, never imported.

A backend that fails to load (a third-party plugin with a missing dependency, say) does not
take the other tiers down with it: it is listed as broken, and only using it is an error.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .backend import Backend
from .config import known_facts
from .facts import Fact

GROUP = "gradient_build.backends"


@functools.cache
def discover() -> tuple[dict[str, Backend[Any]], dict[str, str]]:
    """(working backends by tier name in gradient order, broken ones with their error)."""
    found: dict[str, Backend[Any]] = {}
    owners: dict[str, EntryPoint] = {}  # named only in a message: ep.dist reads metadata
    broken: dict[str, str] = {}
    for ep in entry_points(group=GROUP):
        try:
            backend = ep.load()()
        except Exception as exc:
            broken[ep.name] = f"{ep.value} failed to load: {type(exc).__name__}: {exc}"
            continue
        if not isinstance(backend, Backend):
            broken[ep.name] = f"{ep.value} is not a gradient_build.backend.Backend"
            continue
        if backend.name in found:  # two distributions claim one tier: using it is an error
            first = _owner(owners[backend.name])
            broken[backend.name] = (f"two backends register tier {backend.name!r}: {first} and "
                                    f"{_owner(ep)}; uninstall one of them")
            continue
        found[backend.name] = backend
        owners[backend.name] = ep
    for name in broken:
        found.pop(name, None)
    return dict(sorted(found.items(), key=lambda item: item[1].rank)), broken


def _owner(ep: EntryPoint) -> str:
    """Which distribution an entry point comes from, for messages that name both."""
    dist = ep.dist
    return f"{ep.value} (from {dist.name} {dist.version})" if dist else ep.value


def backends() -> dict[str, Backend[Any]]:
    return discover()[0]


def broken() -> dict[str, str]:
    return discover()[1]


def facts() -> dict[str, Fact]:
    """Every target fact: the core's, and the new ones installed tiers declare."""
    return known_facts(tuple(f for b in backends().values() for f in b.facts))
