"""A core that fails cleanly: no tracebacks for users, Ctrl-C that stops everything,
verification of exactly what was built, promotion and a cache that survive races."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GRADIENT, snapshot

from gradient_build.backend import Artifact
from gradient_build.cache import Cache, Entry
from gradient_build.errors import BuildFailed
from gradient_build.outputs import Outcome, promote
from gradient_build.runner import Runner
from gradient_build.sandbox import Sandbox

Gradient = Callable[..., subprocess.CompletedProcess[str]]

CRASHING_COPY = """
from gradient_backends.copy import CopyBackend

def build(self, ctx):
    raise RuntimeError("boom in the backend")

CopyBackend.build = build
"""


def test_a_backend_crash_is_one_line_and_the_traceback_is_opt_in(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    project = example("single-module")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(CRASHING_COPY)
    env = {"PYTHONPATH": str(site)}
    cache = tmp_path / "crash-cache"
    plain = gradient(project, "build", env=env, cache_dir=cache)
    assert plain.returncode == 1
    assert "internal error: RuntimeError: boom in the backend" in plain.stderr
    assert "Traceback" not in plain.stderr and "-v" in plain.stderr
    verbose = gradient(project, "build", "-v", env=env, cache_dir=cache)
    assert verbose.returncode == 1
    assert "Traceback" in verbose.stderr and 'raise RuntimeError("boom' in verbose.stderr
    logged = gradient(project, "build", "--log-format", "json", env=env, cache_dir=cache)
    events = [json.loads(x) for x in logged.stderr.splitlines() if x.startswith("{")]
    failed = next(e for e in events if e["kind"] == "failed")
    assert "Traceback" in failed["detail"]


def test_a_crash_in_the_cli_is_one_line_and_verify_names_a_deleted_artifact(
        example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("single-module")
    assert gradient(project, "build").returncode == 0
    artifact = project / "dist/gradient/copy/greet.py"
    artifact.unlink()
    gone = gradient(project, "verify")
    assert gone.returncode == 1
    assert "dist/gradient/copy/greet.py is missing" in gone.stdout + gone.stderr
    assert "Traceback" not in gone.stderr
    manifest = project / "dist/gradient/manifest.json"
    data = json.loads(manifest.read_text())
    del data["artifacts"][0]["path"]  # a manifest damaged by hand: a bug path, not a usage one
    manifest.write_text(json.dumps(data))
    crash = gradient(project, "verify")
    assert crash.returncode == 1
    assert crash.stderr.startswith("error: internal error: KeyError")
    assert "Traceback" not in crash.stderr
    assert "Traceback" in gradient(project, "verify", "--verbose").stderr


def test_verify_fails_on_an_artifact_that_still_runs_but_is_not_the_one_built(
        example: Callable[..., Path], gradient: Gradient) -> None:
    project = example("single-module")
    assert gradient(project, "build").returncode == 0
    copied = project / "dist/gradient/copy/greet.py"
    copied.write_text(copied.read_text() + "\n# edited after the build\n")
    result = gradient(project, "verify", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)["copy"]
    assert data["ok"] is False and "dist/gradient/copy/greet.py changed" in data["problem"]


def test_a_tool_that_times_out_shows_what_it_printed(tmp_path: Path) -> None:
    script = ["sh", "-c", "echo printed-before-the-timeout; sleep 30"]
    started = time.monotonic()
    with pytest.raises(BuildFailed) as caught:
        Runner("t", dict(os.environ), lambda event: None)(script, timeout=1)
    assert "timed out" in caught.value.message
    assert "printed-before-the-timeout" in caught.value.detail
    result = Sandbox().run(script, cwd=tmp_path, env=dict(os.environ), timeout=1, offline=False)
    assert result.timed_out and "printed-before-the-timeout" in result.output
    assert time.monotonic() - started < 10  # the whole group died, not only the shell


def _pyinstaller(cache: Path) -> list[str]:
    found = subprocess.run(["pgrep", "-af", str(cache)], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "PyInstaller" in line]


def test_ctrl_c_stops_the_tools_and_leaves_dist_unchanged(
        example: Callable[..., Path], tmp_path: Path) -> None:
    project = example("plugin-app")
    cache = tmp_path / "ctrl-c-cache"
    env = {**os.environ, "GRADIENT_CACHE_DIR": str(cache)}
    env.pop("CI", None)
    first = subprocess.run([GRADIENT, "build", "--tier", "wheel"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    before = snapshot(project)
    proc = subprocess.Popen([GRADIENT, "build", "--tier", "exe"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _pyinstaller(cache) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pyinstaller(cache), "PyInstaller never started"
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 8
    assert "interrupted: dist/gradient/ is unchanged" in err
    assert "Traceback" not in err
    assert _pyinstaller(cache) == []
    assert snapshot(project) == before
    assert not [p for p in (project / "dist/gradient").iterdir() if p.name.startswith(".")]


def test_global_options_work_after_the_command(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    project = example("single-module")
    cache = tmp_path / "after-cache"
    built = gradient(project, "build", "--cache-dir", str(cache), "--log-format", "json", "-v")
    assert built.returncode == 0, built.stderr
    assert (cache / "objects").is_dir()
    assert any(line.startswith("{") for line in built.stderr.splitlines())
    elsewhere = gradient(tmp_path, "plan", "--json", f"--config={project / 'gradient.toml'}",
                         "--cache-dir", str(cache))
    assert elsewhere.returncode == 0, elsewhere.stderr
    node = json.loads(elsewhere.stdout)["nodes"][0]
    assert node["status"] == "hit", node  # it used that cache: any other would be a miss
    before = gradient(tmp_path, "--config", str(project / "gradient.toml"), "--cache-dir",
                      str(cache), "plan", "--json")
    assert json.loads(before.stdout) == json.loads(elsewhere.stdout)


def _entry(tmp_path: Path, name: str, content: bytes) -> Entry:
    from gradient_build.sources import file_digest

    root = tmp_path / f"entry-{name}"
    root.mkdir(exist_ok=True)
    (root / "blob").write_bytes(content)
    digest = {"sha256": file_digest(root / "blob"), "size": len(content)}
    return Entry(name, Artifact("t", root, "blob"), {"blob": digest})


READER = """
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
misses = checks = 0
while not os.path.exists(stop):
    checks += 1
    if not os.path.isdir(path):
        misses += 1
