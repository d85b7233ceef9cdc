"""A plain `gradient build` command line, read without Typer.

Typer, Click and the pydantic adapters Typer 0.29 builds for each parameter take ~0.15-0.2 s
before a build's first node can start: on a 0.3 s image build that is a third of the run.
A build command line that uses only the build's own options and the global ones, each in
the form `--option value`, `--option=value` or `-t value`, is read here instead; anything
else (--help, --version, a glued `-j4`, an unknown option, a value Typer would reject, a
value that starts with `-`) returns None and goes to Typer, which says what is wrong in its
own words. Only the stdlib is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

GLOBAL_VALUED = ("--cache-dir", "--config", "--log-format")
_GLOBAL_FLAGS = {"--verbose": "verbose", "-v": "verbose", "--quiet": "quiet", "-q": "quiet"}
_VALUED = {"--tier": "tier", "-t": "tier", "--jobs": "jobs", "-j": "jobs", "--out": "out",
           "--shard": "shard", "--cache-mode": "cache_mode"}
_FLAGS = {"--all": "all_tiers", "--no-verify": "no_verify", "--atomic": "atomic",
          "--check-reproducible": "check_reproducible", "--json": "as_json"}
_RUN = {"--require-run": True, "--no-require-run": False}


@dataclass
class BuildArgs:
    """`gradient build`'s parameters, as the Typer command receives them."""

    tier: list[str] = field(default_factory=list)
    all_tiers: bool = False
    no_verify: bool = False
    jobs: int | None = None
    out: Path | None = None
    check_reproducible: bool = False
    require_run: bool | None = None
    atomic: bool = False
    shard: str | None = None
    cache_mode: str | None = None
    as_json: bool = False
    cache_dir: Path | None = None
    config: Path | None = None
    log_format: str | None = None
    verbose: bool = False
    quiet: bool = False


def parse_build(argv: list[str]) -> BuildArgs | None:
    """The parameters of a plain `gradient build` command line; None for anything else."""
    args = BuildArgs()
    seen_build = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg == "build" and not seen_build:
            seen_build = True
        elif name in GLOBAL_VALUED or (seen_build and name in _VALUED):
            if not eq:
                if i + 1 >= len(argv):
                    return None
                i += 1
                value = argv[i]
            if not value or value.startswith("-") or not _take(args, name, value):
                return None
        elif eq:
            return None  # a flag given a value, or an option this reading does not know
        elif arg in _GLOBAL_FLAGS:
            setattr(args, _GLOBAL_FLAGS[arg], True)
        elif seen_build and arg in _FLAGS:
            setattr(args, _FLAGS[arg], True)
        elif seen_build and arg in _RUN:
            args.require_run = _RUN[arg]
        else:
            return None
        i += 1
    if not seen_build:
        return None
    args.cache_dir = args.cache_dir or _env_path("GRADIENT_CACHE_DIR")  # Typer's envvars
    args.cache_mode = args.cache_mode or os.environ.get("GRADIENT_CACHE_MODE") or None
    return args


def _take(args: BuildArgs, name: str, value: str) -> bool:
    """Store one option's value; False for one Typer's types would reject."""
    if name in ("--cache-dir", "--config", "--out"):
        setattr(args, name.lstrip("-").replace("-", "_"), Path(value))
    elif name == "--log-format":
        args.log_format = value
    elif _VALUED[name] == "tier":
        args.tier.append(value)
    elif _VALUED[name] == "jobs":
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            return False
        args.jobs = int(value)
    else:
        setattr(args, _VALUED[name], value)
    return True


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
