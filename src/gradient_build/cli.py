"""The `gradient` command: one top-level handler around the commands of cli_build and
cli_info (registered on the app of cli_app), and Ctrl-C that stops every tool it started."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import GradientError, Stopped

if TYPE_CHECKING:
    from .cli_args import BuildArgs


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Stop every tool gradient started (their own process groups), then unwind."""
    from .runner import children, defer_interrupt

    if defer_interrupt(signum):
        return
    children.stop_all(signum)
    raise Stopped(signum)


def main(argv: list[str] | None = None) -> None:
    """The one top-level handler: a line `error: ...`; tracebacks only with -v or JSON logs.

    A no-op `gradient build` is answered from its stamp before Typer, Rich or any backend
    is imported (noop.py); a build that could leave one runs with its output kept."""
    from . import noop

    args = sys.argv[1:] if argv is None else argv
    started = time.time()
    replayed = noop.replay(args)
    if replayed is not None:
        sys.stdout.flush()
        raise SystemExit(replayed)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    from .cli_args import parse_build
    from .sbom_helper import helper

    direct = parse_build(args)
    if direct is not None:  # a build that is no no-op: the SBOM libraries load beside it,
        helper.start()  # from the start (the first SBOM waits for their ~0.25 s)
    from . import early

    try:
        _run(args, started, direct)  # it ends in SystemExit, with the command's code
    except SystemExit as done:
        if argv is not None or not isinstance(done.code, int):  # a caller's process
            raise
        code = done.code
    finally:
        early.cancel()
    _exit_now(code)  # the console script's own exit


def _exit_now(code: int) -> NoReturn:
    """Exit once the output is flushed and the atexit handlers (temporary folders) ran,
    without tearing down the ~700 modules a build imported: 60-80 ms of every run."""
    import atexit
    import os

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args: list[str], started: float, direct: BuildArgs | None) -> None:
    """A plain build command line straight to the build (cli_args), anything else through
    Typer's app; a cold build's wheel is started before either loads."""
    from . import early, noop

    with contextlib.suppress(Exception):  # only a head start: the full path decides
        early.start(args)
    from .cli_common import state
    from .cli_render import crash_text, error_text
    from .runner import children

    tees = _tee() if noop.eligible(args) else None
    code = 0
    try:
        code = _typer(args) if direct is None else _direct(direct)
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
    if tees is not None:
        sys.stdout, sys.stderr = tees[0].stream, tees[1].stream
        _stamp(args, started, code, tees, state.pop("noop", None))
    raise SystemExit(code)


def _typer(args: list[str]) -> int:
    """Every command, through Typer: its help, its usage errors, its exit codes."""
    from . import cli_advise, cli_build, cli_info, cli_sbom, cli_scale  # noqa: F401  (commands)
    cli_scale.register()  # after build's and the info commands, so --help lists them last
    from .cli_app import app, hoist_globals

    try:
        app(args=hoist_globals(args), prog_name="gradient")
    except SystemExit as done:  # Typer's own exit (usage errors, typer.Exit)
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def _direct(args: BuildArgs) -> int:
    """`gradient build` as its Typer command runs it, from a command line cli_args read."""
    from .cli_common import set_globals
    from .cli_run_build import run_build

    set_globals(args.cache_dir, args.config, args.log_format, args.verbose, args.quiet)
    return run_build(args)


def _tee() -> tuple[Any, Any]:
    from .noop import Tee

    out, err = Tee(sys.stdout), Tee(sys.stderr)
    sys.stdout, sys.stderr = out, err
    return out, err


def _stamp(args: list[str], started: float, code: int, tees: tuple[Any, Any],
           done: dict[str, Any] | None) -> None:
    """Leave the no-op stamp of a build that changed nothing; drop a stale one otherwise."""
    from . import noop

    if code == 0 and done is not None:
        with contextlib.suppress(OSError):
            noop.record(args, started, "".join(tees[0].kept), "".join(tees[1].kept), **done)
    else:
        noop.forget(args)
