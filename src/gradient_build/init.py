"""`gradient init`: a starting gradient.toml from what the project is, and what it really does.

It finds the project's facts and walks the gradient as `gradient advise` does (the tier is its
recommendation unless --tier names one), then for an app builds the wheel and runs the chosen
script once from a fresh environment, offline: the smoke test it writes expects real output
(`--version` printing the version, else a line of what `--help` prints), and when neither
runs it imports the app's module instead, so `gradient init && gradient build` passes as
written. Each finding is returned as a sentence for the CLI to show.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .advise import Advice, advise
from .advise_open import Subject, open_subject
from .config import CONFIG_NAME
from .errors import ConfigError, GradientError


@dataclass
class Initial:
    path: Path
    found: list[str] = field(default_factory=list)


def write_initial(root: Path, tier: str | None, given: dict[str, bool], *, force: bool = False,
                  cache_dir: Path | None = None) -> Initial:
    """Write root/gradient.toml (ConfigError, and nothing written, when it exists already
    without `force`, the tier is unknown, or the facts contradict)."""
    path = root / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(f"{path} exists already (use --force to overwrite)", file=str(path))
    subject = open_subject(path, cache_dir, fresh=True)
    if tier is not None and tier not in subject.backends:
        from .options import nearest

        raise ConfigError(f"unknown tier {tier!r} (tiers here: {', '.join(subject.backends)})",
                          key="--tier", suggestion=nearest(tier, subject.backends))
    target = subject.config.target.answered(given, "flag")
    advice = advise(subject, target)
    result = Initial(path)
    result.found += subject.notes
    result.found += [f"{f['says']} ({f['from']})" for f in advice.facts["project"].values()]
    chosen = tier or advice.recommended
    if chosen is None:
        raise ConfigError("no tier fits this project and target: "
                          + "; ".join(f"{s.tier}: {s.reason}" for s in advice.steps[:3])
                          + " ... (see `gradient advise`), or name one with --tier")
    result.found.append(f"tier {chosen}: " + (advice.chain if chosen == advice.recommended
                                              else "named with --tier"))
    lines = [f"tier = {json.dumps(chosen)}", ""]
    project = subject.project
    if not project.buildable and subject.config.app.module:
        lines += ["[app]", f"module = {json.dumps(subject.config.app.module)}", ""]
    elif len(project.scripts) > 1 and subject.app.script:
        lines += ["[app]", f"script = {json.dumps(subject.app.script)}", ""]
    lines += _verify(subject, result.found)
    if given:
        lines += ["[target]", *(f"{k} = {str(v).lower()}" for k, v in given.items()), ""]
    lines += _tier_tables(subject, advice, chosen)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
    return result


def _verify(subject: Subject, found: list[str]) -> list[str]:
    """[verify]: a real run of the app when it accepts --version or --help, else imports."""
    project, app = subject.project, subject.app
    modules = project.top_level or [project.import_name]
    if not project.buildable and subject.config.app.module:
        modules = [Path(subject.config.app.module).stem]
    if project.scripts:
        count = len(project.scripts)
        found.append(f"{count} console script{'s' if count > 1 else ''}: "
                     f"{', '.join(sorted(project.scripts))}; using {app.script}")
    if app.entry and project.buildable:
        args, expect, said = _real_run(subject, app.script or project.name, project.version)
        found.append(said)
        if args is not None:
            return ["[verify]", f"args = {json.dumps(args)}", f"expect = {json.dumps(expect)}",
                    ""]
        modules = [app.entry.partition(":")[0]]
    elif not app.entry:
        found.append(f"a library: [verify] imports {', '.join(modules)}")
    code = "; ".join(f"import {m}" for m in modules)
    return ["[verify]", f"code = {json.dumps(code)}", ""]


def _tier_tables(subject: Subject, advice: Advice, chosen: str) -> list[str]:
    """The chosen tier's table, and commented examples of each other tier that fits."""
    lines: list[str] = []
    lazy = advice.facts["project"].get("lazy_imports")
    fitting = [chosen, *(a.tier for a in advice.alternatives if a.tier != chosen)]
    for name in fitting:
        backend = subject.backends[name]
        fields = dataclasses.fields(backend.Options)  # type: ignore[arg-type]
        if name == "copy" and lazy and name == chosen:
            allow = json.dumps(sorted(lazy["value"]))
            lines += ["[tiers.copy]", "# imported only inside functions, optional: "
                      "listed so the copy tier accepts them (or lazy_imports = \"warn\")",
                      f"allow = {allow}", ""]
            continue
        if not fields:
            continue
        lines.append(f"# [tiers.{name}]" + ("" if name == chosen else
                                             f"   # {name} fits too: `gradient build -t {name}`"))
        for item in fields:
            value = _toml_value(item)
            if value is not None:
                lines += [f"#   {text}" for text in textwrap.wrap(
                    str(item.metadata.get("doc", "")), 90)]
                lines.append(f"# {item.name} = {value}")
        lines.append("")
    return lines


