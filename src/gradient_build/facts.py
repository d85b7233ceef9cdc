"""Facts about where a project is going ([target] in gradient.toml, flags of `gradient advise`).

An open set: the core knows the facts SPEC names, and a tier that needs a new one (a
hypervisor, say) declares it as a `Fact` on its backend; [target] then accepts it and
`gradient advise` can say what it means. A leaf module: it imports nothing of gradient's.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fact:
    """One yes/no fact about the target, with the words advise uses for either answer.

    An `exclusive` fact, when true, leaves only the tiers that name it in their `needs`: a
    MicroPython board runs no CPython artifact, a VM image is all a hypervisor boots. A
    `prefer` fact, when true, names the target's own way of installing things (conda, its OS
    packages): the first tier that names it is the advice, the lighter ones alternatives."""

    name: str
    has: str
    lacks: str
    default: bool = False
    exclusive: bool = False
    prefer: bool = False


CORE_FACTS = (
    Fact("python", "has a Python interpreter", "has no Python", True),
    Fact("downloads", "may download packages at install time", "may not download"),
    Fact("virtualenv", "can make virtual environments (pex unpacks into one)",
         "cannot make virtual environments", True),
    Fact("system_libs", "can have system libraries preinstalled",
         "gets no system libraries preinstalled", True),
    Fact("conda", "has conda, mamba or pixi", "has no conda", prefer=True),
    Fact("os_packages", "installs .deb or .rpm packages", "installs no OS packages",
         prefer=True),
    Fact("own_userspace", "needs the app to bring its own userspace (a container)",
         "provides a userspace", exclusive=True),
    Fact("own_kernel", "needs the app to bring its own kernel (a VM image)",
         "provides a kernel", exclusive=True),
    Fact("microcontroller", "is a MicroPython board", "is not a microcontroller",
         exclusive=True),
)
LISTS = {"distros": "userspaces the exe / deb / rpm are verified in, e.g. 'debian:bookworm'"}


@dataclass(frozen=True)
class Contradiction:
    """Answers that cannot all hold: `when` maps a fact (target or project) to the answer
    that, together with the others, contradicts; `why` says so in words."""

    when: dict[str, bool]
    why: str


CONTRADICTIONS = (
    Contradiction({"microcontroller": True, "python": False},
                  "a MicroPython board runs MicroPython, a Python"),
    Contradiction({"microcontroller": True, "compiled": True},
                  "the project has compiled extensions, which MicroPython cannot load"),
    Contradiction({"microcontroller": True, "virtualenv": True},
                  "a MicroPython board makes no virtual environments"),
    Contradiction({"microcontroller": True, "conda": True},
                  "conda does not run on a MicroPython board"),
    Contradiction({"microcontroller": True, "os_packages": True},
                  "a MicroPython board installs no .deb or .rpm"),
    Contradiction({"microcontroller": True, "own_userspace": True},
                  "a MicroPython board runs no container"),
    Contradiction({"microcontroller": True, "own_kernel": True},
                  "a MicroPython board boots no VM image"),
    Contradiction({"python": False, "virtualenv": True},
                  "a virtual environment needs a Python interpreter"),
    Contradiction({"own_kernel": True, "own_userspace": False},
                  "a VM image brings its own userspace along with its kernel"),
)


@dataclass(frozen=True)
class Target:
    """The [target] table, validated: each fact's answer, and the lists (distros).

    `answers` holds only what was said (in [target] or a flag); `origin` says where each
    answer came from ("gradient.toml:12", "--no-python"); the rest are the facts' defaults."""

    answers: dict[str, bool]
    known: dict[str, Fact]
    distros: tuple[str, ...] = ()
    origin: dict[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        fact = self.known.get(name)
        return self.answers.get(name, fact.default if fact else False)

    def source(self, name: str) -> str:
        return self.origin.get(name, "given") if name in self.answers else "default"

    def with_answers(self, **answers: bool) -> Target:
        """These answers given as flags (`--no-python`), over what [target] says."""
        return self.answered(answers, "flag")

    def answered(self, answers: dict[str, bool], origin: str) -> Target:
        """These answers given, from `origin` ("flag" names each one's flag)."""
        where = {n: (f"--{'' if v else 'no-'}{n.replace('_', '-')}" if origin == "flag"
                     else origin) for n, v in answers.items()}
        return Target({**self.answers, **answers}, self.known, self.distros,
                      {**self.origin, **where})

    def words(self, name: str, has: bool | None = None) -> str:
        """'has no Python', 'may download packages at install time'."""
        answer = self.has(name) if has is None else has
        fact = self.known.get(name)
        if fact is None:
            return f"{'has' if answer else 'lacks'} {name}"
        return fact.has if answer else fact.lacks


def contradictions(target: Target, project: dict[str, bool],
                   seen: dict[str, str] | None = None) -> list[tuple[Contradiction, str]]:
    """Each contradiction among the answers given (not the defaults) and the project's facts,
    with the sources of the facts involved."""
    found = []
    for rule in CONTRADICTIONS:
        sources = []
        for name, answer in rule.when.items():
            if name in target.answers and target.answers[name] == answer:
                sources.append(target.origin.get(name, f"{name} = {str(answer).lower()}"))
            elif name not in target.known and project.get(name) == answer:
                sources.append(f"the project's {name} ({(seen or {}).get(name, 'found')})")
            else:
                break
        else:
            found.append((rule, " with ".join(sources)))
    return found
