"""`gradient advise`: walk the gradient for this project and target, and recommend a tier.

The gradient orders the tiers by how much of the target they depend on; the advice is the
first tier, in that order, whose needs the target meets and which applies to the project,
with the reasons each tier before it was passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backend import Backend
from .config import Config
from .facts import Target
from .project import Project


@dataclass
class Step:
    tier: str
    fits: bool
    reason: str


def advise(project: Project, config: Config, backends: dict[str, Backend[Any]],
           target: Target) -> tuple[str | None, list[Step]]:
    """(recommended tier or None, one step per tier in gradient order)."""
    steps: list[Step] = []
    chosen: str | None = None
    for name, backend in backends.items():
        missing = sorted(n for n in backend.needs if not target.has(n))
        skip = backend.skip(project, project.app(config),
                            config.tier_options.get(name) or backend.Options())
        if missing:
            reason = "the target " + " and ".join(_words(target, m, False) for m in missing)
            steps.append(Step(name, False, reason))
        elif skip:
            steps.append(Step(name, False, skip))
        else:
            steps.append(Step(name, True, _why(target, backend)))
            chosen = chosen or name
    return chosen, steps


def _words(target: Target, name: str, has: bool) -> str:
    fact = target.known.get(name)
    if fact is None:
        return f"{'has' if has else 'lacks'} {name}"
    return fact.has if has else fact.lacks


def _why(target: Target, backend: Backend[Any]) -> str:
    if backend.needs:
        return "the target " + " and ".join(_words(target, n, True) for n in sorted(backend.needs))
    return f"needs only {backend.target}"
