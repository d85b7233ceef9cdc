"""The pure rules the deb and rpm tiers share: names, PEP 440 -> dpkg/rpm versions (with
dpkg and rpm themselves as the judges of order), control fields, nfpm.yaml, leftovers."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from gradient_build.ospkg import (
    Control,
    Package,
    Payload,
    nfpm_config,
    package_name,
    package_version,
    to_yaml,
    wheel_control,
)
from gradient_build.ospkg_build import common_license
from gradient_build.ospkg_verify import changes, suites

# In PEP 440 order, lowest first (and one epoch above them all).
ORDERED = ["1.0.dev1", "1.0a1.dev1", "1.0a1", "1.0a1.post1", "1.0a2", "1.0b1", "1.0rc1",
           "1.0rc1.post1.dev1", "1.0", "1.0+local.7", "1.0.post1.dev1", "1.0.post1", "1.0.1",
           "1.1.dev1", "1!0.5"]


def test_the_mapping_is_what_the_issue_names() -> None:
    assert package_version("1.0a1").version == "1.0~a1"
    assert package_version("1.0.dev3").version == "1.0~~dev3"
    assert package_version("1.0rc2.dev1").version == "1.0~rc2~dev1"
    assert package_version("2.0.post4").version == "2.0+post4"
    assert package_version("1!2.0").deb() == "1:2.0-1"
    assert package_version("0.1.0").deb() == "0.1.0-1"


def test_pep440_order_is_kept() -> None:
    assert sorted(ORDERED, key=Version) == ORDERED


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg judges Debian's order")
def test_dpkg_sorts_the_mapped_versions_as_pep440_does() -> None:
    for low, high in itertools.pairwise(ORDERED):
        a, b = package_version(low).deb(), package_version(high).deb()
        done = subprocess.run(["dpkg", "--compare-versions", a, "lt", b])
        assert done.returncode == 0, f"dpkg: {a} should sort below {b} ({low} < {high})"


@pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm judges RPM's order")
def test_rpm_sorts_the_mapped_versions_as_pep440_does() -> None:
    pairs = list(itertools.pairwise(ORDERED))[:-1]  # the epoch is a field of its own in RPM
    calls = " ".join(f'print(rpm.vercmp("{package_version(a).version}", '
                     f'"{package_version(b).version}") .. " ")' for a, b in pairs)
    out = subprocess.run(["rpm", "--eval", f"%{{lua: {calls}}}"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["-1"] * len(pairs), list(zip(pairs, out, strict=True))


def test_names_follow_debian_rules() -> None:
    assert package_name("Hello_App") == "hello-app"
    assert package_name("zope.interface") == "zope-interface"
    assert package_name("X") == "x-app"
    assert package_name("PyYAML") == "pyyaml"


def test_control_fields_come_from_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", (
            "Metadata-Version: 2.4\nName: demo\nVersion: 1.0\nSummary: A demo.\n"
            "Author-email: Jane Doe <jane@example.org>, Bob <bob@example.org>\n"
            "License-Expression: MIT\nProject-URL: Homepage, https://example.org/demo\n\n"
            "Demo does things.\n\nMore words.\n"))
    control = wheel_control(wheel)
    assert control == Control("A demo.", "Demo does things.\n\nMore words.", "MIT",
                              "https://example.org/demo", "Jane Doe <jane@example.org>")


def test_nfpm_yaml_names_no_build_path_and_quotes_everything(tmp_path: Path) -> None:
    payload = Payload("tarball", tmp_path / "payload", "/opt/demo",
                      {"/usr/bin/demo": "/opt/demo/bin/demo"}, False, python_version="3.11")
    pkg = Package("rpm", "demo", package_version("1.0a1"), "noarch",
                  Control("Say: \"hi\" #1", "", "MIT", "", "Jane <j@example.org>"), payload,
                  depends=payload.depends("rpm"))
    text = nfpm_config(pkg, 315532800)
    assert str(tmp_path) not in text
    assert 'description: "Say: \\"hi\\" #1\\n' in text
    assert '- "python3 >= 3.11"' in text and 'version: "1.0~a1"' in text
    assert "mtime: \"1980-01-01T00:00:00Z\"" in text


def test_yaml_writer_nests_lists_of_tables() -> None:
    assert to_yaml({"a": [{"b": "c", "d": {"mode": 0o644}}], "e": []}) == (
        'a:\n  - b: "c"\n    d:\n      mode: 0644\ne: []\n')


def test_compiled_tarball_pins_the_python_minor() -> None:
    payload = Payload("tarball", Path("/x"), "/opt/y", {}, True, python_version="3.11",
                      glibc_floor="2.14")
    assert payload.depends("deb") == ["python3 (>= 3.11)", "python3 (<< 3.12)",
                                      "libc6 (>= 2.14)"]
    exe = Payload("exe", Path("/x"), "/opt/y", {}, True, glibc_floor="2.35")
    assert exe.depends("deb") == ["libc6 (>= 2.35)"] and exe.depends("rpm") == ["glibc >= 2.35"]


def test_common_licenses_are_referred_to_not_copied() -> None:
    assert common_license("GPL-3.0-or-later") == ("GPL-3+", "GPL-3")
    assert common_license("LGPL-2.1-only") == ("LGPL-2.1", "LGPL-2.1")
    assert common_license("MIT") is None and common_license("MIT OR Apache-2.0") is None


def test_distros_become_suites() -> None:
    assert suites(["debian:bookworm", "debian:bullseye"]) == ["bookworm", "bullseye"]
    assert len(suites([])) == 1
    with pytest.raises(ValueError, match="debian:SUITE"):
        suites(["fedora:40"])


def test_leftovers_read_from_an_overlay_upper_layer(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for folder in (lower / "opt", lower / "etc", upper / "opt", upper / "var/lib/dpkg",
                   upper / "etc/app"):
        folder.mkdir(parents=True)
    (upper / "var/lib/dpkg/status").write_text("bookkeeping")
    (upper / "etc/app/state").write_text("left behind")
    assert changes(upper, lower) == ["/etc/app/", "/etc/app/state"]
    assert changes(upper, lower, ["etc/app"]) == []
