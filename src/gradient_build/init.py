"""`gradient init`: a starting gradient.toml from what the project's build backend says."""

from __future__ import annotations

import json
from pathlib import Path

from . import project as project_mod
from . import sources
from .cache import default_dir
from .config import CONFIG_NAME, Config
from .errors import ConfigError
from .registry import backends
from .runner import tool_environment


def write_initial(root: Path, tier: str, *, force: bool = False,
                  cache_dir: Path | None = None) -> Path:
    path = root / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(f"{path} exists already (use --force to overwrite)")
    known = backends()
    if tier not in known:
        from .options import nearest

        raise ConfigError(f"unknown tier {tier!r}", key="--tier", suggestion=nearest(tier, known))
    singles = sorted(p.name for p in root.glob("*.py") if p.name not in ("setup.py", "conftest.py"))
    lines = [f"tier = {json.dumps(tier)}", ""]
    if not project_mod.is_buildable(root):
        if len(singles) != 1:
            raise ConfigError("no pyproject.toml or setup.py, and not exactly one module here")
        lines += ["[app]", f"module = {json.dumps(singles[0])}", ""]
    else:
        config = Config(path=path, tiers=[tier])
        tree = sources.scan(root)
        cache = (cache_dir or default_dir()).resolve()
        project = project_mod.load(root, tree, config, cache, tool_environment(cache, tree.epoch))
        if len(project.scripts) > 1:
            lines += ["[app]", f"script = {json.dumps(sorted(project.scripts)[0])}", ""]
        if project.scripts:
            lines += ["[verify]", 'args = ["--help"]', "# expect = \"usage\"", ""]
        else:
            lines += ["[verify]", f"code = {json.dumps('import ' + project.import_name)}", ""]
    path.write_text("\n".join(lines))
    return path
