"""What the speed work changed in behaviour (the speed itself is in benchmarks/): the build
backend runs once on a cold wheel build, no wheelhouse step without dependencies, a consumer
builds while its input is verified and is discarded when that verification fails, and the
no-op path does not import the backends."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry

Gradient = Callable[..., subprocess.CompletedProcess[str]]

SETUP_PY = """\
import sys, warnings
from setuptools import setup
with open({log!r}, "a") as log:
    log.write(" ".join(sys.argv[1:2]) + "\\n")
warnings.warn("gradient-test-backend-warning", UserWarning)
setup()
"""


def _events(stdout_and_err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout_and_err.splitlines() if line.startswith("{")]


def _counting_project(root: Path, log: Path, deps: str = "") -> Path:
    """A setuptools project whose setup.py notes each command it runs (the hook's kind)."""
    (root / "tally").mkdir(parents=True)
    (root / "tally/__init__.py").write_text("def main():\n    print('tally ok')\n")
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tally"
        version = "1.0"
        dependencies = [{deps}]
        [project.scripts]
        tally = "tally:main"
        [tool.setuptools]
        packages = ["tally"]
        """))
    (root / "setup.py").write_text(SETUP_PY.format(log=str(log)))
    (root / "gradient.toml").write_text('tier = "wheel"\n')
    return root


def test_a_cold_wheel_build_runs_the_backend_once(tmp_path: Path, gradient: Gradient) -> None:
    log = tmp_path / "hooks.log"
    project = _counting_project(tmp_path / "tally", log)
    result = gradient(project, "build", "--no-verify", "--log-format", "json",
                      cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    commands = log.read_text().split()
    assert commands.count("bdist_wheel") == 1, commands
    assert "dist_info" not in commands, f"a separate metadata pass ran: {commands}"
    warned = [e for e in _events(result.stdout + result.stderr)
              if e["kind"] == "backend-warning" and "gradient-test-backend-warning" in e["event"]]
    assert len(warned) == 1, warned
    assert artifact_entry(project, "wheel")["path"].endswith("tally-1.0-py3-none-any.whl")
    # what the metadata read from the wheel: the console script the app runs
    stored = [json.loads(p.read_text()) for p in (tmp_path / "cache/metadata").glob("*.json")]
    assert [m["scripts"] for m in stored] == [{"tally": "tally:main"}]


def test_without_a_wheel_to_build_only_the_metadata_hook_runs(tmp_path: Path,
                                                              gradient: Gradient) -> None:
    log = tmp_path / "hooks.log"
    project = _counting_project(tmp_path / "tally", log)
    result = gradient(project, "plan", "--json", cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    commands = log.read_text().split()
    assert "dist_info" in commands and "bdist_wheel" not in commands, commands


def test_no_wheelhouse_step_without_dependencies(tmp_path: Path, gradient: Gradient) -> None:
    project = _counting_project(tmp_path / "tally", tmp_path / "hooks.log")
    result = gradient(project, "build", "--log-format", "json", cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    steps = [e["event"] for e in _events(result.stdout + result.stderr) if e["kind"] == "step"]
    assert not any("wheelhouse" in s for s in steps), steps
    assert artifact_entry(project, "wheel")["verified"]


def test_a_wheelhouse_is_filled_from_the_store_the_second_time(
        example: Callable[..., Path], tmp_path: Path, gradient: Gradient) -> None:
    cache = tmp_path / "cache"
    first = example("hello-app", toml='tier = "wheel"\n')
    assert gradient(first, "build", "--no-verify", cache_dir=cache).returncode == 0
    house = sorted(p.name for p in (first / "dist/gradient/wheel/wheelhouse").glob("*.whl"))
    assert any(name.startswith("attrs-") for name in house), house
    second = example("hello-app", toml='tier = "wheel"\n')  # another tree: a new cache key
    (second / "NEWS.txt").write_text("changed\n")
    again = gradient(second, "build", "--log-format", "json", cache_dir=cache)
    assert again.returncode == 0, again.stderr
    steps = [e["event"] for e in _events(again.stdout + again.stderr) if e["kind"] == "step"]
    assert not any(s.startswith("pip wheel") for s in steps), steps
    assert sorted(p.name for p in (second / "dist/gradient/wheel/wheelhouse").glob("*.whl")) \
        == house
    assert artifact_entry(second, "wheel")["verified"]


def test_a_consumer_builds_while_its_input_is_verified_and_is_discarded_when_it_fails(
        example: Callable[..., Path], gradient: Gradient) -> None:
    toml = 'tier = ["wheel", "pex"]\n[verify]\nargs = ["x"]\nexpect = "never printed"\n'
    project = example("hello-app", toml=toml)
    result = gradient(project, "build", "--jobs", "2", "--log-format", "json")
    assert result.returncode == 1
    events = _events(result.stdout + result.stderr)
    order = [(e["kind"], e["tier"]) for e in events]
    assert ("start", "pex") in order or ("cached", "pex") in order, order
    pex_began = next(i for i, k in enumerate(order) if k in (("start", "pex"), ("cached", "pex")))
    wheel_failed = order.index(("failed", "wheel"))
    assert pex_began < wheel_failed, "pex waited for the wheel's verification"
    skipped = next(e for e in events if e["kind"] == "skipped" and e["tier"] == "pex")
    assert "needs wheel, which built but failed its verification" in skipped["event"]
    manifest = project / "dist/gradient/manifest.json"
    assert not manifest.exists() or not any(
        a["tier"] == "pex" for a in json.loads(manifest.read_text())["artifacts"])


def _imported(stderr: str) -> list[str]:
    """Module names from PYTHONPROFILEIMPORTTIME's lines ("import time: self | cumulative |
    name")."""
    return [line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2][1:]


def test_the_no_op_path_imports_no_backend(example: Callable[..., Path],
                                           gradient: Gradient) -> None:
    project = example("hello-app", toml='tier = ["wheel", "sdist"]\n')
    assert gradient(project, "build").returncode == 0
    noop = gradient(project, "build")  # a no-op through the full path: it leaves the stamp
    assert noop.returncode == 0, noop.stderr
    probe = gradient(project, "build", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert probe.returncode == 0, probe.stderr
    names = _imported(probe.stderr)
    assert "gradient_build.noop" in names, names
    assert not [n for n in names if n.startswith("gradient_backends")], names
    assert not [n for n in names if n.split(".")[0] in ("typer", "rich", "structlog")], names
    assert probe.stdout == noop.stdout, "the replay did not print what the no-op printed"
    # a changed source is not a no-op: the full path runs and rebuilds what it feeds
    (project / "src/hello_app/cli.py").write_text(
        (project / "src/hello_app/cli.py").read_text() + "\n# changed\n")
    changed = gradient(project, "build", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert changed.returncode == 0, changed.stderr
    assert any(n.startswith("gradient_backends") for n in _imported(changed.stderr))
    assert not artifact_entry(project, "wheel")["cached"]


def _leftovers(cache: Path) -> list[str]:
    """Early builds' temporary folders, and tools still running from them."""
    folders = [p.name for p in (cache / "tmp").glob("*") if p.name.startswith(
        ("meta-", "early-"))] if (cache / "tmp").exists() else []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return folders + [line for line in ps.splitlines() if str(cache) in line]


def test_a_cold_wheel_starts_early_and_is_taken_once(tmp_path: Path, gradient: Gradient) -> None:
    """The wheel a cold build starts before the rest of gradient loads is the wheel tier's:
    one backend run, its step shown once, nothing left behind."""
    log = tmp_path / "hooks.log"
    project = _counting_project(tmp_path / "tally", log)
    cache = tmp_path / "cache"
    result = gradient(project, "build", "--log-format", "json", cache_dir=cache)
    assert result.returncode == 0, result.stderr
    assert log.read_text().split().count("bdist_wheel") == 1
    steps = [e["event"] for e in _events(result.stdout + result.stderr) if e["kind"] == "step"]
    assert steps.count("uv build --wheel") == 1, steps
    assert artifact_entry(project, "wheel")["verified"]
    assert _leftovers(cache) == []


# Metadata passed to setup() in setup.py: setuptools marks it Dynamic in the sdist (PEP 643);
# install_requires makes Requires-Dist so (a requirement no Python 3 needs: nothing to fetch)
SETUP_ARGS = ('setup(name="tally", version="1.0", packages=["tally"], python_requires=">=3.8", '
              'install_requires=[\'attrs; python_version < "3"\'], '
              'entry_points={"console_scripts": ["tally = tally:main"]})')


def _sdist_alone(tmp_path: Path, gradient: Gradient, *, compiled: bool = False,
                 static: bool = True, setup_args: str = SETUP_ARGS,
                 ) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A cold build of the sdist tier alone: the counting project, with a C file or not, its
    metadata in a static [project] table or in setup.py's call `setup_args` (which
    setuptools calls Dynamic)."""
    project = _counting_project(tmp_path / "tally", tmp_path / "hooks.log")
    if compiled:
        (project / "csrc").mkdir()
        (project / "csrc/speedup.c").write_text("int answer(void) { return 42; }\n")
    if not static:
        (project / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=68"]\n'
            'build-backend = "setuptools.build_meta"\n')
        setup_py = project / "setup.py"
        setup_py.write_text(setup_py.read_text().replace("setup()", setup_args))
    (project / "gradient.toml").write_text('tier = "sdist"\n')
    result = gradient(project, "build", "--log-format", "json", cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert artifact_entry(project, "sdist")["verified"]
    assert _leftovers(tmp_path / "cache") == []
    return project, result


def _stored_metadata(cache: Path, suffix: str) -> dict[str, Any]:
    (found,) = [p for p in (cache / "metadata").glob(f"v2-*{suffix}")
                if suffix != ".json" or not p.name.endswith("-sdist.json")]
    data: dict[str, Any] = json.loads(found.read_text())
    return {k: v for k, v in data.items() if k not in ("wheel", "wheel_frontend", "root",
                                                       "backend_warnings")}


def test_an_sdist_alone_reads_the_metadata_its_sdist_states(tmp_path: Path,
                                                            gradient: Gradient) -> None:
    """A static [project]: the build backend runs once for the build (PEP 643 metadata from
    the sdist's PKG-INFO), and what it read is what a wheel build reads."""
    project, result = _sdist_alone(tmp_path, gradient)
    commands = (tmp_path / "hooks.log").read_text().split()
    # the sdist, then the verification's wheel built from it: no wheel just for metadata
    assert commands.count("sdist") == 1 and commands.count("bdist_wheel") == 1, commands
    assert "dist_info" not in commands, commands
    steps = [e["event"] for e in _events(result.stdout + result.stderr) if e["kind"] == "step"]
    assert steps.count("uv build --sdist") == 1 and "uv build --wheel" not in steps, steps
    stated = _stored_metadata(tmp_path / "cache", "-sdist.json")
    assert stated["scripts"] == {"tally": "tally:main"}, stated
    (project / "gradient.toml").write_text('tier = "wheel"\n')
    wheel = gradient(project, "build", "--no-verify", cache_dir=tmp_path / "cache-w")
    assert wheel.returncode == 0, wheel.stderr
    assert _stored_metadata(tmp_path / "cache-w", ".json") == stated


def test_an_sdist_alone_of_dynamic_metadata_takes_it_from_the_early_wheel(
        tmp_path: Path, gradient: Gradient) -> None:
    """setup.py metadata (setuptools marks it Dynamic): the early wheel reads it, the early
    sdist runs beside it and the tier takes it, the same bytes as the tier's own build."""
    project, result = _sdist_alone(tmp_path, gradient, static=False)
    commands = (tmp_path / "hooks.log").read_text().split()
    # the early wheel and the early sdist, then the verification's wheel built from the sdist
    assert "dist_info" not in commands and commands.count("bdist_wheel") == 2, commands
    assert commands.count("sdist") == 1, commands  # the tier took the early one
    assert not list((tmp_path / "cache/metadata").glob("*-sdist.json"))
    steps = [e["event"] for e in _events(result.stdout + result.stderr) if e["kind"] == "step"]
    assert steps.count("uv build --sdist") == 1, steps
    # the same bytes as the sdist the tier builds itself (one node at a time: no early sdist)
    early = (project / artifact_entry(project, "sdist")["path"]).read_bytes()
    alone = gradient(project, "build", "--jobs", "1", cache_dir=tmp_path / "cache-1")
    assert alone.returncode == 0, alone.stderr
    assert (tmp_path / "hooks.log").read_text().split().count("sdist") == 2
    assert (project / artifact_entry(project, "sdist")["path"]).read_bytes() == early


def test_an_sdist_alone_of_setup_py_without_install_requires_reads_its_sdist(
        tmp_path: Path, gradient: Gradient) -> None:
    """pyfiglet's shape: setup.py passes python_requires (Dynamic) and no install_requires.
    What an sdist-only build uses is stated, so no wheel is built for its metadata, not
    even on the other CPU, and a Dynamic Requires-Python is left out rather than guessed."""
    args = SETUP_ARGS.replace("install_requires=['attrs; python_version < \"3\"'], ", "")
    assert "install_requires" not in args
    _sdist_alone(tmp_path, gradient, static=False, setup_args=args)
    commands = (tmp_path / "hooks.log").read_text().split()
    # the sdist, then the verification's wheel built from it: none started for metadata
    assert commands.count("sdist") == 1 and commands.count("bdist_wheel") == 1, commands
    assert "dist_info" not in commands, commands
    stated = _stored_metadata(tmp_path / "cache", "-sdist.json")
    assert stated["scripts"] == {"tally": "tally:main"} and stated["requires"] == [], stated
    assert stated["requires_python"] is None, stated


def test_an_sdist_alone_with_extension_sources_and_dynamic_metadata_asks_prepare_metadata(
        tmp_path: Path, gradient: Gradient) -> None:
    """A wheel build may take minutes there: prepare_metadata is asked, the early wheel
    stopped before it says anything."""
    _, result = _sdist_alone(tmp_path, gradient, compiled=True, static=False)
    steps = [e["event"] for e in _events(result.stdout + result.stderr) if e["kind"] == "step"]
    assert "uv build --wheel" not in steps, steps  # an unclaimed early build says nothing
    assert "dist_info" in (tmp_path / "hooks.log").read_text().split()  # its own hook


def test_a_config_error_on_a_cold_cache_leaves_nothing_running(tmp_path: Path,
                                                               gradient: Gradient) -> None:
    """Both early builds (the wheel, and the sdist of a build that names it) stop."""
    project = _counting_project(tmp_path / "tally", tmp_path / "hooks.log")
    (project / "gradient.toml").write_text(
        'tier = ["wheel", "sdist"]\n[tiers.wheel]\nfrontnd = "uv"\n')
    cache = tmp_path / "cache"
    result = gradient(project, "build", cache_dir=cache)
    assert result.returncode == 2, result.stderr
    assert "frontnd" in result.stderr and "frontend" in result.stderr
    assert not (project / "dist").exists()
    assert _leftovers(cache) == []


def _sdist_of(tmp_path: Path, pkg_info: str, files: dict[str, str]) -> Path:
    """A tar.gz shaped like an sdist: tally-1.0/PKG-INFO and the given files."""
    sdist = tmp_path / "tally-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for rel, text in {"PKG-INFO": pkg_info, **files}.items():
            data = text.encode()
            info = tarfile.TarInfo(f"tally-1.0/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sdist


STATIC = '[project]\nname = "tally"\nversion = "1.0"\n[project.scripts]\ntally = "tally:main"\n'


@pytest.mark.parametrize(("pkg_info", "pyproject", "scripts"), [
    ("Metadata-Version: 2.2\nName: tally\nVersion: 1.0\nRequires-Dist: attrs\n", STATIC,
     {"tally": "tally:main"}),
    # License-File may be Dynamic: an sdist-only build does not use it
    ("Metadata-Version: 2.4\nName: tally\nVersion: 1.0\nRequires-Dist: attrs\n"
     "Dynamic: license-file\n", STATIC, {"tally": "tally:main"}),
    # Requires-Python may be Dynamic (setuptools marks a setup.py's so): left out, not guessed
    ("Metadata-Version: 2.4\nName: tally\nVersion: 1.0\nRequires-Dist: attrs\n"
     "Requires-Python: >=3.8\nDynamic: requires-python\n", STATIC, {"tally": "tally:main"}),
    # before 2.2 nothing in PKG-INFO is binding
    ("Metadata-Version: 2.1\nName: tally\nVersion: 1.0\n", STATIC, None),
    ("Metadata-Version: 2.4\nName: tally\nVersion: 1.0\nDynamic: Requires-Dist\n", STATIC, None),
    # console scripts the backend computes: not stated
    ("Metadata-Version: 2.4\nName: tally\nVersion: 1.0\n",
     '[project]\nname = "tally"\nversion = "1.0"\ndynamic = ["scripts"]\n', None),
])
def test_metadata_from_sdist_takes_only_what_is_stated(
        tmp_path: Path, pkg_info: str, pyproject: str, scripts: dict[str, str] | None) -> None:
    from gradient_build.stated import metadata_from_sdist

    found = metadata_from_sdist(tmp_path, _sdist_of(tmp_path, pkg_info,
                                                    {"pyproject.toml": pyproject}))
    if scripts is None:
        assert found is None
    else:
        assert found is not None and found.scripts == scripts and found.requires == ["attrs"]
        assert found.requires_python is None  # none stated, or stated as Dynamic


REWRITER = '''\
"""A build backend whose sdist says another [build-system] than the sources do."""
import io, os, tarfile
from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F401,F403

def build_sdist(sdist_directory, config_settings=None):
    name = build_meta.build_sdist(sdist_directory, config_settings)
    path = os.path.join(sdist_directory, name)
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None)
                   for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            if member.name.count("/") == 1 and member.name.endswith("/pyproject.toml"):
                data = (data.decode()
                        .replace('build-backend = "rewriter"\\nbackend-path = ["."]\\n',
                                 'build-backend = "setuptools.build_meta"\\n')
                        .replace('requires = ["setuptools>=68"]',
                                 'requires = ["setuptools>=68", "wheel"]').encode())
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return name
'''


def test_the_sdist_wheelhouse_follows_the_build_system_the_sdist_states(
        tmp_path: Path, gradient: Gradient) -> None:
    """The wheelhouse starts from the sources' [build-system] while the sdist builds; when
    the built sdist states another one, what it states is fetched (its offline verification
    needs `wheel` here, which only the sdist asks for), in a cache of its own so no other
    test's wheelhouse can hold it."""
    project = tmp_path / "rewritten"
    project.mkdir()
    (project / "rewritten.py").write_text("def main():\n    print('rewritten ok')\n")
    (project / "rewriter.py").write_text(REWRITER)
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "rewriter"
        backend-path = ["."]
        [project]
        name = "rewritten"
        version = "1.0"
        [project.scripts]
        rewritten = "rewritten:main"
        [tool.setuptools]
        py-modules = ["rewritten"]
        """))
    (project / "gradient.toml").write_text('tier = "sdist"\n[verify]\nexpect = "rewritten ok"\n')
    result = gradient(project, "build", cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "sdist")
    assert entry["verified"], entry
    assert entry["build_requires"] == ["setuptools>=68", "wheel"]
    house = sorted(p.name.split("-")[0]
                   for p in (tmp_path / "cache/tools/wheelhouse").glob("*.whl"))
    assert "wheel" in house and "setuptools" in house, house