print(misses, checks)
"""


def test_the_tier_folder_is_never_missing_and_leftovers_are_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "gradient"
    project = {"name": "x", "version": "1"}
    promote(tmp_path, out, project, [Outcome("t", _entry(tmp_path, "a", b"a"), False, None)])
    (out / ".staging-dead-t").mkdir()
    (out / ".old-dead-t").mkdir()
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out / "t"), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    for n in range(300):
        entry = _entry(tmp_path, "ab"[n % 2], b"ab"[n % 2:][:1] * 10)
        promote(tmp_path, out, project, [Outcome("t", entry, False, None)])
    stop.touch()
    misses, checks = map(int, reader.communicate(timeout=30)[0].split())
    assert checks > 100 and misses == 0
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "manifest.json", "t"]


def test_editing_a_promoted_file_never_changes_the_cached_entry(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    project = example("single-module")
    cache = tmp_path / "edit-cache"
    assert gradient(project, "build", cache_dir=cache).returncode == 0
    (cached,) = (cache / "objects").glob("*/*/out/greet.py")
    original = cached.read_bytes()
    promoted = project / "dist/gradient/copy/greet.py"
    stat = promoted.stat()
    # an edit that keeps size and mtime: a stat check cannot see it, so only a copy helps
    promoted.write_bytes(original.replace(b"hello", b"HELLO"))
    os.utime(promoted, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with promoted.open("ab") as handle:
        handle.write(b"# appended\n")
    assert cached.read_bytes() == original
    assert gradient(project, "build", cache_dir=cache).returncode == 0
    assert promoted.read_bytes() == original


def test_prune_and_lookup_survive_entries_vanishing_under_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path / "cache")
    keys = [c * 64 for c in "abc"]
    for n, key in enumerate(keys):
        out = tmp_path / f"out-{n}"
        out.mkdir()
        (out / "blob").write_bytes(bytes(1000))
        cache.store(key, Artifact("t", out, "blob"), {"n": n})
        os.utime(cache._entry_dir(key), (1000 + n, 1000 + n))
    vanished = cache._entry_dir(keys[0])
    real_stat = Path.stat

    def racing_stat(self: Path, **kw: bool) -> os.stat_result:
        if self == vanished or vanished in self.parents:
            raise FileNotFoundError(str(self))  # another process evicted it just now
        return real_stat(self, **kw)

    monkeypatch.setattr(Path, "stat", racing_stat)
    assert cache.prune(0) >= 1
    monkeypatch.undo()
    assert cache.lookup(keys[1]) is None and cache.lookup(keys[2]) is None
    assert list((cache.root / "trash").iterdir()) == []
    recent = tmp_path / "out-recent"
    recent.mkdir()
    (recent / "blob").write_bytes(bytes(1000))
    cache.store("d" * 64, Artifact("t", recent, "blob"), {"n": 9})
    cache.prune(0)
    assert cache.lookup("d" * 64) is not None  # just used: another build may be promoting it
    import shutil

    shutil.rmtree(cache._entry_dir("d" * 64) / "out")
    (cache._entry_dir("d" * 64) / "artifact.json").unlink()
    assert cache.lookup("d" * 64) is None


def test_two_processes_pruning_and_looking_up_never_crash(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    worker = f"""
import os, sys
from pathlib import Path
from gradient_build.backend import Artifact
from gradient_build.cache import Cache
cache = Cache(Path({str(root)!r}))
me = sys.argv[1]
for n in range(150):
    out = Path({str(tmp_path)!r}) / f"w-{{me}}-{{n}}"
    out.mkdir()
    (out / "blob").write_bytes(os.urandom(2000))
    key = f"{{n % 20:02d}}" * 32
    cache.store(key, Artifact("t", out, "blob"), {{"n": n, "me": me}})
    cache.lookup(key)
    cache.prune(0, grace=0)
