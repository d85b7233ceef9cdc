"""Where the backends' source copies go (scratch.py): memory when it has room, the user's
GRADIENT_SCRATCH_DIR when set, and nothing left behind, by a finished, failed or killed run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gradient_build import scratch
from gradient_build.sources import scan

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\nversion = '1'\n")
    return root


@pytest.fixture
def memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder standing in for /dev/shm, taken for a tmpfs; no GRADIENT_SCRATCH_DIR."""
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.delenv(scratch.ENV, raising=False)
    monkeypatch.setattr(scratch, "MEMORY", shm)
    monkeypatch.setattr(scratch, "_is_tmpfs", lambda path: path == shm)
    return shm


def test_memory_is_used_when_it_is_a_tmpfs_with_room(tmp_path: Path, memory: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    tree = scan(_tree(tmp_path))
    fallback = tmp_path / "cache-tmp"
    place = scratch.place_for(tree, fallback)
    assert place == memory / f"gradient-build-{os.getuid()}"
    assert place.stat().st_mode & 0o777 == 0o700, "other users could read the build's files"
    monkeypatch.setattr(scratch, "_free", lambda path: scratch._ROOM)  # no room to spare
    assert scratch.place_for(tree, fallback) == fallback
    monkeypatch.setattr(scratch, "_is_tmpfs", lambda path: False)
    assert scratch.place_for(tree, fallback) == fallback


def test_a_folder_another_user_could_write_is_not_used(tmp_path: Path, memory: Path) -> None:
    (memory / f"gradient-build-{os.getuid()}").mkdir(mode=0o777)
    (memory / f"gradient-build-{os.getuid()}").chmod(0o777)
    fallback = tmp_path / "cache-tmp"
    assert scratch.place_for(scan(_tree(tmp_path)), fallback) == fallback


def test_the_users_scratch_dir_wins_and_is_left_empty(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "mine"
    monkeypatch.setenv(scratch.ENV, str(chosen))
    tree = scan(_tree(tmp_path))
    with scratch.source_copy(tree, "wheel", tmp_path / "cache-tmp") as src:
        assert src.is_relative_to(chosen)
        assert (src / "pkg" / "__init__.py").read_text() == "x = 1\n"
        (src / "build").mkdir()  # what a backend writes goes with the copy
    assert list(chosen.iterdir()) == []
    assert scratch.build_roots() == [chosen], "an artifact naming it would not be caught"


def test_a_failed_run_moves_its_copy_where_the_user_looks(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(scratch.ENV, str(tmp_path / "mine"))
    kept = tmp_path / "work" / "src"
    kept.parent.mkdir()
    with pytest.raises(RuntimeError), scratch.source_copy(
            scan(_tree(tmp_path)), "wheel", tmp_path / "cache-tmp", kept) as src:
        (src / "build.log").write_text("what failed\n")
        raise RuntimeError("the backend failed")
    assert (kept / "build.log").read_text() == "what failed\n"
    assert list((tmp_path / "mine").iterdir()) == []


def test_a_killed_runs_folder_is_removed_by_the_next_run(tmp_path: Path, memory: Path) -> None:
    root = memory / f"gradient-build-{os.getuid()}"
    root.mkdir(mode=0o700)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left = root / f"early-sdist-{gone.pid}-abc_123"
    (left / "src").mkdir(parents=True)
    running = root / f"wheel-{os.getpid()}-def_456"
    running.mkdir()
    scratch.place_for(scan(_tree(tmp_path)), tmp_path / "cache-tmp")
    assert not left.exists(), "a killed run's copy stays in memory until a reboot"
    assert running.exists(), "a running build's copy was removed under it"


def test_a_failed_wheel_build_ran_in_scratch_and_is_kept(example: Callable[..., Path],
                                                         gradient: Gradient,
                                                         tmp_path: Path) -> None:
    """A real build backend's failure: it ran in the scratch copy, and the copy is kept in
    the work folder the error names."""
    project = example("compiled-ext", toml='tier = "wheel"\n')
    (project / "src/fastsum/_speedups.c").write_text("this is not C\n")
    chosen = tmp_path / "scratch"
    result = gradient(project, "build", "--jobs", "1", env={scratch.ENV: str(chosen)})
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert str(chosen) in said, "the compiler did not run in the scratch copy"
    line = next(x for x in result.stderr.splitlines() if "work directory is kept" in x)
    kept = Path(line.rsplit(": ", 1)[1].strip())
    assert (kept / "scratch" / "src" / "src/fastsum/_speedups.c").read_text() == "this is not C\n"
    assert list(chosen.iterdir()) == [], "the failed build left its copy in scratch"
