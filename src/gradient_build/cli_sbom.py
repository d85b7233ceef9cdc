"""`gradient sbom`: what the promoted artifacts contain, from the SBOMs in the manifest."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .cli_app import JsonOpt, TierOpt, app, fail
from .cli_common import open_session
from .errors import ConfigError, GradientError


def _sboms(session: Any, tiers: list[str] | None) -> list[tuple[str, str, str]]:
    """(tier, path, text) of every SBOM the manifest lists (of `tiers`, when given)."""
    from .outputs import read_manifest

    manifest = read_manifest(session.out_dir)
    items = [a for a in manifest.get("artifacts", []) if a.get("role") == "sbom"
             and (not tiers or a.get("tier") in tiers)]
    if not items:
        raise ConfigError("no SBOM in dist/gradient/manifest.json"
                          + (f" for {', '.join(tiers)}" if tiers else "")
                          + ": run `gradient build` first")
    found = []
    for item in items:
        try:
            found.append((item["tier"], item["path"],
                          (session.project.root / item["path"]).read_text()))
        except OSError as exc:
            raise ConfigError(f"{item['path']}: {exc.strerror} (run `gradient build` again)"
                              ) from None
    return found


@app.command()
def sbom(
    query: Annotated[str | None, typer.Option(
        "--query", metavar="NAME[==VERSION]",
        help="which artifacts contain this component (a distribution, package or library)")
    ] = None,
    tier: TierOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What the built artifacts contain, from each artifact's CycloneDX SBOM."""
    from .sbom import listed
    from .sbom import query as search

    try:
        session = open_session()
        documents = _sboms(session, tier)
    except GradientError as err:
        fail(err)
    if query is None:
        rows = [{"tier": t, "sbom": p, "components": len(listed(text))}
                for t, p, text in documents]
        if as_json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(f"{row['tier']:8} {row['components']:5} components  {row['sbom']}")
        return
    name, _, version = query.partition("==")
    hits = search(documents, name.strip(), version.strip() or None)
    if as_json:
        print(json.dumps({"query": query, "found": hits}, indent=2))
    elif not hits:
        print(f"no artifact contains {query}")
    else:
        for hit in hits:
            print(f"{hit['tier']:8} {hit['name']}=={hit['version']}  {hit['purl']}")
    raise typer.Exit(0 if hits else 1)
