"""The oci tier for real: images of the example app built without a daemon, then loaded and run
in the Docker daemon, with both payloads; the same inputs give the same image digest. With
no daemon reachable (DOCKER_HOST pointing nowhere) they run under runc; with runc and umoci
off the PATH too they are only checked, never verified.

These tests need a Docker daemon (`make test` starts one), runc and umoci, and root for
debootstrap and runc; without them they fail, they do not skip. The debootstrap base is
built once per session cache.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    EXAMPLES,
    IGNORED,
    artifact_entry,
    docker_available,
    manifest,
    reseal,
    run_gradient,
)

LAYER = "application/vnd.oci.image.layer.v1.tar"
EPOCH = "1700000000"
CREATED = "2023-11-14T22:13:20Z"
EXPECT = "hello, gradient! (from hello-app 0.1.0)"


NO_DAEMON = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
PROBE = ("import os, socket; print(f'uid={os.getuid()} gid={os.getgid()} cwd={os.getcwd()} "
         "net={[n for _, n in socket.if_nameindex()]} home={os.environ.get(\"HOME\")} "
         "term={os.environ.get(\"TERM\")}')")


def no_runtime(where: Path) -> dict[str, str]:
    """No daemon, and a PATH with every command on this one except runc and umoci."""
    farm = where / "path-without-runc"
    farm.mkdir(exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if name not in ("runc", "umoci") and not (farm / name).exists():
                (farm / name).symlink_to(Path(directory) / name)
    assert not shutil.which("runc", path=str(farm)) and shutil.which("git", path=str(farm))
    return {**NO_DAEMON, "PATH": str(farm)}


def leftover_containers() -> list[str]:
    listed = subprocess.run(["runc", "list", "--quiet"], capture_output=True, text=True,
                            timeout=60)
    # only the oci tier's: exe verifications elsewhere in the run (another pytest-xdist
    # worker) start runc containers of their own, and with a daemon up oci runs in docker
    return [c for c in listed.stdout.split() if c.startswith("gradient-oci-")]


def toml(oci: str) -> str:
    return ('tier = "oci"\n\n[app]\nscript = "hello"\n\n'
            f'[verify]\nargs = ["gradient"]\nexpect = "{EXPECT}"\n\n'
            f"[tiers.oci]\n{oci}\n")


DEB_TOML = toml('base = "debootstrap:bookworm"\ntag = "gradient-test/hello-deb:{version}"')
EXE_TOML = toml('payload = "exe"\nbase = "scratch"\ntag = "gradient-test/hello-exe:{version}"')


def make_project(where: Path, text: str) -> Path:
    dest = where / "hello-app"
    shutil.copytree(EXAMPLES / "hello-app", dest, ignore=IGNORED)
    (dest / "gradient.toml").write_text(text)
    return dest


def build(project: Path, cache: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return run_gradient(project, "build", *args, cache_dir=cache,
                        env={"SOURCE_DATE_EPOCH": EPOCH, **(env or {})})


def built_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr


def image_tar(project: Path) -> Path:
    return project / artifact_entry(project, "oci")["path"]


def read_image(path: Path) -> dict[str, Any]:
    """The image as an OCI reader sees it, every blob checked against its digest and size."""
    with tarfile.open(path) as tar:
        def blob(desc: dict[str, Any]) -> bytes:
            f = tar.extractfile("blobs/sha256/" + desc["digest"].split(":")[1])
            assert f is not None
            data = f.read()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
            assert len(data) == desc["size"]
            return data

        def read(name: str) -> Any:
            f = tar.extractfile(name)
            assert f is not None
            return json.loads(f.read())

        index, docker = read("index.json"), read("manifest.json")
        manifest = json.loads(blob(index["manifests"][0]))
        config = json.loads(blob(manifest["config"]))
        layers, diff_ids, raws = [], [], []
        for desc in manifest["layers"]:
            assert desc["mediaType"] in (LAYER, LAYER + "+gzip")
            data = blob(desc)
            raw = gzip.decompress(data) if desc["mediaType"].endswith("+gzip") else data
            with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
                layers.append({m.name.rstrip("/"): m for m in layer.getmembers()})
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            raws.append(raw)
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert docker[0]["Config"] == "blobs/" + manifest["config"]["digest"].replace(":", "/")
    assert docker[0]["Layers"] == ["blobs/" + d["digest"].replace(":", "/")
                                   for d in manifest["layers"]]
    return {"index": index, "manifest": manifest, "config": config, "layers": layers,
            "raw": raws, "docker": docker, "digest": index["manifests"][0]["digest"]}


def file_in_layer(raw: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(raw)) as layer:
        f = layer.extractfile(name)
        assert f is not None
        return f.read()


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def has_image(ref: str) -> bool:
    return docker("image", "inspect", ref, check=False).returncode == 0


@pytest.fixture(scope="module")
def daemon() -> None:
    assert docker_available(), "these tests run the images: start a Docker daemon (make dockerd)"


@pytest.fixture(scope="module")
def deb(daemon: None, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tarball payload on a debootstrap:bookworm base, built and verified once."""
    project = make_project(tmp_path_factory.mktemp("oci-deb"), DEB_TOML)
    built_ok(build(project, cache_dir))
    return project