"""
    procs = [subprocess.Popen([sys.executable, "-c", worker, str(i)], stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors


def test_clean_removes_only_this_projects_entries_unless_cache(
        example: Callable[..., Path], gradient: Gradient, tmp_path: Path) -> None:
    cache = tmp_path / "shared-cache"
    mine, theirs = example("single-module"), example("single-module")
    module = theirs / "greet.py"
    module.write_text(module.read_text() + "\n# theirs\n")
    for project in (mine, theirs):
        assert gradient(project, "build", cache_dir=cache).returncode == 0
    base = cache / "tools" / "bases" / "debootstrap-bookworm.tar"
    base.parent.mkdir(parents=True)
    base.write_bytes(bytes(4096))
    assert len(list((cache / "objects").glob("*/*"))) == 2
    cleaned = gradient(mine, "clean", cache_dir=cache)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not (mine / "dist/gradient").exists() and (theirs / "dist/gradient").exists()
    (left,) = (cache / "objects").glob("*/*")
    assert "# theirs" in (left / "out" / "greet.py").read_text() and base.exists()
    everything = gradient(mine, "clean", "--cache", cache_dir=cache)
    assert everything.returncode == 0 and not cache.exists()
    assert " KB)" in everything.stdout or " MB)" in everything.stdout



def _python_without_pip(tmp_path: Path) -> Path:
    """A venv whose interpreter sees gradient and its dependencies, but no pip."""
    import sysconfig

    venv = tmp_path / "nopip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    visible = tmp_path / "site-without-pip"
    visible.mkdir()
    for item in ours.iterdir():
        if item.name == "pip" or item.name.startswith("pip-"):
            continue
        (visible / item.name).symlink_to(item)
    (theirs,) = (venv / "lib").glob("python3*/site-packages")
    (theirs / "gradient-deps.pth").write_text(f"import site; site.addsitedir({str(visible)!r})\n")
    return venv / "bin" / "python"


def test_sdist_without_pip_is_a_missing_tool(example: Callable[..., Path],
                                             tmp_path: Path) -> None:
    python = _python_without_pip(tmp_path)
    assert subprocess.run([python, "-c", "import pip"], capture_output=True).returncode != 0
    project = example("pure-package")
    env = {**os.environ, "GRADIENT_CACHE_DIR": str(tmp_path / "nopip-cache")}
    env.pop("CI", None)
    result = subprocess.run([python, "-m", "gradient_build", "build", "--tier", "sdist"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr
    assert "pip" in result.stderr and "ensurepip" in result.stderr
    assert "No module named pip" not in result.stderr and "Traceback" not in result.stderr
