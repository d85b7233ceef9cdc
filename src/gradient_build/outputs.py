"""Promotion into dist/gradient/: each tier's directory swapped in whole, the manifest last.

A reader of dist/gradient/ sees either the previous good state or the new one: tier
directories are staged beside their final place and renamed in, and manifest.json, the
commit point, is renamed into place after everything it lists is there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .backend import Artifact, Verdict
from .cache import Entry

SCHEMA = 1


@dataclass
class Outcome:
    """One node's result, as promotion and the manifest need it."""

    tier: str
    entry: Entry
    cached: bool
    verdict: Verdict | None


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def promote(project_root: Path, out_dir: Path, project: dict[str, str],
            outcomes: list[Outcome]) -> dict[str, Any]:
    """Swap each outcome's files into `out_dir/<tier>/` and rewrite the manifest and sums."""
    out_dir.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    for outcome in outcomes:
        staged = out_dir / f".staging-{token}-{outcome.tier}"
        for rel, _role in outcome.entry.artifact.files():
            _place(outcome.entry.artifact.root / rel, staged / rel)
        final = out_dir / outcome.tier
        old = out_dir / f".old-{token}-{outcome.tier}"
        if final.exists():
            os.rename(final, old)
        os.rename(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    manifest = _manifest(project_root, out_dir, project, outcomes)
    write_text_atomic(out_dir / "SHA256SUMS", "".join(
        f"{a['sha256']}  {Path(a['path']).relative_to(_rel(project_root, out_dir)).as_posix()}\n"
        for a in manifest["artifacts"]))
    write_text_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _rel(project_root: Path, path: Path) -> Path:
    try:
        return path.resolve().relative_to(project_root.resolve())
    except ValueError:
        return path.resolve()


def _manifest(project_root: Path, out_dir: Path, project: dict[str, str],
              outcomes: list[Outcome]) -> dict[str, Any]:
    built = {o.tier for o in outcomes}
    kept = [a for a in read_manifest(out_dir).get("artifacts", [])
            if a.get("tier") not in built and (project_root / a["path"]).exists()]
    entries: list[dict[str, Any]] = []
    for outcome in outcomes:
        artifact = outcome.entry.artifact
        for rel, role in artifact.files():
            item: dict[str, Any] = {
                "tier": outcome.tier, "role": role,
                "path": (_rel(project_root, out_dir) / outcome.tier / rel).as_posix(),
                "sha256": outcome.entry.digests[rel]["sha256"],
                "size": outcome.entry.digests[rel]["size"], "cached": outcome.cached,
            }
            if role == "artifact":
                item["verified"] = bool(outcome.verdict and outcome.verdict.verified)
                if outcome.verdict:
                    item["verify"] = outcome.verdict.to_json()
                item.update({k: v for k, v in artifact.meta.items() if k not in item})
            entries.append(item)
    order = {t: i for i, t in enumerate(dict.fromkeys(a["tier"] for a in kept + entries))}
    merged = sorted(kept + entries, key=lambda a: (order[a["tier"]], a["role"] != "artifact"))
    return {"schema": SCHEMA, "project": project, "artifacts": merged}


def read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "manifest.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def artifacts_from_manifest(project_root: Path, manifest: dict[str, Any]) -> dict[str, Artifact]:
    """The promoted artifacts, rebuilt from the manifest for `gradient verify`."""
    found: dict[str, Artifact] = {}
    for item in manifest.get("artifacts", []):
        tier = item["tier"]
        path = project_root / item["path"]
        root = next(p for p in path.parents if p.name == tier)
        rel = path.relative_to(root).as_posix()
        if item["role"] == "artifact":
            known = {"tier", "role", "path", "sha256", "size", "cached", "verified", "verify"}
            meta = {k: v for k, v in item.items() if k not in known}
            found[tier] = Artifact(tier, root, rel, {}, meta)
        else:
            found[tier].roles[rel] = item["role"]
    return found
