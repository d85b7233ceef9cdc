"""`gradient init`: a starting gradient.toml from what the project is, and what it really does.

It reads the project through its own build backend (the console scripts, the modules), then
builds the wheel and runs the chosen script once from a fresh environment, offline, so the
smoke test it writes expects real output (`--version` printing the version, else what
`--help` prints): a replaced binary that merely exits 0 does not pass it. Each finding is
returned as a sentence for the CLI to show.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import project as project_mod
from .config import CONFIG_NAME
from .errors import ConfigError, GradientError
from .registry import backends


@dataclass
class Initial:
    path: Path
    found: list[str] = field(default_factory=list)


def _pick_script(name: str, scripts: dict[str, str]) -> str:
    """The main command: the shortest name (http beside httpie and https), then the one named
    like the project."""
    plain = name.lower().replace("_", "-")
    return sorted(scripts, key=lambda s: (len(s), s.lower() != plain, s))[0]


def write_initial(root: Path, tier: str, *, force: bool = False,
                  cache_dir: Path | None = None) -> Initial:
    path = root / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(f"{path} exists already (use --force to overwrite)")
    known = backends()
    if tier not in known:
        from .options import nearest

        raise ConfigError(f"unknown tier {tier!r}", key="--tier", suggestion=nearest(tier, known))
    result = Initial(path)
    if not project_mod.is_buildable(root):
        singles = sorted(p.name for p in root.glob("*.py")
                         if p.name not in ("setup.py", "conftest.py"))
        if len(singles) != 1:
            raise ConfigError("no pyproject.toml or setup.py, and not exactly one module here")
        result.found.append(f"a single module, {singles[0]}, and no build configuration")
        path.write_text("\n".join([f"tier = {json.dumps(tier)}", "", "[app]",
                                   f"module = {json.dumps(singles[0])}", ""]))
        return result
    path.write_text(f"tier = {json.dumps(tier)}\n")  # provisional: enough to read the project
    try:
        lines = _describe(root, tier, cache_dir, result.found)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    path.write_text("\n".join(lines))
    return result


def _describe(root: Path, tier: str, cache_dir: Path | None, found: list[str]) -> list[str]:
    import tempfile

    from . import sources
    from .api import open_project
    from .cache import default_dir
    from .config import Config
    from .runner import tool_environment

    cache = (cache_dir or default_dir()).resolve()
    tree = sources.scan(root)
    project = project_mod.load(root, tree, Config(path=root / CONFIG_NAME, tiers=[tier]), cache,
                               tool_environment(cache, tree.epoch))
    found.append(f"{project.name} {project.version}, read through its own build backend")
    lines = [f"tier = {json.dumps(tier)}", ""]
    if not project.scripts:
        modules = project.top_level or [project.import_name]
        found.append(f"a library (no console scripts): its modules {', '.join(modules)}")
        code = "; ".join(f"import {m}" for m in modules)
        return [*lines, "[verify]", f"code = {json.dumps(code)}", ""]
    script = _pick_script(project.name, project.scripts)
    count = len(project.scripts)
    found.append(f"{count} console script{'s' if count > 1 else ''}: "
                 f"{', '.join(sorted(project.scripts))}; using {script}")
    if count > 1:
        lines += ["[app]", f"script = {json.dumps(script)}", ""]
    (root / CONFIG_NAME).write_text("\n".join(lines))
    with tempfile.TemporaryDirectory(prefix="gradient-init-out-") as out:  # dist/ stays as is
        session = open_project(root / CONFIG_NAME, cache_dir=cache, out_dir=Path(out))
        args, expect, said = _real_run(session, script, project.version)
    found.append(said)
    lines += ["[verify]", f"args = {json.dumps(args)}"]
    lines.append(f"expect = {json.dumps(expect)}" if expect else '# expect = "usage"')
    return [*lines, ""]


def _real_run(session: Any, script: str, version: str) -> tuple[list[str], str | None, str]:
    """(args, expected text, what happened), from running the script built from the wheel."""
    from .pyenv import fresh_venv, offline_install
    from .sandbox import Sandbox, minimal_env

    engine = session.engine(verify=False)
    try:
        report = engine.build(["wheel"])
    except GradientError as exc:
        return ["--help"], None, f"could not build the wheel to try {script}: {exc.message}"
    outcome = report.outcomes.get("wheel")
    if outcome is None:
        why = next(iter(report.failures.values())).message if report.failures else "no wheel"
        return ["--help"], None, f"could not build the wheel to try {script}: {why}"
    artifact = outcome.entry.artifact
    sandbox = Sandbox()
    try:
        where = sandbox.fresh_dir("gradient-init-")
        python, made = fresh_venv(sandbox, where / "venv", sys.executable)
        installed = offline_install(sandbox, python, [artifact.path],
                                    [artifact.root / "wheelhouse"]) if made.exit_code == 0 else made
        if installed.exit_code != 0:
            return ["--help"], None, f"could not install the wheel to try {script}"
        command = python.parent / script
        for args in (["--version"], ["--help"]):
            ran = sandbox.run([command, *args], cwd=where, env=minimal_env(), timeout=60)
            shown = " ".join([script, *args])
            if ran.exit_code != 0:
                continue
            if args == ["--version"] and version in ran.output:
                return args, version, f"`{shown}` prints {version}: expect = {version!r}"
            first = next((ln.strip() for ln in ran.output.splitlines() if ln.strip()), "")
            if args == ["--help"] and first:
                expect = first[:60]
                return args, expect, f"`{shown}` exits 0 and prints {expect!r}: expect that"
        return ["--help"], None, (f"neither `{script} --version` nor `{script} --help` exits 0 "
                                  "here: set [verify] args and expect by hand")
    finally:
        sandbox.cleanup()
