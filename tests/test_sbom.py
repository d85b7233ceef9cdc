"""SBOMs and provenance for real: the example app built by every tier's real tool, each
artifact's CycloneDX SBOM read back, validated, compared across tiers and checked against the
artifact by `gradient verify`, which fails once a distribution is slipped into a tarball.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_example, manifest, reseal, run_gradient, sha256

from gradient_build.inventory import (
    dist_component,
    dpkg_components,
    read_components,
    read_file,
    unique,
)
from gradient_build.provenance import PREDICATE_TYPE, STATEMENT_TYPE, tree_digest

TIERS = ["sdist", "wheel", "pex", "tarball", "exe", "conda", "oci"]
PYPI_TIERS = ["wheel", "pex", "tarball", "exe", "conda", "oci"]  # they carry attrs
STATUS = b"""Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Depends: awk

Package: gone
Status: deinstall ok config-files
Version: 1.0

Package: mawk
Status: install ok installed
Architecture: amd64
Version: 1.3.4.20200120-3.1
Provides: awk
Pre-Depends: libc6 (>= 2.34)
Description: a pattern scanning language
 with a continuation line: Depends: not-a-field
"""
METADATA = b"Metadata-Version: 2.1\nName: Evil_Pkg\nVersion: 1.0\nLicense-Expression: MIT\n" \
           b"Requires-Dist: attrs>=22\nRequires-Dist: colorama; sys_platform == 'win32'\n"


def sboms(project: Path) -> dict[str, dict[str, Any]]:
    return {a["tier"]: json.loads((project / a["path"]).read_text())
            for a in manifest(project)["artifacts"] if a["role"] == "sbom"}


def by_purl(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    items = [doc["metadata"]["component"], *doc.get("components", [])]
    return {c["purl"]: c for c in items}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    project = copy_example(tmp_path_factory.mktemp("sbom"), "hello-app")
    args = [a for t in TIERS for a in ("--tier", t)]
    proc = run_gradient(project, "build", *args, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return project


def test_every_artifact_has_a_valid_sbom_and_provenance_in_manifest_and_sums(
        built: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    items = manifest(built)["artifacts"]
    sums = (built / "dist/gradient/SHA256SUMS").read_text()
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    for tier in TIERS:
        roles = {a["role"]: a for a in items if a["tier"] == tier}
        assert {"artifact", "sbom", "provenance"} <= set(roles), tier
        for role in ("sbom", "provenance"):
            path = built / roles[role]["path"]
            assert sha256(path) == roles[role]["sha256"]
            assert f"{roles[role]['sha256']}  {path.relative_to(built / 'dist/gradient')}" in sums
        text = (built / roles["sbom"]["path"]).read_text()
        assert validator.validate_str(text) is None, tier
        doc = json.loads(text)
        assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
        root = doc["metadata"]["component"]
        assert root["purl"] == "pkg:pypi/hello-app@0.1.0" and root["type"] == "application"
        shown = {p["name"]: p["value"] for p in doc["metadata"]["properties"]}
        assert shown["gradient:artifact:sha256"] == roles["artifact"]["sha256"]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=built / "dist/gradient",
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_same_distribution_is_the_same_component_in_every_tier(built: Path) -> None:
    docs = sboms(built)
    attrs = {}
    for tier in PYPI_TIERS:
        found = [c for p, c in by_purl(docs[tier]).items() if p.startswith("pkg:pypi/attrs@")]
        assert len(found) == 1, tier
        attrs[tier] = (found[0]["bom-ref"], found[0]["purl"], found[0]["hashes"])
    assert len(set(map(json.dumps, attrs.values()))) == 1, attrs
    # the app's own distribution: hashed alike wherever it is carried, and it depends on attrs
    root_hashes = {t: docs[t]["metadata"]["component"].get("hashes") for t in PYPI_TIERS}
    assert len(set(map(json.dumps, root_hashes.values()))) == 1 and root_hashes["wheel"]
    for tier in PYPI_TIERS:
        deps = {d["ref"]: d.get("dependsOn", []) for d in docs[tier]["dependencies"]}
        assert deps["pkg:pypi/hello-app@0.1.0"] == [attrs["wheel"][0]], tier
    assert "hashes" not in docs["sdist"]["metadata"]["component"]  # sources, no distribution


def test_components_are_read_from_each_kind_of_artifact(built: Path) -> None:
    docs = sboms(built)
    exe = [c for c in docs["exe"]["components"]]
    interpreter = [c for c in exe if c["name"] == "cpython"]
    assert interpreter and interpreter[0]["purl"].startswith("pkg:generic/cpython@3.")
    assert interpreter[0]["version"].count(".") == 2  # X.Y.Z, from libpython's Py_Version
    libraries = {c["name"]: c for c in exe if c["bom-ref"].startswith("library:")}
    assert any(n.startswith("libpython3") for n in libraries)
    # a library copied from the build machine's Debian package says which one
    assert any(c["purl"].startswith("pkg:deb/debian/") for c in libraries.values()), libraries
    conda = by_purl(docs["conda"])
    assert any(p.startswith("pkg:conda/attrs@") for p in conda)
    assert any(p.startswith("pkg:conda/hello-app@0.1.0") for p in conda)
    oci = by_purl(docs["oci"])
    debs = [p for p in oci if p.startswith("pkg:deb/debian/")]
    assert any(p.startswith("pkg:deb/debian/base-files@") and "distro=bookworm" in p
               and "arch=amd64" in p for p in debs)
    assert any(p.startswith("pkg:deb/debian/python3") for p in debs)
    assert len(debs) > 50


def test_provenance_states_subject_materials_builder_and_parameters(built: Path) -> None:
    items = manifest(built)["artifacts"]
    for tier in TIERS:
        mine = [a for a in items if a["tier"] == tier]
        main = next(a for a in mine if a["role"] == "artifact")
        statement = json.loads((built / next(a["path"] for a in mine
                                              if a["role"] == "provenance")).read_text())
        assert statement["_type"] == STATEMENT_TYPE
        assert statement["predicateType"] == PREDICATE_TYPE
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        assert subjects[Path(main["path"]).relative_to(f"dist/gradient/{tier}").as_posix()] == (
            main["sha256"])
        files = [a for a in mine if a["role"] not in ("sbom", "provenance")]
        assert len(subjects) == len(files)
        predicate = statement["predicate"]
        assert predicate["runDetails"]["metadata"]["invocationId"] == main["key"]
        assert predicate["runDetails"]["builder"]["version"]["gradient-build"]
        definition = predicate["buildDefinition"]
        assert definition["externalParameters"]["tier"] == tier
        materials = {m["name"]: m["digest"] for m in definition["resolvedDependencies"]}
        assert len(materials["source"]["sha256"]) == 64
    tarball = json.loads((built / "dist/gradient/tarball/hello-app-0.1.0.tar.gz.intoto.json")
                         .read_text())["predicate"]["buildDefinition"]
    assert {m["name"] for m in tarball["resolvedDependencies"]} >= {"source", "gradient:wheel"}
    assert "python" in tarball["externalParameters"]["options"]
    oci = json.loads((built / "dist/gradient/oci/hello-app-0.1.0.oci.tar.intoto.json")
                     .read_text())["predicate"]["buildDefinition"]["resolvedDependencies"]
    base = [m for m in oci if m["name"].startswith("base-layer/")]
    layers = next(a for a in manifest(built)["artifacts"]
                  if a["tier"] == "oci" and a["role"] == "artifact")["layers"]
    assert [f"sha256:{m['digest']['sha256']}" for m in base] == [
        la["digest"] for la in layers if la["holds"] == "base"]


def test_query_answers_across_tiers(built: Path, cache_dir: Path) -> None:
    proc = run_gradient(built, "sbom", "--query", "attrs", "--json", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["found"]
    assert {h["tier"] for h in hits} == set(PYPI_TIERS)
    version = hits[0]["version"]
    exact = run_gradient(built, "sbom", "--query", f"attrs=={version}", cache_dir=cache_dir)
    assert exact.returncode == 0 and "tarball  attrs==" in exact.stdout
    none = run_gradient(built, "sbom", "--query", "attrs==0.0.1", cache_dir=cache_dir)
    assert none.returncode == 1 and "no artifact contains attrs==0.0.1" in none.stdout
    listing = run_gradient(built, "sbom", cache_dir=cache_dir)
    assert listing.returncode == 0 and "oci" in listing.stdout


def _rewrite_tarball(path: Path, add: dict[str, bytes], drop: str) -> None:
    """The tarball again, with members added and those matching the regex `drop` left out."""
    out = io.BytesIO()
    with tarfile.open(path) as old, tarfile.open(fileobj=out, mode="w") as new:
        for member in old.getmembers():
            if re.search(drop, member.name):
                continue
            new.addfile(member, old.extractfile(member) if member.isreg() else None)
        for name, data in add.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(out.getvalue()))


def test_a_distribution_slipped_into_the_tarball_fails_verification(tmp_path: Path,
                                                                    cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app")
    proc = run_gradient(project, "build", "--tier", "tarball", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    clean = run_gradient(project, "verify", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    tarball = project / "dist/gradient/tarball/hello-app-0.1.0.tar.gz"
    _rewrite_tarball(tarball, {"hello-app-0.1.0/lib/evil_pkg-1.0.dist-info/METADATA": METADATA},
                     drop=r"/attrs-[^/]+\.dist-info/METADATA$")
    reseal(project, "tarball")  # the manifest's digest agrees: only the SBOM can tell
    result = run_gradient(project, "verify", "--tier", "tarball", "--json", cache_dir=cache_dir)
    assert result.returncode == 1, result.stdout
    verdict = json.loads(result.stdout)["tarball"]
    assert not verdict["ok"] and not verdict["verified"]
    problems = verdict["attestations"]
    assert any("holds evil-pkg==1.0" in p and "that its SBOM does not list" in p
               for p in problems), problems
    assert any("lists attrs==" in p and "that it does not hold" in p for p in problems), problems
    assert any("provenance's subject hello-app-0.1.0.tar.gz has sha256" in p
               for p in problems), problems
    assert "evil-pkg==1.0" in verdict["problem"] or "attrs==" in verdict["problem"]


def test_dpkg_status_gives_installed_packages_with_their_dependencies() -> None:
    found = {c.name: c for c in dpkg_components(STATUS, "bookworm")}
    assert set(found) == {"base-files", "mawk"}  # "gone" is not installed
    assert found["base-files"].purl == (
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=bookworm")
    assert found["base-files"].depends == ("awk",)
    assert found["mawk"].depends == ("libc6",)  # the continuation line is no field


def test_dist_metadata_names_purl_license_requirements_and_hash() -> None:
    comp = dist_component(METADATA)
    assert comp is not None
    assert (comp.name, comp.version, comp.purl, comp.license) == (
        "evil-pkg", "1.0", "pkg:pypi/evil-pkg@1.0", "MIT")
    assert comp.depends == ("attrs", "colorama") and len(comp.sha256) == 64
    assert dist_component(b"Metadata-Version: 2.1\nName: x\n") is None


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def _tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_format_no_tier_ships_yet_is_read_generically(tmp_path: Path) -> None:
    """A .deb (ar holding data.tar.xz) of an app, as a deb tier would make it: the core's
    readers find the distributions inside without knowing the tier."""
    data = _tar({"./opt/app/lib/evil_pkg-1.0.dist-info/METADATA": METADATA,
                 "./opt/app/lib/evil_pkg/__init__.py": b""}, "w:xz")
    deb = tmp_path / "app_1.0_amd64.deb"
    deb.write_bytes(_ar({"debian-binary": b"2.0\n", "control.tar.gz": _tar({"./control": b""}),
                         "data.tar.xz": data}))
    found = read_file(str(deb), deb.name)
    assert [(c.name, c.where) for c in found] == [
        ("evil-pkg", "app_1.0_amd64.deb!data.tar.xz!./opt/app/lib/evil_pkg-1.0.dist-info/"
                     "METADATA")]
    layer = _tar({"var/lib/dpkg/status": STATUS, "etc/os-release": b"VERSION_CODENAME=trixie\n"})
    debs = read_components("layer", io.BytesIO(_tar({"blobs/sha256/" + "a" * 64: layer}, "w")))
    assert {c.purl for c in debs} >= {
        "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=trixie"}


def test_the_same_purl_with_other_bytes_keeps_a_ref_of_its_own() -> None:
    one = dist_component(METADATA)
    other = dist_component(METADATA + b"Summary: changed\n")
    assert one and other
    refs = [c.bom_ref for c in unique([one, other, one])]
    assert len(refs) == 2 and len(set(refs)) == 2


def test_tree_digest_is_the_source_scans() -> None:
    from gradient_build.sources import scan

    tree = scan(Path(__file__).resolve().parent.parent / "examples" / "hello-app")
    assert tree_digest(tree.files) == tree.digest


@pytest.mark.parametrize(("example", "tier", "name"), [
    ("single-module", "copy", "greet"), ("micro-morse", "mpy", "morse")])
def test_tiers_without_distributions_inside_still_get_an_sbom_naming_the_project(
        tmp_path: Path, cache_dir: Path, example: str, tier: str, name: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    project = copy_example(tmp_path, example)
    proc = run_gradient(project, "build", "--tier", tier, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    item = next(a for a in manifest(project)["artifacts"]
                if a["tier"] == tier and a["role"] == "sbom")
    text = (project / item["path"]).read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["metadata"]["component"]["purl"].startswith(f"pkg:pypi/{name}@")
    assert doc.get("components", []) == []  # module files: no distribution inside
    verify = run_gradient(project, "verify", "--tier", tier, "--json", cache_dir=cache_dir)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_an_sbom_edited_into_an_invalid_document_fails_verification(tmp_path: Path,
                                                                   cache_dir: Path) -> None:
    project = copy_example(tmp_path, "hello-app")
    proc = run_gradient(project, "build", "--tier", "wheel", cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    path = project / "dist/gradient/wheel/hello_app-0.1.0-py3-none-any.whl.cdx.json"
    doc = json.loads(path.read_text())
    doc["components"][0]["type"] = "no-such-type"
    path.write_text(json.dumps(doc))
    reseal(project, "wheel")
    result = run_gradient(project, "verify", "--tier", "wheel", "--json", cache_dir=cache_dir)
    assert result.returncode == 1
    verdict = json.loads(result.stdout)["wheel"]
    assert "does not validate against CycloneDX 1.6" in verdict["problem"]
