"""A CycloneDX 1.6 SBOM per artifact, from what the artifact holds, and the check against it.

Written with cyclonedx-python-lib's model and serializer and validated with its offline
JSON-schema validator once per document (the schema load dominates: never per component).
The document is reproducible: its serial number derives from the artifact's digest, its
timestamp is SOURCE_DATE_EPOCH, components and dependencies are sorted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .artifact import ArchiveReader, Artifact, Role
from .errors import BuildFailed
from .inventory import Component, Memo, canonicalize_name, purl, read_file, unique
from .sbom_helper import helper

ATTESTATION_ROLES = (Role.SBOM, Role.PROVENANCE)
KIND_TYPES = {"interpreter": "application", "deb": "library", "conda": "library",
              "python": "library", "library": "library"}


def sbom_name(primary: str) -> str:
    return f"{Path(primary).name}.cdx.json"


def collect(artifact: Artifact, hook: Any, readers: Sequence[ArchiveReader],
            memo: Memo | None = None, digests: dict[str, str] | None = None
            ) -> list[Component]:
    """Every component of the artifact's files (the generic readers), plus the tier's own;
    `digests` are the files' sha256 where known (the scan's: not hashed again)."""
    found: list[Component] = []
    for rel, role in artifact.files():
        if role in ATTESTATION_ROLES:
            continue
        path = artifact.root / rel
        if path.is_file() and not path.is_symlink():
            found += read_file(str(path), rel, readers, memo, (digests or {}).get(rel, ""))
    if hook is not None:
        found += hook(artifact)
    return unique(found)


def split_root(components: list[Component], name: str, version: str
               ) -> tuple[Component, list[Component]]:
    """The project's own component (its distribution when the artifact carries it), and
    the rest."""
    norm = canonicalize_name(name)
    own = [c for c in components if c.kind == "python" and c.name == norm and c.version == version]
    root = own[0] if own else Component("python", norm, version, purl("pypi", norm, version))
    return root, [c for c in components if c is not root]


def _cdx(comp: Component, root: bool = False) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component as CdxComponent
    from cyclonedx.model.component import ComponentType
    from packageurl import PackageURL

    licenses = []
    if comp.license:  # an SPDX id or expression where it is one, else a named license
        from cyclonedx.factory.license import LicenseFactory

        licenses = [LicenseFactory().make_from_string(comp.license)]
    return CdxComponent(
        name=comp.name, version=comp.version or None, bom_ref=comp.bom_ref,
        type=ComponentType.APPLICATION if root else ComponentType(KIND_TYPES.get(comp.kind,
                                                                                 "library")),
        purl=PackageURL.from_string(comp.purl),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=comp.sha256)] if comp.sha256 else [],
        licenses=licenses)


def document(components: list[Component], project: dict[str, str], artifact_name: str,
             artifact_sha256: str, epoch: int, deferred: bool = False) -> str:
    """The SBOM's JSON text, validated against the CycloneDX 1.6 schema: from the helper
    process when one was started for this build (sbom_helper), else written here. With
    `deferred`, the helper's text may come before its validation: `settle` waits for it."""
    text = helper.render(components, project, artifact_name, artifact_sha256, epoch,
                         defer=deferred)
    if text is not None:
        return text
    return render(components, project, artifact_name, artifact_sha256, epoch)


def settle() -> None:
    """Every deferred document validated: BuildFailed names the first invalid one."""
    for name, text in helper.settle():  # the helper died before it could say
        validate(text, name)


def render(components: list[Component], project: dict[str, str], artifact_name: str,
           artifact_sha256: str, epoch: int) -> str:
    """The document written and validated in this process."""
    text = unchecked(components, project, artifact_name, artifact_sha256, epoch)
    validate(text, artifact_name)
    return text


