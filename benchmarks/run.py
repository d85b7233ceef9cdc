"""`make bench`: gradient against the raw tools, measured in the same run, as ratios.

Prints a table and writes benchmarks/results.json. Every number is a median of a few runs
on the example app (the "real" section: real projects from PyPI, see real.py); each
"cold" gradient build starts from an empty node cache but a warm
tool cache (downloads are not what is measured), like the raw tool it is compared with.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GRADIENT = str(BIN / "gradient")
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
results: dict[str, Any] = {}


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def timed(fn: Callable[[], None], repeat: int = REPEAT) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


class Workspace:
    """A copy of an example with its own gradient cache whose tool caches stay warm."""

    def __init__(self, base: Path, example: str, toml: str | None = None) -> None:
        self.project = base / example
        shutil.copytree(ROOT / "examples" / example, self.project,
                        ignore=shutil.ignore_patterns("dist", "vendor", "__pycache__"))
        if toml is not None:
            (self.project / "gradient.toml").write_text(toml)
        self.cache = base / f"cache-{example}"
        shared = base.parent / "shared-tools"  # downloads and base images, built once per run
        shared.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True)
        (self.cache / "tools").symlink_to(shared)
        self.env = {**os.environ, "GRADIENT_CACHE_DIR": str(self.cache)}
        self.env.pop("CI", None)
        # a git work tree, as a real project is: SOURCE_DATE_EPOCH is the last commit's time
        git = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.org",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.org"}
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-q", "-m", "example"]):
            sh(cmd, self.project, git)

    def gradient(self, *args: str) -> None:
        sh([GRADIENT, *args], self.project, self.env)

    def drop_nodes(self) -> None:
        shutil.rmtree(self.cache / "objects", ignore_errors=True)
        shutil.rmtree(self.project / "dist", ignore_errors=True)

    def cold(self, *args: str) -> float:
        def run() -> None:
            self.drop_nodes()
            self.gradient("build", *args)
        return timed(run)


def bench_wheel(base: Path) -> None:
    ws = Workspace(base, "hello-app", 'tier = "wheel"\n[tiers.wheel]\nwheelhouse = false\n')
    out = base / "raw-out"
    ws.cold("--no-verify")  # warm the tool caches
    env = {**os.environ, "UV_CACHE_DIR": str(ws.cache / "tools" / "uv")}
    uv = [str(BIN / "uv"), "build", "--wheel", "--out-dir", str(out), "--python", sys.executable]
    sh([*uv, str(ws.project)], base, env)
    raw_uv = timed(lambda: sh([*uv, str(ws.project)], base, env))
    raw_build = timed(lambda: sh([sys.executable, "-m", "build", "--wheel", "--outdir", str(out),
                                  "--installer", "uv", str(ws.project)], base, env))
    ours = ws.cold("--no-verify")
    full = Workspace(base / "full", "hello-app", 'tier = "wheel"\n')
    full.cold()
    results["wheel"] = {
        "gradient_s": round(ours, 3), "uv_build_s": round(raw_uv, 3),
        "python_m_build_s": round(raw_build, 3),
        "ratio_vs_uv_build": round(ours / raw_uv, 2),
        "ratio_vs_python_m_build": round(ours / raw_build, 2),
        "with_wheelhouse_and_verify_s": round(full.cold(), 3),
        "target": "ratio_vs_uv_build <= 1.1",
    }


def drop_node(ws: Workspace, tier: str) -> None:
    """Forget one node's cache entry (its key is the digest of its recorded inputs)."""
    sys.path.insert(0, str(ROOT / "src"))
    from gradient_build.cache import digest_of

    for record in (ws.cache / "records").glob(f"*/{tier}.json"):
        key = digest_of(json.loads(record.read_text()))
        shutil.rmtree(ws.cache / "objects" / key[:2] / key, ignore_errors=True)


