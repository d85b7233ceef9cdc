"""copy, sdist and wheel built and verified for real, and verification catching broken artifacts."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from conftest import artifact_entry, manifest

Gradient = Callable[..., subprocess.CompletedProcess[str]]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_copy_vendors_a_verified_module(example: Callable[..., Path], gradient: Gradient,
                                        tmp_path: Path) -> None:
    project = example("single-module")
    result = gradient(project, "build")
    assert result.returncode == 0, result.stderr
    entry = artifact_entry(project, "copy")
    assert entry["verified"] and entry["path"] == "dist/gradient/copy/greet.py"
    assert "1.2.0" in entry["verify"]["output"]
    roles = {a["path"]: a["role"] for a in manifest(project)["artifacts"]}
    assert roles["dist/gradient/copy/LICENSE"] == "license"
    assert (project / "vendor/greet.py").read_bytes() == (project / "greet.py").read_bytes()
    assert (project / "vendor/LICENSE").exists()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                          "import greet; print(greet.greet('x'))", str(project / "vendor")],
                         cwd=elsewhere, capture_output=True, text=True)
    assert run.stdout.strip() == "hello, x"


def test_copy_is_delivered_on_a_cached_rebuild_too(example: Callable[..., Path],
                                                   gradient: Gradient) -> None:
    toml = 'tier = "copy"\n[app]\nmodule = "greet.py"\n[tiers.copy]\ndest = "dist/vendored/"\n'
    project = example("single-module", toml=toml)
    assert gradient(project, "build").returncode == 0
    (project / "dist/vendored/greet.py").unlink()  # dist/ is never a source: the next is a hit
    again = gradient(project, "build")
    assert again.returncode == 0, again.stderr
    assert artifact_entry(project, "copy")["cached"]
    assert (project / "dist/vendored/greet.py").read_bytes() == (project / "greet.py").read_bytes()


def _module_project(example: Callable[..., Path], body: str, copy_table: str = "") -> Path:
    project = example("single-module", toml='tier = "copy"\n[app]\nmodule = "greet.py"\n'
                                            f'[tiers.copy]\n{copy_table}')
    (project / "greet.py").write_text(body)
    return project


def test_copy_fails_on_a_top_level_third_party_import(example: Callable[..., Path],
                                                     gradient: Gradient) -> None:
    project = _module_project(example, '"""x"""\nimport json\nimport attrs\n')
    result = gradient(project, "build")
    assert result.returncode == 1
    assert "greet.py:3 imports 'attrs'" in result.stderr
    assert not (project / "dist").exists() and not (project / "vendor").exists()


def test_copy_lazy_import_fails_warns_or_is_allowed(example: Callable[..., Path],
                                                    gradient: Gradient) -> None:
    body = 'import os\n\ndef serve():\n    import gevent\n    return gevent\n'
    failing = _module_project(example, body)
    result = gradient(failing, "build")
    assert result.returncode == 1
    assert "greet.py:4 imports 'gevent' inside a function" in result.stderr
    warned = _module_project(example, body, 'lazy_imports = "warn"\n')
    result = gradient(warned, "build")
    assert result.returncode == 0, result.stderr
    assert "gevent" in result.stderr
    assert artifact_entry(warned, "copy")["verify"]["lazy_imports"] == ["greet.py:4 gevent"]
    allowed = _module_project(example, body, 'allow = ["gevent"]\n')
    assert gradient(allowed, "build").returncode == 0


def test_copy_guarded_optional_import_is_fine(example: Callable[..., Path],
                                              gradient: Gradient) -> None:
    body = 'try:\n    import ujson as json\nexcept ImportError:\n    import json\n'
    assert gradient(_module_project(example, body), "build").returncode == 0


def test_copy_is_verified_on_a_bare_python_not_gradients_own(example: Callable[..., Path],
                                                             gradient: Gradient) -> None:
    """rich is installed for gradient itself; a bare Python has no rich, so a copy that
    imports it by name at import time (invisible to the AST check) must fail to verify."""
    import rich  # noqa: F401  (the premise: gradient's environment has it)

    body = 'import importlib\nconsole = importlib.import_module("rich.console")\n'
    project = _module_project(example, body)
    result = gradient(project, "build")
    assert result.returncode == 1, result.stdout
    assert "No module named 'rich'" in result.stderr
    assert not (project / "dist").exists()


def test_copy_version_branches_are_judged_by_the_real_import(example: Callable[..., Path],
                                                             gradient: Gradient) -> None:
    """The Python 2 branch is never taken on Python 3: only the real import can tell, and
    it must not be flagged, even with lazy_imports = "warn"; nor told to set what is set."""
    body = ('import sys\nif sys.version_info >= (3,):\n    import pickle\nelse:\n'
            '    import cPickle as pickle\n    import ConfigParser\n\n'
            'def greet(name):\n    return "hello, " + name\n\n'
            'def serve():\n    import gevent\n    return gevent\n')
    warned = _module_project(example, body, 'lazy_imports = "warn"\n')
    result = gradient(warned, "build")
    assert result.returncode == 0, result.stderr
    assert "cPickle" not in result.stderr and "ConfigParser" not in result.stderr
    failing = _module_project(example, body + "import attrs\n", 'lazy_imports = "warn"\n')
    result = gradient(failing, "build")
    assert result.returncode == 1
    assert "imports 'attrs'" in result.stderr
    assert 'set lazy_imports = "warn"' not in result.stderr


def test_wheel_and_sdist_of_an_app_with_a_dependency(example: Callable[..., Path],
                                                     gradient: Gradient, tmp_path: Path) -> None:
    project = example("hello-app")
    result = gradient(project, "build")
    assert result.returncode == 0, result.stderr
    wheel = artifact_entry(project, "wheel")
    sdist = artifact_entry(project, "sdist")
    assert wheel["verified"] and sdist["verified"]
    assert wheel["path"].endswith("hello_app-0.1.0-py3-none-any.whl")
    assert "hello, gradient! (from hello-app 0.1.0)" in wheel["verify"]["output"]
    deps = [a for a in manifest(project)["artifacts"] if a["role"] == "dependency"]
    assert any("/wheelhouse/attrs-" in a["path"] for a in deps)
    out = project / "dist/gradient"
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True)
    assert check.returncode == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([venv / "bin/pip", "install", "--isolated", "-q", "--no-index",
                    "--find-links", out / "wheel/wheelhouse", project / wheel["path"]], check=True)
    ran = subprocess.run([venv / "bin/hello", "you"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert ran.stdout.strip() == "hello, you! (from hello-app 0.1.0)"


def test_compiled_extension_wheel_has_a_platform_tag(example: Callable[..., Path],
                                                     gradient: Gradient) -> None:
    project = example("compiled-ext")
    result = gradient(project, "build")
    assert result.returncode == 0, result.stderr
    wheel = artifact_entry(project, "wheel")
    assert "-cp311-cp311-linux_x86_64.whl" in wheel["path"]
    assert "sum ok" in wheel["verify"]["output"]
    assert artifact_entry(project, "sdist")["verified"]


def test_flit_library_default_smoke_imports_its_modules(example: Callable[..., Path],
                                                        gradient: Gradient) -> None:
    project = example("pure-package")
    result = gradient(project, "build")
    assert result.returncode == 0, result.stderr
    assert artifact_entry(project, "wheel")["verify"]["command"][-1] == "import tinyjson_pp"


def test_setup_py_only_and_poetry_projects_build(tmp_path: Path, gradient: Gradient) -> None:
    legacy = tmp_path / "legacy"
    (legacy / "oldpkg").mkdir(parents=True)
    (legacy / "oldpkg/__init__.py").write_text("VALUE = 42\n")
    (legacy / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='oldpkg', version='1.0', packages=['oldpkg'],"
        " entry_points={'console_scripts': ['oldpkg=oldpkg:main']})\n")
    (legacy / "oldpkg/__init__.py").write_text("def main():\n    print('old but gold')\n")
    (legacy / "gradient.toml").write_text('tier = "wheel"\n[verify]\nargs = []\nexpect = "gold"\n')
    result = gradient(legacy, "build")
    assert result.returncode == 0, result.stderr
    assert artifact_entry(legacy, "wheel")["verify"]["output"] == "old but gold"
    poetry = tmp_path / "poet"
    (poetry / "poet").mkdir(parents=True)
    (poetry / "poet/__init__.py").write_text("def main():\n    print('poetry works')\n")
    (poetry / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "poet"\nversion = "0.9.0"\ndescription = "x"\n'
        'authors = ["a <a@b.c>"]\n'
        '[tool.poetry.dependencies]\npython = ">=3.9"\n'
        '[tool.poetry.scripts]\npoet = "poet:main"\n'
        '[build-system]\nrequires = ["poetry-core>=1.0"]\n'
        'build-backend = "poetry.core.masonry.api"\n')
    (poetry / "gradient.toml").write_text('tier = "wheel"\n[verify]\nargs = []\n')
    result = gradient(poetry, "build")
    assert result.returncode == 0, result.stderr
    assert artifact_entry(poetry, "wheel")["verify"]["output"] == "poetry works"


def test_wheel_missing_a_module_fails_verification_and_keeps_dist(
        example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("hello-app")
    assert gradient(project, "build", "--tier", "wheel").returncode == 0
    before = (project / "dist/gradient/manifest.json").read_bytes()
    wheel_path = project / artifact_entry(project, "wheel")["path"]
    wheel_sum = sha256(wheel_path)
    cli = project / "src/hello_app/cli.py"
    cli.write_text(cli.read_text().replace("from . import __version__",
                                           "from . import __version__\nfrom . import extra"))
    (project / "src/hello_app/extra.py").write_text("X = 1\n")
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.hatch.build.targets.wheel]\nexclude = ["src/hello_app/extra.py"]\n')
    result = gradient(project, "build", "--tier", "wheel")
    assert result.returncode == 1
    assert "cannot import name 'extra'" in result.stderr
    assert (project / "dist/gradient/manifest.json").read_bytes() == before
    assert sha256(wheel_path) == wheel_sum


def test_incomplete_sdist_is_caught(example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("hello-app")
    with (project / "pyproject.toml").open("a") as f:
        f.write('\n[tool.hatch.build.targets.sdist]\nexclude = ["src/hello_app/data"]\n')
    result = gradient(project, "build", "--tier", "sdist")
    assert result.returncode == 1
    assert "greeting.txt" in result.stderr
    assert not (project / "dist").exists()


def test_secrets_never_ship(example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("hello-app")
    (project / ".env").write_text("TOKEN=ghp_" + "a1B2" * 9 + "\n")
    result = gradient(project, "build", "--tier", "sdist")
    assert result.returncode == 1
    assert "a dotenv file at hello_app-0.1.0.tar.gz!hello_app-0.1.0/.env" in result.stderr
    assert "[secrets] allow" in result.stderr
    assert not (project / "dist").exists()


def test_tag_check_knows_compiled_from_pure(tmp_path: Path) -> None:
    from gradient_build.pyenv import wheel_has_binaries, wheel_is_pure_tag

    fake = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("x/_speed.cpython-311-x86_64-linux-gnu.so", b"\x7fELF")
    assert wheel_is_pure_tag(fake) and wheel_has_binaries(fake)
    assert not wheel_is_pure_tag(tmp_path / "x-1.0-cp311-cp311-linux_x86_64.whl")
