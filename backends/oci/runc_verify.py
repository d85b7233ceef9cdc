"""The daemonless proof: run the image with runc, offline and as its non-root user.

The verified tar is also an OCI layout: its `oci-layout`, `index.json` and blobs are
extracted to a fresh directory, `umoci unpack` turns the tagged manifest into a runtime
bundle (a rootfs owned by the image's uids, and a `config.json` with the image's user
resolved from its /etc/passwd, its environment and working directory), and the bundle's
process becomes what `docker run` would start: the entrypoint and command (or the smoke's
override), the image's environment plus the smoke's, no terminal. The container gets a
network namespace of its own with no interface but `lo`, so it is offline, and a uid of 0 is
refused. `runc run` has the smoke's timeout; the container is always deleted and the bundle
removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradient_build.backend import Artifact, Result, Verdict, VerifyContext
from gradient_build.helpers import minimal_env

from .fsindex import norm
from .runtimes import GET_RUNC, RUNC, UMOCI, smoke_command

if TYPE_CHECKING:
    from . import OciOptions

LAYOUT_FILES = ("oci-layout", "index.json")
REF_NAME = "org.opencontainers.image.ref.name"


def extract_layout(image: Path, dest: Path) -> str:
    """Extract the OCI layout part of `image` to `dest`; the ref name its index tags."""
    with tarfile.open(image, "r:") as tar:
        members = [m for m in tar.getmembers()
                   if norm(m.name) in LAYOUT_FILES or norm(m.name).startswith("blobs/")]
        tar.extractall(dest, members=members, filter="data")
    index = json.loads((dest / "index.json").read_text())
    annotations = ((index.get("manifests") or [{}])[0].get("annotations") or {})
    return str(annotations.get(REF_NAME) or "")


def process_for(config: dict[str, Any], image: dict[str, Any], entrypoint: list[str] | None,
                args: list[str], env: dict[str, str]) -> list[str]:
    """Make the bundle's process the one `docker run` would start; returns its argv."""
    process = config.setdefault("process", {})
    if entrypoint is not None:
        argv = [*entrypoint, *args]
    else:
        argv = [*(image.get("Entrypoint") or []), *(args or image.get("Cmd") or [])]
    process["args"] = argv
    process["terminal"] = False
    image_env = {item.split("=", 1)[0] for item in image.get("Env") or []}
    merged = dict(item.split("=", 1) for item in process.get("env") or [] if "=" in item)
    if "TERM" not in image_env:  # umoci adds TERM=xterm; docker run without -t does not
        merged.pop("TERM", None)
    merged.update(env)
    process["env"] = [f"{k}={v}" for k, v in merged.items()]
    process["cwd"] = image.get("WorkingDir") or process.get("cwd") or "/"
    linux = config.setdefault("linux", {})
    spaces = linux.setdefault("namespaces", [])
    if not any(ns.get("type") == "network" for ns in spaces):
        spaces.append({"type": "network"})  # a namespace of its own with only lo: offline
    for ns in spaces:
        ns.pop("path", None)  # never join a namespace of the host's
    return argv


def run_with_runc(ctx: VerifyContext[OciOptions], artifact: Artifact, image: dict[str, Any],
                  summary: dict[str, Any]) -> Verdict:
    """Unpack the image into a bundle and run the smoke in it with runc (see the docstring)."""

    started = time.monotonic()
    smoke, entrypoint, args, env, notes = smoke_command(ctx, artifact.meta)
    umoci, runc = UMOCI.path(), RUNC.path()
    extra = {**summary, **notes, "runtime": "runc"}
    if umoci is None or runc is None:
        why = f"runc or umoci is not installed: {GET_RUNC}"
        return Verdict(False, ["runc", "run"], None, 0.0, why, extra, problem=why)
    box = ctx.sandbox.fresh_dir("gradient-verify-oci-")
    layout, bundle = box / "layout", box / "bundle"
    tools_env = minimal_env(HOME=str(box))
    try:
        ref = extract_layout(artifact.path, layout) or str(artifact.text("tag") or ""
                                                            ).rpartition(":")[2]
        unpack = [str(umoci), "unpack", "--image", f"{layout}:{ref}", str(bundle)]
        unpacked = ctx.sandbox.run(unpack, cwd=box, env=tools_env, timeout=600, offline=False)
        if unpacked.exit_code != 0:
            verdict = smoke.judge(unpacked, extra=extra)
            verdict.problem = "umoci could not unpack the image into a runc bundle"
            return verdict
        shutil.rmtree(layout, ignore_errors=True)
        config_path = bundle / "config.json"
        config = json.loads(config_path.read_text())
        argv = process_for(config, image, entrypoint, args, env)
        user = config["process"].get("user") or {}
        ran_as = f"{user.get('uid')}:{user.get('gid')}"
        if not user.get("uid"):
            why = f"the image's user {artifact.text('user')!r} resolves to {ran_as}: root"
            return Verdict(False, unpack, None, round(time.monotonic() - started, 3), why,
                           {**extra, "user": ran_as}, problem=why)
        config_path.write_text(json.dumps(config, indent=1))
        result = _run(ctx, runc, bundle, box, tools_env, smoke.timeout)
        result.seconds = time.monotonic() - started
        verdict = smoke.judge(result, extra={**extra, "user": ran_as, "process": argv,
                                             "network": "own namespace, only lo"})
        return verdict
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.rmtree(layout, ignore_errors=True)


def _run(ctx: VerifyContext[OciOptions], runc: Path, bundle: Path, box: Path, env: dict[str, str],
         timeout: float) -> Result:
    """`runc run` in the foreground, output captured; the container is always deleted."""
    cid = f"gradient-oci-{uuid.uuid4().hex[:12]}"
    command = [str(runc), "run", "--bundle", str(bundle), cid]
    try:
        return ctx.sandbox.run(command, cwd=box, env=env, timeout=timeout, offline=True)
    finally:
        ctx.sandbox.run([str(runc), "delete", "--force", cid], cwd=box, env=env, timeout=60,
                        offline=False)
