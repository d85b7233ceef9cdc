"""One proof of a served package: mip installs it, then the smoke runs in each MicroPython.

The unix port always runs it; the WebAssembly port runs it too when Node.js and the npm
package are here and the files hold no machine code (that port reads bytecode only). The
verdict records each runtime and, for one that did not run, why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gradient_build.backend import Smoke, Verdict, VerifyContext
from gradient_build.helpers import import_lines

from .runtimes import NODE, mip_install, run_unix, run_wasm, wasm_module, wasm_version


def smoke_code(smoke: Smoke, modules: list[str]) -> str:
    """The smoke as MicroPython code: [verify] code, the app's entry point, or imports."""
    if smoke.runs_app and smoke.entry:
        argv = [smoke.script or "app", *smoke.args]
        return ("import sys\n"
                f"sys.argv[:] = {json.dumps(argv)}\n"
                + import_lines(smoke.entry)
                + "_status = _main()\n"
                  "if _status:\n"
                  "    raise SystemExit(_status)\n")
    return smoke.python_code(modules)


def installed_files(lib: Path) -> set[str]:
    return {p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file()}


def prove(ctx: VerifyContext[Any], exe: Path, served: Path, modules: list[str], *,
          native: bool, unix: str, cache: Path) -> Verdict:
    package = json.loads((served / "package.json").read_text(encoding="utf-8"))
    expected = {str(u[0]) for u in package.get("urls", [])}
    deps = [str(d[0]) for d in package.get("deps", [])]
    lib = ctx.sandbox.fresh_dir("gradient-mpy-board-") / "lib"
    installed = mip_install(ctx.sandbox, exe, served, lib, drop_deps=bool(deps))
    got = installed_files(lib) if lib.is_dir() else set()
    if installed.exit_code != 0 or "Done" not in installed.output or got != expected:
        verdict = ctx.smoke.judge(installed)
        verdict.ok = False
        missing = sorted(expected - got)
        verdict.problem = ("MicroPython's mip could not install the package"
                           + (f" (missing {', '.join(missing[:3])})" if missing else ""))
        return verdict
    sources = sorted(f for f in got if not f.endswith(".mpy"))
    if sources:
        raise AssertionError(f"mpy: not only .mpy files on the path: {sources}")
    code = smoke_code(ctx.smoke, modules)
    result = run_unix(ctx.sandbox, exe, lib, code, ctx.smoke.timeout)
    extra: dict[str, Any] = {"runtimes": {"unix": unix}, "installed": sorted(got),
                             "installed_by": "MicroPython's own mip (local transport)"}
    if deps:
        extra["deps_not_installed"] = deps
    verdict = ctx.smoke.judge(result, extra=extra)
    if not verdict.ok:
        return verdict.blame(f"in {unix}")
    node, mjs = NODE.path(), wasm_module(cache)
    if native:
        extra["runtimes"]["webassembly"] = "not run: it reads bytecode only, and this holds "\
                                           "machine code"
    elif node is None or mjs is None:
        extra["runtimes"]["webassembly"] = ("not run: " + ("no Node.js here" if node is None
                                            else "the npm package "
                                            "@micropython/micropython-webassembly-pyscript "
                                            "is not installed"))
    else:
        second = run_wasm(ctx.sandbox, node, mjs, lib, code, ctx.smoke.timeout)
        name = f"MicroPython {wasm_version(mjs)} (webassembly port, Node.js)"
        extra["runtimes"]["webassembly"] = name
        extra["webassembly"] = {"command": second.command, "exit_code": second.exit_code,
                                "output": second.output[-4000:]}
        also = ctx.smoke.judge(second)
        if not also.ok:
            also.extra = extra
            return also.blame(f"in {name}")
        verdict.output += f"\n[webassembly]\n{second.output}"
    verdict.extra = extra
    return verdict
