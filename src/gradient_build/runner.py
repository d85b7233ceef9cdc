"""Runs a tier's external tools: captured output, a timeout, an allow-listed environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildFailed, Interrupted, Stopped, ToolMissing
from .events import Emit, Event

PASSED_THROUGH = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM", "USER", "LOGNAME",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE",
    "UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_FIND_LINKS",
    "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
    "SOURCE_DATE_EPOCH", "PYTHONHASHSEED", "CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS",
    "UV_CACHE_DIR", "PEX_ROOT", "PYINSTALLER_CONFIG_DIR", "XDG_CACHE_HOME", "PIP_CACHE_DIR",
)


def tool_environment(cache_dir: Path, epoch: int) -> dict[str, str]:
    """The environment every tool runs with: an allow-list, plus caches under gradient's."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
    defaults = {
        "UV_CACHE_DIR": cache_dir / "tools" / "uv",
        "PEX_ROOT": cache_dir / "tools" / "pex",
        "PYINSTALLER_CONFIG_DIR": cache_dir / "tools" / "pyinstaller",
        "XDG_CACHE_HOME": cache_dir / "tools" / "xdg",
        "PIP_CACHE_DIR": cache_dir / "tools" / "pip",
    }
    for name, path in defaults.items():
        env.setdefault(name, str(path))
    env.setdefault("SOURCE_DATE_EPOCH", str(epoch))
    env.setdefault("PYTHONHASHSEED", "0")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_PROGRESS"] = "1"
    return env


@dataclass
class Runner:
    """Runs commands for one tier and remembers them; a failure names the tier and the tool."""

    tier: str
    env: dict[str, str]
    emit: Emit
    commands: list[list[str]] = field(default_factory=list)
    on_start: Callable[[int], None] | None = None
    """Told each tool's process group as it starts (an early build that may be stopped)."""

    def __call__(
        self,
        cmd: Sequence[str | Path],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
        check: bool = True,
        what: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(c) for c in cmd]
        self.commands.append(argv)
        self.emit(Event("step", self.tier, what or " ".join(argv[:3]), {"command": argv}))
        started = time.monotonic()
        try:
            code, out = run_captured(argv, cwd=cwd, timeout=timeout,
                                     env=dict(env if env is not None else self.env),
                                     on_start=self.on_start)
        except FileNotFoundError:
            raise ToolMissing(f"{self.tier}: {argv[0]} was not found on PATH") from None
        if code is None:
            raise BuildFailed(f"{self.tier}: {Path(argv[0]).name} timed out after {timeout:.0f} s",
                              detail=tail(out))
        if check and code != 0:
            raise BuildFailed(
                f"{self.tier}: {Path(argv[0]).name} failed (exit {code}) "
                f"after {time.monotonic() - started:.1f} s: {' '.join(argv)}",
                detail=tail(out),
            )
        return subprocess.CompletedProcess(argv, code, out)


class _Children:
    """The process groups of the tools running now, so an interrupt can stop them all.

    Tools run in sessions of their own: a terminal's Ctrl-C reaches only gradient, which
    forwards it to each group, waits a moment, then kills what is left.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups: set[int] = set()
        self.stopping = False
        self.critical = 0
        self.pending: int | None = None
        self.changed = False

    def start(self, argv: list[str], cwd: Path | None,
              env: dict[str, str]) -> subprocess.Popen[bytes]:
        with self.lock:
            if self.stopping:
                raise Interrupted(f"interrupted: not starting {Path(argv[0]).name}")
            proc = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            self.groups.add(proc.pid)
            return proc

    def done(self, proc: subprocess.Popen[bytes]) -> None:
        with self.lock:
            self.groups.discard(proc.pid)

    def stop_all(self, signum: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Forward `signum` to every tool's group, wait up to `grace` s, then SIGKILL."""
        with self.lock:
            self.stopping = True
            groups = set(self.groups)
        for group in groups:
            _signal_group(group, signum)
        deadline = time.monotonic() + grace
        while groups and time.monotonic() < deadline:
            groups = {g for g in groups if _signal_group(g, 0)}
            time.sleep(0.05)
        for group in groups:
            _signal_group(group, signal.SIGKILL)


def _signal_group(group: int, signum: int) -> bool:
    """Send `signum` to a process group; False once the group is gone."""
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


children = _Children()


def defer_interrupt(signum: int) -> bool:
    """True (and remembered) when a signal arrives inside `uninterruptible()`."""
    if children.critical:
        children.pending = signum
        return True
    return False


@contextlib.contextmanager
def uninterruptible(changes: bool = True) -> Iterator[None]:
    """Hold a signal back while dist/gradient/ is being swapped, then act on it."""
    children.critical += 1
    try:
        yield
        children.changed = children.changed or changes
    finally:
        children.critical -= 1
    if not children.critical and children.pending is not None:
        signum, children.pending = children.pending, None
        children.stop_all(signum)
        raise Stopped(signum)


def run_captured(argv: list[str], *, cwd: Path | None, env: Mapping[str, str],
                 timeout: float,
                 on_start: Callable[[int], None] | None = None) -> tuple[int | None, str]:
    """Run `argv` in its own process group; (exit code or None on timeout, its output).

    On a timeout the whole group is killed and what it printed until then is kept:
    TimeoutExpired carries bytes even in text mode, so it is decoded here.
    """
    proc = children.start(argv, cwd=cwd, env=dict(env))
    if on_start is not None:
        on_start(proc.pid)
    try:
        try:
            raw, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                raw, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # something left the group and holds the pipe
                raw = exc.output if isinstance(exc.output, bytes) else b""
            return None, raw.decode(errors="replace")
        finally:
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        children.done(proc)
    return proc.returncode, raw.decode(errors="replace")


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
