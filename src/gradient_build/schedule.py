"""When each node of a build runs: a consumer builds as soon as its inputs are built, while
they are being verified; its outcome (or its failure) counts only once every input is
verified, and a failed input verification cancels what has not started and discards the
rest. The engine (engine.py) does the building, verifying and promoting."""

from __future__ import annotations

import heapq
import itertools
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from .artifact import Verdict
from .cache import Entry
from .errors import GradientError, ToolMissing, VerifyFailed, internal
from .events import Event
from .graph import Node
from .outputs import Outcome


@dataclass
class Report:
    """What a build did: outcomes by node, failures with their errors, skips with reasons."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    failures: dict[str, GradientError] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        if not self.failures:
            return 0
        return max(err.exit_code for err in self.failures.values())



def _why_not(dep: str, report: Report) -> str:
    """Why a dependency gave nothing to build on, in the words of what happened to it."""
    if dep in report.skipped:
        return "was skipped"
    failure = report.failures[dep]
    if isinstance(failure, VerifyFailed):
        return "built but failed its verification"
    if isinstance(failure, ToolMissing):
        return "cannot build here (a tool is missing)"
    return "failed to build"


@dataclass
class Built:
    """A node's entry once built (or found), before its verification."""

    key: str
    entry: Entry
    cached: bool
    started: float

    def outcome(self, tier: str, verdict: Verdict | None, replayed: bool) -> Outcome:
        return Outcome(tier, self.entry, self.cached, verdict, time.monotonic() - self.started,
                       replayed)


def critical_paths(nodes: list[Node], timings: dict[str, float],
                   verify: bool) -> dict[str, tuple[float, float]]:
    """For each node, (the seconds from its build's start to the end of everything that waits
    on it, its verification's seconds): from the last run's timings, else the tier's cost.
    A consumer starts once its input is built, so a build's chain is its own time plus the
    longer of its verification and its consumers' chains."""
    consumers: dict[str, list[str]] = {n.id: [] for n in nodes}
    for node in nodes:
        for dep in node.needs:
            consumers.setdefault(dep, []).append(node.id)  # an input outside these nodes too
    by_id = {n.id: n for n in nodes}
    found: dict[str, tuple[float, float]] = {}

    def chain(nid: str) -> float:
        if nid not in found:
            node = by_id[nid]
            checking = timings.get(f"{nid}:verify", node.backend.cost / 2) if verify else 0.0
            after = max([checking, *(chain(c) for c in consumers[nid])])
            found[nid] = (timings.get(nid, node.backend.cost) + after, checking)
        return found[nid][0]

    for node in nodes:
        chain(node.id)
    return found


