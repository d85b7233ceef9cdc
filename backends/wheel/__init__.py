"""The wheel tier: a .whl built through PEP 517, plus a wheelhouse of every runtime dependency."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from gradient_build.backend import (
    JSON,
    App,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    Meta,
    Project,
    Role,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    fetch_wheelhouse,
    pep517_build,
    verify_installed,
    wheel_has_binaries,
    wheel_is_pure_tag,
    wheel_top_level,
)

WHEELHOUSE = "wheelhouse"


@dataclass
class WheelOptions:
    frontend: Literal["auto", "uv", "build"] = doc(
        "PEP 517 frontend: uv when present (auto), or pypa/build", "auto")
    wheelhouse: bool = doc("also collect wheels of every runtime dependency", True)


class WheelBackend(Backend[WheelOptions]):
    name = "wheel"
    rank = 30
    artifact = ".whl + a wheelhouse of its dependencies"
    target = "Python + an installer"
    tools = (
        Tool("build", "pip install build", dist="build"),
        Tool("uv", "pip install uv (optional: a faster frontend and installer)",
             command="uv", dist="uv", required=False),
        Tool("pip", "python -m ensurepip", dist="pip"),
    )
    needs = frozenset({"python", "downloads|library"})
    Options = WheelOptions
    cost = 2.0

    def skip(self, project: Project, app: App, options: WheelOptions) -> str | None:
        return None if project.buildable else "the project has no pyproject.toml or setup.py"

    def build(self, ctx: BuildContext[WheelOptions]) -> Artifact:
        options = ctx.options
        assert ctx.project.sources is not None
        if not ctx.project.buildable:
            raise BuildFailed("wheel: the project has no pyproject.toml or setup.py; "
                              "a single module ships with the copy tier")
        # a cold metadata read built this very wheel already: the backend runs once
        wheel = ctx.project.take_wheel(options.frontend, ctx.work / "dist")
        if wheel is None:
            with ctx.source_copy() as src:
                wheel = pep517_build(ctx.run, src, ctx.work / "dist", "wheel", options.frontend)
        target = ctx.out / wheel.name
        wheel.replace(target)
        roles: dict[str, str] = {}
        if options.wheelhouse:
            for dep in fetch_wheelhouse(ctx.run, [target], ctx.out / WHEELHOUSE, exclude=target):
                roles[f"{WHEELHOUSE}/{dep.name}"] = Role.DEPENDENCY
        meta: dict[str, JSON] = {Meta.TOP_LEVEL: wheel_top_level(target),
                                 "python": sys.version.split()[0]}
        return Artifact(self.name, ctx.out, target.name, roles, meta)

    def verify(self, ctx: VerifyContext[WheelOptions], artifact: Artifact) -> Verdict:
        wheel = artifact.path
        binaries = wheel_has_binaries(wheel)
        if binaries and wheel_is_pure_tag(wheel):
            raise BuildFailed(f"wheel: {wheel.name} is tagged pure (none-any) but holds compiled "
                              f"code: {', '.join(binaries[:3])}")
        if not binaries and not wheel_is_pure_tag(wheel):
            raise BuildFailed(f"wheel: {wheel.name} holds no compiled code but carries a "
                              "platform tag: a pure wheel should be py3-none-any")
        return verify_installed(ctx, [wheel], [artifact.root / WHEELHOUSE],
                                artifact.texts(Meta.TOP_LEVEL))

