"""The `bin/NAME` launchers: POSIX sh scripts that find their tree and run an entry point with it.

Each resolves its own path through symlinks (a link in /usr/local/bin is how such a tree is
usually installed), then runs the interpreter with `-I`: no PYTHON* variables, no user
site-packages, no current directory on sys.path, but `site` on, as in a normal installation
(without it the builtins `exit()`/`quit()` are gone, and an app calling them crashes). The
tree's `lib/` is added with `site.addsitedir`, which honours `.pth` files a dependency
installs, and is then moved, with what its `.pth` files added, ahead of the interpreter's own
site-packages: a package installed on the system cannot shadow a bundled one. Where the tree
holds compiled extensions, the Python side first checks that the interpreter is the one they
were built for.

`GRADIENT_ENTRY_CHECK=1` in the environment makes a launcher import its entry point and exit 0
without calling it: how verification proves every script starts without knowing its CLI.
"""

from __future__ import annotations

import json
import shlex

from gradient_build.helpers import entry_code


def python_prelude(app: str, compiled_for: tuple[str, str] | None,
                   lib: str = "sys.argv.pop(1)") -> str:
    """Python that puts the tree's lib dir on sys.path, after checking the interpreter.

    `compiled_for` is (cache tag, version), e.g. ("cpython-311", "3.11"), when the tree holds
    compiled extensions. `lib` is a Python expression: the launcher passes the dir as the first
    argument, so no path (of the build machine or the target) is written into the code.
    """
    lines = ["import os, site, sys", f"lib = {lib}"]
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
    lines += [
        "_before = sys.path[:]",
        "_sites = {os.path.abspath(p) for p in getattr(site, \"getsitepackages\", list)()}",
        "_at = next((i for i, p in enumerate(_before) if os.path.abspath(p) in _sites",
        "            or os.path.basename(p) in (\"site-packages\", \"dist-packages\")),",
        "           len(_before))",
        "site.addsitedir(lib)",
        "sys.path[:] = _before[:_at] + [p for p in sys.path if p not in _before] + _before[_at:]",
    ]
    return "\n".join(lines) + "\n"


def entry_call(script: str, entry: str) -> str:
    """Python that runs `module:attr.path` the way a console-script wrapper does (or, with
    GRADIENT_ENTRY_CHECK=1, only imports it and checks it can be called)."""
    return entry_code(entry, script)


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
# It runs {python} in isolated mode (-I: no PYTHON* variables, no user site) with site on
# and that lib dir ahead of the interpreter's own site-packages.
# GRADIENT_ENTRY_CHECK=1 only imports the entry point (a check that the script starts).
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
exec "$PY" -I -c '{code}' "$top/lib" "$@"
"""
