"""What the core tells the outside world; only the CLI turns these into terminal output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """kind: plan, start, step, cached, built, verified, failed, skipped, promoted, warning."""

    kind: str
    tier: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)


Emit = Callable[[Event], None]


def discard(_event: Event) -> None:
    """An event sink for callers that do not listen."""
