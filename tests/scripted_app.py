"""A small app written into a test's temp dir: three console scripts that end with the
`exit()`/`quit()` builtins (which only `site` provides), and a `.pth` file in the wheel, so
a test sees whether an artifact starts its scripts like a normal installation."""

from __future__ import annotations

from pathlib import Path

SCRIPTS = ("exit-app", "exit-app-quit", "exit-app-tools")

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "exit-app"
version = "0.1.0"
requires-python = ">=3.9"

[project.scripts]
exit-app = "exit_app.cli:main"
exit-app-quit = "exit_app.cli:with_quit"
exit-app-tools = "exit_app.tools:run"

[tool.hatch.build.targets.wheel]
packages = ["src/exit_app"]

[tool.hatch.build.targets.wheel.force-include]
"extra/exit_app_extra.pth" = "exit_app_extra.pth"
"extra/exit_app_extra" = "exit_app_extra"
"""

CLI = '''\
import os
import sys


def report(name):
    """One line: is site on, does the app's own dir come before every site-packages, does
    the .pth the wheel installs work."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sites = [i for i, p in enumerate(sys.path)
             if os.path.basename(p) in ("site-packages", "dist-packages")]
    first = here in sys.path and all(sys.path.index(here) < i for i in sites)
    try:
        import pth_probe  # noqa: F401  (reachable only through exit_app_extra.pth)
        pth = "yes"
    except ImportError:
        pth = "no"
    site = "off" if sys.flags.no_site else "on"
    print(f"{name}: site={site} lib-first={first} pth={pth} args={sys.argv[1:]}", flush=True)


def main():
    report("exit-app")
    exit(0)


def with_quit():
    report("exit-app-quit")
    quit(0)
'''

TOOLS = '''\
from exit_app.cli import report


def run():
    report("exit-app-tools")
    exit(0)
'''


def scripted_app(where: Path, toml: str = '[app]\nscript = "exit-app"\n', *,
                 builtins: bool = True) -> Path:
    """The app in `where`/exit-app; `builtins=False` ends its scripts with sys.exit()."""
    project = where / "exit-app"
    package = project / "src" / "exit_app"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "gradient.toml").write_text(toml)
    (package / "__init__.py").write_text("")
    cli, tools = CLI, TOOLS
    if not builtins:
        cli = cli.replace("    exit(0)", "    sys.exit(0)").replace("quit(0)", "sys.exit(0)")
        tools = "import sys\n\n" + tools.replace("exit(0)", "sys.exit(0)")
    (package / "cli.py").write_text(cli)
    (package / "tools.py").write_text(tools)
    extra = project / "extra"
    (extra / "exit_app_extra").mkdir(parents=True)
    (extra / "exit_app_extra.pth").write_text("exit_app_extra\n")
    (extra / "exit_app_extra" / "pth_probe.py").write_text("PROBE = True\n")
    return project
