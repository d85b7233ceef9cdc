"""The `gradient` command: one top-level handler around the commands of cli_build and
cli_info (registered on the app of cli_app), and Ctrl-C that stops every tool it started."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from . import cli_advise, cli_build, cli_info, cli_sbom, cli_scale  # noqa: F401  (commands register)
from .cli_app import app, hoist_globals, state
from .errors import GradientError, Stopped

cli_scale.register()  # after build's and the info commands, so --help lists them last


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop every tool gradient started (their own process groups), then unwind."""
    from .runner import children, defer_interrupt

    if defer_interrupt(signum):
        return
    children.stop_all(signum)
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> None:
    """The one top-level handler: a line `error: ...`; tracebacks only with -v or JSON logs."""
    from .cli_render import crash_text, error_text
    from .runner import children

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    code = 0
    try:
        app(args=hoist_globals(sys.argv[1:] if argv is None else argv), prog_name="gradient")
    except SystemExit as done:  # Typer's own exit (usage errors, typer.Exit)
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except GradientError as err:
        sys.stderr.write(error_text(err, state["verbose"]))
        code = err.exit_code
    except (Stopped, KeyboardInterrupt):
        children.stop_all()
        where = ("dist/gradient/ may hold this run's artifacts" if children.changed
                 else "dist/gradient/ is unchanged")
        sys.stderr.write(f"interrupted: {where}\n")
        code = 130
    except Exception as exc:  # the one place every other error ends up
        sys.stderr.write(crash_text(exc, state["verbose"], state["log_format"] == "json"))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(code)
