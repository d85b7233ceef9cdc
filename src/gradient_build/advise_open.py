"""The project as `gradient advise` and `gradient init` see it, gradient.toml or not.

advise is the first command a user runs, so it works before there is a gradient.toml: the
defaults stand in for one, a lone module is the [app] module, and of several console scripts
the main one is picked the way init picks it (and says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import project as project_mod
from . import sources
from .backend import Backend
from .config import CONFIG_NAME, AppOptions, Config
from .errors import ConfigError
from .facts import Target
from .project import App, Project


@dataclass
class Subject:
    """What advise walks for: the configuration (real or default), the project, its app."""

    config: Config
    project: Project
    app: App
    backends: dict[str, Backend[Any]]
    cache_dir: Path
    notes: list[str] = field(default_factory=list)


def pick_script(name: str, scripts: dict[str, str]) -> str:
    """The main command: the shortest name (http beside httpie and https), then the one named
    like the project."""
    plain = name.lower().replace("_", "-")
    return sorted(scripts, key=lambda s: (len(s), s.lower() != plain, s))[0]


def lone_module(root: Path) -> str | None:
    singles = sorted(p.name for p in root.glob("*.py") if p.name not in (
        "setup.py", "conftest.py", "noxfile.py"))
    return singles[0] if len(singles) == 1 else None


def open_subject(config_path: Path | None, cache_dir: Path | None, *,
                 fresh: bool = False) -> Subject:
    """The project at the config's directory; `fresh` ignores a gradient.toml there (init
    --force writes a new one from scratch)."""
    from .api import load_config
    from .cache import default_dir
    from .registry import backends, facts
    from .runner import tool_environment

    path = (config_path or Path.cwd() / CONFIG_NAME).resolve()
    root = path.parent
    cache = (cache_dir or default_dir()).resolve()
    found = backends()
    notes: list[str] = []
    if path.exists() and not fresh:
        config = load_config(path)
    else:
        config = Config(path=path, tiers=[],
                        tier_options={n: b.Options() for n, b in found.items()},
                        target=Target({}, facts()))
        if not fresh:
            notes.append(f"no {CONFIG_NAME} yet: the defaults stand in for it")
    if not project_mod.is_buildable(root) and not config.app.module:
        module = lone_module(root)
        if module is None:
            raise ConfigError("no pyproject.toml or setup.py here, and not exactly one module: "
                              "run gradient in the project's root", file=str(path))
        config.app = AppOptions(script=config.app.script, entry=config.app.entry, module=module)
        notes.append(f"no build configuration: the single module {module} is the project")
    tree = sources.scan(root)
    project = project_mod.load(root, tree, config, cache, tool_environment(cache, tree.epoch))
    if len(project.scripts) > 1 and not config.app.script and not config.app.entry:
        script = pick_script(project.name, project.scripts)
        config.app = AppOptions(script=script, module=config.app.module)
        notes.append(f"several console scripts ({', '.join(sorted(project.scripts))}): "
                     f"advising for {script} ([app] script names another)")
    return Subject(config, project, project.app(config), found, cache, notes)
