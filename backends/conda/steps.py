"""The rattler steps, run as a subprocess: `python -m gradient_backends.conda.steps VERB REQ`.

py-rattler 0.28 sometimes crashes at interpreter exit after its work is done (exit 139/134,
"PyGILState_Release"; PITFALLS), and rattler-build is a Rust engine that is better kept out
of gradient's own process: each verb does its work, writes its result as JSON to the
request's `result` file, flushes, and leaves with `os._exit`, so the caller judges the
result file, not the exit code alone.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

SHIM_BUILD = "0_gradient_host_shim"


def build(req: dict[str, Any]) -> dict[str, Any]:
    """Build each recipe with rattler-build, with only the local channel(s) given."""
    import rattler_build as rb

    packages: list[str] = []
    for item in req["recipes"]:
        recipe = rb.Stage0Recipe.from_yaml(item["yaml"], recipe_dir=Path(item["dir"]))
        try:
            results = recipe.run_build(
                output_dir=req["output"], channels=req["channels"],
                tool_config=rb.ToolConfiguration(test_strategy="skip"),
                no_build_id=True, no_include_recipe=True)
        except Exception as exc:
            name = Path(item["dir"]).name
            path = Path(req["output"]) / "bld" / f"rattler-build_{name}" / "work/conda_build.log"
            log = path.read_text(errors="replace")[-3000:] if path.exists() else ""
            raise RuntimeError(f"{name}: {exc}\n{log}") from None
        packages += [str(p) for r in results for p in r.packages]
    return {"packages": packages}


def index(req: dict[str, Any]) -> dict[str, Any]:
    from rattler.index import index_fs

    for channel in req["channels"]:
        for subdir in ("noarch", "linux-64"):
            (Path(channel) / subdir).mkdir(parents=True, exist_ok=True)
        asyncio.run(index_fs(Path(channel), force=True, write_zst=False, write_shards=False))
    return {}


def shim(channel: Path, python: Path, version: str) -> Path:
    """The host-python stand-in: a `python` package whose prefix is a venv of `python`."""
    import rattler_build as rb

    short = ".".join(version.split(".")[:2])
    stage = channel.parent / "shim-files"
    (stage / "bin").mkdir(parents=True)
    (stage / "bin" / f"python{short}").symlink_to(python)
    for alias in ("python3", "python"):
        (stage / "bin" / alias).symlink_to(f"python{short}")
    (stage / "pyvenv.cfg").write_text(f"home = {python.parent}\n"
                                      "include-system-site-packages = false\n"
                                      f"version = {version}\n")
    site = stage / "lib" / f"python{short}" / "site-packages"
    site.mkdir(parents=True)
    (site / "_gradient_host_python.pth").write_text("")  # an empty dir cannot be packaged
    out = rb.assemble_package(
        name="python", version=version, target_platform="linux-64", build_string=SHIM_BUILD,
        output_dir=channel / "linux-64", files=rb.collect_files(stage, include_hidden=True),
        timestamp=datetime.datetime(1980, 1, 1, tzinfo=datetime.UTC), detect_prefix=False,
        summary="gradient's stand-in for the host interpreter (a venv of it), verification only")
    return out.path


def install(req: dict[str, Any]) -> dict[str, Any]:
    """Solve `spec` from the given channels only, and install into a fresh prefix."""
    import rattler

    times: dict[str, float] = {}
    started = time.monotonic()
    channels = [Path(c) for c in req["channels"]]
    if req.get("shim"):
        shim_channel = Path(req["shim"]["channel"])
        shim(shim_channel, Path(req["shim"]["python"]), req["shim"]["version"])
        index({"channels": [str(shim_channel)]})
        channels.append(shim_channel)
        times["stand-in"] = time.monotonic() - started
    step = time.monotonic()
    try:
        records = asyncio.run(rattler.solve(
            sources=[c.resolve().as_uri() for c in channels], specs=req["specs"],
            platforms=["linux-64", "noarch"]))
    except Exception as exc:
        return {"ok": False, "stage": "solve", "error": str(exc)}
    times["solve"] = time.monotonic() - step
    step = time.monotonic()
    asyncio.run(rattler.install(records, target_prefix=req["prefix"], cache_dir=req["cache"],
                                show_progress=False))
    times["install"] = time.monotonic() - step
    return {"ok": True, "seconds": {k: round(v, 3) for k, v in times.items()},
            "records": [f"{r.name.normalized}-{r.version}-{r.build}" for r in records]}


VERBS = {"build": build, "index": index, "install": install}


def main() -> None:
    verb, path = sys.argv[1], Path(sys.argv[2])
    req = json.loads(path.read_text())
    code = 0
    try:
        result = VERBS[verb](req)
    except Exception as exc:
        traceback.print_exc()
        result, code = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, 1
    Path(req["result"]).write_text(json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
