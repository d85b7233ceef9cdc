"""PyInstaller's bincache is shared by every gradient run on the machine and is not safe for
two PyInstallers at once: the exe tier takes turns on it, and drops an index an interrupted
run left unreadable (the CI failure "bincache may be corrupted", pyinstaller#5195)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gradient_backends.exe.freeze import pyinstaller_cache, readable_index

from gradient_build.helpers import exclusive

BINCACHE = "bincache10py311x86_64"


def context(cache: Path, config: Path) -> Any:
    return SimpleNamespace(cache_dir=cache, env={"PYINSTALLER_CONFIG_DIR": str(config)})


def bincache(config: Path, name: str, index: str) -> Path:
    folder = config / name
    folder.mkdir(parents=True)
    (folder / "libfoo.so").write_bytes(b"\x7fELF stripped")
    (folder / "index.dat").write_text(index)
    return folder


def test_an_unreadable_index_of_our_own_is_dropped_a_good_one_kept(tmp_path: Path) -> None:
    config = tmp_path / "cache" / "tools" / "pyinstaller"
    empty = bincache(config, BINCACHE, "")
    truncated = bincache(config, "bincache10py312x86_64", "{'libfoo.so': 'ab")
    good = bincache(config, "bincache00py311x86_64", "{'libfoo.so': 'abc123'}\n")
    with pyinstaller_cache(context(tmp_path / "cache", config)):
        assert not empty.exists() and not truncated.exists()
        assert (good / "libfoo.so").exists()


def test_a_config_directory_the_user_named_is_left_alone(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    empty = bincache(theirs, BINCACHE, "")
    with pyinstaller_cache(context(tmp_path / "cache", theirs)):
        assert (empty / "index.dat").exists()


def test_readable_index_is_what_pyinstaller_can_eval() -> None:
    assert not readable_index(Path("/nonexistent/index.dat"))
    assert not readable_index(Path("/dev/null"))


def _hold(lock: str, held: Any, release: Any) -> None:
    with exclusive(Path(lock)):
        held.set()
        release.wait(30)


def test_a_second_run_waits_for_the_first(tmp_path: Path) -> None:
    """Another process holds PyInstaller's cache: this one does not enter until it lets go."""
    config = tmp_path / "cache" / "tools" / "pyinstaller"
    ctx = context(tmp_path / "cache", config)
    with pyinstaller_cache(ctx):
        pass
    lock = next((tmp_path / "cache" / "locks").glob("pyinstaller-*.lock"))
    spawn = multiprocessing.get_context("spawn")
    held, release = spawn.Event(), spawn.Event()
    other = spawn.Process(target=_hold, args=(str(lock), held, release))
    other.start()
    order: list[str] = []

    def second_run() -> None:
        with pyinstaller_cache(ctx):
            order.append("second run entered")

    try:
        assert held.wait(30)
        waiting = threading.Thread(target=second_run, daemon=True)
        waiting.start()
        waiting.join(1.0)
        order.append("first run lets go")
        release.set()
        waiting.join(30)
        assert order == ["first run lets go", "second run entered"]
    finally:
        release.set()
        other.join(30)