@pytest.fixture(scope="module")
def exe(daemon: None, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The exe payload on scratch (plus the host's C library), built and verified once."""
    project = make_project(tmp_path_factory.mktemp("oci-exe"), EXE_TOML)
    built_ok(build(project, cache_dir))
    return project


@pytest.fixture
def loaded(deb: Path) -> Iterator[str]:
    """The debootstrap image loaded into the daemon by plain `docker load`, removed after."""
    tag = "gradient-test/hello-deb:0.1.0"
    docker("load", "-i", str(image_tar(deb)))
    try:
        yield tag
    finally:
        bases = docker("images", "--quiet", "gradient-oci-base", check=False).stdout.split()
        docker("rmi", "--force", tag, *bases, check=False)


def test_tarball_payload_on_debootstrap_was_run_in_docker(deb: Path) -> None:
    entry = artifact_entry(deb, "oci")
    verdict = entry["verify"]
    assert entry["verified"] and verdict["runtime"] == "docker", verdict
    assert EXPECT in verdict["output"]
    command = verdict["command"]
    assert command[:2] == ["docker", "run"] and "--network" in command
    assert command[command.index("--network") + 1] == "none"
    assert command[command.index("--user") + 1] == "app"
    assert [layer["holds"] for layer in entry["layers"]] == ["base", "system", "deps", "app"]
    image = read_image(image_tar(deb))
    assert image["digest"] == entry["image_digest"] == verdict["image_digest"]
    run = image["config"]["config"]
    assert run["User"] == "app" and run["Entrypoint"] == ["/app/bin/hello"]
    assert run["WorkingDir"] == "/app"
    labels = run["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.created"] == CREATED == image["config"]["created"]
    assert image["docker"][0]["RepoTags"] == ["gradient-test/hello-deb:0.1.0"]
    base, system, deps, app = image["layers"]
    assert "usr/bin/python3" in base and "etc/passwd" in base
    assert "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease" not in base
    assert not [n for n in base if n.startswith(("usr/share/doc/", "dev/"))]
    # no apt: it brings libgnutls30, whose FIPS self-test private keys the secret scan refuses
    assert "usr/bin/apt-get" not in base and not [n for n in base if "libgnutls" in n]
    assert base["tmp"].mode == 0o1777
    assert system["home/app"].uid == 10001
    passwd = file_in_layer(image["raw"][1], "etc/passwd").decode()
    assert passwd.startswith("root:x:0:0:") and "\napp:x:10001:10001:" in passwd
    # the Jib split: third-party packages below, the app's own code in the small top layer
    assert "app/lib/attr/__init__.py" in deps and not [n for n in deps if "hello_app" in n]
    assert {"app/bin/hello", "app/lib/hello_app/cli.py",
            "app/lib/hello_app/data/greeting.txt"} <= set(app)
    assert not [n for n in app if "/attr" in n]
    # the app layer is dated SOURCE_DATE_EPOCH; dependencies a fixed date (1980-01-01), so a
    # new commit leaves the dependency layer byte-identical
    assert all(m.uid == 0 and m.mtime == int(EPOCH) for m in app.values())
    assert all(m.uid == 0 and m.mtime == 315532800 for m in deps.values())
    assert not has_image("gradient-test/hello-deb:0.1.0"), "verification left its image behind"


def test_plain_docker_loads_it_and_it_runs_as_non_root(loaded: str) -> None:
    ran = docker("run", "--rm", "--network", "none", loaded, "gradient")
    assert EXPECT in ran.stdout
    uid = docker("run", "--rm", "--network", "none", "--entrypoint", "id", loaded, "-u")
    assert uid.stdout.strip() == "10001"


def test_same_inputs_same_digest_and_a_code_change_ships_only_the_app_layer(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    first = read_image(image_tar(deb))
    # A cache of its own (the wheel, the tarball and the image are all built again), sharing
    # only the debootstrap base: ctx.tool_cache("oci-bases") is CACHE/tools/oci-bases.
    cache = tmp_path / "cache"
    shutil.copytree(cache_dir / "tools" / "oci-bases", cache / "tools" / "oci-bases",
                    copy_function=os.link)
    again = make_project(tmp_path, DEB_TOML)
    built_ok(build(again, cache))
    second = read_image(image_tar(again))
    assert second["digest"] == first["digest"]
    assert image_tar(again).read_bytes() == image_tar(deb).read_bytes()

    cli = again / "src" / "hello_app" / "cli.py"
    cli.write_text(cli.read_text() + "\n# a change to the app's own code\n")
    built_ok(build(again, cache))
    changed = read_image(image_tar(again))
    before = [d["digest"] for d in first["manifest"]["layers"]]
    after = [d["digest"] for d in changed["manifest"]["layers"]]
    assert after[:3] == before[:3], "base, system and dependency layers must not change"
    assert after[3] != before[3] and changed["digest"] != first["digest"]
    assert changed["manifest"]["layers"][3]["size"] < 10_000


def test_exe_payload_on_scratch_brings_its_c_library(exe: Path) -> None:
    entry = artifact_entry(exe, "oci")
    verdict = entry["verify"]
    assert entry["verified"] and verdict["runtime"] == "docker", verdict
    assert EXPECT in verdict["output"]
    assert [layer["holds"] for layer in entry["layers"]] == ["system", "deps", "app"]
    image = read_image(image_tar(exe))
    system, deps, app = image["layers"]
    assert system["tmp"].mode == 0o1777 and "etc/passwd" in system
    assert "lib64/ld-linux-x86-64.so.2" in deps
    assert "lib/x86_64-linux-gnu/libc.so.6" in deps
    assert not [n for n in [*deps, *app] if "python3" in n.split("/")[-1]]
    assert list(app) == ["app", "app/hello"] and app["app/hello"].mode == 0o755
    assert image["config"]["config"]["Entrypoint"] == ["/app/hello"]
    assert not has_image("gradient-test/hello-exe:0.1.0")


def test_without_a_daemon_the_exe_image_runs_under_runc(exe: Path, cache_dir: Path) -> None:
    proc = run_gradient(exe, "verify", "--tier", "oci", "--json", cache_dir=cache_dir,
                        env=NO_DAEMON)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["oci"]
    assert verdict["runtime"] == "runc" and verdict["checks"] == "passed", verdict
    assert verdict["level"] == "ran" and verdict["ok"] and EXPECT in verdict["output"]
    assert verdict["user"] == "10001:10001" and verdict["process"] == ["/app/hello", "gradient"]
    assert not leftover_containers()


RACE = """\
import docker.models.containers as containers

_real = containers.ContainerCollection.create


def _run_after_the_other_cleaned_up(self, image, *args, **kwargs):
    # What a second verification of this very image does on the same daemon when it ends
    # between our load and our run: it removes the image (reproducible: one id everywhere).
    if not getattr(containers, "raced", False):
        containers.raced = True
        self.client.images.remove(image, force=True)
    return _real(self, image, *args, **kwargs)


containers.ContainerCollection.create = _run_after_the_other_cleaned_up
"""


def test_an_image_removed_by_a_concurrent_verification_is_loaded_again(
        exe: Path, cache_dir: Path, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RACE)
    proc = run_gradient(exe, "verify", "--tier", "oci", "--json", cache_dir=cache_dir,
                        env={"PYTHONPATH": str(hook)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["oci"]
    assert verdict["runtime"] == "docker" and verdict["ok"] and EXPECT in verdict["output"]
    assert not has_image(artifact_entry(exe, "oci")["config_digest"]), "the daemon as it was"


def test_without_a_daemon_the_image_runs_under_runc_offline_as_its_user(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, DEB_TOML)
    proc = build(project, cache_dir, env=NO_DAEMON)
    built_ok(proc)
    entry = artifact_entry(project, "oci")
    verdict = entry["verify"]
    assert entry["verified"] is True and verdict["level"] == "ran", verdict
    assert verdict["runtime"] == "runc" and EXPECT in verdict["output"]
    assert verdict["command"][1:3] == ["run", "--bundle"]
    assert "(runtime runc)" in proc.stderr
    assert entry["image_digest"] == artifact_entry(deb, "oci")["image_digest"]
    # what the process saw: its uid, its working directory, its network (only lo), its env
    (project / "gradient.toml").write_text(DEB_TOML.replace(
        f'args = ["gradient"]\nexpect = "{EXPECT}"', f"code = {json.dumps(PROBE)}"))
    proc = run_gradient(project, "verify", "--tier", "oci", "--json", cache_dir=cache_dir,
                        env=NO_DAEMON)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["oci"]
    assert verdict["runtime"] == "runc" and verdict["process"][:2] == ["python3", "-c"]
    assert "uid=10001 gid=10001 cwd=/app net=['lo'] home=/home/app term=None" in (
        verdict["output"]), verdict
    assert not leftover_containers()


def test_under_runc_a_broken_image_fails(deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    # the built image, verified again with an expectation it does not meet (`[verify]`
    # applies to every tier, so a build would fail at the wheel first)
    silent = tmp_path / "silent"
    shutil.copytree(deb, silent)
    (silent / "gradient.toml").write_text(DEB_TOML.replace(EXPECT, "never printed"))
    proc = run_gradient(silent, "verify", "--tier", "oci", "--json", cache_dir=cache_dir,
                        env=NO_DAEMON)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)["oci"]
    assert verdict["runtime"] == "runc" and verdict["level"] == "ran", verdict
    assert verdict["problem"] == "output does not contain 'never printed'"
    assert verdict["ok"] is False and EXPECT in verdict["output"]

    failing = make_project(tmp_path / "failing", toml(
        'base = "debootstrap:bookworm"\nentrypoint = ["/bin/false"]\n'
        'tag = "gradient-test/false:1"'))
    proc = build(failing, cache_dir, "--json", env=NO_DAEMON)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failure = json.loads(proc.stdout)["failures"]["oci"]
    assert "exited with 1, expected 0" in failure["message"], failure
    # the tiers that succeeded are promoted; the failed image is not
    assert "oci" not in {a["tier"] for a in manifest(failing)["artifacts"]}
    assert manifest(failing)["tiers"]["oci"]["state"] == "failed"
    assert not leftover_containers()


def test_an_unavailable_runtime_asked_for_fails_naming_the_fix(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    docker_only = make_project(tmp_path / "docker", toml(
        'base = "debootstrap:bookworm"\nruntime = "docker"\ntag = "gradient-test/d:1"'))
    proc = build(docker_only, cache_dir, "--json", env=NO_DAEMON)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = json.loads(proc.stdout)["failures"]["oci"]["message"]
    assert "runtime = 'docker' is not available here: no Docker daemon answers" in message
    assert "apt-get install docker.io" in message

    runc_only = make_project(tmp_path / "runc", toml(
        'base = "debootstrap:bookworm"\nruntime = "runc"\ntag = "gradient-test/r:1"'))
    proc = build(runc_only, cache_dir, "--json", env=no_runtime(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = json.loads(proc.stdout)["failures"]["oci"]["message"]
    assert "runtime = 'runc' is not available here: runc and umoci are not installed" in message
    assert "apt-get install runc umoci" in message


def test_with_no_runtime_at_all_the_image_is_only_checked(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, DEB_TOML)
    env = no_runtime(tmp_path)
    proc = build(project, cache_dir, env=env)
    built_ok(proc)
    assert "checked (not run: no Docker daemon answers" in proc.stderr, proc.stderr
    assert "runc and umoci are not installed (apt-get install runc umoci)" in proc.stderr
    entry = artifact_entry(project, "oci")
    verdict = entry["verify"]
    assert entry["verified"] is False and verdict["level"] == "checked", verdict
    assert verdict["runtime"] == "not available" and verdict["checks"] == "passed"
    assert "runc and umoci are not installed" in verdict["why"]
    assert re.search(r"oci +checked \(not run: ", proc.stdout), proc.stdout
    required = build(project, cache_dir, "--require-run", env=env)
    assert required.returncode == 1, required.stdout + required.stderr
    assert "checked but not run" in required.stderr and "--require-run" in required.stderr


def test_a_check_or_a_run_under_one_runtime_is_not_replayed_under_another(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, DEB_TOML)
    built_ok(build(project, cache_dir, env=no_runtime(tmp_path)))
    assert artifact_entry(project, "oci")["verify"]["level"] == "checked"
    # the daemon is back: the image really runs in it, the check is not replayed
    proc = build(project, cache_dir)
    built_ok(proc)
    entry = artifact_entry(project, "oci")
    assert entry["verified"] is True and entry["verify"]["runtime"] == "docker", entry["verify"]
    assert entry["verify"]["level"] == "ran" and EXPECT in entry["verify"]["output"]
    # (proven in Docker now, or replayed from an earlier run of this very image in Docker)
    assert "verified" in proc.stderr and "(runtime docker)" in proc.stderr
    # the daemon is gone again: runc runs it, the daemon's run is not replayed either
    proc = build(project, cache_dir, env=NO_DAEMON)
    built_ok(proc)
    under_runc = artifact_entry(project, "oci")["verify"]
    assert under_runc["runtime"] == "runc" and under_runc["level"] == "ran"
    assert "(runtime runc)" in proc.stderr
    # the same runtime again: now the verdict is replayed (a run would name a new container)
    built_ok(build(project, cache_dir, env=NO_DAEMON))
    assert artifact_entry(project, "oci")["verify"]["command"] == under_runc["command"]


def test_a_tampered_image_fails_verification(exe: Path, cache_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exe, copy)
    path = image_tar(copy)
    app_digest = artifact_entry(copy, "oci")["layers"][-1]["digest"]
    with tarfile.open(path) as tar:
        member = tar.getmember("blobs/sha256/" + app_digest.split(":")[1])
    data = bytearray(path.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    unsealed = run_gradient(copy, "verify", "--tier", "oci", "--json", cache_dir=cache_dir)
    assert unsealed.returncode == 1  # first: it is not the artifact the manifest lists
    assert "changed since it was built" in json.loads(unsealed.stdout)["oci"]["problem"]
    reseal(copy, "oci")  # as if a broken build had recorded it: the proof itself must catch it
    proc = run_gradient(copy, "verify", "--tier", "oci", "--json", cache_dir=cache_dir)
    assert proc.returncode == 1
    verdict = json.loads(proc.stdout)["oci"]
    assert f"blob {app_digest} does not match its digest" in verdict["output"]
    assert verdict["runtime"] == "not run"


def test_entrypoint_missing_from_the_payload_fails_verification(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, toml(
        'base = "debootstrap:bookworm"\nentrypoint = ["/app/bin/missing"]\n'
        'tag = "gradient-test/broken:1"'))
    proc = build(project, cache_dir, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failure = json.loads(proc.stdout)["failures"]["oci"]
    assert "/app/bin/missing (the entrypoint) is not in the image" in failure["message"]
    assert failure["detail"].strip() == "/app/bin/missing (the entrypoint) is not in the image"
    assert "oci" not in {a["tier"] for a in manifest(project)["artifacts"]}
    assert not has_image("gradient-test/broken:1")


def test_tarball_payload_on_scratch_fails_for_want_of_a_shell_and_python(
        daemon: None, cache_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, toml('base = "scratch"\ntag = "gradient-test/nopy:1"'))
    proc = build(project, cache_dir, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    detail = json.loads(proc.stdout)["failures"]["oci"]["detail"]
    assert "/bin/sh (the interpreter of /app/bin/hello) is not in the image" in detail
    assert "no python3 on its PATH" in detail


def test_bases_from_the_daemon_an_oci_layout_folder_and_a_docker_archive(
        loaded: str, deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    layout, saved = tmp_path / "layout", tmp_path / "saved.tar"
    with tarfile.open(image_tar(deb)) as tar:
        tar.extractall(layout, filter="data")
    docker("save", "-o", str(saved), loaded)
    projects = {}
    for name, base in (("daemon", f"docker:{loaded}"), ("folder", str(layout)),
                       ("archive", str(saved))):
        project = make_project(tmp_path / name, toml(
            f'base = "{base}"\ntag = "gradient-test/on-{name}-base:1"'))
        if name == "archive":
            git(project, "init", "-q")
            git(project, "add", "-A")
            git(project, "commit", "-q", "-m", "the example app")
            git(project, "remote", "add", "origin", "https://me:s3cret@example.org/hello.git")
        built_ok(build(project, cache_dir))
        projects[name] = project
    parent = [layer["diff_id"] for layer in artifact_entry(deb, "oci")["layers"]]
    for name, project in projects.items():
        entry = artifact_entry(project, "oci")
        assert entry["verify"]["runtime"] == "docker" and EXPECT in entry["verify"]["output"]
        holds = [layer["holds"] for layer in entry["layers"]]
        # the base image already has the user: the system layer only makes /app
        assert holds == ["base"] * 4 + ["system", "deps", "app"], name
        image = read_image(image_tar(project))
        assert image["config"]["rootfs"]["diff_ids"][:4] == parent, name
    labels = read_image(image_tar(projects["archive"]))["config"]["config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == git(projects["archive"], "rev-parse",
                                                              "HEAD")
    assert labels["org.opencontainers.image.source"] == "https://example.org/hello"
    assert has_image(loaded), "verification removed an image it did not create"


def git(project: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    proc = subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_registry_reference_is_pulled_only_from_a_reachable_registry(
        deb: Path, cache_dir: Path, tmp_path: Path) -> None:
    project = make_project(tmp_path, toml('base = "registry.invalid/python:3.11"'))
    proc = build(project, cache_dir, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = json.loads(proc.stdout)["failures"]["oci"]["message"]
    assert "could not pull 'registry.invalid/python:3.11' (is a registry reachable?)" in message


def test_docker_engine_builds_through_the_daemon(deb: Path, cache_dir: Path,
                                                 tmp_path: Path) -> None:
    tag = "gradient-test/hello-engine:0.1.0"
    project = make_project(tmp_path, toml(
        'base = "debootstrap:bookworm"\nengine = "docker"\n'
        'tag = "gradient-test/hello-engine:{version}"'))
    try:
        built_ok(build(project, cache_dir))
        entry = artifact_entry(project, "oci")
        assert entry["engine"] == "docker" and "ADD app.tar.gz /" in entry["dockerfile"]
        assert entry["verify"]["runtime"] == "docker" and EXPECT in entry["verify"]["output"]
        image_id = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        assert image_id == entry["config_digest"], "the tar holds the daemon's own image"
        assert [layer["holds"] for layer in entry["layers"]] == ["base", "system", "deps", "app"]
    finally:
        bases = docker("images", "--quiet", "gradient-oci-base", check=False).stdout.split()
        docker("rmi", "--force", tag, *bases, check=False)
