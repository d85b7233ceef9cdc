"""One flow from config to manifest: resolve the graph, build or reuse, verify, promote."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import Artifact, BuildContext, Verdict, VerifyContext
from .cache import Cache, Entry, digest_of, max_size
from .cleanroom import build_paths
from .config import Config
from .errors import BuildFailed, GradientError, SecretFound, VerifyFailed
from .events import Emit, Event
from .graph import Node, explain, key_inputs, project_id, resolve, verify_key
from .outputs import promote
from .project import Project
from .runner import Runner, tail, tool_environment
from .sandbox import Sandbox
from .sbom import warm_in_background
from .schedule import Built, Report, run_graph
from .shared_dirs import exclusive
from .smoke import smoke_for


@dataclass
class PlanItem:
    node: Node
    status: str
    reasons: list[str]
    tools: dict[str, str | None]
    missing: list[str]
    key: str | None = None
    """The node's cache key now (None while it waits on a dependency that will rebuild)."""


class Engine:
    def __init__(self, config: Config, project: Project, backends: dict[str, Any], cache: Cache,
                 emit: Emit, out_dir: Path, *, jobs: int = 1, verify: bool = True,
                 require_run: bool = False, atomic: bool = False) -> None:
        self.config, self.project, self.backends, self.cache = config, project, backends, cache
        self.emit, self.out_dir, self.jobs, self.verify_enabled = emit, out_dir, jobs, verify
        self.require_run, self.atomic = require_run, atomic
        epoch = project.sources.epoch if project.sources else 0
        self.env = tool_environment(cache.root, epoch)
        self.pid = project_id(project.root)
        self.app = project.app(config)
        self.archive_readers = tuple(r for b in backends.values() for r in b.archive_readers)
        self._lock = threading.Lock()

    def nodes(self, tiers: list[str]) -> list[Node]:
        return resolve(tiers, self.config, self.backends)

    def _tool_versions(self, node: Node) -> dict[str, str | None]:
        return {t.name: t.version(self.cache.root) for t in node.backend.tools_for(node.options)}

    def _missing(self, node: Node) -> list[str]:
        return [f"{t.name}: {t.get}" for t in node.backend.tools_for(node.options)
                if t.required and not t.present()]

    def plan(self, tiers: list[str], *, skip_missing: bool = False) -> list[PlanItem]:
        """For each node: hit, miss (with why), or waiting on a dependency that will rebuild;
        with `skip_missing` (what `--all` builds), "skip" where the build would skip it."""
        items: list[PlanItem] = []
        digests: dict[str, str | None] = {}
        skipped: set[str] = set()
        for node in self.nodes(tiers):
            tools = self._tool_versions(node)
            missing = self._missing(node)
            reason = node.backend.skip(self.project, self.app, node.options)
            blocked = [d for d in node.needs if d in skipped]
            if skip_missing and (reason or missing or blocked):
                why = reason or (f"missing {'; '.join(missing)}" if missing else
                                 f"needs {', '.join(blocked)}, which is skipped")
                items.append(PlanItem(node, "skip", [why], tools, missing))
                skipped.add(node.id)
                continue
            consumed = {d: digests.get(d) for d in node.needs}
            if any(v is None for v in consumed.values()):
                waits = [d for d, v in consumed.items() if v is None]
                items.append(PlanItem(node, "miss", [f"{', '.join(waits)} will be rebuilt first"],
                                      tools, missing))
                digests[node.id] = None
                continue
            inputs = key_inputs(node, self.project, self.config,
                                {d: str(v) for d, v in consumed.items()}, tools)
            key = digest_of(inputs)
            entry = self.cache.lookup(key)
            digests[node.id] = entry.digest if entry else None
            reasons = [] if entry else explain(self.cache.last_inputs(self.pid, node.id), inputs)
            status = ("remote hit" if entry.remote else "hit") if entry else "miss"
            items.append(PlanItem(node, status, reasons, tools, missing, key))
        return items

    def current_keys(self, tiers: list[str]) -> dict[str, str | None]:
        """Each tier's cache key now, as far as it can be known without building."""
        try:
            return {i.node.tier: i.key for i in self.plan(tiers)}
        except GradientError:  # a tier no longer registered or configured: nothing is known
            return dict.fromkeys(tiers)

    def build(self, tiers: list[str], *, skip_missing: bool = False) -> Report:
        """Build (and verify) `tiers` and what they need, then promote what succeeded: a
        failed tier keeps its previous artifact (`atomic`: promote only if all succeeded).

        A consumer builds as soon as its inputs are built, while they are being verified;
        its outcome counts only once every input is verified, and a failed input
        verification cancels what has not started and discards the rest."""
        nodes = self.nodes(tiers)
        report = Report()
        run_graph(self, nodes, report, skip_missing=skip_missing)
        if report.outcomes and not (self.atomic and report.failures):
            with exclusive(self.cache.root / "locks" / f"{self.pid}.lock"):
                ordered = [report.outcomes[n.id] for n in nodes if n.id in report.outcomes]
                report.manifest = promote(self.project.root, self.out_dir,
                                          {"name": self.project.name,
                                           "version": self.project.version}, ordered,
                                          self._states(nodes, report), self.current_keys)
            self.emit(Event("promoted", None, str(self.out_dir), {"manifest": report.manifest}))
            delivered: list[str] = []
            for node in nodes:
                outcome = report.outcomes.get(node.id)
                if outcome and outcome.verdict and outcome.verdict.verified:
                    for path in node.backend.deliver(node.options, outcome.entry.artifact,
                                                     self.project.root):
                        delivered.append(path.resolve().relative_to(
                            self.project.root.resolve()).as_posix())
                        self.emit(Event("delivered", node.tier, str(path)))
            if delivered:  # the next scan must not take them for new sources
                self.cache.record_delivered(self.pid, delivered)
        from .attest import sbom_done

        sbom_done()  # those of outcomes not promoted, before their entries may be pruned
        if any(not o.cached for o in report.outcomes.values()):
            self.cache.prune(max_size())
        return report

    def _states(self, nodes: list[Node], report: Report) -> dict[str, dict[str, Any]]:
        """What happened to each tier of this run, for the manifest."""
        states: dict[str, dict[str, Any]] = {}
        for node in nodes:
            outcome = report.outcomes.get(node.id)
            if outcome is not None:
                state: dict[str, Any] = {"state": outcome.state, "cached": outcome.cached,
                                         "seconds": round(outcome.seconds, 3)}
                if outcome.verdict and outcome.verdict.why:
                    state["why"] = outcome.verdict.why
            elif node.id in report.failures:
                state = {"state": "failed", "why": report.failures[node.id].message}
            elif node.id in report.skipped:
                state = {"state": "skipped", "why": report.skipped[node.id]}
            else:
                continue
            states[node.tier] = state
        return states

    def _build_phase(self, node: Node, inputs: dict[str, Entry]) -> Built:
        """The node's entry: from the cache, or built now."""
        started = time.monotonic()
        consumed = {d: e.digest for d, e in inputs.items()}
        tools = self._tool_versions(node)
        record = key_inputs(node, self.project, self.config, consumed, tools)
        key = digest_of(record)
        entry = self.cache.lookup(key)
        cached = entry is not None
        if entry is not None:
            self._check_artifact(node, entry.artifact)  # the [secrets] of this run decide
        if entry is None:
            reasons = explain(self.cache.last_inputs(self.pid, node.id), record)
            self.emit(Event("start", node.tier, "building", {"reasons": reasons}))
            started = time.monotonic()
            entry = self._build_node(node, key, record, inputs)
            self.cache.record_timing(self.pid, node.id, time.monotonic() - started)
            self.emit(Event("built", node.tier, str(entry.artifact.primary)))
        else:
            self.emit(Event("cached", node.tier, str(entry.artifact.primary)))
        self.cache.record_inputs(self.pid, node.id, record)
        return Built(key, entry, cached, started)

    def _verify_phase(self, node: Node, built: Built,
                      inputs: dict[str, Entry]) -> tuple[Verdict | None, bool]:
        """The node's verification (when on), on a worker beside the nodes still building,
        then its SBOM started on a thread of its own, which promotion's copying overlaps."""
        verdict, replayed = (self._verify_node(node, built.key, built.entry, inputs)
                             if self.verify_enabled else (None, False))
        from .attest import sbom_soon

        sbom_soon(built.entry.artifact, built.entry.digests,  # settled at promotion
                  {"name": self.project.name, "version": self.project.version})
        return verdict, replayed

    def _build_node(self, node: Node, key: str, record: dict[str, Any],
                    inputs: dict[str, Entry]) -> Entry:
        warm_in_background()  # a new artifact gets a new SBOM
        work = self.cache.work_dir(node.tier)
        ok = False
        try:
            out = work / "out"
            out.mkdir()
            runner = Runner(node.tier, dict(self.env), self.emit)
            ctx: BuildContext[object] = BuildContext(
                tier=node.tier, project=self.project, app=self.app, options=node.options,
                inputs={d: e.artifact for d, e in inputs.items()}, env=dict(self.env),
                run=runner, emit=self.emit, cache_dir=self.cache.root,
                config_file=self.config.path, work=work / "scratch", out=out,
                distros=self.config.target.distros)
            ctx.work.mkdir()
            artifact = node.backend.build(ctx)
            digests = self._check_artifact(node, artifact)
            stored = self.cache.store(key, artifact, record, digests)
            self._scan_marker(stored.artifact).touch()
            ok = True
            return stored
        except Exception as exc:
            kept = f"the build's work directory is kept for you to look inside: {work}"
            if isinstance(exc, GradientError):
                exc.detail = (f"{exc.detail}\n" if exc.detail else "") + kept
                exc.kept = work
            else:
                exc.add_note(kept)
            raise
        finally:
            if ok:
                shutil.rmtree(work, ignore_errors=True)

    def _check_artifact(self, node: Node, artifact: Artifact) -> dict[str, str]:
        """The secret scan under this run's [secrets]; remembered per allow-list, so a cache
        hit is scanned again only when the allow-list changed. One read per file: the
        sha256 it returns is what the cache stores, and a file found clean before (the same
        dependency wheels in every wheelhouse) is not scanned again."""
        marker = self._scan_marker(artifact)
        if marker.exists():
            return {}
        from .scan import scan_artifact  # its patterns compile on import: a miss needs them

        clean = self.cache.clean_archives()
        known = len(clean)
        try:
            digests, findings = scan_artifact(artifact.root, [rel for rel, _ in artifact.files()],
                                              self.config.secrets.allow, clean,
                                              self.archive_readers)
        except FileNotFoundError as missing:
            raise BuildFailed(f"{node.tier}: the backend reported {missing} but did not "
                              "write it") from None
        if findings:
            listed = "; ".join(f"{f.what} at {f.where}" for f in findings[:5])
            raise SecretFound(f"{node.tier}: refusing to ship {listed}. {self._ways_out()}")
        if len(clean) > known:
            self.cache.remember_clean_archives(clean)
        if artifact.root.parent.is_relative_to(self.cache.root / "objects"):
            marker.touch()
        return digests

    def _scan_marker(self, artifact: Artifact) -> Path:
        """Beside a cached entry: it passed the scan under this [secrets] allow-list."""
        return artifact.root.parent / f"scanned-{digest_of(self.config.secrets.allow)[:16]}"

    def _ways_out(self) -> str:
        """How to stop shipping a file, in this project's terms (.gitignore only works in git)."""
        hide = ("add it to .gitignore (builds only see files git does not ignore)"
                if self.project.sources and self.project.sources.in_git else
                "exclude it from the package in your build backend's settings (this project is "
                "not in a git work tree, so .gitignore does not apply)")
        return (f"Remove it from the project, or {hide}, or let it through with "
                "[secrets] allow = [\"PATTERN\"] in gradient.toml")


    def _verify_node(self, node: Node, key: str, entry: Entry,
                     inputs: dict[str, Entry]) -> tuple[Verdict, bool]:
        """The node's verdict, and whether it was replayed from the cache."""
        vkey = verify_key(node, self.config, key)
        verdict = self.cache.verdict(key, vkey)
        replayed = verdict is not None
        if verdict is None:
            started = time.monotonic()
            verdict = self.verify_artifact(node, entry.artifact,
                                           {d: e.artifact for d, e in inputs.items()})
            self.cache.record_timing(self.pid, f"{node.id}:verify", time.monotonic() - started)
            if verdict.verified:  # only a run is final: a check is redone once it can run
                self.cache.store_verdict(key, vkey, verdict)
        if not verdict.ok:
            problem = (verdict.problem or "verification failed")
            ran = f": {' '.join(verdict.command)}" if verdict.command else ""
            raise VerifyFailed(f"{node.tier}: {problem}{ran}", detail=verdict.output)
        if not verdict.verified:
            if self.require_run:
                raise VerifyFailed(
                    f"{node.tier}: checked but not run ({verdict.why}); a run is required "
                    "(--require-run, the default when CI is set): provide what is missing, or "
                    "pass --no-require-run to accept a structure check")
            self.emit(Event("checked", node.tier, verdict.why, verdict.to_json()))
            return verdict, replayed
        self.emit(Event("verified", node.tier, f"{verdict.seconds:.2f} s",
                        {**verdict.to_json(), "replayed": replayed, "remote": entry.remote}))
        return verdict, replayed

    def verify_artifact(self, node: Node, artifact: Artifact,
                        inputs: dict[str, Artifact]) -> Verdict:
        self.emit(Event("step", node.tier, "verifying"))
        sandbox = Sandbox(hide=build_paths(self.project.root, self.cache.root))
        runner = Runner(node.tier, dict(self.env), self.emit)
        ctx: VerifyContext[object] = VerifyContext(
            tier=node.tier, project=self.project, app=self.app, options=node.options,
            inputs=inputs, env=dict(self.env), run=runner, emit=self.emit,
            cache_dir=self.cache.root, config_file=self.config.path,
            smoke=smoke_for(self.config, self.project), sandbox=sandbox,
            distros=self.config.target.distros)
        started = time.monotonic()
        try:
            verdict = node.backend.verify(ctx, artifact)
        except GradientError as exc:
            verdict = Verdict(False, [], None, time.monotonic() - started, tail(exc.detail),
                              problem=exc.message.removeprefix(f"{node.tier}: "))
        finally:
            sandbox.cleanup()
        verdict.extra.setdefault("isolation", sandbox.isolation)
        if sandbox.hidden:
            verdict.extra.setdefault("hidden", [str(p) for p in sandbox.hidden])
        return verdict
