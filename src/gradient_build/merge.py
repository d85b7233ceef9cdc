"""`gradient merge`: the shards' partial outputs as one output folder, one manifest, one
SHA256SUMS (written by outputs.promote, the build's own writer).

What a merge refuses, because a release built from it would not be what it claims: a node
two shards built with different digests (a reproducibility failure: both shards are named),
a shard that failed or is missing (unless --allow-partial), and any artifact that was not
verified or whose file no longer matches its shard's manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifact import Verdict
from .cache import Entry, digest_of
from .errors import GradientError
from .outputs import Outcome, artifacts_from_manifest, promote, tampered
from .shard import SHARD_FILE


class MergeFailed(GradientError):
    """Shards missing, failed or unverified: the merge would not be the whole release."""

    exit_code = 1


class MergeConflict(GradientError):
    """Two shards built one node with different digests."""

    exit_code = 1


@dataclass
class ShardOutput:
    """One shard's folder: its shard.json, its manifest rebased onto the folder."""

    folder: Path
    record: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.record["shard"]["name"])

    @property
    def variant(self) -> str:
        return str(self.record["shard"]["variant"])


def read_shard(folder: Path) -> ShardOutput:
    try:
        record = json.loads((folder / SHARD_FILE).read_text())
        listed = folder / "manifest.json"  # a shard where every tier failed promoted nothing
        manifest = json.loads(listed.read_text()) if listed.exists() or record.get("ok") else {}
    except FileNotFoundError as exc:
        raise MergeFailed(f"{folder} is not a shard's output: it has no {Path(exc.filename).name}"
                          " (write one with `gradient build --shard ... --out DIR`)") from None
    except ValueError as exc:
        raise MergeFailed(f"{folder}: unreadable shard output ({exc})") from None
    out = record.get("out", "dist/gradient")
    for item in manifest.get("artifacts", []):  # paths in the shard's checkout -> in `folder`
        path = Path(item["path"])
        if path.is_relative_to(out):
            item["path"] = path.relative_to(out).as_posix()
        elif item["tier"] in path.parts:  # an older shard.json without "out"
            start = len(path.parts) - 1 - path.parts[::-1].index(item["tier"])
            item["path"] = Path(*path.parts[start:]).as_posix()
    return ShardOutput(folder, record, manifest)


@dataclass
class Merged:
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def merge(folders: list[Path], out_dir: Path, project_root: Path, *, allow_partial: bool = False,
          names: list[str] | None = None) -> Merged:
    """Merge the shard folders into `out_dir`; `names` are the matrix's shard names, to say
    which shard is missing. Raises MergeConflict, or MergeFailed listing every problem."""
    shards = [read_shard(f) for f in folders]
    if not shards:
        raise MergeFailed("no shard folders to merge")
    problems = _missing(shards, names) + _failed(shards)
    chosen: dict[tuple[str, str], tuple[ShardOutput, Outcome]] = {}
    for shard in shards:
        artifacts = artifacts_from_manifest(shard.folder, shard.manifest)
        changed = tampered(shard.folder, shard.manifest)
        sums = {a["path"]: a for a in shard.manifest.get("artifacts", [])}
        for tier, node in shard.record["nodes"].items():
            if node.get("state") != "verified":
                continue  # the shard's failure (if it was its own tier) is a problem above
            if tier not in artifacts or changed.get(tier):
                problems.append(f"{shard.name}: {tier} " + ("; ".join(changed.get(tier, [])) or
                                                             "is not in its manifest"))
                continue
            artifact = artifacts[tier]
            item = sums[(Path(tier) / artifact.primary).as_posix()]
            digests = {rel: {"sha256": sums[(Path(tier) / rel).as_posix()]["sha256"],
                             "size": sums[(Path(tier) / rel).as_posix()]["size"]}
                       for rel, _ in artifact.files()}
            entry = Entry(str(item.get("key") or node.get("key")), artifact, digests)
            outcome = Outcome(tier, entry, bool(item.get("cached")),
                              Verdict.from_json(item["verify"]) if item.get("verify") else None)
            if outcome.verdict is None or not outcome.verdict.verified:
                problems.append(f"{shard.name}: {tier} is not verified")
                continue
            seen = chosen.get((tier, shard.variant))
            if seen is not None and seen[1].entry.digest != entry.digest:
                raise MergeConflict(
                    f"{tier} ({shard.variant}) differs between shard {seen[0].name} and shard "
                    f"{shard.name}: a reproducibility failure, the same inputs built two "
                    "different artifacts", detail=_differences(seen[1].entry, entry))
            chosen.setdefault((tier, shard.variant), (shard, outcome))
    if problems and not allow_partial:
        raise MergeFailed(f"{len(problems)} problem(s): nothing merged (--allow-partial merges "
                          "what is whole)", detail="\n".join(problems))
    outcomes, states = _outcomes(chosen)
    projects = {json.dumps(s.manifest["project"], sort_keys=True) for s in shards
                if s.manifest.get("project")} or {"{}"}
    if len(projects) > 1:
        raise MergeFailed("the shards are of different projects or versions: "
                          + "; ".join(sorted(projects)))
    (out_dir / "manifest.json").unlink(missing_ok=True)  # a merge lists only its shards
    manifest = promote(project_root, out_dir, json.loads(projects.pop()), outcomes, states)
    return Merged(manifest, problems)


