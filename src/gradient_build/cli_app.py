"""The `gradient` command's shared parts: the Typer app, the global options (before or after
the command) and the helpers every command uses. Only the cli* modules talk to the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from .cli_common import set_globals, state
from .errors import ConfigError, GradientError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Build a Python project along the packaging gradient, and prove each "
                       "artifact runs where it is going.")

TierOpt = Annotated[list[str] | None, typer.Option("--tier", "-t", metavar="TIER",
                                                  help="tier to act on (repeat for more)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a machine-readable result")]
RequireRunOpt = Annotated[bool | None, typer.Option(
    "--require-run/--no-require-run",
    help="fail a tier whose artifact could only be checked, not run (default: on when "
         "CI is set)")]

# Options of the group that may also follow the command: main() moves them in front.
GLOBAL_VALUED = ("--cache-dir", "--config", "--log-format")
GLOBAL_FLAGS = ("--verbose", "-v", "--quiet", "-q")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"gradient {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", envvar="GRADIENT_CACHE_DIR", metavar="DIR",
        help="where gradient keeps its cache")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="PATH", help="gradient.toml to use")] = None,
    log_format: Annotated[str | None, typer.Option(
        "--log-format", metavar="FORMAT",
        help="'human' or 'json' (json lines; the default when CI is set)")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="also show the build tools' own output and warnings, and the "
                                "tracebacks of internal errors")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="print failures only")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")] = False,
) -> None:
    """Global options go before or after the command."""
    try:
        set_globals(cache_dir, config, log_format, verbose, quiet)
    except ConfigError as err:
        fail(err)


def hoist_globals(args: list[str]) -> list[str]:
    """Typer reads a group's options only before the command: move them there."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in GLOBAL_FLAGS or any(arg.startswith(f"{o}=") for o in GLOBAL_VALUED):
            front.append(arg)
        elif arg in GLOBAL_VALUED and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


def fail(err: GradientError) -> NoReturn:
    from .cli_render import error_text

    sys.stderr.write(error_text(err, state["verbose"]))
    raise typer.Exit(err.exit_code)
