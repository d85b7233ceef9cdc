"""`engine = "docker"`: the same layers, built by the Docker daemon from a generated Dockerfile.

For users who want their daemon's build cache (and the image left tagged in it). The
payload layers are still packed natively and `ADD`ed (the daemon unpacks a local tar with
its owners and modes), then the built image is exported and written out as the same
combined OCI + docker-archive tar, config bytes untouched, so its digest is the image ID
the daemon shows. The daemon stamps its own creation times: this mode is not reproducible.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradient_build.backend import BuildContext, BuildFailed

from . import bases
from .layout import Image, write_image
from .payload import Payload, add_libraries, host_libraries, system_layer

if TYPE_CHECKING:
    from . import OciOptions

def build_with_daemon(ctx: BuildContext[OciOptions], opts: Any, base_ref: str, pay: Payload,
                      entrypoint: list[str], labels: dict[str, str], tag: str,
                      out: Path) -> tuple[Image, dict[str, Any]]:
    """Build `pay` on `base_ref` with `docker build`; returns the exported image and its meta."""
    import docker.errors

    client, why = bases.docker_client()
    if client is None:
        raise BuildFailed(f"oci: engine = \"docker\" needs a Docker daemon: {why}")
    epoch = int(ctx.env.get("SOURCE_DATE_EPOCH", "0"))
    base, from_ref = _base_in_daemon(ctx, opts, client, base_ref, epoch)
    fs = base.fs() if base.layers else None
    added: list[str] = []
    if opts.payload == "exe":
        added = add_libraries(pay.deps, host_libraries(pay.binaries, pay.bundle_dirs), fs)
    system, uid = system_layer(fs, opts.user, opts.uid, opts.workdir)
    if uid == 0:
        raise BuildFailed(f"oci: user {opts.user!r} is root (uid 0) in base {base.name}")
    context = ctx.work / "docker-context"
    context.mkdir()
    lines = [f"FROM {from_ref}"]
    kinds = ["base"] * len(base.layers)
    for builder, kind in ((system, "system"), (pay.deps, "deps"), (pay.app, "app")):
        if builder:
            layer = builder.write(ctx.work / "blobs", epoch, kind=kind, created_by=kind)
            shutil.copyfile(layer.blob, context / f"{kind}.tar.gz")
            lines.append(f"ADD {kind}.tar.gz /")
            kinds.append(kind)
    env = {k: v for k, v in (e.split("=", 1) for e in base.env) if k == "PATH"}
    env.update({"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **pay.env, **opts.env})
    lines += [f"USER {opts.user}", f"WORKDIR {opts.workdir}",
              *(f"ENV {k}={json.dumps(v)}" for k, v in env.items()),
              *(f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()),
              f"ENTRYPOINT {json.dumps(entrypoint)}",
              f"CMD {json.dumps(opts.cmd)}"]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    try:
        image, _ = client.images.build(path=str(context), tag=tag, rm=True, forcerm=True,
                                       pull=False, network_mode="none")
    except docker.errors.BuildError as exc:
        log = "".join(str(item.get("stream") or item.get("error") or "") for item in exc.build_log)
        raise BuildFailed(f"oci: docker build failed: {exc.msg}", detail=log) from None
    except docker.errors.APIError as exc:
        raise BuildFailed(f"oci: docker build failed: {exc.explanation or exc}") from None
    return _export(ctx, image, kinds, tag, epoch, out), {
        "base": base.name, "uid": uid, "host_libraries": added,
        "dockerfile": (context / "Dockerfile").read_text()}


def _base_in_daemon(ctx: BuildContext[OciOptions], opts: Any, client: Any, ref: str, epoch: int
                    ) -> tuple[bases.Base, str]:
    """The base, and how a Dockerfile's FROM names it (loading it into the daemon if needed)."""
    import docker.errors

    base = bases.resolve(ctx, ref, opts.packages, opts.mirror)
    if not base.layers:
        return base, "scratch"
    if base.daemon_ref:
        return base, base.daemon_ref
    name = f"gradient-oci-base:{base.layers[-1].diff_id.split(':')[1][:16]}"
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        staged = ctx.work / "base.tar"
        write_image(staged, base.layers, base.config, name, epoch)
        with staged.open("rb") as f:
            client.images.load(f)
        staged.unlink()
    return base, name


def _export(ctx: BuildContext[OciOptions], image: Any, kinds: list[str], tag: str, epoch: int,
            out: Path) -> Image:
    """The daemon's image as our combined tar, layers and config as the daemon made them."""
    saved = ctx.work / "saved.tar"
    with saved.open("wb") as f:
        for chunk in image.save(named=False):
            f.write(chunk)
    unpacked = ctx.work / "saved"
    with tarfile.open(saved) as tar:
        tar.extractall(unpacked, filter="data")
    os.unlink(saved)
    exported = bases.read_docker_archive(unpacked, f"docker:{tag}")
    if len(exported.layers) != len(kinds):
        raise BuildFailed(f"oci: the daemon's image has {len(exported.layers)} layers, "
                          f"expected {len(kinds)}")
    for layer, kind in zip(exported.layers, kinds, strict=True):
        layer.kind, layer.created_by = kind, f"docker build: {kind}"
    entry = json.loads((unpacked / "manifest.json").read_text())[0]
    config_bytes = (unpacked / entry["Config"]).read_bytes()
    return write_image(out, exported.layers, {}, tag, epoch, config_bytes=config_bytes)
