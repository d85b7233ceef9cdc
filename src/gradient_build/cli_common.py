"""What every command shares and Typer does not need to supply: the global options' state,
opening the project, the renderer, and the remote cache. The build command runs on these
alone when its command line is plain (cli_args), so they import neither Typer nor Click."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .events import Event

state: dict[str, Any] = {"log_format": "human", "verbose": False, "quiet": False}


def set_globals(cache_dir: Path | None, config: Path | None, log_format: str | None,
                verbose: bool, quiet: bool) -> None:
    """The global options, before or after the command; JSON lines by default when CI is set."""
    state["cache_dir"] = cache_dir
    state["config"] = config
    state["verbose"] = verbose
    state["quiet"] = quiet
    fmt = log_format or ("json" if os.environ.get("CI") else "human")
    if fmt not in ("human", "json"):
        raise ConfigError(f"--log-format must be 'human' or 'json', not {fmt!r}")
    state["log_format"] = fmt


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


def stderr_warning(text: str) -> None:
    if not state.get("quiet"):
        sys.stderr.write(f"warning: {text}\n")


def warn_through(renderer: Any) -> Callable[[str], None]:
    return lambda text: renderer.emit(Event("warning", None, text))


def attach_remote(session: Any, mode: str | None, warn: Callable[[str], None]) -> None:
    """Put the remote store [cache] / GRADIENT_CACHE_REMOTE names behind the local cache."""
    from .remote_cache import SettingError, from_settings

    options = session.config.cache
    try:
        session.cache.remote = from_settings(options.remote, options.mode, mode,
                                             options.insecure, warn)
    except SettingError as err:
        if err.setting == "remote" and os.environ.get("GRADIENT_CACHE_REMOTE"):
            raise ConfigError(err.message, key="GRADIENT_CACHE_REMOTE") from None
        if err.setting == "mode" and (mode or os.environ.get("GRADIENT_CACHE_MODE")):
            raise ConfigError(err.message, key="--cache-mode",
                              suggestion=err.suggestion) from None
        raise session.config.error(err.message, "cache", err.setting,
                                   suggestion=err.suggestion) from None
