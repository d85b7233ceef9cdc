"""The format libraries kept out of the validator are for formats no CycloneDX schema that
cyclonedx-python-lib bundles uses: blocking them changes no document's verdict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cyclonedx.schema

from gradient_build.sbom import UNUSED_FORMATS, validate


def _formats(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("format"), str):
            yield node["format"]
        for value in node.values():
            yield from _formats(value)
    elif isinstance(node, list):
        for value in node:
            yield from _formats(value)


def test_no_bundled_schema_uses_a_blocked_format() -> None:
    schemas = sorted((Path(cyclonedx.schema.__file__).parent / "_res").glob("*.schema.json"))
    assert len(schemas) > 5
    used = {f for path in schemas for f in _formats(json.loads(path.read_text()))}
    assert "date-time" in used  # the walk does find formats
    blocked = {*UNUSED_FORMATS.values(), "relative-json-pointer"}  # jsonpointer's other one
    assert used & blocked == set()


def test_a_bad_date_time_still_fails_validation() -> None:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
           "metadata": {"timestamp": "yesterday"}}
    try:
        validate(json.dumps(doc), "x")
    except Exception as exc:
        assert "yesterday" in str(exc) or "date-time" in str(exc)
    else:
        raise AssertionError("a bad date-time validated")
    good = doc | {"metadata": {"timestamp": "2026-12-06T00:00:00Z"}}
    validate(json.dumps(good), "x")


def test_the_names_are_normalised_as_packaging_does() -> None:
    from packaging.utils import canonicalize_name as reference

    from gradient_build.inventory import canonicalize_name

    for name in ("Foo.Bar", "foo__bar", "A-_.-b", "zope.interface", "ruamel.yaml.clib",
                 "Django", "-a-", "typing_extensions"):
        assert canonicalize_name(name) == reference(name), name
