"""Promotion into dist/gradient/: each tier's directory swapped in whole, the manifest last.

A reader of dist/gradient/ sees either the previous good state or the new one: tier
directories are staged beside their final place and exchanged with it in one step
(renameat2 RENAME_EXCHANGE, so dist/gradient/<tier> is never missing), and manifest.json,
the commit point, is renamed into place after everything it lists is there.

Promoted files are reflinks or copies of the cache's, never hard links: editing one in
dist/gradient/ must not change the cached entry.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifact import Artifact, Role, Verdict
from .atomic import write_text_atomic
from .cache import Entry
from .errors import BuildFailed
from .runner import uninterruptible
from .sources import file_digest

SCHEMA = 1


@dataclass
class Outcome:
    """One node's result, as promotion and the manifest need it."""

    tier: str
    entry: Entry
    cached: bool
    verdict: Verdict | None
    seconds: float = 0.0
    """Time this node took in this run (building and verifying; ~0 for a full replay)."""
    replayed: bool = False
    """The verification was replayed from the cache (the same artifact, proven here before)."""

    @property
    def state(self) -> str:
        """verified, checked, or built (--no-verify)."""
        if self.verdict is None:
            return "built"
        return "verified" if self.verdict.verified else "checked"


FICLONE = 0x40049409  # _IOW(0x94, 9, int): share the blocks, copy on write
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def clone_file(src: Path, dest: Path) -> None:
    """`dest` becomes an independent copy of `src`: a reflink where the filesystem can,
    else a real copy: 12-80 ms for 30 MB on this ext4 (a hard link: 0.1 ms, but shares edits)."""
    with src.open("rb") as fin, dest.open("wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            cloned = True
        except OSError:  # ext4 and tmpfs cannot: copy in the kernel (sendfile)
            cloned = False
    if not cloned:
        shutil.copyfile(src, dest)
    shutil.copystat(src, dest)


def _place(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        clone_file(src, dest)
    except FileNotFoundError:
        raise BuildFailed(f"the cached copy of {src.name} vanished while it was promoted "
                          "(another gradient pruned the cache): run the build again") from None


@functools.cache
def _renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:  # the process's own symbols hold libc's: find_library would run `ldconfig -p`
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the OS or filesystem cannot."""
    func = _renameat2()
    if func is None:
        return False
    if func(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_in(staged: Path, final: Path, old: Path) -> None:
    """Put `staged` at `final`; the previous `final` (if any) ends up at `old`."""
    if final.exists() and exchange(staged, final):
        os.rename(staged, old)
        return
    if final.exists():  # no atomic exchange here: the two renames, as brief as possible
        os.rename(final, old)
    os.rename(staged, final)


def clean_leftovers(out_dir: Path) -> None:
    """Staging and old folders an interrupted build left; callers hold the project lock."""
    for pattern in (".staging-*", ".old-*"):
        for path in out_dir.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def promote(project_root: Path, out_dir: Path, project: dict[str, str],
            outcomes: list[Outcome], states: dict[str, dict[str, Any]] | None = None,
            current: Callable[[list[str]], dict[str, str | None]] | None = None
            ) -> dict[str, Any]:
    """Swap each outcome's files into `out_dir/<tier>/` and rewrite the manifest and sums.

    `states` records each tier of this run (verified, checked, failed, skipped...); a tier
    left from an earlier build is marked stale when `current` (its key now) says its inputs
    have changed since."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out_dir)
    from .provenance import git_commit

    token = uuid.uuid4().hex[:8]
    staged_dirs: dict[str, Path] = {}
    extras: dict[str, list[dict[str, Any]]] = {}
    commit = git_commit(project_root) if outcomes else None  # one `git` for every statement
    try:
        for outcome in outcomes:
            staged = staged_dirs[outcome.tier] = out_dir / f".staging-{token}-{outcome.tier}"
            for rel, _role in outcome.entry.artifact.files():
                _place(outcome.entry.artifact.root / rel, staged / rel)
            extras[outcome.tier] = _attest(project, outcome, staged, commit)
        from .attest import settle

        settle()  # every SBOM validated before any of them is promoted
    except BaseException:
        for staged in staged_dirs.values():
            shutil.rmtree(staged, ignore_errors=True)
        raise
    with uninterruptible():  # a signal now waits until dist/gradient/ is consistent again
        for tier, staged in staged_dirs.items():
            old = out_dir / f".old-{token}-{tier}"
            swap_in(staged, out_dir / tier, old)
            shutil.rmtree(old, ignore_errors=True)
        return _commit(project_root, out_dir, project, outcomes, states or {}, current, extras)


def _attest(project: dict[str, str], outcome: Outcome, staged: Path,
            commit: str | None) -> list[dict[str, Any]]:
    """Write the SBOM and provenance of `outcome` into its staged directory (attest.py):
    the manifest items they become, without their path (it is the tier's)."""
    from .attest import attestations

    items: list[dict[str, Any]] = []
    entry = outcome.entry
    started = time.monotonic()
    docs = attestations(entry.artifact, entry.key, entry.digests, project, commit)
    for doc in docs:
        (staged / doc.rel).write_text(doc.text)
        items.append({"tier": outcome.tier, "role": doc.role, "rel": doc.rel,
                      "sha256": file_digest(staged / doc.rel),
                      "size": (staged / doc.rel).stat().st_size, "cached": outcome.cached,
                      "key": entry.key})
    items[0]["seconds"] = round(time.monotonic() - started, 3)  # what both cost this run
    return items


def _commit(project_root: Path, out_dir: Path, project: dict[str, str],
            outcomes: list[Outcome], states: dict[str, dict[str, Any]],
            current: Callable[[list[str]], dict[str, str | None]] | None,
            extras: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    manifest = _manifest(project_root, out_dir, project, outcomes, extras or {})
    _mark_states(manifest, outcomes, states, current)
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
              outcomes: list[Outcome], extras: dict[str, list[dict[str, Any]]]
              ) -> dict[str, Any]:
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
                "key": outcome.entry.key,
            }
            if role == "artifact":
                item["verified"] = bool(outcome.verdict and outcome.verdict.verified)
                if outcome.verdict:
                    item["verify"] = outcome.verdict.to_json()
                item.update({k: v for k, v in artifact.meta.items() if k not in item})
            entries.append(item)
        for extra in extras.get(outcome.tier, []):
            rel = extra["rel"]
            entries.append({k: v for k, v in extra.items() if k != "rel"} | {
                "path": (_rel(project_root, out_dir) / outcome.tier / rel).as_posix()})
    from .registry import backends  # through the entry points: gradient order, stable

    rank = {name: backend.rank for name, backend in backends().items()}
    merged = sorted(kept + entries, key=lambda a: (rank.get(a["tier"], 999), a["tier"],
                                                   a["role"] != "artifact"))
    return {"schema": SCHEMA, "project": project, "artifacts": merged}


def _mark_states(manifest: dict[str, Any], outcomes: list[Outcome],
                 states: dict[str, dict[str, Any]],
                 current: Callable[[list[str]], dict[str, str | None]] | None) -> None:
    """Each tier's state in the manifest: this run's, and for an artifact kept from an
    earlier build, whether it is stale (its inputs changed since: never shown as verified)."""
    built = {o.tier for o in outcomes}
    kept = [a for a in manifest["artifacts"] if a["role"] == "artifact" and a["tier"] not in built]
    now = current([a["tier"] for a in kept]) if current and kept else {}
    for item in kept:
        tier = item["tier"]
        failed = states.get(tier, {}).get("state") in ("failed", "skipped")
        if failed or (tier in now and now[tier] != item.get("key")):
            item["stale"] = True
            item["verified"] = False
        else:
            item.pop("stale", None)
    manifest["tiers"] = states


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
            known = {"tier", "role", "path", "sha256", "size", "cached", "verified", "verify",
                     "key", "stale"}
            meta = {k: v for k, v in item.items() if k not in known}
            found[tier] = Artifact(tier, root, rel, {}, meta)
        elif item["role"] not in (Role.SBOM, Role.PROVENANCE):  # about the artifact, not of it
            found[tier].roles[rel] = item["role"]
    return found


def tampered(project_root: Path, manifest: dict[str, Any]) -> dict[str, list[str]]:
    """By tier: listed files that are gone or whose sha256 no longer matches the manifest."""
    found: dict[str, list[str]] = {}
    for item in manifest.get("artifacts", []):
        path = project_root / item["path"]
        try:
            same = file_digest(path) == item["sha256"]
        except FileNotFoundError:
            found.setdefault(item["tier"], []).append(f"{item['path']} is missing")
            continue
        except OSError as exc:
            found.setdefault(item["tier"], []).append(f"{item['path']}: {exc.strerror}")
            continue
        if not same:
            found.setdefault(item["tier"], []).append(
                f"{item['path']} changed since it was built (its sha256 is not the manifest's)")
    return found
