"""`python -m gradient_build.sbom_worker`: the attestation helper process (see sbom_helper).

It loads the CycloneDX libraries and the validator at once, then answers one JSON line per
request on stdout: {"text": ...}, {"invalid": why} when the document fails validation, or
{"error": ...} for anything else (the build then writes the document itself, and meets the
error there with its traceback). A request is an SBOM or a provenance statement ("kind").
An SBOM asked for with "defer" is answered before it is validated (validation is ~45 % of a
document's cost, and the build has other work until it promotes); the helper validates it
in a thread while it answers what comes next (the provenance), and a "settle" request,
which the build sends before it promotes, is answered once all are checked.
While no request waits it loads the rest (in-toto's models). No warm-up document: the
build's first request arrives about when the libraries are loaded, and a warm-up then only
delays it. It ends when its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any


class Lines:
    """Request lines from a file descriptor, with a look to see whether one is waiting."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def waiting(self) -> bool:
        if b"\n" in self._buffer:
            return True
        ready, _, _ = select.select([self._fd], [], [], 0)
        return bool(ready)

    def next(self) -> bytes | None:
        """The next line (blocking); None once the other end has closed."""
        while b"\n" not in self._buffer:
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


class Checks:
    """Documents handed out before their validation ("defer"): each validated in a thread
    (one at a time) while the loop goes on answering, and all of them before a "settle"
    request is answered."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._one_at_a_time = threading.Lock()
        self._invalid: list[str] = []

    def add(self, name: str, text: str) -> None:
        thread = threading.Thread(target=self._check, args=(name, text), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _check(self, name: str, text: str) -> None:
        from .errors import BuildFailed
        from .sbom import validate

        with self._one_at_a_time:
            try:
                validate(text, name)
            except BuildFailed as exc:
                self._invalid.append(exc.message)
            except Exception as exc:  # the validator itself failing: no verdict is no pass
                self._invalid.append(f"the SBOM of {name} could not be validated: "
                                     f"{type(exc).__name__}: {exc}")

    def settle(self) -> str:
        """"" when every document so far was valid; else raises for the first one that was
        not (and forgets them all: the build fails on it)."""
        from .errors import BuildFailed

        for thread in self._threads:
            thread.join()
        self._threads.clear()
        invalid, self._invalid = self._invalid, []
        if invalid:
            raise BuildFailed(invalid[0])
        return ""


def answer(request: dict[str, Any], checks: Checks) -> str:
    """One request's document text."""
    kind = request.get("kind", "sbom")
    if kind == "settle":
        return checks.settle()
    if kind == "provenance":
        from .provenance import local_statement

        return local_statement([(str(n), str(s)) for n, s in request["subjects"]],
                               request["record"], str(request["key"]), request["commit"],
                               [str(layer) for layer in request["base_layers"]])
    from .inventory import Component
    from .sbom import render, unchecked

    components = [Component(**{**c, "depends": tuple(c["depends"])})
                  for c in request["components"]]
    args = (components, request["project"], request["name"], request["sha256"],
            int(request["epoch"]))
    if not request.get("defer"):
        return render(*args)
    text = unchecked(*args)
    checks.add(str(request["name"]), text)
    return text


def main() -> None:
    with contextlib.suppress(OSError, AttributeError):  # behind the build's tools for the CPU
        os.setpriority(os.PRIO_PROCESS, 0, 10)
    from .errors import BuildFailed
    from .provenance import load_libraries as load_provenance
    from .sbom import load_libraries

    load_libraries()
    readying: list[Callable[[], None]] = [load_provenance]
    checks = Checks()
    lines = Lines(sys.stdin.fileno())
    while True:
        if readying and not lines.waiting():
            with contextlib.suppress(Exception):  # met again, and reported, by a request
                readying.pop(0)()
            continue
        line = lines.next()
        if line is None:
            return
        reply: dict[str, Any]
        try:
            reply = {"text": answer(json.loads(line), checks)}
        except BuildFailed as exc:
            reply = {"invalid": exc.message}
        except Exception as exc:  # reported to the build, which then tries itself
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
