"""`gradient advise`: walk the gradient for this project and target, and recommend a tier.

The gradient orders the tiers by how much of the target they depend on; the advice is the
first tier, in that order, whose needs the target meets and which applies to the project,
with the reasons each tier before it was passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .backend import Backend
from .config import Config, TargetOptions
from .project import Project

FACTS = {
    "python": "has a Python interpreter",
    "downloads": "may download packages at install time",
    "container": "runs containers",
}


@dataclass
class Step:
    tier: str
    fits: bool
    reason: str


def advise(project: Project, config: Config, backends: dict[str, Backend[Any]],
           target: TargetOptions) -> tuple[str | None, list[Step]]:
    """(recommended tier or None, one step per tier in gradient order)."""
    steps: list[Step] = []
    chosen: str | None = None
    have = {name for name in FACTS if getattr(target, name)}
    for name, backend in backends.items():
        missing = sorted(backend.needs - have)
        skip = backend.skip(project, project.app(config),
                            config.tier_options.get(name) or backend.Options())
        if missing:
            reason = "the target " + " and ".join(_lacks(m) for m in missing)
            steps.append(Step(name, False, reason))
        elif skip:
            steps.append(Step(name, False, skip))
        else:
            steps.append(Step(name, True, _why(backend)))
            chosen = chosen or name
    return chosen, steps


def _lacks(fact: str) -> str:
    return {"python": "has no Python", "downloads": "may not download",
            "container": "runs no containers"}[fact]


def _why(backend: Backend[Any]) -> str:
    if backend.needs:
        return "the target " + " and ".join(FACTS[n] for n in sorted(backend.needs))
    return f"needs only {backend.target}"
