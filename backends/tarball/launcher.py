"""The `bin/APP` launcher: a POSIX sh script that finds its tree and runs the app with it.

It resolves its own path through symlinks (a link in /usr/local/bin is how such a tree is
usually installed), then runs the interpreter with `-I -S`: no environment variables, no user
or system site-packages, no current directory, so the tree's `lib/` is the only place
anything third-party can come from. `lib/` is added with `site.addsitedir`, which also
honours `.pth` files a dependency installs. Where the tree holds compiled extensions, the
Python side first checks that the interpreter is the one they were built for.
"""

from __future__ import annotations

import json
import shlex


def python_prelude(app: str, compiled_for: tuple[str, str] | None,
                   lib: str = "sys.argv.pop(1)") -> str:
    """Python that puts the tree's lib dir on sys.path, after checking the interpreter.

    `compiled_for` is (cache tag, version), e.g. ("cpython-311", "3.11"), when the tree holds
    compiled extensions. `lib` is a Python expression: the launcher passes the dir as the first
    argument, so no path (of the build machine or the target) is written into the code.
    """
    lines = ["import sys, site", f"lib = {lib}"]
    if compiled_for:
        tag, version = compiled_for
        message = (f"{app}: this tree holds compiled extensions built for {tag} (Python "
                   f"{version}), but %s is %s (Python %s); run it with a Python {version}, "
                   "or rebuild the tarball with [tiers.tarball] python set to one\n")
        lines += [
            f"if sys.implementation.cache_tag != {q(tag)}:",
            f"    sys.stderr.write({q(message)} % (sys.executable, "
            "sys.implementation.cache_tag, sys.version.split()[0]))",
            "    sys.exit(1)",
        ]
    lines.append("site.addsitedir(lib)")
    return "\n".join(lines) + "\n"


def entry_call(script: str, entry: str) -> str:
    """Python that runs `module:attr.path` the way a console-script wrapper does."""
    module, _, attr = entry.split("[")[0].strip().partition(":")
    head, *rest = attr.split(".")
    target = "_entry" + "".join(f".{part}" for part in rest)
    return (f"sys.argv[0] = {q(script)}\n"
            f"from {module} import {head} as _entry\n"
            f"sys.exit({target}())\n")


def q(text: str) -> str:
    """A Python string literal in double quotes (the code sits inside sh single quotes)."""
    return json.dumps(text)


def launcher_script(app: str, entry: str, python: str,
                    compiled_for: tuple[str, str] | None, what: str) -> str:
    """The sh text of `bin/APP`; `what` names the project in its header."""
    code = python_prelude(app, compiled_for) + entry_call(app, entry)
    if "'" in code:
        raise ValueError(f"the entry point {entry!r} cannot be quoted into the launcher")
    py = shlex.quote(python)
    return f"""#!/bin/sh
# {app}: launcher for {what}, a self-contained tree (app + dependencies in ../lib).
# It runs {python} in isolated mode (-I -S) with only that lib dir on sys.path.
set -e
unset CDPATH
self=$0
case $self in */*) ;; *) self=./$self ;; esac
while [ -L "$self" ]; do
    link=$(readlink "$self")
    case $link in
        /*) self=$link ;;
        *) self=${{self%/*}}/$link ;;
    esac
done
top=$(cd -P -- "${{self%/*}}/.." && pwd -P)
PY={py}
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "{app}: cannot find the Python interpreter $PY this tree runs with" >&2
    exit 127
fi
exec "$PY" -I -S -c '{code}' "$top/lib" "$@"
"""
