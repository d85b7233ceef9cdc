"""The in-image check without a daemon: run the executable with runc in a C-library-only rootfs.

The bundle's rootfs is made fresh for each run from the dynamic loader and shared libraries
`container.host_libraries` found (copied to the paths they have on the host), plus empty
mount points; the payload is bind-mounted read-only at /app, /tmp is a tmpfs of its own. The
process runs as nobody (65534), with PATH pointing nowhere, no capabilities, no new
privileges, and a network namespace with only `lo`: offline, non-root, no Python. The
container is always deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from gradient_build.backend import Result, Sandbox, Tool
from gradient_build.helpers import minimal_env

RUNC = Tool("runc", "apt-get install runc (the in-image check when no Docker daemon answers)",
            command="runc", version_args=("--version",), required=False)
NOBODY = 65534
ENV = ["PATH=/nonexistent", "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8"]


def runc_missing() -> str:
    """"" when runc can run a container here, else why not."""
    if not RUNC.present():
        return "runc is not installed (apt-get install runc)"
    if os.geteuid() != 0:
        return "runc runs containers here only as root (gradient is not running as root)"
    return ""


def make_rootfs(rootfs: Path, libs: list[Path]) -> None:
    """A root holding only `libs` (at their host paths) and the mount points the run needs."""
    for name in ("proc", "dev", "tmp", "app"):
        (rootfs / name).mkdir(parents=True, exist_ok=True)
    for lib in libs:
        dest = rootfs / lib.as_posix().lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)
    for path in [rootfs, *rootfs.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    (rootfs / "tmp").chmod(0o1777)  # runc gives a tmpfs the mode of the dir it covers


def spec(command: list[str], payload: Path, inside: str) -> dict[str, Any]:
    """An OCI runtime config: `command` as nobody, offline, the payload read-only at `inside`."""
    no_caps: dict[str, list[str]] = {k: [] for k in ("bounding", "effective", "inheritable",
                                                     "permitted", "ambient")}
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": NOBODY, "gid": NOBODY},
                    "args": command, "env": ENV, "cwd": "/", "capabilities": no_caps,
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "gradient-exe",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=1g"]},
            {"destination": inside, "type": "bind", "source": str(payload),
             "options": ["rbind", "ro", "nosuid", "nodev"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "maskedPaths": ["/proc/kcore", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


def run_in_bundle(sandbox: Sandbox, libs: list[Path], payload: Path, command: list[str],
                  box: Path, timeout: float) -> tuple[Result, list[str]]:
    """Run `command` (a path under /app) in a fresh C-library-only bundle; (result, argv)."""
    runc = RUNC.path()
    if runc is None:
        return Result(["runc"], None, runc_missing(), 0.0), ["runc"]
    bundle = box / "runc-bundle"
    try:
        make_rootfs(bundle / "rootfs", libs)
        inside = "/app/" + payload.name
        (bundle / "config.json").write_text(json.dumps(spec(command, payload, inside), indent=1))
        cid = f"gradient-exe-{uuid.uuid4().hex[:12]}"
        run = [str(runc), "run", "--bundle", str(bundle), cid]
        env = minimal_env(HOME=str(box / "home"))
        try:
            result = sandbox.run(run, cwd=box, env=env, timeout=timeout, offline=True,
                                 keep=[payload])
        finally:
            sandbox.run([str(runc), "delete", "--force", cid], cwd=box, env=env, timeout=60,
                        offline=False)
        return result, [*run, *command]
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
