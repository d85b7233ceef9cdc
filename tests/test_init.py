"""`gradient init && gradient build` works unedited: on every example, on real PyPI projects,
and on small projects of each build backend (setuptools, flit, hatch, poetry, pdm)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli
from conftest import EXAMPLES, manifest, run_gradient

from gradient_build.init import help_line

# The real projects' sdists, fetched from PyPI once into the cache `make test` uses (a clean
# clone has nothing else): pinned, so what init decides for them stays the same.
REAL_SOURCES = Path(os.environ.get("GRADIENT_CACHE_DIR") or Path.home() / ".cache/gradient-build"
                    ) / "test-sources"
Gradient = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """These builds keep to a cache of their own: later tests of the shared one expect to
    build the examples themselves (a heartbeat needs a long step, not a cached one)."""
    return tmp_path_factory.mktemp("init-cache")


@pytest.fixture
def gradient(own_cache: Path) -> Gradient:
    def call(project: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("cache_dir", own_cache)
        return run_gradient(project, *args, **kw)

    return call


def init_and_build(gradient: Gradient, project: Path, *flags: str) -> dict[str, object]:
    """Run both as a user would; the gradient.toml init wrote, parsed."""
    (project / "gradient.toml").unlink(missing_ok=True)
    made = gradient(project, "init", *flags)
    assert made.returncode == 0, made.stdout + made.stderr
    written: dict[str, object] = tomli.loads((project / "gradient.toml").read_text())
    built = gradient(project, "build")
    assert built.returncode == 0, (project / "gradient.toml").read_text() + built.stdout \
        + built.stderr
    tier = written["tier"]
    entry = next(a for a in manifest(project)["artifacts"]
                 if a["tier"] == tier and a["role"] == "artifact")
    assert entry["verified"], entry
    return written


EXPECTED = {"single-module": "copy", "hello-app": "pex", "plugin-app": "pex",
            "compiled-ext": "wheel", "pure-package": "wheel", "micro-morse": "wheel"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_example(example: Callable[..., Path], gradient: Gradient, name: str) -> None:
    project = example(name)
    written = init_and_build(gradient, project)
    assert written["tier"] == EXPECTED[name]
    verify = written["verify"]
    assert isinstance(verify, dict)
    if name in ("hello-app", "plugin-app"):
        assert verify["args"] == ["--version"]  # both print their version
    else:
        assert "import" in verify["code"]


def test_a_microcontroller_target(example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("micro-morse")
    written = init_and_build(gradient, project, "--microcontroller")
    assert written["tier"] == "mpy"
    assert written["target"] == {"microcontroller": True}


def _copy_real(tmp_path: Path, name: str) -> Path:
    """The unpacked sdist of `name` (dist-version), without its egg-info: as checked out."""
    dist, _, version = name.rpartition("-")
    archive = REAL_SOURCES / f"{name}.tar.gz"
    if not archive.exists():
        REAL_SOURCES.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", "--dest", str(REAL_SOURCES),
                        f"{dist}=={version}"], check=True, capture_output=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    dest = tmp_path / name
    shutil.copytree(tmp_path / "unpacked" / name, dest,
                    ignore=shutil.ignore_patterns("*.egg-info", "dist"))
    return dest


def test_bottle_a_module_with_lazy_imports_is_a_copy(tmp_path: Path,
                                                     gradient: Gradient) -> None:
    project = _copy_real(tmp_path, "bottle-0.13.4")
    written = init_and_build(gradient, project)
    assert written["tier"] == "copy"
    tables = written["tiers"]
    assert isinstance(tables, dict)
    assert {"gevent", "jinja2", "tornado"} <= set(tables["copy"]["allow"])


@pytest.mark.parametrize("name", ["httpie-3.2.4", "pyfiglet-1.0.4", "yamllint-1.38.0"])
def test_real_setuptools_apps(tmp_path: Path, gradient: Gradient, name: str) -> None:
    project = _copy_real(tmp_path, name)
    written = init_and_build(gradient, project)
    assert written["tier"] == "pex"
    if name.startswith("httpie"):  # http, https and httpie: the shortest is the main one
        assert written["app"] == {"script": "http"}


APP = '''\
"""{name}: a small app."""
import argparse
import sys

__version__ = "{version}"


def main() -> None:
    {body}
'''
ARGPARSE = ('parser = argparse.ArgumentParser(description="Greets whoever asks, politely.")\n'
            '    parser.add_argument("--version", action="store_true")\n'
            '    args = parser.parse_args()\n'
            '    print(__version__ if args.version else "hi")')
HELP_ONLY = ('parser = argparse.ArgumentParser(description="Greets whoever asks, politely.")\n'
             '    parser.parse_args()\n    print("hi")')
NO_ARGS = 'if sys.argv[1:]:\n        sys.exit("takes no arguments")\n    print("hi")'
BACKENDS = {
    "flit": ('requires = ["flit_core>=3.9"]\nbuild-backend = "flit_core.buildapi"', ARGPARSE),
    "hatch": ('requires = ["hatchling"]\nbuild-backend = "hatchling.build"', HELP_ONLY),
    "poetry": ('requires = ["poetry-core>=2"]\nbuild-backend = "poetry.core.masonry.api"',
               NO_ARGS),
    "pdm": ('requires = ["pdm-backend"]\nbuild-backend = "pdm.backend"', ARGPARSE),
}


def make_project(root: Path, backend: str, *, script: bool = True) -> Path:
    system, body = BACKENDS[backend]
    name = f"{backend}demo"
    project = root / name
    package = project / "src" / name if backend != "flit" else project / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(APP.format(name=name, version="0.4.1", body=body))
    scripts = f'\n[project.scripts]\n{name} = "{name}:main"\n' if script else ""
    (project / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        {system}

        [project]
        name = "{name}"
        version = "0.4.1"
        description = "a throw-away {backend} project"
        requires-python = ">=3.9"
        """) + scripts)
    return project


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_build_backend(tmp_path: Path, gradient: Gradient, backend: str) -> None:
    project = make_project(tmp_path, backend)
    written = init_and_build(gradient, project)
    assert written["tier"] == "pex"
    verify = written["verify"]
    assert isinstance(verify, dict)
    if BACKENDS[backend][1] is ARGPARSE:
        assert verify == {"args": ["--version"], "expect": "0.4.1"}
    elif BACKENDS[backend][1] is HELP_ONLY:  # --version is refused, --help really runs
        assert verify == {"args": ["--help"], "expect": "Greets whoever asks, politely."}
    else:  # neither runs: it imports the app's module instead of expecting what cannot pass
        assert verify == {"code": f"import {backend}demo"}


