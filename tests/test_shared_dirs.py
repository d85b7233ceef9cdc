"""Directories built once under gradient's cache: never seen half-made, the first writer wins."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gradient_build.helpers import build_once


def test_a_failed_fill_leaves_nothing_and_a_good_one_lands_whole(tmp_path: Path) -> None:
    final = tmp_path / "base"

    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("debootstrap died")

    with pytest.raises(RuntimeError):
        build_once(final, broken)
    assert not final.exists() and list(tmp_path.iterdir()) == []
    build_once(final, lambda tmp: (tmp / "rootfs").mkdir())
    assert (final / "rootfs").is_dir()


def test_the_first_writer_wins_and_old_leftovers_go(tmp_path: Path) -> None:
    final = tmp_path / "base"
    leftover = tmp_path / ".base-old"
    leftover.mkdir()
    old = time.time() - 2 * 24 * 3600
    os.utime(leftover, (old, old))

    def second(tmp: Path) -> None:  # another process finishes first, while this one fills
        (tmp / "mine").write_text("second")
        build_once(final, lambda other: (other / "mine").write_text("first"))

    build_once(final, second)
    assert (final / "mine").read_text() == "first"
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]
