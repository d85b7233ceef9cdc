"""The terminal a user lives in: progress when piped and in a real pseudo-terminal, a summary
with each tier's honest state, keep-going, quiet and verbose, the version, init's findings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
from conftest import GRADIENT, ROOT, artifact_entry, manifest

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def test_piped_output_shows_each_step_and_an_honest_summary(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    project = example("hello-app", toml='tier = ["wheel", "pex"]\n')
    own = tmp_path / "own-cache"  # a first build, whatever other tests built before
    first = gradient(project, "build", cache_dir=own)
    assert first.returncode == 0, first.stderr
    assert "uv build --wheel" in first.stderr or "python -m build" in first.stderr
    assert "verifying" in first.stderr
    rows = {line.split()[0]: line for line in first.stdout.splitlines()[1:] if line.strip()}
    assert "built+verified" in rows["wheel"] and " s " in rows["wheel"]
    assert "dist/gradient/pex/hello-app-0.1.0.pex" in rows["pex"]
    again = gradient(project, "build", cache_dir=own)
    rows = {line.split()[0]: line for line in again.stdout.splitlines()[1:] if line.strip()}
    assert "cached" in rows["wheel"] and "cached" in rows["pex"]
    assert "skipped" not in again.stderr


SLOW_BACKEND = """\
import time
from hatchling.build import *  # noqa: F403
from hatchling.build import build_wheel as _build_wheel


def build_wheel(*args, **kwargs):
    time.sleep(3)  # a backend that compiles for a while
    return _build_wheel(*args, **kwargs)
"""


def test_a_long_step_sends_heartbeats_when_piped(tmp_path: Path, gradient: Gradient) -> None:
    """Also while a cold build's wheel, started before the rest of gradient loaded, is
    claimed: the step shows as running from then on."""
    project = tmp_path / "slow"
    (project / "slow").mkdir(parents=True)
    (project / "slow/__init__.py").write_text("")
    (project / "slow_backend.py").write_text(SLOW_BACKEND)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "slow_backend"\n'
        'backend-path = ["."]\n[project]\nname = "slow"\nversion = "1.0"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["slow"]\n')
    (project / "gradient.toml").write_text('tier = "wheel"\n')
    result = gradient(project, "build", "--no-verify", env={"GRADIENT_HEARTBEAT_SECONDS": "0.5"})
    assert result.returncode == 0, result.stderr
    assert "wheel    still: uv build --wheel" in result.stderr


def test_one_failing_tier_keeps_the_good_work(example: Callable[..., Path],
                                              gradient: Gradient) -> None:
    """sdist and wheel succeed, the copy tier fails (not a single module): the two are promoted,
    the failure is recorded, the exit code is 1; --atomic promotes nothing."""
    project = example("hello-app", toml='tier = ["sdist", "wheel", "copy"]\n[app]\n'
                                        'module = "src/hello_app/cli.py"\n'
                                        '[verify]\nargs = ["x"]\n')
    atomic = gradient(project, "build", "--atomic")
    assert atomic.returncode == 1
    assert not (project / "dist/gradient").exists()
    kept = gradient(project, "build")
    assert kept.returncode == 1
    data = manifest(project)
    assert data["tiers"]["copy"]["state"] == "failed"
    assert data["tiers"]["wheel"]["state"] == "verified"
    assert artifact_entry(project, "wheel")["verified"]
    assert {a["tier"] for a in data["artifacts"]} == {"sdist", "wheel"}
    assert "kept their previous artifacts" in kept.stderr


def test_an_artifact_whose_inputs_changed_is_stale(example: Callable[..., Path],
                                                   gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = ["wheel", "pex"]\n')
    assert gradient(project, "build").returncode == 0
    cli = project / "src/hello_app/cli.py"
    cli.write_text(cli.read_text() + "\n# changed\n")
    only_wheel = gradient(project, "build", "--tier", "wheel")
    assert only_wheel.returncode == 0, only_wheel.stderr
    pex = artifact_entry(project, "pex")
    assert pex["stale"] and not pex["verified"]
    assert any(line.split()[:2] == ["pex", "stale"] for line in only_wheel.stdout.splitlines())


def test_quiet_prints_failures_only_and_verbose_shows_more(
        example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = "wheel"\n')
    quiet = gradient(project, "-q", "build")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    failing = example("hello-app", toml='tier = "wheel"\n[verify]\nexpect = "never printed"\n')
    loud = gradient(failing, "build", "-q")
    assert loud.returncode == 1 and "never printed" in loud.stderr


def test_version_and_help(gradient: Gradient, tmp_path: Path) -> None:
    from gradient_build import __version__

    assert gradient(tmp_path, "--version").stdout.strip() == f"gradient {__version__}"
    data = json.loads(gradient(tmp_path, "version", "--json").stdout)
    assert data["gradient"] == __version__ and "pex" in data["tools"]
    helped = gradient(tmp_path, "build", "--help").stdout
    assert "<bool>" not in helped and "--atomic" in helped


def test_the_command_reference_is_generated_from_the_cli(gradient: Gradient) -> None:
    generated = gradient(ROOT, "docs").stdout
    assert generated == (ROOT / "docs/cli.md").read_text(), "run `gradient docs > docs/cli.md`"


def test_init_says_what_it_found_and_expects_real_output(example: Callable[..., Path],
                                                         gradient: Gradient) -> None:
    project = example("hello-app")
    (project / "gradient.toml").unlink()
    result = gradient(project, "init")
    assert result.returncode == 0, result.stderr
    assert "found: 1 console script: hello; using hello" in result.stdout
    text = (project / "gradient.toml").read_text()
    assert 'args = ["--version"]' in text and 'expect = "0.1.0"' in text, text
    assert not (project / "dist").exists()
    assert gradient(project, "build").returncode == 0


def test_a_real_terminal_gets_the_live_display(example: Callable[..., Path],
                                               cache_dir: Path) -> None:
    project = example("hello-app", toml='tier = "wheel"\n')
    env = {**os.environ, "GRADIENT_CACHE_DIR": str(cache_dir), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("CI", None)
    child = pexpect.spawn(GRADIENT, ["build"], cwd=str(project), env=env, encoding="utf-8",
                          timeout=300, dimensions=(40, 120))
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before or ""
    assert child.exitstatus == 0, screen
    assert "\x1b[" in screen  # a live display draws with escape sequences
    assert "built+verified" in screen or "cached" in screen
    assert "still: " not in screen  # heartbeats are for piped output only
    assert sys.executable  # the same interpreter runs the command under test