def test_a_library_on_a_downloading_target(tmp_path: Path, gradient: Gradient) -> None:
    project = make_project(tmp_path, "pdm", script=False)
    written = init_and_build(gradient, project, "--downloads")
    assert written["tier"] == "sdist"
    assert written["target"] == {"downloads": True}
    assert written["verify"] == {"code": "import pdmdemo"}


def test_init_refuses_to_overwrite_and_checks_its_input(example: Callable[..., Path],
                                                        gradient: Gradient) -> None:
    project = example("single-module")
    before = (project / "gradient.toml").read_text()
    refused = gradient(project, "init")
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (project / "gradient.toml").read_text() == before
    clash = gradient(project, "init", "--force", "--microcontroller", "--own-kernel")
    assert clash.returncode == 2 and "--microcontroller with --own-kernel" in clash.stderr
    assert (project / "gradient.toml").read_text() == before
    typo = gradient(project, "init", "--force", "--tier", "wheell")
    assert typo.returncode == 2 and "did you mean 'wheel'" in typo.stderr
    assert (project / "gradient.toml").read_text() == before
    forced = gradient(project, "init", "--force", "--tier", "pex", "--no-downloads")
    assert forced.returncode == 0, forced.stderr
    written = tomli.loads((project / "gradient.toml").read_text())
    assert written["tier"] == "pex" and written["target"] == {"downloads": False}
    assert written["app"] == {"module": "greet.py"}
    assert "# [tiers.pex]" in (project / "gradient.toml").read_text()


@pytest.mark.parametrize(("output", "line"), [
    ("usage: http [-h]\n\nGreets whoever asks, politely.\n", "Greets whoever asks, politely."),
    ("Usage: tool [OPTIONS]\n\n  A very long description that goes on and on past forty "
     "characters\n", "A very long description that goes on"),
    ("usage: x\n", None),
])
def test_the_help_line_every_launcher_prints(output: str, line: str | None) -> None:
    assert help_line(output, "http" if "http" in output else "tool") == line


def test_examples_are_all_covered() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir())
