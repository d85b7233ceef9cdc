"""Shards and their merge, on the example app: real builds per shard, one merged manifest,
and the merges that must fail (a digest conflict, a missing or failed shard)."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import sha256

PY = ".".join(platform.python_version_tuple()[:2])
VARIANT = f"py{PY}-linux-{platform.machine().lower()}"
MATRIX = f'\n[matrix]\npython = ["{PY}"]\nplatforms = ["linux-{platform.machine().lower()}"]\n'

Run = Callable[..., subprocess.CompletedProcess[str]]


def _project(example: Callable[..., Path]) -> Path:
    project = example("hello-app")
    with (project / "gradient.toml").open("a") as toml:
        toml.write(MATRIX)
    return project


def _shards(project: Path, gradient: Run) -> tuple[Path, Path]:
    one = gradient(project, "build", "--shard", "1/2", "--out", "dist/shards/one")
    two = gradient(project, "build", "--shard", f"tier=wheel,variant={VARIANT}",
                   "--out", "dist/shards/two")
    assert one.returncode == 0, one.stderr + one.stdout
    assert two.returncode == 0, two.stderr + two.stdout
    return project / "dist/shards/one", project / "dist/shards/two"


def test_shards_merge_into_one_manifest_and_one_sha256sums(
        example: Callable[..., Path], gradient: Run) -> None:
    project = _project(example)
    one, two = _shards(project, gradient)
    record = json.loads((two / "shard.json").read_text())
    assert record["shard"] == {"tiers": ["wheel"], "variant": VARIANT, "index": 2, "total": 2,
                               "name": f"wheel@{VARIANT} (2/2)"}
    assert record["machine"]["python"].startswith(PY) and record["machine"]["os"] == "linux"
    assert record["nodes"]["wheel"]["state"] == "verified" and record["ok"]
    assert set(json.loads((one / "shard.json").read_text())["nodes"]) == {"sdist"}

    into_dist = gradient(project, "merge", "dist/shards/one", "dist/shards/two")
    assert into_dist.returncode == 0, into_dist.stderr
    proven = gradient(project, "verify")  # the merged folder is a normal output folder
    assert proven.returncode == 0, proven.stderr + proven.stdout
    merged = gradient(project, "merge", "dist/shards/one", "dist/shards/two", "--out", "dist/r")
    assert merged.returncode == 0, merged.stderr
    data = json.loads((project / "dist/r/manifest.json").read_text())
    assert {a["tier"] for a in data["artifacts"]} == {"sdist", "wheel"}
    assert all(a["verified"] for a in data["artifacts"] if a["role"] == "artifact")
    assert data["tiers"]["wheel"]["shards"] == [f"wheel@{VARIANT} (2/2)"]
    sums = (project / "dist/r/SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(data["artifacts"])
    for line in sums:  # every listed file is there, with the digest its shard built
        digest, rel = line.split("  ")
        assert sha256(project / "dist/r" / rel) == digest
        shard = one if rel.startswith("sdist/") else two
        assert sha256(shard / rel) == digest, rel


def test_a_missing_or_failed_shard_fails_the_merge_unless_partial(
        example: Callable[..., Path], gradient: Run) -> None:
    project = _project(example)
    _one, _two = _shards(project, gradient)
    missing = gradient(project, "merge", "dist/shards/two", "--out", "dist/r")
    assert missing.returncode == 1
    assert f"shard 1/2 (sdist@{VARIANT}) is missing" in missing.stderr
    assert not (project / "dist/r").exists()  # nothing merged

    partial = gradient(project, "merge", "dist/shards/two", "--out", "dist/r", "--allow-partial")
    assert partial.returncode == 0, partial.stderr
    assert "left out: shard 1/2" in partial.stderr
    data = json.loads((project / "dist/r/manifest.json").read_text())
    assert {a["tier"] for a in data["artifacts"]} == {"wheel"}

    toml = (project / "gradient.toml").read_text().replace('expect = "hello, gradient!',
                                                           'expect = "goodbye, gradient!')
    (project / "gradient.toml").write_text(toml)
    failed = gradient(project, "build", "--shard", "1/2", "--out", "dist/shards/bad")
    assert failed.returncode == 1
    assert not json.loads((project / "dist/shards/bad/shard.json").read_text())["ok"]
    refused = gradient(project, "merge", "dist/shards/bad", "dist/shards/two", "--out", "dist/r2")
    assert refused.returncode == 1
    assert f"shard sdist@{VARIANT} (1/2) failed: sdist failed" in refused.stderr


def test_two_shards_with_different_digests_for_one_node_conflict(
        example: Callable[..., Path], gradient: Run) -> None:
    project = _project(example)
    _one, two = _shards(project, gradient)
    other = project / "dist/shards/two-again"
    shutil.copytree(two, other)
    wheel = next((other / "wheel").glob("hello_app-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")  # a rebuild that was not reproducible...
    data = json.loads((other / "manifest.json").read_text())
    for item in data["artifacts"]:  # ...recorded as that shard's build would have
        if item["path"].endswith(wheel.name):
            item["sha256"], item["size"] = sha256(wheel), wheel.stat().st_size
    (other / "manifest.json").write_text(json.dumps(data))
    record = json.loads((other / "shard.json").read_text())
    record["shard"]["name"] = "wheel (the rerun)"
    (other / "shard.json").write_text(json.dumps(record))

    clash = gradient(project, "merge", "dist/shards/one", "dist/shards/two",
                     "dist/shards/two-again", "--out", "dist/r")
    assert clash.returncode == 1
    assert f"wheel ({VARIANT}) differs between shard wheel@{VARIANT} (2/2) and shard " \
           "wheel (the rerun)" in clash.stderr
    assert "reproducibility" in clash.stderr and not (project / "dist/r").exists()

    wheel.write_bytes(wheel.read_bytes() + b"\0")  # changed after its shard recorded it
    tampered = gradient(project, "merge", "dist/shards/one", "dist/shards/two-again",
                        "--out", "dist/r")
    assert tampered.returncode == 1 and "changed since it was built" in tampered.stderr


def test_shard_specs_that_cannot_be_built_here_exit_2(
        example: Callable[..., Path], gradient: Run) -> None:
    project = _project(example)
    cases = {("--shard", "3/2"): "between 1 and N",
             ("--shard", "1/5"): "N must be 2",
             ("--shard", "tier=wheel,variant=py3.1-linux-x86_64"): "not one of [matrix]'s",
             ("--shard", "wheel"): "expected K/N"}
    for args, words in cases.items():
        done = gradient(project, "build", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr, (args, done.stderr)
    elsewhere = "3.10" if PY != "3.10" else "3.12"
    toml = (project / "gradient.toml").read_text().replace(f'"{PY}"', f'"{PY}", "{elsewhere}"')
    (project / "gradient.toml").write_text(toml)
    wrong = gradient(project, "build", "--shard",
                     f"tier=wheel,variant=py{elsewhere}-linux-{platform.machine().lower()}")
    assert wrong.returncode == 2 and f"must run on Python {elsewhere}" in wrong.stderr
    assert not (project / "dist").exists()


def _as_other_variant(shard: Path, dest: Path, variant: str) -> Path:
    """`shard` as if a runner of `variant` had built it (one machine runs one variant)."""
    shutil.copytree(shard, dest)
    record = json.loads((dest / "shard.json").read_text())
    record["shard"] |= {"variant": variant, "name": f"wheel@{variant}", "index": None,
                        "total": None}
    (dest / "shard.json").write_text(json.dumps(record))
    return dest


def test_variants_with_one_digest_merge_as_one_tier_and_others_side_by_side(
        example: Callable[..., Path], gradient: Run) -> None:
    project = _project(example)
    _one, two = _shards(project, gradient)
    same = _as_other_variant(two, project / "dist/shards/mac", "py3.12-macos-arm64")
    shards = ("dist/shards/one", "dist/shards/two", "dist/shards/mac")
    merged = gradient(project, "merge", *shards, "--out", "dist/a")
    assert merged.returncode == 0, merged.stderr
    data = json.loads((project / "dist/a/manifest.json").read_text())
    assert data["tiers"]["wheel"]["shards"] == sorted([f"wheel@{VARIANT} (2/2)",
                                                       "wheel@py3.12-macos-arm64"])
    assert {a["tier"] for a in data["artifacts"]} == {"sdist", "wheel"}

    wheel = next((same / "wheel").glob("hello_app-*.whl"))  # a platform wheel would differ
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    listing = json.loads((same / "manifest.json").read_text())
    for item in listing["artifacts"]:
        if item["path"].endswith(wheel.name):
            item["sha256"], item["size"] = sha256(wheel), wheel.stat().st_size
    (same / "manifest.json").write_text(json.dumps(listing))
    apart = gradient(project, "merge", *shards, "--out", "dist/b")
    assert apart.returncode == 0, apart.stderr
    data = json.loads((project / "dist/b/manifest.json").read_text())
    tiers = {a["tier"] for a in data["artifacts"]}
    assert tiers == {"sdist", f"wheel@{VARIANT}", "wheel@py3.12-macos-arm64"}
    assert sha256(project / "dist/b/wheel@py3.12-macos-arm64" / wheel.name) == sha256(wheel)
    assert sha256(project / f"dist/b/wheel@{VARIANT}" / wheel.name) == sha256(two / "wheel" /
                                                                          wheel.name)
