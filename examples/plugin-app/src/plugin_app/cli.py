"""The console script: the plugin is imported by name, so no import statement names it."""

from __future__ import annotations

import argparse
import importlib
from importlib import resources

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="plugin-app", description="Apply a plugin to text.")
    parser.add_argument("plugin", help="the plugin to load, e.g. shout or reverse")
    parser.add_argument("text", nargs="?", default="world")
    parser.add_argument("--version", action="version", version=f"plugin-app {__version__}")
    args = parser.parse_args(argv)
    module = importlib.import_module("plugin_app.plugins." + args.plugin)
    banner = resources.files("plugin_app").joinpath("data/banner.txt").read_text()
    print(banner.strip().format(version=__version__, plugin=args.plugin,
                                text=module.transform(args.text)))
    return 0
