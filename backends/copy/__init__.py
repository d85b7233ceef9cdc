"""The copy tier: vendor a module (and its LICENSE) into another project, proven stdlib-only.

Two judges, each for what only it can see. The real import, in a throwaway virtual
environment of the base interpreter (no third-party package at all, gradient's own included),
proves the imports that run at import time, including those behind a version check or a
`try: ... except ImportError:`. The AST check finds what the import cannot: third-party
imports inside functions, which only run later, and unconditional module-level ones (named
with their line, before the run).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gradient_build.backend import (
    App,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    ConfigError,
    Event,
    Project,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import (
    ImportUse,
    entry_code,
    fresh_venv,
    minimal_env,
    third_party_imports,
)

LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENSE.rst", "COPYING", "COPYING.txt")


@dataclass
class CopyOptions:
    modules: list[str] = doc("module files to copy (default: [app] module, or the project's "
                             "only top-level module)", [])
    dest: str | None = doc("also install the verified copy here (vendoring), e.g. 'vendor/'", None)
    lazy_imports: Literal["fail", "warn"] = doc(
        "third-party imports inside functions: 'fail' or 'warn'", "fail")
    allow: list[str] = doc("third-party modules the copy may import lazily", [])


class CopyBackend(Backend[CopyOptions]):
    name = "copy"
    rank = 10
    artifact = "the module file(s) with the project's LICENSE"
    target = "a compatible Python"
    needs = frozenset({"python", "single_module", "stdlib_only"})
    Options = CopyOptions

    def skip(self, project: Project, app: App, options: CopyOptions) -> str | None:
        try:
            module_paths(project.root, options, app.module)
        except ConfigError:
            return "the project is not a single module ([app] module names one)"
        return None

    def build(self, ctx: BuildContext[CopyOptions]) -> Artifact:
        modules = module_paths(ctx.project.root, ctx.options, ctx.app.module)
        roles: dict[str, str] = {}
        for path in modules:
            shutil.copy2(path, ctx.out / path.name)
            roles[path.name] = "module"
        licenses = [ctx.project.root / n for n in ctx.project.license_files] or [
            ctx.project.root / n for n in LICENSE_NAMES]
        for lic in licenses:
            if lic.is_file() and lic.name not in roles:
                shutil.copy2(lic, ctx.out / lic.name)
                roles[lic.name] = "license"
        if "license" not in roles.values():
            ctx.emit(Event("warning", self.name, "no LICENSE file found to ship with the copy"))
        return Artifact(self.name, ctx.out, modules[0].name, roles,
                        {"modules": [p.stem for p in modules]})

    def verify(self, ctx: VerifyContext[CopyOptions], artifact: Artifact) -> Verdict:
        options = ctx.options
        modules = [p for p, role in artifact.files() if role in ("artifact", "module")]
        own = {Path(m).stem for m in modules}
        uses = [u for m in modules for u in third_party_imports(artifact.root / m, own)]
        fatal = [u for u in uses if u.kind == "top" or (
            u.kind == "lazy" and options.lazy_imports == "fail" and u.module not in options.allow)]
        warned = [u for u in uses if u.kind == "lazy" and u not in fatal
                  and u.module not in options.allow]
        for use in warned:
            ctx.emit(Event("warning", self.name, f"{use.file}:{use.line} imports {use.module} "
                                                 "inside a function (lazy_imports = \"warn\")"))
        if fatal:
            raise BuildFailed(_needs_more(fatal, options))
        place = ctx.sandbox.fresh_dir("gradient-copy-")
        for rel, _ in artifact.files():
            shutil.copy2(artifact.root / rel, place / rel)
        # a bare Python: the base interpreter's stdlib and an empty site-packages, so nothing
        # installed for gradient (or on the base interpreter) can satisfy an import
        python, made = fresh_venv(ctx.sandbox, ctx.sandbox.fresh_dir("gradient-bare-") / "venv",
                                  getattr(sys, "_base_executable", sys.executable))
        if made.exit_code != 0:
            verdict = ctx.smoke.judge(made)
            verdict.problem = "could not make a bare Python environment to run it in"
            return verdict
        run_dir = ctx.sandbox.fresh_dir("gradient-run-")
        prelude = f"import sys; sys.path.insert(0, {str(place)!r})\n"
        smoke = ctx.smoke
        if smoke.runs_app:
            code = prelude + entry_code(smoke.entry or f"{sorted(own)[0]}:main",
                                        smoke.script or "app")
            cmd = [str(python), "-I", "-c", code, *smoke.args]
        else:
            cmd = [str(python), "-I", "-c", prelude + smoke.python_code(sorted(own))]
        result = ctx.sandbox.run(cmd, cwd=run_dir, env=minimal_env(), timeout=smoke.timeout)
        extra: dict[str, Any] = {"lazy_imports": [f"{u.file}:{u.line} {u.module}" for u in warned]}
        return smoke.judge(result, extra=extra if warned else None)

    def deliver(self, options: CopyOptions, artifact: Artifact, project_root: Path) -> list[Path]:
        """Install the verified copy into `dest`, each file replaced atomically."""
        if not options.dest:
            return []
        dest = project_root / options.dest
        dest.mkdir(parents=True, exist_ok=True)
        placed = []
        for rel, _ in artifact.files():
            tmp = dest / f".{rel}.{uuid.uuid4().hex[:8]}"
            shutil.copy2(artifact.root / rel, tmp)
            os.replace(tmp, dest / rel)
            placed.append(dest / rel)
        return placed


def _needs_more(fatal: list[ImportUse], options: CopyOptions) -> str:
    """Why the copy cannot ship, with only the ways out that are not already taken."""
    by_module: dict[str, list[ImportUse]] = {}
    for use in fatal:
        by_module.setdefault(use.module, []).append(use)
    shown = [f"{uses[0].file}:{uses[0].line} imports {name!r}"
             + (" inside a function" if uses[0].kind == "lazy" else "")
             + (f" (and {len(uses) - 1} more places)" if len(uses) > 1 else "")
             for name, uses in list(by_module.items())[:8]]
    more = len(by_module) - len(shown)
    listed = "; ".join(shown) + (f"; and {more} more modules" if more > 0 else "")
    ways = ["remove the import or make it optional (try: ... except ImportError:)"]
    if any(u.kind == "lazy" for u in fatal):
        ways.append("list optional lazy imports in [tiers.copy] allow")
        if options.lazy_imports != "warn":
            ways.append("set lazy_imports = \"warn\"")
    return (f"copy: the module needs more than the standard library: {listed}. A copied "
            f"module must run on a bare Python: {', or '.join(ways)}")


def module_paths(root: Path, options: CopyOptions, app_module: str | None) -> list[Path]:
    names = options.modules or ([app_module] if app_module else [])
    if not names:
        candidates = [p for base in (root, root / "src") for p in sorted(base.glob("*.py"))
                      if p.name not in ("setup.py", "conftest.py", "noxfile.py")]
        if len(candidates) != 1:
            raise ConfigError("copy: name the module to copy with [app] module = \"path.py\" "
                              "(or [tiers.copy] modules)", key="tiers.copy.modules")
        return candidates
    paths = [root / n for n in names]
    for path in paths:
        if not path.is_file() or path.suffix != ".py":
            raise ConfigError(f"copy: {path.relative_to(root)} is not a module file",
                              key="tiers.copy.modules")
    return paths