def _missing(shards: list[ShardOutput], names: list[str] | None) -> list[str]:
    totals = {s.record["shard"]["total"] for s in shards if s.record["shard"].get("total")}
    if len(totals) > 1:
        return [f"the shards come from different matrices (N = {', '.join(map(str, totals))})"]
    if not totals:
        return []
    total = totals.pop()
    present = {s.record["shard"]["index"] for s in shards}
    return [f"shard {k}/{total}" + (f" ({names[k - 1]})" if names and len(names) == total
                                    else "") + " is missing"
            for k in range(1, total + 1) if k not in present]


def _failed(shards: list[ShardOutput]) -> list[str]:
    found = []
    for shard in shards:
        if shard.record.get("ok"):
            continue
        why = [f"{t} {n.get('state')}" + (f" ({n['why']})" if n.get("why") else "")
               for t, n in shard.record["nodes"].items() if n.get("state") != "verified"]
        found.append(f"shard {shard.name} failed: {'; '.join(why) or 'it verified nothing'}")
    return found


def _differences(first: Entry, second: Entry) -> str:
    rels = sorted(set(first.digests) | set(second.digests))
    return "\n".join(f"{rel}: {first.digests.get(rel, {}).get('sha256', 'absent')} vs "
                     f"{second.digests.get(rel, {}).get('sha256', 'absent')}" for rel in rels
                     if first.digests.get(rel) != second.digests.get(rel))


def _outcomes(chosen: dict[tuple[str, str], tuple[ShardOutput, Outcome]]
              ) -> tuple[list[Outcome], dict[str, dict[str, Any]]]:
    """One outcome per tier when every variant built the same bytes, else one per
    tier@variant (the graph's node id), each in its own folder of the output."""
    by_tier: dict[str, list[tuple[str, ShardOutput, Outcome]]] = {}
    for (tier, variant), (shard, outcome) in sorted(chosen.items()):
        by_tier.setdefault(tier, []).append((variant, shard, outcome))
    outcomes: list[Outcome] = []
    states: dict[str, dict[str, Any]] = {}
    for tier, found in by_tier.items():
        same = len({digest_of(o.entry.digests) for _v, _s, o in found}) == 1
        for variant, shard, outcome in found[:1] if same else found:
            name = tier if same else f"{tier}@{variant}"
            outcome.tier = name
            outcome.entry.artifact.tier = name
            outcomes.append(outcome)
            states[name] = {"state": "verified", "cached": outcome.cached,
                            "shards": sorted(s.name for _v, s, _o in found) if same
                            else [shard.name],
                            "machine": shard.record.get("machine", {})}
    return outcomes, states
