"""Backends are found through the `gradient_build.backends` entry-point group, never imported."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from .backend import Backend
from .errors import GradientError

GROUP = "gradient_build.backends"


@functools.cache
def backends() -> dict[str, Backend]:
    """Every registered backend by tier name, in gradient order."""
    found: dict[str, Backend] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            raise GradientError(f"backend {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        backend = cls()
        if not isinstance(backend, Backend):
            raise GradientError(f"backend {ep.name!r} ({ep.value}) is not a gradient Backend")
        found.setdefault(backend.name, backend)
    return dict(sorted(found.items(), key=lambda item: item[1].rank))
