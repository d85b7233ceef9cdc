"""Which container runtime proves an image here: the Docker daemon, runc, or none.

`[tiers.oci] runtime = "auto"` takes the Docker daemon when one answers, else runc (with
umoci to unpack the image into a bundle) when both are installed and gradient runs as root,
else nothing: the image is then only `checked`. An explicit "docker" or "runc" that is not
available here is a failed verification that names how to get it. The answers are probed
once per process (a ping of the daemon, a PATH lookup) because they are part of the
verification's cache key: a result proven with one runtime is not replayed with another.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Any

from gradient_build.backend import Smoke, Tool, VerifyContext

if TYPE_CHECKING:
    from . import OciOptions

GET_RUNC = "apt-get install runc umoci"
UMOCI = Tool("umoci", f"{GET_RUNC} (unpacks an image for runc when no Docker daemon answers)",
             command="umoci", version_args=("--version",), required=False)
RUNC = Tool("runc", f"{GET_RUNC} (runs an image when no Docker daemon answers)",
            command="runc", version_args=("--version",), required=False)
GET_DOCKER = "start a Docker daemon (apt-get install docker.io)"


@functools.cache
def _docker_probe(host: str | None) -> str:
    from .bases import docker_client

    client, why = docker_client()
    if client is not None:
        client.close()
    return why


def docker_missing() -> str:
    """"" when a Docker daemon answers (and the SDK to talk to it is installed), else why not."""
    return _docker_probe(os.environ.get("DOCKER_HOST"))


def runc_missing() -> str:
    """"" when runc and umoci can run an image here, else why not."""
    absent = [tool.name for tool in (RUNC, UMOCI) if not tool.present()]
    if absent:
        return f"{' and '.join(absent)} {'is' if len(absent) == 1 else 'are'} not installed"
    if os.geteuid() != 0:
        return "runc runs images here only as root (gradient is not running as root)"
    return ""


def choose(wanted: str) -> tuple[str | None, str]:
    """(the runtime to verify with, "") or (None, why none is available)."""
    if wanted == "docker":
        why = docker_missing()
        return ("docker", "") if not why else (None, f"{why}; {GET_DOCKER}")
    if wanted == "runc":
        why = runc_missing()
        return ("runc", "") if not why else (None, f"{why}: {GET_RUNC}")
    docker_why = docker_missing()
    if not docker_why:
        return "docker", ""
    runc_why = runc_missing()
    if not runc_why:
        return "runc", ""
    return None, f"{docker_why}; {runc_why} ({GET_RUNC})"


def environment(wanted: str) -> dict[str, str | None]:
    """What a verification with this `runtime` option would run on here (its cache key)."""
    return {"runtime": choose(wanted)[0]}


def smoke_command(ctx: VerifyContext[OciOptions], meta: dict[str, Any]
                  ) -> tuple[Smoke, list[str] | None, list[str], dict[str, str], dict[str, Any]]:
    """How any runtime runs the smoke in the image: (the smoke judged, an entrypoint override
    or None, arguments, environment, notes)."""
    smoke = ctx.smoke
    if smoke.runs_app:
        return smoke, None, list(smoke.args), {}, {}
    if meta.get("payload") == "exe":
        return (dataclasses.replace(smoke, code=None, args=["--help"], expect=None), None,
                ["--help"], {}, {"note": "a Python-code smoke cannot run in a frozen "
                                         "executable: ran --help"})
    code = smoke.python_code(ctx.project.top_level or [ctx.project.import_name])
    return smoke, ["python3", "-c", code], [], {"PYTHONPATH": str(meta.get("pythonpath"))}, {}
