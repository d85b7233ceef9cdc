"""The conda tier: real .conda packages built by rattler-build, installed offline by py-rattler
into a fresh prefix (with the host-python stand-in) and run from there, byte-identical twice.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import artifact_entry, copy_example, manifest, run_gradient, snapshot
from gradient_backends.conda import CondaBackend
from gradient_backends.conda.repack import members

from gradient_build.scan import scan_file

GREETING = "hello, gradient! (from hello-app 0.1.0)"
APP = "dist/gradient/conda/channel/noarch/hello-app-0.1.0-pyh4616a5c_0.conda"
ATTRS_PREFIX = "dist/gradient/conda/channel/noarch/attrs-"
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH") or 315532800)  # outside git: 1980


def conda_files(project: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(project).items() if k.startswith("conda/")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """hello-app and the pure library, each built twice with separate caches (no
    SOURCE_DATE_EPOCH set here: outside git the default is a fixed date)."""
    base = tmp_path_factory.mktemp("conda")
    out: dict[str, Any] = {"base": base}
    for name in ("hello-app", "pure-package"):
        for n in (1, 2):
            project = copy_example(base / f"{name}-{n}", name)
            cache = base / f"cache-{name}-{n}"
            result = run_gradient(project, "build", "--tier", "conda", cache_dir=cache)
            out[(name, n)] = {"project": project, "result": result, "cache": cache}
    return out


def test_app_with_deps_is_built_installed_and_run_from_the_prefix(built: dict[str, Any]) -> None:
    run = built[("hello-app", 1)]
    project = run["project"]
    assert run["result"].returncode == 0, run["result"].stderr + run["result"].stdout
    entry = artifact_entry(project, "conda")
    assert entry["path"] == APP and entry["verified"]
    verify = entry["verify"]
    assert verify["level"] == "ran" and GREETING in verify["output"]
    assert verify["python"] == "host stand-in"
    assert verify["command"][0].endswith("/prefix/bin/hello")
    assert {r.split("-")[0] for r in verify["installed"]} == {"hello", "attrs", "python"}
    assert "python-3.11.7-0_gradient_host_shim" in verify["installed"] or any(
        r.endswith("-0_gradient_host_shim") for r in verify["installed"])
    assert str(project) in verify["hidden"] and str(run["cache"]) in verify["hidden"]
    roles = {a["path"]: a["role"] for a in manifest(project)["artifacts"] if a["tier"] == "conda"}
    assert roles[APP] == "artifact"
    assert [r for p, r in roles.items() if p.startswith(ATTRS_PREFIX)] == ["dependency"]
    assert roles["dist/gradient/conda/channel/noarch/repodata.json"] == "repodata"
    assert roles["dist/gradient/conda/recipes/hello-app/recipe.yaml"] == "recipe"
    assert entry["depends"] == ["python >=3.9", "attrs >=22"] and entry["with_deps"]


def test_package_contents_are_conda_shaped_and_name_no_build_path(built: dict[str, Any]) -> None:
    run = built[("hello-app", 1)]
    project = run["project"]
    files = members(project / APP)
    index = json.loads(files["info/index.json"])
    assert index["timestamp"] == EPOCH * 1000 and index["noarch"] == "python"
    link = json.loads(files["info/link.json"])
    assert link["noarch"]["entry_points"] == ["hello = hello_app.cli:main"]
    assert "site-packages/hello_app/data/greeting.txt" in files
    assert not any(n.endswith("direct_url.json") or n.startswith(("bin/", "python-scripts/"))
                   for n in files)
    record = files["site-packages/hello_app-0.1.0.dist-info/RECORD"].decode()
    assert "direct_url.json" not in record and "../" not in record
    needles = [str(project), str(run["cache"]), "/tmp/gradient-", "rattler-build_"]
    for name, data in files.items():
        assert not any(n.encode() in data for n in needles), name
    with zipfile.ZipFile(project / APP) as zf:
        assert len({i.date_time for i in zf.infolist()}) == 1


def test_kept_recipe_is_the_one_that_builds(built: dict[str, Any]) -> None:
    import rattler_build

    project = built[("hello-app", 1)]["project"]
    text = (project / "dist/gradient/conda/recipes/hello-app/recipe.yaml").read_text()
    assert "noarch: \"python\"" in text and '"hello = hello_app.cli:main"' in text
    assert '"../../../wheel/hello_app-0.1.0-py3-none-any.whl"' in text
    recipe = rattler_build.Stage0Recipe.from_yaml(text)
    assert recipe is not None
    assert (project / "dist/gradient/conda/recipes/hello-app/../../../wheel/"
            "hello_app-0.1.0-py3-none-any.whl").resolve().is_file()


@pytest.mark.parametrize("name", ["hello-app", "pure-package"])
def test_built_twice_byte_identically(built: dict[str, Any], name: str) -> None:
    first, second = built[(name, 1)], built[(name, 2)]
    for run in (first, second):
        assert run["result"].returncode == 0, run["result"].stderr + run["result"].stdout
    a, b = conda_files(first["project"]), conda_files(second["project"])
    assert a == b and any(k.endswith(".conda") for k in a)


def test_library_runs_its_imports_from_the_prefix(built: dict[str, Any]) -> None:
    project = built[("pure-package", 1)]["project"]
    entry = artifact_entry(project, "conda")
    assert entry["verified"] and entry["with_deps"] is False
    assert entry["verify"]["command"][0].endswith("/prefix/bin/python")
    assert entry["path"] == ("dist/gradient/conda/channel/noarch/"
                             "tinyjson-pp-0.2.0-pyh4616a5c_0.conda")


def test_compiled_package_is_linux_64_pinned_to_this_python(tmp_path: Path,
                                                            cache_dir: Path) -> None:
    import sys

    project = copy_example(tmp_path, "compiled-ext")
    result = run_gradient(project, "build", "--tier", "conda", cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr + result.stdout
    entry = artifact_entry(project, "conda")
    assert entry["path"].startswith("dist/gradient/conda/channel/linux-64/fastsum-0.3.0-")
    minor = sys.version_info[1]
    assert entry["depends"] == [f"python >=3.{minor},<3.{minor + 1}"]
    assert entry["verified"] and "sum ok" in entry["verify"]["output"]


def test_a_dependency_missing_from_the_channel_fails_verification(tmp_path: Path,
                                                                  cache_dir: Path) -> None:
    toml = (Path(__file__).parent.parent / "examples/hello-app/gradient.toml").read_text()
    project = copy_example(tmp_path, "hello-app", toml + "\n[tiers.conda]\nwith_deps = false\n")
    result = run_gradient(project, "build", "--tier", "conda", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    assert not (project / APP).exists()
    failure = json.loads(result.stdout)["failures"]["conda"]
    assert "conda could not solve hello-app" in failure["message"]
    assert "would require attrs >=22, for which no candidates were found" in failure["message"]


def test_a_console_script_that_does_not_run_from_the_prefix_fails(tmp_path: Path,
                                                                  cache_dir: Path) -> None:
    """The app imports a helper from its source tree (spelled backwards, so no scan sees the
    path): it runs on the build machine, but not from the prefix with the build paths hidden."""
    project = copy_example(tmp_path, "hello-app")
    (project / "helpers").mkdir()
    (project / "helpers" / "build_only_helper.py").write_text("NAME = 'helper'\n")
    cli = project / "src/hello_app/cli.py"
    where = str(project / "helpers")[::-1]
    cli.write_text(cli.read_text() + f"\nimport sys\nsys.path.insert(0, {where!r}[::-1])\n"
                   "import build_only_helper  # noqa\n")
    built = run_gradient(project, "build", "--tier", "conda", "--no-verify", cache_dir=cache_dir)
    assert built.returncode == 0, built.stderr + built.stdout
    result = run_gradient(project, "verify", "--tier", "conda", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    verdict = json.loads(result.stdout)["conda"]
    assert not verdict["verified"] and "exited with 1" in verdict["problem"]
    assert "No module named 'build_only_helper'" in verdict["output"]
    assert verdict["command"][0].endswith("/prefix/bin/hello")


def test_secret_scan_opens_the_zstd_members(built: dict[str, Any], tmp_path: Path) -> None:
    """A .conda is a zip of .tar.zst members: the tier's reader lets the scan see inside."""
    import tarfile

    import zstandard

    project = built[("hello-app", 1)]["project"]
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n"
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        info = tarfile.TarInfo("site-packages/hello_app/deploy_key")
        info.size = len(key)
        t.addfile(info, io.BytesIO(key))
    tampered = tmp_path / "x.conda"
    with zipfile.ZipFile(project / APP) as zin, zipfile.ZipFile(tampered, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.startswith("pkg-"):
                data = zstandard.ZstdCompressor().compress(tar.getvalue())
            zout.writestr(item, data)
    readers = CondaBackend.archive_readers
    assert scan_file("x.conda", str(project / APP), [], readers=readers) == []
    found = scan_file("x.conda", str(tampered), [], readers=readers)
    assert [f.what for f in found] == ["a private key"]
    assert found[0].where.endswith(".tar.zst!site-packages/hello_app/deploy_key")


def test_requirements_become_match_specs_for_the_target() -> None:
    """Markers evaluated for linux and this Python; a marker that would differ elsewhere makes
    the package linux-64 (platform) or pins its Python; extras are flattened; names mapped."""
    import sys

    from gradient_backends.conda.meta import WheelInfo, plan_package

    def wheel(name: str, requires: list[str], pure: bool = True) -> WheelInfo:
        return WheelInfo(Path(f"{name}.whl"), name, "1.0", requires, ">=3.9", {}, "", None, pure)

    here = f"python >=3.{sys.version_info[1]},<3.{sys.version_info[1] + 1}"
    deps = {"requests": wheel("requests", ["idna<4", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"'])}
    plain = plan_package(wheel("app", ["requests[socks]~=2.22", "msgpack>=1", "torch==2.*"]),
                         deps, {"requests": "requests"})
    assert plain.noarch and plain.reasons == []
    assert plain.depends == ["python >=3.9", "requests >=2.22,2.*", "idna <4",
                             "pysocks !=1.5.7,>=1.5.6", "msgpack-python >=1", "pytorch 2.*"]
    windows = plan_package(wheel("app", ['colorama; sys_platform == "win32"']), {}, {})
    assert not windows.noarch and windows.depends == [here]
    assert "depends on the platform" in windows.reasons[0]
    old = plan_package(wheel("app", ['tomli>=1; python_version < "3.11"']), {}, {})
    assert old.noarch and old.depends[0] == here and "Python version" in old.reasons[0]
    compiled = plan_package(wheel("ext", [], pure=False), {}, {"ext": "ext-conda"})
    assert compiled.name == "ext-conda" and not compiled.noarch and compiled.depends == [here]
