"""`gradient matrix` and `gradient merge`, and the options build and plan take for shards and
the remote cache: the commands of a release that outgrows one machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .cli_app import JsonOpt, app, fail
from .cli_common import open_session, state, stderr_warning
from .errors import ConfigError, GradientError

CacheModeOpt = Annotated[str | None, typer.Option(
    "--cache-mode", metavar="MODE", envvar="GRADIENT_CACHE_MODE",
    help="the remote cache: 'read', 'readwrite' (default) or 'off'")]
ShardOpt = Annotated[str | None, typer.Option(
    "--shard", metavar="SPEC",
    help="build one shard: K/N (of [matrix], or the tiers split N ways) or "
         "tier=TIER,variant=VARIANT; writes shard.json beside the manifest")]


def register() -> None:
    """Add matrix and merge to the app (after build and the info commands, for --help)."""
    app.command()(matrix)
    app.command()(merge)


def matrix(
    ci: Annotated[str, typer.Option("--ci", metavar="ENGINE",
                                    help="'github' (Actions workflow) or 'gitlab' (CI pipeline)")],
    to_stdout: Annotated[bool, typer.Option("--print", help="write it to stdout instead")] = False,
) -> None:
    """Write the CI fan-out of [matrix]: one job per shard (tier x variant) running
    `gradient build --shard`, then one job running `gradient merge`. Refuses to overwrite a
    file it did not write."""
    from . import matrix as emit

    try:
        if ci not in emit.PATHS:
            from .options import nearest

            raise ConfigError(f"--ci must be one of {', '.join(emit.PATHS)}, not {ci!r}",
                              suggestion=nearest(ci, emit.PATHS))
        session = open_session()
        if to_stdout:
            sys.stdout.write(emit.render(session.config, ci))  # type: ignore[arg-type]
            return
        path = emit.write(session.config, ci, session.project.root)  # type: ignore[arg-type]
    except GradientError as err:
        fail(err)
    typer.echo(f"wrote {path}")


def merge(
    folders: Annotated[list[Path], typer.Argument(metavar="DIR...",
                                                  help="the shards' output folders")],
    out: Annotated[Path | None, typer.Option("--out", metavar="DIR",
                                             help="output dir (dist/gradient)")] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="merge what is whole even if shards failed or are missing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Combine shards' outputs into one folder with one manifest and one SHA256SUMS: a node
    two shards built must have one digest, and only verified artifacts are merged."""
    from .merge import merge as run_merge

    root = Path.cwd()
    try:
        names = _matrix_names(root)
        merged = run_merge([f.resolve() for f in folders],
                           (out or root / "dist" / "gradient").resolve(), root,
                           allow_partial=allow_partial, names=names)
    except GradientError as err:
        fail(err)
    for problem in merged.problems:
        stderr_warning(f"left out: {problem}")
    if as_json:
        print(json.dumps(merged.manifest, indent=2))
        return
    tiers = sorted({a["tier"] for a in merged.manifest["artifacts"]})
    typer.echo(f"merged {len(folders)} shard(s): {', '.join(tiers)} -> "
               f"{out or Path('dist/gradient')}")


def _matrix_names(root: Path) -> list[str] | None:
    """The shard names of [matrix] here, to name a missing shard (None without a config)."""
    from .api import load_config
    from .config import CONFIG_NAME
    from .shard import expand

    path = state.get("config") or root / CONFIG_NAME
    if not Path(path).exists():
        return None
    try:
        return [f"{'+'.join(s.tiers)}@{s.variant}" for s in expand(load_config(Path(path)))]
    except GradientError:
        return None