def run_graph(engine: Any, nodes: list[Node], report: Report, *, skip_missing: bool) -> None:
    """Run `nodes` on `engine` (an Engine: its _build_phase and _verify_phase, emit, jobs,
    verify_enabled) into `report`: outcomes, failures and skips, nothing promoted yet."""
    by_id = {n.id: n for n in nodes}
    entries: dict[str, Entry] = {}
    held: dict[str, Outcome] = {}  # verified, waiting on its inputs' verification
    held_failures: dict[str, BaseException] = {}  # failed, likewise: whose failure?
    tails = critical_paths(nodes, engine.cache.timings(engine.pid), engine.verify_enabled)
    pending = {n.id: n for n in sorted(nodes, key=lambda n: -tails[n.id][0])}
    running: dict[Future[Any], tuple[str, Node]] = {}
    ready: list[tuple[float, int, str, Node, tuple[Any, ...]]] = []  # not yet given a worker
    built: dict[str, Built] = {}
    jobs = max(1, engine.jobs)
    order = itertools.count()  # first come, first served among equals

    def offer(phase: str, node: Node, *args: Any) -> None:
        """Queue a phase; the longest chain still ahead of it gets the next free worker."""
        priority = tails[node.id][0] if phase == "build" else tails[node.id][1]
        heapq.heappush(ready, (-priority, next(order), phase, node, args))

    def dispatch(pool: ThreadPoolExecutor) -> None:
        while ready and len(running) < jobs:
            _, _, phase, node, args = heapq.heappop(ready)
            work = engine._build_phase if phase == "build" else engine._verify_phase
            running[pool.submit(work, node, *args)] = (phase, node)

    def skip(node: Node, why: str) -> None:
        pending.pop(node.id, None)
        report.skipped[node.id] = why
        engine.emit(Event("skipped", node.tier, why))

    def blocked_by(node: Node) -> list[str]:
        return [d for d in node.needs if d in report.failures or d in report.skipped]

    def needs_text(blocked: list[str]) -> str:
        return "needs " + "; ".join(f"{d}, which {_why_not(d, report)}" for d in blocked)

    def settle() -> None:
        """Promote held outcomes whose inputs are final; discard those that lost one."""
        changed = True
        while changed:
            changed = False
            for nid in list(held):
                blocked = blocked_by(by_id[nid])
                if blocked:
                    del held[nid]
                    skip(by_id[nid], needs_text(blocked) + " (its build was discarded)")
                    changed = True
                elif all(d in report.outcomes for d in by_id[nid].needs):
                    report.outcomes[nid] = held.pop(nid)
                    changed = True
            for nid, exc in list(held_failures.items()):
                blocked = blocked_by(by_id[nid])
                if blocked or all(d in report.outcomes for d in by_id[nid].needs):
                    del held_failures[nid]
                    if blocked:  # its input's failure explains it; its own is moot
                        skip(by_id[nid], needs_text(blocked) + " (its build was discarded)")
                    else:
                        failed(by_id[nid], exc)
                    changed = True
            for item in list(ready):
                blocked = blocked_by(item[3])
                if blocked:  # not started yet: it never will
                    ready.remove(item)
                    heapq.heapify(ready)
                    skip(item[3], needs_text(blocked))
                    changed = True

    def failed(node: Node, exc: BaseException) -> None:
        if isinstance(exc, GradientError):
            report.failures[node.id] = exc
            engine.emit(Event("failed", node.tier, exc.message, {"detail": exc.detail}))
        else:
            report.failures[node.id] = failure = internal(f"{node.tier}: ", exc)
            engine.emit(Event("failed", node.tier, failure.message,
                            {"detail": failure.detail, "internal": True}))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running or ready:
            for node in list(pending.values()):
                blocked = blocked_by(node)
                if blocked:
                    skip(node, needs_text(blocked))
                    continue
                reason = node.backend.skip(engine.project, engine.app, node.options)
                if reason and skip_missing:
                    skip(node, reason)
                    continue
                missing = engine._missing(node)
                if missing and skip_missing:
                    skip(node, "missing " + "; ".join(missing))
                    continue
                if missing:
                    del pending[node.id]
                    lacking = ToolMissing(f"{node.tier}: missing " + "; ".join(missing))
                    report.failures[node.id] = lacking
                    engine.emit(Event("failed", node.tier, lacking.message))
                    continue
                if all(d in entries for d in node.needs):
                    del pending[node.id]
                    offer("build", node, {d: entries[d] for d in node.needs})
            dispatch(pool)
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                if future not in running:
                    continue
                phase, node = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:
                    if all(d in report.outcomes for d in node.needs):
                        failed(node, exc)
                    else:  # an input is still being verified: it may explain this
                        held_failures[node.id] = exc
                    settle()
                    continue
                if phase == "build":
                    done_build: Built = result
                    built[node.id] = done_build
                    entries[node.id] = done_build.entry
                    if blocked_by(node):  # an input failed meanwhile: no need to verify
                        held[node.id] = done_build.outcome(node.tier, None, False)
                    else:  # with verification off, the phase makes only the SBOM
                        offer("verify", node, done_build, {d: entries[d] for d in node.needs})
                else:
                    verdict, replayed = result
                    held[node.id] = built[node.id].outcome(node.tier, verdict, replayed)
            settle()
