"""`gradient matrix`: the fan-out of [matrix] as a GitHub Actions workflow or a GitLab CI
pipeline. gradient does not schedule: each shard is one CI job running `gradient build
--shard`, and one last job runs `gradient merge` over the shards' outputs.

The files are written as YAML by hand (every scalar JSON-quoted, which YAML reads as is),
so the output is stable byte for byte and needs no YAML library. The first line marks the
file as gradient's: a file without it is someone else's and is never overwritten.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from .config import Config
from .errors import GradientError
from .shard import expand, variants

Engine = Literal["github", "gitlab"]
MARK = "# Written by `gradient matrix`"
HEADER = (f"{MARK} from [matrix] in gradient.toml: edit that and run it again "
          "(this line lets it overwrite the file).\n")
PATHS: dict[str, str] = {"github": ".github/workflows/gradient.yml", "gitlab": ".gitlab-ci.yml"}
GITHUB_RUNNERS = {"linux-x86_64": "ubuntu-latest", "linux-aarch64": "ubuntu-24.04-arm",
                  "macos-arm64": "macos-latest", "macos-x86_64": "macos-13",
                  "windows-amd64": "windows-latest", "windows-x86_64": "windows-latest"}


class NotOurs(GradientError):
    """The target file exists and gradient did not write it."""

    exit_code = 1


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def dump(data: Any, indent: int = 0) -> str:
    """YAML for nested dicts, lists and scalars (keys plain where they are plain words)."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = key if re.fullmatch(r"[A-Za-z_][\w.-]*", key) else json.dumps(key)
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{name}:\n{dump(value, indent + 1)}")
            else:
                empty = "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) \
                    else _scalar(value)
                lines.append(f"{pad}{name}: {empty}")
    else:
        for item in data:
            if isinstance(item, dict | list) and item:
                inner = dump(item, indent + 1)
                lines.append(f"{pad}- {inner.lstrip()}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return "\n".join(lines)


def _python(variant: str) -> str:
    found = re.match(r"py(\d+\.\d+)-", variant)
    return found.group(1) if found else "3.x"


def _platform(variant: str) -> str:
    return re.sub(r"^py\d+\.\d+-", "", variant)


def _remote_env(config: Config, engine: Engine) -> dict[str, str]:
    if not config.cache.remote:
        return {}
    if engine == "github":
        return {"GRADIENT_CACHE_REMOTE_USER": "${{ secrets.GRADIENT_CACHE_REMOTE_USER }}",
                "GRADIENT_CACHE_REMOTE_PASSWORD": "${{ secrets.GRADIENT_CACHE_REMOTE_PASSWORD }}"}
    return {}  # GitLab: set them as masked CI/CD variables; a pipeline file must not hold them


def github(config: Config) -> dict[str, Any]:
    """The workflow: a matrix job of every shard, then the merge (and publish) job."""
    matrix = config.matrix
    include = [{"tier": s.tiers[0], "variant": s.variant, "python": _python(s.variant),
                "runner": matrix.runners.get(_platform(s.variant))
                or GITHUB_RUNNERS.get(_platform(s.variant), "ubuntu-latest")}
               for s in expand(config)]
    install = [{"name": "Install gradient", "run": "\n".join(matrix.install)}] \
        if matrix.install else []
    checkout = {"uses": "actions/checkout@v4"}  # the last commit alone: SOURCE_DATE_EPOCH
    shard_steps: list[dict[str, Any]] = [
        checkout,
        {"uses": "actions/setup-python@v5", "with": {"python-version": "${{ matrix.python }}"}},
        *install,
        {"name": "Build and verify the shard",
         "run": 'gradient build --shard "tier=${{ matrix.tier }},variant=${{ matrix.variant }}"',
         **({"env": _remote_env(config, "github")} if config.cache.remote else {})},
        {"uses": "actions/upload-artifact@v4", "if": "always()",
         "with": {"name": "gradient-shard-${{ matrix.tier }}-${{ matrix.variant }}",
                  "path": "dist/gradient/", "if-no-files-found": "error"}},
    ]
    first = include[0]["python"] if include else "3.x"
    merge_steps: list[dict[str, Any]] = [
        checkout,
        {"uses": "actions/setup-python@v5", "with": {"python-version": first}},
        *install,
        {"uses": "actions/download-artifact@v4",
         "with": {"pattern": "gradient-shard-*", "path": "dist/shards"}},
        {"name": "Merge the shards", "run": "gradient merge dist/shards/* --out dist/gradient"},
        {"uses": "actions/upload-artifact@v4",
         "with": {"name": "gradient-release", "path": "dist/gradient/"}},
        *([{"name": "Publish", "run": "\n".join(matrix.publish)}] if matrix.publish else []),
    ]
    return {
        "name": "gradient",
        "on": {"push": {"branches": ["main"], "tags": ["v*"]}, "pull_request": {},
               "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": {
            "shard": {"name": "${{ matrix.tier }} ${{ matrix.variant }}",
                      "runs-on": "${{ matrix.runner }}",
                      "strategy": {"fail-fast": False, "matrix": {"include": include}},
                      "steps": shard_steps},
            # after failed shards too: the merge then says which shard failed, and why
            "merge": {"needs": "shard", "if": "${{ !cancelled() }}", "runs-on": "ubuntu-latest",
                      "steps": merge_steps},
        },
    }


def gitlab(config: Config) -> dict[str, Any]:
    """The pipeline: one `parallel: matrix` job (a shard each), then the merge job."""
    matrix = config.matrix
    tiers = matrix.tiers or config.tiers
    entries: list[dict[str, Any]] = []
    for variant in variants(matrix):
        entry: dict[str, Any] = {"TIER": list(tiers), "VARIANT": variant}
        if matrix.image:
            entry["PYTHON"] = _python(variant)
        if matrix.runners:  # a tag for every platform: its runner's, else its own name
            entry["RUNNER"] = matrix.runners.get(_platform(variant), _platform(variant))
        entries.append(entry)
    out = "dist/shards/$TIER-$VARIANT"  # under dist/: never taken for sources
    shard: dict[str, Any] = {
        "stage": "build",
        "parallel": {"matrix": entries},
        **({"tags": ["$RUNNER"]} if matrix.runners else {}),
        **({"image": matrix.image.replace("{python}", "$PYTHON")} if matrix.image else {}),
        "before_script": list(matrix.install),
        "script": [f'gradient build --shard "tier=$TIER,variant=$VARIANT" --out "{out}"'],
        "artifacts": {"when": "always", "paths": [f"{out}/"]},
    }
    merge: dict[str, Any] = {
        "stage": "merge",
        "needs": ["gradient-shard"],
        "when": "always",  # after failed shards too: the merge says which one, and why
        "before_script": list(matrix.install),
        "script": ["gradient merge dist/shards/* --out dist/gradient", *matrix.publish],
        "artifacts": {"paths": ["dist/gradient/"]},
    }
    return {"stages": ["build", "merge"], "gradient-shard": shard, "gradient-merge": merge}


def render(config: Config, engine: Engine) -> str:
    if not (config.matrix.tiers or config.tiers):
        raise config.error("[matrix] has no tiers to fan out: set `tier` or [matrix] tiers",
                           "matrix")
    data = github(config) if engine == "github" else gitlab(config)
    return HEADER + dump(data) + "\n"


def write(config: Config, engine: Engine, root: Path) -> Path:
    """Write the CI file for `engine` under `root`; NotOurs when a file there lacks the mark."""
    path = root / PATHS[engine]
    text = render(config, engine)
    if path.exists() and not path.read_text(errors="replace").startswith(MARK):
        raise NotOurs(f"{path} exists and `gradient matrix` did not write it (its first line "
                      "is not the mark): move it aside, or use --print and merge by hand")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

