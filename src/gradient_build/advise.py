"""`gradient advise`: walk the gradient for this project and target, and recommend a tier.

The gradient orders the tiers by rank; the advice is the first one whose `needs` the target
and the project meet and whose own `skip()` lets it build. A need names a target fact
("downloads"), a project fact ("single_module"), or either of several ("downloads|library"),
so a new tier slots in by declaring what it needs. Every tier passed over says why, every
later one that fits is an alternative with its costs, and flipping each target fact once
shows what would change the answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .advise_open import Subject
from .errors import ConfigError
from .facts import Target, contradictions
from .project_facts import LABELS, ProjectFact, gather


class Contradictory(ConfigError):
    """The facts given cannot all hold: no tier can be proven for such a target."""


@dataclass
class Step:
    tier: str
    fits: bool
    reason: str
    change: str | None = None
    blocked_by: list[str] = field(default_factory=list)
    """The facts (target or project) whose answers passed this tier over."""


@dataclass
class Alternative:
    tier: str
    artifact: str
    target_provides: str
    build_seconds: float
    costs: str
    size: int | None = None


@dataclass
class Advice:
    recommended: str | None
    facts: dict[str, dict[str, Any]]
    steps: list[Step]
    alternatives: list[Alternative]
    chain: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"recommended": self.recommended, "facts": self.facts,
                "steps": [asdict(s) for s in self.steps],
                "alternatives": [asdict(a) for a in self.alternatives]}


def effective(target: Target) -> Target:
    """The answers the given ones imply: a VM image brings its userspace; without a Python
    there are no virtual environments."""
    implied: dict[str, bool] = {}
    if target.has("own_kernel") and "own_userspace" not in target.answers:
        implied["own_userspace"] = True
    if not target.has("python") and "virtualenv" not in target.answers:
        implied["virtualenv"] = False
    if not implied:
        return target
    return Target({**target.answers, **implied}, target.known, target.distros,
                  {**target.origin, **{n: "implied" for n in implied}})


def advise(subject: Subject, target: Target) -> Advice:
    """The advice, or Contradictory when the facts given cannot all hold."""
    facts = gather(subject.project, subject.app, subject.config, subject.backends,
                   subject.cache_dir)
    flags = {n: f.value for n, f in facts.items() if isinstance(f.value, bool)}
    clashes = contradictions(target, flags, {n: f.source for n, f in facts.items()})
    if clashes:
        said = "; ".join(f"{where}: {rule.why}" for rule, where in clashes)
        raise Contradictory(f"the facts contradict each other: {said}",
                            suggestion=None)
    target = effective(target)
    skips = {name: b.skip(subject.project, subject.app,
                          subject.config.tier_options.get(name) or b.Options())
             for name, b in subject.backends.items()}
    chosen, steps = walk(subject, target, facts, skips)
    changes = _changes(subject, target, facts, flags, skips, chosen)
    for step in steps:
        step.change = changes.get(step.tier)
    alternatives = _alternatives(subject, chosen, steps)
    chain = _chain(subject, target, facts, chosen, steps)
    return Advice(chosen, _facts_json(facts, target), steps, alternatives, chain,
                  list(subject.notes))


def walk(subject: Subject, target: Target, facts: dict[str, ProjectFact],
         skips: dict[str, str | None]) -> tuple[str | None, list[Step]]:
    """(the first tier that fits, one step per tier in gradient order)."""
    steps: list[Step] = []
    chosen: str | None = None
    exclusive = [f.name for f in target.known.values() if f.exclusive and target.has(f.name)]
    preferred = {f.name for f in target.known.values() if f.prefer and target.has(f.name)}
    preferred_fits: set[str] = set()
    for name, backend in subject.backends.items():
        named = {w for need in backend.needs for w in need.split("|")}
        outside = [f for f in exclusive if f not in named]
        unmet = [need for need in sorted(backend.needs) if not _met(need, target, facts)]
        if outside:
            reason = (f"the target {target.words(outside[0])} ({target.source(outside[0])}): "
                      f"{name} is for {backend.target or 'another target'}")
            steps.append(Step(name, False, reason, blocked_by=outside[:1]))
        elif unmet:
            reason = "; ".join(_unmet_words(need, target, facts) for need in unmet)
            steps.append(Step(name, False, reason, blocked_by=[
                w for need in unmet for w in need.split("|")]))
        elif skips.get(name):
            steps.append(Step(name, False, str(skips[name])))
        else:
            reason = _fit_words(backend.needs, target, facts) or f"needs only {backend.target}"
            lazy = facts.get("lazy_imports")
            if lazy and isinstance(lazy.value, list) and "stdlib_only" in named:
                reason += (f"; its {len(lazy.value)} lazy imports ({lazy.source}, ...) run only "
                           f"when called, so it is still a {name}: [tiers.{name}] allow lists "
                           "them (gradient init writes it)")
            steps.append(Step(name, True, reason))
            if not chosen or (preferred and chosen not in preferred_fits and named & preferred):
                chosen = name
            if named & preferred:
                preferred_fits.add(name)
    return chosen, steps


def _met(need: str, target: Target, facts: dict[str, ProjectFact]) -> bool:
    for word in need.split("|"):
        if word in target.known and target.has(word):
            return True
        fact = facts.get(word)
        if fact is not None and fact.value is True:
            return True
    return False


def _unmet_words(need: str, target: Target, facts: dict[str, ProjectFact]) -> str:
    parts = []
    for word in need.split("|"):
        if word in target.known:
            parts.append(f"the target {target.words(word, False)} ({target.source(word)})")
        elif word in facts:
            fact = facts[word]
            parts.append(f"the project is not {LABELS.get(word, word)} ({fact.says}; "
                         f"{fact.source})")
        else:
            parts.append(f"nothing here says {word!r} (a fact no installed part knows)")
    return " and ".join(parts)


def _fit_words(needs: frozenset[str], target: Target, facts: dict[str, ProjectFact]) -> str:
    parts = []
    for need in sorted(needs, key=lambda n: (n.split("|")[0] in target.known, n)):
        # a fact the user gave explains the fit better than one it implies (own_kernel
        # implies own_userspace: the vm fits because of the kernel, not the container)
        for word in sorted(need.split("|"), key=lambda w: w in target.known
                           and target.source(w) == "implied"):
            if word in target.known and target.has(word):
                parts.append(f"the target {target.words(word, True)}")
                break
            if word in facts and facts[word].value is True:
                parts.append(facts[word].says)
                break
    return ", ".join(parts)


def _chain(subject: Subject, target: Target, facts: dict[str, ProjectFact],
           chosen: str | None, steps: list[Step]) -> str:
    """"single module, ..., the target has a Python interpreter -> copy": the facts that
    passed the earlier tiers over, then those the chosen one needs."""
    if chosen is None:
        return "no tier fits this project and target"
    said: list[str] = []
    for step in steps:
        if step.tier == chosen:
            break
        for word in step.blocked_by:
            if word in target.known and not target.has(word) and word not in said:
                said.append(word)
    parts = [f"the target {target.words(w)}" for w in said]
    backend = subject.backends[chosen]
    fit = _fit_words(backend.needs, target, facts) or f"needs only {backend.target}"
    return ", ".join([*parts, fit]) + f" -> {chosen}"


def _changes(subject: Subject, target: Target, facts: dict[str, ProjectFact],
             flags: dict[str, bool], skips: dict[str, str | None],
             chosen: str | None) -> dict[str, str]:
    """For each tier some single flipped target fact would recommend instead: which flips."""
    found: dict[str, list[str]] = {}
    for name in target.known:
        flipped = not target.has(name)
        other = target.answered({name: flipped}, "what if")
        if contradictions(other, flags):
            continue
        now, _ = walk(subject, effective(other), facts, skips)
        if now and now != chosen:
            found.setdefault(now, []).append(f"if the target {target.words(name, flipped)}")
    return {tier: ", or ".join(ifs) for tier, ifs in found.items()}


def _alternatives(subject: Subject, chosen: str | None, steps: list[Step]) -> list[Alternative]:
    if chosen is None:
        return []
    first = subject.backends[chosen]
    sizes = _sizes(subject)
    found = []
    for step in steps:
        if not step.fits or step.tier == chosen:
            continue
        backend = subject.backends[step.tier]
        more = []
        if backend.cost > first.cost:
            more.append(f"about {backend.cost - first.cost:g} s more to build")
        if step.tier in sizes and chosen in sizes and sizes[step.tier] > sizes[chosen]:
            more.append(f"{(sizes[step.tier] - sizes[chosen]) / 1e6:.1f} MB larger")
        more.append(f"the target must provide {backend.target}" if backend.target
                    else "nothing more of the target")
        found.append(Alternative(step.tier, backend.artifact, backend.target, backend.cost,
                                 "; ".join(more), sizes.get(step.tier)))
    return found


def _sizes(subject: Subject) -> dict[str, int]:
    """Artifact sizes from the last build here (dist/gradient/manifest.json), if any."""
    import json

    path = subject.project.root / "dist" / "gradient" / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {a["tier"]: int(a.get("size") or 0) for a in data.get("artifacts", [])
            if a.get("role") == "artifact"}


def _facts_json(facts: dict[str, ProjectFact], target: Target) -> dict[str, dict[str, Any]]:
    """{"project": {name: {value, says, from}}, "target": {name: {value, says, from}}}."""
    project = {name: {"value": f.value, "says": f.says, "from": f.source}
               for name, f in facts.items() if name not in ("pure", "library")}
    return {"project": project,
            "target": {name: {"value": target.has(name), "says": f"the target "
                              f"{target.words(name)}", "from": target.source(name)}
                       for name in target.known}}
