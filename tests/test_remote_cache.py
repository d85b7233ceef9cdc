"""The remote cache against a real registry: Debian's docker-registry (CNCF distribution),
started here on 127.0.0.1 with its own config and storage, and two checkouts of one commit."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EXAMPLES, IGNORED, manifest, run_gradient, snapshot

from gradient_build.remote_cache import from_settings, parse_location, tag_for

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SECRET = "pa55-w0rd-never-shown"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a registry that lives as long as this module's tests."""
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    log = (root / "log").open("w")
    proc = subprocess.Popen([REGISTRY, "serve", str(root / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"docker-registry did not start: {(root / 'log').read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
                   cwd=cwd, check=True, capture_output=True)


def _two_checkouts(tmp_path: Path, remote: str) -> tuple[Path, Path]:
    origin = tmp_path / "origin"
    shutil.copytree(EXAMPLES / "hello-app", origin, ignore=IGNORED)
    with (origin / "gradient.toml").open("a") as toml:
        toml.write(f'\n[cache]\nremote = "{remote}"\n')
    _git(origin, "init", "-q")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-qm", "release")
    for name in ("first", "second"):
        _git(tmp_path, "clone", "-q", str(origin), name)
    return tmp_path / "first", tmp_path / "second"


def test_second_checkout_downloads_every_node_and_rebuilds_nothing(
        tmp_path: Path, registry: str) -> None:
    first, second = _two_checkouts(tmp_path, f"oci://{registry}/gradient/hello-app")
    env = {"GRADIENT_CACHE_REMOTE_USER": "ci", "GRADIENT_CACHE_REMOTE_PASSWORD": SECRET}
    built = run_gradient(first, "build", cache_dir=tmp_path / "cache-1", env=env)
    assert built.returncode == 0, built.stderr + built.stdout
    assert all(not a["cached"] for a in manifest(first)["artifacts"])
    tags = json.loads(urllib.request.urlopen(
        f"http://{registry}/v2/gradient/hello-app/tags/list").read())["tags"]
    assert len(tags) == 2  # sdist and wheel, one OCI artifact per node key

    planned = run_gradient(second, "plan", "--json", cache_dir=tmp_path / "cache-2", env=env)
    assert planned.returncode == 0, planned.stderr
    statuses = {n["node"]: n["status"] for n in json.loads(planned.stdout)["nodes"]}
    assert statuses == {"sdist": "remote hit", "wheel": "remote hit"}

    assert not list((tmp_path / "cache-2").glob("objects/*/*"))  # the plan downloaded nothing

    again = run_gradient(second, "--log-format", "json", "build", cache_dir=tmp_path / "cache-2",
                         env=env)
    assert again.returncode == 0, again.stderr + again.stdout
    events = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    kinds = [e["kind"] for e in events]
    assert kinds.count("cached") == 2  # the log is there, and names both nodes
    assert "start" not in kinds and "built" not in kinds  # nothing was rebuilt
    proofs = [e for e in events if e["kind"] == "verified"]
    assert len(proofs) == 2 and all(e["replayed"] and e["remote"] for e in proofs)
    assert all(a["cached"] for a in manifest(second)["artifacts"])
    assert all(a["verified"] for a in manifest(second)["artifacts"] if a["role"] == "artifact")
    artifacts = {k: v for k, v in snapshot(first).items() if k != "manifest.json"}
    assert artifacts == {k: v for k, v in snapshot(second).items() if k != "manifest.json"}
    assert len(artifacts) >= 3  # the sdist, the wheel and its wheelhouse, and SHA256SUMS
    for output in (built, planned, again):
        assert SECRET not in output.stdout + output.stderr


def test_read_mode_uses_the_registry_but_stores_nothing(tmp_path: Path, registry: str) -> None:
    first, _ = _two_checkouts(tmp_path, f"oci://{registry}/gradient/read-only")
    done = run_gradient(first, "build", "--cache-mode", "read", cache_dir=tmp_path / "c")
    assert done.returncode == 0, done.stderr
    with pytest.raises(urllib.error.HTTPError):  # the repository was never created
        urllib.request.urlopen(f"http://{registry}/v2/gradient/read-only/tags/list")


def test_a_registry_that_does_not_answer_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    first, _ = _two_checkouts(tmp_path, f"oci://127.0.0.1:{_free_port()}/gradient/gone")
    done = run_gradient(first, "build", cache_dir=tmp_path / "c",
                        env={"GRADIENT_CACHE_REMOTE_PASSWORD": SECRET})
    assert done.returncode == 0, done.stderr
    assert "does not answer" in done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert all(a["verified"] for a in manifest(first)["artifacts"] if a["role"] == "artifact")


def test_a_registry_that_accepts_but_never_answers_is_a_miss_too(tmp_path: Path) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        first, _ = _two_checkouts(tmp_path, f"oci://127.0.0.1:{port}/gradient/silent")
        planned = run_gradient(first, "plan", "--json", cache_dir=tmp_path / "c", timeout=120)
    assert planned.returncode == 0, planned.stderr
    assert "does not answer (ReadTimeout)" in planned.stderr
    assert {n["status"] for n in json.loads(planned.stdout)["nodes"]} == {"miss"}


def test_a_bad_remote_in_gradient_toml_points_at_its_line(tmp_path: Path) -> None:
    first, _ = _two_checkouts(tmp_path, "https://user:hunter2@example.com/cache")
    done = run_gradient(first, "build", cache_dir=tmp_path / "c")
    assert done.returncode == 2
    assert "gradient.toml:" in done.stderr and "cache.remote" in done.stderr
    assert "oci://HOST/REPO" in done.stderr and "hunter2" not in done.stderr
    mode = run_gradient(first, "plan", "--cache-mode", "write", cache_dir=tmp_path / "c")
    assert mode.returncode == 2 and "readwrite" in mode.stderr


def test_tags_stay_valid_and_short_for_any_key() -> None:
    assert tag_for("ab" * 32) == "ab" * 32
    long = tag_for("x" * 300)
    assert len(long) <= 128 and long.startswith("sha256-")
    assert tag_for("a/b:c") != tag_for("a/b:d")
    assert parse_location("oci://localhost:5000/team/app").loopback
    assert not parse_location("oci://ghcr.io/team/app").loopback
    store = from_settings("oci://ghcr.io/team/app", "readwrite", "read", None, print)
    assert store is not None and store.mode == "read" and not store.insecure
    assert from_settings("oci://ghcr.io/team/app", "readwrite", "off", None, print) is None
