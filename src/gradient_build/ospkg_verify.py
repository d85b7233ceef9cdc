"""Proving an OS package on a real system: a minimal Debian userspace per suite (debootstrap,
built once and cached), an overlay over it per verification so the cached tree is never
touched and every change lands in one folder, and one transaction: install, run the smoke as
a non-root user, remove, then prove nothing of the package is left.

Shared by the deb and rpm tiers through `gradient_build.helpers`; the format's own commands
(dpkg, rpm --root) come in a `Transaction`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .artifact import JSON, Artifact, Verdict
from .errors import BuildFailed
from .runner import tail
from .sandbox import Result, Sandbox, minimal_env
from .shared_dirs import build_once
from .smoke import Smoke

if TYPE_CHECKING:
    from .backend import VerifyContext

USERSPACE_RECIPE = "ospkg-userspace v1"
DEBIAN_MIRROR = "http://deb.debian.org/debian"



def host_suite() -> str:
    """This machine's Debian suite (VERSION_CODENAME), bookworm when it says none."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "bookworm"
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    return found.group(1) if found else "bookworm"


def suites(distros: Sequence[str]) -> list[str]:
    """The Debian suites `[target] distros` names ('debian:bookworm'), or the host's."""
    found = []
    for distro in distros:
        family, _, suite = distro.partition(":")
        if family != "debian" or not re.fullmatch(r"[a-z]+", suite):
            raise ValueError(f"{distro!r}: only 'debian:SUITE' userspaces can be made here "
                             "(debootstrap), e.g. 'debian:bookworm'")
        found.append(suite)
    return found or [host_suite()]


Run = Callable[..., Any]


def userspace(run: Run, cache: Path, suite: str, include: Sequence[str] = (),
              mirror: str = DEBIAN_MIRROR) -> Path:
    """A minimal Debian (debootstrap minbase of `suite` plus `include`), built once and kept
    under `cache`; the returned root is never written to (verifications overlay it)."""
    from .ospkg import machine_arch  # with packaging and the ELF reader: not at import

    packages = sorted(set(include))
    key = hashlib.sha256(json.dumps([USERSPACE_RECIPE, suite, packages, mirror,
                                     machine_arch("deb")]).encode()).hexdigest()[:16]
    final = cache / f"debootstrap-{suite}-{key}"
    if not (final / "rootfs" / "var/lib/dpkg/status").is_file():
        if os.geteuid() != 0:
            raise BuildFailed(f"a {suite} userspace is made with debootstrap, which needs root; "
                              "build once as root (the cache keeps it)")

        def fill(tmp: Path) -> None:
            options = ["--variant=minbase", f"--arch={machine_arch('deb')}",
                       *([f"--include={','.join(packages)}"] if packages else [])]
            run(["debootstrap", *options, suite, tmp / "rootfs", mirror], timeout=1800,
                what=f"debootstrap {suite}" + (f" (+{', '.join(packages)})" if packages else ""))
            for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for child in (tmp / "rootfs" / rel).glob("*.deb"):
                    child.unlink()
        build_once(final, fill, mode=0o755)
    return final / "rootfs"


@contextmanager
def overlay(lower: Path, place: Path) -> Iterator[tuple[Path, Path]]:
    """(root, upper): a writable root over the cached `lower` (overlayfs), whose every change
    lands in `upper`; unmounted at the end."""
    upper, workdir, root = place / "upper", place / "work", place / "root"
    for folder in (upper, workdir, root):
        folder.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={workdir}"
    done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildFailed(f"cannot mount an overlay over the userspace: {done.stderr.strip()}")
    try:
        yield root, upper
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)


# Paths the package manager itself writes during an install and a removal.
BOOKKEEPING = ("var/lib/dpkg", "var/log", "var/cache/debconf", "var/cache/ldconfig",
               "etc/ld.so.cache", "tmp", "root", "run", "dev", "proc", "var/lib/rpm",
               "usr/lib/sysimage/rpm")


def changes(upper: Path, lower: Path, ignore: Sequence[str] = ()) -> list[str]:
    """What an install and a removal left in the userspace, read from the overlay's upper
    layer: files added or changed ("/etc/x"), files of the base removed ("/etc/x (removed)"),
    and folders the base did not have; the package manager's own bookkeeping aside."""
    skip = tuple(p.strip("/") + "/" for p in (*BOOKKEEPING, *ignore))
    found = []
    for path in sorted(upper.rglob("*")):
        rel = path.relative_to(upper).as_posix()
        if f"{rel}/".startswith(skip):
            continue
        info = path.lstat()
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:  # an overlayfs whiteout
            was = lower / rel
            if not (was.is_dir() and not was.is_symlink() and not any(was.iterdir())):
                found.append(f"/{rel} (removed)")  # an empty folder the package also shipped
                # (dpkg removes /opt with the last package in it) is not a loss
        elif stat.S_ISDIR(info.st_mode):
            if not (lower / rel).is_dir() and not any(s.startswith(f"{rel}/") for s in skip):
                found.append(f"/{rel}/")
        else:
            found.append(f"/{rel}")
    return found


# --- one transaction: install, run, remove, nothing left ---------------------------------

NOBODY = "65534:65534"


@dataclass(frozen=True)
class Installed:
    """What a package puts on the system, as its build recorded it (artifact meta)."""

    name: str
    install_dir: str
    links: dict[str, str]
    script: str
    payload: str

    @classmethod
    def of(cls, artifact: Artifact) -> Installed:
        links = artifact.meta.get("links")
        return cls(artifact.need("package"), artifact.need("install_dir"),
                   {str(k): str(v) for k, v in links.items()} if isinstance(links, Mapping)
                   else {}, artifact.need("script"), artifact.need("payload"))

    def userspace_packages(self) -> list[str]:
        """What the userspace needs beyond minbase: python3 for a tarball payload (an exe
        brings its own Python, so it is proven where there is none)."""
        return ["python3"] if self.payload == "tarball" else []


