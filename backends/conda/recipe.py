"""The rattler-build v1 recipe of one wheel, as YAML a user can read and build by hand.

The recipe installs the wheel tier's wheel into `$PREFIX` with pip, offline and without
dependencies (they are packages of their own), then drops what pip leaves that names the
build machine: `direct_url.json` (the wheel's absolute path) and the `bin/` scripts with the
build venv's shebang (conda generates its own from `build.python.entry_points`), and their
RECORD lines. The wheel is a `path` source relative to the recipe, so the same text builds
from gradient's scratch layout and from `dist/gradient/conda/recipes/NAME/` by hand.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from .meta import Plan, conda_version

TIDY = (
    'rm -rf "$PREFIX/bin"',
    'find "$PREFIX" -name direct_url.json -delete',
    'for record in "$PREFIX"/lib/python*/site-packages/*.dist-info/RECORD; do '
    '[ -f "$record" ] || continue; '
    "sed -i -e '/direct_url\\.json,/d' -e '/^\\.\\.\\//d' \"$record\"; done",
)


def recipe(plan: Plan, wheel_source: str, installer_python: str) -> dict[str, Any]:
    """The recipe as a dict (what `Stage0Recipe.from_dict` takes)."""
    wheel = plan.wheel
    build: dict[str, Any] = {"number": 0}
    if plan.noarch:
        build["noarch"] = "python"
    build["script"] = "\n".join([
        "${{ installer_python }} -m pip install --isolated --ignore-installed --no-deps --no-index "
        "--no-compile "
        '--no-warn-script-location --prefix "$PREFIX" "$SRC_DIR/'
        + wheel_source.rsplit("/", 1)[-1] + '"',
        *TIDY,
    ]) + "\n"
    if wheel.scripts and plan.noarch:
        build["python"] = {"entry_points": [f"{k} = {v}" for k, v in wheel.scripts.items()]}
    elif wheel.scripts:  # entry_points want a python in host: write conda's scripts here
        build["script"] += "".join(_script_lines(k, v) for k, v in wheel.scripts.items())
    about: dict[str, Any] = {}
    if wheel.summary:
        about["summary"] = wheel.summary
    license_id = spdx(wheel.license)
    if license_id:
        about["license"] = license_id
    data: dict[str, Any] = {
        "context": {"installer_python": installer_python},
        "package": {"name": plan.name, "version": conda_version(wheel.version)},
        "source": [{"path": wheel_source}],
        "build": build,
        "requirements": {"run": plan.depends},
    }
    if about:
        data["about"] = about
    return data


def _script_lines(name: str, entry: str) -> str:
    """Shell that writes the console script conda would generate, its shebang naming the
    build prefix: rattler-build records it as a prefix placeholder, replaced at install."""
    module, _, attr = entry.partition(":")
    first = attr.split(".")[0]
    python = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    body = (f"# -*- coding: utf-8 -*-\nimport re\nimport sys\n\nfrom {module} import {first}\n\n"
            "if __name__ == '__main__':\n"
            "    sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n"
            f"    sys.exit({attr}())\n")
    target = f'"$PREFIX/bin/{name}"'
    return (f'mkdir -p "$PREFIX/bin"\nprintf \'#!%s/bin/{python}\\n\' "$PREFIX" > {target}\n'
            f"cat >> {target} <<'GRADIENT_SCRIPT'\n{body}GRADIENT_SCRIPT\nchmod 755 {target}\n")


def spdx(text: str | None) -> str | None:
    """The license as an SPDX expression, which rattler-build insists on ("BSD" is not one:
    then none is recorded, rather than a guess)."""
    if not text:
        return None
    try:
        return str(canonicalize_license_expression(text))
    except InvalidLicenseExpression:
        return None


def to_yaml(data: dict[str, Any], header: list[str]) -> str:
    """Block-style YAML of nested dicts and lists; every scalar JSON-quoted (valid YAML)."""
    lines = [f"# {line}" if line else "#" for line in header]
    _emit(data, 0, lines)
    return "\n".join(lines) + "\n"


def _emit(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                _emit(item, indent + 2, lines)
            elif isinstance(item, str) and "\n" in item:
                lines.append(f"{pad}{key}: |")
                lines.extend(f"{pad}  {line}".rstrip() for line in item.rstrip("\n").split("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict):
                first, *rest = _block(item, indent + 2)
                lines.append(f"{pad}- {first.lstrip()}")
                lines.extend(rest)
            else:
                lines.append(f"{pad}- {_scalar(item)}")


def _block(item: dict[str, Any], indent: int) -> list[str]:
    out: list[str] = []
    _emit(item, indent, out)
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(str(value))


def header(plan: Plan, channel_hint: str) -> list[str]:
    lines = [f"Generated by gradient-build from {plan.wheel.path.name}.",
             "Build it by hand (from this folder, beside dist/gradient/wheel/):",
             f"  rattler-build build --recipe recipe.yaml -c {channel_hint}",
             "installer_python: any Python 3 with pip (the one below built this package)."]
    lines += [f"Note: {reason}" for reason in plan.reasons]
    return lines
