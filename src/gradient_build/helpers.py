"""The steps tiers share, so backends share them without importing each other.

With `gradient_build.backend` (the contract), this is the whole surface a backend may
import; the modules these come from are internal. Grouped by what they are for:

- running: `minimal_env` (what `env -i` leaves), `tail` (a tool's last lines),
  `PASSED_THROUGH` (the environment variables tools may see);
- Python packaging: `pep517_build`, `fetch_wheelhouse`, `runtime_requirements`, `installer()`
  (uv or pip: the command lines for fresh environments and offline installs), `fresh_venv` and
  `offline_install` (those, run in the sandbox), `verify_installed` (install into a
  fresh venv offline and run the smoke), wheel facts (`wheel_top_level`, `wheel_is_pure_tag`,
  `wheel_has_binaries`), `stage` (inputs into the sandbox);
- launchers: `entry_code` (Python that runs 'module:function' as a console script would, or
  only checks it under GRADIENT_ENTRY_CHECK=1), `import_lines` (just its imports),
  `command_in_env` (the smoke as a command inside an installed environment);
- modules: `third_party_imports` (what a module imports beyond the standard library, and
  whether at import time or lazily inside a function, from its AST);
- archives: `write_tar`, `tree_entries`, `repack_tar_gz` (reproducible), `safe_extract`,
  `GzipLevel` (a tier's `gzip_level` option) and its default `GZIP_LEVEL`;
- ELF files (pyelftools, never running ldd on what we ship): `is_elf`, `elf_files`,
  `elf_interpreter` (PT_INTERP), `glibc_floor` (the newest GLIBC_x.y needed), `lddtree` and
  `elf_walk` (the shared libraries a binary loads, resolved the way the loader does);
- shared directories under gradient's cache: `build_once` (fill beside, rename in),
  `exclusive` (one process at a time, for a directory a tool updates in place),
  `remove_tree` (unmounting what an interrupted debootstrap left);
- OS packages (deb, rpm): `package_name`, `package_version` (PEP 440 -> the `~`/`+` forms
  dpkg and rpm sort alike), `PackageOptions` (the tables' shared options), `build_os_package`
  (payload under /opt/<name>, control fields from the wheel's METADATA, nfpm.yaml, nfpm),
  `scripts_key`; to prove one: `prove_os_package` (each suite), built from `debian_suites`,
  `debian_userspace` (debootstrap, cached per suite), `overlay_root`, `OsInstalled`,
  `OsTransaction` and `prove_transaction` (install, smoke as non-root, remove, nothing left);
- the build machine: `build_paths`, `venv_prefix`, `find_paths` (a tree naming them),
  `hide_prefix` (whether runs can hide them), `file_digest`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what mypy and readers see; at run time __getattr__ imports each
    from .archive import GZIP_LEVEL, GzipLevel, repack_tar_gz, safe_extract, tree_entries, write_tar
    from .cleanroom import build_paths, find_paths, hide_prefix, venv_prefix
    from .elf import elf_files, glibc_floor, is_elf, lddtree
    from .elf import interpreter as elf_interpreter
    from .elf import walk as elf_walk
    from .entrypoints import import_lines
    from .imports import ImportUse, third_party_imports
    from .installer import Installer, installer
    from .ospkg import package_name, package_version
    from .ospkg_build import PackageOptions, build_os_package, scripts_key
    from .ospkg_verify import Installed as OsInstalled
    from .ospkg_verify import Transaction as OsTransaction
    from .ospkg_verify import overlay as overlay_root
    from .ospkg_verify import prove as prove_transaction
    from .ospkg_verify import prove_os_package
    from .ospkg_verify import suites as debian_suites
    from .ospkg_verify import userspace as debian_userspace
    from .pep517 import pep517_build
    from .pyenv import (
        PIP,
        fetch_wheelhouse,
        fresh_venv,
        offline_install,
        runtime_requirements,
        stage,
        verify_installed,
        wheel_has_binaries,
        wheel_is_pure_tag,
        wheel_top_level,
    )
    from .runner import PASSED_THROUGH, tail
    from .sandbox import minimal_env
    from .shared_dirs import build_once, exclusive, remove_tree
    from .smoke import command_in_env, entry_code
    from .sources import file_digest
    from .tools import UV, uv_path


_WHERE: dict[str, tuple[str, str]] = {  # name: (module, its name there)
    "GZIP_LEVEL": ("archive", "GZIP_LEVEL"),
    "GzipLevel": ("archive", "GzipLevel"),
    "ImportUse": ("imports", "ImportUse"),
    "Installer": ("installer", "Installer"),
    "OsInstalled": ("ospkg_verify", "Installed"),
    "OsTransaction": ("ospkg_verify", "Transaction"),
    "PASSED_THROUGH": ("runner", "PASSED_THROUGH"),
    "PIP": ("pyenv", "PIP"),
    "PackageOptions": ("ospkg_build", "PackageOptions"),
    "UV": ("tools", "UV"),
    "build_once": ("shared_dirs", "build_once"),
    "build_os_package": ("ospkg_build", "build_os_package"),
    "build_paths": ("cleanroom", "build_paths"),
    "command_in_env": ("smoke", "command_in_env"),
    "debian_suites": ("ospkg_verify", "suites"),
    "debian_userspace": ("ospkg_verify", "userspace"),
    "elf_files": ("elf", "elf_files"),
    "elf_interpreter": ("elf", "interpreter"),
    "elf_walk": ("elf", "walk"),
    "entry_code": ("smoke", "entry_code"),
    "exclusive": ("shared_dirs", "exclusive"),
    "fetch_wheelhouse": ("pyenv", "fetch_wheelhouse"),
    "file_digest": ("sources", "file_digest"),
    "find_paths": ("cleanroom", "find_paths"),
    "fresh_venv": ("pyenv", "fresh_venv"),
    "glibc_floor": ("elf", "glibc_floor"),
    "hide_prefix": ("cleanroom", "hide_prefix"),
    "import_lines": ("entrypoints", "import_lines"),
    "installer": ("installer", "installer"),
    "is_elf": ("elf", "is_elf"),
    "lddtree": ("elf", "lddtree"),
    "minimal_env": ("sandbox", "minimal_env"),
    "offline_install": ("pyenv", "offline_install"),
    "overlay_root": ("ospkg_verify", "overlay"),
    "package_name": ("ospkg", "package_name"),
    "package_version": ("ospkg", "package_version"),
    "pep517_build": ("pep517", "pep517_build"),
    "prove_os_package": ("ospkg_verify", "prove_os_package"),
    "prove_transaction": ("ospkg_verify", "prove"),
    "remove_tree": ("shared_dirs", "remove_tree"),
    "repack_tar_gz": ("archive", "repack_tar_gz"),
    "runtime_requirements": ("pyenv", "runtime_requirements"),
    "safe_extract": ("archive", "safe_extract"),
    "scripts_key": ("ospkg_build", "scripts_key"),
    "stage": ("pyenv", "stage"),
    "tail": ("runner", "tail"),
    "third_party_imports": ("imports", "third_party_imports"),
    "tree_entries": ("archive", "tree_entries"),
    "uv_path": ("tools", "uv_path"),
    "venv_prefix": ("cleanroom", "venv_prefix"),
    "verify_installed": ("pyenv", "verify_installed"),
    "wheel_has_binaries": ("pyenv", "wheel_has_binaries"),
    "wheel_is_pure_tag": ("pyenv", "wheel_is_pure_tag"),
    "wheel_top_level": ("pyenv", "wheel_top_level"),
    "write_tar": ("archive", "write_tar"),
}


def __getattr__(name: str) -> Any:
    """Each name imported from its module on first use: a backend pays at import time only
    for the helpers it names, not for every tier's (loading every backend is part of every
    build's start-up)."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where[0]}", __package__), where[1])
    globals()[name] = value
    return value


