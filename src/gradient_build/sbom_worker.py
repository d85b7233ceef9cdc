"""`python -m gradient_build.sbom_worker`: the SBOM helper process (see sbom_helper).

It loads the CycloneDX libraries and the validator at once, then answers one JSON line per
request on stdout: {"text": ...}, {"invalid": why} when the document fails validation, or
{"error": ...} for anything else (the build then writes the document itself, and meets the
error there with its traceback). It ends when its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any


def main() -> None:
    with contextlib.suppress(OSError, AttributeError):  # behind the build's tools for the CPU
        os.setpriority(os.PRIO_PROCESS, 0, 10)
    from .errors import BuildFailed
    from .inventory import Component
    from .sbom import load_libraries, render

    load_libraries()
    for line in sys.stdin.buffer:
        reply: dict[str, Any]
        try:
            request = json.loads(line)
            components = [Component(**{**c, "depends": tuple(c["depends"])})
                          for c in request["components"]]
            reply = {"text": render(components, request["project"], request["name"],
                                    request["sha256"], int(request["epoch"]))}
        except BuildFailed as exc:
            reply = {"invalid": exc.message}
        except Exception as exc:  # reported to the build, which then tries itself
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
