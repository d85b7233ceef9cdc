"""`gradient advise` and `gradient init`: from what the project is and where it is going, a tier.

Both take the target facts as flags of the same names as [target]'s keys (`--no-python`,
`--own-kernel`); facts a tier declares beyond the core's are set with `--fact NAME=yes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_app import JsonOpt, app, fail
from .cli_common import make_renderer, state
from .errors import ConfigError, GradientError

PythonOpt = Annotated[bool | None, typer.Option(
    "--python/--no-python", help="the target has a Python interpreter",
    show_default=False)]
DownloadsOpt = Annotated[bool | None, typer.Option(
    "--downloads/--no-downloads", help="installs there may download packages",
    show_default=False)]
VirtualenvOpt = Annotated[bool | None, typer.Option(
    "--virtualenv/--no-virtualenv", help="the target can make virtual environments",
    show_default=False)]
SystemLibsOpt = Annotated[bool | None, typer.Option(
    "--system-libs/--no-system-libs", help="system libraries can be preinstalled there",
    show_default=False)]
CondaOpt = Annotated[bool | None, typer.Option(
    "--conda/--no-conda", help="the target has conda, mamba or pixi",
    show_default=False)]
OsPackagesOpt = Annotated[bool | None, typer.Option(
    "--os-packages/--no-os-packages", help="the target installs .deb / .rpm packages",
    show_default=False)]
OwnUserspaceOpt = Annotated[bool | None, typer.Option(
    "--own-userspace/--no-own-userspace", help="the app must bring its own userspace (a container)",
    show_default=False)]
OwnKernelOpt = Annotated[bool | None, typer.Option(
    "--own-kernel/--no-own-kernel", help="the app must bring its own kernel (a VM image)",
    show_default=False)]
MicroOpt = Annotated[bool | None, typer.Option(
    "--microcontroller/--no-microcontroller", help="the target is a MicroPython board",
    show_default=False)]
FactOpt = Annotated[list[str] | None, typer.Option(
    "--fact", metavar="NAME=yes|no", help="any other target fact a tier declares (see [target])")]


def _target(flags: dict[str, bool | None], extra: list[str] | None, config: Any) -> Any:
    """[target] with the flags over it; each answer remembers which flag gave it."""
    target = config.target.answered({k: v for k, v in flags.items() if v is not None}, "flag")
    for name, value in _facts(extra or [], config.target.known).items():
        target = target.answered({name: value}, f"--fact {name}={'yes' if value else 'no'}")
    return target


@app.command()
def advise(
    python: PythonOpt = None, downloads: DownloadsOpt = None, virtualenv: VirtualenvOpt = None,
    system_libs: SystemLibsOpt = None, conda: CondaOpt = None, os_packages: OsPackagesOpt = None,
    own_userspace: OwnUserspaceOpt = None, own_kernel: OwnKernelOpt = None,
    microcontroller: MicroOpt = None, fact: FactOpt = None,
    build: Annotated[bool, typer.Option(
        "--build", help="then build and verify the recommended tier: advice with proof")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Find the project's facts, walk the gradient for them and the target, recommend a tier.

    Exit 0 with a recommendation, 1 when no tier fits, 2 when the facts contradict."""
    from .advise import advise as walk
    from .advise_open import open_subject

    flags = dict(python=python, downloads=downloads, virtualenv=virtualenv,
                 system_libs=system_libs, conda=conda, os_packages=os_packages,
                 own_userspace=own_userspace, own_kernel=own_kernel,
                 microcontroller=microcontroller)
    try:
        subject = open_subject(state.get("config"), state.get("cache_dir"))
        target = _target(flags, fact, subject.config)
        advice = walk(subject, target)
    except GradientError as err:
        fail(err)
    if as_json and not build:
        print(json.dumps(advice.to_json(), indent=2))
    elif not as_json:
        show_advice(advice)
    if not advice.recommended:
        raise typer.Exit(1)
    if build:
        code = _build(subject, advice.recommended, as_json)
        if as_json:
            print(json.dumps({**advice.to_json(), "build": code}, indent=2))
        raise typer.Exit(code)


