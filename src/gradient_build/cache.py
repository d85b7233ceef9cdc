"""A content-addressed store of built nodes, safe for several gradient processes at once.

An entry is written completely in a private temp directory and renamed into place; the
first process to rename wins and the others discard their copy, so readers never see a
half entry and no lock is needed. Eviction is the same in reverse: an entry is renamed
into trash/ (atomic) before it is deleted, a lookup that finds it gone is a miss, and
entries used in the last few minutes are not evicted (another build may be promoting them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .artifact import Artifact, Verdict
from .atomic import write_text_atomic
from .sources import file_digest


def default_dir() -> Path:
    if os.environ.get("GRADIENT_CACHE_DIR"):
        return Path(os.environ["GRADIENT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradient-build"


DEFAULT_MAX_SIZE = "10G"


def parse_size(text: str) -> int:
    """Bytes in a size like 500M, 5G or 1234 (ValueError when it is not one)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:].isalpha() else (cleaned, "")
    if unit not in units:
        raise ValueError(text)
    return int(float(number) * units[unit])


def max_size() -> int:
    """The cache's bound on built nodes: GRADIENT_CACHE_MAX_SIZE, else 10G."""
    try:
        return parse_size(os.environ.get("GRADIENT_CACHE_MAX_SIZE") or DEFAULT_MAX_SIZE)
    except ValueError:
        return parse_size(DEFAULT_MAX_SIZE)


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def digest_of(data: Any) -> str:
    return hashlib.sha256(canonical(data).encode()).hexdigest()


def project_id(root: Path) -> str:
    """A project's name in the cache's records: its folder's path, hashed."""
    return digest_of(str(root.resolve()))[:16]


@dataclass
class Entry:
    key: str
    artifact: Artifact
    digests: dict[str, dict[str, Any]]
    remote: bool = False
    """Downloaded from the remote cache by this lookup (`gradient plan` says "remote hit")."""

    @property
    def digest(self) -> str:
        """One digest for everything the node produced: what consumers key on."""
        return digest_of({p: d["sha256"] for p, d in sorted(self.digests.items())})


