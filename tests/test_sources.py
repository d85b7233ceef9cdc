"""What counts as a source, and the date every archive carries: content decides, not the disk."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

from conftest import artifact_entry, run_gradient, sha256

Gradient = Callable[..., subprocess.CompletedProcess[str]]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c",
       "commit.gpgsign=false"]


def test_a_tracked_folder_named_build_is_a_source(example: Callable[..., Path],
                                                  gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = "wheel"\n')
    nested = project / "src" / "hello_app" / "build"
    nested.mkdir()
    (nested / "__init__.py").write_text("STEP = 'kept'\n")
    (project / "build").mkdir()
    (project / "build" / "junk.txt").write_text("an output folder at the top\n")
    subprocess.run([*GIT, "init", "-q"], cwd=project, check=True)
    subprocess.run([*GIT, "add", "-A", "."], cwd=project, check=True)
    subprocess.run([*GIT, "rm", "-q", "--cached", "-r", "build"], cwd=project, check=True)
    subprocess.run([*GIT, "commit", "-qm", "x"], cwd=project, check=True)
    result = gradient(project, "build")
    assert result.returncode == 0, result.stderr
    wheel = project / artifact_entry(project, "wheel")["path"]
    names = zipfile.ZipFile(wheel).namelist()
    assert "hello_app/build/__init__.py" in names


def test_a_nested_build_folder_is_a_source_without_git_too(example: Callable[..., Path],
                                                          gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = "wheel"\n')
    nested = project / "src" / "hello_app" / "build"
    nested.mkdir()
    (nested / "__init__.py").write_text("STEP = 'kept'\n")
    result = gradient(project, "build")
    assert result.returncode == 0, result.stderr
    names = zipfile.ZipFile(project / artifact_entry(project, "wheel")["path"]).namelist()
    assert "hello_app/build/__init__.py" in names


def test_same_content_same_bytes_whatever_the_mtimes(example: Callable[..., Path],
                                                     tmp_path: Path) -> None:
    """Two unpacked copies of one tree, written at different times, outside any VCS, with
    SOURCE_DATE_EPOCH unset (the default a user gets): identical artifacts."""
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    digests = []
    for n, stamp in enumerate((1_600_000_000, 1_700_000_000)):
        project = example("hello-app", toml='tier = ["wheel", "tarball"]\n')
        for path in project.rglob("*"):
            os.utime(path, (stamp, stamp))
        cache = tmp_path / f"cache-{n}"
        result = run_gradient(project, "build", "--no-verify", cache_dir=cache, env=env)
        assert result.returncode == 0, result.stderr
        digests.append({t: sha256(project / artifact_entry(project, t)["path"])
                        for t in ("wheel", "tarball")})
        plan = run_gradient(project, "plan", "--json", cache_dir=cache, env=env)
        epoch = json.loads(plan.stdout)["source_date_epoch"]
        assert epoch["value"] == 315532800 and "no version control" in epoch["source"]
    assert digests[0] == digests[1]
