"""An in-toto v1 Statement with a SLSA provenance v1 predicate per artifact, from the record
the cache keeps of the build that made it (its key inputs), so a cache hit states the build
that really produced the bytes. Unsigned, in the form a DSSE envelope takes as its payload
(signing is a later step); `gradient verify` checks its subjects against the artifact.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import __version__

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:gradient-build:tier-build:v1"
BUILDER_ID = "urn:gradient-build:builder"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def provenance_name(primary: str) -> str:
    return f"{Path(primary).name}.intoto.json"


def tree_digest(sources: Mapping[str, str]) -> str:
    """The source tree's digest, as sources.scan computes it from the files' digests."""
    total = hashlib.sha256()
    for rel, digest in sorted(sources.items()):
        total.update(f"{rel}\0{digest}\n".encode())
    return total.hexdigest()


def git_commit(root: Path) -> str | None:
    """HEAD of the project's git work tree, when it is one."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and len(commit) == 40 else None


def _digests_in(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(where, sha256 hex) of every digest-looking string in a key's extra inputs (a base
    image's digest, say): they are materials the build consumed."""
    found: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for key in sorted(value):
            found += _digests_in(value[key], f"{path}/{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _digests_in(item, f"{path}/{i}")
    elif isinstance(value, str):
        hexpart = value.removeprefix("sha256:")
        if len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart):
            found.append((path, hexpart))
    return found


def statement(subjects: list[tuple[str, str]], record: Mapping[str, Any], key: str,
              commit: str | None, base_layers: Sequence[str] = ()) -> str:
    """The Statement's JSON text. `subjects` are (file name, sha256) of the artifact's files;
    `record` is the build's cache-key inputs (graph.key_inputs); `base_layers` the digests of
    the base image's layers it was built on (Meta.BASE_LAYERS). Written by the helper process
    when one runs (in-toto's models and protobuf are ~0.05 s of imports), else here."""
    from .sbom_helper import helper

    text = helper.statement(subjects, record, key, commit, base_layers)
    if text is not None:
        return text
    return local_statement(subjects, record, key, commit, base_layers)


def load_libraries() -> None:
    """Import what a statement needs."""
    import importlib

    for name in ("google.protobuf.json_format",
                 "in_toto_attestation.predicates.provenance.v1.provenance_pb2",
                 "in_toto_attestation.v1.resource_descriptor", "in_toto_attestation.v1.statement"):
        importlib.import_module(name)


def local_statement(subjects: list[tuple[str, str]], record: Mapping[str, Any], key: str,
                    commit: str | None, base_layers: Sequence[str] = ()) -> str:
    """The Statement written in this process."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2 as slsa
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    sources = record.get("sources") or {}
    source_digest = {"sha256": tree_digest(sources)} | ({"gitCommit": commit} if commit else {})
    materials = [ResourceDescriptor(name="source", digest=source_digest,
                                    annotations={"files": len(sources)}).pb]
    for tier, digest in sorted((record.get("inputs") or {}).items()):
        materials.append(ResourceDescriptor(name=f"gradient:{tier}", digest={
            "sha256": str(digest)}, annotations={"role": "consumed artifact"}).pb)
    for n, layer in enumerate(base_layers):
        materials.append(ResourceDescriptor(name=f"base-layer/{n}", digest={
            "sha256": layer.removeprefix("sha256:")}, annotations={"role": "base image"}).pb)
    for where, digest in _digests_in(record.get("extra") or {}):
        materials.append(ResourceDescriptor(name=f"gradient:extra/{where}",
                                            digest={"sha256": digest}).pb)
    tools = {"gradient-build": str(record.get("gradient", __version__)),
             "python": str(record.get("python", ""))}
    tools |= {str(k): str(v) if v is not None else "unknown"
              for k, v in sorted((record.get("tools") or {}).items())}
    predicate = slsa.Provenance(
        build_definition=slsa.BuildDefinition(
            build_type=BUILD_TYPE, resolved_dependencies=materials),
        run_details=slsa.RunDetails(
            builder=slsa.Builder(id=BUILDER_ID, version=tools),
            metadata=slsa.BuildMetadata(invocation_id=key)))
    predicate.build_definition.external_parameters.update(json.loads(json.dumps({
        "tier": str(record.get("node", "")), "options": record.get("options") or {},
        "app": record.get("app") or {}}, default=str)))
    predicate.build_definition.internal_parameters.update(json.loads(json.dumps({
        "backend": record.get("backend"), "source_date_epoch": record.get("epoch"),
        "extra": record.get("extra") or {}}, default=str)))
    stmt = Statement([ResourceDescriptor(name=name, digest={"sha256": sha}).pb
                      for name, sha in subjects], PREDICATE_TYPE,
                     json_format.MessageToDict(predicate))
    stmt.validate()
    data = _integers(json_format.MessageToDict(stmt.pb))
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _integers(value: Any) -> Any:
    """protobuf's Struct holds every number as a double: 10001.0 back to 10001."""
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def subject_problems(text: str, actual: Mapping[str, str]) -> list[str]:
    """How a statement's subjects disagree with the artifact's files (name -> sha256)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [f"its provenance is not JSON ({exc})"]
    if data.get("_type") != STATEMENT_TYPE or data.get("predicateType") != PREDICATE_TYPE:
        return ["its provenance is not an in-toto v1 Statement with a SLSA v1 predicate"]
    problems: list[str] = []
    named = {s.get("name"): s.get("digest", {}).get("sha256") for s in data.get("subject", [])}
    for name, sha in sorted(actual.items()):
        if name not in named:
            problems.append(f"its provenance names no subject {name}")
        elif named[name] != sha:
            problems.append(f"its provenance's subject {name} has sha256 {named[name]}, the "
                            f"file has {sha}")
    problems += [f"its provenance's subject {n} is not a file of the artifact"
                 for n in sorted(set(named) - set(actual))]
    return problems
