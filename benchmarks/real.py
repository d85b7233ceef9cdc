"""Real projects from PyPI (pinned), each tier against the raw tools chained by hand in the
same run: pyfiglet (1.6 MB of fonts, no dependencies), httpie (a dozen dependencies) and
yamllint (a static [project] table, package data, pyyaml's compiled wheel).

The sdists are fetched into gradient's cache (`bench-sources/`) by the bench itself. Every
measurement interleaves gradient and the raw chain (load from other work hits both alike),
`REPEAT` times; it reports the medians, the spread (min-max), the ratio of the medians, and
the load average (`uptime`) when the tier was measured. "Cold" is gradient's own cache
emptied (objects, metadata, no-op stamps, dist/) with the tool caches warm, like the raw
tools' caches; verification off on both sides.

Run alone: `python benchmarks/real.py [pyfiglet|httpie|yamllint ...]`, with the gradient of the
Python that runs it. `BENCH_BEFORE=/other/venv/bin/gradient` measures that gradient too, in
the same interleaved runs (its own copy and cache): a before/after table from one run.
`BENCH_TIERS=wheel,pex` limits the tiers; `BENCH_JOBS=0` leaves out `--jobs` (pex, tarball
and sdist built after the wheel, with the wheel and the tools' caches kept: 1 and 2 jobs,
verified and not).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
GRADIENT = str(BIN / "gradient")
BEFORE = os.environ.get("BENCH_BEFORE")
TIERS = [t for t in os.environ.get("BENCH_TIERS", "wheel,sdist,pex,tarball").split(",") if t]
UV = str(BIN / "uv")
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
PROJECTS: dict[str, dict[str, Any]] = {
    "pyfiglet": {"pin": "pyfiglet==1.0.4", "dir": "pyfiglet-1.0.4", "script": "pyfiglet"},
    "httpie": {"pin": "httpie==3.2.4", "dir": "httpie-3.2.4", "script": "http",
               # its sdist ships test client keys: the secret scan rightly refuses them
               "toml": '[secrets]\nallow = ["*/tests/client_certs/*"]\n'},
    "yamllint": {"pin": "yamllint==1.38.0", "dir": "yamllint-1.38.0", "script": "yamllint"},
}
GIT = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.org",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.org"}


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def load() -> float:
    return round(os.getloadavg()[0], 2)


def gradient_cache() -> Path:
    if os.environ.get("GRADIENT_CACHE_DIR"):
        return Path(os.environ["GRADIENT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradient-build"


def fetch(pin: str) -> Path:
    """The pinned sdist, downloaded once into gradient's cache."""
    where = gradient_cache() / "bench-sources"
    name, _, version = pin.partition("==")
    found = sorted(where.glob(f"{name}-{version}.tar.gz"))
    if not found:
        where.mkdir(parents=True, exist_ok=True)
        sh([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--dest", str(where), pin], where)
        found = sorted(where.glob(f"{name}-{version}.tar.gz"))
    return found[0]


class Real:
    """An unpacked, committed copy of a PyPI project with its own gradient cache."""

    def __init__(self, base: Path, key: str, gradient: str = GRADIENT) -> None:
        info = PROJECTS[key]
        self.command = gradient
        base.mkdir(parents=True)
        self.script = info["script"]
        with tarfile.open(fetch(info["pin"])) as tar:
            tar.extractall(base, filter="data")
        self.project = base / info["dir"]
        (self.project / "gradient.toml").write_text(
            f'tier = "wheel"\n[app]\nscript = "{self.script}"\n{info.get("toml", "")}')
        self.cache = base / "cache"
        (self.cache / "tools").mkdir(parents=True)
        self.env = {**os.environ, "GRADIENT_CACHE_DIR": str(self.cache)}
        self.env.pop("CI", None)
        self.tools_env = {**os.environ, "UV_CACHE_DIR": str(self.cache / "tools/uv"),
                          "PIP_CACHE_DIR": str(self.cache / "tools/pip")}
        git = {**os.environ, **GIT}
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "sdist"]):
            sh(cmd, self.project, git)
        self.raw = base / "raw"
        self.deps = bool(json.loads(self.metadata()).get("requires"))

    def metadata(self) -> str:
        self.gradient("plan")
        return next((self.cache / "metadata").glob("v2-*[0-9a-f].json")).read_text()

    def gradient(self, *args: str) -> None:
        sh([self.command, *args], self.project, self.env)

    def forget_built(self) -> None:
        """gradient's cache without what it built (objects, metadata, no-op stamps): the
        tools' caches and the nodes' timings stay."""
        for sub in ("objects", "metadata", "noop"):
            shutil.rmtree(self.cache / sub, ignore_errors=True)

    def cold(self, *args: str) -> None:
        self.forget_built()
        shutil.rmtree(self.project / "dist", ignore_errors=True)
        self.gradient("build", "--no-verify", *args)

    def clean_tree(self) -> None:
        """The project as checked out: a raw build in place leaves build/ and rewrites the
        egg-info, and setuptools then skips copying what build/lib already holds (0.2 s of
        pyfiglet's 1.5 s). gradient always builds from a fresh copy, so the raw tools do
        too, as in CI's fresh clone."""
        sh(["git", "clean", "-fdxq", "-e", "dist"], self.project)
        sh(["git", "checkout", "-q", "--", "."], self.project)

    def keep_built(self) -> None:
        """Remember the cache as it is (the wheel built): after_wheel starts from it."""
        self.kept = self.cache.parent / "kept"
        shutil.rmtree(self.kept, ignore_errors=True)
        for sub in ("objects", "metadata"):
            shutil.copytree(self.cache / sub, self.kept / sub, symlinks=True)

    def restore_wheel(self) -> None:
        """The kept cache back (the wheel built, the tools' caches and the nodes' timings as
        the last run left them), dist/ gone: what follows the wheel builds cold."""
        self.forget_built()
        for sub in ("objects", "metadata"):
            shutil.copytree(self.kept / sub, self.cache / sub, symlinks=True)
        shutil.rmtree(self.project / "dist", ignore_errors=True)

    def after_wheel(self, *args: str) -> None:
        self.restore_wheel()
        self.gradient("build", *args)

    def node_seconds(self, tiers: list[str], *, verified: bool) -> dict[str, float]:
        """What gradient recorded for each node's build (and verification) in its last run."""
        records = [json.loads(p.read_text())
                   for p in (self.cache / "records").glob("*/timings.json")]
        (timings,) = records
        wanted = [*tiers, *(f"{t}:verify" for t in tiers if verified)]
        return {name: timings[name] for name in wanted}

    # the raw tools, chained by hand as a user would without gradient
    def uv_build(self, *args: str) -> None:
        """`uv build` offline first, then online, as gradient runs it: with warm caches the
        index round trip (0.1-0.5 s here, varying by the hour) is no work of either side."""
        cmd = [UV, "build", *args, "--out-dir", str(self.raw), str(self.project)]
        proc = subprocess.run([*cmd, "--offline"], cwd=self.raw.parent, env=self.tools_env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sh(cmd, self.raw.parent, self.tools_env)

    def raw_wheel(self) -> Path:
        shutil.rmtree(self.raw, ignore_errors=True)
        self.uv_build("--wheel", "--python", sys.executable)
        wheel = next(self.raw.glob("*.whl"))
        if self.deps:
            sh([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir",
                str(self.raw / "house"), "--prefer-binary", str(wheel)], self.raw,
               self.tools_env)
            (self.raw / "house" / wheel.name).unlink(missing_ok=True)
        return wheel

    def raw_sdist(self) -> None:
        shutil.rmtree(self.raw, ignore_errors=True)
        self.uv_build("--sdist")

    def raw_pex(self) -> None:
        wheel = self.raw_wheel()
        house = ["-f", str(self.raw / "house")] if self.deps else []
        sh([sys.executable, "-m", "pex", "--no-pypi", *house, str(wheel), "-c", self.script,
            "--sh-boot", "--no-compile", "-o", str(self.raw / "app.pex")], self.raw,
           self.tools_env)

    def raw_tarball(self) -> None:
        wheel = self.raw_wheel()
        house = ["-f", str(self.raw / "house")] if self.deps else []
        sh([UV, "pip", "install", "-q", "--no-index", *house, "--target",
            str(self.raw / "tree"), "--python", sys.executable, str(wheel)], self.raw,
           self.tools_env)
        sh(["tar", "czf", str(self.raw / "app.tar.gz"), "-C", str(self.raw), "tree"], self.raw)


def pair(ours: Callable[[], object], raw: Callable[[], object], repeat: int = REPEAT,
         before: Callable[[], object] | None = None,
         setup: Callable[[], object] = lambda: None) -> dict[str, Any]:
    """Interleaved runs of both (and of the gradient before); medians, spreads, ratios and
    the load. `setup` runs untimed before each run (the raw tools' clean tree)."""
    runs = {"gradient": ours, "raw": raw, **({"before": before} if before else {})}
    first = load()
    for fn in runs.values():  # warm what they share (tool caches, page cache)
        setup()
        fn()
    samples, _, loads = turns(runs, repeat, setup)
    loads.insert(0, first)
    med = {name: statistics.median(found) for name, found in samples.items()}
    out: dict[str, Any] = {}
    for name in runs:
        out[f"{name}_s"] = round(med[name], 3)
        out[f"{name}_spread"] = spread(samples[name])
    out["ratio"] = round(med["gradient"] / med["raw"], 2)
    if before:
        out["ratio_before"] = round(med["before"] / med["raw"], 2)
    out["load"] = [min(loads), max(loads)]
    return out


def spread(samples: list[float]) -> str:
    return f"{min(samples):.2f}-{max(samples):.2f}"


def timed(fn: Callable[[], object], repeat: int = REPEAT) -> dict[str, Any]:
    samples = []
    loads = [load()]
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
        loads.append(load())
    return {"median_s": round(statistics.median(samples), 3), "spread": spread(samples),
            "load": [min(loads), max(loads)]}


def turns(runs: dict[str, Callable[[], object]], repeat: int, setup: Callable[[], object]
          ) -> tuple[dict[str, list[float]], dict[str, list[float]], list[float]]:
    """`repeat` rounds of every one of `runs` in turn (load from other work hits them alike),
    each after an untimed `setup`: the wall seconds of each, its CPU seconds (user and system,
    of every process it waited for), and the load before and after each round."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    loads = [load()]
    for _ in range(repeat):
        for name, fn in runs.items():
            setup()
            used = children_cpu()
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
            cpu[name].append(children_cpu() - used)
        loads.append(load())
    return samples, cpu, loads


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def interleaved(runs: dict[str, Callable[[], object]], repeat: int,
                setup: Callable[[], object]) -> dict[str, dict[str, Any]]:
    """`timed` of each of `runs`, taking turns, with the median CPU seconds each used."""
    samples, cpu, loads = turns(runs, repeat, setup)
    return {name: {"median_s": round(statistics.median(found), 3), "spread": spread(found),
                   "cpu_s": round(statistics.median(cpu[name]), 3),
                   "load": [min(loads), max(loads)]} for name, found in samples.items()}


def bound(work: dict[str, float], workers: int) -> float:
    """The most `workers` could speed up these nodes (builds "tier", verifications
    "tier:verify", each after its build; every build's input already built): their summed
    seconds over the shortest schedule of them, the best of every order each handed to the
    first free worker. Start-up, SBOMs and promotion count as nothing here, so a real run's
    speedup stays below it."""
    best = float("inf")
    for order in itertools.permutations(work):
        if any(order.index(n) < order.index(n.split(":")[0]) for n in order if ":" in n):
            continue
        free = [0.0] * workers
        ends: dict[str, float] = {}
        for name in order:
            worker = min(range(workers), key=free.__getitem__)
            start = max(free[worker], ends.get(name.split(":")[0], 0.0) if ":" in name else 0.0)
            ends[name] = free[worker] = start + work[name]
        best = min(best, max(free))
    return round(sum(work.values()) / best, 2)


def bench_project(base: Path, key: str) -> dict[str, Any]:
    real = Real(base / "after", key)
    old = Real(base / "before", key, BEFORE) if BEFORE else None
    out: dict[str, Any] = {"dependencies": real.deps}
    raws = {"wheel": real.raw_wheel, "sdist": real.raw_sdist, "pex": real.raw_pex,
            "tarball": real.raw_tarball}
    for tier in TIERS:
        sys.stderr.write(f"benchmark: {key} {tier} (load {load()})\n")
        after_fn = functools.partial(real.cold, "--tier", tier)
        before_fn = functools.partial(old.cold, "--tier", tier) if old else None
        out[tier] = pair(after_fn, raws[tier], before=before_fn, setup=real.clean_tree)
        sys.stderr.write(f"  {tier}: {json.dumps(out[tier])}\n")  # kept if a later step fails
    tiers = ["--tier", "wheel", "--tier", "sdist", "--tier", "pex", "--tier", "tarball"]
    chain = ["--tier", "pex", "--tier", "tarball", "--tier", "sdist"]
    for name, ws in (("", real), ("before_", old)):
        if ws is None:
            continue
        ws.gradient("build", *tiers)
        ws.gradient("build", *tiers)  # a no-op: it leaves the stamp the next ones replay
        out[f"{name}noop_4_tiers"] = timed(lambda ws=ws: ws.gradient("build", *tiers),  # type: ignore[misc]
                                           repeat=max(5, REPEAT))
        if os.environ.get("BENCH_JOBS", "1") == "0":
            continue
        ws.forget_built()  # then the wheel alone, built and verified
        ws.gradient("build", "--tier", "wheel")
        ws.keep_built()
        for verify, label in ((["--no-verify"], "jobs"), ([], "jobs_verified")):
            ws.after_wheel(*verify, *chain)  # the timings of these nodes, as a user has them
            jobs = interleaved({n: lambda n=n, ws=ws, v=verify: ws.gradient(  # type: ignore[misc]
                "build", "--jobs", n, *v, *chain) for n in ("1", "2")},
                repeat=max(3, REPEAT // 2), setup=ws.restore_wheel)
            ws.restore_wheel()  # once more with one job, for the nodes' own uncontended times
            ws.gradient("build", "--jobs", "1", *verify, *chain)
            work = ws.node_seconds(chain[1::2], verified=not verify)
            out[f"{name}{label}"] = {
                "tiers": f"pex, tarball, sdist after the wheel{'' if verify else ', verified'}",
                "jobs1": jobs["1"], "jobs2": jobs["2"],
                "speedup": round(jobs["1"]["median_s"] / jobs["2"]["median_s"], 2),
                "nodes_s": work, "bound": bound(work, workers=2),
                # two cores cannot finish sooner than half the CPU seconds one job used
                "cpu_bound": round(2 * jobs["1"]["median_s"] / jobs["1"]["cpu_s"], 2)}
    return out


def main(keys: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="gradient-bench-real-") as tmp:
        for key in keys:
            results[key] = bench_project(Path(tmp) / key, key)
    return results


def show(results: dict[str, Any]) -> None:
    for key, data in results.items():
        print(f"[real: {key}]  dependencies: {data['dependencies']}")
        for tier in (t for t in ("wheel", "sdist", "pex", "tarball") if t in data):
            d = data[tier]
            before = (f"  before {d['before_s']:6.2f} s ({d['before_spread']}) "
                      f"{d['ratio_before']:.2f}x" if "before_s" in d else "")
            print(f"  {tier:8} gradient {d['gradient_s']:6.2f} s ({d['gradient_spread']})  "
                  f"raw {d['raw_s']:6.2f} s ({d['raw_spread']})  ratio {d['ratio']:.2f}x"
                  f"{before}  load {d['load'][0]}-{d['load'][1]}")
        for name in ("", "before_"):
            if f"{name}noop_4_tiers" not in data:
                continue
            noop = data[f"{name}noop_4_tiers"]
            print(f"  {name}no-op (4 tiers) {noop['median_s']:.3f} s ({noop['spread']})  "
                  f"load {noop['load'][0]}-{noop['load'][1]}")
            for label in ("jobs", "jobs_verified"):
                jobs = data.get(f"{name}{label}")
                if jobs:
                    print(f"  {name}--jobs 2 / --jobs 1 on {jobs['tiers']}: {jobs['speedup']}x "
                          f"({jobs['jobs1']['median_s']} s / {jobs['jobs2']['median_s']} s); "
                          f"these nodes' own times allow at most {jobs['bound']}x on 2 "
                          f"workers: {jobs['nodes_s']}; the CPU seconds of one job "
                          f"({jobs['jobs1']['cpu_s']} s) at most {jobs['cpu_bound']}x")


if __name__ == "__main__":
    found = main(sys.argv[1:] or list(PROJECTS))
    show(found)
    print(json.dumps(found, indent=1))