@dataclass(frozen=True)
class Transaction:
    """The host commands of one format's transaction against a root (each a full argv)."""

    install: list[str]
    remove: list[str]
    query: list[str]
    """Succeeds while the package is installed."""
    bookkeeping: tuple[str, ...] = ()
    """More folders its database keeps (a separate rpmdb), relative to the root."""


def prove(sandbox: Sandbox, smoke: Smoke, tx: Transaction, installed: Installed, root: Path,
          upper: Path, lower: Path, where: str) -> Verdict:
    """Install, run the smoke as a non-root user, remove, then prove nothing is left: the
    verdict of the first step that failed, or of the smoke with the whole transaction in
    `extra`."""
    env = minimal_env(HOME="/root")
    box = root.parent
    steps: list[dict[str, JSON]] = []

    def step(what: str, cmd: list[str], run_env: dict[str, str] = env,
             timeout: float = 600) -> Result:
        result = sandbox.run(cmd, cwd=box, env=run_env, timeout=timeout, keep=[root])
        steps.append({"step": what, "command": result.command, "exit_code": result.exit_code})
        return result

    def failed(what: str, result: Result) -> Verdict:
        verdict = Verdict(False, result.command, result.exit_code, round(result.seconds, 3),
                          tail(result.output, 60), {"steps": steps}, problem=f"{where}: {what}")
        return verdict

    script = installed.script
    done = step("install", tx.install)
    if done.exit_code != 0:
        return failed(f"the install failed: {_last_line(done.output)}", done)
    user_env = {**env, "HOME": "/tmp", "TMPDIR": "/tmp"}
    chroot = ["chroot", f"--userspec={NOBODY}", str(root)]
    ran = step("smoke", [*chroot, f"/usr/bin/{script}", *smoke.args], user_env,
               timeout=smoke.timeout)
    verdict = smoke.judge(ran, extra={"user": NOBODY})
    if not verdict.ok:
        verdict.extra["steps"] = steps
        return verdict.blame(f"{where}: /usr/bin/{script} as a non-root user")
    for link in sorted(installed.links):
        if link != f"/usr/bin/{script}":
            check = step(f"entry check {link}", [*chroot, link],
                         {**user_env, "GRADIENT_ENTRY_CHECK": "1"}, timeout=smoke.timeout)
            if check.exit_code != 0:
                return failed(f"{link} does not start", check)
    removed = step("remove", tx.remove)
    if removed.exit_code != 0:
        return failed(f"the removal failed: {_last_line(removed.output)}", removed)
    still = step("query after removal", tx.query)
    left = [p for p in [installed.install_dir, *installed.links]
            if os.path.lexists(root / p.lstrip("/"))]
    left += [p for p in changes(upper, lower, tx.bookkeeping) if p not in left]
    if still.exit_code == 0 or left:
        problem = ("the package is still installed after its removal" if still.exit_code == 0
                   else f"the removal left {', '.join(left[:8])}"
                   + (f" and {len(left) - 8} more" if len(left) > 8 else ""))
        return Verdict(False, still.command, still.exit_code, 0.0, tail(still.output, 20),
                       {"steps": steps, "left": left}, problem=f"{where}: {problem}")
    verdict.extra["steps"] = steps
    return verdict


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"




def prove_os_package(ctx: VerifyContext[Any], artifact: Artifact,
                     transaction: Callable[[Path, str], Transaction],
                     prepare: Callable[[Path], Result | None] | None = None) -> Verdict:
    """One transaction in each `[target] distros` suite (the host's by default), each in an
    overlay over that suite's cached userspace. `transaction(root, package_path_inside)` gives
    the commands; `prepare(root)` runs first (an rpmdb to create). Needs root (debootstrap,
    overlayfs, chroot): elsewhere only the package's structure was checked."""
    installed = Installed.of(artifact)
    try:
        wanted = suites(ctx.distros)
    except ValueError as exc:
        raise ctx.option_error(str(exc)) from None
    if os.geteuid() != 0:
        return Verdict(True, [], None, 0.0, level="checked",
                       why="installing into a userspace needs root (debootstrap, overlayfs, "
                           "chroot)")
    verdicts: list[Verdict] = []
    for suite in wanted:
        lower = userspace(ctx.run, ctx.tool_cache("ospkg-userspaces"), suite,
                          installed.userspace_packages())
        box = ctx.sandbox.fresh_dir(f"gradient-verify-{artifact.tier}-{suite}-")
        with overlay(lower, box) as (root, upper):
            inside = f"/tmp/{artifact.primary}"
            (root / inside.lstrip("/")).write_bytes(artifact.path.read_bytes())
            prepared = prepare(root) if prepare else None
            if prepared is not None and prepared.exit_code != 0:
                return Verdict(False, prepared.command, prepared.exit_code, prepared.seconds,
                               tail(prepared.output), problem=f"in debian:{suite}: setting up "
                               "the package database failed")
            (root / inside.lstrip("/")).chmod(0o644)
            verdict = prove(ctx.sandbox, ctx.smoke, transaction(root, inside), installed, root,
                            upper, lower, f"in debian:{suite}")
        verdict.extra["distro"] = f"debian:{suite}"
        if not verdict.ok:
            return verdict
        verdicts.append(verdict)
    first = verdicts[0]
    if len(verdicts) > 1:
        first.extra["also"] = [{"distro": v.extra["distro"], "steps": v.extra.get("steps", []),
                                "output": v.output} for v in verdicts[1:]]
    return first
