"""The few error classes gradient raises; the CLI maps each to one exit code."""

from __future__ import annotations

from pathlib import Path


class GradientError(Exception):
    """Base class: a message a user can act on, and the exit code it means."""

    exit_code = 1

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.kept: Path | None = None
        """A failed build's work directory, kept for the user to look inside."""


class ConfigError(GradientError):
    """gradient.toml, the command line or the project is wrong: nothing was written."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        where = file or ""
        if file and line:
            where = f"{file}:{line}"
        parts = [f"{where}: " if where else ""]
        if key:
            parts.append(f"{key}: ")
        parts.append(message)
        if suggestion:
            parts.append(f" (did you mean {suggestion!r}?)")
        super().__init__("".join(parts))
        self.file, self.line, self.key, self.suggestion = file, line, key, suggestion


class BuildFailed(GradientError):
    """A tier's build step failed; `detail` holds the tool's own output."""

    exit_code = 1


class VerifyFailed(GradientError):
    """A built artifact did not run where it is going; `detail` holds its output."""

    exit_code = 1


class SecretFound(BuildFailed):
    """An artifact holds something that must never ship."""


class ToolMissing(GradientError):
    """A tool a tier needs is not on this machine; the message says how to get it."""

    exit_code = 3
