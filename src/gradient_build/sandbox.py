"""The clean room every verification runs in: a fresh directory and no network.

Offline means a network namespace of its own (`unshare -n`) where the kernel allows it;
elsewhere proxies point nowhere and pip/uv are told not to use an index, and the verdict
says which of the two it was.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .cleanroom import hidden, hide_prefix, hideable
from .errors import Interrupted
from .runner import run_captured

OFFLINE_ENV = {
    "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_OFFLINE": "1",
    "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@functools.cache
def unshare_prefix() -> tuple[str, ...]:
    """The command prefix that cuts the network, or () where no namespace can be made."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    for flags in (("-n",), ("-r", "-n")):
        try:
            ok = subprocess.run([exe, *flags, "true"], capture_output=True, timeout=10).returncode
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok == 0:
            return (exe, *flags)
    return ()


@dataclass
class Result:
    command: list[str]
    exit_code: int | None
    output: str
    seconds: float
    timed_out: bool = False


@dataclass
class Sandbox:
    """Hands out fresh directories outside the build and runs commands offline in them."""

    isolation: str = field(default_factory=lambda: "netns" if unshare_prefix() else "env")
    hide: list[Path] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)
    hidden: list[Path] = field(default_factory=list)

    def fresh_dir(self, prefix: str = "gradient-verify-") -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.dirs.append(path)
        return path

    def run(
        self,
        cmd: Sequence[str | Path],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        offline: bool = True,
        keep: Sequence[Path] = (),
    ) -> Result:
        """Run `cmd` with exactly `env` (plus the offline settings), never raising.

        An offline run also has the build's paths (`hide`) covered by empty mounts, except
        those holding the command itself, its directory, the sandbox or `keep`.
        """
        argv = [str(c) for c in cmd]
        full_env = dict(env or {})
        prefix: tuple[str, ...] = ()
        wrapped = argv
        if offline:
            full_env = {**OFFLINE_ENV, **full_env}
            prefix = unshare_prefix()
            covered = hideable(self.hide, [cwd, *self.dirs, Path(argv[0]), *keep])
            if covered and hide_prefix():
                wrapped = hidden(argv, covered)
                self.hidden += [p for p in covered if p not in self.hidden]
        started = time.monotonic()
        try:
            code, out = run_captured([*prefix, *wrapped], cwd=cwd, env=full_env, timeout=timeout)
        except (OSError, Interrupted) as exc:
            return Result(argv, None, str(exc), time.monotonic() - started)
        if code is None:
            return Result(argv, None, out + f"\n[timed out after {timeout} s]",
                          time.monotonic() - started, timed_out=True)
        return Result(argv, code, out, time.monotonic() - started)

    def cleanup(self) -> None:
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.dirs.clear()


def minimal_env(**extra: str) -> dict[str, str]:
    """What `env -i` plus a PATH leaves: nothing from the build machine's session."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8"}
    env.update(extra)
    if "HOME" not in env:
        env["HOME"] = os.devnull
    return env
