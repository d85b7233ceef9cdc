"""The SBOM and provenance libraries in a helper process instead of a thread of the build.

cyclonedx-python-lib, jsonschema and the CycloneDX schema are ~0.2 s of pure-Python imports,
in-toto's models and protobuf ~0.05 s more. Loaded in a thread of the build they hold the GIL
the build's own Python needs: the native oci writer ran 0.25 s instead of 0.10 s beside them.
A process loads them on the other core, and writes (and validates) each document there too
(`sbom_worker`); the build waits only for the text. Anything wrong with the helper (it cannot
start, dies, answers nonsense) makes `render` or `statement` return None, and the caller
writes the document itself: the helper changes where, never what.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # light to import: cli.py starts the helper before the build's modules load
    from .inventory import Component

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
"""The helper runs from here, so `-m gradient_build.sbom_worker` is this very code, never a
module of the project being built (the build's cwd)."""


class Helper:
    """One helper process, started at most once, used by one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._tried = False
        self._unchecked: list[tuple[str, str]] = []

    def start(self) -> bool:
        """Start the process (once); False when it cannot run here."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._proc = _spawn()
                if self._proc is not None:
                    atexit.register(self.close)
            return self._proc is not None

    def render(self, components: Sequence[Component], project: dict[str, str], name: str,
               sha256: str, epoch: int, defer: bool = False) -> str | None:
        """The SBOM's text from the helper; None when it could not give one. With `defer`
        the text comes before its validation, which `settle` then waits for."""
        text = self._ask({"kind": "sbom",
                          "components": [dataclasses.asdict(c) for c in components],
                          "project": project, "name": name, "sha256": sha256, "epoch": epoch,
                          "defer": defer})
        if text is not None and defer:
            with self._lock:
                self._unchecked.append((name, text))
        return text

    def settle(self) -> list[tuple[str, str]]:
        """Wait for the validation of every deferred document: raises BuildFailed for an
        invalid one; returns the (name, text) of those the helper could not vouch for (it
        died meanwhile), for the caller to validate itself."""
        with self._lock:
            unchecked, self._unchecked = self._unchecked, []
        if not unchecked:
            return []
        return [] if self._ask({"kind": "settle"}) is not None else unchecked

    def statement(self, subjects: Sequence[tuple[str, str]], record: Mapping[str, Any],
                  key: str, commit: str | None, base_layers: Sequence[str]) -> str | None:
        """The provenance statement's text from the helper; None when it could not give one
        (a record that is not plain JSON among the reasons: the build's own copy decides)."""
        return self._ask({"kind": "provenance", "subjects": [list(s) for s in subjects],
                          "record": record, "key": key, "commit": commit,
                          "base_layers": list(base_layers)})

    def _ask(self, fields: dict[str, Any]) -> str | None:
        try:
            request = json.dumps(fields, allow_nan=False).encode() + b"\n"
        except (TypeError, ValueError):  # not plain JSON: written in the build instead
            return None
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            reply = _exchange(proc, request)
            if reply is None:
                self._stop()
                return None
        if "invalid" in reply:  # the document itself failed validation: so would ours
            from .errors import BuildFailed

            raise BuildFailed(str(reply["invalid"]))
        text = reply.get("text")
        return text if isinstance(text, str) else None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _spawn() -> subprocess.Popen[bytes] | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "gradient_build.sbom_worker"], cwd=PACKAGE_PARENT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True)
    except (OSError, ValueError):
        return None


def _exchange(proc: subprocess.Popen[bytes], request: bytes) -> dict[str, Any] | None:
    """Send one request line, read one reply line; None when the helper is gone."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(request)
        proc.stdin.flush()
    except OSError:
        return None
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                return None
            continue  # a large document takes a while: waited for as long as it lives
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


helper = Helper()
