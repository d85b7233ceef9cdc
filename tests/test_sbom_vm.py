"""The vm tier's SBOM for real: the qcow2 Packer built is read back with qemu-img and debugfs,
its Debian userspace and the app's distributions listed, and the check `gradient verify` runs
agrees with the disk. Same configuration as tests/test_tier_vm.py, so one session cache
builds (and boots) the image once for both.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import copy_example, manifest, run_gradient
from test_tier_vm import TOML


@pytest.mark.slow
def test_vm_sbom_lists_the_disks_packages_and_the_apps_distributions(
        tmp_path: Path, cache_dir: Path) -> None:
    from gradient_build.attest import problems
    from gradient_build.outputs import artifacts_from_manifest

    project = copy_example(tmp_path, "hello-app", TOML)
    proc = run_gradient(project, "build", "--tier", "vm", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    docs = {a["tier"]: json.loads((project / a["path"]).read_text())
            for a in manifest(project)["artifacts"] if a["role"] == "sbom"}
    vm = {c["purl"]: c for c in docs["vm"]["components"]}
    debs = [p for p in vm if p.startswith("pkg:deb/debian/")]
    names = {vm[p]["name"] for p in debs}
    assert {"base-files", "python3", "systemd"} <= names
    assert any(n.startswith("linux-image-") for n in names)  # the kernel it boots
    assert all("distro=bookworm" in p and "arch=" in p for p in debs)
    tarball = {c["purl"]: c for c in docs["tarball"]["components"]}
    attrs = [p for p in vm if p.startswith("pkg:pypi/attrs@")]
    assert attrs and vm[attrs[0]] == tarball[attrs[0]]  # the payload's copy, unchanged
    root = docs["vm"]["metadata"]["component"]
    assert root["hashes"] == docs["tarball"]["metadata"]["component"]["hashes"]
    vm_artifact = artifacts_from_manifest(project, manifest(project))["vm"]
    assert problems(project, manifest(project), vm_artifact) == []  # what verify checks
