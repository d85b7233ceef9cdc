"""An entry's SBOM starts on a thread of its own as soon as the entry is built
(`attest.sbom_soon`), so promotion's copying overlaps it: promotion then waits for that same
making instead of making the document twice, and a making that failed is done again by
promotion, which reports its error."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from gradient_build import attest
from gradient_build.artifact import Artifact
from gradient_build.errors import BuildFailed

PROJECT = {"name": "demo", "version": "1.0"}


def _entry(tmp_path: Path, sha: str) -> tuple[Artifact, dict[str, dict[str, str]]]:
    out = tmp_path / "entry" / "out"
    out.mkdir(parents=True)
    (out / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel bytes")
    (tmp_path / "entry" / "inputs.json").write_text(json.dumps({"epoch": 1700000000}))
    (tmp_path / "entry" / "artifact.json").write_text("{}")
    return (Artifact("wheel", out, "demo-1.0-py3-none-any.whl"),
            {"demo-1.0-py3-none-any.whl": {"sha256": sha}})


def test_promotion_waits_for_the_making_under_way_instead_of_a_second(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact, digests = _entry(tmp_path, "4" * 64)
    started, release = threading.Event(), threading.Event()
    calls: list[bool] = []

    def slow_document(*args: object) -> str:
        calls.append(bool(args[-1]))
        started.set()
        assert release.wait(30)
        return "the document\n"

    monkeypatch.setattr(attest, "document", slow_document)
    attest.sbom_soon(artifact, digests, PROJECT)
    assert started.wait(30)
    answer: list[str] = []
    promotion = threading.Thread(
        target=lambda: answer.append(attest.sbom_text(artifact, digests, PROJECT)))
    promotion.start()
    promotion.join(0.3)
    assert promotion.is_alive() and answer == []  # waiting for the thread's making
    release.set()
    promotion.join(30)
    attest.sbom_done()
    assert answer == ["the document\n"]
    assert calls == [True]  # made once, deferred, by the thread that started first
    attest.settle()


def test_a_failed_making_is_done_again_by_promotion_which_reports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    artifact, digests = _entry(tmp_path, "5" * 64)
    calls: list[bool] = []

    def failing(*args: object) -> str:
        calls.append(bool(args[-1]))
        raise BuildFailed("the SBOM of demo does not validate")

    monkeypatch.setattr(attest, "document", failing)
    attest.sbom_soon(artifact, digests, PROJECT)
    attest.sbom_done()
    with pytest.raises(BuildFailed, match="does not validate"):
        attest.sbom_text(artifact, digests, PROJECT)
    assert calls == [True, False]  # the thread's deferred try, then promotion's own
    assert not attest._making  # nothing left marked as under way
