"""One writer of entry-point launchers: the Python that runs 'module:attr.path' the way a
console-script wrapper does. The smoke, the tarball's launchers and the frozen exe's entry
script all use it, so they import, check and call an entry point the same way.

The imports are plain `from module import name` statements, so a freezer's analysis sees them.
With GRADIENT_ENTRY_CHECK=1 the program only imports the entry point and checks it can be
called (exit 0), without running the app: how a verification proves every script starts.
Strings are written as JSON literals (double quotes), so the code can sit inside sh quotes.
"""

from __future__ import annotations

import json

CHECK = "GRADIENT_ENTRY_CHECK"


def split_entry(entry: str) -> tuple[str, list[str]]:
    """('pkg.module', ['attr', 'path']) of 'pkg.module:attr.path [extra]'."""
    module, _, attr = entry.split("[")[0].strip().partition(":")
    return module.strip(), [part for part in attr.strip().split(".") if part]


def import_lines(entry: str, indent: str = "", name: str = "_main") -> str:
    """Statements that bind `name` to the entry point's callable."""
    module, attrs = split_entry(entry)
    if not attrs:
        return f"{indent}import {module} as {name}\n"
    head, *rest = attrs
    lines = f"{indent}from {module} import {head} as {name}\n"
    if rest:
        lines += f"{indent}{name} = {name}.{'.'.join(rest)}\n"
    return lines


def run_lines(script: str, entry: str) -> str:
    """A whole program: set argv[0] to the script's name, import the entry point, then check
    it (under GRADIENT_ENTRY_CHECK=1) or call it and exit with what it returns."""
    wrong = f"{script}: its entry point {entry.split('[')[0].strip()} is not callable"
    return ("import os, sys\n"
            f"sys.argv[0] = {json.dumps(script)}\n"
            + import_lines(entry)
            + f"if os.environ.get({json.dumps(CHECK)}) == \"1\":\n"
            f"    sys.exit(0 if callable(_main) else {json.dumps(wrong)})\n"
            "sys.exit(_main())\n")
