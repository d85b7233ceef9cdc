"""A single stdlib-only module, the kind people vendor by copying one file."""

import argparse
import json

__version__ = "1.2.0"


def greet(name: str = "world") -> str:
    return f"hello, {name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greet")
    parser.add_argument("name", nargs="?", default="world")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    text = greet(args.name)
    print(json.dumps({"greeting": text}) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
