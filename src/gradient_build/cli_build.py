"""`gradient build`, `verify` and `plan`: the commands that walk the build graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_app import JsonOpt, RequireRunOpt, TierOpt, app, fail
from .cli_common import (
    attach_remote,
    make_renderer,
    must_run,
    open_session,
    stderr_warning,
    wanted_tiers,
)
from .cli_scale import CacheModeOpt, ShardOpt
from .cli_summary import show_verdicts
from .errors import ConfigError, GradientError


@app.command()
def build(
    tier: TierOpt = None,
    all_tiers: Annotated[bool, typer.Option("--all", help="every tier with its tools")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="build without verifying")] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, metavar="N",
                                             help="nodes at once (default: the CPUs)")] = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="DIR",
                                             help="output dir (dist/gradient)")] = None,
    check_reproducible: Annotated[bool, typer.Option(
        "--check-reproducible", help="build twice without the cache and compare")] = False,
    require_run: RequireRunOpt = None,
    atomic: Annotated[bool, typer.Option(
        "--atomic", help="promote nothing unless every tier succeeds (release pipelines); by "
                         "default the tiers that succeeded are promoted")] = False,
    shard_spec: ShardOpt = None,
    cache_mode: CacheModeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build (and by default verify) the named tiers and whatever they need."""
    from .cli_args import BuildArgs
    from .cli_run_build import run_build

    try:
        code = run_build(BuildArgs(
            tier=list(tier or []), all_tiers=all_tiers, no_verify=no_verify, jobs=jobs, out=out,
            check_reproducible=check_reproducible, require_run=require_run, atomic=atomic,
            shard=shard_spec, cache_mode=cache_mode, as_json=as_json))
    except GradientError as err:
        fail(err)
    raise typer.Exit(code)


@app.command()
def verify(tier: TierOpt = None, require_run: RequireRunOpt = None,
           as_json: JsonOpt = False) -> None:
    """Verify already-built artifacts again (those listed in dist/gradient/manifest.json).

    Each listed file is first compared with its sha256 in the manifest: a changed or
    missing artifact fails, it is not re-proved as whatever happens to be there now.
    """
    from .attest import fold_problems
    from .attest import problems as attestation_problems
    from .outputs import artifacts_from_manifest, read_manifest, tampered

    run_required = must_run(require_run)
    try:
        session = open_session()
        manifest = read_manifest(session.out_dir)
        artifacts = artifacts_from_manifest(session.project.root, manifest)
        wanted = tier or list(artifacts)
        missing = [t for t in wanted if t not in artifacts]
        if missing:
            raise ConfigError(f"not built yet: {', '.join(missing)} (run `gradient build` first)")
        renderer = make_renderer(as_json)
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
                results[node.tier] = fold_problems(results[node.tier], attestation_problems(
                    session.project.root, manifest, artifacts[node.tier]))  # SBOM, provenance
                if verdict.ok and not verdict.verified and run_required:
                    results[node.tier] |= {"ok": False, "problem": (
                        f"checked but not run ({verdict.why}); a run is required "
                        "(--require-run, the default when CI is set)")}
    except GradientError as err:
        fail(err)
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        show_verdicts(results)
    raise typer.Exit(0 if all(r["ok"] for r in results.values()) else 1)


@app.command()
def plan(tier: TierOpt = None, as_json: JsonOpt = False,
         all_tiers: Annotated[bool, typer.Option("--all")] = False,
         cache_mode: CacheModeOpt = None) -> None:
    """The build graph: what is cached (here, or in the remote cache: "remote hit"), what
    will rebuild and why. Builds and downloads nothing."""
    from .cli_summary import show_plan

    try:
        session = open_session()
        attach_remote(session, cache_mode, stderr_warning)
        session.cache.remote_download = False  # plan reads the remote's records, not files
        items = session.engine().plan(wanted_tiers(session, tier, all_tiers),
                                      skip_missing=all_tiers)
    except GradientError as err:
        fail(err)
    nodes = [{"node": i.node.id, "needs": list(i.node.needs), "status": i.status,
              "reasons": i.reasons, "tools": i.tools, "missing": i.missing} for i in items]
    tree = session.project.sources
    epoch = {"value": tree.epoch, "source": tree.epoch_source} if tree else None
    if as_json:
        print(json.dumps({"source_date_epoch": epoch, "nodes": nodes}, indent=2))
    else:
        show_plan(nodes, epoch)


