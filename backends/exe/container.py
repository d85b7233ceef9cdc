"""The second proof: run the executable in a container whose image holds only the C library.

The libraries are the dynamic loader and the shared libraries the executable and everything
it bundles load from the host (read from the files by `gradient_build.elf`, never by running
them), so a Python on the machine cannot help it. Where a
Docker daemon answers, the base image is made with `docker import` from a tar of them, once
per set of libraries, kept under gradient's cache; where none does, runc runs it in a bundle
made of the same files (runc.py). Either way the run has no network and no root.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from gradient_build.backend import Result, Sandbox
from gradient_build.helpers import elf_walk, file_digest, write_tar

from . import runc

BASE_LIBS = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "libz.so.1",
             "librt.so.1", "libutil.so.1", "libgcc_s.so.1")
IMAGE = "gradient-exe-base"
EPOCH = 315532800
LAYOUT = "exe-base v2\n"


def docker_env(env: Mapping[str, str], home: Path) -> dict[str, str]:
    keep = {k: v for k, v in env.items() if k.startswith("DOCKER_") or k in ("PATH", "LANG")}
    return {**keep, "HOME": str(home)}


def daemon_missing(env: Mapping[str, str]) -> str:
    """"" when a docker CLI is installed and its daemon replies within a few seconds, else
    why not. Asked once per process (it keys the verification): the answer is remembered."""
    docker = shutil.which("docker", path=env.get("PATH"))
    if not docker:
        return "the docker CLI is not installed"
    return _ping(docker, tuple(sorted((k, v) for k, v in env.items()
                                      if k.startswith("DOCKER_"))))


@functools.cache
def _ping(docker: str, settings: tuple[tuple[str, str], ...]) -> str:
    env = {**dict(settings), "PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C"}
    try:
        proc = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], env=env,
                              capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no Docker daemon answers: {exc}"
    if proc.returncode != 0 or not proc.stdout.strip():
        said = (proc.stderr.strip().splitlines() or ["docker version failed"])[-1]
        return f"no Docker daemon answers: {said}"
    return ""


def runtime(env: Mapping[str, str]) -> tuple[str | None, str]:
    """("docker" or "runc", "") for the in-image check, or (None, why neither is here)."""
    docker_why = daemon_missing(env)
    if not docker_why:
        return "docker", ""
    runc_why = runc.runc_missing()
    return ("runc", "") if not runc_why else (None, f"{docker_why}; {runc_why}")


def host_libraries(elves: Iterable[Path], bundle: Path) -> list[Path]:
    """The host's shared libraries (and loader) the ELF files load that `bundle` lacks; the
    bundle's library folders stand in for the LD_LIBRARY_PATH the bootloader sets."""
    lib_dirs = sorted({p.parent for p in bundle.rglob("*.so*")} | {bundle})
    tree = elf_walk(elves, extra_dirs=lib_dirs)
    found = {p for p in tree.paths if not p.is_relative_to(bundle) and p.exists()}
    libc_dirs = {p.parent for p in found if p.name == "libc.so.6"} or {
        Path("/lib/x86_64-linux-gnu")}
    for directory in libc_dirs:
        found |= {directory / name for name in BASE_LIBS if (directory / name).exists()}
    return sorted(found)


def base_image(sandbox: Sandbox, env: Mapping[str, str], cache: Path, libs: list[Path],
               cwd: Path) -> tuple[str | None, str]:
    """The tag of an image holding exactly `libs` (imported once), or None and why not."""
    files = {p.as_posix().lstrip("/"): p.resolve() for p in libs}
    digest = hashlib.sha256(LAYOUT.encode() + "".join(f"{name}\0{file_digest(path)}\n"
                                    for name, path in sorted(files.items())).encode())
    tag = f"{IMAGE}:{digest.hexdigest()[:16]}"
    known = sandbox.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], cwd=cwd,
                        env=env, timeout=60, offline=False)
    if known.exit_code == 0:
        return tag, ""
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / f"{digest.hexdigest()[:16]}.tar"
    if not tar.exists():
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            empty = Path(tmp)
            # no /tmp: an image directory's mode (0755 here) would override the tmpfs's 1777
            dirs = {"app"} | {str(Path(name).parent) for name in files}
            for name in list(dirs):
                dirs |= {str(p) for p in Path(name).parents if str(p) != "."}
            entries = sorted([(d, empty) for d in dirs] + list(files.items()))
            staged = cache / f".{uuid.uuid4().hex}.tar"
            write_tar(staged, entries, EPOCH, gz=False)
            os.replace(staged, tar)
    imported = sandbox.run(["docker", "import", "--message", "gradient exe base: C library only",
                            tar, tag], cwd=cwd, env=env, timeout=300, offline=False)
    if imported.exit_code != 0:
        return None, f"docker import failed: {imported.output.strip()[-500:]}"
    return tag, ""


def run_in_container(sandbox: Sandbox, env: Mapping[str, str], tag: str, payload: Path,
                     command: list[str], cwd: Path, timeout: float) -> tuple[Result, list[str]]:
    """Copy `payload` into /app of a new container and run `command` there, then remove it."""
    create = ["docker", "create", "--network", "none", "--user", "65534:65534",
              "--tmpfs", "/tmp:rw,exec,mode=1777", "--workdir", "/",
              "--env", "PATH=/nonexistent", "--env", "HOME=/tmp", "--env", "TMPDIR=/tmp",
              "--env", "LANG=C.UTF-8", "--label", "gradient.tier=exe", tag, *command]
    made = sandbox.run(create, cwd=cwd, env=env, timeout=120, offline=False)
    cid = made.output.strip().splitlines()[-1] if made.exit_code == 0 and made.output else ""
    if not cid:
        return made, create
    try:
        copied = sandbox.run(["docker", "cp", payload, f"{cid}:/app/"], cwd=cwd, env=env,
                             timeout=300, offline=False)
        if copied.exit_code != 0:
            return copied, create
        ran = sandbox.run(["docker", "start", "--attach", cid], cwd=cwd, env=env,
                          timeout=timeout, offline=False)
        state = sandbox.run(["docker", "inspect", "--format", "{{.State.ExitCode}}", cid],
                            cwd=cwd, env=env, timeout=60, offline=False)
        code = state.output.strip()
        if not ran.timed_out and state.exit_code == 0 and code.lstrip("-").isdigit():
            ran.exit_code = int(code)
        ran.command = create
        return ran, create
    finally:
        sandbox.run(["docker", "rm", "--force", cid], cwd=cwd, env=env, timeout=120,
                    offline=False)
