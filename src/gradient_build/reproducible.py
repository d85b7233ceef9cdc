"""`gradient build --check-reproducible`: build twice without the node cache and compare bytes."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import Cache
from .errors import GradientError
from .events import Emit, Event
from .sources import file_digest

if TYPE_CHECKING:
    from .api import Session


def check(session: Session, tiers: list[str], emit: Emit, *, jobs: int | None = None
          ) -> dict[str, dict[str, Any]]:
    """Per node: identical, or the first file (and archive member) that differs."""
    with tempfile.TemporaryDirectory(prefix="gradient-repro-") as tmp:
        outs = []
        for run in ("a", "b"):
            emit(Event("step", None, f"reproducibility build {run}"))
            cache_root = Path(tmp) / f"cache-{run}"
            cache_root.mkdir()
            shared_tools = session.cache.root / "tools"
            shared_tools.mkdir(parents=True, exist_ok=True)
            (cache_root / "tools").symlink_to(shared_tools)
            out = Path(tmp) / f"out-{run}"
            engine = type(session)(session.config, session.project, session.backends,
                                   Cache(cache_root), out).engine(emit, jobs=jobs, verify=False)
            report = engine.build(tiers)
            if report.failures:
                first = next(iter(report.failures.values()))
                raise GradientError(f"build {run} failed: {first.message}", detail=first.detail)
            outs.append(out)
        return {tier: compare_dirs(outs[0] / tier, outs[1] / tier)
                for tier in sorted(p.name for p in outs[0].iterdir() if p.is_dir())}


def compare_dirs(a: Path, b: Path) -> dict[str, Any]:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    if files_a != files_b:
        only = sorted(set(files_a) ^ set(files_b))
        return {"identical": False, "difference": f"different files: {', '.join(only[:5])}"}
    for rel in files_a:
        if file_digest(a / rel) != file_digest(b / rel):
            return {"identical": False, "file": rel,
                    "difference": f"{rel} differs" + _inner(a / rel, b / rel),
                    "diffoscope": _diffoscope(a / rel, b / rel)}
    primary = files_a[0] if files_a else ""
    return {"identical": True, "files": len(files_a),
            "sha256": file_digest(a / primary) if primary else ""}


def _inner(a: Path, b: Path) -> str:
    """The first archive member whose content differs, when both files are archives."""
    members_a, members_b = _members(a), _members(b)
    if members_a is None or members_b is None:
        return ""
    differing = [n for n in sorted(set(members_a) | set(members_b))
                 if members_a.get(n) != members_b.get(n)]
    listed = [n for n in differing if not n.endswith("/RECORD")] or differing
    if listed:
        return f" (differing members: {', '.join(listed[:3])})"
    return " (same members, different packing: timestamps, order or compression)"


def _members(path: Path) -> dict[str, bytes] | None:
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return {i.filename: zf.read(i) for i in zf.infolist()}
        with tarfile.open(path, "r:*") as tar:
            found = {}
            for m in tar.getmembers():
                f = tar.extractfile(m) if m.isreg() else None
                found[m.name] = f.read() if f else repr((m.type, m.linkname)).encode()
            return found
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        return None


def _diffoscope(a: Path, b: Path) -> str | None:
    exe = shutil.which("diffoscope")
    if not exe:
        return None
    proc = subprocess.run([exe, "--text", "-", str(a), str(b)], capture_output=True, text=True,
                          timeout=300)
    return "\n".join(io.StringIO(proc.stdout).read().splitlines()[:80])