def _unchanged(path: Path, recorded: dict[str, Any]) -> bool:
    """A stat check that the entry's file is as stored (a cheap guard against edits)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size == recorded["size"] and stat.st_mtime_ns == recorded.get("mtime_ns")


class Remote(Protocol):
    """A second store behind the local one (remote_cache.RemoteStore: an OCI registry)."""

    def fetch(self, key: str, dest: Path) -> bool: ...

    def push(self, key: str, entry: Path) -> None: ...

    def peek(self, key: str) -> dict[str, Any] | None: ...


class Cache:
    def __init__(self, root: Path, remote: Remote | None = None) -> None:
        self.root = root
        self.remote = remote
        self.remote_download = True
        """False for `gradient plan`: a remote hit is read from its record, files left there."""
        self._timing_lock = threading.Lock()

    def _entry_dir(self, key: str) -> Path:
        return self.root / "objects" / key[:2] / key

    def work_dir(self, label: str) -> Path:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.root / "tmp"))

    def lookup(self, key: str) -> Entry | None:
        """The entry under `key`: the local store first, then the remote one (if any)."""
        found = self._local(key)
        if found is None and self.remote is not None:
            found = self._from_remote(key)
        return found

    def _from_remote(self, key: str) -> Entry | None:
        """Download `key`'s entry into the local store (renamed into place like a store)."""
        assert self.remote is not None
        if not self.remote_download:
            record = self.remote.peek(key)
            if record is None:
                return None
            where = self.root / "remote" / key  # never created: the files stay in the registry
            return Entry(key, Artifact.from_json(where, record["artifact"]), record["digests"],
                         remote=True)
        staging = self.work_dir("remote")
        if not self.remote.fetch(key, staging):
            shutil.rmtree(staging, ignore_errors=True)
            return None
        final = self._entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, final)
        except OSError:  # another process stored it meanwhile: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)
        found = self._local(key)
        if found is not None:
            found.remote = True
        return found

    def _local(self, key: str) -> Entry | None:
        """The local entry under `key`, or None: also when another process is evicting it."""
        entry = self._entry_dir(key)
        try:
            data = json.loads((entry / "artifact.json").read_text())
            if not all(_unchanged(entry / "out" / rel, d) for rel, d in data["digests"].items()):
                self._discard(entry)  # edited in place: never hand it out again
                return None
            os.utime(entry)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        return Entry(key, Artifact.from_json(entry / "out", data["artifact"]), data["digests"])

    def _discard(self, entry: Path) -> bool:
        """Rename `entry` into trash/ and delete it there; False if someone else got it first."""
        trash = self.root / "trash"
        trash.mkdir(parents=True, exist_ok=True)
        doomed = trash / f"{entry.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(entry, doomed)
        except FileNotFoundError:
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def store(self, key: str, artifact: Artifact, inputs: dict[str, Any],
              known: dict[str, str] | None = None) -> Entry:
        """Move `artifact.root` into the store under `key` and return the stored entry;
        `known` holds sha256s already computed over these very files (by the secret scan)."""
        staging = self.work_dir("store")
        out = staging / "out"
        shutil.move(str(artifact.root), out)
        known = known or {}
        digests = {rel: {"sha256": known.get(rel) or file_digest(out / rel),
                         "size": (out / rel).stat().st_size,
                         "mtime_ns": (out / rel).stat().st_mtime_ns}
                   for rel, _ in artifact.files()}
        stored = Artifact(artifact.tier, out, artifact.primary, artifact.roles, artifact.meta)
        (staging / "inputs.json").write_text(canonical(inputs))
        (staging / "artifact.json").write_text(json.dumps(
            {"artifact": stored.to_json(), "digests": digests}, indent=1))
        final = self._entry_dir(key)
        for _attempt in range(5):
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError:  # another process stored it first: use theirs, if still there
                found = self._local(key)
                if found is not None:
                    shutil.rmtree(staging, ignore_errors=True)
                    return found
                continue  # evicted between their rename and our lookup: try ours again
            if self.remote is not None:
                self.remote.push(key, final)
            return Entry(key, Artifact.from_json(final / "out", stored.to_json()), digests)
        raise OSError(f"cache entry {final} kept vanishing while it was being written")

    def verdict(self, key: str, verify_key: str) -> Verdict | None:
        path = self._entry_dir(key) / f"verify-{verify_key}.json"
        return Verdict.from_json(json.loads(path.read_text())) if path.exists() else None

    def store_verdict(self, key: str, verify_key: str, verdict: Verdict) -> None:
        self._write(self._entry_dir(key) / f"verify-{verify_key}.json", verdict.to_json())
        if self.remote is not None:  # again, now with the proof: a remote hit replays it
            self.remote.push(key, self._entry_dir(key))

    def last_inputs(self, project_id: str, node: str) -> dict[str, Any] | None:
        path = self.root / "records" / project_id / f"{node}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def record_inputs(self, project_id: str, node: str, inputs: dict[str, Any]) -> None:
        """Remember what `node` was keyed on, and that its entry (key: their digest) is
        this project's, so `gradient clean` can remove exactly the project's own entries."""
        self._write(self.root / "records" / project_id / f"{node}.json", inputs)
        with self._timing_lock:
            keys = self.project_keys(project_id)
            keys[node] = sorted({*keys.get(node, []), digest_of(inputs)})
            self._write(self.root / "records" / project_id / "keys.json", keys)

    def delivered(self, project_id: str) -> list[str]:
        """Files gradient delivered into the project (a vendored copy): outputs, not sources."""
        try:
            data: list[str] = json.loads(
                (self.root / "records" / project_id / "delivered.json").read_text())
            return data
        except (OSError, ValueError):
            return []

    def record_delivered(self, project_id: str, paths: list[str]) -> None:
        self._write(self.root / "records" / project_id / "delivered.json",
                    sorted({*self.delivered(project_id), *paths}))

    def project_keys(self, project_id: str) -> dict[str, list[str]]:
        """By node: the cache keys this project has stored or used."""
        try:
            data: dict[str, list[str]] = json.loads(
                (self.root / "records" / project_id / "keys.json").read_text())
            return data
        except (OSError, ValueError):
            return {}

    def forget_project(self, project_id: str) -> tuple[int, int]:
        """Remove the project's own entries and records; (entries removed, bytes freed)."""
        removed = freed = 0
        for key in {k for keys in self.project_keys(project_id).values() for k in keys}:
            entry = self._entry_dir(key)
            size = _tree_size(entry)
            if self._discard(entry):
                removed, freed = removed + 1, freed + size
        records = self.root / "records" / project_id
        freed += _tree_size(records)
        shutil.rmtree(records, ignore_errors=True)
        return removed, freed

    def timings(self, project_id: str) -> dict[str, float]:
        """Seconds each node's last build took: the scheduler starts the longest first."""
        path = self.root / "records" / project_id / "timings.json"
        try:
            data: dict[str, float] = json.loads(path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def record_timing(self, project_id: str, node: str, seconds: float) -> None:
        with self._timing_lock:
            self._write(self.root / "records" / project_id / "timings.json",
                        {**self.timings(project_id), node: round(seconds, 3)})

    def clean_archives(self) -> set[str]:
        """Digests of large archives the secret scan has found clean (base image layers)."""
        try:
            return set(json.loads((self.root / "tools" / "scan-clean.json").read_text()))
        except (OSError, ValueError):
            return set()

    def remember_clean_archives(self, digests: set[str]) -> None:
        self._write(self.root / "tools" / "scan-clean.json", sorted(digests))

    def _write(self, path: Path, data: Any) -> None:
        write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))

    def prune(self, max_bytes: int, *, grace: float = 900) -> int:
        """Drop the least recently used entries until the objects fit in `max_bytes`.

        Entries used in the last `grace` seconds stay: another build may be about to
        promote them. Anything may vanish under a concurrent prune: that is not an error.
        """
        objects = self.root / "objects"
        stamps = {e: _mtime(e) for e in (objects.glob("*/*") if objects.exists() else [])}
        entries = sorted((e for e, t in stamps.items() if t is not None),
                         key=lambda e: stamps[e] or 0.0)
        sizes = {e: _tree_size(e) for e in entries}
        total, removed = sum(sizes.values()), 0
        recent = time.time() - grace
        for entry in entries:
            if total <= max_bytes:
                break
            if (stamps[entry] or 0.0) > recent:
                continue
            if self._discard(entry):
                removed += 1
            total -= sizes[entry]
        stale = time.time() - 24 * 3600
        for scratch in ("tmp", "trash"):
            for tmp in (self.root / scratch).glob("*") if (self.root / scratch).exists() else []:
                stamp = _mtime(tmp)
                if stamp is not None and (scratch == "trash" or stamp < stale):
                    shutil.rmtree(tmp, ignore_errors=True)
        return removed

    def clear(self) -> int:
        """Remove the whole cache (every project's entries, tools, bases); bytes freed."""
        freed = _tree_size(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        return freed


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _tree_size(path: Path) -> int:
    """Bytes in the files under `path`, counting none that vanish while it is walked."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total
