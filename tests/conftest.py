"""Shared fixtures: real examples copied to a temp dir, and the real `gradient` command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GRADIENT = str(Path(sys.executable).parent / "gradient")
IGNORED = shutil.ignore_patterns("dist", "vendor", "__pycache__", "*.egg-info", "build")


# Modules that need each other's cache entries run on one pytest-xdist worker, one after the
# other: test_tier_vm boots the VM image test_sbom_vm built.
GROUPS = {"test_sbom_vm": "vm", "test_tier_vm": "vm"}
# The longest modules go out first (seconds on this 2-core machine, `--durations`), so the
# two workers end together rather than one idling while the other runs a VM build.
COST = {"test_tier_vm_ssh": 370, "vm": 343, "test_init": 324, "test_tier_deb": 183,
        "test_tier_oci": 155, "test_tier_pex": 120, "test_sbom": 93, "test_tier_exe": 87,
        "test_graph_cache": 77}


def _group(item: pytest.Item) -> str:
    module = Path(item.nodeid.split("::")[0]).stem
    return GROUPS.get(module, module)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `-n`, keep each module (or group of modules) on one worker, since their
    module fixtures build real artifacts once; and hand the costliest out first."""
    items.sort(key=lambda item: -COST.get(_group(item), 0))  # stable: file order otherwise
    if config.pluginmanager.hasplugin("xdist"):
        for item in items:
            item.add_marker(pytest.mark.xdist_group(_group(item)))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One gradient cache for the whole run, so later tests reuse earlier wheels. Under
    pytest-xdist the workers share it, as two gradient runs on one machine would: its
    entries are renamed in whole, so racing writers waste work but never break a reader."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "gradient-cache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("gradient-cache")


@pytest.fixture
def example(tmp_path: Path) -> Callable[..., Path]:
    """Copy examples/NAME into a fresh temp dir; `toml` replaces its gradient.toml."""

    def make(name: str, toml: str | None = None) -> Path:
        dest = tmp_path / name
        n = 1
        while dest.exists():
            n += 1
            dest = tmp_path / f"{name}-{n}"
        shutil.copytree(EXAMPLES / name, dest, ignore=IGNORED)
        if toml is not None:
            (dest / "gradient.toml").write_text(toml)
        return dest

    return make


def run_gradient(project: Path, *args: str, cache_dir: Path,
                 env: dict[str, str] | None = None, timeout: float = 1800,
                 ) -> subprocess.CompletedProcess[str]:
    """Run the installed `gradient` command in `project`, as a user would."""
    full_env = {**os.environ, "GRADIENT_CACHE_DIR": str(cache_dir), **(env or {})}
    full_env.pop("CI", None)
    return subprocess.run([GRADIENT, *args], cwd=project, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def gradient(cache_dir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def call(project: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("cache_dir", cache_dir)
        return run_gradient(project, *args, **kw)

    return call


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_example(dest: Path, name: str, toml: str | None = None) -> Path:
    project = dest / name
    shutil.copytree(EXAMPLES / name, project, ignore=IGNORED)
    if toml is not None:
        (project / "gradient.toml").write_text(toml)
    return project


def snapshot(project: Path) -> dict[str, str]:
    dist = project / "dist" / "gradient"
    return {p.relative_to(dist).as_posix(): sha256(p) for p in sorted(dist.rglob("*"))
            if p.is_file()}


def manifest(project: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / "dist/gradient/manifest.json").read_text())
    return data


def artifact_entry(project: Path, tier: str) -> dict[str, Any]:
    return next(a for a in manifest(project)["artifacts"]
                if a["tier"] == tier and a["role"] == "artifact")


def reseal(project: Path, tier: str) -> None:
    """Record a rewritten artifact's digest in the manifest, as a build that made it broken
    would have: `gradient verify` then gets past its digest check to the proof itself."""
    path = project / "dist/gradient/manifest.json"
    data = json.loads(path.read_text())
    for item in data["artifacts"]:
        if item["tier"] == tier:
            item["sha256"] = sha256(project / item["path"])
            item["size"] = (project / item["path"]).stat().st_size
    path.write_text(json.dumps(data, indent=2))


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
