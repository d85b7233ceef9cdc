"""The console script: reads its template through importlib.resources, models with attrs."""

from __future__ import annotations

import argparse
from importlib import resources

import attrs

from . import __version__


@attrs.frozen
class Greeting:
    name: str

    def render(self) -> str:
        template = resources.files("hello_app").joinpath("data/greeting.txt").read_text()
        return template.strip().format(name=self.name, version=__version__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hello", description="Say hello.")
    parser.add_argument("name", nargs="?", default="world")
    parser.add_argument("--version", action="version", version=f"hello-app {__version__}")
    args = parser.parse_args(argv)
    print(Greeting(args.name).render())
    return 0
