"""The command line as users and CI meet it: verify again, JSON output, logs, clean, exit codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def test_verify_again_and_catch_a_changed_artifact(example: Callable[..., Path],
                                                   gradient: Gradient) -> None:
    project = example("single-module")
    assert gradient(project, "build").returncode == 0
    again = gradient(project, "verify", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["copy"]["verified"] is True
    copied = project / "dist/gradient/copy/greet.py"
    copied.write_text(copied.read_text().replace("hello, {name}", "bye, {name}"))
    broken = gradient(project, "verify", "--json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["copy"]["verified"] is False


def test_build_json_and_json_logs(example: Callable[..., Path], gradient: Gradient,
                                  tmp_path: Path) -> None:
    project = example("single-module")
    result = gradient(project, "--log-format", "json", "build", "--json",
                      cache_dir=tmp_path / "fresh")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exit_code"] == 0 and data["failures"] == {}
    assert data["manifest"]["project"] == {"name": "greet", "version": "1.2.0"}
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert {"built", "verified"} <= {e["kind"] for e in events}


def test_clean_removes_outputs_and_own_entries_and_cache_removes_all(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    project = example("single-module")
    cache = tmp_path / "c"
    assert gradient(project, "build", cache_dir=cache).returncode == 0
    assert (project / "dist/gradient").exists() and cache.exists()
    cleaned = gradient(project, "clean", cache_dir=cache)
    assert cleaned.returncode == 0
    assert "removed 1 cache entries of this project" in cleaned.stdout
    assert not (project / "dist/gradient").exists() and not list(cache.glob("objects/*/*"))
    assert gradient(project, "build", cache_dir=cache).returncode == 0
    everything = gradient(project, "clean", "--cache", cache_dir=cache)
    assert everything.returncode == 0 and not cache.exists()
    assert f"removed {cache}" in everything.stdout and "B)" in everything.stdout


def test_help_and_bad_usage(tmp_path: Path, gradient: Gradient) -> None:
    assert gradient(tmp_path, "--help").returncode == 0
    assert gradient(tmp_path, "build", "--jobs", "0").returncode == 2
    assert gradient(tmp_path, "frobnicate").returncode == 2
