"""The `gradient` command: the only module that talks to the terminal."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from .errors import ConfigError, GradientError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Build a Python project along the packaging gradient, and prove each "
                       "artifact runs where it is going.")

_state: dict[str, Any] = {}

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="gradient.toml to use")]
TierOpt = Annotated[list[str] | None, typer.Option("--tier", "-t", help="tier to act on")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a machine-readable result")]


@app.callback()
def _main(
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", envvar="GRADIENT_CACHE_DIR",
                                                    help="where gradient keeps its cache")] = None,
    log_format: Annotated[str | None, typer.Option(
        "--log-format", help="'human' or 'json' (json lines; the default when CI is set)")] = None,
) -> None:
    _state["cache_dir"] = cache_dir
    fmt = log_format or ("json" if os.environ.get("CI") else "human")
    if fmt not in ("human", "json"):
        _fail(ConfigError(f"--log-format must be 'human' or 'json', not {fmt!r}"))
    _state["log_format"] = fmt


def _fail(err: GradientError) -> NoReturn:
    from .cli_render import error_text

    sys.stderr.write(error_text(err))
    raise typer.Exit(err.exit_code)


def _session(config: Path | None, out: Path | None = None) -> Any:
    from .api import open_project

    return open_project(config, cache_dir=_state.get("cache_dir"), out_dir=out)


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
    require_run: Annotated[bool | None, typer.Option(
        "--require-run/--no-require-run",
        help="fail a tier whose artifact could only be checked, not run (default: on when "
             "CI is set)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build (and by default verify) the named tiers and whatever they need."""
    from .cli_render import Renderer

    try:
        session = _session(config, out)
        wanted = _wanted(session, tier, all_tiers)
        renderer = Renderer(_state["log_format"], quiet=as_json)
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
            must_run = bool(os.environ.get("CI")) if require_run is None else require_run
            report = session.engine(renderer.emit, jobs=jobs, verify=not no_verify,
                                    require_run=must_run).build(wanted, skip_missing=all_tiers)
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
def verify(tier: TierOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Verify already-built artifacts again (those listed in dist/gradient/manifest.json)."""
    from .cli_render import Renderer
    from .outputs import artifacts_from_manifest, read_manifest

    try:
        session = _session(config)
        artifacts = artifacts_from_manifest(session.project.root, read_manifest(session.out_dir))
        wanted = tier or list(artifacts)
        missing = [t for t in wanted if t not in artifacts]
        if missing:
            raise ConfigError(f"not built yet: {', '.join(missing)} (run `gradient build` first)")
        renderer = Renderer(_state["log_format"], quiet=as_json)
        engine = session.engine(renderer.emit)
        results: dict[str, Any] = {}
        with renderer:
            for node in engine.nodes(wanted):
                if node.tier in wanted:
                    verdict = engine.verify_artifact(node, artifacts[node.tier], {
                        d: artifacts[d] for d in node.needs if d in artifacts})
                    results[node.tier] = verdict.to_json() | {"verified": verdict.verified}
    except GradientError as err:
        _fail(err)
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        renderer.show_verdicts(results)
    raise typer.Exit(0 if all(r["ok"] for r in results.values()) else 1)


@app.command()
def plan(tier: TierOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
         all_tiers: Annotated[bool, typer.Option("--all")] = False) -> None:
    """The build graph: what is cached, what will rebuild and why. Builds nothing."""
    from .cli_render import show_plan

    try:
        session = _session(config)
        items = session.engine().plan(_wanted(session, tier, all_tiers), skip_missing=all_tiers)
    except GradientError as err:
        _fail(err)
    data = [{"node": i.node.id, "needs": list(i.node.needs), "status": i.status,
             "reasons": i.reasons, "tools": i.tools, "missing": i.missing} for i in items]
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        show_plan(data)


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
    config: ConfigOpt = None,
    python: Annotated[bool | None, typer.Option("--python/--no-python",
                                                help="the target has Python")] = None,
    downloads: Annotated[bool | None, typer.Option("--downloads/--no-downloads",
                                                   help="installs may download")] = None,
    container: Annotated[bool | None, typer.Option("--container/--no-container",
                                                   help="the target runs containers")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Walk the gradient for this project and target, and recommend a tier with reasons."""
    import dataclasses

    from .advise import advise as walk
    from .cli_render import show_advice

    try:
        session = _session(config)
        flags = {"python": python, "downloads": downloads, "container": container}
        target = dataclasses.replace(session.config.target,
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
    config: ConfigOpt = None,
    cache: Annotated[bool, typer.Option("--cache", help="only the cache")] = False,
    outputs: Annotated[bool, typer.Option("--outputs", help="only dist/gradient")] = False,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", help="shrink the cache to this size (e.g. 5G) instead")] = None,
) -> None:
    """Remove gradient's outputs (dist/gradient) and its cache."""
    from .cache import Cache, default_dir

    store = Cache(Path(_state.get("cache_dir") or default_dir()))
    if max_size:
        removed = store.prune(_parse_size(max_size))
        typer.echo(f"removed {removed} cache entries from {store.root}")
        return
    if not cache:
        root = (config.resolve().parent if config else Path.cwd())
        target = root / "dist" / "gradient"
        shutil.rmtree(target, ignore_errors=True)
        typer.echo(f"removed {target}")
    if not outputs:
        store.clear()
        typer.echo(f"removed {store.root}")


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
    from .registry import backends

    print(json.dumps(json_schema({n: b.Options for n, b in backends().items()}), indent=2))


def main() -> None:
    try:
        app()
    except GradientError as err:
        from .cli_render import error_text

        sys.stderr.write(error_text(err))
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: dist/gradient/ is unchanged\n")
        raise SystemExit(130) from None
