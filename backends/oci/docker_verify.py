"""The proof: the image tar is well formed, and it runs, offline and not as root.

The structural checks always run and need nothing but the tar: every blob's digest and
size, the config's diff_ids against the uncompressed layers, the media types, the
docker-archive manifest against the OCI one, a non-root user that exists, an entrypoint
that is in the image and executable (and whose interpreter is too). Then the image must
run: where a daemon answers, the very tar is `docker load`ed and run with `--network none`
as the configured user, and everything the run created is removed afterwards; with no
daemon it runs daemonlessly under runc (runc_verify.py); `runtimes.py` chooses. Only where
no runtime exists at all is the verdict `level="checked"` (never verified), with
`runtime: "not available"` and why.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from gradient_build.backend import Artifact, Result, Verdict, VerifyContext
from gradient_build.helpers import elf_interpreter, tail

from .bases import docker_client
from .fsindex import DEFAULT_PATH, KEPT, FsIndex, norm, read_layer
from .layout import LAYER_TYPES, MT_CONFIG, MT_MANIFEST, blob_name
from .payload import passwd_uid
from .runtimes import choose, runc_missing, smoke_command

if TYPE_CHECKING:
    from . import OciOptions

@dataclass
class Checked:
    """What the structural checks found: problems, and the facts a run needs."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    config_digest: str = ""
    manifest_digest: str = ""


def _hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    h = hashlib.sha256()
    f = tar.extractfile(member)
    assert f is not None
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


