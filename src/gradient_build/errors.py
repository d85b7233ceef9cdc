"""The few error classes gradient raises; the CLI maps each to one exit code."""

from __future__ import annotations

from pathlib import Path


class GradientError(Exception):
    """Base class: a message a user can act on, and the exit code it means."""

    exit_code = 1
    internal = False  # `detail` is a traceback: shown only with -v or in JSON logs

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


class Interrupted(GradientError):
    """Ctrl-C or SIGTERM: gradient stopped its tools and left dist/gradient/ as it was."""

    exit_code = 130


class Stopped(BaseException):
    """A signal reached gradient. Not an Exception, so no `except Exception` on the way up
    swallows it, and not a KeyboardInterrupt, which Typer turns into a silent exit 130."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def internal(prefix: str, exc: BaseException) -> BuildFailed:
    """A non-gradient exception as a failure: one line, the traceback kept in `detail`."""
    import traceback

    failure = BuildFailed(f"{prefix}internal error: {type(exc).__name__}: {exc}",
                          detail="".join(traceback.format_exception(exc)))
    failure.internal = True
    return failure
