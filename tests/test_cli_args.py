"""The plain `gradient build` command line read without Typer (cli_args) gives the build
exactly what Typer's command gives it, and leaves anything else to Typer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gradient_build import cli_build, cli_common, cli_run_build
from gradient_build.cli_app import app, hoist_globals
from gradient_build.cli_args import BuildArgs, parse_build

Gradient = Callable[..., subprocess.CompletedProcess[str]]
GLOBALS = ("cache_dir", "config", "log_format", "verbose", "quiet")

PLAIN = [
    ["build"],
    ["build", "--tier", "wheel", "-t", "pex", "--tier=sdist"],
    ["build", "--all", "--no-verify", "--jobs", "3", "--atomic"],
    ["build", "-j", "1", "--out", "out/dir", "--json", "--check-reproducible"],
    ["build", "--jobs=2", "--require-run", "--no-require-run"],
    ["build", "--no-require-run", "--require-run", "--shard", "1/2", "--cache-mode", "off"],
    ["--cache-dir", "/tmp/c", "build", "--config=/x/gradient.toml", "-v"],
    ["-q", "--log-format", "json", "build", "--tier", "oci"],
    ["build", "--log-format=human", "--quiet", "--verbose", "--cache-dir=rel/cache"],
]

NOT_PLAIN = [
    [], ["plan"], ["build", "--help"], ["--version"], ["build", "-j4"], ["build", "--jobs", "0"],
    ["build", "--jobs", "x"], ["build", "--jobs", "\u0661"], ["build", "--tier"],  # \u0661: a digit
    ["build", "--frob"], ["--tier", "wheel", "build"], ["build", "extra"],
    ["build", "--no-verify=1"], ["build", "--tier", "-x"], ["build", "--out="],
    ["build", "--", "--tier"], ["build", "build"], ["build", "-t=wheel"],
]


def _through_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """What Typer's `build` command hands the build, with the globals it set."""
    seen: list[BuildArgs] = []

    def capture(args: BuildArgs) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(cli_run_build, "run_build", capture)
    assert cli_build.build is not None  # the command is registered on `app`
    with pytest.raises(SystemExit) as done:
        app(args=hoist_globals(argv), prog_name="gradient")
    assert done.value.code == 0 and len(seen) == 1, argv
    return _resolved(seen[0])


def _direct(argv: list[str]) -> tuple[Any, ...]:
    args = parse_build(argv)
    assert args is not None, argv
    cli_common.set_globals(args.cache_dir, args.config, args.log_format, args.verbose,
                           args.quiet)
    return _resolved(args)


def _resolved(args: BuildArgs) -> tuple[Any, ...]:
    build_fields = {k: v for k, v in vars(args).items() if k not in GLOBALS}
    return build_fields, {k: cli_common.state[k] for k in GLOBALS}


@pytest.mark.parametrize("env", [{}, {"GRADIENT_CACHE_DIR": "/env/cache",
                                      "GRADIENT_CACHE_MODE": "read", "CI": "1"}])
@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_build_line_reads_as_typer_reads_it(argv: list[str], env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GRADIENT_CACHE_DIR", "GRADIENT_CACHE_MODE", "CI"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli_common, "state", dict(cli_common.state))
    assert _direct(argv) == _through_typer(argv, monkeypatch)


@pytest.mark.parametrize("argv", NOT_PLAIN, ids=" ".join)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_build(argv) is None


def test_a_plain_build_runs_without_typer_and_the_same_build_through_typer_agrees(
        example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("hello-app")
    direct = gradient(project, "build", "--tier", "wheel", "--jobs", "1",
                      env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert direct.returncode == 0, direct.stderr
    imported = {line.split("|")[-1].strip() for line in direct.stderr.splitlines()
                if line.startswith("import time:")}
    assert "gradient_build.cli_run_build" in imported
    assert not {n for n in imported if n.split(".")[0] in ("typer", "click")}, "Typer loaded"
    typer_path = gradient(project, "build", "--tier", "wheel", "-j1")  # glued: Typer reads it
    assert typer_path.returncode == 0, typer_path.stderr
    assert "wheel" in typer_path.stdout and "cached" in typer_path.stdout, typer_path.stdout
    bad = gradient(project, "build", "--tier", "wheel", "--jobs", "0")
    assert bad.returncode == 2 and "--jobs" in bad.stderr  # Typer's own words
