"""The pex tier, built by the real `pex` from the real wheel tier and run the way a user would:
`./app.pex` under `env -i`, from another directory, with nothing from the build around.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EXAMPLES,
    artifact_entry,
    copy_example,
    manifest,
    run_gradient,
    sha256,
    snapshot,
)

GREETING = "hello, gradient! (from hello-app 0.1.0)"
PEX = "dist/gradient/pex/hello-app-0.1.0.pex"


def env_i(cmd: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`env -i HOME=...`: nothing from this session (no PATH either); HOME only keeps the
    pex's unpack cache inside the test's temp dir."""
    return subprocess.run(["env", "-i", f"HOME={home}", *cmd], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """hello-app's pex, built and verified once for the module's tests."""
    base = tmp_path_factory.mktemp("pex")
    project = copy_example(base, "hello-app")
    cache = base / "cache-a"
    result = run_gradient(project, "build", "--tier", "pex", "--json", cache_dir=cache)
    return {"project": project, "result": result, "cache": cache, "base": base}


def test_pex_app_is_built_verified_and_runs_under_env_i(built: dict[str, Any],
                                                        tmp_path: Path) -> None:
    result, project = built["result"], built["project"]
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "pex")
    assert entry["path"] == PEX and entry["verified"]
    assert GREETING in entry["verify"]["output"]
    assert entry["verify"]["bare_env"]["exit_code"] == 0
    assert entry["shebang"] == "sh-boot" and entry["interpreter_constraints"] == [">=3.9"]
    tiers = [a["tier"] for a in manifest(project)["artifacts"]]
    assert "wheel" in tiers and "pex" in tiers
    pex = project / PEX
    assert pex.read_bytes().startswith(b"#!/bin/sh\n")
    with zipfile.ZipFile(pex) as zf:
        contents = [pex.read_bytes()] + [zf.read(n) for n in zf.namelist()]
    for path in (built["cache"], project, built["base"]):
        assert not any(str(path).encode() in data for data in contents), path
    box = tmp_path / "box"
    elsewhere = tmp_path / "elsewhere"
    box.mkdir()
    elsewhere.mkdir()
    shutil.copy2(pex, box / "app.pex")
    run = env_i(["../box/app.pex", "gradient"], elsewhere, tmp_path / "home")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == GREETING
    assert (tmp_path / "home" / ".cache" / "pex").is_dir()
    version = env_i([str(box / "app.pex"), "--version"], elsewhere, tmp_path / "home")
    assert version.stdout.strip() == "hello-app 0.1.0"


def test_pex_is_byte_reproducible_across_caches(built: dict[str, Any]) -> None:
    project = built["project"]
    assert built["result"].returncode == 0, built["result"].stderr
    first = sha256(project / PEX)
    again = run_gradient(project, "build", "--tier", "pex", cache_dir=built["base"] / "cache-b")
    assert again.returncode == 0, again.stderr
    assert artifact_entry(project, "pex")["cached"] is False
    assert sha256(project / PEX) == first


def test_pex_of_a_library_runs_python_code(tmp_path: Path, cache_dir: Path) -> None:
    project = copy_example(tmp_path, "compiled-ext")
    result = run_gradient(project, "build", "--tier", "pex", cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "pex")
    assert entry["verified"] and "sum ok" in entry["verify"]["output"]
    assert entry["entry"] is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pex = project / "dist/gradient/pex/fastsum-0.3.0.pex"
    run = env_i([str(pex), "-c", "import fastsum; print(fastsum.total([1, 2, 39]))"],
                elsewhere, tmp_path / "home")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "42"


