"""Each promoted artifact's SBOM and provenance: written at promotion, checked by verify.

Promotion is the one place every tier's artifact passes, cached or not, so no tier and no
engine step has to remember to do this. The SBOM depends only on the artifact's bytes, so it
is computed once per cache entry and kept beside it (a cache hit copies it); the provenance
is made from the entry's recorded key inputs, which describe the build that made the bytes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .artifact import ArchiveReader, Artifact, Meta
from .atomic import write_text_atomic
from .errors import BuildFailed, GradientError
from .inventory import Component, Memo
from .provenance import provenance_name, statement, subject_problems
from .sbom import ATTESTATION_ROLES, collect, differences, document, sbom_name, validate
from .sbom import settle as sbom_settle
from .sources import file_digest

_documents: dict[tuple[str, str, str, int], str] = {}
"""SBOMs made in this process, by artifact digest, project and epoch (a long-lived caller
promotes the same entries again)."""


@dataclass
class Attestation:
    rel: str
    role: str
    text: str


def _tiers() -> tuple[dict[str, Any], tuple[ArchiveReader, ...]]:
    from .registry import backends

    found = backends()
    return found, tuple(r for b in found.values() for r in b.archive_readers)


def _hook(tier: str, found: dict[str, Any]) -> Callable[[Artifact], list[Component]] | None:
    backend = found.get(tier)
    hook = getattr(backend, "inventory", None)
    return hook if callable(hook) else None


def components(artifact: Artifact, memo: Memo | None = None,
               digests: dict[str, str] | None = None) -> list[Component]:
    """What the artifact holds: the generic readers and its tier's own `inventory`."""
    found, readers = _tiers()
    try:
        return collect(artifact, _hook(artifact.tier, found), readers, memo, digests)
    except GradientError:
        raise
    except Exception as exc:  # a tier's reader failing on its own artifact: say which
        raise BuildFailed(f"{artifact.tier}: cannot list what {artifact.primary} holds for its "
                          f"SBOM: {type(exc).__name__}: {exc}") from exc


def _memo(entry_dir: Path) -> Memo:
    """Large nested archives' components, kept in the cache beside its objects/ (a cache
    entry lives at CACHE/objects/xx/KEY/out); in this process only for anything else."""
    objects = entry_dir.parent.parent
    if objects.name == "objects" and (entry_dir / "artifact.json").exists():
        return _memos.setdefault(str(objects), Memo(objects.parent / "sbom-archives"))
    return _memos.setdefault("", Memo())


_memos: dict[str, Memo] = {}


def attestations(artifact: Artifact, key: str, digests: dict[str, dict[str, Any]],
                 project: dict[str, str], commit: str | None) -> list[Attestation]:
    """The SBOM and provenance of one cached entry's artifact, or the ones a promoted output
    already holds beside it (`gradient merge` of shards: written by the build that made the
    bytes, with its epoch and inputs, which a merge does not have)."""
    entry_dir = artifact.root.parent
    if not (entry_dir / "inputs.json").exists():
        kept = [(sbom_name(artifact.primary), "sbom"),
                (provenance_name(artifact.primary), "provenance")]
        if all((artifact.root / rel).is_file() for rel, _ in kept):
            return [Attestation(rel, role, (artifact.root / rel).read_text())
                    for rel, role in kept]
    text = sbom_text(artifact, digests, project)
    return [Attestation(sbom_name(artifact.primary), "sbom", text),
            Attestation(provenance_name(artifact.primary), "provenance",
                        statement_text(artifact, key, digests, commit))]


def statement_text(artifact: Artifact, key: str, digests: dict[str, dict[str, Any]],
                   commit: str | None) -> str:
    """The provenance of one cached entry's artifact: made once per commit and kept beside
    the entry, as its SBOM is (everything else it states is the entry's own: its files'
    digests, recorded inputs, key and base layers), so a cache hit does not wait for the
    helper to load in-toto."""
    entry_dir = artifact.root.parent
    memo = entry_dir / f"provenance-{__version__}-{commit or 'none'}.intoto.json"
    with contextlib.suppress(OSError):
        return memo.read_text()
    subjects = [(rel, digests[rel]["sha256"]) for rel, _ in artifact.files()]
    text = statement(subjects, _record(entry_dir), key, commit,
                     artifact.texts(Meta.BASE_LAYERS))
    if (entry_dir / "artifact.json").exists():  # a cache entry: kept for the next hit
        write_text_atomic(memo, text)
    return text


def _record(entry_dir: Path) -> dict[str, Any]:
    """The entry's recorded key inputs (its epoch among them); empty when there are none."""
    with contextlib.suppress(OSError, ValueError):
        found = json.loads((entry_dir / "inputs.json").read_text())
        if isinstance(found, dict):
            return found
    return {}


