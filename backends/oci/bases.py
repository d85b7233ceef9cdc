"""Where a base image comes from: nothing (`scratch`), a file or folder, the daemon, or debootstrap.

Every source ends up the same shape, an OCI layout folder, so the writer copies base blobs
verbatim (never recompressing a 100 MB layer) and the image's filesystem can be read from
them. Daemon exports and debootstrap trees are cached in gradient's tool cache, built in a
temp folder and renamed into place, so an interrupted build leaves nothing half made.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gradient_build.backend import BuildContext, BuildFailed
from gradient_build.helpers import build_once

from .fsindex import DEFAULT_PATH, KEPT, FsIndex, read_layer_cached
from .layout import (
    DOCKER_TYPES,
    LAYER_TYPES,
    MT_INDEX,
    MT_LAYER_GZIP,
    MT_LAYER_TAR,
    Layer,
    LayerBuilder,
    canonical,
    sha256_file,
)

# Big, dated or machine-specific parts of a fresh debootstrap tree an image never needs.
TRIM = ("var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old",
        "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/log", "dev",
        "proc", "sys", "run", "tmp")
EMPTIED = ("etc/hostname", "etc/resolv.conf", "etc/machine-id")
RECIPE = "debootstrap-base v2"


if TYPE_CHECKING:
    from . import OciOptions

def arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}.get(machine, machine)


@dataclass
class Base:
    """A base image: its layers (blobs on disk), its config, and how a daemon may name it."""

    name: str
    layers: list[Layer] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    daemon_ref: str | None = None

    def fs(self, cache: Path | None = None) -> FsIndex:
        """The base's merged filesystem, read from its layer blobs (their listings kept in
        `cache`, by digest)."""
        blobs = [layer.blob for layer in self.layers]

        def opener(i: int) -> IO[bytes]:
            return blobs[i].open("rb")

        index = FsIndex(opener)
        for layer in self.layers:
            members, kept = read_layer_cached(layer.blob, layer.digest, KEPT, cache)
            index.apply(members, kept)
        return index

    @property
    def env(self) -> list[str]:
        return list(self.config.get("config", {}).get("Env") or [])



def read_layout(root: Path, what: str) -> Base:
    """A base from an OCI image layout folder (the image for this platform, if several)."""
    try:
        index = json.loads((root / "index.json").read_text())
        manifest = _pick_manifest(root, index, what)
        config = json.loads(_blob(root, manifest["config"]["digest"]).read_bytes())
    except (OSError, ValueError, KeyError) as exc:
        raise BuildFailed(f"oci: base {what} is not a readable OCI image layout: {exc}") from None
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    descriptors = manifest.get("layers", [])
    if len(diff_ids) != len(descriptors):
        raise BuildFailed(f"oci: base {what}: its config lists {len(diff_ids)} diff_ids "
                          f"for {len(descriptors)} layers")
    layers = []
    for desc, diff_id in zip(descriptors, diff_ids, strict=True):
        media = DOCKER_TYPES.get(desc["mediaType"], desc["mediaType"])
        if media not in LAYER_TYPES:
            raise BuildFailed(f"oci: base {what} has a layer of type {media}, which Docker "
                              "20.10 cannot load (gzip or plain tar layers only)")
        blob = _blob(root, desc["digest"])
        layers.append(Layer(blob, desc["digest"], blob.stat().st_size, diff_id, media, "base",
                            f"base {what}"))
    return Base(what, layers, config)


def _blob(root: Path, digest: str) -> Path:
    algo, _, hexa = digest.partition(":")
    path = root / "blobs" / algo / hexa
    if not path.is_file():
        raise BuildFailed(f"oci: blob {digest} is missing from {root}")
    return path


def _pick_manifest(root: Path, index: dict[str, Any], what: str) -> dict[str, Any]:
    for desc in index.get("manifests", []):
        media = DOCKER_TYPES.get(desc.get("mediaType", ""), desc.get("mediaType", ""))
        plat = desc.get("platform") or {}
        if plat and (plat.get("os") != "linux" or plat.get("architecture") != arch()):
            continue
        data: dict[str, Any] = json.loads(_blob(root, desc["digest"]).read_bytes())
        if media == MT_INDEX or "manifests" in data:
            return _pick_manifest(root, data, what)
        return data
    raise BuildFailed(f"oci: base {what} holds no image for linux/{arch()}")


def read_docker_archive(root: Path, what: str) -> Base:
    """A base from an unpacked `docker save` archive (manifest.json, config, layer tars)."""
    try:
        entry = json.loads((root / "manifest.json").read_text())[0]
        config_bytes = (root / entry["Config"]).read_bytes()
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise BuildFailed(f"oci: base {what} is not a docker-archive: {exc}") from None
    config = json.loads(config_bytes)
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    layers = []
    for rel, diff_id in zip(entry["Layers"], diff_ids, strict=True):
        blob = (root / rel).resolve()
        with blob.open("rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        layers.append(Layer(blob, sha256_file(blob), blob.stat().st_size, diff_id,
                            MT_LAYER_GZIP if gz else MT_LAYER_TAR, "base", f"base {what}"))
    return Base(what, layers, config)


def read_archive(path: Path, work: Path, what: str) -> Base:
    """A base from a tar holding an OCI layout or a docker-archive (or both, like ours)."""
    dest = Path(tempfile.mkdtemp(prefix="base-", dir=work))
    try:
        with tarfile.open(path, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BuildFailed(f"oci: cannot read base archive {path}: {exc}") from None
    if (dest / "index.json").exists() and (dest / "oci-layout").exists():
        return read_layout(dest, what)
    if (dest / "manifest.json").exists():
        return read_docker_archive(dest, what)
    raise BuildFailed(f"oci: base {what} holds neither an OCI layout nor a docker-archive")


def resolve(ctx: BuildContext[OciOptions], base: str, packages: list[str], mirror: str) -> Base:
    """The base image `base` names (see OciOptions.base)."""
    if base == "scratch":
        return Base("scratch", [], {"architecture": arch(), "os": "linux"})
    if base.startswith("debootstrap:"):
        return debootstrap(ctx, base.partition(":")[2], packages, mirror)
    if base.startswith("docker:"):
        return from_daemon(ctx, base.partition(":")[2], pull=False)
    path = (ctx.project.root / base).resolve()
    if path.is_dir():
        if (path / "oci-layout").exists():
            return read_layout(path, base)
        if (path / "manifest.json").exists():
            return read_docker_archive(path, base)
        raise BuildFailed(f"oci: base folder {base} is neither an OCI layout nor a docker-archive")
    if path.is_file():
        return read_archive(path, ctx.work, base)
    if base.startswith((".", "/", "~")) or base.endswith(".tar"):
        raise BuildFailed(f"oci: base {base!r} names no file or folder (looked at {path})")
    if "/" in base or ":" in base:
        return from_daemon(ctx, base, pull=True)
    raise BuildFailed(f"oci: base {base!r} is not scratch, debootstrap:SUITE, docker:IMAGE, "
                      "a file, a folder or a registry reference")


def docker_client() -> tuple[Any, str]:
    """(a client of the Docker daemon, "") or (None, why not)."""
    try:
        import docker
    except ImportError:
        return None, "the docker SDK is not installed (pip install 'gradient-build[oci]')"
    try:
        client = docker.from_env(timeout=15)
        client.ping()
    except Exception as exc:
        return None, f"no Docker daemon answers: {exc}"
    client.api.timeout = 900
    return client, ""


def from_daemon(ctx: BuildContext[OciOptions], ref: str, *, pull: bool) -> Base:
    """Export `ref` from the daemon (pulling it first for a registry reference), cached by ID."""
    client, why = docker_client()
    if client is None:
        raise BuildFailed(f"oci: base {ref!r} needs a Docker daemon: {why}; or use scratch, "
                          "debootstrap:SUITE, or a local OCI layout or tar")
    import docker.errors

    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        if not pull:
            raise BuildFailed(f"oci: the daemon has no image {ref!r}") from None
        try:
            image = client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise BuildFailed(f"oci: could not pull {ref!r} (is a registry reachable?): "
                              f"{exc.explanation or exc}") from None
    cache = ctx.tool_cache("oci-bases") / f"docker-{image.id.split(':')[-1][:32]}"
    if not cache.exists():
        def fill(tmp: Path) -> None:
            saved = tmp / "image.tar"
            with saved.open("wb") as f:
                for chunk in image.save(named=False):
                    f.write(chunk)
            with tarfile.open(saved) as tar:
                tar.extractall(tmp / "archive", filter="data")
            saved.unlink()
        build_once(cache, fill, mode=0o755)
    found = read_docker_archive(cache / "archive", f"docker:{ref}")
    found.daemon_ref = ref
    return found


def debootstrap(ctx: BuildContext[OciOptions], suite: str, packages: list[str],
                mirror: str) -> Base:
    """A minimal Debian with python3 (and `packages`), built once per suite and package list.

    apt is left out unless `packages` names it: an image's packages are chosen when its base
    is built, and apt brings libgnutls30, whose FIPS self-test private keys (public test
    vectors, but real PEM keys) the secret scan rightly refuses to ship."""
    include = sorted({"python3", *packages})
    exclude = [] if "apt" in include else ["apt"]
    key = hashlib.sha256(canonical([RECIPE, suite, include, exclude, mirror, arch()]))
    final = ctx.tool_cache("oci-bases") / f"debootstrap-{suite}-{key.hexdigest()[:16]}"
    what = f"debootstrap:{suite}"
    if not (final / "index.json").exists():
        if os.geteuid() != 0:
            raise BuildFailed(f"oci: base {what} runs debootstrap, which needs root; build it "
                              "once as root (the cache keeps it) or use another base")

        def fill(tmp: Path) -> None:
            rootfs = tmp / "rootfs"
            options = ["--variant=minbase", f"--arch={arch()}", f"--include={','.join(include)}",
                       *([f"--exclude={','.join(exclude)}"] if exclude else [])]
            ctx.run(["debootstrap", *options, suite, rootfs, mirror],
                    timeout=1800, what=f"debootstrap {suite} (+{', '.join(include)})")
            _trim(rootfs)
            epoch = int(rootfs.joinpath("var/lib/dpkg/status").stat().st_mtime)
            builder = LayerBuilder()
            builder.tree("", rootfs, preserve=True)
            blobs = tmp / "layout" / "blobs" / "sha256"
            created_by = f"debootstrap {' '.join(options)} {suite} {mirror}"
            layer = builder.write(blobs, epoch, kind="base", created_by=created_by)
            shutil.rmtree(rootfs)
            _write_layout(tmp / "layout", layer, epoch, created_by)
            for item in (tmp / "layout").iterdir():
                item.rename(tmp / item.name)
            (tmp / "layout").rmdir()
        build_once(final, fill, mode=0o755)
    return read_layout(final, what)


def _trim(rootfs: Path) -> None:
    for rel in TRIM:
        folder = rootfs / rel
        if folder.is_dir() and not folder.is_symlink():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (rootfs / "tmp").chmod(0o1777)
    for rel in EMPTIED:
        if (rootfs / rel).is_file():
            (rootfs / rel).write_bytes(b"")


def _write_layout(root: Path, layer: Layer, epoch: int, created_by: str) -> None:
    """A one-layer OCI layout around a debootstrap tree's layer."""
    from datetime import UTC, datetime

    from .layout import MT_CONFIG, MT_MANIFEST

    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = canonical({
        "architecture": arch(), "os": "linux", "created": created,
        "config": {"Env": [f"PATH={DEFAULT_PATH}"], "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": created, "created_by": created_by}],
    })
    blobs = root / "blobs" / "sha256"
    cfg_hex = hashlib.sha256(config).hexdigest()
    (blobs / cfg_hex).write_bytes(config)
    manifest = canonical({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": f"sha256:{cfg_hex}", "size": len(config)},
        "layers": [layer.descriptor()]})
    man_hex = hashlib.sha256(manifest).hexdigest()
    (blobs / man_hex).write_bytes(manifest)
    (root / "index.json").write_bytes(canonical({
        "schemaVersion": 2, "mediaType": MT_INDEX,
        "manifests": [{"mediaType": MT_MANIFEST, "digest": f"sha256:{man_hex}",
                       "size": len(manifest)}]}))
    (root / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
