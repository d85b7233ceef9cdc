"""Runs a tier's external tools: captured output, a timeout, an allow-listed environment."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildFailed, ToolMissing
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
            proc = subprocess.run(
                argv, cwd=cwd, env=dict(env if env is not None else self.env),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace", timeout=timeout, stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise ToolMissing(f"{self.tier}: {argv[0]} was not found on PATH") from None
        except subprocess.TimeoutExpired as exc:
            out = exc.output if isinstance(exc.output, str) else ""
            raise BuildFailed(f"{self.tier}: {Path(argv[0]).name} timed out after {timeout:.0f} s",
                              detail=tail(out)) from None
        if check and proc.returncode != 0:
            raise BuildFailed(
                f"{self.tier}: {Path(argv[0]).name} failed (exit {proc.returncode}) "
                f"after {time.monotonic() - started:.1f} s: {' '.join(argv)}",
                detail=tail(proc.stdout),
            )
        return proc


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