def bench_tiers(base: Path) -> None:
    """pex, tarball and exe against the raw tool on the same wheel and wheelhouse."""
    ws = Workspace(base, "hello-app")
    ws.gradient("build", "--tier", "wheel")
    wheel_dir = ws.project / "dist/gradient/wheel"
    wheel = next(wheel_dir.glob("*.whl"))
    house = wheel_dir / "wheelhouse"
    raw = base / "raw"
    entry = base / "entry.py"
    entry.write_text("import sys\nfrom hello_app.cli import main\nsys.exit(main())\n")
    site = base / "site"
    sh([sys.executable, "-m", "pip", "install", "-q", "--no-index", "-f", str(house),
        "--target", str(site), str(wheel)], base)
    env = {**os.environ, "PYTHONPATH": str(site)}

    def raw_pex() -> None:
        sh([sys.executable, "-m", "pex", "--no-pypi", "-f", str(house), str(wheel), "-c",
            "hello", "--sh-boot", "-o", str(raw / "hello.pex")], base)

    def raw_tarball() -> None:
        shutil.rmtree(raw / "tree", ignore_errors=True)
        sh([sys.executable, "-m", "pip", "install", "-q", "--no-index", "-f", str(house),
            "--no-compile", "--target", str(raw / "tree"), str(wheel)], base)
        sh(["tar", "czf", str(raw / "hello.tar.gz"), "-C", str(raw), "tree"], base)

    def raw_exe() -> None:
        for leftover in ("build", "dist"):  # no incremental reuse: a cold build, like ours
            shutil.rmtree(raw / leftover, ignore_errors=True)
        sh([sys.executable, "-m", "PyInstaller", "--noconfirm", "--onefile", "--strip",
            "--log-level", "WARN", "--collect-data", "hello_app", "--copy-metadata",
            "hello-app", "--name", "hello", "--distpath", str(raw / "dist"), "--workpath",
            str(raw / "build"), "--specpath", str(raw), str(entry)], base, env)

    raw.mkdir()
    for tier, raw_fn in (("pex", raw_pex), ("tarball", raw_tarball), ("exe", raw_exe)):
        ws.gradient("build", "--tier", tier)

        def ours(tier: str = tier) -> None:
            drop_node(ws, tier)
            ws.gradient("build", "--tier", tier, "--no-verify")

        ours_s = timed(ours)
        raw_s = timed(raw_fn)
        verified_s = timed(lambda tier=tier: (drop_node(ws, tier),  # type: ignore[misc]
                                              ws.gradient("build", "--tier", tier)), repeat=1)
        entry_data = json.loads((ws.project / "dist/gradient/manifest.json").read_text())
        size = next(a["size"] for a in entry_data["artifacts"]
                    if a["tier"] == tier and a["role"] == "artifact")
        results[tier] = {"gradient_s": round(ours_s, 3), "raw_tool_s": round(raw_s, 3),
                         "ratio_vs_raw": round(ours_s / raw_s, 2),
                         "with_verify_s": round(verified_s, 3), "size_bytes": size}


RAW_RATTLER = """
import os, sys
from pathlib import Path
import rattler_build as rb
out, channel = Path(sys.argv[1]), Path(sys.argv[2])
for recipe in sys.argv[3:]:
    rb.Stage0Recipe.from_yaml(Path(recipe).read_text(), recipe_dir=Path(recipe).parent).run_build(
        output_dir=out, channels=[channel.as_uri()], no_build_id=True, no_include_recipe=True,
        tool_config=rb.ToolConfiguration(test_strategy="skip"))
sys.stdout.flush()
os._exit(0)
"""


def bench_conda(base: Path) -> None:
    """The conda tier against rattler-build driven by hand on the recipes the tier keeps
    (the app and its dependency), from the same wheels, with the same empty local channel."""
    ws = Workspace(base, "hello-app")
    ws.gradient("build", "--tier", "conda")
    kept = ws.project / "dist/gradient/conda/recipes"
    recipes = sorted(str(p) for p in kept.glob("*/recipe.yaml"))
    channel = base / "empty-channel"
    for subdir in ("noarch", "linux-64"):
        (channel / subdir).mkdir(parents=True)
    script = base / "raw_rattler.py"
    script.write_text(RAW_RATTLER)

    def raw() -> None:
        shutil.rmtree(base / "raw", ignore_errors=True)
        sh([sys.executable, str(script), str(base / "raw"), str(channel), *recipes], base)

    def ours() -> None:
        drop_node(ws, "conda")
        ws.gradient("build", "--tier", "conda", "--no-verify")

    ours_s, raw_s = timed(ours), timed(raw)
    verified_s = timed(lambda: (drop_node(ws, "conda"), ws.gradient("build", "--tier", "conda")),
                       repeat=1)
    results["conda"] = {"gradient_s": round(ours_s, 3), "raw_rattler_build_s": round(raw_s, 3),
                        "ratio_vs_raw": round(ours_s / raw_s, 2),
                        "with_verify_s": round(verified_s, 3), "packages": len(recipes)}


