"""The SBOM helper process writes the same document the build would write itself, reports an
invalid one as the build would, and a helper that is gone changes nothing but where."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradient_build import sbom
from gradient_build.errors import BuildFailed
from gradient_build.inventory import Component
from gradient_build.sbom_helper import Helper

PROJECT = {"name": "demo-app", "version": "1.2.0"}
COMPONENTS = [
    Component("python", "demo-app", "1.2.0", "pkg:pypi/demo-app@1.2.0", sha256="a" * 64,
              license="MIT", depends=("requests",)),
    Component("python", "requests", "2.32.3", "pkg:pypi/requests@2.32.3", sha256="b" * 64,
              license="Apache-2.0", depends=("urllib3",), where="x.whl!requests.dist-info"),
    Component("python", "urllib3", "2.2.2", "pkg:pypi/urllib3@2.2.2",
              license="MIT OR Apache-2.0 WITH LLVM-exception"),
    Component("deb", "libc6", "2.36-9", "pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=bookworm",
              license="a license of its own", depends=("libgcc-s1",)),
    Component("interpreter", "cpython", "3.11.7", "pkg:generic/cpython@3.11.7",
              ref="pkg:generic/cpython@3.11.7#bundled"),
]


@pytest.fixture
def helper() -> Iterator[Helper]:
    started = Helper()
    assert started.start()
    yield started
    started.close()


def test_the_helper_writes_byte_for_byte_the_document_written_here(helper: Helper) -> None:
    here = sbom.render(COMPONENTS, PROJECT, "demo.tar.gz", "c" * 64, 1700000000)
    there = helper.render(COMPONENTS, PROJECT, "demo.tar.gz", "c" * 64, 1700000000)
    assert there == here
    assert '"name": "libc6"' in here  # a document with the components in it, not an empty one
    again = helper.render(COMPONENTS[:1], PROJECT, "other.whl", "d" * 64, 0)
    assert again == sbom.render(COMPONENTS[:1], PROJECT, "other.whl", "d" * 64, 0) != here


def test_an_invalid_document_fails_in_the_helper_as_it_fails_here(helper: Helper) -> None:
    broken = [Component("python", "bad", "1", "pkg:pypi/bad@1", sha256="zz")]
    with pytest.raises(BuildFailed) as here:
        sbom.render(broken, PROJECT, "a.whl", "c" * 64, 0)
    with pytest.raises(BuildFailed) as there:
        helper.render(broken, PROJECT, "a.whl", "c" * 64, 0)
    assert there.value.message == here.value.message
    assert "does not validate against CycloneDX 1.6" in there.value.message
    # and it still answers the next request
    assert helper.render(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0) is not None


def test_a_helper_that_died_gives_none_and_the_document_is_written_here(
        helper: Helper, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = helper._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    assert helper.render(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0) is None
    assert helper.render(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0) is None  # not retried
    monkeypatch.setattr(sbom, "helper", helper)
    assert sbom.document(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0) == sbom.render(
        COMPONENTS, PROJECT, "a.whl", "c" * 64, 0)


def test_the_helper_ends_when_the_build_process_ends() -> None:
    """A build that exits (here without closing anything) leaves no helper behind."""
    code = ("import os, sys; from gradient_build.sbom_helper import helper; helper.start();"
            "print(helper._proc.pid, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    pid = int(out.stdout)
    deadline = time.monotonic() + 30
    try:
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(pid), "the helper outlived the process that started it"
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow or absent in a container)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


RECORD = {"node": "oci", "epoch": 1700000000, "gradient": "0.1.0", "python": "3.11.7",
          "sources": {"src/app.py": "e" * 64, "pyproject.toml": "f" * 64},
          "inputs": {"tarball": "1" * 64}, "tools": {"docker": None, "uv": "0.5.0"},
          "options": {"user": 10001, "ratio": 0.5}, "app": {"script": "hello"},
          "extra": {"base": {"digest": "sha256:" + "2" * 64}}, "backend": "native"}


def test_the_helper_writes_byte_for_byte_the_provenance_written_here(helper: Helper) -> None:
    from gradient_build.provenance import local_statement

    subjects = [("app.oci.tar", "3" * 64)]
    here = local_statement(subjects, RECORD, "k" * 64, "a" * 40, ["sha256:" + "4" * 64])
    there = helper.statement(subjects, RECORD, "k" * 64, "a" * 40, ["sha256:" + "4" * 64])
    assert there == here
    assert '"invocationId": "' + "k" * 64 in here and '"ratio": 0.5' in here
    assert helper.statement(subjects, RECORD, "k" * 64, None, []) == local_statement(
        subjects, RECORD, "k" * 64, None, [])


def test_a_record_that_is_not_plain_json_is_written_here(helper: Helper,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gradient_build import provenance, sbom_helper

    odd = {**RECORD, "extra": {"where": Path("/x")}}  # json.dumps(default=str) takes it here
    assert helper.statement([("a", "3" * 64)], odd, "k", None, []) is None
    monkeypatch.setattr(sbom_helper, "helper", helper)
    text = provenance.statement([("a", "3" * 64)], odd, "k", None, [])
    assert '"where": "/x"' in text


def test_a_request_sent_at_once_is_answered_while_the_helper_is_still_readying() -> None:
    """The request goes in before the libraries have loaded: the idle-time warm-ups wait."""
    fresh = Helper()
    assert fresh.start()
    try:
        subjects = [("a.whl", "3" * 64)]
        from gradient_build.provenance import local_statement

        assert fresh.statement(subjects, RECORD, "k", None, []) == local_statement(
            subjects, RECORD, "k", None, [])
        assert fresh.render(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0) == sbom.render(
            COMPONENTS, PROJECT, "a.whl", "c" * 64, 0)
    finally:
        fresh.close()


BROKEN = [Component("python", "bad", "1", "pkg:pypi/bad@1", sha256="zz")]


def test_a_deferred_document_comes_first_and_is_judged_at_settle(helper: Helper) -> None:
    good = helper.render(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0, defer=True)
    assert good == sbom.render(COMPONENTS, PROJECT, "a.whl", "c" * 64, 0)
    assert helper.settle() == []  # valid: nothing left for the caller
    bad = helper.render(BROKEN, PROJECT, "b.whl", "c" * 64, 0, defer=True)
    assert bad is not None and '"content": "zz"' in bad  # handed out before it was checked
    # the helper answers the next request while it checks (the provenance comes next)
    assert helper.statement([("a", "3" * 64)], RECORD, "k", None, []) is not None
    with pytest.raises(BuildFailed) as settled:
        helper.settle()
    assert "b.whl does not validate against CycloneDX 1.6" in settled.value.message
    assert helper.settle() == []  # judged once


def test_deferred_documents_a_dead_helper_left_unjudged_are_validated_here(
        helper: Helper, monkeypatch: pytest.MonkeyPatch) -> None:
    assert helper.render(BROKEN, PROJECT, "b.whl", "c" * 64, 0, defer=True) is not None
    proc = helper._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    left = helper.settle()
    assert [name for name, _ in left] == ["b.whl"]
    monkeypatch.setattr(sbom, "helper", helper)
    helper._unchecked = left  # as the build's settle meets them
    with pytest.raises(BuildFailed, match=r"b\.whl does not validate"):
        sbom.settle()