def check_image(path: str, meta: dict[str, Any]) -> Checked:
    """Every structural check of the combined OCI + docker-archive tar at `path`."""
    out = Checked()
    problems = out.problems
    with tarfile.open(path, "r:") as tar:
        members = {norm(m.name): m for m in tar.getmembers() if m.isreg()}

        def blob(desc: dict[str, Any], what: str) -> tarfile.TarInfo | None:
            digest, size = desc.get("digest", ""), desc.get("size")
            member = members.get(blob_name(digest))
            if member is None:
                problems.append(f"{what} blob {digest} is missing")
                return None
            if member.size != size:
                problems.append(f"{what} blob {digest} is {member.size} bytes, its descriptor "
                                f"says {size}")
            if _hash_member(tar, member) != digest:
                problems.append(f"{what} blob {digest} does not match its digest")
            return member

        def load(member: tarfile.TarInfo | None) -> Any:
            f = tar.extractfile(member) if member else None
            return json.loads(f.read()) if f else {}

        if load(members.get("oci-layout")).get("imageLayoutVersion") != "1.0.0":
            problems.append("oci-layout is missing or not version 1.0.0")
        manifests = load(members.get("index.json")).get("manifests") or [{}]
        desc = manifests[0]
        if desc.get("mediaType") != MT_MANIFEST:
            problems.append(f"index.json's manifest has media type {desc.get('mediaType')!r}")
        out.manifest_digest = desc.get("digest", "")
        manifest = load(blob(desc, "manifest"))
        if manifest.get("schemaVersion") != 2 or manifest.get("mediaType") != MT_MANIFEST:
            problems.append("the manifest is not an OCI image manifest (schemaVersion 2)")
        cfg_desc = manifest.get("config") or {}
        if cfg_desc.get("mediaType") != MT_CONFIG:
            problems.append(f"the config has media type {cfg_desc.get('mediaType')!r}")
        out.config_digest = cfg_desc.get("digest", "")
        out.config = config = load(blob(cfg_desc, "config"))
        layers = manifest.get("layers") or []
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if (config.get("rootfs") or {}).get("type") != "layers" or len(diff_ids) != len(layers):
            problems.append(f"the config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
        layer_members: list[tarfile.TarInfo] = []
        fs = FsIndex(lambda i: _open(tar, layer_members[i]))
        for i, layer in enumerate(layers):
            if layer.get("mediaType") not in LAYER_TYPES:
                problems.append(f"layer {i} has media type {layer.get('mediaType')!r}")
            member = blob(layer, f"layer {i}")
            if member is None:
                continue
            layer_members.append(member)
            try:
                with _open(tar, member) as f:
                    entries, diff_id, kept = read_layer(f, KEPT)
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                problems.append(f"layer {i} ({layer.get('digest')}) cannot be read: {exc}")
                continue
            if i < len(diff_ids) and diff_ids[i] != diff_id:
                problems.append(f"layer {i}: uncompressed digest {diff_id} is not the config's "
                                f"diff_id {diff_ids[i]}")
            fs.apply(entries, kept)
        _check_docker_manifest(load(members.get("manifest.json")), out.config_digest, layers,
                               meta.get("tag"), problems)
        if not problems:
            _check_runtime(fs, config.get("config") or {}, meta, out)
    return out


def _open(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = tar.extractfile(member)
    assert f is not None
    return f


def _check_docker_manifest(data: Any, config_digest: str, layers: list[dict[str, Any]],
                           tag: str | None, problems: list[str]) -> None:
    entry = data[0] if isinstance(data, list) and data else {}
    if entry.get("Config") != blob_name(config_digest):
        problems.append("manifest.json (docker-archive) does not name the OCI config blob")
    if entry.get("Layers") != [blob_name(layer.get("digest", "")) for layer in layers]:
        problems.append("manifest.json (docker-archive) layers differ from the OCI manifest's")
    if tag and tag not in (entry.get("RepoTags") or []):
        problems.append(f"manifest.json (docker-archive) does not tag the image {tag}")


def _check_runtime(fs: FsIndex, run: dict[str, Any], meta: dict[str, Any], out: Checked) -> None:
    """A non-root user that exists; an entrypoint (and its interpreter) in the image."""
    problems = out.problems
    env = dict(item.split("=", 1) for item in run.get("Env") or [] if "=" in item)
    search = env.get("PATH", DEFAULT_PATH)
    user = str(run.get("User") or "")
    name = user.split(":")[0]
    if not name or name in ("root", "0"):
        problems.append(f"the image runs as root (User {user!r}); it must name a non-root user")
    elif not name.isdigit():
        uid = passwd_uid((fs.read("etc/passwd") or b"").decode(errors="replace"), name)
        if uid is None:
            problems.append(f"user {name!r} is not in the image's /etc/passwd")
        elif uid == 0:
            problems.append(f"user {name!r} has uid 0 in the image: that is root")
    command = list(run.get("Entrypoint") or []) + list(run.get("Cmd") or [])
    if not command:
        problems.append("the image has neither an entrypoint nor a command")
        return
    _check_program(fs, command[0], search, "the entrypoint", problems)
    if meta.get("payload") == "tarball" and not fs.which("python3", search):
        problems.append("the image has no python3 on its PATH, and the tarball payload runs "
                        "with it: use a base with Python (debootstrap:bookworm) or payload = exe")


def _check_program(fs: FsIndex, program: str, search: str, role: str,
                   problems: list[str], depth: int = 0) -> None:
    """`program` is an executable in the image, and so is whatever it needs to start."""
    found = fs.which(program, search)
    if found is None:
        where = ("is not in the image" if fs.resolve(program) is None
                 else "is not an executable file")
        searched = "" if "/" in program else f" (searched PATH {search})"
        problems.append(f"{program} ({role}) {where}{searched}")
        return
    found = "/" + found.lstrip("/")
    data = fs.read(found) or b""
    head = data[:4096]
    interp = elf_interpreter(data)
    if head[:2] == b"#!":
        words = head[2:].split(b"\n")[0].decode(errors="replace").split()
        if words and depth < 3:
            role = f"the interpreter of {found}"
            _check_program(fs, words[0], search, role, problems, depth + 1)
            if words[0].endswith("/env") and len(words) > 1:
                _check_program(fs, words[1], search, role, problems, depth + 1)
    elif interp and fs.resolve(interp) is None:
        problems.append(f"{interp} (the dynamic loader of {found}) is not in the image")


def verify_image(ctx: VerifyContext[OciOptions], artifact: Artifact) -> Verdict:
    started = time.monotonic()
    meta = artifact.meta
    try:
        checked = check_image(str(artifact.path), meta)
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
        checked = Checked([f"{artifact.primary} is not a readable image tar: {exc}"])
    check_cmd = ["gradient-oci-check", artifact.primary]
    seconds = time.monotonic() - started
    if not checked.problems and checked.manifest_digest != meta.get("image_digest"):
        checked.problems.append(f"the image digest is {checked.manifest_digest}, the build "
                                f"recorded {meta.get('image_digest')}")
    if checked.problems:
        return Verdict(False, check_cmd, None, round(seconds, 3), "\n".join(checked.problems),
                       {"runtime": "not run", "image_digest": checked.manifest_digest},
                       problem=checked.problems[0])
    summary = {"image_digest": checked.manifest_digest, "checks": "passed"}
    wanted = getattr(ctx.options, "runtime", "auto")
    runtime, why = choose(wanted)
    if runtime == "docker":
        client, why = docker_client()
        if client is not None:
            return _run(ctx, artifact, client, checked, summary)
        runtime = "runc" if wanted == "auto" and not runc_missing() else None
    if runtime == "runc":
        from .runc_verify import run_with_runc

        return run_with_runc(ctx, artifact, checked.config.get("config") or {}, summary)
    if wanted != "auto":
        problem = f"[tiers.oci] runtime = {wanted!r} is not available here: {why}"
        return Verdict(False, check_cmd, None, round(seconds, 3), problem,
                       {**summary, "runtime": "not available"}, problem=problem)
    return Verdict(True, check_cmd, 0, round(seconds, 3),
                   f"structure checked; the image was not run: {why}",
                   {**summary, "runtime": "not available"}, level="checked", why=why)


LOAD_ATTEMPTS = 3


def _run(ctx: VerifyContext[OciOptions], artifact: Artifact, client: Any, checked: Checked,
         summary: dict[str, Any]) -> Verdict:
    import docker.errors
    import requests

    meta = artifact.meta
    tag, user, image_id = str(meta["tag"]), str(meta["user"]), checked.config_digest
    smoke, entrypoint, args, env, notes = smoke_command(ctx, meta)
    shown = ["docker", "run", "--rm", "--network", "none", "--user", user,
             *(arg for k, v in env.items() for arg in ("--env", f"{k}={v}")),
             *(["--entrypoint", entrypoint[0]] if entrypoint else []), tag,
             *(entrypoint[1:] if entrypoint else []), *args]
    before_tag, before_image = _image_id(client, tag), _image_id(client, image_id)
    started = time.monotonic()
    try:
        for attempt in range(LOAD_ATTEMPTS):
            with artifact.path.open("rb") as f:
                loaded = client.images.load(f)
            ids = [image.id for image in loaded]
            if image_id not in ids:
                result = Result(["docker", "load", "-i", artifact.primary], 1,
                                f"docker load gave {ids}, expected {image_id}",
                                time.monotonic() - started)
                return smoke.judge(result, extra={**summary, "runtime": "docker"})
            try:
                # create, not run: run answers a missing image by pulling it from a registry
                container = client.containers.create(
                    image_id, command=args, entrypoint=entrypoint, user=user,
                    network_mode="none", environment=env or None,
                    labels={"gradient.tier": "oci"})
                break
            except docker.errors.ImageNotFound:
                # A reproducible image has one id everywhere: another verification of it
                # on this daemon removed it (its clean-up) between our load and our run.
                if attempt == LOAD_ATTEMPTS - 1:
                    raise
        timed_out, code = False, None
        try:
            container.start()
            try:
                code = int(container.wait(timeout=smoke.timeout).get("StatusCode", -1))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                container.kill()
            output = container.logs(stdout=True, stderr=True).decode(errors="replace")
            ran_as = (container.attrs.get("Config") or {}).get("User")
        finally:
            container.remove(force=True)
        result = Result(shown, code, output, time.monotonic() - started, timed_out)
        verdict = smoke.judge(result, extra={**summary, **notes, "runtime": "docker",
                                             "user": ran_as})
    except docker.errors.DockerException as exc:
        result = Result(shown, None, tail(str(exc)), time.monotonic() - started)
        verdict = smoke.judge(result, extra={**summary, "runtime": "docker"})
        verdict.problem = f"docker refused the image: {exc}"
    finally:
        _clean(client, tag, image_id, before_tag, before_image)
    return verdict


def _image_id(client: Any, ref: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(ref).id)
    except docker.errors.DockerException:
        return None


def _clean(client: Any, tag: str, image_id: str, before_tag: str | None,
           before_image: str | None) -> None:
    """Leave the daemon as it was: drop what the load added, give the tag back."""
    import docker.errors

    repo, _, ref = tag.rpartition(":")
    try:
        if before_image is None:
            client.images.remove(image_id, force=True)
        elif before_tag is None:
            client.images.remove(tag, noprune=True)
        if before_tag is not None and before_tag != image_id:
            client.images.get(before_tag).tag(repo, ref)
    except docker.errors.DockerException:
        pass