def oci_entry(ws: Workspace) -> dict[str, Any]:
    data = json.loads((ws.project / "dist/gradient/manifest.json").read_text())
    found: dict[str, Any] = next(a for a in data["artifacts"]
                                 if a["tier"] == "oci" and a["role"] == "artifact")
    return found


def bench_oci(base: Path) -> None:
    """Native daemonless build against `docker build` of the equivalent Dockerfile on the same
    base, the image's size, and a rebuild after a one-line change (only the app layer)."""
    import tarfile

    ws = Workspace(base, "hello-app")
    ws.gradient("build", "--tier", "oci")  # builds (or reuses) the debootstrap base
    entry = oci_entry(ws)

    def native() -> None:
        drop_node(ws, "oci")
        ws.gradient("build", "--tier", "oci", "--no-verify")

    native_s = timed(native)
    image = ws.project / entry["path"]
    context = base / "context"
    context.mkdir()
    base_digest = next(layer["digest"] for layer in entry["layers"] if layer["holds"] == "base")
    with tarfile.open(image) as tar:
        member = tar.extractfile(f"blobs/sha256/{base_digest.split(':')[1]}")
        assert member is not None
        (base / "base.tar.gz").write_bytes(member.read())
    sh(["docker", "import", str(base / "base.tar.gz"), "gradient-bench-base:1"], base)
    tree = base / "tree"
    tree.mkdir()
    tarball = next((ws.project / "dist/gradient/tarball").glob("*.tar.gz"))
    with tarfile.open(tarball) as tar:
        tar.extractall(context, filter="data")
    (context / "Dockerfile").write_text(
        "FROM gradient-bench-base:1\nCOPY hello-app-0.1.0/ /app/\nUSER 10001\n"
        "WORKDIR /app\nENTRYPOINT [\"/app/bin/hello\"]\n")
    docker_s = timed(lambda: sh(["docker", "build", "--no-cache", "-q", "-t",
                                 "gradient-bench-app:1", str(context)], base))
    for ref in ("gradient-bench-app:1", "gradient-bench-base:1"):
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)
    before = {layer["holds"]: layer["digest"] for layer in oci_entry(ws)["layers"]}
    cli = ws.project / "src/hello_app/cli.py"
    cli.write_text(cli.read_text() + "\n# one-line change\n")
    started = time.perf_counter()
    ws.gradient("build", "--tier", "oci", "--no-verify")
    rebuild_s = time.perf_counter() - started
    after = oci_entry(ws)
    changed = sorted(k for k, v in {layer["holds"]: layer["digest"]
                                    for layer in after["layers"]}.items() if before.get(k) != v)
    results["oci"] = {
        "native_s": round(native_s, 3), "docker_build_s": round(docker_s, 3),
        "ratio_vs_docker_build": round(native_s / docker_s, 2),
        "image_bytes": after["size"], "rebuild_after_one_line_change_s": round(rebuild_s, 3),
        "layers_changed": changed,
    }


VM_TOML = """tier = "vm"
[app]
script = "hello"
[verify]
args = ["gradient"]
expect = "hello, gradient!"
"""


def vm_numbers(ws: Workspace) -> dict[str, Any]:
    data = json.loads((ws.project / "dist/gradient/manifest.json").read_text())
    entry = next(a for a in data["artifacts"] if a["tier"] == "vm" and a["role"] == "artifact")
    verify = entry["verify"]
    return {"packer_build_s": entry.get("packer_seconds"),
            "boot_to_smoke_s": verify.get("boot_seconds"),
            "verify_s": verify.get("seconds"), "accelerator": verify.get("accelerator"),
            "image_bytes": entry["size"], "base_meta": entry.get("base_meta") or {}}


