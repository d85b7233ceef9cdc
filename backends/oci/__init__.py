"""The oci tier: a reproducible container image, written without a daemon, proven by running it.

The payload is the tarball tier's tree (the base brings Python) or the exe tier's binary
(the base brings at most a C library). The output is one tar that is both an OCI image
layout and a docker-archive, so `docker load -i` and OCI tools read the same file. The
image is verified by running it offline as its non-root user: in the Docker daemon when one
answers, else with runc (`[tiers.oci] runtime`); with neither it is only checked.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gradient_build.backend import (
    JSON,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Meta,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import file_digest

from .runtimes import RUNC, UMOCI, environment

DEBOOTSTRAP = Tool("debootstrap", "apt-get install debootstrap (a debootstrap: base runs it as "
                   "root)", command="debootstrap", version_args=("--version",))
LDD = Tool("ldd", "part of the C library's tools (libc-bin)", command="ldd",
           version_args=("--version",))
COMPONENT = r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
REFERENCE = re.compile(rf"^{COMPONENT}(?::[0-9]+)?(?:/{COMPONENT})*:{TAG}$")
ROOT_USERS = ("root", "0")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def _sdk(required: bool) -> Tool:
    return Tool("docker-sdk", "pip install 'gradient-build[oci]' (the docker Python SDK)",
                dist="docker", required=required)


@dataclass
class OciOptions:
    base: str = doc(
        "the base image: 'scratch', 'debootstrap:SUITE' (minimal Debian with python3, built "
        "once and cached), 'docker:IMAGE' from the daemon, a local OCI layout folder or a "
        "docker-archive/OCI tar (path relative to the project), or a registry reference "
        "(pulled through the daemon); 'auto' is debootstrap:bookworm for the tarball payload "
        "and scratch for the exe payload", "auto")
    payload: Literal["tarball", "exe"] = doc(
        "what runs in the image: the tarball tier's tree (needs a Python in the base) or the "
        "exe tier's frozen binary (needs at most a C library; on scratch the host's is added)",
        "tarball")
    tag: str = doc("the image's name:tag; {name} and {version} are the project's",
                   "{name}:{version}")
    user: str = doc("the user the image runs as (never root): a name, created when the base "
                    "lacks it, or a numeric uid[:gid]", "app")
    uid: int = doc("the uid (and gid) given to `user` when it is created", 10001)
    workdir: str = doc("where the payload goes in the image, and the working directory", "/app")
    entrypoint: list[str] | None = doc("the command the image runs; default: the app's launcher "
                                       "(python3 for a library)", None)
    cmd: list[str] = doc("default arguments to the entrypoint", [])
    env: dict[str, str] = doc("more environment variables of the image", {})
    labels: dict[str, str] = doc("more labels (org.opencontainers.image.* are set for you)", {})
    source: str | None = doc("org.opencontainers.image.source; default: the git remote", None)
    packages: list[str] = doc("more Debian packages in a debootstrap: base", [])
    mirror: str = doc("the Debian mirror a debootstrap: base is built from", DEBIAN_MIRROR)
    runtime: Literal["auto", "docker", "runc"] = doc(
        "what runs the image to verify it: auto is the Docker daemon when one answers, else "
        "runc (with umoci; apt-get install runc umoci), else nothing (the image is then only "
        "checked, never verified); docker or runc insists on that one", "auto")
    engine: Literal["native", "docker"] = doc(
        "native: the daemonless, reproducible writer; docker: build through the Docker daemon "
        "from a generated Dockerfile (uses the daemon's cache, not reproducible)", "native")


class OciBackend(Backend[OciOptions]):
    name = "oci"
    rank = 80
    artifact = "OCI image layout + docker-archive in one .oci.tar"
    target = "a container runtime"
    consumes = ("tarball",)
    # what `gradient tiers` lists; tools_for() says which a given configuration requires
    tools = (_sdk(False), dataclasses.replace(DEBOOTSTRAP, required=False),
             dataclasses.replace(LDD, required=False), RUNC, UMOCI)
    Options = OciOptions
    verify_options = frozenset({"runtime"})  # they change the proof, not the artifact
    uses_sources = False  # all it takes from the project comes in the artifacts it consumes
    needs = frozenset({"own_userspace"})
    cost = 5.0
    noop_safe = False  # its keys ask a container runtime (or KVM) what is there

    def key_extra(self, options: OciOptions, project_root: Path) -> dict[str, JSON]:
        """A base from outside the project keys the cache by what it is now, not its name."""
        base = base_name(options)
        if base.startswith("docker:"):
            try:
                proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}",
                                       base.removeprefix("docker:")], capture_output=True,
                                      text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                return {"base image": None}
            return {"base image": proc.stdout.strip() or None}
        path = project_root / base
        if base in ("scratch", "auto") or base.startswith("debootstrap:") or not path.exists():
            return {}
        index = path / "index.json" if path.is_dir() else path
        return {"base image": file_digest(index) if index.is_file() else None}

    def verify_environment(self, options: OciOptions) -> dict[str, JSON]:
        """Which runtime would run the image here: a run under one is not replayed for another,
        and a structure check (no runtime) is redone once one is there."""
        found: dict[str, JSON] = {**environment(options.runtime)}
        return found

    def requires(self, options: OciOptions) -> tuple[str, ...]:
        return (options.payload,)

    def tools_for(self, options: OciOptions) -> tuple[Tool, ...]:
        opts = options
        found = [_sdk(opts.engine == "docker")]
        if base_name(opts).startswith("debootstrap:"):
            found.append(DEBOOTSTRAP)
        if opts.payload == "exe":
            # never run (gradient_build.elf reads the libraries from the files); its version,
            # the host C library's, keys an image that carries that library
            found.append(dataclasses.replace(LDD, required=False))
        return tuple(found)

    def build(self, ctx: BuildContext[OciOptions]) -> Artifact:
        opts = ctx.options
        if opts.user.split(":")[0] in ROOT_USERS:
            raise BuildFailed("oci: [tiers.oci] user is root; images run as a non-root user "
                              "(set user to a name or a uid other than 0)")
        workdir = "/" + opts.workdir.strip("/")
        if workdir == "/":
            raise BuildFailed("oci: [tiers.oci] workdir must be a folder below /, e.g. /app")
        opts = dataclasses.replace(opts, workdir=workdir)
        tag = render_tag(opts.tag, ctx.project.name, ctx.project.version)
        epoch = int(ctx.env.get("SOURCE_DATE_EPOCH", "0"))
        source = ctx.inputs[opts.payload]
        from .payload import from_exe, from_tarball

        load = from_exe if opts.payload == "exe" else from_tarball
        asked = self._ask_git(ctx, opts)  # git answers while the payload is unpacked
        pay = load(source, ctx.project, workdir, ctx.work)
        entrypoint = opts.entrypoint or pay.entrypoint
        labels = self._labels(ctx, opts, epoch, {k: _answer(p) for k, p in asked.items()})
        out = ctx.out / f"{ctx.project.name}-{ctx.project.version}.oci.tar"
        if opts.engine == "docker":
            from .engine_docker import build_with_daemon

            base = base_name(opts)
            image, meta = build_with_daemon(ctx, opts, base, pay, entrypoint, labels, tag, out)
        else:
            from .native import build_native

            image, meta = build_native(ctx, opts, base_name(opts), pay, entrypoint, labels,
                                       tag, epoch, out)
        meta.update({
            "image_digest": image.manifest_digest, "config_digest": image.config_digest,
            "tag": tag, "user": opts.user, "payload": opts.payload, "entrypoint": entrypoint,
            "engine": opts.engine, "workdir": opts.workdir,
            "layers": [{"digest": layer.digest, "size": layer.size, "diff_id": layer.diff_id,
                        "media_type": layer.media_type, "holds": layer.kind}
                       for layer in image.layers],
            Meta.BASE_LAYERS: [layer.digest for layer in image.layers if layer.kind == "base"],
        })
        if opts.payload == "tarball":
            meta["pythonpath"] = f"{opts.workdir}/{source.text(Meta.LIB) or 'lib'}"
        return Artifact(self.name, ctx.out, out.name, {}, meta)

    def _ask_git(self, ctx: BuildContext[OciOptions],
                 opts: OciOptions) -> dict[str, subprocess.Popen[str] | None]:
        """The git questions the labels need, started (each ~4 ms of a process)."""
        asked = {"revision": _git_start(ctx.project.root, "log", "-1", "--format=%H", "--", ".")}
        if not opts.source:
            asked["origin"] = _git_start(ctx.project.root, "remote", "get-url", "origin")
        return asked

    def _labels(self, ctx: BuildContext[OciOptions], opts: OciOptions,
                epoch: int, git: dict[str, str | None]) -> dict[str, str]:
        labels = {
            "org.opencontainers.image.title": ctx.project.name,
            "org.opencontainers.image.version": ctx.project.version,
            "org.opencontainers.image.created": iso(epoch),
        }
        revision = git.get("revision")
        if revision:
            labels["org.opencontainers.image.revision"] = revision
        source = opts.source or _public_url(git.get("origin"))
        if source:
            labels["org.opencontainers.image.source"] = source
        return {**labels, **opts.labels}

    def verify(self, ctx: VerifyContext[OciOptions], artifact: Artifact) -> Verdict:
        from .docker_verify import verify_image

        return verify_image(ctx, artifact)


def base_name(opts: OciOptions) -> str:
    if opts.base != "auto":
        return opts.base
    return "scratch" if opts.payload == "exe" else "debootstrap:bookworm"


def render_tag(template: str, name: str, version: str) -> str:
    repo_name = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("._-")
    tag = template.format(name=repo_name, version=re.sub(r"[^A-Za-z0-9_.-]", "-", version))
    if ":" not in tag.rsplit("/", 1)[-1]:
        tag += ":latest"
    if not REFERENCE.match(tag):
        raise BuildFailed(f"oci: tag {tag!r} (from [tiers.oci] tag = {template!r}) is not a "
                          "valid image reference: lowercase name, then :tag")
    return tag


def iso(epoch: int) -> str:
    """An RFC 3339 UTC time, as OCI's `created` wants it."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git_start(root: Path, *args: str) -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(["git", "-C", str(root), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None


def _answer(proc: subprocess.Popen[str] | None) -> str | None:
    """What a started git printed, or None (not a work tree, no git, or no answer in 30 s)."""
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out.strip() or None if proc.returncode == 0 else None


def _public_url(url: str | None) -> str | None:
    """A remote URL without credentials; scp-style git@host:path becomes https."""
    if not url:
        return None
    url = re.sub(r"^(\w+://)[^@/]*@", r"\1", url)
    scp = re.match(r"^[\w.-]+@([\w.-]+):(.+)$", url)
    if scp:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    return url.removesuffix(".git")
