"""A cache entry's provenance is made once per commit and kept beside it, as its SBOM is: a
cache hit reads it back, another commit gets its own, and a folder that is no cache entry
keeps nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradient_build import attest
from gradient_build.artifact import Artifact
from gradient_build.provenance import local_statement

RECORD = {"node": "wheel", "epoch": 1700000000, "sources": {"a.py": "1" * 64}}


def _entry(tmp_path: Path, cached: bool = True) -> tuple[Artifact, dict[str, dict[str, str]]]:
    out = tmp_path / "entry" / "out"
    out.mkdir(parents=True)
    (out / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel bytes")
    (tmp_path / "entry" / "inputs.json").write_text(json.dumps(RECORD))
    if cached:
        (tmp_path / "entry" / "artifact.json").write_text("{}")
    artifact = Artifact("wheel", out, "demo-1.0-py3-none-any.whl")
    return artifact, {"demo-1.0-py3-none-any.whl": {"sha256": "2" * 64}}


def test_a_cache_hit_reads_the_statement_its_entry_keeps(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    artifact, digests = _entry(tmp_path)
    commit = "c" * 40
    first = attest.statement_text(artifact, "k" * 64, digests, commit)
    assert first == local_statement([("demo-1.0-py3-none-any.whl", "2" * 64)], RECORD,
                                    "k" * 64, commit)
    made: list[str | None] = []

    def counted(*args: object) -> str:
        made.append(args[3])  # type: ignore[arg-type]
        return "made again\n"

    monkeypatch.setattr(attest, "statement", counted)
    assert attest.statement_text(artifact, "k" * 64, digests, commit) == first
    assert made == []  # read back, not made
    assert attest.statement_text(artifact, "k" * 64, digests, "d" * 40) == "made again\n"
    assert attest.statement_text(artifact, "k" * 64, digests, None) == "made again\n"
    assert made == ["d" * 40, None]  # each commit its own


def test_a_folder_that_is_no_cache_entry_keeps_nothing(tmp_path: Path) -> None:
    artifact, digests = _entry(tmp_path, cached=False)
    attest.statement_text(artifact, "k" * 64, digests, None)
    assert sorted(p.name for p in (tmp_path / "entry").iterdir()) == ["inputs.json", "out"]


def test_a_deferred_sbom_is_kept_beside_its_entry_only_once_settled_valid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradient_build.errors import BuildFailed

    artifact, digests = _entry(tmp_path)
    project = {"name": "demo", "version": "1.0"}
    kept = tmp_path / "entry" / f"sbom-{attest.__version__}.cdx.json"
    text = attest.sbom_text(artifact, digests, project, deferred=True)
    assert '"name": "demo"' in text and not kept.exists()
    attest.settle()
    assert kept.read_text() == text

    other, other_digests = _entry(tmp_path / "two")
    other_digests[other.primary]["sha256"] = "3" * 64
    attest.sbom_text(other, other_digests, project, deferred=True)

    def invalid() -> None:
        raise BuildFailed("the SBOM of x does not validate")

    monkeypatch.setattr(attest, "sbom_settle", invalid)
    with pytest.raises(BuildFailed):
        attest.settle()
    assert not (tmp_path / "two" / "entry" / kept.name).exists()
    assert ("3" * 64, "demo", "1.0", 1700000000) not in attest._documents  # made again
