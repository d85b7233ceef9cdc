"""The `gradient` command: the only module that talks to the terminal."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer

from .errors import ConfigError, GradientError, Stopped

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build a Python project along the packaging gradient, and prove each "
                       "artifact runs where it is going.")

_state: dict[str, Any] = {"log_format": "human", "verbose": False}

TierOpt = Annotated[list[str] | None, typer.Option("--tier", "-t", help="tier to act on")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a machine-readable result")]
RequireRunOpt = Annotated[bool | None, typer.Option(
    "--require-run/--no-require-run",
    help="fail a tier whose artifact could only be checked, not run (default: on when "
         "CI is set)")]

# Options of the group that may also follow the command: main() moves them in front.
GLOBAL_VALUED = ("--cache-dir", "--config", "--log-format")
GLOBAL_FLAGS = ("--verbose", "-v")


@app.callback()
def _main(
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", envvar="GRADIENT_CACHE_DIR",
                                                    help="where gradient keeps its cache")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="gradient.toml to use")] = None,
    log_format: Annotated[str | None, typer.Option(
        "--log-format", help="'human' or 'json' (json lines; the default when CI is set)")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="show tracebacks of internal errors")] = False,
) -> None:
    """Global options go before or after the command."""
    _state["cache_dir"] = cache_dir
    _state["config"] = config
    _state["verbose"] = verbose
    fmt = log_format or ("json" if os.environ.get("CI") else "human")
    if fmt not in ("human", "json"):
        _fail(ConfigError(f"--log-format must be 'human' or 'json', not {fmt!r}"))
    _state["log_format"] = fmt


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


def _fail(err: GradientError) -> NoReturn:
    from .cli_render import error_text

    sys.stderr.write(error_text(err, _state["verbose"]))
    raise typer.Exit(err.exit_code)


def _session(out: Path | None = None) -> Any:
    from .api import open_project

    return open_project(_state.get("config"), cache_dir=_state.get("cache_dir"), out_dir=out)


def _renderer(quiet: bool) -> Any:
    from .cli_render import Renderer

    return Renderer(_state["log_format"], quiet=quiet, verbose=_state["verbose"])


def _must_run(require_run: bool | None) -> bool:
    return bool(os.environ.get("CI")) if require_run is None else require_run


def _wanted(session: Any, tiers: list[str] | None, all_tiers: bool) -> list[str]:
    if all_tiers:
        return list(session.backends)
    wanted = tiers or session.config.tiers
    if not wanted:
        raise session.config.error("nothing to build: set `tier = \"wheel\"` (or pass --tier)",
                                   "tier")
    return list(wanted)


@app.command()
def build(
    tier: TierOpt = None,
    all_tiers: Annotated[bool, typer.Option("--all", help="every tier with its tools")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="build without verifying")] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="nodes at once")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output dir (dist/gradient)")] = None,
    check_reproducible: Annotated[bool, typer.Option(
        "--check-reproducible", help="build twice without the cache and compare")] = False,
    require_run: RequireRunOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build (and by default verify) the named tiers and whatever they need."""
    try:
        session = _session(out)
        wanted = _wanted(session, tier, all_tiers)
        renderer = _renderer(as_json)
        if check_reproducible:
            from .reproducible import check

            results = check(session, wanted, renderer.emit, jobs=jobs)
            renderer.close()
            if as_json:
                print(json.dumps(results, indent=2))
            else:
                renderer.show_reproducibility(results)
            raise typer.Exit(0 if all(r["identical"] for r in results.values()) else 1)
        with renderer:
            engine = session.engine(renderer.emit, jobs=jobs, verify=not no_verify,
                                    require_run=_must_run(require_run))
            report = engine.build(wanted, skip_missing=all_tiers)
    except GradientError as err:
        _fail(err)
    if as_json:
        print(json.dumps(_report_json(report), indent=2))
    else:
        renderer.summary(report, session.project.root)
    raise typer.Exit(report.exit_code)


