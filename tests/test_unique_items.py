"""The linear uniqueItems agrees with jsonschema's own on every kind of JSON value, and the
SBOM validator really uses it and still rejects a document with a duplicated item."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from jsonschema._utils import uniq

from gradient_build.errors import BuildFailed
from gradient_build.sbom import _validator, validate
from gradient_build.unique_items import distinct, unique_items

ATOMS: list[Any] = [0, 1, 1.0, 0.0, 2, True, False, None, "", "1", "a", "true", -1, 2.5]


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.5:
        return rng.choice(ATOMS)
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice("abc"): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def test_it_agrees_with_jsonschema_on_random_arrays() -> None:
    rng = random.Random(21)
    dupes = 0
    for _ in range(4000):
        items = [_value(rng) for _ in range(rng.randint(0, 6))]
        assert distinct(items) == uniq(items), items
        dupes += not uniq(items)
    assert 500 < dupes < 3500  # both verdicts were exercised


def test_the_edge_cases_jsonschema_has() -> None:
    assert not distinct([1, 1.0]) and distinct([1, True]) and distinct([0, False])
    assert not distinct([{"a": 1}, {"a": 1.0}]) and distinct([{"a": 1}, {"a": True}])
    assert distinct([[1, 2], [2, 1]]) and not distinct([[1, [True]], [1.0, [True]]])
    assert distinct([{"a": [1]}, {"a": [1], "b": None}])


def test_the_sbom_validator_uses_it_and_rejects_a_duplicate() -> None:
    inner = _validator()._BaseJsonValidator__validator
    assert inner.VALIDATORS["uniqueItems"] is unique_items
    comp = {"type": "library", "name": "x", "version": "1",
            "hashes": [{"alg": "SHA-256", "content": "a" * 64}]}
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
           "components": [comp]}
    validate(json.dumps(doc | {"components": [comp, comp | {"version": "2"}]}), "x")
    with pytest.raises(BuildFailed, match="non-unique"):
        validate(json.dumps(doc | {"components": [comp, dict(comp)]}), "x")
