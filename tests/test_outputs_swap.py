"""Promotion swaps a tier's staged folder in atomically (renameat2 RENAME_EXCHANGE)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gradient_build.outputs import exchange, swap_in


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "new").write_text("new")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "old").write_text("old")
    assert exchange(tmp_path / "a", tmp_path / "b") is True
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["new"]
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["old"]


def test_swap_in_leaves_the_previous_folder_at_old(tmp_path: Path) -> None:
    staged, final, old = tmp_path / "staged", tmp_path / "final", tmp_path / "old"
    staged.mkdir()
    (staged / "x").write_text("2")
    final.mkdir()
    (final / "x").write_text("1")
    swap_in(staged, final, old)
    assert (final / "x").read_text() == "2" and (old / "x").read_text() == "1"
    assert not staged.exists()
