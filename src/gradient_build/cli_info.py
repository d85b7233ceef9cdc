"""`gradient tiers`, `clean`, `schema`, `version`, `docs`: what is here (advise and init are in
cli_advise)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_app import JsonOpt, app, fail
from .cli_common import state
from .errors import ConfigError


@app.command()
def tiers(as_json: JsonOpt = False) -> None:
    """Every tier in gradient order, whether its tools are here, and how to get them."""
    from .cli_summary import show_tiers
    from .registry import backends, broken

    rows = []
    for name, backend in backends().items():
        try:  # what its verification would run on here: a daemon, a runtime, KVM
            environment = backend.verify_environment(backend.Options())
        except Exception as exc:  # a probe must not take `gradient tiers` down
            environment = {"probe": f"failed: {exc}"}
        rows.append({"tier": name, "rank": backend.rank, "artifact": backend.artifact,
                     "target": backend.target, "consumes": list(backend.consumes),
                     "tools": [{"name": t.name, "present": t.present(), "version": t.version(),
                                "required": t.required, "get": t.get} for t in backend.tools],
                     "environment": environment})
    for name, why in broken().items():
        rows.append({"tier": name, "rank": None, "artifact": "", "target": "", "consumes": [],
                     "tools": [], "broken": why})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        show_tiers(rows)


@app.command()
def clean(
    cache: Annotated[bool, typer.Option(
        "--cache", help="also empty the whole shared cache (every project's entries)")] = False,
    outputs: Annotated[bool, typer.Option("--outputs", help="only dist/gradient")] = False,
    max_size: Annotated[str | None, typer.Option(
        "--max-size", metavar="SIZE",
        help="shrink the cache to this size (e.g. 5G) instead")] = None,
) -> None:
    """Remove this project's outputs (dist/gradient) and its own cache entries."""
    from .cache import Cache, default_dir
    from .cli_summary import human_size
    from .graph import project_id

    store = Cache(Path(state.get("cache_dir") or default_dir()))
    if max_size:
        removed = store.prune(_parse_size(max_size), grace=0)
        typer.echo(f"removed {removed} cache entries from {store.root}")
        return
    config = state.get("config")
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
        fail(ConfigError(f"--max-size: cannot read {text!r} as a size like 500M or 5G"))


@app.command()
def schema() -> None:
    """Print the JSON Schema of gradient.toml (for editors)."""
    from .config import json_schema
    from .registry import backends, facts

    print(json.dumps(json_schema({n: b.Options for n, b in backends().items()}, facts()),
                     indent=2))




@app.command()
def version(as_json: JsonOpt = False) -> None:
    """gradient's version, its Python, and the version of every tool its tiers found here."""
    import platform

    from . import __version__
    from .registry import backends

    tools: dict[str, str | None] = {}
    for backend in backends().values():
        for tool in backend.tools:
            tools.setdefault(tool.name, tool.version() if tool.present() else None)
    data: dict[str, Any] = {"gradient": __version__, "python": platform.python_version(),
                            "executable": sys.executable, "tools": dict(sorted(tools.items()))}
    if as_json:
        print(json.dumps(data, indent=2))
        return
    typer.echo(f"gradient {__version__} (Python {data['python']}, {sys.executable})")
    for name, found in data["tools"].items():
        typer.echo(f"  {name:26} {found or 'not found'}")


@app.command()
def docs() -> None:
    """Print every command and option as Markdown (docs/cli.md is this, generated)."""
    from .cli_docs import markdown

    sys.stdout.write(markdown(app))
