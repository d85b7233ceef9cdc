"""Shards: one CI job's slice of a release (`gradient build --shard K/N` or
`--shard tier=exe,variant=py3.12-linux-x86_64`), and the partial manifest it leaves.

[matrix] in gradient.toml fixes the shard list (tier x variant, in a stable order), so the K
of K/N and the (tier, variant) of the explicit form name the same jobs on every machine,
and `gradient merge` can tell which shards are missing. A shard builds its tiers and what
they consume; shard.json beside manifest.json names the shard, the machine it ran on and
each node's key and digest.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .config import Config, MatrixOptions
from .errors import ConfigError

SHARD_FILE = "shard.json"
SCHEMA = 1


@dataclass(frozen=True)
class Shard:
    """One job of the fan-out: its tiers, its variant, and its place in the matrix."""

    tiers: tuple[str, ...]
    variant: str = "default"
    index: int | None = None
    total: int | None = None

    @property
    def name(self) -> str:
        """What merge and its errors call this shard: "wheel@py3.12-linux-x86_64 (2/4)"."""
        where = f"{'+'.join(self.tiers)}@{self.variant}"
        return f"{where} ({self.index}/{self.total})" if self.index else where

    def to_json(self) -> dict[str, Any]:
        return {"tiers": list(self.tiers), "variant": self.variant, "index": self.index,
                "total": self.total, "name": self.name}


def variants(matrix: MatrixOptions) -> list[str]:
    """The matrix's variants in order: py3.11-linux-x86_64, ... (platform only without python)."""
    return [f"py{py}-{plat}" if py else plat
            for plat in matrix.platforms for py in (matrix.python or [""])]


def expand(config: Config) -> list[Shard]:
    """Every shard of the matrix, numbered from 1: each tier on each variant."""
    tiers = config.matrix.tiers or config.tiers
    jobs = [(tier, variant) for variant in variants(config.matrix) for tier in tiers]
    return [Shard((tier,), variant, i, len(jobs)) for i, (tier, variant) in enumerate(jobs, 1)]


def parse(spec: str, config: Config, wanted: list[str]) -> Shard:
    """`K/N` (the K-th shard of the matrix, or of `wanted` split N ways without one) or
    `tier=A[+B],variant=V`; ConfigError (exit 2) saying which forms there are."""
    counted = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if counted:
        return _counted(int(counted.group(1)), int(counted.group(2)), config, wanted)
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, eq, value = part.partition("=")
        if not eq or name not in ("tier", "variant") or not value:
            raise ConfigError(f"--shard {spec!r}: expected K/N or tier=TIER[,variant=VARIANT]",
                              suggestion="tier=wheel,variant=" + (variants(config.matrix)
                                                                  or ["default"])[0])
        fields[name] = value
    if "tier" not in fields:
        raise ConfigError(f"--shard {spec!r} names no tier (tier=TIER[,variant=VARIANT])")
    tiers = tuple(fields["tier"].split("+"))
    variant = fields.get("variant", "default")
    known = variants(config.matrix)
    if variant != "default" and variant not in known:
        from .options import nearest

        raise ConfigError(f"--shard variant {variant!r} is not one of [matrix]'s: "
                          f"{', '.join(known)}", suggestion=nearest(variant, known))
    listed = next((s for s in expand(config) if s.tiers == tiers and s.variant == variant), None)
    return listed or Shard(tiers, variant)


def _counted(index: int, total: int, config: Config, wanted: list[str]) -> Shard:
    if not 1 <= index <= total:
        raise ConfigError(f"--shard {index}/{total}: K must be between 1 and N")
    if config.raw.get("matrix") is not None:
        shards = expand(config)
        if total != len(shards):
            raise ConfigError(f"--shard {index}/{total}: [matrix] has {len(shards)} shards "
                              f"(each tier on each variant), so N must be {len(shards)}")
        return shards[index - 1]
    mine = tuple(t for i, t in enumerate(wanted) if i % total == index - 1)
    if not mine:
        raise ConfigError(f"--shard {index}/{total}: only {len(wanted)} tier(s) to split, "
                          f"so shard {index} would be empty")
    return Shard(mine, "default", index, total)


def machine() -> dict[str, str]:
    """The facts of the machine a shard ran on: what its artifacts were built and proven on."""
    libc, version = platform.libc_ver()
    system = {"Darwin": "macos"}.get(platform.system(), platform.system().lower())
    return {"os": system, "arch": platform.machine().lower(),
            "glibc": version if libc == "glibc" else "",
            "python": platform.python_version()}


ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


def check_machine(shard: Shard, facts: dict[str, str]) -> None:
    """A shard must run where its variant says: py3.12-linux-aarch64 on an x86_64 runner
    or under Python 3.11 would ship an artifact the manifest misdescribes."""
    found = re.fullmatch(r"(?:py(\d+\.\d+)-)?(\w+)-(\w+)", shard.variant)
    if shard.variant == "default" or not found:
        return
    python, system, arch = found.groups()
    here_arch = ARCH_ALIASES.get(facts["arch"], facts["arch"])
    problems = []
    if python and not facts["python"].startswith(f"{python}."):
        problems.append(f"Python {python} (this is {facts['python']})")
    if system != facts["os"] or ARCH_ALIASES.get(arch, arch) != here_arch:
        problems.append(f"{system}-{arch} (this is {facts['os']}-{facts['arch']})")
    if problems:
        raise ConfigError(f"shard {shard.name} must run on {' and '.join(problems)}: run it "
                          "on the runner [matrix] names for it")


def write(out_dir: Path, shard: Shard, report: Any, nodes: list[Any],
          project_root: Path) -> dict[str, Any]:
    """shard.json beside manifest.json: the shard, its machine, and each node's outcome
    (`out`: the folder the manifest's paths start with, so merge can rebase them)."""
    try:
        out = out_dir.resolve().relative_to(project_root.resolve()).as_posix()
    except ValueError:
        out = out_dir.resolve().as_posix()
    record: dict[str, Any] = {"schema": SCHEMA, "shard": shard.to_json(), "machine": machine(),
                              "out": out, "nodes": {}}
    for node in nodes:
        outcome = report.outcomes.get(node.id)
        if outcome is not None:
            item = {"key": outcome.entry.key, "digest": outcome.entry.digest,
                    "state": outcome.state, "cached": outcome.cached}
        elif node.id in report.failures:
            item = {"state": "failed",
                    "why": report.failures[node.id].message}
        else:
            item = {"state": "skipped",
                    "why": report.skipped.get(node.id, "")}
        item["consumed_only"] = node.tier not in shard.tiers
        record["nodes"][node.tier] = item
    record["ok"] = not report.failures and all(
        record["nodes"].get(t, {}).get("state") == "verified" for t in shard.tiers)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / SHARD_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record
