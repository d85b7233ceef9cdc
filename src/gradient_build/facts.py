"""Facts about where a project is going ([target] in gradient.toml, flags of `gradient advise`).

An open set: the core knows the facts SPEC names, and a tier that needs a new one (a
hypervisor, say) declares it as a `Fact` on its backend; [target] then accepts it and
`gradient advise` can say what it means. A leaf module: it imports nothing of gradient's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fact:
    """One yes/no fact about the target, with the words advise uses for either answer."""

    name: str
    has: str
    lacks: str
    default: bool = False


CORE_FACTS = (
    Fact("python", "has a Python interpreter", "has no Python", True),
    Fact("downloads", "may download packages at install time", "may not download"),
    Fact("virtualenv", "can use virtual environments", "cannot use virtual environments"),
    Fact("system_libs", "can have system libraries preinstalled", "has no extra system libraries"),
    Fact("container", "runs containers", "runs no containers"),
    Fact("conda", "has conda, mamba or pixi", "has no conda"),
    Fact("os_packages", "installs .deb or .rpm packages", "installs no OS packages"),
    Fact("own_userspace", "needs the app to bring its own userspace", "provides a userspace"),
    Fact("own_kernel", "needs the app to bring its own kernel", "provides a kernel"),
    Fact("microcontroller", "is a MicroPython board", "is not a microcontroller"),
)
LISTS = {"distros": "userspaces the exe / deb / rpm are verified in, e.g. 'debian:bookworm'"}


@dataclass(frozen=True)
class Target:
    """The [target] table, validated: each fact's answer, and the lists (distros)."""

    answers: dict[str, bool]
    known: dict[str, Fact]
    distros: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        fact = self.known.get(name)
        return self.answers.get(name, fact.default if fact else False)

    def with_answers(self, **answers: bool) -> Target:
        return Target({**self.answers, **answers}, self.known, self.distros)
