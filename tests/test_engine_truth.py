"""The engine tells the truth: the right reason, keys that hold only what a build reads,
the scan under this run's [secrets], and a failed build's work kept for the user."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import artifact_entry

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def test_a_dependent_says_its_input_failed_verification(example: Callable[..., Path],
                                                        gradient: Gradient) -> None:
    toml = 'tier = ["wheel", "pex"]\n[verify]\nargs = ["x"]\nexpect = "never printed"\n'
    project = example("hello-app", toml=toml)
    result = gradient(project, "build")
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert "needs wheel, which built but failed its verification" in said
    assert "did not build" not in said


def test_verify_and_secrets_settings_do_not_rebuild(example: Callable[..., Path],
                                                    gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = "wheel"\n')
    assert gradient(project, "build").returncode == 0
    (project / "gradient.toml").write_text(
        'tier = "wheel"\n[verify]\nargs = ["x"]\n[secrets]\nallow = ["nothing/*"]\n')
    again = gradient(project, "build")
    assert again.returncode == 0, again.stderr
    entry = artifact_entry(project, "wheel")
    assert entry["cached"], "the wheel was rebuilt for a verification setting"
    assert entry["verify"]["command"][-1] == "x", "the new [verify] did not run"


def test_a_narrower_allow_list_scans_a_cached_artifact_again(example: Callable[..., Path],
                                                             gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = "sdist"\n[secrets]\nallow = ["*.env"]\n')
    (project / ".env").write_text("TOKEN=ghp_" + "a1B2" * 9 + "\n")
    assert gradient(project, "build").returncode == 0
    (project / "gradient.toml").write_text('tier = "sdist"\n')
    again = gradient(project, "build")
    assert again.returncode == 1
    assert "a dotenv file at" in again.stderr
    assert "add it to .gitignore" not in again.stderr, "not in git: .gitignore would do nothing"
    assert "[secrets] allow" in again.stderr


def test_a_failed_build_keeps_its_work_dir(example: Callable[..., Path],
                                           gradient: Gradient) -> None:
    project = example("compiled-ext", toml='tier = "wheel"\n')
    (project / "src/fastsum/_speedups.c").write_text("this is not C\n")
    result = gradient(project, "build")
    assert result.returncode != 0
    line = next(x for x in result.stderr.splitlines() if "work directory is kept" in x)
    kept = Path(line.rsplit(": ", 1)[1].strip())
    assert kept.is_dir() and (kept / "scratch").is_dir()


def test_plan_all_skips_what_build_all_skips(example: Callable[..., Path],
                                             gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = "wheel"\n')
    plan = gradient(project, "plan", "--all", "--json")
    assert plan.returncode == 0, plan.stderr
    items = {i["node"]: i for i in json.loads(plan.stdout)["nodes"]}
    assert items["copy"]["status"] == "skip"
    assert "single module" in items["copy"]["reasons"][0]


def test_a_delivered_copy_is_not_taken_for_a_new_source(example: Callable[..., Path],
                                                        gradient: Gradient) -> None:
    toml = 'tier = "copy"\n[app]\nmodule = "greet.py"\n[tiers.copy]\ndest = "vendor/"\n'
    project = example("single-module", toml=toml)
    assert gradient(project, "build").returncode == 0
    assert (project / "vendor/greet.py").is_file()
    again = gradient(project, "build")
    assert again.returncode == 0, again.stderr
    assert artifact_entry(project, "copy")["cached"], again.stderr


def test_an_option_that_only_changes_the_proof_rebuilds_nothing(
        example: Callable[..., Path], gradient: Gradient) -> None:
    import sys

    project = example("hello-app", toml='tier = "pex"\n')
    assert gradient(project, "build").returncode == 0
    (project / "gradient.toml").write_text(
        f'tier = "pex"\n[tiers.pex]\ninterpreters = ["{sys.executable}"]\n')
    again = gradient(project, "build")
    assert again.returncode == 0, again.stderr
    entry = artifact_entry(project, "pex")
    assert entry["cached"], "the pex was rebuilt for a verification-only option"
    assert "building" not in again.stderr