__all__ = [
    "GZIP_LEVEL",
    "PASSED_THROUGH",
    "PIP",
    "UV",
    "GzipLevel",
    "ImportUse",
    "Installer",
    "OsInstalled",
    "OsTransaction",
    "PackageOptions",
    "build_once",
    "build_os_package",
    "build_paths",
    "command_in_env",
    "debian_suites",
    "debian_userspace",
    "elf_files",
    "elf_interpreter",
    "elf_walk",
    "entry_code",
    "exclusive",
    "fetch_wheelhouse",
    "file_digest",
    "find_paths",
    "fresh_venv",
    "glibc_floor",
    "hide_prefix",
    "import_lines",
    "installer",
    "is_elf",
    "lddtree",
    "minimal_env",
    "offline_install",
    "overlay_root",
    "package_name",
    "package_version",
    "pep517_build",
    "prove_os_package",
    "prove_transaction",
    "remove_tree",
    "repack_tar_gz",
    "runtime_requirements",
    "safe_extract",
    "scripts_key",
    "stage",
    "tail",
    "third_party_imports",
    "tree_entries",
    "uv_path",
    "venv_prefix",
    "verify_installed",
    "wheel_has_binaries",
    "wheel_is_pure_tag",
    "wheel_top_level",
    "write_tar",
]