def _build(subject: Any, tier: str, quiet: bool) -> int:
    """Build and verify `tier` as `gradient build --tier TIER` would: the proof of the advice."""
    from .api import Session
    from .cache import Cache
    from .smoke import smoke_for

    try:
        smoke_for(subject.config, subject.project)
        session = Session(subject.config, subject.project, subject.backends,
                          Cache(subject.cache_dir), subject.project.root / "dist" / "gradient")
        renderer = make_renderer(quiet)
        with renderer:
            report = session.engine(renderer.emit).build([tier])
    except GradientError as err:
        fail(err)
    if not quiet:
        renderer.summary(report, {n: b.rank for n, b in subject.backends.items()})
    return int(report.exit_code)


def _facts(given: list[str], known: dict[str, Any]) -> dict[str, bool]:
    """--fact NAME=yes|no, checked against the facts [target] knows."""
    from .options import nearest

    found: dict[str, bool] = {}
    for item in given:
        name, _, answer = item.partition("=")
        if name not in known:
            raise ConfigError(f"--fact: unknown fact {name!r} (facts here: {', '.join(known)})",
                              suggestion=nearest(name, known))
        if answer.lower() not in ("yes", "no", "true", "false"):
            raise ConfigError(f"--fact {item}: say {name}=yes or {name}=no")
        found[name] = answer.lower() in ("yes", "true")
    return found


@app.command()
def init(
    python: PythonOpt = None, downloads: DownloadsOpt = None, virtualenv: VirtualenvOpt = None,
    system_libs: SystemLibsOpt = None, conda: CondaOpt = None, os_packages: OsPackagesOpt = None,
    own_userspace: OwnUserspaceOpt = None, own_kernel: OwnKernelOpt = None,
    microcontroller: MicroOpt = None, fact: FactOpt = None,
    tier: Annotated[str | None, typer.Option(
        "--tier", "-t", metavar="TIER", help="the tier to start with (default: advise's)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite gradient.toml")] = False,
) -> None:
    """Write a starting gradient.toml from the project and `gradient advise`'s walk.

    The [verify] it writes runs `--version` or `--help` only when the app really accepts it
    (tried in the sandbox from the built wheel); it refuses to overwrite without --force."""
    from .init import write_initial
    from .registry import facts

    flags = dict(python=python, downloads=downloads, virtualenv=virtualenv,
                 system_libs=system_libs, conda=conda, os_packages=os_packages,
                 own_userspace=own_userspace, own_kernel=own_kernel,
                 microcontroller=microcontroller)
    try:
        given = {**{k: v for k, v in flags.items() if v is not None},
                 **_facts(fact or [], facts())}
        initial = write_initial(Path.cwd(), tier, given, force=force,
                                cache_dir=state.get("cache_dir"))
    except GradientError as err:
        fail(err)
    for finding in initial.found:
        typer.echo(f"found: {finding}")
    typer.echo(f"wrote {initial.path}")


def show_advice(advice: Any) -> None:
    """The facts with where each came from, the walk, the alternatives, what would change."""
    from .cli_console import escape
    from .cli_summary import out_console as out

    for note in advice.notes:
        out.print(f"[dim]note: {escape(note)}[/dim]")
    out.print("[bold]the project[/bold]")
    for name, fact in advice.facts["project"].items():
        out.print(f"  {name:14} {escape(fact['says'])}  [dim]({escape(fact['from'])})[/dim]")
    out.print("[bold]the target[/bold]")
    for name, fact in advice.facts["target"].items():
        shown = escape(fact["says"])
        if fact["from"] != "default":
            shown = f"[bold]{shown}[/bold]"
        out.print(f"  {name:14} {shown}  [dim]({escape(fact['from'])})[/dim]")
    out.print("[bold]the walk[/bold]")
    for step in advice.steps:
        if step.tier == advice.recommended:
            mark = "[green]->  [/green]"
        else:
            mark = "[green]also[/green]" if step.fits else "[dim]no  [/dim]"
        line = f"  {mark} {step.tier:8} {escape(step.reason)}"
        if step.change and not step.fits:
            line += f"  [dim](fits {escape(step.change)})[/dim]"
        out.print(line)
    if advice.recommended is None:
        out.print("no tier fits this project and target")
        return
    out.print(f"[bold]recommended: {advice.recommended}[/bold]  ({escape(advice.chain)})")
    for alt in advice.alternatives:
        out.print(f"  also works: {alt.tier:8} {escape(alt.costs)}")
    changes = [(s.tier, s.change) for s in advice.steps if s.change]
    for tier, change in changes:
        out.print(f"  would change the answer: {escape(change)}: {tier}")