def _report_json(report: Any) -> dict[str, Any]:
    return {
        "exit_code": report.exit_code,
        "manifest": report.manifest,
        "failures": {t: {"message": e.message, "detail": e.detail, "exit_code": e.exit_code}
                     for t, e in report.failures.items()},
        "skipped": report.skipped,
    }


@app.command()
def verify(tier: TierOpt = None, require_run: RequireRunOpt = None,
           as_json: JsonOpt = False) -> None:
    """Verify already-built artifacts again (those listed in dist/gradient/manifest.json).

    Each listed file is first compared with its sha256 in the manifest: a changed or
    missing artifact fails, it is not re-proved as whatever happens to be there now.
    """
    from .outputs import artifacts_from_manifest, read_manifest, tampered

    must_run = _must_run(require_run)
    try:
        session = _session()
        manifest = read_manifest(session.out_dir)
        artifacts = artifacts_from_manifest(session.project.root, manifest)
        wanted = tier or list(artifacts)
        missing = [t for t in wanted if t not in artifacts]
        if missing:
            raise ConfigError(f"not built yet: {', '.join(missing)} (run `gradient build` first)")
        renderer = _renderer(as_json)
        engine = session.engine(renderer.emit)
        changed = tampered(session.project.root, manifest)
        results: dict[str, Any] = {}
        with renderer:
            for node in engine.nodes(wanted):
                if node.tier not in wanted:
                    continue
                problems = [p for t in (node.tier, *node.needs) for p in changed.get(t, [])]
                if problems:
                    results[node.tier] = {"ok": False, "verified": False, "command": [],
                                          "problem": problems[0], "output": "\n".join(problems[1:])}
                    continue
                verdict = engine.verify_artifact(node, artifacts[node.tier], {
                    d: artifacts[d] for d in node.needs if d in artifacts})
                results[node.tier] = verdict.to_json() | {"verified": verdict.verified}
                if verdict.ok and not verdict.verified and must_run:
                    results[node.tier] |= {"ok": False, "problem": (
                        f"checked but not run ({verdict.why}); a run is required "
                        "(--require-run, the default when CI is set)")}
    except GradientError as err:
        _fail(err)
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        renderer.show_verdicts(results)
    raise typer.Exit(0 if all(r["ok"] for r in results.values()) else 1)


@app.command()
def plan(tier: TierOpt = None, as_json: JsonOpt = False,
         all_tiers: Annotated[bool, typer.Option("--all")] = False) -> None:
    """The build graph: what is cached, what will rebuild and why. Builds nothing."""
    from .cli_render import show_plan

    try:
        session = _session()
        items = session.engine().plan(_wanted(session, tier, all_tiers), skip_missing=all_tiers)
    except GradientError as err:
        _fail(err)
    nodes = [{"node": i.node.id, "needs": list(i.node.needs), "status": i.status,
              "reasons": i.reasons, "tools": i.tools, "missing": i.missing} for i in items]
    tree = session.project.sources
    epoch = {"value": tree.epoch, "source": tree.epoch_source} if tree else None
    if as_json:
        print(json.dumps({"source_date_epoch": epoch, "nodes": nodes}, indent=2))
    else:
        show_plan(nodes, epoch)


@app.command()
def tiers(as_json: JsonOpt = False) -> None:
    """Every tier in gradient order, whether its tools are here, and how to get them."""
    from .cli_render import show_tiers
    from .registry import backends, broken

    rows = []
    for name, backend in backends().items():
        rows.append({"tier": name, "rank": backend.rank, "artifact": backend.artifact,
                     "target": backend.target, "consumes": list(backend.consumes),
                     "tools": [{"name": t.name, "present": t.present(), "version": t.version(),
                                "required": t.required, "get": t.get} for t in backend.tools]})
    for name, why in broken().items():
        rows.append({"tier": name, "rank": None, "artifact": "", "target": "", "consumes": [],
                     "tools": [], "broken": why})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        show_tiers(rows)


