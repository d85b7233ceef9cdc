"""Building a wheel or an sdist through a PEP 517 frontend (uv, or pypa/build): its own
module, as reading a project's metadata builds its wheel too and must not import the
verification helpers of pyenv."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .errors import BuildFailed
from .runner import Runner
from .tools import uv_path

# What uv says when --offline lacks a build requirement its cache does not hold yet.
OFFLINE_MISSES = ("because the network was disabled", "was not found in the cache")


def pep517_build(run: Runner, source: Path, out: Path, kind: str, frontend: str = "auto") -> Path:
    """Build a `kind` ("wheel" or "sdist") of `source` into `out` with uv or pypa/build."""
    uv = uv_path()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(run.env)
    for flags in ("CFLAGS", "CXXFLAGS"):  # compiled code must not record the temp build path
        env[flags] = f"{env.get(flags, '')} -ffile-prefix-map={source}=.".strip()
    if frontend == "uv" or (frontend == "auto" and uv):
        if not uv:
            raise BuildFailed("frontend = \"uv\" but uv is not installed (pip install uv)")
        args: list[str | Path] = [f"--{kind}", "--out-dir", out, "--python", sys.executable,
                                  source]
        try:  # build requirements from uv's cache: no index round trip (~0.1 s) per build
            run([uv, "build", "--offline", *args], env=env, what=f"uv build --{kind}")
        except BuildFailed as failed:
            if not any(miss in (failed.detail or "") for miss in OFFLINE_MISSES):
                raise
            shutil.rmtree(out, ignore_errors=True)  # not in the cache yet: fetch them once
            out.mkdir(parents=True)
            run([uv, "build", *args], env=env,
                what=f"uv build --{kind} (fetching its build requirements)")
    else:
        installer = ["--installer", "uv"] if uv else []
        run([sys.executable, "-m", "build", f"--{kind}", "--outdir", out, *installer, source],
            env=env, what=f"python -m build --{kind}")
    suffix = ".whl" if kind == "wheel" else ".tar.gz"
    built = sorted(out.glob(f"*{suffix}"))
    if len(built) != 1:
        raise BuildFailed(f"expected one {suffix} from the build, found {len(built)}")
    return built[0]