def load() -> str:
    """The 1, 5 and 15 minute load averages (`uptime`'s)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench_vm(base: Path, toml: str = VM_TOML, name: str = "vm") -> None:
    """A cold vm build (the debootstrap base too: this run's tool cache starts empty), then a
    warm one (the base cached, the vm node dropped): base, Packer, boot-to-smoke, size. TCG
    unless KVM works; the machine's load average is noted, as other work shares it."""
    ws = Workspace(base, "hello-app", toml)
    ws.gradient("build", "--tier", "tarball")
    load_before = load()
    started = time.perf_counter()
    ws.gradient("build", "--tier", "vm")
    cold_s = time.perf_counter() - started
    cold = vm_numbers(ws)
    base_meta = cold.pop("base_meta")
    drop_node(ws, "vm")
    started = time.perf_counter()
    ws.gradient("build", "--tier", "vm")
    warm_s = time.perf_counter() - started
    warm = vm_numbers(ws)
    warm.pop("base_meta")
    results[name] = {
        "base_build_s": base_meta.get("seconds"),
        "debootstrap_s": base_meta.get("debootstrap_seconds"),
        "base_configure_s": base_meta.get("configure_seconds"),
        "cold_packer_build_s": cold["packer_build_s"],
        "cold_boot_to_smoke_s": cold["boot_to_smoke_s"],
        "cold_gradient_build_total_s": round(cold_s, 1),
        "warm_packer_build_s": warm["packer_build_s"],
        "warm_boot_to_smoke_s": warm["boot_to_smoke_s"],
        "warm_gradient_build_total_s": round(warm_s, 1),
        "accelerator": warm["accelerator"], "image_bytes": warm["image_bytes"],
        "load_average_before": load_before, "load_average_after": load(),
    }


def bench_vm_ssh(base: Path) -> None:
    """The same for communicator ssh on a debootstrap base (its cloud flavor: sshd and
    cloud-init instead of gradient's unit), what the stand-in vendor image is built from."""
    bench_vm(base, VM_TOML + '[tiers.vm]\ncommunicator = "ssh"\n', "vm-ssh")


def bench_graph(base: Path) -> None:
    """No-op rebuild, --jobs 2 against --jobs 1, and what a one-line change rebuilds."""
    ws = Workspace(base, "hello-app")
    present = json.loads(subprocess.run([GRADIENT, "tiers", "--json"], capture_output=True,
                                        text=True, env=ws.env).stdout)
    tiers = [t["tier"] for t in present
             if all(tool["present"] or not tool["required"] for tool in t["tools"])
             and t["tier"] not in ("copy", "oci", "vm")]
    args = [arg for t in tiers for arg in ("--tier", t)]
    ws.gradient("build", *args)
    noop = timed(lambda: ws.gradient("build", *args), repeat=5)
    jobs1 = ws.cold("--jobs", "1", *args)
    jobs2 = ws.cold("--jobs", "2", *args)
    everything = [*args, "--tier", "oci"]
    ws.gradient("build", *everything)
    noop_all = timed(lambda: ws.gradient("build", *everything), repeat=5)
    cli = ws.project / "src/hello_app/cli.py"
    cli.write_text(cli.read_text() + "\n# one-line change\n")
    started = time.perf_counter()
    ws.gradient("build", *everything)
    change_s = time.perf_counter() - started
    manifest = json.loads((ws.project / "dist/gradient/manifest.json").read_text())
    rebuilt = sorted(a["tier"] for a in manifest["artifacts"]
                     if a["role"] == "artifact" and not a["cached"])
    (ws.project / "NOTES.txt").write_text("a file no wheel ships\n")
    ws.gradient("build", *everything)
    manifest = json.loads((ws.project / "dist/gradient/manifest.json").read_text())
    rebuilt_docs = sorted(a["tier"] for a in manifest["artifacts"]
                          if a["role"] == "artifact" and not a["cached"])
    results["graph"] = {
        "tiers": tiers, "noop_rebuild_s": round(noop, 3),
        "noop_rebuild_with_oci_s": round(noop_all, 3), "jobs1_s": round(jobs1, 3),
        "jobs2_s": round(jobs2, 3), "jobs_speedup": round(jobs1 / jobs2, 2),
        "one_line_change_rebuilds": rebuilt, "one_line_change_s": round(change_s, 3),
        "new_non_code_file_rebuilds": rebuilt_docs,
        "targets": "noop < 0.15 s; jobs_speedup >= 1.8",
    }


def bench_sbom(base: Path) -> None:
    """What the SBOMs and provenance cost in a cold build of every tier but vm, as the build
    itself timed them at promotion (the manifest's `seconds` of each `sbom` item: reading the
    artifact, one schema validation per document, the provenance), against its wall time."""
    ws = Workspace(base, "hello-app")
    present = json.loads(subprocess.run([GRADIENT, "tiers", "--json"], capture_output=True,
                                        text=True, env=ws.env).stdout)
    tiers = [t["tier"] for t in present
             if all(tool["present"] or not tool["required"] for tool in t["tools"])
             and t["tier"] not in ("copy", "mpy", "vm")]  # copy, mpy: not hello-app's tiers
    args = [arg for t in tiers for arg in ("--tier", t)]
    ws.gradient("build", *args)  # warm the tool caches (the debootstrap base)
    cold: list[float] = []
    spent: list[float] = []
    for _ in range(2):
        cold.append(timed(lambda: (ws.drop_nodes(), ws.gradient("build", *args)), repeat=1))
        data = json.loads((ws.project / "dist/gradient/manifest.json").read_text())
        spent.append(sum(a.get("seconds", 0.0) for a in data["artifacts"]
                         if a["role"] == "sbom"))
    cold_s, sbom_s = statistics.median(cold), statistics.median(spent)
    results["sbom"] = {"tiers": tiers, "cold_build_s": round(cold_s, 2),
                       "sbom_and_provenance_s": round(sbom_s, 2),
                       "share_of_cold_build": round(sbom_s / cold_s, 3),
                       "target": "share_of_cold_build < 0.10"}


def bench_real(base: Path) -> None:
    """Real projects from PyPI at pinned versions (benchmarks/real.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import real

    for key, data in real.main(list(real.PROJECTS)).items():
        results[f"real-{key}"] = data
    real.show({k.removeprefix("real-"): v for k, v in results.items() if k.startswith("real-")})


SECTIONS: dict[str, Callable[[Path], None]] = {
    "wheel": bench_wheel, "tiers": bench_tiers, "conda": bench_conda, "oci": bench_oci,
    "vm": bench_vm, "vm-ssh": bench_vm_ssh, "graph": bench_graph, "sbom": bench_sbom,
    "real": bench_real}
DEFAULT = ("wheel", "tiers", "conda", "oci", "vm", "graph", "sbom", "real")


def main() -> None:
    """`run.py [SECTION...]` (`make bench BENCH="vm vm-ssh"`, or BENCH_SECTIONS=a,b): only
    those; a partial run updates their entries in results.json and keeps the others."""
    named = [s for s in os.environ.get("BENCH_SECTIONS", "").split(",") if s] or sys.argv[1:]
    chosen = named or list(DEFAULT)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}: choose from {', '.join(SECTIONS)}")
    with tempfile.TemporaryDirectory(prefix="gradient-bench-") as tmp:
        base = Path(tmp)
        for name in chosen:
            sys.stderr.write(f"benchmark: {name} (load {os.getloadavg()[0]:.2f})\n")
            try:
                SECTIONS[name](base / name)
            except SystemExit as failed:  # one failed section keeps the others' numbers
                sys.stderr.write(f"{failed}\n")
                results[name] = {"failed": str(failed)[:300]}
    out = ROOT / "benchmarks" / "results.json"
    kept = json.loads(out.read_text()) if named and out.exists() else {}
    out.write_text(json.dumps({**kept, **results}, indent=2) + "\n")
    for section, data in results.items():
        print(f"[{section}]")
        for key, value in data.items():
            print(f"  {key:32} {value}")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