@app.command()
def advise(
    python: Annotated[bool | None, typer.Option("--python/--no-python",
                                                help="the target has Python")] = None,
    downloads: Annotated[bool | None, typer.Option("--downloads/--no-downloads",
                                                   help="installs may download")] = None,
    container: Annotated[bool | None, typer.Option("--container/--no-container",
                                                   help="the target runs containers")] = None,
    fact: Annotated[list[str] | None, typer.Option(
        "--fact", help="any other target fact, NAME=yes or NAME=no (see [target])")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Walk the gradient for this project and target, and recommend a tier with reasons."""
    import dataclasses

    from .advise import advise as walk
    from .cli_render import show_advice

    try:
        session = _session()
        flags = {"python": python, "downloads": downloads, "container": container,
                 **_facts(fact or [], session.config.target.known)}
        target = session.config.target.with_answers(
            **{k: v for k, v in flags.items() if v is not None})
        chosen, steps = walk(session.project, session.config, session.backends, target)
    except GradientError as err:
        _fail(err)
    if as_json:
        print(json.dumps({"recommended": chosen, "steps": [dataclasses.asdict(s) for s in steps]},
                         indent=2))
    else:
        show_advice(chosen, steps)
    raise typer.Exit(0 if chosen else 1)


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
    tier: Annotated[str, typer.Option("--tier", "-t", help="the tier to start with")] = "wheel",
    force: Annotated[bool, typer.Option("--force", help="overwrite gradient.toml")] = False,
) -> None:
    """Write a starting gradient.toml for the project in the current directory."""
    from .init import write_initial

    try:
        path = write_initial(Path.cwd(), tier, force=force, cache_dir=_state.get("cache_dir"))
    except GradientError as err:
        _fail(err)
    typer.echo(f"wrote {path}")


@app.command()
def clean(
    cache: Annotated[bool, typer.Option(
        "--cache", help="also empty the whole shared cache (every project's entries)")] = False,
    outputs: Annotated[bool, typer.Option("--outputs", help="only dist/gradient")] = False,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", help="shrink the cache to this size (e.g. 5G) instead")] = None,
) -> None:
    """Remove this project's outputs (dist/gradient) and its own cache entries."""
    from .cache import Cache, default_dir
    from .cli_render import human_size
    from .graph import project_id

    store = Cache(Path(_state.get("cache_dir") or default_dir()))
    if max_size:
        removed = store.prune(_parse_size(max_size), grace=0)
        typer.echo(f"removed {removed} cache entries from {store.root}")
        return
    config = _state.get("config")
    root = (config.resolve().parent if config else Path.cwd().resolve())
    target = root / "dist" / "gradient"
    shutil.rmtree(target, ignore_errors=True)
    typer.echo(f"removed {target}")
    if outputs:
        return
    if cache:
        freed = store.clear()
        typer.echo(f"removed {store.root} ({human_size(freed)})")
    else:
        count, freed = store.forget_project(project_id(root))
        typer.echo(f"removed {count} cache entries of this project ({human_size(freed)}) "
                   f"from {store.root}")


def _parse_size(text: str) -> int:
    from .cache import parse_size

    try:
        return parse_size(text)
    except ValueError:
        _fail(ConfigError(f"--max-size: cannot read {text!r} as a size like 500M or 5G"))


@app.command()
def schema() -> None:
    """Print the JSON Schema of gradient.toml (for editors)."""
    from .config import json_schema
    from .registry import backends, facts

    print(json.dumps(json_schema({n: b.Options for n, b in backends().items()}, facts()),
                     indent=2))


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
        sys.stderr.write(error_text(err, _state["verbose"]))
        code = err.exit_code
    except (Stopped, KeyboardInterrupt):
        children.stop_all()
        where = ("dist/gradient/ may hold this run's artifacts" if children.changed
                 else "dist/gradient/ is unchanged")
        sys.stderr.write(f"interrupted: {where}\n")
        code = 130
    except Exception as exc:  # the one place every other error ends up
        sys.stderr.write(crash_text(exc, _state["verbose"], _state["log_format"] == "json"))
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(code)
