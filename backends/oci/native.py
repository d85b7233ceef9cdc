"""The daemonless build: base layers copied verbatim, our layers on top, one reproducible tar."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradient_build.backend import BuildContext, BuildFailed

from . import bases, iso, payload
from .fsindex import DEFAULT_PATH, FsIndex
from .layout import Image, Layer, write_image

if TYPE_CHECKING:
    from . import OciOptions


def build_native(ctx: BuildContext[OciOptions], opts: OciOptions, base_name: str,
                 pay: payload.Payload, entrypoint: list[str], labels: dict[str, str], tag: str,
                 epoch: int, out: Path) -> tuple[Image, dict[str, Any]]:
    """Base layers verbatim, then the system, dependency and app layers, and the image tar."""
    base = bases.resolve(ctx, base_name, opts.packages, opts.mirror)
    fs = base.fs(ctx.tool_cache("oci-fsindex")) if base.layers else None
    added: list[str] = []
    if opts.payload == "exe":
        libs = payload.host_libraries(pay.binaries, pay.bundle_dirs)
        if fs is not None:
            check_glibc(fs, libs, pay.glibc_floor, base.name)
        added = payload.add_libraries(pay.deps, libs, fs)
    system, uid = payload.system_layer(fs, opts.user, opts.uid, opts.workdir)
    if uid == 0:
        raise BuildFailed(f"oci: user {opts.user!r} is root (uid 0) in base {base.name}")
    blobs = ctx.work / "blobs"
    layers = list(base.layers)
    for builder, kind, what in ((system, "system", f"user {opts.user} ({uid})"),
                                (pay.deps, "deps", f"{opts.payload} dependencies"),
                                (pay.app, "app", f"{ctx.project.name} {ctx.project.version}")):
        if builder:
            layers.append(builder.write(blobs, layer_mtime(kind, epoch), kind=kind,
                                        created_by=f"gradient oci: {what}",
                                        cache=ctx.tool_cache("oci-layers")))
    env = image_env(base.env, {**pay.env, **opts.env})
    config = image_config(base.config, layers, epoch, {
        "User": opts.user, "Env": env, "Entrypoint": entrypoint,
        "WorkingDir": opts.workdir, "Labels": labels, **({"Cmd": opts.cmd} if opts.cmd else {}),
    })
    image = write_image(out, layers, config, tag, epoch)
    return image, {"base": base.name, "uid": uid, "host_libraries": added}


STABLE_MTIME = 315532800  # 1980-01-01, the zip floor wheels use too


def layer_mtime(kind: str, epoch: int) -> int:
    """The app layer is dated SOURCE_DATE_EPOCH; the others a fixed date, as Jib does, so a
    new commit (a new epoch) leaves the dependency and system layers byte-identical."""
    return epoch if kind == "app" else STABLE_MTIME


def image_env(base_env: list[str], extra: dict[str, str]) -> list[str]:
    """The base's environment, a PATH and UTF-8 locale when it has none, then ours."""
    merged = dict(item.split("=", 1) for item in base_env if "=" in item)
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("LANG", "C.UTF-8")
    merged.setdefault("PYTHONUNBUFFERED", "1")
    merged.update(extra)
    return [f"{k}={v}" for k, v in merged.items()]


def image_config(base: dict[str, Any], layers: list[Layer], epoch: int,
                 run: dict[str, Any]) -> dict[str, Any]:
    """A fresh config: nothing of the base's but its platform, history and environment."""
    created = iso(epoch)
    history = list(base.get("history") or [])
    base_layers = sum(1 for layer in layers if layer.kind == "base")
    if sum(1 for h in history if not h.get("empty_layer")) != base_layers:
        history = [{"created": created, "created_by": "base layer"}] * base_layers
    history += [{"created": created, "created_by": layer.created_by, "comment": layer.kind}
                for layer in layers if layer.kind != "base"]
    return {
        "architecture": base.get("architecture") or bases.arch(),
        "os": base.get("os") or "linux",
        "created": created,
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": history,
    }


def check_glibc(fs: FsIndex, libs: list[str], floor: str | None, base: str) -> None:
    """A base with its own C library must be at least as new as the binary's glibc floor."""
    libc = next((lib for lib in libs if lib.endswith("/libc.so.6")), None)
    if not floor or not libc or fs.resolve(libc) is None:
        return
    found = re.search(rb"release version (\d+\.\d+)", fs.read(libc) or b"")
    if not found:
        return
    have = found.group(1).decode()
    if tuple(map(int, have.split("."))) < tuple(map(int, floor.split("."))):
        raise BuildFailed(f"oci: base {base} has glibc {have}, but the executable needs "
                          f"{floor} or newer; use a newer base, or scratch (the host's C "
                          "library is added)")