def test_pex_absolute_shebang(tmp_path: Path, cache_dir: Path) -> None:
    toml = ('[app]\nscript = "hello"\n[verify]\nargs = ["pex"]\nexpect = "hello, pex!"\n'
            '[tiers.pex]\nshebang = "absolute"\n')
    project = copy_example(tmp_path, "hello-app", toml)
    result = run_gradient(project, "build", "--tier", "pex", cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    pex = project / PEX
    shebang = pex.read_bytes().split(b"\n", 1)[0].decode()
    interpreter = Path(shebang[2:])
    assert interpreter.is_absolute() and interpreter.exists()
    assert "/bin/python3" in shebang
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = env_i([str(pex), "you"], elsewhere, tmp_path / "home")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "hello, you! (from hello-app 0.1.0)"


def test_pex_failed_verification_keeps_dist(tmp_path: Path, cache_dir: Path) -> None:
    """A pex whose shebang names an interpreter the target lacks builds fine, and the wheel it
    comes from verifies, but the pex does not run: verification fails and dist stays."""
    project = copy_example(tmp_path, "hello-app")
    good = run_gradient(project, "build", "--tier", "pex", cache_dir=cache_dir)
    assert good.returncode == 0, good.stderr
    before = snapshot(project)
    manifest_before = (project / "dist/gradient/manifest.json").read_text()
    before_sums = (project / "dist/gradient/SHA256SUMS").read_text()
    (project / "gradient.toml").write_text(
        (project / "gradient.toml").read_text()
        + '\n[tiers.pex]\nshebang = "absolute"\ninterpreter = "/opt/nowhere/bin/python3"\n')
    bad = run_gradient(project, "build", "--tier", "pex", "--json", cache_dir=cache_dir)
    assert bad.returncode == 1
    failures = json.loads(bad.stdout)["failures"]
    assert list(failures) == ["pex"]
    assert "exited with 127" in failures["pex"]["message"]
    assert "No such file or directory" in failures["pex"]["detail"]
    # the failed pex keeps its previous artifact, byte for byte, marked stale; the wheel that
    # verified is promoted again (the same file), and the manifest records each tier's state
    written = ("manifest.json", "SHA256SUMS")
    assert {k: v for k, v in snapshot(project).items() if k not in written} == {
        k: v for k, v in before.items() if k not in written}
    data = json.loads((project / "dist/gradient/manifest.json").read_text())
    old = {a["path"]: a["sha256"] for a in json.loads(manifest_before)["artifacts"]}
    assert {a["path"]: a["sha256"] for a in data["artifacts"]} == old
    assert data["tiers"]["pex"]["state"] == "failed"
    assert next(a for a in data["artifacts"] if a["tier"] == "pex")["stale"] is True
    assert (project / "dist/gradient/SHA256SUMS").read_text() == before_sums


def other_pythons() -> dict[str, Path]:
    """'3.X' -> a real CPython binary of that minor on this machine (pyenv's or the system's)."""
    found: dict[str, Path] = {}
    candidates = [Path(p) for p in sorted(glob.glob("/root/.pyenv/versions/3.*/bin/python3.*"))]
    candidates += [Path(p) for p in sorted(glob.glob("/usr/bin/python3.*"))]
    for path in candidates:
        if re.fullmatch(r"python3\.\d+", path.name) and os.access(path, os.X_OK):
            found.setdefault(path.name[len("python"):], path)
    return found


def path_with(pythons: dict[str, Path]) -> dict[str, str]:
    """PATH with each of those interpreters' folders in front, as a user who has them would."""
    dirs = list(dict.fromkeys(str(p.parent) for p in pythons.values()))
    return {"PATH": os.pathsep.join([*dirs, os.environ.get("PATH", "")])}


def test_pure_pex_verifies_under_every_python_on_path(tmp_path: Path, cache_dir: Path) -> None:
    """A pure app's pex admits every Python its requires-python does: each one found on
    PATH runs the smoke, and the verdict names them."""
    pythons = {v: p for v, p in other_pythons().items() if v in ("3.10", "3.12", "3.13")}
    if not pythons:
        pytest.skip("needs a CPython other than 3.11 on this machine")
    project = copy_example(tmp_path, "hello-app")
    result = run_gradient(project, "build", "--tier", "pex", cache_dir=cache_dir,
                          env=path_with(pythons))
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "pex")
    assert entry["interpreter_constraints"] == [">=3.9"]
    ran = {r["version"].rsplit(".", 1)[0]: r for r in entry["verify"]["interpreters"]}
    assert set(pythons) | {"3.11"} <= set(ran), ran
    assert all(r["exit_code"] == 0 for r in ran.values())
    assert entry["verify"]["interpreters_skipped"] == []
    for version, python in pythons.items():
        run = env_i([str(python), str(project / PEX), "you"], tmp_path, tmp_path / "home")
        assert run.returncode == 0, (version, run.stderr)
        assert run.stdout.strip() == "hello, you! (from hello-app 0.1.0)"


def test_compiled_pex_is_constrained_to_the_python_of_its_wheels(tmp_path: Path,
                                                                 cache_dir: Path) -> None:
    """fastsum's cp311 wheel loads only on 3.11: the pex says so (not requires-python's
    >=3.9), and only 3.11 interpreters run its smoke, though 3.12 is on PATH too."""
    pythons = other_pythons()
    if "3.12" not in pythons:
        pytest.skip("needs a CPython 3.12 on this machine")
    project = copy_example(tmp_path, "compiled-ext")
    result = run_gradient(project, "build", "--tier", "pex", cache_dir=cache_dir,
                          env=path_with(pythons))
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "pex")
    assert entry["interpreter_constraints"] == ["CPython==3.11.*"]
    versions = [r["version"] for r in entry["verify"]["interpreters"]]
    assert versions and all(v.startswith("3.11.") for v in versions), versions
    assert any(s.startswith("3.12.") for s in entry["verify"]["interpreters_skipped"])
    pex = project / "dist/gradient/pex/fastsum-0.3.0.pex"
    with zipfile.ZipFile(pex) as zf:
        info = json.loads(zf.read("PEX-INFO"))
    assert info["interpreter_constraints"] == ["CPython==3.11.*"]
    # under 3.12 the pex now refuses at once, naming its constraint
    run = env_i([str(pythons["3.12"]), str(pex), "-c", "import fastsum"], tmp_path,
                tmp_path / "home")
    assert run.returncode != 0
    assert "==3.11.*" in run.stderr


def test_constraints_that_exclude_the_wheels_fail_the_build(tmp_path: Path,
                                                            cache_dir: Path) -> None:
    toml = (EXAMPLES / "compiled-ext/gradient.toml").read_text() + (
        '\n[tiers.pex]\ninterpreter_constraints = ["CPython>=3.12"]\n')
    project = copy_example(tmp_path, "compiled-ext", toml)
    result = run_gradient(project, "build", "--tier", "pex", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    failure = json.loads(result.stdout)["failures"]["pex"]
    text = failure["message"] + failure.get("detail", "")
    assert "CPython==3.11.*" in text and "CPython>=3.12" in text
    assert not (project / "dist/gradient/pex").exists()