def _toml_value(item: dataclasses.Field[Any]) -> str | None:
    default = item.default if item.default is not dataclasses.MISSING else (
        item.default_factory() if item.default_factory is not dataclasses.MISSING else None)
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, str | int | float) or (
            isinstance(default, list) and all(isinstance(v, str) for v in default)):
        return json.dumps(default)
    return None


def _real_run(subject: Subject, script: str,
              version: str) -> tuple[list[str] | None, str | None, str]:
    """(args, expected text, what happened) from running the script built from the wheel;
    args None when neither --version nor --help runs."""
    from .api import Session
    from .cache import Cache
    from .pyenv import fresh_venv, offline_install
    from .sandbox import Sandbox, minimal_env

    with tempfile.TemporaryDirectory(prefix="gradient-init-out-") as out:  # dist/ stays as is
        session = Session(subject.config, subject.project, subject.backends,
                          Cache(subject.cache_dir), Path(out))
        try:
            report = session.engine(verify=False).build(["wheel"])
        except GradientError as exc:
            return None, None, f"could not build the wheel to try {script}: {exc.message}"
        outcome = report.outcomes.get("wheel")
        if outcome is None:
            why = next(iter(report.failures.values())).message if report.failures else "none"
            return None, None, f"could not build the wheel to try {script}: {why}"
        artifact = outcome.entry.artifact
        sandbox = Sandbox()
        try:
            where = sandbox.fresh_dir("gradient-init-")
            python, made = fresh_venv(sandbox, where / "venv", sys.executable)
            installed = offline_install(sandbox, python, [artifact.path],
                                        [artifact.root / "wheelhouse"]) if made.exit_code == 0 \
                else made
            if installed.exit_code != 0:
                return None, None, f"could not install the wheel to try {script}"
            return _try_args(sandbox, python.parent / script, script, version, where,
                             minimal_env())
        finally:
            sandbox.cleanup()


def _try_args(sandbox: Any, command: Path, script: str, version: str, where: Path,
              env: dict[str, str]) -> tuple[list[str] | None, str | None, str]:
    for args in (["--version"], ["--help"]):
        ran = sandbox.run([command, *args], cwd=where, env=env, timeout=60)
        shown = " ".join([script, *args])
        if ran.exit_code != 0:
            continue
        if args == ["--version"] and version in ran.output:
            return args, version, f"`{shown}` prints {version}: [verify] expects that"
        line = help_line(ran.output, script)
        if args == ["--help"] and line:
            return args, line, f"`{shown}` exits 0 and prints {line!r}: [verify] expects that"
    return None, None, (f"neither `{script} --version` nor `{script} --help` runs as it "
                        "should here: [verify] imports the app's module instead")


def help_line(output: str, script: str) -> str | None:
    """A line of help text every tier's launcher prints alike: the start of a paragraph that
    does not name the program (a pex or a frozen binary runs under another name), cut short
    of where a narrower terminal would wrap it."""
    previous = ""
    for raw in output.splitlines():
        line = raw.strip()
        starts = not previous.strip()
        previous = raw
        if not starts or len(line) < 8 or script in line or line.lower().startswith("usage"):
            continue
        cut = line[:40]
        return cut.rsplit(" ", 1)[0] if len(line) > 40 and " " in cut else cut
    return None