def sbom_text(artifact: Artifact, digests: dict[str, dict[str, Any]],
              project: dict[str, str], deferred: bool = False) -> str:
    """The SBOM of one cached entry's artifact: made once and kept beside the entry.

    The engine starts it as soon as the entry is built (`sbom_soon`), on a thread beside the
    other nodes and then beside promotion's copying (reading every member of httpie's
    tarball is ~0.3 s of CPU; the oci SBOM is ~50 ms in the helper); promotion then finds it
    made, or waits for that same making. `deferred`: its validation may still be under way,
    and it is kept beside the entry only once `settle` has seen it valid."""
    entry_dir = artifact.root.parent
    memo = entry_dir / f"sbom-{__version__}.cdx.json"
    sha = digests[artifact.primary]["sha256"]
    epoch = int(_record(entry_dir).get("epoch") or 0)
    seen = (sha, project.get("name", ""), project.get("version", ""), epoch)
    while True:
        with _making_lock:
            text = _documents.get(seen)
            if text is not None:
                return text
            busy = _making.get(seen)
            if busy is None:
                _making[seen] = threading.Event()
                break
        busy.wait()  # made on another thread; if that failed, made here after all
    try:
        try:
            text = memo.read_text()
        except OSError:
            known = {rel: str(d["sha256"]) for rel, d in digests.items() if d.get("sha256")}
            text = document(components(artifact, _memo(entry_dir), known), project,
                            Path(artifact.primary).name, sha, epoch, deferred)
            if (entry_dir / "artifact.json").exists():  # a cache entry: kept for the next hit
                if deferred:
                    with _unsettled_lock:
                        _unsettled.append((seen, memo, text))
                else:
                    write_text_atomic(memo, text)
        _documents[seen] = text
        return text
    finally:
        with _making_lock:
            _making.pop(seen).set()


_making: dict[tuple[str, str, str, int], threading.Event] = {}
"""SBOMs being made right now, each by one thread: another asking for it waits for that one."""
_making_lock = threading.Lock()
_soon: list[threading.Thread] = []


def sbom_soon(artifact: Artifact, digests: dict[str, dict[str, Any]],
              project: dict[str, str]) -> None:
    """Start the SBOM of a just-built entry on a thread of its own, so neither the graph
    nor promotion's staging waits for it; a failure here is left for promotion to meet
    again, and report."""
    def make() -> None:
        with contextlib.suppress(Exception):
            sbom_text(artifact, digests, project, deferred=True)

    thread = threading.Thread(target=make, name="sbom", daemon=True)
    with _making_lock:
        _soon.append(thread)
    thread.start()


def sbom_done() -> None:
    """Wait for every SBOM `sbom_soon` started (a build that promotes nothing, say), so none
    is left running into the interpreter's exit."""
    with _making_lock:
        threads, _soon[:] = list(_soon), []
    for thread in threads:
        thread.join()


_unsettled: list[tuple[tuple[str, str, str, int], Path, str]] = []
"""Deferred SBOMs (made by the engine's workers) not yet seen valid: not kept until then."""
_unsettled_lock = threading.Lock()


def settle() -> None:
    """Wait until every deferred SBOM is validated, then keep them beside their entries;
    BuildFailed (and none kept, none remembered) when one is invalid."""
    with _unsettled_lock:
        waiting = list(_unsettled)
        _unsettled.clear()
    try:
        sbom_settle()
    except GradientError:
        for seen, _memo_path, _text in waiting:
            _documents.pop(seen, None)
        raise
    for _seen, memo_path, text in waiting:
        with contextlib.suppress(OSError):  # the entry was pruned meanwhile: nothing to keep
            write_text_atomic(memo_path, text)


def problems(project_root: Path, manifest: dict[str, Any], artifact: Artifact) -> list[str]:
    """How the promoted SBOM and provenance of `artifact` (as `artifacts_from_manifest` gives
    it) disagree with the artifact as it is now."""
    tier = artifact.tier
    items = [a for a in manifest.get("artifacts", []) if a.get("tier") == tier]
    found: list[str] = []
    primary = (artifact.root / artifact.primary).relative_to(project_root).as_posix()
    for role in ATTESTATION_ROLES:
        doc = next((a for a in items if a["role"] == role), None)
        if doc is None:
            found.append(f"{tier} has no {role} in the manifest (built before gradient wrote "
                         "them: build it again)")
            continue
        try:
            text = (project_root / doc["path"]).read_text()
        except OSError as exc:
            found.append(f"{doc['path']}: {exc.strerror}")
            continue
        if role == "sbom":
            try:
                validate(text, doc["path"])
            except BuildFailed as exc:
                found.append(exc.message)
                continue
            found += [f"{primary}: {p}" for p in
                      differences(components(artifact), text, manifest.get("project", {}))]
            continue
        actual = {}
        for rel, _ in artifact.files():
            try:
                actual[rel] = file_digest(artifact.root / rel)
            except OSError:
                continue
        found += [f"{primary}: {p}" for p in subject_problems(text, actual)]
    return found


def fold_problems(result: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """A verification result that also fails on the attestations' problems: the first one is
    the problem when the run itself passed, else they follow the run's own output."""
    if not problems:
        return result
    result = result | {"ok": False, "verified": False, "attestations": problems}
    if result.get("problem"):
        result["output"] = "\n".join([result.get("output") or "", *problems]).strip("\n")
    else:
        result["problem"] = problems[0]
        result["output"] = "\n".join([*problems[1:], result.get("output") or ""]).strip("\n")
    return result