def unchecked(components: list[Component], project: dict[str, str], artifact_name: str,
              artifact_sha256: str, epoch: int) -> str:
    """The document, not yet validated."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component as CdxComponent
    from cyclonedx.model.component import ComponentType
    from cyclonedx.model.dependency import Dependency
    from cyclonedx.output.json import JsonV1Dot6

    root, rest = split_root(components, project.get("name", ""), project.get("version", ""))
    tool = CdxComponent(name="gradient-build", version=__version__,
                        type=ComponentType.APPLICATION)
    root_cdx = _cdx(root, root=True)
    meta = BomMetaData(component=root_cdx,
                       timestamp=datetime.fromtimestamp(epoch, UTC),
                       properties=[Property(name="gradient:artifact", value=artifact_name),
                                   Property(name="gradient:artifact:sha256",
                                            value=artifact_sha256)])
    meta.tools.components.add(tool)
    bom = Bom(metadata=meta,
              serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"gradient:{artifact_sha256}"))
    by_ref: dict[str, Any] = {root.bom_ref: root_cdx}
    for comp in rest:
        cdx = _cdx(comp)
        bom.components.add(cdx)
        by_ref[comp.bom_ref] = cdx
    names: dict[tuple[str, str], list[str]] = {}
    for comp in [root, *rest]:
        names.setdefault((comp.kind, comp.name), []).append(comp.bom_ref)
    graph: dict[str, set[str]] = {}  # what Bom.register_dependency makes, without its scan
    for comp in [root, *rest]:  # of the whole graph per call (~25 ms for 97 components)
        graph.setdefault(comp.bom_ref, set()).update(
            r for d in comp.depends for r in names.get((comp.kind, d), []) if r != comp.bom_ref)
    bom.dependencies = [Dependency(ref=by_ref[ref].bom_ref,
                                   dependencies=[Dependency(ref=by_ref[d].bom_ref) for d in deps])
                        for ref, deps in graph.items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"


UNUSED_FORMATS = {"isoduration": "duration", "webcolors": "color", "fqdn": "hostname",
                  "idna": "idn-hostname", "jsonpointer": "json-pointer",
                  "uri_template": "uri-template"}
"""Libraries jsonschema imports for formats no CycloneDX schema uses (tests/test_sbom_formats
checks the bundled schemas): ~25 ms of the helper's loading, which the first SBOM waits for."""


@functools.cache
def _validator() -> Any:
    """The validator, made once per process (~0.1 s); a document then takes milliseconds.

    jsonschema imports rfc3987_syntax whenever it is installed (cyclonedx's extra brings
    it), and that import compiles 39 lark grammars: 0.9 s of every build, for the "iri"
    formats alone. It is kept out while jsonschema loads, with the libraries of formats the
    schema never names (UNUSED_FORMATS); the schema's structure, types, enums, patterns
    and every other format are still checked."""
    from cyclonedx.schema import SchemaVersion

    with _validator_lock:
        blocked = ([] if "jsonschema" in sys.modules else
                   [m for m in ("rfc3987_syntax", *UNUSED_FORMATS) if m not in sys.modules])
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]  # an ImportError
        try:
            from cyclonedx.validation.json import JsonStrictValidator
        finally:
            for name in blocked:
                del sys.modules[name]
    from .unique_items import faster

    validator = JsonStrictValidator(SchemaVersion.V1_6)
    with contextlib.suppress(AttributeError):  # the jsonschema validator it makes, swapped
        inner = "_BaseJsonValidator__validator"  # for one with a linear uniqueItems
        setattr(validator, inner, faster(validator._validator))
    return validator


_validator_lock = threading.Lock()
"""One thread at a time installs and removes the blocks (the helper's checks run in one)."""


_warming: list[threading.Thread] = []


