"""The `gradient` command's shared parts: the Typer app, the global options (before or after
the command) and the helpers every command uses. Only the cli* modules talk to the terminal."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from .errors import ConfigError, GradientError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Build a Python project along the packaging gradient, and prove each "
                       "artifact runs where it is going.")

state: dict[str, Any] = {"log_format": "human", "verbose": False, "quiet": False}

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
    state["cache_dir"] = cache_dir
    state["config"] = config
    state["verbose"] = verbose
    state["quiet"] = quiet
    fmt = log_format or ("json" if os.environ.get("CI") else "human")
    if fmt not in ("human", "json"):
        fail(ConfigError(f"--log-format must be 'human' or 'json', not {fmt!r}"))
    state["log_format"] = fmt


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


def open_session(out: Path | None = None, tiers: list[str] | None = None,
                 emit: Any = None) -> Any:
    from .api import open_project

    return open_project(state.get("config"), cache_dir=state.get("cache_dir"), out_dir=out,
                        tiers=tiers, emit=emit)


def make_renderer(quiet: bool) -> Any:
    from .cli_render import Renderer

    return Renderer(state["log_format"], quiet=quiet or state["quiet"], verbose=state["verbose"])


def must_run(require_run: bool | None) -> bool:
    return bool(os.environ.get("CI")) if require_run is None else require_run


def wanted_tiers(session: Any, tiers: list[str] | None, all_tiers: bool) -> list[str]:
    if all_tiers:
        return list(session.backends)
    wanted = tiers or session.config.tiers
    if not wanted:
        raise session.config.error("nothing to build: set `tier = \"wheel\"` (or pass --tier)",
                                   "tier")
    return list(wanted)