def warm_in_background() -> None:
    """Load the CycloneDX model, its license data and the validator (~0.2 s of imports) beside
    the build, once: called when something is about to be built, so the loading overlaps the
    build instead of delaying the first SBOM. In the helper process where it can start (on
    the other core, off this process's GIL), else in a thread. A failure here is met again,
    and reported, by the document itself."""
    _warm_readers()
    if helper.start():
        return
    _start_once(_warming, _warm, "gradient-sbom-warm")


def _start_once(started: list[threading.Thread], target: Callable[[], None], name: str) -> None:
    """`target` on a daemon thread, once per process (`started` keeps the thread)."""
    with _warm_lock:
        if started:
            return
        started.append(threading.Thread(target=target, name=name, daemon=True))
    started[0].start()


_warm_lock = threading.Lock()
_readers: list[threading.Thread] = []


def _warm_readers() -> None:
    """This process lists an artifact's components itself (inventory), parsing each
    distribution's requirements and writing purls: packaging's parser and packageurl (~15 ms
    of imports, kept out of every backend's import) load beside the build, not on the way
    to the first SBOM."""
    _start_once(_readers, _import_readers, "gradient-readers-warm")


def _import_readers() -> None:
    with contextlib.suppress(Exception):  # met again, and reported, where it is used
        import packageurl  # noqa: F401
        import packaging.requirements  # noqa: F401


def _warm() -> None:
    with contextlib.suppress(Exception):  # behind the build tool for the CPU (Linux: a
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # thread's own nice)
    with contextlib.suppress(Exception):
        load_libraries()


def load_libraries() -> None:
    """Import what a document needs, and make the validator."""
    import cyclonedx.factory.license
    import cyclonedx.model.bom
    import cyclonedx.output.json  # noqa: F401

    _validator()


def validate(text: str, what: str) -> None:
    """One schema validation of a whole document (cyclonedx-python-lib, offline)."""
    error = _validator().validate_str(text)
    if error is not None:
        raise BuildFailed(f"the SBOM of {what} does not validate against CycloneDX 1.6: {error}")


def listed(text: str) -> list[dict[str, Any]]:
    """The root component and every component of an SBOM's JSON, as plain dicts."""
    data = json.loads(text)
    root = data.get("metadata", {}).get("component")
    return [c for c in [root, *data.get("components", [])] if c]


def _identity(item: dict[str, Any]) -> tuple[str, str]:
    sha = next((h["content"] for h in item.get("hashes", []) if h.get("alg") == "SHA-256"), "")
    return str(item.get("bom-ref", "")), sha


def differences(found: Iterable[Component], text: str, project: dict[str, str]) -> list[str]:
    """What the artifact holds that the SBOM does not list, and what it lists that is not
    there: each as a sentence naming the component."""
    root, rest = split_root(list(found), project.get("name", ""), project.get("version", ""))
    inside = {(c.bom_ref, c.sha256): c for c in [root, *rest]}
    said = {_identity(item): item for item in listed(text)}
    problems = [f"it holds {c.label} ({c.where or c.purl}) that its SBOM does not list"
                for key, c in sorted(inside.items()) if key not in said]
    problems += [f"its SBOM lists {item.get('name')}=={item.get('version')} "
                 f"({item.get('purl')}) that it does not hold"
                 for key, item in sorted(said.items()) if key not in inside]
    return problems


def query(items: Iterable[tuple[str, str, str]], name: str, version: str | None
          ) -> list[dict[str, Any]]:
    """(tier, SBOM path, SBOM text) -> the components named `name` (and `version`)."""
    norm = canonicalize_name(name)
    hits: list[dict[str, Any]] = []
    for tier, path, text in items:
        for item in listed(text):
            if canonicalize_name(str(item.get("name", ""))) != norm and item.get("name") != name:
                continue
            if version is not None and item.get("version") != version:
                continue
            hits.append({"tier": tier, "sbom": path, "name": item.get("name"),
                         "version": item.get("version"), "purl": item.get("purl"),
                         "bom-ref": item.get("bom-ref"), "sha256": _identity(item)[1]})
    return hits

